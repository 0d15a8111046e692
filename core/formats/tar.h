/* tar.h -- a push parser for tar streams (POSIX ustar, pax extended
 * headers, GNU long names), as GNU tar and Python's tarfile write them
 * (docs/tar.md).
 *
 * Bytes go in (tar_push, in pieces of any size, then tar_finish); member
 * headers and data come out through callbacks. The parser does no file I/O
 * and holds at most one 512-byte header and one extended header
 * (TAR_EXT_MAX) in memory, whatever the stream's size, so it can take an
 * HTTP body as it arrives, be unit-tested on buffers and be fuzzed.
 *
 * Only regular files and folders come out. Everything a checkpoint never
 * needs and an attacker would use is refused, with category
 * "hostile_archive" (nothing is extracted from a refused stream by a caller
 * that removes what it wrote on failure):
 *   - names that are absolute, have a ".." component, control bytes
 *     (0x00-0x1f, 0x7f, a NUL inside a pax or GNU long name), a component
 *     longer than TAR_COMPONENT_MAX or more than TAR_DEPTH_MAX components,
 *     or are longer than TAR_NAME_MAX bytes once normalised;
 *   - symbolic and hard links, character and block devices, FIFOs,
 *     sparse, multi-volume and other special members.
 * Structure faults are "invalid_tar" (bad checksum, no ustar magic, a bad
 * number field, a malformed pax record), "truncated" (the stream ends in a
 * member or before the end-of-archive block), "trailing_data" (non-zero
 * bytes after the end-of-archive block) and "limit_exceeded" (ERR_TOOBIG:
 * too many members, a member or the total over its limit, an extended
 * header over TAR_EXT_MAX).
 * Duplicate names are not tracked here (that needs memory per member); an
 * extractor finds them when it creates a file that exists (O_EXCL).
 *
 * Names are normalised: "." and empty components are dropped ("./a//b" is
 * "a/b"), a trailing '/' is removed; a folder whose name normalises to ""
 * (the archive's "./") is skipped without a callback.
 *
 * Ownership: tar_parser_new returns a new parser; free it with
 * tar_parser_free. Member records and their names are borrowed for the
 * duration of the callback. Thread-safety: a parser is used by one thread
 * at a time; different parsers are independent.
 */
#ifndef CORE_FORMATS_TAR_H
#define CORE_FORMATS_TAR_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define TAR_BLOCK         512
#define TAR_NAME_MAX      4095      /* bytes of a normalised name (PATH_MAX - 1) */
#define TAR_COMPONENT_MAX 255       /* bytes of one name component (NAME_MAX) */
#define TAR_DEPTH_MAX     32        /* components of one name */
#define TAR_EXT_MAX       (1 << 16) /* bytes of one pax or GNU long-name header */

/* Defaults of struct tar_limits (tar_limits_default). */
#define TAR_MAX_MEMBERS_DEFAULT 10000

struct tar_limits {
    uint64_t max_members;      /* files and folders (0: TAR_MAX_MEMBERS_DEFAULT) */
    uint64_t max_member_bytes; /* bytes of one file (0: no limit) */
    uint64_t max_total_bytes;  /* bytes of all files together (0: no limit) */
};

enum tar_kind {
    TAR_KIND_FILE, /* a regular file: data callbacks follow, then end */
    TAR_KIND_DIR   /* a folder: no data, no end callback */
};

struct tar_member {   /* borrowed for the duration of a callback */
    const char *name; /* normalised relative name, never "" ("a/b.safetensors") */
    enum tar_kind kind;
    uint64_t size;  /* bytes of a file's data (0 for a folder) */
    uint64_t index; /* 0-based count of members reported before this one */
};

/* The callbacks; a non-OK return (with `e` filled) stops the parser, which
 * then returns that code and `e` from tar_push and refuses further input. */
typedef enum err_code tar_member_fn(void *arg, const struct tar_member *m, struct err *e);
typedef enum err_code tar_data_fn(void *arg, const void *data, size_t len, struct err *e);
typedef enum err_code tar_end_fn(void *arg, struct err *e);

struct tar_callbacks {
    tar_member_fn *member; /* a new member (required) */
    tar_data_fn *data;     /* the next bytes of the current file (may be NULL: dropped) */
    tar_end_fn *end;       /* the current file's last byte is in (may be NULL) */
    void *arg;             /* passed to each */
};

struct tar_parser; /* opaque */

/* --- Life cycle ------------------------------------------------------------ */

/* The defaults: TAR_MAX_MEMBERS_DEFAULT members, no byte limits. Cannot fail. */
void tar_limits_default(struct tar_limits *l);

/* A new parser reporting to `cb` (copied) under `limits` (copied; NULL:
 * defaults). ERR_NOMEM. Returns a new parser in *out; free with
 * tar_parser_free(). */
enum err_code tar_parser_new(const struct tar_limits *limits, const struct tar_callbacks *cb,
                             struct tar_parser **out, struct err *e);

/* Free `p`. NULL is a no-op. Cannot fail. */
void tar_parser_free(struct tar_parser *p);

/* --- Input ----------------------------------------------------------------- */

/* The next `len` bytes of the stream. Fails with the categories above or a
 * callback's error; after a failure every call returns ERR_INVAL. */
enum err_code tar_push(struct tar_parser *p, const void *data, size_t len, struct err *e);

/* The stream has ended: ERR_FORMAT "truncated" unless the end-of-archive
 * block has been seen (a stream cut at a member boundary is refused too). */
enum err_code tar_finish(struct tar_parser *p, struct err *e);

/* Members reported so far. Cannot fail. */
uint64_t tar_n_members(const struct tar_parser *p);

#endif /* CORE_FORMATS_TAR_H */
