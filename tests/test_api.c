/* test_api.c -- the HTTP API without a socket: api_handle() on requests
 * built in memory, with an in-memory store and a blob store in a temp dir.
 * Uploads are real fixture files copied into the blob store's tmp dir, as
 * server/http.c leaves them; expected hashes and sizes come from the
 * fixtures' manifest.json. Run from the repository root.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "api/api_int.h"
#include "api/query.h"
#include "core/numerics/preset.h"
#include "core/formats/thash.h"
#include "storage/blob.h"
#include "storage/store.h"
#include "tests/check.h"
#include "storage/store_jobs.h"
#include "storage/store_results.h"
#include "storage/store_layers.h"

#define FIX "tests/fixtures/checkpoints/"

/* --- Fixture: a store, a blob dir, a context --------------------------------- */

struct fx {
    char dir[64];   /* temp dir: blobs/, root/ (allowed), outside/ */
    char root[256]; /* realpath of dir/root */
    char *roots[1];
    struct store *s;
    struct blob_store *b;
    struct api_stats st;
    struct api_ctx ctx;
    int n_queued;
    int64_t last_queued;
    char tmp[PATH_MAX];     /* the last upload's tmp path */
    struct blob_upload *up; /* the last upload, as the server holds it */
};

static void fx_queued(void *arg, int64_t id)
{
    struct fx *f = arg;
    f->n_queued++;
    f->last_queued = id;
}

static void fx_open(struct fx *f)
{
    char p[PATH_MAX], rp[PATH_MAX];

    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/farmsd-test-api-XXXXXX");
    CHECK(mkdtemp(f->dir) != NULL);
    snprintf(p, sizeof(p), "%s/root", f->dir);
    CHECK(mkdir(p, 0700) == 0);
    CHECK(realpath(p, rp) != NULL && strlen(rp) < sizeof(f->root));
    snprintf(f->root, sizeof(f->root), "%.255s", rp);
    snprintf(p, sizeof(p), "%s/outside", f->dir);
    CHECK(mkdir(p, 0700) == 0);
    snprintf(p, sizeof(p), "%s/blobs", f->dir);
    CHECK(blob_store_open(p, &f->b, NULL) == ERR_OK);
    CHECK(store_open(":memory:", &f->s, NULL) == ERR_OK);
    api_stats_init(&f->st);
    f->roots[0] = f->root;
    f->ctx.blobs = f->b;
    f->ctx.default_preset = "farms-llm";
    f->ctx.max_upload = 1u << 30;
    f->ctx.job_queued = fx_queued;
    f->ctx.job_queued_arg = f;
    f->ctx.stats = &f->st;
    f->ctx.ready = 1;
}

static void fx_close(struct fx *f)
{
    char cmd[128];

    blob_upload_abort(f->up); /* as the server does when the request ends */
    store_close(f->s);
    blob_store_close(f->b);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    CHECK(system(cmd) == 0);
}

static size_t file_read(const char *path, char **out)
{
    FILE *fp = fopen(path, "rb");
    long n;

    *out = NULL;
    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0) {
        if (fp)
            fclose(fp);
        return 0;
    }
    rewind(fp);
    *out = malloc((size_t)n + 1);
    if (*out == NULL || fread(*out, 1, (size_t)n, fp) != (size_t)n)
        n = 0;
    fclose(fp);
    return (size_t)n;
}

static void file_copy(const char *from, const char *to)
{
    char *d;
    size_t n = file_read(from, &d);
    FILE *fp = fopen(to, "wb");

    CHECK(fp != NULL && (n == 0 || fwrite(d, 1, n, fp) == n));
    if (fp)
        fclose(fp);
    free(d);
}

/* The manifest's sha256 and size of fixture `rel`. */
static void manifest_entry(const char *rel, char sha[THASH_HEX_LEN], long *size)
{
    char *text;
    cJSON *m, *it;

    file_read(FIX "manifest.json", &text);
    m = cJSON_Parse(text);
    free(text);
    sha[0] = '\0';
    *size = -1;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(m, "files"))
    {
        if (strcmp(cJSON_GetObjectItem(it, "path")->valuestring, rel) == 0) {
            snprintf(sha, THASH_HEX_LEN, "%s", cJSON_GetObjectItem(it, "sha256")->valuestring);
            *size = (long)cJSON_GetObjectItem(it, "size")->valuedouble;
        }
    }
    cJSON_Delete(m);
    CHECK(*size >= 0);
}

/* Receive fixture `rel` as the server does (an upload, finished); the
 * previous upload's request has ended: abort it, as the server does. */
static struct blob_upload *fx_upload_file(struct fx *f, const char *rel)
{
    char path[PATH_MAX], *d;
    size_t n;

    blob_upload_abort(f->up);
    f->up = NULL;
    snprintf(path, sizeof(path), FIX "%s", rel);
    n = file_read(path, &d);
    CHECK(blob_upload_create(f->b, &f->up, NULL) == ERR_OK);
    CHECK(blob_upload_write(f->up, d, n, NULL) == ERR_OK);
    CHECK(blob_upload_finish(f->up, NULL) == ERR_OK);
    free(d);
    snprintf(f->tmp, sizeof(f->tmp), "%s", blob_upload_path(f->up));
    return f->up;
}

/* One request; returns the parsed JSON body (NULL if none / not JSON). */
static cJSON *call(struct fx *f, const struct api_request *rq, struct api_response *r)
{
    api_handle(&f->ctx, f->s, rq, r);
    return r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
}

static cJSON *get(struct fx *f, const char *path, const char *query, struct api_response *r)
{
    struct api_request rq = {.method = "GET", .path = path, .query = query};
    return call(f, &rq, r);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -12345.0;
}

static cJSON *post_upload(struct fx *f, const char *run, const char *rel, const char *query,
                          struct api_response *r)
{
    char path[256];
    struct api_request rq = {
        .method = "POST", .path = path, .query = query, .content_type = "application/octet-stream"};

    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints", run);
    rq.upload = fx_upload_file(f, rel);
    return call(f, &rq, r);
}

static cJSON *post_json(struct fx *f, const char *run, const char *body, struct api_response *r)
{
    char path[256];
    struct api_request rq = {.method = "POST",
                             .path = path,
                             .content_type = "application/json",
                             .body = body,
                             .body_len = strlen(body)};

    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints", run);
    return call(f, &rq, r);
}

static int n_runs(struct fx *f)
{
    struct api_response r;
    cJSON *j = get(f, "/v1/runs", NULL, &r);
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "runs"));

    CHECK_EQ_INT(r.status, 200);
    cJSON_Delete(j);
    api_response_free(&r);
    return n;
}

#include "tests/test_api_ingest.inc"
#include "tests/test_api_reads.inc"

/* The success answers (api_resp.c): status, body, type and headers; a NULL
 * body (allocation failed) is the nomem problem, without a Location; a 304
 * has no body but keeps the ETag and Cache-Control. */
static void test_success_answers(void)
{
    struct api_response r = {0};
    char *text = malloc(3);

    api__ok(&r, cJSON_CreateTrue());
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR_EQ(r.body, "true");
    CHECK_EQ_INT(r.body_len, 4);
    CHECK_STR_EQ(r.content_type, "application/json");
    CHECK_EQ_INT(api__is_ok(&r), 1);
    if (text != NULL)
        memcpy(text, "ab", 3);
    api__ok_body(&r, text, 2, "text/plain");
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR_EQ(r.body, "ab");
    CHECK_EQ_INT(r.body_len, 2);
    CHECK_STR_EQ(r.content_type, "text/plain");
    api__submitted(&r, cJSON_CreateObject(), 1, "/v1/jobs/7");
    CHECK_EQ_INT(r.status, 202);
    CHECK_STR_EQ(r.body, "{}");
    CHECK_STR_EQ(r.location, "/v1/jobs/7");
    CHECK_EQ_INT(api__is_ok(&r), 0);
    api_response_free(&r);
    api__submitted(&r, cJSON_CreateObject(), 0, "/v1/jobs/7");
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR_EQ(r.location, "/v1/jobs/7");
    api_response_free(&r);
    api__submitted(&r, NULL, 1, "/v1/jobs/7");
    CHECK_EQ_INT(r.status, 503);
    CHECK_STR_EQ(r.content_type, "application/problem+json");
    CHECK_EQ_INT(r.retry_after, 5);
    CHECK_STR_EQ(r.location, "");
    api_response_free(&r);
    snprintf(r.etag, sizeof(r.etag), "\"e1\"");
    snprintf(r.cache_control, sizeof(r.cache_control), "no-cache");
    api__ok(&r, cJSON_CreateTrue());
    api__not_modified(&r);
    CHECK_EQ_INT(r.status, 304);
    CHECK(r.body == NULL);
    CHECK_EQ_INT(r.body_len, 0);
    CHECK_STR_EQ(r.content_type, "");
    CHECK_STR_EQ(r.etag, "\"e1\"");
    CHECK_STR_EQ(r.cache_control, "no-cache");
    CHECK_EQ_INT(api__is_ok(&r), 0);
    api_response_free(&r);
}

/* DELETE /v1/runs/{run}: 409 naming the running job (nothing changes), then
 * after the cancel the run goes with its unshared blob; a shared blob stays. */
static void test_delete_run_while_a_job_runs(void)
{
    struct api_request del = {.method = "DELETE", .path = "/v1/runs/busy"};
    struct api_response r;
    struct store_job job;
    struct err e = {0};
    char detail[64], sha0[THASH_HEX_LEN], sha1[THASH_HEX_LEN], cancel[64];
    int claimed = 0;
    struct fx f;
    cJSON *j;

    fx_open(&f);
    j = post_upload(&f, "busy", "mlp/mlp_step0000.safetensors", "step=0", &r);
    CHECK_EQ_INT(r.status, 202);
    snprintf(sha0, sizeof(sha0), "%s", jstr(j, "sha256") ? jstr(j, "sha256") : "");
    cJSON_Delete(j);
    api_response_free(&r);
    j = post_upload(&f, "busy", "mlp/mlp_step0100.safetensors", "step=100", &r);
    snprintf(sha1, sizeof(sha1), "%s", jstr(j, "sha256") ? jstr(j, "sha256") : "");
    cJSON_Delete(j);
    api_response_free(&r);
    j = post_upload(&f, "keeps", "mlp/mlp_step0100.safetensors", "step=1", &r);
    CHECK_EQ_INT(r.status, 202); /* the same bytes in another run */
    cJSON_Delete(j);
    api_response_free(&r);
    CHECK_EQ_INT(store_job_claim(f.s, &job, &claimed, &e), ERR_OK);
    CHECK(claimed && strcmp(job.run, "busy") == 0);

    j = call(&f, &del, &r);
    CHECK_EQ_INT(r.status, 409);
    CHECK_STR_EQ(jstr(j, "category"), "job_running");
    snprintf(detail, sizeof(detail), "DELETE /v1/jobs/%lld", (long long)job.id);
    CHECK(jstr(j, "detail") != NULL && strstr(jstr(j, "detail"), detail) != NULL);
    cJSON_Delete(j);
    api_response_free(&r);
    CHECK_EQ_INT(blob_exists(f.b, sha0), 1);

    snprintf(cancel, sizeof(cancel), "/v1/jobs/%lld", (long long)job.id);
    {
        struct api_request rq = {.method = "DELETE", .path = cancel};
        cJSON_Delete(call(&f, &rq, &r));
        CHECK_EQ_INT(r.status, 200);
        api_response_free(&r);
    }
    j = call(&f, &del, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(jnum(cJSON_GetObjectItem(j, "deleted"), "checkpoints"), 2);
    CHECK_EQ_INT(jnum(cJSON_GetObjectItem(j, "deleted"), "jobs"), 2);
    CHECK_EQ_INT(jnum(cJSON_GetObjectItem(j, "deleted"), "blobs"), 1);
    cJSON_Delete(j);
    api_response_free(&r);
    CHECK_EQ_INT(blob_exists(f.b, sha0), 0);
    CHECK_EQ_INT(blob_exists(f.b, sha1), 1); /* run "keeps" refers to it */
    cJSON_Delete(get(&f, "/v1/runs/busy", NULL, &r));
    CHECK_EQ_INT(r.status, 404);
    api_response_free(&r);
    cJSON_Delete(call(&f, &del, &r));
    CHECK_EQ_INT(r.status, 404);
    api_response_free(&r);
    fx_close(&f);
}

int main(void)
{
    test_upload_accepted();
    test_upload_same_content_same_job();
    test_upload_selection_settings();
    test_upload_other_content_conflict();
    test_upload_malformed_stores_nothing();
    test_upload_checksum_header();
    test_upload_bad_parameters();
    test_path_ingestion();
    test_path_shards();
    test_jobs_get_cancel();
    test_reads_checkpoint_and_latest();
    test_history_and_downsampling();
    test_heatmap();
    test_etag_304();
    test_pagination();
    test_auth();
    test_precheck_refuses_before_the_body();
    test_routing();
    test_ops_endpoints();
    test_tensors();
    test_query_helpers();
    test_delete_run_while_a_job_runs();
    test_success_answers();
    return check_report("test_api");
}
