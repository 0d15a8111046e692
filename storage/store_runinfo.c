/* store_runinfo.c -- run administration: the preset reads default to, the
 * run summary, deleting a run, and the job list. See store.h.
 *
 * Deleting runs in one write transaction (the writers' lock on both
 * backends, so it is exactly-once across replicas and never races a claim:
 * a job cannot start running while the delete looks for running ones).
 * The job list is keyset-paginated by job id, newest first (token: the
 * last id listed).
 *
 * THREAD SAFETY: as store.h (one connection per thread).
 */
#include "storage/store_runs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/thash.h"
#include "storage/blob.h"
#include "storage/store_int.h"

/* --- The preset of reads --------------------------------------------------------- */

/* One row of `sql` (bound: ?1 run name, ?2 step when step >= 0) into
 * preset/hash; *found = 0 when there is none. */
static enum err_code read_preset_row(struct store *s, const char *sql, const char *run,
                                     int64_t step, char *preset, char *hash, int *found,
                                     struct err *e)
{
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    *found = 0;
    if (rc != ERR_OK)
        return rc;
    store__bind_text(st, 1, run);
    if (step >= 0)
        store__bind_int64(st, 2, step);
    src = store__step(st);
    if (src == STORE__ROW) {
        store__col_text(st, 0, preset, STORE_PRESET_MAX);
        store__col_text(st, 1, hash, THASH_HEX_LEN);
        *found = 1;
    } else if (src != STORE__DONE) {
        rc = store__dberr(s, src, "read preset", e);
    }
    store__release(st);
    return rc;
}

enum err_code store_read_preset(struct store *s, const char *run, int64_t step,
                                char preset[STORE_PRESET_MAX], char hash[THASH_HEX_LEN],
                                struct err *e)
{
    static const char by_run[] =
        "SELECT j.preset, j.settings_hash FROM jobs j JOIN checkpoints c ON c.id = j.checkpoint_id "
        "JOIN runs r ON r.id = c.run_id WHERE r.name = ?1 "
        "ORDER BY j.state = " STORE__JOB_SUCCEEDED_SQL " DESC, c.step DESC, j.id DESC LIMIT 1";
    static const char by_ckpt[] =
        "SELECT j.preset, j.settings_hash FROM jobs j JOIN checkpoints c ON c.id = j.checkpoint_id "
        "JOIN runs r ON r.id = c.run_id WHERE r.name = ?1 AND c.step = ?2 "
        "ORDER BY j.state = " STORE__JOB_SUCCEEDED_SQL " DESC, j.id DESC LIMIT 1";
    enum err_code rc = ERR_OK;
    int found = 0;

    preset[0] = hash[0] = '\0';
    if (run == NULL)
        return err_set(e, ERR_INVAL, "run name missing");
    if (step >= 0)
        rc = read_preset_row(s, by_ckpt, run, step, preset, hash, &found, e);
    if (rc == ERR_OK && !found)
        rc = read_preset_row(s, by_run, run, -1, preset, hash, &found, e);
    return rc;
}

/* --- Summary ---------------------------------------------------------------------- */

static enum err_code summary_counts(struct store *s, int64_t run_id, struct store_run_summary *o,
                                    struct err *e)
{
    static const char sql[] =
        "SELECT r.created, r.version, count(c.id), coalesce(min(c.step), -1),"
        " coalesce(max(c.step), -1) FROM runs r LEFT JOIN checkpoints c ON c.run_id = r.id "
        "WHERE r.id = ?1 GROUP BY r.id, r.created, r.version";
    struct store__q *st = NULL;
    int row = 0;
    enum err_code rc = store__row_id(s, sql, run_id, "run summary", &st, &row, e);

    if (rc == ERR_OK && row) {
        o->created = store__col_double(st, 0);
        o->version = store__col_int64(st, 1);
        o->n_checkpoints = store__col_int64(st, 2);
        o->first_step = store__col_int64(st, 3);
        o->last_step = store__col_int64(st, 4);
    } else if (rc == ERR_OK) {
        rc = err_set(e, ERR_NOTFOUND, "run not found");
    }
    store__release(st);
    return rc;
}

static enum err_code summary_presets(struct store *s, int64_t run_id, struct store_run_summary *o,
                                     struct err *e)
{
    static const char sql[] =
        "SELECT j.preset, count(DISTINCT j.checkpoint_id),"
        " count(DISTINCT CASE WHEN j.state = " STORE__JOB_SUCCEEDED_SQL
        " THEN j.checkpoint_id END) "
        "FROM jobs j JOIN checkpoints c ON c.id = j.checkpoint_id WHERE c.run_id = ?1 "
        "GROUP BY j.preset ORDER BY count(DISTINCT j.checkpoint_id) DESC, j.preset LIMIT ?2";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt_id(s, sql, run_id, &st, e);
    int src;

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 2, STORE_RUN_PRESETS_MAX);
    while ((src = store__step(st)) == STORE__ROW && o->n_presets < STORE_RUN_PRESETS_MAX) {
        struct store_preset_count *p = &o->presets[o->n_presets++];

        store__col_text(st, 0, p->preset, sizeof p->preset);
        p->n_checkpoints = store__col_int64(st, 1);
        p->n_succeeded = store__col_int64(st, 2);
    }
    if (src != STORE__DONE && src != STORE__ROW)
        rc = store__dberr(s, src, "run presets", e);
    store__release(st);
    return rc;
}

enum err_code store_run_summary(struct store *s, const char *run, struct store_run_summary *out,
                                struct err *e)
{
    static const char last[] = "SELECT max(j.id) FROM jobs j JOIN checkpoints c "
                               "ON c.id = j.checkpoint_id WHERE c.run_id = ?1";
    struct store__q *st = NULL;
    char hash[THASH_HEX_LEN];
    int64_t run_id = 0, job_id = -1;
    enum err_code rc;
    int src;

    memset(out, 0, sizeof *out);
    rc = store__run_id(s, run, &run_id, e);
    if (rc == ERR_OK)
        rc = summary_counts(s, run_id, out, e);
    if (rc == ERR_OK)
        rc = summary_presets(s, run_id, out, e);
    if (rc == ERR_OK)
        rc = store_read_preset(s, run, -1, out->default_preset, hash, e);
    if (rc == ERR_OK)
        rc = store__stmt(s, last, &st, e);
    if (rc != ERR_OK)
        return rc;
    snprintf(out->name, sizeof out->name, "%s", run);
    store__bind_int64(st, 1, run_id);
    src = store__step(st);
    if (src == STORE__ROW && !store__is_null(st, 0))
        job_id = store__col_int64(st, 0);
    else if (src != STORE__ROW && src != STORE__DONE)
        rc = store__dberr(s, src, "run last job", e);
    store__release(st);
    if (rc == ERR_OK && job_id >= 0) {
        rc = store_job_get(s, job_id, &out->last_job, e);
        out->has_last_job = rc == ERR_OK;
    }
    return rc;
}

/* --- Delete ------------------------------------------------------------------------- */

/* ERR_CONFLICT naming the lowest running job of the run, if there is one. */
static enum err_code delete_check_running(struct store *s, const char *run, int64_t run_id,
                                          struct err *e)
{
    static const char sql[] =
        "SELECT min(j.id) FROM jobs j JOIN checkpoints c "
        "ON c.id = j.checkpoint_id WHERE c.run_id = ?1 AND j.state = " STORE__JOB_RUNNING_SQL;
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int64_t id = -1;
    int src;

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, run_id);
    src = store__step(st);
    if (src == STORE__ROW && !store__is_null(st, 0))
        id = store__col_int64(st, 0);
    else if (src != STORE__ROW && src != STORE__DONE)
        rc = store__dberr(s, src, "running jobs", e);
    store__release(st);
    if (rc == ERR_OK && id >= 0)
        rc = err_set(e, ERR_CONFLICT,
                     "job %" PRId64 " of run '%.*s' is running: cancel it (DELETE /v1/jobs/%" PRId64
                     ") or wait until it ends, then delete the run",
                     id, STORE_RUN_MAX, run, id);
    return rc;
}

/* Remove the blobs of the run's checkpoints that no other run refers to
 * (before the rows go; inside the transaction). */
static enum err_code delete_blobs(struct store *s, int64_t run_id, struct blob_store *blobs,
                                  int64_t *n_removed, struct err *e)
{
    static const char sql[] =
        "SELECT DISTINCT c.content_sha256 FROM checkpoints c WHERE c.run_id = ?1 AND NOT EXISTS "
        "(SELECT 1 FROM checkpoints o WHERE o.content_sha256 = c.content_sha256 "
        "AND o.run_id <> ?1)";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    if (rc != ERR_OK || blobs == NULL)
        return rc;
    store__bind_int64(st, 1, run_id);
    while (rc == ERR_OK && (src = store__step(st)) == STORE__ROW) {
        char sha[THASH_HEX_LEN];
        int removed = 0;

        store__col_text(st, 0, sha, sizeof sha);
        if (!thash_hex_ok(sha))
            continue;
        rc = blob_remove(blobs, sha, &removed, e);
        if (rc == ERR_OK)
            *n_removed += removed;
    }
    if (rc == ERR_OK && src != STORE__DONE)
        rc = store__dberr(s, src, "run blobs", e);
    store__release(st);
    return rc;
}

/* Run one DELETE bound to run_id; *n gets the rows it removed. */
static enum err_code delete_rows(struct store *s, const char *sql, int64_t run_id, int64_t *n,
                                 struct err *e)
{
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, run_id);
    rc = store__step_done(s, st, "delete run", e);
    if (rc == ERR_OK && n != NULL)
        *n = store__changes(s);
    return rc;
}

enum err_code store_run_delete(struct store *s, const char *run, struct blob_store *blobs,
                               struct store_run_deleted *out, struct err *e)
{
    static const char del_layers[] = "DELETE FROM layers WHERE run_id = ?1";
    static const char del_summaries[] = "DELETE FROM summaries WHERE run_id = ?1";
    static const char del_tasks[] =
        "DELETE FROM tasks WHERE job_id IN (SELECT j.id FROM jobs j JOIN checkpoints c ON "
        "c.id = j.checkpoint_id WHERE c.run_id = ?1)";
    static const char del_jobs[] =
        "DELETE FROM jobs WHERE checkpoint_id IN (SELECT id FROM checkpoints WHERE run_id = ?1)";
    static const char del_ckpts[] = "DELETE FROM checkpoints WHERE run_id = ?1";
    static const char del_run[] = "DELETE FROM runs WHERE id = ?1";
    static const char *const del_alerts[] = {"DELETE FROM deliveries WHERE run_id = ?1",
                                             "DELETE FROM alert_events WHERE run_id = ?1",
                                             "DELETE FROM alert_rules WHERE run_id = ?1"};
    struct store_run_deleted d = {0};
    int64_t run_id = 0;
    enum err_code rc;

    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = store__run_id(s, run, &run_id, e);
    if (rc == ERR_OK)
        rc = delete_check_running(s, run, run_id, e);
    if (rc == ERR_OK)
        rc = store__bump_run(s, run_id, e);
    if (rc == ERR_OK)
        rc = delete_blobs(s, run_id, blobs, &d.n_blobs, e);
    if (rc == ERR_OK)
        rc = delete_rows(s, del_layers, run_id, &d.n_layers, e);
    if (rc == ERR_OK)
        rc = delete_rows(s, del_summaries, run_id, NULL, e);
    if (rc == ERR_OK)
        rc = delete_rows(s, del_tasks, run_id, NULL, e);
    if (rc == ERR_OK)
        rc = delete_rows(s, del_jobs, run_id, &d.n_jobs, e);
    if (rc == ERR_OK)
        rc = delete_rows(s, del_ckpts, run_id, &d.n_checkpoints, e);
    for (size_t i = 0; rc == ERR_OK && i < sizeof(del_alerts) / sizeof(del_alerts[0]); i++)
        rc = delete_rows(s, del_alerts[i], run_id, NULL, e); /* store_alerts.h */
    if (rc == ERR_OK)
        rc = delete_rows(s, del_run, run_id, NULL, e);
    if (rc == ERR_OK)
        rc = store__commit(s, e);
    if (rc != ERR_OK) {
        store__rollback(s);
        return rc;
    }
    if (out != NULL)
        *out = d;
    return ERR_OK;
}

/* --- Job list ------------------------------------------------------------------------ */

/* Read jobs from `st` into p, growing p->items, up to `limit`; a row past
 * the limit sets p->next_token. */
static enum err_code jobs_page_fill(struct store *s, struct store__q *st, struct store_job_page *p,
                                    size_t limit, struct err *e)
{
    size_t cap = 0;
    int src;

    while ((src = store__step(st)) == STORE__ROW) {
        struct store_job *grown = NULL;

        if (p->n == limit) {
            if (p->n > 0)
                store__token_from_step(p->items[p->n - 1].id, p->next_token);
            return ERR_OK;
        }
        grown = store__page_grow(p->items, p->n, &cap, sizeof *grown);
        if (grown == NULL)
            return err_set(e, ERR_NOMEM, "job list: out of memory");
        p->items = grown;
        store__read_job(st, &p->items[p->n++]);
    }
    return src == STORE__DONE ? ERR_OK : store__dberr(s, src, "job list", e);
}

enum err_code store_jobs_list(struct store *s, const struct store_job_filter *f, size_t page_size,
                              const char *page_token, struct store_job_page **out, struct err *e)
{
    static const char sql[] =
        "SELECT " STORE__JOB_COLS STORE__JOB_FROM
        "WHERE j.id < ?1 AND (CAST(?2 AS BIGINT) < 0 OR j.state = CAST(?2 AS BIGINT)) "
        "AND (CAST(?3 AS BIGINT) < 0 OR c.run_id = CAST(?3 AS BIGINT)) "
        "ORDER BY j.id DESC LIMIT ?4";
    size_t limit = store__page_size(page_size);
    struct store_job_page *p = NULL;
    struct store__q *st = NULL;
    int64_t before = INT64_MAX, run_id = -1;
    enum err_code rc;
    int has = 0;

    *out = NULL;
    if (limit > STORE_JOBS_PAGE_MAX)
        limit = STORE_JOBS_PAGE_MAX;
    rc = store__token_step(page_token, &before, &has, e);
    if (rc != ERR_OK)
        return rc;
    if (!has)
        before = INT64_MAX;
    if (f->run != NULL)
        rc = store__run_id(s, f->run, &run_id, e);
    if (rc != ERR_OK)
        return rc;
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        rc = err_set(e, ERR_NOMEM, "job list: out of memory");
        goto out;
    }
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        goto out;
    store__bind_int64(st, 1, before);
    store__bind_int64(st, 2, f->state);
    store__bind_int64(st, 3, run_id);
    store__bind_int64(st, 4, (int64_t)limit + 1);
    rc = jobs_page_fill(s, st, p, limit, e);
out:
    *out = store__page_done(st, rc, p, p != NULL ? p->items : NULL);
    return rc;
}

void store_job_page_free(struct store_job_page *p)
{
    store__page_free(p, p != NULL ? p->items : NULL);
}
