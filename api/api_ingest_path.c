/* api_ingest_path.c -- POST /v1/runs/{run}/checkpoints with a JSON body
 * {"step": N, "path": "...", "preset"?: P, "format"?: F}: a checkpoint the
 * server reads in place (a file, a shard index, or a folder of shards).
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
 *     allowed root too.
 * Content identity (the run+step+content rule): a file's SHA-256; for an
 * index or folder, the SHA-256 of "<shard name>\0<shard sha256 hex>\n" over
 * the shards in name order. No blob is written.
 */
#include "api/api_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/shards.h"
#include "core/thash.h"
#include "core/utf8.h"

#define API_HASH_CHUNK (1u << 20)

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

/* SHA-256 of the file at `path` (hex) and its size. */
static enum err_code api_hash_file(const char *path, char hex[THASH_HEX_LEN], uint64_t *size,
                                   struct err *e)
{
    enum err_code rc = ERR_OK;
    struct thash h = {0};
    unsigned char d[THASH_DIGEST_LEN];
    char *buf = malloc(API_HASH_CHUNK);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t got;

    *size = 0;
    if (buf == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory hashing a file");
        goto out;
    }
    if (fd < 0) {
        rc = err_set_errno(e, ERR_IO, errno, "open %s", path);
        goto out;
    }
    rc = thash_init(&h, e);
    while (rc == ERR_OK && (got = read(fd, buf, API_HASH_CHUNK)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            rc = err_set_errno(e, ERR_IO, errno, "read %s", path);
            break;
        }
        *size += (uint64_t)got;
        rc = thash_update(&h, buf, (size_t)got, e);
    }
    if (rc == ERR_OK && (rc = thash_final(&h, d, e)) == ERR_OK)
        thash_hex(d, hex);
out:
    thash_free(&h);
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

/* The shards of an index or folder: checked against the roots, hashed
 * into one identity. 1, or 0 with the problem in resp. */
static int api_hash_shards(struct api_call *c, struct api_response *resp, const char *rp,
                           char hex[THASH_HEX_LEN], uint64_t *size)
{
    struct shards_paths sp = {0};
    struct thash h = {0};
    unsigned char d[THASH_DIGEST_LEN];
    struct err e = {0};
    int ok = 0;

    *size = 0;
    if (shards_list(rp, c->ctx->limits, &sp, &e) != ERR_OK) {
        if (e.category == NULL && e.code == ERR_FORMAT)
            e.category = "invalid_index";
        api__fail(resp, e.code == ERR_FORMAT || e.code == ERR_INVAL ? 422 : 0, &e);
        return 0;
    }
    if (thash_init(&h, &e) != ERR_OK)
        goto fail;
    for (size_t i = 0; i < sp.n; i++) {
        const char *base = strrchr(sp.paths[i], '/');
        char fh[THASH_HEX_LEN];
        uint64_t n;
        base = base ? base + 1 : sp.paths[i];
        if (!api_under_root(c->ctx, sp.paths[i])) {
            api_problem(resp, 403, NULL, "path_not_allowed",
                        "path: a shard of the index resolves outside the allowed roots");
            goto out;
        }
        if (api_hash_file(sp.paths[i], fh, &n, &e) != ERR_OK ||
            thash_update(&h, base, strlen(base) + 1, &e) != ERR_OK ||
            thash_update(&h, fh, 64, &e) != ERR_OK || thash_update(&h, "\n", 1, &e) != ERR_OK)
            goto fail;
        *size += n;
    }
    if (thash_final(&h, d, &e) != ERR_OK)
        goto fail;
    thash_hex(d, hex);
    ok = 1;
    goto out;
fail:
    api__fail(resp, 0, &e);
out:
    thash_free(&h);
    shards_paths_free(&sp);
    return ok;
}

/* Resolve and check `path` into rp (PATH_MAX bytes). 1, or 0 with a problem. */
static int api_resolve(struct api_call *c, struct api_response *resp, const char *path, char *rp)
{
    const char *bad = api_path_syntax(path);
    char msg[ERR_MSG_LEN];

    if (bad != NULL) {
        snprintf(msg, sizeof(msg), "path: %s", bad);
        api_problem(resp, 400, NULL, "invalid_parameter", msg);
        return 0;
    }
    if (realpath(path, rp) == NULL) {
        if (!api_under_root(c->ctx, path)) {
            api_problem(resp, 403, NULL, "path_not_allowed",
                        "path: not under an allowed root (--allow-root)");
            return 0;
        }
        snprintf(msg, sizeof(msg), "path: cannot be resolved: %s", strerror(errno));
        api_problem(resp, 400, NULL, "invalid_parameter", msg);
        return 0;
    }
    if (!api_under_root(c->ctx, rp)) {
        api_problem(resp, 403, NULL, "path_not_allowed",
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

/* The members of the JSON body. 1, or 0 with a 400. */
static int api_body(struct api_call *c, struct api_response *resp, cJSON *b, int64_t *step,
                    const char **path, const char **preset, const char **format)
{
    const char *qstep = api_query_get(&c->q, "step");
    struct err e = {0};
    cJSON *it;

    *path = *preset = NULL;
    *format = api_query_get(&c->q, "format");
    *preset = api_query_get(&c->q, "preset");
    *step = -1;
    if (qstep != NULL && api_query_int64(&c->q, "step", 0, API_STEP_MAX, 0, step, &e) != ERR_OK) {
        api__fail(resp, 400, &e);
        return 0;
    }
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
        if (strcmp(it->string, "step") == 0 && cJSON_IsNumber(it) && !api_json_step_ok(it))
            snprintf(msg, sizeof(msg), "body: member 'step': not an integer in [0, %lld]",
                     API_STEP_MAX);
        api_problem(resp, 400, NULL, "invalid_parameter", msg);
        return 0;
    }
    if (*step < 0 || *path == NULL) {
        api_problem(resp, 400, NULL, "invalid_parameter",
                    *path == NULL ? "body: 'path' (string) is required"
                                  : "body: 'step' (a non-negative integer) is required");
        return 0;
    }
    return 1;
}

static void api_ingest_resolved(struct api_call *c, struct api_response *resp, const char *run,
                                int64_t step, const char *rp, enum ckpt_format fmt,
                                const char *preset_param)
{
    char preset[STORE_PRESET_MAX], hash[STORE_HASH_LEN], params[STORE_PARAMS_MAX];
    char sha[THASH_HEX_LEN], fmt_name[STORE_FORMAT_MAX];
    size_t n = strlen(rp);
    struct stat st;
    struct err e = {0};
    struct api_ingest in = {0};
    int index;

    if (!api__settings(c, resp, preset_param, preset, hash, params))
        return;
    if (stat(rp, &st) != 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
        api_problem(resp, 400, NULL, "invalid_parameter",
                    "path: not a regular file, shard index or folder");
        return;
    }
    index = S_ISDIR(st.st_mode) || fmt == CKPT_FORMAT_SAFETENSORS_INDEX ||
            (n > 11 && strcmp(rp + n - 11, ".index.json") == 0);
    if (index ? !api_hash_shards(c, resp, rp, sha, &in.size)
              : api_hash_file(rp, sha, &in.size, &e) != ERR_OK) {
        if (!index)
            api__fail(resp, 0, &e);
        return;
    }
    if (!api__validate(c, resp, rp, NULL, index ? CKPT_FORMAT_SAFETENSORS_INDEX : fmt, fmt_name,
                       sizeof(fmt_name)))
        return;
    in.run = run;
    in.step = step;
    in.sha256 = sha;
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
    char *rp = NULL;
    enum ckpt_format fmt;
    int64_t step;
    cJSON *b = NULL;

    if (c->ctx->n_allow_roots == 0) {
        api_problem(resp, 403, NULL, "path_not_allowed",
                    "path ingestion is disabled: the server has no allowed roots (--allow-root)");
        return;
    }
    if (c->req->body_len > API_MAX_JSON_BODY) {
        api_problem(resp, 413, NULL, "limit_exceeded", "JSON body larger than 1 MiB");
        return;
    }
    if (c->req->body != NULL && utf8_check((const unsigned char *)c->req->body, c->req->body_len) !=
                                    c->req->body_len) { /* RFC 8259: JSON text is UTF-8 */
        api_problem(resp, 400, NULL, "invalid_parameter", "body: not valid UTF-8");
        return;
    }
    if (c->req->body == NULL || memchr(c->req->body, '\0', c->req->body_len) != NULL ||
        (b = cJSON_ParseWithLength(c->req->body, c->req->body_len)) == NULL || !cJSON_IsObject(b)) {
        api_problem(resp, 400, NULL, "invalid_parameter", "body: not a JSON object");
        goto out;
    }
    if (!api_body(c, resp, b, &step, &path, &preset, &format) || !api__format(resp, format, &fmt))
        goto out;
    if (api_has_nul_escape(c->req->body, c->req->body_len)) { /* cJSON cuts strings there */
        api_problem(resp, 400, NULL, "invalid_parameter", "path: contains a NUL character");
        goto out;
    }
    rp = malloc(PATH_MAX);
    if (rp == NULL) {
        api_problem(resp, 503, NULL, NULL, "out of memory");
        goto out;
    }
    if (api_resolve(c, resp, path, rp))
        api_ingest_resolved(c, resp, run, step, rp, fmt, preset);
out:
    free(rp);
    cJSON_Delete(b);
}
