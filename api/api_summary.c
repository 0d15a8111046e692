/* api_summary.c -- checkpoint summaries (storage/store_summary.h) over HTTP:
 *   GET /v1/runs/{run}/summary/history?metric=  one summary metric over the
 *       run's steps, plain and parameter-weighted means, paginated by steps;
 *   the "summary" member of a checkpoint and the "latest_summary" member of
 *       a run (api__add_summary);
 *   the farmsd_run_summary gauges of /metrics (api__metrics_summary).
 */
#include "api/api_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "core/sbuf.h"
#include "storage/store_summary.h"

/* "alpha, alpha_weighted, ..." for messages. */
#define API_SUMMARY_NAME(NAME, key) key ", "
#define API_SUMMARY_NAMES           FARMS_SUMMARY_METRICS(API_SUMMARY_NAME)

/* The runs /metrics lists a summary of (the most recently updated). */
#define API_SUMMARY_METRIC_RUNS 1000

/* {"n_layers", "mean", "weighted_mean"} of one metric (null means). */
static cJSON *api_summary_value_json(const struct farms_summary_value *v)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || !json_add_int(o, "n_layers", v->n_layers) ||
        !json_add_number(o, "mean", v->mean) ||
        !json_add_number(o, "weighted_mean", v->weighted_mean)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* {["step",] "n_layers", "n_ok", "n_under", "n_over", "n_suspect",
 * "metrics": {"alpha": {...}, ...}}. NULL on allocation failure. */
static cJSON *api_summary_json(const struct store_summary *u, int with_step)
{
    const struct farms_summary *s = &u->sum;
    cJSON *o = cJSON_CreateObject(), *m = NULL;
    int ok = o != NULL && (!with_step || json_add_int(o, "step", u->step));

    ok = ok && json_add_int(o, "n_layers", s->n_layers) && json_add_int(o, "n_ok", s->n_ok) &&
         json_add_int(o, "n_under", s->n_under) && json_add_int(o, "n_over", s->n_over) &&
         json_add_int(o, "n_suspect", s->n_suspect);
    m = ok ? cJSON_AddObjectToObject(o, "metrics") : NULL;
    for (int k = 0; m != NULL && k < FARMS_SUMMARY_COUNT; k++) {
        cJSON *v = api_summary_value_json(&s->v[k]);

        if (v == NULL ||
            !cJSON_AddItemToObject(m, farms_summary_metric_name((enum farms_summary_metric)k), v)) {
            cJSON_Delete(v);
            m = NULL;
        }
    }
    if (m == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int api__add_summary(struct api_call *c, cJSON *o, const char *member, const char *run,
                     int64_t step, const char *hash, struct err *e)
{
    struct store_summary u;
    cJSON *v = NULL;
    int found = 0;

    if (store_summary_get(c->s, run, step, hash[0] ? hash : NULL, &u, &found, e) != ERR_OK)
        return 0;
    v = found ? api_summary_json(&u, step < 0) : cJSON_CreateNull();
    if (v == NULL || !cJSON_AddItemToObject(o, member, v)) {
        cJSON_Delete(v);
        err_set(e, ERR_NOMEM, "out of memory");
        return 0;
    }
    return 1;
}

/* --- GET /v1/runs/{run}/summary/history ---------------------------------------- */

/* ?metric= (default alpha): the metric, or -1 with a 400 naming the valid ones. */
static int api_summary_metric(struct api_call *c, struct api_response *resp)
{
    const char *text = api_query_get(&c->q, "metric");
    int m = farms_summary_metric_from_name(text != NULL ? text : "alpha");

    if (m < 0)
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER,
                 "parameter 'metric': unknown summary metric '%.40s' (one of %.*s)", text,
                 (int)sizeof(API_SUMMARY_NAMES) - 3, API_SUMMARY_NAMES);
    return m;
}

/* The body: {"run", "preset", "settings_hash", "metric", "points": [{"step",
 * "n_layers", "mean", "weighted_mean"}], "next_page_token"}. */
static cJSON *api_summary_history_json(const char *run, const char *preset,
                                       const struct store_summary_history *h)
{
    cJSON *o = cJSON_CreateObject(), *pts = NULL;
    int ok = o != NULL && cJSON_AddStringToObject(o, "run", run) &&
             cJSON_AddStringToObject(o, "preset", preset) &&
             cJSON_AddItemToObject(o, "settings_hash",
                                   h->settings_hash[0] ? cJSON_CreateString(h->settings_hash)
                                                       : cJSON_CreateNull()) &&
             cJSON_AddStringToObject(o, "metric", farms_summary_metric_name(h->metric));

    pts = ok ? cJSON_AddArrayToObject(o, "points") : NULL;
    for (size_t i = 0; pts != NULL && i < h->n; i++) {
        const struct store_summary_point *p = &h->points[i];
        cJSON *po = cJSON_CreateObject();

        if (po == NULL || !json_add_int(po, "step", p->step) ||
            !json_add_int(po, "n_layers", p->n_layers) || !json_add_number(po, "mean", p->mean) ||
            !json_add_number(po, "weighted_mean", p->weighted_mean) ||
            !cJSON_AddItemToArray(pts, po)) {
            cJSON_Delete(po);
            pts = NULL;
        }
    }
    if (pts == NULL || !api__add_page_token(o, "summary", h->next_token)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* GET /v1/runs/{run}/summary/history?metric=&preset=&start_step=&end_step=
 * &page_size=&page_token=: one summary metric per analysed step, ascending
 * (page_size steps a page). 400 for an unknown metric, 404 unknown run. */
void api__summary_hist(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");
    char preset[STORE_PRESET_MAX], hash[THASH_HEX_LEN];
    char cursor[API_CURSOR_MAX + 1], key[API_ETAG_KEY_MAX];
    struct store_summary_history *h = NULL;
    struct err e = {0};
    int64_t start, end, size, version;
    int m = api_summary_metric(c, resp);

    if (m < 0)
        return;
    if (api_query_steps(&c->q, &start, &end, &e) != ERR_OK ||
        api_query_page(&c->q, "summary", &size, cursor, sizeof(cursor), &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    if (!api__preset_param(c, resp, preset, hash) || !api__run_version(c, resp, run, &version))
        return;
    snprintf(key, sizeof(key), "summary|%s|%s|%s|%lld|%lld|%lld|%s", run, preset,
             farms_summary_metric_name((enum farms_summary_metric)m), (long long)start,
             (long long)end, (long long)size, cursor);
    if (api__etag(c, resp, version, key) || !api__preset_default(c, resp, run, -1, preset, hash))
        return;
    const struct store_history_query q = {
        .run = run,
        .settings_hash = hash[0] ? hash : NULL,
        .start_step = start,
        .end_step = end,
        .page_size = (size_t)size,
        .page_token = cursor,
    };
    if (store_summary_history(c->s, &q, (enum farms_summary_metric)m, &h, &e) != ERR_OK) {
        if (e.code == ERR_INVAL)
            e.category = ERR_CAT_INVALID_PARAMETER;
        api_problem_err(resp, &e);
        return;
    }
    api__ok(resp, api_summary_history_json(run, preset, h));
    store_summary_history_free(h);
}

/* --- /metrics ------------------------------------------------------------------- */

/* Append the gauge lines of runs r[0..n) to b. */
static void api_summary_gauges(struct sbuf *b, const struct store_summary_run *r, size_t n)
{
    sbuf_printf(b,
                "# HELP farmsd_run_summary Latest checkpoint summary of a run: the mean of a "
                "metric over its analysed layers, plain or weighted by parameter count "
                "(the %d most recently updated runs).\n"
                "# TYPE farmsd_run_summary gauge\n",
                API_SUMMARY_METRIC_RUNS);
    for (size_t i = 0; i < n; i++) {
        for (int m = 0; m < FARMS_SUMMARY_COUNT; m++) {
            const struct farms_summary_value *v = &r[i].s.sum.v[m];
            const char *name = farms_summary_metric_name((enum farms_summary_metric)m);

            if (isfinite(v->mean))
                sbuf_printf(b,
                            "farmsd_run_summary{run=\"%s\",metric=\"%s\",weighting=\"plain\"} "
                            "%.17g\n",
                            r[i].run, name, v->mean);
            if (isfinite(v->weighted_mean))
                sbuf_printf(b,
                            "farmsd_run_summary{run=\"%s\",metric=\"%s\",weighting=\"params\"} "
                            "%.17g\n",
                            r[i].run, name, v->weighted_mean);
        }
    }
}

void api__metrics_summary(struct api_call *c, char **text, size_t *len)
{
    struct store_summary_run *r = NULL;
    struct sbuf b = {0};
    struct err e = {0};
    size_t n = 0;
    char *grown = NULL;

    if (c->s == NULL || *text == NULL ||
        store_summary_latest(c->s, API_SUMMARY_METRIC_RUNS, &r, &n, &e) != ERR_OK)
        return; /* the database does not answer: no gauges, as the job gauges */
    api_summary_gauges(&b, r, n);
    free(r);
    if (!b.failed && b.len > 0)
        grown = realloc(*text, *len + b.len + 1);
    if (grown != NULL) {
        memcpy(grown + *len, b.p, b.len + 1);
        *text = grown;
        *len += b.len;
    }
    sbuf_free(&b);
}
