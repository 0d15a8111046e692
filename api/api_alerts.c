/* api_alerts.c -- alert rules, events and webhook deliveries:
 *   GET/PUT /v1/alerts/rules               the default rule set
 *   GET/PUT/DELETE /v1/runs/{run}/alerts/rules   a run's own set (DELETE: back
 *                                          to the default)
 *   GET /v1/runs/{run}/alerts              the events the run's jobs raised,
 *                                          newest first, with their deliveries
 *   GET /v1/alerts/deliveries?run=&state=  the delivery log, newest first
 * and the alert gauges of /metrics (farmsd_run_layers{run,verdict},
 * farmsd_webhook_deliveries{state}). Rules are validated by
 * core/numerics/alert.h; a refusal is a 400 naming the member. Evaluation
 * itself runs when a job succeeds (server/alerts.c).
 */
#include "api/api_alerts.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "api/json.h"
#include "storage/store_alerts.h"

const char *api_alert_scope_name(enum api_alert_scope sc)
{
    return sc == API_ALERT_SCOPE_RUN       ? "run"
           : sc == API_ALERT_SCOPE_DEFAULT ? "default"
                                           : "builtin";
}

/* Parse a stored set `spec` into *out. */
static enum err_code api_alert_parse_stored(const char *spec, struct farms_alert_rules *out,
                                            struct err *e)
{
    cJSON *j = cJSON_Parse(spec);
    struct err pe = {0};
    enum err_code rc = farms_alert_rules_parse(j, out, &pe);

    cJSON_Delete(j);
    if (rc != ERR_OK)
        return err_set(e, ERR_DB, "stored alert rules do not parse: %s", pe.msg);
    return ERR_OK;
}

enum err_code api_alert_rules_for(struct store *s, const char *run, struct farms_alert_rules *out,
                                  enum api_alert_scope *scope, struct err *e)
{
    enum api_alert_scope sc = API_ALERT_SCOPE_RUN;
    char *spec = NULL;
    enum err_code rc = store_alert_rules_get(s, run, &spec, e);

    if (rc == ERR_OK && spec == NULL && run != NULL) {
        sc = API_ALERT_SCOPE_DEFAULT;
        rc = store_alert_rules_get(s, NULL, &spec, e);
    } else if (run == NULL) {
        sc = API_ALERT_SCOPE_DEFAULT;
    }
    if (rc == ERR_OK && spec == NULL) {
        sc = API_ALERT_SCOPE_BUILTIN;
        farms_alert_defaults(out);
    } else if (rc == ERR_OK) {
        rc = api_alert_parse_stored(spec, out, e);
    }
    free(spec);
    if (rc == ERR_OK && scope != NULL)
        *scope = sc;
    return rc;
}

/* --- Rules ------------------------------------------------------------------------ */

/* {"run": name|null, "scope", "rules": [...]}: NULL on NOMEM. */
static cJSON *api_rules_json(const char *run, enum api_alert_scope sc,
                             const struct farms_alert_rules *r)
{
    cJSON *o = cJSON_CreateObject(), *a = farms_alert_rules_json(r);
    int ok = o != NULL && a != NULL &&
             (run != NULL ? cJSON_AddStringToObject(o, "run", run) != NULL
                          : cJSON_AddNullToObject(o, "run") != NULL) &&
             cJSON_AddStringToObject(o, "scope", api_alert_scope_name(sc)) != NULL &&
             cJSON_AddItemToObject(o, "rules", a);

    if (!ok) {
        if (o == NULL || cJSON_GetObjectItem(o, "rules") != a)
            cJSON_Delete(a);
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void api_rules_answer(struct api_call *c, struct api_response *resp, const char *run)
{
    struct farms_alert_rules r;
    enum api_alert_scope sc;
    struct err e = {0};

    if (api_alert_rules_for(c->s, run, &r, &sc, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    api__ok(resp, api_rules_json(run, sc, &r));
}

/* The rule set of a PUT body {"rules": [...]} as canonical JSON text (new,
 * free()): 1, or 0 with the 400/415 in resp. */
static int api_rules_body(struct api_call *c, struct api_response *resp, char **spec)
{
    struct farms_alert_rules r;
    struct err e = {0};
    cJSON *body = NULL, *a = NULL;
    const cJSON *m;

    *spec = NULL;
    if (c->req->body == NULL) {
        api_fail(resp, ERR_INVAL, ERR_CAT_UNSUPPORTED_MEDIA_TYPE,
                 "send the rules as application/json: {\"rules\": [...]}");
        return 0;
    }
    body = cJSON_ParseWithLength(c->req->body, c->req->body_len);
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_REQUEST,
                 "the body must be a JSON object {\"rules\": [...]}");
        return 0;
    }
    cJSON_ArrayForEach(m, body)
    {
        if (strcmp(m->string, "rules") == 0)
            continue;
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_REQUEST, "%.40s: unknown member (rules)",
                 m->string);
        cJSON_Delete(body);
        return 0;
    }
    if (farms_alert_rules_parse(cJSON_GetObjectItemCaseSensitive(body, "rules"), &r, &e) !=
        ERR_OK) {
        cJSON_Delete(body);
        e.category = ERR_CAT_INVALID_REQUEST;
        api_problem_err(resp, &e);
        return 0;
    }
    cJSON_Delete(body);
    a = farms_alert_rules_json(&r);
    *spec = a != NULL ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    if (*spec == NULL)
        api_fail(resp, ERR_NOMEM, ERR_CAT_NONE, "out of memory");
    return *spec != NULL;
}

static void api_rules_put(struct api_call *c, struct api_response *resp, const char *run)
{
    struct err e = {0};
    char *spec = NULL;

    if (!api_rules_body(c, resp, &spec))
        return;
    if (store_alert_rules_put(c->s, run, spec, &e) != ERR_OK)
        api_problem_err(resp, &e);
    else
        api_rules_answer(c, resp, run);
    cJSON_free(spec);
}

/* GET /v1/alerts/rules: the default set (stored, else built in). */
void api__alert_rules_get(struct api_call *c, struct api_response *resp)
{
    api_rules_answer(c, resp, NULL);
}

/* PUT /v1/alerts/rules {"rules": [...]}: replace the default set. */
void api__alert_rules_put(struct api_call *c, struct api_response *resp)
{
    api_rules_put(c, resp, NULL);
}

/* GET /v1/runs/{run}/alerts/rules: the set in force for the run. */
void api__run_rules_get(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");

    if (api__run_name(resp, run))
        api_rules_answer(c, resp, run);
}

/* PUT /v1/runs/{run}/alerts/rules {"rules": [...]}: the run's own set. */
void api__run_rules_put(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");

    if (api__run_name(resp, run))
        api_rules_put(c, resp, run);
}

/* DELETE /v1/runs/{run}/alerts/rules: the run follows the default again. */
void api__rules_delete(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");
    struct err e = {0};

    if (!api__run_name(resp, run))
        return;
    if (store_alert_rules_put(c->s, run, NULL, &e) != ERR_OK)
        api_problem_err(resp, &e);
    else
        api_rules_answer(c, resp, run);
}

/* --- Events and deliveries ----------------------------------------------------------- */

static cJSON *api_delivery_json(const struct store_delivery *d)
{
    cJSON *o = cJSON_CreateObject();
    int ok =
        o != NULL && json_add_int(o, "id", d->id) && json_add_int(o, "event_id", d->event_id) &&
        cJSON_AddStringToObject(o, "run", d->run) && json_add_int(o, "step", d->step) &&
        cJSON_AddStringToObject(o, "rule", d->rule) && cJSON_AddStringToObject(o, "url", d->url) &&
        cJSON_AddStringToObject(o, "state", store_delivery_state_name(d->state)) &&
        json_add_int(o, "attempts", d->attempts) &&
        (d->last_status > 0 ? json_add_int(o, "last_status", d->last_status)
                            : cJSON_AddNullToObject(o, "last_status") != NULL) &&
        (d->last_error[0] ? cJSON_AddStringToObject(o, "last_error", d->last_error) != NULL
                          : cJSON_AddNullToObject(o, "last_error") != NULL) &&
        cJSON_AddItemToObject(o, "created", api__time_json(d->created)) &&
        cJSON_AddItemToObject(
            o, "next_attempt",
            api__time_json(d->state == STORE_DELIVERY_PENDING ? d->next_at : 0)) &&
        cJSON_AddItemToObject(o, "done", api__time_json(d->done_at));

    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The event: its body (run, step, job_id, preset, rule, layers,
 * recommendations) with event_id, n_layers, created and deliveries. */
static cJSON *api_event_json(const struct store_alert_event *ev)
{
    char *text = store_alert_body(ev->id, ev->body);
    cJSON *o = text != NULL ? cJSON_Parse(text) : NULL, *ds = NULL;
    int ok = cJSON_IsObject(o) &&
             cJSON_AddItemToObject(o, "created", api__time_json(ev->created)) &&
             (ds = cJSON_AddArrayToObject(o, "deliveries")) != NULL;

    free(text);
    for (size_t i = 0; ok && i < ev->n_deliveries; i++) {
        cJSON *d = api_delivery_json(&ev->deliveries[i]);
        ok = d != NULL && cJSON_AddItemToArray(ds, d);
        if (!ok)
            cJSON_Delete(d);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* GET /v1/runs/{run}/alerts?page_size=&page_token=: {"run", "events": [...],
 * "next_page_token"}. */
void api__run_alerts(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run");
    struct store_alert_event_page *pg = NULL;
    char cursor[API_CURSOR_MAX + 1];
    struct err e = {0};
    int64_t size;
    cJSON *o = NULL, *arr = NULL;

    if (!api__run_name(resp, run))
        return;
    if (api_query_page(&c->q, "alerts", &size, cursor, sizeof(cursor), &e) != ERR_OK ||
        store_alert_events_list(c->s, run, (size_t)size, cursor, &pg, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    o = cJSON_CreateObject();
    if (o != NULL && cJSON_AddStringToObject(o, "run", run) != NULL)
        arr = cJSON_AddArrayToObject(o, "events");
    for (size_t i = 0; arr != NULL && i < pg->n; i++)
        if (!json_append(arr, api_event_json(&pg->items[i])))
            arr = NULL;
    api__page_ok(resp, o, arr != NULL, "alerts", pg->next_token);
    store_alert_event_page_free(pg);
}

/* GET /v1/alerts/deliveries?run=&state=&page_size=&page_token=:
 * {"deliveries": [...], "next_page_token"}; an unknown run is a 404. */
void api__deliveries_list(struct api_call *c, struct api_response *resp)
{
    const char *run = api_query_get(&c->q, "run"), *st = api_query_get(&c->q, "state");
    struct store_delivery_page *pg = NULL;
    char cursor[API_CURSOR_MAX + 1];
    struct err e = {0};
    int state = st != NULL ? store_delivery_state_from_name(st) : -1;
    int64_t size;
    cJSON *o = NULL, *arr = NULL;

    if (st != NULL && state < 0) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER,
                 "parameter 'state': one of pending, delivered, failed");
        return;
    }
    if (run != NULL && !api__run_name(resp, run))
        return;
    if (api_query_page(&c->q, "deliveries", &size, cursor, sizeof(cursor), &e) != ERR_OK ||
        store_deliveries_list(c->s, run, state, (size_t)size, cursor, &pg, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    o = cJSON_CreateObject();
    arr = o != NULL ? cJSON_AddArrayToObject(o, "deliveries") : NULL;
    for (size_t i = 0; arr != NULL && i < pg->n; i++)
        if (!json_append(arr, api_delivery_json(&pg->items[i])))
            arr = NULL;
    api__page_ok(resp, o, arr != NULL, "deliveries", pg->next_token);
    store_delivery_page_free(pg);
}

/* --- Metrics ------------------------------------------------------------------------- */

/* Append printf text to the malloc'd *text of *len bytes: 0 on NOMEM. */
static int api_metrics_append(char **text, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int api_metrics_append(char **text, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *grown;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (grown = realloc(*text, *len + (size_t)n + 1)) == NULL)
        return 0;
    *text = grown;
    va_start(ap, fmt);
    vsnprintf(*text + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
    return 1;
}

/* The verdict gauges of every run with a succeeded job. */
static int api_metrics_verdicts(struct store *s, char **text, size_t *len)
{
    static const char *const names[] = {"ok", "under_trained", "over_trained", "suspect_fit"};
    struct store_run_verdicts *g = NULL;
    struct err e = {0};
    size_t n = 0;
    int ok;

    if (store_run_verdicts_list(s, &g, &n, &e) != ERR_OK)
        return 1; /* the database does not answer: left out, as the job gauges are */
    ok = api_metrics_append(
        text, len,
        "# HELP farmsd_run_layers Layers of the run's newest analysed checkpoint by verdict.\n"
        "# TYPE farmsd_run_layers gauge\n");
    for (size_t i = 0; ok && i < n; i++) {
        int64_t v[4] = {g[i].n_ok, g[i].n_under, g[i].n_over, g[i].n_suspect};
        for (int k = 0; ok && k < 4; k++)
            ok =
                api_metrics_append(text, len, "farmsd_run_layers{run=\"%s\",verdict=\"%s\"} %lld\n",
                                   g[i].run, names[k], (long long)v[k]);
    }
    free(g);
    return ok;
}

void api__metrics_alerts(struct api_call *c, char **text, size_t *len)
{
    int64_t counts[STORE_DELIVERY_STATE_COUNT];
    struct err e = {0};
    int ok = 1;

    if (c->s == NULL || *text == NULL)
        return;
    ok = api_metrics_verdicts(c->s, text, len);
    if (ok && store_delivery_counts(c->s, counts, &e) == ERR_OK) {
        ok = api_metrics_append(text, len,
                                "# HELP farmsd_webhook_deliveries Webhook deliveries by "
                                "state (rows of the delivery log).\n"
                                "# TYPE farmsd_webhook_deliveries gauge\n");
        for (int i = 0; ok && i < STORE_DELIVERY_STATE_COUNT; i++)
            ok = api_metrics_append(text, len, "farmsd_webhook_deliveries{state=\"%s\"} %lld\n",
                                    store_delivery_state_name((enum store_delivery_state)i),
                                    (long long)counts[i]);
    }
    (void)ok; /* out of memory: the text so far still renders */
}
