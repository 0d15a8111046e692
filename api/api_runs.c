/* api_runs.c -- reads of runs, checkpoints and per-layer results:
 * GET /v1/runs, /v1/runs/{run}/checkpoints, /v1/runs/{run}/checkpoints/{step}
 * and /v1/runs/{run}/layers. Each answers 304 on a matching If-None-Match
 * after reading only the run's version. */
#include "api/api_int.h"

#include <stdio.h>
#include <string.h>

#include "api/json.h"
#include "storage/store_jobs.h"
#include "storage/store_layers.h"
#include "storage/store_runs.h"

/* page_size / page_token of the query for `list`: 1, or 0 with a 400. */
static int api_page(struct api_call *c, struct api_response *resp, const char *list, int64_t *size,
                    char *cursor)
{
    struct err e = {0};

    if (api_query_page(&c->q, list, size, cursor, API_CURSOR_MAX + 1, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return 0;
    }
    return 1;
}

/* Storage refuses a cursor we wrapped ourselves only if the data moved
 * under it; still the client's token: 400 naming it. */
static void api_store_fail(struct api_response *resp, const struct err *e)
{
    if (e->code == ERR_INVAL) {
        struct err pe = *e;
        snprintf(pe.msg, sizeof(pe.msg), "parameter 'page_token': %.200s", e->msg);
        pe.category = ERR_CAT_INVALID_PARAMETER;
        api_problem_err(resp, &pe);
        return;
    }
    api_problem_err(resp, e);
}

static cJSON *api_run_json(const struct store_run *r)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;

    ok = ok && cJSON_AddStringToObject(o, "name", r->name);
    ok = ok && cJSON_AddItemToObject(o, "created", api__time_json(r->created));
    ok = ok && cJSON_AddNumberToObject(o, "checkpoints", (double)r->n_checkpoints);
    ok = ok && (r->last_step >= 0 ? json_add_int(o, "last_step", r->last_step)
                                  : cJSON_AddNullToObject(o, "last_step") != NULL);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* GET /v1/runs: {"runs": [{"name", "created", "checkpoints", "last_step"}],
 * "next_page_token"}, by name. */
void api__runs_list(struct api_call *c, struct api_response *resp)
{
    struct store_run_page *pg = NULL;
    char cursor[API_CURSOR_MAX + 1], key[API_ETAG_KEY_MAX];
    struct err e = {0};
    int64_t size, version;
    cJSON *o, *arr;

    if (!api_page(c, resp, "runs", &size, cursor))
        return;
    if (store_runs_version(c->s, &version, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    snprintf(key, sizeof(key), "runs|%lld|%s", (long long)size, cursor);
    if (api__etag(c, resp, version, key))
        return;
    if (store_runs_list(c->s, (size_t)size, cursor, &pg, &e) != ERR_OK) {
        api_store_fail(resp, &e);
        return;
    }
    o = cJSON_CreateObject();
    arr = o ? cJSON_AddArrayToObject(o, "runs") : NULL;
    for (size_t i = 0; arr != NULL && i < pg->n; i++)
        if (!json_append(arr, api_run_json(&pg->items[i])))
            arr = NULL;
    api__page_ok(resp, o, arr != NULL, "runs", pg->next_token);
    store_run_page_free(pg);
}

static cJSON *api_checkpoint_json(const struct store_checkpoint *k)
{
    cJSON *o = cJSON_CreateObject(), *job, *p;
    int ok = o != NULL;

    ok = ok && json_add_int(o, "step", k->step);
    ok = ok && cJSON_AddStringToObject(o, "sha256", k->content_sha256);
    ok = ok &&
         cJSON_AddStringToObject(o, "source", k->source == STORE_SOURCE_PATH ? "path" : "upload");
    ok = ok && (k->format[0] ? cJSON_AddStringToObject(o, "format", k->format)
                             : cJSON_AddNullToObject(o, "format"));
    ok = ok && cJSON_AddNumberToObject(o, "size", (double)k->size);
    ok = ok && cJSON_AddItemToObject(o, "created", api__time_json(k->created));
    ok = ok && cJSON_AddNumberToObject(o, "layers", (double)k->n_layers);
    job = ok ? cJSON_AddObjectToObject(o, "job") : NULL;
    ok = job != NULL && cJSON_AddNumberToObject(job, "id", (double)k->job_id) &&
         cJSON_AddStringToObject(job, "state", store_job_state_name(k->job_state)) &&
         cJSON_AddStringToObject(job, "preset", k->preset);
    p = ok ? cJSON_AddObjectToObject(job, "progress") : NULL;
    ok = p != NULL && cJSON_AddNumberToObject(p, "tensors_done", (double)k->n_done) &&
         cJSON_AddNumberToObject(p, "tensors_total", (double)k->n_total) &&
         cJSON_AddNumberToObject(p, "cache_hits", (double)k->n_cache_hits);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* GET /v1/runs/{run}/checkpoints: {"run", "checkpoints": [...],
 * "next_page_token"}, by step, each with its most recent job. */
void api__checkpoints_list(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");
    struct store_checkpoint_page *pg = NULL;
    char cursor[API_CURSOR_MAX + 1], key[API_ETAG_KEY_MAX];
    struct err e = {0};
    int64_t size, version;
    cJSON *o, *arr;

    if (!api_page(c, resp, "checkpoints", &size, cursor) ||
        !api__run_version(c, resp, run, &version))
        return;
    snprintf(key, sizeof(key), "checkpoints|%s|%lld|%s", run, (long long)size, cursor);
    if (api__etag(c, resp, version, key))
        return;
    if (store_checkpoints_list(c->s, run, (size_t)size, cursor, &pg, &e) != ERR_OK) {
        api_store_fail(resp, &e);
        return;
    }
    o = cJSON_CreateObject();
    arr = o && cJSON_AddStringToObject(o, "run", run) ? cJSON_AddArrayToObject(o, "checkpoints")
                                                      : NULL;
    for (size_t i = 0; arr != NULL && i < pg->n; i++)
        if (!json_append(arr, api_checkpoint_json(&pg->items[i])))
            arr = NULL;
    api__page_ok(resp, o, arr != NULL, "checkpoints", pg->next_token);
    store_checkpoint_page_free(pg);
}

/* Append the layer objects of `l` (json_layer_new; with "step" when
 * with_step) to a new "layers" array of `o`. 0 on allocation failure. */
static int api_add_layers(cJSON *o, const struct store_layer_list *l, int with_step)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "layers");

    for (size_t i = 0; arr != NULL && i < l->n; i++) {
        const struct store_layer *y = &l->items[i];
        cJSON *j = json_layer_new(y->name, y->kind, y->dtype, y->ndim, y->shape, &y->r);
        if (j != NULL && with_step && !json_add_int(j, "step", y->step)) {
            cJSON_Delete(j);
            j = NULL;
        }
        if (j == NULL || !cJSON_AddItemToArray(arr, j)) {
            cJSON_Delete(j);
            return 0;
        }
    }
    return arr != NULL;
}

/* GET /v1/runs/{run}/checkpoints/{step}?preset=: {"run", "step", "sha256",
 * "preset", "layers": [...], "summary"}; layers in canonical order, skipped
 * tensors with their reasons; [] while the job has not finished; summary
 * (api_summary.c) null until then. */
void api__checkpoint_get(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");
    char preset[STORE_PRESET_MAX], hash[THASH_HEX_LEN], key[API_ETAG_KEY_MAX];
    struct store_layer_list *l = NULL;
    struct store_checkpoint k;
    struct err e = {0};
    int64_t step, version;
    cJSON *o;

    if (api_parse_int64("step", api__param(c, "step"), 0, API_STEP_MAX, &step, &e) != ERR_OK) {
        e.category = ERR_CAT_INVALID_PARAMETER;
        api_problem_err(resp, &e);
        return;
    }
    if (!api__preset_param(c, resp, preset, hash) || !api__run_version(c, resp, run, &version))
        return;
    snprintf(key, sizeof(key), "checkpoint|%s|%lld|%s", run, (long long)step, preset);
    if (api__etag(c, resp, version, key) || !api__preset_default(c, resp, run, step, preset, hash))
        return;
    if (store_checkpoint_get(c->s, run, step, &k, &e) != ERR_OK ||
        store_layers_get(c->s, run, step, hash, &l, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddStringToObject(o, "run", run) || !json_add_int(o, "step", step) ||
        !cJSON_AddStringToObject(o, "sha256", k.content_sha256) ||
        !cJSON_AddStringToObject(o, "preset", preset) || !api_add_layers(o, l, 0)) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (o != NULL && !api__add_summary(c, o, "summary", run, step, hash, &e)) {
        cJSON_Delete(o);
        store_layer_list_free(l);
        api_problem_err(resp, &e);
        return;
    }
    api__ok(resp, o);
    store_layer_list_free(l);
}

/* GET /v1/runs/{run}/layers?preset=: the latest row of every layer,
 * {"run", "preset", "layers": [layer + "step"]}. */
void api__layers_latest(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");
    char preset[STORE_PRESET_MAX], hash[THASH_HEX_LEN], key[API_ETAG_KEY_MAX];
    struct store_layer_list *l = NULL;
    struct err e = {0};
    int64_t version;
    cJSON *o;

    if (!api__preset_param(c, resp, preset, hash) || !api__run_version(c, resp, run, &version))
        return;
    snprintf(key, sizeof(key), "layers|%s|%s", run, preset);
    if (api__etag(c, resp, version, key) || !api__preset_default(c, resp, run, -1, preset, hash))
        return;
    if (store_layers_latest(c->s, run, hash, &l, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddStringToObject(o, "run", run) ||
        !cJSON_AddStringToObject(o, "preset", preset) || !api_add_layers(o, l, 1)) {
        cJSON_Delete(o);
        o = NULL;
    }
    api__ok(resp, o);
    store_layer_list_free(l);
}
