/* test_service_ingest.c -- what a real `farmsd serve` (tests/svc_harness.h)
 * accepts and refuses.
 *
 * Path ingestion: files, a shard index and its folder inside an allowed
 * root are analysed in place (same content identity for index and folder,
 * the identity computed here from the manifest's shard hashes); `..`,
 * symlinks leading out of the root (a file, a folder, one shard of an
 * index), a sibling folder sharing the root's name prefix, relative and
 * percent-encoded paths are refused with the documented status and
 * category; without --allow-root path ingestion is off.
 * Malformed checkpoints: every malformed fixture of the manifest, uploaded
 * (or, for shard indexes, named by path) with its declared format, is
 * refused with 422 (413 for limit_exceeded) and one of its expected
 * categories, /healthz stays fine, and nothing is stored: no run, no job,
 * no blob, no temporary file, no ingested byte.
 * Run from the repository root after `make test-build`.
 */
#include <openssl/evp.h>

#include "tests/check.h"
#include "tests/svc_harness.h"

static char tmp_dir[256];
static char root[1024]; /* realpath of tmp_dir/root */
static cJSON *manifest;

static void mkpath(char *out, size_t len, const char *a, const char *b)
{
    if ((size_t)snprintf(out, len, "%s/%s", a, b) >= len)
        out[0] = '\0';
}

/* tmp/root: mlp.safetensors, sharded/ (the LLaMA shards + index), evil/
 * (the same index, one shard a symlink out of the root), escape_file and
 * escape_dir (symlinks out); tmp/outside: secret.safetensors and a shard;
 * tmp/rootsibling: a file next to the root whose path starts like it. */
static int make_tree(void)
{
    static const char *const dirs[] = {"root", "root/sharded", "root/evil", "outside",
                                       "rootsibling"};
    static const char *const shard[2] = {"model-00001-of-00002.safetensors",
                                         "model-00002-of-00002.safetensors"};
    char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX];
    int ok = 1;

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        mkpath(a, sizeof(a), tmp_dir, dirs[i]);
        ok = ok && mkdir(a, 0700) == 0;
    }
    mkpath(a, sizeof(a), tmp_dir, "root");
    ok = ok && realpath(a, b) != NULL && strlen(b) < sizeof(root);
    snprintf(root, sizeof(root), "%.1000s", b);
    mkpath(a, sizeof(a), root, "mlp.safetensors");
    ok = ok && svc_copy_file(SVC_FIX "mlp/mlp_step0500.safetensors", a);
    for (int i = 0; i < 2; i++) {
        snprintf(b, sizeof(b), SVC_FIX "llama/sharded/%s", shard[i]);
        snprintf(c, sizeof(c), "%s/sharded/%s", root, shard[i]);
        ok = ok && svc_copy_file(b, c);
    }
    snprintf(c, sizeof(c), "%s/sharded/model.safetensors.index.json", root);
    ok = ok && svc_copy_file(SVC_FIX "llama/sharded/model.safetensors.index.json", c);
    snprintf(c, sizeof(c), "%s/evil/model.safetensors.index.json", root);
    ok = ok && svc_copy_file(SVC_FIX "llama/sharded/model.safetensors.index.json", c);
    snprintf(b, sizeof(b), SVC_FIX "llama/sharded/%s", shard[0]);
    snprintf(c, sizeof(c), "%s/evil/%s", root, shard[0]);
    ok = ok && svc_copy_file(b, c);
    snprintf(b, sizeof(b), SVC_FIX "llama/sharded/%s", shard[1]);
    snprintf(a, sizeof(a), "%s/outside/%s", tmp_dir, shard[1]);
    ok = ok && svc_copy_file(b, a);
    snprintf(c, sizeof(c), "%s/evil/%s", root, shard[1]);
    ok = ok && symlink(a, c) == 0;
    snprintf(a, sizeof(a), "%s/outside/secret.safetensors", tmp_dir);
    ok = ok && svc_copy_file(SVC_FIX "mlp/mlp_step0100.safetensors", a);
    snprintf(c, sizeof(c), "%s/escape_file", root);
    ok = ok && symlink(a, c) == 0;
    snprintf(a, sizeof(a), "%s/outside", tmp_dir);
    snprintf(c, sizeof(c), "%s/escape_dir", root);
    ok = ok && symlink(a, c) == 0;
    snprintf(a, sizeof(a), "%s/rootsibling/x.safetensors", tmp_dir);
    ok = ok && svc_copy_file(SVC_FIX "mlp/mlp_step0100.safetensors", a);
    return ok;
}

/* SHA-256 over "<shard name>\0<shard sha256 hex>\n" in name order, from
 * the manifest's shard hashes (openapi: content identity of an index). */
static void index_identity(char hex[THASH_HEX_LEN])
{
    static const char *const shard[2] = {"model-00001-of-00002.safetensors",
                                         "model-00002-of-00002.safetensors"};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char d[THASH_DIGEST_LEN];
    unsigned n = 0;

    hex[0] = '\0';
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    for (int i = 0; i < 2; i++) {
        char rel[128];
        const char *sha;
        snprintf(rel, sizeof(rel), "llama/sharded/%s", shard[i]);
        sha = svc_js(svc_manifest_file(manifest, rel), "sha256");
        EVP_DigestUpdate(md, shard[i], strlen(shard[i]) + 1);
        EVP_DigestUpdate(md, sha, strlen(sha));
        EVP_DigestUpdate(md, "\n", 1);
    }
    if (EVP_DigestFinal_ex(md, d, &n) == 1 && n == THASH_DIGEST_LEN)
        for (int i = 0; i < THASH_DIGEST_LEN; i++)
            snprintf(hex + (size_t)2 * i, 3, "%02x", d[i]);
out:
    EVP_MD_CTX_free(md);
}

/* POST {"step": step, "path": path[, "format": fmt]} to run `run`. */
static long post_path(const struct svc *s, const char *run, long step, const char *path,
                      const char *fmt, struct svc_resp *r)
{
    char url[128], body[PATH_MAX + 128];

    snprintf(url, sizeof(url), "/v1/runs/%s/checkpoints", run);
    if (fmt != NULL)
        snprintf(body, sizeof(body), "{\"step\": %ld, \"path\": \"%s\", \"format\": \"%s\"}", step,
                 path, fmt);
    else
        snprintf(body, sizeof(body), "{\"step\": %ld, \"path\": \"%s\"}", step, path);
    return svc_post_json(s, url, body, NULL, r);
}

/* --- Path ingestion ------------------------------------------------------------------ */

static void test_paths_inside_the_root_are_analysed_in_place(const struct svc *s)
{
    char p[PATH_MAX], idx[PATH_MAX], want_id[THASH_HEX_LEN];
    struct svc_resp r;
    long long file_job, index_job;
    cJSON *job;

    mkpath(p, sizeof(p), root, "mlp.safetensors");
    CHECK_EQ_INT(post_path(s, "paths", 1, p, NULL, &r), 202);
    CHECK_STR_EQ(svc_js(r.json, "source"), "path");
    CHECK_STR_EQ(svc_js(r.json, "path"), p);
    CHECK_STR_EQ(svc_js(r.json, "format"), "safetensors");
    CHECK_STR_EQ(svc_js(r.json, "sha256"),
                 svc_js(svc_manifest_file(manifest, "mlp/mlp_step0500.safetensors"), "sha256"));
    CHECK_EQ_INT((long)svc_jn(r.json, "size"), 203792);
    file_job = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);

    mkpath(idx, sizeof(idx), root, "sharded/model.safetensors.index.json");
    index_identity(want_id);
    CHECK_EQ_INT(post_path(s, "paths", 2, idx, "index", &r), 202);
    CHECK_STR_EQ(svc_js(r.json, "sha256"), want_id);
    CHECK_STR_EQ(svc_js(r.json, "format"), "safetensors_index");
    CHECK_EQ_INT((long)svc_jn(r.json, "size"), 156184 + 149256); /* both shards */
    index_job = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);
    /* the folder of the same shards is the same content: the same job */
    mkpath(p, sizeof(p), root, "sharded");
    CHECK_EQ_INT(post_path(s, "paths", 2, p, NULL, &r), 200);
    CHECK_EQ_INT((long long)svc_jn(r.json, "id"), index_job);
    CHECK_STR_EQ(svc_js(r.json, "sha256"), want_id);
    svc_resp_free(&r);

    job = svc_wait_job(s, file_job, 60);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    cJSON_Delete(job);
    job = svc_wait_job(s, index_job, 60);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    cJSON_Delete(job);
    svc_check_layers_as_analyze(s, "paths", 1, SVC_FIX "mlp/mlp_step0500.safetensors", 0, 0);
    svc_check_layers_as_analyze(s, "paths", 2, SVC_FIX "llama/sharded/model.safetensors.index.json",
                                0, 0);
}

static void test_paths_outside_the_root_are_refused(const struct svc *s)
{
    static const struct {
        const char *rel; /* under the folder that holds the root; "" + abs 0: as is */
        int abs;
        long status;
        const char *category;
    } cases[] = {
        {"root/../outside/secret.safetensors", 1, 400, "invalid_parameter"},
        {"root/sharded/../../outside/secret.safetensors", 1, 400, "invalid_parameter"},
        {"outside/secret.safetensors", 1, 403, "path_not_allowed"},
        {"root/escape_file", 1, 403, "path_not_allowed"},
        {"root/escape_dir/secret.safetensors", 1, 403, "path_not_allowed"},
        {"root/escape_dir", 1, 403, "path_not_allowed"},
        {"root/evil/model.safetensors.index.json", 1, 403, "path_not_allowed"},
        {"root/evil", 1, 403, "path_not_allowed"},
        {"rootsibling/x.safetensors", 1, 403, "path_not_allowed"},
        {"outside/no-such-file", 1, 403, "path_not_allowed"}, /* no probing outside */
        {"root/no-such-file", 1, 400, "invalid_parameter"},
        {"root/mlp%2esafetensors", 1, 400, "invalid_parameter"},
        {"relative/mlp.safetensors", 0, 400, "invalid_parameter"},
    };
    char parent[1024], p[PATH_MAX];
    struct svc_resp r;

    snprintf(parent, sizeof(parent), "%s", root); /* realpath'd: /tmp may be a link */
    *strrchr(parent, '/') = '\0';
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].abs)
            snprintf(p, sizeof(p), "%s/%s", parent, cases[i].rel);
        else
            snprintf(p, sizeof(p), "%s", cases[i].rel);
        CHECK_EQ_INT(post_path(s, "paths", 3, p, NULL, &r), cases[i].status);
        CHECK_STR_EQ(svc_js(r.json, "category"), cases[i].category);
        CHECK_STR_EQ(r.content_type, "application/problem+json");
        if (r.status != cases[i].status)
            fprintf(stderr, "  path case %zu: %s -> %ld %s\n", i, p, r.status, r.body);
        svc_resp_free(&r);
    }
    /* a body with an unknown member, or without a step */
    {
        char body[PATH_MAX + 64];
        mkpath(p, sizeof(p), root, "mlp.safetensors");
        snprintf(body, sizeof(body), "{\"step\": 3, \"path\": \"%s\", \"evil\": 1}", p);
        CHECK_EQ_INT(svc_post_json(s, "/v1/runs/paths/checkpoints", body, NULL, &r), 400);
        CHECK_STR_EQ(svc_js(r.json, "category"), "invalid_parameter");
        CHECK(strstr(svc_js(r.json, "detail"), "evil") != NULL);
        svc_resp_free(&r);
        snprintf(body, sizeof(body), "{\"path\": \"%s\"}", p);
        CHECK_EQ_INT(svc_post_json(s, "/v1/runs/paths/checkpoints", body, NULL, &r), 400);
        CHECK(strstr(svc_js(r.json, "detail"), "step") != NULL);
        svc_resp_free(&r);
    }
    /* nothing recorded for step 3 */
    CHECK_EQ_INT(svc_get(s, "/v1/runs/paths/checkpoints", &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "checkpoints")), 2);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/runs/paths/checkpoints/3", &r), 404);
    svc_resp_free(&r);
}

/* --- Malformed checkpoints ------------------------------------------------------------ */

static const char *query_format(const char *manifest_format)
{
    static const char *const known[] = {"safetensors", "torch_zip", "npy", "npz"};

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(manifest_format, known[i]) == 0)
            return known[i];
    return "auto"; /* unknown, torch_legacy, pickle: the server sniffs */
}

static int in_expect(const cJSON *entry, const char *category)
{
    const cJSON *x;

    cJSON_ArrayForEach(x,
                       svc_j(entry, "expect")) if (cJSON_IsString(x) &&
                                                   strcmp(x->valuestring, category) == 0) return 1;
    return 0;
}

/* 1 if the entry may load in the lenient pickle mode (expect_lenient has "ok"). */
static int lenient_ok(const cJSON *entry)
{
    const cJSON *x;

    cJSON_ArrayForEach(x, svc_j(entry, "expect_lenient")) if (cJSON_IsString(x) &&
                                                              strcmp(x->valuestring, "ok") ==
                                                                  0) return 1;
    return 0;
}

/* The service reads pickles in the lenient mode (README: unknown globals
 * become inert placeholders; only --strict, which serve does not have,
 * refuses them): a pickled whole nn.Module loads, its weights are found;
 * deny-listed globals are refused in every mode (the loop above). */
static void test_lenient_pickle_mode(const struct svc *s)
{
    struct svc_resp r;
    cJSON *job;
    int n_ok = 0;
    const cJSON *l;

    CHECK_EQ_INT(svc_upload(s, "/v1/runs/lenient/checkpoints?step=1&format=torch",
                            SVC_FIX "malformed/pt_whole_module.pt", NULL, &r),
                 202);
    job = svc_wait_job(s, (long long)svc_jn(r.json, "id"), 60);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    cJSON_Delete(job);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/runs/lenient/checkpoints/1", &r), 200);
    cJSON_ArrayForEach(l, svc_j(r.json, "layers")) n_ok += strcmp(svc_js(l, "status"), "ok") == 0;
    CHECK_EQ_INT(n_ok, 3); /* the MLP's three weight matrices */
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "layers")), 6);
    svc_resp_free(&r);
}

static void test_every_malformed_fixture_is_refused_and_nothing_stored(const struct svc *s)
{
    const cJSON *f;
    int n = 0, step = 0;
    double jobs0 = 0, bytes0 = svc_metric(s, "farmsd_ingested_bytes_total");
    static const char *const states[] = {"queued", "running", "succeeded", "failed", "canceled"};
    char dir[PATH_MAX];
    struct svc_resp r;

    for (int i = 0; i < 5; i++) {
        char m[64];
        snprintf(m, sizeof(m), "farmsd_jobs{state=\"%s\"}", states[i]);
        jobs0 += svc_metric(s, m);
    }
    cJSON_ArrayForEach(f, svc_j(manifest, "files"))
    {
        const char *rel = svc_js(f, "path"), *fmt = svc_js(f, "format"), *cat;
        char file[PATH_MAX];
        long want;

        if (strncmp(rel, "malformed/", 10) != 0 || lenient_ok(f))
            continue; /* the lenient-mode loadable file: test_lenient_pickle_mode */
        step++;
        snprintf(file, sizeof(file), SVC_FIX "%s", rel);
        if (strcmp(fmt, "safetensors_index") == 0) {
            char abs[PATH_MAX];
            CHECK(realpath(file, abs) != NULL);
            post_path(s, "bad", step, abs, "index", &r);
        } else {
            char url[160];
            snprintf(url, sizeof(url), "/v1/runs/bad/checkpoints?step=%d&format=%s", step,
                     query_format(fmt));
            svc_upload(s, url, file, NULL, &r);
        }
        cat = svc_js(r.json, "category");
        want = strcmp(cat, "limit_exceeded") == 0 ? 413 : 422;
        CHECK_EQ_INT(r.status, want);
        CHECK(in_expect(f, cat));
        CHECK_STR_EQ(r.content_type, "application/problem+json");
        CHECK_EQ_INT((long)svc_jn(r.json, "status"), r.status);
        CHECK(strlen(svc_js(r.json, "detail")) > 0);
        if (r.status != want || !in_expect(f, cat))
            fprintf(stderr, "  %s (%s): %ld %s\n", rel, fmt, r.status, r.body);
        svc_resp_free(&r);
        CHECK_EQ_INT(svc_get(s, "/healthz", &r), 200);
        svc_resp_free(&r);
        n++;
    }
    CHECK_EQ_INT(n, 77); /* every malformed entry of the manifest but pt_whole_module.pt */
    /* nothing stored */
    CHECK_EQ_INT(svc_get(s, "/v1/runs/bad/checkpoints", &r), 404);
    svc_resp_free(&r);
    {
        double jobs = 0;
        for (int i = 0; i < 5; i++) {
            char m[64];
            snprintf(m, sizeof(m), "farmsd_jobs{state=\"%s\"}", states[i]);
            jobs += svc_metric(s, m);
        }
        CHECK_EQ_INT(jobs, jobs0);
    }
    CHECK_EQ_INT(svc_metric(s, "farmsd_ingested_bytes_total"), bytes0);
    CHECK_EQ_INT(svc_metric(s, "farmsd_uploads_in_flight"), 0);
    snprintf(dir, sizeof(dir), "%s/blobs/objects", s->data);
    CHECK_EQ_INT(svc_count_files(dir), 0);
    snprintf(dir, sizeof(dir), "%s/blobs/tmp", s->data);
    CHECK_EQ_INT(svc_count_files(dir), 0);
    CHECK_EQ_INT(svc_get(s, "/readyz", &r), 200);
    svc_resp_free(&r);
}

static void test_ingestion_server(void)
{
    char data[PATH_MAX], malformed[PATH_MAX];
    const char *extra[] = {"--allow-root", root, "--allow-root", malformed, NULL};
    struct svc s;

    CHECK(realpath(SVC_FIX "malformed", malformed) != NULL);
    mkpath(data, sizeof(data), tmp_dir, "data");
    if (!svc_start(&s, data, extra)) {
        CHECK(!"server started");
        return;
    }
    test_paths_inside_the_root_are_analysed_in_place(&s);
    test_paths_outside_the_root_are_refused(&s);
    test_every_malformed_fixture_is_refused_and_nothing_stored(&s);
    test_lenient_pickle_mode(&s);
    CHECK_EQ_INT(svc_stop(&s), 0);
    if (check_n_failed)
        svc_dump_log(&s, 3000);
}

/* No --allow-root: path ingestion is off, even for a path that exists. */
static void test_path_ingestion_off_without_roots(void)
{
    char data[PATH_MAX], p[PATH_MAX];
    struct svc s;
    struct svc_resp r;

    mkpath(data, sizeof(data), tmp_dir, "noroots");
    if (!svc_start(&s, data, NULL)) {
        CHECK(!"server started");
        return;
    }
    mkpath(p, sizeof(p), root, "mlp.safetensors");
    CHECK_EQ_INT(post_path(&s, "paths", 1, p, NULL, &r), 403);
    CHECK_STR_EQ(svc_js(r.json, "category"), "path_not_allowed");
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(&s, "/v1/runs", &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "runs")), 0);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_stop(&s), 0);
}

int main(void)
{
    double t0 = svc_now();

    curl_global_init(CURL_GLOBAL_DEFAULT);
    manifest = svc_manifest();
    CHECK(manifest != NULL);
    CHECK(svc_mkdtemp("svc-ingest", tmp_dir, sizeof(tmp_dir)));
    CHECK(make_tree());
    if (manifest != NULL) {
        test_ingestion_server();
        test_path_ingestion_off_without_roots();
    }
    cJSON_Delete(manifest);
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service_ingest: %.1f s\n", svc_now() - t0);
    return check_report("test_service_ingest");
}
