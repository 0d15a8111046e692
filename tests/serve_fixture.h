/* serve_fixture.h -- a real `farmsd serve` for end-to-end tests, and libcurl.
 *
 * srv_start() runs build/san/farmsd serve on 127.0.0.1 port 0 with a fresh
 * data folder under /tmp, reads the port from its `msg="listening"` log
 * line, and srv_stop() sends SIGTERM and waits (the exit status must be 0:
 * a clean shutdown, no sanitizer report). http_do() is one request with
 * libcurl; srv_upload_wait() uploads a fixture and waits for its job.
 * Static functions for the test executables that include it; not
 * thread-safe (the tests are single-threaded). Run from the repository root.
 */
#ifndef TESTS_SERVE_FIXTURE_H
#define TESTS_SERVE_FIXTURE_H

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

#define SRV_FARMSD "build/san/farmsd"

struct srv {
    pid_t pid;
    char dir[64];  /* temp folder: data/, serve.log */
    char url[128]; /* "http://127.0.0.1:PORT" without the trailing '/' */
    char log[128];
};

struct http_res {
    long status;
    char *body; /* NUL-terminated, owned (free) */
    size_t len;
    char etag[96], cache_control[96], content_type[96], retry_after[16];
};

static inline void srv_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Start the server with up to 4 extra arguments (NULL-terminated). 1 on
 * success with s->url set, 0 (and the log printed) if it did not come up. */
static inline int srv_start(struct srv *s, const char *const *extra)
{
    const char *argv[16] = {SRV_FARMSD, "serve", "--listen",  "127.0.0.1:0",
                            "--data",   NULL,    "--workers", "2"};
    char data[96], line[512];
    int n = 8;

    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/farmsd-e2e-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        return 0;
    snprintf(data, sizeof(data), "%s/data", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/serve.log", s->dir);
    argv[5] = data;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 14; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    s->pid = fork();
    if (s->pid == 0) {
        FILE *f = freopen(s->log, "w", stderr);
        (void)f;
        execv(SRV_FARMSD, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    for (int tries = 0; s->pid > 0 && tries < 300; tries++) { /* 30 s */
        FILE *f = fopen(s->log, "r");
        while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            static const char key[] = "msg=\"listening\" url=http://127.0.0.1:";
            const char *u = strstr(line, key);
            long port = u != NULL ? strtol(u + sizeof(key) - 1, NULL, 10) : 0;
            if (port > 0 && port < 65536) {
                snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%ld", port);
                fclose(f);
                return 1;
            }
        }
        if (f != NULL)
            fclose(f);
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            break;
        }
        srv_sleep_ms(100);
    }
    fprintf(stderr, "farmsd serve did not start; its log:\n");
    snprintf(line, sizeof(line), "cat '%s' >&2", s->log);
    if (system(line) != 0)
        fprintf(stderr, "(no log)\n");
    return 0;
}

/* SIGTERM, wait, remove the data. The exit status (0 for a clean stop). */
static inline int srv_stop(struct srv *s)
{
    int ws = 0, rc = -1;
    char cmd[256];

    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        if (waitpid(s->pid, &ws, 0) == s->pid && WIFEXITED(ws))
            rc = WEXITSTATUS(ws);
        if (rc != 0) {
            snprintf(cmd, sizeof(cmd), "tail -n 30 '%s' >&2", s->log);
            if (system(cmd) != 0)
                fprintf(stderr, "(no log)\n");
        }
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    if (s->dir[0] != '\0' && system(cmd) != 0)
        rc = -1;
    s->pid = 0;
    return rc;
}

static inline size_t http_body_cb(char *p, size_t sz, size_t n, void *arg)
{
    struct http_res *r = arg;
    char *b = realloc(r->body, r->len + sz * n + 1);

    if (b == NULL)
        return 0;
    memcpy(b + r->len, p, sz * n);
    r->len += sz * n;
    b[r->len] = '\0';
    r->body = b;
    return sz * n;
}

static inline void http_hdr_copy(const char *line, size_t len, const char *name, char *out,
                                 size_t cap)
{
    size_t nl = strlen(name);

    if (len > nl && strncasecmp(line, name, nl) == 0) {
        const char *v = line + nl;
        size_t vl = len - nl;
        while (vl > 0 && (*v == ' '))
            v++, vl--;
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
            vl--;
        snprintf(out, cap, "%.*s", (int)vl, v);
    }
}

static inline size_t http_hdr_cb(char *p, size_t sz, size_t n, void *arg)
{
    struct http_res *r = arg;

    http_hdr_copy(p, sz * n, "ETag:", r->etag, sizeof(r->etag));
    http_hdr_copy(p, sz * n, "Cache-Control:", r->cache_control, sizeof(r->cache_control));
    http_hdr_copy(p, sz * n, "Content-Type:", r->content_type, sizeof(r->content_type));
    http_hdr_copy(p, sz * n, "Retry-After:", r->retry_after, sizeof(r->retry_after));
    return sz * n;
}

/* One request: GET (upload_file NULL) or PUT of a file; `header` (may be
 * NULL) is one extra request header. r->status is 0 on a transport error. */
static inline void http_do(const char *url, const char *upload_file, const char *header,
                           struct http_res *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = header ? curl_slist_append(NULL, header) : NULL;
    FILE *f = upload_file ? fopen(upload_file, "rb") : NULL;
    struct stat st;

    memset(r, 0, sizeof(*r));
    if (c == NULL || (upload_file != NULL && (f == NULL || fstat(fileno(f), &st) != 0)))
        goto out;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_hdr_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (h != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (f != NULL) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READDATA, f);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
out:
    if (f != NULL)
        fclose(f);
    curl_slist_free_all(h);
    if (c != NULL)
        curl_easy_cleanup(c);
}

/* GET s->url + path as JSON (NULL unless a 200 with a JSON body). */
static inline cJSON *http_json(const struct srv *s, const char *path)
{
    char url[1024];
    struct http_res r;
    cJSON *j = NULL;

    snprintf(url, sizeof(url), "%s%s", s->url, path);
    http_do(url, NULL, NULL, &r);
    if (r.status == 200 && r.body != NULL)
        j = cJSON_Parse(r.body);
    free(r.body);
    return j;
}

/* PUT fixture `file` as run `run` step `step` and wait up to 120 s for its
 * job: the job's final state ("succeeded", ...) in state, 1 if it ended. */
static inline int srv_upload_wait_preset(const struct srv *s, const char *run, long step,
                                         const char *file, const char *preset, char *state,
                                         size_t cap)
{
    char url[512], path[64];
    struct http_res r;
    cJSON *j;
    long id = -1;

    snprintf(state, cap, "none");
    snprintf(url, sizeof(url), "%s/v1/runs/%s/checkpoints?step=%ld%s%s", s->url, run, step,
             preset ? "&preset=" : "", preset ? preset : "");
    http_do(url, file, NULL, &r);
    if ((r.status == 202 || r.status == 200) && (j = cJSON_Parse(r.body)) != NULL) {
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(j, "id");
        id = cJSON_IsNumber(idj) ? (long)idj->valuedouble : -1;
        cJSON_Delete(j);
    }
    free(r.body);
    if (id < 0)
        return 0;
    snprintf(path, sizeof(path), "/v1/jobs/%ld", id);
    for (int tries = 0; tries < 1200; tries++) {
        const cJSON *st;
        j = http_json(s, path);
        st = cJSON_GetObjectItemCaseSensitive(j, "state");
        if (cJSON_IsString(st) && strcmp(st->valuestring, "queued") != 0 &&
            strcmp(st->valuestring, "running") != 0) {
            snprintf(state, cap, "%s", st->valuestring);
            cJSON_Delete(j);
            return 1;
        }
        cJSON_Delete(j);
        srv_sleep_ms(100);
    }
    return 0;
}

/* srv_upload_wait_preset without a preset (the server's default). */
static inline int srv_upload_wait(const struct srv *s, const char *run, long step, const char *file,
                                  char *state, size_t cap)
{
    return srv_upload_wait_preset(s, run, step, file, NULL, state, cap);
}

#endif /* TESTS_SERVE_FIXTURE_H */
