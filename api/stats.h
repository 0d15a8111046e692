/* stats.h -- process-wide counters for GET /metrics (Prometheus text format).
 *
 * One struct api_stats per process, owned by the server and shared by every
 * request and worker thread: all counters are C11 atomics (relaxed order),
 * so any thread may bump them at any time without a lock. Who bumps what:
 *   api_handle()          requests by route and status, bytes ingested
 *   server (http.c)       requests it answers itself (api_stats_request),
 *                         uploads in flight (api_stats_upload_begin/end),
 *                         validations queued and running, slow clients closed
 *   server (workers)      cache hits / misses, analysis seconds
 * Job states and queue depth are not counted here: /metrics reads them from
 * storage when it renders.
 */
#ifndef API_STATS_H
#define API_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define API_STATS_MAX_ROUTES 48 /* route slots (api_routes() index), the last is "unmatched" */

/* Statuses counted one by one; any other lands in the "other" slot. */
#define API_STATS_STATUSES(X) \
    X(200)                    \
    X(202)                    \
    X(304) X(400) X(401) X(403) X(404) X(405) X(409) X(413) X(415) X(422) X(500) X(503) X(507)
#define API_STATS_N_STATUS 16 /* the list above plus "other" */

/* Why the server closed a slow client's connection. */
enum api_stats_slow {
    API_STATS_SLOW_HEADERS, /* headers not complete in time: 408 */
    API_STATS_SLOW_BODY,    /* body below the minimum rate: 408 */
    API_STATS_SLOW_IDLE,    /* keep-alive connection idle: closed */
    API_STATS_N_SLOW
};

struct api_stats {
    _Atomic uint64_t requests[API_STATS_MAX_ROUTES][API_STATS_N_STATUS];
    _Atomic uint64_t cache_hits;         /* tensors found in the result cache */
    _Atomic uint64_t cache_misses;       /* tensors analysed */
    _Atomic uint64_t analysis_usec;      /* time spent analysing tensors, microseconds */
    _Atomic uint64_t bytes_ingested;     /* checkpoint bytes accepted (uploads and paths) */
    _Atomic int64_t uploads_in_flight;   /* uploads being streamed by the server */
    _Atomic int64_t validations_queued;  /* requests waiting for a validator thread */
    _Atomic int64_t validations_running; /* requests on a validator thread */
    _Atomic uint64_t slow_closed[API_STATS_N_SLOW]; /* enum api_stats_slow */
};

/* One job-state gauge for api_stats_render (storage's counts). */
struct api_stats_gauge {
    const char *label; /* "queued", "running", ... (borrowed) */
    int64_t value;
};

/* Zero every counter. Not thread-safe: call before sharing. Cannot fail. */
void api_stats_init(struct api_stats *st);

/* Count one answered request of route `route_index` (an index into
 * api_routes(), or -1 for "no route") with HTTP `status`. NULL st: no-op. */
void api_stats_request(struct api_stats *st, int route_index, int status);

/* Worker and ingest counters. NULL st: no-op. Cannot fail. */
void api_stats_cache(struct api_stats *st, uint64_t hits, uint64_t misses);
void api_stats_analysis_seconds(struct api_stats *st, double seconds);
void api_stats_bytes_ingested(struct api_stats *st, uint64_t n);
void api_stats_upload_begin(struct api_stats *st);
void api_stats_upload_end(struct api_stats *st);
/* Server gauges and counters. NULL st: no-op. Cannot fail. */
void api_stats_validation(struct api_stats *st, int queued_delta, int running_delta);
void api_stats_slow_closed(struct api_stats *st, enum api_stats_slow why, uint64_t n);

/* Render every counter, the `jobs` gauges (farmsd_jobs{state=...}) and the
 * queue depth as Prometheus text exposition format 0.0.4. *out is a new
 * NUL-terminated string (free()), *len its length. ERR_NOMEM. */
enum err_code api_stats_render(const struct api_stats *st, const struct api_stats_gauge *jobs,
                               size_t n_jobs, int64_t queue_depth, char **out, size_t *len,
                               struct err *e);

#endif /* API_STATS_H */
