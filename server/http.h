/* http.h -- the libmicrohttpd adapter: http.c, http_body.c and http_work.c
 * (sharing server/http_int.h) are the only files that include
 * <microhttpd.h>.
 *
 * Turns each HTTP request into a struct api_request and the filled
 * struct api_response back into HTTP. Bodies: application/json is read into
 * memory (up to API_MAX_JSON_BODY); any other body (application/octet-stream,
 * curl -T / --data-binary) is streamed to a temporary file in the blob
 * store's tmp folder while being hashed with SHA-256, never held in memory,
 * and handed to the API as `upload`. Over --max-upload: 413 before reading
 * (Content-Length) or as soon as the stream passes it. Over --max-uploads
 * at once: 503 with Retry-After. Every request thread has its own SQLite
 * connection (opened on first use, closed when the thread ends). One log
 * line per request. Connections are kept alive (HTTP/1.1 keep-alive) after
 * every answer but a refusal sent before an upload's body (then closed); a
 * body on a method that takes none is read and dropped. A 304 carries
 * "Content-Length: 0" (libmicrohttpd 0.9.75 adds it; see http__send).
 *
 * Slow work never runs on an HTTP thread: a request with a body (an upload,
 * whose validation parses the file, or a JSON body, whose path ingestion
 * hashes files) is suspended once its body is in and handed to a bounded
 * pool of `validators` threads (each with its own store connection and
 * reader limits cut to memory_budget / validators); its answer is sent
 * when the validator resumes the connection. At most validators +
 * validation_queue such requests are in the server; more get 503
 * + Retry-After with category "busy" (before their body is read when the
 * server is full already), and so does a request that waited in the queue
 * longer than HTTP_QUEUE_WAIT_S. GETs and /healthz never wait for them.
 *
 * Slow clients (server/http_guard.h): at most max_conns connections, at
 * most max_conns_per_ip from one address (more are closed at accept);
 * headers must be complete within header_s of accept or of the previous
 * request's end, and a body must arrive at min_rate bytes/s or faster,
 * averaged over windows of window_s; else 408 and close. An upload slot
 * is therefore held only while bytes arrive.
 *
 * Thread-safety: http_start/http_stop from one thread; the server's threads
 * share only the read-only struct api_ctx and atomic counters.
 */
#ifndef SERVER_HTTP_H
#define SERVER_HTTP_H

#include <stdint.h>

#include "api/api.h"
#include "core/err.h"

struct http_server; /* opaque */

struct http_cfg {
    const char *host;          /* numeric address or "localhost" */
    unsigned port;             /* 0: any free port (see http_port) */
    unsigned threads;          /* request threads */
    const char *db_path;       /* each thread opens its own connection */
    const struct api_ctx *api; /* borrowed; must outlive the server */
    uint64_t max_upload;       /* bytes */
    unsigned max_uploads;      /* concurrent streaming uploads */
    unsigned validators;       /* threads running requests with a body */
    unsigned validation_queue; /* such requests waiting for a validator */
    uint64_t memory_budget;    /* bytes, shared by the validators */
    unsigned max_conns;        /* connections at once (>= threads) */
    unsigned max_conns_per_ip; /* connections at once from one address */
    double header_s;           /* header deadline, seconds */
    uint64_t min_rate;         /* body bytes/s (0: no rule) */
    double window_s;           /* over windows of this many seconds */
};

#define HTTP_QUEUE_WAIT_S 10.0 /* longest wait for a validator before 503 */

/* The reader limits one validator uses: `base` with every memory-bearing
 * cap cut so that one validation stays within `share` bytes (see README,
 * "Memory"). Cannot fail. */
void http_validator_limits(const struct ckpt_limits *base, uint64_t share, struct ckpt_limits *out);

/* Listen and serve. Returns a new server in *out; stop with http_stop(). */
enum err_code http_start(const struct http_cfg *cfg, struct http_server **out, struct err *e);

/* The bound port (useful with port 0). */
unsigned http_port(const struct http_server *h);

/* Stop accepting, let requests in flight finish (up to `grace_s` seconds),
 * stop the threads and free. NULL is a no-op. */
void http_stop(struct http_server *h, double grace_s);

#endif /* SERVER_HTTP_H */
