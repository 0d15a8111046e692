/* powerlaw.h -- power-law fit of one empirical spectral density (docs/numerics.md, Power-law fit).
 *
 * Input: eigenvalues sorted ascending. The Hill/continuous-MLE exponent for
 * the tail starting at index i is alpha(i) = 1 + n / (sum_{k>=i} ln x_k - n ln x_i),
 * n = N - i, and its one-sided KS distance is
 * D(i) = max_{k<n} |1 - (x_{i+k}/x_i)^(1-alpha(i)) - k/n|. The xmin rule picks i:
 *   PL_XMIN_MID  i = int(N / xmin_pos)                         (one fit)
 *   PL_XMIN_KS   argmin D over i = 0..N-2, first index on ties (full KS scan)
 *   PL_XMIN_PEAK the same argmin restricted to the candidates around the
 *                fullest bin of a log10 histogram, with the reference's
 *                quirks (log10 lower bound, sentinel alpha 0 / D 1).
 * Candidates with alpha(i) <= 1 keep D = 1. The argmin is exact: the fast
 * search returns the index a naive O(N^2) scan returns.
 *
 * Pure functions on caller memory; no state: thread-safe.
 */
#ifndef CORE_POWERLAW_H
#define CORE_POWERLAW_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum pl_xmin {
    PL_XMIN_MID,  /* xmin_mid (LLM name) = median (image-classification name) */
    PL_XMIN_PEAK, /* xmin_peak */
    PL_XMIN_KS    /* full KS scan */
};

struct pl_params {
    enum pl_xmin xmin;    /* the xmin rule */
    double xmin_pos;      /* PL_XMIN_MID: i = int(N / xmin_pos); reference 2 */
    int bins;             /* PL_XMIN_PEAK: histogram bins; reference 100 */
    int filter_zeros;     /* 1: fit only eigenvalues > eig_threshold (if any) */
    double eig_threshold; /* reference EVALS_THRESH 1e-5 */
};

enum pl_status {
    PL_STATUS_OK,
    PL_STATUS_FAILED /* non-finite or sentinel result; `reason` says why */
};

struct pl_result {
    enum pl_status status; /* a failed fit is a result, not an error */
    char reason[128];      /* why the fit failed; "" when ok */
    double alpha;          /* exponent; meaningful only when ok */
    double D;              /* KS distance of the chosen fit */
    double xmin;           /* eigenvalue at xmin_index */
    int64_t xmin_index;    /* index into the fitted (filtered) ascending array */
    int64_t n_tail;        /* n_fitted - xmin_index */
    int64_t n_fitted;      /* N: eigenvalues after the optional filter */
    int64_t n_candidates;  /* xmin candidates scanned (1 for PL_XMIN_MID) */
    int peak_bin;          /* PL_XMIN_PEAK: fullest histogram bin, else -1 */
    double xmin2;          /* PL_XMIN_PEAK: left edge of that bin (linear), else 0 */
    double xmin_lo;        /* PL_XMIN_PEAK: candidate bounds as the reference */
    double xmin_hi;        /*   computes them (xmin_lo = log10(0.95 xmin2)) */
};

/* Default parameters of the reference (xmin_mid, xmin_pos 2, bins 100,
 * no filter, threshold 1e-5). Cannot fail. */
void pl_params_default(struct pl_params *p);

/* Fit the `n` eigenvalues `eigs` (ascending, finite, >= 0). Fills *out;
 * a fit that cannot be made (too few values, NaN/inf alpha, the xmin_peak
 * sentinel, zeros where the reference fails) is reported as
 * out->status = PL_STATUS_FAILED with a reason, and returns ERR_OK.
 * Returns ERR_INVAL for unsorted or negative input, ERR_NOMEM on allocation
 * failure. */
enum err_code pl_fit(const double *eigs, size_t n, const struct pl_params *p, struct pl_result *out,
                     struct err *e);

#endif /* CORE_POWERLAW_H */
