/* store_history.h -- the metrics a history can show (STORE_METRIC_MAP),
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

#define STORE_METRIC_MAP(X)                   \
    X(ALPHA, "alpha")                         \
    X(D, "D")                                 \
    X(XMIN, "xmin")                           \
    X(N_TAIL, "n_tail")                       \
    X(NUM_EIGS, "num_eigs")                   \
    X(WINDOWS, "windows")                     \
    X(SPECTRAL_NORM, "spectral_norm")         \
    X(NORM, "norm")                           \
    X(ALPHA_HAT, "alpha_hat")                 \
    X(STABLE_RANK, "stable_rank")             \
    X(NORM_STABLE_RANK, "norm_stable_rank")   \
    X(LOG_NORM, "log_norm")                   \
    X(LOG_SPECTRAL_NORM, "log_spectral_norm") \
    X(ENTROPY, "entropy")

enum store_metric {
#define X(name, str) STORE_METRIC_##name,
    STORE_METRIC_MAP(X)
#undef X
        STORE_METRIC_COUNT
};

/* "alpha", ... ; "?" out of range. Never NULL. */
const char *store_metric_name(enum store_metric m);
/* The metric named exactly `s` (case-sensitive), or -1. */
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
    char settings_hash[STORE_HASH_LEN];
    size_t n;
    struct store_point *points;       /* owned, ascending step */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

/* One layer's history over steps (GET .../layers/{layer}/history): the rows
 * of layer `layer` of `run` under `settings_hash` (NULL: the run's most
 * recent job's), steps in [start_step, end_step], ascending, at most
 * page_size points (0: STORE_PAGE_DEFAULT; clamped to STORE_PAGE_MAX) after
 * `page_token` (NULL or "": from the start). ERR_NOTFOUND if no run;
 * ERR_INVAL for a malformed token. n == 0 if no rows.
 * Returns a new history in *out; free with store_history_free(). */
enum err_code store_layer_history(struct store *s, const char *run, const char *layer,
                                  const char *settings_hash, int64_t start_step, int64_t end_step,
                                  size_t page_size, const char *page_token,
                                  struct store_history **out, struct err *e);
void store_history_free(struct store_history *h);

struct store_cell {
    int64_t step;
    size_t layer; /* index into store_heatmap.layers */
    enum farms_status status;
    double value; /* NaN unless status ok */
};

struct store_heatmap {
    char settings_hash[STORE_HASH_LEN];
    enum store_metric metric;
    size_t n_layers;
    char **layers;  /* owned: the layer names of this page, by first (step,
                       canonical position) */
    size_t n_steps; /* distinct steps in this page */
    size_t n_cells;
    struct store_cell *cells;         /* owned, ordered by step then canonical position */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

/* The whole run's history of one metric (GET /v1/runs/{run}/history): every
 * layer x every step in [start_step, end_step]. A page holds at most
 * page_size STEPS (0: STORE_PAGE_DEFAULT; clamped to STORE_PAGE_MAX), always
 * whole steps. Other arguments as store_layer_history.
 * Returns a new heatmap in *out; free with store_heatmap_free(). */
enum err_code store_run_history(struct store *s, const char *run, enum store_metric metric,
                                const char *settings_hash, int64_t start_step, int64_t end_step,
                                size_t page_size, const char *page_token,
                                struct store_heatmap **out, struct err *e);
void store_heatmap_free(struct store_heatmap *h);

#endif /* STORAGE_STORE_HISTORY_H */
