/* test_ww.c -- WeightWatcher's extra columns beyond the fixtures
 * (core/numerics/farms_ww.h; the fixtures' weightwatcher blocks are
 * test_vectors.c's): the seeded permutation, the randomized copy's
 * rand_distance and num_traps under randomize=true, the Jensen-Shannon
 * distance, the MP fit on synthetic spectra, and what conv FARMS reports.
 *
 * The matrices are synthetic, generated here with splitmix64 + Box-Muller
 * from fixed seeds, so every value asserted is reproducible.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/numerics/esd.h"
#include "core/numerics/farms.h"
#include "core/numerics/farms_ww.h"
#include "core/numerics/preset.h"
#include "tests/check.h"

/* Standard normal values from the test's own generator. */
static double normal(uint64_t *s)
{
    double u1 = ((double)(farms_rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((double)(farms_rng_next(s) >> 11) + 0.5) / 9007199254740992.0;

    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* rows x cols Gaussian matrix, entries N(0, 1 / cols). */
static double *gaussian(int64_t rows, int64_t cols, uint64_t seed)
{
    double *w = malloc((size_t)(rows * cols) * sizeof(double));

    for (int64_t i = 0; w != NULL && i < rows * cols; i++)
        w[i] = normal(&seed) / sqrt((double)cols);
    CHECK(w != NULL);
    return w;
}

/* Add `rank` rank-one terms of size `scale` (random unit-ish vectors). */
static void add_low_rank(double *w, int64_t rows, int64_t cols, int rank, double scale,
                         uint64_t seed)
{
    for (int k = 0; k < rank; k++) {
        double u[512], v[512];
        for (int64_t i = 0; i < rows; i++)
            u[i] = normal(&seed) / sqrt((double)rows);
        for (int64_t j = 0; j < cols; j++)
            v[j] = normal(&seed) / sqrt((double)cols);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                w[i * cols + j] += scale * u[i] * v[j];
    }
}

static struct farms_result analyze(const char *preset, const char *const *sets, const double *w,
                                   int64_t rows, int64_t cols)
{
    struct farms_params p;
    struct farms_result r;
    int64_t shape[2] = {rows, cols};
    struct farms_shape fs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = shape};

    memset(&r, 0, sizeof(r));
    CHECK_EQ_INT(preset_get(preset, &p, NULL), ERR_OK);
    for (; sets != NULL && *sets != NULL; sets++)
        CHECK_EQ_INT(preset_set(&p, *sets, NULL), ERR_OK);
    CHECK_EQ_INT(farms_analyze(&p, &fs, w, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.status, FARMS_STATUS_OK);
    return r;
}

static void test_perm_is_a_seeded_reproducible_permutation(void)
{
    static const uint64_t sizes[] = {1, 2, 3, 1000, 4097};
    static int seen[4097];

    for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
        uint64_t n = sizes[t], moved = 0, differ = 0;
        memset(seen, 0, sizeof(seen));
        for (uint64_t k = 0; k < n; k++) {
            uint64_t a = farms_perm(k, n, 42);
            CHECK(a < n);
            if (a < n)
                seen[a]++;
            CHECK(farms_perm(k, n, 42) == a); /* same key, same image */
            moved += a != k;
            differ += farms_perm(k, n, 43) != a;
        }
        for (uint64_t k = 0; k < n; k++)
            CHECK_EQ_INT(seen[k], 1); /* every index exactly once: a bijection */
        if (n >= 1000) {
            CHECK(moved > n * 9 / 10);  /* nearly every element moves */
            CHECK(differ > n * 9 / 10); /* another key, another permutation */
        }
    }
    /* splitmix64's published first output for seed 0 */
    uint64_t s0 = 0;
    CHECK(farms_rng_next(&s0) == 0xe220a8397b1dcdafULL);
}

static void test_js_distance_of_known_vectors(void)
{
    double p[2] = {1, 0}, q[2] = {0, 1}, r[3] = {1, 2, 3}, t[3] = {2, 4, 6};

    /* disjoint: sqrt(ln 2) */
    CHECK_NEAR(farms_js_distance(p, q, 2), sqrt(log(2.0)), 1e-15);
    /* proportional vectors are the same distribution */
    CHECK_NEAR(farms_js_distance(r, t, 3), 0, 1e-15);
    CHECK(isnan(farms_js_distance(p, p, 0)));
}

static void test_mp_fit_of_gaussian_and_spiked_spectra(void)
{
    double *w = gaussian(300, 200, 1);
    const char *const mp[] = {"mp_fit=true", NULL};
    struct farms_result g = analyze("full", mp, w, 300, 200), s;

    /* a Gaussian matrix is all bulk: sigma_mp near 1, no spikes, softrank
     * near 1, bulk edges near the MP ones for Q = 1.5 (mean eigenvalue 1.5:
     * entries of variance 1 / 200, 300 rows) */
    CHECK_EQ_INT(g.num_spikes, 0);
    CHECK_NEAR(g.sigma_mp, 1.0, 0.05);
    CHECK_NEAR(g.mp_softrank, 1.0, 0.1);
    CHECK_NEAR(g.bulk_max, 1.5 * pow(1 + sqrt(1 / 1.5), 2), 0.3);
    CHECK_NEAR(g.bulk_min, 1.5 * pow(1 - sqrt(1 / 1.5), 2), 0.02);
    CHECK_NEAR(g.w_scale, sqrt(200.0 / g.norm), 1e-12);
    /* five strong directions stand out of the bulk */
    add_low_rank(w, 300, 200, 5, 6.0, 2);
    s = analyze("full", mp, w, 300, 200);
    CHECK_EQ_INT(s.num_spikes, 5);
    CHECK(s.mp_softrank < 0.5);
    /* without mp_fit the columns stay unset */
    g = analyze("full", NULL, w, 300, 200);
    CHECK_EQ_INT(g.num_spikes, -1);
    CHECK(isnan(g.sigma_mp) && isnan(g.w_scale) && isnan(g.rand_distance));
    CHECK_EQ_INT(g.num_traps, -1);
    free(w);
}

static void test_randomize_is_reproducible_and_tells_structure_apart(void)
{
    const char *const seed0[] = {"randomize=true", NULL};
    const char *const seed1[] = {"randomize=true", "seed=1", NULL};
    double *w = gaussian(256, 128, 3);
    struct farms_result a = analyze("full", seed0, w, 256, 128);
    struct farms_result b = analyze("full", seed0, w, 256, 128);
    struct farms_result c = analyze("full", seed1, w, 256, 128), lr;

    /* same seed: the very same numbers; another seed: another permutation */
    CHECK(a.rand_distance == b.rand_distance);
    CHECK_EQ_INT(a.num_traps, b.num_traps);
    CHECK(a.rand_distance != c.rand_distance);
    /* a Gaussian matrix is its own randomization: small distance, no traps */
    CHECK(a.rand_distance < 0.02);
    CHECK(c.rand_distance < 0.02);
    CHECK_EQ_INT(a.num_traps, 0);
    /* strong low-rank structure is destroyed by the shuffle: far larger */
    add_low_rank(w, 256, 128, 4, 8.0, 4);
    lr = analyze("full", seed0, w, 256, 128);
    CHECK(lr.rand_distance > 0.3);
    CHECK(lr.rand_distance > 5 * a.rand_distance);
    CHECK_EQ_INT(lr.num_traps, 0); /* shuffled low rank is noise again */
    free(w);
}

static void test_a_large_element_is_a_correlation_trap(void)
{
    const char *const rnd[] = {"randomize=true", NULL};
    double *w = gaussian(256, 128, 5);
    struct farms_result r;

    /* one element far above the rest survives any permutation: the
     * randomized ESD gets a spike above its MP bulk edge */
    w[1000] = 30.0;
    r = analyze("full", rnd, w, 256, 128);
    CHECK_EQ_INT(r.num_traps, 1);
    free(w);
}

static void test_parallel_units_give_the_one_call_result(void)
{
    struct farms_params p;
    struct farms_plan *plan = NULL;
    struct esd_ws *ws = NULL;
    struct farms_result one, par;
    int64_t shape[2] = {300, 240}, mn, mg, n_units;
    struct farms_shape fs = {.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = shape};
    double *w = gaussian(300, 240, 6);

    CHECK_EQ_INT(preset_get("farms-cv", &p, NULL), ERR_OK);
    CHECK_EQ_INT(preset_set(&p, "randomize=true", NULL), ERR_OK);
    CHECK_EQ_INT(preset_set(&p, "mp_fit=true", NULL), ERR_OK);
    CHECK_EQ_INT(farms_analyze(&p, &fs, w, &one, NULL), ERR_OK);
    CHECK_EQ_INT(farms_plan_new(&p, &fs, 4, &plan, NULL), ERR_OK);
    n_units = farms_plan_n_units(plan);
    farms_plan_ws_need(plan, &mn, &mg);
    CHECK_EQ_INT(esd_ws_new(mn, mg, &ws, NULL), ERR_OK);
    for (int64_t u = n_units - 1; u >= 0; u--) /* any order */
        CHECK_EQ_INT(farms_unit_run(plan, u, w, ws, NULL), ERR_OK);
    CHECK_EQ_INT(farms_plan_finish(plan, &par, NULL), ERR_OK);
    CHECK_EQ_INT(par.status, FARMS_STATUS_OK);
    CHECK(par.rand_distance == one.rand_distance);
    CHECK_EQ_INT(par.num_traps, one.num_traps);
    CHECK_NEAR(par.sigma_mp, one.sigma_mp, 1e-9);
    CHECK(one.rand_distance > 0 && one.rand_distance < 0.05);
    esd_ws_free(ws);
    farms_plan_free(plan);
    free(w);
}

static void test_conv_divisions_report_means_and_no_mp_fit(void)
{
    struct farms_params p;
    struct farms_result r;
    int64_t shape[4] = {128, 32, 3, 3};
    struct farms_shape fs = {.kind = FARMS_KIND_CONV2D, .n_dims = 4, .shape = shape};
    double *w = gaussian((int64_t)128 * 32, 9, 7);

    CHECK_EQ_INT(preset_get("farms-cv", &p, NULL), ERR_OK);
    CHECK_EQ_INT(preset_set(&p, "mp_fit=true", NULL), ERR_OK);
    CHECK_EQ_INT(preset_set(&p, "randomize=true", NULL), ERR_OK);
    CHECK_EQ_INT(farms_analyze(&p, &fs, w, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.status, FARMS_STATUS_OK);
    CHECK_EQ_INT(r.layout.divisions, 4);
    /* fit columns are means over divisions; num_pl_spikes, like n_tail, -1 */
    CHECK(r.sigma > 0 && isfinite(r.log_alpha_norm));
    CHECK_EQ_INT(r.num_pl_spikes, -1);
    /* every slice is full rank; sv_max^2 is the largest pooled eigenvalue,
     * at least the divisions' mean spectral_norm */
    CHECK_EQ_INT(r.rank_loss, 0);
    CHECK(r.sv_max * r.sv_max >= r.spectral_norm && r.sv_max * r.sv_max < 1.2 * r.spectral_norm);
    CHECK(r.sv_min > 0 && r.sv_min < r.sv_max);
    /* no MP fit over divisions; the randomized copy still compares */
    CHECK_EQ_INT(r.num_spikes, -1);
    CHECK(isnan(r.sigma_mp));
    CHECK(r.rand_distance >= 0 && r.rand_distance < 0.1);
    CHECK(r.num_traps >= 0);
    free(w);
}

int main(void)
{
    openblas_set_num_threads(1);
    test_perm_is_a_seeded_reproducible_permutation();
    test_js_distance_of_known_vectors();
    test_mp_fit_of_gaussian_and_spiked_spectra();
    test_randomize_is_reproducible_and_tells_structure_apart();
    test_a_large_element_is_a_correlation_trap();
    test_parallel_units_give_the_one_call_result();
    test_conv_divisions_report_means_and_no_mp_fit();
    return check_report("test_ww");
}
