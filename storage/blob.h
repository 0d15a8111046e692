/* blob.h -- the content-addressed store of uploaded checkpoint files.
 *
 * Layout under the store directory:
 *   <dir>/tmp/upload-<host>-<pid>-XXXXXX  uploads being written (struct
 *                                  blob_upload) and snapshots (blob_tmp_copy)
 *   <dir>/objects/<sha[0:2]>/<sha> committed blobs, named by the lower-case
 *                                  hex SHA-256 of their bytes; or folders
 *                                  (tar uploads, storage/blob_dir.h) named
 *                                  by their content identity
 * tmp/ and objects/ are on the same filesystem, so a commit is one atomic
 * rename(2). Durability of a commit: fsync the file, rename it into place,
 * fsync the directory (and objects/ when the fan-out directory is new).
 *
 * An upload (struct blob_upload) is one object with one owner, the code
 * that created it: create (the tmp file), write (bytes are copied into
 * buffers of BLOB_UPLOAD_BUF bytes; the upload's own writer and hasher
 * threads write each full buffer to the file and hash it with SHA-256 while
 * the next one fills, so commit never re-reads the file), finish (the last
 * bytes written and hashed: the hash is known), commit (into objects/) and
 * blob_upload_abort, which removes the tmp file if, and only if, the upload
 * still owns one, and frees the object. After a commit, or a failed write,
 * the upload owns no file; aborting it then only frees it. Whoever is handed
 * the upload (the API) may read its file and commit it, never remove it.
 * Memory: an upload holds at most BLOB_UPLOAD_BUFS buffers (16 MiB) whatever
 * the size of its body; a writer faster than the disk waits in
 * blob_upload_write. The writer uses O_DIRECT where the file system takes
 * it; else the file's pages are written back while the body arrives and
 * dropped from the page cache behind it. Either way the commit's fsync has
 * at most a few buffers left to write.
 *
 * Ownership: a struct blob_store owns its directory paths; paths written to
 * caller buffers are caller-owned. A struct blob_upload borrows its store,
 * which must stay open until the upload is aborted.
 * Thread-safety: after blob_store_open the store is read-only; every
 * function may run on many threads at once with the same store. An upload
 * is used by one thread at a time (handing it to another thread needs the
 * usual happens-before, such as a queue); its two threads are its own,
 * started at its first full buffer and joined by finish or abort.
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
#include "core/formats/thash.h"

#define BLOB_TMP_STALE_S 3600 /* tmp files older than this are removed whoever wrote them */
#define BLOB_HOST_MAX    64   /* bytes of the host name kept in tmp file names */
#define BLOB_PATH_MAX    4096 /* path bytes of a tmp file or blob, NUL included */
#define BLOB_UPLOAD_BUF  ((size_t)4 << 20) /* bytes of one upload buffer (one write) */
#define BLOB_UPLOAD_BUFS 4                 /* buffers per upload: its memory bound */

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

/* --- Uploads ------------------------------------------------------------- */

struct blob_upload; /* opaque: one upload, from its first byte to commit or abort */

struct blob_committed {         /* what a commit stored; caller-owned */
    char sha256[THASH_HEX_LEN]; /* lower-case hex SHA-256 of the bytes */
    uint64_t size;              /* bytes */
    char path[BLOB_PATH_MAX];   /* the blob's path (blob_path) */
    int existed;                /* 1: the store held these bytes already */
};

/* Start an upload into `b`: a new empty tmp file named
 * upload-<host>-<pid>-XXXXXX (O_EXCL, mode 0600, so blob_tmp_cleanup finds
 * it after a crash) and a SHA-256 over no bytes yet. ERR_IO (ERR_NOMEM,
 * ERR_INTERNAL from libcrypto) on failure, with nothing left behind.
 * Returns the upload in *out; end it with blob_upload_abort(). */
enum err_code blob_upload_create(struct blob_store *b, struct blob_upload **out, struct err *e);

/* Append `len` bytes at `data` to the upload. The bytes reach the file
 * and the hash a buffer at a time, so a write error (the file system's or
 * the hash's) shows at a later call of this function or at
 * blob_upload_finish: then the tmp file is removed at once (the upload owns
 * none) and the call is ERR_IO whose message is the system's text for the
 * error (no path), with category "insufficient_storage" when the disk is
 * full (ENOSPC); a hash failure is ERR_INTERNAL. ERR_NOMEM if a buffer
 * cannot be allocated. ERR_INVAL once the upload is finished or a write has
 * failed. May wait while all BLOB_UPLOAD_BUFS buffers are being written. */
enum err_code blob_upload_write(struct blob_upload *u, const void *data, size_t len, struct err *e);

/* The last byte is in: write and hash what is buffered, close the file and
 * finish the hash. Fails as blob_upload_write does (the error of a write
 * still in flight, with the tmp file removed), ERR_INVAL after a failed
 * write. If libcrypto cannot finish the hash, blob_upload_sha256() stays ""
 * and a commit is refused. A second call is a no-op. */
enum err_code blob_upload_finish(struct blob_upload *u, struct err *e);

/* The tmp file's path while the upload owns one, else NULL. Borrowed: valid
 * until commit or abort. Readers may open it (the file is complete after
 * blob_upload_finish); nobody but the upload removes or renames it. */
const char *blob_upload_path(const struct blob_upload *u);

/* The lower-case hex SHA-256 of the bytes, once finished; "" before.
 * Borrowed: valid until abort. Cannot fail. */
const char *blob_upload_sha256(const struct blob_upload *u);

/* Bytes written so far. Cannot fail. */
uint64_t blob_upload_size(const struct blob_upload *u);

/* Move the finished upload into the store under its hash: fsync the file,
 * create the fan-out directory if needed, rename, fsync the directory. If
 * the blob already exists it is kept and the tmp file removed. From the
 * rename (or that removal) on, the upload owns no file, whatever follows.
 * `out` (may be NULL) receives hash, size, the blob's path and whether it
 * existed. ERR_INVAL if the upload is not finished, its hash is missing or
 * it was committed already; ERR_IO on failure (if the tmp file was not moved
 * the upload still owns it, and abort removes it). */
enum err_code blob_upload_commit(struct blob_upload *u, struct blob_committed *out, struct err *e);

/* End `u`: close its file, remove the tmp file if the upload still owns one
 * (never a committed blob), release the hash and free `u`. NULL is a no-op.
 * Cannot fail. */
void blob_upload_abort(struct blob_upload *u);

/* --- Snapshots and removal ------------------------------------------------ */

/* Copy the regular file `src` into a new tmp file (named as an upload's;
 * its path in `path`, `len` bytes): a reflink (FICLONE) where the
 * file system shares blocks, else a kernel copy. The copy is this process's
 * own snapshot of the bytes `src` held while it was read; the caller removes
 * it (unlink) when done. ERR_NOTFOUND, ERR_FORMAT "not_regular_file" (a
 * FIFO or device is never read), ERR_IO; on failure nothing is left. */
enum err_code blob_tmp_copy(struct blob_store *b, const char *src, char *path, size_t len,
                            struct err *e);

/* Remove blob `sha256_hex`, a file or a folder (a reader that has a file
 * open keeps its bytes).
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

/* 1 if blob `sha256_hex` exists as a regular file or a folder, 0 if not
 * or the hash is malformed. Cannot fail. */
int blob_exists(const struct blob_store *b, const char *sha256_hex);

/* Bytes available to unprivileged writers on the store's filesystem
 * (statvfs f_bavail * f_frsize), for the 507 check. ERR_IO on failure. */
enum err_code blob_free_bytes(const struct blob_store *b, uint64_t *out, struct err *e);

#endif /* STORAGE_BLOB_H */
