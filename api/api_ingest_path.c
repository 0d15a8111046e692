/* api_ingest_path.c -- POST /v1/runs/{run}/checkpoints with a JSON body
 * {"step": N, "path": "...", "preset"?: P, "format"?: F}: a checkpoint the
 * server reads in place (a file, a shard index, or a folder: of shards, or
 * a DCP, PEFT adapter or DeepSpeed folder, told apart by its entries,
 * ckpt_sniff_dir; only a folder of shards is read as one).
 *
 * Path rules (no allowed roots configured: path ingestion is off, 403):
 *   - the path is absolute, at most PATH_MAX bytes, with no control
 *     characters, no '\', no '%' (no encodings of any kind) and no ".."
 *     component;
 *   - its realpath (symlinks resolved) lies under an allowed root (the
 *     roots are realpath'd by the server); a path that cannot be resolved is
 *     a 400 only if it lies lexically under a root, else 403 (no probing of
 *     other folders);
 *   - for a shard index or folder, every shard's realpath lies under an
 *     allowed root too;
 *   - the file and every shard are regular files (a FIFO, socket or device
 *     is a 422 not_regular_file, found by fstat before any read: nothing
 *     blocks on it).
 * Content identity (the run+step+content rule, core/ckpt_id.h): a file's
 * SHA-256; for an index or folder of shards, the SHA-256 of
 * "<shard name>\0<shard sha256 hex>\n" over the shards in name order; for
 * another folder, the same over every file under it (relative names), each
 * file's realpath under an allowed root too. No
 * blob is written: the job reads the path again, and the worker checks
 * this identity again before it analyses (server/worker.c), so a file that
 * changed after the 202 fails its job with category "changed".
 */
#include "api/api_int.h"
#include "api/api_ingest_base.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt_id.h"
#include "core/utf8.h"
#include "storage/store_jobs.h"

/* 1 if `p` (a realpath) is an allowed root or lies under one. */
static int api_under_root(const struct api_ctx *ctx, const char *p)
{
    for (size_t i = 0; i < ctx->n_allow_roots; i++) {
        const char *r = ctx->allow_roots[i];
        size_t n = strlen(r);
        while (n > 1 && r[n - 1] == '/')
            n--;
        if (n == 1 && r[0] == '/')
            return 1;
        if (strncmp(p, r, n) == 0 && (p[n] == '\0' || p[n] == '/'))
            return 1;
    }
    return 0;
}

/* The syntax rules above; NULL if fine, else what is wrong. */
static const char *api_path_syntax(const char *p)
{
    size_t n = strlen(p);

    if (p[0] != '/')
        return "must be absolute";
    if (n >= PATH_MAX)
        return "too long";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch < 0x20 || ch == 0x7f || ch == '\\' || ch == '%')
            return "contains a control character, '\\' or '%' (paths are taken literally)";
        if (ch == '/' && p[i + 1] == '.' && p[i + 2] == '.' &&
            (p[i + 3] == '/' || p[i + 3] == '\0'))
            return "contains a '..' component";
    }
    return NULL;
}

/* ckpt_identity's shard check: every shard's realpath lies under a root. */
static enum err_code api_shard_allowed(const void *arg, const char *shard, struct err *e)
{
    const struct api_ctx *ctx = arg;

    if (api_under_root(ctx, shard))
        return ERR_OK;
    return err_setc(e, ERR_INVAL, ERR_CAT_PATH_NOT_ALLOWED,
                    "path: a shard of the index resolves outside the allowed roots");
}

/* The content identity of `rp` (ckpt_id.h). 1, or 0 with the problem in
 * resp: path_not_allowed (403) for a shard outside the roots, the readers'
 * category (422) for a non-regular file or a bad index (invalid_index when
 * they named none), invalid_parameter (400) for a file gone since realpath,
 * else the error's own problem. */
static int api_identity(struct api_call *c, struct api_response *resp, const char *rp,
                        enum ckpt_format fmt, struct ckpt_id *id)
{
    struct ckpt_id_opts o = {
        .declared = fmt, .limits = c->ctx->limits, .check = api_shard_allowed, .check_arg = c->ctx};
    struct err e = {0};

    if (ckpt_identity(rp, &o, id, &e) == ERR_OK)
        return 1;
    if (e.category == ERR_CAT_NONE && (e.code == ERR_FORMAT || e.code == ERR_INVAL))
        e.category = ERR_CAT_INVALID_INDEX;
    else if (e.category == ERR_CAT_NONE && e.code == ERR_NOTFOUND) /* gone since realpath */
        e.category = ERR_CAT_INVALID_PARAMETER;
    api_problem_err(resp, &e);
    return 0;
}

/* Resolve and check `path` into rp (PATH_MAX bytes). 1, or 0 with a problem. */
static int api_resolve(struct api_call *c, struct api_response *resp, const char *path, char *rp)
{
    const char *bad = api_path_syntax(path);
    char msg[ERR_MSG_LEN];

    if (bad != NULL) {
        snprintf(msg, sizeof(msg), "path: %s", bad);
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "%s", msg);
        return 0;
    }
    if (realpath(path, rp) == NULL) {
        if (!api_under_root(c->ctx, path)) {
            api_fail(resp, ERR_INVAL, ERR_CAT_PATH_NOT_ALLOWED,
                     "path: not under an allowed root (--allow-root)");
            return 0;
        }
        char ebuf[ERR_ERRNO_LEN];

        snprintf(msg, sizeof(msg), "path: cannot be resolved: %s",
                 err_strerror(errno, ebuf, sizeof(ebuf)));
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "%s", msg);
        return 0;
    }
    if (!api_under_root(c->ctx, rp)) {
        api_fail(resp, ERR_INVAL, ERR_CAT_PATH_NOT_ALLOWED,
                 "path: resolves outside the allowed roots (--allow-root)");
        return 0;
    }
    return 1;
}

/* 1 if `it` is a JSON number that is an integer step in [0, API_STEP_MAX]. */
static int api_json_step_ok(const cJSON *it)
{
    return cJSON_IsNumber(it) && it->valuedouble >= 0 && it->valuedouble <= (double)API_STEP_MAX &&
           it->valuedouble == (double)(int64_t)it->valuedouble;
}

/* The members of the JSON body (the base's into *bq). 1, or 0 with a 400. */
static int api_body(struct api_call *c, struct api_response *resp, cJSON *b, int64_t *step,
                    const char **path, const char **preset, const char **format,
                    struct api_base_req *bq)
{
    const char *qstep = api_query_get(&c->q, "step");
    struct err e = {0};
    cJSON *it;

    *path = *preset = NULL;
    *format = api_query_get(&c->q, "format");
    *preset = api_query_get(&c->q, "preset");
    *step = -1;
    if (qstep != NULL && api_query_int64(&c->q, "step", 0, API_STEP_MAX, 0, step, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return 0;
    }
    if (!api__base_query(c, resp, bq))
        return 0;
    cJSON_ArrayForEach(it, b)
    {
        const char *k = it->string;
        if (strcmp(k, "step") == 0 && api_json_step_ok(it)) {
            if (*step >= 0 && *step != (int64_t)it->valuedouble)
                break;
            *step = (int64_t)it->valuedouble;
        } else if (strcmp(k, "path") == 0 && cJSON_IsString(it)) {
            *path = it->valuestring;
        } else if (strcmp(k, "preset") == 0 && cJSON_IsString(it)) {
            *preset = it->valuestring;
        } else if (strcmp(k, "format") == 0 && cJSON_IsString(it)) {
            *format = it->valuestring;
        } else if (strcmp(k, "base_run") == 0 && cJSON_IsString(it)) {
            bq->run = it->valuestring;
        } else if (strcmp(k, "base_path") == 0 && cJSON_IsString(it)) {
            bq->path = it->valuestring;
        } else if (strcmp(k, "base_step") == 0 && api_json_step_ok(it)) {
            bq->step = (int64_t)it->valuedouble;
        } else {
            break;
        }
    }
    if (it != NULL) {
        char msg[ERR_MSG_LEN];
        snprintf(msg, sizeof(msg),
                 "body: member '%.64s' is unknown, of the wrong type, or "
                 "disagrees with the query",
                 it->string);
        if ((strcmp(it->string, "step") == 0 || strcmp(it->string, "base_step") == 0) &&
            cJSON_IsNumber(it) && !api_json_step_ok(it))
            snprintf(msg, sizeof(msg), "body: member '%s': not an integer in [0, %lld]", it->string,
                     API_STEP_MAX);
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "%s", msg);
        return 0;
    }
    if (*step < 0 || *path == NULL) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "%s",
                 *path == NULL ? "body: 'path' (string) is required"
                               : "body: 'step' (a non-negative integer) is required");
        return 0;
    }
    return 1;
}

static void api_ingest_resolved(struct api_call *c, struct api_response *resp, const char *run,
                                int64_t step, const char *rp, enum ckpt_format fmt,
                                const char *preset_param, const struct store_job_base *base)
{
    char preset[STORE_PRESET_MAX], hash[THASH_HEX_LEN], params[STORE_PARAMS_MAX];
    char fmt_name[STORE_FORMAT_MAX];
    struct ckpt_id id;
    struct api_ingest in = {0};

    if (!api__settings(c, resp, preset_param, preset, hash, params) ||
        !api_identity(c, resp, rp, fmt, &id))
        return;
    if (base->sha256[0] != '\0' /* an adapter folder is sniffed, not read as shards */
            ? !api__validate_merge(c, resp, rp, NULL, fmt, base, fmt_name, sizeof(fmt_name))
            : !api__validate(c, resp, rp, NULL, id.sharded ? CKPT_FORMAT_SAFETENSORS_INDEX : fmt,
                             fmt_name, sizeof(fmt_name)))
        return;
    in.base = base->sha256[0] != '\0' ? base : NULL;
    in.run = run;
    in.step = step;
    in.sha256 = id.sha256;
    in.size = id.size;
    in.source = STORE_SOURCE_PATH;
    in.path = rp;
    in.format = fmt_name;
    in.preset = preset;
    in.params_json = params;
    api__submit(c, resp, &in);
}

/* 1 if the body text holds the escape \u0000. */
static int api_has_nul_escape(const char *s, size_t n)
{
    for (size_t i = 0; i + 6 <= n; i++)
        if (memcmp(s + i, "\\u0000", 6) == 0)
            return 1;
    return 0;
}

void api__ingest_path(struct api_call *c, struct api_response *resp, const char *run)
{
    const char *path, *preset, *format;
    struct api_base_req bq;
    struct store_job_base *base = NULL;
    char *rp = NULL;
    enum ckpt_format fmt;
    int64_t step;
    cJSON *b = NULL;

    if (c->ctx->n_allow_roots == 0) {
        api_fail(resp, ERR_INVAL, ERR_CAT_PATH_NOT_ALLOWED,
                 "path ingestion is disabled: the server has no allowed roots (--allow-root)");
        return;
    }
    if (c->req->body_len > API_MAX_JSON_BODY) {
        api_fail(resp, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "JSON body larger than 1 MiB");
        return;
    }
    if (c->req->body != NULL && utf8_check((const unsigned char *)c->req->body, c->req->body_len) !=
                                    c->req->body_len) { /* RFC 8259: JSON text is UTF-8 */
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "body: not valid UTF-8");
        return;
    }
    if (c->req->body == NULL || memchr(c->req->body, '\0', c->req->body_len) != NULL ||
        (b = cJSON_ParseWithLength(c->req->body, c->req->body_len)) == NULL || !cJSON_IsObject(b)) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "body: not a JSON object");
        goto out;
    }
    if (!api_body(c, resp, b, &step, &path, &preset, &format, &bq) ||
        !api__format(resp, format, &fmt))
        goto out;
    if (api_has_nul_escape(c->req->body, c->req->body_len)) { /* cJSON cuts strings there */
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "path: contains a NUL character");
        goto out;
    }
    rp = malloc(PATH_MAX);
    base = malloc(sizeof *base);
    if (rp == NULL || base == NULL) {
        api_fail(resp, ERR_NOMEM, ERR_CAT_NONE, "out of memory");
        goto out;
    }
    if (api_resolve(c, resp, path, rp) && api__base_resolve(c, resp, &bq, base))
        api_ingest_resolved(c, resp, run, step, rp, fmt, preset, base);
out:
    free(base);
    free(rp);
    cJSON_Delete(b);
}

int api__path_resolve(struct api_call *c, struct api_response *resp, const char *path, char *rp)
{
    return api_resolve(c, resp, path, rp);
}

int api__path_identity(struct api_call *c, struct api_response *resp, const char *rp,
                       enum ckpt_format fmt, struct ckpt_id *id)
{
    return api_identity(c, resp, rp, fmt, id);
}
