/* farms_ww.c -- WeightWatcher's MP fit, Jensen-Shannon distance and the
 * seeded permutation; see farms_ww.h. The MP fit ports WeightWatcher 0.7.5.5
 * mp_fit / fit_density_with_range / resid_mp and the SciPy pieces they use
 * (sklearn KernelDensity(kernel='linear'), numpy linspace / arange,
 * scipy.optimize.brute with its default finish, fmin = Nelder-Mead).
 */
#include "core/numerics/farms_ww.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "core/err.h"

#define FARMS_KDE_POINTS 1000 /* resid_mp: np.linspace(0, max + 0.5, 1000) */
#define FARMS_KDE_BW     0.1  /* mp_fit: bw */
#define FARMS_KDE_THRESH 0.01 /* resid_mp: THRESH */
#define FARMS_NM_MAXITER 200  /* fmin: 200 * N for one parameter */

/* The fixed part of resid_mp: the KDE points kept (density > THRESH). */
struct farms_kde {
    double *x, *y; /* n_good points */
    int64_t n_good;
    double x_peak; /* x of the first largest density */
    double x_top;  /* largest x kept */
    double q;      /* N / M */
    int qc;        /* N == M: quarter-circle law on singular values */
};

/* sklearn KernelDensity(kernel='linear', bandwidth=h).score_samples, exp'd:
 * (1 / (n h)) sum max(0, 1 - |g - t_i| / h) at g, over ascending t, by a
 * sweep (g ascends too). Direct sums over the points within h. */
static void farms_kde_eval(const double *t, int64_t n, const double *g, int64_t ng, double h,
                           double *y)
{
    int64_t lo = 0;

    for (int64_t k = 0; k < ng; k++) {
        double s = 0;
        while (lo < n && t[lo] <= g[k] - h)
            lo++;
        for (int64_t i = lo; i < n && t[i] < g[k] + h; i++)
            s += 1.0 - fabs(g[k] - t[i]) / h;
        y[k] = s / ((double)n * h);
    }
}

/* numpy nan_to_num of one value. */
static double farms_nan_to_num(double v)
{
    if (isnan(v))
        return 0;
    if (isinf(v))
        return v > 0 ? DBL_MAX : -DBL_MAX;
    return v;
}

/* resid_mp(sigma, allresid=False): sum of squared residuals. */
static double farms_mp_resid(const struct farms_kde *k, double sigma)
{
    double s = 0, iq = 1.0 / k->q, a, b;

    if (k->qc) { /* quarter_circle_fun */
        for (int64_t i = 0; i < k->n_good; i++) {
            double x = k->x[i], r = 4 - x * x;
            double v = r >= 0 ? farms_nan_to_num(1 / (M_PI * sigma * sigma) * sqrt(r)) : 0;
            s += (v - k->y[i]) * (v - k->y[i]);
        }
        return s;
    }
    b = pow(sigma * (1 + sqrt(iq)), 2); /* marchenko_pastur_fun */
    a = pow(sigma * (1 - sqrt(iq)), 2);
    if (b < k->x_peak || b > k->x_top || a > k->x_peak)
        return 1e6 * (double)k->n_good; /* resid = 1000 at every point kept */
    for (int64_t i = 0; i < k->n_good; i++) {
        double x = k->x[i], r = (b - x) * (x - a), v = 0;
        if (x > 0 && r >= 0)
            v = farms_nan_to_num(1 / (2 * M_PI * sigma * sigma * x * iq) * sqrt(r));
        s += (v - k->y[i]) * (v - k->y[i]);
    }
    return s;
}

/* scipy.optimize.fmin (Nelder-Mead, xtol = ftol = 1e-4, maxiter = maxfun =
 * 200) of resid in one parameter from x0, as _minimize_neldermead does it. */
static double farms_mp_fmin(const struct farms_kde *k, double x0)
{
    double sim[2], f[2], t;
    int calls = 2, it = 1;

    sim[0] = x0;
    sim[1] = x0 != 0 ? 1.05 * x0 : 0.00025;
    f[0] = farms_mp_resid(k, sim[0]);
    f[1] = farms_mp_resid(k, sim[1]);
    if (f[1] < f[0]) {
        t = sim[0], sim[0] = sim[1], sim[1] = t;
        t = f[0], f[0] = f[1], f[1] = t;
    }
    while (calls < FARMS_NM_MAXITER && it < FARMS_NM_MAXITER) {
        double xbar = sim[0], xr, fr;
        if (fabs(sim[1] - sim[0]) <= 1e-4 && fabs(f[0] - f[1]) <= 1e-4)
            break;
        xr = 2 * xbar - sim[1];
        fr = farms_mp_resid(k, xr), calls++;
        if (fr < f[0]) {
            double xe = 3 * xbar - 2 * sim[1], fe = farms_mp_resid(k, xe);
            calls++;
            sim[1] = fe < fr ? xe : xr;
            f[1] = fe < fr ? fe : fr;
        } else { /* fsim[-2] is fsim[0] with one parameter: contract */
            int outside = fr < f[1];
            double xc = outside ? 1.5 * xbar - 0.5 * sim[1] : 0.5 * xbar + 0.5 * sim[1];
            double fc = farms_mp_resid(k, xc);
            calls++;
            if (outside ? fc <= fr : fc < f[1]) {
                sim[1] = xc, f[1] = fc;
            } else { /* shrink towards sim[0] */
                sim[1] = sim[0] + 0.5 * (sim[1] - sim[0]);
                f[1] = farms_mp_resid(k, sim[1]), calls++;
            }
        }
        it++;
        if (f[1] < f[0]) { /* np.argsort of two: stable */
            t = sim[0], sim[0] = sim[1], sim[1] = t;
            t = f[0], f[0] = f[1], f[1] = t;
        }
    }
    return sim[0];
}

/* scipy.optimize.brute over np.arange(lo, hi, step) (first minimum), then
 * its default finish (fmin) from the best grid point. */
static double farms_mp_brute(const struct farms_kde *k, double lo, double hi, double step)
{
    int64_t n = (int64_t)ceil((hi - lo) / step);
    double delta = (lo + step) - lo, best = lo, fbest = INFINITY;

    for (int64_t i = 0; i < n; i++) {
        double s = i == 0 ? lo : lo + (double)i * delta, f = farms_mp_resid(k, s);
        if (f < fbest) {
            best = s;
            fbest = f;
        }
    }
    return farms_mp_fmin(k, best);
}

/* The KDE of resid_mp on t (ascending, n values) into *k (arrays owned). */
static enum err_code farms_kde_new(const double *t, int64_t n, struct farms_kde *k, struct err *e)
{
    double g[FARMS_KDE_POINTS], y[FARMS_KDE_POINTS], top = t[n - 1] + 0.5;
    double step = top / (FARMS_KDE_POINTS - 1), ymax = -1;

    for (int i = 0; i < FARMS_KDE_POINTS; i++)
        g[i] = (double)i * step; /* np.linspace: start + i * step, end exact */
    g[FARMS_KDE_POINTS - 1] = top;
    farms_kde_eval(t, n, g, FARMS_KDE_POINTS, FARMS_KDE_BW, y);
    k->x = malloc(FARMS_KDE_POINTS * sizeof(double));
    k->y = malloc(FARMS_KDE_POINTS * sizeof(double));
    if (k->x == NULL || k->y == NULL)
        return err_set(e, ERR_NOMEM, "MP fit KDE");
    k->n_good = 0;
    for (int i = 0; i < FARMS_KDE_POINTS; i++) {
        if (!(y[i] > FARMS_KDE_THRESH))
            continue;
        k->x[k->n_good] = g[i];
        k->y[k->n_good++] = y[i];
        if (y[i] > ymax) {
            ymax = y[i];
            k->x_peak = g[i];
        }
        k->x_top = g[i];
    }
    return ERR_OK;
}

enum err_code farms_mp_fit(const double *x, int64_t n, int64_t N, int64_t M, struct farms_mp *out,
                           struct err *e)
{
    enum err_code rc = ERR_OK;
    struct farms_kde k = {0};
    double *t = NULL, sum = 0, ws2, lmax, s0, sig, bmax, bmin, tw;

    *out = (struct farms_mp){-1, NAN, NAN, NAN, NAN, NAN};
    for (int64_t i = 0; i < n; i++)
        sum += x[i];
    if (n < 1 || M < 1 || N < M || !(sum > 0) || !isfinite(sum))
        return ERR_OK;
    t = malloc((size_t)n * sizeof(double));
    if (t == NULL)
        return err_set(e, ERR_NOMEM, "MP fit of %lld eigenvalues", (long long)n);
    out->w_scale = sqrt((double)n) / sqrt(sum); /* rescale: Wscale = sqrt(n) / Wnorm */
    ws2 = out->w_scale * out->w_scale;
    k.q = (double)N / (double)M;
    k.qc = N == M;
    for (int64_t i = 0; i < n; i++)
        t[i] = k.qc ? sqrt(ws2 * x[i]) : ws2 * x[i];
    lmax = ws2 * x[n - 1];
    rc = farms_kde_new(t, n, &k, e);
    if (rc || k.n_good == 0) {
        out->w_scale = NAN; /* np.max of an empty array: apply_mp_fit reports -1 */
        goto out;
    }
    s0 = sqrt(lmax / pow(1 + 1 / sqrt(k.q), 2)); /* calc_sigma */
    sig = farms_mp_brute(&k, 0.05 * s0, 2.0 * s0, 0.01 * s0);
    bmax = pow(sig * (1 + 1 / sqrt(k.q)), 2);
    bmin = pow(sig * (1 - 1 / sqrt(k.q)), 2);
    tw = 1 / sqrt(k.q) * pow(bmax, 2.0 / 3.0) * pow((double)M, -2.0 / 3.0);
    out->num_spikes = 0;
    for (int64_t i = 0; i < n; i++)
        out->num_spikes += ws2 * x[i] > bmax + sqrt(tw);
    out->sigma_mp = sig;
    out->mp_softrank = bmax / lmax;
    out->bulk_max = bmax / ws2;
    out->bulk_min = bmin / ws2;
out:
    free(k.x);
    free(k.y);
    free(t);
    return rc;
}

double farms_js_distance(const double *p, const double *q, int64_t n)
{
    double sp = 0, sq = 0, kp = 0, kq = 0;

    for (int64_t i = 0; i < n; i++) {
        sp += p[i];
        sq += q[i];
    }
    if (n < 1 || !(sp > 0) || !(sq > 0))
        return NAN;
    for (int64_t i = 0; i < n; i++) { /* stats.entropy normalises p, q and m */
        double a = p[i] / sp, b = q[i] / sq, m = (p[i] + q[i]) / 2 / ((sp + sq) / 2);
        if (a > 0)
            kp += a * log(a / m);
        if (b > 0)
            kq += b * log(b / m);
    }
    return sqrt(fmax(0, (kp + kq) / 2));
}

uint64_t farms_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t farms_perm(uint64_t k, uint64_t n, uint64_t key)
{
    int bits = 0, half;
    uint64_t mask;

    while (bits < 64 && ((uint64_t)1 << bits) < n)
        bits++;
    bits += bits & 1;
    half = bits / 2;
    mask = half > 0 ? ((uint64_t)1 << half) - 1 : 0;
    do { /* cycle walking: at most a few rounds, the domain is < 4 n */
        uint64_t l = k >> half, r = k & mask;
        for (uint64_t i = 0; i < 4; i++) {
            uint64_t st = key ^ (r * 0xd6e8feb86659fd93ULL) ^ (i << 56), t;
            t = l ^ (farms_rng_next(&st) & mask);
            l = r;
            r = t;
        }
        k = l << half | r;
    } while (k >= n);
    return k;
}
