/* test_summary.c -- core/numerics/summary: a checkpoint's summary is
 * WeightWatcher's get_summary (the mean of each metric over the layers that
 * have it) plus the same means weighted by parameter count, and the layer
 * counts per status and warning. Values worked out by hand below.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/numerics/summary.h"
#include "tests/check.h"

/* An ok layer with alpha `a` and the other summary metrics derived from it
 * (so each metric has its own known value). */
static struct farms_result ok_layer(double a)
{
    struct farms_result r;

    memset(&r, 0, sizeof r);
    r.status = FARMS_STATUS_OK;
    r.alpha = a;
    r.alpha_hat = 2 * a;
    r.log_norm = a + 1;
    r.log_spectral_norm = a - 1;
    r.log_alpha_norm = 10 * a;
    r.stable_rank = a * a;
    r.mp_softrank = a / 10;
    return r;
}

/* The summary metrics are WeightWatcher 0.7.5.5's get_summary list (all of
 * them: farmsd computes each column), and names round-trip. */
static void test_metric_set_is_weightwatchers(void)
{
    static const char *const ww[] = {
        "log_norm",          "alpha",       "alpha_weighted", "log_alpha_norm",
        "log_spectral_norm", "stable_rank", "mp_softrank"};

    CHECK_EQ_INT(FARMS_SUMMARY_COUNT, 7);
    for (size_t i = 0; i < sizeof ww / sizeof ww[0]; i++) {
        int m = farms_summary_metric_from_name(ww[i]);

        CHECK(m >= 0);
        CHECK_STR_EQ(farms_summary_metric_name((enum farms_summary_metric)m), ww[i]);
    }
    CHECK_STR_EQ(farms_summary_metric_name(FARMS_SUMMARY_ALPHA), "alpha");
    CHECK_STR_EQ(farms_summary_metric_name(FARMS_SUMMARY_COUNT), "?");
    CHECK_EQ_INT(farms_summary_metric_from_name("alpha_hat"), -1);
    CHECK_EQ_INT(farms_summary_metric_from_name("Alpha"), -1);
    CHECK_EQ_INT(farms_summary_metric_from_name(NULL), -1);
}

/* alphas 2 (100 params) and 4 (300 params): plain mean 3, weighted
 * (2*100 + 4*300) / 400 = 3.5; a skipped and a failed layer count in
 * n_layers only; warnings are counted. */
static void test_plain_and_weighted_means(void)
{
    struct farms_result r[4];
    int64_t params[4] = {100, 300, 5000, 7000};
    struct farms_summary s;

    r[0] = ok_layer(2);
    r[0].warning = FARMS_WARNING_OVER_TRAINED;
    r[1] = ok_layer(4);
    memset(&r[2], 0, sizeof r[2]);
    r[2].status = FARMS_STATUS_SKIPPED;
    r[2].alpha = 100; /* ignored: not ok */
    memset(&r[3], 0, sizeof r[3]);
    r[3].status = FARMS_STATUS_FAILED;
    r[3].warning = FARMS_WARNING_SUSPECT_FIT;
    farms_summary_compute(r, params, 4, &s);
    CHECK_EQ_INT(s.n_layers, 4);
    CHECK_EQ_INT(s.n_ok, 2);
    CHECK_EQ_INT(s.n_over, 1);
    CHECK_EQ_INT(s.n_under, 0);
    CHECK_EQ_INT(s.n_suspect, 1);
    CHECK_EQ_INT(s.v[FARMS_SUMMARY_ALPHA].n_layers, 2);
    CHECK_NEAR(s.v[FARMS_SUMMARY_ALPHA].mean, 3.0, 1e-15);
    CHECK_NEAR(s.v[FARMS_SUMMARY_ALPHA].weighted_mean, 3.5, 1e-15);
    CHECK_NEAR(s.v[FARMS_SUMMARY_ALPHA_WEIGHTED].mean, 6.0, 1e-15);
    CHECK_NEAR(s.v[FARMS_SUMMARY_ALPHA_WEIGHTED].weighted_mean, 7.0, 1e-15);
    CHECK_NEAR(s.v[FARMS_SUMMARY_LOG_NORM].mean, 4.0, 1e-15);
    CHECK_NEAR(s.v[FARMS_SUMMARY_LOG_SPECTRAL_NORM].weighted_mean, 2.5, 1e-15);
    CHECK_NEAR(s.v[FARMS_SUMMARY_LOG_ALPHA_NORM].mean, 30.0, 1e-13);
    CHECK_NEAR(s.v[FARMS_SUMMARY_STABLE_RANK].mean, 10.0, 1e-14);          /* (4 + 16) / 2 */
    CHECK_NEAR(s.v[FARMS_SUMMARY_STABLE_RANK].weighted_mean, 13.0, 1e-14); /* 5200 / 400 */
    CHECK_NEAR(s.v[FARMS_SUMMARY_MP_SOFTRANK].weighted_mean, 0.35, 1e-15);
}

/* Equal sizes: the weighted mean is the plain one. */
static void test_equal_sizes_weigh_alike(void)
{
    struct farms_result r[3] = {ok_layer(2.25), ok_layer(3.5), ok_layer(5.0)};
    int64_t params[3] = {4096, 4096, 4096};
    struct farms_summary s;

    farms_summary_compute(r, params, 3, &s);
    CHECK_NEAR(s.v[FARMS_SUMMARY_ALPHA].mean, 3.5833333333333335, 1e-15);
    CHECK_NEAR(s.v[FARMS_SUMMARY_ALPHA].weighted_mean, s.v[FARMS_SUMMARY_ALPHA].mean, 1e-15);
}

/* A metric a layer lacks (NaN, as mp_softrank without the MP fit, or an
 * infinity) leaves that layer out of that metric only; a metric no layer
 * has is NaN with n_layers 0. */
static void test_missing_values_are_left_out(void)
{
    struct farms_result r[3] = {ok_layer(2), ok_layer(3), ok_layer(5)};
    int64_t params[3] = {10, 10, 20};
    struct farms_summary s;

    r[1].alpha = NAN;
    r[2].log_norm = INFINITY;
    for (int i = 0; i < 3; i++)
        r[i].mp_softrank = NAN;
    farms_summary_compute(r, params, 3, &s);
    CHECK_EQ_INT(s.v[FARMS_SUMMARY_ALPHA].n_layers, 2);
    CHECK_NEAR(s.v[FARMS_SUMMARY_ALPHA].mean, 3.5, 1e-15);
    CHECK_NEAR(s.v[FARMS_SUMMARY_ALPHA].weighted_mean, 4.0, 1e-15); /* (20 + 100) / 30 */
    CHECK_EQ_INT(s.v[FARMS_SUMMARY_LOG_NORM].n_layers, 2);
    CHECK_NEAR(s.v[FARMS_SUMMARY_LOG_NORM].mean, 3.5, 1e-15); /* (3 + 4) / 2 */
    CHECK_EQ_INT(s.v[FARMS_SUMMARY_MP_SOFTRANK].n_layers, 0);
    CHECK(isnan(s.v[FARMS_SUMMARY_MP_SOFTRANK].mean));
    CHECK(isnan(s.v[FARMS_SUMMARY_MP_SOFTRANK].weighted_mean));
}

/* No layers, or no parameter counts: means NaN where nothing weighs. */
static void test_empty_and_unweighted(void)
{
    struct farms_result r[2] = {ok_layer(2), ok_layer(4)};
    struct farms_summary s;

    farms_summary_compute(NULL, NULL, 0, &s);
    CHECK_EQ_INT(s.n_layers, 0);
    CHECK(isnan(s.v[FARMS_SUMMARY_ALPHA].mean));
    farms_summary_compute(r, NULL, 2, &s);
    CHECK_NEAR(s.v[FARMS_SUMMARY_ALPHA].mean, 3.0, 1e-15);
    CHECK(isnan(s.v[FARMS_SUMMARY_ALPHA].weighted_mean));
}

int main(void)
{
    test_metric_set_is_weightwatchers();
    test_plain_and_weighted_means();
    test_equal_sizes_weigh_alike();
    test_missing_values_are_left_out();
    test_empty_and_unweighted();
    return check_report("test_summary");
}
