/* api_ingest_base.c -- the base of a LoRA adapter submission (README.md,
 * The service, "LoRA adapters"; openapi.yaml submitCheckpoint).
 *
 * POST /v1/runs/{run}/checkpoints may name the checkpoint an adapter is
 * merged onto, either
 *   - base_run + base_step: a checkpoint the service already stores (an
 *     upload's blob, or a path it read; resolved at submission: 404
 *     not_found when the run has no such step), or
 *   - base_path: a file or folder under an allowed root, by the rules of
 *     path ingestion (api_ingest_path.c: 403 path_not_allowed outside the
 *     roots, its content identity taken now and checked again by the job).
 * The submission must then be a LoRA adapter (format peft; else 400
 * invalid_parameter) that fits the base: peft_merge_open() is tried before
 * anything is stored, so an adapter naming a module the base lacks, or of
 * another shape, is a 422 with the merge's category (lora_mismatch). The
 * job records its base (struct store_job_base); the worker opens the merged
 * checkpoint (server/worker.c), so its layer rows carry the base's names.
 */
#include "api/api_int.h"
#include "api/api_ingest_base.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt_id.h"
#include "core/formats/peft.h"
#include "storage/store_runs.h"

int api__base_query(struct api_call *c, struct api_response *resp, struct api_base_req *q)
{
    struct err e = {0};

    q->run = api_query_get(&c->q, "base_run");
    q->path = api_query_get(&c->q, "base_path");
    q->step = -1;
    if (api_query_get(&c->q, "base_step") != NULL &&
        api_query_int64(&c->q, "base_step", 0, API_STEP_MAX, 0, &q->step, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return 0;
    }
    return 1;
}

/* The declared format to read a base of format name `name` as: a shard
 * index must be read as one; anything else is sniffed. */
static enum ckpt_format api_base_declared(const char *name)
{
    return strcmp(name, ckpt_format_name(CKPT_FORMAT_SAFETENSORS_INDEX)) == 0
               ? CKPT_FORMAT_SAFETENSORS_INDEX
               : CKPT_FORMAT_UNKNOWN;
}

/* base_run + base_step: the stored checkpoint. 1, or 0 with a problem. */
static int api_base_stored(struct api_call *c, struct api_response *resp,
                           const struct api_base_req *q, struct store_job_base *b)
{
    struct store_checkpoint k;
    struct err e = {0};

    if (!api__run_name(resp, q->run))
        return 0;
    if (store_checkpoint_get(c->s, q->run, q->step, &k, &e) != ERR_OK) {
        if (e.code == ERR_NOTFOUND)
            api_fail(resp, ERR_NOTFOUND, ERR_CAT_NOT_FOUND,
                     "base: run '%s' has no checkpoint at step %lld (submit the base first)",
                     q->run, (long long)q->step);
        else
            api_problem_err(resp, &e);
        return 0;
    }
    snprintf(b->sha256, sizeof b->sha256, "%s", k.content_sha256);
    b->source = (int)k.source;
    snprintf(b->path, sizeof b->path, "%s", k.path);
    snprintf(b->format, sizeof b->format, "%s", k.format);
    snprintf(b->run, sizeof b->run, "%s", q->run);
    b->step = q->step;
    return 1;
}

/* base_path: resolved, its identity taken, validated. 1, or 0. */
static int api_base_path(struct api_call *c, struct api_response *resp, const char *path,
                         struct store_job_base *b)
{
    char *rp = NULL;
    struct ckpt_id id;
    int ok = 0;

    if (c->ctx->n_allow_roots == 0) {
        api_fail(resp, ERR_INVAL, ERR_CAT_PATH_NOT_ALLOWED,
                 "base_path: path ingestion is disabled: the server has no allowed roots "
                 "(--allow-root)");
        return 0;
    }
    rp = malloc(PATH_MAX);
    if (rp == NULL) {
        api_fail(resp, ERR_NOMEM, ERR_CAT_NONE, "out of memory");
        return 0;
    }
    if (api__path_resolve(c, resp, path, rp) &&
        api__path_identity(c, resp, rp, CKPT_FORMAT_UNKNOWN, &id) &&
        api__validate(c, resp, rp, NULL, CKPT_FORMAT_UNKNOWN, b->format, sizeof b->format)) {
        snprintf(b->sha256, sizeof b->sha256, "%s", id.sha256);
        b->source = STORE_SOURCE_PATH;
        snprintf(b->path, sizeof b->path, "%s", rp);
        ok = 1;
    }
    free(rp);
    return ok;
}

int api__base_resolve(struct api_call *c, struct api_response *resp, const struct api_base_req *q,
                      struct store_job_base *b)
{
    memset(b, 0, sizeof *b);
    if (q->path != NULL && (q->run != NULL || q->step >= 0)) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER,
                 "base: name it either by base_run and base_step, or by base_path");
        return 0;
    }
    if ((q->run != NULL) != (q->step >= 0)) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER,
                 "base: base_run and base_step go together");
        return 0;
    }
    if (q->path != NULL)
        return api_base_path(c, resp, q->path, b);
    if (q->run != NULL)
        return api_base_stored(c, resp, q, b);
    return 1;
}

/* The file or folder base `b` is read from (the blob of an upload, else
 * its path) into buf. ERR_INTERNAL without a blob store; blob_path's. */
static enum err_code api_base_file(const struct api_ctx *ctx, const struct store_job_base *b,
                                   char *buf, size_t len, struct err *e)
{
    if (b->source == STORE_SOURCE_PATH) {
        snprintf(buf, len, "%s", b->path);
        return ERR_OK;
    }
    if (ctx->blobs == NULL)
        return err_set(e, ERR_INTERNAL, "uploads are not configured (no blob store)");
    return blob_path(ctx->blobs, b->sha256, buf, len, e);
}

int api__validate_merge(struct api_call *c, struct api_response *resp, const char *path,
                        const char *shown, enum ckpt_format declared,
                        const struct store_job_base *b, char *fmt_name, size_t len)
{
    char base[STORE_PATH_MAX];
    struct ckpt *ck = NULL;
    struct err e = {0};

    if (!api__validate(c, resp, path, shown, declared, fmt_name, len))
        return 0;
    if (strcmp(fmt_name, ckpt_format_name(CKPT_FORMAT_PEFT)) != 0) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER,
                 "base: only a LoRA adapter (format peft: adapter_config.json with "
                 "adapter_model.*) is merged onto a base; this checkpoint reads as %s",
                 fmt_name);
        return 0;
    }
    if (api_base_file(c->ctx, b, base, sizeof base, &e) == ERR_OK &&
        peft_merge_open(path, base, api_base_declared(b->format), c->ctx->limits, &ck, &e) ==
            ERR_OK) {
        ckpt_close(ck);
        return 1;
    }
    if (shown != NULL)
        api__msg_hide(e.msg, sizeof e.msg, path, shown);
    if (b->source == STORE_SOURCE_UPLOAD)
        api__msg_hide(e.msg, sizeof e.msg, base, "base");
    if (e.category == ERR_CAT_NONE && (e.code == ERR_FORMAT || e.code == ERR_INVAL))
        e.category = ERR_CAT_INVALID_CHECKPOINT;
    api_problem_err(resp, &e);
    return 0;
}
