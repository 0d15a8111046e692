/* store_history.h -- the metrics a history can show (the HISTORY fields of FARMS_RESULT_FIELDS),
 * one layer's history over steps (store_layers.c) and the run-wide heatmap
 * of one metric (store_runs.c), both keyset-paginated by step.
 *
 * Errors, ownership and thread-safety: as store.h. Histories and heatmaps
 * are caller-owned: free with store_history_free() / store_heatmap_free().
 */
#ifndef STORAGE_STORE_HISTORY_H
#define STORAGE_STORE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/numerics/farms.h"
#include "storage/store.h"

/* The history metrics: the fields of FARMS_RESULT_FIELDS marked HISTORY
 * (core/numerics/farms_fields.h), in its order; STORE_METRIC_ALPHA, ... */
#define STORE__METRIC_ENUM(member, NAME, type, key, column, json, history, ...) \
    FARMS_FIELD_WHEN_##history(STORE_METRIC_##NAME, )
enum store_metric { FARMS_RESULT_FIELDS(STORE__METRIC_ENUM) STORE_METRIC_COUNT };

/* "alpha, D, ..., entropy, ": every metric name followed by ", " (for
 * messages: print all but the last two characters). */
#define STORE__METRIC_NAME(member, NAME, type, key, column, json, history, ...) \
    FARMS_FIELD_WHEN_##history(key ", ")
#define STORE_METRIC_NAMES FARMS_RESULT_FIELDS(STORE__METRIC_NAME)

/* "alpha", ... ; "?" out of range. Never NULL. */
const char *store_metric_name(enum store_metric m);
/* The metric named exactly `s` (case-sensitive), or -1. "alpha_hat", the
 * deprecated name of alpha_weighted, is accepted as an alias. */
int store_metric_from_name(const char *s);
/* Metric `m` of `r` as a double (integers converted); NaN unless r->status
 * is ok. Cannot fail. */
double store_metric_value(const struct farms_result *r, enum store_metric m);

/* Step window for history reads: steps in [start_step, end_step]. */
#define STORE_STEP_MIN INT64_MIN
#define STORE_STEP_MAX INT64_MAX

struct store_point {
    int64_t step;
    enum farms_status status;
    enum farms_warning warning;
    double v[STORE_METRIC_COUNT]; /* indexed by enum store_metric; NaN unless status ok */
};

struct store_history {
    char settings_hash[THASH_HEX_LEN];
    size_t n;
    struct store_point *points;       /* owned, ascending step */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

/* What a history read asks for; callers fill it with designated
 * initialisers. Both step bounds are always read: give STORE_STEP_MIN /
 * STORE_STEP_MAX for an open window. */
struct store_history_query {
    const char *run;           /* run name */
    const char *layer;         /* store_layer_history: the layer; else ignored */
    enum store_metric metric;  /* store_run_history: the metric; else ignored */
    const char *settings_hash; /* NULL: the settings of the run's most recent job */
    int64_t start_step;        /* steps in [start_step, end_step] */
    int64_t end_step;
    size_t page_size;       /* 0: STORE_PAGE_DEFAULT; clamped to STORE_PAGE_MAX */
    const char *page_token; /* NULL or "": from the start; else a next_token */
};

/* One layer's history over steps (GET .../layers/{layer}/history): the rows
 * of layer q->layer of q->run under q->settings_hash, steps in the window,
 * ascending, at most q->page_size points after q->page_token. ERR_INVAL if
 * q->layer is NULL or the token is malformed; ERR_NOTFOUND if no run.
 * n == 0 if no rows.
 * Returns a new history in *out; free with store_history_free(). */
enum err_code store_layer_history(struct store *s, const struct store_history_query *q,
                                  struct store_history **out, struct err *e);
void store_history_free(struct store_history *h);

struct store_cell {
    int64_t step;
    size_t layer; /* index into store_heatmap.layers */
    enum farms_status status;
    double value; /* NaN unless status ok */
};

struct store_heatmap {
    char settings_hash[THASH_HEX_LEN];
    enum store_metric metric;
    size_t n_layers;
    char **layers;  /* owned: the layer names of this page, by first (step,
                       canonical position) */
    size_t n_steps; /* distinct steps in this page */
    size_t n_cells;
    struct store_cell *cells;         /* owned, ordered by step then canonical position */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

/* The whole run's history of metric q->metric (GET /v1/runs/{run}/history):
 * every layer x every step in the window. A page holds at most q->page_size
 * STEPS (0: STORE_PAGE_DEFAULT; clamped to STORE_PAGE_MAX), always whole
 * steps. ERR_INVAL for an unknown metric or a malformed token; other
 * fields and errors as store_layer_history (q->layer is ignored).
 * Returns a new heatmap in *out; free with store_heatmap_free(). */
enum err_code store_run_history(struct store *s, const struct store_history_query *q,
                                struct store_heatmap **out, struct err *e);
void store_heatmap_free(struct store_heatmap *h);

#endif /* STORAGE_STORE_HISTORY_H */
