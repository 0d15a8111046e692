/* layers.h -- which checkpoint tensors the analysis takes, their display
 * names, block/role grouping and canonical order (docs/checkpoint-formats.md, Which tensors are
 * analysed).
 *
 * The readers deliver every tensor as stored; this module is the separate,
 * testable selection step:
 *   layer_strip_prefixes()  the display name: container prefix (Training checkpoints) and
 *                           `module.` / `_orig_mod.` wrappers removed;
 *   layer_classify()        kind, "structurally a candidate" flag, block
 *                           index, expert index, module, role
 *                           and, when not a candidate, the reason;
 *   layer_order()           canonical order as a permutation;
 *   layer_natural_cmp()     natural-sort comparison of names.
 * `analyze` is structural only: eigenvalue-count thresholds, the embedding
 * setting and LoRA handling are the caller's business.
 *
 * Ownership: nothing is allocated except layer_order()'s scratch, which is
 * freed before it returns; returned names point into the caller's strings.
 * Thread-safety: no state, const tables only: thread-safe.
 */
#ifndef CORE_LAYERS_H
#define CORE_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/err.h"

/* kind: what the tensor is (the manifest's `suggested.kind` names). */
#define LAYER_KIND_MAP(X)                                                                       \
    X(OTHER, "other")                         /* none of the below */                           \
    X(LINEAR, "linear")                       /* 2-D (out, in) weight */                        \
    X(EMBEDDING, "embedding")                 /* 2-D (vocab, d) embedding table */              \
    X(CONV1D_TRANSPOSED, "conv1d_transposed") /* GPT-2 Conv1D weight, stored (in, out) */       \
    X(CONV2D, "conv2d")                       /* 4-D (out, in, kh, kw) */                       \
    X(CONV1D, "conv1d")                       /* 3-D (out, in, k) */                            \
    X(LINEAR_IO, "linear_io")                 /* 2-D Keras/TF/Flax kernel, stored (in, out) */  \
    X(CONV2D_HWIO, "conv2d_hwio")             /* 4-D Keras/TF kernel (kh, kw, in, out) */       \
    X(CONV1D_WIO, "conv1d_wio")               /* 3-D Keras/TF kernel (k, in, out) */            \
    X(BIAS, "bias")                           /* 1-D bias / beta */                             \
    X(NORM, "norm")                           /* 1-D norm scale (weight / gamma) */             \
    X(NORM_STAT, "norm_stat")                 /* running_mean/var, num_batches_tracked */       \
    X(MASK, "mask")                           /* mask buffers (GPT-2 attn.bias, masked_bias) */ \
    X(VECTOR, "vector")                       /* any other 1-D tensor */                        \
    X(SCALAR, "scalar")                       /* any other 0-dim tensor */

enum layer_kind {
#define X(name, str) LAYER_KIND_##name,
    LAYER_KIND_MAP(X)
#undef X
        LAYER_KIND_COUNT
};

/* role within a block, in canonical order; HEAD is outside blocks
 * and sorts last; NONE is "no role" (the manifest omits `role`). ROUTER is
 * an MoE router (`block_sparse_moe.gate`, `mlp.gate`), not in the manifest. */
#define LAYER_ROLE_MAP(X)   \
    X(ATTN_Q, "attn_q")     \
    X(ATTN_K, "attn_k")     \
    X(ATTN_V, "attn_v")     \
    X(ATTN_QKV, "attn_qkv") \
    X(ATTN_O, "attn_o")     \
    X(MLP_GATE, "mlp_gate") \
    X(MLP_UP, "mlp_up")     \
    X(MLP_DOWN, "mlp_down") \
    X(ROUTER, "router")     \
    X(HEAD, "head")         \
    X(NONE, "none")

enum layer_role {
#define X(name, str) LAYER_ROLE_##name,
    LAYER_ROLE_MAP(X)
#undef X
        LAYER_ROLE_COUNT
};

/* How tensor layouts are read (docs/checkpoint-formats.md, Framework layouts):
 * AUTO by the name (a `kernel` / `filters` leaf, or a `weights` leaf in a
 * `/`-separated name, is Keras/TF/Flax (in, out) / HWIO; everything else is
 * PyTorch); TORCH reads every tensor the PyTorch way, KERAS every weight
 * matrix the Keras way (GPT-2 Conv1D and embeddings keep their layout). */
enum layer_layout { LAYER_LAYOUT_AUTO, LAYER_LAYOUT_TORCH, LAYER_LAYOUT_KERAS };

#define LAYER_REASON_LEN 96

struct layer_info {                /* plain data, caller-owned */
    enum layer_kind kind;          /* what the tensor is */
    enum layer_role role;          /* LAYER_ROLE_NONE if none */
    int analyze;                   /* 1: structurally a candidate for the analysis */
    int64_t block;                 /* block index, -1 outside blocks */
    int64_t expert;                /* MoE expert index inside the block, -1 if none */
    size_t module_len;             /* the module is the first module_len bytes of the
                                      stripped name (the name without its leaf) */
    char reason[LAYER_REASON_LEN]; /* why not analysed ("1-D tensor (bias)"); "" if analyze */
};

/* How layer_order() ordered the records. */
enum layer_ordering {
    LAYER_ORDERING_CANONICAL, /* blocks present: block, expert, role, then the rest */
    LAYER_ORDERING_FILE,      /* no blocks, caller's (pickle) order kept */
    LAYER_ORDERING_NATURAL    /* no blocks, natural sort (embeddings first, head last) */
};

/* --- Names ------------------------------------------------------------------ */

/* The display name of a stored tensor name: `model_prefix` (the container
 * prefix from ckpt_model_prefix(), e.g. "state_dict."; NULL or "" for none)
 * removed if `name` starts with it, then any run of `module.` (DDP) and
 * `_orig_mod.` (torch.compile) wrapper prefixes, in any nesting. A bare
 * `model.` that is part of the real name is kept (`model.layers.0...`; a
 * Lightning `state_dict.model.model.layers.0...` becomes
 * `model.model.layers.0...`). A wrapper is not stripped if nothing would be
 * left after it. Returns a pointer into `name` (borrowed). Cannot fail. */
const char *layer_strip_prefixes(const char *name, const char *model_prefix);

/* Natural-sort comparison: runs of decimal digits compare as numbers (any
 * length, leading zeros ignored), everything else bytewise; names equal in
 * that sense are ordered by strcmp(), so it is a total order. Returns <0, 0,
 * >0 like strcmp(). Cannot fail. */
int layer_natural_cmp(const char *a, const char *b);

/* --- Classification ----------------------------------------------------------- */

/* Classify the tensor with display name `name` (already stripped), stored
 * dtype `dtype` and shape `shape[0..ndim)` (0 <= ndim <= 16, dims >= 0)
 * into *out (fully overwritten). Rules: docs/checkpoint-formats.md, Which tensors are analysed
 * (kind, analyze, block, role; block roles only inside blocks, `head` only
 * outside). A candidate kind with a dtype the analysis does not take
 * (dtype_is_analysable()) is reported with analyze = 0 and a dtype reason.
 * Cannot fail. */
void layer_classify(const char *name, enum dtype dtype, int ndim, const int64_t *shape,
                    struct layer_info *out);

/* layer_classify under layout rule `layout` (layer_classify is
 * LAYER_LAYOUT_AUTO, not forced). With `forced` (the name matched the user's
 * weights= selection), a 2-D..4-D tensor no rule takes as a weight matrix is
 * taken with its kind from its shape (2-D linear, 3-D conv1d, 4-D conv2d, in
 * the layout's reading); the dtype, zero-size and dimension checks still
 * apply. Cannot fail. */
void layer_classify_as(const char *name, enum dtype dtype, int ndim, const int64_t *shape,
                       enum layer_layout layout, int forced, struct layer_info *out);

/* 1 if `k` is a weight matrix (linear, embedding, GPT-2 Conv1D, conv1d,
 * conv2d and their Keras-layout kinds): the kinds the analysis takes and the recommendations list;
 * 0 for biases, norms, buffers and other tensors. The one statement of that rule. Cannot fail. */
int layer_kind_is_weight(enum layer_kind k);

/* "keras" for the kinds stored the Keras/TF/Flax way (linear_io,
 * conv2d_hwio, conv1d_wio), "torch" for the other weight kinds, "-" for
 * kinds that are not weights. Never NULL for a valid value. */
const char *layer_kind_layout(enum layer_kind k);

/* "linear", ... / "attn_q", ..., "none". Never NULL for a valid value. */
const char *layer_kind_name(enum layer_kind k);
const char *layer_role_name(enum layer_role r);

/* The kind / role whose name is exactly `s`, or -1 if none. */
int layer_kind_from_name(const char *s);
int layer_role_from_name(const char *s);

/* --- Order ---------------------------------------------------------------------- */

/* The records layer_order() orders: n parallel entries. Borrowed. */
struct layer_records {
    const struct layer_info *infos; /* infos[i]: layer_classify() of names[i] */
    const char *const *names;       /* display names */
    size_t n;
};

/* Canonical order of the caller's records `r`. Writes a permutation of
 * 0..n-1 to order_out[0..n) (order_out[k] = index of the k-th record).
 *
 * If any record has a block: embeddings outside blocks first (natural order
 * of names), then block records by block index, expert index (-1 first),
 * role (attn_q, attn_k, attn_v, attn_qkv, attn_o, mlp_gate, mlp_up,
 * mlp_down, router, none), then the other records outside blocks, and
 * `head` records last; ties by natural order of names, then by index.
 * If no record has a block: the given order when `keep_file_order` is
 * non-zero (torch pickle order), else the same grouping (embeddings first,
 * head last) in natural order of names.
 * `how` (may be NULL) gets the ordering used. Deterministic and stable.
 * Fails only with ERR_NOMEM (scratch of n indices). */
enum err_code layer_order(const struct layer_records *r, int keep_file_order, size_t *order_out,
                          enum layer_ordering *how, struct err *e);

/* "canonical", "file", "natural". Never NULL for a valid value. */
const char *layer_ordering_name(enum layer_ordering o);

#endif /* CORE_LAYERS_H */
