/* api_recommend_lr.c -- GET /v1/runs/{run}/checkpoints/{step}/recommendations/
 * learning-rates: TempBalance per-layer learning rates (core/recommend
 * rec_lr_select, rec_learning_rates) of a checkpoint's stored layer rows.
 * The frame it shares with the sparsity route (step, preset, ETag, rows,
 * left-out layers) is in api_recommend.c (api_recommend_int.h).
 */
#include "api/api_recommend_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/formats/layers.h"
#include "core/numerics/recommend.h"

/* --- Learning rates ------------------------------------------------------------------ */

/* TempBalance tunes nn.Linear / nn.Conv2d: the weight rows minus embeddings,
 * that were analysed (ok, failed, or skipped with an eigenvalue count). */
static int api_lr_candidate(const struct store_layer *y)
{
    return api__rec_weight(y) && y->kind != LAYER_KIND_EMBEDDING &&
           (y->r.status != FARMS_STATUS_SKIPPED || y->r.num_eigs > 0);
}

static int api_lr_args(struct api_call *c, struct api_response *resp, struct api_lr_args *a)
{
    const char *m = api_query_get(&c->q, "map");

    if (!api__rec_qnum(c, resp, "base_lr", API_REC_BASE_LR, &a->base_lr) ||
        !api__rec_qnum(c, resp, "min_ratio", API_REC_MIN_RATIO, &a->min_ratio) ||
        !api__rec_qnum(c, resp, "max_ratio", API_REC_MAX_RATIO, &a->max_ratio) ||
        !api__rec_qbool(c, resp, "remove_first", &a->remove_first) ||
        !api__rec_qbool(c, resp, "remove_last", &a->remove_last))
        return 0;
    a->map = m == NULL ? REC_LR_LINEAR : rec_lr_map_from_name(m);
    if (!(a->base_lr > 0)) {
        api__rec_bad_param(resp, "base_lr", "must be > 0");
        return 0;
    }
    if (!(a->min_ratio <= a->max_ratio)) {
        api__rec_bad_param(resp, "min_ratio", "must be <= max_ratio");
        return 0;
    }
    if (a->map < 0) {
        api__rec_bad_param(resp, "map", "must be linear, sqrt, log2 or step");
        return 0;
    }
    return 1;
}

/* Choose the tuned layers: candidates in order, rec_lr_select's removals,
 * then only layers with an alpha. Left-out candidates keep base_lr. */
int api__rec_lr_pick(struct api_rec *x, const struct api_lr_args *a, cJSON *left)
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
        } else if (api__rec_weight(y)) {
            ok = api__rec_left_out(left, y->name,
                                   y->kind == LAYER_KIND_EMBEDDING
                                       ? "embedding: TempBalance tunes linear and conv layers"
                                       : api__rec_why_not(y),
                                   a->base_lr);
        }
    }
    if (ok)
        rec_lr_select(eigs, n_cand, a->remove_first, a->remove_last, use);
    for (size_t i = 0; ok && i < n_cand; i++) {
        const struct store_layer *y = &x->rows->items[x->pick[i]];
        const char *why;

        if (use[i])
            why = api__rec_why_not(y);
        else if (i == 0 && a->remove_first)
            why = "removed: the first layer (remove_first)";
        else if (i + 1 == n_cand && a->remove_last)
            why = "removed: the last layer (remove_last)";
        else
            why = "fewer than 5 eigenvalues";
        if (why != NULL) {
            ok = api__rec_left_out(left, y->name, why, a->base_lr);
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

/* The learning-rate route's part of api__rec_answer (api_rec_run_fn). */
static int api_lr_run(struct api_rec *x, const void *args, cJSON *o, cJSON *layers, cJSON *left,
                      struct api_response *resp)
{
    const struct api_lr_args *a = args;
    struct rec_lr_opts lo;
    struct err e = {0};

    if (!api__rec_lr_pick(x, a, left))
        return -1;
    if (x->n == 0) {
        api__rec_empty(resp, x);
        return 0;
    }
    lo = (struct rec_lr_opts){.map = (enum rec_lr_map)a->map,
                              .base_lr = a->base_lr,
                              .min_ratio = a->min_ratio,
                              .max_ratio = a->max_ratio};
    if (rec_learning_rates(x->alpha, x->n, &lo, x->out, &e) != ERR_OK) {
        api__rec_refused(resp, &e);
        return 0;
    }
    return api_lr_json(x, a, o, layers) ? 1 : -1;
}

/* GET .../recommendations/learning-rates?base_lr=&min_ratio=&max_ratio=&map=
 * &remove_first=&remove_last=&preset= */
void api__rec_learning_rates(struct api_call *c, struct api_response *resp)
{
    struct api_lr_args a;
    char key[256];

    if (!api_lr_args(c, resp, &a))
        return;
    snprintf(key, sizeof(key), "lr|%.17g|%.17g|%.17g|%d|%d|%d", a.base_lr, a.min_ratio, a.max_ratio,
             a.map, a.remove_first, a.remove_last);
    api__rec_answer(c, resp, key, api_lr_run, &a);
}
