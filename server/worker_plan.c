/* worker_plan.c -- a claimed job becomes a plan of tasks (worker_int.h).
 *
 * The job's checkpoint is opened as submitted (worker_open.c: an upload's
 * blob, a checked snapshot of a single path file, a shard set or a LoRA
 * adapter's path in place, its identity checked after every tensor was
 * hashed). Every row is hashed, cache hits are served, and the plan goes in
 * with store_tasks_plan: each row still to analyse is a task any runner of
 * any replica may take (worker__open_task: the same inputs, a shard set
 * read in place with every tensor's bytes checked against the hash planned
 * here). A job with nothing to analyse is finished at once. Also the
 * finalisation (worker__finish: layer rows, then the alert events, then
 * the job's end) and failure (worker__fail) both paths share.
 */
#include "server/worker_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/analysis.h"
#include "core/clock.h"
#include "core/numerics/preset.h"
#include "server/alerts.h"
#include "server/log.h"
#include "storage/store_layers.h"

/* The job's settings: its preset with every key of the canonical JSON. */
enum err_code worker__params(const struct store_job *job, struct farms_params *p, struct err *e)
{
    enum err_code rc = preset_get(job->preset, p, e);

    if (rc == ERR_OK)
        rc = preset_from_json(job->params_json, p, e);
    if (rc == ERR_FORMAT)
        rc = err_set(e, ERR_INTERNAL, "job %lld: stored settings are not JSON", (long long)job->id);
    return rc;
}

struct store_result_key worker_result_key(const char *settings_hash, const struct engine_layer *row,
                                          char *abuf, size_t alen)
{
    struct analysis_tensor t = {
        .name = row->name, .dtype = row->dtype, .ndim = row->ndim, .shape = row->shape};

    analysis_key(row->info.kind, &t, abuf, alen);
    return (struct store_result_key){.tensor_sha256 = row->sha256,
                                     .analysis_key = abuf,
                                     .settings_hash = settings_hash,
                                     .engine_version = ANALYSIS_ENGINE_VERSION};
}

/* Serve selected rows from the cache; they are then no longer selected. */
static enum err_code worker_cache_lookup(struct worker_job *j, struct engine_report *r,
                                         struct err *e)
{
    char akey[STORE_KEY_MAX];

    for (size_t i = 0; i < r->n; i++) {
        struct engine_layer *row = &r->layers[i];
        struct store_result_key key;
        int hit = 0;
        enum err_code rc;

        if (!row->selected)
            continue;
        j->n_total++;
        key = worker_result_key(j->settings_hash, row, akey, sizeof(akey));
        rc = store_result_get(j->s, &key, &row->res, &row->esd, &hit, e);
        if (rc)
            return rc;
        if (hit) {
            row->selected = 0;
            j->n_hits++;
            j->n_done++;
        }
    }
    api_stats_cache(j->w->cfg.stats, (uint64_t)j->n_hits, 0);
    return ERR_OK;
}

static enum err_code worker_store_layers(struct worker_job *j, const struct engine_report *r,
                                         struct err *e)
{
    struct store_layer *rows = calloc(r->n ? r->n : 1, sizeof(*rows));
    enum err_code rc;

    if (rows == NULL)
        return err_set(e, ERR_NOMEM, "out of memory storing %zu layers", r->n);
    for (size_t i = 0; i < r->n; i++) {
        const struct engine_layer *l = &r->layers[i];
        rows[i].name = l->name; /* borrowed for the call */
        rows[i].kind = l->info.kind;
        rows[i].dtype = l->dtype;
        rows[i].ndim = l->ndim;
        memcpy(rows[i].shape, l->shape, sizeof(rows[i].shape));
        memcpy(rows[i].tensor_sha256, l->sha256, sizeof(rows[i].tensor_sha256));
        rows[i].r = l->res;
        rows[i].esd = l->esd;
    }
    rc = store_layers_put(j->s, j->job.checkpoint_id, j->job.settings_hash, rows, r->n, e);
    free(rows);
    return rc;
}


/* Put the result of analysed row `row` into the cache (a failure is only
 * logged: the row is then analysed again where it is missed). */
static void worker_cache_put(struct worker_job *j, const struct engine_layer *row)
{
    char akey[STORE_KEY_MAX];
    struct store_result_key key = worker_result_key(j->settings_hash, row, akey, sizeof(akey));
    struct err e;

    if (store_result_put(j->s, &key, &row->res, &row->esd, &e) != ERR_OK)
        LOG_WARN("worker", "job=%lld msg=\"result not cached\" layer=%s err=\"%s\"",
                 (long long)j->job.id, row->name, e.msg);
}

/* After engine_run analysed a row at finalisation: cache it. */
static int worker_finish_progress(void *arg, size_t done, size_t total,
                                  const struct engine_layer *row, double seconds)
{
    struct worker_job *j = arg;

    (void)done;
    (void)total;
    api_stats_cache(j->w->cfg.stats, 0, 1);
    api_stats_analysis_seconds(j->w->cfg.stats, seconds);
    worker_cache_put(j, row);
    return 0;
}

enum err_code worker__finish(struct worker_job *j, const struct ckpt *c,
                             const struct farms_params *p, struct engine_report *r, struct err *e)
{
    struct engine_opts o = {.params = p, .progress = worker_finish_progress, .progress_arg = j};
    char akey[STORE_KEY_MAX];
    enum err_code rc = ERR_OK;

    for (size_t i = 0; i < r->n && rc == ERR_OK; i++) {
        struct engine_layer *row = &r->layers[i];
        struct store_result_key key;
        int hit = 0;

        if (!row->selected)
            continue;
        key = worker_result_key(j->settings_hash, row, akey, sizeof(akey));
        rc = store_result_get(j->s, &key, &row->res, &row->esd, &hit, e);
        row->selected = !hit;
    }
    if (rc == ERR_OK) /* rows whose result is missing (not cached) are analysed here */
        rc = engine_run(c, j->w->cfg.pool, &o, r, e);
    if (rc == ERR_OK)
        rc = worker_store_layers(j, r, e);
    if (rc == ERR_OK) {
        /* Alerts before the end is recorded: whoever sees the job succeeded
         * sees its events. A crash in between runs the job again, and its
         * second evaluation adds nothing (one event per job and rule). */
        alerts_job_succeeded(j->s, j->job.id, j->w->cfg.webhook);
        worker__snap_drop(j->w, j->job.id); /* before the end is recorded */
        rc = store_job_finish(j->s, j->job.id, STORE_JOB_SUCCEEDED, NULL, NULL, e);
    }
    return rc;
}

void worker__fail(struct worker *w, struct store *s, int64_t job_id, const struct err *e)
{
    struct err fe;

    worker__snap_drop(w, job_id); /* before the end is recorded */
    LOG_WARN("worker", "job=%lld state=failed category=%s err=\"%s\"", (long long)job_id,
             err_category(e), e->msg);
    if (store_job_finish(s, job_id, STORE_JOB_FAILED, err_category(e), e->msg, &fe) != ERR_OK)
        LOG_ERROR("worker", "job=%lld msg=\"cannot record the failure\" err=\"%s\"",
                  (long long)job_id, fe.msg);
}

/* The plan of report `r` (every row, with its hash): the rows still
 * selected (cache misses) are tasks, with their cost and memory estimates
 * (analysis_estimate on this process's pool). *out: free(). */
static enum err_code worker_plan_rows(const struct worker_job *j, const struct ckpt *c,
                                      const struct farms_params *p, const struct engine_report *r,
                                      struct store_task_row **out, struct err *e)
{
    struct store_task_row *rows = calloc(r->n ? r->n : 1, sizeof(*rows));
    unsigned n_workers = pool_size(j->w->cfg.pool);

    *out = NULL;
    if (rows == NULL)
        return err_set(e, ERR_NOMEM, "out of memory planning %zu rows", r->n);
    for (size_t i = 0; i < r->n; i++) {
        const struct engine_layer *row = &r->layers[i];
        const struct ckpt_tensor *t = ckpt_tensor_at(c, row->tensor);
        struct analysis_tensor at = {.name = row->name,
                                     .dtype = row->dtype,
                                     .ndim = row->ndim,
                                     .shape = row->shape,
                                     .n_elems = t->n_elems};
        struct analysis_estimate est = {0};

        if (row->selected)
            analysis_estimate(row->info.kind, &at, t->nbytes, p, n_workers, &est);
        rows[i] = (struct store_task_row){.ord = (int64_t)i,
                                          .name = row->name,
                                          .todo = row->selected,
                                          .cost = est.cost,
                                          .mem_bytes = est.mem_bytes};
        memcpy(rows[i].tensor_sha256, row->sha256, sizeof(rows[i].tensor_sha256));
    }
    *out = rows;
    return ERR_OK;
}

/* Hand the plan of `r` in; with nothing left to analyse, finish the job
 * here (*finished = 1). */
static enum err_code worker_plan_hand_in(struct worker_job *j, const struct ckpt *c,
                                         const struct farms_params *p, struct engine_report *r,
                                         int *finished, struct err *e)
{
    struct store_task_row *rows = NULL;
    int64_t n_open = 0;
    enum err_code rc = worker_plan_rows(j, c, p, r, &rows, e);

    if (rc == ERR_OK)
        rc = store_tasks_plan(j->s, j->job.id, rows, r->n, j->n_hits, &n_open, e);
    free(rows);
    if (rc == ERR_OK && n_open == 0) {
        rc = worker__finish(j, c, p, r, e);
        *finished = rc == ERR_OK;
    }
    if (rc == ERR_OK && n_open > 0) {
        LOG_INFO("worker", "job=%lld msg=\"planned\" tasks=%lld tensors=%lld cache_hits=%lld",
                 (long long)j->job.id, (long long)n_open, (long long)j->n_total,
                 (long long)j->n_hits);
        worker__wake_all(j->w);
    }
    return rc;
}

/* Open as submitted, select and hash, check the inputs, look up the cache,
 * hand the plan in (finishing the job when nothing is left to analyse). */
static enum err_code worker_plan_job(struct worker_job *j, int *finished, struct err *e)
{
    enum err_code rc;
    struct farms_params params;
    struct engine_opts o = {0};
    struct engine_report r = {0};
    struct ckpt *c = NULL;
    char bsnap[STORE_PATH_MAX] = "";
    int in_place = 0;

    rc = worker__params(&j->job, &params, e);
    if (rc == ERR_OK)
        rc = worker__open_job(j, bsnap, sizeof(bsnap), &in_place, &c, e);
    o = (struct engine_opts){.params = &params, .hash = 1};
    if (rc == ERR_OK)
        rc = engine_select(c, &o, &r, e);
    if (rc == ERR_OK)
        rc = worker__verify_inputs(j, in_place, bsnap, e);
    if (rc == ERR_OK)
        rc = worker_cache_lookup(j, &r, e);
    if (rc == ERR_OK)
        rc = worker_plan_hand_in(j, c, &params, &r, finished, e);
    if (rc && in_place)
        rc = worker__explain_path_failure(j, rc, e);
    engine_report_free(&r);
    ckpt_close(c);
    if (j->snap_held) /* kept for the job's tasks */
        worker__snap_release(j->w, j->job.id, 0);
    if (j->bsnap_held)
        worker__snap_release(j->w, j->job.id, 1);
    return rc;
}

void worker__run_job(struct worker_runner *rn, const struct store_job *job)
{
    struct worker_job j = {
        .w = rn->w, .s = rn->s, .job = *job, .settings_hash = job->settings_hash};
    double t0 = clock_mono_s();
    enum err_code rc;
    struct err e = {0};
    int finished = 0;

    LOG_INFO("worker", "job=%lld state=running run=%s step=%lld preset=%s", (long long)job->id,
             job->run, (long long)job->step, job->preset);
    rc = worker_plan_job(&j, &finished, &e);
    if (rc == ERR_CANCELED) {
        if (j.canceled)
            LOG_INFO("worker", "job=%lld state=canceled", (long long)job->id);
        else if (worker__stopping(rn->w)) /* left running, given back by the server */
            LOG_INFO("worker", "job=%lld msg=\"interrupted by shutdown, will run again\"",
                     (long long)job->id);
        else
            LOG_WARN("worker", "job=%lld msg=\"not planned here\" err=\"%s\"", (long long)job->id,
                     e.msg);
        return;
    }
    if (rc == ERR_OK && finished) {
        LOG_INFO("worker", "job=%lld state=succeeded tensors=%lld cache_hits=%lld s=%.3f",
                 (long long)job->id, (long long)j.n_total, (long long)j.n_hits,
                 clock_mono_s() - t0);
    }
    if (rc != ERR_OK)
        worker__fail(rn->w, rn->s, job->id, &e);
}
