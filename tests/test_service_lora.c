/* test_service_lora.c -- a LoRA adapter checkpoint series merged onto its
 * base through a real `farmsd serve` (tests/svc_harness.h; README.md,
 * The service, "LoRA adapters").
 *
 * The base (the trained LLaMA fixture) is uploaded as run "base" step 0;
 * the adapter series tests/fixtures/peft/llama_lora/step0100..0300 (PEFT
 * folders) is submitted by path to run "ft" with base_run "base" and
 * base_step 0. Then:
 * - each job records its base and succeeds; its layers carry the base's
 *   names and equal `farmsd analyze ADAPTER --base BASE` (status, alpha,
 *   num_eigs), and the per-layer history of an adapted layer is the
 *   series of those merged-weight alphas;
 * - the base is analysed once: every unadapted layer of every adapter job
 *   is a cache hit (cache_hits = tensors - adapted modules), and the same
 *   adapter onto the same base named by base_path (a file snapshot, not
 *   the blob) is all cache hits;
 * - a path base rewritten after the 202 fails its job "changed" (one
 *   runner: the job waits behind a slow one), no layer rows;
 * - refused, nothing stored: an unknown base run or step (404 not_found),
 *   a base_path outside the allowed roots (403 path_not_allowed), a base
 *   named both ways (400), a checkpoint that is no adapter (400
 *   invalid_parameter), adapters that do not fit the base (422
 *   lora_mismatch).
 * Runs on SQLite and again on PostgreSQL (make test). Run from the
 * repository root after `make test-build`.
 */
#include "tests/check.h"
#include "tests/svc_harness.h"

#define PEFT   "tests/fixtures/peft/"
#define BASE   SVC_FIX "llama/llama_step0500.safetensors"
#define PRESET "farms-llm"

static const int steps[] = {100, 200, 300};
#define N_STEPS (sizeof(steps) / sizeof(steps[0]))

static char tmp_dir[256];
static char root[1024]; /* realpath of tmp_dir/root: --allow-root */
static cJSON *expected; /* tests/fixtures/peft/expected.json */

static void mkpath(char *out, size_t len, const char *a, const char *b)
{
    if ((size_t)snprintf(out, len, "%s/%s", a, b) >= len)
        out[0] = '\0';
}

/* Copy the adapter folder `from` (its two files) to `to`. */
static int copy_adapter(const char *from, const char *to)
{
    char a[PATH_MAX], b[PATH_MAX];
    int ok = mkdir(to, 0700) == 0;

    mkpath(a, sizeof(a), from, "adapter_config.json");
    mkpath(b, sizeof(b), to, "adapter_config.json");
    ok = ok && svc_copy_file(a, b);
    mkpath(a, sizeof(a), from, "adapter_model.safetensors");
    mkpath(b, sizeof(b), to, "adapter_model.safetensors");
    return ok && svc_copy_file(a, b);
}

/* tmp/root: base.safetensors, base2.safetensors (a copy, to be changed),
 * mlp.safetensors, slow.safetensors (seconds of analysis), ft/stepNNNN
 * (the adapter series), bad/not_in_base and bad/shape_not_base;
 * tmp/outside/base.safetensors. */
static int make_tree(void)
{
    static const char *const dirs[] = {"root", "root/ft", "root/bad", "outside"};
    static const char *const bad[] = {"not_in_base", "shape_not_base"};
    char a[PATH_MAX], b[PATH_MAX];
    int ok = 1;

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        mkpath(a, sizeof(a), tmp_dir, dirs[i]);
        ok = ok && mkdir(a, 0700) == 0;
    }
    mkpath(a, sizeof(a), tmp_dir, "root");
    ok = ok && realpath(a, b) != NULL && strlen(b) < sizeof(root);
    snprintf(root, sizeof(root), "%.1000s", b);
    mkpath(a, sizeof(a), root, "base.safetensors");
    ok = ok && svc_copy_file(BASE, a);
    mkpath(a, sizeof(a), root, "mlp.safetensors");
    ok = ok && svc_copy_file(SVC_FIX "mlp/mlp_step0500.safetensors", a);
    mkpath(a, sizeof(a), root, "base2.safetensors");
    ok = ok && svc_copy_file(BASE, a);
    mkpath(a, sizeof(a), root, "slow.safetensors");
    ok = ok && svc_write_gaussian_st(a, 6, 1024, 1024, 7);
    mkpath(a, sizeof(a), tmp_dir, "outside/base.safetensors");
    ok = ok && svc_copy_file(BASE, a);
    for (size_t i = 0; i < N_STEPS; i++) {
        snprintf(a, sizeof(a), PEFT "llama_lora/step%04d", steps[i]);
        snprintf(b, sizeof(b), "%s/ft/step%04d", root, steps[i]);
        ok = ok && copy_adapter(a, b);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(a, sizeof(a), PEFT "malformed/%s", bad[i]);
        snprintf(b, sizeof(b), "%s/bad/%s", root, bad[i]);
        ok = ok && copy_adapter(a, b);
    }
    return ok;
}

/* POST {"step", "path", "preset", and `base` (JSON members, may be "")}. */
static long post_adapter(const struct svc *s, const char *run, long step, const char *path,
                         const char *base, struct svc_resp *r)
{
    char url[128], body[2 * PATH_MAX + 256];

    snprintf(url, sizeof(url), "/v1/runs/%s/checkpoints", run);
    snprintf(body, sizeof(body),
             "{\"step\": %ld, \"path\": \"%s\", \"preset\": \"" PRESET "\"%s%s}", step, path,
             base[0] ? ", " : "", base);
    return svc_post_json(s, url, body, NULL, r);
}

/* `farmsd analyze ADAPTER --base BASE --preset farms-llm --format json
 * --threads 1`: one thread, as the server's one runner (svc_harness.h). */
static cJSON *cli_analyze_merged(const char *adapter, const char *base)
{
    char cmd[2 * PATH_MAX + 160];
    struct svc_buf b = {NULL, 0};
    char chunk[65536];
    size_t n;
    FILE *p;
    cJSON *j = NULL;

    snprintf(cmd, sizeof(cmd),
             SVC_FARMSD " analyze '%s' --base '%s' --preset " PRESET
                        " --format json --quiet --threads 1",
             adapter, base);
    p = popen(cmd, "r");
    if (p == NULL)
        return NULL;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
        svc_on_body(chunk, 1, n, &b);
    if (pclose(p) == 0 && b.p != NULL)
        j = cJSON_Parse(b.p);
    free(b.p);
    return j;
}

/* A problem with `status` and `category`; nothing stored for run `run`. */
static void check_refused(const struct svc *s, long status, struct svc_resp *r, long want,
                          const char *category, const char *run)
{
    char path[160];
    struct svc_resp g;

    CHECK_EQ_INT(status, want);
    CHECK_STR_EQ(r->content_type, "application/problem+json");
    CHECK_STR_EQ(svc_js(r->json, "category"), category);
    if (status != want)
        fprintf(stderr, "  detail: %s\n", svc_js(r->json, "detail"));
    svc_resp_free(r);
    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints", run);
    CHECK_EQ_INT(svc_get(s, path, &g), 404);
    svc_resp_free(&g);
}

/* The job of a 202 answer ran to success; its JSON (cJSON_Delete) or NULL. */
static cJSON *accepted_job(const struct svc *s, long status, struct svc_resp *r)
{
    long long id = (long long)svc_jn(r->json, "id");
    cJSON *job;

    CHECK_EQ_INT(status, 202);
    if (status != 202)
        fprintf(stderr, "  detail: %s\n", svc_js(r->json, "detail"));
    svc_resp_free(r);
    job = svc_wait_job(s, id, 120);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    if (strcmp(svc_js(job, "state"), "succeeded") != 0)
        fprintf(stderr, "  job: %s\n", svc_js(svc_j(job, "error"), "message"));
    return job;
}

/* The CLI layer `name` of `cli`, or NULL. */
static const cJSON *cli_layer(const cJSON *cli, const char *name)
{
    const cJSON *l;

    cJSON_ArrayForEach(l, svc_j(cli, "layers")) if (strcmp(svc_js(l, "name"), name) == 0) return l;
    return NULL;
}

/* --- The series ---------------------------------------------------------------------- */

/* Upload the base as run "base" step 0; its job succeeds. Its sha256 to `sha`. */
static void submit_base(const struct svc *s, char sha[THASH_HEX_LEN])
{
    struct svc_resp r;
    long st = svc_upload(s, "/v1/runs/base/checkpoints?step=0&preset=" PRESET, BASE, NULL, &r);
    cJSON *job;

    snprintf(sha, THASH_HEX_LEN, "%s", svc_js(r.json, "sha256"));
    job = accepted_job(s, st, &r);
    CHECK(svc_j(job, "base") != NULL && cJSON_IsNull(svc_j(job, "base")));
    cJSON_Delete(job);
}

static void test_series_gives_merged_histories(const struct svc *s)
{
    const char *adapted = "model.layers.0.self_attn.q_proj.weight";
    char base_sha[THASH_HEX_LEN], p[PATH_MAX], url[256];
    cJSON *cli[N_STEPS] = {NULL}, *base_cli = svc_cli_analyze_threads(BASE, PRESET, 1);
    struct svc_resp r;
    const cJSON *pt;
    size_t k = 0;

    submit_base(s, base_sha);
    for (size_t i = 0; i < N_STEPS; i++) {
        const cJSON *b, *pg;
        cJSON *job;
        int n_adapted;
        long st;

        snprintf(p, sizeof(p), "%s/ft/step%04d", root, steps[i]);
        st = post_adapter(s, "ft", steps[i], p, "\"base_run\": \"base\", \"base_step\": 0", &r);
        CHECK_STR_EQ(svc_js(r.json, "format"), "peft");
        job = accepted_job(s, st, &r);
        b = svc_j(job, "base");
        CHECK_STR_EQ(svc_js(b, "run"), "base");
        CHECK(svc_jn(b, "step") == 0);
        CHECK_STR_EQ(svc_js(b, "sha256"), base_sha);
        CHECK_STR_EQ(svc_js(b, "source"), "upload");
        /* the base was analysed once: only the adapted modules are new */
        snprintf(url, sizeof(url), "llama_lora/step%04d", steps[i]);
        n_adapted = cJSON_GetArraySize(svc_j(expected, url));
        pg = svc_j(job, "progress");
        CHECK(n_adapted > 0);
        CHECK_EQ_INT((long)svc_jn(pg, "cache_hits"), (long)svc_jn(pg, "tensors_total") - n_adapted);
        cJSON_Delete(job);
        snprintf(url, sizeof(url), PEFT "llama_lora/step%04d", steps[i]);
        cli[i] = cli_analyze_merged(url, BASE);
        svc_check_layers_as_cli(s, "ft", steps[i], PRESET, cli[i], 0);
    }
    /* the base's names, in its order */
    CHECK(base_cli != NULL);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(cli[0], "layers")),
                 cJSON_GetArraySize(svc_j(base_cli, "layers")));
    CHECK(cli_layer(cli[0], adapted) != NULL && cli_layer(base_cli, adapted) != NULL);

    /* the history of an adapted layer is the series of merged alphas */
    snprintf(url, sizeof(url), "/v1/runs/ft/layers/%s/history?metrics=alpha&preset=" PRESET,
             adapted);
    CHECK_EQ_INT(svc_get(s, url, &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "points")), (int)N_STEPS);
    cJSON_ArrayForEach(pt, svc_j(r.json, "points"))
    {
        if (k >= N_STEPS)
            break;
        CHECK(svc_jn(pt, "step") == steps[k]);
        CHECK(cJSON_Compare(svc_j(pt, "alpha"), svc_j(cli_layer(cli[k], adapted), "alpha"), 1));
        CHECK(svc_jn(pt, "alpha") != svc_jn(cli_layer(base_cli, adapted), "alpha"));
        k++;
    }
    svc_resp_free(&r);
    for (size_t i = 0; i < N_STEPS; i++)
        cJSON_Delete(cli[i]);
    cJSON_Delete(base_cli);
}

/* The same adapter onto the same base, named by path: the same identity,
 * every tensor a cache hit, the same alphas. */
static void test_base_by_path(const struct svc *s)
{
    char p[PATH_MAX], base[2 * PATH_MAX];
    struct svc_resp r;
    cJSON *job, *cli = cli_analyze_merged(PEFT "llama_lora/step0100", BASE);
    long st;

    snprintf(p, sizeof(p), "%s/ft/step0100", root);
    snprintf(base, sizeof(base), "\"base_path\": \"%s/base.safetensors\"", root);
    st = post_adapter(s, "ft2", 100, p, base, &r);
    job = accepted_job(s, st, &r);
    snprintf(base, sizeof(base), "%s/base.safetensors", root);
    CHECK_STR_EQ(svc_js(svc_j(job, "base"), "path"), base);
    CHECK_STR_EQ(svc_js(svc_j(job, "base"), "source"), "path");
    CHECK(svc_jn(svc_j(job, "progress"), "tensors_total") > 0);
    CHECK(svc_jn(svc_j(job, "progress"), "cache_hits") ==
          svc_jn(svc_j(job, "progress"), "tensors_total"));
    cJSON_Delete(job);
    svc_check_layers_as_cli(s, "ft2", 100, PRESET, cli, 0);
    cJSON_Delete(cli);

    /* again with the same base by run and step: the same content, the same job */
    CHECK_EQ_INT(post_adapter(s, "ft2", 100, p, "\"base_run\": \"base\", \"base_step\": 0", &r),
                 200);
    svc_resp_free(&r);
    /* without a base: another analysis of the same step, a conflict */
    CHECK_EQ_INT(post_adapter(s, "ft2", 100, p, "", &r), 409);
    CHECK_STR_EQ(svc_js(r.json, "category"), "checkpoint_conflict");
    svc_resp_free(&r);
}

/* A path base rewritten after the 202 (while its job waits behind a slow
 * one on the single runner) fails the job "changed", naming the base; no
 * layer rows are stored. */
static void test_changed_base_fails_the_job(const struct svc *s)
{
    char p[PATH_MAX], base[2 * PATH_MAX];
    struct svc_resp r;
    cJSON *job;
    long long slow, id;

    mkpath(p, sizeof(p), root, "slow.safetensors");
    CHECK_EQ_INT(post_adapter(s, "slow", 1, p, "", &r), 202);
    slow = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);
    snprintf(p, sizeof(p), "%s/ft/step0200", root);
    snprintf(base, sizeof(base), "\"base_path\": \"%s/base2.safetensors\"", root);
    CHECK_EQ_INT(post_adapter(s, "ft3", 200, p, base, &r), 202);
    id = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);
    mkpath(p, sizeof(p), root, "base2.safetensors");
    CHECK(svc_copy_file(SVC_FIX "mlp/mlp_step0500.safetensors", p));
    job = svc_wait_job(s, id, 120);
    CHECK_STR_EQ(svc_js(job, "state"), "failed");
    CHECK_STR_EQ(svc_js(svc_j(job, "error"), "category"), "changed");
    CHECK(strstr(svc_js(svc_j(job, "error"), "message"), "base checkpoint") != NULL);
    cJSON_Delete(job);
    CHECK_EQ_INT(svc_get(s, "/v1/runs/ft3/checkpoints/200?preset=" PRESET, &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "layers")), 0);
    svc_resp_free(&r);
    job = svc_wait_job(s, slow, 120);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    cJSON_Delete(job);
}

/* --- Refusals ------------------------------------------------------------------------ */

static void test_bad_bases_are_refused(const struct svc *s)
{
    char p[PATH_MAX], q[PATH_MAX], base[2 * PATH_MAX];
    struct svc_resp r;

    snprintf(p, sizeof(p), "%s/ft/step0100", root);
    check_refused(s, post_adapter(s, "bad", 1, p, "\"base_run\": \"nope\", \"base_step\": 0", &r),
                  &r, 404, "not_found", "bad");
    check_refused(s, post_adapter(s, "bad", 1, p, "\"base_run\": \"base\", \"base_step\": 7", &r),
                  &r, 404, "not_found", "bad");
    check_refused(s, post_adapter(s, "bad", 1, p, "\"base_run\": \"base\"", &r), &r, 400,
                  "invalid_parameter", "bad");
    snprintf(base, sizeof(base), "\"base_path\": \"%s/outside/base.safetensors\"", tmp_dir);
    check_refused(s, post_adapter(s, "bad", 1, p, base, &r), &r, 403, "path_not_allowed", "bad");
    snprintf(base, sizeof(base), "\"base_path\": \"%s/../outside/base.safetensors\"", root);
    check_refused(s, post_adapter(s, "bad", 1, p, base, &r), &r, 400, "invalid_parameter", "bad");
    snprintf(base, sizeof(base),
             "\"base_path\": \"%s/base.safetensors\", \"base_run\": \"base\", \"base_step\": 0",
             root);
    check_refused(s, post_adapter(s, "bad", 1, p, base, &r), &r, 400, "invalid_parameter", "bad");
    /* uploads take the base from the query, by the same rules */
    check_refused(
        s,
        svc_upload(s, "/v1/runs/bad/checkpoints?step=1&base_run=nope&base_step=0", BASE, NULL, &r),
        &r, 404, "not_found", "bad");

    /* the checkpoint must be an adapter that fits the base */
    mkpath(q, sizeof(q), root, "mlp.safetensors");
    check_refused(s, post_adapter(s, "bad", 1, q, "\"base_run\": \"base\", \"base_step\": 0", &r),
                  &r, 400, "invalid_parameter", "bad");
    check_refused(s,
                  svc_upload(s, "/v1/runs/bad/checkpoints?step=1&base_run=base&base_step=0",
                             SVC_FIX "mlp/mlp_step0500.safetensors", NULL, &r),
                  &r, 400, "invalid_parameter", "bad");
    mkpath(q, sizeof(q), root, "bad/not_in_base");
    check_refused(s, post_adapter(s, "bad", 1, q, "\"base_run\": \"base\", \"base_step\": 0", &r),
                  &r, 422, "lora_mismatch", "bad");
    mkpath(q, sizeof(q), root, "bad/shape_not_base");
    check_refused(s, post_adapter(s, "bad", 1, q, "\"base_run\": \"base\", \"base_step\": 0", &r),
                  &r, 422, "lora_mismatch", "bad");
    CHECK_EQ_INT(svc_get(s, "/readyz", &r), 200);
    svc_resp_free(&r);
}

int main(void)
{
    double t0 = svc_now();
    char data[PATH_MAX];
    const char *extra[] = {"--allow-root", root, "--workers", "1", NULL};
    char *text = svc_slurp(PEFT "expected.json", NULL);
    struct svc s;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    expected = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(expected != NULL);
    CHECK(svc_mkdtemp("svc-lora", tmp_dir, sizeof(tmp_dir)));
    CHECK(make_tree());
    mkpath(data, sizeof(data), tmp_dir, "data");
    if (expected != NULL && svc_start(&s, data, extra)) {
        test_series_gives_merged_histories(&s);
        test_base_by_path(&s);
        test_changed_base_fails_the_job(&s);
        test_bad_bases_are_refused(&s);
        CHECK_EQ_INT(svc_stop(&s), 0);
        if (check_n_failed)
            svc_dump_log(&s, 3000);
    } else {
        CHECK(!"server started");
    }
    cJSON_Delete(expected);
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service_lora: %.1f s\n", svc_now() - t0);
    return check_report("test_service_lora");
}
