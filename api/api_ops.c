/* api_ops.c -- operational endpoints: GET /healthz, /readyz, /metrics. */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

#include "storage/store_jobs.h"
#include "storage/store_runs.h"

/* GET /healthz: the process answers. Always 200 {"status":"ok"}. */
void api__healthz(struct api_call *c, struct api_response *resp)
{
    cJSON *o = cJSON_CreateObject();

    (void)c;
    if (o != NULL && cJSON_AddStringToObject(o, "status", "ok") == NULL) {
        cJSON_Delete(o);
        o = NULL;
    }
    api__ok(resp, o);
}

/* GET /readyz: 200 when the server says it is ready (workers up) and the
 * database answers a one-row read; else 503 with the reason. */
void api__readyz(struct api_call *c, struct api_response *resp)
{
    struct err e = {0};
    int64_t v;
    cJSON *o;

    if (!c->ctx->ready) {
        api_fail(resp, ERR_BUSY, ERR_CAT_UNAVAILABLE, "not ready: starting up or shutting down");
        return;
    }
    if (c->s == NULL || store_runs_version(c->s, &v, &e) != ERR_OK) {
        api_fail(resp, ERR_BUSY, ERR_CAT_UNAVAILABLE, "%s", e.msg[0] ? e.msg : "database not open");
        return;
    }
    o = cJSON_CreateObject();
    if (o != NULL && (cJSON_AddStringToObject(o, "status", "ready") == NULL ||
                      cJSON_AddStringToObject(o, "database", store_backend(c->s)) == NULL)) {
        cJSON_Delete(o);
        o = NULL;
    }
    api__ok(resp, o);
}

/* GET /metrics: Prometheus text. Job gauges come from storage; when the
 * database does not answer they are left out (the counters still render). */
void api__metrics(struct api_call *c, struct api_response *resp)
{
    struct api_stats_gauge g[STORE_JOB_STATE_COUNT];
    int64_t counts[STORE_JOB_STATE_COUNT] = {0};
    struct api_stats zero;
    struct err e = {0};
    size_t n_g = 0, len;
    char *text;

    if (c->s != NULL && store_job_counts(c->s, counts, &e) == ERR_OK) {
        for (int i = 0; i < STORE_JOB_STATE_COUNT; i++) {
            g[i].label = store_job_state_name((enum store_job_state)i);
            g[i].value = counts[i];
        }
        n_g = STORE_JOB_STATE_COUNT;
    }
    if (c->ctx->stats == NULL)
        api_stats_init(&zero);
    if (api_stats_render(c->ctx->stats ? c->ctx->stats : &zero, g, n_g, counts[STORE_JOB_QUEUED],
                         &text, &len, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    api__metrics_alerts(c, &text, &len);
    api__metrics_summary(c, &text, &len);
    api__ok_body(resp, text, len, "text/plain; version=0.0.4; charset=utf-8");
}
