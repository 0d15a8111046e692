/* store_task_plan.c -- a job's plan of tasks (table tasks): writing the
 * plan (store_tasks_plan), reading it back and the counts by state. See
 * store_tasks.h; claims, done, release and lease renewal are in
 * store_tasks.c.
 *
 * The plan is written in one write transaction (SQLite BEGIN IMMEDIATE,
 * PostgreSQL BEGIN and the writers' advisory lock). Rows that are not todo
 * (skipped, cache hits) are stored done: the plan reads back whole, and
 * only todo rows are ever claimed or counted.
 *
 * THREAD SAFETY: as store.h (one connection per thread).
 */
#include "storage/store_tasks.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_db.h"
#include "storage/store_int.h"
#include "storage/store_tasks_int.h"

/* --- Plan -------------------------------------------------------------------------- */

static enum err_code check_rows(const struct store_task_row *rows, size_t n, int64_t n_hits,
                                int64_t *n_todo, struct err *e)
{
    *n_todo = 0;
    if (n > 0 && rows == NULL)
        return err_set(e, ERR_INVAL, "plan: rows missing");
    for (size_t i = 0; i < n; i++) {
        const struct store_task_row *r = &rows[i];

        if (r->name == NULL || strlen(r->name) >= STORE_TASK_NAME_MAX)
            return err_set(e, ERR_INVAL, "plan row %zu: name missing or longer than %d bytes", i,
                           STORE_TASK_NAME_MAX - 1);
        if (r->ord < 0)
            return err_set(e, ERR_INVAL, "plan row %zu: ord %" PRId64 " is negative", i, r->ord);
        if (r->tensor_sha256[0] != '\0' && !thash_hex_ok(r->tensor_sha256))
            return err_set(e, ERR_INVAL, "plan row %zu: sha256 is not 64 lower-case hex digits", i);
        if (r->todo && r->tensor_sha256[0] == '\0')
            return err_set(e, ERR_INVAL, "plan row %zu ('%s'): a task needs its tensor's sha256", i,
                           r->name);
        if (!(isfinite(r->cost) && r->cost >= 0) || r->mem_bytes > (uint64_t)INT64_MAX)
            return err_set(e, ERR_INVAL, "plan row %zu ('%s'): cost or mem_bytes out of range", i,
                           r->name);
        *n_todo += r->todo != 0;
    }
    if (n_hits < 0 || n_hits > (int64_t)n - *n_todo)
        return err_set(e, ERR_INVAL, "plan: %" PRId64 " hits out of range", n_hits);
    return ERR_OK;
}

/* ERR_CANCELED unless job `id` is running and (with a lease) this owner's
 * claim, or, when `any_owner_if_planned`, planned. *run_id its run. */
static enum err_code job_check(struct store *s, int64_t id, int any_owner_if_planned,
                               int64_t *run_id, struct err *e)
{
    enum store_job_state state = STORE_JOB_QUEUED;
    int mine = 0;
    enum err_code rc =
        store__job_state_owner(s, id, any_owner_if_planned, &state, run_id, &mine, e);

    if (rc != ERR_OK)
        return rc;
    if (state != STORE_JOB_RUNNING)
        return err_set(e, ERR_CANCELED, "job %" PRId64 " is %s", id, store_job_state_name(state));
    if (!mine)
        return err_set(e, ERR_CANCELED, "job %" PRId64 " is claimed by another worker", id);
    return ERR_OK;
}

static enum err_code insert_rows(struct store *s, int64_t job_id, const struct store_task_row *rows,
                                 size_t n, struct err *e)
{
    static const char sql[] =
        "INSERT INTO tasks(job_id, ord, name, tensor_sha256, todo, cost, mem_bytes, state) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING";
    struct store__q *st = NULL;
    enum err_code rc = ERR_OK;

    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        rc = store__stmt(s, sql, &st, e);
        if (rc != ERR_OK)
            break;
        store__bind_int64(st, 1, job_id);
        store__bind_int64(st, 2, rows[i].ord);
        store__bind_text(st, 3, rows[i].name);
        store__bind_text(st, 4, rows[i].tensor_sha256);
        store__bind_int64(st, 5, rows[i].todo != 0);
        store__bind_double(st, 6, rows[i].cost);
        store__bind_int64(st, 7, (int64_t)rows[i].mem_bytes);
        store__bind_int64(st, 8, rows[i].todo ? STORE_TASK_QUEUED_INT : STORE_TASK_DONE_INT);
        rc = store__step_done(s, st, "plan insert", e);
    }
    return rc;
}

enum err_code store_tasks_plan(struct store *s, int64_t job_id, const struct store_task_row *rows,
                               size_t n, int64_t n_hits, int64_t *n_open, struct err *e)
{
    /* ?2 = 0: every ord */
    static const char open_sql[] = "SELECT count(*) FROM tasks WHERE job_id = ?1 AND ord >= ?2 "
                                   "AND todo = 1 AND state <> " STORE__TASK_DONE_SQL;
    static const char job_sql[] = "UPDATE jobs SET planned = ?2, n_total = ?3, n_done = ?4, "
                                  "n_cache_hits = ?5 WHERE id = ?1";
    struct store__q *st = NULL;
    int64_t n_todo = 0, open = 0, run_id = 0;
    enum err_code rc;

    if (n_open != NULL)
        *n_open = 0;
    rc = check_rows(rows, n, n_hits, &n_todo, e);
    if (rc != ERR_OK)
        return rc;
    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = job_check(s, job_id, 0, &run_id, e);
    if (rc == ERR_OK)
        rc = insert_rows(s, job_id, rows, n, e);
    if (rc == ERR_OK)
        rc = store__task_query_int(s, open_sql, job_id, 0, &open, e);
    if (rc == ERR_OK)
        rc = store__stmt(s, job_sql, &st, e);
    if (rc != ERR_OK)
        goto out;
    /* nothing open: the job stays unplanned, its own lease keeps it (see the header) */
    store__bind_int64(st, 1, job_id);
    store__bind_int64(st, 2, open > 0);
    store__bind_int64(st, 3, n_todo + n_hits);
    store__bind_int64(st, 4, n_todo + n_hits - open);
    store__bind_int64(st, 5, n_hits);
    rc = store__step_done(s, st, "plan job", e);
    if (rc == ERR_OK)
        rc = store__bump_run(s, run_id, e);
    if (rc == ERR_OK)
        rc = store__commit(s, e);
    if (rc == ERR_OK && n_open != NULL)
        *n_open = open;
out:
    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}

/* --- Reads ------------------------------------------------------------------------- */

enum err_code store_tasks_plan_get(struct store *s, int64_t job_id, struct store_task **out,
                                   size_t *n, struct err *e)
{
    static const char sql[] =
        "SELECT " STORE__TASK_COLS " FROM tasks WHERE job_id = ?1 ORDER BY ord";
    struct store__q *st = NULL;
    struct store_task *items = NULL, *grown;
    size_t cnt = 0, cap = 0;
    enum err_code rc;
    int src;

    *out = NULL;
    *n = 0;
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, job_id);
    while ((src = store__step(st)) == STORE__ROW) {
        grown = store__page_grow(items, cnt, &cap, sizeof *items);
        if (grown == NULL) {
            rc = err_set(e, ERR_NOMEM, "plan of job %" PRId64 ": out of memory", job_id);
            break;
        }
        items = grown;
        store__task_read(st, &items[cnt++]);
    }
    if (rc == ERR_OK && src != STORE__DONE)
        rc = store__dberr(s, src, "plan get", e);
    store__release(st);
    if (rc == ERR_OK && cnt == 0)
        rc = err_set(e, ERR_NOTFOUND, "job %" PRId64 " has no plan", job_id);
    if (rc != ERR_OK) {
        free(items);
        return rc;
    }
    *out = items;
    *n = cnt;
    return ERR_OK;
}

enum err_code store_task_counts(struct store *s, int64_t counts[STORE_TASK_STATE_COUNT],
                                struct err *e)
{
    static const char sql[] = "SELECT state, count(*) FROM tasks WHERE todo = 1 GROUP BY state";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src, k;

    for (k = 0; k < STORE_TASK_STATE_COUNT; k++)
        counts[k] = 0;
    if (rc != ERR_OK)
        return rc;
    while ((src = store__step(st)) == STORE__ROW) {
        k = (int)store__col_int64(st, 0);
        if (k >= 0 && k < STORE_TASK_STATE_COUNT)
            counts[k] = store__col_int64(st, 1);
    }
    if (src != STORE__DONE)
        rc = store__dberr(s, src, "task counts", e);
    store__release(st);
    return rc;
}
