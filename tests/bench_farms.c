/* bench_farms.c -- FARMS engine speed (release build): farms-llm on a seeded
 * Gaussian 4096x4096 (the LLaMA q_proj layout: 100 windows of 2000x2000),
 * unit phase on 1 and on 2 POSIX threads (own esd_ws each, BLAS 1 thread),
 * fit phase, the eigenvalue stage's achieved GFLOP/s against this machine's
 * dgemm, and the `full` preset on 4096x11008.
 *
 * Flop model (what the units execute): forming a Gram of side n from k
 * contracted rows/cols = n^2 k (dsyrk, half of 2 n^2 k); a sliding update by
 * d slices = 2 n^2 d (add + subtract); the values-only eigensolver
 * = (4/3) n^3 (Householder tridiagonal reduction; dsterf is O(n^2)).
 * dgemm m=n=k=2000 = 2 * 2000^3.
 *
 * BENCH_REPS (environment, default 1) repeats each figure and prints medians.
 */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/numerics/esd.h"
#include "core/numerics/farms.h"
#include "core/numerics/farms_int.h"
#include "core/numerics/preset.h"

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double *gauss(int64_t rows, int64_t cols, uint64_t seed)
{
    double *w = malloc((size_t)(rows * cols) * sizeof(double)), s = 1 / sqrt((double)cols);
    uint64_t x = seed;
    for (int64_t i = 0; w != NULL && i < rows * cols; i += 2) {
        double u1, u2;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        u1 = ((double)(x >> 11) + 0.5) / 9007199254740992.0;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        u2 = ((double)(x >> 11) + 0.5) / 9007199254740992.0;
        w[i] = s * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
        if (i + 1 < rows * cols)
            w[i + 1] = s * sqrt(-2 * log(u1)) * sin(6.283185307179586 * u2);
    }
    return w;
}

/* Flops the units of a dense plan execute (mirrors farms_unit_dense). */
static double plan_flops(const struct farms_plan *pl)
{
    const struct farms_layout *l = &pl->lay;
    double n = (double)pl->gram_n, f = 0;
    int64_t len = pl->slide_rows ? l->window_h : l->window_w;
    for (int64_t u = 0; u < pl->n_units; u++) {
        int64_t prev = -1, n_upd = 0;
        for (int64_t s = pl->units[u].s0; s < pl->units[u].s1; s++) {
            int64_t lo =
                pl->slide_rows ? farms_layout_row_start(l, s) : farms_layout_col_start(l, s);
            int64_t d = lo - prev;
            if (prev >= 0 && d >= 0 && 2 * d < len && n_upd < 32) {
                f += 2 * n * n * (double)d;
                n_upd++;
            } else {
                f += n * n * (double)len;
                n_upd = 0;
            }
            f += 4.0 / 3.0 * n * n * n;
            prev = lo;
        }
    }
    return f;
}

struct worker {
    struct farms_plan *plan;
    const double *w;
    int64_t u0, stride;
    double cpu; /* thread CPU seconds spent on units */
    enum err_code rc;
    struct err e;
};

static void *worker_main(void *arg)
{
    struct worker *k = arg;
    struct esd_ws *ws = NULL;
    int64_t mn, mg;
    double t0 = cpu_s();
    farms_plan_ws_need(k->plan, &mn, &mg);
    k->rc = esd_ws_new(mn, mg, &ws, &k->e);
    for (int64_t u = k->u0; !k->rc && u < farms_plan_n_units(k->plan); u += k->stride)
        k->rc = farms_unit_run(k->plan, u, k->w, ws, &k->e);
    esd_ws_free(ws);
    k->cpu = cpu_s() - t0;
    return NULL;
}

/* Units on `threads` threads (round robin), then finish. */
static int run_plan(const struct farms_params *p, const int64_t *shape, const double *w,
                    int threads, double *units_s, double *fit_s, double *flops,
                    struct farms_result *r, double *cpu)
{
    struct farms_plan *plan = NULL;
    struct worker k[8];
    pthread_t tid[8];
    struct err e;
    double t0;

    if (farms_plan_new(p,
                       &(struct farms_shape){.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = shape},
                       threads, &plan, &e)) {
        fprintf(stderr, "plan: %s\n", e.msg);
        return 1;
    }
    *flops = plan_flops(plan);
    t0 = clock_mono_s();
    for (int i = 0; i < threads; i++) {
        k[i] = (struct worker){.plan = plan, .w = w, .u0 = i, .stride = threads};
        pthread_create(&tid[i], NULL, worker_main, &k[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    *units_s = clock_mono_s() - t0;
    *cpu = 0;
    for (int i = 0; i < threads; i++)
        *cpu += k[i].cpu;
    for (int i = 0; i < threads; i++)
        if (k[i].rc) {
            fprintf(stderr, "unit: %s\n", k[i].e.msg);
            farms_plan_free(plan);
            return 1;
        }
    t0 = clock_mono_s();
    if (farms_plan_finish(plan, r, &e)) {
        fprintf(stderr, "finish: %s\n", e.msg);
        farms_plan_free(plan);
        return 1;
    }
    *fit_s = clock_mono_s() - t0;
    farms_plan_free(plan);
    return 0;
}

/* Max |lambda_slid - lambda_scratch| / lambda_max over the last window of
 * unit 0 (9 sliding updates away from its from-scratch Gram). */
static double sliding_error(const struct farms_params *p, const int64_t *shape, const double *w)
{
    struct farms_plan *plan = NULL;
    struct esd_ws *ws = NULL;
    int64_t mn, mg, s, i, j;
    double *ref = NULL, dmax = 0, lmax = 0, res = NAN;
    struct esd_block b;

    if (farms_plan_new(p,
                       &(struct farms_shape){.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = shape},
                       1, &plan, NULL))
        return NAN;
    farms_plan_ws_need(plan, &mn, &mg);
    ref = malloc((size_t)mn * sizeof(double));
    if (ref == NULL || esd_ws_new(mn, mg, &ws, NULL) || farms_unit_run(plan, 0, w, ws, NULL))
        goto out;
    s = plan->units[0].s1 - 1;
    i = plan->slide_rows ? s : plan->units[0].fixed;
    j = plan->slide_rows ? plan->units[0].fixed : s;
    b = (struct esd_block){.a = w + farms_layout_row_start(&plan->lay, i) * shape[1] +
                                farms_layout_col_start(&plan->lay, j),
                           .h = plan->lay.window_h,
                           .w = plan->lay.window_w,
                           .lda = shape[1]};
    esd_eigs(ws, &b, 1.0, ref, NULL);
    for (int64_t k = 0; k < plan->gram_n; k++) {
        double got = plan->eigs[(i * plan->lay.n_col_windows + j) * plan->gram_n + k];
        dmax = fmax(dmax, fabs(got - ref[k]));
        lmax = fmax(lmax, ref[k]);
    }
    res = dmax / lmax;
out:
    free(ref);
    esd_ws_free(ws);
    farms_plan_free(plan);
    return res;
}

static double dgemm_gflops(int threads)
{
    int n = 2000;
    double *a = gauss(n, n, 7), *b = gauss(n, n, 8), *c = calloc((size_t)n * n, sizeof(double));
    double t;
    openblas_set_num_threads(threads);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 200, 200, 200, 1, a, n, b, n, 0, c, n);
    t = clock_mono_s();
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    t = clock_mono_s() - t;
    free(a), free(b), free(c);
    return 2.0 * n * n * (double)n / t / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_d);
    return v[n / 2];
}

int main(void)
{
    enum { MAXR = 5 };
    const char *env = getenv("BENCH_REPS");
    int reps = env ? (int)strtol(env, NULL, 10) : 1;
    int64_t sq[2] = {4096, 4096}, wide[2] = {4096, 11008};
    struct farms_params llm, full;
    struct farms_result r;
    double *w = gauss(4096, 4096, 42), *ww = NULL;
    double u1[MAXR] = {0}, f1[MAXR] = {0}, u2[MAXR] = {0}, f2[MAXR] = {0}, g1[MAXR] = {0};
    double g2[MAXR] = {0}, fw[MAXR] = {0}, c1[MAXR] = {0}, c2[MAXR] = {0}, flops = 0, cpu = 0;

    reps = reps < 1 ? 1 : (reps > MAXR ? MAXR : reps);
    preset_get("farms-llm", &llm, NULL);
    preset_get("full", &full, NULL);
    for (int i = 0; i < reps; i++) {
        g1[i] = dgemm_gflops(1);
        g2[i] = dgemm_gflops(2);
        openblas_set_num_threads(1);
        if (run_plan(&llm, sq, w, 1, &u1[i], &f1[i], &flops, &r, &c1[i]) ||
            run_plan(&llm, sq, w, 2, &u2[i], &f2[i], &flops, &r, &c2[i]))
            return 1;
        printf("rep %d: units 1t %.2f s (cpu %.2f), 2t %.2f s (cpu %.2f), fit %.2f s, alpha %.4f "
               "(%s), %lld eigs\n",
               i, u1[i], c1[i], u2[i], c2[i], f2[i], r.alpha, farms_status_name(r.status),
               (long long)r.num_eigs);
        fflush(stdout);
    }
    double mu1 = median(u1, reps), mu2 = median(u2, reps), mf = median(f2, reps);
    double mg1 = median(g1, reps), mg2 = median(g2, reps);
    printf("bench dgemm 2000^3 threads=1 gflops=%.1f\n", mg1);
    printf("bench dgemm 2000^3 threads=2 gflops=%.1f\n", mg2);
    printf("bench farms-llm 4096x4096 threads=1 wall_s=%.2f units_s=%.2f units_cpu_s=%.2f "
           "fit_s=%.2f eig_gflops=%.1f eig_gflop=%.1f\n",
           mu1 + median(f1, reps), mu1, median(c1, reps), median(f1, reps), flops / mu1 / 1e9,
           flops / 1e9);
    printf("bench farms-llm 4096x4096 threads=2 wall_s=%.2f units_s=%.2f units_cpu_s=%.2f "
           "fit_s=%.2f eig_gflops=%.1f dgemm_gflops_1t=%.1f dgemm_gflops_2t=%.1f reps=%d\n",
           mu2 + mf, mu2, median(c2, reps), mf, flops / mu2 / 1e9, mg1, mg2, reps);
    openblas_set_num_threads(1);
    printf("bench sliding-gram 2000x2000 after 9 updates max_abs_dlambda_over_lambda_max=%.2e\n",
           sliding_error(&llm, sq, w));
    fflush(stdout);
    free(w);

    /* full preset on 4096x11008: one Gram of side 4096, BLAS on 2 threads */
    ww = gauss(4096, 11008, 43);
    openblas_set_num_threads(2);
    for (int i = 0; i < reps; i++) {
        double us, fs;
        if (run_plan(&full, wide, ww, 1, &us, &fs, &flops, &r, &cpu))
            return 1;
        fw[i] = us + fs;
        printf("rep %d: full units %.2f s fit %.2f s alpha %.4f\n", i, us, fs, r.alpha);
    }
    printf("bench full 4096x11008 blas_threads=2 wall_s=%.2f eig_gflop=%.1f\n", median(fw, reps),
           flops / 1e9);
    free(ww);
    return 0;
}
