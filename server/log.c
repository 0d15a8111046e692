/* log.c -- see log.h. Process-wide state: the level, and the batch of
 * access lines with its flusher thread.
 *
 * Batch: log_write_batched appends the line to one buffer under `mu`; the
 * buffer goes out in one write(2) when the next line would not fit, when a
 * line is written unbatched (the batch first, so the order of lines is the
 * order of the calls), on log_flush, and at the latest LOG_BATCH_MS after its
 * first line (the flusher thread, started with the first batched line,
 * sleeps on `cv` while the buffer is empty). Every write happens under `mu`,
 * so lines never interleave or reorder. */
#include "server/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX    2048
#define LOG_BATCH_BYTES (32 * 1024)
#define LOG_BATCH_MS    50

static _Atomic int log_level = LOG_LEVEL_INFO;

static const char *const log_names[] = {"debug", "info", "warn", "error"};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when the buffer gets its first line */
    int flusher;       /* the flusher thread was started (or could not be: 0 lines batch) */
    size_t len;
    char buf[LOG_BATCH_BYTES];
} log_batch = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

void log_set_level(enum log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&log_level);
}

int log_level_from_name(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, log_names[i]) == 0)
            return i;
    return -1;
}

/* "ts=YYYY-mm-ddTHH:MM:SS" of `sec`, formatted once per second per thread
 * (gmtime_r takes glibc's time zone lock). Its length. */
static size_t log_ts_second(time_t sec, char *out, size_t cap)
{
    static _Thread_local time_t last = (time_t)-1;
    static _Thread_local char text[32];
    static _Thread_local size_t n;
    struct tm tm;

    if (sec != last) {
        gmtime_r(&sec, &tm);
        n = strftime(text, sizeof(text), "ts=%Y-%m-%dT%H:%M:%S", &tm);
        last = sec;
    }
    if (n >= cap)
        return 0;
    memcpy(out, text, n + 1);
    return n;
}

/* Append `s` to line[n..LOG_LINE_MAX - 2): the new length (cut if too long). */
static size_t log_put(char *line, size_t n, const char *s)
{
    size_t k = strlen(s);

    if (k > LOG_LINE_MAX - 2 - n)
        k = LOG_LINE_MAX - 2 - n;
    memcpy(line + n, s, k);
    line[n + k] = '\0';
    return n + k;
}

/* The whole line of one event, '\n' included, in line[LOG_LINE_MAX]: its
 * length. The head is put together without printf: libquadmath (through
 * OpenBLAS's libgfortran) registers printf hooks, which send every printf
 * of the process down glibc's slow positional path. */
static size_t log_format(char *line, enum log_level level, const char *mod, const char *fmt,
                         va_list ap)
{
    struct timespec ts;
    char ms[6];
    long milli;
    size_t n;
    int k;

    clock_gettime(CLOCK_REALTIME, &ts);
    milli = ts.tv_nsec / 1000000;
    ms[0] = '.';
    ms[1] = (char)('0' + milli / 100);
    ms[2] = (char)('0' + milli / 10 % 10);
    ms[3] = (char)('0' + milli % 10);
    ms[4] = 'Z';
    ms[5] = '\0';
    n = log_ts_second(ts.tv_sec, line, LOG_LINE_MAX);
    n = log_put(line, n, ms);
    n = log_put(line, n, " level=");
    n = log_put(line, n, log_names[(unsigned)level < 4 ? level : 3]);
    n = log_put(line, n, " mod=");
    n = log_put(line, n, mod);
    n = log_put(line, n, " ");
    k = vsnprintf(line + n, LOG_LINE_MAX - n - 1, fmt, ap);
    n += k > 0 ? (size_t)k : 0;
    if (n > LOG_LINE_MAX - 2)
        n = LOG_LINE_MAX - 2;
    line[n++] = '\n';
    return n;
}

/* Write the batch out; under log_batch.mu. */
static void log_batch_out(void)
{
    if (log_batch.len > 0)
        (void)!write(STDERR_FILENO, log_batch.buf, log_batch.len);
    log_batch.len = 0;
}

static void *log_flusher(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&log_batch.mu);
    for (;;) {
        struct timespec until;
        while (log_batch.len == 0)
            pthread_cond_wait(&log_batch.cv, &log_batch.mu);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += LOG_BATCH_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (log_batch.len > 0 &&
               pthread_cond_timedwait(&log_batch.cv, &log_batch.mu, &until) == 0)
            ; /* woken early (a new first line after a flush): wait out the deadline */
        log_batch_out();
    }
    return NULL;
}

/* Into the batch (under log_batch.mu): `line` (n bytes), starting the
 * flusher thread on first use; without one, every line goes out at once. */
static void log_batch_put(const char *line, size_t n)
{
    if (!log_batch.flusher) {
        pthread_attr_t a;
        pthread_t t;
        log_batch.flusher = -1; /* no thread: every line goes out at once */
        if (pthread_attr_init(&a) == 0) {
            if (pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED) == 0 &&
                pthread_create(&t, &a, log_flusher, NULL) == 0)
                log_batch.flusher = 1;
            pthread_attr_destroy(&a);
        }
    }
    if (log_batch.len + n > sizeof(log_batch.buf) || log_batch.flusher < 0)
        log_batch_out();
    if (log_batch.flusher < 0) {
        (void)!write(STDERR_FILENO, line, n);
    } else {
        if (log_batch.len == 0)
            pthread_cond_signal(&log_batch.cv);
        memcpy(log_batch.buf + log_batch.len, line, n);
        log_batch.len += n;
    }
}

/* One line, formatted: into the batch when `batched`, else written at once
 * (after the batched lines, which it must not overtake). */
static void log_vwrite(int batched, enum log_level level, const char *mod, const char *fmt,
                       va_list ap)
{
    char line[LOG_LINE_MAX];
    size_t n = log_format(line, level, mod, fmt, ap);

    pthread_mutex_lock(&log_batch.mu);
    if (batched) {
        log_batch_put(line, n);
    } else {
        log_batch_out();
        (void)!write(STDERR_FILENO, line, n);
    }
    pthread_mutex_unlock(&log_batch.mu);
}

void log_write(enum log_level level, const char *mod, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(0, level, mod, fmt, ap);
    va_end(ap);
}

void log_write_batched(enum log_level level, const char *mod, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(1, level, mod, fmt, ap);
    va_end(ap);
}

void log_flush(void)
{
    pthread_mutex_lock(&log_batch.mu);
    log_batch_out();
    pthread_mutex_unlock(&log_batch.mu);
}
