/* api_resp.c -- response helpers: problem+json (RFC 9457) from the one
 * error -> problem table (ERR_CATEGORY_MAP in core/err.h), the success
 * answers (the only HTTP statuses written in api/), ETags and
 * If-None-Match, presets, page tokens and the free-space check. */
#include "api/api_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/numerics/preset.h"
#include "core/formats/thash.h"
#include "storage/store_runs.h"

/* --- Problems --------------------------------------------------------------- */

/* Fill `resp` with the problem of row `cat` of ERR_CATEGORY_MAP: its status,
 * title, category and Retry-After come from the table, `detail` from the
 * caller. Out of memory for the body: a fixed nomem problem. */
static void api_problem_fill(struct api_response *resp, enum err_category cat, const char *detail)
{
    cJSON *o = cJSON_CreateObject();
    const char *name = err_category_name(cat);
    int status = err_category_status(cat);
    char type[96];

    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->status = status;
    resp->retry_after = err_category_retry(cat);
    resp->etag[0] = '\0';
    resp->location[0] = '\0';
    snprintf(resp->content_type, sizeof(resp->content_type), "application/problem+json");
    snprintf(type, sizeof(type), "urn:farmsd:problem:%s", name);
    if (o != NULL && cJSON_AddStringToObject(o, "type", type) &&
        cJSON_AddStringToObject(o, "title", err_category_title(cat)) &&
        cJSON_AddNumberToObject(o, "status", status) &&
        cJSON_AddStringToObject(o, "detail", detail ? detail : "") &&
        cJSON_AddStringToObject(o, "category", name))
        resp->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (resp->body == NULL) { /* no memory for the problem: a fixed one */
        static const char fixed[] =
            "{\"type\":\"urn:farmsd:problem:nomem\",\"title\":\"Service Unavailable\","
            "\"status\":503,\"detail\":\"out of memory\",\"category\":\"nomem\"}";
        resp->status = err_category_status(ERR_CAT_NOMEM);
        resp->retry_after = err_category_retry(ERR_CAT_NOMEM);
        resp->body = malloc(sizeof(fixed));
        if (resp->body != NULL)
            memcpy(resp->body, fixed, sizeof(fixed));
    }
    resp->body_len = resp->body ? strlen(resp->body) : 0;
}

void api_problem_err(struct api_response *resp, const struct err *e)
{
    api_problem_fill(resp, err_problem_category(e), e->msg[0] ? e->msg : err_str(e->code));
}

void api_fail(struct api_response *resp, enum err_code code, enum err_category category,
              const char *fmt, ...)
{
    char detail[API_DETAIL_MAX];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    api_problem_fill(resp, category != ERR_CAT_NONE ? category : err_code_category(code), detail);
}

void api_response_free(struct api_response *resp)
{
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

/* --- Success answers ------------------------------------------------------------ */

/* The success statuses; the failures' come from ERR_CATEGORY_MAP. */
enum { API_STATUS_OK = 200, API_STATUS_ACCEPTED = 202, API_STATUS_NOT_MODIFIED = 304 };

void api__ok_body(struct api_response *resp, char *body, size_t len, const char *content_type)
{
    if (body == NULL) {
        api_fail(resp, ERR_NOMEM, ERR_CAT_NONE, "out of memory building the response");
        return;
    }
    free(resp->body);
    resp->body = body;
    resp->body_len = len;
    resp->status = API_STATUS_OK;
    snprintf(resp->content_type, sizeof(resp->content_type), "%s", content_type);
}

void api__ok(struct api_response *resp, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;

    cJSON_Delete(obj);
    api__ok_body(resp, text, text ? strlen(text) : 0, "application/json");
}

void api__submitted(struct api_response *resp, cJSON *obj, int queued, const char *location)
{
    api__ok(resp, obj);
    if (!api__is_ok(resp))
        return;
    if (queued)
        resp->status = API_STATUS_ACCEPTED;
    snprintf(resp->location, sizeof(resp->location), "%s", location);
}

void api__not_modified(struct api_response *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->content_type[0] = '\0';
    resp->status = API_STATUS_NOT_MODIFIED;
}

int api__is_ok(const struct api_response *resp)
{
    return resp->status == API_STATUS_OK;
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

size_t api__key_str(char *key, size_t cap, size_t len, const char *s, char sep)
{
    size_t n = strlen(s), need = n + (sep != '\0');

    if (len >= cap || need >= cap - len)
        return cap;
    memcpy(key + len, s, n);
    len += n;
    if (sep != '\0')
        key[len++] = sep;
    key[len] = '\0';
    return len;
}

size_t api__key_int(char *key, size_t cap, size_t len, int64_t v, char sep)
{
    char digits[24], *p = digits + sizeof(digits);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    *--p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    return api__key_str(key, cap, len, p, sep);
}

int api__etag(struct api_call *c, struct api_response *resp, int64_t version, const char *key)
{
    char head[96];
    size_t n;

    _Static_assert(sizeof(resp->etag) >= API_CACHE_ETAG_LEN, "the ETag fits");
    n = api__key_str(head, sizeof(head), 0, store_instance_id(c->s), '|');
    n = api__key_int(head, sizeof(head), n, version, '|');
    if (n >= sizeof(head) || !api_cache_etag(c->ctx->cache, head, key, resp->etag))
        return 0; /* no ETag: the response is still correct */
    if (!api__inm_match(c->req->if_none_match, resp->etag)) {
        /* Rendered before for this ETag: answer from the cache. */
        if (!api_cache_get(c->ctx->cache, resp->etag, &resp->body, &resp->body_len,
                           resp->content_type))
            return 0;
        resp->status = API_STATUS_OK;
        return 1;
    }
    api__not_modified(resp);
    return 1;
}

int api__run_name(struct api_response *resp, const char *run)
{
    char msg[ERR_MSG_LEN];

    if (run != NULL && api_name_ok(run))
        return 1;
    snprintf(msg, sizeof(msg), "run '%.160s': %s", run ? run : "", API_RUN_NAME_RULE);
    api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "%s", msg);
    return 0;
}

int api__run_version(struct api_call *c, struct api_response *resp, const char *run,
                     int64_t *version)
{
    struct err e = {0};

    if (!api__run_name(resp, run))
        return 0;
    if (store_run_version(c->s, run, version, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return 0;
    }
    return 1;
}

/* --- Presets, page tokens ------------------------------------------------------- */

/* The selection settings of query parameters `layout` and `weights`
 * (docs/checkpoint-formats.md, Framework layouts) applied to *p: 1, or 0
 * with a 400 invalid_parameter in resp. */
static int api__selection(struct api_call *c, struct api_response *resp, struct farms_params *p)
{
    static const char *const keys[] = {"layout", "weights"};
    char kv[FARMS_WEIGHTS_MAX + 16];
    struct err e = {0};

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = api_query_get(&c->q, keys[i]);
        if (v == NULL)
            continue;
        if (strlen(v) >= FARMS_WEIGHTS_MAX)
            err_set(&e, ERR_INVAL, "longer than %d bytes", FARMS_WEIGHTS_MAX - 1);
        else
            snprintf(kv, sizeof(kv), "%s=%s", keys[i], v);
        if (e.msg[0] != '\0' || preset_set(p, kv, &e) != ERR_OK) {
            api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "parameter '%s': %s", keys[i],
                     e.msg);
            return 0;
        }
    }
    return 1;
}

int api__settings(struct api_call *c, struct api_response *resp, const char *preset_param,
                  char *name, char *hash, char *params_json)
{
    struct farms_params p;
    struct err e = {0};
    const char *pn = preset_param ? preset_param : c->ctx->default_preset;

    if (pn == NULL)
        pn = PRESET_DEFAULT_NAME;
    if (strlen(pn) >= STORE_PRESET_MAX || preset_get(pn, &p, &e) != ERR_OK) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "parameter 'preset': %s",
                 e.msg[0] ? e.msg : "too long");
        return 0;
    }
    snprintf(name, STORE_PRESET_MAX, "%s", pn);
    if (!api__selection(c, resp, &p))
        return 0;
    if (preset_to_json(&p, params_json, STORE_PARAMS_MAX, &e) != ERR_OK ||
        store_settings_hash(params_json, hash, &e) != ERR_OK) {
        api_problem_err(resp, &e);
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
        api_problem_err(resp, &e);
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

void api__page_ok(struct api_response *resp, cJSON *o, int ok, const char *list, const char *cur)
{
    if (!ok || !api__add_page_token(o, list, cur)) {
        cJSON_Delete(o);
        o = NULL;
    }
    api__ok(resp, o);
}

/* --- Disk space ----------------------------------------------------------------- */

int api_check_space(const struct api_ctx *ctx, uint64_t size, int on_disk,
                    struct api_response *resp)
{
    uint64_t avail = 0, need = on_disk ? size : 2 * size;
    struct err e = {0};

    if (ctx->blobs == NULL)
        return 1;
    if (blob_free_bytes(ctx->blobs, &avail, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return 0;
    }
    if (need < ctx->min_free_bytes)
        need = ctx->min_free_bytes;
    if (avail >= need)
        return 1;
    api_fail(resp, ERR_IO, ERR_CAT_INSUFFICIENT_STORAGE,
             "not enough free disk space for a %llu-byte checkpoint: %llu bytes free, %llu needed",
             (unsigned long long)size, (unsigned long long)avail, (unsigned long long)need);
    return 0;
}
