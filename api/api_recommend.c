/* api_recommend.c -- decisions from a checkpoint's alphas (docs/numerics.md, Recommendations):
 *   GET /v1/runs/{run}/checkpoints/{step}/recommendations/sparsity
 *       AlphaPruning per-layer sparsity ratios (core/recommend rec_sparsity);
 *   GET /v1/runs/{run}/checkpoints/{step}/recommendations/learning-rates
 *       TempBalance per-layer learning rates (rec_lr_select, rec_learning_rates).
 * Both read the checkpoint's stored layer rows (no analysis runs), answer
 * 304 on a matching If-None-Match, and list the weight layers that took no
 * part with the reason. Only weight matrices count as layers here (linear,
 * conv, GPT-2 Conv1D, embeddings); biases, norms and buffers are not listed.
 */
#include "api/api_int.h"
#include "api/api_alerts.h"
#include "api/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/layers.h"
#include "core/numerics/recommend.h"
#include "storage/store_layers.h"

/* Sparsity and learning-rate defaults (the paper's LLaMA-7B Wanda row and
 * TempBalance's function defaults). */
#define API_REC_TARGET    0.7
#define API_REC_EPSILON   0.3
#define API_REC_BASE_LR   0.1
#define API_REC_MIN_RATIO 0.5
#define API_REC_MAX_RATIO 1.5

/* One checkpoint's rows and what the handlers share. */
struct api_rec {
    const char *run;
    int64_t step;
    char preset[STORE_PRESET_MAX];
    struct store_layer_list *rows; /* owned */
    size_t *pick;                  /* owned: row index of each participating layer */
    double *alpha, *numel, *out, *extra;
    int64_t *block;
    size_t n; /* participating layers */
};

static void api_rec_free(struct api_rec *x)
{
    store_layer_list_free(x->rows);
    free(x->pick);
    free(x->alpha);
    free(x->numel);
    free(x->out);
    free(x->extra);
    free(x->block);
}

static void api_bad_param(struct api_response *resp, const char *name, const char *why)
{
    char msg[ERR_MSG_LEN];

    snprintf(msg, sizeof(msg), "parameter '%s': %s", name, why);
    api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "%s", msg);
}

/* Number parameter `key` (def when absent): 1, or 0 with a 400. */
static int api_qnum(struct api_call *c, struct api_response *resp, const char *key, double def,
                    double *out)
{
    const char *t = api_query_get(&c->q, key);
    char *end = NULL;

    *out = def;
    if (t == NULL)
        return 1;
    *out = strtod(t, &end);
    if (t[0] == '\0' || end == NULL || *end != '\0' || !isfinite(*out)) {
        api_bad_param(resp, key, "not a finite number");
        return 0;
    }
    return 1;
}

/* true|false parameter `key` (false when absent): 1, or 0 with a 400. */
static int api_qbool(struct api_call *c, struct api_response *resp, const char *key, int *out)
{
    const char *t = api_query_get(&c->q, key);

    *out = t != NULL && strcmp(t, "true") == 0;
    if (t != NULL && strcmp(t, "true") != 0 && strcmp(t, "false") != 0) {
        api_bad_param(resp, key, "must be true or false");
        return 0;
    }
    return 1;
}

/* Step, preset, run version, ETag over `key`, rows: 1 if the handler goes
 * on (x->rows set), 0 when resp is the answer (error or 304). */
static int api_rec_load(struct api_call *c, struct api_response *resp, const char *key,
                        struct api_rec *x)
{
    char hash[THASH_HEX_LEN], full[API_ETAG_KEY_MAX];
    struct err e = {0};
    int64_t version;

    x->run = api__param(c, "run");
    if (api_parse_int64("step", api__param(c, "step"), 0, API_STEP_MAX, &x->step, &e) != ERR_OK) {
        e.category = ERR_CAT_INVALID_PARAMETER;
        api_problem_err(resp, &e);
        return 0;
    }
    if (!api__preset_param(c, resp, x->preset, hash) ||
        !api__run_version(c, resp, x->run, &version))
        return 0;
    snprintf(full, sizeof(full), "%s|%s|%lld|%s", key, x->run, (long long)x->step, x->preset);
    if (api__etag(c, resp, version, full) ||
        !api__preset_default(c, resp, x->run, x->step, x->preset, hash))
        return 0;
    if (store_layers_get(c->s, x->run, x->step, hash, &x->rows, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return 0;
    }
    return 1;
}

static int api_rec_alloc(struct api_rec *x)
{
    size_t n = x->rows->n ? x->rows->n : 1;

    x->pick = calloc(n, sizeof(*x->pick));
    x->alpha = calloc(n, sizeof(*x->alpha));
    x->numel = calloc(n, sizeof(*x->numel));
    x->out = calloc(n, sizeof(*x->out));
    x->extra = calloc(n, sizeof(*x->extra));
    x->block = calloc(n, sizeof(*x->block));
    return x->pick && x->alpha && x->numel && x->out && x->extra && x->block;
}

/* A weight matrix: the rows these endpoints talk about. */
static int api_rec_weight(const struct store_layer *y)
{
    return layer_kind_is_weight(y->kind);
}

/* Why row y takes no part (NULL: it does): not analysed ok or no alpha. */
static const char *api_rec_why_not(const struct store_layer *y)
{
    if (y->r.status != FARMS_STATUS_OK)
        return y->r.reason[0] ? y->r.reason : farms_status_name(y->r.status);
    if (!isfinite(y->r.alpha) || y->r.alpha <= 0)
        return "alpha is not a finite positive number";
    return NULL;
}

static int api_add_left_out(cJSON *arr, const char *name, const char *why, double lr)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || !cJSON_AddStringToObject(o, "name", name) ||
        !cJSON_AddStringToObject(o, "reason", why) ||
        (lr > 0 && !cJSON_AddNumberToObject(o, "lr", lr)) || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return 0;
    }
    return 1;
}

/* {"run", "step", "preset"} and the answer's arrays: NULL on NOMEM. */
static cJSON *api_rec_head(const struct api_rec *x, cJSON **layers, cJSON **left_out)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || !cJSON_AddStringToObject(o, "run", x->run) ||
        !json_add_int(o, "step", x->step) || !cJSON_AddStringToObject(o, "preset", x->preset) ||
        (*layers = cJSON_AddArrayToObject(o, "layers")) == NULL ||
        (*left_out = cJSON_AddArrayToObject(o, "left_out")) == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* 409 when the checkpoint has nothing to work on. */
static void api_rec_empty(struct api_response *resp, const struct api_rec *x)
{
    char msg[ERR_MSG_LEN];

    snprintf(msg, sizeof(msg),
             "checkpoint %lld of run '%.80s' has no analysed layers with an alpha under "
             "preset '%.40s' (has its job finished?)",
             (long long)x->step, x->run, x->preset);
    api_fail(resp, ERR_CONFLICT, ERR_CAT_NO_ALPHAS, "%s", msg);
}

/* A refusal of core/recommend (degenerate alphas): 400. */
static void api_rec_refused(struct api_response *resp, struct err *e)
{
    e->category = ERR_CAT_DEGENERATE_ALPHAS;
    api_problem_err(resp, e);
}

/* --- Sparsity -------------------------------------------------------------------- */

/* The block of every participating layer: K consecutive layers, or the
 * layers' own blocks (a layer outside blocks is a block of its own). */
static void api_sparsity_blocks(struct api_rec *x, int64_t block_size)
{
    if (block_size > 0) {
        rec_blocks_fixed(x->n, (size_t)block_size, x->block);
        return;
    }
    for (size_t i = 0; i < x->n; i++) {
        const struct store_layer *y = &x->rows->items[x->pick[i]];
        struct layer_info info;

        layer_classify(y->name, y->dtype, y->ndim, y->shape, &info);
        x->block[i] = info.block >= 0 ? info.block : -(int64_t)i - 1;
    }
}

/* One participating layer's object. */
static cJSON *api_sparsity_layer(const struct api_rec *x, size_t i, size_t group)
{
    cJSON *l = cJSON_CreateObject();

    if (l == NULL || !cJSON_AddStringToObject(l, "name", x->rows->items[x->pick[i]].name) ||
        !cJSON_AddNumberToObject(l, "alpha", x->alpha[i]) ||
        !cJSON_AddNumberToObject(l, "block", (double)group) ||
        !cJSON_AddNumberToObject(l, "block_alpha", x->extra[i]) ||
        !cJSON_AddNumberToObject(l, "numel", x->numel[i]) ||
        !cJSON_AddNumberToObject(l, "sparsity", x->out[i]) ||
        !cJSON_AddBoolToObject(l, "clamped",
                               x->out[i] == REC_CLAMP || x->out[i] == REC_CLAMP_AT_07)) {
        cJSON_Delete(l);
        return NULL;
    }
    return l;
}

/* The layers, "blocks": [{"block", "alpha", "layers": [names]}] in order
 * of first appearance (a layer's "block" indexes this list) and
 * "mean_sparsity" (parameter-weighted, after the clamp). 0 on NOMEM. */
static int api_sparsity_json(const struct api_rec *x, cJSON *o, cJSON *layers)
{
    cJSON *blocks = cJSON_AddArrayToObject(o, "blocks");
    size_t *group = calloc(x->n, sizeof(*group)), n_groups = 0;
    double weighted = 0, total = 0;
    int ok = blocks != NULL && group != NULL;

    for (size_t i = 0; ok && i < x->n; i++) {
        cJSON *b, *l, *names;
        size_t j;

        for (j = 0; j < i && x->block[j] != x->block[i]; j++)
            ;
        if (j == i) { /* the first layer of a new block */
            group[i] = n_groups++;
            b = cJSON_CreateObject();
            ok = b != NULL && cJSON_AddItemToArray(blocks, b) &&
                 cJSON_AddNumberToObject(b, "block", (double)group[i]) &&
                 cJSON_AddNumberToObject(b, "alpha", x->extra[i]) &&
                 cJSON_AddArrayToObject(b, "layers") != NULL;
            if (b != NULL && !ok && cJSON_GetArraySize(blocks) <= (int)group[i])
                cJSON_Delete(b);
            if (!ok)
                break;
        } else {
            group[i] = group[j];
        }
        names = cJSON_GetObjectItem(cJSON_GetArrayItem(blocks, (int)group[i]), "layers");
        l = api_sparsity_layer(x, i, group[i]);
        ok = l != NULL && cJSON_AddItemToArray(layers, l);
        if (l != NULL && !ok)
            cJSON_Delete(l);
        ok = ok && cJSON_AddItemToArray(names, cJSON_CreateString(x->rows->items[x->pick[i]].name));
        weighted += x->numel[i] * x->out[i];
        total += x->numel[i];
    }
    free(group);
    return ok && cJSON_AddNumberToObject(o, "mean_sparsity", weighted / total);
}

/* Pick the weight matrices that take part (alpha and size into x), list the
 * others under `left` with the reason. 0 when out of memory. */
static int api_sparsity_pick(struct api_rec *x, cJSON *left)
{
    for (size_t i = 0; i < x->rows->n; i++) {
        const struct store_layer *y = &x->rows->items[i];
        const char *why = api_rec_weight(y) ? api_rec_why_not(y) : "not a weight matrix";
        double numel = 1;

        for (int d = 0; d < y->ndim; d++)
            numel *= (double)y->shape[d];
        if (why == NULL) {
            x->pick[x->n] = i;
            x->alpha[x->n] = y->r.alpha;
            x->numel[x->n++] = numel;
        } else if (api_rec_weight(y) && !api_add_left_out(left, y->name, why, 0)) {
            return 0;
        }
    }
    return 1;
}

/* GET .../recommendations/sparsity?target=&epsilon=&block_size=&preset= */
void api__rec_sparsity(struct api_call *c, struct api_response *resp)
{
    struct api_rec x = {0};
    double target, eps;
    int64_t block_size = 0;
    char key[256];
    struct err e = {0};
    cJSON *o = NULL, *layers = NULL, *left = NULL;

    if (!api_qnum(c, resp, "target", API_REC_TARGET, &target) ||
        !api_qnum(c, resp, "epsilon", API_REC_EPSILON, &eps))
        return;
    if (!(target > 0 && target < 1)) {
        api_bad_param(resp, "target", "must be in (0, 1)");
        return;
    }
    if (!(eps >= 0 && eps < 1)) {
        api_bad_param(resp, "epsilon", "must be in [0, 1)");
        return;
    }
    if (api_query_int64(&c->q, "block_size", 1, 1000000, 0, &block_size, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    snprintf(key, sizeof(key), "sparsity|%.17g|%.17g|%lld", target, eps, (long long)block_size);
    if (!api_rec_load(c, resp, key, &x))
        goto out;
    if (!api_rec_alloc(&x) || (o = api_rec_head(&x, &layers, &left)) == NULL)
        goto nomem;
    if (!api_sparsity_pick(&x, left))
        goto nomem;
    if (x.n == 0) {
        api_rec_empty(resp, &x);
        goto out;
    }
    api_sparsity_blocks(&x, block_size);
    if (rec_sparsity(
            &(struct rec_layers){.alpha = x.alpha, .numel = x.numel, .block = x.block, .n = x.n},
            target, eps, x.out, x.extra, &e) != ERR_OK) {
        api_rec_refused(resp, &e);
        goto out;
    }
    if (!cJSON_AddNumberToObject(o, "target", target) ||
        !cJSON_AddNumberToObject(o, "epsilon", eps) ||
        !(block_size > 0 ? cJSON_AddNumberToObject(o, "block_size", (double)block_size)
                         : cJSON_AddNullToObject(o, "block_size")) ||
        !api_sparsity_json(&x, o, layers))
        goto nomem;
    api__ok(resp, o);
    o = NULL;
    goto out;
nomem:
    api_fail(resp, ERR_NOMEM, ERR_CAT_NONE, "out of memory building the response");
out:
    cJSON_Delete(o);
    api_rec_free(&x);
}

/* --- Learning rates ------------------------------------------------------------------ */

/* TempBalance tunes nn.Linear / nn.Conv2d: the weight rows minus embeddings,
 * that were analysed (ok, failed, or skipped with an eigenvalue count). */
static int api_lr_candidate(const struct store_layer *y)
{
    return api_rec_weight(y) && y->kind != LAYER_KIND_EMBEDDING &&
           (y->r.status != FARMS_STATUS_SKIPPED || y->r.num_eigs > 0);
}

struct api_lr_args {
    double base_lr, min_ratio, max_ratio;
    int map, remove_first, remove_last;
};

static int api_lr_args(struct api_call *c, struct api_response *resp, struct api_lr_args *a)
{
    const char *m = api_query_get(&c->q, "map");

    if (!api_qnum(c, resp, "base_lr", API_REC_BASE_LR, &a->base_lr) ||
        !api_qnum(c, resp, "min_ratio", API_REC_MIN_RATIO, &a->min_ratio) ||
        !api_qnum(c, resp, "max_ratio", API_REC_MAX_RATIO, &a->max_ratio) ||
        !api_qbool(c, resp, "remove_first", &a->remove_first) ||
        !api_qbool(c, resp, "remove_last", &a->remove_last))
        return 0;
    a->map = m == NULL ? REC_LR_LINEAR : rec_lr_map_from_name(m);
    if (!(a->base_lr > 0)) {
        api_bad_param(resp, "base_lr", "must be > 0");
        return 0;
    }
    if (!(a->min_ratio <= a->max_ratio)) {
        api_bad_param(resp, "min_ratio", "must be <= max_ratio");
        return 0;
    }
    if (a->map < 0) {
        api_bad_param(resp, "map", "must be linear, sqrt, log2 or step");
        return 0;
    }
    return 1;
}

/* Choose the tuned layers: candidates in order, rec_lr_select's removals,
 * then only layers with an alpha. Left-out candidates keep base_lr. */
static int api_lr_pick(struct api_rec *x, const struct api_lr_args *a, cJSON *left)
{
    size_t n_cand = 0, k = 0;
    int64_t *eigs = x->block; /* scratch: the candidates' eigenvalue counts */
    int *use = calloc(x->rows->n ? x->rows->n : 1, sizeof(*use));
    int ok = use != NULL;

    for (size_t i = 0; ok && i < x->rows->n; i++) {
        const struct store_layer *y = &x->rows->items[i];
        if (api_lr_candidate(y)) {
            x->pick[n_cand] = i;
            eigs[n_cand++] = y->r.num_eigs;
        } else if (api_rec_weight(y)) {
            ok = api_add_left_out(left, y->name,
                                  y->kind == LAYER_KIND_EMBEDDING
                                      ? "embedding: TempBalance tunes linear and conv layers"
                                      : api_rec_why_not(y),
                                  a->base_lr);
        }
    }
    if (ok)
        rec_lr_select(eigs, n_cand, a->remove_first, a->remove_last, use);
    for (size_t i = 0; ok && i < n_cand; i++) {
        const struct store_layer *y = &x->rows->items[x->pick[i]];
        const char *why;

        if (use[i])
            why = api_rec_why_not(y);
        else if (i == 0 && a->remove_first)
            why = "removed: the first layer (remove_first)";
        else if (i + 1 == n_cand && a->remove_last)
            why = "removed: the last layer (remove_last)";
        else
            why = "fewer than 5 eigenvalues";
        if (why != NULL) {
            ok = api_add_left_out(left, y->name, why, a->base_lr);
            continue;
        }
        x->pick[k] = x->pick[i];
        x->alpha[k++] = y->r.alpha;
    }
    x->n = k;
    free(use);
    return ok;
}

static int api_lr_json(const struct api_rec *x, const struct api_lr_args *a, cJSON *o,
                       cJSON *layers)
{
    int ok = cJSON_AddNumberToObject(o, "base_lr", a->base_lr) &&
             cJSON_AddNumberToObject(o, "min_ratio", a->min_ratio) &&
             cJSON_AddNumberToObject(o, "max_ratio", a->max_ratio) &&
             cJSON_AddStringToObject(o, "map", rec_lr_map_name((enum rec_lr_map)a->map)) &&
             cJSON_AddBoolToObject(o, "remove_first", a->remove_first) &&
             cJSON_AddBoolToObject(o, "remove_last", a->remove_last);

    for (size_t i = 0; ok && i < x->n; i++) {
        cJSON *l = cJSON_CreateObject();
        ok = l != NULL && cJSON_AddStringToObject(l, "name", x->rows->items[x->pick[i]].name) &&
             cJSON_AddNumberToObject(l, "alpha", x->alpha[i]) &&
             cJSON_AddNumberToObject(l, "lr", x->out[i]) &&
             cJSON_AddNumberToObject(l, "ratio", x->out[i] / a->base_lr) &&
             cJSON_AddItemToArray(layers, l);
        if (!ok)
            cJSON_Delete(l);
    }
    return ok;
}

/* GET .../recommendations/learning-rates?base_lr=&min_ratio=&max_ratio=&map=
 * &remove_first=&remove_last=&preset= */
void api__rec_learning_rates(struct api_call *c, struct api_response *resp)
{
    struct api_rec x = {0};
    struct api_lr_args a;
    struct rec_lr_opts lo;
    char key[256];
    struct err e = {0};
    cJSON *o = NULL, *layers = NULL, *left = NULL;

    if (!api_lr_args(c, resp, &a))
        return;
    snprintf(key, sizeof(key), "lr|%.17g|%.17g|%.17g|%d|%d|%d", a.base_lr, a.min_ratio, a.max_ratio,
             a.map, a.remove_first, a.remove_last);
    if (!api_rec_load(c, resp, key, &x))
        goto out;
    if (!api_rec_alloc(&x) || (o = api_rec_head(&x, &layers, &left)) == NULL ||
        !api_lr_pick(&x, &a, left))
        goto nomem;
    if (x.n == 0) {
        api_rec_empty(resp, &x);
        goto out;
    }
    lo = (struct rec_lr_opts){.map = (enum rec_lr_map)a.map,
                              .base_lr = a.base_lr,
                              .min_ratio = a.min_ratio,
                              .max_ratio = a.max_ratio};
    if (rec_learning_rates(x.alpha, x.n, &lo, x.out, &e) != ERR_OK) {
        api_rec_refused(resp, &e);
        goto out;
    }
    if (!api_lr_json(&x, &a, o, layers))
        goto nomem;
    api__ok(resp, o);
    o = NULL;
    goto out;
nomem:
    api_fail(resp, ERR_NOMEM, ERR_CAT_NONE, "out of memory building the response");
out:
    cJSON_Delete(o);
    api_rec_free(&x);
}

/* --- For alerts (api_alerts.h) ------------------------------------------------------- */

enum err_code api_alert_recommend(struct store_layer_list *rows, double *sparsity, double *lr_scale,
                                  struct err *e)
{
    struct api_rec x = {.rows = rows}; /* borrowed: not freed below */
    struct api_lr_args a = {.base_lr = API_REC_BASE_LR,
                            .min_ratio = API_REC_MIN_RATIO,
                            .max_ratio = API_REC_MAX_RATIO,
                            .map = REC_LR_LINEAR};
    struct rec_lr_opts lo = {REC_LR_LINEAR, API_REC_BASE_LR, API_REC_MIN_RATIO, API_REC_MAX_RATIO};
    cJSON *left = cJSON_CreateArray(); /* the routes' left_out list, not needed here */
    enum err_code rc = ERR_OK;

    for (size_t i = 0; i < rows->n; i++)
        sparsity[i] = lr_scale[i] = NAN;
    if (left == NULL || !api_rec_alloc(&x) || !api_sparsity_pick(&x, left)) {
        rc = err_set(e, ERR_NOMEM, "recommendations: out of memory");
        goto out;
    }
    api_sparsity_blocks(&x, 0);
    if (x.n > 0 && rec_sparsity(&(struct rec_layers){x.alpha, x.numel, x.block, x.n},
                                API_REC_TARGET, API_REC_EPSILON, x.out, x.extra, NULL) == ERR_OK)
        for (size_t i = 0; i < x.n; i++)
            sparsity[x.pick[i]] = x.out[i];
    x.n = 0;
    if (!api_lr_pick(&x, &a, left)) {
        rc = err_set(e, ERR_NOMEM, "recommendations: out of memory");
        goto out;
    }
    if (x.n > 0 && rec_learning_rates(x.alpha, x.n, &lo, x.out, NULL) == ERR_OK)
        for (size_t i = 0; i < x.n; i++)
            lr_scale[x.pick[i]] = x.out[i] / a.base_lr;
out:
    x.rows = NULL; /* borrowed */
    api_rec_free(&x);
    cJSON_Delete(left);
    return rc;
}
