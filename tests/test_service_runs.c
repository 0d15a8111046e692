/* test_service_runs.c -- runs as a user meets them on day one, end to end
 * (a real `farmsd serve`, tests/svc_harness.h; also against PostgreSQL):
 *
 * - a CNN run uploaded with ?preset=farms-cv reads back under farms-cv on
 *   every read route without ?preset= (the server's default is farms-llm);
 *   a run holding two presets: ?preset= picks one, checkpoint reads follow
 *   the checkpoint's own preset, run reads the run's (its latest step's);
 * - GET /v1/runs/{run} (summary), GET /v1/jobs?state=&run= (pages);
 * - 404 for an unknown layer, 400 naming the rule for a bad run name
 *   (also '/' as %2F or as extra segments);
 * - DELETE /v1/runs/{run}: rows, jobs and unshared blobs go, old ETags
 *   answer 404, the tensor cache stays (a re-upload is all cache hits).
 * Run from the repository root after `make test-build`.
 */
#include "tests/check.h"
#include "tests/svc_harness.h"

static struct svc srv;
static char data_dir[PATH_MAX];

static const long steps[] = {0, 100, 500};

/* Upload `file` (under tests/fixtures/checkpoints/) to `run` at `step` with
 * `preset` (NULL: none) and wait for the job: its id, -1 on failure. */
static long long upload_wait(const char *run, long step, const char *file, const char *preset)
{
    char path[256], f[PATH_MAX];
    struct svc_resp r;
    long long id = -1;
    long st;

    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints?step=%ld%s%s", run, step,
             preset ? "&preset=" : "", preset ? preset : "");
    snprintf(f, sizeof(f), SVC_FIX "%s", file);
    st = svc_upload(&srv, path, f, NULL, &r);
    CHECK(st == 202 || st == 200);
    if (r.json != NULL)
        id = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);
    if (id > 0) {
        cJSON *job = svc_wait_job(&srv, id, 120);
        CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
        cJSON_Delete(job);
    }
    return id;
}

/* GET `path`: the status, with *out the parsed body (cJSON_Delete) or NULL. */
static long get_json(const char *path, cJSON **out)
{
    struct svc_resp r;
    long st = svc_get(&srv, path, &r);

    *out = r.json;
    r.json = NULL;
    svc_resp_free(&r);
    return st;
}

/* --- Reads follow the preset the data was analysed with ------------------------------ */

static void test_a_cv_run_reads_back_under_farms_cv(void)
{
    static const char *const files[] = {"cnn/cnn_step0000.safetensors",
                                        "cnn/cnn_step0100.safetensors",
                                        "cnn/cnn_step0500.safetensors"};
    char path[512], layer[256] = "";
    cJSON *o = NULL, *x = NULL;
    const cJSON *y;
    double alpha = NAN;
    int n_layers;

    for (int i = 0; i < 3; i++)
        CHECK(upload_wait("cnn-cv", steps[i], files[i], "farms-cv") > 0);
    /* the latest layers: farms-cv rows, not farms-llm's empty list */
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/layers", &o), 200);
    CHECK_STR_EQ(svc_js(o, "preset"), "farms-cv");
    n_layers = cJSON_GetArraySize(svc_j(o, "layers"));
    CHECK(n_layers >= 4);
    cJSON_ArrayForEach(y, svc_j(o, "layers")) if (layer[0] == '\0' &&
                                                  cJSON_IsNumber(svc_j(y, "alpha")))
    {
        snprintf(layer, sizeof(layer), "%s", svc_js(y, "name"));
        alpha = svc_jn(y, "alpha");
        CHECK_EQ_INT((long)svc_jn(y, "step"), 500);
    }
    CHECK(layer[0] != '\0');
    /* the same as naming the preset */
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/layers?preset=farms-cv", &x), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(x, "layers")), n_layers);
    cJSON_ArrayForEach(y, svc_j(x, "layers")) if (strcmp(svc_js(y, "name"), layer) == 0)
        CHECK(svc_jn(y, "alpha") == alpha);
    cJSON_Delete(o);
    cJSON_Delete(x);
    /* ?preset= still picks: nothing was analysed under farms-llm */
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/layers?preset=farms-llm", &o), 200);
    CHECK_STR_EQ(svc_js(o, "preset"), "farms-llm");
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "layers")), 0);
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/checkpoints/100", &o), 200);
    CHECK_STR_EQ(svc_js(o, "preset"), "farms-cv");
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "layers")), n_layers);
    cJSON_Delete(o);
    snprintf(path, sizeof(path), "/v1/runs/cnn-cv/layers/%s/history", layer);
    CHECK_EQ_INT(get_json(path, &o), 200);
    CHECK_STR_EQ(svc_js(o, "preset"), "farms-cv");
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "points")), 3);
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/history", &o), 200);
    CHECK_STR_EQ(svc_js(o, "preset"), "farms-cv");
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "steps")), 3);
    cJSON_Delete(o);
    snprintf(path, sizeof(path), "/v1/runs/cnn-cv/layers/%s/esd", layer);
    CHECK_EQ_INT(get_json(path, &o), 200);
    CHECK_STR_EQ(svc_js(o, "preset"), "farms-cv");
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/checkpoints/500/recommendations/sparsity", &o), 200);
    CHECK_STR_EQ(svc_js(o, "preset"), "farms-cv");
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/checkpoints/500/recommendations/learning-rates", &o),
                 200);
    CHECK_STR_EQ(svc_js(o, "preset"), "farms-cv");
    cJSON_Delete(o);
}

static void test_run_summary(void)
{
    const cJSON *p;
    cJSON *o = NULL;

    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv", &o), 200);
    CHECK_STR_EQ(svc_js(o, "name"), "cnn-cv");
    CHECK(cJSON_IsString(svc_j(o, "created")));
    CHECK_EQ_INT((long)svc_jn(o, "checkpoints"), 3);
    CHECK_EQ_INT((long)svc_jn(o, "first_step"), 0);
    CHECK_EQ_INT((long)svc_jn(o, "last_step"), 500);
    CHECK_STR_EQ(svc_js(o, "default_preset"), "farms-cv");
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "presets")), 1);
    p = cJSON_GetArrayItem(svc_j(o, "presets"), 0);
    CHECK_STR_EQ(svc_js(p, "name"), "farms-cv");
    CHECK_EQ_INT((long)svc_jn(p, "checkpoints"), 3);
    CHECK_EQ_INT((long)svc_jn(p, "analysed"), 3);
    CHECK_STR_EQ(svc_js(svc_j(o, "last_job"), "state"), "succeeded");
    CHECK_EQ_INT((long)svc_jn(svc_j(o, "last_job"), "step"), 500);
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/runs/no-such-run", &o), 404);
    cJSON_Delete(o);
}

/* Step 500 analysed again under farms-llm: the run has two presets. */
static void test_a_run_with_two_presets(void)
{
    cJSON *o = NULL;
    const cJSON *p;

    CHECK(upload_wait("cnn-cv", 500, "cnn/cnn_step0500.safetensors", "farms-llm") > 0);
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv", &o), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "presets")), 2);
    p = cJSON_GetArrayItem(svc_j(o, "presets"), 0); /* most checkpoints first */
    CHECK_STR_EQ(svc_js(p, "name"), "farms-cv");
    p = cJSON_GetArrayItem(svc_j(o, "presets"), 1);
    CHECK_STR_EQ(svc_js(p, "name"), "farms-llm");
    CHECK_EQ_INT((long)svc_jn(p, "checkpoints"), 1);
    /* the latest step's newest analysis */
    CHECK_STR_EQ(svc_js(o, "default_preset"), "farms-llm");
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/layers", &o), 200);
    CHECK_STR_EQ(svc_js(o, "preset"), "farms-llm");
    cJSON_Delete(o);
    /* a checkpoint analysed only under farms-cv reads as farms-cv */
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/checkpoints/100", &o), 200);
    CHECK_STR_EQ(svc_js(o, "preset"), "farms-cv");
    CHECK(cJSON_GetArraySize(svc_j(o, "layers")) >= 4);
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/history?preset=farms-cv", &o), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "steps")), 3);
    cJSON_Delete(o);
}

/* --- Jobs, layers, names ----------------------------------------------------------------- */

static void test_job_list_pages(void)
{
    cJSON *o = NULL;
    char path[512];
    long long prev;

    CHECK_EQ_INT(get_json("/v1/jobs?run=cnn-cv", &o), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "jobs")), 4);
    CHECK_STR_EQ(svc_js(cJSON_GetArrayItem(svc_j(o, "jobs"), 0), "preset"), "farms-llm");
    CHECK(cJSON_IsNull(svc_j(o, "next_page_token")));
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/jobs?state=succeeded&run=cnn-cv&page_size=3", &o), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "jobs")), 3);
    prev = (long long)svc_jn(cJSON_GetArrayItem(svc_j(o, "jobs"), 2), "id");
    CHECK(svc_jn(cJSON_GetArrayItem(svc_j(o, "jobs"), 0), "id") > (double)prev); /* newest first */
    snprintf(path, sizeof(path), "/v1/jobs?state=succeeded&run=cnn-cv&page_size=3&page_token=%s",
             svc_js(o, "next_page_token"));
    CHECK(cJSON_IsString(svc_j(o, "next_page_token")));
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json(path, &o), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "jobs")), 1);
    CHECK(svc_jn(cJSON_GetArrayItem(svc_j(o, "jobs"), 0), "id") < (double)prev);
    CHECK(cJSON_IsNull(svc_j(o, "next_page_token")));
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/jobs?state=failed", &o), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "jobs")), 0);
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/jobs?state=done", &o), 400);
    CHECK(strstr(svc_js(o, "detail"), "queued, running, succeeded, failed, canceled") != NULL);
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/jobs?run=no-such-run", &o), 404);
    cJSON_Delete(o);
}

static void test_unknown_layer_is_404(void)
{
    cJSON *o = NULL;

    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/layers/no.such.weight/history", &o), 404);
    CHECK_STR_EQ(svc_js(o, "category"), "unknown_layer");
    CHECK(strstr(svc_js(o, "detail"), "no.such.weight") != NULL);
    cJSON_Delete(o);
}

static void test_bad_run_names_are_400_naming_the_rule(void)
{
    static const char *const paths[] = {
        "/v1/runs/a%2Fb/layers",
        "/v1/runs/a/b/layers",
        "/v1/runs/a/b",
        "/v1/runs/a%2Fb/layers/x/history",
        "/v1/runs/bad%20name/checkpoints",
        "/v1/runs/caf%C3%A9/layers",
    };
    struct svc_resp r;
    cJSON *o = NULL;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        CHECK_EQ_INT(get_json(paths[i], &o), 400);
        CHECK_STR_EQ(svc_js(o, "category"), "invalid_parameter");
        CHECK(strstr(svc_js(o, "detail"), "A-Z a-z 0-9 . _ -") != NULL);
        cJSON_Delete(o);
    }
    CHECK_EQ_INT(svc_upload(&srv, "/v1/runs/a%2Fb/checkpoints?step=1",
                            SVC_FIX "cnn/cnn_step0000.safetensors", NULL, &r),
                 400);
    CHECK(strstr(svc_js(r.json, "detail"), "no '/'") != NULL);
    svc_resp_free(&r);
    CHECK_EQ_INT(get_json("/v1/nothing/here", &o), 404); /* not a run route: no such route */
    CHECK_STR_EQ(svc_js(o, "detail"), "no such route");
    cJSON_Delete(o);
}

/* --- Deleting a run ------------------------------------------------------------------------ */

static void test_delete_run(void)
{
    char objects[PATH_MAX + 32], inm[200];
    struct svc_resp r;
    cJSON *o = NULL;
    long before, jobs_before;
    const char *h[2] = {inm, NULL};

    snprintf(objects, sizeof(objects), "%s/blobs/objects", data_dir);
    /* run "gone": one file of its own, one shared with cnn-cv */
    CHECK(upload_wait("gone", 1, "cnn/cnn_step0000.pt", "farms-cv") > 0);
    CHECK(upload_wait("gone", 2, "cnn/cnn_step0000.safetensors", "farms-cv") > 0);
    before = svc_count_files(objects);
    CHECK_EQ_INT(svc_get(&srv, "/v1/runs/gone/layers", &r), 200);
    snprintf(inm, sizeof(inm), "If-None-Match: %s", r.etag);
    svc_resp_free(&r);
    CHECK_EQ_INT(get_json("/v1/jobs", &o), 200);
    jobs_before = cJSON_GetArraySize(svc_j(o, "jobs"));
    cJSON_Delete(o);

    CHECK_EQ_INT(svc_req(&srv, "DELETE", "/v1/runs/gone", NULL, NULL, 0, NULL, &r), 200);
    CHECK_STR_EQ(svc_js(r.json, "run"), "gone");
    CHECK_EQ_INT((long)svc_jn(svc_j(r.json, "deleted"), "checkpoints"), 2);
    CHECK_EQ_INT((long)svc_jn(svc_j(r.json, "deleted"), "jobs"), 2);
    CHECK((long)svc_jn(svc_j(r.json, "deleted"), "layer_rows") >= 8);
    CHECK_EQ_INT((long)svc_jn(svc_j(r.json, "deleted"), "blobs"), 1);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_count_files(objects), before - 1); /* the shared blob stays */
    /* gone everywhere; a cached body is never served for it */
    CHECK_EQ_INT(svc_req(&srv, "GET", "/v1/runs/gone/layers", NULL, NULL, 0, h, &r), 404);
    svc_resp_free(&r);
    CHECK_EQ_INT(get_json("/v1/runs/gone", &o), 404);
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/jobs", &o), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(o, "jobs")), jobs_before - 2);
    cJSON_Delete(o);
    CHECK_EQ_INT(get_json("/v1/runs", &o), 200);
    {
        const cJSON *run;
        cJSON_ArrayForEach(run, svc_j(o, "runs")) CHECK(strcmp(svc_js(run, "name"), "gone") != 0);
    }
    cJSON_Delete(o);
    CHECK_EQ_INT(svc_req(&srv, "DELETE", "/v1/runs/gone", NULL, NULL, 0, NULL, &r), 404);
    svc_resp_free(&r);
    CHECK_EQ_INT(get_json("/v1/runs/cnn-cv/checkpoints/0?preset=farms-cv", &o), 200);
    CHECK(cJSON_GetArraySize(svc_j(o, "layers")) >= 4); /* the other run is untouched */
    cJSON_Delete(o);
    /* the tensor cache stays: the same bytes again are all cache hits, and
     * the blob comes back */
    {
        double misses = svc_metric(&srv, "farmsd_cache_misses_total");
        CHECK(upload_wait("gone", 1, "cnn/cnn_step0000.pt", "farms-cv") > 0);
        CHECK_EQ_INT(svc_metric(&srv, "farmsd_cache_misses_total"), misses);
        CHECK_EQ_INT(svc_count_files(objects), before);
    }
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(svc_mkdtemp("runs", data_dir, sizeof(data_dir)));
    strncat(data_dir, "/data", sizeof(data_dir) - strlen(data_dir) - 1);
    if (!svc_start(&srv, data_dir, NULL)) {
        CHECK(!"server started");
        return check_report("test_service_runs");
    }
    test_a_cv_run_reads_back_under_farms_cv();
    test_run_summary();
    test_a_run_with_two_presets();
    test_job_list_pages();
    test_unknown_layer_is_404();
    test_bad_run_names_are_400_naming_the_rule();
    test_delete_run();
    CHECK_EQ_INT(svc_stop(&srv), 0);
    if (check_n_failed)
        svc_dump_log(&srv, 3000);
    data_dir[strlen(data_dir) - 5] = '\0';
    svc_rm_rf(data_dir, check_n_failed > 0);
    curl_global_cleanup();
    return check_report("test_service_runs");
}
