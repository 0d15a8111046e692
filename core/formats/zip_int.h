/* zip_int.h -- what zip.c (the central entries) shares with zip_cd.c
 * (locating the central directory) and zip_read.c (member data). Same
 * ownership and thread-safety as zip.h.
 */
#ifndef CORE_ZIP_INT_H
#define CORE_ZIP_INT_H

#include "core/formats/rfile.h"
#include "core/formats/zip.h"

#define ZIP_SAT32 0xFFFFFFFFu
#define ZIP_SAT16 0xFFFFu

struct zip_archive {
    const struct rfile *src;    /* borrowed: the caller's file, or &mem */
    struct rfile mem;           /* zip_parse's buffer reader (borrows the buffer) */
    struct zip_member *members; /* owned, central-directory order */
    size_t n_members;
    size_t *by_name; /* owned: member indices sorted by name */
    char *names;     /* owned: every name, NUL-terminated, back to back */
};

/* Where the central directory is, from the end records. */
struct zip_cd {
    uint64_t n_entries, size, offset;
};

/* The little-endian 16-, 32- and 64-bit fields at `p`. Cannot fail. */
uint16_t zip__u16(const unsigned char *p);
uint32_t zip__u32(const unsigned char *p);
uint64_t zip__u64(const unsigned char *p);

/* Where the central directory of `f` is (zip_cd.c), from the end records:
 * the end-of-central-directory record within the last 64 KiB + 22 bytes, or
 * the ZIP64 end record its locator points at; one disk only, the directory
 * inside the file. Fails with truncated or invalid_zip, ERR_NOMEM, or
 * rfile_read()'s errors. */
enum err_code zip__find_cd(const struct rfile *f, struct zip_cd *cd, struct err *e);

#endif /* CORE_ZIP_INT_H */
