/* store_jobs.h -- the persistent job queue: job states, submit, claim,
 * progress, finish, cancel, leases for several workers or replicas, counts
 * and the job list (store_jobs.c, store_job_submit.c, store_lease.c, store_runinfo.c).
 *
 * A job is one analysis of a checkpoint under one settings hash. Every
 * state change runs in one write transaction that also bumps the owning
 * run's version; claims are exactly-once across connections, processes and
 * replicas.
 *
 * Errors, ownership and thread-safety: as store.h (one connection per
 * thread; results caller-owned; strings borrowed for the call).
 */
#ifndef STORAGE_STORE_JOBS_H
#define STORAGE_STORE_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "storage/store.h"
#include "storage/store_job_base.h"

/* --- Enums stored as integers ---------------------------------------------- */

/* The integer the database stores for each job state (jobs.state) and
 * checkpoint source (checkpoints.source): the one definition. The enums
 * below take their values from here, and the SQL text of storage/ writes a
 * state as STORE__JOB_RUNNING_SQL (store_int.h), this number as a string
 * literal. Stored values: never renumber. */
#define STORE_JOB_QUEUED_INT    0
#define STORE_JOB_RUNNING_INT   1
#define STORE_JOB_SUCCEEDED_INT 2
#define STORE_JOB_FAILED_INT    3
#define STORE_JOB_CANCELED_INT  4
#define STORE_SOURCE_UPLOAD_INT 0
#define STORE_SOURCE_PATH_INT   1

/* X(NAME, "api name") for every job state, in the order of their integers. */
#define STORE_JOB_STATE_MAP(X) \
    X(QUEUED, "queued")        \
    X(RUNNING, "running")      \
    X(SUCCEEDED, "succeeded")  \
    X(FAILED, "failed")        \
    X(CANCELED, "canceled")

enum store_job_state {
#define X(name, str) STORE_JOB_##name = STORE_JOB_##name##_INT,
    STORE_JOB_STATE_MAP(X)
#undef X
        STORE_JOB_STATE_COUNT
};

enum store_source {
    STORE_SOURCE_UPLOAD = STORE_SOURCE_UPLOAD_INT, /* in the blob store under content_sha256
                                                      (blob_path) */
    STORE_SOURCE_PATH = STORE_SOURCE_PATH_INT      /* a file or sharded directory at `path` */
};

/* --- The queue ---------------------------------------------------------------- */

/* What POST .../checkpoints hands in. Strings borrowed for the call. */
struct store_submit {
    const char *run;            /* run name, 1..STORE_RUN_MAX-1 bytes */
    int64_t step;               /* >= 0 */
    const char *content_sha256; /* content identity (64 hex): the upload's SHA-256; for
                                   paths whatever identity the caller computes */
    enum store_source source;
    const char *path;                  /* STORE_SOURCE_PATH: the path; else NULL */
    const char *format;                /* "safetensors", "torch", ... or NULL (sniffed later) */
    uint64_t size;                     /* checkpoint bytes (0 if unknown) */
    const char *preset;                /* preset name */
    const char *params_json;           /* canonical params (preset_to_json) */
    const struct store_job_base *base; /* LoRA adapter: the base to merge onto; NULL none */
};

/* A job with its checkpoint and settings: plain data, caller-owned. */
struct store_job {
    int64_t id;
    enum store_job_state state;
    char run[STORE_RUN_MAX];
    int64_t step;
    int64_t checkpoint_id;
    char content_sha256[THASH_HEX_LEN];
    enum store_source source;
    char path[STORE_PATH_MAX];     /* STORE_SOURCE_PATH; "" for uploads */
    char format[STORE_FORMAT_MAX]; /* "" if unknown */
    uint64_t size;                 /* checkpoint bytes */
    char preset[STORE_PRESET_MAX];
    char params_json[STORE_PARAMS_MAX];
    char settings_hash[THASH_HEX_LEN];
    int64_t n_done;                          /* tensors finished (analysed or cache hit) */
    int64_t n_total;                         /* tensors to do; 0 until known */
    int64_t n_cache_hits;                    /* of n_done, served from the cache */
    char error_category[STORE_CATEGORY_MAX]; /* failed: err_category(); else "" */
    char error_message[STORE_MESSAGE_MAX];   /* failed: e.msg; else "" */
    double created, started, finished;       /* unix seconds; 0 = not yet */
    char claimed_by[STORE_OWNER_MAX];        /* the owner that claimed it last; "" */
    double lease_until;                      /* unix seconds; 0 = no lease */
    struct store_job_base base;              /* base.sha256 "": no base */
};

/* Static names "queued", "running", "succeeded", "failed", "canceled";
 * "?" out of range. Never NULL. */
const char *store_job_state_name(enum store_job_state st);

/* Submit: in ONE transaction, create the run (if new) and the checkpoint
 * (run, step) if new, then the job (checkpoint, settings) if new, and bump
 * the run's version. If the checkpoint exists with the same content and a
 * job for these settings exists, that job is returned and *existed = 1 (any
 * state; nothing changes). Same run+step with other content, or another base: ERR_CONFLICT.
 * Bad fields: ERR_INVAL. On success *out is the job (queued if new). */
enum err_code store_job_submit(struct store *s, const struct store_submit *sub,
                               struct store_job *out, int *existed, struct err *e);

/* Fill *out with job `id`. ERR_NOTFOUND if there is none. */
enum err_code store_job_get(struct store *s, int64_t id, struct store_job *out, struct err *e);

/* Only the state (cheap; polled between tensors). ERR_NOTFOUND. */
enum err_code store_job_state(struct store *s, int64_t id, enum store_job_state *state,
                              struct err *e);

/* Atomically take the oldest queued job (FIFO by id), or a running job
 * whose lease expired (its worker died) and is not planned (whose tasks
 * are claimed instead: store_tasks.h): -> running, started = now, progress reset, claimed_by = this
 * connection's owner, lease_until = now + lease (store_set_lease; no lease: 0, never re-claimed).
 * *claimed = 1 and *out filled, or *claimed = 0 when there is nothing to do. Exactly-once across
 * connections, processes and replicas (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED under the
 * writers' lock). */
enum err_code store_job_claim(struct store *s, struct store_job *out, int *claimed, struct err *e);

/* Record progress of a running job and renew its lease (now + lease).
 * ERR_CANCELED if the job is no longer running (canceled: stop work) or,
 * with a lease, if another owner has claimed it since (this lease expired:
 * stop work; a planned job is any owner's), ERR_NOTFOUND if there is no
 * such job. */
enum err_code store_job_progress(struct store *s, int64_t id, int64_t n_done, int64_t n_total,
                                 int64_t n_cache_hits, struct err *e);

/* Finish a running job: `state` is STORE_JOB_SUCCEEDED, or STORE_JOB_FAILED
 * with `category` and `message` (may be NULL; message truncated).
 * finished = now; its tasks (store_tasks.h) dropped in the same transaction.
 * ERR_CANCELED if it was canceled meanwhile (it stays canceled) or, with a
 * lease, claimed by another owner since (a planned job is any owner's: its
 * finaliser, or a task runner failing it); ERR_CONFLICT if it is not
 * running, ERR_INVAL for other states. */
enum err_code store_job_finish(struct store *s, int64_t id, enum store_job_state state,
                               const char *category, const char *message, struct err *e);

/* Cancel: queued or running -> canceled (finished = now), its tasks
 * dropped; already canceled is a no-op. *out (may be NULL) receives the
 * job after it. ERR_NOTFOUND; ERR_CONFLICT if it succeeded or failed. */
enum err_code store_job_cancel(struct store *s, int64_t id, struct store_job *out, struct err *e);

/* At start-up: every running task, and every running job not planned ->
 * queued (progress reset, started = 0; planned jobs stay running, their
 * tasks are claimed again); *n_requeued (may be NULL) counts the jobs. Only
 * when no worker of any process is running jobs on this database. */
enum err_code store_jobs_requeue(struct store *s, int64_t *n_requeued, struct err *e);

/* Leases, for several workers or replicas on one database: `owner` (1..
 * STORE_OWNER_MAX-1 bytes, e.g. "host:pid:random") names this connection's
 * claims; lease_s > 0 makes claims expire lease_s seconds after the last
 * progress, so the work of a worker that died is claimed again. lease_s 0:
 * no lease (claims never expire; store_jobs_requeue at start-up recovers
 * them). Only on this connection; no database access. ERR_INVAL. */
enum err_code store_set_lease(struct store *s, const char *owner, double lease_s, struct err *e);

/* At shutdown: every running task and every running unplanned job claimed
 * by this connection's owner -> queued (as store_jobs_requeue, for one
 * owner; planned jobs stay running for the other replicas); *n_requeued
 * (may be NULL) counts the jobs. */
enum err_code store_jobs_release(struct store *s, int64_t *n_requeued, struct err *e);

/* Number of jobs per state (/metrics); counts[STORE_JOB_QUEUED] is the
 * queue depth. */
enum err_code store_job_counts(struct store *s, int64_t counts[STORE_JOB_STATE_COUNT],
                               struct err *e);

/* Filter and page of store_jobs_list. */
struct store_job_filter {
    int state;       /* enum store_job_state, or -1: any */
    const char *run; /* run name, or NULL: any */
};

struct store_job_page {
    size_t n;
    struct store_job *items;          /* owned, newest first (descending id); NULL if n == 0 */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

#define STORE_JOBS_PAGE_MAX 1000 /* a job row is ~6 KB: larger pages are clamped */

/* Jobs matching `f`, newest first, keyset-paginated by id (page_size and
 * page_token as store_layer_history, at most STORE_JOBS_PAGE_MAX). ERR_NOTFOUND if f->run names no
 * run; ERR_INVAL for a malformed token. Free with store_job_page_free(). */
enum err_code store_jobs_list(struct store *s, const struct store_job_filter *f, size_t page_size,
                              const char *page_token, struct store_job_page **out, struct err *e);
void store_job_page_free(struct store_job_page *p);

#endif /* STORAGE_STORE_JOBS_H */
