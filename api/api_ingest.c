/* api_ingest.c -- POST /v1/runs/{run}/checkpoints with an uploaded body
 * (application/octet-stream, already on disk and hashed by the server), and
 * the part shared with path ingestion: validate with the checkpoint readers,
 * then record checkpoint + job in one transaction and answer 202.
 *
 * Nothing is stored for a refused request: validation runs before the blob
 * commit and the job row, and the conflict check (same run+step, other
 * content) before the commit. The upload's temporary file is moved into the
 * blob store on success (blob_commit); on any failure it is left where it is
 * and the server deletes it.
 */
#include "api/api_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
                 {"safetensors_index", CKPT_FORMAT_SAFETENSORS_INDEX}};

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
    api_problem(resp, 400, NULL, "invalid_parameter",
                "parameter 'format': one of auto, safetensors, torch, npy, npz, index");
    return 0;
}

/* Replace every occurrence of `path` in msg with `shown` (no server paths
 * in problems about uploads). */
static void api_msg_hide(char *msg, size_t cap, const char *path, const char *shown)
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
    int status;

    if (ckpt_open(path, declared, c->ctx->limits, &ck, &e) == ERR_OK) {
        snprintf(fmt_name, len, "%s", ckpt_format_name(ckpt_format_of(ck)));
        ckpt_close(ck);
        return 1;
    }
    if (shown != NULL)
        api_msg_hide(e.msg, sizeof(e.msg), path, shown);
    switch (e.code) {
    case ERR_FORMAT:
    case ERR_INVAL: status = 422; break; /* the content is malformed (shards: invalid_index) */
    case ERR_NOTFOUND: status = e.category ? 422 : 400; break;
    default: status = 0;
    }
    if (e.category == NULL && status == 422)
        e.category = "invalid_checkpoint";
    api__fail(resp, status, &e);
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
        return e.code == ERR_NOTFOUND ? 1 : (api__fail(resp, 0, &e), 0);
    if (strcmp(k.content_sha256, in->sha256) == 0)
        return 1;
    snprintf(msg, sizeof(msg),
             "run '%s' step %lld already holds a different checkpoint (sha256 %.16s...)", in->run,
             (long long)in->step, k.content_sha256);
    api_problem(resp, 409, NULL, "checkpoint_conflict", msg);
    return 0;
}

void api__submit(struct api_call *c, struct api_response *resp, const struct api_ingest *in)
{
    struct store_submit sub = {in->run,    in->step, in->sha256, in->source,     in->path,
                               in->format, in->size, in->preset, in->params_json};
    struct store_job job;
    struct err e = {0};
    int existed = 0, late;

    if (!api_conflict_check(c, resp, in))
        return;
    /* Bytes the store already holds: commit after the submit, which then
     * puts them back if a DELETE /v1/runs removed the blob in between (it
     * removes blobs under the writers' lock, once no checkpoint refers to
     * them; after the submit this one does). */
    late = in->source == STORE_SOURCE_UPLOAD && blob_exists(c->ctx->blobs, in->sha256);
    if (in->source == STORE_SOURCE_UPLOAD && !late &&
        blob_commit(c->ctx->blobs, c->req->upload->tmp_path, in->sha256, NULL, &e) != ERR_OK) {
        api__fail(resp, 500, &e);
        return;
    }
    if (store_job_submit(c->s, &sub, &job, &existed, &e) != ERR_OK) {
        if (e.code == ERR_CONFLICT)
            e.category = "checkpoint_conflict";
        api__fail(resp, 0, &e);
        return;
    }
    if (late &&
        blob_commit(c->ctx->blobs, c->req->upload->tmp_path, in->sha256, NULL, &e) != ERR_OK) {
        api__fail(resp, 500, &e);
        return;
    }
    if (!existed) {
        api_stats_bytes_ingested(c->ctx->stats, in->size);
        if (c->ctx->job_queued != NULL)
            c->ctx->job_queued(c->ctx->job_queued_arg, job.id);
    }
    api__send_json(resp, existed ? 200 : 202, api__job_json(&job));
    if (resp->status == 200 || resp->status == 202)
        snprintf(resp->location, sizeof(resp->location), "/v1/jobs/%lld", (long long)job.id);
}

/* X-Content-SHA256, when sent, must be the body's hash. 1 if fine. */
static int api_expected_sha(struct api_response *resp, const char *hdr, const char *actual)
{
    char want[65];
    size_t n = 0;

    if (hdr == NULL)
        return 1;
    while (*hdr == ' ' || *hdr == '\t')
        hdr++;
    for (; hdr[n] != '\0' && hdr[n] != ' ' && hdr[n] != '\t' && n < 64; n++)
        want[n] = (char)tolower((unsigned char)hdr[n]);
    want[n] = '\0';
    if (!api_sha256_ok(want) || (hdr[n] != '\0' && hdr[n] != ' ' && hdr[n] != '\t')) {
        api_problem(resp, 400, NULL, "invalid_parameter",
                    "X-Content-SHA256: expected 64 hex digits");
        return 0;
    }
    if (strcmp(want, actual) != 0) {
        api_problem(resp, 400, NULL, "checksum_mismatch",
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

/* The upload variant. */
static void api_post_upload(struct api_call *c, struct api_response *resp, const char *run)
{
    const struct api_upload *up = c->req->upload;
    char preset[STORE_PRESET_MAX], hash[STORE_HASH_LEN], params[STORE_PARAMS_MAX];
    char fmt_name[STORE_FORMAT_MAX];
    enum ckpt_format fmt;
    struct err e = {0};
    struct api_ingest in = {0};

    if (api_query_get(&c->q, "step") == NULL) {
        api_problem(resp, 400, NULL, "invalid_parameter", "parameter 'step': required");
        return;
    }
    if (api_query_int64(&c->q, "step", 0, API_STEP_MAX, 0, &in.step, &e) != ERR_OK) {
        api__fail(resp, 400, &e);
        return;
    }
    if (!api__format(resp, api_query_get(&c->q, "format"), &fmt) ||
        !api__settings(c, resp, api_query_get(&c->q, "preset"), preset, hash, params))
        return;
    if (fmt == CKPT_FORMAT_SAFETENSORS_INDEX) {
        api_problem(resp, 400, NULL, "invalid_parameter",
                    "parameter 'format': a shard index cannot be uploaded; send its path, or "
                    "upload each shard as its own checkpoint");
        return;
    }
    if (c->ctx->max_upload > 0 && up->size > c->ctx->max_upload) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the body (%llu bytes) exceeds the limit of %llu bytes",
                 (unsigned long long)up->size, (unsigned long long)c->ctx->max_upload);
        api_problem(resp, 413, NULL, "limit_exceeded", msg);
        return;
    }
    if (c->ctx->blobs == NULL) {
        api_problem(resp, 500, NULL, NULL, "uploads are not configured (no blob store)");
        return;
    }
    if (!api_expected_sha(resp, c->req->content_sha256, up->sha256) ||
        !api_check_space(c->ctx, up->size, 1, resp) ||
        !api__validate(c, resp, up->tmp_path, "upload", fmt, fmt_name, sizeof(fmt_name)))
        return;
    in.run = run;
    in.sha256 = up->sha256;
    in.source = STORE_SOURCE_UPLOAD;
    in.format = fmt_name;
    in.size = up->size;
    in.preset = preset;
    in.params_json = params;
    api__submit(c, resp, &in);
}

/* POST /v1/runs/{run}/checkpoints: an upload (octet-stream) or a path (JSON). */
void api__checkpoint_post(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");

    if (!api__run_name(resp, run))
        return;
    if (c->req->upload != NULL) {
        if (!api_sha256_ok(c->req->upload->sha256)) {
            api_problem(resp, 500, NULL, NULL, "upload hash missing");
            return;
        }
        api_post_upload(c, resp, run);
    } else if (api_is_json(c->req->content_type)) {
        api__ingest_path(c, resp, run);
    } else {
        api_problem(resp, 415, NULL, NULL,
                    "send the checkpoint as application/octet-stream, or application/json "
                    "{\"step\": N, \"path\": \"...\"} for a file under an allowed root");
    }
}
