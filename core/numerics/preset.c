/* preset.c -- see preset.h. */
#include "core/numerics/preset.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/numerics/farms.h"
#include "core/numerics/powerlaw.h"

/* What every preset shares; the fields a preset does not name are 0. */
#define PRESET_SHARED                                                                      \
    .q_ratio = 1.0, .xmin_pos = 2.0, .bins = 100, .conv_norm = 0.5, .eig_threshold = 1e-5, \
    .min_eigs = 5

static const struct {
    const char *name;
    struct farms_params p;
} preset_table[] = {
    {"farms-llm",
     {PRESET_SHARED, .window_rows = 2000, .windows_per_dim = 10, .window_clamp = 1,
      .xmin = PL_XMIN_PEAK}},
    {"farms-cv", {PRESET_SHARED, .window_rows = 100, .windows_per_dim = 9, .xmin = PL_XMIN_MID}},
    {"full",
     {PRESET_SHARED, .window_rows = 0, .windows_per_dim = 10, .xmin = PL_XMIN_KS, .filter_zeros = 1,
      .include_embeddings = 1}},
};

static const char *const preset_name_list[] = {"farms-llm", "farms-cv", "full", NULL};

enum preset_type {
    PRESET_I64,
    PRESET_INT,
    PRESET_F64,
    PRESET_BOOL,
    PRESET_XMIN,
    PRESET_LAYOUT, /* enum farms_tensor_layout; in the JSON only when not auto */
    PRESET_REGEX   /* char[FARMS_WEIGHTS_MAX]; in the JSON only when not "" */
};

static const struct {
    const char *key;
    enum preset_type type;
    size_t off;
} preset_keys[] = {
    {"window_rows", PRESET_I64, offsetof(struct farms_params, window_rows)},
    {"q_ratio", PRESET_F64, offsetof(struct farms_params, q_ratio)},
    {"windows_per_dim", PRESET_I64, offsetof(struct farms_params, windows_per_dim)},
    {"window_clamp", PRESET_BOOL, offsetof(struct farms_params, window_clamp)},
    {"xmin", PRESET_XMIN, offsetof(struct farms_params, xmin)},
    {"xmin_pos", PRESET_F64, offsetof(struct farms_params, xmin_pos)},
    {"bins", PRESET_INT, offsetof(struct farms_params, bins)},
    {"conv_norm", PRESET_F64, offsetof(struct farms_params, conv_norm)},
    {"filter_zeros", PRESET_BOOL, offsetof(struct farms_params, filter_zeros)},
    {"eig_threshold", PRESET_F64, offsetof(struct farms_params, eig_threshold)},
    {"min_eigs", PRESET_I64, offsetof(struct farms_params, min_eigs)},
    {"include_embeddings", PRESET_BOOL, offsetof(struct farms_params, include_embeddings)},
    {"mp_fit", PRESET_BOOL, offsetof(struct farms_params, mp_fit)},
    {"randomize", PRESET_BOOL, offsetof(struct farms_params, randomize)},
    {"seed", PRESET_I64, offsetof(struct farms_params, seed)},
    {"layout", PRESET_LAYOUT, offsetof(struct farms_params, tensor_layout)},
    {"weights", PRESET_REGEX, offsetof(struct farms_params, weights)},
};

#define PRESET_N_KEYS (sizeof(preset_keys) / sizeof(preset_keys[0]))

enum err_code preset_get(const char *name, struct farms_params *p, struct err *e)
{
    for (size_t i = 0; i < sizeof(preset_table) / sizeof(preset_table[0]); i++)
        if (strcmp(name, preset_table[i].name) == 0) {
            *p = preset_table[i].p;
            return ERR_OK;
        }
    return err_set(e, ERR_NOTFOUND, "unknown preset '%.64s' (known: farms-llm, farms-cv, full)",
                   name);
}

const char *const *preset_names(void)
{
    return preset_name_list;
}

const char *preset_xmin_name(enum pl_xmin x)
{
    switch (x) {
    case PL_XMIN_MID: return "mid";
    case PL_XMIN_PEAK: return "peak";
    case PL_XMIN_KS: return "ks";
    }
    return "unknown";
}

const char *preset_layout_name(enum farms_tensor_layout l)
{
    switch (l) {
    case FARMS_TENSOR_LAYOUT_AUTO: return "auto";
    case FARMS_TENSOR_LAYOUT_TORCH: return "torch";
    case FARMS_TENSOR_LAYOUT_KERAS: return "keras";
    }
    return "unknown";
}

static enum err_code preset_parse_layout(const char *key, const char *v,
                                         enum farms_tensor_layout *field, struct err *e)
{
    static const enum farms_tensor_layout all[] = {
        FARMS_TENSOR_LAYOUT_AUTO, FARMS_TENSOR_LAYOUT_TORCH, FARMS_TENSOR_LAYOUT_KERAS};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(v, preset_layout_name(all[i])) == 0) {
            *field = all[i];
            return ERR_OK;
        }
    return err_set(e, ERR_INVAL, "%s: '%.64s' is not auto, torch or keras", key, v);
}

enum err_code preset_regex_check(const char *re, struct err *e)
{
    size_t n = strlen(re);
    regex_t rx;
    char msg[128];
    int rc;

    if (n >= FARMS_WEIGHTS_MAX)
        return err_set(e, ERR_INVAL, "weights: a regular expression of %zu bytes (at most %d)", n,
                       FARMS_WEIGHTS_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)re[i] < 0x20 || (unsigned char)re[i] > 0x7e)
            return err_set(e, ERR_INVAL, "weights: byte %zu is not printable ASCII", i);
    if (n == 0)
        return ERR_OK;
    rc = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        regerror(rc, &rx, msg, sizeof(msg));
        return err_set(e, ERR_INVAL,
                       "weights: '%.64s' is not a POSIX extended regular "
                       "expression: %s",
                       re, msg);
    }
    regfree(&rx);
    return ERR_OK;
}

/* Parse `v` as the key's type into *field (a member of a farms_params copy). */
static enum err_code preset_parse(enum preset_type t, const char *key, const char *v, void *field,
                                  struct err *e)
{
    char *end = NULL;

    if (t == PRESET_LAYOUT)
        return preset_parse_layout(key, v, field, e);
    if (t == PRESET_REGEX) {
        enum err_code rc = preset_regex_check(v, e);
        if (rc == ERR_OK)
            memcpy(field, v, strlen(v) + 1);
        return rc;
    }

    if (t == PRESET_BOOL || t == PRESET_XMIN) {
        static const char *const words[2][3] = {{"false", "true", NULL}, {"mid", "peak", "ks"}};
        static const int values[2][3] = {{0, 1, 0}, {PL_XMIN_MID, PL_XMIN_PEAK, PL_XMIN_KS}};
        int k = t == PRESET_XMIN;
        for (int i = 0; i < 3; i++)
            if (words[k][i] != NULL && strcmp(v, words[k][i]) == 0) {
                if (k)
                    *(enum pl_xmin *)field = (enum pl_xmin)values[k][i];
                else
                    *(int *)field = values[k][i];
                return ERR_OK;
            }
        return err_set(e, ERR_INVAL, "%s: '%.64s' is not %s", key, v,
                       k ? "mid, peak or ks" : "true or false");
    }
    errno = 0;
    if (t == PRESET_F64) {
        double d = strtod(v, &end);
        if (end == v || *end != '\0' || errno != 0 || !isfinite(d))
            return err_set(e, ERR_INVAL, "%s: '%.64s' is not a finite number", key, v);
        *(double *)field = d;
        return ERR_OK;
    }
    long long n = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || errno != 0 || (t == PRESET_INT && (n < INT_MIN || n > INT_MAX)))
        return err_set(e, ERR_INVAL, "%s: '%.64s' is not an integer in range", key, v);
    if (t == PRESET_INT)
        *(int *)field = (int)n;
    else
        *(int64_t *)field = (int64_t)n;
    return ERR_OK;
}

/* The index in preset_keys of the key spelt key[0..klen), or -1. */
static int preset_key_find(const char *key, size_t klen)
{
    for (size_t i = 0; i < PRESET_N_KEYS; i++)
        if (strlen(preset_keys[i].key) == klen && strncmp(key, preset_keys[i].key, klen) == 0)
            return (int)i;
    return -1;
}

static enum err_code preset_unknown_key(const char *key, size_t klen, struct err *e)
{
    return err_set(e, ERR_INVAL,
                   "unknown key '%.*s' (window_rows, q_ratio, windows_per_dim, window_clamp, "
                   "xmin, xmin_pos, bins, conv_norm, filter_zeros, eig_threshold, min_eigs, "
                   "include_embeddings, mp_fit, randomize, seed, layout, weights)",
                   (int)(klen < 64 ? klen : 64), key);
}

enum err_code preset_set(struct farms_params *p, const char *kv, struct err *e)
{
    const char *eq = strchr(kv, '=');
    struct farms_params q = *p;
    struct err sub;
    enum err_code rc;
    int k;

    if (eq == NULL)
        return err_set(e, ERR_INVAL, "override '%.64s' is not key=value", kv);
    k = preset_key_find(kv, (size_t)(eq - kv));
    if (k < 0)
        return preset_unknown_key(kv, (size_t)(eq - kv), e);
    rc = preset_parse(preset_keys[k].type, preset_keys[k].key, eq + 1,
                      (char *)&q + preset_keys[k].off, e);
    if (rc)
        return rc;
    rc = farms_params_check(&q, &sub);
    if (rc)
        return err_set(e, rc, "%s=%.64s: %s", preset_keys[k].key, eq + 1, sub.msg);
    *p = q;
    return ERR_OK;
}

/* --- JSON codec: both directions walk preset_keys -------------------------- */

/* `s` as a JSON string: quoted, `"` and `\` escaped (s is printable ASCII,
 * so nothing else needs escaping). len >= 2 * strlen(s) + 3. */
static void preset_json_string(const char *s, char *v, size_t len)
{
    size_t n = 0;

    ERR_ASSERT(len >= 2 * strlen(s) + 3);
    v[n++] = '"';
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            v[n++] = '\\';
        v[n++] = *p;
    }
    v[n++] = '"';
    v[n] = '\0';
}

/* 1 if field `k` of *p is an optional key at its default (auto layout, no
 * weights regex, mp_fit and randomize off, seed while randomize is off):
 * such keys are left out of the JSON, so settings without them keep the
 * text (and the hash) they had before the keys existed. */
static int preset_key_default(const struct farms_params *p, size_t k)
{
    const char *field = (const char *)p + preset_keys[k].off;

    if (field == (const char *)&p->mp_fit)
        return !p->mp_fit;
    if (field == (const char *)&p->randomize || field == (const char *)&p->seed)
        return !p->randomize;

    if (preset_keys[k].type == PRESET_LAYOUT)
        return *(const enum farms_tensor_layout *)field == FARMS_TENSOR_LAYOUT_AUTO;
    if (preset_keys[k].type == PRESET_REGEX)
        return field[0] == '\0';
    return 0;
}

/* The JSON text of field `k` of *p into v[0..len). */
static void preset_value_text(const struct farms_params *p, size_t k, char *v, size_t len)
{
    const char *field = (const char *)p + preset_keys[k].off;

    switch (preset_keys[k].type) {
    case PRESET_LAYOUT:
        snprintf(v, len, "\"%s\"", preset_layout_name(*(const enum farms_tensor_layout *)field));
        break;
    case PRESET_REGEX: preset_json_string(field, v, len); break;
    case PRESET_I64: snprintf(v, len, "%lld", (long long)*(const int64_t *)field); break;
    case PRESET_INT: snprintf(v, len, "%d", *(const int *)field); break;
    case PRESET_F64: {
        double d;

        memcpy(&d, field, sizeof d); /* a byte offset into the struct: no cast to double * */
        snprintf(v, len, "%.17g", d);
        break;
    }
    case PRESET_BOOL: snprintf(v, len, "%s", *(const int *)field ? "true" : "false"); break;
    case PRESET_XMIN:
        snprintf(v, len, "\"%s\"", preset_xmin_name(*(const enum pl_xmin *)field));
        break;
    }
}

enum err_code preset_to_json(const struct farms_params *p, char *buf, size_t len, struct err *e)
{
    size_t n = 0;
    char v[2 * FARMS_WEIGHTS_MAX + 2];

    for (size_t k = 0; k < PRESET_N_KEYS; k++) {
        if (preset_key_default(p, k))
            continue;
        preset_value_text(p, k, v, sizeof(v));
        n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, "%s\"%s\":%s",
                              n ? "," : "{", preset_keys[k].key, v);
    }
    n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, "}");
    if (n >= len)
        return err_set(e, ERR_TOOBIG, "parameter text needs %zu bytes, have %zu", n, len);
    return ERR_OK;
}

/* The integer in JSON number `it` if it is one in [lo, hi], else ERR_INVAL. */
static enum err_code preset_json_int(const cJSON *it, double lo, double hi, int64_t *out,
                                     struct err *e)
{
    double d = it->valuedouble;

    if (!cJSON_IsNumber(it) || !(d >= lo && d <= hi) || d != floor(d))
        return err_set(e, ERR_INVAL, "%s: not an integer in range", it->string);
    *out = (int64_t)d;
    return ERR_OK;
}

/* Decode member `it` of a settings object into its field of *q. */
static enum err_code preset_json_member(const cJSON *it, struct farms_params *q, struct err *e)
{
    int k = preset_key_find(it->string, strlen(it->string));
    char *field;
    int64_t n = 0;
    enum err_code rc = ERR_OK;

    if (k < 0)
        return preset_unknown_key(it->string, strlen(it->string), e);
    field = (char *)q + preset_keys[k].off;
    switch (preset_keys[k].type) {
    case PRESET_BOOL:
        if (!cJSON_IsBool(it))
            return err_set(e, ERR_INVAL, "%s: not true or false", it->string);
        *(int *)field = cJSON_IsTrue(it) ? 1 : 0;
        break;
    case PRESET_XMIN:
    case PRESET_LAYOUT:
    case PRESET_REGEX:
        if (!cJSON_IsString(it))
            return err_set(e, ERR_INVAL, "%s: not a string", it->string);
        rc = preset_parse(preset_keys[k].type, it->string, it->valuestring, field, e);
        break;
    case PRESET_F64:
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
            return err_set(e, ERR_INVAL, "%s: not a finite number", it->string);
        memcpy(field, &it->valuedouble, sizeof(double));
        break;
    case PRESET_INT:
        rc = preset_json_int(it, INT_MIN, INT_MAX, &n, e);
        if (rc == ERR_OK)
            *(int *)field = (int)n;
        break;
    case PRESET_I64:
        /* [-2^63, 2^63): every double in it converts to int64_t exactly */
        rc = preset_json_int(it, -9223372036854775808.0, 9223372036854774784.0, &n, e);
        if (rc == ERR_OK)
            *(int64_t *)field = n;
        break;
    }
    return rc;
}

enum err_code preset_from_json(const char *json, struct farms_params *p, struct err *e)
{
    cJSON *root = cJSON_Parse(json);
    struct farms_params q = *p;
    const cJSON *it;
    enum err_code rc = ERR_OK;
    struct err sub;

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return err_set(e, ERR_FORMAT, "settings are not a JSON object");
    }
    cJSON_ArrayForEach(it, root)
    {
        rc = preset_json_member(it, &q, e);
        if (rc)
            break;
    }
    cJSON_Delete(root);
    if (rc == ERR_OK && farms_params_check(&q, &sub) != ERR_OK)
        rc = err_set(e, ERR_INVAL, "settings: %s", sub.msg);
    if (rc == ERR_OK)
        *p = q;
    return rc;
}
