/* blob.h -- the content-addressed store of uploaded checkpoint files.
 *
 * Layout under the store directory:
 *   <dir>/tmp/upload-<host>-<pid>-XXXXXX  uploads being written (blob_tmp_create)
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
 * function may run on many threads at once with the same store.
 *
 * Several processes, on one host or on several (replicas sharing the folder
 * over a network file system), may use one store. A tmp file names the host
 * and the process writing it, so cleanup can tell an interrupted upload from
 * a live one: a file of this host whose process no longer exists (kill(pid,
 * 0) fails with ESRCH) is removed at once, any file older than
 * BLOB_TMP_STALE_S is removed (other hosts' files, whose processes cannot be
 * checked, and files named before host and pid were recorded). Limit: a
 * file whose pid is alive again (a restarted container where farmsd is
 * always pid 1 under the same host name) waits for the age bound.
 */
#ifndef STORAGE_BLOB_H
#define STORAGE_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define BLOB_TMP_STALE_S 3600 /* tmp files older than this are removed whoever wrote them */
#define BLOB_HOST_MAX    64   /* bytes of the host name kept in tmp file names */

struct blob_store; /* opaque */

/* --- Open and close ------------------------------------------------------- */

/* Open the store at `dir`, creating `dir`, `dir`/tmp and `dir`/objects as
 * needed (mode 0700), then remove the tmp files of uploads interrupted by a
 * crash (blob_tmp_cleanup with BLOB_TMP_STALE_S). ERR_IO with strerror on
 * failure.
 * Returns a new store in *out; close with blob_store_close(). */
enum err_code blob_store_open(const char *dir, struct blob_store **out, struct err *e);

/* Free `b`. NULL is a no-op. Cannot fail. */
void blob_store_close(struct blob_store *b);

/* The tmp directory. Borrowed: valid until blob_store_close(b). */
const char *blob_tmp_dir(const struct blob_store *b);

/* --- Writing -------------------------------------------------------------- */

/* Create a new empty file in the tmp directory, named
 * upload-<host>-<pid>-XXXXXX (O_EXCL, mode 0600): the fd
 * (open for writing; the caller closes it) in *fd and its path in `path`
 * (`len` bytes; ERR_TOOBIG if too small). ERR_IO on failure. */
enum err_code blob_tmp_create(struct blob_store *b, int *fd, char *path, size_t len, struct err *e);

/* Copy the regular file `src` into a new tmp file (as blob_tmp_create
 * names it; its path in `path`, `len` bytes): a reflink (FICLONE) where the
 * file system shares blocks, else a kernel copy. The copy is this process's
 * own snapshot of the bytes `src` held while it was read; the caller removes
 * it (unlink) when done. ERR_NOTFOUND, ERR_FORMAT "not_regular_file" (a
 * FIFO or device is never read), ERR_IO; on failure nothing is left. */
enum err_code blob_tmp_copy(struct blob_store *b, const char *src, char *path, size_t len,
                            struct err *e);

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

/* Remove the files in the tmp directory that no upload will finish: those
 * of this host whose process is gone, and every file last modified more
 * than `max_age_s` seconds ago (0: all). *n_removed (may be NULL) counts
 * them. */
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
