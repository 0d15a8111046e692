/* farms_ww.h -- WeightWatcher's Marchenko-Pastur fit, the Jensen-Shannon
 * distance of two ESDs and the seeded element permutation of the randomized copy
 * (docs/numerics.md, WeightWatcher columns). Each follows the
 * WeightWatcher 0.7.5.5 function named at its declaration.
 *
 * Pure functions on caller memory, no state (the generator's state is the
 * caller's): thread-safe.
 */
#ifndef CORE_NUMERICS_FARMS_WW_H
#define CORE_NUMERICS_FARMS_WW_H

#include <stdint.h>

#include "core/err.h"

/* The columns of one Marchenko-Pastur fit. A fit that cannot be made (no
 * positive eigenvalue, an empty KDE support) has NaN values and
 * num_spikes -1, as WeightWatcher's apply_mp_fit reports -1. */
struct farms_mp {
    int64_t num_spikes; /* rescaled eigenvalues above bulk_max + sqrt(TW) */
    double sigma_mp;    /* fitted sigma of the bulk (rescaled ESD) */
    double mp_softrank; /* bulk_max / lambda_max, both rescaled */
    double bulk_min;    /* bulk's lower edge, un-rescaled */
    double bulk_max;    /* bulk's upper edge, un-rescaled */
    double w_scale;     /* sqrt(n / sum lambda) */
};

/* WeightWatcher mp_fit (weightwatcher.py) with fit_density_with_range and
 * resid_mp (RMT_Util.py): the n ascending eigenvalues x of matrices N x M
 * (N >= M >= 1) rescaled to mean 1, sigma from a brute-force grid over
 * [0.05, 2.0) * s0 in steps of 0.01 * s0 (s0 = calc_sigma) polished by
 * Nelder-Mead (SciPy brute + fmin), against a linear-kernel KDE of
 * bandwidth 0.1 (quarter-circle law on sqrt(lambda) when N == M).
 * ERR_NOMEM; a degenerate ESD is a result (see struct farms_mp). */
enum err_code farms_mp_fit(const double *x, int64_t n, int64_t N, int64_t M, struct farms_mp *out,
                           struct err *e);

/* WeightWatcher jensen_shannon_distance (RMT_Util.py) of p[0..n) and
 * q[0..n), both non-negative: each normalised to sum 1, m = (p + q) / 2,
 * sqrt((KL(p||m) + KL(q||m)) / 2), natural logarithms (scipy.stats.entropy).
 * NaN if either sums to 0 or n < 1. */
double farms_js_distance(const double *p, const double *q, int64_t n);

/* splitmix64: the next 64-bit value of the generator with state *s. */
uint64_t farms_rng_next(uint64_t *s);

/* A seeded pseudo-random permutation of [0, n) (n >= 1): the image of
 * k < n. A 4-round Feistel network, its round function splitmix64 keyed by
 * `key`, on the smallest even power of two >= n, cycle-walked back into
 * [0, n): a bijection, the same on every platform, computable for any k
 * alone (no table, no sequential shuffle), so the randomized copy of a
 * matrix can be read window by window by parallel units. */
uint64_t farms_perm(uint64_t k, uint64_t n, uint64_t key);

#endif /* CORE_NUMERICS_FARMS_WW_H */
