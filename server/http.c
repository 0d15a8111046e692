/* http.c -- see http.h.
 *
 * Request life cycle in libmicrohttpd: the URI log callback allocates our
 * per-request state (keeping the raw URI, whose query string MHD does not
 * give back otherwise); the access callback is then called once with no
 * body, once per body chunk, and once more after the body; the completion
 * callback logs and frees. Per-thread SQLite connections hang off a
 * pthread key whose destructor closes them.
 */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
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

#include "core/thash.h"
#include "server/log.h"
#include "storage/store.h"

#define HTTP_URI_MAX   8192
#define HTTP_DRAIN_MAX (64u << 20) /* body bytes read and dropped after a refusal */

enum http_body { HTTP_BODY_NONE, HTTP_BODY_JSON, HTTP_BODY_UPLOAD };

struct http_server {
    struct MHD_Daemon *d;
    struct http_cfg cfg;
    char db_path[STORE_PATH_MAX];
    pthread_key_t store_key;  /* per-thread struct store */
    _Atomic unsigned uploads; /* uploads streaming now */
    _Atomic uint64_t next_id; /* request ids for the log */
};

struct http_req {
    uint64_t id;
    char *uri; /* owned: raw request URI */
    double t0; /* monotonic start */
    enum http_body body;
    int early_status;          /* answered before the body ended (413/503/...), 0 if not */
    struct api_response early; /* the early answer, sent when the body is drained */
    int fd;                    /* upload temp file, -1 if none */
    char tmp_path[STORE_PATH_MAX];
    struct thash hash; /* SHA-256 of the upload so far */
    int hashing;
    int holds_upload_slot;
    uint64_t size; /* body bytes received */
    char *json;    /* owned JSON body */
    int status;    /* answered status, for the log */
    const char *route;
    int counted; /* the answer is already in the stats */
};

static double http_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void http_store_close(void *s)
{
    store_close(s);
}

/* This thread's connection, opened on first use; NULL (and *e) on failure. */
static struct store *http_store(struct http_server *h, struct err *e)
{
    struct store *s = pthread_getspecific(h->store_key);

    if (s != NULL)
        return s;
    if (store_open(h->db_path, &s, e) != ERR_OK)
        return NULL;
    pthread_setspecific(h->store_key, s);
    return s;
}

static void *http_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct http_server *h = cls;
    struct http_req *r = calloc(1, sizeof(*r));

    (void)conn;
    if (r == NULL)
        return NULL;
    r->id = atomic_fetch_add(&h->next_id, 1) + 1;
    r->uri = strndup(uri, HTTP_URI_MAX);
    r->t0 = http_now();
    r->fd = -1;
    return r;
}

static void http_req_free(struct http_server *h, struct http_req *r)
{
    if (r->fd >= 0)
        close(r->fd);
    if (r->tmp_path[0] != '\0')
        unlink(r->tmp_path); /* not committed to the blob store: nothing kept */
    if (r->hashing)
        thash_free(&r->hash);
    if (r->holds_upload_slot) {
        atomic_fetch_sub(&h->uploads, 1);
        api_stats_upload_end(h->cfg.api->stats);
    }
    api_response_free(&r->early);
    free(r->json);
    free(r->uri);
    free(r);
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    struct http_server *h = cls;
    struct http_req *r = *con_cls;

    (void)conn;
    if (r == NULL)
        return;
    LOG_INFO("http", "req=%llu uri=\"%.200s\" status=%d route=\"%s\" bytes_in=%llu ms=%.1f%s",
             (unsigned long long)r->id, r->uri ? r->uri : "", r->status, r->route ? r->route : "-",
             (unsigned long long)r->size, 1e3 * (http_now() - r->t0),
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    http_req_free(h, r);
    *con_cls = NULL;
}

/* Send `resp` (its body handed over to MHD) and remember the status. */
static enum MHD_Result http_send(struct http_server *h, struct MHD_Connection *conn,
                                 struct http_req *r, const char *method, const char *path,
                                 struct api_response *resp)
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

static const char *http_header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static int http_is_json(const char *content_type)
{
    return content_type != NULL && strncasecmp(content_type, "application/json", 16) == 0;
}

/* The request line and headers as an api_request (no body). */
static void http_request_head(struct MHD_Connection *conn, const struct http_req *r,
                              const char *method, const char *url, struct api_request *req)
{
    memset(req, 0, sizeof(*req));
    req->method = method;
    req->path = url;
    req->query = r->uri ? strchr(r->uri, '?') : NULL;
    if (req->query != NULL)
        req->query++;
    req->content_type = http_header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
    req->if_none_match = http_header(conn, MHD_HTTP_HEADER_IF_NONE_MATCH);
    req->authorization = http_header(conn, MHD_HTTP_HEADER_AUTHORIZATION);
    req->content_sha256 = http_header(conn, "X-Content-SHA256");
}

/* First call of a request with a body: refuse what the API would refuse
 * anyway (route, auth, parameters) before reading a byte, then choose JSON
 * or upload and check the limits. */
static void http_body_begin(struct http_server *h, struct MHD_Connection *conn, struct http_req *r,
                            const char *method, const char *url)
{
    const struct api_ctx *ctx = h->cfg.api;
    const char *cl = http_header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t len = cl ? strtoull(cl, NULL, 10) : 0;
    struct api_request head;
    struct err e;

    http_request_head(conn, r, method, url, &head);
    if (!api_precheck(ctx, &head, &r->early)) {
        r->early_status = r->early.status;
        r->counted = 1;
        return;
    }
    if (http_is_json(http_header(conn, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        r->body = HTTP_BODY_JSON;
        if (len > API_MAX_JSON_BODY) {
            r->early_status = 413;
            api_problem(&r->early, 413, "Request body too large", "limit_exceeded",
                        "a JSON body may have at most 1048576 bytes");
        }
        return;
    }
    r->body = HTTP_BODY_UPLOAD;
    if (len > h->cfg.max_upload) {
        char d[160];
        snprintf(d, sizeof(d), "the body has %llu bytes; the limit (--max-upload) is %llu",
                 (unsigned long long)len, (unsigned long long)h->cfg.max_upload);
        r->early_status = 413;
        api_problem(&r->early, 413, "Upload too large", "limit_exceeded", d);
        return;
    }
    if (len > 0 && !api_check_space(ctx, len, 0, &r->early)) {
        r->early_status = r->early.status;
        return;
    }
    if (atomic_fetch_add(&h->uploads, 1) >= h->cfg.max_uploads) {
        atomic_fetch_sub(&h->uploads, 1);
        r->early_status = 503;
        api_problem(&r->early, 503, "Too many uploads", "busy",
                    "the server is receiving as many uploads as --max-uploads allows; retry");
        r->early.retry_after = 5;
        return;
    }
    r->holds_upload_slot = 1;
    api_stats_upload_begin(ctx->stats);
    if (blob_tmp_create(ctx->blobs, &r->fd, r->tmp_path, sizeof(r->tmp_path), &e) != ERR_OK ||
        thash_init(&r->hash, &e) != ERR_OK) {
        r->early_status = 500;
        api_problem(&r->early, 500, "Cannot store the upload", "io", e.msg);
        return;
    }
    r->hashing = 1;
}

/* One chunk of body. */
static void http_body_chunk(struct http_server *h, struct http_req *r, const char *data, size_t n)
{
    r->size += n;
    if (r->early_status)
        return; /* answered already: drain */
    if (r->body == HTTP_BODY_JSON) {
        char *grown;
        if (r->size > API_MAX_JSON_BODY) {
            r->early_status = 413;
            api_problem(&r->early, 413, "Request body too large", "limit_exceeded",
                        "a JSON body may have at most 1048576 bytes");
            return;
        }
        grown = realloc(r->json, (size_t)r->size + 1);
        if (grown == NULL) {
            r->early_status = 503;
            api_problem(&r->early, 503, "Out of memory", "nomem", "retry later");
            return;
        }
        r->json = grown;
        memcpy(r->json + r->size - n, data, n);
        return;
    }
    if (r->size > h->cfg.max_upload) {
        char d[160];
        snprintf(d, sizeof(d), "the body passed the limit (--max-upload) of %llu bytes",
                 (unsigned long long)h->cfg.max_upload);
        r->early_status = 413;
        api_problem(&r->early, 413, "Upload too large", "limit_exceeded", d);
        return;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(r->fd, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            r->early_status = errno == ENOSPC ? 507 : 500;
            api_problem(&r->early, r->early_status, "Cannot store the upload",
                        errno == ENOSPC ? "insufficient_storage" : "io", strerror(errno));
            return;
        }
        off += (size_t)w;
    }
    thash_update(&r->hash, data, n, NULL);
}

/* After the body: call the API. */
static enum MHD_Result http_dispatch(struct http_server *h, struct MHD_Connection *conn,
                                     struct http_req *r, const char *method, const char *url)
{
    struct api_request req;
    struct api_response resp = {0};
    struct api_upload up = {0};
    unsigned char digest[THASH_DIGEST_LEN];
    struct store *s;
    struct err e;

    /* The body is in: give the upload slot back before the client can see
     * the answer (and send its next upload), not when MHD completes. */
    if (r->holds_upload_slot) {
        atomic_fetch_sub(&h->uploads, 1);
        api_stats_upload_end(h->cfg.api->stats);
        r->holds_upload_slot = 0;
    }
    if (r->early_status)
        return http_send(h, conn, r, method, url, &r->early);
    s = http_store(h, &e);
    /* the operational endpoints answer without a database (liveness, and
       readiness that reports the database as the reason) */
    if (s == NULL && strcmp(url, "/healthz") != 0 && strcmp(url, "/readyz") != 0 &&
        strcmp(url, "/metrics") != 0) {
        api_problem(&resp, 503, "Database unavailable", "db", e.msg);
        resp.retry_after = 5;
        return http_send(h, conn, r, method, url, &resp);
    }
    http_request_head(conn, r, method, url, &req);
    if (r->body == HTTP_BODY_JSON) {
        req.body = r->json ? r->json : "";
        req.body_len = (size_t)r->size;
    } else if (r->body == HTTP_BODY_UPLOAD) {
        close(r->fd);
        r->fd = -1;
        thash_final(&r->hash, digest, NULL);
        r->hashing = 0;
        thash_hex(digest, up.sha256);
        up.tmp_path = r->tmp_path;
        up.size = r->size;
        req.upload = &up;
    }
    api_handle(h->cfg.api, s, &req, &resp);
    return http_send(h, conn, r, method, url, &resp);
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    struct http_server *h = cls;
    struct http_req *r = *con_cls;
    int has_body;

    (void)version;
    if (r == NULL)
        return MHD_NO; /* the URI callback could not allocate */
    if (r->body == HTTP_BODY_NONE && r->size == 0 && *upload_data_size == 0 && !r->status) {
        has_body = (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) &&
                   (http_header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH) != NULL ||
                    http_header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL);
        if (has_body && r->early_status == 0 && r->body == HTTP_BODY_NONE) {
            http_body_begin(h, conn, r, method, url);
            if (r->early_status) /* refuse before reading the body */
                return http_send(h, conn, r, method, url, &r->early);
            return MHD_YES;
        }
    }
    if (*upload_data_size > 0) {
        http_body_chunk(h, r, upload_data, *upload_data_size);
        *upload_data_size = 0;
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
    return http_dispatch(h, conn, r, method, url);
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

enum err_code http_start(const struct http_cfg *cfg, struct http_server **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct http_server *h;
    struct sockaddr_storage ss;
    socklen_t sslen;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;

    *out = NULL;
    rc = http_resolve(cfg->host, cfg->port, &ss, &sslen, e);
    if (rc)
        return rc;
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    h->cfg = *cfg;
    snprintf(h->db_path, sizeof(h->db_path), "%s", cfg->db_path);
    if (pthread_key_create(&h->store_key, http_store_close) != 0) {
        free(h);
        return err_set(e, ERR_INTERNAL, "pthread_key_create failed");
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* 32 KiB per connection (MHD's default): MHD clears the pool on every
     * request, so a larger pool costs the 304 path more than it saves uploads
     * (measured: 1 MiB 1.5k req/s, 128 KiB 4.5k, 32 KiB 5.5k; same upload rate). */
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, http_access, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, cfg->threads, MHD_OPTION_URI_LOG_CALLBACK, http_uri_log, h,
        MHD_OPTION_NOTIFY_COMPLETED, http_completed, h, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)120, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_END);
    if (h->d == NULL) {
        pthread_key_delete(h->store_key);
        free(h);
        return err_set(e, ERR_IO, "cannot listen on %s:%u (address in use or not permitted)",
                       cfg->host, cfg->port);
    }
    *out = h;
    return ERR_OK;
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
    MHD_quiesce_daemon(h->d); /* stop accepting; connections in flight go on */
    until = http_now() + grace_s;
    while (http_now() < until) {
        info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (info == NULL || info->num_connections == 0)
            break;
        usleep(20000);
    }
    MHD_stop_daemon(h->d);
    pthread_key_delete(h->store_key);
    free(h);
}
