/* api.h -- the HTTP API without an HTTP library.
 *
 * server/http.c turns each libmicrohttpd request into a struct api_request
 * (an octet-stream upload is streamed to a temporary file and hashed first,
 * and arrives as `upload`), calls api_handle(), and sends the filled
 * struct api_response. Handlers validate parameters, talk to storage/ through
 * the caller's connection, build JSON with cJSON, and report every failure as
 * an RFC 9457 problem+json body with the readers' error category. The route
 * table (api_routes) is the single list of endpoints; openapi.yaml must
 * describe exactly these (a test checks it).
 *
 * Ownership: the request is borrowed for the call; the response's body is
 * owned by the response (api_response_free). The struct api_ctx is shared by
 * every request thread and is read-only after set-up, except its stats,
 * which are atomic counters.
 * Thread-safety: api_handle may run on many threads at once, each with its
 * own struct store connection.
 */
#ifndef API_API_H
#define API_API_H

#include <stddef.h>
#include <stdint.h>

#include "api/cache.h"
#include "api/stats.h"
#include "core/formats/ckpt.h"
#include "core/formats/thash.h"
#include "core/numerics/farms.h"
#include "storage/blob.h"
#include "storage/store.h"

#define API_MAX_JSON_BODY (1u << 20) /* JSON request bodies are read into memory */

struct api_request {
    const char *method;         /* "GET", "POST", "DELETE", ... */
    const char *path;           /* percent-decoded path, without the query */
    const char *query;          /* raw query string without '?', or NULL */
    const char *content_type;   /* header value or NULL */
    const char *if_none_match;  /* header value or NULL */
    const char *authorization;  /* header value or NULL */
    const char *content_sha256; /* X-Content-SHA256 header (expected body hash) or NULL */
    const char *body;           /* JSON body bytes (not NUL-terminated), or NULL */
    size_t body_len;
    struct blob_upload *upload; /* octet-stream body, finished; server-owned: the
                                   handler may read and commit it, or NULL */
};

struct api_response {
    int status;            /* HTTP status */
    char content_type[64]; /* "application/json", "application/problem+json", ... */
    char *body;            /* owned, may be NULL */
    size_t body_len;
    char location[256];         /* Location header, "" if none */
    char etag[72];              /* ETag header (quoted), "" if none */
    int retry_after;            /* Retry-After seconds, 0 if none */
    char www_authenticate[160]; /* WWW-Authenticate header, "" if none */
    const char *route;          /* static route template for metrics/logs ("/v1/jobs/{id}") */
    int route_index;            /* index into api_routes(), -1 if no route matched */
    char allow[64];             /* Allow header of a 405 ("GET, POST"), "" if none */
    char cache_control[32];     /* Cache-Control header, "" if none */
};

/* Token scopes (RFC 6750 bearer tokens from --tokens FILE). */
enum api_scope { API_SCOPE_READ = 1, API_SCOPE_WRITE = 2 };

struct api_token {
    char *token; /* owned */
    int scopes;  /* API_SCOPE_* bits */
};

/* Called after a job row is committed, to wake the workers. */
typedef void api_job_queued_fn(void *arg, int64_t job_id);

struct api_ctx {
    struct blob_store *blobs;   /* content-addressed checkpoint files */
    const char *default_preset; /* --preset */
    char **allow_roots;         /* realpath'd --allow-root dirs; none: path ingestion off */
    size_t n_allow_roots;
    struct api_token *tokens; /* NULL: auth off */
    size_t n_tokens;
    uint64_t max_upload;           /* --max-upload bytes */
    api_job_queued_fn *job_queued; /* may be NULL */
    void *job_queued_arg;
    struct api_stats *stats;          /* counters for /metrics */
    int ready;                        /* /readyz: database open and workers up */
    const struct ckpt_limits *limits; /* reader limits for validation; NULL: defaults */
    uint64_t min_free_bytes;          /* 507 when the blob store's free space would drop
                                         below this (0: only the 2x-upload rule) */
    struct api_cache *cache;          /* rendered run reads by ETag (api/cache.h); NULL: none */
};

/* Handle one request with the calling thread's store connection `s`. Never
 * fails: every error becomes a problem+json response. */
void api_handle(const struct api_ctx *ctx, struct store *s, const struct api_request *req,
                struct api_response *resp);

/* --- Problems (RFC 9457 problem+json) -------------------------------------
 * Every failure is answered with {"type": "urn:farmsd:problem:<category>",
 * "title", "status", "detail", "category"}. Callers name an error, never a
 * status: status, title, category and Retry-After come from the one table,
 * ERR_CATEGORY_MAP in core/err.h (the error's category, or the row its code
 * defaults to: ERR_INVAL -> invalid_request 400, ERR_NOMEM -> nomem 503
 * with Retry-After 5, ...). */

/* Fill `resp` with the problem of `e`; its message is the detail. */
void api_problem_err(struct api_response *resp, const struct err *e);

/* Same for an error given in place: `code`, `category` (ERR_CAT_NONE: the
 * code's row) and a printf detail of up to API_DETAIL_MAX - 1 bytes. */
#define API_DETAIL_MAX 1024
void api_fail(struct api_response *resp, enum err_code code, enum err_category category,
              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Release the body and zero `resp`. Safe on a zeroed response. Cannot fail. */
void api_response_free(struct api_response *resp);

/* Before a request body is read: route, method, authorisation and query
 * parameters of `req` (body fields unset). 1 if the request may go on (resp
 * zeroed), else 0 with the refusal (404/405/401/403/400) in `resp`, counted
 * in the stats. Lets the server refuse an upload before streaming it. */
int api_precheck(const struct api_ctx *ctx, const struct api_request *req,
                 struct api_response *resp);

/* Free-space check for a body of `size` bytes. Before streaming (on_disk 0)
 * it needs free space >= 2 * size (the body plus as much headroom); once the
 * body is written (on_disk 1), >= size. Always >= ctx->min_free_bytes.
 * 1 if there is room (or no blob store), else 0 with a 507 problem (500 if
 * the free space cannot be read) in `resp`. The server may call it with
 * Content-Length before streaming; the upload handler calls it again. */
int api_check_space(const struct api_ctx *ctx, uint64_t size, int on_disk,
                    struct api_response *resp);

/* Index into api_routes() of the route matching `path` for `method`
 * (HEAD counts as GET), or -1 (for api_stats_request on answers the server
 * gives itself, e.g. a 413 while streaming). */
int api_route_index(const char *method, const char *path);

/* The route table: method + path template ("/v1/runs/{run}/history"), NULL-terminated. */
struct api_route_info {
    const char *method;
    const char *path;
};
const struct api_route_info *api_routes(void);

#endif /* API_API_H */
