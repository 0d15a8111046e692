/* api_recommend.c -- decisions from a checkpoint's alphas (docs/numerics.md, Recommendations):
 *   GET /v1/runs/{run}/checkpoints/{step}/recommendations/sparsity
 *       AlphaPruning per-layer sparsity ratios (core/recommend rec_sparsity);
 *   GET /v1/runs/{run}/checkpoints/{step}/recommendations/learning-rates
 *       TempBalance per-layer learning rates (rec_lr_select, rec_learning_rates).
 * Both read the checkpoint's stored layer rows (no analysis runs), answer
 * 304 on a matching If-None-Match, and list the weight layers that took no
 * part with the reason. Only weight matrices count as layers here (linear,
 * conv, GPT-2 Conv1D, embeddings); biases, norms and buffers are not listed.
 *
 * This file holds what both routes share (api__rec_answer, the frame of a
 * handler), the sparsity route and api_alert_recommend (api_alerts.h); the
 * learning-rate route is in api_recommend_lr.c (api_recommend_int.h).
 */
#include "api/api_recommend_int.h"
#include "api/api_alerts.h"
#include "api/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/layers.h"
#include "core/numerics/recommend.h"
#include "storage/store_layers.h"

void api__rec_free(struct api_rec *x)
{
    store_layer_list_free(x->rows);
    free(x->pick);
    free(x->alpha);
    free(x->numel);
    free(x->out);
    free(x->extra);
    free(x->block);
}

void api__rec_bad_param(struct api_response *resp, const char *name, const char *why)
{
    char msg[ERR_MSG_LEN];

    snprintf(msg, sizeof(msg), "parameter '%s': %s", name, why);
    api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "%s", msg);
}

/* Number parameter `key` (def when absent): 1, or 0 with a 400. */
int api__rec_qnum(struct api_call *c, struct api_response *resp, const char *key, double def,
                  double *out)
{
    const char *t = api_query_get(&c->q, key);
    char *end = NULL;

    *out = def;
    if (t == NULL)
        return 1;
    *out = strtod(t, &end);
    if (t[0] == '\0' || end == NULL || *end != '\0' || !isfinite(*out)) {
        api__rec_bad_param(resp, key, "not a finite number");
        return 0;
    }
    return 1;
}

/* true|false parameter `key` (false when absent): 1, or 0 with a 400. */
int api__rec_qbool(struct api_call *c, struct api_response *resp, const char *key, int *out)
{
    const char *t = api_query_get(&c->q, key);

    *out = t != NULL && strcmp(t, "true") == 0;
    if (t != NULL && strcmp(t, "true") != 0 && strcmp(t, "false") != 0) {
        api__rec_bad_param(resp, key, "must be true or false");
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

int api__rec_alloc(struct api_rec *x)
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
int api__rec_weight(const struct store_layer *y)
{
    return layer_kind_is_weight(y->kind);
}

/* Why row y takes no part (NULL: it does): not analysed ok or no alpha. */
const char *api__rec_why_not(const struct store_layer *y)
{
    if (y->r.status != FARMS_STATUS_OK)
        return y->r.reason[0] ? y->r.reason : farms_status_name(y->r.status);
    if (!isfinite(y->r.alpha) || y->r.alpha <= 0)
        return "alpha is not a finite positive number";
    return NULL;
}

int api__rec_left_out(cJSON *arr, const char *name, const char *why, double lr)
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
void api__rec_empty(struct api_response *resp, const struct api_rec *x)
{
    char msg[ERR_MSG_LEN];

    snprintf(msg, sizeof(msg),
             "checkpoint %lld of run '%.80s' has no analysed layers with an alpha under "
             "preset '%.40s' (has its job finished?)",
             (long long)x->step, x->run, x->preset);
    api_fail(resp, ERR_CONFLICT, ERR_CAT_NO_ALPHAS, "%s", msg);
}

/* A refusal of core/recommend (degenerate alphas): 400. */
void api__rec_refused(struct api_response *resp, struct err *e)
{
    e->category = ERR_CAT_DEGENERATE_ALPHAS;
    api_problem_err(resp, e);
}

void api__rec_answer(struct api_call *c, struct api_response *resp, const char *key,
                     api_rec_run_fn *run, const void *args)
{
    struct api_rec x = {0};
    cJSON *o = NULL, *layers = NULL, *left = NULL;
    int rc = -1;

    if (!api_rec_load(c, resp, key, &x))
        goto out;
    if (api__rec_alloc(&x))
        o = api_rec_head(&x, &layers, &left);
    if (o != NULL)
        rc = run(&x, args, o, layers, left, resp);
    if (rc > 0) {
        api__ok(resp, o);
        o = NULL;
    } else if (rc < 0) {
        api_fail(resp, ERR_NOMEM, ERR_CAT_NONE, "out of memory building the response");
    }
out:
    cJSON_Delete(o);
    api__rec_free(&x);
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
        const char *why = api__rec_weight(y) ? api__rec_why_not(y) : "not a weight matrix";
        double numel = 1;

        for (int d = 0; d < y->ndim; d++)
            numel *= (double)y->shape[d];
        if (why == NULL) {
            x->pick[x->n] = i;
            x->alpha[x->n] = y->r.alpha;
            x->numel[x->n++] = numel;
        } else if (api__rec_weight(y) && !api__rec_left_out(left, y->name, why, 0)) {
            return 0;
        }
    }
    return 1;
}

struct api_sparsity_args {
    double target, eps;
    int64_t block_size;
};

/* The sparsity route's part of api__rec_answer (api_rec_run_fn). */
static int api_sparsity_run(struct api_rec *x, const void *args, cJSON *o, cJSON *layers,
                            cJSON *left, struct api_response *resp)
{
    const struct api_sparsity_args *a = args;
    struct err e = {0};

    if (!api_sparsity_pick(x, left))
        return -1;
    if (x->n == 0) {
        api__rec_empty(resp, x);
        return 0;
    }
    api_sparsity_blocks(x, a->block_size);
    if (rec_sparsity(
            &(struct rec_layers){
                .alpha = x->alpha, .numel = x->numel, .block = x->block, .n = x->n},
            a->target, a->eps, x->out, x->extra, &e) != ERR_OK) {
        api__rec_refused(resp, &e);
        return 0;
    }
    if (!cJSON_AddNumberToObject(o, "target", a->target) ||
        !cJSON_AddNumberToObject(o, "epsilon", a->eps) ||
        !(a->block_size > 0 ? cJSON_AddNumberToObject(o, "block_size", (double)a->block_size)
                            : cJSON_AddNullToObject(o, "block_size")) ||
        !api_sparsity_json(x, o, layers))
        return -1;
    return 1;
}

/* GET .../recommendations/sparsity?target=&epsilon=&block_size=&preset= */
void api__rec_sparsity(struct api_call *c, struct api_response *resp)
{
    struct api_sparsity_args a = {0};
    char key[256];
    struct err e = {0};

    if (!api__rec_qnum(c, resp, "target", API_REC_TARGET, &a.target) ||
        !api__rec_qnum(c, resp, "epsilon", API_REC_EPSILON, &a.eps))
        return;
    if (!(a.target > 0 && a.target < 1)) {
        api__rec_bad_param(resp, "target", "must be in (0, 1)");
        return;
    }
    if (!(a.eps >= 0 && a.eps < 1)) {
        api__rec_bad_param(resp, "epsilon", "must be in [0, 1)");
        return;
    }
    if (api_query_int64(&c->q, "block_size", 1, 1000000, 0, &a.block_size, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return;
    }
    snprintf(key, sizeof(key), "sparsity|%.17g|%.17g|%lld", a.target, a.eps,
             (long long)a.block_size);
    api__rec_answer(c, resp, key, api_sparsity_run, &a);
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
    if (left == NULL || !api__rec_alloc(&x) || !api_sparsity_pick(&x, left)) {
        rc = err_set(e, ERR_NOMEM, "recommendations: out of memory");
        goto out;
    }
    api_sparsity_blocks(&x, 0);
    if (x.n > 0 && rec_sparsity(&(struct rec_layers){x.alpha, x.numel, x.block, x.n},
                                API_REC_TARGET, API_REC_EPSILON, x.out, x.extra, NULL) == ERR_OK)
        for (size_t i = 0; i < x.n; i++)
            sparsity[x.pick[i]] = x.out[i];
    x.n = 0;
    if (!api__rec_lr_pick(&x, &a, left)) {
        rc = err_set(e, ERR_NOMEM, "recommendations: out of memory");
        goto out;
    }
    if (x.n > 0 && rec_learning_rates(x.alpha, x.n, &lo, x.out, NULL) == ERR_OK)
        for (size_t i = 0; i < x.n; i++)
            lr_scale[x.pick[i]] = x.out[i] / a.base_lr;
out:
    x.rows = NULL; /* borrowed */
    api__rec_free(&x);
    cJSON_Delete(left);
    return rc;
}
