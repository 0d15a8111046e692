/* dcp.h -- PyTorch Distributed Checkpoint folders (docs/dcp.md): the
 * `.metadata` pickle of torch.distributed.checkpoint (FileSystemWriter,
 * PyTorch 2.5.1) turned into plain records.
 *
 * dcp_meta_parse() unpickles `.metadata` with the restricted unpickler in its
 * DCP mode (pkl_parse_dcp: the allow-list grows by exactly the DCP metadata
 * classes) and checks it: every tensor entry's chunks lie inside the tensor
 * and tile it exactly (no gap, no overlap: "invalid_offsets"); every chunk has
 * one storage record (MetadataIndex -> _StorageInfo) naming a plain file of
 * the folder ("invalid_index"); dtypes are torch dtypes ("invalid_dtype");
 * objects of the wrong class are "invalid_pickle". Nothing is read from the
 * .distcp files here: the loader behind ckpt_open() (dcp__ckpt_load in
 * ckpt_int.h) opens them, checks the byte ranges and reads each chunk's
 * torch.save archive when a tensor is read.
 *
 * Ownership: dcp_meta_parse() returns a new struct dcp_meta; free it with
 * dcp_meta_free(). Every record and string in it belongs to it.
 * Thread-safety: a parsed meta is read-only; parses share no state.
 */
#ifndef CORE_DCP_H
#define CORE_DCP_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/err.h"
#include "core/formats/ckpt.h"

#define DCP_METADATA_NAME ".metadata"

struct dcp_chunk {    /* one stored piece of a tensor (ChunkStorageMetadata + _StorageInfo) */
    size_t file;      /* index into dcp_meta files */
    uint64_t off;     /* first byte of its torch.save archive in that file */
    uint64_t len;     /* bytes of that archive */
    uint64_t n_elems; /* product of sizes */
    int64_t offsets[CKPT_MAX_RANK]; /* where it starts in the whole tensor, per dim */
    int64_t sizes[CKPT_MAX_RANK];   /* its extent per dim */
};

struct dcp_entry {    /* one key of state_dict_metadata, in pickle order */
    char *fqn;        /* owned: the flattened state-dict key ("model.layers.0.w") */
    int is_bytes;     /* 1: BytesStorageMetadata (a pickled object, not a tensor) */
    enum dtype dtype; /* tensors: TensorProperties.dtype */
    int ndim;         /* tensors: rank of size */
    int64_t size[CKPT_MAX_RANK];
    size_t first_chunk; /* tensors: its chunks are chunks[first_chunk .. + n_chunks) */
    size_t n_chunks;
    char *path0; /* owned: planner_data's first key of this entry's path when the
                    path has two keys or more ("model" for ("model", "w")), else NULL */
};

struct dcp_meta {
    struct dcp_entry *entries; /* owned */
    size_t n_entries;
    struct dcp_chunk *chunks; /* owned */
    size_t n_chunks;
    char **files; /* owned: distinct relative_path values, in order of first use */
    size_t n_files;
    int has_planner_data; /* planner_data was a dict of paths */
};

/* --- Parse and free -------------------------------------------------------- */

/* Parse the `.metadata` pickle in `buf` (`len` bytes) under `limits` (NULL:
 * defaults; strict applies to globals outside the DCP allow-list). Chunks in
 * all are bounded by max_tensors, files by max_shards ("limit_exceeded").
 * On success *out is a new meta. Failures: see the top of this file, and
 * pkl_parse_dcp()'s. */
enum err_code dcp_meta_parse(const unsigned char *buf, size_t len, const struct ckpt_limits *limits,
                             struct dcp_meta **out, struct err *e);

/* Free `m`. NULL is a no-op. Cannot fail. */
void dcp_meta_free(struct dcp_meta *m);

/* --- Folder content --------------------------------------------------------- */

/* The files that make up the DCP folder `path` (for a content identity, as
 * ckpt_id.h computes one for shard folders): ".metadata" and every file its
 * storage_data names, relative to `path`, sorted by name (strcmp). Reads and
 * checks `.metadata` only (dcp_meta_parse), never the .distcp files, so a
 * named file may still be missing. `limits` may be NULL. On success *out is
 * a new array of *n new strings; free with dcp_folder_files_free(). */
enum err_code dcp_folder_files(const char *path, const struct ckpt_limits *limits, char ***out,
                               size_t *n, struct err *e);

/* Free what dcp_folder_files() returned. NULL is a no-op. Cannot fail. */
void dcp_folder_files_free(char **files, size_t n);

#endif /* CORE_DCP_H */
