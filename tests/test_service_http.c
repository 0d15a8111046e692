/* test_service_http.c -- HTTP semantics of a real `farmsd serve`
 * (tests/svc_harness.h): ETag / If-None-Match / 304 and HEAD (also: a job's
 * results landing change the tag), pagination of runs, checkpoints and the
 * heatmap, canceling queued and running jobs, the PUT upload form (chunked,
 * as `curl -T` sends it), X-Content-SHA256, 405/404, auth off, and
 * keep-alive: every kind of answer leaves the connection open. A graceful
 * stop: after SIGTERM new connections are closed unanswered while an upload
 * in flight is still answered, and the server exits 0; a second SIGTERM
 * ends it at once.
 * Auth on and the upload limit: test_service_auth.c.
 * Run from the repository root after `make test-build`.
 */
#include <netinet/in.h>
#include <openssl/evp.h>

#include "tests/check.h"
#include "tests/svc_harness.h"

#define NUM "tests/fixtures/numerics/"

static char tmp_dir[256];

/* Five distinct small checkpoints (steps 10..50 of a run). */
static const char *const small_files[5] = {
    NUM "tiny_4x3.safetensors", NUM "tiny_30x50.safetensors", NUM "tiny_60x90.safetensors",
    NUM "gauss_64x64.safetensors", NUM "gauss_100x300.safetensors"};

/* Upload `file` to run/step; the job id (0 on failure, with a failed check). */
static long long submit(const struct svc *s, const char *run, long step, const char *file)
{
    char path[256];
    struct svc_resp r;
    long long id;

    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints?step=%ld", run, step);
    CHECK_EQ_INT(svc_upload(s, path, file, NULL, &r), 202);
    id = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);
    return id > 0 ? id : 0;
}

static void wait_succeeded(const struct svc *s, long long id)
{
    cJSON *job = svc_wait_job(s, id, 60);

    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    cJSON_Delete(job);
}

/* --- ETag --------------------------------------------------------------------------- */

static long get_inm(const struct svc *s, const char *path, const char *inm, struct svc_resp *r)
{
    char h[256];
    const char *hdrs[] = {h, NULL};

    snprintf(h, sizeof(h), "If-None-Match: %s", inm);
    return svc_req(s, "GET", path, NULL, NULL, 0, hdrs, r);
}

static void test_etag_and_304(const struct svc *s)
{
    const char *list = "/v1/runs/pages/checkpoints";
    struct svc_resp r, other;
    char etag[128], weak[160], two[300], other_etag[128];

    CHECK_EQ_INT(svc_get(s, list, &r), 200);
    snprintf(etag, sizeof(etag), "%s", r.etag);
    CHECK(etag[0] == '"' && strlen(etag) > 2 && etag[strlen(etag) - 1] == '"');
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/runs/other/checkpoints", &other), 200);
    snprintf(other_etag, sizeof(other_etag), "%s", other.etag);
    CHECK(strcmp(other_etag, etag) != 0);
    svc_resp_free(&other);

    /* the same tag, a weak form of it, a list holding it, and '*': 304, no body */
    snprintf(weak, sizeof(weak), "W/%s", etag);
    snprintf(two, sizeof(two), "\"nope\", %s", etag);
    {
        const char *const matches[] = {etag, weak, two, "*"};
        for (size_t i = 0; i < 4; i++) {
            CHECK_EQ_INT(get_inm(s, list, matches[i], &r), 304);
            CHECK_EQ_INT(r.len, 0);
            CHECK_STR_EQ(r.etag, etag);
            svc_resp_free(&r);
        }
    }
    CHECK_EQ_INT(get_inm(s, list, "\"nope\"", &r), 200);
    CHECK_STR_EQ(r.etag, etag);
    svc_resp_free(&r);
    /* HEAD is GET without the body */
    CHECK_EQ_INT(svc_req(s, "HEAD", list, NULL, NULL, 0, NULL, &r), 200);
    CHECK_STR_EQ(r.etag, etag);
    CHECK_EQ_INT(r.len, 0);
    svc_resp_free(&r);
    /* another representation of the run: another tag */
    CHECK_EQ_INT(get_inm(s, "/v1/runs/pages/checkpoints?page_size=2", etag, &r), 200);
    CHECK(r.etag[0] == '"' && strcmp(r.etag, etag) != 0);
    svc_resp_free(&r);

    /* a new checkpoint changes the run: the old tag no longer matches */
    wait_succeeded(s, submit(s, "pages", 60, NUM "gauss_128x512.safetensors"));
    CHECK_EQ_INT(get_inm(s, list, etag, &r), 200);
    CHECK(r.etag[0] == '"' && strcmp(r.etag, etag) != 0);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "checkpoints")), 6);
    svc_resp_free(&r);
    /* ... and leaves other runs' tags alone */
    CHECK_EQ_INT(get_inm(s, "/v1/runs/other/checkpoints", other_etag, &r), 304);
    svc_resp_free(&r);
}

/* --- Pagination ------------------------------------------------------------------------ */

/* Follow next_page_token from `first` (a path with page_size); collect the
 * `field` number of every item of array `items` into out. Returns the count. */
static int walk_pages(const struct svc *s, const char *first, const char *items, const char *field,
                      long *out, int cap, int want_per_page)
{
    char path[512];
    int n = 0, pages = 0;

    snprintf(path, sizeof(path), "%s", first);
    for (;;) {
        struct svc_resp r;
        const cJSON *it, *tok;
        int on_page = 0;

        CHECK_EQ_INT(svc_get(s, path, &r), 200);
        cJSON_ArrayForEach(it, svc_j(r.json, items))
        {
            if (n < cap)
                out[n] = (long)svc_jn(it, field);
            n++;
            on_page++;
        }
        tok = svc_j(r.json, "next_page_token");
        pages++;
        if (!cJSON_IsString(tok) || pages > 20) {
            CHECK(cJSON_IsNull(tok));
            CHECK(on_page >= 1 && on_page <= want_per_page);
            svc_resp_free(&r);
            return n;
        }
        CHECK_EQ_INT(on_page, want_per_page);
        snprintf(path, sizeof(path), "%s&page_token=%s", first, tok->valuestring);
        svc_resp_free(&r);
    }
}

static void test_pagination(const struct svc *s)
{
    long steps[16] = {0}, want[] = {10, 20, 30, 40, 50, 60};
    struct svc_resp r;
    char bad[256];

    CHECK_EQ_INT(walk_pages(s, "/v1/runs/pages/checkpoints?page_size=4", "checkpoints", "step",
                            steps, 16, 4),
                 6);
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(steps[i], want[i]);
    CHECK_EQ_INT(walk_pages(s, "/v1/runs/pages/checkpoints?page_size=1", "checkpoints", "step",
                            steps, 16, 1),
                 6);
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(steps[i], want[i]);
    /* runs: pages, other, cancel (from the cancel test), one per page */
    CHECK_EQ_INT(walk_pages(s, "/v1/runs?page_size=1", "runs", "checkpoints", steps, 16, 1), 3);
    /* the heatmap pages by steps */
    {
        int n = 0, pages = 0;
        char path[256];
        snprintf(path, sizeof(path), "/v1/runs/pages/history?metric=alpha&page_size=4");
        for (;;) {
            const cJSON *st, *tok;
            CHECK_EQ_INT(svc_get(s, path, &r), 200);
            cJSON_ArrayForEach(st, svc_j(r.json, "steps"))
            {
                CHECK(n < 6 && (long)st->valuedouble == want[n]);
                n++;
            }
            pages++;
            tok = svc_j(r.json, "next_page_token");
            if (!cJSON_IsString(tok) || pages > 5) {
                svc_resp_free(&r);
                break;
            }
            snprintf(path, sizeof(path),
                     "/v1/runs/pages/history?metric=alpha&page_size=4"
                     "&page_token=%s",
                     tok->valuestring);
            svc_resp_free(&r);
        }
        CHECK_EQ_INT(n, 6);
        CHECK_EQ_INT(pages, 2);
    }
    /* bad sizes and tokens: 400 invalid_parameter, naming the parameter */
    {
        const char *const bads[] = {"/v1/runs/pages/checkpoints?page_size=0",
                                    "/v1/runs/pages/checkpoints?page_size=1001",
                                    "/v1/runs/pages/checkpoints?page_size=x",
                                    "/v1/runs/pages/checkpoints?page_token=garbage",
                                    "/v1/runs/pages/checkpoints?nonsense=1"};
        for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
            CHECK_EQ_INT(svc_get(s, bads[i], &r), 400);
            CHECK_STR_EQ(r.content_type, "application/problem+json");
            CHECK_STR_EQ(svc_js(r.json, "category"), "invalid_parameter");
            svc_resp_free(&r);
        }
    }
    /* another list's token is refused too */
    CHECK_EQ_INT(svc_get(s, "/v1/runs?page_size=1", &r), 200);
    snprintf(bad, sizeof(bad), "/v1/runs/pages/checkpoints?page_size=1&page_token=%s",
             svc_js(r.json, "next_page_token"));
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, bad, &r), 400);
    svc_resp_free(&r);
}

/* --- Cancel ---------------------------------------------------------------------------- */

/* The server runs one job at a time (--workers 1): a long job runs while
 * another waits; both are canceled; the runner is then free again. */
static void test_cancel_queued_and_running(const struct svc *s, const char *big)
{
    long long running, queued, after;
    cJSON *job = NULL;
    struct svc_resp r;
    char path[64], etag3[128];
    double until = svc_now() + 60;

    running = submit(s, "cancel", 1, big);
    while (svc_now() < until) { /* until it runs */
        cJSON_Delete(job);
        job = svc_job(s, running);
        if (strcmp(svc_js(job, "state"), "running") == 0)
            break;
        svc_sleep_ms(20);
    }
    CHECK_STR_EQ(svc_js(job, "state"), "running");
    cJSON_Delete(job);
    queued = submit(s, "cancel", 2, NUM "tiny_30x50.safetensors");
    after = submit(s, "cancel", 3, NUM "tiny_60x90.safetensors");
    /* a dashboard's view of step 3 while its job waits: no layers yet */
    CHECK_EQ_INT(svc_get(s, "/v1/runs/cancel/checkpoints/3", &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "layers")), 0);
    snprintf(etag3, sizeof(etag3), "%s", r.etag);
    svc_resp_free(&r);

    snprintf(path, sizeof(path), "/v1/jobs/%lld", queued);
    CHECK_EQ_INT(svc_req(s, "DELETE", path, NULL, NULL, 0, NULL, &r), 200);
    CHECK_STR_EQ(svc_js(r.json, "state"), "canceled");
    CHECK_EQ_INT((long long)svc_jn(r.json, "id"), queued);
    svc_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/jobs/%lld", running);
    CHECK_EQ_INT(svc_req(s, "DELETE", path, NULL, NULL, 0, NULL, &r), 200);
    CHECK_STR_EQ(svc_js(r.json, "state"), "canceled");
    svc_resp_free(&r);
    /* twice is a no-op */
    CHECK_EQ_INT(svc_req(s, "DELETE", path, NULL, NULL, 0, NULL, &r), 200);
    CHECK_STR_EQ(svc_js(r.json, "state"), "canceled");
    svc_resp_free(&r);

    /* the only runner gives the canceled job up and takes the next one */
    wait_succeeded(s, after);
    /* its results landed: the tag taken while it waited no longer matches */
    CHECK_EQ_INT(get_inm(s, "/v1/runs/cancel/checkpoints/3", etag3, &r), 200);
    CHECK(strcmp(r.etag, etag3) != 0);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "layers")), 1);
    svc_resp_free(&r);
    job = svc_job(s, running);
    CHECK_STR_EQ(svc_js(job, "state"), "canceled");
    CHECK(svc_jn(svc_j(job, "progress"), "tensors_done") < 4);
    cJSON_Delete(job);
    job = svc_job(s, queued);
    CHECK_STR_EQ(svc_js(job, "state"), "canceled");
    CHECK(cJSON_IsNull(svc_j(svc_j(job, "timings"), "started")));
    cJSON_Delete(job);
    /* no results for canceled jobs */
    CHECK_EQ_INT(svc_get(s, "/v1/runs/cancel/checkpoints/1", &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "layers")), 0);
    svc_resp_free(&r);
    /* a finished job cannot be canceled */
    snprintf(path, sizeof(path), "/v1/jobs/%lld", after);
    CHECK_EQ_INT(svc_req(s, "DELETE", path, NULL, NULL, 0, NULL, &r), 409);
    CHECK_STR_EQ(r.content_type, "application/problem+json");
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_req(s, "DELETE", "/v1/jobs/999999", NULL, NULL, 0, NULL, &r), 404);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_metric(s, "farmsd_jobs{state=\"canceled\"}"), 2);
}

/* --- PUT, methods, auth off -------------------------------------------------------------- */

static void test_put_upload_and_routing(const struct svc *s)
{
    struct svc_resp r;
    const char *hdrs[] = {"Authorization: Bearer anything-at-all-0123456789", NULL};

    /* curl -T: PUT with a chunked body */
    CHECK_EQ_INT(svc_upload_chunked(s, "PUT", "/v1/runs/other/checkpoints?step=7",
                                    NUM "tiny_4x3.safetensors", NULL, &r),
                 202);
    CHECK_STR_EQ(svc_js(r.json, "format"), "safetensors");
    wait_succeeded(s, (long long)svc_jn(r.json, "id"));
    svc_resp_free(&r);
    /* a known route with another method: 405 with Allow */
    CHECK_EQ_INT(svc_req(s, "DELETE", "/v1/runs", NULL, NULL, 0, NULL, &r), 405);
    CHECK(strstr(r.allow, "GET") != NULL);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/nowhere", &r), 404);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/runs/no-such-run/checkpoints", &r), 404);
    svc_resp_free(&r);
    /* auth off: any or no Authorization header is fine */
    CHECK_EQ_INT(svc_req(s, "GET", "/v1/runs", NULL, NULL, 0, hdrs, &r), 200);
    CHECK(r.www_authenticate[0] == '\0');
    svc_resp_free(&r);
}

/* X-Content-SHA256: a body that is not what the client hashed is refused. */
static void test_checksum_header(const struct svc *s)
{
    char want[THASH_HEX_LEN], h[128];
    const char *hdrs[] = {h, NULL};
    struct svc_resp r;
    size_t n;
    char *body = svc_slurp(NUM "tiny_4x3.safetensors", &n);
    unsigned char d[THASH_DIGEST_LEN] = {0};
    unsigned dl = 0;

    CHECK(body != NULL && EVP_Digest(body, n, d, &dl, EVP_sha256(), NULL) == 1 &&
          dl == THASH_DIGEST_LEN);
    for (int i = 0; i < THASH_DIGEST_LEN; i++)
        snprintf(want + (size_t)2 * i, 3, "%02x", d[i]);
    snprintf(h, sizeof(h), "X-Content-SHA256: %064d", 0);
    CHECK_EQ_INT(
        svc_upload(s, "/v1/runs/sums/checkpoints?step=1", NUM "tiny_4x3.safetensors", hdrs, &r),
        400);
    CHECK_STR_EQ(svc_js(r.json, "category"), "checksum_mismatch");
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/runs/sums/checkpoints", &r), 404);
    svc_resp_free(&r);
    snprintf(h, sizeof(h), "X-Content-SHA256: %s", want);
    CHECK_EQ_INT(
        svc_upload(s, "/v1/runs/sums/checkpoints?step=1", NUM "tiny_4x3.safetensors", hdrs, &r),
        202);
    CHECK_STR_EQ(svc_js(r.json, "sha256"), want);
    wait_succeeded(s, (long long)svc_jn(r.json, "id"));
    svc_resp_free(&r);
    free(body);
}

/* --- Keep-alive -------------------------------------------------------------------------- */

/* What one answer on the shared connection said about its framing. */
struct ka_resp {
    long status;
    long n_connects;         /* connections curl opened for it (CURLINFO_NUM_CONNECTS) */
    size_t body_len;         /* body bytes received */
    int has_content_length;  /* a Content-Length header came */
    char content_length[32]; /* its value */
    int has_transfer_encoding;
    char etag[128];
    char connection[64]; /* the Connection header, "" if none */
};

static size_t ka_on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    struct ka_resp *r = arg;
    size_t n = size * nmemb;

    if (n >= 15 && strncasecmp(line, "Content-Length:", 15) == 0)
        r->has_content_length = 1;
    if (n >= 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0)
        r->has_transfer_encoding = 1;
    svc_header_pick(line, n, "Content-Length", r->content_length, sizeof(r->content_length));
    svc_header_pick(line, n, "ETag", r->etag, sizeof(r->etag));
    svc_header_pick(line, n, "Connection", r->connection, sizeof(r->connection));
    return n;
}

static size_t ka_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    (void)data;
    *(size_t *)arg += size * nmemb;
    return size * nmemb;
}

/* One request on `c`, whose connection cache survives curl_easy_reset:
 * `body` (NULL: none) with `content_type`, `header` one extra line or NULL. */
static long ka_req(CURL *c, const struct svc *s, const char *method, const char *path,
                   const char *content_type, const void *body, size_t body_len, const char *header,
                   struct ka_resp *r)
{
    struct curl_slist *hl = NULL;
    char url[4096], ct[160];

    memset(r, 0, sizeof(*r));
    curl_easy_reset(c);
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, SVC_REQ_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ka_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body_len);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, ka_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        hl = curl_slist_append(hl, ct);
        hl = curl_slist_append(hl, "Expect:");
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (header != NULL)
        hl = curl_slist_append(hl, header);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->n_connects);
    }
    curl_slist_free_all(hl);
    return r->status;
}

/* Every kind of answer keeps the connection: after the first request, curl
 * opens no new one (GET 200 and 304, a GET with a body, 400, 404, an upload
 * and a path ingestion answered 202, a JSON body answered 400). A 304 has
 * no body and no body length other than 0: libmicrohttpd 0.9.75 always
 * sends "Content-Length: 0" on it (see http.c), never Transfer-Encoding. */
static void test_keep_alive(const struct svc *s, const char *ingest_dir)
{
    const char *list = "/v1/runs/pages/checkpoints";
    CURL *c = curl_easy_init();
    struct ka_resp r;
    char etag[128], inm[192], json[1024], path[640];
    size_t n = 0;
    char *up = svc_slurp(NUM "tiny_60x90.safetensors", &n);
    long long id;

    CHECK(c != NULL && up != NULL);
    if (c == NULL || up == NULL)
        goto out;
    CHECK_EQ_INT(ka_req(c, s, "GET", list, NULL, NULL, 0, NULL, &r), 200);
    CHECK_EQ_INT(r.n_connects, 1);
    CHECK(r.body_len > 0 && r.etag[0] == '"');
    CHECK(strcasecmp(r.connection, "close") != 0);
    snprintf(etag, sizeof(etag), "%s", r.etag);
    snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);

    CHECK_EQ_INT(ka_req(c, s, "GET", list, NULL, NULL, 0, inm, &r), 304);
    CHECK_EQ_INT(r.n_connects, 0);
    CHECK_EQ_INT(r.body_len, 0);
    CHECK_STR_EQ(r.etag, etag);
    CHECK(!r.has_transfer_encoding);
    CHECK(!r.has_content_length || strcmp(r.content_length, "0") == 0);
    CHECK(strcasecmp(r.connection, "close") != 0);
    /* a body on a GET is read and dropped */
    CHECK_EQ_INT(ka_req(c, s, "GET", "/healthz", "text/plain", "12345", 5, NULL, &r), 200);
    CHECK_EQ_INT(r.n_connects, 0);
    CHECK_EQ_INT(ka_req(c, s, "GET", "/v1/runs?page_size=0", NULL, NULL, 0, NULL, &r), 400);
    CHECK_EQ_INT(r.n_connects, 0);
    CHECK_EQ_INT(ka_req(c, s, "GET", "/v1/nowhere", NULL, NULL, 0, NULL, &r), 404);
    CHECK_EQ_INT(r.n_connects, 0);

    CHECK_EQ_INT(ka_req(c, s, "POST", "/v1/runs/other/checkpoints?step=8",
                        "application/octet-stream", up, n, NULL, &r),
                 202);
    CHECK_EQ_INT(r.n_connects, 0);
    snprintf(path, sizeof(path), "%s/a.safetensors", ingest_dir);
    CHECK(svc_write_file(path, up, n));
    snprintf(json, sizeof(json), "{\"step\":9,\"path\":\"%s\"}", path);
    CHECK_EQ_INT(ka_req(c, s, "POST", "/v1/runs/other/checkpoints", "application/json", json,
                        strlen(json), NULL, &r),
                 202);
    CHECK_EQ_INT(r.n_connects, 0);
    CHECK_EQ_INT(ka_req(c, s, "POST", "/v1/runs/other/checkpoints", "application/json",
                        "{\"step\":", 8, NULL, &r),
                 400);
    CHECK_EQ_INT(r.n_connects, 0);
    /* and the connection still serves */
    CHECK_EQ_INT(ka_req(c, s, "GET", list, NULL, NULL, 0, inm, &r), 304);
    CHECK_EQ_INT(r.n_connects, 0);
    for (long step = 8; step <= 9; step++) {
        struct svc_resp sr;
        snprintf(path, sizeof(path), "/v1/runs/other/checkpoints/%ld", step);
        CHECK_EQ_INT(svc_get(s, path, &sr), 200);
        id = (long long)svc_jn(svc_j(sr.json, "job"), "id");
        svc_resp_free(&sr);
        if (id > 0)
            wait_succeeded(s, id);
    }
out:
    free(up);
    if (c != NULL)
        curl_easy_cleanup(c);
}

/* After the server stopped: its log holds one access line per request, in
 * the one format, flushed at the stop (they are written in batches), e.g.
 * the 304 of the ETag case. */
static void test_access_lines_in_the_log(const struct svc *s)
{
    static const char want[] = " uri=\"/v1/runs/pages/checkpoints\" status=304 "
                               "route=\"/v1/runs/{run}/checkpoints\" bytes_in=0 ms=";
    size_t n = 0;
    char *log = svc_slurp(s->log, &n), *hit = log ? strstr(log, want) : NULL;
    const char *head = " level=info mod=http req=";
    int ok_head = 0, ok_ms = 0;

    CHECK(hit != NULL);
    if (hit != NULL) {
        char *bol = hit;
        while (bol > log && bol[-1] != '\n')
            bol--;
        ok_head = strncmp(bol, "ts=", 3) == 0 && strncmp(bol + 27, head, strlen(head)) == 0 &&
                  strspn(bol + 27 + strlen(head), "0123456789") > 0;
        hit += strlen(want);
        ok_ms = strspn(hit, "0123456789") > 0 && hit[strspn(hit, "0123456789")] == '.' &&
                hit[strspn(hit, "0123456789") + 2] == '\n';
    }
    CHECK(ok_head);
    CHECK(ok_ms);
    CHECK(log != NULL && strstr(log, "mod=serve msg=\"stopped\"") != NULL);
    free(log);
}

/* --- Graceful stop ------------------------------------------------------------------- */

/* A loopback connection to the server with a 5 s receive timeout, or -1. */
static int raw_connect(const struct svc *s)
{
    struct sockaddr_in a = {0};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)s->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return 0;
        p += w;
        n -= (size_t)w;
    }
    return 1;
}

/* Read an answer's first bytes: their count; 0 when the server closed the
 * connection without one, -1 on a timeout. */
static ssize_t read_head(int fd, char *buf, size_t cap)
{
    ssize_t n = read(fd, buf, cap - 1);

    if (n < 0 && (errno == ECONNRESET || errno == EPIPE))
        n = 0;
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* After SIGTERM: a new connection is closed without an answer (1), is
 * answered (0: the stop has not begun yet), or hangs (-1). */
static int new_connection_refused(const struct svc *s)
{
    static const char get[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Connection: close\r\n\r\n";
    char buf[64];
    int fd = raw_connect(s);
    ssize_t n;

    if (fd < 0)
        return 1; /* the listen socket is gone: also refused */
    n = write_all(fd, get, sizeof(get) - 1) ? read_head(fd, buf, sizeof(buf)) : 0;
    close(fd);
    return n == 0 ? 1 : n > 0 ? 0 : -1;
}

static void test_graceful_stop(void)
{
    const char *file = NUM "tiny_30x50.safetensors";
    char data[PATH_MAX], head[256], buf[256];
    size_t size = 0;
    char *body = svc_slurp(file, &size);
    struct svc s;
    int fd = -1, refused = 0, hdr;
    double until;

    snprintf(data, sizeof(data), "%s/graceful", tmp_dir);
    CHECK(body != NULL && size > 100);
    if (body == NULL || size <= 100 || !svc_start(&s, data, NULL)) {
        CHECK(!"server started");
        free(body);
        return;
    }
    /* an upload in flight: all but its last 100 bytes sent */
    hdr = snprintf(head, sizeof(head),
                   "POST /v1/runs/graceful/checkpoints?step=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
                   size);
    fd = raw_connect(&s);
    CHECK(fd >= 0 && write_all(fd, head, (size_t)hdr) && write_all(fd, body, size - 100));
    CHECK_EQ_INT(new_connection_refused(&s), 0); /* answered before the stop */
    kill(s.pid, SIGTERM);
    for (until = svc_now() + 5.0; !refused && svc_now() < until; svc_sleep_ms(20))
        refused = new_connection_refused(&s) == 1;
    CHECK(refused);
    /* the upload in flight is still answered (accepted, or refused as the service stops) */
    CHECK(fd >= 0 && write_all(fd, body + size - 100, 100));
    CHECK(fd >= 0 && read_head(fd, buf, sizeof(buf)) > 0 && strncmp(buf, "HTTP/1.1 ", 9) == 0);
    if (fd >= 0)
        close(fd);
    free(body);
    CHECK_EQ_INT(svc_signal_wait(&s, 0), 0); /* the first SIGTERM's stop, exit 0 */
    if (check_n_failed)
        svc_dump_log(&s, 3000);
}

/* A second SIGTERM while the first one's stop waits for an upload in flight
 * ends the server at once (killed by SIGTERM, not after the 10 s grace); a
 * restart on the same data serves. */
static void test_second_sigterm_stops_at_once(void)
{
    static const char head[] =
        "POST /v1/runs/forced/checkpoints?step=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n";
    char data[PATH_MAX];
    struct svc s;
    struct svc_resp r;
    int fd, refused = 0;
    double t0, until;

    snprintf(data, sizeof(data), "%s/forced", tmp_dir);
    if (!svc_start(&s, data, NULL)) {
        CHECK(!"server started");
        return;
    }
    fd = raw_connect(&s);
    CHECK(fd >= 0 && write_all(fd, head, sizeof(head) - 1));
    kill(s.pid, SIGTERM);
    for (until = svc_now() + 5.0; !refused && svc_now() < until; svc_sleep_ms(20))
        refused = new_connection_refused(&s) == 1;
    CHECK(refused); /* the stop has begun and waits for the upload */
    t0 = svc_now();
    CHECK_EQ_INT(svc_signal_wait(&s, SIGTERM), 128 + SIGTERM);
    CHECK(svc_now() - t0 < 5.0);
    if (fd >= 0)
        close(fd);
    if (!svc_start(&s, data, NULL)) {
        CHECK(!"server restarted");
        return;
    }
    CHECK_EQ_INT(svc_get(&s, "/healthz", &r), 200);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_stop(&s), 0);
}

static void test_plain_server(void)
{
    char data[PATH_MAX], big[PATH_MAX], ingest[512];
    const char *extra[] = {"--workers", "1", "--allow-root", ingest, NULL};
    struct svc s;

    snprintf(data, sizeof(data), "%s/plain", tmp_dir);
    snprintf(ingest, sizeof(ingest), "%s/ingest", tmp_dir);
    CHECK(mkdir(ingest, 0700) == 0);
    snprintf(big, sizeof(big), "%s/big.safetensors", tmp_dir);
    /* four 1536x1536 matrices: about a second each under ASan */
    CHECK(svc_write_gaussian_st(big, 4, 1536, 1536, 7));
    if (!svc_start(&s, data, extra)) {
        CHECK(!"server started");
        return;
    }
    for (int i = 0; i < 5; i++)
        wait_succeeded(&s, submit(&s, "pages", 10L * (i + 1), small_files[i]));
    wait_succeeded(&s, submit(&s, "other", 1, small_files[0]));
    test_cancel_queued_and_running(&s, big);
    unlink(big); /* 36 MB, not kept even when a test fails */
    test_etag_and_304(&s);
    test_pagination(&s);
    test_put_upload_and_routing(&s);
    test_checksum_header(&s);
    test_keep_alive(&s, ingest);
    CHECK_EQ_INT(svc_stop(&s), 0);
    test_access_lines_in_the_log(&s);
    if (check_n_failed)
        svc_dump_log(&s, 3000);
}

int main(void)
{
    double t0 = svc_now();

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(svc_mkdtemp("svc-http", tmp_dir, sizeof(tmp_dir)));
    test_plain_server();
    test_graceful_stop();
    test_second_sigterm_stops_at_once();
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service_http: %.1f s\n", svc_now() - t0);
    return check_report("test_service_http");
}
