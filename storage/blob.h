/* blob.h -- the content-addressed store of uploaded checkpoint files.
 *
 * Layout under the store directory:
 *   <dir>/tmp/upload-XXXXXX        uploads being written (blob_tmp_create)
 *   <dir>/objects/<sha[0:2]>/<sha> committed blobs, named by the lower-case
 *                                  hex SHA-256 of their bytes
 * tmp/ and objects/ are on the same filesystem, so a commit is one atomic
 * rename(2). Durability of a commit: fsync the file, rename it into place,
 * fsync the directory (and objects/ when the fan-out directory is new).
 * The SHA-256 is the caller's (the server hashes while streaming); commit
 * does not re-read the file.
 *
 * Ownership: a struct blob_store owns its directory paths; paths written to
 * caller buffers are caller-owned.
 * Thread-safety: after blob_store_open the store is read-only; every
 * function may run on many threads at once with the same store. One process
 * per directory is assumed for tmp cleanup (stale = older than a bound).
 */
#ifndef STORAGE_BLOB_H
#define STORAGE_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define BLOB_HEX_LEN     65   /* 64 hex digits and a NUL */
#define BLOB_TMP_STALE_S 3600 /* blob_store_open removes tmp files older than this */

struct blob_store; /* opaque */

/* --- Open and close ------------------------------------------------------- */

/* Open the store at `dir`, creating `dir`, `dir`/tmp and `dir`/objects as
 * needed (mode 0700), then remove tmp files older than BLOB_TMP_STALE_S
 * (uploads interrupted by a crash). ERR_IO with strerror on failure.
 * Returns a new store in *out; close with blob_store_close(). */
enum err_code blob_store_open(const char *dir, struct blob_store **out, struct err *e);

/* Free `b`. NULL is a no-op. Cannot fail. */
void blob_store_close(struct blob_store *b);

/* The tmp directory. Borrowed: valid until blob_store_close(b). */
const char *blob_tmp_dir(const struct blob_store *b);

/* --- Writing -------------------------------------------------------------- */

/* Create a new empty file in the tmp directory (O_EXCL, mode 0600): the fd
 * (open for writing; the caller closes it) in *fd and its path in `path`
 * (`len` bytes; ERR_TOOBIG if too small). ERR_IO on failure. */
enum err_code blob_tmp_create(struct blob_store *b, int *fd, char *path, size_t len, struct err *e);

/* Move the finished tmp file `tmp_path` (fully written, fd closed or not)
 * into the store as blob `sha256_hex`: fsync the file, create the fan-out
 * directory if needed, rename, fsync the directory. If the blob already
 * exists it is kept, `tmp_path` is removed and *existed (may be NULL) = 1.
 * ERR_INVAL for a malformed hash (64 lower-case hex digits), ERR_IO on
 * failure (tmp file left in place). */
enum err_code blob_commit(struct blob_store *b, const char *tmp_path, const char *sha256_hex,
                          int *existed, struct err *e);

/* Remove blob `sha256_hex` (a reader that has it open keeps its bytes).
 * *removed (may be NULL) = 1 if it existed. A missing blob is not an error.
 * Callers make sure no checkpoint refers to it (store_run_delete).
 * ERR_INVAL for a malformed hash, ERR_IO on failure. */
enum err_code blob_remove(struct blob_store *b, const char *sha256_hex, int *removed,
                          struct err *e);

/* Remove files in the tmp directory last modified more than `max_age_s`
 * seconds ago (0: all). *n_removed (may be NULL) counts them. */
enum err_code blob_tmp_cleanup(struct blob_store *b, double max_age_s, int64_t *n_removed,
                               struct err *e);

/* --- Reading -------------------------------------------------------------- */

/* Path of blob `sha256_hex` (whether or not it exists) into `buf` (`len`
 * bytes). ERR_INVAL for a malformed hash, ERR_TOOBIG if `buf` is too small. */
enum err_code blob_path(const struct blob_store *b, const char *sha256_hex, char *buf, size_t len,
                        struct err *e);

/* 1 if blob `sha256_hex` exists as a regular file, 0 if not or the hash is
 * malformed. Cannot fail. */
int blob_exists(const struct blob_store *b, const char *sha256_hex);

/* Bytes available to unprivileged writers on the store's filesystem
 * (statvfs f_bavail * f_frsize), for the 507 check. ERR_IO on failure. */
enum err_code blob_free_bytes(const struct blob_store *b, uint64_t *out, struct err *e);

#endif /* STORAGE_BLOB_H */
