/* store_jobs_int.h -- job internals shared by the storage/store*.c files:
 * job and task states as SQL text, the SELECT list of a job row and its
 * reader (store_jobs.c), and the requeue of running jobs and tasks
 * (store_lease.c). Not part of the public API; included by store_int.h.
 * Same thread rules as store.h.
 */
#ifndef STORAGE_STORE_JOBS_INT_H
#define STORAGE_STORE_JOBS_INT_H

#include <stdint.h>

#include "core/err.h"
#include "storage/store_db.h"
#include "storage/store_jobs.h"
#include "storage/store_tasks.h"

/* Job states as SQL text, made at compile time from their one definition
 * (the STORE_JOB_*_INT numbers of store_jobs.h): "WHERE state = "
 * STORE__JOB_RUNNING_SQL is "WHERE state = 1". No SQL text in storage/
 * writes a state's number itself. */
#define STORE__STR_(x)           #x
#define STORE__STR(x)            STORE__STR_(x)
#define STORE__JOB_QUEUED_SQL    STORE__STR(STORE_JOB_QUEUED_INT)
#define STORE__JOB_RUNNING_SQL   STORE__STR(STORE_JOB_RUNNING_INT)
#define STORE__JOB_SUCCEEDED_SQL STORE__STR(STORE_JOB_SUCCEEDED_INT)
#define STORE__JOB_FAILED_SQL    STORE__STR(STORE_JOB_FAILED_INT)
#define STORE__JOB_CANCELED_SQL  STORE__STR(STORE_JOB_CANCELED_INT)
#define STORE__TASK_QUEUED_SQL   STORE__STR(STORE_TASK_QUEUED_INT)
#define STORE__TASK_RUNNING_SQL  STORE__STR(STORE_TASK_RUNNING_INT)
#define STORE__TASK_DONE_SQL     STORE__STR(STORE_TASK_DONE_INT)

/* The SELECT list of a job (FROM jobs j JOIN checkpoints c JOIN runs r JOIN
 * settings g) that store__read_job reads (store_jobs.c). */
#define STORE__JOB_COLS                                                                     \
    "j.id, j.state, r.name, c.step, c.id, c.content_sha256, c.source, c.path, c.format, "   \
    "c.size, j.preset, g.params, j.settings_hash, j.n_done, j.n_total, j.n_cache_hits, "    \
    "j.error_category, j.error_message, j.created, j.started, j.finished, j.claimed_by, "   \
    "j.lease_until, j.base_sha256, j.base_source, j.base_path, j.base_format, j.base_run, " \
    "j.base_step "
#define STORE__JOB_FROM                                                                        \
    "FROM jobs j JOIN checkpoints c ON c.id = j.checkpoint_id JOIN runs r ON r.id = c.run_id " \
    "JOIN settings g ON g.hash = j.settings_hash "

/* Read a row of STORE__JOB_COLS into *j. */
void store__read_job(struct store__q *st, struct store_job *j);

/* State and owning run of job `id` (store_jobs.c); *mine = 0 when this
 * connection has a lease and the job's claim is another owner's, unless
 * the job is planned and `planned_mine` (store_tasks.h: any runner of its
 * tasks may record progress or finish it). ERR_NOTFOUND if none. */
enum err_code store__job_state_owner(struct store *s, int64_t id, int planned_mine,
                                     enum store_job_state *state, int64_t *run_id, int *mine,
                                     struct err *e);

/* Requeue running jobs and tasks in one transaction (store_lease.c): sql[0]
 * bumps the change id, sql[1] gives it to the runs concerned, sql[2]
 * requeues the jobs (their number -> *n_requeued if non-NULL) and sql[3]
 * the tasks; `owner`, if non-NULL, is bound to ?1 of sql[1..3]. Errors say
 * `what` ("<what>: tasks" for sql[3]). */
enum err_code store__requeue(struct store *s, const char *const sql[4], const char *owner,
                             const char *what, int64_t *n_requeued, struct err *e);

#endif /* STORAGE_STORE_JOBS_INT_H */
