/* summary.h -- a checkpoint's summary: the means WeightWatcher's
 * get_summary gives over its layers (weightwatcher.py, get_summary), plain
 * and weighted by each layer's parameter count, plus the count of layers
 * each verdict holds.
 *
 * Pure functions on caller memory: thread-safe.
 */
#ifndef CORE_NUMERICS_SUMMARY_H
#define CORE_NUMERICS_SUMMARY_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/numerics/farms.h"

/* The summary metrics, each the mean of the result field of the same name
 * (alpha_weighted: the field alpha_hat) over the layers whose status is ok
 * and whose value is finite. The list
 * (FARMS_SUMMARY_METRICS(X): X(NAME, "key")) is WeightWatcher's get_summary
 * set as far as farmsd computes the columns; the implementation names the
 * lines of weightwatcher.py it follows. */
#define FARMS_SUMMARY_METRICS(X)              \
    X(ALPHA, "alpha")                         \
    X(ALPHA_WEIGHTED, "alpha_weighted")       \
    X(LOG_NORM, "log_norm")                   \
    X(LOG_SPECTRAL_NORM, "log_spectral_norm") \
    X(LOG_ALPHA_NORM, "log_alpha_norm")       \
    X(STABLE_RANK, "stable_rank")             \
    X(MP_SOFTRANK, "mp_softrank")

#define FARMS__SUMMARY_ENUM(NAME, key) FARMS_SUMMARY_##NAME,
enum farms_summary_metric { FARMS_SUMMARY_METRICS(FARMS__SUMMARY_ENUM) FARMS_SUMMARY_COUNT };
#undef FARMS__SUMMARY_ENUM

struct farms_summary_value {
    int64_t n_layers;     /* layers that had the metric */
    double mean;          /* NaN when n_layers == 0 */
    double weighted_mean; /* by parameter count; NaN when n_layers == 0 */
};

struct farms_summary {
    int64_t n_layers;  /* layers given */
    int64_t n_ok;      /* of them with status ok */
    int64_t n_under;   /* warning under_trained */
    int64_t n_over;    /* warning over_trained */
    int64_t n_suspect; /* warning suspect_fit */
    struct farms_summary_value v[FARMS_SUMMARY_COUNT];
};

/* Summarise layers r[0..n) with parameter counts n_params[0..n) into *out:
 * for each metric, the plain mean over the ok layers with a finite value
 * (WeightWatcher's get_summary) and sum(n_params * v) / sum(n_params) over
 * the same layers (a count <= 0, or n_params NULL, weighs nothing: NaN
 * when nothing weighs). Warnings are counted over all n layers. Cannot
 * fail. */
void farms_summary_compute(const struct farms_result *r, const int64_t *n_params, size_t n,
                           struct farms_summary *out);

/* "alpha", ...; "?" out of range. Never NULL. */
const char *farms_summary_metric_name(enum farms_summary_metric m);

/* The metric named exactly `s`, or -1. */
int farms_summary_metric_from_name(const char *s);

#endif /* CORE_NUMERICS_SUMMARY_H */
