/* store_summary.h -- checkpoint summaries: per (checkpoint, settings) and
 * summary metric, the plain and parameter-weighted means over the
 * checkpoint's analysed layers (WeightWatcher's get_summary, and its
 * parameter-weighted twin; core/numerics/summary.h computes them). They are
 * written by store_layers_put in the transaction that writes the layer rows
 * (table summaries, schema version 8) and read here: one checkpoint's
 * summary, and one metric's summary history over a run's steps.
 *
 * Errors, ownership and thread-safety: as store.h. Results are caller-owned:
 * a struct store_summary is plain data; free histories with
 * store_summary_history_free().
 */
#ifndef STORAGE_STORE_SUMMARY_H
#define STORAGE_STORE_SUMMARY_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/numerics/summary.h"
#include "storage/store.h"
#include "storage/store_history.h"

/* One checkpoint's summary: every summary metric (core/numerics/summary.h). */
struct store_summary {
    char settings_hash[THASH_HEX_LEN];
    int64_t step;
    struct farms_summary sum;
};

/* The summary of (run, step) under `settings_hash` (NULL: the settings of
 * the checkpoint's most recent job); step < 0: the run's highest step that
 * has one. ERR_NOTFOUND if the run or checkpoint does not exist; *found = 0
 * (and *out untouched) when it has no summary yet. */
enum err_code store_summary_get(struct store *s, const char *run, int64_t step,
                                const char *settings_hash, struct store_summary *out, int *found,
                                struct err *e);

struct store_summary_point {
    int64_t step;
    int64_t n_layers;
    double mean;          /* NaN when no layer had the metric */
    double weighted_mean; /* NaN when no layer had the metric */
};

struct store_summary_history {
    char settings_hash[THASH_HEX_LEN];
    enum farms_summary_metric metric;
    size_t n;
    struct store_summary_point *points; /* owned, ascending step */
    char next_token[STORE_TOKEN_MAX];   /* "" on the last page */
};

/* One summary metric over the steps of q->run (GET
 * /v1/runs/{run}/summary/history?metric=): the summaries under
 * q->settings_hash (NULL: the run's most recent job's), steps in the
 * window, ascending, keyset-paginated as store_layer_history. q->layer and
 * q->metric are ignored; the metric is `metric`. ERR_NOTFOUND if no run,
 * ERR_INVAL for a malformed token. Free with store_summary_history_free(). */
enum err_code store_summary_history(struct store *s, const struct store_history_query *q,
                                    enum farms_summary_metric metric,
                                    struct store_summary_history **out, struct err *e);
void store_summary_history_free(struct store_summary_history *h);

/* One run's latest summary (store_summary_latest). */
struct store_summary_run {
    char run[STORE_RUN_MAX];
    struct store_summary s;
};

/* The latest summary (store_summary_get with step -1) of each of the `max`
 * most recently changed runs (highest version first) that has one, for
 * /metrics: *out gets a new array of *n (free()). */
enum err_code store_summary_latest(struct store *s, size_t max, struct store_summary_run **out,
                                   size_t *n, struct err *e);

#endif /* STORAGE_STORE_SUMMARY_H */
