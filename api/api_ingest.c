/* api_ingest.c -- POST /v1/runs/{run}/checkpoints with an uploaded body
 * (application/octet-stream, already on disk and hashed by the server; or
 * application/x-tar, a folder, extracted here into a folder blob), and
 * the part shared with path ingestion: validate with the checkpoint readers,
 * then record checkpoint + job in one transaction and answer 202.
 *
 * A tar body (docs/tar.md) is extracted by storage/blob_dir.c through the
 * core tar parser into a tmp folder: hostile members (links, devices, "..",
 * absolute or control-byte names, duplicates, too many members) refuse the
 * whole request, 422 hostile_archive (413 limit_exceeded), and nothing is
 * kept. The checkpoint is the extracted root (a single top-level folder is
 * followed), its identity the one path ingestion gives the same folder
 * (core/formats/ckpt_id.h), so `tar c ckpt/` and `tar -C ckpt -c .` and the
 * path submission of ckpt/ are the same content.
 *
 * Nothing is stored for a refused request: validation runs before the blob
 * commit and the job row, and the conflict check (same run+step, other
 * content) before the commit. The upload (struct blob_upload, the server's)
 * is committed into the blob store on success (blob_upload_commit); on any
 * failure it is left alone and the server's blob_upload_abort removes it.
 */
#include "api/api_int.h"
#include "api/api_ingest_base.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/formats/ckpt_id.h"
#include "core/formats/tar.h"
#include "storage/blob_dir.h"
#include "storage/store_jobs.h"
#include "storage/store_runs.h"

/* ?format= / "format": names of the formats a client may declare. */
static int api_format_parse(const char *s, enum ckpt_format *f)
{
    static const struct {
        const char *name;
        enum ckpt_format f;
    } names[] = {{"auto", CKPT_FORMAT_UNKNOWN},
                 {"safetensors", CKPT_FORMAT_SAFETENSORS},
                 {"torch", CKPT_FORMAT_TORCH_ZIP},
                 {"torch_zip", CKPT_FORMAT_TORCH_ZIP},
                 {"npy", CKPT_FORMAT_NPY},
                 {"npz", CKPT_FORMAT_NPZ},
                 {"index", CKPT_FORMAT_SAFETENSORS_INDEX},
                 {"safetensors_index", CKPT_FORMAT_SAFETENSORS_INDEX},
                 {"gguf", CKPT_FORMAT_GGUF},
                 {"dcp", CKPT_FORMAT_DCP},
                 {"deepspeed", CKPT_FORMAT_DEEPSPEED},
                 {"peft", CKPT_FORMAT_PEFT}};

    *f = CKPT_FORMAT_UNKNOWN;
    if (s == NULL)
        return 1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0) {
            *f = names[i].f;
            return 1;
        }
    return 0;
}

int api__format(struct api_response *resp, const char *s, enum ckpt_format *f)
{
    if (api_format_parse(s, f))
        return 1;
    api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER,
             "parameter 'format': one of auto, safetensors, torch, torch_zip, npy, npz, index, "
             "safetensors_index, gguf, dcp, deepspeed, peft");
    return 0;
}

/* Replace every occurrence of `path` in msg with `shown` (no server paths
 * in problems about uploads). */
void api__msg_hide(char *msg, size_t cap, const char *path, const char *shown)
{
    char out[ERR_MSG_LEN];
    size_t pl = strlen(path), o = 0;

    if (pl == 0)
        return;
    for (const char *p = msg; *p != '\0' && o + 1 < sizeof(out);) {
        if (strncmp(p, path, pl) == 0) {
            int w = snprintf(out + o, sizeof(out) - o, "%s", shown);
            o = w < 0 ? o : o + (size_t)w < sizeof(out) ? o + (size_t)w : sizeof(out) - 1;
            p += pl;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    snprintf(msg, cap, "%s", out);
}

int api__validate(struct api_call *c, struct api_response *resp, const char *path,
                  const char *shown, enum ckpt_format declared, char *fmt_name, size_t len)
{
    struct ckpt *ck = NULL;
    struct err e = {0};

    if (ckpt_open(path, declared, c->ctx->limits, &ck, &e) == ERR_OK) {
        snprintf(fmt_name, len, "%s", ckpt_format_name(ckpt_format_of(ck)));
        ckpt_close(ck);
        return 1;
    }
    if (shown != NULL)
        api__msg_hide(e.msg, sizeof(e.msg), path, shown);
    /* the readers' categories are malformed content, 422; a defect they
       named none for is invalid_checkpoint; a file gone since the path was
       resolved is the request's parameter */
    if (e.category == ERR_CAT_NONE && (e.code == ERR_FORMAT || e.code == ERR_INVAL))
        e.category = ERR_CAT_INVALID_CHECKPOINT;
    else if (e.category == ERR_CAT_NONE && e.code == ERR_NOTFOUND)
        e.category = ERR_CAT_INVALID_PARAMETER;
    api_problem_err(resp, &e);
    return 0;
}

/* 409 before anything is written when (run, step) holds other content.
 * 1 if the request may go on. */
static int api_conflict_check(struct api_call *c, struct api_response *resp,
                              const struct api_ingest *in)
{
    struct store_checkpoint k;
    struct err e = {0};
    char msg[ERR_MSG_LEN];

    if (store_checkpoint_get(c->s, in->run, in->step, &k, &e) != ERR_OK)
        return e.code == ERR_NOTFOUND ? 1 : (api_problem_err(resp, &e), 0);
    if (strcmp(k.content_sha256, in->sha256) == 0)
        return 1;
    snprintf(msg, sizeof(msg),
             "run '%s' step %lld already holds a different checkpoint (sha256 %.16s...)", in->run,
             (long long)in->step, k.content_sha256);
    api_fail(resp, ERR_CONFLICT, ERR_CAT_CHECKPOINT_CONFLICT, "%s", msg);
    return 0;
}

/* Commit an upload's bytes into the blob store: the extracted folder of a
 * tar, else the request's upload. */
static enum err_code api_commit(struct api_call *c, const struct api_ingest *in, struct err *e)
{
    if (in->dir != NULL)
        return blob_dir_commit(in->dir, in->sha256, NULL, e);
    return blob_upload_commit(c->req->upload, NULL, e);
}

void api__submit(struct api_call *c, struct api_response *resp, const struct api_ingest *in)
{
    struct store_submit sub = {.run = in->run,
                               .step = in->step,
                               .content_sha256 = in->sha256,
                               .source = in->source,
                               .path = in->path,
                               .format = in->format,
                               .size = in->size,
                               .preset = in->preset,
                               .params_json = in->params_json,
                               .base = in->base};
    struct store_job job;
    struct err e = {0};
    int existed = 0, late;
    char location[64];

    if (!api_conflict_check(c, resp, in))
        return;
    /* Bytes the store already holds: commit after the submit, which then
     * puts them back if a DELETE /v1/runs removed the blob in between (it
     * removes blobs under the writers' lock, once no checkpoint refers to
     * them; after the submit this one does). */
    late = in->source == STORE_SOURCE_UPLOAD && blob_exists(c->ctx->blobs, in->sha256);
    if (in->source == STORE_SOURCE_UPLOAD && !late && api_commit(c, in, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    if (store_job_submit(c->s, &sub, &job, &existed, &e) != ERR_OK) {
        if (e.code == ERR_CONFLICT)
            e.category = ERR_CAT_CHECKPOINT_CONFLICT;
        api_problem_err(resp, &e);
        return;
    }
    if (late && api_commit(c, in, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    if (!existed) {
        api_stats_bytes_ingested(c->ctx->stats, in->size);
        if (c->ctx->job_queued != NULL)
            c->ctx->job_queued(c->ctx->job_queued_arg, job.id);
    }
    snprintf(location, sizeof(location), "/v1/jobs/%lld", (long long)job.id);
    api__submitted(resp, api__job_json(&job), !existed, location);
}

/* X-Content-SHA256, when sent, must be the body's hash. 1 if fine. */
static int api_expected_sha(struct api_response *resp, const char *hdr, const char *actual)
{
    char want[THASH_HEX_LEN];
    size_t n = 0;

    if (hdr == NULL)
        return 1;
    while (*hdr == ' ' || *hdr == '\t')
        hdr++;
    for (; hdr[n] != '\0' && hdr[n] != ' ' && hdr[n] != '\t' && n < THASH_HEX_LEN - 1; n++)
        want[n] = (char)tolower((unsigned char)hdr[n]);
    want[n] = '\0';
    if (!thash_hex_ok(want) || (hdr[n] != '\0' && hdr[n] != ' ' && hdr[n] != '\t')) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER,
                 "X-Content-SHA256: expected 64 hex digits");
        return 0;
    }
    if (strcmp(want, actual) != 0) {
        api_fail(resp, ERR_INVAL, ERR_CAT_CHECKSUM_MISMATCH,
                 "X-Content-SHA256 does not match the SHA-256 of the received body "
                 "(corrupted or truncated in transit)");
        return 0;
    }
    return 1;
}

static int api_is_json(const char *ct)
{
    return ct != NULL && strncasecmp(ct, "application/json", 16) == 0 &&
           (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* What an upload's query says (step, format, preset), shared by both
 * body types. */
struct api_upload_params {
    int64_t step;
    enum ckpt_format fmt;
    char preset[STORE_PRESET_MAX], hash[THASH_HEX_LEN], params[STORE_PARAMS_MAX];
    struct store_job_base base; /* a LoRA adapter's base: sha256 "" when none */
};

/* The base the upload's query names (base_run + base_step, or base_path)
 * into u->base: 1, or 0 with a problem in resp. */
static int api_upload_base(struct api_call *c, struct api_response *resp,
                           struct api_upload_params *u)
{
    struct api_base_req bq;

    return api__base_query(c, resp, &bq) && api__base_resolve(c, resp, &bq, &u->base);
}

/* The query of an upload, the body's size against --max-upload and the
 * blob store: 1, or 0 with a problem in resp. */
static int api_upload_params(struct api_call *c, struct api_response *resp, int tar,
                             struct api_upload_params *u)
{
    uint64_t size = blob_upload_size(c->req->upload);
    struct err e = {0};

    if (api_query_get(&c->q, "step") == NULL) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "parameter 'step': required");
        return 0;
    }
    if (api_query_int64(&c->q, "step", 0, API_STEP_MAX, 0, &u->step, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return 0;
    }
    if (!api__format(resp, api_query_get(&c->q, "format"), &u->fmt) ||
        !api__settings(c, resp, api_query_get(&c->q, "preset"), u->preset, u->hash, u->params))
        return 0;
    if (u->fmt == CKPT_FORMAT_SAFETENSORS_INDEX && !tar) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER,
                 "parameter 'format': a shard index cannot be uploaded as one file; send its "
                 "folder as application/x-tar, or its path");
        return 0;
    }
    if (c->ctx->max_upload > 0 && size > c->ctx->max_upload) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the body (%llu bytes) exceeds the limit of %llu bytes",
                 (unsigned long long)size, (unsigned long long)c->ctx->max_upload);
        api_fail(resp, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "%s", msg);
        return 0;
    }
    if (c->ctx->blobs == NULL) {
        api_fail(resp, ERR_INTERNAL, ERR_CAT_NONE, "uploads are not configured (no blob store)");
        return 0;
    }
    /* the body's hash (what X-Content-SHA256 checks) is the bytes sent, a
       tar's too; the body is on disk, a tar's files need its size again */
    return api_expected_sha(resp, c->req->content_sha256, blob_upload_sha256(c->req->upload)) &&
           api_check_space(c->ctx, size, 1, resp) && api_upload_base(c, resp, u);
}

/* api__validate, or api__validate_merge when the upload names a base. */
static int api_upload_validate(struct api_call *c, struct api_response *resp, const char *path,
                               enum ckpt_format fmt, const struct api_upload_params *u,
                               char *fmt_name)
{
    if (u->base.sha256[0] != '\0')
        return api__validate_merge(c, resp, path, "upload", fmt, &u->base, fmt_name,
                                   STORE_FORMAT_MAX);
    return api__validate(c, resp, path, "upload", fmt, fmt_name, STORE_FORMAT_MAX);
}

/* The upload variant. */
static void api_post_upload(struct api_call *c, struct api_response *resp, const char *run)
{
    const struct blob_upload *up = c->req->upload;
    char fmt_name[STORE_FORMAT_MAX];
    struct api_upload_params u = {0};
    struct api_ingest in = {0};

    if (!api_upload_params(c, resp, 0, &u) ||
        !api_upload_validate(c, resp, blob_upload_path(up), u.fmt, &u, fmt_name))
        return;
    in.base = u.base.sha256[0] != '\0' ? &u.base : NULL;
    in.run = run;
    in.step = u.step;
    in.sha256 = blob_upload_sha256(up);
    in.source = STORE_SOURCE_UPLOAD;
    in.format = fmt_name;
    in.size = blob_upload_size(up);
    in.preset = u.preset;
    in.params_json = u.params;
    api__submit(c, resp, &in);
}

/* Extract the tar body into `d` and find its checkpoint: the root's path
 * and content identity. 1, or 0 with the problem in resp (the parser's and
 * extractor's categories; paths never shown). */
static int api_tar_extract(struct api_call *c, struct api_response *resp, struct blob_dir *d,
                           enum ckpt_format fmt, const char **root, struct ckpt_id *id)
{
    struct tar_limits lim;
    struct err e = {0};
    int is_file = 0;

    *root = NULL;
    tar_limits_default(&lim);
    lim.max_member_bytes = c->ctx->max_upload;
    lim.max_total_bytes = c->ctx->max_upload;
    if (blob_dir_extract_tar(d, blob_upload_path(c->req->upload), &lim, &e) == ERR_OK &&
        blob_dir_root(d, root, &is_file, &e) == ERR_OK &&
        ckpt_identity(*root, &(struct ckpt_id_opts){.declared = fmt, .limits = c->ctx->limits}, id,
                      &e) == ERR_OK)
        return 1;
    if (e.category == ERR_CAT_NONE && (e.code == ERR_FORMAT || e.code == ERR_INVAL))
        e.category = ERR_CAT_INVALID_CHECKPOINT;
    if (e.code == ERR_IO && e.category != ERR_CAT_INSUFFICIENT_STORAGE)
        snprintf(e.msg, sizeof(e.msg), "the tar could not be extracted (server I/O error)");
    else if (*root != NULL) /* the checkpoint's own path is "upload" */
        api__msg_hide(e.msg, sizeof(e.msg), *root, "upload");
    else
        api__msg_hide(e.msg, sizeof(e.msg), blob_tmp_dir(c->ctx->blobs), "upload");
    api_problem_err(resp, &e);
    return 0;
}

/* The tar variant (application/x-tar): a folder (or one file) as a tar. */
static void api_post_tar(struct api_call *c, struct api_response *resp, const char *run)
{
    char fmt_name[STORE_FORMAT_MAX];
    struct api_upload_params u = {0};
    struct api_ingest in = {0};
    struct blob_dir *d = NULL;
    struct ckpt_id id;
    struct err e = {0};
    const char *root = NULL;

    if (!api_upload_params(c, resp, 1, &u))
        return;
    if (blob_dir_create(c->ctx->blobs, &d, &e) != ERR_OK) {
        e.category = e.category == ERR_CAT_NONE ? ERR_CAT_IO : e.category;
        api_problem_err(resp, &e);
        return;
    }
    if (api_tar_extract(c, resp, d, u.fmt, &root, &id) &&
        api_upload_validate(c, resp, root, id.sharded ? CKPT_FORMAT_SAFETENSORS_INDEX : u.fmt, &u,
                            fmt_name)) {
        in.base = u.base.sha256[0] != '\0' ? &u.base : NULL;
        in.run = run;
        in.step = u.step;
        in.sha256 = id.sha256;
        in.source = STORE_SOURCE_UPLOAD;
        in.format = fmt_name;
        in.size = id.size; /* as path ingestion counts it: the bytes identified */
        in.preset = u.preset;
        in.params_json = u.params;
        in.dir = d;
        api__submit(c, resp, &in);
    }
    blob_dir_abort(d); /* whatever was not committed */
}

static int api_is_tar(const char *ct)
{
    return ct != NULL && strncasecmp(ct, "application/x-tar", 17) == 0 &&
           (ct[17] == '\0' || ct[17] == ';' || ct[17] == ' ');
}

/* POST /v1/runs/{run}/checkpoints: an upload (octet-stream, or a tar) or a
 * path (JSON). */
void api__checkpoint_post(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");

    if (!api__run_name(resp, run))
        return;
    if (c->req->upload != NULL) {
        if (!thash_hex_ok(blob_upload_sha256(c->req->upload))) {
            api_fail(resp, ERR_INTERNAL, ERR_CAT_NONE, "upload hash missing");
            return;
        }
        if (api_is_tar(c->req->content_type))
            api_post_tar(c, resp, run);
        else
            api_post_upload(c, resp, run);
    } else if (api_is_json(c->req->content_type)) {
        api__ingest_path(c, resp, run);
    } else {
        api_fail(resp, ERR_INVAL, ERR_CAT_UNSUPPORTED_MEDIA_TYPE,
                 "send the checkpoint as application/octet-stream, a folder as "
                 "application/x-tar, or application/json "
                 "{\"step\": N, \"path\": \"...\"} for a file under an allowed root");
    }
}
