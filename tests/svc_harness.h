/* svc_harness.h -- end-to-end test harness: a real `farmsd serve` child
 * process on a free loopback port, spoken to with libcurl.
 *
 * svc_start() forks build/san/farmsd serve --listen 127.0.0.1:0 --data DIR
 * (plus extra flags), sends its stderr to DIR's sibling log file, finds the
 * port in the "listening" log line and waits until /healthz answers.
 * svc_stop() sends SIGTERM and returns the exit status; svc_crash() sends
 * SIGKILL. svc_req() performs one request (its own curl handle, bounded by
 * timeouts) and returns status, headers of interest, body and the body
 * parsed as JSON when it is JSON. Helpers for fixtures, the manifest, the
 * CLI (`farmsd analyze`) and a checkpoint's layers compared with its output,
 * /metrics, the server's memory (/proc status) and synthetic safetensors
 * files.
 *
 * Header-only (static inline functions, so an executable may use a part of
 * them). Ownership: a struct svc_resp owns its body and JSON (svc_resp_free).
 * Thread-safety: svc_req() may run on many threads at once once main() has
 * called curl_global_init(); everything else is for the main thread. Every
 * wait is bounded: a test fails rather than hangs.
 */
#ifndef TESTS_SVC_HARNESS_H
#define TESTS_SVC_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "core/clock.h"
#include "core/formats/thash.h"
#include "tests/check.h"
#include "tests/file_util.h"
#include "tests/pg_util.h"

#ifndef SVC_FARMSD /* the server binary; an includer may name another build */
#define SVC_FARMSD "build/san/farmsd"
#endif
#define SVC_FIX     "tests/fixtures/checkpoints/"
#define SVC_START_S 30.0 /* until /healthz answers */
#define SVC_STOP_S  30.0 /* SIGTERM until exit */
#define SVC_REQ_S   60L  /* one HTTP request */

struct svc {
    pid_t pid;          /* -1 when not running */
    char data[1024];    /* --data folder */
    char log[PATH_MAX]; /* stderr of the server */
    unsigned port;
    char base[64];    /* "http://127.0.0.1:PORT" */
    char auth[192];   /* "Authorization: Bearer T" sent by svc_job/svc_wait_job, "" none */
    int start_status; /* exit status if it exited during start-up, else -1 */
};

struct svc_resp {
    long status; /* HTTP status, 0 if the request failed */
    int curl_rc; /* CURLcode */
    char *body;  /* owned, NUL-terminated */
    size_t len;
    cJSON *json; /* owned; NULL unless the body is JSON */
    char content_type[128];
    char etag[128];
    char location[256];
    char www_authenticate[256];
    char allow[128];
    char retry_after[32];
};

static inline double svc_now(void)
{
    return clock_mono_s();
}

static inline void svc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* --- Files ---------------------------------------------------------------------- */

/* The whole file in a new buffer (NUL-terminated), its size in *len. NULL on
 * failure. */
static inline char *svc_slurp(const char *path, size_t *len)
{
    return fu_read(path, len);
}

static inline int svc_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok = f != NULL && fwrite(data, 1, len, f) == len;

    if (f != NULL && fclose(f) != 0)
        ok = 0;
    return ok;
}

static inline int svc_copy_file(const char *from, const char *to)
{
    size_t n;
    char *b = svc_slurp(from, &n);
    int ok = b != NULL && svc_write_file(to, b, n);

    free(b);
    return ok;
}

/* Number of regular files under `dir` (recursively, via find). -1 on error. */
static inline long svc_count_files(const char *dir)
{
    char cmd[PATH_MAX + 64];
    FILE *p;
    long n = -1;

    snprintf(cmd, sizeof(cmd), "find '%s' -type f | wc -l", dir);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    if (fscanf(p, "%ld", &n) != 1)
        n = -1;
    pclose(p);
    return n;
}

/* Remove a folder the test created (under /tmp/farmsd-), unless `keep`
 * (a test failed: the data and server logs stay for a look). */
static inline void svc_rm_rf(const char *dir, int keep)
{
    char cmd[PATH_MAX + 16];

    if (keep) {
        fprintf(stderr, "kept %s (server logs: *.log)\n", dir);
        return;
    }
    if (strncmp(dir, "/tmp/farmsd-", 12) != 0)
        return; /* only what the tests created */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* A new folder /tmp/farmsd-<tag>-XXXXXX in `out`. 1 on success. */
static inline int svc_mkdtemp(const char *tag, char *out, size_t len)
{
    snprintf(out, len, "/tmp/farmsd-%s-XXXXXX", tag);
    return mkdtemp(out) != NULL;
}

/* --- The server process ------------------------------------------------------------ */

/* Start `farmsd serve` on `data` with extra flags (NULL-terminated, may be
 * NULL). 1 when /healthz answers 200 within SVC_START_S; 0 otherwise, with
 * s->start_status the exit status if it exited (the log printed unless
 * `quiet_fail`: a test that expects the refusal). */
static inline int svc_start_ex(struct svc *s, const char *data, const char *const *extra,
                               int quiet_fail);

static inline int svc_start(struct svc *s, const char *data, const char *const *extra)
{
    return svc_start_ex(s, data, extra, 0);
}

/* Send `sig` (0: none) and wait for the server to exit: its exit status
 * (0..255), 128+signal if killed by one, -1 when it is still running after
 * SVC_STOP_S (it is then killed). */
static inline int svc_signal_wait(struct svc *s, int sig)
{
    int ws = 0;
    double until = svc_now() + SVC_STOP_S;

    if (s->pid <= 0)
        return -1;
    if (sig != 0)
        kill(s->pid, sig);
    while (svc_now() < until) {
        pid_t r = waitpid(s->pid, &ws, WNOHANG);
        if (r == s->pid) {
            s->pid = -1;
            return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        }
        svc_sleep_ms(20);
    }
    fprintf(stderr, "farmsd did not stop within %.0f s; killing it\n", SVC_STOP_S);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &ws, 0);
    s->pid = -1;
    return -1;
}

/* SIGTERM; the exit status as svc_signal_wait's. */
static inline int svc_stop(struct svc *s)
{
    return svc_signal_wait(s, SIGTERM);
}

/* SIGKILL (a crash) and reap. */
static inline void svc_crash(struct svc *s)
{
    int ws;

    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &ws, 0);
    s->pid = -1;
}

/* Print the server's log (on a failure, to see why). */
static inline void svc_dump_log(const struct svc *s, size_t tail)
{
    size_t n;
    char *t = svc_slurp(s->log, &n);

    if (t != NULL)
        fprintf(stderr, "--- %s (last %zu bytes) ---\n%s\n---\n", s->log, tail,
                n > tail ? t + n - tail : t);
    free(t);
}

/* --- HTTP ---------------------------------------------------------------------- */

struct svc_buf {
    char *p;
    size_t len;
};

static inline size_t svc_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct svc_buf *b = arg;
    size_t n = size * nmemb;
    char *g = realloc(b->p, b->len + n + 1);

    if (g == NULL)
        return 0;
    b->p = g;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* Copy header `name`'s value (trimmed) into dst if `line` is that header. */
static inline void svc_header_pick(const char *line, size_t n, const char *name, char *dst,
                                   size_t cap)
{
    size_t k = strlen(name), v, end;

    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return;
    v = k + 1;
    while (v < n && (line[v] == ' ' || line[v] == '\t'))
        v++;
    end = n;
    while (end > v && (line[end - 1] == '\r' || line[end - 1] == '\n' || line[end - 1] == ' '))
        end--;
    snprintf(dst, cap, "%.*s", (int)(end - v), line + v);
}

static inline size_t svc_on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    struct svc_resp *r = arg;
    size_t n = size * nmemb;

    svc_header_pick(line, n, "Content-Type", r->content_type, sizeof(r->content_type));
    svc_header_pick(line, n, "ETag", r->etag, sizeof(r->etag));
    svc_header_pick(line, n, "Location", r->location, sizeof(r->location));
    svc_header_pick(line, n, "WWW-Authenticate", r->www_authenticate, sizeof(r->www_authenticate));
    svc_header_pick(line, n, "Allow", r->allow, sizeof(r->allow));
    svc_header_pick(line, n, "Retry-After", r->retry_after, sizeof(r->retry_after));
    return n;
}

static inline size_t svc_on_read(char *dst, size_t size, size_t nmemb, void *arg)
{
    return fread(dst, 1, size * nmemb, (FILE *)arg);
}

/* One request. `path` starts with '/'. The body: `body_len` bytes at
 * `body` (Content-Length), or `stream` read to its end and sent with
 * Transfer-Encoding: chunked (as `curl -T` sends a pipe), or none (both
 * NULL). `headers`: NULL-terminated "Name: value" lines, may be NULL.
 * Returns r->status (0 if no answer). */
static inline long svc_req_ex(const struct svc *s, const char *method, const char *path,
                              const char *content_type, const void *body, size_t body_len,
                              FILE *stream, const char *const *headers, struct svc_resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    struct svc_buf b = {NULL, 0};
    char url[4096];

    memset(r, 0, sizeof(*r));
    if (c == NULL)
        return 0;
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, SVC_REQ_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, svc_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, svc_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (stream != NULL && strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    } else if (stream != NULL) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
    } else if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (strcmp(method, "HEAD") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (stream != NULL) {
        curl_easy_setopt(c, CURLOPT_READFUNCTION, svc_on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, stream);
        hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
    }
    if (stream != NULL || body != NULL) {
        char ct[160];
        snprintf(ct, sizeof(ct), "Content-Type: %s",
                 content_type ? content_type : "application/octet-stream");
        hl = curl_slist_append(hl, ct);
        hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
    }
    for (int i = 0; headers != NULL && headers[i] != NULL; i++)
        hl = curl_slist_append(hl, headers[i]);
    if (hl != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    r->curl_rc = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    r->body = b.p ? b.p : calloc(1, 1);
    r->len = b.len;
    if (r->len > 0 && (strncmp(r->content_type, "application/json", 16) == 0 ||
                       strncmp(r->content_type, "application/problem+json", 24) == 0))
        r->json = cJSON_ParseWithLength(r->body, r->len);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return r->status;
}

/* A request with a Content-Length body (or none: body NULL). */
static inline long svc_req(const struct svc *s, const char *method, const char *path,
                           const char *content_type, const void *body, size_t body_len,
                           const char *const *headers, struct svc_resp *r)
{
    return svc_req_ex(s, method, path, content_type, body, body_len, NULL, headers, r);
}

static inline void svc_resp_free(struct svc_resp *r)
{
    free(r->body);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

static inline long svc_get(const struct svc *s, const char *path, struct svc_resp *r)
{
    return svc_req(s, "GET", path, NULL, NULL, 0, NULL, r);
}

/* POST the file at `file` as application/octet-stream to `path`. */
static inline long svc_upload(const struct svc *s, const char *path, const char *file,
                              const char *const *headers, struct svc_resp *r)
{
    size_t n;
    char *b = svc_slurp(file, &n);
    long st;

    if (b == NULL) {
        memset(r, 0, sizeof(*r));
        fprintf(stderr, "cannot read %s\n", file);
        return 0;
    }
    st = svc_req(s, "POST", path, "application/octet-stream", b, n, headers, r);
    free(b);
    return st;
}

/* `method` (POST or PUT) the file at `file` with Transfer-Encoding: chunked
 * (no Content-Length, as a streaming client sends it). */
static inline long svc_upload_chunked(const struct svc *s, const char *method, const char *path,
                                      const char *file, const char *const *headers,
                                      struct svc_resp *r)
{
    FILE *f = fopen(file, "rb");
    long st;

    if (f == NULL) {
        memset(r, 0, sizeof(*r));
        fprintf(stderr, "cannot read %s\n", file);
        return 0;
    }
    st = svc_req_ex(s, method, path, "application/octet-stream", NULL, 0, f, headers, r);
    fclose(f);
    return st;
}

/* POST a JSON body. */
static inline long svc_post_json(const struct svc *s, const char *path, const char *json,
                                 const char *const *headers, struct svc_resp *r)
{
    return svc_req(s, "POST", path, "application/json", json, strlen(json), headers, r);
}

/* --- JSON helpers -------------------------------------------------------------------- */

static inline const cJSON *svc_j(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* The string member `key`, or "" (never NULL). */
static inline const char *svc_js(const cJSON *o, const char *key)
{
    const cJSON *v = svc_j(o, key);

    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The number member `key`, or NaN. */
static inline double svc_jn(const cJSON *o, const char *key)
{
    const cJSON *v = svc_j(o, key);

    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* --- Jobs ------------------------------------------------------------------------- */

/* GET /v1/jobs/{id}: the job JSON (a new object, cJSON_Delete) or NULL. */
static inline cJSON *svc_job(const struct svc *s, long long id)
{
    struct svc_resp r;
    char path[64];
    cJSON *job = NULL;
    const char *hdrs[] = {s->auth, NULL};

    snprintf(path, sizeof(path), "/v1/jobs/%lld", id);
    if (svc_req(s, "GET", path, NULL, NULL, 0, s->auth[0] ? hdrs : NULL, &r) == 200 &&
        r.json != NULL) {
        job = r.json;
        r.json = NULL;
    }
    svc_resp_free(&r);
    return job;
}

/* Poll /v1/jobs/{id} until its state is final (succeeded, failed, canceled)
 * or `timeout_s` passes (or the GET fails). The last job JSON (a new object, cJSON_Delete) or NULL.
 */
static inline cJSON *svc_wait_job(const struct svc *s, long long id, double timeout_s)
{
    double until = svc_now() + timeout_s;

    for (;;) {
        cJSON *job = svc_job(s, id);
        const char *st = svc_js(job, "state");
        int final = strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
                    strcmp(st, "canceled") == 0;

        if (final || job == NULL) /* no such job, or no answer: fail now, not later */
            return job;
        if (svc_now() > until) {
            fprintf(stderr, "job %lld still '%s' after %.0f s\n", id, st, timeout_s);
            return job;
        }
        cJSON_Delete(job);
        svc_sleep_ms(50);
    }
}

/* --- /metrics ------------------------------------------------------------------------ */

/* The value of the sample line starting with `name` (a metric name, with
 * labels if any: `farmsd_jobs{state="queued"}`), or NaN if absent. */
static inline double svc_metric(const struct svc *s, const char *name)
{
    struct svc_resp r;
    double v = NAN;
    size_t k = strlen(name);

    if (svc_get(s, "/metrics", &r) == 200) {
        for (const char *p = r.body; p != NULL && *p != '\0';) {
            if (strncmp(p, name, k) == 0 && p[k] == ' ') {
                v = strtod(p + k + 1, NULL);
                break;
            }
            p = strchr(p, '\n');
            p = p ? p + 1 : NULL;
        }
    }
    svc_resp_free(&r);
    return v;
}

/* A "VmRSS:" / "VmHWM:" line of the server's /proc status, in kB (-1: none). */
static inline long svc_proc_kb(const struct svc *s, const char *key)
{
    char path[64], line[256];
    size_t n = strlen(key);
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)s->pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

/* --- The CLI and the manifest --------------------------------------------------------- */

/* `farmsd analyze FILE --preset P --format json [--threads T]` (T 0: the
 * CLI's default): the parsed output or NULL. One thread matches a server
 * with one worker: a layer's units are cut by the number of workers, which
 * may move an alpha in its last digits. */
static inline cJSON *svc_cli_analyze_threads(const char *file, const char *preset, int threads)
{
    char cmd[PATH_MAX + 160];
    struct svc_buf b = {NULL, 0};
    char chunk[65536];
    size_t n;
    FILE *p;
    cJSON *j = NULL;

    if (threads > 0)
        snprintf(cmd, sizeof(cmd), "%s analyze '%s' --preset %s --format json --quiet --threads %d",
                 SVC_FARMSD, file, preset, threads);
    else
        snprintf(cmd, sizeof(cmd), "%s analyze '%s' --preset %s --format json --quiet", SVC_FARMSD,
                 file, preset);
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

/* `farmsd analyze FILE --preset P --format json`: the parsed output or NULL. */
static inline cJSON *svc_cli_analyze(const char *file, const char *preset)
{
    return svc_cli_analyze_threads(file, preset, 0);
}

/* The layers of the service's checkpoint run/step under `preset` (GET
 * /v1/runs/RUN/checkpoints/STEP?preset=P) equal the CLI's `cli`, layer by
 * layer: name, status, alpha and num_eigs, bitwise (cJSON_Compare).
 * n_layers 0: both have as many layers, at least one, each with the CLI's
 * status; n_layers N: both have exactly N, each analysed ("ok"), with the
 * same D too. */
static inline void svc_check_layers_as_cli(const struct svc *s, const char *run, long step,
                                           const char *preset, const cJSON *cli, int n_layers)
{
    char path[256];
    struct svc_resp r;
    const cJSON *a, *b;

    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints/%ld?preset=%s", run, step, preset);
    CHECK_EQ_INT(svc_get(s, path, &r), 200);
    if (n_layers > 0) {
        CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "layers")), n_layers);
        CHECK_EQ_INT(cJSON_GetArraySize(svc_j(cli, "layers")), n_layers);
    } else {
        CHECK(cli != NULL);
        CHECK(cJSON_GetArraySize(svc_j(r.json, "layers")) > 0);
        CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "layers")),
                     cJSON_GetArraySize(svc_j(cli, "layers")));
    }
    a = svc_j(r.json, "layers") ? svc_j(r.json, "layers")->child : NULL;
    b = svc_j(cli, "layers") ? svc_j(cli, "layers")->child : NULL;
    for (; a != NULL && b != NULL; a = a->next, b = b->next) {
        CHECK_STR_EQ(svc_js(a, "name"), svc_js(b, "name"));
        CHECK_STR_EQ(svc_js(a, "status"), n_layers > 0 ? "ok" : svc_js(b, "status"));
        CHECK(cJSON_Compare(svc_j(a, "alpha"), svc_j(b, "alpha"), 1));
        if (n_layers > 0)
            CHECK(cJSON_Compare(svc_j(a, "D"), svc_j(b, "D"), 1));
        CHECK(cJSON_Compare(svc_j(a, "num_eigs"), svc_j(b, "num_eigs"), 1));
        if (!cJSON_Compare(svc_j(a, "alpha"), svc_j(b, "alpha"), 1))
            fprintf(stderr, "  %s step %ld layer %s: alpha %.17g, farmsd analyze %.17g\n", run,
                    step, svc_js(a, "name"), svc_jn(a, "alpha"), svc_jn(b, "alpha"));
    }
    svc_resp_free(&r);
}

/* svc_check_layers_as_cli() against `farmsd analyze FILE --preset
 * farms-llm [--threads T]` (threads 0: the CLI's default). */
static inline void svc_check_layers_as_analyze(const struct svc *s, const char *run, long step,
                                               const char *file, int threads, int n_layers)
{
    cJSON *cli = svc_cli_analyze_threads(file, "farms-llm", threads);

    svc_check_layers_as_cli(s, run, step, "farms-llm", cli, n_layers);
    cJSON_Delete(cli);
}

/* The manifest (fixtures/checkpoints/manifest.json), parsed, or NULL. */
static inline cJSON *svc_manifest(void)
{
    char *t = svc_slurp(SVC_FIX "manifest.json", NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;

    free(t);
    return j;
}

/* The manifest entry whose "path" is `rel`, or NULL. Borrowed from m. */
static inline const cJSON *svc_manifest_file(const cJSON *m, const char *rel)
{
    const cJSON *f;

    cJSON_ArrayForEach(f, svc_j(m, "files")) if (strcmp(svc_js(f, "path"), rel) == 0) return f;
    return NULL;
}

/* The SHA-256 the manifest gives tensor `name` of file `rel`, or "". */
static inline const char *svc_manifest_tensor_sha(const cJSON *m, const char *rel, const char *name)
{
    const cJSON *t;

    cJSON_ArrayForEach(
        t, svc_j(svc_manifest_file(m, rel), "tensors")) if (strcmp(svc_js(t, "name"), name) ==
                                                            0) return svc_js(t, "sha256");
    return "";
}

/* --- Synthetic checkpoints ------------------------------------------------------------- */

/* A safetensors file of `n` F32 `rows` x `cols` standard-normal matrices
 * named model.layers.<i>.mlp.up_proj.weight, from a seeded generator
 * (xorshift64* + Box-Muller): 8-byte LE header length, JSON header (padded
 * with spaces to 8 bytes), data. 1 on success. */
static inline int svc_write_gaussian_st(const char *path, int n, int rows, int cols, uint64_t seed)
{
    char hdr[4096];
    size_t hl = 1, per = (size_t)rows * (size_t)cols * 4;
    FILE *f = fopen(path, "wb");
    float *buf = malloc(per);
    uint64_t x = seed ? seed : 1;
    unsigned char len8[8];
    int ok = f != NULL && buf != NULL;

    hdr[0] = '{';
    for (int i = 0; i < n; i++)
        hl += (size_t)snprintf(hdr + hl, sizeof(hdr) - hl,
                               "%s\"model.layers.%d.mlp.up_proj.weight\":{\"dtype\":\"F32\","
                               "\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                               i ? "," : "", i, rows, cols, per * (size_t)i, per * (size_t)(i + 1));
    hdr[hl++] = '}';
    while (hl % 8 != 0)
        hdr[hl++] = ' ';
    for (int k = 0; k < 8; k++)
        len8[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    ok = ok && fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
    for (int i = 0; ok && i < n; i++) {
        size_t m = (size_t)rows * (size_t)cols;
        for (size_t k = 0; k < m; k += 2) {
            double u1, u2, rad;
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            u1 = ((double)((x * 2685821657736338717ull) >> 11) + 0.5) / 9007199254740992.0;
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            u2 = ((double)((x * 2685821657736338717ull) >> 11) + 0.5) / 9007199254740992.0;
            rad = sqrt(-2.0 * log(u1));
            buf[k] = (float)(rad * cos(6.283185307179586 * u2));
            if (k + 1 < m)
                buf[k + 1] = (float)(rad * sin(6.283185307179586 * u2));
        }
        ok = fwrite(buf, 4, m, f) == m; /* little-endian host (x86-64, aarch64) */
    }
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    free(buf);
    return ok;
}

/* --- svc_start ----------------------------------------------------------------------- */

/* 1 when the tests run against PostgreSQL (FARMSD_TEST_BACKEND=postgresql). */
static inline int svc_on_pg(void)
{
    const char *b = getenv("FARMSD_TEST_BACKEND");

    return b != NULL && strcmp(b, "postgresql") == 0;
}

/* With FARMSD_TEST_BACKEND=postgresql, point the server at the test cluster
 * (--db FARMSD_TEST_PG_URL); the database is wiped the first time a data
 * folder is started, so a restart on the same folder keeps its data, as a
 * restart with SQLite does. 0 (and a failed check) when it cannot. */
static inline int svc_backend_args(const char *data, const char **argv, int *argc)
{
    static char db_arg[1024];
    char marker[1100];
    const char *url;
    int fd;

    if (!svc_on_pg())
        return 1;
    url = pgu_url();
    if (url == NULL)
        return 0;
    snprintf(marker, sizeof(marker), "%.1000s/.pg-test-db", data);
    if (access(marker, F_OK) != 0) {
        mkdir(data, 0700);
        if (pgu_reset(url) != 0)
            return 0;
        fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    snprintf(db_arg, sizeof(db_arg), "%.1000s", url);
    argv[(*argc)++] = "--db";
    argv[(*argc)++] = db_arg;
    /* jobs of a killed server are claimed again when their lease ends:
     * keep it short so the crash tests need not wait a minute */
    argv[(*argc)++] = "--lease";
    argv[(*argc)++] = "10";
    return 1;
}

static inline int svc_start_ex(struct svc *s, const char *data, const char *const *extra,
                               int quiet_fail)
{
    const char *argv[40] = {SVC_FARMSD, "serve",     "--listen", "127.0.0.1:0", "--data",
                            data,       "--workers", "2",        "--log-level", "info"};
    int argc = 10, fd;
    double until = svc_now() + SVC_START_S;
    static const char *const env_vars[] = {
        "FARMSD_LISTEN",      "FARMSD_DATA",         "FARMSD_WORKERS",    "FARMSD_PRESET",
        "FARMSD_ALLOW_ROOTS", "FARMSD_TOKENS",       "FARMSD_MAX_UPLOAD", "FARMSD_MAX_UPLOADS",
        "FARMSD_MIN_FREE",    "FARMSD_HTTP_THREADS", "FARMSD_LOG_LEVEL"};

    memset(s, 0, sizeof(*s));
    s->pid = -1;
    s->start_status = -1;
    snprintf(s->data, sizeof(s->data), "%.1000s", data);
    snprintf(s->log, sizeof(s->log), "%.1000s.log", data);
    if (!svc_backend_args(data, argv, &argc))
        return 0;
    for (int i = 0; extra != NULL && extra[i] != NULL && argc < 39; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    s->pid = fork();
    if (s->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
            unsetenv(env_vars[i]);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(SVC_FARMSD, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    close(fd);
    if (s->pid < 0)
        return 0;
    while (svc_now() < until) {
        char *log = svc_slurp(s->log, NULL), *last = NULL;
        int ws;
        /* the last "listening" line (the log is appended to across restarts) */
        for (char *p = log; p != NULL && (p = strstr(p, "msg=\"listening\" url=http://127.0.0.1:"));
             p++)
            last = p;
        if (last != NULL)
            s->port = (unsigned)strtoul(last + strlen("msg=\"listening\" url=http://127.0.0.1:"),
                                        NULL, 10);
        free(log);
        if (waitpid(s->pid, &ws, WNOHANG) == s->pid) {
            s->pid = -1;
            s->start_status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
            if (!quiet_fail) {
                fprintf(stderr, "farmsd serve exited during start-up\n");
                svc_dump_log(s, 2000);
            }
            return 0;
        }
        if (s->port != 0) {
            struct svc_resp r;
            long st;
            snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%u", s->port);
            st = svc_get(s, "/healthz", &r);
            svc_resp_free(&r);
            if (st == 200)
                return 1;
            s->port = 0;
        }
        svc_sleep_ms(20);
    }
    fprintf(stderr, "farmsd serve did not answer /healthz within %.0f s\n", SVC_START_S);
    svc_dump_log(s, 2000);
    svc_crash(s);
    return 0;
}

#endif /* TESTS_SVC_HARNESS_H */
