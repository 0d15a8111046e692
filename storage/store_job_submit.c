/* store_job_submit.c -- submitting a job to the persistent queue
 * (store_job_submit): the checks of a submission, and in one write
 * transaction the settings, run, checkpoint and job rows it needs (each
 * reused when it exists), with the run's version bumped for a new job. See
 * store.h; the queue's state changes are in store_jobs.c.
 *
 * THREAD SAFETY: as store.h (one connection per thread).
 */
#include "storage/store_jobs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/thash.h"
#include "storage/store_int.h"

/* --- Submit ----------------------------------------------------------------------- */

static enum err_code check_base(const struct store_job_base *b, struct err *e)
{
    if (b == NULL)
        return ERR_OK;
    if (!thash_hex_ok(b->sha256))
        return err_set(e, ERR_INVAL, "base: content hash is not 64 lower-case hex digits");
    if (b->source != STORE_SOURCE_UPLOAD && b->source != STORE_SOURCE_PATH)
        return err_set(e, ERR_INVAL, "base: unknown checkpoint source %d", (int)b->source);
    if (b->source == STORE_SOURCE_PATH && b->path[0] == '\0')
        return err_set(e, ERR_INVAL, "base: path empty");
    if (b->step < 0)
        return err_set(e, ERR_INVAL, "base: step %" PRId64 " is negative", b->step);
    return ERR_OK;
}

static enum err_code check_submit(const struct store_submit *sub, struct err *e)
{
    if (sub->run == NULL || sub->run[0] == '\0' || strlen(sub->run) >= STORE_RUN_MAX)
        return err_set(e, ERR_INVAL, "run name empty or longer than %d bytes", STORE_RUN_MAX - 1);
    if (sub->step < 0)
        return err_set(e, ERR_INVAL, "step %" PRId64 " is negative", sub->step);
    if (!thash_hex_ok(sub->content_sha256))
        return err_set(e, ERR_INVAL, "content hash is not 64 lower-case hex digits");
    if (sub->source != STORE_SOURCE_UPLOAD && sub->source != STORE_SOURCE_PATH)
        return err_set(e, ERR_INVAL, "unknown checkpoint source %d", (int)sub->source);
    if (sub->source == STORE_SOURCE_PATH &&
        (sub->path == NULL || sub->path[0] == '\0' || strlen(sub->path) >= STORE_PATH_MAX))
        return err_set(e, ERR_INVAL, "checkpoint path empty or longer than %d bytes",
                       STORE_PATH_MAX - 1);
    if (sub->format != NULL && strlen(sub->format) >= STORE_FORMAT_MAX)
        return err_set(e, ERR_INVAL, "format name longer than %d bytes", STORE_FORMAT_MAX - 1);
    if (sub->size > (uint64_t)INT64_MAX)
        return err_set(e, ERR_INVAL, "size out of range");
    return check_base(sub->base, e);
}

/* Step an INSERT ... RETURNING id and read the id. */
static enum err_code insert_id(struct store *s, struct store__q *st, const char *what, int64_t *id,
                               struct err *e)
{
    int src = store__step(st);
    enum err_code rc = ERR_OK;

    if (src == STORE__ROW)
        *id = store__col_int64(st, 0);
    else
        rc = store__dberr(s, src == STORE__DONE ? STORE__ERROR : src, what, e);
    store__release(st);
    return rc;
}

/* The run id of `name`, creating the run if new. */
static enum err_code run_ensure(struct store *s, const char *name, double now, int64_t *id,
                                struct err *e)
{
    static const char sql[] = "INSERT INTO runs(name, created) VALUES(?1, ?2) "
                              "ON CONFLICT DO NOTHING";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);

    if (rc != ERR_OK)
        return rc;
    store__bind_text(st, 1, name);
    store__bind_double(st, 2, now);
    rc = store__step_done(s, st, "run insert", e);
    if (rc != ERR_OK)
        return rc;
    return store__run_id(s, name, id, e);
}

/* The checkpoint (run, step): the existing one if its content matches
 * (ERR_CONFLICT if not), else a new one. */
static enum err_code checkpoint_ensure(struct store *s, const struct store_submit *sub,
                                       int64_t run_id, double now, int64_t *id, struct err *e)
{
    static const char find[] =
        "SELECT id, content_sha256 FROM checkpoints WHERE run_id = ?1 AND step = ?2";
    static const char ins[] = "INSERT INTO checkpoints(run_id, step, content_sha256, source, "
                              "path, format, size, created) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                              "RETURNING id";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, find, &st, e);
    int src;

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, run_id);
    store__bind_int64(st, 2, sub->step);
    src = store__step(st);
    if (src == STORE__ROW) {
        char have[THASH_HEX_LEN];

        *id = store__col_int64(st, 0);
        store__col_text(st, 1, have, sizeof have);
        store__release(st);
        if (strcmp(have, sub->content_sha256) == 0)
            return ERR_OK;
        return err_set(e, ERR_CONFLICT,
                       "run '%s' step %" PRId64 " already has a checkpoint with other content "
                       "(sha256 %.12s..., this one %.12s...)",
                       sub->run, sub->step, have, sub->content_sha256);
    }
    store__release(st);
    if (src != STORE__DONE)
        return store__dberr(s, src, "checkpoint lookup", e);
    rc = store__stmt(s, ins, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, run_id);
    store__bind_int64(st, 2, sub->step);
    store__bind_text(st, 3, sub->content_sha256);
    store__bind_int64(st, 4, (int)sub->source);
    store__bind_text(st, 5, sub->source == STORE_SOURCE_PATH ? sub->path : "");
    store__bind_text(st, 6, sub->format != NULL ? sub->format : "");
    store__bind_int64(st, 7, (int64_t)sub->size);
    store__bind_double(st, 8, now);
    return insert_id(s, st, "checkpoint insert", id, e);
}

/* The job (checkpoint, settings): existing (*existed = 1) or new. An
 * existing job merged onto another base (or none) is ERR_CONFLICT. */
static enum err_code job_ensure(struct store *s, int64_t ckpt, const char *hash,
                                const struct store_submit *sub, double now, int64_t *id,
                                int *existed, struct err *e)
{
    static const char find[] =
        "SELECT id, base_sha256 FROM jobs WHERE checkpoint_id = ?1 AND settings_hash = ?2";
    static const char ins[] =
        "INSERT INTO jobs(checkpoint_id, settings_hash, preset, state, created, base_sha256, "
        "base_source, base_path, base_format, base_run, base_step) VALUES(?1, ?2, "
        "?3, " STORE__JOB_QUEUED_SQL ", ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id";
    static const struct store_job_base none = {.source = STORE_SOURCE_UPLOAD};
    const struct store_job_base *b = sub->base != NULL ? sub->base : &none;
    struct store__q *st = NULL;
    char had[THASH_HEX_LEN] = "";
    enum err_code rc = store__stmt(s, find, &st, e);
    int src;

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, ckpt);
    store__bind_text(st, 2, hash);
    src = store__step(st);
    if (src == STORE__ROW) {
        *id = store__col_int64(st, 0);
        store__col_text(st, 1, had, sizeof had);
        *existed = 1;
    }
    store__release(st);
    if (src == STORE__ROW && strcmp(had, b->sha256) != 0)
        return err_set(e, ERR_CONFLICT,
                       "run '%s' step %" PRId64 " already has a job for these settings merged "
                       "onto %s%.16s%s",
                       sub->run, sub->step, had[0] ? "the base with sha256 " : "no base", had,
                       had[0] ? "..." : "");
    if (src == STORE__ROW)
        return ERR_OK;
    if (src != STORE__DONE)
        return store__dberr(s, src, "job lookup", e);
    rc = store__stmt(s, ins, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, ckpt);
    store__bind_text(st, 2, hash);
    store__bind_text(st, 3, sub->preset);
    store__bind_double(st, 4, now);
    store__bind_text(st, 5, b->sha256);
    store__bind_int64(st, 6, (int64_t)b->source);
    store__bind_text(st, 7, b->path);
    store__bind_text(st, 8, b->format);
    store__bind_text(st, 9, b->run);
    store__bind_int64(st, 10, b->step);
    return insert_id(s, st, "job insert", id, e);
}

enum err_code store_job_submit(struct store *s, const struct store_submit *sub,
                               struct store_job *out, int *existed, struct err *e)
{
    char hash[THASH_HEX_LEN];
    int64_t run_id = 0, ckpt = 0, job = 0;
    double now = store__now();
    enum err_code rc;

    *existed = 0;
    rc = check_submit(sub, e);
    if (rc != ERR_OK)
        return rc;
    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = store_settings_put(s, sub->preset, sub->params_json, hash, e);
    if (rc == ERR_OK)
        rc = run_ensure(s, sub->run, now, &run_id, e);
    if (rc == ERR_OK)
        rc = checkpoint_ensure(s, sub, run_id, now, &ckpt, e);
    if (rc == ERR_OK)
        rc = job_ensure(s, ckpt, hash, sub, now, &job, existed, e);
    if (rc == ERR_OK && !*existed)
        rc = store__bump_run(s, run_id, e);
    if (rc == ERR_OK)
        rc = store_job_get(s, job, out, e);
    if (rc == ERR_OK)
        rc = store__commit(s, e);
    if (rc != ERR_OK) {
        store__rollback(s);
        *existed = 0;
    }
    return rc;
}
