/* test_service.c -- the service end to end: a real `farmsd serve` on a free
 * loopback port (tests/svc_harness.h), spoken to over HTTP with libcurl.
 *
 * The training-run pipeline: the MLP, CNN and LLaMA-style fixture
 * checkpoints at steps 0, 100 and 500, uploaded out of step order and in
 * mixed formats; every job succeeds; every checkpoint's layers equal what
 * `farmsd analyze` prints for the same file and preset; every layer's
 * history comes back in step order with the checkpoint's values; the
 * latest-layer view and the run list agree. Then the result cache: a
 * re-upload is the same job, and the same weights in other containers
 * (safetensors, a training dict, a Lightning checkpoint) are analysed by
 * no one: every tensor is a cache hit (job counters and /metrics).
 * Run from the repository root after `make test-build`.
 */
#include "tests/check.h"
#include "tests/svc_harness.h"

#define N_MODELS 3
#define N_STEPS  3
#define N_CKPTS  ((size_t)N_MODELS * N_STEPS) /* checkpoints uploaded */

struct upload {
    const char *run;
    long step;
    const char *file;        /* under tests/fixtures/checkpoints/ */
    const char *format;      /* ?format=, NULL: none (sniffed) */
    const char *preset;      /* ?preset=, NULL: the server's default (farms-llm) */
    const char *want_format; /* the job's format as the manifest names it */
    long long job_id;
    cJSON *layers; /* the service's layers (owned) */
};

/* Steps are uploaded 500, 0, 100: the service must order them. */
static struct upload uploads[N_CKPTS] = {
    {"mlp", 500, "mlp/mlp_step0500.npz", "npz", "farms-cv", "npz", 0, NULL},
    {"mlp", 0, "mlp/mlp_step0000.pt", "torch", "farms-cv", "torch_zip", 0, NULL},
    {"mlp", 100, "mlp/mlp_step0100.safetensors", "safetensors", "farms-cv", "safetensors", 0, NULL},
    {"cnn", 500, "cnn/cnn_step0500.pt", NULL, "farms-cv", "torch_zip", 0, NULL},
    {"cnn", 0, "cnn/cnn_step0000.safetensors", "auto", "farms-cv", "safetensors", 0, NULL},
    {"cnn", 100, "cnn/cnn_step0100_train.pth", "torch_zip", "farms-cv", "torch_zip", 0, NULL},
    {"llama", 500, "llama/llama_step0500.safetensors", "safetensors", NULL, "safetensors", 0, NULL},
    {"llama", 0, "llama/llama_step0000.pt", "torch", NULL, "torch_zip", 0, NULL},
    {"llama", 100, "llama/llama_step0100.safetensors", NULL, NULL, "safetensors", 0, NULL},
};

static struct svc srv;
static char data_dir[PATH_MAX];
static cJSON *manifest;

static const char *preset_of(const struct upload *u)
{
    return u->preset ? u->preset : "farms-llm";
}

static void upload_path(const struct upload *u, char *buf, size_t len)
{
    int n = snprintf(buf, len, "/v1/runs/%s/checkpoints?step=%ld", u->run, u->step);

    if (u->format != NULL)
        n += snprintf(buf + n, len - (size_t)n, "&format=%s", u->format);
    if (u->preset != NULL)
        snprintf(buf + n, len - (size_t)n, "&preset=%s", u->preset);
}

/* Two JSON values are the same number, or both null. */
static int same_number(const cJSON *a, const cJSON *b, double rel)
{
    if (cJSON_IsNull(a) || cJSON_IsNull(b))
        return cJSON_IsNull(a) && cJSON_IsNull(b);
    if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b))
        return 0;
    return fabs(a->valuedouble - b->valuedouble) <= rel * fabs(b->valuedouble);
}

static const cJSON *layer_named(const cJSON *layers, const char *name)
{
    const cJSON *l;

    cJSON_ArrayForEach(l, layers) if (strcmp(svc_js(l, "name"), name) == 0) return l;
    return NULL;
}

/* --- Uploads ------------------------------------------------------------------------ */

static void test_uploads_are_accepted_with_the_files_identity(void)
{
    for (size_t i = 0; i < N_CKPTS; i++) {
        struct upload *u = &uploads[i];
        const cJSON *mf = svc_manifest_file(manifest, u->file);
        char path[256], file[PATH_MAX], loc[64];
        struct svc_resp r;

        upload_path(u, path, sizeof(path));
        snprintf(file, sizeof(file), SVC_FIX "%s", u->file);
        CHECK_EQ_INT(svc_upload(&srv, path, file, NULL, &r), 202);
        CHECK(r.json != NULL);
        u->job_id = (long long)svc_jn(r.json, "id");
        snprintf(loc, sizeof(loc), "/v1/jobs/%lld", u->job_id);
        CHECK_STR_EQ(r.location, loc);
        CHECK_STR_EQ(svc_js(r.json, "run"), u->run);
        CHECK_EQ_INT((long)svc_jn(r.json, "step"), u->step);
        CHECK_STR_EQ(svc_js(r.json, "sha256"), svc_js(mf, "sha256"));
        CHECK_EQ_INT((long long)svc_jn(r.json, "size"), (long long)svc_jn(mf, "size"));
        CHECK_STR_EQ(svc_js(r.json, "format"), u->want_format);
        CHECK_STR_EQ(svc_js(r.json, "preset"), preset_of(u));
        CHECK_STR_EQ(svc_js(r.json, "source"), "upload");
        CHECK(cJSON_IsNull(svc_j(r.json, "path")));
        CHECK(cJSON_IsNull(svc_j(r.json, "error")));
        svc_resp_free(&r);
    }
}

static void test_every_job_succeeds(void)
{
    for (size_t i = 0; i < N_CKPTS; i++) {
        cJSON *job = svc_wait_job(&srv, uploads[i].job_id, 60);
        const cJSON *p = svc_j(job, "progress");
        const cJSON *t = svc_j(job, "timings");

        CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
        CHECK(svc_jn(p, "tensors_total") > 0);
        CHECK_EQ_INT((long)svc_jn(p, "tensors_done"), (long)svc_jn(p, "tensors_total"));
        CHECK(svc_jn(t, "run_seconds") >= 0 && svc_jn(t, "queued_seconds") >= 0);
        CHECK(cJSON_IsString(svc_j(t, "finished")));
        cJSON_Delete(job);
    }
}

/* GET /v1/runs/{run}/checkpoints/{step}?preset=P == farmsd analyze FILE --preset P. */
static void test_checkpoint_layers_equal_the_cli(void)
{
    for (size_t i = 0; i < N_CKPTS; i++) {
        struct upload *u = &uploads[i];
        char path[256], file[PATH_MAX];
        struct svc_resp r;
        cJSON *cli;
        const cJSON *cl, *sl;
        int n_ok = 0;

        snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints/%ld?preset=%s", u->run, u->step,
                 preset_of(u));
        snprintf(file, sizeof(file), SVC_FIX "%s", u->file);
        CHECK_EQ_INT(svc_get(&srv, path, &r), 200);
        cli = svc_cli_analyze(file, preset_of(u));
        CHECK(cli != NULL);
        CHECK_STR_EQ(svc_js(r.json, "run"), u->run);
        CHECK_EQ_INT((long)svc_jn(r.json, "step"), u->step);
        CHECK_STR_EQ(svc_js(r.json, "preset"), preset_of(u));
        CHECK_STR_EQ(svc_js(r.json, "sha256"),
                     svc_js(svc_manifest_file(manifest, u->file), "sha256"));
        CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "layers")),
                     cJSON_GetArraySize(svc_j(cli, "layers")));
        cl = svc_j(cli, "layers") ? svc_j(cli, "layers")->child : NULL;
        sl = svc_j(r.json, "layers") ? svc_j(r.json, "layers")->child : NULL;
        for (; cl != NULL && sl != NULL; cl = cl->next, sl = sl->next) {
            CHECK_STR_EQ(svc_js(sl, "name"), svc_js(cl, "name"));
            CHECK_STR_EQ(svc_js(sl, "kind"), svc_js(cl, "kind"));
            CHECK_STR_EQ(svc_js(sl, "status"), svc_js(cl, "status"));
            CHECK(same_number(svc_j(sl, "alpha"), svc_j(cl, "alpha"), 1e-12));
            CHECK(same_number(svc_j(sl, "D"), svc_j(cl, "D"), 1e-12));
            CHECK(same_number(svc_j(sl, "num_eigs"), svc_j(cl, "num_eigs"), 0));
            CHECK(cJSON_Compare(svc_j(sl, "warning"), svc_j(cl, "warning"), 1));
            n_ok += strcmp(svc_js(sl, "status"), "ok") == 0;
        }
        CHECK(n_ok >= 3); /* every model has at least three analysed matrices */
        u->layers = cJSON_DetachItemFromObjectCaseSensitive(r.json, "layers");
        cJSON_Delete(cli);
        svc_resp_free(&r);
    }
}

/* Every layer name of a run, with the steps that hold it, in step order. */
static void test_histories_in_step_order_for_every_layer(void)
{
    static const char *const runs[N_MODELS] = {"mlp", "cnn", "llama"};
    static const long steps[N_STEPS] = {0, 100, 500};
    int n_layers_checked = 0;

    for (int m = 0; m < N_MODELS; m++) {
        const struct upload *by_step[N_STEPS] = {NULL};
        for (size_t i = 0; i < N_CKPTS; i++)
            for (int k = 0; k < N_STEPS; k++)
                if (strcmp(uploads[i].run, runs[m]) == 0 && uploads[i].step == steps[k])
                    by_step[k] = &uploads[i];
        for (int k0 = 0; k0 < N_STEPS; k0++) {
            const cJSON *l0;
            cJSON_ArrayForEach(l0, by_step[k0]->layers)
            {
                const char *name = svc_js(l0, "name");
                const cJSON *in[N_STEPS] = {NULL}, *pt;
                int first = N_STEPS, n_want = 0;
                char path[512];
                struct svc_resp r;
                for (int j = 0; j < N_STEPS; j++) {
                    in[j] = layer_named(by_step[j]->layers, name);
                    if (in[j] != NULL && first == N_STEPS)
                        first = j;
                    n_want += in[j] != NULL;
                }
                if (first != k0)
                    continue; /* checked from the first step that has it */
                snprintf(path, sizeof(path),
                         "/v1/runs/%s/layers/%s/history?metrics=alpha,D&preset=%s", runs[m], name,
                         preset_of(by_step[0]));
                CHECK_EQ_INT(svc_get(&srv, path, &r), 200);
                CHECK_STR_EQ(svc_js(r.json, "layer"), name);
                CHECK_EQ_INT((long)svc_jn(r.json, "total_points"), n_want);
                CHECK(cJSON_IsFalse(svc_j(r.json, "downsampled")));
                CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "points")), n_want);
                pt = svc_j(r.json, "points") ? svc_j(r.json, "points")->child : NULL;
                for (int j = 0; j < N_STEPS; j++) {
                    if (in[j] == NULL)
                        continue;
                    CHECK(pt != NULL);
                    if (pt == NULL)
                        break;
                    CHECK_EQ_INT((long)svc_jn(pt, "step"), steps[j]);
                    CHECK_STR_EQ(svc_js(pt, "status"), svc_js(in[j], "status"));
                    CHECK(same_number(svc_j(pt, "alpha"), svc_j(in[j], "alpha"), 0));
                    CHECK(same_number(svc_j(pt, "D"), svc_j(in[j], "D"), 0));
                    pt = pt->next;
                }
                n_layers_checked++;
                svc_resp_free(&r);
            }
        }
    }
    /* mlp 6 tensors, cnn 18, llama 21 (lm_head only in the step-0 .pt, tied) */
    CHECK_EQ_INT(n_layers_checked, 6 + 18 + 21);
}

/* The tied lm_head.weight is in the step-0 torch file only: one point. */
static void test_a_layer_missing_from_later_steps_has_only_its_own_points(void)
{
    struct svc_resp r;

    CHECK_EQ_INT(svc_get(&srv, "/v1/runs/llama/layers/lm_head.weight/history", &r), 200);
    CHECK_EQ_INT((long)svc_jn(r.json, "total_points"), 1);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "points")), 1);
    CHECK_EQ_INT((long)svc_jn(cJSON_GetArrayItem(svc_j(r.json, "points"), 0), "step"), 0);
    svc_resp_free(&r);
}

static void test_latest_layers_and_run_list(void)
{
    struct svc_resp r;
    const cJSON *run;
    int n = 0;

    CHECK_EQ_INT(svc_get(&srv, "/v1/runs/cnn/layers?preset=farms-cv", &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "layers")),
                 cJSON_GetArraySize(uploads[3].layers));
    {
        const cJSON *l;
        cJSON_ArrayForEach(l, svc_j(r.json, "layers"))
        {
            const cJSON *at500 = layer_named(uploads[3].layers, svc_js(l, "name"));
            CHECK_EQ_INT((long)svc_jn(l, "step"), 500);
            CHECK(at500 != NULL && same_number(svc_j(l, "alpha"), svc_j(at500, "alpha"), 0));
        }
    }
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(&srv, "/v1/runs", &r), 200);
    cJSON_ArrayForEach(run, svc_j(r.json, "runs"))
    {
        CHECK_EQ_INT((long)svc_jn(run, "checkpoints"), 3);
        CHECK_EQ_INT((long)svc_jn(run, "last_step"), 500);
        n++;
    }
    CHECK_EQ_INT(n, 3);
    CHECK(cJSON_IsNull(svc_j(r.json, "next_page_token")));
    svc_resp_free(&r);
}

/* --- The result cache: nothing analysed twice ----------------------------------------- */

static void test_reupload_is_the_same_job(void)
{
    double misses = svc_metric(&srv, "farmsd_cache_misses_total");
    double jobs = svc_metric(&srv, "farmsd_jobs{state=\"succeeded\"}");
    struct svc_resp r;
    char loc[64];

    /* same run, step and bytes; another declared format changes nothing */
    CHECK_EQ_INT(svc_upload(&srv, "/v1/runs/mlp/checkpoints?step=500&preset=farms-cv&format=auto",
                            SVC_FIX "mlp/mlp_step0500.npz", NULL, &r),
                 200);
    CHECK_EQ_INT((long long)svc_jn(r.json, "id"), uploads[0].job_id);
    CHECK_STR_EQ(svc_js(r.json, "state"), "succeeded");
    snprintf(loc, sizeof(loc), "/v1/jobs/%lld", uploads[0].job_id);
    CHECK_STR_EQ(r.location, loc);
    svc_resp_free(&r);
    /* same run and step, other bytes (the same weights as safetensors): a conflict */
    CHECK_EQ_INT(svc_upload(&srv, "/v1/runs/mlp/checkpoints?step=500&preset=farms-cv",
                            SVC_FIX "mlp/mlp_step0500.safetensors", NULL, &r),
                 409);
    CHECK_STR_EQ(svc_js(r.json, "category"), "checkpoint_conflict");
    CHECK_STR_EQ(r.content_type, "application/problem+json");
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_metric(&srv, "farmsd_cache_misses_total"), misses);
    CHECK_EQ_INT(svc_metric(&srv, "farmsd_jobs{state=\"succeeded\"}"), jobs);
    CHECK_EQ_INT(svc_metric(&srv, "farmsd_jobs{state=\"queued\"}"), 0);
}

/* Same weights in other containers, under other names: every tensor a hit. */
static void test_same_weights_in_other_formats_are_cache_hits(void)
{
    static const struct {
        const char *path, *file;
        int n_analysed; /* matrices the preset analyses */
    } copies[] = {
        {"/v1/runs/copies/checkpoints?step=1&preset=farms-cv", "mlp/mlp_step0500.safetensors", 3},
        {"/v1/runs/copies/checkpoints?step=2&preset=farms-cv", "mlp/mlp_step0500_train.pt", 3},
        {"/v1/runs/copies/checkpoints?step=3&preset=farms-cv", "cnn/cnn_step0100.safetensors", 4},
        {"/v1/runs/copies/checkpoints?step=4", "llama/llama_step0500_lightning.ckpt", 14},
    };
    double misses0 = svc_metric(&srv, "farmsd_cache_misses_total");
    double hits0 = svc_metric(&srv, "farmsd_cache_hits_total");
    double hits_want = 0;

    CHECK(misses0 > 0);
    for (size_t i = 0; i < sizeof(copies) / sizeof(copies[0]); i++) {
        struct svc_resp r;
        char file[PATH_MAX];
        cJSON *job;
        const cJSON *p;

        snprintf(file, sizeof(file), SVC_FIX "%s", copies[i].file);
        CHECK_EQ_INT(svc_upload(&srv, copies[i].path, file, NULL, &r), 202);
        job = svc_wait_job(&srv, (long long)svc_jn(r.json, "id"), 60);
        p = svc_j(job, "progress");
        CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
        CHECK_EQ_INT((long)svc_jn(p, "tensors_total"), copies[i].n_analysed);
        CHECK_EQ_INT((long)svc_jn(p, "cache_hits"), copies[i].n_analysed);
        hits_want += copies[i].n_analysed;
        cJSON_Delete(job);
        svc_resp_free(&r);
    }
    CHECK_EQ_INT(svc_metric(&srv, "farmsd_cache_misses_total"), misses0);
    CHECK_EQ_INT(svc_metric(&srv, "farmsd_cache_hits_total"), hits0 + hits_want);
}

/* The team-wide cache holds one result per tensor and settings. */
static void test_tensor_cache_has_one_result_per_settings(void)
{
    const char *sha =
        svc_manifest_tensor_sha(manifest, "mlp/mlp_step0500.safetensors", "net.0.weight");
    const cJSON *svc_layer = layer_named(uploads[0].layers, "net.0.weight");
    const cJSON *res;
    char path[128];
    struct svc_resp r;

    CHECK_EQ_INT(strlen(sha), THASH_HEX_LEN - 1);
    snprintf(path, sizeof(path), "/v1/tensors/%s", sha);
    CHECK_EQ_INT(svc_get(&srv, path, &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "results")), 1);
    res = cJSON_GetArrayItem(svc_j(r.json, "results"), 0);
    CHECK_STR_EQ(svc_js(res, "preset"), "farms-cv");
    CHECK_STR_EQ(svc_js(res, "analysis_key"), "linear F32 256x64");
    CHECK(svc_layer != NULL &&
          same_number(svc_j(svc_j(res, "result"), "alpha"), svc_j(svc_layer, "alpha"), 0));
    svc_resp_free(&r);
}

/* Misses counted == tensors the jobs did not find in the cache. */
static void test_misses_equal_what_the_jobs_analysed(void)
{
    double want = 0;
    struct svc_resp r;
    long long n_jobs = 0;

    for (long long id = 1;; id++) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/jobs/%lld", id);
        if (svc_get(&srv, path, &r) != 200) {
            CHECK_EQ_INT(r.status, 404);
            svc_resp_free(&r);
            break;
        }
        want += svc_jn(svc_j(r.json, "progress"), "tensors_total") -
                svc_jn(svc_j(r.json, "progress"), "cache_hits");
        n_jobs++;
        svc_resp_free(&r);
    }
    CHECK_EQ_INT(n_jobs, N_CKPTS + 4);
    CHECK_EQ_INT(svc_metric(&srv, "farmsd_cache_misses_total"), want);
}

int main(void)
{
    double t0 = svc_now();

    curl_global_init(CURL_GLOBAL_DEFAULT);
    manifest = svc_manifest();
    CHECK(manifest != NULL);
    CHECK(svc_mkdtemp("svc", data_dir, sizeof(data_dir)));
    strncat(data_dir, "/data", sizeof(data_dir) - strlen(data_dir) - 1);
    if (manifest == NULL || !svc_start(&srv, data_dir, NULL)) {
        CHECK(!"server started");
        return check_report("test_service");
    }
    test_uploads_are_accepted_with_the_files_identity();
    test_every_job_succeeds();
    test_checkpoint_layers_equal_the_cli();
    test_histories_in_step_order_for_every_layer();
    test_a_layer_missing_from_later_steps_has_only_its_own_points();
    test_latest_layers_and_run_list();
    test_reupload_is_the_same_job();
    test_same_weights_in_other_formats_are_cache_hits();
    test_tensor_cache_has_one_result_per_settings();
    test_misses_equal_what_the_jobs_analysed();
    CHECK_EQ_INT(svc_stop(&srv), 0);
    if (check_n_failed)
        svc_dump_log(&srv, 3000);
    for (size_t i = 0; i < N_CKPTS; i++)
        cJSON_Delete(uploads[i].layers);
    cJSON_Delete(manifest);
    data_dir[strlen(data_dir) - 5] = '\0';
    svc_rm_rf(data_dir, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service: %.1f s\n", svc_now() - t0);
    return check_report("test_service");
}
