/* http_guard.c -- see http_guard.h.
 *
 * The records form one doubly linked list under `mu`; the sweeper walks it
 * every tick with `mu` held, so a record (and its socket) cannot go away
 * while the sweeper writes to it: http_guard_conn_close takes `mu` too, and
 * the library closes the socket only after that call returns. The 408 is
 * written with MSG_DONTWAIT: a client whose receive window is full simply
 * does not get it, and the sweeper never blocks.
 */
#include "server/http_guard.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"

#define HTTP_GUARD_LINGER_S 1.0 /* between the 408 and the shutdown for reading */

enum http_guard_phase {
    HTTP_GUARD_PH_FRESH,     /* accepted, no request yet */
    HTTP_GUARD_PH_IDLE,      /* between two requests */
    HTTP_GUARD_PH_HEAD,      /* request line seen, headers not complete */
    HTTP_GUARD_PH_BODY,      /* receiving a body */
    HTTP_GUARD_PH_ANSWERING, /* being answered: no rule */
    HTTP_GUARD_PH_KILLED     /* got a 408 or was closed: waiting for the library */
};

struct http_guard_conn {
    struct http_guard_conn *prev, *next;
    int fd;
    enum http_guard_phase phase;
    double t_phase;      /* monotonic time the phase began */
    double t_window;     /* body: start of the current rate window */
    uint64_t body_bytes; /* body: bytes so far */
    uint64_t win_bytes;  /* body: body_bytes at t_window */
    int read_shut;       /* shut down for reading already */
};

struct http_guard {
    struct http_guard_cfg cfg;
    pthread_mutex_t mu;
    pthread_cond_t stop_cv;
    int stopping;
    pthread_t thread;
    struct http_guard_conn *head;
};

/* Write the timeout problem (row TIMEOUT of ERR_CATEGORY_MAP, the type
 * urn:farmsd:problem:<category> as api/ writes it; best effort, never
 * blocks) and half-close. `detail` needs no JSON escaping. */
static void http_guard_timeout(int fd, const char *detail)
{
    const char *name = err_category_name(ERR_CAT_TIMEOUT), *title;
    int status = err_category_status(ERR_CAT_TIMEOUT), bl, ml;
    char body[384], msg[768];

    title = err_category_title(ERR_CAT_TIMEOUT);
    bl = snprintf(body, sizeof(body),
                  "{\"type\":\"urn:farmsd:problem:%s\",\"title\":\"%s\",\"status\":%d,"
                  "\"detail\":\"%s\",\"category\":\"%s\"}",
                  name, title, status, detail, name);
    ml = snprintf(msg, sizeof(msg),
                  "HTTP/1.1 %d %s\r\nConnection: close\r\n"
                  "Content-Type: application/problem+json\r\nContent-Length: %d\r\n\r\n%s",
                  status, title, bl, body);
    /* a client that is gone or not reading misses the answer: the
       shutdown below ends the connection all the same */
    if (bl > 0 && (size_t)bl < sizeof(body) && ml > 0 && (size_t)ml < sizeof(msg))
        (void)send(fd, msg, (size_t)ml, MSG_DONTWAIT | MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
}

/* The rule `c` breaks at `now`, or -1. */
static int http_guard_verdict(struct http_guard *g, struct http_guard_conn *c, double now)
{
    double dt;

    switch (c->phase) {
    case HTTP_GUARD_PH_FRESH:
    case HTTP_GUARD_PH_HEAD:
        return now - c->t_phase > g->cfg.header_s ? (int)HTTP_GUARD_HEADERS : -1;
    case HTTP_GUARD_PH_IDLE: return now - c->t_phase > g->cfg.header_s ? (int)HTTP_GUARD_IDLE : -1;
    case HTTP_GUARD_PH_BODY:
        dt = now - c->t_window;
        if (g->cfg.min_rate == 0 || dt < g->cfg.window_s)
            return -1;
        if ((double)(c->body_bytes - c->win_bytes) < (double)g->cfg.min_rate * dt)
            return (int)HTTP_GUARD_SLOW_BODY;
        c->t_window = now; /* fast enough: a new window */
        c->win_bytes = c->body_bytes;
        return -1;
    default: return -1;
    }
}

/* One pass over the connections; n_closed[reason] counts the closes. */
static void http_guard_sweep(struct http_guard *g, double now, uint64_t *n_closed)
{
    char detail[160];

    for (struct http_guard_conn *c = g->head; c != NULL; c = c->next) {
        int v;
        if (c->phase == HTTP_GUARD_PH_KILLED) {
            if (!c->read_shut && now - c->t_phase > HTTP_GUARD_LINGER_S) {
                shutdown(c->fd, SHUT_RDWR);
                c->read_shut = 1;
            }
            continue;
        }
        v = http_guard_verdict(g, c, now);
        if (v < 0)
            continue;
        if (v == HTTP_GUARD_IDLE) {
            shutdown(c->fd, SHUT_RDWR);
            c->read_shut = 1;
        } else {
            if (v == HTTP_GUARD_HEADERS)
                snprintf(detail, sizeof(detail),
                         "the request headers did not arrive within %.0f s (--header-timeout)",
                         g->cfg.header_s);
            else
                snprintf(detail, sizeof(detail),
                         "the body arrived slower than %llu bytes/s over %.0f s "
                         "(--min-upload-rate, --min-upload-window)",
                         (unsigned long long)g->cfg.min_rate, g->cfg.window_s);
            http_guard_timeout(c->fd, detail);
        }
        c->phase = HTTP_GUARD_PH_KILLED;
        c->t_phase = now;
        n_closed[v]++;
    }
}

static void *http_guard_main(void *arg)
{
    struct http_guard *g = arg;
    double tick = g->cfg.header_s < g->cfg.window_s ? g->cfg.header_s : g->cfg.window_s;

    tick = tick / 10 < 0.05 ? 0.05 : tick / 10 > 0.5 ? 0.5 : tick / 10;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        struct timespec until = clock_mono_deadline(tick);
        uint64_t n_closed[HTTP_GUARD_N_REASONS] = {0};

        pthread_cond_timedwait(&g->stop_cv, &g->mu, &until);
        if (g->stopping)
            break;
        http_guard_sweep(g, clock_mono_s(), n_closed);
        pthread_mutex_unlock(&g->mu);
        for (int i = 0; i < HTTP_GUARD_N_REASONS && g->cfg.closed != NULL; i++)
            if (n_closed[i] > 0)
                g->cfg.closed(g->cfg.closed_arg, (enum http_guard_reason)i, n_closed[i]);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

enum err_code http_guard_start(const struct http_guard_cfg *cfg, struct http_guard **out,
                               struct err *e)
{
    enum err_code rc = ERR_OK;
    struct http_guard *g = NULL;
    pthread_condattr_t ca;
    int mu_ok = 0, cv_ok = 0;

    *out = NULL;
    if (!(cfg->header_s > 0) || !(cfg->window_s > 0))
        return err_set(e, ERR_INVAL, "http_guard: deadlines must be positive");
    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    g->cfg = *cfg;
    mu_ok = pthread_mutex_init(&g->mu, NULL) == 0;
    if (mu_ok && pthread_condattr_init(&ca) == 0) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        cv_ok = pthread_cond_init(&g->stop_cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!cv_ok || pthread_create(&g->thread, NULL, http_guard_main, g) != 0) {
        rc = err_set(e, ERR_INTERNAL, "cannot start the connection guard thread");
        goto out;
    }
    *out = g;
    g = NULL;
out:
    if (g != NULL) {
        if (cv_ok)
            pthread_cond_destroy(&g->stop_cv);
        if (mu_ok)
            pthread_mutex_destroy(&g->mu);
        free(g);
    }
    return rc;
}

void http_guard_stop(struct http_guard *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = 1;
    pthread_cond_signal(&g->stop_cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    while (g->head != NULL) {
        struct http_guard_conn *c = g->head;
        g->head = c->next;
        free(c);
    }
    pthread_cond_destroy(&g->stop_cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

struct http_guard_conn *http_guard_conn_open(struct http_guard *g, int fd)
{
    struct http_guard_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->phase = HTTP_GUARD_PH_FRESH;
    c->t_phase = clock_mono_s();
    pthread_mutex_lock(&g->mu);
    c->next = g->head;
    if (g->head != NULL)
        g->head->prev = c;
    g->head = c;
    pthread_mutex_unlock(&g->mu);
    return c;
}

void http_guard_conn_close(struct http_guard *g, struct http_guard_conn *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&g->mu);
    free(c);
}

/* Move `c` to `phase` now (a killed connection stays killed). */
static void http_guard_phase(struct http_guard *g, struct http_guard_conn *c,
                             enum http_guard_phase phase)
{
    double now;

    if (c == NULL)
        return;
    now = clock_mono_s();
    pthread_mutex_lock(&g->mu);
    if (c->phase != HTTP_GUARD_PH_KILLED) {
        c->phase = phase;
        c->t_phase = now;
        if (phase == HTTP_GUARD_PH_BODY) {
            c->t_window = now;
            c->body_bytes = 0;
            c->win_bytes = 0;
        }
    }
    pthread_mutex_unlock(&g->mu);
}

void http_guard_request_line(struct http_guard *g, struct http_guard_conn *c)
{
    /* the deadline runs from accept / the previous request's end: keep t_phase */
    if (c == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    if (c->phase == HTTP_GUARD_PH_FRESH || c->phase == HTTP_GUARD_PH_IDLE)
        c->phase = HTTP_GUARD_PH_HEAD;
    pthread_mutex_unlock(&g->mu);
}

void http_guard_headers_done(struct http_guard *g, struct http_guard_conn *c, int has_body)
{
    http_guard_phase(g, c, has_body ? HTTP_GUARD_PH_BODY : HTTP_GUARD_PH_ANSWERING);
}

void http_guard_body(struct http_guard *g, struct http_guard_conn *c, uint64_t n)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    c->body_bytes += n;
    pthread_mutex_unlock(&g->mu);
}

void http_guard_body_done(struct http_guard *g, struct http_guard_conn *c)
{
    http_guard_phase(g, c, HTTP_GUARD_PH_ANSWERING);
}

void http_guard_request_end(struct http_guard *g, struct http_guard_conn *c)
{
    http_guard_phase(g, c, HTTP_GUARD_PH_IDLE);
}
