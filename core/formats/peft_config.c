/* peft_config.c -- adapter_config.json (see peft.h; docs/peft.md). The fields
 * are those of peft v0.20.0's LoraConfig that change the merged weights;
 * the others (target_modules, lora_dropout, task_type, ...) are ignored. */
#include "core/formats/peft.h"

#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define PEFT_MAX_PATTERNS 65536
#define PEFT_MAX_KEY      256 /* longer pattern keys are matched literally */
#define PEFT_MAX_QUANT    16  /* so are keys with more quantifiers than this */
#define PEFT_MAX_RANK     (INT64_C(1) << 31)

static enum err_code peft_bad(struct err *e, const char *what)
{
    return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER, "adapter_config.json: %s", what);
}

/* A boolean field: absent or null is 0. */
static enum err_code peft_bool(const cJSON *root, const char *key, int *out, struct err *e)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);

    *out = 0;
    if (it == NULL || cJSON_IsNull(it))
        return ERR_OK;
    if (!cJSON_IsBool(it))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "adapter_config.json: \"%s\" is not a boolean", key);
    *out = cJSON_IsTrue(it);
    return ERR_OK;
}

/* A rank: a whole number in 1 .. 2^31. */
static int peft_rank_ok(const cJSON *it)
{
    return cJSON_IsNumber(it) && it->valuedouble >= 1 && it->valuedouble <= PEFT_MAX_RANK &&
           it->valuedouble == floor(it->valuedouble);
}

/* 1 if `key` may be compiled: short, at most PEFT_MAX_QUANT quantifiers, none
 * stacked ("a++"), no {m,n} bounds and no back-references. glibc's regcomp
 * grows exponentially on stacked or bounded repetitions and regexec on
 * back-references; the keys peft users write (module names, "layers\.0\..*")
 * need none of these. */
static int peft_pattern_safe(const char *key)
{
    int quants = 0, prev_quant = 0;

    if (strlen(key) > PEFT_MAX_KEY)
        return 0;
    for (const char *p = key; *p != '\0'; p++) {
        int quant = *p == '*' || *p == '+' || *p == '?';
        if (*p == '{' || (quant && prev_quant) || (*p == '\\' && p[1] >= '0' && p[1] <= '9'))
            return 0;
        if (*p == '\\' && p[1] != '\0')
            p++;
        quants += quant;
        prev_quant = quant;
    }
    return quants <= PEFT_MAX_QUANT;
}

static enum err_code peft_pattern_add(struct peft_pattern *p, const cJSON *it, struct err *e)
{
    size_t n = strlen(it->string);
    char *src = malloc(n + 16);
    regex_t *re = malloc(sizeof(*re));
    enum err_code rc = ERR_OK;

    p->key = strdup(it->string);
    p->value = it->valuedouble;
    if (src == NULL || re == NULL || p->key == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory for adapter_config.json patterns");
        goto out;
    }
    memcpy(src, "^(.*\\.)?(", 9);
    memcpy(src + 9, it->string, n);
    memcpy(src + 9 + n, ")$", 3);
    /* A key POSIX ERE cannot compile (Python-only syntax), or one that is not
     * safe to compile, is matched literally. */
    if (peft_pattern_safe(it->string) && regcomp(re, src, REG_EXTENDED | REG_NOSUB) == 0) {
        p->re = re;
        re = NULL;
    }
out:
    free(src);
    free(re);
    return rc;
}

/* rank_pattern / alpha_pattern: an object of numbers (ranks: whole, >= 1). */
static enum err_code peft_patterns(const cJSON *root, const char *key, int ranks,
                                   struct peft_pattern **out, size_t *n_out, struct err *e)
{
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, key), *it;
    enum err_code rc = ERR_OK;
    int n;

    if (obj == NULL || cJSON_IsNull(obj))
        return ERR_OK;
    if (!cJSON_IsObject(obj))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "adapter_config.json: \"%s\" is not an object", key);
    n = cJSON_GetArraySize(obj);
    if (n > PEFT_MAX_PATTERNS)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "adapter_config.json: more than %d \"%s\" entries", PEFT_MAX_PATTERNS, key);
    *out = calloc(n > 0 ? (size_t)n : 1, sizeof(**out));
    if (*out == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for adapter_config.json patterns");
    cJSON_ArrayForEach(it, obj)
    {
        if (ranks ? !peft_rank_ok(it) : !(cJSON_IsNumber(it) && isfinite(it->valuedouble)))
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                            "adapter_config.json: \"%s\" entry '%.100s' is not %s", key, it->string,
                            ranks ? "a rank >= 1" : "a finite number");
        rc = peft_pattern_add(&(*out)[*n_out], it, e);
        (*n_out)++;
        if (rc)
            return rc;
    }
    return ERR_OK;
}

static enum err_code peft_config_fields(const cJSON *root, struct peft_config *cfg, struct err *e)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "peft_type");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "r");
    const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(root, "lora_alpha");
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(root, "base_model_name_or_path");
    enum err_code rc;

    if (!cJSON_IsString(type))
        return peft_bad(e, "no \"peft_type\" string");
    if (strcmp(type->valuestring, "LORA") != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                        "adapter_config.json: peft_type \"%.40s\" is not read (only LORA)",
                        type->valuestring);
    if (r == NULL || !peft_rank_ok(r))
        return peft_bad(e, r == NULL ? "no \"r\"" : "\"r\" is not a rank >= 1");
    if (alpha == NULL || !cJSON_IsNumber(alpha) || !isfinite(alpha->valuedouble))
        return peft_bad(e, alpha == NULL ? "no \"lora_alpha\"" : "\"lora_alpha\" is not a number");
    cfg->r = (int64_t)r->valuedouble;
    cfg->lora_alpha = alpha->valuedouble;
    if (base != NULL && !cJSON_IsNull(base) && !cJSON_IsString(base))
        return peft_bad(e, "\"base_model_name_or_path\" is not a string");
    if (cJSON_IsString(base)) {
        cfg->base_model = strdup(base->valuestring);
        if (cfg->base_model == NULL)
            return err_set(e, ERR_NOMEM, "out of memory reading adapter_config.json");
    }
    rc = peft_bool(root, "use_rslora", &cfg->use_rslora, e);
    if (rc == ERR_OK)
        rc = peft_bool(root, "fan_in_fan_out", &cfg->fan_in_fan_out, e);
    if (rc == ERR_OK)
        rc = peft_bool(root, "use_dora", &cfg->use_dora, e);
    if (rc == ERR_OK)
        rc = peft_patterns(root, "rank_pattern", 1, &cfg->rank_pattern, &cfg->n_rank_pattern, e);
    if (rc == ERR_OK)
        rc = peft_patterns(root, "alpha_pattern", 0, &cfg->alpha_pattern, &cfg->n_alpha_pattern, e);
    return rc;
}

enum err_code peft_config_parse(const char *text, size_t len, struct peft_config *out,
                                struct err *e)
{
    cJSON *root = NULL;
    enum err_code rc = ERR_OK;

    memset(out, 0, sizeof(*out));
    /* cJSON cuts strings at an escaped NUL; refuse the escape outright. */
    for (size_t k = 0; k + 6 <= len; k++)
        if (text[k] == '\\' && text[k + 1] == 'u' && memcmp(text + k + 2, "0000", 4) == 0) {
            rc = peft_bad(e, "holds a NUL character (\\u0000)");
            goto out;
        }
    root = cJSON_ParseWithLength(text, len);
    if (root == NULL || !cJSON_IsObject(root)) {
        rc = peft_bad(e, root == NULL ? "not valid JSON" : "not a JSON object");
        goto out;
    }
    rc = peft_config_fields(root, out, e);
out:
    cJSON_Delete(root);
    return rc;
}

static void peft_patterns_free(struct peft_pattern *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].key);
        if (p[i].re != NULL)
            regfree(p[i].re);
        free(p[i].re);
    }
    free(p);
}

void peft_config_free(struct peft_config *cfg)
{
    if (cfg == NULL)
        return;
    peft_patterns_free(cfg->rank_pattern, cfg->n_rank_pattern);
    peft_patterns_free(cfg->alpha_pattern, cfg->n_alpha_pattern);
    free(cfg->base_model);
    memset(cfg, 0, sizeof(*cfg));
}

/* 1 if `module` matches (.*\.)?(key)$: by the regex, or literally when the key
 * did not compile. */
static int peft_pattern_match(const struct peft_pattern *p, const char *module)
{
    size_t n = strlen(module), k = strlen(p->key);

    if (p->re != NULL)
        return regexec(p->re, module, 0, NULL, 0) == 0;
    if (k > n || strcmp(module + n - k, p->key) != 0)
        return 0;
    return k == n || module[n - k - 1] == '.';
}

void peft_config_module(const struct peft_config *cfg, const char *module, int64_t *rank,
                        double *alpha, double *scale)
{
    *rank = cfg->r;
    *alpha = cfg->lora_alpha;
    for (size_t i = 0; i < cfg->n_rank_pattern; i++)
        if (peft_pattern_match(&cfg->rank_pattern[i], module)) {
            *rank = (int64_t)cfg->rank_pattern[i].value;
            break;
        }
    for (size_t i = 0; i < cfg->n_alpha_pattern; i++)
        if (peft_pattern_match(&cfg->alpha_pattern[i], module)) {
            *alpha = cfg->alpha_pattern[i].value;
            break;
        }
    *scale = cfg->use_rslora ? *alpha / sqrt((double)*rank) : *alpha / (double)*rank;
}
