/* analysis.h -- the analysis rules: which checkpoint tensors are analysed,
 * how a tensor's bytes become what FARMS takes, and what identifies a result
 * (docs/checkpoint-formats.md, Which tensors are analysed; docs/numerics.md).
 *
 *   analysis_select():     classify a tensor (core/formats/layers) and decide
 *                          whether it is analysed under the parameters, or
 *                          why it is skipped;
 *   analysis_layout_of():  the FARMS kind and shape of an analysed tensor:
 *                          the GPT-2 Conv1D weight and Keras (in, out)
 *                          kernels transposed to (out, in), conv kernels as
 *                          (out, in, kh, kw) (Keras HWIO permuted to it),
 *                          conv1d with kw 1;
 *   analysis_matrix_new(): the tensor's stored bytes as float64 in that layout;
 *   analysis_key():        "linear F32 512x64", the part of the result cache
 *                          key that says how the bytes were analysed;
 *   analysis_estimate():   what analysing a tensor costs (relative work and
 *                          peak memory), for the service's task queue;
 *   ANALYSIS_ENGINE_VERSION: the other part, bumped with the analysis.
 * The one core module that sees both rooms (core/formats and core/numerics).
 * It reads no files and runs no threads: the caller reads the bytes and runs
 * FARMS (server/engine.c fans the units out over its pool).
 *
 * Ownership: arguments are borrowed; analysis_matrix_new's matrix is the
 * caller's (free()). Thread-safety: no state, const tables only: thread-safe.
 */
#ifndef CORE_ANALYSIS_H
#define CORE_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/err.h"
#include "core/formats/layers.h"
#include "core/formats/peft.h"
#include "core/numerics/farms.h"

/* Bumped whenever a change to the analysis could change a result: part of
 * the service's cache key, so stale results are never served. */
#define ANALYSIS_ENGINE_VERSION "farmsd-engine-3" /* 3: WeightWatcher columns */

/* Room for analysis_key()'s text including the NUL (the store's limit). */
#define ANALYSIS_KEY_MAX 128

struct analysis_tensor {  /* what the rules look at; everything borrowed */
    const char *name;     /* display name (layer_strip_prefixes) */
    enum dtype dtype;     /* stored dtype */
    int ndim;             /* 0..CKPT_MAX_RANK */
    const int64_t *shape; /* shape[0..ndim) */
    uint64_t n_elems;     /* product of the shape */
    const char *alias_of; /* display name of the tensor whose storage this one
                             shares (analysed there), NULL if none */
    int forced;           /* 1: the name matched the weights= setting (the caller
                             matches p->weights, a POSIX ERE, against `name`) */
};

struct analysis_layout {  /* how an analysed tensor is handed to FARMS */
    enum farms_kind kind; /* FARMS_KIND_DENSE or FARMS_KIND_CONV2D */
    int n_dims;           /* 2 (dense) or 4 (conv) */
    int64_t shape[4];     /* the shape FARMS gets: (rows, cols) or (out, in, kh, kw) */
    int transpose;        /* 1: the values are permuted (stored (in, out) or HWIO) */
    int src[4];           /* FARMS dimension d is stored dimension src[d]; -1: an
                             added extent 1 (conv1d's kw). Identity unless transpose */
};

/* --- Selection ----------------------------------------------------------- */

/* Classify `t` into *info (layer_classify_as under p->tensor_layout and
 * t->forced, fully overwritten) and decide whether it is analysed under
 * `p`. Returns 1 if it is, else 0 with the reason in why[0..why_len)
 * (truncated to fit): shared storage ("same tensor as 'x' (shared storage),
 * analysed once"), the structural reason of layer_classify ("1-D tensor
 * (bias)"), a kind that is not a weight matrix (layer_kind_is_weight), or an
 * embedding table under a preset without include_embeddings (unless forced).
 * Cannot fail. */
int analysis_select(const struct analysis_tensor *t, const struct farms_params *p,
                    struct layer_info *info, char *why, size_t why_len);

/* The reason an adapted module of a LoRA adapter read alone (peft_module_at)
 * is not fitted, with its rank and ||s*B*A||_2 from the factors `a`
 * (rank x cols) and `b` (rows x rank) (peft_factors_read; lowrank_norm2):
 * "LoRA adapter, rank 8, ||s*B*A||_2 = 0.0123: not fitted without a base
 * checkpoint (--base)"; DoRA adapters say that they are not merged. Written
 * to why[0..why_len), truncated to fit. Fails like lowrank_norm2. */
enum err_code analysis_lora_reason(const struct peft_module_info *m, const double *a,
                                   const double *b, char *why, size_t why_len, struct err *e);

/* --- Layout -------------------------------------------------------------- */

/* The layout of tensor `t` of kind `kind` (an analysed kind): 2-D kinds are
 * dense (rows, cols), GPT-2 Conv1D and linear_io transposed from (in, out)
 * to (out, in); conv2d is (out, in, kh, kw), conv2d_hwio (kh, kw, in, out)
 * permuted to it, conv1d (out, in, k) is (out, in, k, 1) and conv1d_wio
 * (k, in, out) permuted to it. A Keras-layout tensor thus reaches FARMS
 * exactly as the same weights stored the PyTorch way. Cannot fail. */
void analysis_layout_of(enum layer_kind kind, const struct analysis_tensor *t,
                        struct analysis_layout *out);

/* The t->n_elems stored values at `data` (dtype t->dtype, row-major as
 * stored) as a new float64 array in layout `l` (row-major; values moved, not
 * computed, so bitwise those of the PyTorch-layout tensor), in *out (free()
 * it). ERR_NOMEM, naming the tensor, is the only failure; *out is then NULL. */
enum err_code analysis_matrix_new(const struct analysis_tensor *t, const struct analysis_layout *l,
                                  const void *data, double **out, struct err *e);

/* --- Identity ------------------------------------------------------------ */

/* "linear F32 512x64": kind, stored dtype and stored shape of `t` (kind
 * `kind`), how its bytes are analysed (the kind names the layout:
 * "linear_io F32 64x512" for a Keras kernel, never a PyTorch key); with the tensor's SHA-256, the
 * settings hash and ANALYSIS_ENGINE_VERSION it keys a cached result. Written
 * to buf[0..len), truncated to fit (ANALYSIS_KEY_MAX is enough for rank 4).
 * Cannot fail. */
void analysis_key(enum layer_kind kind, const struct analysis_tensor *t, char *buf, size_t len);

/* --- Cost ----------------------------------------------------------------- */

struct analysis_estimate {
    double cost;        /* relative work: rows * cols * min(rows, cols) of the FARMS
                           matrix (conv: rows = out, cols = in * kh * kw), the order of
                           its eigensolves' flops */
    uint64_t mem_bytes; /* peak memory of its analysis: the stored bytes read, the
                           float64 matrix (and its transposed copy), and one ESD
                           workspace per pool worker at the plan's largest window */
};

/* The estimate for analysing tensor `t` (kind `kind`, an analysed kind;
 * `nbytes` stored bytes) under `p` on `n_workers` pool workers. A shape
 * FARMS rejects (the run skips the row) costs its bytes only. Cannot fail
 * (a plan that cannot be built is estimated without workspaces). */
void analysis_estimate(enum layer_kind kind, const struct analysis_tensor *t, uint64_t nbytes,
                       const struct farms_params *p, unsigned n_workers,
                       struct analysis_estimate *out);

#endif /* CORE_ANALYSIS_H */
