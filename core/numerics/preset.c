/* preset.c -- see preset.h. */
#include "core/numerics/preset.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/numerics/farms.h"
#include "core/numerics/powerlaw.h"

static const struct farms_params preset_llm = {
    .window_rows = 2000,
    .q_ratio = 1.0,
    .windows_per_dim = 10,
    .window_clamp = 1,
    .xmin = PL_XMIN_PEAK,
    .xmin_pos = 2.0,
    .bins = 100,
    .conv_norm = 0.5,
    .filter_zeros = 0,
    .eig_threshold = 1e-5,
    .min_eigs = 5,
    .include_embeddings = 0,
};

static const struct farms_params preset_cv = {
    .window_rows = 100,
    .q_ratio = 1.0,
    .windows_per_dim = 9,
    .window_clamp = 0,
    .xmin = PL_XMIN_MID,
    .xmin_pos = 2.0,
    .bins = 100,
    .conv_norm = 0.5,
    .filter_zeros = 0,
    .eig_threshold = 1e-5,
    .min_eigs = 5,
    .include_embeddings = 0,
};

static const struct farms_params preset_full = {
    .window_rows = 0,
    .q_ratio = 1.0,
    .windows_per_dim = 10,
    .window_clamp = 0,
    .xmin = PL_XMIN_KS,
    .xmin_pos = 2.0,
    .bins = 100,
    .conv_norm = 0.5,
    .filter_zeros = 1,
    .eig_threshold = 1e-5,
    .min_eigs = 5,
    .include_embeddings = 1,
};

static const struct {
    const char *name;
    const struct farms_params *p;
} preset_table[] = {
    {"farms-llm", &preset_llm},
    {"farms-cv", &preset_cv},
    {"full", &preset_full},
};

static const char *const preset_name_list[] = {"farms-llm", "farms-cv", "full", NULL};

enum preset_type { PRESET_I64, PRESET_INT, PRESET_F64, PRESET_BOOL, PRESET_XMIN };

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
};

#define PRESET_N_KEYS (sizeof(preset_keys) / sizeof(preset_keys[0]))

enum err_code preset_get(const char *name, struct farms_params *p, struct err *e)
{
    for (size_t i = 0; i < sizeof(preset_table) / sizeof(preset_table[0]); i++)
        if (strcmp(name, preset_table[i].name) == 0) {
            *p = *preset_table[i].p;
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

/* Parse `v` as the key's type into *field (a member of a farms_params copy). */
static enum err_code preset_parse(enum preset_type t, const char *key, const char *v, void *field,
                                  struct err *e)
{
    char *end = NULL;

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

enum err_code preset_set(struct farms_params *p, const char *kv, struct err *e)
{
    const char *eq = strchr(kv, '=');
    struct farms_params q = *p;
    struct err sub;
    enum err_code rc;
    size_t klen;

    if (eq == NULL)
        return err_set(e, ERR_INVAL, "override '%.64s' is not key=value", kv);
    klen = (size_t)(eq - kv);
    for (size_t i = 0; i < PRESET_N_KEYS; i++) {
        if (strlen(preset_keys[i].key) != klen || strncmp(kv, preset_keys[i].key, klen) != 0)
            continue;
        rc = preset_parse(preset_keys[i].type, preset_keys[i].key, eq + 1,
                          (char *)&q + preset_keys[i].off, e);
        if (rc)
            return rc;
        rc = farms_params_check(&q, &sub);
        if (rc)
            return err_set(e, rc, "%s=%.64s: %s", preset_keys[i].key, eq + 1, sub.msg);
        *p = q;
        return ERR_OK;
    }
    return err_set(e, ERR_INVAL,
                   "unknown key '%.*s' (window_rows, q_ratio, windows_per_dim, window_clamp, "
                   "xmin, xmin_pos, bins, conv_norm, filter_zeros, eig_threshold, min_eigs, "
                   "include_embeddings)",
                   (int)(klen < 64 ? klen : 64), kv);
}

enum err_code preset_to_json(const struct farms_params *p, char *buf, size_t len, struct err *e)
{
    int n = snprintf(buf, len,
                     "{\"window_rows\":%lld,\"q_ratio\":%.17g,\"windows_per_dim\":%lld,"
                     "\"window_clamp\":%s,\"xmin\":\"%s\",\"xmin_pos\":%.17g,\"bins\":%d,"
                     "\"conv_norm\":%.17g,\"filter_zeros\":%s,\"eig_threshold\":%.17g,"
                     "\"min_eigs\":%lld,\"include_embeddings\":%s}",
                     (long long)p->window_rows, p->q_ratio, (long long)p->windows_per_dim,
                     p->window_clamp ? "true" : "false", preset_xmin_name(p->xmin), p->xmin_pos,
                     p->bins, p->conv_norm, p->filter_zeros ? "true" : "false", p->eig_threshold,
                     (long long)p->min_eigs, p->include_embeddings ? "true" : "false");
    if (n < 0 || (size_t)n >= len)
        return err_set(e, ERR_TOOBIG, "parameter text needs %d bytes, have %zu", n, len);
    return ERR_OK;
}
