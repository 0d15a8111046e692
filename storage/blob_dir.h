/* blob_dir.h -- folder uploads into the blob store (storage/blob.h): a tar
 * body extracted into a tmp folder, then committed as a folder blob.
 *
 * A folder upload (a tar body: a shard, DCP, adapter or DeepSpeed folder)
 * has the same life as a file upload: create (an empty tmp folder named
 * like an upload's tmp file, so blob_tmp_cleanup finds it after a crash),
 * extract (the tar's files and folders, written through the core tar
 * parser, core/formats/tar.h), root (what the checkpoint is), commit (the
 * root renamed into objects/ under a hash the caller chose, its content
 * identity) and blob_dir_abort, which removes whatever the tmp folder still
 * holds and frees the object. A committed folder blob is
 * objects/<sha[0:2]>/<sha>/ with the checkpoint's files inside; blob_path,
 * blob_exists and blob_remove take it like a file blob.
 *
 * Ownership: a struct blob_dir borrows its store, which must stay open
 * until the upload is aborted; paths it returns are borrowed.
 * Thread-safety: a folder upload is used by one thread at a time; the
 * store may serve others meanwhile.
 */
#ifndef STORAGE_BLOB_DIR_H
#define STORAGE_BLOB_DIR_H

#include <stdint.h>

#include "core/err.h"
#include "core/formats/tar.h"
#include "storage/blob.h"

struct blob_dir; /* opaque */

/* Start a folder upload into `b`: a new empty tmp folder (mode 0700).
 * ERR_IO or ERR_NOMEM, with nothing left behind.
 * Returns the upload in *out; end it with blob_dir_abort(). */
enum err_code blob_dir_create(struct blob_store *b, struct blob_dir **out, struct err *e);

/* Extract the tar file `tar_path` into the folder, as core/formats/tar.h
 * reads it under `limits` (NULL: its defaults). The whole stream is parsed
 * first, writing nothing; then files (mode 0600) and folders (0700) are
 * created below the tmp folder only (openat with
 * O_NOFOLLOW | O_EXCL from the folder's own descriptor, so no name can
 * leave it), and the file system is synced once (syncfs). Fails with the
 * parser's categories (hostile_archive, invalid_tar, truncated, trailing_data, limit_exceeded),
 * hostile_archive for a duplicate name or a name that is both a file and a folder, ERR_IO
 * (insufficient_storage when the disk is full). After a failure the folder
 * holds partial content: abort it. Once per folder upload. */
enum err_code blob_dir_extract_tar(struct blob_dir *d, const char *tar_path,
                                   const struct tar_limits *limits, struct err *e);

/* The checkpoint the extracted tar holds: starting at the tmp folder,
 * while a folder holds exactly one entry and it is a folder, go into it
 * (so `tar c ckpt/` and `tar -C ckpt -c .` give the same root); a folder
 * holding exactly one regular file gives that file. *is_file says which.
 * ERR_FORMAT "empty_file" when no file was extracted. The path is borrowed:
 * valid until commit or abort. */
enum err_code blob_dir_root(struct blob_dir *d, const char **path, int *is_file, struct err *e);

/* Bytes of the files extracted. Cannot fail. */
uint64_t blob_dir_bytes(const struct blob_dir *d);

/* Move the root (blob_dir_root first) into the store as blob `sha256_hex`,
 * durably (the files were synced after extraction; the fan-out folder is
 * fsync'd after the rename). A blob that exists already is kept and `out`
 * says so. ERR_INVAL before blob_dir_root or after a commit, ERR_IO. */
enum err_code blob_dir_commit(struct blob_dir *d, const char *sha256_hex,
                              struct blob_committed *out, struct err *e);

/* End `d`: remove the tmp folder and whatever it still holds (never a
 * committed blob) and free `d`. NULL is a no-op. Cannot fail. */
void blob_dir_abort(struct blob_dir *d);

#endif /* STORAGE_BLOB_DIR_H */
