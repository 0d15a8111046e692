/* api_history.c -- metric histories over training steps:
 *   GET /v1/runs/{run}/layers/{layer}/history  one layer, several metrics,
 *       downsampled to max_points;
 *   GET /v1/runs/{run}/history                 every layer x every step of
 *       one metric (a heatmap), paginated by steps.
 *
 * Downsampling rule (max_points = m, n points in the step window, n > m):
 * keep the points at indices round(k * (n - 1) / (m - 1)), k = 0 .. m-1:
 * evenly spaced, always the first and the last step, strictly increasing.
 * m == 1 keeps only the last (latest) point.
 */
#include "api/api_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "storage/store_history.h"
#include "storage/store_layers.h"

#define API_HISTORY_DEFAULT_POINTS 1000
#define API_HISTORY_MAX_POINTS     10000
#define API_HISTORY_MAX_LOAD       1000000 /* points read for one response before downsampling */

/* start_step / end_step of the query: 1, or 0 with a 400. */
static int api_step_window(struct api_call *c, struct api_response *resp, int64_t *start,
                           int64_t *end)
{
    struct err e = {0};

    if (api_query_steps(&c->q, start, end, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return 0;
    }
    return 1;
}

/* Parse the comma-separated metric list `text` into m[] (no duplicates).
 * Returns the count, or 0 with a 400 naming `param` in resp. */
static size_t api_metric_list(struct api_response *resp, const char *param, const char *text,
                              int *m, size_t max)
{
    char msg[API_DETAIL_MAX], name[64];
    size_t n = 0;

    for (const char *p = text;; p++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int k = -1;
        if (len > 0 && len < sizeof(name)) {
            memcpy(name, p, len);
            name[len] = '\0';
            k = store_metric_from_name(name);
        }
        for (size_t i = 0; k >= 0 && i < n; i++)
            if (m[i] == k)
                k = -2;
        if (k >= 0 && n == max) {
            snprintf(msg, sizeof(msg), "parameter '%s': at most %zu metric(s)", param, max);
            api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "%s", msg);
            return 0;
        }
        if (k < 0) {
            snprintf(msg, sizeof(msg), "parameter '%s': %s metric '%.*s' (one of %.*s)", param,
                     k == -2 ? "repeated" : "unknown", (int)(len > 40 ? 40 : len), p,
                     (int)sizeof(STORE_METRIC_NAMES) - 3, STORE_METRIC_NAMES);
            api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "%s", msg);
            return 0;
        }
        m[n++] = k;
        if (comma == NULL)
            return n;
        p = comma;
    }
}

/* Read every point of the window, page by page. */
static enum err_code api_history_load(struct api_call *c, const char *run, const char *layer,
                                      const char *hash, int64_t start, int64_t end,
                                      struct store_point **pts, size_t *n, struct err *e)
{
    char token[STORE_TOKEN_MAX] = "";
    enum err_code rc = ERR_OK;
    size_t cap = 0;

    *pts = NULL;
    *n = 0;
    do {
        struct store_history *h = NULL;
        const struct store_history_query q = {
            .run = run,
            .layer = layer,
            .settings_hash = hash,
            .start_step = start,
            .end_step = end,
            .page_size = STORE_PAGE_MAX,
            .page_token = token,
        };
        rc = store_layer_history(c->s, &q, &h, e);
        if (rc)
            break;
        if (*n + h->n > API_HISTORY_MAX_LOAD) {
            store_history_free(h);
            return err_set(e, ERR_TOOBIG,
                           "more than %d points in the step window: narrow it "
                           "with start_step / end_step",
                           API_HISTORY_MAX_LOAD);
        }
        if (*n + h->n > cap) {
            size_t nc = (*n + h->n) * 2;
            struct store_point *np = realloc(*pts, nc * sizeof(*np));
            if (np == NULL) {
                store_history_free(h);
                return err_set(e, ERR_NOMEM, "out of memory reading a history");
            }
            *pts = np;
            cap = nc;
        }
        if (h->n > 0)
            memcpy(*pts + *n, h->points, h->n * sizeof(**pts));
        *n += h->n;
        snprintf(token, sizeof(token), "%s", h->next_token);
        store_history_free(h);
    } while (token[0] != '\0');
    return rc;
}

/* Index of the k-th kept point of n under max_points m (see the top). */
static size_t api_sample_index(size_t k, size_t n, size_t m)
{
    if (n <= m)
        return k;
    if (m == 1)
        return n - 1;
    return (size_t)(((unsigned long long)k * (n - 1) + (m - 1) / 2) / (m - 1));
}

static cJSON *api_history_json(const char *run, const char *layer, const char *preset, const int *m,
                               size_t n_m, const struct store_point *pts, size_t n,
                               size_t max_points)
{
    size_t kept = n < max_points ? n : max_points;
    cJSON *o = cJSON_CreateObject(), *arr = NULL, *ms;
    int ok = o != NULL;

    ok = ok && cJSON_AddStringToObject(o, "run", run) &&
         cJSON_AddStringToObject(o, "layer", layer) && cJSON_AddStringToObject(o, "preset", preset);
    ms = ok ? cJSON_AddArrayToObject(o, "metrics") : NULL;
    for (size_t i = 0; ms != NULL && i < n_m; i++)
        ok = ok && cJSON_AddItemToArray(ms, cJSON_CreateString(store_metric_name(m[i])));
    ok = ok && ms != NULL && cJSON_AddNumberToObject(o, "total_points", (double)n) &&
         cJSON_AddBoolToObject(o, "downsampled", kept < n);
    arr = ok ? cJSON_AddArrayToObject(o, "points") : NULL;
    for (size_t k = 0; arr != NULL && k < kept; k++) {
        const struct store_point *p = &pts[api_sample_index(k, n, max_points)];
        cJSON *pt = cJSON_CreateObject();
        int good = pt != NULL && json_add_int(pt, "step", p->step) &&
                   cJSON_AddStringToObject(pt, "status", farms_status_name(p->status));
        for (size_t i = 0; good && i < n_m; i++)
            good = json_add_number(pt, store_metric_name(m[i]), p->v[m[i]]);
        if (!good || !cJSON_AddItemToArray(arr, pt)) {
            cJSON_Delete(pt);
            arr = NULL;
        }
    }
    if (arr == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* 1 if the run has a row of `layer` under `hash` at any step; else 0 with a
 * 404 naming the layer in resp, or 0 with e set (the caller answers it). A
 * misspelt layer is a 404, not an empty history. */
static int api_layer_known(struct api_call *c, struct api_response *resp, const char *run,
                           const char *layer, const char *preset, const char *hash, struct err *e)
{
    struct store_layer_list *l = NULL;
    char msg[ERR_MSG_LEN];
    int known;

    if (store_layer_get(c->s, run, layer, -1, hash, &l, e) != ERR_OK)
        return 0;
    known = l->n > 0;
    store_layer_list_free(l);
    if (!known) {
        snprintf(msg, sizeof(msg),
                 "run '%s' has no layer '%.100s' under preset '%s' (GET /v1/runs/%s/layers "
                 "lists its layers)",
                 run, layer, preset, run);
        api_fail(resp, ERR_NOTFOUND, ERR_CAT_UNKNOWN_LAYER, "%s", msg);
    }
    return known;
}

/* GET /v1/runs/{run}/layers/{layer}/history?metrics=&preset=&start_step=
 * &end_step=&max_points=: {"run", "layer", "preset", "metrics",
 * "total_points", "downsampled", "points": [{"step", "status", <metric>...}]}
 * in step order; metric values null where the layer was not ok. */
void api__layer_history(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run"), *layer = api__param(c, "layer");
    const char *mtext = api_query_get(&c->q, "metrics");
    char preset[STORE_PRESET_MAX], hash[THASH_HEX_LEN], key[API_ETAG_KEY_MAX];
    int m[STORE_METRIC_COUNT];
    struct store_point *pts = NULL;
    struct err e = {0};
    int64_t start, end, maxp, version;
    size_t n_m, n, klen;

    n_m = api_metric_list(resp, "metrics", mtext ? mtext : "alpha", m, STORE_METRIC_COUNT);
    if (n_m == 0 || !api_step_window(c, resp, &start, &end))
        return;
    if (api_query_int64(&c->q, "max_points", 1, API_HISTORY_MAX_POINTS, API_HISTORY_DEFAULT_POINTS,
                        &maxp, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    if (!api__preset_param(c, resp, preset, hash) || !api__run_version(c, resp, run, &version))
        return;
    /* history|run|preset|start|end|max_points|metric,...,|layer */
    klen = api__key_str(key, sizeof(key), 0, "history", '|');
    klen = api__key_str(key, sizeof(key), klen, run, '|');
    klen = api__key_str(key, sizeof(key), klen, preset, '|');
    klen = api__key_int(key, sizeof(key), klen, start, '|');
    klen = api__key_int(key, sizeof(key), klen, end, '|');
    klen = api__key_int(key, sizeof(key), klen, maxp, '|');
    for (size_t i = 0; i < n_m; i++)
        klen = api__key_str(key, sizeof(key), klen, store_metric_name(m[i]), ',');
    klen = api__key_str(key, sizeof(key), klen, "|", '\0');
    klen = api__key_str(key, sizeof(key), klen, layer, '\0');
    if ((klen < sizeof(key) && api__etag(c, resp, version, key)) ||
        !api__preset_default(c, resp, run, -1, preset, hash))
        return;
    if (api_history_load(c, run, layer, hash, start, end, &pts, &n, &e) != ERR_OK ||
        (n == 0 && !api_layer_known(c, resp, run, layer, preset, hash, &e))) {
        if (e.code != ERR_OK)
            api_problem_err(resp, &e);
        free(pts);
        return;
    }
    api__ok(resp, api_history_json(run, layer, preset, m, n_m, pts, n, (size_t)maxp));
    free(pts);
    if (klen >= sizeof(key))
        resp->etag[0] = '\0'; /* key too long to be trusted: no ETag */
}

/* Lay the cells of `h` out as grid[layer * n_steps + step index] (NaN where
 * missing) with the page's steps in step_of; *ns = distinct steps. NULL on
 * allocation failure. */
static double *api_heatmap_grid(const struct store_heatmap *h, int64_t *step_of, size_t *ns)
{
    size_t n_cells;
    double *grid;

    *ns = 0;
    if (h->n_layers > 0 && h->n_steps > SIZE_MAX / sizeof(double) / h->n_layers - 1)
        return NULL;
    n_cells = h->n_layers * h->n_steps;
    grid = malloc((n_cells + 1) * sizeof(*grid));
    if (grid == NULL)
        return NULL;
    for (size_t i = 0; i <= n_cells; i++)
        grid[i] = NAN;
    for (size_t i = 0; i < h->n_cells; i++) { /* cells come ordered by step */
        const struct store_cell *cl = &h->cells[i];
        if (*ns == 0 || step_of[*ns - 1] != cl->step) {
            if (*ns == h->n_steps)
                break;
            step_of[(*ns)++] = cl->step;
        }
        if (cl->layer < h->n_layers)
            grid[cl->layer * h->n_steps + *ns - 1] = cl->value;
    }
    return grid;
}

/* The "layers" array: per layer its name and one value per step. */
static int api_heatmap_layers(cJSON *o, const struct store_heatmap *h, const double *grid,
                              size_t ns)
{
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");

    for (size_t l = 0; layers != NULL && l < h->n_layers; l++) {
        cJSON *lo = cJSON_CreateObject(), *vals;
        vals = lo && cJSON_AddStringToObject(lo, "name", h->layers[l])
                   ? cJSON_AddArrayToObject(lo, "values")
                   : NULL;
        for (size_t s = 0; vals != NULL && s < ns; s++) {
            double v = grid[l * h->n_steps + s];
            if (!cJSON_AddItemToArray(vals,
                                      isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull()))
                vals = NULL;
        }
        if (vals == NULL || !cJSON_AddItemToArray(layers, lo)) {
            cJSON_Delete(lo);
            return 0;
        }
    }
    return layers != NULL;
}

/* The heatmap body of one page: steps, and per layer one value per step
 * (null where the layer has no ok row at that step). */
static cJSON *api_heatmap_json(const char *run, const char *preset, const struct store_heatmap *h)
{
    cJSON *o = cJSON_CreateObject(), *steps = NULL;
    int64_t *step_of = calloc(h->n_steps ? h->n_steps : 1, sizeof(*step_of));
    double *grid = NULL;
    size_t ns = 0;
    int ok = o != NULL && step_of != NULL;

    grid = ok ? api_heatmap_grid(h, step_of, &ns) : NULL;
    ok = ok && grid != NULL && cJSON_AddStringToObject(o, "run", run) &&
         cJSON_AddStringToObject(o, "metric", store_metric_name(h->metric)) &&
         cJSON_AddStringToObject(o, "preset", preset);
    steps = ok ? cJSON_AddArrayToObject(o, "steps") : NULL;
    for (size_t s = 0; steps != NULL && s < ns; s++)
        if (!cJSON_AddItemToArray(steps, json_int_new(step_of[s])))
            steps = NULL;
    ok = steps != NULL && api_heatmap_layers(o, h, grid, ns) &&
         api__add_page_token(o, "history", h->next_token);
    free(grid);
    free(step_of);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* GET /v1/runs/{run}/history?metric=&preset=&start_step=&end_step=
 * &page_size=&page_token=: every layer x every step (page_size steps a
 * page): {"run", "metric", "preset", "steps": [...], "layers": [{"name",
 * "values": [... null where missing]}], "next_page_token"}. */
void api__run_history(struct api_call *c, struct api_response *resp)
{
    const char *run = api__param(c, "run"), *mtext = api_query_get(&c->q, "metric");
    char preset[STORE_PRESET_MAX], hash[THASH_HEX_LEN];
    char cursor[API_CURSOR_MAX + 1], key[API_ETAG_KEY_MAX];
    struct store_heatmap *h = NULL;
    struct err e = {0};
    int64_t start, end, size, version;
    int m;

    if (api_metric_list(resp, "metric", mtext ? mtext : "alpha", &m, 1) == 0 ||
        !api_step_window(c, resp, &start, &end))
        return;
    if (api_query_page(&c->q, "history", &size, cursor, sizeof(cursor), &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    if (!api__preset_param(c, resp, preset, hash) || !api__run_version(c, resp, run, &version))
        return;
    snprintf(key, sizeof(key), "heatmap|%s|%s|%s|%lld|%lld|%lld|%s", run, preset,
             store_metric_name(m), (long long)start, (long long)end, (long long)size, cursor);
    if (api__etag(c, resp, version, key) || !api__preset_default(c, resp, run, -1, preset, hash))
        return;
    const struct store_history_query q = {
        .run = run,
        .metric = (enum store_metric)m,
        .settings_hash = hash,
        .start_step = start,
        .end_step = end,
        .page_size = (size_t)size,
        .page_token = cursor,
    };
    if (store_run_history(c->s, &q, &h, &e) != ERR_OK) {
        if (e.code == ERR_INVAL) {
            e.category = ERR_CAT_INVALID_PARAMETER;
            api_problem_err(resp, &e);
        } else {
            api_problem_err(resp, &e);
        }
        return;
    }
    api__ok(resp, api_heatmap_json(run, preset, h));
    store_heatmap_free(h);
}
