/* store_tasks.c -- a job's work as tasks (table tasks): claiming a task,
 * marking it done, releasing it and renewing leases, and the task row
 * helpers of store_tasks_int.h. See store_tasks.h; planning a job's tasks
 * and reading the plan back are in store_task_plan.c.
 *
 * Every change runs in one write transaction (SQLite BEGIN IMMEDIATE,
 * PostgreSQL BEGIN and the writers' advisory lock), so the read-then-write
 * steps below (the claim's pick, the *last rule of store_task_done) see no
 * other writer between them. The claim's SELECT carries the driver's row
 * lock (task_claim_lock: PostgreSQL FOR UPDATE OF t SKIP LOCKED).
 *
 * Rows that are not todo (skipped, cache hits) are stored done: the plan
 * reads back whole, and only todo rows are ever claimed or counted.
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

/* Task rows (store_tasks_int.h). */

void store__task_read(struct store__q *st, struct store_task *t)
{
    memset(t, 0, sizeof *t);
    t->job_id = store__col_int64(st, 0);
    t->ord = store__col_int64(st, 1);
    store__col_text(st, 2, t->name, sizeof t->name);
    store__col_text(st, 3, t->tensor_sha256, sizeof t->tensor_sha256);
    t->todo = (int)store__col_int64(st, 4);
    t->cost = store__col_double(st, 5);
    t->mem_bytes = (uint64_t)store__col_int64(st, 6);
    t->state = (enum store_task_state)(int)store__col_int64(st, 7);
    t->attempts = store__col_int64(st, 8);
}

enum err_code store__task_query_int(struct store *s, const char *sql, int64_t job_id, int64_t ord,
                                    int64_t *out, struct err *e)
{
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    *out = 0;
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, job_id);
    store__bind_int64(st, 2, ord);
    src = store__step(st);
    if (src == STORE__ROW)
        *out = store__col_int64(st, 0);
    else
        rc = store__dberr(s, src == STORE__DONE ? STORE__ERROR : src, "task count", e);
    store__release(st);
    return rc;
}

/* The lease end of a claim or renewal made now: 0 (never lapses) without a lease. */
static double lease_end(const struct store *s)
{
    return s->lease_s > 0 ? store__now() + s->lease_s : 0;
}

/* Run one prepared, bound statement that returns no rows; *n (may be
 * NULL) receives the rows it changed. */
static enum err_code step_changes(struct store *s, struct store__q *st, const char *what,
                                  int64_t *n, struct err *e)
{
    enum err_code rc = store__step_done(s, st, what, e);

    if (rc == ERR_OK && n != NULL)
        *n = store__changes(s);
    return rc;
}


/* --- Claim ------------------------------------------------------------------------- */

/* The first task of a state in claim order (oldest job, largest cost,
 * ord) that fits ?2 mem_max: [0] queued (no lease: lease_until 0 <= ?1),
 * [1] running with its lease lapsed before ?1 now. Two statements, not one with OR, so each is one
 * seek of index tasks_claim (its first column is state) rather than a scan and a sort of every
 * task. Open tasks belong to running jobs only (finish and cancel drop them); the EXISTS keeps the
 * claim right without relying on it. */
#define SQL_TASK_PICK(cond)                                                              \
    "SELECT t.job_id, t.cost, t.ord FROM tasks t WHERE t.todo = 1 AND " cond             \
    " AND t.mem_bytes <= ?2 AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = t.job_id AND " \
    "j.state = " STORE__JOB_RUNNING_SQL ") ORDER BY t.job_id, t.cost DESC, t.ord LIMIT 1"
static const char *const SQL_TASK_NEXT[2] = {
    SQL_TASK_PICK("t.state = " STORE__TASK_QUEUED_SQL " AND t.lease_until <= ?1"),
    SQL_TASK_PICK("t.state = " STORE__TASK_RUNNING_SQL " AND t.lease_until > 0 AND "
                  "t.lease_until < ?1"),
};

/* SQL_TASK_NEXT[k] with the driver's row lock, made once per connection
 * (the statement cache keys it by its address, which holds until
 * store_close). */
static const char *task_claim_sql(struct store *s, int k)
{
    int n;

    if (s->sql_task_claim[k][0] != '\0')
        return s->sql_task_claim[k];
    n = snprintf(s->sql_task_claim[k], sizeof s->sql_task_claim[k], "%s %s", SQL_TASK_NEXT[k],
                 s->drv->task_claim_lock);
    ERR_ASSERT(n > 0 && (size_t)n < sizeof s->sql_task_claim[k]);
    return s->sql_task_claim[k];
}

/* A claim candidate: its place in claim order. */
struct pick {
    int found;
    int64_t job_id, ord;
    double cost;
};

/* Does a come before b in claim order? */
static int pick_before(const struct pick *a, const struct pick *b)
{
    if (!b->found)
        return a->found;
    if (!a->found)
        return 0;
    if (a->job_id != b->job_id)
        return a->job_id < b->job_id;
    if (a->cost != b->cost)
        return a->cost > b->cost;
    return a->ord < b->ord;
}

/* The first candidate of SQL_TASK_NEXT[k] (locked on PostgreSQL), if any. */
static enum err_code pick_next(struct store *s, int k, double now, uint64_t mem_max, struct pick *p,
                               struct err *e)
{
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, task_claim_sql(s, k), &st, e);
    int src;

    memset(p, 0, sizeof *p);
    if (rc != ERR_OK)
        return rc;
    store__bind_double(st, 1, now);
    store__bind_int64(st, 2, mem_max > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)mem_max);
    src = store__step(st);
    if (src == STORE__ROW) {
        p->found = 1;
        p->job_id = store__col_int64(st, 0);
        p->cost = store__col_double(st, 1);
        p->ord = store__col_int64(st, 2);
    } else if (src != STORE__DONE) {
        rc = store__dberr(s, src, "task claim", e);
    }
    store__release(st);
    return rc;
}

enum err_code store_task_claim(struct store *s, uint64_t mem_max, struct store_task *out,
                               int *claimed, struct err *e)
{
    static const char take[] = "UPDATE tasks SET state = " STORE__TASK_RUNNING_SQL ", "
                               "claimed_by = ?3, lease_until = ?4, attempts = attempts + 1 "
                               "WHERE job_id = ?1 AND ord = ?2 RETURNING " STORE__TASK_COLS;
    double now = store__now();
    struct store__q *st = NULL;
    struct pick queued, lapsed, *p;
    enum err_code rc;
    int src;

    *claimed = 0;
    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = pick_next(s, 0, now, mem_max, &queued, e);
    if (rc == ERR_OK)
        rc = pick_next(s, 1, now, mem_max, &lapsed, e);
    if (rc != ERR_OK)
        goto out;
    p = pick_before(&lapsed, &queued) ? &lapsed : &queued;
    if (!p->found) {
        rc = store__commit(s, e);
        goto out;
    }
    rc = store__stmt(s, take, &st, e);
    if (rc != ERR_OK)
        goto out;
    store__bind_int64(st, 1, p->job_id);
    store__bind_int64(st, 2, p->ord);
    store__bind_text(st, 3, s->owner);
    store__bind_double(st, 4, s->lease_s > 0 ? now + s->lease_s : 0);
    src = store__step(st);
    if (src == STORE__ROW)
        store__task_read(st, out);
    store__release(st);
    rc = src == STORE__ROW
             ? store__commit(s, e)
             : store__dberr(s, src == STORE__DONE ? STORE__ERROR : src, "task claim update", e);
    if (rc == ERR_OK)
        *claimed = 1;
out:
    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}

/* --- Done, release, renew ---------------------------------------------------------- */

/* ERR_CANCELED unless task (job_id, ord) of a running job is running and
 * this owner's; *run_id the job's run. */
static enum err_code task_check(struct store *s, int64_t job_id, int64_t ord, int64_t *run_id,
                                struct err *e)
{
    static const char sql[] =
        "SELECT j.state, c.run_id, t.state, t.claimed_by FROM tasks t JOIN jobs j ON "
        "j.id = t.job_id JOIN checkpoints c ON c.id = j.checkpoint_id "
        "WHERE t.job_id = ?1 AND t.ord = ?2";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src, job_state = -1, mine = 0;

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, job_id);
    store__bind_int64(st, 2, ord);
    src = store__step(st);
    if (src == STORE__ROW) {
        job_state = (int)store__col_int64(st, 0);
        *run_id = store__col_int64(st, 1);
        mine = store__col_int64(st, 2) == STORE_TASK_RUNNING_INT &&
               strcmp(store__col_str(st, 3), s->owner) == 0;
    }
    store__release(st);
    if (src == STORE__DONE)
        return err_set(e, ERR_CANCELED,
                       "job %" PRId64 " has no task %" PRId64 " (finished or "
                       "canceled)",
                       job_id, ord);
    if (src != STORE__ROW)
        return store__dberr(s, src, "task state", e);
    if (job_state != STORE_JOB_RUNNING)
        return err_set(e, ERR_CANCELED, "job %" PRId64 " is %s", job_id,
                       store_job_state_name((enum store_job_state)job_state));
    if (!mine)
        return err_set(e, ERR_CANCELED,
                       "task %" PRId64 " of job %" PRId64 " is no longer this worker's "
                       "(its lease lapsed)",
                       ord, job_id);
    return ERR_OK;
}

/* The task's and the job's updates of store_task_done (`last` or not). */
static enum err_code done_update(struct store *s, int64_t job_id, int64_t ord, int cache_hit,
                                 int last, struct err *e)
{
    static const char task_done[] = "UPDATE tasks SET state = " STORE__TASK_DONE_SQL
                                    ", lease_until = 0 WHERE job_id = ?1 AND ord = ?2";
    static const char task_last[] = "UPDATE tasks SET lease_until = ?3 "
                                    "WHERE job_id = ?1 AND ord = ?2";
    static const char job_done[] = "UPDATE jobs SET n_done = n_done + 1, "
                                   "n_cache_hits = n_cache_hits + ?2 WHERE id = ?1";
    /* a finaliser that died and is replaced counts its hit once */
    static const char job_last[] = "UPDATE jobs SET n_cache_hits = n_cache_hits + CASE WHEN "
                                   "n_done < n_total THEN ?2 ELSE 0 END, n_done = n_total "
                                   "WHERE id = ?1";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, last ? task_last : task_done, &st, e);

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, job_id);
    store__bind_int64(st, 2, ord);
    if (last)
        store__bind_double(st, 3, lease_end(s));
    rc = store__step_done(s, st, "task done", e);
    if (rc == ERR_OK)
        rc = store__stmt(s, last ? job_last : job_done, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, job_id);
    store__bind_int64(st, 2, cache_hit != 0);
    return store__step_done(s, st, "task done: job", e);
}

enum err_code store_task_done(struct store *s, int64_t job_id, int64_t ord, int cache_hit,
                              int *last, struct err *e)
{
    /* is any other task of the job open? (index tasks_claim; stops at the first) */
    static const char others[] = "SELECT count(*) FROM (SELECT 1 FROM tasks WHERE todo = 1 AND "
                                 "state IN (" STORE__TASK_QUEUED_SQL ", " STORE__TASK_RUNNING_SQL
                                 ") AND job_id = ?1 AND ord <> ?2 LIMIT 1) o";
    int64_t run_id = 0, n_others = 0;
    enum err_code rc;

    *last = 0;
    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = task_check(s, job_id, ord, &run_id, e);
    if (rc == ERR_OK)
        rc = store__task_query_int(s, others, job_id, ord, &n_others, e);
    if (rc == ERR_OK)
        rc = done_update(s, job_id, ord, cache_hit, n_others == 0, e);
    if (rc == ERR_OK)
        rc = store__bump_run(s, run_id, e);
    if (rc == ERR_OK)
        rc = store__commit(s, e);
    if (rc == ERR_OK)
        *last = n_others == 0;
    else
        store__rollback(s);
    return rc;
}

enum err_code store_task_release(struct store *s, int64_t job_id, int64_t ord, struct err *e)
{
    static const char sql[] = "UPDATE tasks SET state = " STORE__TASK_QUEUED_SQL ", "
                              "claimed_by = '', lease_until = 0 WHERE job_id = ?1 AND ord = ?2 "
                              "AND state = " STORE__TASK_RUNNING_SQL " AND claimed_by = ?3";
    struct store__q *st = NULL;
    enum err_code rc = store__begin(s, e);

    if (rc != ERR_OK)
        return rc;
    rc = store__stmt(s, sql, &st, e);
    if (rc == ERR_OK) {
        store__bind_int64(st, 1, job_id);
        store__bind_int64(st, 2, ord);
        store__bind_text(st, 3, s->owner);
        rc = store__step_done(s, st, "task release", e);
    }
    if (rc == ERR_OK)
        rc = store__commit(s, e);
    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}

enum err_code store_leases_renew(struct store *s, int64_t *n_renewed, struct err *e)
{
    static const char jobs[] =
        "UPDATE jobs SET lease_until = ?2 WHERE state = " STORE__JOB_RUNNING_SQL
        " AND claimed_by = ?1";
    static const char tasks[] =
        "UPDATE tasks SET lease_until = ?2 WHERE state = " STORE__TASK_RUNNING_SQL
        " AND claimed_by = ?1";
    const char *const sqls[] = {jobs, tasks};
    struct store__q *st = NULL;
    int64_t n = 0, k = 0;
    double until = lease_end(s);
    enum err_code rc;

    if (n_renewed != NULL)
        *n_renewed = 0;
    rc = store__begin(s, e);
    for (size_t i = 0; rc == ERR_OK && i < 2; i++) {
        rc = store__stmt(s, sqls[i], &st, e);
        if (rc != ERR_OK)
            break;
        store__bind_text(st, 1, s->owner);
        store__bind_double(st, 2, until);
        rc = step_changes(s, st, "lease renew", &k, e);
        n += k;
    }
    if (rc == ERR_OK)
        rc = store__commit(s, e);
    if (rc != ERR_OK) {
        store__rollback(s);
        return rc;
    }
    if (n_renewed != NULL)
        *n_renewed = n;
    return ERR_OK;
}
