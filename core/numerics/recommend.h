/* recommend.h -- from per-layer alphas to decisions (docs/numerics.md, Recommendations):
 * AlphaPruning per-layer sparsity ratios and TempBalance per-layer
 * learning rates, computed exactly as the authors' code does, quirks
 * included (the float32 numerator of the sparsity rescale, the 0.998 /
 * 0.99999 clamp without renormalisation, NumPy interp's right end when all
 * alphas are equal, tb_step's top rate below lr_max_ratio).
 *
 * Pure functions on caller arrays: nothing is allocated, nothing kept.
 * Inputs the reference would turn into NaN or infinities (all block alphas
 * equal in the sparsity map, a zero sum of log2 alphas) are refused with
 * ERR_INVAL and a message instead.
 * Thread-safety: no state: thread-safe.
 */
#ifndef CORE_RECOMMEND_H
#define CORE_RECOMMEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Ratios above 1 after the rescale are clamped to this, or to
 * REC_CLAMP_AT_07 when the target is exactly 0.7 (LLM_Pruning/lib/prune.py). */
#define REC_CLAMP       0.998
#define REC_CLAMP_AT_07 0.99999
#define REC_MIN_EIGS    5                 /* TempBalance drops layers with fewer eigenvalues */
#define REC_MAX_LAYERS  ((size_t)1 << 16) /* more layers: ERR_INVAL */

/* --- Sparsity ---------------------------------------------------------------- */

/* Blocks of `k` (>= 1) consecutive layers: block[i] = i / k for i < n.
 * (The reference's `layer_num_in_block`; a last partial block averages the
 * layers it has.) Cannot fail. */
void rec_blocks_fixed(size_t n, size_t k, int64_t *block);

/* The layers a sparsity map is computed for: columns of n entries, borrowed. */
struct rec_layers {
    const double *alpha;  /* alpha[0..n) */
    const double *numel;  /* parameter counts numel[0..n), > 0 */
    const int64_t *block; /* block ids block[0..n): layers with the same id form one
                             block; ids need not be consecutive numbers */
    size_t n;
};

/* Per-layer sparsity ratios of the layers `l`:
 *   1. each alpha is replaced by the mean alpha of its block;
 *   2. r = (a - min a) / (max a - min a) * 2 eps + (1 - eps);
 *   3. r *= float32(target * sum numel) / sum(numel * r);
 *   4. r > 1 becomes REC_CLAMP (REC_CLAMP_AT_07 when target == 0.7).
 * target in (0, 1), epsilon in [0, 1). Writes ratio[0..n) and, when
 * block_alpha is non-NULL, the block means. ERR_INVAL naming the argument
 * for bad input (n == 0, non-finite alpha, numel <= 0, out-of-range
 * target/epsilon) and when every block mean is equal (the map divides by
 * zero in the reference). */
enum err_code rec_sparsity(const struct rec_layers *l, double target, double epsilon, double *ratio,
                           double *block_alpha, struct err *e);

/* --- Learning rates ---------------------------------------------------------- */

enum rec_lr_map {
    REC_LR_LINEAR, /* tb_linear_map: interp(alpha; [min, max] -> [min_ratio, max_ratio] * lr) */
    REC_LR_SQRT,   /* tb_sqrt: n lr sqrt(alpha) / sum sqrt(alpha) */
    REC_LR_LOG2,   /* tb_log2: n lr log2(alpha) / sum log2(alpha) */
    REC_LR_STEP    /* tb_step: k-th smallest alpha -> lr (min + (max - min) k / n) */
};

/* "linear", "sqrt", "log2", "step"; "?" out of range. Never NULL. */
const char *rec_lr_map_name(enum rec_lr_map m);
/* The map named exactly `s`, or -1. */
int rec_lr_map_from_name(const char *s);

/* Which of n analysed layers (in order) TempBalance tunes: use[i] = 1 or 0,
 * dropping the first layer if remove_first, then the last if remove_last
 * (of those left), then layers with num_eigs[i] < REC_MIN_EIGS. Returns the
 * number tuned. Cannot fail. */
size_t rec_lr_select(const int64_t *num_eigs, size_t n, int remove_first, int remove_last,
                     int *use);

/* How learning rates are assigned. */
struct rec_lr_opts {
    enum rec_lr_map map;
    double base_lr;   /* the scheduled rate, > 0 */
    double min_ratio; /* rates range over [min_ratio, max_ratio] * base_lr */
    double max_ratio; /* (min_ratio <= max_ratio; used by linear and step) */
};

/* Learning rates lr[0..n) of the n tuned layers with alphas alpha[0..n)
 * under `o`. ERR_INVAL for n == 0, non-finite or non-positive alphas, a bad
 * base_lr, bad ratios, or a zero sum of log2. */
enum err_code rec_learning_rates(const double *alpha, size_t n, const struct rec_lr_opts *o,
                                 double *lr, struct err *e);

#endif /* CORE_RECOMMEND_H */
