/* api_resp.c -- response helpers: problem+json (RFC 9457) and the only
 * err_code -> HTTP status table, JSON bodies, ETags and If-None-Match,
 * presets, page tokens and the free-space check. */
#include "api/api_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/numerics/preset.h"
#include "core/formats/thash.h"
#include "storage/store_runs.h"

/* --- Problems --------------------------------------------------------------- */

static const char *api_reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}

/* The table of style.md §4.7. Retry-After seconds in *retry. */
/* The one err_code -> HTTP status table. A size refusal is 413 when it is a
 * limit (no category, or limit_exceeded); a reader's defect that is filed
 * under ERR_TOOBIG (header_too_large: a safetensors header over the format's
 * own maximum) is malformed content, 422. */
static int api_status_of(const struct err *e, int *retry)
{
    *retry = 0;
    if (e->code == ERR_TOOBIG && e->category != NULL && strcmp(e->category, "limit_exceeded") != 0)
        return 422;
    switch (e->code) {
    case ERR_INVAL: return 400;
    case ERR_FORMAT: return 422; /* well-formed request, malformed checkpoint content */
    case ERR_NOTFOUND: return 404;
    case ERR_TOOBIG: return 413;
    case ERR_CONFLICT:
    case ERR_CANCELED: return 409;
    case ERR_BUSY: *retry = 1; return 503;
    case ERR_NOMEM: *retry = 5; return 503;
    case ERR_OK:
    case ERR_IO:
    case ERR_DB:
    case ERR_NUMERIC:
    case ERR_INTERNAL: break;
    }
    return 500;
}

/* The category of a problem whose caller named none: by status, so every
 * problem carries one (clients switch on `category`, not on `detail`). */
static const char *api_status_category(int status)
{
    switch (status) {
    case 400: return "invalid_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "timeout";
    case 409: return "conflict";
    case 413: return "limit_exceeded";
    case 415: return "unsupported_media_type";
    case 422: return "malformed";
    case 429: return "too_many_requests";
    case 503: return "unavailable";
    case 507: return "insufficient_storage";
    default: return status >= 500 ? "internal" : "error";
    }
}

/* The category of an error that has none: by its code (the names the
 * server's own problems use: busy, nomem, io, db), else by `status`. */
static const char *api_code_category(enum err_code code, int status)
{
    switch (code) {
    case ERR_NOMEM: return "nomem";
    case ERR_BUSY: return "busy";
    case ERR_IO: return "io";
    case ERR_DB: return "db";
    case ERR_NUMERIC: return "numeric";
    case ERR_CANCELED: return "canceled";
    case ERR_NOTFOUND: return "not_found";
    case ERR_INVAL:
    case ERR_FORMAT:
    case ERR_TOOBIG:
    case ERR_CONFLICT:
    case ERR_INTERNAL:
    case ERR_OK: break;
    }
    return api_status_category(status);
}

void api_problem(struct api_response *resp, int status, const char *title, const char *category,
                 const char *detail)
{
    cJSON *o = cJSON_CreateObject();
    char type[96];

    if (category == NULL)
        category = api_status_category(status);
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->status = status;
    resp->etag[0] = '\0';
    resp->location[0] = '\0';
    snprintf(resp->content_type, sizeof(resp->content_type), "application/problem+json");
    snprintf(type, sizeof(type), "urn:farmsd:problem:%s", category);
    if (o != NULL && cJSON_AddStringToObject(o, "type", type) &&
        cJSON_AddStringToObject(o, "title", title ? title : api_reason(status)) &&
        cJSON_AddNumberToObject(o, "status", status) &&
        cJSON_AddStringToObject(o, "detail", detail ? detail : "") &&
        cJSON_AddStringToObject(o, "category", category))
        resp->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (resp->body == NULL) { /* no memory for the problem: a fixed one */
        static const char fixed[] =
            "{\"type\":\"urn:farmsd:problem:nomem\",\"title\":\"Service Unavailable\","
            "\"status\":503,\"detail\":\"out of memory\",\"category\":\"nomem\"}";
        resp->status = 503;
        resp->retry_after = 5;
        resp->body = malloc(sizeof(fixed));
        if (resp->body != NULL)
            memcpy(resp->body, fixed, sizeof(fixed));
    }
    resp->body_len = resp->body ? strlen(resp->body) : 0;
}

void api_problem_err(struct api_response *resp, const struct err *e)
{
    api__fail(resp, 0, e);
}

void api__fail(struct api_response *resp, int status_override, const struct err *e)
{
    int retry, status = api_status_of(e, &retry);

    if (status_override > 0)
        status = status_override;
    api_problem(resp, status, api_reason(status),
                e->category ? e->category : api_code_category(e->code, status),
                e->msg[0] ? e->msg : err_str(e->code));
    if (resp->status == status && status == 503)
        resp->retry_after = retry ? retry : 1;
}

void api_response_free(struct api_response *resp)
{
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

void api__send_json(struct api_response *resp, int status, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;

    cJSON_Delete(obj);
    if (text == NULL) {
        api_problem(resp, 503, NULL, "nomem", "out of memory building the response");
        resp->retry_after = 5;
        return;
    }
    free(resp->body);
    resp->body = text;
    resp->body_len = strlen(text);
    resp->status = status;
    snprintf(resp->content_type, sizeof(resp->content_type), "application/json");
}

cJSON *api__time_json(double t)
{
    char buf[80];
    struct tm tm;
    time_t s = (time_t)floor(t);
    int ms = (int)((t - floor(t)) * 1000.0);

    if (!(t > 0) || gmtime_r(&s, &tm) == NULL)
        return cJSON_CreateNull();
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms > 999 ? 999 : ms);
    return cJSON_CreateString(buf);
}

/* --- ETags -------------------------------------------------------------------- */

/* Next entity-tag of the list at *p ("W/" dropped): its opaque-tag (with the
 * quotes) in [*tag, *tag + *len); 0 at the end or on bad syntax. */
static int api_inm_next(const char **p, const char **tag, size_t *len)
{
    const char *s = *p, *end;

    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    if (*s == '\0')
        return 0;
    if (s[0] == 'W' && s[1] == '/')
        s += 2;
    if (*s == '*') {
        *tag = s;
        *len = 1;
        *p = s + 1;
        return 1;
    }
    if (*s != '"' || (end = strchr(s + 1, '"')) == NULL)
        return 0;
    *tag = s;
    *len = (size_t)(end + 1 - s);
    *p = end + 1;
    return 1;
}

int api__inm_match(const char *inm, const char *etag)
{
    const char *p = inm, *tag;
    size_t len, el = strlen(etag);

    if (inm == NULL || el == 0)
        return 0;
    if (etag[0] == 'W' && etag[1] == '/') { /* weak comparison: ignore W/ on both sides */
        etag += 2;
        el -= 2;
    }
    while (api_inm_next(&p, &tag, &len))
        if ((len == 1 && tag[0] == '*') || (len == el && memcmp(tag, etag, len) == 0))
            return 1;
    return 0;
}

int api__etag(struct api_call *c, struct api_response *resp, int64_t version, const char *key)
{
    struct thash h = {0};
    unsigned char d[THASH_DIGEST_LEN];
    char head[96], hex[THASH_HEX_LEN];

    snprintf(head, sizeof(head), "%s|%lld|", store_instance_id(c->s), (long long)version);
    if (thash_init(&h, NULL) != ERR_OK || thash_update(&h, head, strlen(head), NULL) != ERR_OK ||
        thash_update(&h, key, strlen(key), NULL) != ERR_OK || thash_final(&h, d, NULL) != ERR_OK) {
        thash_free(&h);
        return 0; /* no ETag: the response is still correct */
    }
    thash_hex(d, hex);
    snprintf(resp->etag, sizeof(resp->etag), "\"%.32s\"", hex);
    if (!api__inm_match(c->req->if_none_match, resp->etag)) {
        /* Rendered before for this ETag: answer from the cache. */
        if (!api_cache_get(c->ctx->cache, resp->etag, &resp->body, &resp->body_len,
                           resp->content_type))
            return 0;
        resp->status = 200;
        return 1;
    }
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->content_type[0] = '\0';
    resp->status = 304;
    return 1;
}

int api__run_name(struct api_response *resp, const char *run)
{
    char msg[ERR_MSG_LEN];

    if (run != NULL && api_name_ok(run))
        return 1;
    snprintf(msg, sizeof(msg), "run '%.160s': %s", run ? run : "", API_RUN_NAME_RULE);
    api_problem(resp, 400, NULL, "invalid_parameter", msg);
    return 0;
}

int api__run_version(struct api_call *c, struct api_response *resp, const char *run,
                     int64_t *version)
{
    struct err e = {0};

    if (!api__run_name(resp, run))
        return 0;
    if (store_run_version(c->s, run, version, &e) != ERR_OK) {
        api__fail(resp, 0, &e);
        return 0;
    }
    return 1;
}

/* --- Presets, page tokens ------------------------------------------------------- */

int api__settings(struct api_call *c, struct api_response *resp, const char *preset_param,
                  char *name, char *hash, char *params_json)
{
    struct farms_params p;
    struct err e = {0};
    const char *pn = preset_param ? preset_param : c->ctx->default_preset;

    if (pn == NULL)
        pn = "farms-llm";
    if (strlen(pn) >= STORE_PRESET_MAX || preset_get(pn, &p, &e) != ERR_OK) {
        char msg[ERR_MSG_LEN + 32];
        snprintf(msg, sizeof(msg), "parameter 'preset': %s", e.msg[0] ? e.msg : "too long");
        api_problem(resp, 400, NULL, "invalid_parameter", msg);
        return 0;
    }
    snprintf(name, STORE_PRESET_MAX, "%s", pn);
    if (preset_to_json(&p, params_json, STORE_PARAMS_MAX, &e) != ERR_OK ||
        store_settings_hash(params_json, hash, &e) != ERR_OK) {
        api__fail(resp, 0, &e);
        return 0;
    }
    return 1;
}

int api__preset_param(struct api_call *c, struct api_response *resp, char *name, char *hash)
{
    const char *pq = api_query_get(&c->q, "preset");
    char params[STORE_PARAMS_MAX];

    name[0] = hash[0] = '\0';
    return pq == NULL || api__settings(c, resp, pq, name, hash, params);
}

int api__preset_default(struct api_call *c, struct api_response *resp, const char *run,
                        int64_t step, char *name, char *hash)
{
    char params[STORE_PARAMS_MAX];
    struct err e = {0};

    if (name[0] != '\0')
        return 1;
    if (store_read_preset(c->s, run, step, name, hash, &e) != ERR_OK) {
        api__fail(resp, 0, &e);
        return 0;
    }
    return name[0] != '\0' || api__settings(c, resp, NULL, name, hash, params);
}

int api__add_page_token(cJSON *obj, const char *list, const char *cursor)
{
    char tok[API_PAGE_TOKEN_MAX];

    if (cursor == NULL || cursor[0] == '\0')
        return cJSON_AddNullToObject(obj, "next_page_token") != NULL;
    if (api_page_token_encode(list, cursor, tok, sizeof(tok), NULL) != ERR_OK)
        return 0;
    return cJSON_AddStringToObject(obj, "next_page_token", tok) != NULL;
}

/* --- Disk space ----------------------------------------------------------------- */

int api_check_space(const struct api_ctx *ctx, uint64_t size, int on_disk,
                    struct api_response *resp)
{
    uint64_t avail = 0, need = on_disk ? size : 2 * size;
    struct err e = {0};
    char msg[200];

    if (ctx->blobs == NULL)
        return 1;
    if (blob_free_bytes(ctx->blobs, &avail, &e) != ERR_OK) {
        api__fail(resp, 500, &e);
        return 0;
    }
    if (need < ctx->min_free_bytes)
        need = ctx->min_free_bytes;
    if (avail >= need)
        return 1;
    snprintf(msg, sizeof(msg),
             "not enough free disk space for a %llu-byte checkpoint: %llu bytes free, %llu needed",
             (unsigned long long)size, (unsigned long long)avail, (unsigned long long)need);
    api_problem(resp, 507, NULL, "insufficient_storage", msg);
    return 0;
}
