/* test_farms.c -- FARMS windows, conv divisions, eigenvalues, sliding Grams,
 * presets (docs/numerics.md). Reference-vector checks are in
 * test_vectors.c.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "core/err.h"
#include "core/numerics/esd.h"
#include "core/numerics/farms.h"
#include "core/numerics/farms_int.h"
#include "core/numerics/preset.h"
#include "tests/check.h"

/* --- helpers ---------------------------------------------------------------- */

static uint64_t rng_state = 88172645463325252ULL;

static double rng_gauss(void)
{
    double u1, u2;
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    u1 = ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    u2 = ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static double *gauss_matrix(int64_t n)
{
    double *w = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; w != NULL && i < n; i++)
        w[i] = rng_gauss();
    return w;
}

static struct farms_params params_of(const char *preset)
{
    struct farms_params p;
    memset(&p, 0, sizeof(p));
    CHECK_EQ_INT(preset_get(preset, &p, NULL), ERR_OK);
    return p;
}

static struct farms_layout layout_of(struct farms_params p, int64_t rows, int64_t cols)
{
    struct farms_layout l;
    int64_t shape[2] = {rows, cols};
    struct farms_shape fs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = shape};
    CHECK_EQ_INT(farms_layout_compute(&p, &fs, &l, NULL), ERR_OK);
    return l;
}

/* --- Python arithmetic ------------------------------------------------------ */

static void test_integer_floor_division_rounds_toward_minus_infinity(void)
{
    CHECK_EQ_INT(farms__floordiv(7, 2), 3);
    CHECK_EQ_INT(farms__floordiv(-7, 2), -4);
    CHECK_EQ_INT(farms__floordiv(-36, 8), -5); /* (64 - 100) // (9 - 1) */
    CHECK_EQ_INT(farms__floordiv(-40, 1), -40);
    CHECK_EQ_INT(farms__floordiv(7, -2), -4);
    CHECK_EQ_INT(farms__floordiv(-6, 3), -2);
}

static void test_float_floor_division_is_cpythons(void)
{
    CHECK_NEAR(farms__floordiv_f(32, 1 / 0.75), 24, 0);
    CHECK_NEAR(farms__floordiv_f(256, 1.25), 204, 0);
    CHECK_NEAR(farms__floordiv_f(30, 1.5), 20, 0);
    CHECK_NEAR(farms__floordiv_f(30, 1 / 0.5), 15, 0);
    /* 1 // 0.1 == 9.0 in Python although 1 / 0.1 rounds to 10.0 */
    CHECK_NEAR(farms__floordiv_f(1, 0.1), 9, 0);
    CHECK_NEAR(farms__floordiv_f(-7.5, 2), -4, 0);
    CHECK(isnan(farms__floordiv_f(1, 0)));
}

static void test_slice_rule_counts_negative_starts_from_the_end(void)
{
    int64_t lo, hi;
    farms__slice(-40, 100, 60, &lo, &hi); /* 60 rows, window 100: last 40 rows */
    CHECK_EQ_INT(lo, 20);
    CHECK_EQ_INT(hi, 60);
    farms__slice(-70, 100, 30, &lo, &hi); /* 30 rows: -70+30 < 0 -> whole side */
    CHECK_EQ_INT(lo, 0);
    CHECK_EQ_INT(hi, 30);
    farms__slice(-1, 100, 99, &lo, &hi); /* 99 rows: 1 row left */
    CHECK_EQ_INT(hi - lo, 1);
    farms__slice(56, 64, 512, &lo, &hi);
    CHECK_EQ_INT(lo, 56);
    CHECK_EQ_INT(hi, 120);
}

/* --- dense window layouts ------------------------------------------------------ */

static void test_layout_512x64_llm_variant_clamps_window_to_64(void)
{
    struct farms_params p = params_of("farms-llm");
    p.window_rows = 100;
    p.windows_per_dim = 9;
    struct farms_layout l = layout_of(p, 512, 64);
    CHECK_EQ_INT(l.window_rows, 64);
    CHECK_EQ_INT(l.row_step, 56);
    CHECK_EQ_INT(l.n_row_windows, 9);
    CHECK_EQ_INT(l.n_col_windows, 1);
    CHECK_EQ_INT(farms_layout_row_start(&l, 8), 448); /* rows 448..511: all covered */
    CHECK_EQ_INT(l.window_h, 64);
    CHECK_EQ_INT(l.window_w, 64);
}

static void test_layout_512x64_imgcls_variant_leaves_rows_unsampled(void)
{
    struct farms_layout l = layout_of(params_of("farms-cv"), 512, 64);
    CHECK_EQ_INT(l.row_step, 51);
    CHECK_EQ_INT(l.n_row_windows, 9);
    CHECK_EQ_INT(farms_layout_row_start(&l, 8), 408); /* rows 508..511 never sampled */
    CHECK_EQ_INT(l.window_h, 100);
    CHECK_EQ_INT(l.window_w, 36); /* cols 28..63 */
    CHECK_EQ_INT(farms_layout_col_start(&l, 0), 28);
    CHECK_EQ_INT(l.windows, 9);
}

static void test_layout_small_matrices_under_imgcls_quirk(void)
{
    struct farms_params p = params_of("farms-cv");
    struct farms_layout l = layout_of(p, 64, 64);
    CHECK_EQ_INT(l.windows, 1);
    CHECK_EQ_INT(l.window_h, 36);
    CHECK_EQ_INT(l.window_w, 36);
    CHECK_EQ_INT(farms_layout_row_start(&l, 0), 28);
    CHECK_EQ_INT(farms_layout_col_start(&l, 0), 28);
    l = layout_of(p, 60, 90);
    CHECK_EQ_INT(l.window_h, 40);
    CHECK_EQ_INT(l.window_w, 10);
    CHECK_EQ_INT(farms_layout_row_start(&l, 0), 20);
    CHECK_EQ_INT(farms_layout_col_start(&l, 0), 80);
    l = layout_of(p, 30, 50);
    CHECK_EQ_INT(l.window_h, 30);
    CHECK_EQ_INT(l.window_w, 50);
    CHECK_EQ_INT(l.windows, 1);
}

static void test_layout_4x3_llm_gives_two_overlapping_windows(void)
{
    struct farms_layout l = layout_of(params_of("farms-llm"), 4, 3);
    CHECK_EQ_INT(l.window_rows, 3);
    CHECK_EQ_INT(l.n_row_windows, 2);
    CHECK_EQ_INT(l.n_col_windows, 1);
    CHECK_EQ_INT(farms_layout_row_start(&l, 1), 1);
    CHECK_EQ_INT(l.window_h, 3);
    CHECK_EQ_INT(l.window_w, 3);
}

static void test_layout_llama_paper_shapes(void)
{
    struct farms_params p = params_of("farms-llm");
    struct farms_layout l = layout_of(p, 4096, 4096); /* q_proj */
    CHECK_EQ_INT(l.row_step, 232);
    CHECK_EQ_INT(l.col_step, 232);
    CHECK_EQ_INT(l.windows, 100);
    CHECK_EQ_INT(l.window_h, 2000);
    l = layout_of(p, 11008, 4096); /* up_proj */
    CHECK_EQ_INT(l.row_step, 1000);
    CHECK_EQ_INT(l.col_step, 232);
    CHECK_EQ_INT(l.windows, 100);
    p.windows_per_dim = 15;
    l = layout_of(p, 4096, 11008); /* down_proj */
    CHECK_EQ_INT(l.row_step, 149);
    CHECK_EQ_INT(l.col_step, 643);
    CHECK_EQ_INT(l.windows, 225);
}

static void test_layout_q_ratio_truncates_window_cols(void)
{
    struct farms_params p = params_of("farms-cv");
    p.q_ratio = 1.15;
    CHECK_EQ_INT(layout_of(p, 1000, 1000).window_cols, 114); /* int(100 * 1.15) */
    p.q_ratio = 0.75;
    CHECK_EQ_INT(layout_of(p, 1000, 1000).window_cols, 75);
}

static void test_layout_ops_bounds_window_count(void)
{
    struct farms_params p = params_of("farms-cv");
    struct farms_layout l = layout_of(p, 104, 100); /* rows - nrs = 4 < ops - 1 */
    CHECK_EQ_INT(l.row_step, 1);
    CHECK_EQ_INT(l.n_row_windows, 5);
    CHECK_EQ_INT(l.n_col_windows, 1);
}

/* --- conv divisions ------------------------------------------------------------ */

static void test_conv_block_shapes(void)
{
    int64_t br, bc;
    farms__conv_block(32, 0.75, &br, &bc);
    CHECK_EQ_INT(br, 32);
    CHECK_EQ_INT(bc, 24);
    farms__conv_block(256, 1.25, &br, &bc);
    CHECK_EQ_INT(br, 204);
    CHECK_EQ_INT(bc, 256);
    farms__conv_block(1, 1.5, &br, &bc); /* max(1, 0) */
    CHECK_EQ_INT(br, 1);
}

static void test_conv_layout_100x30_q15_uses_three_divisions_of_20_rows(void)
{
    struct farms_params p = params_of("farms-cv");
    int64_t shape[4] = {100, 30, 3, 3};
    struct farms_shape fs = {.kind = FARMS_KIND_CONV2D, .n_dims = 4, .shape = shape};
    struct farms_layout l;
    p.q_ratio = 1.5;
    CHECK_EQ_INT(farms_layout_compute(&p, &fs, &l, NULL), ERR_OK);
    CHECK_EQ_INT(l.divisions, 3);
    CHECK_EQ_INT(l.window_h, 20);
    CHECK_EQ_INT(l.window_w, 30);
    CHECK_EQ_INT(l.rows_used, 60);
    CHECK_EQ_INT(l.kernel_positions, 9);
    shape[0] = 16, shape[1] = 1; /* cols 1: 16 divisions of 1x1 blocks */
    p.q_ratio = 1.0;
    CHECK_EQ_INT(farms_layout_compute(&p, &fs, &l, NULL), ERR_OK);
    CHECK_EQ_INT(l.divisions, 16);
    CHECK_EQ_INT(l.window_h * l.window_w, 1);
}

/* --- eigenvalues --------------------------------------------------------------- */

static void test_eigs_of_diagonal_matrix_are_squares(void)
{
    double a[4 * 3] = {0}, out[3];
    struct esd_ws *ws = NULL;
    a[0 * 3 + 0] = 3, a[1 * 3 + 1] = -2, a[2 * 3 + 2] = 0.5;
    CHECK_EQ_INT(esd_ws_new(3, 0, &ws, NULL), ERR_OK);
    CHECK_EQ_INT(
        esd_eigs(ws, &(struct esd_block){.a = a, .h = 4, .w = 3, .lda = 3}, 1.0, out, NULL),
        ERR_OK);
    CHECK_NEAR(out[0], 0.25, 1e-14);
    CHECK_NEAR(out[1], 4, 1e-14);
    CHECK_NEAR(out[2], 9, 1e-14);
    /* the 3x2 top-left view (leading dimension 3), scaled by 0.5 */
    CHECK_EQ_INT(
        esd_eigs(ws, &(struct esd_block){.a = a, .h = 3, .w = 2, .lda = 3}, 0.5, out, NULL),
        ERR_OK);
    CHECK_NEAR(out[0], 2, 1e-14);
    CHECK_NEAR(out[1], 4.5, 1e-14);
    esd_ws_free(ws);
}

static void test_eigs_of_reflected_diagonal_keep_the_spectrum(void)
{
    enum { N = 50 };
    double v[N], a[N * N], out[N], vv = 0;
    struct esd_ws *ws = NULL;
    for (int i = 0; i < N; i++)
        v[i] = rng_gauss(), vv += v[i] * v[i];
    /* A = (I - 2 v v^T / v^T v) diag(1..N): singular values 1..N */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            a[i * N + j] = ((i == j) - 2 * v[i] * v[j] / vv) * (j + 1);
    CHECK_EQ_INT(esd_ws_new(N, 0, &ws, NULL), ERR_OK);
    CHECK_EQ_INT(
        esd_eigs(ws, &(struct esd_block){.a = a, .h = N, .w = N, .lda = N}, 1.0, out, NULL),
        ERR_OK);
    for (int i = 0; i < N; i++)
        CHECK_NEAR(out[i], (double)(i + 1) * (i + 1), 1e-11 * N * N);
    esd_ws_free(ws);
}

static void test_eigs_workspace_too_small_is_an_error(void)
{
    double a[16] = {0}, out[4];
    struct esd_ws *ws = NULL;
    struct err e;
    CHECK_EQ_INT(esd_ws_new(2, 0, &ws, NULL), ERR_OK);
    CHECK_EQ_INT(esd_eigs(ws, &(struct esd_block){.a = a, .h = 4, .w = 4, .lda = 4}, 1.0, out, &e),
                 ERR_INVAL);
    esd_ws_free(ws);
    CHECK_EQ_INT(esd_ws_new(ESD_MAX_N + 1, 0, &ws, &e), ERR_TOOBIG);
    CHECK(ws == NULL);
}

/* Eigenvalues of every window through the plan (sliding Grams) equal those
 * of each window formed from scratch. */
static void check_sliding_matches_scratch(struct farms_params p, int64_t rows, int64_t cols,
                                          int hint)
{
    int64_t shape[2] = {rows, cols}, max_n, max_g;
    struct farms_shape fs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = shape};
    double *w = gauss_matrix(rows * cols), *ref = NULL, lmax = 0, dmax = 0;
    struct farms_plan *plan = NULL;
    struct esd_ws *ws = NULL;

    CHECK_EQ_INT(farms_plan_new(&p, &fs, hint, &plan, NULL), ERR_OK);
    if (plan == NULL || w == NULL)
        return;
    farms_plan_ws_need(plan, &max_n, &max_g);
    CHECK_EQ_INT(esd_ws_new(max_n, max_g, &ws, NULL), ERR_OK);
    for (int64_t u = farms_plan_n_units(plan) - 1; u >= 0; u--) /* any order */
        CHECK_EQ_INT(farms_unit_run(plan, u, w, ws, NULL), ERR_OK);
    ref = malloc((size_t)max_n * sizeof(double));
    for (int64_t i = 0; i < plan->lay.n_row_windows; i++)
        for (int64_t j = 0; j < plan->lay.n_col_windows; j++) {
            int64_t r0 = farms_layout_row_start(&plan->lay, i);
            int64_t c0 = farms_layout_col_start(&plan->lay, j);
            const double *got = plan->eigs + (i * plan->lay.n_col_windows + j) * plan->gram_n;
            struct esd_block b = {.a = w + r0 * cols + c0,
                                  .h = plan->lay.window_h,
                                  .w = plan->lay.window_w,
                                  .lda = cols};
            CHECK_EQ_INT(esd_eigs(ws, &b, 1.0, ref, NULL), ERR_OK);
            for (int64_t k = 0; k < plan->gram_n; k++) {
                lmax = ref[k] > lmax ? ref[k] : lmax;
                dmax = fabs(got[k] - ref[k]) > dmax ? fabs(got[k] - ref[k]) : dmax;
            }
        }
    CHECK(lmax > 0);
    CHECK(dmax <= 1e-10 * lmax);
    free(ref);
    free(w);
    esd_ws_free(ws);
    farms_plan_free(plan);
}

static void test_sliding_gram_equals_scratch_gram(void)
{
    struct farms_params p = params_of("farms-llm");
    p.window_rows = 200;
    check_sliding_matches_scratch(p, 600, 500, 1); /* square windows, steps 44 / 33 */
    check_sliding_matches_scratch(p, 500, 600, 4); /* other direction, split units */
    p.q_ratio = 0.5;
    check_sliding_matches_scratch(p, 900, 300, 2); /* tall 200x100 windows slide rows */
    p.q_ratio = 2.0;
    check_sliding_matches_scratch(p, 300, 1200, 3); /* wide 200x400 windows slide cols */
    p.window_rows = 100;
    p.q_ratio = 0.5;
    p.windows_per_dim = 60; /* 60 windows of 100x50 sliding by 1 row: > refresh period */
    check_sliding_matches_scratch(p, 200, 60, 1);
}

/* Two threads running distinct units of one plan (own workspaces) give the
 * same result as one thread (the plan's contract; also run under make tsan). */
struct unit_worker {
    struct farms_plan *plan;
    const double *w;
    int64_t first;
    enum err_code rc;
};

static void *unit_worker_main(void *arg)
{
    struct unit_worker *k = arg;
    struct esd_ws *ws = NULL;
    int64_t mn, mg;
    farms_plan_ws_need(k->plan, &mn, &mg);
    k->rc = esd_ws_new(mn, mg, &ws, NULL);
    for (int64_t u = k->first; k->rc == ERR_OK && u < farms_plan_n_units(k->plan); u += 2)
        k->rc = farms_unit_run(k->plan, u, k->w, ws, NULL);
    esd_ws_free(ws);
    return NULL;
}

static void test_units_run_in_parallel_threads(void)
{
    int64_t shape[2] = {400, 300};
    struct farms_shape fs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = shape};
    double *w = gauss_matrix(shape[0] * shape[1]);
    struct farms_params p = params_of("farms-llm");
    struct farms_plan *plan = NULL;
    struct farms_result one, two;
    struct unit_worker k[2];
    pthread_t tid[2];
    p.window_rows = 150;
    CHECK_EQ_INT(farms_analyze(&p, &fs, w, &one, NULL), ERR_OK);
    CHECK_EQ_INT(farms_plan_new(&p, &fs, 2, &plan, NULL), ERR_OK);
    CHECK(farms_plan_n_units(plan) >= 2);
    for (int i = 0; i < 2; i++) {
        k[i] = (struct unit_worker){.plan = plan, .w = w, .first = i};
        CHECK_EQ_INT(pthread_create(&tid[i], NULL, unit_worker_main, &k[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(tid[i], NULL);
        CHECK_EQ_INT(k[i].rc, ERR_OK);
    }
    CHECK_EQ_INT(farms_plan_finish(plan, &two, NULL), ERR_OK);
    CHECK_EQ_INT(two.num_eigs, 100 * 150);
    CHECK_REL(two.alpha, one.alpha, 1e-9);
    CHECK_REL(two.norm, one.norm, 1e-12);
    CHECK_EQ_INT(two.xmin_index, one.xmin_index);
    farms_plan_free(plan);
    free(w);
}

/* --- layer results ------------------------------------------------------------ */

static void test_dense_layer_with_too_few_eigs_is_skipped(void)
{
    double w[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13};
    int64_t shape[2] = {4, 3};
    struct farms_shape fs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = shape};
    struct farms_params p = params_of("farms-cv");
    struct farms_result r;
    CHECK_EQ_INT(farms_analyze(&p, &fs, w, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.status, FARMS_STATUS_SKIPPED);
    CHECK_EQ_INT(r.num_eigs, 3);
    CHECK(strstr(r.reason, "min_eigs") != NULL);
    p = params_of("farms-llm"); /* two 3x3 windows -> 6 eigenvalues -> analysed */
    CHECK_EQ_INT(farms_analyze(&p, &fs, w, &r, NULL), ERR_OK);
    CHECK(r.status != FARMS_STATUS_SKIPPED);
    CHECK_EQ_INT(r.num_eigs, 6);
    CHECK_EQ_INT(r.windows, 2);
}

static void test_nan_weights_give_a_failed_layer(void)
{
    int64_t shape[2] = {40, 30};
    struct farms_shape fs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = shape};
    double *w = gauss_matrix(shape[0] * shape[1]);
    struct farms_params p = params_of("full");
    struct farms_result r;
    w[77] = NAN;
    CHECK_EQ_INT(farms_analyze(&p, &fs, w, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.status, FARMS_STATUS_FAILED);
    CHECK(isnan(r.alpha));
    free(w);
}

static void test_gaussian_layer_metrics_are_consistent(void)
{
    int64_t shape[2] = {300, 200};
    struct farms_shape fs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = shape};
    double *w = gauss_matrix(shape[0] * shape[1]), fro = 0;
    struct farms_params p = params_of("full");
    struct farms_result r;
    for (int64_t i = 0; i < shape[0] * shape[1]; i++)
        fro += w[i] * w[i];
    CHECK_EQ_INT(farms_analyze(&p, &fs, w, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.status, FARMS_STATUS_OK);
    CHECK_EQ_INT(r.num_eigs, 200);
    CHECK_REL(r.norm, fro, 1e-12); /* sum of eigenvalues = squared Frobenius norm */
    CHECK_REL(r.stable_rank, r.norm / r.spectral_norm, 1e-15);
    CHECK_REL(r.alpha_hat, r.alpha * log10(r.spectral_norm), 1e-15);
    CHECK_EQ_INT(r.matrix_rank, 200);
    CHECK(r.entropy > 0.9 && r.entropy < 1.0);
    CHECK_EQ_INT(r.xmin_index + r.n_tail, r.n_fitted);
    free(w);
}

/* Run every unit of `plan` on `w` on this thread. */
static void run_all_units(struct farms_plan *plan, const double *w)
{
    struct esd_ws *ws = NULL;
    int64_t mn, mg;

    farms_plan_ws_need(plan, &mn, &mg);
    ERR_ASSERT(esd_ws_new(mn, mg, &ws, NULL) == ERR_OK);
    for (int64_t u = 0; u < farms_plan_n_units(plan); u++)
        CHECK_EQ_INT(farms_unit_run(plan, u, w, ws, NULL), ERR_OK);
    esd_ws_free(ws);
}

/* The largest eigenvalue of ESD d of a finished plan. */
static double plan_esd_max(const struct farms_plan *plan, int64_t d)
{
    int64_t n = 0;
    const double *x = farms_plan_eigs(plan, d, &n);
    double mx = -1;

    for (int64_t k = 0; x != NULL && k < n; k++)
        mx = x[k] > mx ? x[k] : mx;
    return mx;
}

/* xmax is the largest eigenvalue of the fitted ESD: of the pooled windows for
 * dense FARMS, the mean of the divisions' for conv FARMS; NaN when skipped. */
static void test_xmax_is_the_largest_fitted_eigenvalue(void)
{
    int64_t dshape[2] = {400, 300}, cshape[4] = {100, 30, 3, 3}, tiny[2] = {4, 3};
    struct farms_shape tfs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = tiny};
    struct farms_shape cfs = {.kind = FARMS_KIND_CONV2D, .n_dims = 4, .shape = cshape};
    struct farms_shape dfs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = dshape};
    double *w = gauss_matrix(dshape[0] * dshape[1]), want = 0, largest = 0;
    struct farms_params p = params_of("farms-llm");
    struct farms_plan *plan = NULL;
    struct farms_result r;

    p.window_rows = 150;
    CHECK_EQ_INT(farms_plan_new(&p, &dfs, 1, &plan, NULL), ERR_OK);
    run_all_units(plan, w);
    CHECK_EQ_INT(farms_plan_finish(plan, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.status, FARMS_STATUS_OK);
    CHECK(r.windows > 1);
    CHECK_EQ_INT(farms_plan_n_esd(plan), 1);
    CHECK_REL(r.xmax, plan_esd_max(plan, 0), 0);
    CHECK_REL(r.xmax, r.spectral_norm, 0); /* both from the fitted ESD */
    farms_plan_free(plan);

    p = params_of("farms-cv");
    CHECK_EQ_INT(farms_plan_new(&p, &cfs, 1, &plan, NULL), ERR_OK);
    run_all_units(plan, w);
    CHECK_EQ_INT(farms_plan_finish(plan, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.status, FARMS_STATUS_OK);
    CHECK(farms_plan_n_esd(plan) > 1); /* divisions */
    for (int64_t d = 0; d < farms_plan_n_esd(plan); d++) {
        want += plan_esd_max(plan, d) / (double)farms_plan_n_esd(plan);
        largest = fmax(largest, plan_esd_max(plan, d));
    }
    CHECK_REL(r.xmax, want, 1e-15);
    CHECK(r.xmax < largest); /* a mean, not the largest division's */
    farms_plan_free(plan);

    p = params_of("farms-cv");
    CHECK_EQ_INT(farms_analyze(&p, &tfs, w, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.status, FARMS_STATUS_SKIPPED);
    CHECK(isnan(r.xmax));
    free(w);
}

/* The same conv layer with a 1x1 kernel is the dense matrix, eigenvalues x0.5. */
static void test_conv_1x1_is_scaled_dense(void)
{
    int64_t dshape[2] = {64, 48}, cshape[4] = {64, 48, 1, 1};
    struct farms_shape cfs = {.kind = FARMS_KIND_CONV2D, .n_dims = 4, .shape = cshape};
    struct farms_shape dfs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = dshape};
    double *w = gauss_matrix(dshape[0] * dshape[1]);
    struct farms_params p = params_of("full");
    struct farms_result rd, rc;
    CHECK_EQ_INT(farms_analyze(&p, &dfs, w, &rd, NULL), ERR_OK);
    CHECK_EQ_INT(farms_analyze(&p, &cfs, w, &rc, NULL), ERR_OK);
    CHECK_REL(rc.spectral_norm, 0.5 * rd.spectral_norm, 1e-12);
    CHECK_REL(rc.alpha, rd.alpha, 1e-9); /* alpha is scale-free */
    free(w);
}

/* --- presets ---------------------------------------------------------------------- */

static void test_presets_match_the_paper_sets(void)
{
    struct farms_params p = params_of("farms-llm");
    struct err e;
    CHECK_EQ_INT(p.window_rows, 2000);
    CHECK(p.window_clamp);
    CHECK_EQ_INT(p.windows_per_dim, 10);
    CHECK_EQ_INT(p.xmin, PL_XMIN_PEAK);
    CHECK(!p.filter_zeros);
    p = params_of("farms-cv");
    CHECK_EQ_INT(p.window_rows, 100);
    CHECK(!p.window_clamp);
    CHECK_EQ_INT(p.windows_per_dim, 9);
    CHECK_EQ_INT(p.xmin, PL_XMIN_MID);
    CHECK_NEAR(p.xmin_pos, 2, 0);
    p = params_of("full");
    CHECK_EQ_INT(p.window_rows, 0);
    CHECK_EQ_INT(p.xmin, PL_XMIN_KS);
    CHECK(p.filter_zeros);
    CHECK(p.include_embeddings);
    CHECK_EQ_INT(preset_get("farms", &p, &e), ERR_NOTFOUND);
    CHECK_STR_EQ(preset_names()[0], "farms-llm");
    CHECK_STR_EQ(PRESET_DEFAULT_NAME, "farms-llm"); /* the default is a listed preset */
    CHECK_EQ_INT(preset_get(PRESET_DEFAULT_NAME, &p, &e), ERR_OK);
    CHECK_EQ_INT(p.window_rows, 2000);
    CHECK(preset_names()[3] == NULL);
}

/* Field by field (the struct has padding, so no memcmp); every field of
 * struct farms_params. */
static int params_equal(const struct farms_params *a, const struct farms_params *b)
{
    return a->window_rows == b->window_rows && a->q_ratio == b->q_ratio &&
           a->windows_per_dim == b->windows_per_dim && a->window_clamp == b->window_clamp &&
           a->xmin == b->xmin && a->xmin_pos == b->xmin_pos && a->bins == b->bins &&
           a->conv_norm == b->conv_norm && a->filter_zeros == b->filter_zeros &&
           a->eig_threshold == b->eig_threshold && a->min_eigs == b->min_eigs &&
           a->include_embeddings == b->include_embeddings;
}

static void test_preset_set_parses_strictly(void)
{
    struct farms_params p = params_of("farms-cv"), before;
    struct err e;
    CHECK_EQ_INT(preset_set(&p, "window_rows=500", &e), ERR_OK);
    CHECK_EQ_INT(p.window_rows, 500);
    CHECK_EQ_INT(preset_set(&p, "q_ratio=0.75", &e), ERR_OK);
    CHECK_NEAR(p.q_ratio, 0.75, 0);
    CHECK_EQ_INT(preset_set(&p, "xmin=ks", &e), ERR_OK);
    CHECK_EQ_INT(p.xmin, PL_XMIN_KS);
    CHECK_EQ_INT(preset_set(&p, "window_clamp=true", &e), ERR_OK);
    CHECK(p.window_clamp);
    CHECK_EQ_INT(preset_set(&p, "include_embeddings=false", &e), ERR_OK);
    before = p;
    CHECK_EQ_INT(preset_set(&p, "window_rows=12x", &e), ERR_INVAL);
    CHECK(strstr(e.msg, "window_rows") && strstr(e.msg, "12x"));
    CHECK_EQ_INT(preset_set(&p, "windows_per_dim=1", &e), ERR_INVAL); /* ops=1 divides by 0 */
    CHECK(strstr(e.msg, "windows_per_dim") != NULL);
    CHECK_EQ_INT(preset_set(&p, "q_ratio=0", &e), ERR_INVAL);
    CHECK_EQ_INT(preset_set(&p, "q_ratio=nan", &e), ERR_INVAL);
    CHECK_EQ_INT(preset_set(&p, "bins=0", &e), ERR_INVAL);
    CHECK_EQ_INT(preset_set(&p, "bins=99999999999", &e), ERR_INVAL);
    CHECK_EQ_INT(preset_set(&p, "xmin=median", &e), ERR_INVAL);
    CHECK_EQ_INT(preset_set(&p, "filter_zeros=1", &e), ERR_INVAL);
    CHECK_EQ_INT(preset_set(&p, "window_rows=", &e), ERR_INVAL);
    CHECK_EQ_INT(preset_set(&p, "window_rows=-3", &e), ERR_INVAL);
    CHECK_EQ_INT(preset_set(&p, "colour=red", &e), ERR_INVAL);
    CHECK(strstr(e.msg, "colour") != NULL);
    CHECK_EQ_INT(preset_set(&p, "window_rows", &e), ERR_INVAL);
    CHECK(params_equal(&p, &before)); /* failed overrides change nothing */
}

static void test_preset_json_is_canonical(void)
{
    struct farms_params a = params_of("farms-llm"), b = params_of("farms-cv");
    char ja[PRESET_JSON_MAX], jb[PRESET_JSON_MAX], tiny[16];
    struct err e;
    CHECK_EQ_INT(preset_to_json(&a, ja, sizeof(ja), &e), ERR_OK);
    CHECK_STR_EQ(ja, "{\"window_rows\":2000,\"q_ratio\":1,\"windows_per_dim\":10,"
                     "\"window_clamp\":true,\"xmin\":\"peak\",\"xmin_pos\":2,\"bins\":100,"
                     "\"conv_norm\":0.5,\"filter_zeros\":false,"
                     "\"eig_threshold\":1.0000000000000001e-05,\"min_eigs\":5,"
                     "\"include_embeddings\":false}");
    /* farms-cv plus the overrides that make it farms-llm gives the same text */
    CHECK_EQ_INT(preset_set(&b, "window_rows=2000", NULL), ERR_OK);
    CHECK_EQ_INT(preset_set(&b, "windows_per_dim=10", NULL), ERR_OK);
    CHECK_EQ_INT(preset_set(&b, "window_clamp=true", NULL), ERR_OK);
    CHECK_EQ_INT(preset_set(&b, "xmin=peak", NULL), ERR_OK);
    CHECK_EQ_INT(preset_to_json(&b, jb, sizeof(jb), &e), ERR_OK);
    CHECK_STR_EQ(ja, jb);
    CHECK_EQ_INT(preset_to_json(&a, tiny, sizeof(tiny), &e), ERR_TOOBIG);
}

/* --- Stage timings ----------------------------------------------------------- */

/* Every window of a sliding plan is counted once in the workspace's stage
 * counters: a Gram formed or updated, and one solver call; reset zeroes
 * them and esd_stats_add sums them. */
static void test_stage_timings_count_every_window(void)
{
    struct farms_params p = params_of("farms-llm");
    int64_t shape[2] = {100, 160}, mn, mg;
    struct farms_shape fs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = shape};
    double *w = gauss_matrix((int64_t)100 * 160);
    struct farms_plan *plan = NULL;
    struct esd_ws *ws = NULL;
    struct esd_stats sum = {0};
    const struct esd_stats *st;

    p.window_rows = 40;
    p.windows_per_dim = 5;
    CHECK_EQ_INT(farms_plan_new(&p, &fs, 1, &plan, NULL), ERR_OK);
    if (plan == NULL || w == NULL)
        goto out;
    farms_plan_ws_need(plan, &mn, &mg);
    CHECK_EQ_INT(esd_ws_new(mn, mg, &ws, NULL), ERR_OK);
    if (ws == NULL)
        goto out;
    st = esd_ws_stats(ws);
    CHECK_EQ_INT(st->n_eigs, 0);
    for (int64_t u = 0; u < farms_plan_n_units(plan); u++)
        CHECK_EQ_INT(farms_unit_run(plan, u, w, ws, NULL), ERR_OK);
    CHECK_EQ_INT(plan->lay.windows, 25);
    CHECK_EQ_INT(st->n_eigs, 25);
    CHECK_EQ_INT(st->n_gram_set + st->n_gram_update, 25);
    CHECK_EQ_INT(st->n_gram_set, farms_plan_n_units(plan)); /* one per run of windows */
    CHECK(st->gram_set_s >= 0 && st->gram_update_s >= 0 && st->copy_s >= 0);
    CHECK(st->reduce_s > 0 && st->eigs_s >= 0);
    esd_stats_add(&sum, st);
    esd_stats_add(&sum, st);
    CHECK_EQ_INT(sum.n_eigs, 50);
    CHECK_NEAR(sum.reduce_s, 2 * st->reduce_s, 1e-12);
    esd_ws_stats_reset(ws);
    CHECK_EQ_INT(st->n_eigs + st->n_gram_set + st->n_gram_update, 0);
    CHECK(st->gram_set_s == 0 && st->reduce_s == 0 && st->eigs_s == 0);
out:
    esd_ws_free(ws);
    farms_plan_free(plan);
    free(w);
}

/* The eigenvalues of the Gram of the h x n block a (scaled), through a
 * fresh workspace of side max_n, into out (n slots). */
static void esd_values(const double *a, int64_t h, int64_t n, int64_t max_n, double *out)
{
    struct esd_ws *ws = NULL;

    CHECK_EQ_INT(esd_ws_new(max_n, 0, &ws, NULL), ERR_OK);
    if (ws == NULL)
        return;
    CHECK_EQ_INT(
        esd_eigs(ws, &(struct esd_block){.a = a, .h = h, .w = n, .lda = n}, 1.0, out, NULL),
        ERR_OK);
    esd_ws_free(ws);
}

/* Values that differ from want[] in their bit patterns, not their values. */
static int64_t bits_differ(const double *got, const double *want, int64_t n)
{
    int64_t diff = 0;

    for (int64_t k = 0; k < n; k++) {
        uint64_t bg, bw;
        memcpy(&bg, &got[k], sizeof(bg));
        memcpy(&bw, &want[k], sizeof(bw));
        diff += bg != bw;
    }
    return diff;
}

/* The values-only driver dsyevd_2stage on the Gram of a, its arrays on
 * 64-byte lines as the workspace's are (OpenBLAS's AVX-512 kernels round by
 * alignment: with LAPACKE's own malloc'd work the driver's bits move). */
static void driver_values(const double *a, int64_t h, int64_t n, double *want)
{
    double *g = esd_f64_alloc((size_t)(n * n)), *work = NULL, wq = 0, dummy = 0;
    lapack_int iq = 0, *iwork = NULL, nn = (lapack_int)n;

    CHECK_EQ_INT(LAPACKE_dsyevd_2stage_work(LAPACK_COL_MAJOR, 'N', 'L', nn, &dummy, nn, &dummy, &wq,
                                            -1, &iq, -1),
                 0);
    work = esd_f64_alloc((size_t)wq + 1);
    iwork = malloc(((size_t)iq + 1) * sizeof(lapack_int));
    if (g != NULL && work != NULL && iwork != NULL) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (blasint)n, (blasint)h, 1.0, a,
                    (blasint)n, 0.0, g, (blasint)n);
        CHECK_EQ_INT(LAPACKE_dsyevd_2stage_work(LAPACK_COL_MAJOR, 'N', 'L', nn, g, nn, want, work,
                                                (lapack_int)wq + 1, iwork, iq + 1),
                     0);
        for (int64_t k = 0; k < n; k++)
            want[k] = want[k] > 0 ? want[k] : 0.0;
    } else {
        CHECK(0);
    }
    free(g);
    free(work);
    free(iwork);
}

/* The timed solver (dsytrd_2stage, then dsterf) gives exactly the bits of
 * the values-only driver dsyevd_2stage on arrays aligned alike, also for a
 * Gram so small that the driver scales it (that one goes to the driver). */
static void check_driver_bits(double scale)
{
    int64_t h = 150, n = 120;
    double *a = esd_f64_alloc((size_t)(h * n)), *g = gauss_matrix(h * n);
    double *want = calloc((size_t)n, sizeof(double)), *got = calloc((size_t)n, sizeof(double));

    if (a == NULL || g == NULL || want == NULL || got == NULL)
        goto out;
    for (int64_t i = 0; i < h * n; i++)
        a[i] = g[i] * scale;
    driver_values(a, h, n, want);
    esd_values(a, h, n, n, got);
    CHECK_EQ_INT(bits_differ(got, want, n), 0);
    CHECK(want[n - 1] > 0);
out:
    free(a);
    free(g);
    free(want);
    free(got);
}

static void test_timed_solver_gives_the_drivers_bits(void)
{
    check_driver_bits(1.0);
    check_driver_bits(1e-80); /* Gram entries ~1e-160 < sqrt(smlnum): the driver scales */
}

/* A block's eigenvalues do not depend on the size of the workspace they go
 * through: a side of 121 puts tau 8 bytes off the 16-byte boundary of a
 * side of 120 unless each array starts on its own line (on AVX-512 OpenBLAS
 * that changed 113 of 120 values in their last bits). */
static void test_values_do_not_depend_on_the_workspace_size(void)
{
    int64_t h = 150, n = 120, sides[] = {121, 123, 129, 200};
    double *a = esd_f64_alloc((size_t)(h * n)), *g = gauss_matrix(h * n);
    double *want = calloc((size_t)n, sizeof(double)), *got = calloc((size_t)n, sizeof(double));

    if (a == NULL || g == NULL || want == NULL || got == NULL) {
        CHECK(0);
        goto out;
    }
    memcpy(a, g, (size_t)(h * n) * sizeof(double));
    esd_values(a, h, n, n, want);
    CHECK(want[n - 1] > 0);
    for (size_t i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
        esd_values(a, h, n, sides[i], got);
        CHECK_EQ_INT(bits_differ(got, want, n), 0);
    }
out:
    free(a);
    free(g);
    free(want);
    free(got);
}

int main(void)
{
    openblas_set_num_threads(1);
    test_integer_floor_division_rounds_toward_minus_infinity();
    test_float_floor_division_is_cpythons();
    test_slice_rule_counts_negative_starts_from_the_end();
    test_layout_512x64_llm_variant_clamps_window_to_64();
    test_layout_512x64_imgcls_variant_leaves_rows_unsampled();
    test_layout_small_matrices_under_imgcls_quirk();
    test_layout_4x3_llm_gives_two_overlapping_windows();
    test_layout_llama_paper_shapes();
    test_layout_q_ratio_truncates_window_cols();
    test_layout_ops_bounds_window_count();
    test_conv_block_shapes();
    test_conv_layout_100x30_q15_uses_three_divisions_of_20_rows();
    test_eigs_of_diagonal_matrix_are_squares();
    test_eigs_of_reflected_diagonal_keep_the_spectrum();
    test_eigs_workspace_too_small_is_an_error();
    test_sliding_gram_equals_scratch_gram();
    test_units_run_in_parallel_threads();
    test_dense_layer_with_too_few_eigs_is_skipped();
    test_nan_weights_give_a_failed_layer();
    test_gaussian_layer_metrics_are_consistent();
    test_conv_1x1_is_scaled_dense();
    test_xmax_is_the_largest_fitted_eigenvalue();
    test_presets_match_the_paper_sets();
    test_preset_set_parses_strictly();
    test_preset_json_is_canonical();
    test_stage_timings_count_every_window();
    test_timed_solver_gives_the_drivers_bits();
    test_values_do_not_depend_on_the_workspace_size();
    return check_report("test_farms");
}
