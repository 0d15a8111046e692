/* stats.c -- see stats.h. */
#include "api/stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/sbuf.h"

static const int api_stats_codes[] = {
#define X(code) code,
    API_STATS_STATUSES(X)
#undef X
};
#define API_STATS_N_CODES ((int)(sizeof(api_stats_codes) / sizeof(api_stats_codes[0])))

_Static_assert(API_STATS_N_CODES + 1 == API_STATS_N_STATUS, "API_STATS_N_STATUS out of date");

void api_stats_init(struct api_stats *st)
{
    for (int r = 0; r < API_STATS_MAX_ROUTES; r++)
        for (int s = 0; s < API_STATS_N_STATUS; s++)
            atomic_init(&st->requests[r][s], 0);
    atomic_init(&st->cache_hits, 0);
    atomic_init(&st->cache_misses, 0);
    atomic_init(&st->analysis_usec, 0);
    atomic_init(&st->bytes_ingested, 0);
    atomic_init(&st->uploads_in_flight, 0);
    atomic_init(&st->validations_queued, 0);
    atomic_init(&st->validations_running, 0);
    for (int i = 0; i < API_STATS_N_SLOW; i++)
        atomic_init(&st->slow_closed[i], 0);
}

static int api_stats_slot(int status)
{
    for (int i = 0; i < API_STATS_N_CODES; i++)
        if (api_stats_codes[i] == status)
            return i;
    return API_STATS_N_CODES;
}

void api_stats_request(struct api_stats *st, int route_index, int status)
{
    int r = route_index >= 0 && route_index < API_STATS_MAX_ROUTES - 1 ? route_index
                                                                       : API_STATS_MAX_ROUTES - 1;

    if (st != NULL)
        atomic_fetch_add_explicit(&st->requests[r][api_stats_slot(status)], 1,
                                  memory_order_relaxed);
}

void api_stats_cache(struct api_stats *st, uint64_t hits, uint64_t misses)
{
    if (st == NULL)
        return;
    atomic_fetch_add_explicit(&st->cache_hits, hits, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->cache_misses, misses, memory_order_relaxed);
}

void api_stats_analysis_seconds(struct api_stats *st, double seconds)
{
    if (st != NULL && seconds > 0)
        atomic_fetch_add_explicit(&st->analysis_usec, (uint64_t)(seconds * 1e6 + 0.5),
                                  memory_order_relaxed);
}

void api_stats_bytes_ingested(struct api_stats *st, uint64_t n)
{
    if (st != NULL)
        atomic_fetch_add_explicit(&st->bytes_ingested, n, memory_order_relaxed);
}

void api_stats_upload_begin(struct api_stats *st)
{
    if (st != NULL)
        atomic_fetch_add_explicit(&st->uploads_in_flight, 1, memory_order_relaxed);
}

void api_stats_upload_end(struct api_stats *st)
{
    if (st != NULL)
        atomic_fetch_sub_explicit(&st->uploads_in_flight, 1, memory_order_relaxed);
}

void api_stats_validation(struct api_stats *st, int queued_delta, int running_delta)
{
    if (st == NULL)
        return;
    atomic_fetch_add_explicit(&st->validations_queued, queued_delta, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->validations_running, running_delta, memory_order_relaxed);
}

void api_stats_slow_closed(struct api_stats *st, enum api_stats_slow why, uint64_t n)
{
    if (st != NULL && why < API_STATS_N_SLOW)
        atomic_fetch_add_explicit(&st->slow_closed[why], n, memory_order_relaxed);
}

/* --- Rendering -------------------------------------------------------------- */


static uint64_t api_ld(const _Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static void api_stats_render_requests(struct sbuf *b, const struct api_stats *st)
{
    const struct api_route_info *routes = api_routes();
    int n_routes = 0;

    while (routes[n_routes].method != NULL)
        n_routes++;
    sbuf_printf(b, "# HELP farmsd_http_requests_total HTTP requests answered, by route and "
                   "status.\n# TYPE farmsd_http_requests_total counter\n");
    for (int r = 0; r < API_STATS_MAX_ROUTES; r++) {
        int unmatched = r == API_STATS_MAX_ROUTES - 1;
        if (!unmatched && r >= n_routes)
            continue;
        for (int s = 0; s < API_STATS_N_STATUS; s++) {
            uint64_t v = api_ld(&st->requests[r][s]);
            char code[8];
            if (v == 0)
                continue;
            if (s < API_STATS_N_CODES)
                snprintf(code, sizeof(code), "%d", api_stats_codes[s]);
            else
                snprintf(code, sizeof(code), "other");
            sbuf_printf(b,
                        "farmsd_http_requests_total{method=\"%s\",route=\"%s\",code=\"%s\"} "
                        "%llu\n",
                        unmatched ? "" : routes[r].method, unmatched ? "unmatched" : routes[r].path,
                        code, (unsigned long long)v);
        }
    }
}

/* Validations (server/http.c's validator threads) and slow-client closes. */
static void api_stats_render_server(struct sbuf *b, const struct api_stats *st)
{
    static const char *const slow[API_STATS_N_SLOW] = {"header_timeout", "slow_upload", "idle"};

    sbuf_printf(b,
                "# HELP farmsd_validations Requests with a body waiting for or on a validator "
                "thread.\n# TYPE farmsd_validations gauge\n"
                "farmsd_validations{state=\"queued\"} %lld\n"
                "farmsd_validations{state=\"running\"} %lld\n",
                (long long)atomic_load_explicit(&st->validations_queued, memory_order_relaxed),
                (long long)atomic_load_explicit(&st->validations_running, memory_order_relaxed));
    sbuf_printf(b, "# HELP farmsd_slow_clients_closed_total Connections the server closed: "
                   "headers or body too slow (408), or idle.\n"
                   "# TYPE farmsd_slow_clients_closed_total counter\n");
    for (int i = 0; i < API_STATS_N_SLOW; i++)
        sbuf_printf(b, "farmsd_slow_clients_closed_total{reason=\"%s\"} %llu\n", slow[i],
                    (unsigned long long)api_ld(&st->slow_closed[i]));
}

enum err_code api_stats_render(const struct api_stats *st, const struct api_stats_gauge *jobs,
                               size_t n_jobs, int64_t queue_depth, char **out, size_t *len,
                               struct err *e)
{
    struct sbuf b = {0};

    *out = NULL;
    *len = 0;
    api_stats_render_requests(&b, st);
    sbuf_printf(&b, "# HELP farmsd_jobs Jobs in the database, by state.\n"
                    "# TYPE farmsd_jobs gauge\n");
    for (size_t i = 0; i < n_jobs; i++)
        sbuf_printf(&b, "farmsd_jobs{state=\"%s\"} %lld\n", jobs[i].label,
                    (long long)jobs[i].value);
    sbuf_printf(&b,
                "# HELP farmsd_queue_depth Jobs waiting for a worker.\n"
                "# TYPE farmsd_queue_depth gauge\nfarmsd_queue_depth %lld\n",
                (long long)queue_depth);
    sbuf_printf(&b,
                "# HELP farmsd_cache_hits_total Tensors served from the result cache.\n"
                "# TYPE farmsd_cache_hits_total counter\nfarmsd_cache_hits_total %llu\n",
                (unsigned long long)api_ld(&st->cache_hits));
    sbuf_printf(&b,
                "# HELP farmsd_cache_misses_total Tensors analysed (not in the cache).\n"
                "# TYPE farmsd_cache_misses_total counter\n"
                "farmsd_cache_misses_total %llu\n",
                (unsigned long long)api_ld(&st->cache_misses));
    sbuf_printf(&b,
                "# HELP farmsd_analysis_seconds_total Time spent analysing tensors.\n"
                "# TYPE farmsd_analysis_seconds_total counter\n"
                "farmsd_analysis_seconds_total %.6f\n",
                (double)api_ld(&st->analysis_usec) / 1e6);
    sbuf_printf(&b,
                "# HELP farmsd_ingested_bytes_total Checkpoint bytes accepted.\n"
                "# TYPE farmsd_ingested_bytes_total counter\n"
                "farmsd_ingested_bytes_total %llu\n",
                (unsigned long long)api_ld(&st->bytes_ingested));
    sbuf_printf(&b,
                "# HELP farmsd_uploads_in_flight Uploads being received.\n"
                "# TYPE farmsd_uploads_in_flight gauge\nfarmsd_uploads_in_flight %lld\n",
                (long long)atomic_load_explicit(&st->uploads_in_flight, memory_order_relaxed));
    api_stats_render_server(&b, st);
    if (b.failed || b.p == NULL) {
        sbuf_free(&b);
        return err_set(e, ERR_NOMEM, "out of memory rendering metrics");
    }
    *out = b.p;
    *len = b.len;
    return ERR_OK;
}
