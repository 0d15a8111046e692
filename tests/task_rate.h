/* task_rate.h -- how many task claims a database sustains: plan one job of
 * k tasks, then claim + done (+ finish on *last) from n connections at once
 * until none is left. For the bench ("task claims per second"); the tests
 * run it small and check the counts, never the time.
 *
 * Uses only the public storage API (store_tasks.h), so it measures what a
 * runner pays per task: one claim transaction and one done transaction.
 * Single-call helper: it opens its own connections (one per thread) and
 * closes them; no ownership leaves the call. Not thread-safe itself (call
 * it from one thread).
 */
#ifndef TESTS_TASK_RATE_H
#define TESTS_TASK_RATE_H

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/formats/thash.h"
#include "storage/store.h"
#include "storage/store_jobs.h"
#include "storage/store_tasks.h"

#define TASK_RATE_MAX_CONNS 64
#define TASK_RATE_MAX_BUSY  100 /* ERR_BUSY retries per connection before giving up */
#define TASK_RATE_PARAMS    "{\"window_rows\":2000,\"q_ratio\":1,\"xmin\":\"peak\"}"

struct task_rate {
    int64_t n_claims; /* tasks claimed and done over all connections */
    int64_t n_last;   /* runners told *last = 1 (1 when all went well) */
    int64_t n_busy;   /* ERR_BUSY answers retried (SQLite under contention) */
    int n_conns;      /* connections that claimed */
    double seconds;   /* wall time from the first claim to the last done */
    double per_s;     /* n_claims / seconds */
};

struct task_rate__runner {
    const char *target;
    int idx, k;
    pthread_barrier_t *go;
    int64_t n_claims, n_last, n_busy;
    enum err_code rc;
    struct err e;
};

static inline double task_rate__now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* r->rc is ERR_BUSY ("retry later": SQLite's busy timeout ran out while
 * the other writers kept the lock): count it and clear it, so the caller
 * retries; at most TASK_RATE_MAX_BUSY times per connection. */
static inline int task_rate__busy(struct task_rate__runner *r)
{
    if (r->rc != ERR_BUSY || r->n_busy >= TASK_RATE_MAX_BUSY)
        return 0;
    r->n_busy++;
    r->rc = ERR_OK;
    return 1;
}

static inline void *task_rate__run(void *arg)
{
    struct task_rate__runner *r = arg;
    struct store *s = NULL;
    struct store_task t;
    char owner[32];

    snprintf(owner, sizeof owner, "task-rate-%d", r->idx);
    r->rc = store_open(r->target, &s, &r->e);
    if (r->rc == ERR_OK)
        r->rc = store_set_lease(s, owner, 600, &r->e);
    pthread_barrier_wait(r->go);
    for (int op = 0; r->rc == ERR_OK && op <= r->k + TASK_RATE_MAX_BUSY; op++) {
        int claimed = 0, last = 0;

        r->rc = store_task_claim(s, UINT64_MAX, &t, &claimed, &r->e);
        if (task_rate__busy(r))
            continue;
        if (r->rc != ERR_OK || !claimed)
            break;
        r->n_claims++;
        do
            r->rc = store_task_done(s, t.job_id, t.ord, 0, &last, &r->e);
        while (task_rate__busy(r));
        if (r->rc == ERR_OK && last) {
            r->n_last++;
            do
                r->rc = store_job_finish(s, t.job_id, STORE_JOB_SUCCEEDED, NULL, NULL, &r->e);
            while (task_rate__busy(r));
        }
    }
    store_close(s);
    return NULL;
}

/* Submit run "task-rate" step `step` (distinct per call on one database),
 * claim and plan it with k tasks on `target` (a SQLite path or PostgreSQL
 * URL, as store_open), then run n_conns claimers. ERR_INVAL for k or
 * n_conns out of range; else the first error of any connection (e names
 * it); *out filled on success. */
static inline enum err_code task_rate_measure(const char *target, int64_t step, int k, int n_conns,
                                              struct task_rate *out, struct err *e)
{
    struct task_rate__runner r[TASK_RATE_MAX_CONNS];
    pthread_t th[TASK_RATE_MAX_CONNS];
    struct store_task_row *rows = NULL;
    struct store_submit sub = {0};
    struct store *s = NULL;
    struct store_job job;
    pthread_barrier_t go;
    char sha[THASH_HEX_LEN], name[48];
    int64_t n_open = 0;
    int existed = 0, claimed = 0;
    enum err_code rc;
    double t0;

    memset(out, 0, sizeof *out);
    if (k < 1 || k > 1000000 || n_conns < 1 || n_conns > TASK_RATE_MAX_CONNS)
        return err_set(e, ERR_INVAL, "task_rate: k %d or n_conns %d out of range", k, n_conns);
    rows = calloc((size_t)k, sizeof *rows + 32);
    if (rows == NULL)
        return err_set(e, ERR_NOMEM, "task_rate: out of memory");
    snprintf(name, sizeof name, "task-rate@%" PRId64, step);
    sub = (struct store_submit){.run = "task-rate",
                                .step = step,
                                .content_sha256 = sha,
                                .source = STORE_SOURCE_UPLOAD,
                                .format = "safetensors",
                                .size = 1,
                                .preset = "farms-llm",
                                .params_json = TASK_RATE_PARAMS};
    rc = thash_bytes(name, strlen(name), sha, e);
    if (rc == ERR_OK)
        rc = store_open(target, &s, e);
    if (rc == ERR_OK)
        rc = store_set_lease(s, "task-rate-planner", 600, e);
    if (rc == ERR_OK)
        rc = store_job_submit(s, &sub, &job, &existed, e);
    if (rc == ERR_OK)
        rc = store_job_claim(s, &job, &claimed, e);
    if (rc == ERR_OK && (!claimed || job.step != step || existed))
        rc = err_set(e, ERR_INVAL, "task_rate: the database has other queued jobs");
    for (int i = 0; rc == ERR_OK && i < k; i++) {
        char *nm = (char *)(rows + k) + (size_t)i * 32;

        snprintf(nm, 32, "t.%d", i);
        rows[i] = (struct store_task_row){.ord = i, .name = nm, .todo = 1, .cost = k - i};
        memcpy(rows[i].tensor_sha256, sha, sizeof sha);
    }
    if (rc == ERR_OK)
        rc = store_tasks_plan(s, job.id, rows, (size_t)k, 0, &n_open, e);
    store_close(s);
    free(rows);
    if (rc != ERR_OK)
        return rc;
    pthread_barrier_init(&go, NULL, (unsigned)n_conns + 1);
    for (int i = 0; i < n_conns; i++) {
        r[i] = (struct task_rate__runner){.target = target, .idx = i, .k = k, .go = &go};
        pthread_create(&th[i], NULL, task_rate__run, &r[i]);
    }
    pthread_barrier_wait(&go);
    t0 = task_rate__now();
    for (int i = 0; i < n_conns; i++)
        pthread_join(th[i], NULL);
    out->seconds = task_rate__now() - t0;
    pthread_barrier_destroy(&go);
    out->n_conns = n_conns;
    for (int i = 0; i < n_conns; i++) {
        out->n_claims += r[i].n_claims;
        out->n_last += r[i].n_last;
        out->n_busy += r[i].n_busy;
        if (rc == ERR_OK && r[i].rc != ERR_OK) {
            rc = r[i].rc;
            if (e != NULL)
                *e = r[i].e;
        }
    }
    out->per_s = out->seconds > 0 ? (double)out->n_claims / out->seconds : 0;
    return rc;
}

#endif /* TESTS_TASK_RATE_H */
