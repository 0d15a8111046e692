/* test_powerlaw.c -- the power-law fit (docs/numerics.md): alpha and D by
 * formula on tiny spectra, the three xmin rules and their quirks, degenerate
 * spectra, the fast argmin against the naive O(N^2) scan, and every fit of
 * the reference vectors (tests/fixtures/numerics/<case>.json). */
#include <glob.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/numerics/powerlaw.h"
#include "core/numerics/powerlaw_int.h"
#include "tests/check.h"
#include "tests/file_util.h"

/* 1 if a and b are the same double bit for bit (NaN payloads, signed zeros). */
static int same_bits(double a, double b)
{
    uint64_t x, y;

    memcpy(&x, &a, sizeof x);
    memcpy(&y, &b, sizeof y);
    return x == y;
}

/* Fit with the reference defaults but the given rule; the call must succeed. */
static struct pl_result fit_rule(const double *x, size_t n, enum pl_xmin rule, int bins)
{
    struct pl_params p;
    struct pl_result r;
    struct err e;

    pl_params_default(&p);
    p.xmin = rule;
    p.bins = bins;
    CHECK_EQ_INT(pl_fit(x, n, &p, &r, &e), ERR_OK);
    return r;
}

static struct pl_result fit_mid(const double *x, size_t n, double xmin_pos)
{
    struct pl_params p;
    struct pl_result r;

    pl_params_default(&p);
    p.xmin_pos = xmin_pos;
    CHECK_EQ_INT(pl_fit(x, n, &p, &r, NULL), ERR_OK);
    return r;
}

/* --- alpha and D by formula ------------------------------------------------ */

static void test_mid_n4_alpha_and_D_by_formula(void)
{
    /* i = int(4/2) = 2, tail {4, 8}: sum ln(x/4) = ln 2, alpha = 1 + 2/ln 2;
     * D = |1 - 2^(1-alpha) - 1/2| = |1 - e^-2 - 1/2|. */
    const double x[] = {1, 2, 4, 8};
    struct pl_result r = fit_mid(x, 4, 2.0);

    CHECK_EQ_INT(r.status, PL_STATUS_OK);
    CHECK_EQ_INT(r.xmin_index, 2);
    CHECK_EQ_INT(r.n_tail, 2);
    CHECK_EQ_INT(r.n_candidates, 1);
    CHECK_NEAR(r.xmin, 4.0, 0);
    CHECK_NEAR(r.alpha, 1.0 + 2.0 / log(2.0), 1e-12);
    CHECK_NEAR(r.D, 0.5 - exp(-2.0), 1e-12);
}

static void test_mid_n5_alpha_2(void)
{
    /* x = e^k: i = int(5/2) = 2, tail e^2, e^3, e^4: sum of log ratios 0+1+2 = 3,
     * alpha = 1 + 3/3 = 2; terms 0, 1 - e^-1 - 1/3, 1 - e^-2 - 2/3. */
    double x[5];
    int k;

    for (k = 0; k < 5; k++)
        x[k] = exp((double)k);
    struct pl_result r = fit_mid(x, 5, 2.0);
    CHECK_EQ_INT(r.xmin_index, 2);
    CHECK_NEAR(r.alpha, 2.0, 1e-12);
    CHECK_NEAR(r.D, fmax(1 - exp(-1.0) - 1.0 / 3, fabs(1 - exp(-2.0) - 2.0 / 3)), 1e-12);
}

static void test_mid_n6_xmin_pos_3(void)
{
    /* x = e^k, k = 0..5, xmin_pos 3: i = 2, tail of 4 with log ratios 0,1,2,3:
     * alpha = 1 + 4/6; the terms use the lower empirical CDF k/4. */
    double x[6], a = 1.0 + 4.0 / 6.0, D = 0;
    int k;

    for (k = 0; k < 6; k++)
        x[k] = exp((double)k);
    for (k = 0; k < 4; k++)
        D = fmax(D, fabs(1 - exp((1 - a) * k) - k / 4.0));
    struct pl_result r = fit_mid(x, 6, 3.0);
    CHECK_EQ_INT(r.xmin_index, 2);
    CHECK_EQ_INT(r.n_tail, 4);
    CHECK_NEAR(r.alpha, a, 1e-12);
    CHECK_NEAR(r.D, D, 1e-12);
}

static void test_ks_n3_picks_smaller_D(void)
{
    /* x = {1, e, e^3}; candidates 0 and 1 (the largest value never is).
     * i=0: alpha = 1 + 3/4, D = max(1-e^-.75-1/3, |1-e^-2.25-2/3|) = 0.2279
     * i=1: alpha = 1 + 2/2, D = 1 - e^-2 - 1/2 = 0.3647 -> i = 0. */
    const double x[] = {1, exp(1.0), exp(3.0)};
    double D0 = fmax(1 - exp(-0.75) - 1.0 / 3, fabs(1 - exp(-2.25) - 2.0 / 3));
    struct pl_result r = fit_rule(x, 3, PL_XMIN_KS, 100);

    CHECK_EQ_INT(r.status, PL_STATUS_OK);
    CHECK_EQ_INT(r.n_candidates, 2);
    CHECK_EQ_INT(r.xmin_index, 0);
    CHECK_NEAR(r.alpha, 1.75, 1e-12);
    CHECK_NEAR(r.D, D0, 1e-12);
    CHECK_NEAR(D0, 0.22793, 1e-5);
}

/* --- xmin_mid index rule ---------------------------------------------------- */

static void test_mid_index_is_true_division_truncated(void)
{
    const double x[] = {1, 2, 3, 4, 5, 6, 7};

    CHECK_EQ_INT(fit_mid(x, 7, 2.0).xmin_index, 3); /* int(3.5) */
    CHECK_EQ_INT(fit_mid(x, 7, 2.5).xmin_index, 2); /* int(2.8) */
    CHECK_EQ_INT(fit_mid(x, 7, 1.5).xmin_index, 4); /* int(4.67) */
    CHECK_EQ_INT(fit_mid(x, 7, 7.5).xmin_index, 0); /* int(0.93) */
    struct pl_result r = fit_mid(x, 7, 0.9);        /* int(7.8) = 7: past the end */
    CHECK_EQ_INT(r.status, PL_STATUS_FAILED);
    CHECK(strstr(r.reason, "past the end") != NULL);
}

/* --- xmin_peak histogram --------------------------------------------------- */

static void test_peak_value_on_bin_edge_goes_up(void)
{
    /* log10 = 0, 1, 1, 1.30, 1.48, 2 on [0, 2] with 4 bins of 0.5: log10 10 = 1
     * is exactly the left edge of bin 2, so bin 2 holds 10, 10, 20, 30 (4)
     * and wins; in bin 1 the tie 2 vs 2 would have picked bin 1. */
    const double x[] = {1, 10, 10, 20, 30, 100};
    struct pl_result r = fit_rule(x, 6, PL_XMIN_PEAK, 4);

    CHECK_EQ_INT(r.peak_bin, 2);
    CHECK_NEAR(r.xmin2, 10.0, 1e-12);
    CHECK_NEAR(r.xmin_hi, 15.0, 1e-12);
    CHECK_NEAR(r.xmin_lo, log10(9.5), 1e-15);
}

static void test_peak_top_value_in_last_bin(void)
{
    /* 100 = max: (2-0)*4/2 = 4 -> bin 3, which holds three values and wins.
     * xmin2 = 10^1.5, range [log10(0.95*31.6), 47.4] holds only x = 2. */
    const double x[] = {1, 2, 100, 100, 100};
    struct pl_result r = fit_rule(x, 5, PL_XMIN_PEAK, 4);

    CHECK_EQ_INT(r.peak_bin, 3);
    CHECK_NEAR(r.xmin2, pow(10.0, 1.5), 1e-12);
    CHECK_EQ_INT(r.n_candidates, 1);
    CHECK_EQ_INT(r.xmin_index, 1);
    CHECK_EQ_INT(r.status, PL_STATUS_OK);
}

static void test_peak_ties_pick_first_bin(void)
{
    const double x[] = {1, 1, 100, 100}; /* bins 0 and 3 hold 2 each */
    struct pl_result r = fit_rule(x, 4, PL_XMIN_PEAK, 4);

    CHECK_EQ_INT(r.peak_bin, 0);
    CHECK_NEAR(r.xmin2, 1.0, 0);
}

static void test_peak_log10_lower_bound_quirk(void)
{
    /* xmin2 = 10: a linear bound 0.95*10 would exclude x = 1, the reference's
     * log10(9.5) = 0.98 keeps it: candidates 0, 1, 2 (not 1, 2). */
    const double x[] = {1, 10, 10, 20, 30, 100};
    struct pl_result r = fit_rule(x, 6, PL_XMIN_PEAK, 4);

    CHECK_EQ_INT(r.n_candidates, 3);
    /* xmin2 = 0.1 < 1/0.95: the bound is negative, nothing is below it. */
    const double y[] = {0.001, 0.1, 0.1, 0.1, 0.1, 1};
    r = fit_rule(y, 6, PL_XMIN_PEAK, 3);
    CHECK_EQ_INT(r.peak_bin, 2);
    CHECK_NEAR(r.xmin2, 0.1, 1e-15);
    CHECK(r.xmin_lo < 0);
    CHECK_EQ_INT(r.n_candidates, 5); /* indices 0..4: 0.001 included, 1 > 0.15 */
}

static void test_peak_upper_bound_is_inclusive(void)
{
    /* xmin2 = 10 as above, xmin_hi = 1.5 * 10 = 15 exactly: x = 15 is a
     * candidate (indices 0..3), x = 30 is not. */
    const double x[] = {1, 10, 10, 15, 30, 100};
    struct pl_result r = fit_rule(x, 6, PL_XMIN_PEAK, 4);

    CHECK_EQ_INT(r.peak_bin, 2);
    CHECK_NEAR(r.xmin_hi, 15.0, 0);
    CHECK_EQ_INT(r.n_candidates, 4);
}

static void test_peak_empty_candidates_is_sentinel(void)
{
    /* Peak in the top bin (100 x3): range [1.48, 47.4] holds none of the
     * candidates 0..2 -> the reference returns alpha[0] = 0, D = 1. */
    const double x[] = {1, 100, 100, 100};
    struct pl_result r = fit_rule(x, 4, PL_XMIN_PEAK, 4);

    CHECK_EQ_INT(r.peak_bin, 3);
    CHECK_EQ_INT(r.n_candidates, 0);
    CHECK_EQ_INT(r.status, PL_STATUS_FAILED);
    CHECK(strstr(r.reason, "sentinel") != NULL);
    CHECK_NEAR(r.alpha, 0.0, 0);
    CHECK_NEAR(r.D, 1.0, 0);
    CHECK_EQ_INT(r.xmin_index, 0);
}

/* --- KS argmin ties -------------------------------------------------------- */

static void test_scan_ties_pick_first_index(void)
{
    /* Hand-made data: slot 0 (tail of 4, log ratios 0,0,1,1, alpha 1e6 so
     * c = 0,0,1,1) has D = max(1/4, 1/2, 1/4) = 1/2; slot 2 (tail of 2 equal
     * values) has D = |0 - 1/2| = 1/2; slot 1 has alpha <= 1 (D = 1). */
    const double x[] = {1, 1, 2, 2}, lnx[] = {0, 0, 1, 1};
    double alpha[] = {1e6, 0.5, 2, INFINITY}, D, Dn;
    struct pl__data d = {x, lnx, alpha, 4};
    int64_t i, in;

    CHECK_EQ_INT(pl__scan(&d, 0, 2, &i, &D, NULL), ERR_OK);
    pl__scan_naive(&d, 0, 2, &in, &Dn);
    CHECK_EQ_INT(i, 0);
    CHECK_NEAR(D, 0.5, 0);
    CHECK_EQ_INT(in, 0);
    alpha[0] = 0.5; /* slot 0 drops out: the tie is gone, slot 2 wins */
    CHECK_EQ_INT(pl__scan(&d, 0, 2, &i, &D, NULL), ERR_OK);
    CHECK_EQ_INT(i, 2);
    CHECK_NEAR(D, 0.5, 0);
    /* cppcheck-suppress unreadVariable ; read through d.alpha */
    alpha[2] = 1.0; /* no candidate with alpha > 1: sentinel slot 0, D 1 */
    CHECK_EQ_INT(pl__scan(&d, 0, 2, &i, &D, NULL), ERR_OK);
    CHECK_EQ_INT(i, 0);
    CHECK_NEAR(D, 1.0, 0);
}

/* --- degenerate spectra ------------------------------------------------------ */

static void test_all_equal_spectrum(void)
{
    /* alpha = +inf everywhere, D(i) = (n-1)/n: the scan picks i = N-2, D 1/2. */
    const double x[] = {3, 3, 3, 3};
    struct pl_result r = fit_rule(x, 4, PL_XMIN_KS, 100);

    CHECK_EQ_INT(r.status, PL_STATUS_FAILED);
    CHECK(strstr(r.reason, "infinite") != NULL);
    CHECK_EQ_INT(r.xmin_index, 2);
    CHECK_NEAR(r.D, 0.5, 0);
    CHECK(isinf(r.alpha));
    r = fit_mid(x, 4, 2.0); /* i = 2 as well */
    CHECK_EQ_INT(r.status, PL_STATUS_FAILED);
    CHECK_NEAR(r.D, 0.5, 0);
    r = fit_rule(x, 4, PL_XMIN_PEAK, 100); /* histc widens [lo, lo]: bin 50 */
    CHECK_EQ_INT(r.peak_bin, 50);
    CHECK_NEAR(r.xmin2, 3.0, 1e-14);
    CHECK_EQ_INT(r.n_candidates, 3);
    CHECK_EQ_INT(r.xmin_index, 2);
    CHECK_EQ_INT(r.status, PL_STATUS_FAILED);
}

static void test_exact_zeros_per_rule(void)
{
    const double x[] = {0, 0, 0, 0, 1, 2};
    struct pl_result r = fit_mid(x, 6, 2.0); /* xmin = x[3] = 0: alpha NaN */

    CHECK_EQ_INT(r.status, PL_STATUS_FAILED);
    CHECK(isnan(r.alpha));
    CHECK(strstr(r.reason, "zero") != NULL);
    r = fit_rule(x, 6, PL_XMIN_KS, 100); /* zero xmins keep D = 1: i = 4 wins */
    CHECK_EQ_INT(r.status, PL_STATUS_OK);
    CHECK_EQ_INT(r.xmin_index, 4);
    CHECK_NEAR(r.D, 0.5 - exp(-2.0), 1e-12);
    r = fit_rule(x, 6, PL_XMIN_PEAK, 100); /* the reference raises */
    CHECK_EQ_INT(r.status, PL_STATUS_FAILED);
    CHECK_STR_EQ(r.reason, "zero eigenvalue: log10 histogram range is not finite");
    const double y[] = {0, 0, 1, 2, 4, 8}; /* xmin_mid at x[3] = 2 > 0: fine */
    r = fit_mid(y, 6, 2.0);
    CHECK_EQ_INT(r.status, PL_STATUS_OK);
    CHECK_NEAR(r.alpha, 1.0 + 3.0 / (log(2.0) + log(4.0)), 1e-12);
}

static void test_fewer_than_two_values_fail(void)
{
    const double x[] = {5};
    struct pl_result r = fit_rule(x, 1, PL_XMIN_KS, 100);

    CHECK_EQ_INT(r.status, PL_STATUS_FAILED);
    CHECK_EQ_INT(r.n_fitted, 1);
    r = fit_rule(NULL, 0, PL_XMIN_PEAK, 100);
    CHECK_EQ_INT(r.status, PL_STATUS_FAILED);
    CHECK_EQ_INT(r.n_fitted, 0);
}

static void test_filter_zeros_and_fallback(void)
{
    const double x[] = {1e-7, 1e-6, 1, 2, 4}, tiny[] = {1e-7, 2e-7, 4e-6};
    struct pl_params p;
    struct pl_result r;

    pl_params_default(&p);
    p.filter_zeros = 1;
    CHECK_EQ_INT(pl_fit(x, 5, &p, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.n_fitted, 3); /* 1, 2, 4: index int(3/2) = 1 -> xmin 2 */
    CHECK_EQ_INT(r.xmin_index, 1);
    CHECK_NEAR(r.xmin, 2.0, 0);
    CHECK_EQ_INT(pl_fit(tiny, 3, &p, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.n_fitted, 3); /* nothing above 1e-5: all are fitted */
    p.filter_zeros = 0;
    CHECK_EQ_INT(pl_fit(x, 5, &p, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.n_fitted, 5);
}

static void test_bad_input_is_invalid(void)
{
    const double unsorted[] = {1, 3, 2}, negative[] = {-1, 2, 3}, nan_[] = {1, NAN, 3};
    struct pl_params p;
    struct pl_result r;
    struct err e;

    pl_params_default(&p);
    CHECK_EQ_INT(pl_fit(unsorted, 3, &p, &r, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "ascending") != NULL);
    CHECK_EQ_INT(pl_fit(negative, 3, &p, &r, &e), ERR_INVAL);
    CHECK_EQ_INT(pl_fit(nan_, 3, &p, &r, &e), ERR_INVAL);
    p.xmin_pos = 0;
    CHECK_EQ_INT(pl_fit(unsorted + 0, 1, &p, &r, &e), ERR_INVAL);
    pl_params_default(&p);
    p.xmin = PL_XMIN_PEAK;
    p.bins = 0;
    CHECK_EQ_INT(pl_fit(negative + 1, 2, &p, &r, &e), ERR_INVAL);
}

/* --- fast search == naive scan ---------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unif(uint64_t *s)
{
    return ((double)(rng_next(s) >> 11) + 0.5) * 0x1.0p-53;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

enum gen { GEN_MP, GEN_HEAVY, GEN_DUPS };

/* n sorted samples: Marchenko-Pastur (ratio 1, support [0, 4m]) with a few
 * outliers, Pareto(1.5) tails, or MP values rounded up to a coarse grid
 * (many exact duplicates). */
static void gen_spectrum(double *x, size_t n, enum gen g, uint64_t seed)
{
    uint64_t s = seed;
    size_t k;

    for (k = 0; k < n; k++) {
        double u, v;
        if (g == GEN_HEAVY) {
            x[k] = pow(rng_unif(&s), -1.0 / 1.5);
            continue;
        }
        do {
            u = rng_unif(&s);
            v = rng_unif(&s);
        } while (u * u + v * v > 1.0);
        x[k] = 4.0 * 100.0 * u * u;
        if (g == GEN_DUPS)
            x[k] = ceil(x[k] / 25.0) * 25.0;
    }
    for (k = 0; g == GEN_MP && k < 3 && k < n / 10; k++)
        x[n - 1 - k] = 400.0 * (1.5 + rng_unif(&s));
    qsort(x, n, sizeof *x, cmp_double);
}

/* Fit x with the fast and the naive scan; 1 if they agree bitwise. */
static int fast_equals_naive(const double *x, size_t n, enum pl_xmin rule)
{
    struct pl_params p;
    struct pl_result rf, rn;

    pl_params_default(&p);
    p.xmin = rule;
    if (pl_fit(x, n, &p, &rf, NULL) != ERR_OK || pl__fit_naive(x, n, &p, &rn, NULL) != ERR_OK)
        return 0;
    return rf.status == rn.status && rf.xmin_index == rn.xmin_index && same_bits(rf.D, rn.D) &&
           same_bits(rf.alpha, rn.alpha) && rf.n_candidates == rn.n_candidates;
}

static void test_fast_equals_naive_random_spectra(void)
{
    static const size_t sizes[] = {2, 3, 5, 17, 64, 500, 3000};
    enum pl_xmin rules[] = {PL_XMIN_PEAK, PL_XMIN_KS};
    double *x = malloc(3000 * sizeof *x);
    int g, s, r, t, n_fits = 0, n_bad = 0;

    CHECK(x != NULL);
    if (x == NULL)
        return;
    for (g = GEN_MP; g <= GEN_DUPS; g++)
        for (s = 0; s < (int)(sizeof sizes / sizeof *sizes); s++)
            for (t = 0; t < (sizes[s] <= 64 ? 20 : 1); t++)
                for (r = 0; r < 2; r++) {
                    gen_spectrum(x, sizes[s], (enum gen)g, 1000u * (uint64_t)s + (uint64_t)t);
                    n_fits++;
                    if (!fast_equals_naive(x, sizes[s], rules[r])) {
                        n_bad++;
                        fprintf(stderr, "fast != naive: gen %d n %zu trial %d rule %d\n", g,
                                sizes[s], t, (int)rules[r]);
                    }
                }
    printf("fast vs naive: %d fits, %d differ\n", n_fits, n_bad);
    CHECK(n_fits > 200);
    CHECK_EQ_INT(n_bad, 0);
    free(x);
}

/* --- reference vectors ------------------------------------------------------ */

static double json_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The pl_params of a result's `params`: fix_fingers median/xmin_mid -> MID,
 * xmin_peak -> PEAK, null or any other name -> full KS scan. */
static void ref_params(const cJSON *params, struct pl_params *p)
{
    const cJSON *ff = cJSON_GetObjectItemCaseSensitive(params, "fix_fingers");

    pl_params_default(p);
    p->xmin = PL_XMIN_KS;
    if (cJSON_IsString(ff) &&
        (strcmp(ff->valuestring, "median") == 0 || strcmp(ff->valuestring, "xmin_mid") == 0))
        p->xmin = PL_XMIN_MID;
    else if (cJSON_IsString(ff) && strcmp(ff->valuestring, "xmin_peak") == 0)
        p->xmin = PL_XMIN_PEAK;
    p->filter_zeros = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params, "filter_zeros"));
    p->xmin_pos = json_num(params, "xmin_pos");
    p->bins = (int)json_num(params, "bins");
    p->eig_threshold = json_num(params, "EVALS_THRESH");
}

static int near_rel(double a, double b, double rel)
{
    return fabs(a - b) <= rel * fabs(b);
}

/* Fit the `eigs` of `want` and compare with it (and with `f64` if flagged). */
static int ref_check_fit(const char *what, const cJSON *want, const cJSON *eigs,
                         const struct pl_params *p, int flagged)
{
    const cJSON *f64 = cJSON_GetObjectItemCaseSensitive(want, "f64"), *v;
    int64_t n = cJSON_GetArraySize(eigs), k = 0, idx = (int64_t)json_num(want, "xmin_index");
    int64_t idx64 = flagged ? (int64_t)json_num(f64, "xmin_index") : idx;
    double *x = malloc((size_t)n * sizeof *x), a = json_num(want, "alpha"), D = json_num(want, "D");
    double a64 = flagged ? json_num(f64, "alpha") : a, D64 = flagged ? json_num(f64, "D") : D;
    struct pl_result r;
    int ok;

    if (x == NULL)
        return 0;
    cJSON_ArrayForEach(v, eigs) x[k++] = v->valuedouble;
    ok = pl_fit(x, (size_t)n, p, &r, NULL) == ERR_OK && r.status == PL_STATUS_OK;
    ok = ok && (near_rel(r.alpha, a, 1e-3) || near_rel(r.alpha, a64, 1e-3));
    ok = ok && (flagged ? fabs(r.D - D) <= 1e-3 || fabs(r.D - D64) <= 1e-3 : fabs(r.D - D) <= 1e-4);
    ok = ok && (r.xmin_index == idx || r.xmin_index == idx64);
    ok = ok && (r.n_tail == (int64_t)json_num(want, "n_tail") || r.n_tail == n - idx64);
    ok = ok && r.n_fitted == n;
    if (!ok)
        fprintf(stderr,
                "%s: alpha %.9g (want %.9g / %.9g) D %.9g (want %.9g) index %lld "
                "(want %lld) status %s\n",
                what, r.alpha, a, a64, r.D, D, (long long)r.xmin_index, (long long)idx,
                r.status == PL_STATUS_OK ? "ok" : r.reason);
    free(x);
    return ok;
}

/* Every fit of one case file; returns the number checked, adds failures. */
static int ref_check_case(const char *path, int *n_bad)
{
    char *text = fu_read(path, NULL), what[256];
    cJSON *doc = text ? cJSON_Parse(text) : NULL, *res, *div;
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(doc, "results");
    int n = 0, d;

    cJSON_ArrayForEach(res, results)
    {
        const cJSON *eigs = cJSON_GetObjectItemCaseSensitive(res, "eigs");
        const cJSON *divs = cJSON_GetObjectItemCaseSensitive(res, "divisions");
        int flagged = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "precision_sensitive"));
        struct pl_params p;

        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "skipped")))
            continue;
        ref_params(cJSON_GetObjectItemCaseSensitive(res, "params"), &p);
        if (cJSON_IsArray(eigs)) {
            snprintf(what, sizeof what, "%s %s", path, res->string);
            n++;
            *n_bad += !ref_check_fit(what, res, eigs, &p, flagged);
        }
        d = 0;
        cJSON_ArrayForEach(div, divs)
        {
            eigs = cJSON_GetObjectItemCaseSensitive(div, "eigs");
            if (!cJSON_IsArray(eigs))
                continue;
            snprintf(what, sizeof what, "%s %s division %d", path, res->string, d++);
            n++;
            *n_bad += !ref_check_fit(what, div, eigs, &p, flagged);
        }
    }
    if (doc == NULL)
        fprintf(stderr, "%s: unreadable\n", path);
    *n_bad += doc == NULL;
    cJSON_Delete(doc);
    free(text);
    return n;
}

static void test_reference_vectors(void)
{
    glob_t g;
    size_t k;
    int n = 0, n_bad = 0;

    CHECK_EQ_INT(glob("tests/fixtures/numerics/*.json", 0, NULL, &g), 0);
    for (k = 0; k < g.gl_pathc; k++) {
        const char *base = strrchr(g.gl_pathv[k], '/') + 1;
        if (strcmp(base, "index.json") == 0 || strncmp(base, "mapping_", 8) == 0)
            continue;
        n += ref_check_case(g.gl_pathv[k], &n_bad);
    }
    globfree(&g);
    printf("reference vectors: %d case/mode fits checked, %d failed\n", n, n_bad);
    CHECK(n > 100);
    CHECK_EQ_INT(n_bad, 0);
}

int main(void)
{
    test_mid_n4_alpha_and_D_by_formula();
    test_mid_n5_alpha_2();
    test_mid_n6_xmin_pos_3();
    test_ks_n3_picks_smaller_D();
    test_mid_index_is_true_division_truncated();
    test_peak_value_on_bin_edge_goes_up();
    test_peak_top_value_in_last_bin();
    test_peak_ties_pick_first_bin();
    test_peak_log10_lower_bound_quirk();
    test_peak_upper_bound_is_inclusive();
    test_peak_empty_candidates_is_sentinel();
    test_scan_ties_pick_first_index();
    test_all_equal_spectrum();
    test_exact_zeros_per_rule();
    test_fewer_than_two_values_fail();
    test_filter_zeros_and_fallback();
    test_bad_input_is_invalid();
    test_fast_equals_naive_random_spectra();
    test_reference_vectors();
    return check_report("test_powerlaw");
}
