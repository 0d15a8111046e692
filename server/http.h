/* http.h -- the libmicrohttpd adapter: the only file that includes
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
 * line per request.
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
};

/* Listen and serve. Returns a new server in *out; stop with http_stop(). */
enum err_code http_start(const struct http_cfg *cfg, struct http_server **out, struct err *e);

/* The bound port (useful with port 0). */
unsigned http_port(const struct http_server *h);

/* Stop accepting, let requests in flight finish (up to `grace_s` seconds),
 * stop the threads and free. NULL is a no-op. */
void http_stop(struct http_server *h, double grace_s);

#endif /* SERVER_HTTP_H */
