/* worker_open.c -- a claimed job's checkpoint opened as submitted
 * (worker_int.h), for planning it (worker_plan.c) and for each of its tasks
 * (worker_task.c).
 *
 * An upload is read from its blob; a single path file from a checked
 * snapshot (kept for the job's tasks in this process: worker_snap.c); a
 * shard set or a LoRA adapter's path in place, its identity checked after
 * every tensor was hashed (and a task checks every tensor's bytes against
 * the hash planned). A LoRA adapter is merged onto its base, which is read
 * the same way. A path that no longer opens, or reads as other bytes, fails
 * the job with category "changed".
 */
#include "server/worker_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/formats/ckpt_id.h"
#include "core/formats/peft.h"
#include "storage/blob.h"

/* The format to read a checkpoint validated as format `name` with, for
 * ckpt_open and ckpt_identity: a shard index or folder must be read as one;
 * anything else is sniffed. */
static enum ckpt_format worker_format_named(const char *name)
{
    return strcmp(name, ckpt_format_name(CKPT_FORMAT_SAFETENSORS_INDEX)) == 0
               ? CKPT_FORMAT_SAFETENSORS_INDEX
               : CKPT_FORMAT_UNKNOWN;
}

/* The format a path job was submitted as (worker_format_named). */
static enum ckpt_format worker_format(const struct store_job *job)
{
    return worker_format_named(job->format);
}

/* What a job reads from a path and must find as submitted: the job's own
 * checkpoint, or the base of a LoRA adapter job. */
struct worker_src {
    const char *path;   /* as submitted (named in messages) */
    const char *sha256; /* its identity at submission */
    enum ckpt_format fmt;
    const char *what; /* "checkpoint" or "base checkpoint" */
};

static struct worker_src worker_src_job(const struct store_job *job)
{
    return (struct worker_src){job->path, job->content_sha256, worker_format(job), "checkpoint"};
}

/* The identity of the checkpoint at `path` (src's file, or a snapshot of
 * it) equals the submitted one, else ERR_IO "changed" naming src's path. A
 * checkpoint that cannot be read any more (gone, no longer regular, a
 * broken index) has changed too; only running out of memory is not a
 * change. */
static enum err_code worker_identity_check(const struct worker_job *j, const struct worker_src *src,
                                           const char *path, struct err *e)
{
    struct ckpt_id id;
    struct err ie = {0};

    if (ckpt_identity(path,
                      &(struct ckpt_id_opts){.declared = src->fmt, .limits = j->w->cfg.limits}, &id,
                      &ie) != ERR_OK) {
        if (ie.code == ERR_NOMEM) {
            *e = ie;
            return ie.code;
        }
        return err_setc(e, ERR_IO, ERR_CAT_CHANGED,
                        "the %s at %.120s changed after it was submitted: %.200s", src->what,
                        src->path, ie.msg);
    }
    if (strcmp(id.sha256, src->sha256) != 0)
        return err_setc(e, ERR_IO, ERR_CAT_CHANGED,
                        "the %s at %.120s changed after it was submitted (sha256 now "
                        "%.12s..., submitted %.12s...): nothing was analysed from it",
                        src->what, src->path, id.sha256, src->sha256);
    return ERR_OK;
}

/* A path job reads the file in place, so before anything is analysed (or
 * served from the cache) its content identity (core/ckpt_id.h) must still
 * be the one submitted. Checked after engine_select hashed every tensor:
 * the tensor hashes then belong to the submitted bytes (unless the file
 * changed and changed back in between), and engine_run checks each
 * tensor's bytes against its hash again as it loads them. Cost: one more
 * sequential read of the shards (GB/s), against minutes of analysis.
 * (A single file is analysed from a checked snapshot instead.) */
static enum err_code worker_verify_path(const struct worker_job *j, struct err *e)
{
    struct worker_src src = worker_src_job(&j->job);

    return worker_identity_check(j, &src, j->job.path, e);
}

/* Before a long uninterruptible step (the identity check reads the whole
 * file): ERR_CANCELED if the server is stopping or the job was canceled
 * (j->canceled then set), so a shutdown need not wait for it. */
static enum err_code worker_check_stop(struct worker_job *j, struct err *e)
{
    enum store_job_state st = STORE_JOB_RUNNING;
    struct err se;

    if (worker__stopping(j->w))
        return err_set(e, ERR_CANCELED, "stopping");
    if (store_job_state(j->s, j->job.id, &st, &se) == ERR_OK && st == STORE_JOB_CANCELED) {
        j->canceled = 1;
        return err_set(e, ERR_CANCELED, "job %lld is canceled", (long long)j->job.id);
    }
    return ERR_OK;
}

/* A path job failed with `rc` and `e`: if the file changed since the
 * submission (a truncated file fails to parse or read, a replaced one may
 * be malformed), say so, category "changed", instead of the symptom.
 * Returns the code to report. */
enum err_code worker__explain_path_failure(const struct worker_job *j, enum err_code rc,
                                           struct err *e)
{
    struct err ve = {0};

    if (j->job.source != STORE_SOURCE_PATH || rc == ERR_CANCELED || rc == ERR_NOMEM ||
        rc == ERR_DB || rc == ERR_BUSY || e->category == ERR_CAT_CHANGED)
        return rc;
    if (worker_verify_path(j, &ve) == ERR_OK || ve.category != ERR_CAT_CHANGED)
        return rc;
    *e = ve;
    return ve.code;
}

/* 1 if the checkpoint `src` names is one file (not an index or a folder of
 * shards): such a file is analysed from a snapshot. */
static int worker_single_file(const struct worker_src *src)
{
    size_t n = strlen(src->path);
    struct stat st;

    if (src->fmt == CKPT_FORMAT_SAFETENSORS_INDEX ||
        (n >= 11 && strcmp(src->path + n - 11, ".index.json") == 0))
        return 0;
    return stat(src->path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A single-file path job is analysed from this process's own copy of the
 * file (blob_tmp_copy: a reflink where the file system can, else a kernel
 * copy), made at the start of the job and checked against the submitted
 * identity: whatever a training loop does to the file afterwards (rewrite,
 * truncate, replace, even change and change back), the analysis reads
 * exactly the submitted bytes. A copy whose identity differs (the file
 * changed after the 202, or while it was copied) fails the job "changed".
 * The copy's path goes to `snap` (removed by the caller). Cost: one
 * sequential copy (GB/s, free with reflinks) and the file's size in the
 * blob folder while the job runs. */
static enum err_code worker_snapshot(const struct worker_job *j, const struct worker_src *src,
                                     char *snap, size_t len, struct err *e)
{
    struct err ce = {0};
    enum err_code rc = blob_tmp_copy(j->w->cfg.blobs, src->path, snap, len, &ce);

    if (rc == ERR_NOMEM) {
        *e = ce;
        return rc;
    }
    if (rc != ERR_OK)
        return err_setc(e, ERR_IO, ERR_CAT_CHANGED,
                        "the %s at %.120s can no longer be read as submitted: %.200s", src->what,
                        src->path, ce.msg);
    return worker_identity_check(j, src, snap, e);
}

/* The snapshot of `src` (the job's checkpoint, or its LoRA base: `base`)
 * for this process's runners: the one kept for the job if there is one
 * (whatever the file holds now), else, when `src` is one file, a new
 * checked copy (worker_snapshot), kept (worker_snap.c). Its path in `snap`
 * ("" when `src` is read in place); j->snap_held or j->bsnap_held say that
 * it is held (the caller releases it). */
static enum err_code worker_snapshot_shared(struct worker_job *j, const struct worker_src *src,
                                            int base, char *snap, size_t len, struct err *e)
{
    int *held = base ? &j->bsnap_held : &j->snap_held;
    enum err_code rc;

    if (worker__snap_hold(j->w, j->job.id, base, snap, len)) {
        *held = 1;
        return ERR_OK;
    }
    snap[0] = '\0';
    if (!worker_single_file(src))
        return ERR_OK;
    rc = worker_snapshot(j, src, snap, len, e);
    if (rc == ERR_OK)
        rc = worker__snap_add(j->w, j->job.id, base, snap, len, e);
    else if (snap[0] != '\0')
        unlink(snap);
    if (rc != ERR_OK)
        snap[0] = '\0';
    *held = rc == ERR_OK;
    return rc;
}

/* A path job's file no longer opens: the submitted bytes passed the same
 * validation (under limits at most as loose as the worker's), so bytes that
 * fail it now are other bytes, even if the file reads as submitted again by
 * the time anyone looks (a training loop rewriting it in place): category
 * "changed". Running out of memory and a limit (the settings may have
 * changed since) keep their own category. Returns the code to report. */
static enum err_code worker_open_failed(const struct worker_job *j, enum err_code rc, struct err *e)
{
    char why[ERR_MSG_LEN + 64];

    if (rc == ERR_NOMEM || rc == ERR_TOOBIG || rc == ERR_CANCELED || e->category == ERR_CAT_CHANGED)
        return rc;
    snprintf(why, sizeof(why), "%.60s: %s", err_category(e), e->msg);
    return err_setc(e, ERR_IO, ERR_CAT_CHANGED,
                    "the checkpoint at %.120s no longer opens as it did when it was "
                    "submitted (%.200s): it changed after it was submitted",
                    j->job.path, why);
}

static struct worker_src worker_src_base(const struct store_job_base *b)
{
    return (struct worker_src){b->path, b->sha256, worker_format_named(b->format),
                               "base checkpoint"};
}

/* A LoRA adapter job's path base read in place (a folder or an index; not
 * a snapshot `bsnap`) is checked again after engine_select hashed every
 * tensor, as a shard set is (worker_verify_path). ERR_OK for other jobs. */
static enum err_code worker_verify_base(const struct worker_job *j, const char *bsnap,
                                        struct err *e)
{
    const struct store_job_base *b = &j->job.base;
    struct worker_src src = worker_src_base(b);

    if (b->sha256[0] == '\0' || b->source != STORE_SOURCE_PATH || bsnap[0] != '\0')
        return ERR_OK;
    return worker_identity_check(j, &src, b->path, e);
}

/* A LoRA adapter job's checkpoint: the adapter at `adapter` merged onto the
 * job's base (peft_merge_open), read under the base's names. The base is
 * read as submitted: an upload from its blob (immutable); a path base, like
 * a path job's checkpoint, from a checked snapshot when it is one file
 * (its path in `bsnap`, kept for the job: worker_snapshot_shared), else in
 * place once its identity is checked (and again after engine_select:
 * worker_verify_base; for a task, each tensor against its planned hash). */
static enum err_code worker_merge_open(struct worker_job *j, const char *adapter, char *bsnap,
                                       size_t len, struct ckpt **out, struct err *e)
{
    const struct store_job_base *b = &j->job.base;
    struct worker_src src = worker_src_base(b);
    char blob[STORE_PATH_MAX];
    const char *base = b->path;
    enum err_code rc;

    if (b->source == STORE_SOURCE_UPLOAD) {
        rc = blob_path(j->w->cfg.blobs, b->sha256, blob, sizeof(blob), e);
        base = blob;
    } else {
        rc = worker_snapshot_shared(j, &src, 1, bsnap, len, e);
        if (bsnap[0] != '\0')
            base = bsnap;
        else if (rc == ERR_OK && !j->for_task) /* a task checks each tensor instead */
            rc = worker_identity_check(j, &src, b->path, e);
    }
    if (rc == ERR_OK)
        rc = peft_merge_open(adapter, base, src.fmt, j->w->cfg.limits, out, e);
    return rc;
}

/* Open the job's checkpoint at `path`: merged onto its base, if it has one. */
static enum err_code worker_open(struct worker_job *j, const char *path, char *bsnap, size_t len,
                                 struct ckpt **out, struct err *e)
{
    if (j->job.base.sha256[0] != '\0')
        return worker_merge_open(j, path, bsnap, len, out, e);
    return ckpt_open(
        path, j->job.source == STORE_SOURCE_PATH ? worker_format(&j->job) : CKPT_FORMAT_UNKNOWN,
        j->w->cfg.limits, out, e);
}

/* The path the job's checkpoint is read from, into `path` (len bytes): an
 * upload's blob; a single-file path job's checked snapshot (its name also
 * in `snap`, kept for the job: worker_snapshot_shared); else the job's path, read in place
 * (*in_place = 1): a shard set, or the adapter of a LoRA adapter job (its
 * config lies beside its weights). */
static enum err_code worker_input(struct worker_job *j, char *path, char *snap, size_t len,
                                  int *in_place, struct err *e)
{
    struct worker_src src = worker_src_job(&j->job);
    enum err_code rc = ERR_OK;

    *in_place = 0;
    if (j->job.source != STORE_SOURCE_PATH)
        return blob_path(j->w->cfg.blobs, j->job.content_sha256, path, len, e);
    if (j->job.base.sha256[0] == '\0')
        rc = worker_snapshot_shared(j, &src, 0, snap, len, e);
    if (rc == ERR_OK)
        snprintf(path, len, "%s", snap[0] != '\0' ? snap : j->job.path);
    *in_place = snap[0] == '\0';
    return rc;
}

/* After engine_select hashed every tensor: whatever is read in place (the
 * job's path, a path base) must still be what was submitted. */
enum err_code worker__verify_inputs(struct worker_job *j, int in_place, const char *bsnap,
                                    struct err *e)
{
    enum err_code rc = ERR_OK;

    if (in_place)
        rc = worker_check_stop(j, e);
    if (rc == ERR_OK && in_place)
        rc = worker_verify_path(j, e);
    if (rc == ERR_OK)
        rc = worker_verify_base(j, bsnap, e);
    return rc;
}

enum err_code worker__open_job(struct worker_job *j, char *bsnap, size_t len, int *in_place,
                               struct ckpt **out, struct err *e)
{
    char path[STORE_PATH_MAX], snap[STORE_PATH_MAX] = "";
    enum err_code rc = worker_input(j, path, snap, sizeof(path), in_place, e);

    *out = NULL;
    if (rc == ERR_OK)
        rc = worker_open(j, path, bsnap, len, out, e);
    if (rc != ERR_OK && *out == NULL && *in_place)
        rc = worker_open_failed(j, rc, e);
    return rc;
}

enum err_code worker__open_task(struct worker_job *j, struct ckpt **out, struct err *e)
{
    char bsnap[STORE_PATH_MAX] = "";
    int in_place = 0;

    return worker__open_job(j, bsnap, sizeof(bsnap), &in_place, out, e);
}
