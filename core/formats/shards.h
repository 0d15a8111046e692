/* shards.h -- sharded safetensors checkpoints (docs/checkpoint-formats.md, Sharded safetensors).
 *
 * A sharded checkpoint is either an index file
 *
 *   {"metadata": {"total_size": 303360},               (optional, opaque object)
 *    "weight_map": {"<tensor name>": "<shard file name>", ...}}
 *
 * (model.safetensors.index.json) whose shards sit in the index's own folder,
 * or a folder: its model.safetensors.index.json if it has one, else every
 * *.safetensors file in it, in name order. The index must be a JSON object
 * with an object weight_map of strings; shard names must be plain file names
 * ending in .safetensors (no '/', '\', NUL, not "." or ".."; path traversal
 * fails with ERR_INVAL); every shard must exist and hold every tensor the
 * index assigns to it; a tensor name may not appear twice. All of these fail
 * with category invalid_index. Each shard is validated as a safetensors file
 * (safetensors.h); its errors keep their category and are prefixed with the
 * shard's name. Tensors a shard holds but weight_map does not list are not
 * listed.
 *
 * The ckpt loader (shards__ckpt_load, see ckpt_int.h) lists tensors shard by
 * shard (shards in name order), each shard's in data-offset order.
 * Stateless: thread-safe.
 */
#ifndef CORE_SHARDS_H
#define CORE_SHARDS_H

#include <stddef.h>

#include "core/formats/ckpt.h"
#include "core/err.h"

struct shards_paths {
    size_t n;     /* number of shards */
    char **paths; /* owned: each shard's realpath (symlinks resolved), in name order */
};

/* Validate the index or folder at `path` (structure and shard names, as the
 * loader does, without parsing the shards) and resolve every shard to its
 * symlink-free absolute path, so that a caller can apply its allowed-root
 * check before ckpt_open(). `l` may be NULL (defaults). On success *out owns
 * the paths; release them with shards_paths_free(). */
enum err_code shards_list(const char *path, const struct ckpt_limits *l, struct shards_paths *out,
                          struct err *e);

/* Free the paths of `p` and zero it. Safe on a zeroed struct. Cannot fail. */
void shards_paths_free(struct shards_paths *p);

#endif /* CORE_SHARDS_H */
