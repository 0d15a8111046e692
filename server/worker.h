/* worker.h -- the job runners: a job's work is per-tensor tasks in the
 * database (storage/store_tasks.h) that every runner of every replica
 * shares, analysed on this process's analysis pool.
 *
 * A runner loops: claim a task whose memory estimate fits the budget left
 * (any task when nothing runs here, so a large layer runs alone) and run
 * it; else claim a queued job and plan it; else wait. Planning opens the
 * checkpoint as submitted (blob; a single path file from a checked
 * snapshot; a shard set in place with its content identity checked, core/
 * ckpt_id.h; a LoRA adapter merged onto its base), lists and hashes every
 * row, serves rows already in the result cache, and hands the plan in:
 * each row still to analyse becomes a task. Running a task opens the job's
 * checkpoint in place (kept open while the runner's tasks are of the same
 * job), analyses that one row (its bytes checked against the planned hash:
 * other bytes fail the job with category "changed"; each layer's FARMS
 * units fan out over all pool workers), puts the result into the cache and
 * marks the task done; the runner whose task was the last writes the layer
 * rows and finishes the job. A task error that is the checkpoint's fault
 * (I/O, changed, format) fails the job; the other runners' tasks of it are
 * then dropped. One log line per job state change, a debug line per task.
 *
 * Cancel: a DELETE cancels the job and drops its tasks; a runner finishes
 * the layer at hand and drops it. Shutdown: worker_stop() makes runners
 * stop after the task at hand; the server gives this process's tasks and
 * unplanned jobs back (store_jobs_release) to run here after a restart or
 * on another replica. Leases: a heartbeat thread renews this process's job
 * and task leases every lease / 3; when a replica dies its tasks in flight
 * are claimed again by the others after one lease. Idle runners poll every
 * WORKER_POLL_S seconds.
 *
 * Thread-safety: worker_notify() may be called from any thread; worker_stop()
 * once, from the thread that started the worker.
 */
#ifndef SERVER_WORKER_H
#define SERVER_WORKER_H

#include <stdint.h>

#include "api/stats.h"
#include "core/formats/ckpt.h"
#include "core/err.h"
#include "server/engine.h"
#include "server/pool.h"
#include "server/webhook.h"
#include "storage/blob.h"
#include "storage/store_results.h"

struct worker; /* opaque */

struct worker_cfg {
    const char *db_path;              /* borrowed: the database URL (store_open) */
    const char *owner;                /* borrowed: lease owner of this process's claims */
    double lease_s;                   /* job and task lease, renewed every lease_s / 3 */
    struct blob_store *blobs;         /* borrowed */
    struct pool *pool;                /* borrowed: the analysis threads */
    unsigned n_runners;               /* tasks run at once (sharing the pool) */
    uint64_t mem_budget;              /* bytes: the running tasks' estimates sum to at most
                                         this, unless one task runs alone */
    struct api_stats *stats;          /* borrowed, may be NULL */
    const struct ckpt_limits *limits; /* borrowed, NULL: defaults */
    struct webhook *webhook;          /* borrowed, may be NULL: where a succeeded job's
                                         alert events go (server/alerts.h) */
};

/* Start the runner threads. Returns a new worker; stop with worker_stop(). */
enum err_code worker_start(const struct worker_cfg *cfg, struct worker **out, struct err *e);

/* A job was queued: wake an idle runner. NULL-safe, any thread. */
void worker_notify(struct worker *w);

/* Stop: runners finish the task at hand, leave the rest in the database,
 * exit; then free. The caller gives this process's tasks and jobs back
 * with store_jobs_release.
 * NULL is a no-op. */
void worker_stop(struct worker *w);

/* The result-cache key of analysed layer `row` under settings
 * `settings_hash` (akey: room for its analysis key, STORE_KEY_MAX bytes;
 * the key borrows akey and the strings of row). The workers and `farmsd
 * analyze/compare --db` use this one key, so they share cached results. */
struct store_result_key worker_result_key(const char *settings_hash, const struct engine_layer *row,
                                          char *akey, size_t alen);

#endif /* SERVER_WORKER_H */
