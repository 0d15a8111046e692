/* worker_int.h -- what the files of the job runner share (worker.h).
 *
 *   worker.c       the runner threads and their loop (claim a task within
 *                  the memory budget, else claim a queued job and plan it,
 *                  else wait), the heartbeat thread, the budget;
 *   worker_plan.c  a claimed job: list and hash its rows, serve cache
 *                  hits, hand the plan in (store_tasks_plan); finalising and
 *                  failing a job;
 *   worker_open.c  a job's checkpoint opened as submitted, for its plan and
 *                  its tasks (snapshots, identity checks, LoRA merge);
 *   worker_task.c  a claimed task: open the job's checkpoint (cached per
 *                  runner), analyse the one row (or find it in the cache),
 *                  store_task_done; the last one finalises the job;
 *   worker_snap.c  the snapshots of single path files, kept per process
 *                  while their job runs.
 *
 * Ownership: a struct worker_runner belongs to its thread; its store
 * connection and open checkpoint are its own. Thread-safety: the fields of
 * struct worker marked "guarded by mu" are read and written under mu;
 * everything else is set before the threads start.
 */
#ifndef SERVER_WORKER_INT_H
#define SERVER_WORKER_INT_H

#include <pthread.h>
#include <stdint.h>

#include "core/numerics/farms.h"
#include "server/engine.h"
#include "server/worker.h"
#include "storage/store.h"
#include "storage/store_jobs.h"
#include "storage/store_results.h"
#include "storage/store_tasks.h"

struct worker_runner;

/* A single-file path's checked copy, kept for its job (worker_snap.c). */
struct worker_snap {
    int64_t job_id;
    int base;                  /* 1: the job's LoRA base; 0: its checkpoint */
    char path[STORE_PATH_MAX]; /* the copy in the blob folder's tmp/ */
    unsigned refs;             /* runners reading it now */
};

struct worker {
    struct worker_cfg cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* runners wait here (CLOCK_MONOTONIC) */
    pthread_cond_t hb_cv;          /* the heartbeat waits here (CLOCK_MONOTONIC) */
    int stopping;                  /* guarded by mu: runners stop after the task at hand */
    int hb_stopping;               /* guarded by mu: the heartbeat stops (after the runners) */
    unsigned n_waiting;            /* guarded by mu: runners in worker_wait */
    unsigned pending;              /* notifications not yet consumed, guarded by mu */
    uint64_t mem_in_use;           /* guarded by mu: sum of mem_bytes of the running tasks */
    unsigned n_running;            /* guarded by mu: tasks running */
    pthread_mutex_t claim;         /* serialises task claims (budget check, claim, reservation) */
    struct worker_snap *snaps;     /* owned, guarded by mu: the kept snapshots */
    size_t n_snaps, cap_snaps;     /* guarded by mu */
    pthread_t *threads;            /* owned */
    struct worker_runner *runners; /* owned: one per thread, each its thread's */
    unsigned n_threads;
    pthread_t heartbeat;
    int have_heartbeat;
};

/* A job's checkpoint opened by a runner for its tasks, kept while the
 * runner's consecutive tasks are of the same job. */
struct worker_ckpt {
    int64_t job_id; /* 0: nothing open */
    struct store_job job;
    struct farms_params params;
    struct ckpt *c;            /* owned */
    struct engine_report r;    /* owned: engine_select's rows, no hashes */
    unsigned char *selected;   /* owned: engine_select's decision per row */
    int snap_held, bsnap_held; /* 1: holds the job's (base's) snapshot (worker__snap_hold) */
};

struct worker_runner {
    struct worker *w;
    unsigned id;     /* 0..n_runners-1, in log lines */
    struct store *s; /* owned: this thread's connection */
    struct worker_ckpt k;
};

/* What planning one job carries. */
struct worker_job {
    struct worker *w;
    struct store *s;
    struct store_job job;
    int64_t n_done, n_total, n_hits;
    const char *settings_hash;
    int canceled;              /* the job was canceled by a DELETE */
    int for_task;              /* opened for a task: inputs read in place are not checked whole
                                  again (each tensor is checked against its planned hash) */
    int snap_held, bsnap_held; /* holds the job's (base's) snapshot */
};

/* 1 once worker_stop was called. */
int worker__stopping(struct worker *w);

/* Wake every idle runner of this process (new tasks were planned). */
void worker__wake_all(struct worker *w);

/* The job's settings: its preset with every key of the canonical JSON. */
enum err_code worker__params(const struct store_job *job, struct farms_params *p, struct err *e);

/* --- Opening a job's checkpoint (worker_open.c) ------------------------ */

/* Open job `j`'s checkpoint as submitted into *out (NULL on failure): an
 * upload's blob; a single path file (or LoRA base) from this process's
 * snapshot of it (j->snap_held, j->bsnap_held); else in place (*in_place =
 * 1 for the job's own path). A path base's snapshot is named in bsnap (len
 * bytes, "" if none). A path that no longer opens has changed. */
enum err_code worker__open_job(struct worker_job *j, char *bsnap, size_t len, int *in_place,
                               struct ckpt **out, struct err *e);

/* After engine_select hashed every tensor: whatever is read in place (the
 * job's path when `in_place`, a path base without a snapshot `bsnap`) must
 * still be what was submitted, else category "changed"; ERR_CANCELED when
 * stopping or canceled first. */
enum err_code worker__verify_inputs(struct worker_job *j, int in_place, const char *bsnap,
                                    struct err *e);

/* Open job `j`'s checkpoint for a task (j->for_task): an upload's blob; a
 * single path file (or LoRA base) from this process's snapshot of it (made
 * and checked if there is none yet: j->snap_held, j->bsnap_held then say
 * which to worker__snap_release); a shard set in place (engine_run checks
 * every tensor against its planned hash, so other bytes fail the job
 * "changed"). A path that no longer opens has changed. */
enum err_code worker__open_task(struct worker_job *j, struct ckpt **out, struct err *e);

/* A job failed with `rc`, `e` while reading a path in place: if the file
 * changed since the submission, say so (category "changed"). Returns the
 * code to report. */
enum err_code worker__explain_path_failure(const struct worker_job *j, enum err_code rc,
                                           struct err *e);

/* --- Snapshots (worker_snap.c) ----------------------------------------- */

/* 1 if this process keeps a snapshot for (job_id, base): its path into
 * path[0..len), held (refs + 1) until worker__snap_release. */
int worker__snap_hold(struct worker *w, int64_t job_id, int base, char *path, size_t len);

/* Keep the checked copy at `path` for (job_id, base), held once. If another
 * runner kept one meanwhile, ours is removed and `path` becomes that one.
 * ERR_NOMEM (the copy is removed). */
enum err_code worker__snap_add(struct worker *w, int64_t job_id, int base, char *path, size_t len,
                               struct err *e);

/* Stop holding (job_id, base)'s snapshot; it stays while the job runs. */
void worker__snap_release(struct worker *w, int64_t job_id, int base);

/* The job ended here: remove its snapshots now (readers keep their maps). */
void worker__snap_drop(struct worker *w, int64_t job_id);

/* Remove the snapshots no runner holds whose job no longer runs. */
void worker__snap_sweep(struct worker *w, struct store *s);

/* Remove every snapshot and free the table (worker_stop). */
void worker__snap_free_all(struct worker *w);

/* --- Finishing, failing and planning jobs (worker_plan.c) ------------- */

/* Finalise job `j` from report `r` of its checkpoint `c` (rows with their
 * planned hashes; `selected` as engine_select decided): every selected
 * row's result comes from the cache (a row whose result is missing is
 * analysed here, under `p`), then the layer rows are written and the job
 * finishes succeeded (its snapshots removed first). ERR_CANCELED if it is
 * no longer running. */
enum err_code worker__finish(struct worker_job *j, const struct ckpt *c,
                             const struct farms_params *p, struct engine_report *r, struct err *e);

/* Record the failure `e` of job `job_id` (store_job_finish FAILED, its
 * snapshots removed first), with its log line. */
void worker__fail(struct worker *w, struct store *s, int64_t job_id, const struct err *e);

/* Plan the claimed job `job` (worker_plan.c): its log lines, its failure. */
void worker__run_job(struct worker_runner *rn, const struct store_job *job);

/* Run the claimed task `t` (worker_task.c), finalising its job when it is
 * the last. Its failures are logged and recorded. */
void worker__run_task(struct worker_runner *rn, const struct store_task *t);

/* Close the runner's open checkpoint, if any, releasing its snapshots.
 * Cannot fail. */
void worker__ckpt_close(struct worker_runner *rn);

#endif /* SERVER_WORKER_INT_H */
