/* alerts.c -- see alerts.h. */
#include "server/alerts.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api_alerts.h"
#include "api/json.h"
#include "core/formats/layers.h"
#include "core/numerics/alert.h"
#include "server/log.h"
#include "storage/store_alerts.h"
#include "storage/store_jobs.h"
#include "storage/store_layers.h"

/* One evaluation: the job, its rules, the rows now and before. */
struct alerts_eval {
    struct store_job job;
    struct farms_alert_rules rules;
    struct store_layer_list *cur;                          /* owned */
    struct store_layer_list *prev[FARMS_ALERT_WINDOW_MAX]; /* owned, newest first */
    double *prev_alpha[FARMS_ALERT_WINDOW_MAX];            /* owned, cur->n each */
    int64_t *prev_traps[FARMS_ALERT_WINDOW_MAX];           /* owned, cur->n each */
    size_t n_prev;
    int newest;                       /* the run's newest analysed step */
    struct farms_alert_layer *layers; /* owned, cur->n */
    struct farms_alert_hit *hits;     /* owned, cur->n */
    double *sparsity, *lr_scale;      /* owned, cur->n; computed on the first event */
    int have_rec;
};

static void alerts_eval_free(struct alerts_eval *x)
{
    store_layer_list_free(x->cur);
    for (size_t k = 0; k < x->n_prev; k++) {
        store_layer_list_free(x->prev[k]);
        free(x->prev_alpha[k]);
        free(x->prev_traps[k]);
    }
    free(x->layers);
    free(x->hits);
    free(x->sparsity);
    free(x->lr_scale);
}

/* The checkpoints back the enabled rules look at. */
static size_t alerts_window(const struct farms_alert_rules *r)
{
    size_t k = 0;

    for (size_t i = 0; i < r->n; i++)
        if (r->r[i].enabled && (size_t)r->r[i].window > k)
            k = (size_t)r->r[i].window;
    return k;
}

/* The row of `name` in l (`hint`: where it usually is), or NULL. */
static const struct store_layer *alerts_find(const struct store_layer_list *l, const char *name,
                                             size_t hint)
{
    if (hint < l->n && strcmp(l->items[hint].name, name) == 0)
        return &l->items[hint];
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].name, name) == 0)
            return &l->items[i];
    return NULL;
}

/* Only weight matrices analysed ok take part (as in the recommendations). */
static int alerts_row_ok(const struct store_layer *y)
{
    return y != NULL && y->r.status == FARMS_STATUS_OK && layer_kind_is_weight(y->kind);
}

/* The earlier checkpoints' rows aligned to x->cur by name. */
static enum err_code alerts_load_prev(struct store *s, struct alerts_eval *x, struct err *e)
{
    int64_t steps[FARMS_ALERT_WINDOW_MAX];
    size_t n_steps = 0, n = x->cur->n;
    enum err_code rc = store_alert_steps(s, x->job.run, x->job.settings_hash, x->job.step,
                                         alerts_window(&x->rules), steps, &n_steps, &x->newest, e);

    for (size_t k = 0; rc == ERR_OK && x->newest && k < n_steps; k++) {
        rc = store_layers_get(s, x->job.run, steps[k], x->job.settings_hash, &x->prev[k], e);
        if (rc != ERR_OK)
            break;
        x->n_prev++;
        x->prev_alpha[k] = calloc(n ? n : 1, sizeof(double));
        x->prev_traps[k] = calloc(n ? n : 1, sizeof(int64_t));
        if (x->prev_alpha[k] == NULL || x->prev_traps[k] == NULL)
            return err_set(e, ERR_NOMEM, "alerts: out of memory");
        for (size_t i = 0; i < n; i++) {
            const struct store_layer *y = alerts_find(x->prev[k], x->cur->items[i].name, i);
            x->prev_alpha[k][i] = alerts_row_ok(y) ? y->r.alpha : NAN;
            x->prev_traps[k][i] = alerts_row_ok(y) ? y->r.num_traps : -1;
        }
    }
    return rc;
}

/* Job, rules, rows: ERR_OK with everything in x. */
static enum err_code alerts_load(struct store *s, int64_t job_id, struct alerts_eval *x,
                                 struct err *e)
{
    enum err_code rc = store_job_get(s, job_id, &x->job, e);
    size_t n;

    if (rc == ERR_OK)
        rc = api_alert_rules_for(s, x->job.run, &x->rules, NULL, e);
    if (rc == ERR_OK)
        rc = store_layers_get(s, x->job.run, x->job.step, x->job.settings_hash, &x->cur, e);
    if (rc != ERR_OK)
        return rc;
    n = x->cur->n ? x->cur->n : 1;
    x->layers = calloc(n, sizeof(*x->layers));
    x->hits = calloc(n, sizeof(*x->hits));
    x->sparsity = calloc(n, sizeof(double));
    x->lr_scale = calloc(n, sizeof(double));
    if (!x->layers || !x->hits || !x->sparsity || !x->lr_scale)
        return err_set(e, ERR_NOMEM, "alerts: out of memory");
    for (size_t i = 0; i < x->cur->n; i++) {
        const struct store_layer *y = &x->cur->items[i];
        x->layers[i] = (struct farms_alert_layer){alerts_row_ok(y), y->r.alpha, y->r.warning,
                                                  alerts_row_ok(y) ? y->r.num_traps : -1};
    }
    return alerts_load_prev(s, x, e);
}

/* One flagged layer of the event body. */
static cJSON *alerts_layer_json(const struct alerts_eval *x, const struct farms_alert_rule *r,
                                const struct farms_alert_hit *h)
{
    const struct store_layer *y = &x->cur->items[h->layer];
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL && cJSON_AddStringToObject(o, "name", y->name) &&
             json_add_number(o, "alpha", y->r.alpha) &&
             (r->kind != FARMS_ALERT_ALPHA_DROP ||
              json_add_number(o, "previous_alpha", h->previous_alpha)) &&
             (r->kind != FARMS_ALERT_TRAPS || json_add_int(o, "num_traps", y->r.num_traps)) &&
             cJSON_AddStringToObject(o, "warning", farms_warning_name(y->r.warning)) &&
             json_add_number(o, "sparsity", x->sparsity[h->layer]) &&
             json_add_number(o, "lr_scale", x->lr_scale[h->layer]);

    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* "recommendations": {"sparsity": [{"name","ratio"}], "learning_rates":
 * [{"name","scale"}]} for the flagged layers that take part. */
static int alerts_rec_json(const struct alerts_eval *x, const struct farms_alert_hit *hits,
                           size_t n, cJSON *body)
{
    cJSON *rec = cJSON_AddObjectToObject(body, "recommendations");
    cJSON *sp = rec ? cJSON_AddArrayToObject(rec, "sparsity") : NULL;
    cJSON *lr = rec ? cJSON_AddArrayToObject(rec, "learning_rates") : NULL;
    int ok = sp != NULL && lr != NULL;

    for (size_t i = 0; ok && i < n; i++) {
        size_t l = hits[i].layer;
        const char *name = x->cur->items[l].name;
        cJSON *a = NULL, *b = NULL;

        if (isfinite(x->sparsity[l]))
            ok = (a = cJSON_CreateObject()) != NULL && cJSON_AddItemToArray(sp, a) &&
                 cJSON_AddStringToObject(a, "name", name) &&
                 cJSON_AddNumberToObject(a, "ratio", x->sparsity[l]);
        if (ok && isfinite(x->lr_scale[l]))
            ok = (b = cJSON_CreateObject()) != NULL && cJSON_AddItemToArray(lr, b) &&
                 cJSON_AddStringToObject(b, "name", name) &&
                 cJSON_AddNumberToObject(b, "scale", x->lr_scale[l]);
    }
    return ok;
}

/* The event body of rule r with hits[0..n) (no event_id: store_alert_body). */
static char *alerts_body(const struct alerts_eval *x, const struct farms_alert_rule *r,
                         const struct farms_alert_hit *hits, size_t n)
{
    cJSON *o = cJSON_CreateObject(), *layers = NULL;
    char *text = NULL;
    int ok = o != NULL && cJSON_AddStringToObject(o, "run", x->job.run) &&
             json_add_int(o, "step", x->job.step) && json_add_int(o, "job_id", x->job.id) &&
             cJSON_AddStringToObject(o, "preset", x->job.preset) &&
             cJSON_AddStringToObject(o, "settings_hash", x->job.settings_hash) &&
             cJSON_AddItemToObject(o, "rule", farms_alert_rule_json(r)) &&
             json_add_int(o, "n_layers", (int64_t)n) &&
             (layers = cJSON_AddArrayToObject(o, "layers")) != NULL;

    for (size_t i = 0; ok && i < n; i++) {
        cJSON *l = alerts_layer_json(x, r, &hits[i]);
        ok = l != NULL && cJSON_AddItemToArray(layers, l);
        if (!ok)
            cJSON_Delete(l);
    }
    if (ok && alerts_rec_json(x, hits, n, o))
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* Evaluate rule r; record its event when it fires. */
static enum err_code alerts_rule(struct store *s, struct alerts_eval *x,
                                 const struct farms_alert_rule *r, const char *url, int *raised,
                                 struct err *e)
{
    struct farms_alert_input in = {.layers = x->layers,
                                   .n = x->cur->n,
                                   .prev_alpha = (const double *const *)x->prev_alpha,
                                   .prev_traps = (const int64_t *const *)x->prev_traps,
                                   .n_prev = x->n_prev,
                                   .history = x->newest};
    const char *urls[1] = {url};
    size_t n_hits = 0;
    int64_t event_id = 0;
    char *body = NULL;
    enum err_code rc;

    if (!farms_alert_eval(r, &in, x->hits, &n_hits))
        return ERR_OK;
    if (!x->have_rec) {
        rc = api_alert_recommend(x->cur, x->sparsity, x->lr_scale, e);
        if (rc != ERR_OK)
            return rc;
        x->have_rec = 1;
    }
    body = alerts_body(x, r, x->hits, n_hits);
    if (body == NULL)
        return err_set(e, ERR_NOMEM, "alerts: out of memory building the event");
    rc = store_alert_event_add(s, x->job.run, x->job.step, x->job.id, r->name, (int64_t)n_hits,
                               body, urls, url[0] ? 1 : 0, &event_id, e);
    cJSON_free(body);
    if (rc == ERR_OK && event_id > 0) {
        *raised = 1;
        LOG_INFO("alerts", "job=%lld run=%s step=%lld rule=%s kind=%s layers=%zu event=%lld",
                 (long long)x->job.id, x->job.run, (long long)x->job.step, r->name,
                 farms_alert_kind_name(r->kind), n_hits, (long long)event_id);
    }
    return rc;
}

void alerts_job_succeeded(struct store *s, int64_t job_id, struct webhook *wh)
{
    struct alerts_eval *x = calloc(1, sizeof(*x));
    struct err e = {0};
    enum err_code rc =
        x != NULL ? alerts_load(s, job_id, x, &e) : err_set(&e, ERR_NOMEM, "alerts: out of memory");
    int raised = 0;

    for (size_t i = 0; rc == ERR_OK && i < x->rules.n; i++)
        rc = alerts_rule(s, x, &x->rules.r[i], webhook_url(wh), &raised, &e);
    if (rc != ERR_OK)
        LOG_WARN("alerts", "job=%lld msg=\"alerts not evaluated\" err=\"%s\"", (long long)job_id,
                 e.msg);
    if (raised)
        webhook_notify(wh);
    if (x != NULL)
        alerts_eval_free(x);
    free(x);
}
