/* test_service_auth.c -- a real `farmsd serve` (tests/svc_harness.h) with
 * bearer tokens (--tokens) and a 1 KiB upload limit (--max-upload 1K):
 * 401 + WWW-Authenticate without or with a wrong token, 403
 * insufficient_scope for a read token on POST/DELETE and a write token on
 * GET, 200/202 with the right scope, /healthz /readyz /metrics open; 413
 * problem+json for a body over the limit, announced by Content-Length or
 * streamed chunked, nothing stored; a tokens file with a short token, an
 * unknown or missing scope or a '#' inside a token stops the server at start. Auth off:
 * test_service_http.c. Run from the repository root after `make test-build`.
 */
#include "tests/check.h"
#include "tests/svc_harness.h"

#define NUM         "tests/fixtures/numerics/"
#define READ_TOKEN  "read-token-0123456789abcdef"
#define WRITE_TOKEN "write-token-0123456789abcdef"
#define BOTH_TOKEN  "both-token-0123456789abcdef"

static char tmp_dir[256];

static void wait_succeeded(const struct svc *s, long long id)
{
    cJSON *job = svc_wait_job(s, id, 60);

    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    cJSON_Delete(job);
}

/* --- Auth and the upload limit ------------------------------------------------------------ */

/* `method` path (an upload of `file` if not NULL) with "Authorization:
 * Bearer token", or no Authorization header when token is NULL. */
static long with_token(const struct svc *s, const char *method, const char *path, const char *token,
                       const char *file, struct svc_resp *r)
{
    char h[128];
    const char *hdrs[] = {h, NULL};

    if (token != NULL)
        snprintf(h, sizeof(h), "Authorization: Bearer %s", token);
    if (file != NULL)
        return svc_upload(s, path, file, token ? hdrs : NULL, r);
    return svc_req(s, method, path, NULL, NULL, 0, token ? hdrs : NULL, r);
}

static void test_auth(const struct svc *s)
{
    const char *up = "/v1/runs/auth/checkpoints?step=1";
    const char *small = NUM "tiny_4x3.safetensors"; /* 144 bytes, under the 1 KiB limit */
    struct svc_resp r;
    const char *basic[] = {"Authorization: Basic dXNlcjpwYXNz", NULL};

    /* no credentials: 401 + WWW-Authenticate, for reads and writes */
    CHECK_EQ_INT(svc_get(s, "/v1/runs", &r), 401);
    CHECK_STR_EQ(r.www_authenticate, "Bearer realm=\"farmsd\"");
    CHECK_STR_EQ(r.content_type, "application/problem+json");
    CHECK_EQ_INT((long)svc_jn(r.json, "status"), 401);
    svc_resp_free(&r);
    CHECK_EQ_INT(with_token(s, "POST", up, NULL, small, &r), 401);
    CHECK(strncmp(r.www_authenticate, "Bearer realm=\"farmsd\"", 21) == 0);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_req(s, "GET", "/v1/runs", NULL, NULL, 0, basic, &r), 401);
    CHECK(strncmp(r.www_authenticate, "Bearer realm=\"farmsd\"", 21) == 0);
    svc_resp_free(&r);
    /* a wrong token */
    CHECK_EQ_INT(with_token(s, "GET", "/v1/runs", "not-a-known-token-0123456789", NULL, &r), 401);
    CHECK(strstr(r.www_authenticate, "error=\"invalid_token\"") != NULL);
    svc_resp_free(&r);
    /* a read token cannot write */
    CHECK_EQ_INT(with_token(s, "POST", up, READ_TOKEN, small, &r), 403);
    CHECK(strstr(r.www_authenticate, "error=\"insufficient_scope\"") != NULL);
    svc_resp_free(&r);
    CHECK_EQ_INT(with_token(s, "GET", "/v1/runs/auth/checkpoints", READ_TOKEN, NULL, &r), 404);
    svc_resp_free(&r); /* nothing was stored by the refused writes */
    /* a write token writes but cannot read; read,write does both */
    CHECK_EQ_INT(with_token(s, "POST", up, WRITE_TOKEN, small, &r), 202);
    wait_succeeded(s, (long long)svc_jn(r.json, "id"));
    svc_resp_free(&r);
    CHECK_EQ_INT(with_token(s, "GET", "/v1/runs", WRITE_TOKEN, NULL, &r), 403);
    CHECK(strstr(r.www_authenticate, "error=\"insufficient_scope\"") != NULL);
    svc_resp_free(&r);
    CHECK_EQ_INT(with_token(s, "GET", "/v1/runs/auth/checkpoints", READ_TOKEN, NULL, &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "checkpoints")), 1);
    svc_resp_free(&r);
    CHECK_EQ_INT(with_token(s, "POST", "/v1/runs/auth/checkpoints?step=2", BOTH_TOKEN,
                            NUM "tiny_30x50.safetensors", &r),
                 413); /* 6 KB: over the limit, whoever sends it */
    svc_resp_free(&r);
    CHECK_EQ_INT(with_token(s, "GET", "/v1/runs", BOTH_TOKEN, NULL, &r), 200);
    svc_resp_free(&r);
    /* DELETE needs the write scope; HEAD the read scope */
    CHECK_EQ_INT(with_token(s, "DELETE", "/v1/jobs/1", READ_TOKEN, NULL, &r), 403);
    svc_resp_free(&r);
    CHECK_EQ_INT(with_token(s, "DELETE", "/v1/runs/auth", READ_TOKEN, NULL, &r), 403);
    CHECK(strstr(r.www_authenticate, "scope=\"write\"") != NULL);
    svc_resp_free(&r);
    CHECK_EQ_INT(with_token(s, "GET", "/v1/runs/auth", READ_TOKEN, NULL, &r), 200);
    svc_resp_free(&r); /* the refused delete changed nothing */
    CHECK_EQ_INT(svc_req(s, "HEAD", "/v1/runs", NULL, NULL, 0, NULL, &r), 401);
    svc_resp_free(&r);
    {
        const char *h[] = {"Authorization: Bearer " READ_TOKEN, NULL};
        CHECK_EQ_INT(svc_req(s, "HEAD", "/v1/runs/auth/checkpoints", NULL, NULL, 0, h, &r), 200);
        CHECK(r.etag[0] == '"');
        svc_resp_free(&r);
    }
    /* health and metrics are open */
    CHECK_EQ_INT(svc_get(s, "/healthz", &r), 200);
    CHECK_STR_EQ(svc_js(r.json, "status"), "ok");
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/readyz", &r), 200);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/metrics", &r), 200);
    CHECK(strstr(r.body, "farmsd_http_requests_total{method=\"GET\",route=\"/v1/runs\","
                         "code=\"401\"} 4") != NULL); /* 3 GETs, 1 HEAD */
    svc_resp_free(&r);
}

static void test_body_over_the_limit(const struct svc *s)
{
    const char *file = SVC_FIX "mlp/mlp_step0000.safetensors"; /* 203792 bytes */
    const char *auth[] = {"Authorization: Bearer " BOTH_TOKEN, NULL};
    char blobs[PATH_MAX];
    struct svc_resp r;

    /* Content-Length over the limit: refused before the body is read */
    CHECK_EQ_INT(svc_upload(s, "/v1/runs/big/checkpoints?step=1", file, auth, &r), 413);
    CHECK_STR_EQ(r.content_type, "application/problem+json");
    CHECK_STR_EQ(svc_js(r.json, "category"), "limit_exceeded");
    CHECK_EQ_INT((long)svc_jn(r.json, "status"), 413);
    CHECK(strstr(svc_js(r.json, "detail"), "1024") != NULL);
    svc_resp_free(&r);
    /* chunked, no Content-Length: refused once the stream passes the limit */
    CHECK_EQ_INT(svc_upload_chunked(s, "POST", "/v1/runs/big/checkpoints?step=1", file, auth, &r),
                 413);
    CHECK_STR_EQ(svc_js(r.json, "category"), "limit_exceeded");
    svc_resp_free(&r);
    /* nothing stored, the server fine */
    CHECK_EQ_INT(with_token(s, "GET", "/v1/runs/big/checkpoints", BOTH_TOKEN, NULL, &r), 404);
    svc_resp_free(&r);
    snprintf(blobs, sizeof(blobs), "%s/blobs/tmp", s->data);
    CHECK_EQ_INT(svc_count_files(blobs), 0);
    snprintf(blobs, sizeof(blobs), "%s/blobs/objects", s->data);
    CHECK_EQ_INT(svc_count_files(blobs), 1); /* the one accepted upload of test_auth */
    CHECK_EQ_INT(svc_get(s, "/healthz", &r), 200);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_metric(s, "farmsd_uploads_in_flight"), 0);
}

/* Tokens shorter than 16 characters, unknown or missing scopes, a '#'
 * inside a token (its prefix used to get read,write): the server refuses to
 * start (usage error, exit 2) rather than run with weak auth. */
static void test_bad_tokens_file_refused_at_start(void)
{
    static const char *const bad[] = {"short-token read\n", "long-enough-token-0123456789 admin\n",
                                      "long-enough-token-0123456789\n",
                                      "abcdefghijklmnopqrstuvwxyz#123 read\n"};
    char data[PATH_MAX], tokens[PATH_MAX];
    const char *extra[] = {"--tokens", tokens, NULL};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct svc s;
        snprintf(data, sizeof(data), "%s/badtokens%zu", tmp_dir, i);
        snprintf(tokens, sizeof(tokens), "%s/tokens%zu", tmp_dir, i);
        CHECK(svc_write_file(tokens, bad[i], strlen(bad[i])));
        CHECK(!svc_start_ex(&s, data, extra, 1));
        CHECK_EQ_INT(s.start_status, 2);
    }
}

static void test_auth_server(void)
{
    char data[PATH_MAX], tokens[PATH_MAX];
    const char *text = "# scopes: read, write or read,write\n" READ_TOKEN " read\n" WRITE_TOKEN
                       " write\n" BOTH_TOKEN " read,write\n";
    const char *extra[] = {"--tokens", tokens, "--max-upload", "1K", NULL};
    struct svc s;

    snprintf(data, sizeof(data), "%s/auth", tmp_dir);
    snprintf(tokens, sizeof(tokens), "%s/tokens", tmp_dir);
    CHECK(svc_write_file(tokens, text, strlen(text)));
    if (!svc_start(&s, data, extra)) {
        CHECK(!"server started");
        return;
    }
    snprintf(s.auth, sizeof(s.auth), "Authorization: Bearer %s", READ_TOKEN);
    test_auth(&s);
    test_body_over_the_limit(&s);
    CHECK_EQ_INT(svc_stop(&s), 0);
    if (check_n_failed)
        svc_dump_log(&s, 3000);
}

int main(void)
{
    double t0 = svc_now();

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(svc_mkdtemp("svc-auth", tmp_dir, sizeof(tmp_dir)));
    test_auth_server();
    test_bad_tokens_file_refused_at_start();
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service_auth: %.1f s\n", svc_now() - t0);
    return check_report("test_service_auth");
}
