/* store_tasks.h -- a job's work as tasks that any runner of any replica
 * claims (store_tasks.c; the plan, its reads and counts: store_task_plan.c).
 *
 * A runner that claims a queued job (store_job_claim) plans it: it lists the
 * checkpoint's rows (engine_select, hashing every tensor), serves cache hits
 * and hands the plan in with store_tasks_plan: one row per report row, in
 * canonical order; the rows still to analyse become queued tasks. From then
 * on the job is "planned": store_job_claim never claims it again, and its
 * liveness is its tasks' leases. Any runner of any replica takes the next
 * task with store_task_claim (oldest job first, then the costliest task, so
 * a job's tail is short), analyses the tensor (or finds it in the result
 * cache, where a task a dead runner finished left it), puts the result in
 * the cache and calls store_task_done. The runner whose store_task_done
 * says *last = 1 finalises the job: it reads the plan back
 * (store_tasks_plan_get), writes the layer rows and finishes the job
 * (store_job_finish, which drops the job's tasks). Its task stays running
 * under its lease until then, so when that runner dies another one claims
 * the task again (a cache hit) and finalises.
 *
 * Leases: a task claim carries this connection's owner and lease
 * (store_set_lease); store_leases_renew, called by a heartbeat, renews every
 * running job and task of the owner. A task whose lease lapsed is claimed
 * again; a dead replica loses at most its tasks in flight. Cancel
 * (store_job_cancel) and finish drop a job's tasks; store_jobs_release (at
 * shutdown) hands the owner's running tasks back (queued) and leaves planned
 * jobs running for the other replicas; store_jobs_requeue (start-up, no
 * other process) queues every running task again.
 *
 * Errors, ownership and thread-safety: as store.h (one connection per
 * thread; results caller-owned; strings borrowed for the call).
 */
#ifndef STORAGE_STORE_TASKS_H
#define STORAGE_STORE_TASKS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/formats/thash.h"
#include "storage/store.h"

/* The integer the database stores for each task state (tasks.state).
 * Stored values: never renumber. */
#define STORE_TASK_QUEUED_INT  0
#define STORE_TASK_RUNNING_INT 1
#define STORE_TASK_DONE_INT    2

enum store_task_state {
    STORE_TASK_QUEUED = STORE_TASK_QUEUED_INT,
    STORE_TASK_RUNNING = STORE_TASK_RUNNING_INT,
    STORE_TASK_DONE = STORE_TASK_DONE_INT,
    STORE_TASK_STATE_COUNT
};

#define STORE_TASK_NAME_MAX 1024 /* a row's display name incl. NUL (longer: ERR_INVAL) */

/* One row of a job's plan, as handed to store_tasks_plan. */
struct store_task_row {
    int64_t ord;                       /* index of the row in the canonical report */
    const char *name;                  /* display name, borrowed */
    char tensor_sha256[THASH_HEX_LEN]; /* "" if the row was not hashed */
    int todo;           /* 1: to analyse (a queued task); 0: skipped, or a cache hit */
    double cost;        /* relative work of its analysis (claims take the largest first) */
    uint64_t mem_bytes; /* memory its analysis needs at most (store_task_claim's budget) */
};

/* A claimed task, or a row of a plan read back: plain data, caller-owned. */
struct store_task {
    int64_t job_id;
    int64_t ord;
    char name[STORE_TASK_NAME_MAX];
    char tensor_sha256[THASH_HEX_LEN];
    int todo;
    double cost;
    uint64_t mem_bytes;
    enum store_task_state state;
    int64_t attempts; /* claims so far, this one included (1: first) */
};

/* Hand in the plan of running job `job_id`, claimed by this connection's
 * owner, in ONE transaction: insert the rows (a row already there, from an
 * earlier plan of the same job whose planner died, keeps its state), mark
 * the job planned, set n_total to the rows with a sha256 that are todo or
 * hits (n_hits of them are hits) and n_done to the hits plus the tasks
 * already done. *n_open (may be NULL) receives the tasks not done: 0 means
 * there is nothing to analyse and the caller finalises at once; the job
 * then stays unplanned (still this owner's claim under its job lease), so
 * if the caller dies before finishing it, the job is claimed and planned
 * again (store_job_claim). ERR_CANCELED if the job is no longer running or
 * no longer this owner's; ERR_INVAL for a bad row (a todo row needs its
 * tensor_sha256; ord >= 0; cost finite >= 0; mem_bytes <= INT64_MAX) or
 * n_hits out of 0..(rows not todo). */
enum err_code store_tasks_plan(struct store *s, int64_t job_id, const struct store_task_row *rows,
                               size_t n, int64_t n_hits, int64_t *n_open, struct err *e);

/* Atomically take a task: a queued task of a running job, or a running
 * task whose lease lapsed (its runner died), whose mem_bytes <= mem_max
 * (UINT64_MAX: any); oldest job first, then the largest cost, then ord.
 * It becomes running, claimed by this connection's owner, its lease now +
 * lease, attempts + 1. *claimed = 1 and *out filled, or *claimed = 0.
 * Exactly-once across connections, processes and replicas (PostgreSQL:
 * FOR UPDATE SKIP LOCKED under the writers' lock). */
enum err_code store_task_claim(struct store *s, uint64_t mem_max, struct store_task *out,
                               int *claimed, struct err *e);

/* Task (job_id, ord), running and claimed by this owner, is done
 * (cache_hit: its result was already in the cache): in ONE transaction the
 * task becomes done and the job's n_done (and n_cache_hits) grow by one,
 * unless every other task of the job is done: then *last = 1, the task
 * stays running under a renewed lease, the job's n_done becomes n_total,
 * and the caller finalises the job (store_tasks_plan_get, the layer rows,
 * store_job_finish). Writers are serialised, so exactly one runner sees
 * *last = 1 per job (again only if that runner died and its task was
 * claimed again). The run's version is bumped (ETags change).
 * ERR_CANCELED if the job is no longer running (canceled, or failed by
 * another task) or the task is no longer this owner's (its lease lapsed). */
enum err_code store_task_done(struct store *s, int64_t job_id, int64_t ord, int cache_hit,
                              int *last, struct err *e);

/* Give task (job_id, ord) back: running -> queued, if this owner holds it
 * (a runner stopping mid-task). Not holding it is not an error. */
enum err_code store_task_release(struct store *s, int64_t job_id, int64_t ord, struct err *e);

/* The heartbeat: renew the lease (now + lease) of every running job and
 * task claimed by this connection's owner. *n_renewed (may be NULL)
 * receives how many. */
enum err_code store_leases_renew(struct store *s, int64_t *n_renewed, struct err *e);

/* The plan of job `job_id` (every row, in ord order), for the finaliser.
 * *out owned by the caller (free()), *n rows; ERR_NOTFOUND if the job has
 * no plan. */
enum err_code store_tasks_plan_get(struct store *s, int64_t job_id, struct store_task **out,
                                   size_t *n, struct err *e);

/* Number of tasks (todo rows) per state over all jobs (/metrics). */
enum err_code store_task_counts(struct store *s, int64_t counts[STORE_TASK_STATE_COUNT],
                                struct err *e);

#endif /* STORAGE_STORE_TASKS_H */
