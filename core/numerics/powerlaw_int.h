/* powerlaw_int.h -- internals of the power-law fit shared by powerlaw.c,
 * powerlaw_scan.c and the tests/benchmarks.
 *
 * The KS distance of the tail starting at index i is the max over k of
 * pl__ks_term(pl__ks_c(...)). Every term anywhere (fast search, naive scan,
 * single xmin_mid fit) is computed by these two inline functions, so the
 * fast search and the naive O(N^2) scan compare bitwise-identical numbers.
 *
 * Pure functions on caller memory: thread-safe.
 */
#ifndef CORE_POWERLAW_INT_H
#define CORE_POWERLAW_INT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/numerics/powerlaw.h"

/* The fitted spectrum: borrowed arrays of the same length n. */
struct pl__data {
    const double *x;     /* ascending eigenvalues (after the optional filter) */
    const double *lnx;   /* ln x */
    const double *alpha; /* alpha(i) for every i (inf: all-equal tail, NaN: x_i == 0) */
    int64_t n;           /* N */
};

/* Power-law CDF of the tail at i, evaluated at x[i+k], for oma = 1 - alpha(i):
 * 1 - (x[i+k]/x[i])^oma, computed as 1 - exp(oma (ln x[i+k] - ln x[i])).
 * A zero log ratio (x[i+k] == x[i]) gives exactly 0, as IEEE pow(1, y) = 1
 * does, also for oma = -inf. Nondecreasing in k when oma < 0. */
static inline double pl__ks_c(const double *lnx, int64_t i, int64_t k, double oma)
{
    double dl = lnx[i + k] - lnx[i];

    return dl == 0.0 ? 0.0 : 1.0 - exp(oma * dl);
}

/* One term |c - k/n_tail| of the one-sided KS distance (lower empirical CDF). */
static inline double pl__ks_term(double c, int64_t k, double n_tail)
{
    return fabs(c - (double)k / n_tail);
}

/* D(i) by the plain loop over all n - i terms. */
double pl__ks_distance(const struct pl__data *d, int64_t i);

/* argmin of D over the slots 0..n-2, where only i in [c0, c1] are candidates
 * (c0 > c1: none); candidates with alpha(i) <= 1 and all non-candidates have
 * D = 1; first index on ties. Writes the index and its D (1 when no
 * candidate has D < 1, index 0 then). Fast exact branch and bound. */
enum err_code pl__scan(const struct pl__data *d, int64_t c0, int64_t c1, int64_t *best_i,
                       double *best_D, struct err *e);

/* The same by the naive O(N^2) scan (tests and benchmarks). Cannot fail. */
void pl__scan_naive(const struct pl__data *d, int64_t c0, int64_t c1, int64_t *best_i,
                    double *best_D);

/* pl_fit with pl__scan_naive in place of pl__scan (tests and benchmarks). */
enum err_code pl__fit_naive(const double *eigs, size_t n, const struct pl_params *p,
                            struct pl_result *out, struct err *e);

#endif /* CORE_POWERLAW_INT_H */
