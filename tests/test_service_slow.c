/* test_service_slow.c -- slow clients and slow work cannot starve a real
 * `farmsd serve` (tests/svc_harness.h):
 *   - 300 connections trickling header bytes from 127.0.0.2 get 408 after
 *     --header-timeout while /healthz from 127.0.0.1 keeps answering;
 *   - an upload trickling a byte a second holds the only upload slot
 *     (--max-uploads 1) until --min-upload-rate over --min-upload-window
 *     closes it with 408; its temporary file is removed, the slot freed, and
 *     a normal upload then gets 202;
 *   - a slow validation (a path ingestion hashing a 4 GiB sparse file) runs
 *     on a validator thread: with one HTTP thread, GETs are answered while
 *     it runs; a request with a body beyond --validators + --validation-queue
 *     gets 503 busy with Retry-After and nothing is stored;
 *   - connections over --max-connections-per-ip are closed at accept while
 *     another address still gets /healthz.
 * The attackers are raw sockets bound to 127.0.0.2 (loopback); every loop is
 * bounded in count and time. Run from the repository root after `make
 * test-build`.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include "tests/check.h"
#include "tests/svc_harness.h"

#define ATTACKER  "127.0.0.2"
#define N_TRICKLE 300

static char tmp_dir[256];

/* --- Raw sockets ----------------------------------------------------------------- */

/* A TCP connection from `src` (port chosen by the kernel) to the server,
 * non-blocking once connected. -1 on failure. */
static int raw_connect(const struct svc *s, const char *src)
{
    struct sockaddr_in a = {0}, b = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    inet_pton(AF_INET, src, &a.sin_addr);
    b.sin_family = AF_INET;
    b.sin_port = htons((uint16_t)s->port);
    inet_pton(AF_INET, "127.0.0.1", &b.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        connect(fd, (struct sockaddr *)&b, sizeof(b)) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static int raw_send(int fd, const char *text)
{
    size_t n = strlen(text);

    return send(fd, text, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n;
}

/* What the server sent on `fd` so far (non-blocking): 1 if `buf` (cap
 * bytes, NUL-terminated) got an answer, -1 if the connection ended without
 * one, 0 if nothing yet. */
static int raw_poll(int fd, char *buf, size_t cap, size_t *have)
{
    ssize_t n = recv(fd, buf + *have, cap - 1 - *have, MSG_DONTWAIT);

    if (n > 0) {
        *have += (size_t)n;
        buf[*have] = '\0';
        return strstr(buf, "\r\n\r\n") != NULL ? 1 : 0;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
        return *have > 0 ? 1 : -1;
    return 0;
}

/* GET `path` from 127.0.0.1 with a bound of `timeout_s`: the status, 0 if none. */
static long get_within(const struct svc *s, const char *path, long timeout_s)
{
    CURL *c = curl_easy_init();
    char url[256];
    long status = 0;

    if (c == NULL)
        return 0;
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, svc_on_body);
    {
        struct svc_buf b = {NULL, 0};
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        free(b.p);
    }
    curl_easy_cleanup(c);
    return status;
}

static int start(struct svc *s, const char *tag, const char *const *extra)
{
    char data[512];

    snprintf(data, sizeof(data), "%s/%s", tmp_dir, tag);
    return svc_start(s, data, extra);
}

/* Files left in the blob store's tmp folder (uploads being written). */
static long tmp_files(const struct svc *s)
{
    char dir[1100];

    snprintf(dir, sizeof(dir), "%s/blobs/tmp", s->data);
    return svc_count_files(dir);
}

/* Poll /metrics until `name` equals `want` (bounded by `timeout_s`). */
static double wait_metric(const struct svc *s, const char *name, double want, double timeout_s)
{
    double until = svc_now() + timeout_s, v = svc_metric(s, name);

    while (v != want && svc_now() < until) {
        svc_sleep_ms(50);
        v = svc_metric(s, name);
    }
    return v;
}

/* --- (a) the header deadline ------------------------------------------------------- */

static void test_trickled_headers(void)
{
    const char *extra[] = {"--header-timeout", "2", "--max-connections-per-ip", "400", NULL};
    static int fds[N_TRICKLE];
    static char bufs[N_TRICKLE][512];
    static size_t have[N_TRICKLE];
    static const char line[] = "GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int n_open = 0, n_408 = 0, n_other = 0, healthy = 0, checks = 0, done = 0;
    double until;
    struct svc s;

    if (!start(&s, "headers", extra)) {
        CHECK(0);
        return;
    }
    for (int i = 0; i < N_TRICKLE; i++) {
        fds[i] = raw_connect(&s, ATTACKER);
        have[i] = 0;
        if (fds[i] >= 0 && raw_send(fds[i], "G"))
            n_open++;
    }
    CHECK_EQ_INT(n_open, N_TRICKLE);
    /* one more header byte every 200 ms on every connection, for at most
       15 s; /healthz from the other address on every round */
    until = svc_now() + 15;
    for (size_t k = 1; svc_now() < until && done < n_open; k++) {
        done = 0;
        for (int i = 0; i < N_TRICKLE; i++) {
            int st;
            if (fds[i] < 0)
                continue;
            st = raw_poll(fds[i], bufs[i], sizeof(bufs[i]), &have[i]);
            if (st == 0 && k < sizeof(line) - 1) {
                char b[2] = {line[k], '\0'};
                raw_send(fds[i], b);
            }
            if (st != 0)
                done++;
        }
        checks++;
        healthy += get_within(&s, "/healthz", 5) == 200;
        svc_sleep_ms(200);
    }
    for (int i = 0; i < N_TRICKLE; i++) {
        if (fds[i] < 0)
            continue;
        if (strncmp(bufs[i], "HTTP/1.1 408 ", 13) == 0 && strstr(bufs[i], "\"timeout\"") != NULL)
            n_408++;
        else
            n_other++;
        close(fds[i]);
    }
    CHECK_EQ_INT(n_408, N_TRICKLE);
    CHECK_EQ_INT(n_other, 0);
    CHECK(checks >= 5); /* the deadline (2 s) is many rounds of 200 ms */
    CHECK_EQ_INT(healthy, checks);
    CHECK(svc_metric(&s, "farmsd_slow_clients_closed_total{reason=\"header_timeout\"}") >=
          N_TRICKLE);
    CHECK_EQ_INT(svc_stop(&s), 0);
}

/* --- (b) the minimum upload rate ------------------------------------------------------ */

static void test_trickled_upload(void)
{
    const char *extra[] = {
        "--max-uploads", "1", "--min-upload-rate", "65536", "--min-upload-window", "3", NULL};
    const char *file = "tests/fixtures/numerics/tiny_30x50.safetensors";
    char buf[1024] = "";
    size_t have = 0;
    int fd, st = 0, seconds = 0;
    struct svc_resp r;
    struct svc s;

    if (!start(&s, "upload", extra)) {
        CHECK(0);
        return;
    }
    fd = raw_connect(&s, ATTACKER);
    CHECK(fd >= 0);
    CHECK(raw_send(fd, "POST /v1/runs/slow/checkpoints?step=1 HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/octet-stream\r\n"
                       "Content-Length: 1000000\r\n\r\n"));
    /* a byte a second; the slot is held meanwhile: another upload gets 503 */
    for (; seconds < 15 && st == 0; seconds++) {
        raw_send(fd, "x");
        if (seconds == 1) {
            CHECK_EQ_INT(svc_upload(&s, "/v1/runs/fast/checkpoints?step=1", file, NULL, &r), 503);
            CHECK_STR_EQ(svc_js(r.json, "category"), "busy");
            svc_resp_free(&r);
        }
        svc_sleep_ms(1000);
        st = raw_poll(fd, buf, sizeof(buf), &have);
    }
    CHECK_EQ_INT(st, 1);
    CHECK(strncmp(buf, "HTTP/1.1 408 ", 13) == 0);
    CHECK(strstr(buf, "--min-upload-rate") != NULL);
    CHECK(seconds >= 3); /* not before the first window ended */
    close(fd);
    /* the connection is gone: slot free, temporary file removed */
    CHECK_EQ_INT(wait_metric(&s, "farmsd_uploads_in_flight", 0, 10), 0);
    CHECK_EQ_INT(tmp_files(&s), 0);
    CHECK_EQ_INT(svc_metric(&s, "farmsd_slow_clients_closed_total{reason=\"slow_upload\"}"), 1);
    CHECK_EQ_INT(svc_upload(&s, "/v1/runs/fast/checkpoints?step=1", file, NULL, &r), 202);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(&s, "/v1/runs/slow/checkpoints", &r), 404);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_stop(&s), 0);
}

/* --- (c, d) validators ------------------------------------------------------------------ */

/* A valid safetensors file with one 1-D F32 tensor of `n` elements, sparse
 * (zeros that take no disk). 1 on success. */
static int write_sparse_st(const char *path, uint64_t n)
{
    char hdr[256];
    unsigned char len8[8];
    int hl = snprintf(hdr, sizeof(hdr),
                      "{\"model.big.bias\":{\"dtype\":\"F32\",\"shape\":[%llu],"
                      "\"data_offsets\":[0,%llu]}}",
                      (unsigned long long)n, (unsigned long long)(4ull * n));
    FILE *f = fopen(path, "wb");
    int ok;

    while (hl % 8 != 0)
        hdr[hl++] = ' ';
    for (int k = 0; k < 8; k++)
        len8[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    ok = f != NULL && fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, (size_t)hl, f) == (size_t)hl;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    return ok && truncate(path, (off_t)(8 + (uint64_t)hl + 4 * n)) == 0;
}

struct slow_post {
    const struct svc *s;
    char body[1200];
    long status;
    long long job;
};

/* POST p->body with a bound of SLOW_POST_S (hashing 4 GiB on a loaded
 * machine may take longer than the harness's bound per request). */
#define SLOW_POST_S 300L
static void *slow_post_main(void *arg)
{
    struct slow_post *p = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    struct svc_buf b = {NULL, 0};
    char url[256];
    cJSON *j;

    snprintf(url, sizeof(url), "%s/v1/runs/big/checkpoints", p->s->base);
    if (c != NULL) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, SLOW_POST_S);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, p->body);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, svc_on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &p->status);
        curl_easy_cleanup(c);
    }
    j = b.p ? cJSON_Parse(b.p) : NULL;
    p->job = (long long)svc_jn(j, "id");
    cJSON_Delete(j);
    curl_slist_free_all(hl);
    free(b.p);
    return NULL;
}

/* 1 once path job `id` has succeeded or failed (bounded). Its file was cut
 * to 0 bytes: the worker's copy ends at once and the job fails "changed",
 * unless it had read all 4 GiB before (then it finds no weight matrix). */
#define PATH_JOB_END_S 240
static int path_job_ended(const struct svc *s, long long id)
{
    cJSON *job = id > 0 ? svc_wait_job(s, id, PATH_JOB_END_S) : NULL;
    const char *st = svc_js(job, "state");
    int ended = strcmp(st, "failed") == 0 || strcmp(st, "succeeded") == 0;

    cJSON_Delete(job);
    return ended;
}

static void test_validators(void)
{
    char root[512], big[600], arg[700];
    const char *extra[] = {"--http-threads",
                           "1",
                           "--validators",
                           "1",
                           "--validation-queue",
                           "0",
                           "--allow-root",
                           arg,
                           NULL};
    const char *file = "tests/fixtures/numerics/tiny_30x50.safetensors";
    struct slow_post p = {0};
    struct svc_resp r;
    pthread_t t;
    struct svc s;
    int started;

    snprintf(root, sizeof(root), "%s/root", tmp_dir);
    mkdir(root, 0700);
    snprintf(big, sizeof(big), "%s/big.safetensors", root);
    snprintf(arg, sizeof(arg), "%s", root);
    CHECK(write_sparse_st(big, 1ull << 30)); /* 4 GiB to hash */
    if (!start(&s, "validators", extra)) {
        CHECK(0);
        return;
    }
    p.s = &s;
    snprintf(p.body, sizeof(p.body), "{\"step\": 1, \"path\": \"%s\"}", big);
    started = pthread_create(&t, NULL, slow_post_main, &p) == 0;
    CHECK(started);
    /* (c) the only HTTP thread answers while the validator hashes: the
       GET /metrics that sees the validation running is one such answer */
    CHECK_EQ_INT(wait_metric(&s, "farmsd_validations{state=\"running\"}", 1, 60), 1);
    /* (d) one validator, no queue: the next request with a body is refused
       before its body is read, with nothing stored */
    CHECK_EQ_INT(svc_upload(&s, "/v1/runs/other/checkpoints?step=1", file, NULL, &r), 503);
    CHECK_STR_EQ(svc_js(r.json, "category"), "busy");
    CHECK_STR_EQ(r.retry_after, "5");
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_post_json(&s, "/v1/runs/other/checkpoints", p.body, NULL, &r), 503);
    CHECK_STR_EQ(svc_js(r.json, "category"), "busy");
    svc_resp_free(&r);
    CHECK_EQ_INT(get_within(&s, "/healthz", 5), 200);
    CHECK_EQ_INT(get_within(&s, "/v1/runs", 5), 200);
    CHECK_EQ_INT(get_within(&s, "/readyz", 5), 200);
    /* still the same validation: the GETs and refusals did not wait for it */
    CHECK_EQ_INT(svc_metric(&s, "farmsd_validations{state=\"running\"}"), 1);
    if (started)
        pthread_join(t, NULL);
    CHECK_EQ_INT(p.status, 202);
    /* the 4 GiB job need not run: cut the file, so the worker's reads end at
       once (the job fails 'changed') and the stop below does not wait for a
       4 GiB hashing pass */
    CHECK(truncate(big, 0) == 0);
    CHECK_EQ_INT(svc_get(&s, "/v1/runs/other/checkpoints", &r), 404);
    svc_resp_free(&r);
    /* the refused requests left no temporary file. The blob store's tmp
       folder also holds the worker's snapshot of the path job while it
       runs (server/worker.c blob_tmp_copy, same file names), removed before
       the job's end is recorded: count once the job has ended */
    CHECK(path_job_ended(&s, p.job));
    CHECK_EQ_INT(tmp_files(&s), 0);
    CHECK_EQ_INT(svc_metric(&s, "farmsd_validations{state=\"running\"}"), 0);
    /* the validator is free again */
    CHECK_EQ_INT(svc_upload(&s, "/v1/runs/other/checkpoints?step=1", file, NULL, &r), 202);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_stop(&s), 0);
    unlink(big);
}

/* --- (e) connections per address --------------------------------------------------------- */

static void test_per_ip_limit(void)
{
    const char *extra[] = {"--max-connections-per-ip", "5", "--header-timeout", "60", NULL};
    char buf[512] = "";
    size_t have = 0;
    int held[5], fd, st = 0, n_held = 0;
    double until;
    struct svc s;

    if (!start(&s, "perip", extra)) {
        CHECK(0);
        return;
    }
    for (int i = 0; i < 5; i++) {
        held[i] = raw_connect(&s, ATTACKER);
        n_held += held[i] >= 0;
    }
    CHECK_EQ_INT(n_held, 5);
    svc_sleep_ms(300); /* accepted by the server */
    /* the sixth from the same address is closed without an answer */
    fd = raw_connect(&s, ATTACKER);
    CHECK(fd >= 0);
    raw_send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    for (until = svc_now() + 10; st == 0 && svc_now() < until; svc_sleep_ms(20))
        st = raw_poll(fd, buf, sizeof(buf), &have);
    CHECK_EQ_INT(st, -1);
    CHECK_EQ_INT(have, 0);
    close(fd);
    /* another address is served */
    CHECK_EQ_INT(get_within(&s, "/healthz", 5), 200);
    /* one of the five goes: the address gets a connection again */
    close(held[0]);
    held[0] = -1;
    st = -1;
    for (until = svc_now() + 10; st != 1 && svc_now() < until; svc_sleep_ms(100)) {
        have = 0;
        buf[0] = '\0';
        fd = raw_connect(&s, ATTACKER);
        raw_send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        st = 0;
        for (double u2 = svc_now() + 5; st == 0 && svc_now() < u2; svc_sleep_ms(20))
            st = raw_poll(fd, buf, sizeof(buf), &have);
        close(fd);
    }
    CHECK_EQ_INT(st, 1);
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    for (int i = 1; i < 5; i++)
        if (held[i] >= 0)
            close(held[i]);
    CHECK_EQ_INT(svc_stop(&s), 0);
}

/* --- Settings ---------------------------------------------------------------------------- */

/* Bad values of the new settings stop the start with a one-line error. */
static void test_bad_settings(void)
{
    const char *const bad[][2] = {{"--validators", "0"},
                                  {"--validation-queue", "-1"},
                                  {"--memory-budget", "1M"},
                                  {"--max-connections", "2"}, /* below --http-threads 4 */
                                  {"--max-connections-per-ip", "x"},
                                  {"--header-timeout", "0"},
                                  {"--min-upload-rate", "fast"},
                                  {"--min-upload-window", "99999"}};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *extra[] = {bad[i][0], bad[i][1], NULL};
        char data[512], *log;
        struct svc s;
        int started;
        snprintf(data, sizeof(data), "%s/bad%zu", tmp_dir, i);
        started = svc_start_ex(&s, data, extra, 1);
        if (started)
            svc_stop(&s);
        CHECK(!started);
        CHECK_EQ_INT(s.start_status, 2); /* CLI_EXIT_USAGE */
        log = svc_slurp(s.log, NULL);
        CHECK(log != NULL && strstr(log, "farmsd serve: ") != NULL &&
              strstr(log, bad[i][0]) != NULL);
        free(log);
    }
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!svc_mkdtemp("slow", tmp_dir, sizeof(tmp_dir))) {
        fprintf(stderr, "cannot create a temporary folder\n");
        return 1;
    }
    test_bad_settings();
    test_trickled_headers();
    test_trickled_upload();
    test_validators();
    test_per_ip_limit();
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    return check_report("test_service_slow");
}
