/* api_dashboard.c -- GET / and GET /dashboard/{file}: the embedded dashboard.
 *
 * Files come from api_dashboard_assets[] (build/gen/api_dashboard_assets.c,
 * generated from api/dashboard/). Each answer carries the file's strong ETag
 * and Cache-Control: no-cache, so browsers revalidate and get a 304 until the
 * binary changes. /dashboard/routes.json lists the route table, so the
 * dashboard can tell which optional endpoints (ESD plots) this server has,
 * with the history metrics and the summary metrics, so its metric selectors
 * are those of this server's code.
 */
#include "api/api_dashboard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/numerics/summary.h"
#include "storage/store_history.h"

static const struct api_asset *api_asset_find(const char *name)
{
    for (const struct api_asset *a = api_dashboard_assets; a->name != NULL; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

/* "metrics": every history metric; "summary_metrics": every summary metric. */
static int api_metrics_json(cJSON *o)
{
#define API__SUMMARY_KEY(NAME, key) key,
    static const char *const summary[] = {FARMS_SUMMARY_METRICS(API__SUMMARY_KEY)};
#undef API__SUMMARY_KEY
    cJSON *m = cJSON_AddArrayToObject(o, "metrics");
    cJSON *s = cJSON_AddArrayToObject(o, "summary_metrics");

    if (m == NULL || s == NULL)
        return -1;
    for (int i = 0; i < STORE_METRIC_COUNT; i++)
        if (!cJSON_AddItemToArray(m, cJSON_CreateString(store_metric_name((enum store_metric)i))))
            return -1;
    for (size_t i = 0; i < sizeof(summary) / sizeof(summary[0]); i++)
        if (!cJSON_AddItemToArray(s, cJSON_CreateString(summary[i])))
            return -1;
    return 0;
}

/* {"routes": [{"method": "GET", "path": "/v1/runs"}, ...], "metrics": [...],
 *  "summary_metrics": [...]} */
static void api_routes_json(struct api_response *resp)
{
    cJSON *o = cJSON_CreateObject(), *arr = o ? cJSON_AddArrayToObject(o, "routes") : NULL;

    if (arr == NULL || api_metrics_json(o) != 0) {
        cJSON_Delete(o);
        api__ok(resp, NULL);
        return;
    }
    for (const struct api_route_info *r = api_routes(); r->method != NULL; r++) {
        cJSON *it = cJSON_CreateObject();
        if (it == NULL || !cJSON_AddItemToArray(arr, it) ||
            cJSON_AddStringToObject(it, "method", r->method) == NULL ||
            cJSON_AddStringToObject(it, "path", r->path) == NULL) {
            cJSON_Delete(o);
            api__ok(resp, NULL); /* out of memory: the nomem problem */
            return;
        }
    }
    api__ok(resp, o);
    strcpy(resp->cache_control, "no-cache");
}

void api__dashboard(struct api_call *c, struct api_response *resp)
{
    const char *file = api__param(c, "file");
    const struct api_asset *a;
    char *body;

    if (file != NULL && strcmp(file, "routes.json") == 0) {
        api_routes_json(resp);
        return;
    }
    a = api_asset_find(file != NULL ? file : "index.html");
    if (a == NULL) {
        api_fail(resp, ERR_NOTFOUND, ERR_CAT_NONE, "no such dashboard file");
        return;
    }
    memset(resp->etag, 0, sizeof(resp->etag));
    strncpy(resp->etag, a->etag, sizeof(resp->etag) - 1);
    strcpy(resp->cache_control, "no-cache");
    if (api__inm_match(c->req->if_none_match, resp->etag)) {
        api__not_modified(resp);
        return;
    }
    body = malloc(a->size ? a->size : 1);
    if (body == NULL) {
        api_fail(resp, ERR_NOMEM, ERR_CAT_NONE, "retry later");
        return;
    }
    memcpy(body, a->data, a->size);
    api__ok_body(resp, body, a->size, a->content_type);
}
