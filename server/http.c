/* http.c -- see http.h.
 *
 * Request life cycle in libmicrohttpd: the URI log callback allocates our
 * per-request state (keeping the raw URI, whose query string MHD does not
 * give back otherwise); the access callback is then called once with no
 * body, once per body chunk, and once more after the body; the completion
 * callback logs and frees. Answers are queued on that last call (or later,
 * after a validator), never on the first: libmicrohttpd keeps a connection
 * alive only for an answer queued once the whole request is in. The one
 * exception, an upload refused before its body, closes the connection.
 * Per-thread SQLite connections hang off a pthread key whose destructor
 * closes them (HTTP and validator threads alike).
 *
 * What lives where (the state is in http_int.h): this file has the
 * daemon's life cycle and the request callbacks; http_body.c reads request
 * bodies and streams uploads; http_work.c answers a request once its body
 * is in, handing requests with a body to the validators.
 *
 * Connection tracking for the slow-client rules: the connection-notify
 * callback registers each socket with the guard; the URI, access and
 * completion callbacks report the request's phases to it.
 */
#include "server/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/clock.h"
#include "server/http_guard.h"
#include "server/http_int.h"
#include "server/log.h"
#include "server/pool.h"
#include "storage/store.h"

#define HTTP_URI_MAX   8192
#define HTTP_DRAIN_MAX (64u << 20) /* body bytes read and dropped after a refusal */

static void http_store_close(void *s)
{
    store_close(s);
}

/* This thread's connection, opened on first use; NULL (and *e) on failure. */
struct store *http__store(struct http_server *h, struct err *e)
{
    struct store *s = pthread_getspecific(h->store_key);

    if (s != NULL)
        return s;
    if (store_open(h->db_path, &s, e) != ERR_OK)
        return NULL;
    pthread_setspecific(h->store_key, s);
    return s;
}

/* The guard record of `conn` (the connection-notify callback's socket context). */
static struct http_guard_conn *http_guard_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci != NULL ? ci->socket_context : NULL;
}

static void *http_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct http_server *h = cls;
    struct http_req *r = calloc(1, sizeof(*r));

    http_guard_request_line(h->guard, http_guard_of(conn));
    if (r == NULL)
        return NULL;
    r->id = atomic_fetch_add(&h->next_id, 1) + 1;
    r->uri = strndup(uri, HTTP_URI_MAX);
    r->t0 = clock_mono_s();
    r->h = h;
    r->conn = conn;
    atomic_init(&r->work, HTTP_WORK_NONE);
    return r;
}

/* Register a new connection with the guard; unregister a closed one
 * (before the library closes its socket). */
static void http_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                             enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *h = cls;
    const union MHD_ConnectionInfo *ci;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci != NULL ? http_guard_conn_open(h->guard, ci->connect_fd) : NULL;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        http_guard_conn_close(h->guard, *socket_context);
        *socket_context = NULL;
    }
}

static void http_req_free(struct http_server *h, struct http_req *r)
{
    blob_upload_abort(r->up); /* removes its file unless committed */
    if (r->holds_upload_slot) {
        atomic_fetch_sub(&h->uploads, 1);
        api_stats_upload_end(h->cfg.api->stats);
    }
    api_response_free(&r->early);
    api_response_free(&r->answer);
    free(r->json);
    free(r->uri);
    free(r);
}

/* Append at most `max` bytes of `s` to out[*n..cap) (cut at the end). */
static void http_put(char *out, size_t cap, size_t *n, const char *s, size_t max)
{
    size_t k = strnlen(s, max);

    if (k > cap - 1 - *n)
        k = cap - 1 - *n;
    memcpy(out + *n, s, k);
    *n += k;
    out[*n] = '\0';
}

static void http_put_u64(char *out, size_t cap, size_t *n, uint64_t v)
{
    char d[24], *p = d + sizeof(d);

    *--p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    http_put(out, cap, n, p, sizeof(d));
}

/* The access line's fields: `req=.. uri=".." status=.. route=".." bytes_in=..
 * ms=..[ aborted=1]`, uri cut at 200 bytes, ms with one decimal. Built
 * without printf, which this process runs on glibc's slow path (log.c). */
static void http_access_line(const struct http_req *r, int aborted, char *out, size_t cap)
{
    double ms = 1e3 * (clock_mono_s() - r->t0);
    uint64_t tenths = ms > 0 ? (uint64_t)(ms * 10 + 0.5) : 0;
    char frac[2] = {(char)('0' + tenths % 10), '\0'};
    size_t n = 0;

    out[0] = '\0';
    http_put(out, cap, &n, "req=", 8);
    http_put_u64(out, cap, &n, r->id);
    http_put(out, cap, &n, " uri=\"", 8);
    http_put(out, cap, &n, r->uri ? r->uri : "", 200);
    http_put(out, cap, &n, "\" status=", 16);
    http_put_u64(out, cap, &n, (uint64_t)(r->status > 0 ? r->status : 0));
    http_put(out, cap, &n, " route=\"", 16);
    http_put(out, cap, &n, r->route ? r->route : "-", 512);
    http_put(out, cap, &n, "\" bytes_in=", 16);
    http_put_u64(out, cap, &n, r->size);
    http_put(out, cap, &n, " ms=", 8);
    http_put_u64(out, cap, &n, tenths / 10);
    http_put(out, cap, &n, ".", 1);
    http_put(out, cap, &n, frac, 1);
    if (aborted)
        http_put(out, cap, &n, " aborted=1", 16);
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    struct http_server *h = cls;
    struct http_req *r = *con_cls;
    char line[1024];

    if (r == NULL)
        return;
    http_guard_request_end(h->guard, http_guard_of(conn));
    if (LOG_LEVEL_INFO >= log_get_level()) {
        http_access_line(r, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK, line, sizeof(line));
        log_write_batched(LOG_LEVEL_INFO, "http", "%s", line);
    }
    http_req_free(h, r);
    *con_cls = NULL;
}

/* Send `resp` (its body handed over to MHD) and remember the status.
 *
 * A 304 goes out with "Content-Length: 0". RFC 9110 (8.6, 15.4.5) would
 * rather have no length or the 200's, but libmicrohttpd 0.9.75 adds a body
 * length header to every answer but 1xx and 204: Content-Length for a
 * sized response, "Transfer-Encoding: chunked" for one of unknown size (or
 * Connection: close for an HTTP/1.0 client), and a Content-Length of the
 * application's (MHD_RF_INSANITY_HEADER_CONTENT_LENGTH) comes in addition
 * to its own. The 200's length is not known on the 304 path (one row read),
 * and chunked would claim a transfer coding the 200 does not use and
 * trip parsers that do not special-case 304, so 0 it is: clients end a 304
 * at its blank line whatever its headers say (RFC 9112 6.3). */
enum MHD_Result http__send(struct http_server *h, struct MHD_Connection *conn, struct http_req *r,
                           const char *method, const char *path, struct api_response *resp)
{
    struct MHD_Response *m;
    enum MHD_Result ok;
    char num[32];

    m = MHD_create_response_from_buffer(resp->body_len, resp->body, MHD_RESPMEM_MUST_FREE);
    if (m == NULL)
        return MHD_NO;
    resp->body = NULL; /* owned by MHD now */
    if (resp->content_type[0])
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    if (resp->location[0])
        MHD_add_response_header(m, MHD_HTTP_HEADER_LOCATION, resp->location);
    if (resp->etag[0])
        MHD_add_response_header(m, MHD_HTTP_HEADER_ETAG, resp->etag);
    if (resp->www_authenticate[0])
        MHD_add_response_header(m, MHD_HTTP_HEADER_WWW_AUTHENTICATE, resp->www_authenticate);
    if (resp->allow[0])
        MHD_add_response_header(m, MHD_HTTP_HEADER_ALLOW, resp->allow);
    if (resp->cache_control[0])
        MHD_add_response_header(m, MHD_HTTP_HEADER_CACHE_CONTROL, resp->cache_control);
    if (resp->retry_after > 0) {
        snprintf(num, sizeof(num), "%d", resp->retry_after);
        MHD_add_response_header(m, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    r->status = resp->status;
    r->route = resp->route;
    if (resp->route == NULL && !r->counted) /* answered here, not by api_handle */
        api_stats_request(h->cfg.api->stats, api_route_index(method, path), resp->status);
    ok = MHD_queue_response(conn, (unsigned)resp->status, m);
    MHD_destroy_response(m);
    api_response_free(resp);
    return ok;
}

const char *http__header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* The request line and headers as an api_request (no body). */
void http__request_head(struct MHD_Connection *conn, const struct http_req *r, const char *method,
                        const char *url, struct api_request *req)
{
    memset(req, 0, sizeof(*req));
    req->method = method;
    req->path = url;
    req->query = r->uri ? strchr(r->uri, '?') : NULL;
    if (req->query != NULL)
        req->query++;
    req->content_type = http__header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
    req->if_none_match = http__header(conn, MHD_HTTP_HEADER_IF_NONE_MATCH);
    req->authorization = http__header(conn, MHD_HTTP_HEADER_AUTHORIZATION);
    req->content_sha256 = http__header(conn, "X-Content-SHA256");
}

/* First access call: the headers are in. A POST or PUT with a body is
 * checked at once and may be refused before its body is read (MHD then
 * closes the connection after the answer). Every other request is answered
 * on a later call, once MHD has read all of it: MHD keeps a connection
 * alive only for an answer queued after the end of the request. */
static enum MHD_Result http_headers_in(struct http_server *h, struct MHD_Connection *conn,
                                       struct http_req *r, const char *method, const char *url)
{
    int has_body = http__header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH) != NULL ||
                   http__header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;

    /* a body on any method is under the rate rule until it is in */
    http_guard_headers_done(h->guard, http_guard_of(conn), has_body);
    if (!has_body || (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0))
        return MHD_YES;
    http__body_begin(h, conn, r, method, url);
    if (!r->early_status)
        return MHD_YES;
    http_guard_body_done(h->guard, http_guard_of(conn)); /* refused before the body */
    return http__send(h, conn, r, method, url, &r->early);
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    struct http_server *h = cls;
    struct http_req *r = *con_cls;

    (void)version;
    if (r == NULL)
        return MHD_NO; /* the URI callback could not allocate */
    switch (atomic_load(&r->work)) {
    case HTTP_WORK_QUEUED: return MHD_YES; /* still with a validator */
    case HTTP_WORK_DONE:
        atomic_store(&r->work, HTTP_WORK_NONE);
        return http__send(h, conn, r, method, url, &r->answer);
    default: break;
    }
    if (!r->headers_seen) {
        r->headers_seen = 1;
        return http_headers_in(h, conn, r, method, url);
    }
    if (*upload_data_size > 0) {
        http_guard_body(h->guard, http_guard_of(conn), *upload_data_size);
        http__body_chunk(h, r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        /* a body on a method that takes none (GET, DELETE...) is dropped;
           more than HTTP_DRAIN_MAX of it closes the connection */
        if (r->body == HTTP_BODY_NONE && !r->early_status && r->size > HTTP_DRAIN_MAX)
            return MHD_NO;
        /* Refused mid-body: libmicrohttpd answers only after the body, so
         * drain (without storing) up to HTTP_DRAIN_MAX more bytes, then give up
         * and close the connection. */
        if (r->early_status && r->status == 0 && r->size > h->cfg.max_upload + HTTP_DRAIN_MAX) {
            r->status = r->early_status;
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (r->status != 0)
        return MHD_YES; /* answered early; the rest of the body was drained */
    http_guard_body_done(h->guard, http_guard_of(conn));
    return http__dispatch(h, conn, r, method, url);
}

/* A sockaddr for host:port (numeric or resolvable). */
static enum err_code http_resolve(const char *host, unsigned port, struct sockaddr_storage *ss,
                                  socklen_t *len, struct err *e)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    int rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%u", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0)
        return err_set(e, ERR_INVAL, "--listen: cannot resolve '%s': %s", host, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return ERR_OK;
}

/* Free what http_start built (each part may be missing). */
static void http_server_free(struct http_server *h, int key_ok, int mu_ok)
{
    if (h == NULL)
        return;
    if (h->d != NULL)
        MHD_stop_daemon(h->d);
    pool_free(h->validators);
    http_guard_stop(h->guard);
    if (mu_ok)
        pthread_mutex_destroy(&h->work_mu);
    if (key_ok)
        pthread_key_delete(h->store_key);
    free(h);
}

/* The guard's closes into /metrics (the two enums list the same reasons). */
static void http_guard_closed(void *arg, enum http_guard_reason why, uint64_t n)
{
    struct http_server *h = arg;
    enum api_stats_slow slow = why == HTTP_GUARD_HEADERS     ? API_STATS_SLOW_HEADERS
                               : why == HTTP_GUARD_SLOW_BODY ? API_STATS_SLOW_BODY
                                                             : API_STATS_SLOW_IDLE;

    api_stats_slow_closed(h->cfg.api->stats, slow, n);
}


/* libmicrohttpd's accept policy: once http_stop has begun, each new
 * connection is closed as it is accepted, so a client fails at once instead
 * of waiting in the backlog. (MHD_quiesce_daemon would stop accepting too,
 * but with MHD_USE_EPOLL and a thread pool it races the pool's threads for
 * the listen socket's epoll entry, and libmicrohttpd 0.9.75 aborts the
 * process when it loses: "Failed to remove listen FD from epoll set".) */
static enum MHD_Result http_accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    const struct http_server *h = cls;

    (void)addr;
    (void)addrlen;
    return atomic_load(&h->closing) ? MHD_NO : MHD_YES;
}

/* Listen: the daemon with its thread pool and connection limits. */
static enum err_code http_listen(struct http_server *h, struct err *e)
{
    enum err_code rc;
    struct sockaddr_storage ss;
    socklen_t sslen;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    const struct http_cfg *cfg = &h->cfg;

    rc = http_resolve(cfg->host, cfg->port, &ss, &sslen, e);
    if (rc)
        return rc;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* 32 KiB per connection (MHD's default): MHD clears the pool on every
     * request, so a larger pool costs the 304 path more than it saves uploads
     * (measured: 1 MiB 1.5k req/s, 128 KiB 4.5k, 32 KiB 5.5k; same upload rate).
     * The idle timeout stays as a backstop behind the guard's rules. */
    h->d = MHD_start_daemon(
        flags, 0, http_accept_policy, h, http_access, h, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
        MHD_OPTION_URI_LOG_CALLBACK, http_uri_log, h, MHD_OPTION_NOTIFY_COMPLETED, http_completed,
        h, MHD_OPTION_NOTIFY_CONNECTION, http_notify_conn, h, MHD_OPTION_CONNECTION_LIMIT,
        cfg->max_conns, MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_conns_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(32 * 1024), MHD_OPTION_END);
    if (h->d == NULL)
        return err_set(e, ERR_IO, "cannot listen on %s:%u (address in use or not permitted)",
                       cfg->host, cfg->port);
    return ERR_OK;
}

enum err_code http_start(const struct http_cfg *cfg, struct http_server **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct http_server *h = NULL;
    struct http_guard_cfg gcfg = {.header_s = cfg->header_s,
                                  .min_rate = cfg->min_rate,
                                  .window_s = cfg->window_s,
                                  .closed = http_guard_closed};
    int key_ok = 0, mu_ok = 0;

    *out = NULL;
    if (cfg->validators == 0 || cfg->max_conns < cfg->threads)
        return err_set(e, ERR_INVAL, "http: no validators, or fewer connections than threads");
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    h->cfg = *cfg;
    gcfg.closed_arg = h;
    snprintf(h->db_path, sizeof(h->db_path), "%s", cfg->db_path);
    key_ok = pthread_key_create(&h->store_key, http_store_close) == 0;
    mu_ok = key_ok && pthread_mutex_init(&h->work_mu, NULL) == 0;
    if (!mu_ok) {
        rc = err_set(e, ERR_INTERNAL, "cannot create the server's thread state");
        goto out;
    }
    rc = http_guard_start(&gcfg, &h->guard, e);
    if (rc == ERR_OK)
        rc = http__validators_start(h, e);
    if (rc == ERR_OK)
        rc = http_listen(h, e);
    if (rc)
        goto out;
    *out = h;
    h = NULL;
out:
    http_server_free(h, key_ok, mu_ok);
    return rc;
}

unsigned http_port(const struct http_server *h)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);

    return info ? info->port : 0;
}

void http_stop(struct http_server *h, double grace_s)
{
    const union MHD_DaemonInfo *info;
    double until;

    if (h == NULL)
        return;
    atomic_store(&h->closing, 1); /* no new connections; those in flight go on */
    until = clock_mono_s() + grace_s;
    while (clock_mono_s() < until) {
        info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (info == NULL || info->num_connections == 0)
            break;
        usleep(20000);
    }
    /* no more validations; those queued run (and resume their connections)
       before the daemon stops: it must not stop with suspended connections */
    pthread_mutex_lock(&h->work_mu);
    h->work_stopping = 1;
    pthread_mutex_unlock(&h->work_mu);
    pool_free(h->validators);
    h->validators = NULL;
    MHD_stop_daemon(h->d);
    h->d = NULL;
    http_server_free(h, 1, 1); /* the guard after the daemon: no callbacks left */
    log_flush();               /* the access lines of the last requests */
}
