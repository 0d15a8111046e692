/* zip_int.h -- what zip.c (the central directory) shares with zip_read.c
 * (member data). Same ownership and thread-safety as zip.h.
 */
#ifndef CORE_ZIP_INT_H
#define CORE_ZIP_INT_H

#include "core/formats/rfile.h"
#include "core/formats/zip.h"

struct zip_archive {
    const struct rfile *src;    /* borrowed: the caller's file, or &mem */
    struct rfile mem;           /* zip_parse's buffer reader (borrows the buffer) */
    struct zip_member *members; /* owned, central-directory order */
    size_t n_members;
    size_t *by_name; /* owned: member indices sorted by name */
    char *names;     /* owned: every name, NUL-terminated, back to back */
};

#endif /* CORE_ZIP_INT_H */
