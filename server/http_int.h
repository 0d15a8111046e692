/* http_int.h -- internal to the libmicrohttpd adapter (server/http*.c), not
 * for other modules: the server's and a request's state, and the functions
 * the adapter's files share.
 *
 * What lives where: http.c the daemon's life cycle (start, listen, stop)
 * and the request callbacks (URI log, access, completion, sending the
 * answer); http_body.c request bodies (JSON read into memory, uploads
 * streamed into a blob_upload); http_work.c what happens once the body is
 * in (answer at once, or hand off to the validator pool).
 *
 * Ownership and thread-safety: a struct http_req belongs to its connection
 * and is used by one thread at a time (the connection's HTTP thread, or a
 * validator while the connection is suspended); struct http_server is
 * shared by every thread, read-only after http_start but for its atomics
 * and what work_mu guards. These files are the only ones that include
 * <microhttpd.h>.
 */
#ifndef SERVER_HTTP_INT_H
#define SERVER_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "server/http.h"
#include "server/http_guard.h"
#include "server/pool.h"
#include "storage/blob.h"
#include "storage/store.h"

enum http_body { HTTP_BODY_NONE, HTTP_BODY_JSON, HTTP_BODY_UPLOAD };

/* Where a request with a body is with the validators. */
enum http_work { HTTP_WORK_NONE, HTTP_WORK_QUEUED, HTTP_WORK_DONE };

struct http_server {
    struct MHD_Daemon *d;
    struct http_cfg cfg;
    char db_path[STORE_PATH_MAX];
    pthread_key_t store_key;    /* per-thread struct store */
    _Atomic unsigned uploads;   /* uploads streaming now */
    _Atomic uint64_t next_id;   /* request ids for the log */
    struct http_guard *guard;   /* slow-client rules */
    struct pool *validators;    /* runs requests with a body */
    pthread_mutex_t work_mu;    /* orders submissions against stopping */
    int work_stopping;          /* under work_mu: no more submissions */
    _Atomic unsigned in_work;   /* requests queued or on a validator */
    _Atomic int closing;        /* http_stop began: new connections are closed */
    struct ckpt_limits vlimits; /* the validators' reader limits */
    struct api_ctx vctx;        /* the API context with vlimits */
};

struct http_req {
    uint64_t id;
    char *uri; /* owned: raw request URI */
    double t0; /* monotonic start */
    enum http_body body;
    int early_status;          /* answered before the body ended (413/503/...), 0 if not */
    struct api_response early; /* the early answer, sent when the body is drained */
    struct blob_upload *up;    /* owned: the upload body or NULL; aborted at the end */
    int holds_upload_slot;
    uint64_t size; /* body bytes received */
    char *json;    /* owned JSON body */
    int status;    /* answered status, for the log */
    const char *route;
    int counted;      /* the answer is already in the stats */
    int headers_seen; /* the access callback ran once */
    struct http_server *h;
    struct MHD_Connection *conn; /* for the validator's resume */
    _Atomic int work;            /* enum http_work */
    double t_queued;             /* when it was queued for a validator */
    struct api_request work_req; /* what the validator runs */
    struct api_response answer;  /* the validator's answer */
};

/* --- Shared by the adapter's files (http.c) ---------------------------- */

/* This thread's connection, opened on first use; NULL (and *e) on failure. */
struct store *http__store(struct http_server *h, struct err *e);

/* Send `resp` (its body handed over to MHD) and remember the status. */
enum MHD_Result http__send(struct http_server *h, struct MHD_Connection *conn, struct http_req *r,
                           const char *method, const char *path, struct api_response *resp);

/* The value of request header `name`, or NULL (borrowed from MHD). */
const char *http__header(struct MHD_Connection *conn, const char *name);

/* The request line and headers as an api_request (no body). */
void http__request_head(struct MHD_Connection *conn, const struct http_req *r, const char *method,
                        const char *url, struct api_request *req);

/* --- Request bodies (http_body.c) ------------------------------------- */

/* First call of a request with a body: refuse early or choose JSON or upload. */
void http__body_begin(struct http_server *h, struct MHD_Connection *conn, struct http_req *r,
                      const char *method, const char *url);

/* One chunk of body. */
void http__body_chunk(struct http_server *h, struct http_req *r, const char *data, size_t n);

/* The upload's write (or finish) failed: the early answer, 500 or 507. */
void http__upload_failed(struct http_req *r, struct err *e);

/* --- After the body: validators (http_work.c) ------------------------- */

/* The 503 of a request no validator can take. */
void http__busy(struct api_response *resp);

/* After the body: answer at once or hand the request to a validator. */
enum MHD_Result http__dispatch(struct http_server *h, struct MHD_Connection *conn,
                               struct http_req *r, const char *method, const char *url);

/* The validators: their limits, API context and threads. */
enum err_code http__validators_start(struct http_server *h, struct err *e);

#endif /* SERVER_HTTP_INT_H */
