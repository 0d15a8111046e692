/* fmap.h -- read-only memory mapping of a whole file.
 *
 * Checkpoint readers parse from a mapping so a tensor is a pointer into the
 * page cache, never a copy of the file. A struct fmap is plain data owned by
 * whoever opened it; every pointer into `data` is valid until fmap_close().
 * Read-only after fmap_open(): safe to share between threads.
 */
#ifndef CORE_FMAP_H
#define CORE_FMAP_H

#include <stdint.h>

#include "core/err.h"

struct fmap {
    const unsigned char *data; /* owned mapping, NULL when size == 0 */
    uint64_t size;             /* file size in bytes */
};

/* Map `path` read-only. A zero-length file gives data == NULL, size == 0.
 * A directory or missing file fails with ERR_IO / ERR_NOTFOUND. */
enum err_code fmap_open(const char *path, struct fmap *m, struct err *e);

/* Drop the pages holding [p, p + len) of a read-only file mapping from the
 * process's resident set (MADV_DONTNEED); touching them again reads them
 * back from the page cache or the file. `p` must point into a mapping made
 * by fmap_open (never into heap memory: its pages would be zeroed). Lets a
 * reader walk a checkpoint larger than memory with a resident set of about
 * one tensor. Advisory: cannot fail. */
void fmap_release(const void *p, uint64_t len);

/* Unmap; `m` becomes empty. Safe on an empty or zeroed fmap. Cannot fail. */
void fmap_close(struct fmap *m);

#endif /* CORE_FMAP_H */
