/* json.c -- see json.h. */
#include "api/json.h"

#include <math.h>
#include <stdio.h>

#include "core/numerics/preset.h"

int json_add_number(cJSON *obj, const char *key, double v)
{
    cJSON *item = isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();

    if (item == NULL)
        return 0;
    return cJSON_AddItemToObject(obj, key, item) ? 1 : (cJSON_Delete(item), 0);
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

/* The metric fields, numbers when the layer is ok, else null. */
static int json_add_metrics(cJSON *o, const struct farms_result *r)
{
    int ok = r->status == FARMS_STATUS_OK;
    double nan = NAN;
    int good = 1;

    good &= json_add_number(o, "alpha", ok ? r->alpha : nan);
    good &= json_add_number(o, "D", ok ? r->D : nan);
    good &= json_add_number(o, "xmin", ok ? r->xmin : nan);
    good &= json_add_number(o, "n_tail", ok && r->n_tail >= 0 ? (double)r->n_tail : nan);
    good &= json_add_number(o, "num_eigs", r->num_eigs > 0 ? (double)r->num_eigs : nan);
    good &= json_add_number(o, "windows", r->windows > 0 ? (double)r->windows : nan);
    good &= json_add_number(o, "spectral_norm", ok ? r->spectral_norm : nan);
    good &= json_add_number(o, "norm", ok ? r->norm : nan);
    good &= json_add_number(o, "alpha_hat", ok ? r->alpha_hat : nan);
    good &= json_add_number(o, "stable_rank", ok ? r->stable_rank : nan);
    good &= json_add_number(o, "norm_stable_rank", ok ? r->norm_stable_rank : nan);
    good &= json_add_number(o, "log_norm", ok ? r->log_norm : nan);
    good &= json_add_number(o, "log_spectral_norm", ok ? r->log_spectral_norm : nan);
    good &= json_add_number(o, "entropy", ok ? r->entropy : nan);
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
           json_add_shape(o, ndim, shape) && json_add_result(o, r);
    if (!good) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
