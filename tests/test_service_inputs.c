/* test_service_inputs.c -- a real `farmsd serve` (tests/svc_harness.h)
 * given inputs at the edges of what it accepts:
 * - steps: 2^53 - 1 = 9007199254740991 is the largest step (the largest
 *   integer a JSON number carries exactly); it is accepted from a JSON body,
 *   stored and read back exactly; 2^53 is a 400 invalid_parameter naming the
 *   limit in the query, a path segment and a JSON body (it used to be
 *   accepted and then read back as 9.00719925474099e+15);
 * - names: a run or layer name, a query value or a JSON body that is not
 *   UTF-8 is a 400 invalid_parameter whose body is valid UTF-8 (%ff%fe used
 *   to be echoed raw into the JSON);
 * - every problem has a category: the free-space pre-check's 507 is
 *   insufficient_storage (--min-free larger than any disk), also 404/405;
 * - a kill -9 during an upload leaves its temp file; the restart removes it
 *   (its process is gone) rather than an hour later.
 * Run from the repository root after `make test-build`.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/utf8.h"
#include "tests/check.h"
#include "tests/svc_harness.h"

#define NUM       "tests/fixtures/numerics/"
#define STEP_MAX  "9007199254740991" /* 2^53 - 1 */
#define STEP_2_53 "9007199254740992"

static char tmp_dir[256];
static char root[PATH_MAX]; /* --allow-root */

/* A 400 invalid_parameter problem whose detail contains `want` (may be NULL). */
static void check_400(long status, const struct svc_resp *r, const char *want)
{
    CHECK_EQ_INT(status, 400);
    CHECK_STR_EQ(r->content_type, "application/problem+json");
    CHECK_STR_EQ(svc_js(r->json, "category"), "invalid_parameter");
    if (want != NULL) {
        const char *d = svc_js(r->json, "detail");
        CHECK(d != NULL && strstr(d, want) != NULL);
        if (d == NULL || strstr(d, want) == NULL)
            fprintf(stderr, "  detail \"%s\", want \"%s\"\n", d ? d : "(none)", want);
    }
}

/* 1 if the whole body is valid UTF-8 (and there is one). */
static int body_utf8(const struct svc_resp *r)
{
    return r->body != NULL && utf8_check((const unsigned char *)r->body, r->len) == r->len;
}

/* --- Steps ---------------------------------------------------------------------------- */

static void test_step_limit(const struct svc *s)
{
    char body[PATH_MAX + 64], path[256];
    struct svc_resp r;
    const cJSON *layers, *pts;
    cJSON *job;
    const char *layer = NULL;
    long st;

    /* 2^53: refused wherever a step enters, the limit named */
    snprintf(body, sizeof(body), "{\"step\": " STEP_2_53 ", \"path\": \"%s/g.safetensors\"}", root);
    check_400(svc_post_json(s, "/v1/runs/big/checkpoints", body, NULL, &r), &r, STEP_MAX);
    svc_resp_free(&r);
    snprintf(body, sizeof(body), "{\"step\": 1e300, \"path\": \"%s/g.safetensors\"}", root);
    check_400(svc_post_json(s, "/v1/runs/big/checkpoints", body, NULL, &r), &r, STEP_MAX);
    svc_resp_free(&r);
    snprintf(body, sizeof(body), "{\"path\": \"%s/g.safetensors\"}", root);
    check_400(svc_post_json(s, "/v1/runs/big/checkpoints?step=" STEP_2_53, body, NULL, &r), &r,
              STEP_MAX);
    svc_resp_free(&r);
    check_400(svc_upload(s, "/v1/runs/big/checkpoints?step=" STEP_2_53, NUM "tiny_4x3.safetensors",
                         NULL, &r),
              &r, STEP_MAX);
    svc_resp_free(&r);
    check_400(svc_get(s, "/v1/runs/big/checkpoints/" STEP_2_53, &r), &r, STEP_MAX);
    svc_resp_free(&r);
    check_400(svc_get(s, "/v1/runs/big/checkpoints/" STEP_2_53 "/recommendations/sparsity", &r), &r,
              STEP_MAX);
    svc_resp_free(&r);
    check_400(svc_get(s, "/v1/runs/big/history?metric=alpha&end_step=" STEP_2_53, &r), &r,
              STEP_MAX);
    svc_resp_free(&r);
    check_400(svc_get(s, "/v1/runs/big/layers/weight/esd?step=" STEP_2_53, &r), &r, STEP_MAX);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/runs/big/checkpoints", &r), 404); /* nothing stored */
    svc_resp_free(&r);

    /* 2^53 - 1: accepted, and read back exactly */
    snprintf(body, sizeof(body), "{\"step\": " STEP_MAX ", \"path\": \"%s/g.safetensors\"}", root);
    CHECK_EQ_INT(svc_post_json(s, "/v1/runs/big/checkpoints", body, NULL, &r), 202);
    job = svc_wait_job(s, (long long)svc_jn(r.json, "id"), 60);
    svc_resp_free(&r);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    cJSON_Delete(job);
    st = svc_get(s, "/v1/runs/big/checkpoints/" STEP_MAX, &r);
    CHECK_EQ_INT(st, 200);
    CHECK(r.body != NULL && strstr(r.body, "\"step\":" STEP_MAX) != NULL);
    layers = svc_j(r.json, "layers");
    if (cJSON_GetArraySize(layers) > 0)
        layer = svc_js(cJSON_GetArrayItem(layers, 0), "name");
    CHECK(layer != NULL);
    snprintf(path, sizeof(path), "/v1/runs/big/layers/%s/history?metrics=alpha",
             layer ? layer : "?");
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, path, &r), 200);
    pts = svc_j(r.json, "points");
    CHECK_EQ_INT(cJSON_GetArraySize(pts), 1);
    CHECK(r.body != NULL && strstr(r.body, "\"step\":" STEP_MAX) != NULL);
    CHECK(r.body != NULL && strstr(r.body, "e+15") == NULL);
    CHECK(svc_jn(cJSON_GetArrayItem(pts, 0), "step") == 9007199254740991.0);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/runs/big/history?metric=alpha&start_step=" STEP_MAX, &r), 200);
    CHECK(r.body != NULL && strstr(r.body, "\"steps\":[" STEP_MAX "]") != NULL);
    svc_resp_free(&r);
}

/* --- Names ------------------------------------------------------------------------------ */

static void test_names_must_be_utf8(const struct svc *s)
{
    static const char *const bad_paths[] = {
        "/v1/runs/big/layers/%ff%fe/history",
        "/v1/runs/big/layers/a%c3/esd",
        "/v1/runs/%ff%fe/checkpoints",
        "/v1/runs/%ed%a0%80/layers",
        "/v1/runs/big/history?metric=alpha&preset=%ff",
        "/v1/runs/big/layers?%ff=1",
    };
    char body[PATH_MAX + 64];
    struct svc_resp r;

    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        long st = svc_get(s, bad_paths[i], &r);
        check_400(st, &r, "not valid UTF-8");
        CHECK(body_utf8(&r));
        if (st != 400)
            fprintf(stderr, "  GET %s\n", bad_paths[i]);
        svc_resp_free(&r);
    }
    /* the layer's parameter is named; its bytes are not echoed */
    CHECK_EQ_INT(svc_get(s, "/v1/runs/big/layers/%ff%fe/history", &r), 400);
    CHECK_STR_EQ(svc_js(r.json, "detail"), "path parameter 'layer': not valid UTF-8");
    svc_resp_free(&r);
    /* an upload to a run so named stores nothing */
    check_400(
        svc_upload(s, "/v1/runs/%ff%fe/checkpoints?step=1", NUM "tiny_4x3.safetensors", NULL, &r),
        &r, "not valid UTF-8");
    svc_resp_free(&r);
    /* a JSON body must be UTF-8 (RFC 8259) */
    snprintf(body, sizeof(body), "{\"step\": 1, \"path\": \"%s/g\xff.safetensors\"}", root);
    check_400(svc_post_json(s, "/v1/runs/big/checkpoints", body, NULL, &r), &r, "not valid UTF-8");
    CHECK(body_utf8(&r));
    svc_resp_free(&r);
    /* valid UTF-8 that is no layer: a 404 that echoes the name, still UTF-8 */
    CHECK_EQ_INT(svc_get(s, "/v1/runs/big/layers/%c3%a9t%c3%a9/esd", &r), 404);
    CHECK(body_utf8(&r));
    CHECK(r.body != NULL && strstr(r.body, "\xc3\xa9t\xc3\xa9") != NULL);
    svc_resp_free(&r);
}

/* --- Categories ---------------------------------------------------------------------------- */

static void test_every_problem_has_a_category(const struct svc *s)
{
    struct svc_resp r;

    CHECK_EQ_INT(svc_get(s, "/v1/no-such-route", &r), 404);
    CHECK_STR_EQ(svc_js(r.json, "category"), "not_found");
    CHECK_STR_EQ(svc_js(r.json, "type"), "urn:farmsd:problem:not_found");
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_req(s, "DELETE", "/v1/runs", NULL, NULL, 0, NULL, &r), 405);
    CHECK_STR_EQ(svc_js(r.json, "category"), "method_not_allowed");
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/jobs/999999", &r), 404);
    CHECK(svc_js(r.json, "category") != NULL && svc_js(r.json, "category")[0] != '\0');
    svc_resp_free(&r);
    CHECK_EQ_INT(
        svc_req(s, "POST", "/v1/runs/big/checkpoints?step=1", "text/plain", NULL, 0, NULL, &r),
        415);
    CHECK_STR_EQ(svc_js(r.json, "category"), "unsupported_media_type");
    svc_resp_free(&r);
}

/* --min-free larger than any disk: every upload is refused with 507
 * insufficient_storage, by the pre-check on Content-Length and by the
 * check after a chunked body; nothing is stored. */
static void test_insufficient_storage_has_a_category(void)
{
    char data[PATH_MAX];
    const char *extra[] = {"--min-free", "1000000T", NULL};
    struct svc s;
    struct svc_resp r;

    snprintf(data, sizeof(data), "%s/full", tmp_dir);
    if (!svc_start(&s, data, extra)) {
        CHECK(!"server started");
        return;
    }
    CHECK_EQ_INT(
        svc_upload(&s, "/v1/runs/full/checkpoints?step=1", NUM "tiny_4x3.safetensors", NULL, &r),
        507);
    CHECK_STR_EQ(r.content_type, "application/problem+json");
    CHECK_STR_EQ(svc_js(r.json, "category"), "insufficient_storage");
    CHECK_STR_EQ(svc_js(r.json, "type"), "urn:farmsd:problem:insufficient_storage");
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_upload_chunked(&s, "PUT", "/v1/runs/full/checkpoints?step=1",
                                    NUM "tiny_4x3.safetensors", NULL, &r),
                 507);
    CHECK_STR_EQ(svc_js(r.json, "category"), "insufficient_storage");
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(&s, "/v1/runs/full/checkpoints", &r), 404);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_stop(&s), 0);
    if (check_n_failed)
        svc_dump_log(&s, 3000);
}

/* --max-tensor-bytes: a job that reaches a tensor larger than the limit
 * fails with limit_exceeded before that tensor is read (the analysis never
 * holds more than the limit's working set); smaller tensors are analysed. */
static void test_tensor_over_the_limit_fails_the_job(void)
{
    char data[PATH_MAX], file[PATH_MAX + 32], cmd[2 * PATH_MAX + 160];
    const char *extra[] = {"--max-tensor-bytes", "1M", NULL};
    struct svc s;
    struct svc_resp r;
    cJSON *job = NULL;
    long long id;

    snprintf(data, sizeof(data), "%s/tensor-limit", tmp_dir);
    snprintf(file, sizeof(file), "%s/gpt2.safetensors", tmp_dir);
    /* c_attn 768 x 2304 float32: 7 077 888 bytes, over 1 MiB */
    snprintf(cmd, sizeof(cmd),
             SVC_FARMSD " synth --model gpt2-small --blocks 1 --no-embeddings --dtype F32 "
                        "--quiet --out '%s'",
             file);
    CHECK_EQ_INT(system(cmd), 0);
    if (!svc_start(&s, data, extra)) {
        CHECK(!"server started");
        return;
    }
    CHECK_EQ_INT(svc_upload(&s, "/v1/runs/big/checkpoints?step=1", file, NULL, &r), 202);
    id = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);
    job = svc_wait_job(&s, id, 120);
    CHECK(job != NULL);
    CHECK_STR_EQ(svc_js(job, "state"), "failed");
    CHECK_STR_EQ(svc_js(cJSON_GetObjectItemCaseSensitive(job, "error"), "category"),
                 "limit_exceeded");
    cJSON_Delete(job);
    /* a checkpoint whose tensors are all within the limit is analysed */
    CHECK_EQ_INT(svc_upload(&s, "/v1/runs/small/checkpoints?step=1",
                            NUM "gauss_100x300.safetensors", NULL, &r),
                 202);
    id = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);
    job = svc_wait_job(&s, id, 120);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    cJSON_Delete(job);
    CHECK_EQ_INT(svc_stop(&s), 0);
    if (check_n_failed)
        svc_dump_log(&s, 3000);
}

/* --- Upload temp files after a kill -9 ------------------------------------------------------ */

/* Start an upload of `total` bytes on a raw loopback connection, send
 * `sent` of them and keep the connection open: the socket, or -1. */
static int start_partial_upload(const struct svc *s, size_t total, size_t sent)
{
    struct sockaddr_in a = {0};
    char head[256], chunk[4096];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int n;

    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)s->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    n = snprintf(head, sizeof(head),
                 "POST /v1/runs/killed/checkpoints?step=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
                 total);
    memset(chunk, 0, sizeof(chunk));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || write(fd, head, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    for (size_t done = 0; done < sent; done += sizeof(chunk))
        if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk)) {
            close(fd);
            return -1;
        }
    return fd;
}

static void test_kill9_upload_tmp_removed_at_restart(void)
{
    char data[PATH_MAX], tmp[PATH_MAX + 16];
    struct svc s;
    double until;
    int fd;

    snprintf(data, sizeof(data), "%s/killed", tmp_dir);
    snprintf(tmp, sizeof(tmp), "%s/blobs/tmp", data);
    if (!svc_start(&s, data, NULL)) {
        CHECK(!"server started");
        return;
    }
    fd = start_partial_upload(&s, (size_t)1 << 20, (size_t)64 * 1024);
    CHECK(fd >= 0);
    for (until = svc_now() + 20; svc_count_files(tmp) < 1 && svc_now() < until;)
        svc_sleep_ms(20);
    CHECK_EQ_INT(svc_count_files(tmp), 1); /* the upload is being written */
    svc_crash(&s);
    if (fd >= 0)
        close(fd);
    CHECK_EQ_INT(svc_count_files(tmp), 1); /* left by the kill */
    if (!svc_start(&s, data, NULL)) {
        CHECK(!"server restarted");
        return;
    }
    CHECK_EQ_INT(svc_count_files(tmp), 0); /* its process is gone: removed at start */
    CHECK_EQ_INT(svc_stop(&s), 0);
    if (check_n_failed)
        svc_dump_log(&s, 3000);
}

static void test_inputs_server(void)
{
    char data[PATH_MAX], file[PATH_MAX + 32];
    const char *extra[] = {"--allow-root", root, NULL};
    struct svc s;

    snprintf(data, sizeof(data), "%s/inputs", tmp_dir);
    snprintf(file, sizeof(file), "%s/g.safetensors", root);
    CHECK(svc_copy_file(NUM "gauss_100x300.safetensors", file));
    if (!svc_start(&s, data, extra)) {
        CHECK(!"server started");
        return;
    }
    test_step_limit(&s);
    test_names_must_be_utf8(&s);
    test_every_problem_has_a_category(&s);
    CHECK_EQ_INT(svc_stop(&s), 0);
    if (check_n_failed)
        svc_dump_log(&s, 3000);
}

int main(void)
{
    double t0 = svc_now();

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(svc_mkdtemp("svc-inputs", tmp_dir, sizeof(tmp_dir)));
    snprintf(root, sizeof(root), "%s/root", tmp_dir);
    CHECK(mkdir(root, 0700) == 0);
    test_inputs_server();
    test_insufficient_storage_has_a_category();
    test_tensor_over_the_limit_fails_the_job();
    test_kill9_upload_tmp_removed_at_restart();
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service_inputs: %.1f s\n", svc_now() - t0);
    return check_report("test_service_inputs");
}
