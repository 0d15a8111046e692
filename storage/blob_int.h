/* blob_int.h -- what blob.c and blob_dir.c share inside storage/: the
 * store's fields and the commit and removal steps. Not for other modules.
 */
#ifndef STORAGE_BLOB_INT_H
#define STORAGE_BLOB_INT_H

#include "core/err.h"
#include "storage/blob.h"

struct blob_store {
    char *dir;                    /* owned: the store directory */
    char *tmp;                    /* owned: <dir>/tmp */
    char *objects;                /* owned: <dir>/objects */
    char host[BLOB_HOST_MAX + 1]; /* this host's name in tmp file names */
};

/* Move the complete tmp file or folder `tmp_path` into the store as blob
 * `sha256_hex` (blob.c's top comment); if the blob exists, set *existed and
 * remove `tmp_path` if it is a file (a folder is left to its owner).
 * *moved = 1 once `tmp_path` no longer names the file or folder (renamed or
 * removed), also when a later step fails. */
enum err_code blob__commit_tmp(struct blob_store *b, const char *tmp_path, const char *sha256_hex,
                               int *existed, int *moved, struct err *e);

/* A new empty tmp file upload-<host>-<pid>-XXXXXX in the store's tmp/
 * (O_CREAT | O_EXCL, mode 0600): its fd (open for writing) in *fd, its path
 * in `path` (`len` bytes). ERR_TOOBIG if the path does not fit, ERR_IO. */
enum err_code blob__tmp_create(struct blob_store *b, int *fd, char *path, size_t len,
                               struct err *e);

/* Remove `name` (relative to `dirfd`, or a path with AT_FDCWD) and, if it
 * is a folder, everything under it; symbolic links are removed, never
 * followed. Folders nested deeper than 64 are left (ERR_IO). A missing
 * `name` is not an error. ERR_IO on failure, `e` may be NULL. */
enum err_code blob__rm_tree(int dirfd, const char *name, struct err *e);

#endif /* STORAGE_BLOB_INT_H */
