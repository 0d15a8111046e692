/* json.c -- see json.h. */
#include "api/json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "core/numerics/preset.h"

int json_add_number(cJSON *obj, const char *key, double v)
{
    cJSON *item = isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();

    if (item == NULL)
        return 0;
    return cJSON_AddItemToObject(obj, key, item) ? 1 : (cJSON_Delete(item), 0);
}

int json_append(cJSON *arr, cJSON *item)
{
    if (item == NULL || !cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        return 0;
    }
    return 1;
}

cJSON *json_int_new(int64_t v)
{
    char buf[24];

    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return cJSON_CreateRaw(buf);
}

int json_add_int(cJSON *o, const char *key, int64_t v)
{
    cJSON *item = json_int_new(v);

    if (item == NULL)
        return 0;
    return cJSON_AddItemToObject(o, key, item) ? 1 : (cJSON_Delete(item), 0);
}

cJSON *json_params_new(const struct farms_params *p)
{
    char buf[PRESET_JSON_MAX];

    if (preset_to_json(p, buf, sizeof(buf), NULL) != ERR_OK)
        return NULL;
    return cJSON_Parse(buf);
}

static int json_add_shape(cJSON *obj, int ndim, const int64_t *shape)
{
    cJSON *arr = cJSON_AddArrayToObject(obj, "shape");

    if (arr == NULL)
        return 0;
    for (int d = 0; d < ndim; d++) {
        cJSON *n = cJSON_CreateNumber((double)shape[d]);
        if (n == NULL || !cJSON_AddItemToArray(arr, n)) {
            cJSON_Delete(n);
            return 0;
        }
    }
    return 1;
}

/* Whether a field with `json` rule (farms_fields.h) has a number in r. */
#define JSON_SHOWN_IF_OK(r, v)        ((r)->status == FARMS_STATUS_OK)
#define JSON_SHOWN_IF_OK_NONNEG(r, v) ((r)->status == FARMS_STATUS_OK && (v) >= 0)
#define JSON_SHOWN_IF_POSITIVE(r, v)  ((v) > 0)

/* The fields of FARMS_RESULT_FIELDS that JSON shows, in its order: a
 * number when the field's rule holds, else null. */
static int json_add_metrics(cJSON *o, const struct farms_result *r)
{
    int good = 1;

#define JSON_FIELD(member, NAME, type, key, column, json, ...) \
    FARMS_FIELD_SHOWN_##json(                                  \
        good &=                                                \
        json_add_number(o, key, JSON_SHOWN_##json(r, r->member) ? (double)r->member : NAN);)
    FARMS_RESULT_FIELDS(JSON_FIELD)
#undef JSON_FIELD
    return good;
}

/* status, reason, the metrics and warning (shared by layer and result objects). */
static int json_add_result(cJSON *o, const struct farms_result *r)
{
    int good = cJSON_AddStringToObject(o, "status", farms_status_name(r->status)) != NULL;

    if (good)
        good = (r->status == FARMS_STATUS_OK
                    ? cJSON_AddNullToObject(o, "reason")
                    : cJSON_AddStringToObject(o, "reason", r->reason)) != NULL;
    good = good && json_add_metrics(o, r);
    if (good)
        good = (r->status == FARMS_STATUS_OK && r->warning != FARMS_WARNING_NONE
                    ? cJSON_AddStringToObject(o, "warning", farms_warning_name(r->warning))
                    : cJSON_AddNullToObject(o, "warning")) != NULL;
    return good;
}

cJSON *json_result_new(const struct farms_result *r)
{
    cJSON *o = r ? cJSON_CreateObject() : NULL;

    if (o != NULL && !json_add_result(o, r)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* "block" (null outside blocks), "role" (null for none) and "params" (the
 * product of the shape) of a layer, from layer_classify of its name. */
static int json_add_grouping(cJSON *o, const char *name, enum dtype dtype, int ndim,
                             const int64_t *shape)
{
    struct layer_info info;
    int64_t params = 1;
    int good;

    layer_classify(name, dtype, ndim, shape, &info);
    for (int d = 0; d < ndim; d++)
        params = shape[d] > 0 && params <= INT64_MAX / shape[d] ? params * shape[d] : 0;
    good = (info.block >= 0 ? json_add_int(o, "block", info.block)
                            : cJSON_AddNullToObject(o, "block") != NULL);
    good = good && (info.role != LAYER_ROLE_NONE
                        ? cJSON_AddStringToObject(o, "role", layer_role_name(info.role)) != NULL
                        : cJSON_AddNullToObject(o, "role") != NULL);
    return good && json_add_int(o, "params", params);
}

cJSON *json_layer_new(const char *name, enum layer_kind kind, enum dtype dtype, int ndim,
                      const int64_t *shape, const struct farms_result *r)
{
    cJSON *o = cJSON_CreateObject();
    int good;

    if (o == NULL)
        return NULL;
    good = cJSON_AddStringToObject(o, "name", name) != NULL &&
           cJSON_AddStringToObject(o, "kind", layer_kind_name(kind)) != NULL &&
           cJSON_AddStringToObject(o, "dtype", dtype_name(dtype)) != NULL &&
           json_add_shape(o, ndim, shape) && json_add_grouping(o, name, dtype, ndim, shape) &&
           json_add_result(o, r);
    if (!good) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
