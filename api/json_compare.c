/* json_compare.c -- see json_compare.h. */
#include "api/json_compare.h"

#include <math.h>
#include <stdlib.h>

#include "api/json.h"
#include "core/compare.h"
#include "storage/store_history.h"

/* The metrics asked for, as a list: metrics[0..n) or every one. */
struct json_cmp_metrics {
    const int *list; /* NULL: 0..STORE_METRIC_COUNT-1 */
    size_t n;
};

static enum store_metric json_cmp_metric(const struct json_cmp_metrics *m, size_t k)
{
    return m->list != NULL ? (enum store_metric)m->list[k] : (enum store_metric)k;
}

/* One side's records for core/compare: names and layer_classify infos,
 * with the kind as analysed. infos and names are the caller's (free()). */
static enum err_code json_cmp_records(const struct json_compare_side *s, struct layer_records *r,
                                      struct err *e)
{
    struct layer_info *infos = malloc((s->n ? s->n : 1) * sizeof(*infos));
    const char **names = malloc((s->n ? s->n : 1) * sizeof(*names));

    if (infos == NULL || names == NULL) {
        free(infos);
        free(names);
        return err_set(e, ERR_NOMEM, "out of memory comparing %zu layers", s->n);
    }
    for (size_t i = 0; i < s->n; i++) {
        const struct json_compare_row *row = &s->rows[i];
        layer_classify(row->name, row->dtype, row->ndim, row->shape, &infos[i]);
        infos[i].kind = row->kind;
        names[i] = row->name;
    }
    *r = (struct layer_records){.infos = infos, .names = names, .n = s->n};
    return ERR_OK;
}

static void json_cmp_records_free(struct layer_records *r)
{
    free((void *)(uintptr_t)r->infos);
    free((void *)(uintptr_t)r->names);
}

/* The layer JSON's rule for a history metric's value (farms_fields.h):
 * any number, a non-negative one (-1: an integer field not computed), or
 * a positive one; indexed by enum store_metric. */
enum json_cmp_rule { JSON_CMP_ANY, JSON_CMP_NONNEG, JSON_CMP_POSITIVE };
#define JSON_CMP_RULE_IF_OK        JSON_CMP_ANY
#define JSON_CMP_RULE_IF_OK_NONNEG JSON_CMP_NONNEG
#define JSON_CMP_RULE_IF_POSITIVE  JSON_CMP_POSITIVE
#define JSON_CMP_RULE_NEVER        JSON_CMP_ANY
#define JSON_CMP_RULE(member, NAME, type, key, column, json, history, ...) \
    FARMS_FIELD_WHEN_##history(JSON_CMP_RULE_##json, )
static const unsigned char json_cmp_rules[STORE_METRIC_COUNT] = {
    FARMS_RESULT_FIELDS(JSON_CMP_RULE)};
#undef JSON_CMP_RULE

/* Metric `m` of `r` as the layer JSON shows it: NaN for null. */
static double json_cmp_value(const struct farms_result *r, enum store_metric m)
{
    double v = store_metric_value(r, m);

    switch (json_cmp_rules[m]) {
    case JSON_CMP_NONNEG: return v >= 0 ? v : NAN;
    case JSON_CMP_POSITIVE: return v > 0 ? v : NAN;
    default: return v;
    }
}

/* {<metric>: value, ..., "status", "warning"} of result `r`. */
static cJSON *json_cmp_values(const struct farms_result *r, const struct json_cmp_metrics *m)
{
    cJSON *o = cJSON_CreateObject();
    int good = o != NULL;

    for (size_t k = 0; good && k < m->n; k++) {
        enum store_metric metric = json_cmp_metric(m, k);
        good = json_add_number(o, store_metric_name(metric), json_cmp_value(r, metric));
    }
    good = good && cJSON_AddStringToObject(o, "status", farms_status_name(r->status));
    if (good)
        good = (r->status == FARMS_STATUS_OK && r->warning != FARMS_WARNING_NONE
                    ? cJSON_AddStringToObject(o, "warning", farms_warning_name(r->warning))
                    : cJSON_AddNullToObject(o, "warning")) != NULL;
    if (!good) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* {<metric>: b - a, ...} of results `a` and `b`. */
static cJSON *json_cmp_delta(const struct farms_result *a, const struct farms_result *b,
                             const struct json_cmp_metrics *m)
{
    cJSON *o = cJSON_CreateObject();
    int good = o != NULL;

    for (size_t k = 0; good && k < m->n; k++) {
        enum store_metric metric = json_cmp_metric(m, k);
        good = json_add_number(o, store_metric_name(metric),
                               compare_delta(json_cmp_value(a, metric), json_cmp_value(b, metric)));
    }
    if (!good) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The object of pair `p`. */
static cJSON *json_cmp_pair(const struct json_compare_side *a, const struct json_compare_side *b,
                            const struct layer_records *ra, const struct compare_pair *p,
                            const struct json_cmp_metrics *m)
{
    const struct layer_info *info = &ra->infos[p->a];
    const struct farms_result *ya = a->rows[p->a].r, *yb = b->rows[p->b].r;
    cJSON *o = cJSON_CreateObject();
    char key[LAYER_REASON_LEN + 256];
    int good = o != NULL;

    compare_key(ra->names[p->a], info, p->by, key, sizeof(key));
    good = good && cJSON_AddStringToObject(o, "key", key) &&
           cJSON_AddStringToObject(o, "matched_by", compare_by_name(p->by)) &&
           cJSON_AddStringToObject(o, "name_a", a->rows[p->a].name) &&
           cJSON_AddStringToObject(o, "name_b", b->rows[p->b].name);
    good = good && (info->block >= 0 ? json_add_int(o, "block", info->block)
                                     : cJSON_AddNullToObject(o, "block") != NULL);
    good = good && (info->role != LAYER_ROLE_NONE
                        ? cJSON_AddStringToObject(o, "role", layer_role_name(info->role)) != NULL
                        : cJSON_AddNullToObject(o, "role") != NULL);
    good = good && cJSON_AddItemToObject(o, "a", json_cmp_values(ya, m)) &&
           cJSON_AddItemToObject(o, "b", json_cmp_values(yb, m)) &&
           cJSON_AddItemToObject(o, "delta", json_cmp_delta(ya, yb, m));
    if (!good) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The names of rows idx[0..n) of `s` as a new array member `key` of root. */
static int json_cmp_names(cJSON *root, const char *key, const struct json_compare_side *s,
                          const size_t *idx, size_t n)
{
    cJSON *arr = cJSON_AddArrayToObject(root, key);

    for (size_t i = 0; arr != NULL && i < n; i++) {
        cJSON *str = cJSON_CreateString(s->rows[idx[i]].name);
        if (str == NULL || !cJSON_AddItemToArray(arr, str)) {
            cJSON_Delete(str);
            return 0;
        }
    }
    return arr != NULL;
}

/* The plain mean of `metric` over the weight matrices of `s`. */
static double json_cmp_mean(const struct json_compare_side *s, enum store_metric metric,
                            double *scratch)
{
    size_t n = 0;

    for (size_t i = 0; i < s->n; i++)
        if (layer_kind_is_weight(s->rows[i].kind))
            scratch[n++] = json_cmp_value(s->rows[i].r, metric);
    return compare_mean(scratch, n, NULL);
}

/* "summary": per metric {"a", "b", "delta"}. */
static int json_cmp_summary(cJSON *root, const struct json_compare_side *a,
                            const struct json_compare_side *b, const struct json_cmp_metrics *m)
{
    size_t most = a->n > b->n ? a->n : b->n;
    double *scratch = malloc((most ? most : 1) * sizeof(*scratch));
    cJSON *sum = scratch != NULL ? cJSON_AddObjectToObject(root, "summary") : NULL;
    int good = sum != NULL;

    for (size_t k = 0; good && k < m->n; k++) {
        enum store_metric metric = json_cmp_metric(m, k);
        double ma = json_cmp_mean(a, metric, scratch), mb = json_cmp_mean(b, metric, scratch);
        cJSON *o = cJSON_AddObjectToObject(sum, store_metric_name(metric));
        good = o != NULL && json_add_number(o, "a", ma) && json_add_number(o, "b", mb) &&
               json_add_number(o, "delta", compare_delta(ma, mb));
    }
    free(scratch);
    return good;
}

enum err_code json_compare_add(cJSON *root, const struct json_compare_side *a,
                               const struct json_compare_side *b, const int *metrics,
                               size_t n_metrics, struct err *e)
{
    struct json_cmp_metrics m = {metrics, metrics != NULL ? n_metrics : STORE_METRIC_COUNT};
    struct layer_records ra = {0}, rb = {0};
    struct compare_match *match = NULL;
    enum err_code rc;
    cJSON *arr;

    rc = json_cmp_records(a, &ra, e);
    if (rc == ERR_OK)
        rc = json_cmp_records(b, &rb, e);
    if (rc == ERR_OK)
        rc = compare_match_new(&ra, &rb, &match, e);
    if (rc != ERR_OK)
        goto out;
    arr = cJSON_AddArrayToObject(root, "layers");
    for (size_t k = 0; arr != NULL && k < match->n_pairs; k++) {
        cJSON *o = json_cmp_pair(a, b, &ra, &match->pairs[k], &m);
        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            arr = NULL;
        }
    }
    if (arr == NULL || !json_cmp_names(root, "only_a", a, match->only_a, match->n_only_a) ||
        !json_cmp_names(root, "only_b", b, match->only_b, match->n_only_b) ||
        !json_cmp_summary(root, a, b, &m))
        rc = err_set(e, ERR_NOMEM, "out of memory building the comparison");
out:
    compare_match_free(match);
    json_cmp_records_free(&ra);
    json_cmp_records_free(&rb);
    return rc;
}
