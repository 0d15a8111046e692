/* test_api_summary.c -- checkpoint summaries through api_handle() with an
 * in-memory store: layer rows are put through storage (the trained MLP's
 * three weight shapes, alphas chosen here), and the summary history, the
 * checkpoint's "summary", the run's "latest_summary" and the
 * farmsd_run_summary gauges of /metrics are asked for: their values (worked
 * out by hand below), their ETags, pagination, and the 400/404 answers.
 * Run from the repository root.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "core/numerics/preset.h"
#include "storage/store.h"
#include "storage/store_jobs.h"
#include "storage/store_layers.h"
#include "tests/api_fixture.h"
#include "tests/check.h"

/* Submit checkpoint (run, step) under farms-llm; with rows (a != NULL) put
 * fc1/fc2/fc3 weights (512x64, 256x512, 10x256: 32768, 131072 and 2560
 * parameters) with alphas a[0..3) and fc1.bias skipped. */
static void put(struct fx *f, const char *run, int64_t step, const double *a)
{
    static const int64_t shapes[3][2] = {{512, 64}, {256, 512}, {10, 256}};
    char sha[THASH_HEX_LEN], names[4][24];
    struct store_submit sub = {.run = run,
                               .step = step,
                               .content_sha256 = sha,
                               .source = STORE_SOURCE_PATH,
                               .path = "/data/mlp",
                               .format = "safetensors"};
    struct store_job job;
    struct store_layer rows[4];

    snprintf(sha, sizeof(sha), "%064lld", (long long)step + 7 + (run[0] == 'o' ? 1000 : 0));
    fx_submit(f, &sub, "farms-llm", &job);
    if (a == NULL)
        return;
    memset(rows, 0, sizeof(rows));
    for (int i = 0; i < 3; i++) {
        snprintf(names[i], sizeof(names[i]), "fc%d.weight", i + 1);
        rows[i].name = names[i];
        rows[i].kind = LAYER_KIND_LINEAR;
        rows[i].dtype = DTYPE_F32;
        rows[i].ndim = 2;
        rows[i].shape[0] = shapes[i][0];
        rows[i].shape[1] = shapes[i][1];
        rows[i].r.status = FARMS_STATUS_OK;
        rows[i].r.warning = a[i] < 2 ? FARMS_WARNING_OVER_TRAINED : FARMS_WARNING_NONE;
        rows[i].r.alpha = a[i];
        rows[i].r.log_norm = a[i] / 2;
        rows[i].r.mp_softrank = NAN; /* no MP fit */
        rows[i].r.log_alpha_norm = NAN;
    }
    snprintf(names[3], sizeof(names[3]), "fc1.bias");
    rows[3].name = names[3];
    rows[3].kind = LAYER_KIND_BIAS;
    rows[3].dtype = DTYPE_F32;
    rows[3].ndim = 1;
    rows[3].shape[0] = 512;
    rows[3].r.status = FARMS_STATUS_SKIPPED;
    CHECK(store_layers_put(f->s, job.checkpoint_id, job.settings_hash, rows, 4, NULL) == ERR_OK);
}

static double plain3(const double *a)
{
    return (a[0] + a[1] + a[2]) / 3;
}
static double weighted3(const double *a)
{
    return (32768 * a[0] + 131072 * a[1] + 2560 * a[2]) / 166400.0;
}

static const double A100[3] = {1.5, 3.0, 6.5}, A200[3] = {2.5, 3.5, 4.0},
                    A300[3] = {3.0, 2.75, 5.0};

/* Three steps: points in step order with hand-worked means (weighted
 * differs from plain: fc2 has most parameters), pages of two, a window. */
static void test_history_values_and_pages(void)
{
    const double *a[3] = {A100, A200, A300};
    struct api_response r;
    const cJSON *p;
    char query[512];
    cJSON *j;
    int i;

    struct fx f;
    fx_open(&f, "farms-llm");
    put(&f, "mlp", 100, A100);
    put(&f, "mlp", 200, A200);
    put(&f, "mlp", 300, A300);
    j = fx_get(&f, "/v1/runs/mlp/summary/history", "page_size=2", NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR_EQ(jstr(j, "run"), "mlp");
    CHECK_STR_EQ(jstr(j, "metric"), "alpha");
    CHECK_STR_EQ(jstr(j, "preset"), "farms-llm");
    CHECK_EQ_INT(strlen(jstr(j, "settings_hash")), 64);
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "points")), 2);
    for (i = 0; i < 2; i++) {
        p = cJSON_GetArrayItem(jget(j, "points"), i);
        CHECK_EQ_INT(jnum(p, "step"), 100 * (i + 1));
        CHECK_EQ_INT(jnum(p, "n_layers"), 3);
        CHECK_NEAR(jnum(p, "mean"), plain3(a[i]), 1e-12);
        CHECK_NEAR(jnum(p, "weighted_mean"), weighted3(a[i]), 1e-12);
    }
    CHECK(fabs(weighted3(A100) - plain3(A100)) > 0.1); /* 2.85 against 3.67 */
    snprintf(query, sizeof(query), "page_size=2&page_token=%s", jstr(j, "next_page_token"));
    cJSON_Delete(j);
    api_response_free(&r);
    j = fx_get(&f, "/v1/runs/mlp/summary/history", query, NULL, &r);
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "points")), 1);
    p = cJSON_GetArrayItem(jget(j, "points"), 0);
    CHECK_EQ_INT(jnum(p, "step"), 300);
    CHECK_NEAR(jnum(p, "weighted_mean"), weighted3(A300), 1e-12);
    CHECK(cJSON_IsNull(jget(j, "next_page_token")));
    cJSON_Delete(j);
    api_response_free(&r);
    /* another metric in a window; a metric no layer has is null */
    j = fx_get(&f, "/v1/runs/mlp/summary/history", "metric=log_norm&start_step=150&end_step=250",
               NULL, &r);
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "points")), 1);
    p = cJSON_GetArrayItem(jget(j, "points"), 0);
    CHECK_EQ_INT(jnum(p, "step"), 200);
    CHECK_NEAR(jnum(p, "mean"), plain3(A200) / 2, 1e-12);
    cJSON_Delete(j);
    api_response_free(&r);
    j = fx_get(&f, "/v1/runs/mlp/summary/history", "metric=mp_softrank", NULL, &r);
    p = cJSON_GetArrayItem(jget(j, "points"), 0);
    CHECK_EQ_INT(jnum(p, "n_layers"), 0);
    CHECK(cJSON_IsNull(jget(p, "mean")));
    CHECK(cJSON_IsNull(jget(p, "weighted_mean")));
    cJSON_Delete(j);
    api_response_free(&r);
    store_close(f.s);
}

/* The checkpoint's "summary" and the run's "latest_summary": counts and
 * every metric; null before any rows. */
static void test_checkpoint_and_run_members(void)
{
    const cJSON *s, *m;
    struct api_response r;
    cJSON *j;

    struct fx f;
    fx_open(&f, "farms-llm");
    put(&f, "mlp", 5, NULL); /* submitted, not analysed */
    j = fx_get(&f, "/v1/runs/mlp", NULL, NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK(cJSON_IsNull(jget(j, "latest_summary")));
    cJSON_Delete(j);
    api_response_free(&r);
    j = fx_get(&f, "/v1/runs/mlp/checkpoints/5", NULL, NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK(cJSON_IsNull(jget(j, "summary")));
    cJSON_Delete(j);
    api_response_free(&r);
    put(&f, "mlp", 100, A100);
    put(&f, "mlp", 200, A200);
    j = fx_get(&f, "/v1/runs/mlp/checkpoints/100", NULL, NULL, &r);
    s = jget(j, "summary");
    CHECK_EQ_INT(jnum(s, "n_layers"), 4);
    CHECK_EQ_INT(jnum(s, "n_ok"), 3);
    CHECK_EQ_INT(jnum(s, "n_over"), 1); /* alpha 1.5 */
    CHECK_EQ_INT(jnum(s, "n_under"), 0);
    CHECK_EQ_INT(jnum(s, "n_suspect"), 0);
    CHECK(jget(s, "step") == NULL);
    CHECK_EQ_INT(cJSON_GetArraySize(jget(s, "metrics")), 7);
    m = jget(jget(s, "metrics"), "alpha");
    CHECK_NEAR(jnum(m, "mean"), plain3(A100), 1e-12);
    CHECK_NEAR(jnum(m, "weighted_mean"), weighted3(A100), 1e-12);
    CHECK(jget(jget(s, "metrics"), "alpha_weighted") != NULL);
    cJSON_Delete(j);
    api_response_free(&r);
    j = fx_get(&f, "/v1/runs/mlp", NULL, NULL, &r);
    s = jget(j, "latest_summary");
    CHECK_EQ_INT(jnum(s, "step"), 200);
    CHECK_NEAR(jnum(jget(jget(s, "metrics"), "alpha"), "weighted_mean"), weighted3(A200), 1e-12);
    cJSON_Delete(j);
    api_response_free(&r);
    store_close(f.s);
}

/* 400 for an unknown metric (naming the valid ones), a bad window, an
 * unknown preset or token; 404 for an unknown run; a strong ETag that
 * gives 304 until the run changes. */
static void test_errors_and_etag(void)
{
    struct api_response r, r2;
    char etag[80];
    cJSON *j;

    struct fx f;
    fx_open(&f, "farms-llm");
    put(&f, "mlp", 100, A100);
    j = fx_get(&f, "/v1/runs/mlp/summary/history", "metric=alpha_hat", NULL, &r);
    CHECK_EQ_INT(r.status, 400);
    CHECK_STR_EQ(jstr(j, "category"), "invalid_parameter");
    CHECK_STR_EQ(jstr(j, "detail"),
                 "parameter 'metric': unknown summary metric 'alpha_hat' (one of alpha, "
                 "alpha_weighted, log_norm, log_spectral_norm, log_alpha_norm, stable_rank, "
                 "mp_softrank)");
    cJSON_Delete(j);
    api_response_free(&r);
    cJSON_Delete(fx_get(&f, "/v1/runs/mlp/summary/history", "start_step=9&end_step=3", NULL, &r));
    CHECK_EQ_INT(r.status, 400);
    api_response_free(&r);
    cJSON_Delete(fx_get(&f, "/v1/runs/mlp/summary/history", "preset=nope", NULL, &r));
    CHECK_EQ_INT(r.status, 400);
    api_response_free(&r);
    cJSON_Delete(fx_get(&f, "/v1/runs/mlp/summary/history", "page_token=zzz", NULL, &r));
    CHECK_EQ_INT(r.status, 400);
    api_response_free(&r);
    cJSON_Delete(fx_get(&f, "/v1/runs/mlp/summary/history", "bogus=1", NULL, &r));
    CHECK_EQ_INT(r.status, 400);
    api_response_free(&r);
    j = fx_get(&f, "/v1/runs/nope/summary/history", NULL, NULL, &r);
    CHECK_EQ_INT(r.status, 404);
    CHECK(strstr(jstr(j, "detail"), "nope") != NULL);
    cJSON_Delete(j);
    api_response_free(&r);
    cJSON_Delete(fx_get(&f, "/v1/runs/mlp/summary/history", NULL, NULL, &r));
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.etag[0] == '"');
    snprintf(etag, sizeof(etag), "%s", r.etag);
    api_response_free(&r);
    cJSON_Delete(fx_get(&f, "/v1/runs/mlp/summary/history", NULL, etag, &r2));
    CHECK_EQ_INT(r2.status, 304);
    api_response_free(&r2);
    cJSON_Delete(fx_get(&f, "/v1/runs/mlp/summary/history", "metric=log_norm", etag, &r2));
    CHECK_EQ_INT(r2.status, 200); /* another metric, another tag */
    api_response_free(&r2);
    put(&f, "mlp", 200, A200); /* the run changed */
    j = fx_get(&f, "/v1/runs/mlp/summary/history", NULL, etag, &r2);
    CHECK_EQ_INT(r2.status, 200);
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "points")), 2);
    cJSON_Delete(j);
    api_response_free(&r2);
    store_close(f.s);
}

/* The value of sample `name` in the /metrics text, or NaN. */
static double sample(const char *text, const char *name)
{
    const char *p = strstr(text, name);

    return p != NULL && p[strlen(name)] == ' ' ? strtod(p + strlen(name) + 1, NULL) : NAN;
}

/* /metrics: each run's latest summary, plain and params, the metrics
 * without a value left out. */
static void test_metrics_gauges(void)
{
    struct api_response r;
    const char *t;

    struct fx f;
    fx_open(&f, "farms-llm");
    put(&f, "mlp", 100, A100);
    put(&f, "mlp", 200, A200);
    put(&f, "other", 1, A300);
    put(&f, "empty", 1, NULL);
    cJSON_Delete(fx_get(&f, "/metrics", NULL, NULL, &r));
    CHECK_EQ_INT(r.status, 200);
    t = r.body != NULL ? r.body : "";
    CHECK(strstr(t, "# TYPE farmsd_run_summary gauge\n") != NULL);
    CHECK_NEAR(sample(t, "farmsd_run_summary{run=\"mlp\",metric=\"alpha\",weighting=\"plain\"}"),
               plain3(A200), 1e-12);
    CHECK_NEAR(sample(t, "farmsd_run_summary{run=\"mlp\",metric=\"alpha\",weighting=\"params\"}"),
               weighted3(A200), 1e-12);
    CHECK_NEAR(
        sample(t, "farmsd_run_summary{run=\"other\",metric=\"log_norm\",weighting=\"params\"}"),
        weighted3(A300) / 2, 1e-12);
    CHECK(strstr(t, "metric=\"mp_softrank\"") == NULL);
    CHECK(strstr(t, "run=\"empty\"") == NULL);
    CHECK(strstr(t, "farmsd_jobs{") != NULL); /* the other metrics are still there */
    api_response_free(&r);
    store_close(f.s);
}

int main(void)
{
    test_history_values_and_pages();
    test_checkpoint_and_run_members();
    test_errors_and_etag();
    test_metrics_gauges();
    return check_report("test_api_summary");
}
