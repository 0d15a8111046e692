/* test_log.c -- server/log: the one line format, and batched lines (the
 * access log): written in the order of the calls, unbatched lines after the
 * batched ones before them, whole lines only from many threads, out without
 * log_flush after a short while, and nothing below the level.
 *
 * stderr goes to a temp file for each case and is read back.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "server/log.h"
#include "tests/check.h"

static char g_path[64];
static int g_saved = -1;

/* Send stderr to a new temp file. */
static void capture_start(void)
{
    int fd;

    snprintf(g_path, sizeof(g_path), "/tmp/test_log_%ld.txt", (long)getpid());
    fd = open(g_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ERR_ASSERT(fd >= 0);
    fflush(stderr);
    if (g_saved < 0)
        g_saved = dup(STDERR_FILENO);
    ERR_ASSERT(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    close(fd);
}

/* What the temp file holds now (caller frees). */
static char *captured(void)
{
    FILE *f = fopen(g_path, "rb");
    char *buf = NULL;
    long n;

    ERR_ASSERT(f != NULL);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    ERR_ASSERT(buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    return buf;
}

static void capture_end(void)
{
    log_flush();
    ERR_ASSERT(dup2(g_saved, STDERR_FILENO) == STDERR_FILENO);
    unlink(g_path);
}

/* 1 if `line` (up to its '\n') is "ts=YYYY-mm-ddTHH:MM:SS.mmmZ level=<lv> mod=<mod> <tail>". */
static int line_is(const char *line, const char *lv, const char *mod, const char *tail)
{
    char want[256];
    const char *nl = strchr(line, '\n');

    snprintf(want, sizeof(want), " level=%s mod=%s %s", lv, mod, tail);
    return nl != NULL && strncmp(line, "ts=", 3) == 0 && line[13] == 'T' && line[26] == 'Z' &&
           line[22] == '.' && (size_t)(nl - line) == 27 + strlen(want) &&
           memcmp(line + 27, want, strlen(want)) == 0;
}

static void test_batched_then_unbatched_in_call_order(void)
{
    char *out;
    const char *p;

    capture_start();
    log_set_level(LOG_LEVEL_INFO);
    LOG_BATCHED(LOG_LEVEL_INFO, "http", "req=%d uri=\"%s\"", 1, "/a");
    LOG_BATCHED(LOG_LEVEL_INFO, "http", "req=%d", 2);
    LOG_WARN("serve", "msg=\"%s\"", "after");
    LOG_BATCHED(LOG_LEVEL_INFO, "http", "req=%d", 3);
    log_flush();
    out = captured();
    capture_end();
    p = out;
    CHECK(line_is(p, "info", "http", "req=1 uri=\"/a\""));
    p = strchr(p, '\n') + 1;
    CHECK(line_is(p, "info", "http", "req=2"));
    p = strchr(p, '\n') + 1;
    CHECK(line_is(p, "warn", "serve", "msg=\"after\""));
    p = strchr(p, '\n') + 1;
    CHECK(line_is(p, "info", "http", "req=3"));
    CHECK_EQ_INT((int)strlen(strchr(p, '\n') + 1), 0);
    free(out);
}

static void test_below_the_level_nothing(void)
{
    char *out;

    capture_start();
    log_set_level(LOG_LEVEL_WARN);
    LOG_BATCHED(LOG_LEVEL_INFO, "http", "req=%d", 1);
    LOG_INFO("serve", "msg=\"%s\"", "hidden");
    log_flush();
    out = captured();
    capture_end();
    CHECK_STR_EQ(out, "");
    free(out);
    log_set_level(LOG_LEVEL_INFO);
}

/* Batched lines go out by themselves, without log_flush (bounded wait). */
static void test_batch_goes_out_without_flush(void)
{
    struct timespec pause = {0, 10 * 1000000L};
    char *out = NULL;
    int seen = 0;

    capture_start();
    LOG_BATCHED(LOG_LEVEL_INFO, "http", "req=%d", 77);
    for (int i = 0; i < 500 && !seen; i++) { /* at most 5 s */
        nanosleep(&pause, NULL);
        free(out);
        out = captured();
        seen = strstr(out, "mod=http req=77\n") != NULL;
    }
    capture_end();
    CHECK(seen);
    free(out);
}

#define THREADS 4
#define LINES   3000 /* per thread: several times the batch buffer */

static void *writer(void *arg)
{
    int t = (int)(long)arg;

    for (int i = 0; i < LINES; i++)
        LOG_BATCHED(LOG_LEVEL_INFO, "http", "t=%d i=%d pad=\"%s\"", t, i,
                    "................................................");
    return NULL;
}

/* Many threads, far more than one buffer: every line whole, each thread's
 * lines in its order, none lost. */
static void test_threads_whole_lines_in_order(void)
{
    pthread_t th[THREADS];
    int next[THREADS] = {0}, bad = 0, lines = 0;
    char *out, *p, *nl;

    capture_start();
    for (long t = 0; t < THREADS; t++)
        ERR_ASSERT(pthread_create(&th[t], NULL, writer, (void *)t) == 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    log_flush();
    out = captured();
    capture_end();
    for (p = out; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        const char *f;
        char tail[128], *end = NULL;
        long t = -1, i = -1;
        *nl = '\0';
        f = strstr(p, "mod=http t=");
        if (f != NULL) {
            t = strtol(f + 11, &end, 10);
            if (end != NULL && strncmp(end, " i=", 3) == 0)
                i = strtol(end + 3, NULL, 10);
        }
        if (t < 0 || t >= THREADS || i != next[t]) {
            bad++;
            continue;
        }
        snprintf(tail, sizeof(tail), "t=%ld i=%ld pad=\"%s\"", t, i,
                 "................................................");
        *nl = '\n';
        bad += !line_is(p, "info", "http", tail);
        next[t]++;
        lines++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(lines, THREADS * LINES);
    CHECK_STR_EQ(p, "");
    free(out);
}

int main(void)
{
    test_batched_then_unbatched_in_call_order();
    test_below_the_level_nothing();
    test_batch_goes_out_without_flush();
    test_threads_whole_lines_in_order();
    return check_report("test_log");
}
