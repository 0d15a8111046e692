/* alert.c -- see alert.h. */
#include "core/numerics/alert.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const alert_kind_names[FARMS_ALERT_KIND_COUNT] = {
    "alpha_below", "alpha_above", "alpha_drop", "suspect_fit", "traps"};

const char *farms_alert_kind_name(enum farms_alert_kind k)
{
    return (unsigned)k < FARMS_ALERT_KIND_COUNT ? alert_kind_names[k] : "?";
}

int farms_alert_kind_from_name(const char *s)
{
    for (int i = 0; s != NULL && i < FARMS_ALERT_KIND_COUNT; i++)
        if (strcmp(s, alert_kind_names[i]) == 0)
            return i;
    return -1;
}

/* A rule of kind `k` named `name` with the kind's defaults. */
static void alert_rule_default(struct farms_alert_rule *r, const char *name,
                               enum farms_alert_kind k)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->kind = k;
    r->threshold = NAN;
    r->window = 0;
    r->min_layers = 1;
    r->enabled = 1;
    if (k == FARMS_ALERT_ALPHA_BELOW)
        r->threshold = 2.0;
    else if (k == FARMS_ALERT_ALPHA_ABOVE)
        r->threshold = 6.0;
    else if (k == FARMS_ALERT_ALPHA_DROP) {
        r->threshold = 1.0;
        r->window = 3;
    } else if (k == FARMS_ALERT_TRAPS)
        r->window = 1;
}

void farms_alert_defaults(struct farms_alert_rules *out)
{
    memset(out, 0, sizeof(*out));
    alert_rule_default(&out->r[out->n++], "over_trained", FARMS_ALERT_ALPHA_BELOW);
    alert_rule_default(&out->r[out->n++], "under_trained", FARMS_ALERT_ALPHA_ABOVE);
    alert_rule_default(&out->r[out->n++], "alpha_drop", FARMS_ALERT_ALPHA_DROP);
    alert_rule_default(&out->r[out->n++], "suspect_fit", FARMS_ALERT_SUSPECT_FIT);
    alert_rule_default(&out->r[out->n++], "traps", FARMS_ALERT_TRAPS);
}

/* --- Parsing ------------------------------------------------------------- */

static int alert_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= FARMS_ALERT_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Every member of rule object `o` is a known one. */
static enum err_code alert_members_known(const cJSON *o, size_t i, struct err *e)
{
    static const char *const known[] = {"name",       "kind",    "threshold", "window",
                                        "min_layers", "enabled", NULL};
    const cJSON *m;

    cJSON_ArrayForEach(m, o)
    {
        size_t k = 0;
        while (known[k] != NULL && strcmp(known[k], m->string) != 0)
            k++;
        if (known[k] == NULL)
            return err_set(e, ERR_INVAL,
                           "rules[%zu].%.40s: unknown member (name, kind, threshold, window, "
                           "min_layers, enabled)",
                           i, m->string);
    }
    return ERR_OK;
}

/* Integer member `key` of `o` in [lo, hi] into *out (unchanged when absent). */
static enum err_code alert_int(const cJSON *o, const char *key, size_t i, int64_t lo, int64_t hi,
                               int64_t *out, struct err *e)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, key);
    double v;

    if (m == NULL)
        return ERR_OK;
    v = cJSON_IsNumber(m) ? m->valuedouble : NAN;
    if (!(v >= (double)lo && v <= (double)hi && v == floor(v)))
        return err_set(e, ERR_INVAL, "rules[%zu].%s: must be an integer in %lld..%lld", i, key,
                       (long long)lo, (long long)hi);
    *out = (int64_t)v;
    return ERR_OK;
}

/* threshold, window, min_layers, enabled of rule i (defaults already in r). */
static enum err_code alert_rule_numbers(const cJSON *o, size_t i, struct farms_alert_rule *r,
                                        struct err *e)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "threshold");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(o, "enabled");
    int has_threshold = !isnan(r->threshold);
    enum err_code rc;

    if (t != NULL && !cJSON_IsNull(t)) {
        if (!has_threshold)
            return err_set(e, ERR_INVAL, "rules[%zu].threshold: kind %s takes no threshold", i,
                           farms_alert_kind_name(r->kind));
        if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble) ||
            (r->kind == FARMS_ALERT_ALPHA_DROP && !(t->valuedouble > 0)))
            return err_set(e, ERR_INVAL, "rules[%zu].threshold: must be a finite number%s", i,
                           r->kind == FARMS_ALERT_ALPHA_DROP ? " > 0" : "");
        r->threshold = t->valuedouble;
    }
    if (r->kind == FARMS_ALERT_ALPHA_DROP)
        rc = alert_int(o, "window", i, 1, FARMS_ALERT_WINDOW_MAX, &r->window, e);
    else if (cJSON_GetObjectItemCaseSensitive(o, "window") != NULL &&
             !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "window")))
        rc = err_set(e, ERR_INVAL, "rules[%zu].window: only kind alpha_drop takes a window", i);
    else
        rc = ERR_OK;
    if (rc == ERR_OK)
        rc = alert_int(o, "min_layers", i, 1, 1000000, &r->min_layers, e);
    if (rc == ERR_OK && en != NULL) {
        if (!cJSON_IsBool(en))
            return err_set(e, ERR_INVAL, "rules[%zu].enabled: must be true or false", i);
        r->enabled = cJSON_IsTrue(en);
    }
    return rc;
}

static enum err_code alert_rule_parse(const cJSON *o, size_t i, struct farms_alert_rule *r,
                                      struct err *e)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    enum err_code rc;
    int k;

    if (!cJSON_IsObject(o))
        return err_set(e, ERR_INVAL, "rules[%zu]: must be an object", i);
    rc = alert_members_known(o, i, e);
    if (rc != ERR_OK)
        return rc;
    if (!cJSON_IsString(name) || !alert_name_ok(name->valuestring))
        return err_set(e, ERR_INVAL,
                       "rules[%zu].name: required, 1-63 characters of A-Z a-z 0-9 . _ -", i);
    k = cJSON_IsString(kind) ? farms_alert_kind_from_name(kind->valuestring) : -1;
    if (k < 0)
        return err_set(e, ERR_INVAL,
                       "rules[%zu].kind: required, one of alpha_below, alpha_above, alpha_drop, "
                       "suspect_fit, traps",
                       i);
    alert_rule_default(r, name->valuestring, (enum farms_alert_kind)k);
    return alert_rule_numbers(o, i, r, e);
}

enum err_code farms_alert_rules_parse(const cJSON *json, struct farms_alert_rules *out,
                                      struct err *e)
{
    const cJSON *item;
    enum err_code rc;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsArray(json))
        return err_set(e, ERR_INVAL, "rules: must be an array of rule objects");
    if (cJSON_GetArraySize(json) > FARMS_ALERT_RULES_MAX)
        return err_set(e, ERR_INVAL, "rules: at most %d rules", FARMS_ALERT_RULES_MAX);
    cJSON_ArrayForEach(item, json)
    {
        struct farms_alert_rule *r = &out->r[out->n];

        rc = alert_rule_parse(item, out->n, r, e);
        if (rc != ERR_OK)
            return rc;
        for (size_t j = 0; j < out->n; j++)
            if (strcmp(out->r[j].name, r->name) == 0)
                return err_set(e, ERR_INVAL, "rules[%zu].name: '%s' is already rules[%zu]'s",
                               out->n, r->name, j);
        out->n++;
    }
    return ERR_OK;
}

cJSON *farms_alert_rule_json(const struct farms_alert_rule *r)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL && cJSON_AddStringToObject(o, "name", r->name) &&
             cJSON_AddStringToObject(o, "kind", farms_alert_kind_name(r->kind));

    ok =
        ok && (isnan(r->threshold) ? cJSON_AddNullToObject(o, "threshold") != NULL
                                   : cJSON_AddNumberToObject(o, "threshold", r->threshold) != NULL);
    ok = ok && (r->kind == FARMS_ALERT_ALPHA_DROP
                    ? cJSON_AddNumberToObject(o, "window", (double)r->window) != NULL
                    : cJSON_AddNullToObject(o, "window") != NULL);
    ok = ok && cJSON_AddNumberToObject(o, "min_layers", (double)r->min_layers) &&
         cJSON_AddBoolToObject(o, "enabled", r->enabled);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *farms_alert_rules_json(const struct farms_alert_rules *rules)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; a != NULL && i < rules->n; i++) {
        cJSON *o = farms_alert_rule_json(&rules->r[i]);
        if (o == NULL || !cJSON_AddItemToArray(a, o)) {
            cJSON_Delete(o);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

/* --- Evaluation ------------------------------------------------------------ */

/* Whether layer i matches r; *prev gets alpha_drop's earlier alpha. */
static int alert_match(const struct farms_alert_rule *r, const struct farms_alert_input *in,
                       size_t i, double *prev)
{
    const struct farms_alert_layer *l = &in->layers[i];
    size_t k_max;
    double best = NAN;

    *prev = NAN;
    if (!l->ok)
        return 0;
    switch (r->kind) {
    case FARMS_ALERT_ALPHA_BELOW: return isfinite(l->alpha) && l->alpha < r->threshold;
    case FARMS_ALERT_ALPHA_ABOVE: return isfinite(l->alpha) && l->alpha > r->threshold;
    case FARMS_ALERT_SUSPECT_FIT: return l->warning == FARMS_WARNING_SUSPECT_FIT;
    case FARMS_ALERT_TRAPS:
        /* appears: > 0 now, where the checkpoint before had 0 or no value */
        return in->history && l->num_traps > 0 && in->n_prev > 0 && in->prev_traps[0][i] <= 0;
    case FARMS_ALERT_ALPHA_DROP:
        if (!in->history || !isfinite(l->alpha))
            return 0;
        k_max = (size_t)r->window < in->n_prev ? (size_t)r->window : in->n_prev;
        for (size_t k = 0; k < k_max; k++) {
            double a = in->prev_alpha[k][i];
            if (isfinite(a) && (isnan(best) || a > best))
                best = a;
        }
        *prev = best;
        return isfinite(best) && best - l->alpha > r->threshold;
    default: return 0;
    }
}

int farms_alert_eval(const struct farms_alert_rule *r, const struct farms_alert_input *in,
                     struct farms_alert_hit *hits, size_t *n_hits)
{
    size_t n = 0;

    for (size_t i = 0; i < in->n; i++) {
        double prev;
        if (alert_match(r, in, i, &prev)) {
            hits[n].layer = i;
            hits[n++].previous_alpha = prev;
        }
    }
    *n_hits = n;
    return r->enabled && n > 0 && (int64_t)n >= r->min_layers;
}
