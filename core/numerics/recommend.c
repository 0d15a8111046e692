/* recommend.c -- see recommend.h. Formulas and quirks: docs/numerics.md, Recommendations;
 * the reference code is LLM_Pruning/lib/prune.py (ww_sparsity) and
 * Image_Classification/tempbalance_farms.py (get_layer_temps).
 */
#include "core/numerics/recommend.h"

#include <math.h>
#include <string.h>

void rec_blocks_fixed(size_t n, size_t k, int64_t *block)
{
    ERR_ASSERT(k >= 1);
    for (size_t i = 0; i < n; i++)
        block[i] = (int64_t)(i / k);
}

/* Mean alpha of every layer's block (np.mean: sum in layer order, / count).
 * O(n^2) in the worst case; n <= REC_MAX_LAYERS. */
static void rec_block_means(const double *alpha, const int64_t *block, size_t n, double *mean)
{
    for (size_t i = 0; i < n; i++) {
        double sum = 0.0;
        size_t count = 0, j;

        for (j = 0; j < i && block[j] != block[i]; j++)
            ;
        if (j < i) { /* block seen before: same mean */
            mean[i] = mean[j];
            continue;
        }
        for (j = i; j < n; j++) {
            if (block[j] == block[i]) {
                sum += alpha[j];
                count++;
            }
        }
        mean[i] = sum / (double)count;
    }
}

static enum err_code rec_check_alphas(const double *alpha, size_t n, struct err *e)
{
    if (n == 0)
        return err_set(e, ERR_INVAL, "no layers");
    if (n > REC_MAX_LAYERS)
        return err_set(e, ERR_INVAL, "%zu layers: at most %zu", n, REC_MAX_LAYERS);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(alpha[i]) || alpha[i] <= 0.0)
            return err_set(e, ERR_INVAL, "alpha of layer %zu is %g: not a positive number", i,
                           alpha[i]);
    return ERR_OK;
}

enum err_code rec_sparsity(const struct rec_layers *l, double target, double epsilon, double *ratio,
                           double *block_alpha, struct err *e)
{
    const double *alpha = l->alpha, *numel = l->numel;
    const int64_t *block = l->block;
    size_t n = l->n;
    double amin, amax, s1 = 1.0 - epsilon, s2 = 1.0 + epsilon, sum_n = 0.0, weighted = 0.0;
    double numerator, scale, limit = target == 0.7 ? REC_CLAMP_AT_07 : REC_CLAMP;
    enum err_code rc = rec_check_alphas(alpha, n, e);

    if (rc)
        return rc;
    if (!(target > 0.0 && target < 1.0))
        return err_set(e, ERR_INVAL, "target %g: not in (0, 1)", target);
    if (!(epsilon >= 0.0 && epsilon < 1.0))
        return err_set(e, ERR_INVAL, "epsilon %g: not in [0, 1)", epsilon);
    for (size_t i = 0; i < n; i++) {
        if (!(numel[i] > 0.0) || !isfinite(numel[i]))
            return err_set(e, ERR_INVAL, "numel of layer %zu is %g: not positive", i, numel[i]);
        sum_n += numel[i];
    }
    rec_block_means(alpha, block, n, ratio); /* ratio[] holds the block means for now */
    amin = amax = ratio[0];
    for (size_t i = 1; i < n; i++) {
        amin = ratio[i] < amin ? ratio[i] : amin;
        amax = ratio[i] > amax ? ratio[i] : amax;
    }
    if (!(amax > amin))
        return err_set(e, ERR_INVAL,
                       "every block has the same mean alpha (%.6g): the linear map divides by "
                       "zero (use smaller blocks or more layers)",
                       amin);
    for (size_t i = 0; i < n; i++) {
        if (block_alpha != NULL)
            block_alpha[i] = ratio[i];
        ratio[i] = (ratio[i] - amin) / (amax - amin) * (s2 - s1) + s1;
        weighted += numel[i] * ratio[i];
    }
    /* torch: int64 sum * Python float -> float32 (default dtype). */
    numerator = (double)((float)sum_n * (float)target);
    scale = numerator / weighted;
    for (size_t i = 0; i < n; i++) {
        ratio[i] *= scale;
        if (ratio[i] > 1.0)
            ratio[i] = limit;
    }
    return ERR_OK;
}

/* --- Learning rates ------------------------------------------------------------ */

static const char *const rec_map_names[] = {"linear", "sqrt", "log2", "step"};

const char *rec_lr_map_name(enum rec_lr_map m)
{
    return (unsigned)m < sizeof(rec_map_names) / sizeof(rec_map_names[0]) ? rec_map_names[m] : "?";
}

int rec_lr_map_from_name(const char *s)
{
    for (size_t i = 0; s != NULL && i < sizeof(rec_map_names) / sizeof(rec_map_names[0]); i++)
        if (strcmp(s, rec_map_names[i]) == 0)
            return (int)i;
    return -1;
}

size_t rec_lr_select(const int64_t *num_eigs, size_t n, int remove_first, int remove_last, int *use)
{
    size_t first = 0, last = n, k = 0;

    if (remove_first && first < last)
        first++;
    if (remove_last && first < last)
        last--;
    for (size_t i = 0; i < n; i++) {
        use[i] = i >= first && i < last && num_eigs[i] >= REC_MIN_EIGS;
        k += (size_t)use[i];
    }
    return k;
}

/* np.interp(x, [x0, x1], [y0, y1]) with x0 <= x1 (NumPy's arr_interp). */
static double rec_interp(double x, double x0, double x1, double y0, double y1)
{
    double slope, y;

    if (x < x0)
        return y0;
    if (x >= x1) /* beyond, or the last point (also when x0 == x1) */
        return y1;
    if (x == x0)
        return y0;
    slope = (y1 - y0) / (x1 - x0);
    y = slope * (x - x0) + y0;
    if (isnan(y)) {
        y = slope * (x - x1) + y1;
        if (isnan(y) && y0 == y1)
            y = y0;
    }
    return y;
}

/* Rank of layer i among the alphas: the position in a stable ascending
 * sort (np.argsort on a few layers: insertion sort, stable). */
static size_t rec_rank(const double *alpha, size_t n, size_t i)
{
    size_t k = 0;

    for (size_t j = 0; j < n; j++)
        /* cppcheck-suppress arrayIndexThenCheck ; j < i is a tie-break, not a bound */
        k += alpha[j] < alpha[i] || (alpha[j] == alpha[i] && j < i);
    return k;
}

enum err_code rec_learning_rates(const double *alpha, size_t n, const struct rec_lr_opts *o,
                                 double *lr, struct err *e)
{
    enum rec_lr_map m = o->map;
    double base_lr = o->base_lr, min_ratio = o->min_ratio, max_ratio = o->max_ratio;
    double lo = min_ratio * base_lr, hi = max_ratio * base_lr, amin, amax, sum = 0.0;
    enum err_code rc = rec_check_alphas(alpha, n, e);

    if (rc)
        return rc;
    if (!(base_lr > 0.0) || !isfinite(base_lr))
        return err_set(e, ERR_INVAL, "base_lr %g: not a positive number", base_lr);
    if (!isfinite(min_ratio) || !isfinite(max_ratio) || !(min_ratio <= max_ratio))
        return err_set(e, ERR_INVAL, "min_ratio %g > max_ratio %g", min_ratio, max_ratio);
    amin = amax = alpha[0];
    for (size_t i = 1; i < n; i++) {
        amin = alpha[i] < amin ? alpha[i] : amin;
        amax = alpha[i] > amax ? alpha[i] : amax;
    }
    switch (m) {
    case REC_LR_LINEAR:
        for (size_t i = 0; i < n; i++)
            lr[i] = rec_interp(alpha[i], amin, amax, lo, hi);
        return ERR_OK;
    case REC_LR_SQRT:
    case REC_LR_LOG2:
        for (size_t i = 0; i < n; i++) {
            lr[i] = m == REC_LR_SQRT ? sqrt(alpha[i]) : log2(alpha[i]);
            sum += lr[i];
        }
        if (!(sum != 0.0) || !isfinite(sum))
            return err_set(e, ERR_INVAL, "the sum of %s(alpha) is %g: no rates", rec_lr_map_name(m),
                           sum);
        for (size_t i = 0; i < n; i++)
            lr[i] = lr[i] / sum * (double)n * base_lr;
        return ERR_OK;
    case REC_LR_STEP:
        for (size_t i = 0; i < n; i++)
            lr[i] = lo + (hi - lo) * (double)rec_rank(alpha, n, i) / (double)n;
        return ERR_OK;
    }
    return err_set(e, ERR_INVAL, "unknown learning-rate map %d", (int)m);
}
