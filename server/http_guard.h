/* http_guard.h -- slow-client rules for the HTTP server: a header deadline
 * and a minimum upload rate, enforced by a sweeper thread on the sockets of
 * the connections it is told about.
 *
 * The HTTP adapter (http.c) registers every accepted connection with its
 * socket, reports where each request is (request line seen, headers done,
 * body bytes, body complete, request finished) and unregisters it when the
 * library closes it. Every `tick` the sweeper checks each connection:
 *   - waiting for headers (fresh connection, or a request line without all
 *     its headers) for longer than `header_s`: it writes a minimal
 *     "408 Request Timeout" problem+json and half-closes the socket;
 *   - idle between two requests for longer than `header_s`: it closes the
 *     socket without an answer (a keep-alive connection nobody uses);
 *   - receiving a body: every `window_s` the bytes of that window must be at
 *     least `min_rate * window_s`, else 408 as above.
 * A connection that got a 408 is shut down for reading too one second
 * later (the client has had time to read the answer; the library then sees
 * the end of the stream, closes the socket and runs its completion
 * callbacks, which free the request and its upload slot). Connections being
 * answered (body complete, or no body) are not the guard's business.
 *
 * The guard never closes a socket itself: shutdown() only, so the file
 * descriptor stays the library's, and it is only used between
 * http_guard_conn_open and http_guard_conn_close (which the library calls
 * before it closes the socket), under the guard's lock.
 *
 * Ownership: the guard owns its connection records; a record returned by
 * http_guard_conn_open stays valid until http_guard_conn_close.
 * Thread-safety: every function may be called from any thread; one mutex
 * guards the records. http_guard_start/http_guard_stop from one thread.
 */
#ifndef SERVER_HTTP_GUARD_H
#define SERVER_HTTP_GUARD_H

#include <stdint.h>

#include "core/err.h"

struct http_guard;      /* opaque */
struct http_guard_conn; /* opaque, one per connection */

/* Why the guard closed a connection (for the caller's counters). */
enum http_guard_reason {
    HTTP_GUARD_HEADERS,   /* headers too slow: 408 */
    HTTP_GUARD_SLOW_BODY, /* body below the minimum rate: 408 */
    HTTP_GUARD_IDLE,      /* idle between requests: closed */
    HTTP_GUARD_N_REASONS
};

/* `n` connections were closed for `why` (called after each sweep). */
typedef void http_guard_closed_fn(void *arg, enum http_guard_reason why, uint64_t n);

struct http_guard_cfg {
    double header_s;   /* headers within this of accept or of the previous request's end */
    uint64_t min_rate; /* body bytes per second, averaged over window_s; 0: no rule */
    double window_s;   /* > 0 */
    http_guard_closed_fn *closed; /* may be NULL; called by the sweeper thread */
    void *closed_arg;
};

/* Start the sweeper. Returns a new guard; stop with http_guard_stop(). */
enum err_code http_guard_start(const struct http_guard_cfg *cfg, struct http_guard **out,
                               struct err *e);

/* Stop the sweeper and free the records still registered. NULL is a no-op.
 * Call after the library has stopped (no callbacks in flight). */
void http_guard_stop(struct http_guard *g);

/* --- Connection life cycle (called by the HTTP adapter) -------------------- */

/* Register the accepted socket `fd`: the header deadline starts now. NULL
 * when out of memory (the connection is then not guarded; every other
 * function accepts a NULL record as a no-op). */
struct http_guard_conn *http_guard_conn_open(struct http_guard *g, int fd);

/* Unregister and free `c`, before the socket is closed. NULL: no-op. */
void http_guard_conn_close(struct http_guard *g, struct http_guard_conn *c);

/* The request line of a request arrived (its headers may still be missing). */
void http_guard_request_line(struct http_guard *g, struct http_guard_conn *c);

/* The headers are complete; `has_body`: a body follows (the rate rule starts
 * now), else the request is being answered. */
void http_guard_headers_done(struct http_guard *g, struct http_guard_conn *c, int has_body);

/* `n` more body bytes arrived. */
void http_guard_body(struct http_guard *g, struct http_guard_conn *c, uint64_t n);

/* The body is complete: the request is being answered (no rule applies). */
void http_guard_body_done(struct http_guard *g, struct http_guard_conn *c);

/* The request was answered: the header deadline of the next one starts now. */
void http_guard_request_end(struct http_guard *g, struct http_guard_conn *c);

#endif /* SERVER_HTTP_GUARD_H */
