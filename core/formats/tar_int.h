/* tar_int.h -- what tar.c (the push parser's state machine, members, input)
 * shares with tar_header.c (decoding a header block and extended headers):
 * the parser's state and the header decoders. Internal to
 * core/formats/tar*.c: not a public header.
 *
 * Ownership: the parser owns its ext and pend_name buffers (tar_parser_new,
 * tar_parser_free); the decoders work in them and allocate nothing.
 * Thread-safety: as tar.h (a parser is used by one thread at a time).
 */
#ifndef CORE_TAR_INT_H
#define CORE_TAR_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/formats/tar.h"

enum tar_state {
    TAR_S_HEADER,
    TAR_S_EXT,
    TAR_S_DATA,
    TAR_S_SKIP,
    TAR_S_PAD,
    TAR_S_END,
    TAR_S_FAILED
};

struct tar_parser {
    struct tar_limits lim;
    struct tar_callbacks cb;
    enum tar_state state;
    unsigned char hdr[TAR_BLOCK]; /* the header being gathered */
    size_t hdr_len;
    char *ext; /* TAR_EXT_MAX + 1 bytes: an extended header's data */
    size_t ext_len, ext_want;
    char ext_type;               /* 'x' or 'L' */
    char *pend_name;             /* TAR_EXT_MAX + 1: the next member's name (pax path, 'L') */
    size_t pend_name_len;        /* bytes of pend_name */
    int pend_name_from;          /* 0: none, 1: GNU 'L', 2: pax path (wins) */
    uint64_t pend_size;          /* pax size */
    int pend_size_set;           /* 1: pend_size applies */
    char name[TAR_NAME_MAX + 1]; /* the current member's normalised name */
    uint64_t remain;             /* DATA/SKIP/EXT bytes left */
    uint64_t pad;                /* PAD bytes left */
    uint64_t n_members, total;
};

/* --- tar_header.c ----------------------------------------------------------- */

/* The number in header field `f` (`n` bytes): octal digits after optional
 * spaces, ended by a space, NUL or the field's end; or GNU base-256 (first
 * byte 0x80, big-endian, non-negative). 0 if fine, -1 otherwise. */
int tar__number(const unsigned char *f, size_t n, uint64_t *out);

/* 1 if the header's checksum (field 148..155) matches its bytes, summed
 * with that field as spaces, unsigned (POSIX) or signed (old tars). */
int tar__checksum_ok(const unsigned char *h);

/* 1 if the `n` bytes at `b` are all zero. */
int tar__all_zero(const unsigned char *b, size_t n);

/* Set `e` to the hostile_archive refusal of the next member for `what`;
 * returns ERR_FORMAT. */
enum err_code tar__hostile(struct tar_parser *p, struct err *e, const char *what);

/* The current header's name into p->name, normalised (rules in tar.h): the
 * pending pax/GNU name, else the ustar name, with the prefix field in front
 * for POSIX ustar. Fails with hostile_archive. */
enum err_code tar__header_name(struct tar_parser *p, struct err *e);

/* An extended header's data (p->ext, p->ext_len bytes of type p->ext_type)
 * is in: pax records set the pending name and size, a GNU 'L' the pending
 * name unless a pax path has. Fails with invalid_tar or hostile_archive. */
enum err_code tar__ext_done(struct tar_parser *p, struct err *e);

/* What a refused type flag is, or NULL for the types read here. */
const char *tar__type_refused(unsigned char t);

#endif /* CORE_TAR_INT_H */
