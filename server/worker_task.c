/* worker_task.c -- a claimed task: one row of a planned job (worker_int.h).
 *
 * The runner keeps the job's checkpoint open (in place, listed without
 * hashing) while its consecutive tasks are of the same job. A task's row is
 * found by its place in the canonical order and must carry the planned
 * name; it is served from the result cache (a task a dead runner finished,
 * or a tensor another job analysed meanwhile) or analysed (its bytes
 * checked against the planned hash), put into the cache, and marked done.
 * The runner told it was the last finalises the job: the plan read back,
 * every result from the cache, the layer rows, the job's end state.
 */
#include "server/worker_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "server/log.h"

void worker__ckpt_close(struct worker_runner *rn)
{
    struct worker_ckpt *k = &rn->k;

    if (k->snap_held)
        worker__snap_release(rn->w, k->job.id, 0);
    if (k->bsnap_held)
        worker__snap_release(rn->w, k->job.id, 1);
    engine_report_free(&k->r);
    ckpt_close(k->c);
    free(k->selected);
    memset(k, 0, sizeof(*k));
}

/* Make rn->k job `job_id`'s checkpoint: kept from the runner's previous
 * task when of the same job, else opened in place and listed. */
static enum err_code worker_task_ckpt(struct worker_runner *rn, int64_t job_id, struct err *e)
{
    struct worker_ckpt *k = &rn->k;
    struct worker_job j = {.w = rn->w, .s = rn->s, .for_task = 1};
    struct engine_opts o = {0};
    enum err_code rc;

    if (k->job_id == job_id)
        return ERR_OK;
    worker__ckpt_close(rn);
    rc = store_job_get(rn->s, job_id, &k->job, e);
    if (rc == ERR_NOTFOUND) /* its run was deleted */
        rc = err_set(e, ERR_CANCELED, "job %lld is gone", (long long)job_id);
    if (rc == ERR_OK)
        rc = worker__params(&k->job, &k->params, e);
    j.job = k->job;
    j.settings_hash = k->job.settings_hash;
    if (rc == ERR_OK)
        rc = worker__open_task(&j, &k->c, e);
    k->snap_held = j.snap_held;
    k->bsnap_held = j.bsnap_held;
    o.params = &k->params;
    if (rc == ERR_OK)
        rc = engine_select(k->c, &o, &k->r, e);
    if (rc == ERR_OK) {
        k->selected = malloc(k->r.n ? k->r.n : 1);
        if (k->selected == NULL)
            rc = err_set(e, ERR_NOMEM, "out of memory listing %zu rows", k->r.n);
    }
    for (size_t i = 0; rc == ERR_OK && i < k->r.n; i++)
        k->selected[i] = (unsigned char)k->r.layers[i].selected;
    if (rc == ERR_OK)
        k->job_id = job_id;
    else
        worker__ckpt_close(rn);
    return rc;
}

/* The checkpoint no longer lists what was planned: it changed. */
static enum err_code worker_task_changed(const struct worker_ckpt *k, const char *name,
                                         struct err *e)
{
    return err_setc(e, ERR_IO, ERR_CAT_CHANGED,
                    "the checkpoint of job %lld no longer lists tensor '%.100s' as it did when "
                    "the job was planned: it changed after it was submitted",
                    (long long)k->job_id, name);
}

/* The row of task `t` in the runner's report (same place, same name,
 * analysed by the rules), given the planned hash and made the only
 * selected row. */
static enum err_code worker_task_row(struct worker_runner *rn, const struct store_task *t,
                                     struct engine_layer **out, struct err *e)
{
    struct worker_ckpt *k = &rn->k;
    struct engine_layer *row;

    *out = NULL;
    if (t->ord < 0 || (size_t)t->ord >= k->r.n || !k->selected[t->ord] ||
        strcmp(k->r.layers[t->ord].name, t->name) != 0)
        return worker_task_changed(k, t->name, e);
    for (size_t i = 0; i < k->r.n; i++)
        k->r.layers[i].selected = 0;
    row = &k->r.layers[t->ord];
    row->selected = 1;
    memcpy(row->sha256, t->tensor_sha256, sizeof(row->sha256));
    *out = row;
    return ERR_OK;
}

/* Serve `row` from the cache (*hit = 1), else analyse it and cache it. */
static enum err_code worker_task_analyse(struct worker_runner *rn, struct worker_job *j,
                                         struct engine_layer *row, int *hit, struct err *e)
{
    struct worker_ckpt *k = &rn->k;
    struct engine_opts o = {.params = &k->params};
    char akey[STORE_KEY_MAX];
    struct store_result_key key = worker_result_key(j->settings_hash, row, akey, sizeof(akey));
    double t0;
    enum err_code rc;
    struct err pe;

    *hit = 0;
    rc = store_result_get(rn->s, &key, &row->res, &row->esd, hit, e);
    if (rc != ERR_OK || *hit) {
        api_stats_cache(rn->w->cfg.stats, (uint64_t)*hit, 0);
        return rc;
    }
    t0 = clock_mono_s();
    rc = engine_run(k->c, rn->w->cfg.pool, &o, &k->r, e);
    if (rc != ERR_OK)
        return rc;
    api_stats_cache(rn->w->cfg.stats, 0, 1);
    api_stats_analysis_seconds(rn->w->cfg.stats, clock_mono_s() - t0);
    if (store_result_put(rn->s, &key, &row->res, &row->esd, &pe) != ERR_OK)
        LOG_WARN("worker", "job=%lld msg=\"result not cached\" layer=%s err=\"%s\"",
                 (long long)k->job_id, row->name, pe.msg);
    return ERR_OK;
}

/* The last task of the job is done: read the plan back (every row's
 * hash), take every result from the cache, write the rows, finish. */
static enum err_code worker_task_finalise(struct worker_runner *rn, struct worker_job *j,
                                          struct err *e)
{
    struct worker_ckpt *k = &rn->k;
    struct store_task *plan = NULL;
    size_t n = 0;
    enum err_code rc = store_tasks_plan_get(rn->s, k->job_id, &plan, &n, e);

    if (rc == ERR_OK && n != k->r.n)
        rc = worker_task_changed(k, n > 0 ? plan[0].name : "?", e);
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        struct engine_layer *row = &k->r.layers[i];

        if (plan[i].ord != (int64_t)i || strcmp(plan[i].name, row->name) != 0) {
            rc = worker_task_changed(k, plan[i].name, e);
            break;
        }
        memcpy(row->sha256, plan[i].tensor_sha256, sizeof(row->sha256));
        row->selected = k->selected[i];
    }
    free(plan);
    if (rc == ERR_OK)
        rc = worker__finish(j, k->c, &k->params, &k->r, e);
    return rc;
}

/* The job finished here: its log line (counts as the database has them). */
static void worker_task_succeeded(struct worker_runner *rn, int64_t job_id)
{
    struct store_job job;
    struct err e;

    if (store_job_get(rn->s, job_id, &job, &e) != ERR_OK)
        job = (struct store_job){.id = job_id};
    LOG_INFO("worker", "job=%lld state=succeeded tensors=%lld cache_hits=%lld s=%.3f",
             (long long)job_id, (long long)job.n_total, (long long)job.n_cache_hits,
             job.finished > job.started ? job.finished - job.started : 0.0);
}

/* Task `t` failed with `rc`, `e`: dropped when its job no longer runs (or
 * is no longer ours); handed back on a database failure; otherwise the
 * checkpoint is at fault and the job fails. */
static void worker_task_failed(struct worker_runner *rn, struct worker_job *j,
                               const struct store_task *t, enum err_code rc, struct err *e)
{
    struct err re;

    if (rc == ERR_CANCELED) {
        LOG_DEBUG("worker", "job=%lld task=%lld msg=\"dropped: the job is not running\" err=\"%s\"",
                  (long long)t->job_id, (long long)t->ord, e->msg);
    } else if (rc == ERR_DB || rc == ERR_BUSY) {
        LOG_WARN("worker", "job=%lld task=%lld msg=\"handed back\" err=\"%s\"",
                 (long long)t->job_id, (long long)t->ord, e->msg);
        if (store_task_release(rn->s, t->job_id, t->ord, &re) != ERR_OK)
            LOG_WARN("worker",
                     "job=%lld task=%lld msg=\"not handed back: claimed again after "
                     "its lease\" err=\"%s\"",
                     (long long)t->job_id, (long long)t->ord, re.msg);
        return; /* the checkpoint stays open for the next task */
    } else {
        if (j->job.id != 0 && j->job.source == STORE_SOURCE_PATH)
            rc = worker__explain_path_failure(j, rc, e);
        (void)rc;
        worker__fail(rn->w, rn->s, t->job_id, e);
    }
    worker__ckpt_close(rn);
}

void worker__run_task(struct worker_runner *rn, const struct store_task *t)
{
    struct worker_job j = {.w = rn->w, .s = rn->s};
    struct engine_layer *row = NULL;
    int hit = 0, last = 0;
    struct err e = {0};
    double t0 = clock_mono_s();
    enum err_code rc = worker_task_ckpt(rn, t->job_id, &e);

    if (rc == ERR_OK) {
        j.job = rn->k.job;
        j.settings_hash = j.job.settings_hash;
        rc = worker_task_row(rn, t, &row, &e);
    }
    if (rc == ERR_OK)
        rc = worker_task_analyse(rn, &j, row, &hit, &e);
    if (rc == ERR_OK)
        rc = store_task_done(rn->s, t->job_id, t->ord, hit, &last, &e);
    if (rc == ERR_OK)
        LOG_DEBUG("worker",
                  "job=%lld task=%lld msg=\"done\" layer=%s runner=%u attempt=%lld cache_hit=%d "
                  "last=%d s=%.3f",
                  (long long)t->job_id, (long long)t->ord, t->name, rn->id, (long long)t->attempts,
                  hit, last, clock_mono_s() - t0);
    if (rc == ERR_OK && last)
        rc = worker_task_finalise(rn, &j, &e);
    if (rc == ERR_OK && last) {
        worker_task_succeeded(rn, t->job_id);
        worker__ckpt_close(rn);
    }
    if (rc != ERR_OK)
        worker_task_failed(rn, &j, t, rc, &e);
}
