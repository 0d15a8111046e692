/* api_jobs.c -- GET/DELETE /v1/jobs/{id} and GET /v1/tensors/{sha256}. */
#include "api/api_int.h"

#include <math.h>
#include <string.h>

#include "api/json.h"
#include "storage/store_jobs.h"
#include "storage/store_results.h"

static const char *api_source_name(enum store_source s)
{
    return s == STORE_SOURCE_PATH ? "path" : "upload";
}

static int api_job_add_progress(cJSON *o, const struct store_job *j)
{
    cJSON *p = cJSON_AddObjectToObject(o, "progress");

    return p != NULL && cJSON_AddNumberToObject(p, "tensors_done", (double)j->n_done) &&
           cJSON_AddNumberToObject(p, "tensors_total", (double)j->n_total) &&
           cJSON_AddNumberToObject(p, "cache_hits", (double)j->n_cache_hits);
}

/* {"created", "started", "finished" (RFC 3339 or null), "queued_seconds",
 * "run_seconds" (null until known)}. */
static int api_job_add_timings(cJSON *o, const struct store_job *j)
{
    cJSON *t = cJSON_AddObjectToObject(o, "timings");
    int ok = t != NULL;

    ok = ok && cJSON_AddItemToObject(t, "created", api__time_json(j->created));
    ok = ok && cJSON_AddItemToObject(t, "started", api__time_json(j->started));
    ok = ok && cJSON_AddItemToObject(t, "finished", api__time_json(j->finished));
    ok = ok && json_add_number(t, "queued_seconds",
                               j->started > 0 ? j->started - j->created : (double)NAN);
    ok = ok && json_add_number(t, "run_seconds",
                               j->started > 0 && j->finished > 0 ? j->finished - j->started
                                                                 : (double)NAN);
    return ok;
}

/* "base": null, or {"sha256", "format", "source", and "run" + "step" for a
 * stored checkpoint, or "path"} for a LoRA adapter merged onto a base. */
static int api_job_add_base(cJSON *o, const struct store_job *j)
{
    const struct store_job_base *b = &j->base;
    cJSON *bo;
    int ok;

    if (b->sha256[0] == '\0')
        return cJSON_AddNullToObject(o, "base") != NULL;
    bo = cJSON_AddObjectToObject(o, "base");
    ok = bo != NULL && cJSON_AddStringToObject(bo, "sha256", b->sha256) &&
         cJSON_AddStringToObject(bo, "format", b->format) &&
         cJSON_AddStringToObject(bo, "source", api_source_name((enum store_source)b->source));
    if (ok && b->run[0] != '\0')
        ok = cJSON_AddStringToObject(bo, "run", b->run) && json_add_int(bo, "step", b->step);
    else if (ok)
        ok = cJSON_AddStringToObject(bo, "path", b->path) != NULL;
    return ok;
}

static int api_job_add_error(cJSON *o, const struct store_job *j)
{
    cJSON *er;

    if (j->state != STORE_JOB_FAILED)
        return cJSON_AddNullToObject(o, "error") != NULL;
    er = cJSON_AddObjectToObject(o, "error");
    return er != NULL &&
           cJSON_AddStringToObject(er, "category",
                                   j->error_category[0] ? j->error_category : "internal") &&
           cJSON_AddStringToObject(er, "message", j->error_message);
}

cJSON *api__job_json(const struct store_job *j)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;

    ok = ok && cJSON_AddNumberToObject(o, "id", (double)j->id);
    ok = ok && cJSON_AddStringToObject(o, "state", store_job_state_name(j->state));
    ok = ok && cJSON_AddStringToObject(o, "run", j->run);
    ok = ok && json_add_int(o, "step", j->step);
    ok = ok && cJSON_AddStringToObject(o, "sha256", j->content_sha256);
    ok = ok && cJSON_AddNumberToObject(o, "size", (double)j->size);
    ok = ok && (j->format[0] ? cJSON_AddStringToObject(o, "format", j->format)
                             : cJSON_AddNullToObject(o, "format"));
    ok = ok && cJSON_AddStringToObject(o, "preset", j->preset);
    ok = ok && cJSON_AddStringToObject(o, "source", api_source_name(j->source));
    ok = ok && (j->source == STORE_SOURCE_PATH ? cJSON_AddStringToObject(o, "path", j->path)
                                               : cJSON_AddNullToObject(o, "path"));
    ok = ok && api_job_add_base(o, j) && api_job_add_progress(o, j) && api_job_add_timings(o, j) &&
         api_job_add_error(o, j);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The {id} path parameter, or 0 with a 400/404 in resp. */
static int api_job_id(struct api_call *c, struct api_response *resp, int64_t *id)
{
    struct err e = {0};

    if (api_parse_int64("job id", api__param(c, "id"), 1, INT64_MAX, id, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return 0;
    }
    return 1;
}

/* The store call of a job route (store_job_get, store_job_cancel): the job
 * `id` into *out, after what the call does to it. */
typedef enum err_code api_job_op_fn(struct store *s, int64_t id, struct store_job *out,
                                    struct err *e);

/* A job route: the job of the path's id as op leaves it, or op's problem. */
static void api_job_answer(struct api_call *c, struct api_response *resp, api_job_op_fn *op)
{
    struct store_job j;
    struct err e = {0};
    int64_t id;

    if (!api_job_id(c, resp, &id))
        return;
    if (op(c->s, id, &j, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    api__ok(resp, api__job_json(&j));
}

/* GET /v1/jobs/{id}: the job with progress, timings and error. */
void api__job_get(struct api_call *c, struct api_response *resp)
{
    api_job_answer(c, resp, store_job_get);
}

/* DELETE /v1/jobs/{id}: cancel a queued or running job (200 with the job);
 * 409 if it already succeeded or failed. Canceling twice is a no-op. */
void api__job_delete(struct api_call *c, struct api_response *resp)
{
    api_job_answer(c, resp, store_job_cancel);
}

static cJSON *api_tensor_result_json(const struct store_result *r)
{
    cJSON *o = cJSON_CreateObject(), *params = NULL;
    int ok = o != NULL;

    if (ok && r->params_json[0] != '\0')
        params = cJSON_Parse(r->params_json);
    ok = ok && cJSON_AddStringToObject(o, "settings_hash", r->settings_hash);
    ok = ok && (r->preset[0] ? cJSON_AddStringToObject(o, "preset", r->preset)
                             : cJSON_AddNullToObject(o, "preset"));
    if (ok && params != NULL) {
        ok = cJSON_AddItemToObject(o, "params", params);
        params = ok ? NULL : params;
    } else if (ok) {
        ok = cJSON_AddNullToObject(o, "params") != NULL;
    }
    ok = ok && cJSON_AddStringToObject(o, "analysis_key", r->analysis_key);
    ok = ok && cJSON_AddStringToObject(o, "engine_version", r->engine_version);
    ok = ok && cJSON_AddItemToObject(o, "created", api__time_json(r->created));
    ok = ok && cJSON_AddItemToObject(o, "result", json_result_new(&r->r));
    cJSON_Delete(params);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* GET /v1/tensors/{sha256}: every cached result of a tensor (one per
 * settings / analysis key / engine version). 404 when none. */
void api__tensor_get(struct api_call *c, struct api_response *resp)
{
    const char *sha = api__param(c, "sha256");
    struct store_result_list *l = NULL;
    struct err e = {0};
    cJSON *o = NULL, *arr;

    if (!thash_hex_ok(sha)) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER,
                 "sha256: expected 64 lower-case hex digits (the tensor's content hash)");
        return;
    }
    if (store_results_for_tensor(c->s, sha, &l, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    if (l->n == 0) {
        api_fail(resp, ERR_NOTFOUND, ERR_CAT_NONE, "no cached result for this tensor");
        goto out;
    }
    o = cJSON_CreateObject();
    arr = o && cJSON_AddStringToObject(o, "sha256", sha) ? cJSON_AddArrayToObject(o, "results")
                                                         : NULL;
    if (arr == NULL) {
        cJSON_Delete(o);
        o = NULL;
    }
    for (size_t i = 0; o != NULL && i < l->n; i++) {
        cJSON *r = api_tensor_result_json(&l->items[i]);
        if (r == NULL || !cJSON_AddItemToArray(arr, r)) {
            cJSON_Delete(r);
            cJSON_Delete(o);
            o = NULL;
        }
    }
    api__ok(resp, o);
out:
    store_result_list_free(l);
}
