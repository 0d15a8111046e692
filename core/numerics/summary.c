/* summary.c -- a checkpoint's summary (see summary.h).
 *
 * The metric set is WeightWatcher 0.7.5.5's get_summary (weightwatcher.py,
 * WeightWatcher.get_summary: metrics = log_norm, alpha, alpha_weighted,
 * log_alpha_norm, log_spectral_norm, stable_rank, mp_softrank, each
 * details[metric].mean(), which pandas takes over the non-NaN values).
 * farmsd's alpha_weighted is the field alpha_hat (alpha * log10(lambda_max),
 * WeightWatcher's alpha_weighted). The parameter-weighted mean is farmsd's
 * own: sum(n_params * v) / sum(n_params) over the same layers, so a few
 * small layers do not outvote the large ones.
 *
 * Pure functions, no state: thread-safe.
 */
#include "core/numerics/summary.h"

#include <math.h>
#include <string.h>

#define SUMMARY_NAME(NAME, key) key,
static const char *const summary_names[FARMS_SUMMARY_COUNT] = {FARMS_SUMMARY_METRICS(SUMMARY_NAME)};
#undef SUMMARY_NAME

const char *farms_summary_metric_name(enum farms_summary_metric m)
{
    return (unsigned)m < FARMS_SUMMARY_COUNT ? summary_names[m] : "?";
}

int farms_summary_metric_from_name(const char *s)
{
    for (int i = 0; s != NULL && i < FARMS_SUMMARY_COUNT; i++) {
        if (strcmp(summary_names[i], s) == 0)
            return i;
    }
    return -1;
}

/* Metric `m` of an ok layer `r`: the result field of the same name. */
static double summary_value(const struct farms_result *r, enum farms_summary_metric m)
{
    switch (m) {
    case FARMS_SUMMARY_ALPHA: return r->alpha;
    case FARMS_SUMMARY_ALPHA_WEIGHTED: return r->alpha_hat;
    case FARMS_SUMMARY_LOG_NORM: return r->log_norm;
    case FARMS_SUMMARY_LOG_SPECTRAL_NORM: return r->log_spectral_norm;
    case FARMS_SUMMARY_LOG_ALPHA_NORM: return r->log_alpha_norm;
    case FARMS_SUMMARY_STABLE_RANK: return r->stable_rank;
    case FARMS_SUMMARY_MP_SOFTRANK: return r->mp_softrank;
    case FARMS_SUMMARY_COUNT: break;
    }
    return NAN;
}

void farms_summary_compute(const struct farms_result *r, const int64_t *n_params, size_t n,
                           struct farms_summary *out)
{
    double sum[FARMS_SUMMARY_COUNT] = {0}, wsum[FARMS_SUMMARY_COUNT] = {0};
    double wtot[FARMS_SUMMARY_COUNT] = {0};
    size_t i;
    int m;

    memset(out, 0, sizeof *out);
    out->n_layers = (int64_t)n;
    for (i = 0; i < n; i++) {
        double w = n_params != NULL && n_params[i] > 0 ? (double)n_params[i] : 0;

        out->n_under += r[i].warning == FARMS_WARNING_UNDER_TRAINED;
        out->n_over += r[i].warning == FARMS_WARNING_OVER_TRAINED;
        out->n_suspect += r[i].warning == FARMS_WARNING_SUSPECT_FIT;
        if (r[i].status != FARMS_STATUS_OK)
            continue;
        out->n_ok++;
        for (m = 0; m < FARMS_SUMMARY_COUNT; m++) {
            double v = summary_value(&r[i], (enum farms_summary_metric)m);

            if (!isfinite(v))
                continue;
            out->v[m].n_layers++;
            sum[m] += v;
            wsum[m] += w * v;
            wtot[m] += w;
        }
    }
    for (m = 0; m < FARMS_SUMMARY_COUNT; m++) {
        struct farms_summary_value *sv = &out->v[m];

        sv->mean = sv->n_layers > 0 ? sum[m] / (double)sv->n_layers : NAN;
        sv->weighted_mean = wtot[m] > 0 ? wsum[m] / wtot[m] : NAN;
    }
}
