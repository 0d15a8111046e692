/* http_body.c -- request bodies for the libmicrohttpd adapter (http_int.h):
 * the checks made before the body is read, JSON bodies read into memory,
 * and upload bodies streamed into a blob_upload.
 *
 * Uploads: the request owns its struct blob_upload (storage/blob.h) from
 * the first body call to the completion callback, which aborts it on every
 * path; that removes the tmp file unless the API committed the upload.
 * Body chunks are copied into the upload's buffers (its own threads write
 * and hash them); after the body, blob_upload_finish writes and hashes the
 * rest, and a write error still in flight answers 500 (507 for a full
 * disk). The validator borrows it through api_request.upload.
 */
#include "server/http_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int http_is_json(const char *content_type)
{
    return content_type != NULL && strncasecmp(content_type, "application/json", 16) == 0;
}

/* First call of a request with a body: refuse what the API would refuse
 * anyway (route, auth, parameters) before reading a byte, then choose JSON
 * or upload and check the limits. */
void http__body_begin(struct http_server *h, struct MHD_Connection *conn, struct http_req *r,
                      const char *method, const char *url)
{
    const struct api_ctx *ctx = h->cfg.api;
    const char *cl = http__header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t len = cl ? strtoull(cl, NULL, 10) : 0;
    struct api_request head;
    struct err e;

    http__request_head(conn, r, method, url, &head);
    if (!api_precheck(ctx, &head, &r->early)) {
        r->early_status = r->early.status;
        r->counted = 1;
        return;
    }
    if (atomic_load(&h->in_work) >= h->cfg.validators + h->cfg.validation_queue) {
        http__busy(&r->early); /* full now: refuse before reading the body */
        r->early_status = r->early.status;
        return;
    }
    if (http_is_json(http__header(conn, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        r->body = HTTP_BODY_JSON;
        if (len > API_MAX_JSON_BODY) {
            api_fail(&r->early, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                     "a JSON body may have at most 1048576 bytes");
            r->early_status = r->early.status;
        }
        return;
    }
    r->body = HTTP_BODY_UPLOAD;
    if (len > h->cfg.max_upload) {
        char d[160];
        snprintf(d, sizeof(d), "the body has %llu bytes; the limit (--max-upload) is %llu",
                 (unsigned long long)len, (unsigned long long)h->cfg.max_upload);
        api_fail(&r->early, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "%s", d);
        r->early_status = r->early.status;
        return;
    }
    if (len > 0 && !api_check_space(ctx, len, 0, &r->early)) {
        r->early_status = r->early.status;
        return;
    }
    if (atomic_fetch_add(&h->uploads, 1) >= h->cfg.max_uploads) {
        atomic_fetch_sub(&h->uploads, 1);
        api_fail(&r->early, ERR_BUSY, ERR_CAT_SERVER_BUSY,
                 "the server is receiving as many uploads as --max-uploads allows; retry");
        r->early_status = r->early.status;
        return;
    }
    r->holds_upload_slot = 1;
    api_stats_upload_begin(ctx->stats);
    if (blob_upload_create(ctx->blobs, &r->up, &e) != ERR_OK) {
        api_fail(&r->early, ERR_IO, ERR_CAT_IO, "%s", e.msg);
        r->early_status = r->early.status;
    }
}

/* The upload's write (or finish) failed: the early answer, 500 or 507. */
void http__upload_failed(struct http_req *r, struct err *e)
{
    if (e->category != ERR_CAT_INSUFFICIENT_STORAGE)
        e->category = ERR_CAT_IO; /* a write error is the server's: 500, or 507 */
    api_problem_err(&r->early, e);
    r->early_status = r->early.status;
}

/* One chunk of body. */
void http__body_chunk(struct http_server *h, struct http_req *r, const char *data, size_t n)
{
    struct err e;

    r->size += n;
    if (r->early_status || r->body == HTTP_BODY_NONE)
        return; /* answered already, or a body nobody reads: drain */
    if (r->body == HTTP_BODY_JSON) {
        char *grown;
        if (r->size > API_MAX_JSON_BODY) {
            api_fail(&r->early, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                     "a JSON body may have at most 1048576 bytes");
            r->early_status = r->early.status;
            return;
        }
        grown = realloc(r->json, (size_t)r->size + 1);
        if (grown == NULL) {
            api_fail(&r->early, ERR_NOMEM, ERR_CAT_NONE, "retry later");
            r->early_status = r->early.status;
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
        api_fail(&r->early, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "%s", d);
        r->early_status = r->early.status;
        return;
    }
    if (blob_upload_write(r->up, data, n, &e) != ERR_OK)
        http__upload_failed(r, &e);
}
