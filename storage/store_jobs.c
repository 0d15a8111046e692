/* store_jobs.c -- the persistent job queue (tables runs, checkpoints,
 * settings, jobs): reading a job and its state changes (claim, progress,
 * finish, cancel, requeue, counts). See store.h; submitting a job (with
 * its run, checkpoint and settings rows) is in store_job_submit.c, leases
 * in store_lease.c.
 *
 * Every state change runs in one BEGIN IMMEDIATE transaction that also bumps
 * the owning run's version, so GETs of run data see a new ETag. Claims are
 * exactly-once across connections and processes: the SELECT of the oldest
 * queued job and its UPDATE happen under the write lock.
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

static const char *const state_names[] = {
#define X(name, str) [STORE_JOB_##name] = (str),
    STORE_JOB_STATE_MAP(X)
#undef X
};

_Static_assert(sizeof state_names / sizeof state_names[0] == STORE_JOB_STATE_COUNT,
               "job states are numbered 0..STORE_JOB_STATE_COUNT-1");

const char *store_job_state_name(enum store_job_state st)
{
    if ((unsigned)st >= STORE_JOB_STATE_COUNT || state_names[st] == NULL)
        return "?";
    return state_names[st];
}

/* --- Reading a job ------------------------------------------------------------- */

static const char SQL_JOB_GET[] = "SELECT " STORE__JOB_COLS STORE__JOB_FROM "WHERE j.id = ?1";

void store__read_job(struct store__q *st, struct store_job *j)
{
    memset(j, 0, sizeof *j);
    j->id = store__col_int64(st, 0);
    j->state = (enum store_job_state)(int)store__col_int64(st, 1);
    store__col_text(st, 2, j->run, sizeof j->run);
    j->step = store__col_int64(st, 3);
    j->checkpoint_id = store__col_int64(st, 4);
    store__col_text(st, 5, j->content_sha256, sizeof j->content_sha256);
    j->source = (enum store_source)(int)store__col_int64(st, 6);
    store__col_text(st, 7, j->path, sizeof j->path);
    store__col_text(st, 8, j->format, sizeof j->format);
    j->size = (uint64_t)store__col_int64(st, 9);
    store__col_text(st, 10, j->preset, sizeof j->preset);
    store__col_text(st, 11, j->params_json, sizeof j->params_json);
    store__col_text(st, 12, j->settings_hash, sizeof j->settings_hash);
    j->n_done = store__col_int64(st, 13);
    j->n_total = store__col_int64(st, 14);
    j->n_cache_hits = store__col_int64(st, 15);
    store__col_text(st, 16, j->error_category, sizeof j->error_category);
    store__col_text(st, 17, j->error_message, sizeof j->error_message);
    j->created = store__col_double(st, 18);
    j->started = store__col_double(st, 19);
    j->finished = store__col_double(st, 20);
    store__col_text(st, 21, j->claimed_by, sizeof j->claimed_by);
    j->lease_until = store__col_double(st, 22);
    store__col_text(st, 23, j->base.sha256, sizeof j->base.sha256);
    j->base.source = (int)store__col_int64(st, 24);
    store__col_text(st, 25, j->base.path, sizeof j->base.path);
    store__col_text(st, 26, j->base.format, sizeof j->base.format);
    store__col_text(st, 27, j->base.run, sizeof j->base.run);
    j->base.step = store__col_int64(st, 28);
}

enum err_code store_job_get(struct store *s, int64_t id, struct store_job *out, struct err *e)
{
    struct store__q *st = NULL;
    int row = 0;
    enum err_code rc = store__row_id(s, SQL_JOB_GET, id, "job get", &st, &row, e);

    if (rc == ERR_OK && row)
        store__read_job(st, out);
    else if (rc == ERR_OK)
        rc = err_set(e, ERR_NOTFOUND, "job %" PRId64 " not found", id);
    store__release(st);
    return rc;
}

enum err_code store__job_state_owner(struct store *s, int64_t id, int planned_mine,
                                     enum store_job_state *state, int64_t *run_id, int *mine,
                                     struct err *e)
{
    static const char sql[] = "SELECT j.state, c.run_id, j.claimed_by, j.planned FROM jobs j "
                              "JOIN checkpoints c ON c.id = j.checkpoint_id WHERE j.id = ?1";
    struct store__q *st = NULL;
    int row = 0;
    enum err_code rc = store__row_id(s, sql, id, "job state", &st, &row, e);

    if (rc == ERR_OK && row) {
        *state = (enum store_job_state)(int)store__col_int64(st, 0);
        *run_id = store__col_int64(st, 1);
        *mine = s->lease_s <= 0 || strcmp(store__col_str(st, 2), s->owner) == 0 ||
                (planned_mine && store__col_int64(st, 3) != 0);
    } else if (rc == ERR_OK) {
        rc = err_set(e, ERR_NOTFOUND, "job %" PRId64 " not found", id);
    }
    store__release(st);
    return rc;
}

static enum err_code job_state_run(struct store *s, int64_t id, enum store_job_state *state,
                                   int64_t *run_id, struct err *e)
{
    int mine = 1;

    return store__job_state_owner(s, id, 1, state, run_id, &mine, e);
}

enum err_code store_job_state(struct store *s, int64_t id, enum store_job_state *state,
                              struct err *e)
{
    int64_t run_id;

    return job_state_run(s, id, state, &run_id, e);
}

/* --- State changes --------------------------------------------------------------- */

/* The oldest queued job, or a running unplanned one whose lease expired
 * (?1: now). A planned job's liveness is its tasks' leases (store_tasks.h). */
#define SQL_CLAIM_NEXT                                                                \
    "SELECT j.id, c.run_id FROM jobs j JOIN checkpoints c ON c.id = j.checkpoint_id " \
    "WHERE j.state = " STORE__JOB_QUEUED_SQL " OR (j.state = " STORE__JOB_RUNNING_SQL \
    " AND j.planned = 0 AND j.lease_until > 0 AND j.lease_until < ?1) ORDER BY j.id LIMIT 1"

/* SQL_CLAIM_NEXT with the driver's row lock (store__drv.claim_lock), made
 * once per connection: the statement cache keys it by its address, which
 * holds until store_close. */
static const char *claim_sql(struct store *s)
{
    int n;

    if (s->sql_claim[0] != '\0')
        return s->sql_claim;
    n = snprintf(s->sql_claim, sizeof s->sql_claim, "%s %s", SQL_CLAIM_NEXT, s->drv->claim_lock);
    ERR_ASSERT(n > 0 && (size_t)n < sizeof s->sql_claim);
    return s->sql_claim;
}

enum err_code store_job_claim(struct store *s, struct store_job *out, int *claimed, struct err *e)
{
    static const char take[] = "UPDATE jobs SET state = " STORE__JOB_RUNNING_SQL ", started = ?2, "
                               "n_done = 0, n_cache_hits = 0, claimed_by = ?3, lease_until = ?4, "
                               "planned = 0 WHERE id = ?1";
    double now = store__now();
    struct store__q *st = NULL;
    int64_t id = 0, run_id = 0;
    enum err_code rc;
    int src;

    *claimed = 0;
    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = store__stmt(s, claim_sql(s), &st, e);
    if (rc != ERR_OK)
        goto out;
    store__bind_double(st, 1, now);
    src = store__step(st);
    if (src == STORE__ROW) {
        id = store__col_int64(st, 0);
        run_id = store__col_int64(st, 1);
    }
    store__release(st);
    if (src != STORE__ROW) {
        rc = src == STORE__DONE ? store__commit(s, e) : store__dberr(s, src, "claim", e);
        goto out;
    }
    rc = store__stmt(s, take, &st, e);
    if (rc != ERR_OK)
        goto out;
    store__bind_int64(st, 1, id);
    store__bind_double(st, 2, now);
    store__bind_text(st, 3, s->owner);
    store__bind_double(st, 4, s->lease_s > 0 ? now + s->lease_s : 0);
    rc = store__step_done(s, st, "claim update", e);
    if (rc == ERR_OK)
        rc = store__bump_run(s, run_id, e);
    if (rc == ERR_OK)
        rc = store_job_get(s, id, out, e);
    if (rc != ERR_OK)
        goto out;
    rc = store__commit(s, e);
    if (rc == ERR_OK)
        *claimed = 1;
out:
    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}

enum err_code store_job_progress(struct store *s, int64_t id, int64_t n_done, int64_t n_total,
                                 int64_t n_cache_hits, struct err *e)
{
    static const char sql[] = "UPDATE jobs SET n_done = ?2, n_total = ?3, n_cache_hits = ?4, "
                              "lease_until = ?5 WHERE id = ?1";
    enum store_job_state state = STORE_JOB_QUEUED;
    struct store__q *st = NULL;
    int64_t run_id = 0;
    enum err_code rc;
    int mine = 1;

    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = store__job_state_owner(s, id, 1, &state, &run_id, &mine, e);
    if (rc != ERR_OK)
        goto out;
    if (state != STORE_JOB_RUNNING || !mine) {
        rc = err_set(e, ERR_CANCELED, "job %" PRId64 " is %s", id,
                     !mine ? "claimed by another worker (lease expired)"
                           : store_job_state_name(state));
        goto out;
    }
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        goto out;
    store__bind_int64(st, 1, id);
    store__bind_int64(st, 2, n_done);
    store__bind_int64(st, 3, n_total);
    store__bind_int64(st, 4, n_cache_hits);
    store__bind_double(st, 5, s->lease_s > 0 ? store__now() + s->lease_s : 0);
    rc = store__step_done(s, st, "progress", e);
    if (rc == ERR_OK)
        rc = store__bump_run(s, run_id, e);
    if (rc == ERR_OK)
        rc = store__commit(s, e);
out:
    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}

/* Set state `to` (and finished = now, error text) on job `id` inside the
 * open transaction, drop its tasks (store_tasks.h) and bump its run. */
static enum err_code set_final(struct store *s, int64_t id, int64_t run_id, enum store_job_state to,
                               const char *category, const char *message, struct err *e)
{
    static const char sql[] = "UPDATE jobs SET state = ?2, finished = ?3, error_category = ?4, "
                              "error_message = ?5 WHERE id = ?1";
    static const char drop_tasks[] = "DELETE FROM tasks WHERE job_id = ?1";
    char cat[STORE_CATEGORY_MAX], msg[STORE_MESSAGE_MAX];
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);

    if (rc != ERR_OK)
        return rc;
    snprintf(cat, sizeof cat, "%s", category != NULL ? category : "");
    snprintf(msg, sizeof msg, "%s", message != NULL ? message : "");
    store__bind_int64(st, 1, id);
    store__bind_int64(st, 2, (int)to);
    store__bind_double(st, 3, store__now());
    store__bind_text(st, 4, cat);
    store__bind_text(st, 5, msg);
    rc = store__step_done(s, st, "job finish", e);
    if (rc == ERR_OK)
        rc = store__stmt(s, drop_tasks, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, id);
    rc = store__step_done(s, st, "job finish: tasks", e);
    if (rc != ERR_OK)
        return rc;
    return store__bump_run(s, run_id, e);
}

enum err_code store_job_finish(struct store *s, int64_t id, enum store_job_state state,
                               const char *category, const char *message, struct err *e)
{
    enum store_job_state now_state = STORE_JOB_QUEUED;
    int64_t run_id = 0;
    enum err_code rc;
    int mine = 1;

    if (state != STORE_JOB_SUCCEEDED && state != STORE_JOB_FAILED)
        return err_set(e, ERR_INVAL, "job finish: state must be succeeded or failed");
    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = store__job_state_owner(s, id, 1, &now_state, &run_id, &mine, e);
    if (rc != ERR_OK)
        goto out;
    if (now_state == STORE_JOB_CANCELED) {
        rc = err_set(e, ERR_CANCELED, "job %" PRId64 " was canceled", id);
    } else if (now_state == STORE_JOB_RUNNING && !mine) {
        rc = err_set(e, ERR_CANCELED, "job %" PRId64 " was claimed by another worker", id);
    } else if (now_state != STORE_JOB_RUNNING) {
        rc = err_set(e, ERR_CONFLICT, "job %" PRId64 " is %s, not running", id,
                     store_job_state_name(now_state));
    } else {
        if (state == STORE_JOB_SUCCEEDED)
            category = message = NULL;
        rc = set_final(s, id, run_id, state, category, message, e);
        if (rc == ERR_OK)
            rc = store__commit(s, e);
    }
out:
    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}

enum err_code store_job_cancel(struct store *s, int64_t id, struct store_job *out, struct err *e)
{
    enum store_job_state state = STORE_JOB_QUEUED;
    int64_t run_id = 0;
    enum err_code rc;

    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = job_state_run(s, id, &state, &run_id, e);
    if (rc != ERR_OK)
        goto out;
    if (state == STORE_JOB_SUCCEEDED || state == STORE_JOB_FAILED) {
        rc =
            err_set(e, ERR_CONFLICT, "job %" PRId64 " already %s", id, store_job_state_name(state));
        goto out;
    }
    if (state != STORE_JOB_CANCELED)
        rc = set_final(s, id, run_id, STORE_JOB_CANCELED, NULL, NULL, e);
    if (rc == ERR_OK && out != NULL)
        rc = store_job_get(s, id, out, e);
    if (rc == ERR_OK)
        rc = store__commit(s, e);
out:
    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}

enum err_code store_jobs_requeue(struct store *s, int64_t *n_requeued, struct err *e)
{
    static const char bump[] =
        "UPDATE meta SET value = CAST(value AS BIGINT) + 1 WHERE key = 'change_seq'";
    static const char runs[] =
        "UPDATE runs SET version = (SELECT CAST(value AS BIGINT) FROM meta WHERE key = "
        "'change_seq') "
        "WHERE id IN (SELECT c.run_id FROM jobs j JOIN checkpoints c ON c.id = j.checkpoint_id "
        "WHERE j.state = " STORE__JOB_RUNNING_SQL " AND j.planned = 0)";
    static const char jobs[] = "UPDATE jobs SET state = " STORE__JOB_QUEUED_SQL ", started = 0, "
                               "n_done = 0, n_cache_hits = 0, claimed_by = '', lease_until = 0 "
                               "WHERE state = " STORE__JOB_RUNNING_SQL " AND planned = 0";
    static const char tasks[] =
        "UPDATE tasks SET state = " STORE__TASK_QUEUED_SQL ", "
        "claimed_by = '', lease_until = 0 WHERE state = " STORE__TASK_RUNNING_SQL;
    static const char *const sql[4] = {bump, runs, jobs, tasks};

    return store__requeue(s, sql, NULL, "requeue", n_requeued, e);
}

enum err_code store_job_counts(struct store *s, int64_t counts[STORE_JOB_STATE_COUNT],
                               struct err *e)
{
    static const char sql[] = "SELECT state, count(*) FROM jobs GROUP BY state";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src, k;

    for (k = 0; k < STORE_JOB_STATE_COUNT; k++)
        counts[k] = 0;
    if (rc != ERR_OK)
        return rc;
    while ((src = store__step(st)) == STORE__ROW) {
        k = (int)store__col_int64(st, 0);
        if (k >= 0 && k < STORE_JOB_STATE_COUNT)
            counts[k] = store__col_int64(st, 1);
    }
    if (src != STORE__DONE)
        rc = store__dberr(s, src, "job counts", e);
    store__release(st);
    return rc;
}
