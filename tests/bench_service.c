/* bench_service.c -- the service at model size, and the report of `make bench`.
 *
 * Starts the release binary (build/farmsd serve) on free loopback ports with
 * temporary data folders under build/bench/work, drives it with libcurl and
 * wrk, and measures (each figure the median of repeated runs, with min-max):
 *   analysis   one LLaMA-7B-shaped decoder block (F16, no embeddings) under
 *              farms-llm and under full, default worker count: job seconds,
 *              and the eigenvalue stage's nominal GFLOP/s beside cblas_dgemm
 *              GFLOP/s measured in this process in the same run;
 *   ingestion  upload of a >= 2 GB checkpoint: seconds to 202, GB/s; the
 *              SHA-256 rate of libcrypto beside `openssl speed sha256`;
 *   cache hit  the analysed block posted again under another run;
 *   reads      224 layers x 200 steps stored straight through storage/: wrk
 *              on a layer history, the all-layers history and the 304 path;
 *   memory     server VmHWM while analysing a 2-block checkpoint and while
 *              ingesting the 2 GB upload;
 *   breakdown  per-window stages of the engine (Gram, updates, reduction,
 *              eigenvalues, fit, conversion) per matrix shape of the block,
 *              one core, under farms-llm and full; then the projection
 *              table (LLaMA-7B/13B/70B against cores and replicas);
 *   claims     task claim+done per second on SQLite and PostgreSQL, 1 and 2
 *              connections (feeds the projection's cap);
 *   replicas   the 2-block checkpoint under full through 1 replica x 1
 *              worker and 2 replicas x 1 worker on one PostgreSQL.
 * Writes build/bench/report.md and report.json with the machine, each figure
 * beside its target, PASS/MISS, and the output of the other benchmarks
 * (build/bench/bench_*.txt, written by `make bench` before this one runs).
 *
 * FARMSD_BENCH_QUICK=1: small shapes (GPT-2 small blocks), short wrk runs,
 * 2 repetitions: for development; the targets are then not judged.
 * FARMSD_BENCH_RUNS=N overrides the repetitions (1..16).
 * FARMSD_BENCH_STAGES=analysis,memory,hash,ingest,reads,breakdown,claims,replicas
 * runs only those (default: all; "analysis" includes the cache hit).
 * PostgreSQL (claims, replicas) is a throw-away cluster (tests/pg_cluster.sh).
 * Checkpoints are generated once with `farmsd synth` into build/bench/ckpt.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <libpq-fe.h>

#include "core/analysis.h"
#include "core/clock.h"
#include "core/dtype.h"
#include "core/numerics/esd.h"
#include "core/numerics/farms.h"
#include "core/numerics/farms_int.h"
#include "core/numerics/preset.h"
#include "core/formats/thash.h"
#include "server/cli_synth.h"
#include "storage/store.h"
#include "storage/store_jobs.h"
#include "storage/store_layers.h"
#include "storage/store_tasks.h"

#define BENCH_FARMSD "build/farmsd"
#define BENCH_DIR    "build/bench"
#define GB           1e9

#include "tests/task_rate.h"

#include "tests/bench_service_util.inc"

static int bench_runs;

/* A checkpoint spec: what `farmsd synth` writes, and its path. */
struct bench_ckpt {
    const char *model;
    int blocks;
    const char *dtype;
    unsigned seed;
    char path[PATH_MAX];
};

static int make_ckpt(struct bench_ckpt *c)
{
    char tmp[PATH_MAX + 8];

    snprintf(c->path, sizeof(c->path), "%s/ckpt/%s-%db-%s-s%u.safetensors", BENCH_DIR, c->model,
             c->blocks, c->dtype, c->seed);
    if (file_size(c->path) > 0)
        return 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp", c->path);
    sh("mkdir -p %s/ckpt", BENCH_DIR);
    if (sh("%s synth --model %s --blocks %d --dtype %s --seed %u --no-embeddings --out %s "
           "&& mv %s %s",
           BENCH_FARMSD, c->model, c->blocks, c->dtype, c->seed, tmp, tmp, c->path) != 0) {
        fprintf(stderr, "bench: farmsd synth failed for %s\n", c->path);
        return -1;
    }
    return 0;
}

/* Nominal FLOPs of the eigenvalue stage of a checkpoint's 2-D tensors under
 * `preset`: per window of m x n (n <= m), forming the Gram from scratch
 * (m n^2) and reducing it to tridiagonal form (4/3 n^3). FARMS slides
 * windows with rank-k Gram updates, so the real count is lower: a rate from
 * these is an effective rate. */
static double nominal_flops(const struct bench_ckpt *c, const char *preset)
{
    struct cli_synth_model m = {.model = c->model, .blocks = c->blocks, .dtype = DTYPE_F16};
    struct farms_params p;
    double flops = 0;

    if (preset_get(preset, &p, NULL) != ERR_OK || cli_synth_model_build(&m, NULL) != ERR_OK) {
        cli_synth_model_free(&m);
        return NAN;
    }
    for (size_t i = 0; i < m.n; i++) {
        struct farms_layout l;
        if (m.t[i].ndim != 2 ||
            farms_layout_compute(
                &p,
                &(struct farms_shape){.kind = FARMS_KIND_DENSE, .n_dims = 2, .shape = m.t[i].shape},
                &l, NULL) != ERR_OK)
            continue;
        double h = (double)l.window_h, w = (double)l.window_w;
        double n = h < w ? h : w, mm = h < w ? w : h;
        flops += (double)l.windows * (mm * n * n + 4.0 / 3.0 * n * n * n);
    }
    cli_synth_model_free(&m);
    return flops;
}

static double dgemm_gflops(int n, int threads)
{
    double *a = malloc((size_t)n * n * sizeof(double)), *b = malloc((size_t)n * n * sizeof(double));
    double *c = calloc((size_t)n * n, sizeof(double)), best = NAN, t[3];

    if (a == NULL || b == NULL || c == NULL)
        goto out;
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (double)(i % 97) / 97.0;
        b[i] = (double)(i % 89) / 89.0;
    }
    openblas_set_num_threads(threads);
    for (int k = 0; k < 3; k++) {
        double t0 = clock_mono_s();
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
        t[k] = clock_mono_s() - t0;
    }
    qsort(t, 3, sizeof(double), bench_cmp_d);
    best = 2.0 * n * (double)n * n / t[1] / 1e9;
out:
    free(a);
    free(b);
    free(c);
    return best;
}

#include "tests/bench_service_stages.inc"
#include "tests/bench_service_engine.inc"
#include "tests/bench_service_replicas.inc"
#include "tests/bench_service_report.inc"

/* 1 if stage `name` is selected by FARMSD_BENCH_STAGES (unset: all). */
static int stage_on(const char *name)
{
    const char *sel = getenv("FARMSD_BENCH_STAGES"), *p;
    size_t n = strlen(name);

    if (sel == NULL || sel[0] == '\0')
        return 1;
    for (p = strstr(sel, name); p != NULL; p = strstr(p + 1, name))
        if ((p == sel || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

int main(void)
{
    struct bench_ckpt block, twob, big;
    const char *quick = getenv("FARMSD_BENCH_QUICK"), *runs = getenv("FARMSD_BENCH_RUNS");

    bench_quick = quick != NULL && strcmp(quick, "0") != 0;
    bench_runs = bench_quick ? 2 : 3;
    if (runs != NULL) {
        long v = strtol(runs, NULL, 10);
        bench_runs = v >= 1 && v <= BENCH_MAX_RUNS ? (int)v : 3;
    }
    if (access(BENCH_FARMSD, X_OK) != 0) {
        fprintf(stderr, "bench: %s missing (make build)\n", BENCH_FARMSD);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_ALL);
    sh("mkdir -p %s/work", BENCH_DIR);
    block = (struct bench_ckpt){bench_quick ? "gpt2-small" : "llama7b", bench_quick ? 2 : 1, "F16",
                                1, ""};
    twob = (struct bench_ckpt){bench_quick ? "gpt2-small" : "llama7b", bench_quick ? 4 : 2, "F16",
                               2, ""};
    big = (struct bench_ckpt){bench_quick ? "gpt2-small" : "llama7b", bench_quick ? 12 : 6, "F16",
                              3, ""};
    printf("== bench_service (%s mode, %d runs per figure)\n", bench_quick ? "quick" : "full",
           bench_runs);
    fflush(stdout);
    if ((stage_on("analysis") && make_ckpt(&block)) ||
        ((stage_on("memory") || stage_on("replicas")) && make_ckpt(&twob)) ||
        (stage_on("ingest") && make_ckpt(&big)))
        return 1;
    if (stage_on("breakdown"))
        stage_breakdown(&block);
    if (stage_on("claims"))
        stage_claims();
    if (stage_on("breakdown"))
        stage_projection();
    if (stage_on("replicas"))
        stage_replicas(&twob);
    pg_stop();
    if (stage_on("analysis"))
        stage_analysis(&block);
    if (stage_on("memory"))
        stage_memory_analysis(&twob);
    if (stage_on("hash"))
        stage_hash_baseline();
    if (stage_on("ingest"))
        stage_ingest(&big);
    if (stage_on("reads"))
        stage_reads();
    report_write();
    sh("rm -rf %s/work", BENCH_DIR);
    curl_global_cleanup();
    return 0;
}
