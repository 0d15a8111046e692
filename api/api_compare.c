/* api_compare.c -- GET /v1/compare?a=RUN:STEP&b=RUN:STEP[&preset=P][&preset_b=P2]:
 * two analysed checkpoints (same or different runs) side by side, layer by
 * layer (api/json_compare.h). Side a is read under ?preset= (default: the
 * preset the checkpoint was analysed with), side b under ?preset_b=
 * (default: ?preset=, else its own). The ETag is made of both runs'
 * versions, so a 304 costs two version reads. */
#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "api/json_compare.h"
#include "storage/store_layers.h"
#include "storage/store_runs.h"

#define API_CMP_FORM "RUN:STEP (a run name, ':', a step), e.g. a=run1:100"

struct api_cmp_side {
    const char *param; /* "a" or "b" */
    char run[API_NAME_MAX];
    int64_t step;
    int64_t version;
    char preset[STORE_PRESET_MAX];
    char hash[THASH_HEX_LEN];
    struct store_layer_list *l; /* owned */
};

/* Query parameter `side->param` as RUN:STEP (split at the last ':', so
 * only the step follows it): 1, or 0 with a 400 saying what is wrong. */
static int api_cmp_parse(struct api_call *c, struct api_response *resp, struct api_cmp_side *side)
{
    const char *v = api_query_get(&c->q, side->param), *colon;
    struct err e = {0};
    size_t run_len;

    if (v == NULL) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "parameter '%s' is required: %s",
                 side->param, API_CMP_FORM);
        return 0;
    }
    colon = strrchr(v, ':');
    if (colon == NULL || colon == v || colon[1] == '\0') {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "parameter '%s': '%.200s' is not %s",
                 side->param, v, API_CMP_FORM);
        return 0;
    }
    run_len = (size_t)(colon - v);
    snprintf(side->run, sizeof(side->run), "%.*s", (int)(run_len < sizeof(side->run) ? run_len : 0),
             v);
    if (run_len >= sizeof(side->run) || !api_name_ok(side->run)) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "parameter '%s': run '%.*s': %s",
                 side->param, (int)(run_len > 160 ? 160 : run_len), v, API_RUN_NAME_RULE);
        return 0;
    }
    if (api_parse_int64("step", colon + 1, 0, API_STEP_MAX, &side->step, &e) != ERR_OK) {
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "parameter '%s': %s", side->param,
                 e.msg);
        return 0;
    }
    return 1;
}

/* ?preset= for a, ?preset_b= (else ?preset=) for b: name and hash, or ""
 * for the checkpoint's own (api__preset_default after the ETag check). */
static int api_cmp_presets(struct api_call *c, struct api_response *resp, struct api_cmp_side *a,
                           struct api_cmp_side *b)
{
    const char *pb = api_query_get(&c->q, "preset_b");
    char params[STORE_PARAMS_MAX];

    if (!api__preset_param(c, resp, a->preset, a->hash))
        return 0;
    if (pb == NULL) {
        memcpy(b->preset, a->preset, sizeof(b->preset));
        memcpy(b->hash, a->hash, sizeof(b->hash));
        return 1;
    }
    return api__settings(c, resp, pb, b->preset, b->hash, params);
}

/* The layer rows of `side` under its preset: 1, or 0 with a 404 naming
 * the missing step, or saying that the checkpoint is not analysed yet. */
static int api_cmp_read(struct api_call *c, struct api_response *resp, struct api_cmp_side *side)
{
    struct err e = {0};

    if (!api__preset_default(c, resp, side->run, side->step, side->preset, side->hash))
        return 0;
    if (store_layers_get(c->s, side->run, side->step, side->hash, &side->l, &e) != ERR_OK) {
        api_fail(resp, e.code, ERR_CAT_NONE, "parameter '%s': %s", side->param, e.msg);
        return 0;
    }
    if (side->l->n == 0) {
        api_fail(resp, ERR_NOTFOUND, ERR_CAT_NONE,
                 "parameter '%s': checkpoint %s:%lld has not been analysed under preset '%s' "
                 "yet (see its job: GET /v1/runs/%s/checkpoints)",
                 side->param, side->run, (long long)side->step, side->preset, side->run);
        return 0;
    }
    return 1;
}

/* {"run", "step", "preset", "settings_hash"} of `side`. */
static cJSON *api_cmp_side_json(const struct api_cmp_side *side)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || !cJSON_AddStringToObject(o, "run", side->run) ||
        !json_add_int(o, "step", side->step) ||
        !cJSON_AddStringToObject(o, "preset", side->preset) ||
        !cJSON_AddStringToObject(o, "settings_hash", side->hash)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The comparison object of the two read sides; NULL when out of memory. */
static cJSON *api_cmp_json(const struct api_cmp_side *a, const struct api_cmp_side *b)
{
    const struct api_cmp_side *sides[2] = {a, b};
    struct json_compare_row *rows[2] = {NULL, NULL};
    struct json_compare_side js[2];
    cJSON *o = cJSON_CreateObject();
    int good = o != NULL && cJSON_AddItemToObject(o, "a", api_cmp_side_json(a)) &&
               cJSON_AddItemToObject(o, "b", api_cmp_side_json(b));

    for (int s = 0; good && s < 2; s++) {
        const struct store_layer_list *l = sides[s]->l;
        rows[s] = malloc(l->n * sizeof(*rows[s]));
        good = rows[s] != NULL;
        for (size_t i = 0; good && i < l->n; i++) {
            const struct store_layer *y = &l->items[i];
            rows[s][i] =
                (struct json_compare_row){y->name, y->kind, y->dtype, y->ndim, y->shape, &y->r};
        }
        js[s] = (struct json_compare_side){rows[s], l->n};
    }
    good = good && json_compare_add(o, &js[0], &js[1], NULL, 0, NULL) == ERR_OK;
    free(rows[0]);
    free(rows[1]);
    if (!good) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

void api__compare(struct api_call *c, struct api_response *resp)
{
    struct api_cmp_side a = {.param = "a"}, b = {.param = "b"};
    char key[API_ETAG_KEY_MAX];

    if (!api_cmp_parse(c, resp, &a) || !api_cmp_parse(c, resp, &b) ||
        !api_cmp_presets(c, resp, &a, &b) || !api__run_version(c, resp, a.run, &a.version) ||
        !api__run_version(c, resp, b.run, &b.version))
        return;
    snprintf(key, sizeof(key), "compare|%s|%lld|%s|%lld|%s|%lld|%s|%lld", a.run, (long long)a.step,
             a.preset, (long long)a.version, b.run, (long long)b.step, b.preset,
             (long long)b.version);
    if (!api__etag(c, resp, a.version + b.version, key) && api_cmp_read(c, resp, &a) &&
        api_cmp_read(c, resp, &b))
        api__ok(resp, api_cmp_json(&a, &b));
    store_layer_list_free(a.l);
    store_layer_list_free(b.l);
}
