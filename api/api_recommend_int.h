/* api_recommend_int.h -- internals shared by the recommendation routes:
 * api_recommend.c (what both routes share, AlphaPruning sparsity and
 * api_alert_recommend) and api_recommend_lr.c (TempBalance learning rates),
 * and the two handlers for api.c's route table.
 *
 * Internal to api/ (not for server/). Ownership: a struct api_rec owns its
 * rows and arrays (api__rec_free) unless a comment says borrowed; cJSON
 * trees passed in are the caller's. Thread-safety: as api_int.h (one call
 * per request thread).
 */
#ifndef API_API_RECOMMEND_INT_H
#define API_API_RECOMMEND_INT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "api/api_int.h"
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

/* The learning-rate route's parameters. */
struct api_lr_args {
    double base_lr, min_ratio, max_ratio;
    int map, remove_first, remove_last;
};

/* The two routes (api.c's table): AlphaPruning sparsity (api_recommend.c) and
 * TempBalance learning rates (api_recommend_lr.c). */
api_handler_fn api__rec_sparsity, api__rec_learning_rates;

/* --- Shared by both routes (api_recommend.c) ------------------------------------- */

/* Free what x owns (not x itself). Cannot fail. */
void api__rec_free(struct api_rec *x);

/* A 400 for query parameter `name`: "parameter 'name': why". */
void api__rec_bad_param(struct api_response *resp, const char *name, const char *why);

/* Number parameter `key` (def when absent): 1, or 0 with a 400. */
int api__rec_qnum(struct api_call *c, struct api_response *resp, const char *key, double def,
                  double *out);

/* true|false parameter `key` (false when absent): 1, or 0 with a 400. */
int api__rec_qbool(struct api_call *c, struct api_response *resp, const char *key, int *out);

/* Allocate x's arrays for x->rows->n layers: 1, or 0 when out of memory. */
int api__rec_alloc(struct api_rec *x);

/* A weight matrix: the rows these endpoints talk about. */
int api__rec_weight(const struct store_layer *y);

/* Why row y takes no part (NULL: it does): not analysed ok or no alpha.
 * Borrowed from y or static. */
const char *api__rec_why_not(const struct store_layer *y);

/* Append {"name", "reason"[, "lr" when lr > 0]} to `arr`: 1, or 0 on NOMEM. */
int api__rec_left_out(cJSON *arr, const char *name, const char *why, double lr);

/* A route's own part, after the rows are loaded and the answer's head is
 * built: pick the layers, compute, fill `o` and `layers` (left-out layers
 * under `left`). 1 when `o` is the answer, 0 when resp already holds it
 * (409, 400), -1 when out of memory. */
typedef int api_rec_run_fn(struct api_rec *x, const void *args, cJSON *o, cJSON *layers,
                           cJSON *left, struct api_response *resp);

/* Both routes' frame: step, preset, run version, ETag over `key` (304),
 * rows, then run(x, args, ...) and its answer (200, or the nomem problem). */
void api__rec_answer(struct api_call *c, struct api_response *resp, const char *key,
                     api_rec_run_fn *run, const void *args);

/* 409 when the checkpoint has nothing to work on. */
void api__rec_empty(struct api_response *resp, const struct api_rec *x);

/* A refusal of core/recommend (degenerate alphas): 400. */
void api__rec_refused(struct api_response *resp, struct err *e);

/* --- Learning rates (api_recommend_lr.c) ----------------------------------------- */

/* Choose the tuned layers: candidates in order, rec_lr_select's removals,
 * then only layers with an alpha (into x->pick, x->alpha, x->n). Left-out
 * candidates keep base_lr. 0 when out of memory. */
int api__rec_lr_pick(struct api_rec *x, const struct api_lr_args *a, cJSON *left);

#endif /* API_API_RECOMMEND_INT_H */
