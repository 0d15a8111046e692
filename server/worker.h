/* worker.h -- the job runner: claims queued jobs from the database and
 * analyses their checkpoints on the shared analysis pool.
 *
 * A runner thread (one or more) owns its own store connection. For a job it
 * opens the checkpoint (blob or path), lists and hashes its tensors, checks
 * a path's content identity against the submitted one (core/ckpt_id.h; a
 * file that changed since the 202 fails the job with category "changed"),
 * serves every tensor already in the result cache from there, analyses the
 * rest (each tensor's bytes verified against its hash as it is loaded;
 * each layer's FARMS units fan out over all pool workers), puts each new
 * result into the cache as soon as it is ready, records progress, and
 * finally writes the layer rows and the job's end state. One log line per
 * job state change.
 *
 * Cancel: a DELETE marks the job canceled; the runner notices at the next
 * layer and stops. Shutdown: worker_stop() makes runners stop at the next
 * layer; their jobs are given back (store_jobs_release) and run again, here
 * after a restart or on another replica, where finished tensors are cache
 * hits. Claims carry a lease renewed with each layer's progress: when a
 * replica dies, its jobs are claimed again by the others after the lease.
 * Idle runners poll the queue every WORKER_POLL_S seconds.
 *
 * Thread-safety: worker_notify() may be called from any thread; worker_stop()
 * once, from the thread that started the worker.
 */
#ifndef SERVER_WORKER_H
#define SERVER_WORKER_H

#include "api/stats.h"
#include "core/formats/ckpt.h"
#include "core/err.h"
#include "server/pool.h"
#include "storage/blob.h"

struct worker; /* opaque */

struct worker_cfg {
    const char *db_path;              /* borrowed: the database URL (store_open) */
    const char *owner;                /* borrowed: lease owner of this process's claims */
    double lease_s;                   /* job lease, renewed after every layer */
    struct blob_store *blobs;         /* borrowed */
    struct pool *pool;                /* borrowed: the analysis threads */
    unsigned n_runners;               /* jobs run at once (each uses the whole pool) */
    struct api_stats *stats;          /* borrowed, may be NULL */
    const struct ckpt_limits *limits; /* borrowed, NULL: defaults */
};

/* Start the runner threads. Returns a new worker; stop with worker_stop(). */
enum err_code worker_start(const struct worker_cfg *cfg, struct worker **out, struct err *e);

/* A job was queued: wake an idle runner. NULL-safe, any thread. */
void worker_notify(struct worker *w);

/* Stop: runners finish the layer at hand, leave their jobs running in the
 * database, exit; then free. The caller gives them back with
 * store_jobs_release.
 * NULL is a no-op. */
void worker_stop(struct worker *w);

#endif /* SERVER_WORKER_H */
