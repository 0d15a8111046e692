/* test_http_guard.c -- the slow-client rules of server/http_guard.h on
 * socket pairs (no server): a connection without complete headers gets a
 * 408 problem (urn:farmsd:problem:timeout, as the API writes problems)
 * and is half-closed after the header deadline; an idle
 * keep-alive connection is closed without an answer; a body below the
 * minimum rate gets a 408, a fast one does not; a connection being
 * answered is left alone. Also the validators' reader limits
 * (http_validator_limits). Every wait is bounded.
 */
#include "server/http_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/clock.h"
#include "server/http.h"
#include "tests/check.h"

static unsigned long closed_count[HTTP_GUARD_N_REASONS];

static void on_closed(void *arg, enum http_guard_reason why, uint64_t n)
{
    (void)arg;
    __atomic_add_fetch(&closed_count[why], (unsigned long)n, __ATOMIC_SEQ_CST);
}

static unsigned long closed(enum http_guard_reason why)
{
    return __atomic_load_n(&closed_count[why], __ATOMIC_SEQ_CST);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* A connected pair: [0] the server's end (given to the guard), [1] the client's. */
static int pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    return 1;
}

/* Read what the client end got until end of stream or `timeout_s`: the
 * bytes in buf (NUL-terminated); 1 if the stream ended, 0 if not. */
static int read_all(int fd, char *buf, size_t cap, double timeout_s)
{
    size_t have = 0;
    double until = clock_mono_s() + timeout_s;

    buf[0] = '\0';
    while (clock_mono_s() < until) {
        ssize_t n = recv(fd, buf + have, cap - 1 - have, MSG_DONTWAIT);
        if (n > 0) {
            have += (size_t)n;
            buf[have] = '\0';
            continue;
        }
        if (n == 0)
            return 1;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return 1;
        sleep_ms(10);
    }
    return 0;
}

/* The answer in `buf` is the timeout problem as the API writes problems:
 * status line, Content-Length of the body, and the body's members. */
static void check_timeout_problem(const char *buf)
{
    const char *body = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "Content-Length: ");
    cJSON *j = body ? cJSON_Parse(body + 4) : NULL;
    const cJSON *type = cJSON_GetObjectItem(j, "type"), *title = cJSON_GetObjectItem(j, "title");
    const cJSON *status = cJSON_GetObjectItem(j, "status"),
                *cat = cJSON_GetObjectItem(j, "category");

    CHECK(strncmp(buf, "HTTP/1.1 408 Request Timeout\r\n", 30) == 0);
    CHECK(strstr(buf, "Content-Type: application/problem+json\r\n") != NULL);
    CHECK(body != NULL && cl != NULL && strtol(cl + 16, NULL, 10) == (long)strlen(body + 4));
    CHECK_STR_EQ(cJSON_IsString(type) ? type->valuestring : NULL, "urn:farmsd:problem:timeout");
    CHECK_STR_EQ(cJSON_IsString(title) ? title->valuestring : NULL, "Request Timeout");
    CHECK_EQ_INT(cJSON_IsNumber(status) ? status->valueint : 0, 408);
    CHECK_STR_EQ(cJSON_IsString(cat) ? cat->valuestring : NULL, "timeout");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "detail")));
    cJSON_Delete(j);
}

static struct http_guard *guard_new(double header_s, uint64_t rate, double window_s)
{
    struct http_guard_cfg cfg = {header_s, rate, window_s, on_closed, NULL};
    struct http_guard *g = NULL;
    struct err e;

    CHECK_EQ_INT(http_guard_start(&cfg, &g, &e), ERR_OK);
    return g;
}

static void test_header_deadline(void)
{
    struct http_guard *g = guard_new(0.3, 0, 1.0);
    struct http_guard_conn *fresh, *partial;
    int a[2], b[2];
    char buf[1024];

    if (g == NULL || !pair(a) || !pair(b))
        return;
    fresh = http_guard_conn_open(g, a[0]);
    partial = http_guard_conn_open(g, b[0]);
    http_guard_request_line(g, partial); /* the deadline still runs from accept */
    CHECK_EQ_INT(read_all(a[1], buf, sizeof(buf), 5), 1);
    check_timeout_problem(buf);
    CHECK(strstr(buf, "--header-timeout") != NULL);
    CHECK_EQ_INT(read_all(b[1], buf, sizeof(buf), 5), 1);
    CHECK(strncmp(buf, "HTTP/1.1 408 ", 13) == 0);
    CHECK_EQ_INT(closed(HTTP_GUARD_HEADERS), 2);
    http_guard_conn_close(g, fresh);
    http_guard_conn_close(g, partial);
    http_guard_stop(g);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
}

static void test_idle_and_answering(void)
{
    struct http_guard *g = guard_new(0.3, 0, 1.0);
    struct http_guard_conn *idle, *busy;
    unsigned long before = closed(HTTP_GUARD_IDLE);
    int a[2], b[2];
    char buf[256];

    if (g == NULL || !pair(a) || !pair(b))
        return;
    idle = http_guard_conn_open(g, a[0]);
    busy = http_guard_conn_open(g, b[0]);
    http_guard_request_line(g, idle);
    http_guard_headers_done(g, idle, 0);
    http_guard_request_end(g, idle); /* answered: now idle between requests */
    http_guard_request_line(g, busy);
    http_guard_headers_done(g, busy, 0); /* being answered (e.g. on a validator) */
    CHECK_EQ_INT(read_all(a[1], buf, sizeof(buf), 5), 1);
    CHECK_STR_EQ(buf, ""); /* closed without an answer */
    CHECK_EQ_INT(closed(HTTP_GUARD_IDLE), before + 1);
    /* three header deadlines later the busy one is untouched */
    CHECK_EQ_INT(read_all(b[1], buf, sizeof(buf), 1.0), 0);
    CHECK_STR_EQ(buf, "");
    http_guard_conn_close(g, idle);
    http_guard_conn_close(g, busy);
    http_guard_stop(g);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
}

static void test_body_rate(void)
{
    struct http_guard *g = guard_new(60, 1000, 0.3);
    struct http_guard_conn *slow, *fast;
    int a[2], b[2], ended = 0;
    char buf[1024] = "";
    double until;

    if (g == NULL || !pair(a) || !pair(b))
        return;
    slow = http_guard_conn_open(g, a[0]);
    fast = http_guard_conn_open(g, b[0]);
    http_guard_request_line(g, slow);
    http_guard_headers_done(g, slow, 1);
    http_guard_request_line(g, fast);
    http_guard_headers_done(g, fast, 1);
    /* for 1.5 s: 10 bytes per 50 ms (200 B/s) and 1000 (20 kB/s) */
    for (until = clock_mono_s() + 1.5; clock_mono_s() < until;) {
        http_guard_body(g, slow, 10);
        http_guard_body(g, fast, 1000);
        sleep_ms(50);
    }
    ended = read_all(a[1], buf, sizeof(buf), 5);
    CHECK_EQ_INT(ended, 1);
    check_timeout_problem(buf);
    CHECK(strstr(buf, "slower than 1000 bytes/s") != NULL);
    CHECK_EQ_INT(closed(HTTP_GUARD_SLOW_BODY), 1);
    CHECK_EQ_INT(read_all(b[1], buf, sizeof(buf), 0.2), 0);
    CHECK_STR_EQ(buf, "");
    /* the body is in: the rate no longer applies */
    http_guard_body_done(g, fast);
    CHECK_EQ_INT(read_all(b[1], buf, sizeof(buf), 1.0), 0);
    CHECK_EQ_INT(closed(HTTP_GUARD_SLOW_BODY), 1);
    http_guard_conn_close(g, slow);
    http_guard_conn_close(g, fast);
    http_guard_stop(g);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
}

static void test_bad_config_and_null(void)
{
    struct http_guard_cfg cfg = {0, 0, 1, NULL, NULL};
    struct http_guard *g = (struct http_guard *)&cfg;
    struct err e;

    CHECK_EQ_INT(http_guard_start(&cfg, &g, &e), ERR_INVAL);
    CHECK(g == NULL);
    g = guard_new(1, 0, 1);
    /* NULL records (out of memory at accept) are no-ops */
    http_guard_request_line(g, NULL);
    http_guard_headers_done(g, NULL, 1);
    http_guard_body(g, NULL, 5);
    http_guard_body_done(g, NULL);
    http_guard_request_end(g, NULL);
    http_guard_conn_close(g, NULL);
    http_guard_stop(g);
    http_guard_stop(NULL);
}

static void test_validator_limits(void)
{
    struct ckpt_limits base, out;

    ckpt_limits_default(&base);
    /* the default budget (1 GiB over 2 validators) leaves the byte caps and
       halves the unpickler's memory (256 MiB -> 128 MiB): pickle bytes plus
       values plus tensor list, 64 + 128 + 128 MiB, stay within the share */
    http_validator_limits(&base, 512u << 20, &out);
    CHECK_EQ_INT(out.max_pickle_bytes, base.max_pickle_bytes);
    CHECK_EQ_INT(out.max_header_bytes, base.max_header_bytes);
    CHECK_EQ_INT(out.max_tensors, base.max_tensors);
    CHECK_EQ_INT(out.max_pickle_mem, 128u << 20);
    CHECK(out.max_pickle_bytes + 2 * out.max_pickle_mem <= (512u << 20));
    /* a small share cuts the memory-bearing caps, nothing else */
    http_validator_limits(&base, 64u << 20, &out);
    CHECK_EQ_INT(out.max_pickle_bytes, 16u << 20);
    CHECK_EQ_INT(out.max_pickle_mem, 16u << 20);
    CHECK_EQ_INT(out.max_header_bytes, 8u << 20);
    CHECK_EQ_INT(out.max_pickle_stack, base.max_pickle_stack);
    CHECK_EQ_INT(out.max_zip_members, base.max_zip_members);
    CHECK_EQ_INT(out.strict, base.strict);
}

int main(void)
{
    test_header_deadline();
    test_idle_and_answering();
    test_body_rate();
    test_bad_config_and_null();
    test_validator_limits();
    return check_report("test_http_guard");
}
