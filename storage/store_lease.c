/* store_lease.c -- job leases for several workers or replicas on one
 * database: the owner and lease length of a connection, and giving back
 * an owner's running jobs and tasks at shutdown (planned jobs stay running
 * for the other replicas: store_tasks.h), and the requeue both that and
 * store_jobs_requeue_all run (store__requeue). Claims, renewals and the
 * owner checks are in store_jobs.c. See store.h.
 *
 * THREAD SAFETY: as store.h (one connection per thread).
 */
#include "storage/store_jobs.h"

#include <stdio.h>
#include <string.h>

#include "storage/store_db.h"
#include "storage/store_int.h"

enum err_code store_set_lease(struct store *s, const char *owner, double lease_s, struct err *e)
{
    if (owner == NULL || owner[0] == '\0' || strlen(owner) >= STORE_OWNER_MAX)
        return err_set(e, ERR_INVAL, "lease owner empty or longer than %d bytes",
                       STORE_OWNER_MAX - 1);
    if (!(lease_s >= 0 && lease_s <= 86400.0 * 365))
        return err_set(e, ERR_INVAL, "lease of %g s out of range", lease_s);
    snprintf(s->owner, sizeof s->owner, "%s", owner);
    s->lease_s = lease_s;
    return ERR_OK;
}

enum err_code store_jobs_release(struct store *s, int64_t *n_requeued, struct err *e)
{
    static const char bump[] =
        "UPDATE meta SET value = CAST(value AS BIGINT) + 1 WHERE key = 'change_seq'";
    static const char runs[] =
        "UPDATE runs SET version = (SELECT CAST(value AS BIGINT) FROM meta WHERE key = "
        "'change_seq') WHERE id IN (SELECT c.run_id FROM jobs j JOIN checkpoints c ON "
        "c.id = j.checkpoint_id WHERE j.state = " STORE__JOB_RUNNING_SQL " AND j.planned = 0 AND "
        "j.claimed_by = ?1)";
    static const char jobs[] =
        "UPDATE jobs SET state = " STORE__JOB_QUEUED_SQL ", started = 0, n_done = 0, "
        "n_cache_hits = 0, claimed_by = '', lease_until = 0 "
        "WHERE state = " STORE__JOB_RUNNING_SQL " AND planned = 0 AND claimed_by = ?1";
    static const char tasks[] =
        "UPDATE tasks SET state = " STORE__TASK_QUEUED_SQL ", "
        "claimed_by = '', lease_until = 0 WHERE state = " STORE__TASK_RUNNING_SQL
        " AND claimed_by = ?1";
    static const char *const sql[4] = {bump, runs, jobs, tasks};

    return store__requeue(s, sql, s->owner, "release", n_requeued, e);
}

enum err_code store__requeue(struct store *s, const char *const sql[4], const char *owner,
                             const char *what, int64_t *n_requeued, struct err *e)
{
    struct store__q *st = NULL;
    enum err_code rc;
    int64_t n = 0;
    char what_tasks[64];
    int i;

    if (n_requeued != NULL)
        *n_requeued = 0;
    snprintf(what_tasks, sizeof what_tasks, "%s: tasks", what);
    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    for (i = 0; i < 4 && rc == ERR_OK; i++) {
        rc = store__stmt(s, sql[i], &st, e);
        if (rc != ERR_OK)
            break;
        if (owner != NULL && i > 0)
            store__bind_text(st, 1, owner);
        rc = store__step_done(s, st, i == 3 ? what_tasks : what, e);
        if (i == 2)
            n = store__changes(s); /* the jobs requeued */
    }
    if (rc == ERR_OK)
        rc = store__commit(s, e);
    if (rc == ERR_OK && n_requeued != NULL)
        *n_requeued = n;
    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}
