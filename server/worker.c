/* worker.c -- see worker.h; the runner threads, the heartbeat, the memory
 * budget (worker_int.h lists the files of the runner).
 *
 * Locking: `mu` guards `stopping`, `hb_stopping`, `pending`, `n_waiting`, `mem_in_use` and
 * `n_running`; runners wait on `cv`, the heartbeat on `hb_cv`, both with a
 * timeout (work queued by another process is found by the next poll).
 * `claim` is held across one task claim: the budget left is read, the task
 * claimed within it and its memory reserved before another runner of this
 * process reads the budget, so the running tasks' estimates never sum past
 * it (unless one task runs alone). Lock order: claim, then mu.
 * Everything else a runner touches is its own (store connection, open
 * checkpoint).
 */
#include "server/worker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "server/log.h"
#include "server/worker_int.h"

#define WORKER_POLL_S 1

int worker__stopping(struct worker *w)
{
    int stop;

    pthread_mutex_lock(&w->mu);
    stop = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

void worker__wake_all(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->pending += w->n_threads;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Wait until notified, stopping, or the poll interval passes. */
static void worker_wait(struct worker *w)
{
    struct timespec until = clock_mono_deadline(WORKER_POLL_S);

    pthread_mutex_lock(&w->mu);
    w->n_waiting++;
    while (!w->stopping && w->pending == 0)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0)
            break;
    w->n_waiting--;
    if (w->pending > 0)
        w->pending--;
    pthread_mutex_unlock(&w->mu);
}

/* Claim a task whose estimate fits the budget left (any task when none
 * runs here) and reserve its memory. 1 if one was claimed into *t. */
static int worker_claim_task(struct worker_runner *rn, struct store_task *t)
{
    struct worker *w = rn->w;
    uint64_t mem_max, in_use = 0;
    unsigned running = 0;
    int claimed = 0;
    struct err e;

    pthread_mutex_lock(&w->claim);
    pthread_mutex_lock(&w->mu);
    if (w->n_running == 0)
        mem_max = UINT64_MAX;
    else
        mem_max = w->cfg.mem_budget > w->mem_in_use ? w->cfg.mem_budget - w->mem_in_use : 0;
    pthread_mutex_unlock(&w->mu);
    if (mem_max > 0 && store_task_claim(rn->s, mem_max, t, &claimed, &e) != ERR_OK) {
        LOG_WARN("worker", "msg=\"task claim failed\" err=\"%s\"", e.msg);
        claimed = 0;
    }
    if (claimed) {
        pthread_mutex_lock(&w->mu);
        w->mem_in_use += t->mem_bytes;
        running = ++w->n_running;
        in_use = w->mem_in_use;
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_unlock(&w->claim);
    if (claimed)
        LOG_DEBUG("worker",
                  "job=%lld task=%lld msg=\"claimed\" runner=%u mem_bytes=%llu running=%u "
                  "in_use=%llu",
                  (long long)t->job_id, (long long)t->ord, rn->id, (unsigned long long)t->mem_bytes,
                  running, (unsigned long long)in_use);
    return claimed;
}

/* A task ended: its memory is free again; wake a runner that may have
 * found no task fitting the budget left. */
static void worker_task_end(struct worker *w, const struct store_task *t)
{
    pthread_mutex_lock(&w->mu);
    w->mem_in_use -= t->mem_bytes;
    w->n_running--;
    if (w->n_waiting > 0) {
        w->pending++;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

/* Open this thread's store connection with this process's lease; the
 * database may be away (restarting): retry every poll interval. NULL when
 * stopping first (or the lease settings are bad). */
static struct store *worker_connect(struct worker *w)
{
    struct store *s = NULL;
    struct err e;

    while (!worker__stopping(w) && store_open(w->cfg.db_path, &s, &e) != ERR_OK) {
        LOG_ERROR("worker", "msg=\"cannot open the database, retrying\" err=\"%s\"", e.msg);
        worker_wait(w);
    }
    if (s != NULL && store_set_lease(s, w->cfg.owner, w->cfg.lease_s, &e) != ERR_OK) {
        LOG_ERROR("worker", "msg=\"bad lease settings\" err=\"%s\"", e.msg);
        store_close(s);
        s = NULL;
    }
    return s;
}

/* A runner: a task within the budget, else a queued job to plan, else wait. */
static void *worker_main(void *arg)
{
    struct worker_runner *rn = arg;
    struct store_job job;
    struct store_task *t = malloc(sizeof(*t)); /* large (its name): not on the stack */
    struct err e;
    int claimed;

    rn->s = worker_connect(rn->w);
    while (t != NULL && rn->s != NULL && !worker__stopping(rn->w)) {
        if (worker_claim_task(rn, t)) {
            worker__run_task(rn, t);
            worker_task_end(rn->w, t);
            continue;
        }
        worker__ckpt_close(rn); /* idle: let the job's files go */
        worker__snap_sweep(rn->w, rn->s);
        claimed = 0;
        if (store_job_claim(rn->s, &job, &claimed, &e) != ERR_OK)
            LOG_WARN("worker", "msg=\"claim failed\" err=\"%s\"", e.msg);
        if (claimed)
            worker__run_job(rn, &job);
        else
            worker_wait(rn->w);
    }
    if (t == NULL)
        LOG_ERROR("worker", "msg=\"out of memory starting a runner\"");
    worker__ckpt_close(rn);
    store_close(rn->s);
    rn->s = NULL;
    free(t);
    return NULL;
}

/* The heartbeat: renew this process's leases (jobs it plans, tasks its
 * runners run) every lease / 3, so a long layer or plan never loses them. */
static void *worker_heartbeat(void *arg)
{
    struct worker *w = arg;
    struct store *s = worker_connect(w);
    double every = w->cfg.lease_s / 3;
    struct err e;

    while (s != NULL) {
        struct timespec until = clock_mono_deadline(every);
        int stop;

        pthread_mutex_lock(&w->mu);
        while (!w->hb_stopping && pthread_cond_timedwait(&w->hb_cv, &w->mu, &until) == 0)
            ;
        stop = w->hb_stopping;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
        if (store_leases_renew(s, NULL, &e) != ERR_OK)
            LOG_WARN("worker", "msg=\"leases not renewed\" err=\"%s\"", e.msg);
    }
    store_close(s);
    return NULL;
}

/* The condition variables wait on CLOCK_MONOTONIC (clock_mono_deadline). */
static void worker_sync_init(struct worker *w)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->claim, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_cond_init(&w->hb_cv, &ca);
    pthread_condattr_destroy(&ca);
}

enum err_code worker_start(const struct worker_cfg *cfg, struct worker **out, struct err *e)
{
    struct worker *w;
    int prc;

    *out = NULL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    w->cfg = *cfg;
    worker_sync_init(w);
    w->threads = calloc(cfg->n_runners ? cfg->n_runners : 1, sizeof(*w->threads));
    w->runners = calloc(cfg->n_runners ? cfg->n_runners : 1, sizeof(*w->runners));
    if (w->threads == NULL || w->runners == NULL) {
        worker_stop(w);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (cfg->lease_s > 0) {
        prc = pthread_create(&w->heartbeat, NULL, worker_heartbeat, w);
        if (prc != 0) {
            worker_stop(w);
            return err_set_errno(e, ERR_INTERNAL, prc, "starting the heartbeat");
        }
        w->have_heartbeat = 1;
    }
    for (unsigned i = 0; i < cfg->n_runners; i++) {
        w->runners[i] = (struct worker_runner){.w = w, .id = i};
        prc = pthread_create(&w->threads[i], NULL, worker_main, &w->runners[i]);
        if (prc != 0) {
            worker_stop(w);
            return err_set_errno(e, ERR_INTERNAL, prc, "starting job runner %u", i);
        }
        w->n_threads++;
    }
    *out = w;
    return ERR_OK;
}

void worker_notify(struct worker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->pending++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void worker_stop(struct worker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->n_threads; i++)
        pthread_join(w->threads[i], NULL);
    pthread_mutex_lock(&w->mu); /* the runners' leases live until they are done */
    w->hb_stopping = 1;
    pthread_cond_broadcast(&w->hb_cv);
    pthread_mutex_unlock(&w->mu);
    if (w->have_heartbeat)
        pthread_join(w->heartbeat, NULL);
    worker__snap_free_all(w); /* taken again when the job runs here again */
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->hb_cv);
    pthread_mutex_destroy(&w->claim);
    pthread_mutex_destroy(&w->mu);
    free(w->threads);
    free(w->runners);
    free(w);
}
