/* esd_hist.h -- a compact picture of a layer's empirical spectral density:
 * a log10-binned histogram of the pooled eigenvalues with the power-law fit
 * (alpha, xmin, D) that the analysis found, small enough to store with every
 * result instead of the eigenvalues themselves.
 *
 * Bins: ESD_HIST_BINS equal widths in log10(lambda) between the smallest
 * and the largest eigenvalue above ESD_HIST_ZERO_REL * max (numerically
 * zero eigenvalues are counted apart, in n_zero: they have no place on a
 * log axis). Densities are per unit lambda over ALL pooled eigenvalues, so
 * the fitted power law drawn over [xmin, max] is
 *     p(x) = (n_tail / n_eigs) * (alpha - 1) / xmin * (x / xmin)^-alpha.
 *
 * Ownership: plain data, no pointers; the text form is written into a
 * caller's buffer. Thread-safety: no state: thread-safe.
 */
#ifndef CORE_ESD_HIST_H
#define CORE_ESD_HIST_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define ESD_HIST_BINS     60
#define ESD_HIST_ZERO_REL 1e-12 /* eigenvalues <= this * max count as zero */
#define ESD_HIST_TEXT_MAX 4096  /* esd_hist_encode output, NUL included */

struct esd_hist {
    int n_bins;                    /* ESD_HIST_BINS, or 0: no histogram */
    double log_lo, log_hi;         /* log10 of the outer bin edges */
    int64_t counts[ESD_HIST_BINS]; /* eigenvalues per bin */
    int64_t n_eigs;                /* pooled eigenvalues, zeros included */
    int64_t n_zero;                /* of them numerically zero (not binned) */
    double max;                    /* largest eigenvalue (NaN if none) */
    double alpha, xmin, D;         /* the layer's fit; NaN when there is none */
    int64_t n_tail;                /* pooled eigenvalues >= xmin (0 without a fit) */
};

/* The power-law fit a histogram is drawn with (the analysis's result). */
struct esd_hist_fit {
    double alpha, xmin, D; /* NaN where unknown */
};

/* --- Building ------------------------------------------------------------ */

/* An empty histogram (n_bins 0, counts 0, fit NaN). Cannot fail. */
void esd_hist_init(struct esd_hist *h);

/* The histogram of the eigenvalues of n_sets arrays sets[s][0..lens[s])
 * (any order; a conv layer's divisions are several sets), with the fit
 * `fit` (NULL: no fit, alpha / xmin / D NaN). Negative values count as
 * zero. Cannot fail. */
void esd_hist_compute(const double *const *sets, const int64_t *lens, size_t n_sets,
                      const struct esd_hist_fit *fit, struct esd_hist *h);

/* --- Reading ---------------------------------------------------------------- */

/* Lower / upper edge of bin k (in lambda, not log). */
double esd_hist_edge_lo(const struct esd_hist *h, int k);
double esd_hist_edge_hi(const struct esd_hist *h, int k);

/* counts[k] / (n_eigs * bin width): density per unit lambda. */
double esd_hist_density(const struct esd_hist *h, int k);

/* 1 if the histogram carries a usable fit (finite alpha > 1, xmin > 0,
 * n_tail > 0). */
int esd_hist_has_fit(const struct esd_hist *h);

/* The fitted power-law density at x (see above); NaN when x < xmin or
 * there is no fit. */
double esd_hist_fit_density(const struct esd_hist *h, double x);

/* --- Text form (storage) ------------------------------------------------------ */

/* Write `h` as compact JSON into buf[0..len) (ESD_HIST_TEXT_MAX is always
 * enough). ERR_TOOBIG if it does not fit. Doubles round-trip exactly. */
enum err_code esd_hist_encode(const struct esd_hist *h, char *buf, size_t len, struct err *e);

/* Read text written by esd_hist_encode into *h. ERR_FORMAT for anything
 * else (wrong version, bin count, negative counts). */
enum err_code esd_hist_decode(const char *text, struct esd_hist *h, struct err *e);

#endif /* CORE_ESD_HIST_H */
