/* dcp_int.h -- what dcp_meta.c (the `.metadata` pickle walk: entries,
 * storage_data, planner_data) shares with dcp_chunks.c (a tensor entry's
 * chunks and the check that they tile it): the class-name prefixes, the parse
 * state and the helpers each calls in the other. Internal to
 * core/formats/dcp_meta.c and dcp_chunks.c. Same ownership and thread-safety
 * as dcp.h.
 */
#ifndef CORE_DCP_INT_H
#define CORE_DCP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/err.h"
#include "core/formats/dcp.h"
#include "core/formats/pickle.h"

#define DCP_MOD  "torch.distributed.checkpoint.metadata."
#define DCP_OLD  "torch.distributed._shard.sharded_tensor.metadata."
#define DCP_FS   "torch.distributed.checkpoint.filesystem."
#define DCP_WORK ((uint64_t)1 << 28) /* chunk comparisons one parse may make */

struct dcp_name {
    const char *fqn; /* borrowed from the entry */
    size_t i;        /* entry index */
};

struct dcp_parse {
    struct dcp_meta *m;
    const struct ckpt_limits *lim;
    size_t cap_entries, cap_chunks, cap_files;
    struct dcp_name *by_name; /* entries sorted by fqn */
    uint64_t work;            /* chunk comparisons made, against DCP_WORK */
    struct err *e;
};

/* --- dcp_meta.c: the pickled dataclasses ------------------------------------- */

/* 1 if `v` is an instance of DCP class `name` (built by pkl_parse_dcp as an
 * opaque value "<module>.<name>()"). */
int dcp__is(const struct pkl_value *v, const char *module, const char *name);

/* Field `name` of a dataclass instance whose state is its __dict__. */
const struct pkl_value *dcp__field(const struct pkl_value *v, const char *name);

/* A tuple of ints (torch.Size) into out[]; -1 rank when it is not one. */
int dcp__ints(const struct pkl_value *v, int64_t *out);

/* Grow array *a of *cap elements of `size` bytes to hold n + 1; new room is zeroed. */
enum err_code dcp__grow(void **a, size_t *cap, size_t n, size_t size, struct err *e);

/* TensorProperties.dtype: the first item of its __getstate__ tuple (torch >= 2.0),
 * or the "dtype" key of a __dict__ state. */
enum err_code dcp__dtype(struct dcp_parse *p, const char *fqn, const struct pkl_value *props,
                         enum dtype *out);

/* --- dcp_chunks.c: a tensor entry's chunks ----------------------------------- */

/* A TensorStorageMetadata: dtype, size, chunks (checked to tile it). */
enum err_code dcp__tensor_entry(struct dcp_parse *p, struct dcp_entry *en,
                                const struct pkl_value *v);

/* The chunk of `en` starting at `off` (rank en->ndim): the index hint first. */
struct dcp_chunk *dcp__chunk_at(struct dcp_parse *p, const struct dcp_entry *en, const int64_t *off,
                                const struct pkl_value *hint);

#endif /* CORE_DCP_INT_H */
