/* api_admin.c -- a run as a whole and the job list:
 *   GET    /v1/runs/{run}        summary: steps, presets with counts, the
 *                                default preset, the last job
 *   DELETE /v1/runs/{run}        the run, its checkpoints, jobs, layer rows
 *                                and the blobs no other run refers to
 *   GET    /v1/jobs?state=&run=  jobs, newest first, paginated
 * GETs answer 304 on a matching If-None-Match after reading only a change
 * id. A deleted run needs no cache invalidation: its reads answer 404 from
 * the run lookup before any cached body could be used, and a run created
 * again under the name gets a change id never used before (new ETags).
 */
#include "api/api_int.h"
#include "api/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_jobs.h"
#include "storage/store_runs.h"

static cJSON *api_presets_json(const struct store_run_summary *u)
{
    cJSON *arr = cJSON_CreateArray();

    for (size_t i = 0; arr != NULL && i < u->n_presets; i++) {
        const struct store_preset_count *p = &u->presets[i];
        cJSON *o = cJSON_CreateObject();

        if (o != NULL && !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            o = NULL;
        }
        /* o, once added, is owned by arr */
        if (o == NULL || !cJSON_AddStringToObject(o, "name", p->preset) ||
            !cJSON_AddNumberToObject(o, "checkpoints", (double)p->n_checkpoints) ||
            !cJSON_AddNumberToObject(o, "analysed", (double)p->n_succeeded)) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static int api_add_step(cJSON *o, const char *name, int64_t step)
{
    return step >= 0 ? cJSON_AddNumberToObject(o, name, (double)step) != NULL
                     : cJSON_AddNullToObject(o, name) != NULL;
}

/* {"name", "created", "checkpoints", "first_step", "last_step",
 * "default_preset", "presets": [{"name", "checkpoints", "analysed"}],
 * "last_job": job or null}. NULL on allocation failure. */
static cJSON *api_summary_json(const struct store_run_summary *u, const char *dflt)
{
    cJSON *o = cJSON_CreateObject(), *p = api_presets_json(u);
    int ok = o != NULL && p != NULL;

    ok = ok && cJSON_AddStringToObject(o, "name", u->name);
    ok = ok && cJSON_AddItemToObject(o, "created", api__time_json(u->created));
    ok = ok && cJSON_AddNumberToObject(o, "checkpoints", (double)u->n_checkpoints);
    ok = ok && api_add_step(o, "first_step", u->first_step);
    ok = ok && api_add_step(o, "last_step", u->last_step);
    ok = ok && cJSON_AddStringToObject(o, "default_preset", dflt);
    ok = ok && cJSON_AddItemToObject(o, "presets", p);
    if (ok)
        p = NULL;
    ok = ok &&
         cJSON_AddItemToObject(o, "last_job",
                               u->has_last_job ? api__job_json(&u->last_job) : cJSON_CreateNull());
    if (!ok) {
        cJSON_Delete(p);
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* GET /v1/runs/{run}: the summary (api_summary_json) and "latest_summary":
 * the checkpoint summary of the run's highest analysed step under the
 * settings reads default to (null before the first analysis). */
void api__run_get(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");
    char key[API_ETAG_KEY_MAX], preset[STORE_PRESET_MAX] = "", hash[THASH_HEX_LEN];
    struct store_run_summary *u = NULL;
    struct err e = {0};
    int64_t version;

    if (!api__run_version(c, resp, run, &version))
        return;
    snprintf(key, sizeof(key), "run|%s", run);
    if (api__etag(c, resp, version, key))
        return;
    u = malloc(sizeof(*u)); /* ~7 KB: not on the request thread's stack */
    if (u == NULL) {
        api_fail(resp, ERR_NOMEM, ERR_CAT_NONE, "out of memory");
        return;
    }
    if (store_run_summary(c->s, run, u, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        free(u);
        return;
    }
    snprintf(preset, sizeof(preset), "%s", u->default_preset);
    if (api__preset_default(c, resp, run, -1, preset, hash)) {
        cJSON *o = api_summary_json(u, preset);

        if (o != NULL && !api__add_summary(c, o, "latest_summary", run, -1, "", &e)) {
            cJSON_Delete(o);
            api_problem_err(resp, &e);
        } else {
            api__ok(resp, o);
        }
    }
    free(u);
}

/* DELETE /v1/runs/{run}: 200 {"run", "deleted": {"checkpoints", "jobs",
 * "layer_rows", "blobs"}}; 409 while one of its jobs runs. */
void api__run_delete(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");
    struct store_run_deleted d = {0};
    struct err e = {0};
    cJSON *o, *x;

    if (!api__run_name(resp, run))
        return;
    if (store_run_delete(c->s, run, c->ctx->blobs, &d, &e) != ERR_OK) {
        if (e.code == ERR_CONFLICT)
            e.category = ERR_CAT_JOB_RUNNING;
        api_problem_err(resp, &e);
        return;
    }
    o = cJSON_CreateObject();
    x = o && cJSON_AddStringToObject(o, "run", run) ? cJSON_AddObjectToObject(o, "deleted") : NULL;
    if (x == NULL || !cJSON_AddNumberToObject(x, "checkpoints", (double)d.n_checkpoints) ||
        !cJSON_AddNumberToObject(x, "jobs", (double)d.n_jobs) ||
        !cJSON_AddNumberToObject(x, "layer_rows", (double)d.n_layers) ||
        !cJSON_AddNumberToObject(x, "blobs", (double)d.n_blobs)) {
        cJSON_Delete(o);
        o = NULL;
    }
    api__ok(resp, o);
}

/* ?state= and ?run= of the job list: 1, or 0 with a 400. */
static int api_jobs_filter(struct api_call *c, struct api_response *resp,
                           struct store_job_filter *f)
{
    const char *st = api_query_get(&c->q, "state");

    f->state = -1;
    f->run = api_query_get(&c->q, "run");
    for (int i = 0; st != NULL && i < STORE_JOB_STATE_COUNT; i++)
        if (strcmp(st, store_job_state_name((enum store_job_state)i)) == 0)
            f->state = i;
    if (st != NULL && f->state < 0) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER,
                 "parameter 'state': one of queued, running, succeeded, failed, canceled");
        return 0;
    }
    return f->run == NULL || api__run_name(resp, f->run);
}

/* GET /v1/jobs?state=&run=&page_size=&page_token=: {"jobs": [job...],
 * "next_page_token"}, newest first. An unknown run is a 404. */
void api__jobs_list(struct api_call *c, struct api_response *resp)
{
    struct store_job_filter f;
    struct store_job_page *pg = NULL;
    char cursor[API_CURSOR_MAX + 1], key[API_ETAG_KEY_MAX];
    struct err e = {0};
    int64_t size, version;
    cJSON *o, *arr;

    if (!api_jobs_filter(c, resp, &f))
        return;
    if (api_query_page(&c->q, "jobs", &size, cursor, sizeof(cursor), &e) != ERR_OK ||
        store_runs_version(c->s, &version, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    snprintf(key, sizeof(key), "jobs|%d|%s|%lld|%s", f.state, f.run ? f.run : "", (long long)size,
             cursor);
    if (api__etag(c, resp, version, key))
        return;
    if (store_jobs_list(c->s, &f, (size_t)size, cursor, &pg, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    o = cJSON_CreateObject();
    arr = o ? cJSON_AddArrayToObject(o, "jobs") : NULL;
    for (size_t i = 0; arr != NULL && i < pg->n; i++)
        if (!json_append(arr, api__job_json(&pg->items[i])))
            arr = NULL;
    api__page_ok(resp, o, arr != NULL, "jobs", pg->next_token);
    store_job_page_free(pg);
}
