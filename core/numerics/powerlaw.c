/* powerlaw.c -- power-law fit of one ESD (docs/numerics.md, Power-law fit): input checks,
 * the optional zero filter, alpha(i) for every i in O(N), the xmin rules
 * (xmin_mid, the xmin_peak histogram and candidate range, the full KS scan)
 * and the reporting of failed fits. The argmin search over candidates lives
 * in powerlaw_scan.c.
 *
 * Owns nothing beyond one call; no state: thread-safe.
 */
#include "core/numerics/powerlaw.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/numerics/powerlaw_int.h"

#define PL_BINS_MAX (1 << 20)

void pl_params_default(struct pl_params *p)
{
    p->xmin = PL_XMIN_MID;
    p->xmin_pos = 2.0;
    p->bins = 100;
    p->filter_zeros = 0;
    p->eig_threshold = 1e-5;
}

/* Mark `out` as a failed fit with a reason. */
static void pl_fail(struct pl_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void pl_fail(struct pl_result *out, const char *fmt, ...)
{
    va_list ap;

    out->status = PL_STATUS_FAILED;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
}

static enum err_code pl_check_input(const double *eigs, size_t n, const struct pl_params *p,
                                    struct err *e)
{
    size_t k;

    if (p == NULL || (eigs == NULL && n > 0))
        return err_set(e, ERR_INVAL, "pl_fit: NULL argument");
    if (p->xmin != PL_XMIN_MID && p->xmin != PL_XMIN_PEAK && p->xmin != PL_XMIN_KS)
        return err_set(e, ERR_INVAL, "pl_fit: unknown xmin rule %d", (int)p->xmin);
    if (p->xmin == PL_XMIN_MID && !(isfinite(p->xmin_pos) && p->xmin_pos > 0))
        return err_set(e, ERR_INVAL, "pl_fit: xmin_pos must be finite and > 0");
    if (p->xmin == PL_XMIN_PEAK && (p->bins < 1 || p->bins > PL_BINS_MAX))
        return err_set(e, ERR_INVAL, "pl_fit: bins %d outside 1..%d", p->bins, PL_BINS_MAX);
    if (n > (size_t)INT64_MAX / 4 || n > SIZE_MAX / (2 * sizeof(double)))
        return err_set(e, ERR_TOOBIG, "pl_fit: %zu eigenvalues", n);
    for (k = 0; k < n; k++) {
        if (!isfinite(eigs[k]) || eigs[k] < 0)
            return err_set(e, ERR_INVAL, "pl_fit: eigenvalue %zu is %g (need finite, >= 0)", k,
                           eigs[k]);
        if (k > 0 && eigs[k] < eigs[k - 1])
            return err_set(e, ERR_INVAL, "pl_fit: eigenvalues not ascending at index %zu", k);
    }
    return ERR_OK;
}

/* alpha(i) = 1 + n_i / (sum_{k>=i} ln x_k - n_i ln x_i) for every i, from a
 * compensated (Neumaier) suffix sum; the difference is taken with one fma so
 * the large suffix sum cancels without an extra rounding. Exact zeros give
 * NaN (the reference's -inf + inf), an all-equal tail +inf. */
static void pl_alpha_all(const double *x, const double *lnx, double *alpha, int64_t n)
{
    double sum = 0.0, comp = 0.0;
    int64_t i;

    for (i = n - 1; i >= 0; i--) {
        double v = lnx[i], t = sum + v, nt = (double)(n - i);

        if (x[i] == 0) {
            alpha[i] = NAN; /* everything below is zero too (ascending) */
            continue;
        }
        if (fabs(sum) >= fabs(v))
            comp += (sum - t) + v;
        else
            comp += (v - t) + sum;
        sum = t;
        if (x[i] == x[n - 1])
            alpha[i] = INFINITY; /* sum of ln(x_k/x_i) is exactly 0 */
        else
            alpha[i] = 1.0 + nt / (fma(-nt, lnx[i], sum) + comp);
    }
}

/* First index in [0, n) with x[i] >= v (n if none). */
static int64_t pl_lower_bound(const double *x, int64_t n, double v)
{
    int64_t lo = 0, hi = n;

    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (x[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First index in [0, n) with x[i] > v (n if none). */
static int64_t pl_upper_bound(const double *x, int64_t n, double v)
{
    int64_t lo = 0, hi = n;

    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (x[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* xmin_peak: the log10 histogram, its fullest bin and the candidate index
 * range [*c0, *c1] (empty when *c0 > *c1). A zero eigenvalue makes the
 * range infinite (the reference raises): `out` is then marked failed.
 * Returns ERR_NOMEM or ERR_OK. */
static enum err_code pl_peak_range(const double *x, int64_t n, int bins, struct pl_result *out,
                                   int64_t *c0, int64_t *c1, struct err *e)
{
    double lo = log10(x[0]), hi = log10(x[n - 1]);
    int64_t *counts = NULL, k;
    int ih = 0, b;

    *c0 = 0;
    *c1 = -1;
    if (!isfinite(lo) || !isfinite(hi)) {
        pl_fail(out, "zero eigenvalue: log10 histogram range is not finite");
        return ERR_OK;
    }
    counts = calloc((size_t)bins, sizeof *counts);
    if (counts == NULL)
        return err_set(e, ERR_NOMEM, "pl_fit: histogram of %d bins", bins);
    if (hi == lo) {
        ih = bins / 2; /* torch.histc widens an empty range to [lo-1, hi+1] */
    } else {
        for (k = 0; k < n; k++) {
            double t = (log10(x[k]) - lo) * bins / (hi - lo);
            b = t >= bins ? bins - 1 : t < 0 ? 0 : (int)t;
            counts[b]++;
        }
        for (b = 1; b < bins; b++)
            if (counts[b] > counts[ih])
                ih = b;
    }
    free(counts);
    out->peak_bin = ih;
    out->xmin2 = pow(10.0, lo + ih * (hi - lo) / bins);
    out->xmin_lo = log10(0.95 * out->xmin2); /* sic: log10 bound vs linear eigenvalues */
    out->xmin_hi = 1.5 * out->xmin2;
    *c0 = pl_lower_bound(x, n, out->xmin_lo);
    *c1 = pl_upper_bound(x, n, out->xmin_hi) - 1;
    if (*c1 > n - 2)
        *c1 = n - 2;
    return ERR_OK;
}

/* Fill `out` from the chosen index of a scan over [c0, c1]. */
static void pl_scan_report(const struct pl__data *d, int64_t c0, int64_t c1, int64_t bi, double bD,
                           struct pl_result *out)
{
    out->xmin_index = bi;
    out->xmin = d->x[bi];
    out->n_tail = d->n - bi;
    out->D = bD;
    out->alpha = (bi >= c0 && bi <= c1) ? d->alpha[bi] : 0.0;
    if (c0 > c1)
        pl_fail(out, "no xmin candidate in [%g, %g]: reference sentinel alpha 0, D 1", out->xmin_lo,
                out->xmin_hi);
    else if (!(bD < 1.0))
        pl_fail(out, "no xmin candidate has alpha > 1 and D < 1: reference sentinel (index 0)");
    else if (!isfinite(out->alpha))
        pl_fail(out, "alpha is infinite: the tail above xmin %g is constant", out->xmin);
}

/* xmin_mid: the single fit at i = int(N / xmin_pos). */
static void pl_fit_mid(const struct pl__data *d, double xmin_pos, struct pl_result *out)
{
    double q = (double)d->n / xmin_pos;
    int64_t i;

    out->n_candidates = 1;
    if (!(q < (double)d->n)) {
        pl_fail(out, "xmin_pos %g puts the xmin index past the end", xmin_pos);
        return;
    }
    i = (int64_t)q;
    out->xmin_index = i;
    out->xmin = d->x[i];
    out->n_tail = d->n - i;
    out->alpha = d->alpha[i];
    if (d->x[i] == 0) {
        out->D = NAN;
        pl_fail(out, "xmin is an exact zero eigenvalue: alpha is NaN");
        return;
    }
    out->D = pl__ks_distance(d, i);
    if (!isfinite(out->alpha))
        pl_fail(out, "alpha is infinite: the tail above xmin %g is constant", out->xmin);
}

/* Reset `out` to "nothing fitted yet". */
static void pl_result_init(struct pl_result *out)
{
    memset(out, 0, sizeof *out);
    out->status = PL_STATUS_OK;
    out->alpha = out->D = out->xmin = NAN;
    out->xmin_index = -1;
    out->peak_bin = -1;
}

/* With filter_zeros, the index of the first eigenvalue above the threshold;
 * 0 when filtering is off or no eigenvalue is above it (then all are fitted). */
static size_t pl_first_fitted(const double *eigs, size_t n, const struct pl_params *p)
{
    size_t first = 0;

    if (!p->filter_zeros)
        return 0;
    while (first < n && !(eigs[first] > p->eig_threshold))
        first++;
    return first < n ? first : 0;
}

/* The xmin choice on prepared data: the fixed position (mid), or the KS scan
 * over every candidate or the ESD peak's range; the report goes to `out`. */
static enum err_code pl_fit_xmin(const struct pl__data *d, const struct pl_params *p,
                                 struct pl_result *out, int naive, struct err *e)
{
    enum err_code rc = ERR_OK;
    int64_t c0 = 0, c1 = -1, bi = 0;
    double bD = 1.0;

    if (p->xmin == PL_XMIN_MID) {
        pl_fit_mid(d, p->xmin_pos, out);
        return ERR_OK;
    }
    if (p->xmin == PL_XMIN_PEAK) {
        rc = pl_peak_range(d->x, d->n, p->bins, out, &c0, &c1, e);
        if (rc || out->status == PL_STATUS_FAILED)
            return rc;
    } else {
        c1 = d->n - 2;
    }
    out->n_candidates = c1 >= c0 ? c1 - c0 + 1 : 0;
    if (naive)
        pl__scan_naive(d, c0, c1, &bi, &bD);
    else
        rc = pl__scan(d, c0, c1, &bi, &bD, e);
    if (rc)
        return rc;
    pl_scan_report(d, c0, c1, bi, bD, out);
    return ERR_OK;
}

static enum err_code pl_fit_any(const double *eigs, size_t n, const struct pl_params *p,
                                struct pl_result *out, int naive, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct pl__data d;
    double *buf = NULL;
    size_t first;

    pl_result_init(out);
    rc = pl_check_input(eigs, n, p, e);
    if (rc)
        goto out;
    first = pl_first_fitted(eigs, n, p);
    if (first > 0) { /* eigs may be NULL when n == 0 */
        eigs += first;
        n -= first;
    }
    out->n_fitted = (int64_t)n;
    if (n < 2) {
        pl_fail(out, "%zu eigenvalue(s): a fit needs at least 2", n);
        goto out;
    }
    buf = malloc(2 * n * sizeof *buf);
    if (buf == NULL) {
        rc = err_set(e, ERR_NOMEM, "pl_fit: %zu eigenvalues", n);
        goto out;
    }
    d.x = eigs;
    d.lnx = buf;
    d.alpha = buf + n;
    d.n = (int64_t)n;
    for (int64_t i = 0; i < d.n; i++)
        buf[i] = log(eigs[i]);
    pl_alpha_all(eigs, buf, buf + n, d.n);
    rc = pl_fit_xmin(&d, p, out, naive, e);
out:
    free(buf);
    return rc;
}

enum err_code pl_fit(const double *eigs, size_t n, const struct pl_params *p, struct pl_result *out,
                     struct err *e)
{
    return pl_fit_any(eigs, n, p, out, 0, e);
}

enum err_code pl__fit_naive(const double *eigs, size_t n, const struct pl_params *p,
                            struct pl_result *out, struct err *e)
{
    return pl_fit_any(eigs, n, p, out, 1, e);
}
