/* ckpt_id.h -- the content identity of a checkpoint on disk: what a path
 * ingestion records at submission and what a job checks again before it
 * analyses the path, so that results always belong to the submitted bytes.
 *
 * Identity rule (the run+step+content rule of path ingestion):
 *   - a single file: the SHA-256 of its bytes;
 *   - a shard index (model.safetensors.index.json, or any file declared
 *     CKPT_FORMAT_SAFETENSORS_INDEX) or a folder of shards (shards.h): the
 *     SHA-256 of "<shard name>\0<shard sha256 hex>\n" over the shards in
 *     name order. The index file itself is not part of it.
 *   - any other folder (DCP, PEFT adapter, DeepSpeed: ckpt_sniff_dir, or
 *     declared so): the SHA-256 of "<relative name>\0<file sha256 hex>\n"
 *     over every regular file under it (symbolic links followed, at most
 *     100000 files, 32 folders deep), names in byte order ("a/b" relative
 *     to the folder, '/' between components). A tar upload of a folder has
 *     the identity of the extracted folder, by these same rules.
 * Only regular files are read: every file is opened with O_NONBLOCK and
 * fstat'd, and anything else (FIFO, socket, device) is refused before a
 * byte is read, with ERR_FORMAT and category "not_regular_file", so a FIFO
 * never blocks the caller. One sequential read of every byte (1 MiB
 * chunks, no mapping: a file that shrinks meanwhile is a short read, not a
 * signal).
 *
 * Stateless: thread-safe. Results are plain data owned by the caller.
 */
#ifndef CORE_CKPT_ID_H
#define CORE_CKPT_ID_H

#include <stdint.h>

#include "core/formats/ckpt.h"
#include "core/err.h"
#include "core/formats/thash.h"

/* Called with each shard's realpath before it is opened (e.g. an allowed
 * root check). Non-zero (with `e` filled) stops ckpt_identity, which then
 * returns that code and `e` unchanged. */
typedef enum err_code ckpt_shard_check_fn(const void *arg, const char *shard, struct err *e);

struct ckpt_id {                /* plain data, caller-owned */
    char sha256[THASH_HEX_LEN]; /* lower-case hex identity (rule above) */
    uint64_t size;              /* bytes hashed: the file, or all shards */
    int sharded;                /* 1: an index or a folder of shards (0: a file, or a folder
                                   of another format) */
};

/* How ckpt_identity reads a path; zero-initialised (or a NULL pointer) is
 * the default: format unknown, default limits, no shard check. */
struct ckpt_id_opts {
    enum ckpt_format declared;        /* the caller's format, CKPT_FORMAT_UNKNOWN: by name */
    const struct ckpt_limits *limits; /* bounds the index; NULL: defaults */
    ckpt_shard_check_fn *check;       /* vets every shard first; NULL: none */
    const void *check_arg;            /* passed to check */
};

/* The identity of the checkpoint at `path` (see above) into *out, read as
 * `o` says (NULL: the defaults); o->check vets every file of a folder of
 * another format too. It is sharded when `path` is a folder of shards, when
 * o->declared is CKPT_FORMAT_SAFETENSORS_INDEX, or when its name ends in
 * ".index.json". Fails with ERR_FORMAT/"not_regular_file" for a
 * non-regular file or shard (or a non-regular index in a folder),
 * shards_list()'s errors (category invalid_index), ERR_NOTFOUND for a
 * missing file, ERR_IO for other open or read failures. */
enum err_code ckpt_identity(const char *path, const struct ckpt_id_opts *o, struct ckpt_id *out,
                            struct err *e);

#endif /* CORE_CKPT_ID_H */
