/* http_work.c -- the libmicrohttpd adapter once a request's body is in
 * (http_int.h): requests without a body are answered on the HTTP thread,
 * requests with one are handed to the validator pool.
 *
 * Offloading: on the last access call of a request with a body, the
 * request (its api_request points into the connection's memory, which
 * stays put while the connection is suspended) is counted in `in_work`,
 * the connection suspended and the request queued on the validator pool.
 * The validator fills r->answer, marks it done and resumes the
 * connection; the library then calls the access callback again, which
 * sends the answer. The validator touches nothing of the request after
 * MHD_resume_connection. `work_mu` orders submissions against http_stop,
 * which drains the pool (resuming everything) before stopping the daemon.
 */
#include "server/http_int.h"

#include <stdatomic.h>
#include <string.h>

#include "core/clock.h"

/* The 503 of a request no validator can take. */
void http__busy(struct api_response *resp)
{
    api_fail(resp, ERR_BUSY, ERR_CAT_SERVER_BUSY,
             "every validator thread is busy and the queue is full (--validators, "
             "--validation-queue); retry");
}

/* A validator thread: run the request queued by http_offload with this
 * thread's store connection, keep the answer, resume the connection. */
static void http_validate(void *item, unsigned worker)
{
    struct http_req *r = item;
    struct http_server *h = r->h;
    struct MHD_Connection *conn = r->conn;
    struct store *s;
    struct err e;

    (void)worker;
    api_stats_validation(h->cfg.api->stats, -1, 1);
    if (clock_mono_s() - r->t_queued > HTTP_QUEUE_WAIT_S) {
        http__busy(&r->answer);
    } else {
        s = http__store(h, &e);
        if (s == NULL) {
            api_fail(&r->answer, ERR_DB, ERR_CAT_DB_UNAVAILABLE, "%s", e.msg);
        } else {
            api_handle(&h->vctx, s, &r->work_req, &r->answer);
        }
    }
    api_stats_validation(h->cfg.api->stats, 0, -1);
    atomic_fetch_sub(&h->in_work, 1);
    atomic_store(&r->work, HTTP_WORK_DONE);
    MHD_resume_connection(conn); /* r may be gone from here on */
}

/* Queue `r` (its work_req filled) for a validator and suspend the
 * connection; 503 busy when the server holds as many as it may. */
static enum MHD_Result http_offload(struct http_server *h, struct MHD_Connection *conn,
                                    struct http_req *r, const char *method, const char *url)
{
    unsigned cap = h->cfg.validators + h->cfg.validation_queue;
    struct api_response resp = {0};
    int queued = 0;

    /* in_work grows only under work_mu, so the check and the add agree */
    pthread_mutex_lock(&h->work_mu);
    if (!h->work_stopping && atomic_load(&h->in_work) < cap) {
        atomic_fetch_add(&h->in_work, 1);
        r->t_queued = clock_mono_s();
        atomic_store(&r->work, HTTP_WORK_QUEUED);
        api_stats_validation(h->cfg.api->stats, 1, 0);
        MHD_suspend_connection(conn);
        /* room was reserved in in_work, so the ring (cap slots) has room */
        queued = pool_submit(h->validators, NULL, http_validate, r, 0, NULL) == ERR_OK;
        if (!queued) {
            api_stats_validation(h->cfg.api->stats, -1, 0);
            atomic_fetch_sub(&h->in_work, 1);
            atomic_store(&r->work, HTTP_WORK_NONE);
            MHD_resume_connection(conn);
        }
    }
    pthread_mutex_unlock(&h->work_mu);
    if (queued)
        return MHD_YES;
    http__busy(&resp);
    return http__send(h, conn, r, method, url, &resp);
}

/* After the body: answer what can be answered at once, hand the rest
 * (every request with a body) to a validator. */
enum MHD_Result http__dispatch(struct http_server *h, struct MHD_Connection *conn,
                               struct http_req *r, const char *method, const char *url)
{
    struct api_request req;
    struct api_response resp = {0};
    struct store *s;
    struct err e;

    /* The body is in: give the upload slot back before the client can see
     * the answer (and send its next upload), not when MHD completes. */
    if (r->holds_upload_slot) {
        atomic_fetch_sub(&h->uploads, 1);
        api_stats_upload_end(h->cfg.api->stats);
        r->holds_upload_slot = 0;
    }
    /* the last buffers reach the file and the hash (a write error still
       in flight shows here) */
    if (!r->early_status && r->body == HTTP_BODY_UPLOAD && blob_upload_finish(r->up, &e) != ERR_OK)
        http__upload_failed(r, &e);
    if (r->early_status)
        return http__send(h, conn, r, method, url, &r->early);
    http__request_head(conn, r, method, url, &req);
    if (r->body != HTTP_BODY_NONE) {
        r->work_req = req;
        if (r->body == HTTP_BODY_JSON) {
            r->work_req.body = r->json ? r->json : "";
            r->work_req.body_len = (size_t)r->size;
        } else {
            r->work_req.upload = r->up;
        }
        return http_offload(h, conn, r, method, url);
    }
    s = http__store(h, &e);
    /* the operational endpoints answer without a database (liveness, and
       readiness that reports the database as the reason) */
    if (s == NULL && strcmp(url, "/healthz") != 0 && strcmp(url, "/readyz") != 0 &&
        strcmp(url, "/metrics") != 0) {
        api_fail(&resp, ERR_DB, ERR_CAT_DB_UNAVAILABLE, "%s", e.msg);
        return http__send(h, conn, r, method, url, &resp);
    }
    api_handle(h->cfg.api, s, &req, &resp);
    return http__send(h, conn, r, method, url, &resp);
}

void http_validator_limits(const struct ckpt_limits *base, uint64_t share, struct ckpt_limits *out)
{
    /* One validation holds at most the pickle bytes, the values the
     * restricted unpickler builds from them and the tensor list taken from
     * those (each within max_pickle_mem), or a header and its parsed JSON (a
     * few times its size): a quarter of the share for each of the first
     * three and an eighth for a header leave room for the readers' fixed
     * buffers. */
    *out = *base;
    if (out->max_pickle_bytes > share / 4)
        out->max_pickle_bytes = share / 4;
    if (out->max_pickle_mem > share / 4)
        out->max_pickle_mem = share / 4;
    if (out->max_header_bytes > share / 8)
        out->max_header_bytes = share / 8;
}

/* The validators: their limits, API context and threads. */
enum err_code http__validators_start(struct http_server *h, struct err *e)
{
    struct ckpt_limits base;

    if (h->cfg.api->limits != NULL)
        base = *h->cfg.api->limits;
    else
        ckpt_limits_default(&base);
    http_validator_limits(&base, h->cfg.memory_budget / h->cfg.validators, &h->vlimits);
    h->vctx = *h->cfg.api;
    h->vctx.limits = &h->vlimits;
    return pool_new(h->cfg.validators, h->cfg.validators + h->cfg.validation_queue, &h->validators,
                    e);
}
