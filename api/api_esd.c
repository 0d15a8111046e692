/* api_esd.c -- a layer's empirical spectral density:
 *   GET /v1/runs/{run}/layers/{layer}/esd?step=&preset=      JSON
 *   GET /v1/runs/{run}/layers/{layer}/esd.svg?step=&preset=  SVG (api_svg.c)
 * from the histogram stored with the layer row (core/esd_hist.h); step
 * defaults to the latest step that has the layer. Nothing is recomputed.
 * Both answer 304 on a matching If-None-Match.
 */
#include "api/api_int.h"
#include "api/json.h"
#include "storage/store_layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_ESD_FIT_POINTS 32 /* points of the fitted line in the JSON */

/* Load the row (with its histogram) for the request: 1 with *out set, or
 * 0 when resp holds the answer (error or 304). */
static int api_esd_load(struct api_call *c, struct api_response *resp, const char *what,
                        char *preset, struct store_layer_list **out)
{
    const char *run = api__param(c, "run"), *layer = api__param(c, "layer");
    char hash[THASH_HEX_LEN], key[API_ETAG_KEY_MAX], msg[ERR_MSG_LEN];
    struct err e = {0};
    int64_t step, version;
    const struct store_layer *y;

    *out = NULL;
    if (api_query_int64(&c->q, "step", 0, API_STEP_MAX, -1, &step, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return 0;
    }
    if (!api__preset_param(c, resp, preset, hash) || !api__run_version(c, resp, run, &version))
        return 0;
    snprintf(key, sizeof(key), "%s|%s|%lld|%s|%s", what, run, (long long)step, preset, layer);
    if (api__etag(c, resp, version, key) || !api__preset_default(c, resp, run, step, preset, hash))
        return 0;
    if (store_layer_get(c->s, run, layer, step, hash, out, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return 0;
    }
    y = (*out)->n == 1 ? &(*out)->items[0] : NULL;
    if (y == NULL)
        snprintf(msg, sizeof(msg), "run '%s' has no layer '%.100s'%s under preset '%s'", run, layer,
                 step >= 0 ? " at this step" : "", preset);
    else if (y->esd.n_eigs == 0 && y->r.status != FARMS_STATUS_OK)
        snprintf(msg, sizeof(msg), "layer '%.100s' was not analysed (%.100s): no spectrum", layer,
                 y->r.reason[0] ? y->r.reason : farms_status_name(y->r.status));
    else if (y->esd.n_eigs == 0)
        snprintf(msg, sizeof(msg),
                 "no histogram stored for layer '%.100s' (analysed by an older farmsd: "
                 "submit the checkpoint again)",
                 layer);
    if (y == NULL || y->esd.n_eigs == 0) {
        api_fail(resp, ERR_NOTFOUND, y == NULL ? ERR_CAT_NONE : ERR_CAT_NO_HISTOGRAM, "%s", msg);
        store_layer_list_free(*out);
        *out = NULL;
        return 0;
    }
    return 1;
}

static cJSON *api_esd_bins(const struct esd_hist *h)
{
    cJSON *arr = cJSON_CreateArray();

    for (int k = 0; arr != NULL && k < h->n_bins; k++) {
        cJSON *b = cJSON_CreateObject();
        if (b == NULL || !cJSON_AddItemToArray(arr, b) ||
            !cJSON_AddNumberToObject(b, "lo", esd_hist_edge_lo(h, k)) ||
            !cJSON_AddNumberToObject(b, "hi", esd_hist_edge_hi(h, k)) ||
            !cJSON_AddNumberToObject(b, "count", (double)h->counts[k]) ||
            !cJSON_AddNumberToObject(b, "density", esd_hist_density(h, k))) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

/* {"alpha", "xmin", "D", "n_tail", "tail_fraction", "x_max", "points"} or
 * null without a fit. */
static cJSON *api_esd_fit(const struct esd_hist *h)
{
    cJSON *o, *pts;
    double lx0, lx1;

    if (!esd_hist_has_fit(h))
        return cJSON_CreateNull();
    o = cJSON_CreateObject();
    lx0 = log10(h->xmin);
    lx1 = log10(h->max > h->xmin ? h->max : h->xmin);
    if (o == NULL || !cJSON_AddNumberToObject(o, "alpha", h->alpha) ||
        !cJSON_AddNumberToObject(o, "xmin", h->xmin) || !cJSON_AddNumberToObject(o, "D", h->D) ||
        !cJSON_AddNumberToObject(o, "n_tail", (double)h->n_tail) ||
        !cJSON_AddNumberToObject(o, "tail_fraction", (double)h->n_tail / (double)h->n_eigs) ||
        !cJSON_AddNumberToObject(o, "x_max", h->max) ||
        (pts = cJSON_AddArrayToObject(o, "points")) == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    for (int i = 0; i < API_ESD_FIT_POINTS; i++) {
        double x = pow(10, lx0 + (lx1 - lx0) * i / (API_ESD_FIT_POINTS - 1));
        double xy[2] = {x, esd_hist_fit_density(h, x)};
        cJSON *p = cJSON_CreateDoubleArray(xy, 2);
        if (p == NULL || !cJSON_AddItemToArray(pts, p)) {
            cJSON_Delete(p);
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* GET .../layers/{layer}/esd: {"run", "layer", "step", "preset", "status",
 * "num_eigs", "n_zero", "alpha", "xmin", "D", "scale": "log10", "bins":
 * [{"lo", "hi", "count", "density"}], "fit": {...} | null}. */
void api__layer_esd(struct api_call *c, struct api_response *resp)
{
    char preset[STORE_PRESET_MAX];
    struct store_layer_list *l = NULL;
    const struct store_layer *y;
    const struct esd_hist *h;
    cJSON *o = NULL, *bins = NULL, *fit = NULL;

    if (!api_esd_load(c, resp, "esd", preset, &l))
        return;
    y = &l->items[0];
    h = &y->esd;
    bins = api_esd_bins(h);
    fit = api_esd_fit(h);
    o = cJSON_CreateObject();
    if (o == NULL || bins == NULL || fit == NULL ||
        !cJSON_AddStringToObject(o, "run", api__param(c, "run")) ||
        !cJSON_AddStringToObject(o, "layer", y->name) || !json_add_int(o, "step", y->step) ||
        !cJSON_AddStringToObject(o, "preset", preset) ||
        !cJSON_AddStringToObject(o, "status", farms_status_name(y->r.status)) ||
        !cJSON_AddNumberToObject(o, "num_eigs", (double)h->n_eigs) ||
        !cJSON_AddNumberToObject(o, "n_zero", (double)h->n_zero) ||
        !cJSON_AddNumberToObject(o, "alpha", h->alpha) ||
        !cJSON_AddNumberToObject(o, "xmin", h->xmin) || !cJSON_AddNumberToObject(o, "D", h->D) ||
        !cJSON_AddStringToObject(o, "scale", "log10") || !cJSON_AddItemToObject(o, "bins", bins)) {
        cJSON_Delete(bins);
        cJSON_Delete(fit);
        cJSON_Delete(o);
        o = NULL;
    } else if (!cJSON_AddItemToObject(o, "fit", fit)) {
        cJSON_Delete(fit);
        cJSON_Delete(o);
        o = NULL;
    }
    api__ok(resp, o);
    store_layer_list_free(l);
}

/* GET .../layers/{layer}/esd.svg: the same as an image/svg+xml picture. */
void api__layer_esd_svg(struct api_call *c, struct api_response *resp)
{
    char preset[STORE_PRESET_MAX];
    struct store_layer_list *l = NULL;
    size_t len = 0;
    char *svg;

    if (!api_esd_load(c, resp, "esd.svg", preset, &l))
        return;
    svg = api__esd_svg(&l->items[0].esd, l->items[0].name, l->items[0].step, &len);
    store_layer_list_free(l);
    if (svg == NULL) {
        api_fail(resp, ERR_NOMEM, ERR_CAT_NONE, "out of memory drawing the picture");
        return;
    }
    api__ok_body(resp, svg, len, "image/svg+xml");
}
