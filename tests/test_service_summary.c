/* test_service_summary.c -- checkpoint summaries through a real `farmsd
 * serve` (tests/svc_harness.h): three steps of the MLP fixture and the
 * trained digits MLP (tests/fixtures/numerics/mlpA_digits.safetensors) are
 * analysed, and for every checkpoint the summary the service gives (in the
 * checkpoint, in the run's latest_summary, in
 * /v1/runs/{run}/summary/history and in the farmsd_run_summary gauges of
 * /metrics) equals the means worked out here from the layer rows it
 * serves: the mean over the ok layers, and the mean weighted by each
 * layer's parameter count (the product of its shape). A run deleted takes
 * its summary history with it.
 * Run from the repository root after `make test-build`.
 */
#include "tests/check.h"
#include "tests/svc_harness.h"

#define REL 1e-12

static char tmp_dir[256];
static struct svc srv;

/* Upload `file` as (run, step) and wait for its job: 1 if it succeeded. */
static int upload_wait(const char *run, long step, const char *file)
{
    char path[160];
    struct svc_resp r;
    cJSON *job = NULL;
    int ok = 0;

    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints?step=%ld", run, step);
    if (svc_upload(&srv, path, file, NULL, &r) == 202) {
        job = svc_wait_job(&srv, (long long)svc_jn(r.json, "id"), 120.0);
        ok = strcmp(svc_js(job, "state"), "succeeded") == 0;
    }
    CHECK(ok);
    cJSON_Delete(job);
    svc_resp_free(&r);
    return ok;
}

/* Plain and weighted mean of layer member `key` over the ok layers of
 * `layers` (the served rows), and how many had it. */
struct by_hand {
    int n;
    double mean, weighted;
};

static struct by_hand means_of(const cJSON *layers, const char *key)
{
    double sum = 0, wsum = 0, wtot = 0;
    struct by_hand h = {0, NAN, NAN};
    const cJSON *l;

    cJSON_ArrayForEach(l, layers)
    {
        const cJSON *shape = svc_j(l, "shape"), *d;
        double v = svc_jn(l, key), w = 1;

        if (strcmp(svc_js(l, "status"), "ok") != 0 || !isfinite(v))
            continue;
        cJSON_ArrayForEach(d, shape) w *= d->valuedouble;
        h.n++;
        sum += v;
        wsum += w * v;
        wtot += w;
    }
    if (h.n > 0) {
        h.mean = sum / h.n;
        h.weighted = wsum / wtot;
    }
    return h;
}

/* The summary metric `key` of a "summary" object equals the means of its
 * layers. */
static void check_metric(const cJSON *summary, const cJSON *layers, const char *key)
{
    const cJSON *m = svc_j(svc_j(summary, "metrics"), key);
    struct by_hand h = means_of(layers, key);

    CHECK(h.n > 0);
    CHECK_EQ_INT(svc_jn(m, "n_layers"), h.n);
    CHECK_REL(svc_jn(m, "mean"), h.mean, REL);
    CHECK_REL(svc_jn(m, "weighted_mean"), h.weighted, REL);
}

/* GET the checkpoint (run, step) and check its summary against its layers;
 * the alpha means into *plain / *weighted. */
static void check_checkpoint(const char *run, long step, double *plain, double *weighted)
{
    char path[160];
    struct svc_resp r;
    const cJSON *sum, *layers;
    struct by_hand h;
    int n_ok = 0;
    const cJSON *l;

    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints/%ld", run, step);
    CHECK_EQ_INT(svc_get(&srv, path, &r), 200);
    sum = svc_j(r.json, "summary");
    layers = svc_j(r.json, "layers");
    CHECK(cJSON_IsObject(sum));
    cJSON_ArrayForEach(l, layers) n_ok += strcmp(svc_js(l, "status"), "ok") == 0;
    CHECK_EQ_INT(svc_jn(sum, "n_layers"), cJSON_GetArraySize(layers));
    CHECK_EQ_INT(svc_jn(sum, "n_ok"), n_ok);
    check_metric(sum, layers, "alpha");
    check_metric(sum, layers, "log_norm");
    check_metric(sum, layers, "stable_rank");
    check_metric(sum, layers, "log_spectral_norm");
    h = means_of(layers, "alpha");
    *plain = h.mean;
    *weighted = h.weighted;
    svc_resp_free(&r);
}

/* The MLP at steps 0, 100 and 500: each checkpoint's summary, the summary
 * history (two pages of two), the run's latest summary and the gauges. */
static void test_mlp_history(void)
{
    static const long steps[3] = {0, 100, 500};
    static const char *const files[3] = {SVC_FIX "mlp/mlp_step0000.safetensors",
                                         SVC_FIX "mlp/mlp_step0100.safetensors",
                                         SVC_FIX "mlp/mlp_step0500.safetensors"};
    double plain[3] = {0}, weighted[3] = {0};
    char path[512], name[160];
    struct svc_resp r;
    const cJSON *p;
    int i;

    for (int k = 0; k < 3; k++)
        if (upload_wait("mlp", steps[k], files[k]))
            check_checkpoint("mlp", steps[k], &plain[k], &weighted[k]);
    CHECK_EQ_INT(svc_get(&srv, "/v1/runs/mlp/summary/history?metric=alpha&page_size=2", &r), 200);
    CHECK_STR_EQ(svc_js(r.json, "run"), "mlp");
    CHECK_STR_EQ(svc_js(r.json, "metric"), "alpha");
    CHECK_STR_EQ(svc_js(r.json, "preset"), "farms-llm");
    CHECK_EQ_INT(strlen(svc_js(r.json, "settings_hash")), 64);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "points")), 2);
    for (i = 0; i < 2; i++) {
        p = cJSON_GetArrayItem(svc_j(r.json, "points"), i);
        CHECK_EQ_INT(svc_jn(p, "step"), steps[i]);
        CHECK_REL(svc_jn(p, "mean"), plain[i], REL);
        CHECK_REL(svc_jn(p, "weighted_mean"), weighted[i], REL);
    }
    snprintf(path, sizeof(path),
             "/v1/runs/mlp/summary/history?metric=alpha&page_size=2&page_token=%s",
             svc_js(r.json, "next_page_token"));
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(&srv, path, &r), 200);
    p = cJSON_GetArrayItem(svc_j(r.json, "points"), 0);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "points")), 1);
    CHECK_EQ_INT(svc_jn(p, "step"), 500);
    CHECK_REL(svc_jn(p, "weighted_mean"), weighted[2], REL);
    CHECK(cJSON_IsNull(svc_j(r.json, "next_page_token")));
    svc_resp_free(&r);
    /* the run's latest summary is step 500's; so are the gauges */
    CHECK_EQ_INT(svc_get(&srv, "/v1/runs/mlp", &r), 200);
    p = svc_j(r.json, "latest_summary");
    CHECK_EQ_INT(svc_jn(p, "step"), 500);
    CHECK_REL(svc_jn(svc_j(svc_j(p, "metrics"), "alpha"), "mean"), plain[2], REL);
    svc_resp_free(&r);
    snprintf(name, sizeof(name),
             "farmsd_run_summary{run=\"mlp\",metric=\"alpha\",weighting=\"%s\"}", "plain");
    CHECK_REL(svc_metric(&srv, name), plain[2], REL);
    snprintf(name, sizeof(name),
             "farmsd_run_summary{run=\"mlp\",metric=\"alpha\",weighting=\"%s\"}", "params");
    CHECK_REL(svc_metric(&srv, name), weighted[2], REL);
}

/* The trained digits MLP (layers of 32768, 131072 and 2560 parameters):
 * its weighted alpha mean is not the plain one. */
static void test_digits_weighted_differs(void)
{
    double plain = NAN, weighted = NAN;

    if (!upload_wait("digits", 1, "tests/fixtures/numerics/mlpA_digits.safetensors"))
        return;
    check_checkpoint("digits", 1, &plain, &weighted);
    CHECK(fabs(plain - weighted) > 1e-3);
}

/* Unknown metric: 400 naming the valid ones; unknown run: 404; a deleted
 * run's summary history is gone with it (404). */
static void test_errors_and_delete(void)
{
    struct svc_resp r;

    CHECK_EQ_INT(svc_get(&srv, "/v1/runs/mlp/summary/history?metric=entropy", &r), 400);
    CHECK(strstr(svc_js(r.json, "detail"), "alpha, alpha_weighted, log_norm") != NULL);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(&srv, "/v1/runs/nope/summary/history", &r), 404);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_req(&srv, "DELETE", "/v1/runs/digits", NULL, NULL, 0, NULL, &r), 200);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(&srv, "/v1/runs/digits/summary/history", &r), 404);
    svc_resp_free(&r);
    CHECK(isnan(svc_metric(&srv, "farmsd_run_summary{run=\"digits\",metric=\"alpha\","
                                 "weighting=\"plain\"}")));
}

int main(void)
{
    double t0 = svc_now();
    char data[512];

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(svc_mkdtemp("svc-summary", tmp_dir, sizeof(tmp_dir)));
    snprintf(data, sizeof(data), "%s/data", tmp_dir);
    if (svc_start(&srv, data, NULL)) {
        test_mlp_history();
        test_digits_weighted_differs();
        test_errors_and_delete();
        CHECK_EQ_INT(svc_stop(&srv), 0);
    } else {
        CHECK(!"server started");
    }
    if (check_n_failed > 0)
        svc_dump_log(&srv, 40);
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service_summary: %.1f s\n", svc_now() - t0);
    return check_report("test_service_summary");
}
