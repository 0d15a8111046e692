/* farms_metrics.c -- the end of a FARMS plan: pool and sort each ESD, fit it
 * (pl_fit, docs/numerics.md, Power-law fit), per-layer metrics (Metrics, conv FARMS means over
 * divisions) and the WeightWatcher columns without the MP fit.
 * Also farms_analyze, the single-threaded one-call driver. See farms.h.
 */
#include "core/numerics/farms.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/numerics/esd.h"
#include "core/numerics/farms_int.h"
#include "core/numerics/farms_ww.h"
#include "core/numerics/powerlaw.h"

/* WeightWatcher WEAK_RANK_LOSS_TOLERANCE (constants.py), on eigenvalues. */
#define FARMS_WEAK_RANK_TOL 1e-6

static int farms_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sort ESD d and fit it. Sets *bad if it holds non-finite values. */
static enum err_code farms_fit_esd(struct farms_plan *pl, int64_t d, int *bad, struct err *e)
{
    int64_t n = pl->slots_per_esd * pl->gram_n;
    double *x = pl->eigs + d * n, sum = 0;
    struct farms_esd *r = &pl->esd[d];
    struct pl_params pp;

    memset(r, 0, sizeof(*r));
    r->num_eigs = n;
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(x[k]))
            *bad = 1;
    if (*bad)
        return ERR_OK;
    qsort(x, (size_t)n, sizeof(*x), farms_cmp_double);
    for (int64_t k = 0; k < n; k++)
        sum += x[k];
    r->spectral_norm = n > 0 ? x[n - 1] : 0;
    r->norm = sum;
    r->stable_rank = sum / r->spectral_norm;
    r->norm_stable_rank = n > 0 ? sum / (double)n : NAN;
    pl_params_default(&pp);
    pp.xmin = pl->p.xmin;
    pp.xmin_pos = pl->p.xmin_pos;
    pp.bins = pl->p.bins;
    pp.filter_zeros = pl->p.filter_zeros;
    pp.eig_threshold = pl->p.eig_threshold;
    enum err_code rc = pl_fit(x, (size_t)n, &pp, &r->fit, e);
    if (rc)
        return rc;
    r->alpha_hat = r->fit.alpha * log10(r->spectral_norm);
    return ERR_OK;
}

/* The larger side of the decomposed matrices (WeightWatcher's N). */
static int64_t farms_big_side(const struct farms_plan *pl)
{
    return pl->lay.window_h > pl->lay.window_w ? pl->lay.window_h : pl->lay.window_w;
}

/* Per-slice columns, read before the ESDs are sorted (a slot is one window
 * or kernel-position slice, its gram_n values ascending): WeightWatcher
 * combined_eigenvalues' rank_loss (sum of len - calc_rank_loss's rank) and
 * sv_min (the max over slices of each slice's smallest singular value). */
static void farms_slot_columns(const struct farms_plan *pl, struct farms_result *out)
{
    int64_t gn = pl->gram_n, n_slots = gn > 0 ? pl->n_eigs / gn : 0, big = farms_big_side(pl);
    double min2 = 0;

    out->rank_loss = 0;
    for (int64_t k = 0; k < n_slots; k++) {
        const double *x = pl->eigs + k * gn;
        double tol = sqrt(x[gn - 1]) * (double)big * DBL_EPSILON; /* RMT_Util matrix_rank */
        int64_t rank = 0;
        for (int64_t i = 0; i < gn; i++)
            rank += sqrt(x[i]) > tol;
        out->rank_loss += gn - rank;
        min2 = x[0] > min2 ? x[0] : min2;
    }
    out->sv_min = sqrt(min2);
}

/* matrix_rank, entropy, weak_rank_loss and sv_max over every eigenvalue of
 * the layer (WeightWatcher apply_norm_metrics / apply_esd). */
static void farms_ww_columns(const struct farms_plan *pl, struct farms_result *out)
{
    int64_t n = pl->n_eigs, rank = 0, weak = 0;
    double lmax = 0, sum = 0, tol, h = 0;

    for (int64_t k = 0; k < n; k++) {
        lmax = pl->eigs[k] > lmax ? pl->eigs[k] : lmax;
        sum += pl->eigs[k];
        weak += pl->eigs[k] < FARMS_WEAK_RANK_TOL;
    }
    tol = sqrt(lmax) * (double)farms_big_side(pl) * DBL_EPSILON;
    for (int64_t k = 0; k < n; k++) {
        double p = pl->eigs[k] / sum + 1e-10;
        rank += sqrt(pl->eigs[k]) > tol;
        h -= p * log(p);
    }
    out->matrix_rank = rank;
    out->entropy = h / log((double)rank + 1e-10);
    out->weak_rank_loss = weak;
    out->sv_max = sqrt(lmax);
}

/* The fit's WeightWatcher columns of ESD d (ascending x[0..n)): sigma
 * (WW_powerlaw fit_power_law: (alpha - 1) / sqrt(n_tail)), num_pl_spikes
 * (fit_powerlaw: count(lambda >= xmin)), log_alpha_norm
 * (apply_norm_metrics: log10(sum lambda^alpha)). */
static void farms_fit_columns(const struct farms_esd *r, const double *x, int64_t n, double *sigma,
                              int64_t *spikes, double *lan)
{
    double s = 0;
    int64_t k = 0;

    while (k < n && x[k] < r->fit.xmin)
        k++;
    *spikes = n - k;
    *sigma = (r->fit.alpha - 1) / sqrt((double)r->fit.n_tail);
    for (int64_t i = 0; i < n; i++)
        s += pow(x[i], r->fit.alpha);
    *lan = s > 0 ? log10(s) : NAN; /* no eigenvalue above 0: no norm to take */
}

/* sigma, num_pl_spikes, log_alpha_norm: the single ESD's, or for conv
 * FARMS the means over divisions of sigma and log_alpha_norm and
 * num_pl_spikes -1 (as n_tail). */
static void farms_layer_fit_columns(const struct farms_plan *pl, struct farms_result *out)
{
    int64_t n = pl->slots_per_esd * pl->gram_n, spikes;
    double m = (double)pl->n_esd, sigma, lan;

    out->sigma = out->log_alpha_norm = 0;
    for (int64_t d = 0; d < pl->n_esd; d++) {
        farms_fit_columns(&pl->esd[d], pl->eigs + d * n, n, &sigma, &spikes, &lan);
        out->sigma += sigma / m;
        out->log_alpha_norm += lan / m;
        out->num_pl_spikes = pl->n_esd == 1 ? spikes : -1;
    }
}

/* The settings' extras: mp_fit (one ESD: dense and conv without divisions)
 * into the MP columns; randomize: rand_distance (WeightWatcher
 * apply_random_esd: jensen_shannon_distance of the ascending ESD and the
 * ascending randomized ESD, all pooled eigenvalues) and num_traps (the
 * randomized ESD's MP fit's spikes, WeightWatcher's rand_num_spikes of
 * apply_mp_fit(random=True): eigenvalues a random matrix should not have). */
static enum err_code farms_ww_extras(struct farms_plan *pl, struct farms_result *out, struct err *e)
{
    struct farms_mp mp;
    enum err_code rc = ERR_OK;
    int64_t n = pl->n_eigs, big = farms_big_side(pl);
    double *pooled = NULL;
    const double *x = pl->eigs;

    if (pl->p.mp_fit && pl->n_esd == 1) {
        rc = farms_mp_fit(pl->eigs, n, big, pl->gram_n, &mp, e);
        if (rc)
            return rc;
        out->num_spikes = mp.num_spikes;
        out->sigma_mp = mp.sigma_mp;
        out->mp_softrank = mp.mp_softrank;
        out->bulk_min = mp.bulk_min;
        out->bulk_max = mp.bulk_max;
        out->w_scale = mp.w_scale;
    }
    if (pl->rand_eigs == NULL)
        return ERR_OK;
    qsort(pl->rand_eigs, (size_t)n, sizeof(double), farms_cmp_double);
    if (pl->n_esd > 1) { /* conv divisions: each ESD is sorted, the pool is not */
        pooled = malloc((size_t)n * sizeof(double));
        if (pooled == NULL)
            return err_set(e, ERR_NOMEM, "%lld pooled eigenvalues", (long long)n);
        memcpy(pooled, pl->eigs, (size_t)n * sizeof(double));
        qsort(pooled, (size_t)n, sizeof(double), farms_cmp_double);
        x = pooled;
    }
    out->rand_distance = farms_js_distance(x, pl->rand_eigs, n);
    rc = farms_mp_fit(pl->rand_eigs, n, big, pl->gram_n, &mp, e);
    if (rc == ERR_OK)
        out->num_traps = mp.num_spikes;
    free(pooled);
    return rc;
}

static enum farms_warning farms_warn(const struct farms_plan *pl, const struct farms_result *r)
{
    int64_t min_tail = INT64_MAX;

    if (r->alpha > 6)
        return FARMS_WARNING_UNDER_TRAINED;
    if (r->alpha < 2)
        return FARMS_WARNING_OVER_TRAINED;
    for (int64_t d = 0; d < pl->n_esd; d++)
        if (pl->esd[d].fit.n_tail < min_tail)
            min_tail = pl->esd[d].fit.n_tail;
    if (min_tail < FARMS_SUSPECT_MIN_TAIL || r->D > FARMS_SUSPECT_MAX_D)
        return FARMS_WARNING_SUSPECT_FIT;
    return FARMS_WARNING_NONE;
}

/* xmax (WeightWatcher's name): the largest eigenvalue of fitted ESD d, sorted
 * ascending by farms_fit_esd. The same number as that ESD's spectral_norm
 * (both are taken from the ESD that is fitted, not from the whole matrix as
 * WeightWatcher's spectral_norm is); filter_zeros drops only small values. */
static double farms_esd_xmax(const struct farms_plan *pl, int64_t d)
{
    int64_t n = pl->slots_per_esd * pl->gram_n;

    return n > 0 ? pl->eigs[d * n + n - 1] : NAN;
}

/* Layer values: the single ESD's, or the means over conv divisions. */
static void farms_layer_values(const struct farms_plan *pl, struct farms_result *out)
{
    double m = (double)pl->n_esd;

    if (pl->n_esd == 1) {
        const struct farms_esd *r = &pl->esd[0];
        out->alpha = r->fit.alpha;
        out->D = r->fit.D;
        out->xmin = r->fit.xmin;
        out->xmin_index = r->fit.xmin_index;
        out->n_tail = r->fit.n_tail;
        out->n_fitted = r->fit.n_fitted;
        out->spectral_norm = r->spectral_norm;
        out->norm = r->norm;
        out->alpha_hat = r->alpha_hat;
        out->stable_rank = r->stable_rank;
        out->norm_stable_rank = r->norm_stable_rank;
        out->xmax = farms_esd_xmax(pl, 0);
        return;
    }
    out->xmin_index = out->n_tail = -1;
    out->xmax = 0;
    for (int64_t d = 0; d < pl->n_esd; d++) {
        const struct farms_esd *r = &pl->esd[d];
        out->alpha += r->fit.alpha / m;
        out->D += r->fit.D / m;
        out->xmin += r->fit.xmin / m;
        out->n_fitted += r->fit.n_fitted;
        out->spectral_norm += r->spectral_norm / m;
        out->norm += r->norm / m;
        out->alpha_hat += r->alpha_hat / m;
        out->stable_rank += r->stable_rank / m;
        out->norm_stable_rank += r->norm_stable_rank / m;
        out->xmax += farms_esd_xmax(pl, d) / m;
    }
}

/* A result with the plan's layout and nothing computed yet: NaN for the
 * REAL values, -1 for the counts that have no value yet. */
static void farms_result_blank(const struct farms_plan *plan, struct farms_result *out)
{
    memset(out, 0, sizeof(*out));
    out->layout = plan->lay;
    out->windows = plan->lay.windows;
    out->num_eigs = plan->n_eigs;
    out->alpha = out->D = out->xmin = out->alpha_hat = out->xmax = NAN;
    out->sigma = out->log_alpha_norm = out->sv_max = out->sv_min = NAN;
    out->sigma_mp = out->mp_softrank = out->bulk_min = out->bulk_max = out->w_scale = NAN;
    out->rand_distance = NAN;
    out->xmin_index = out->n_tail = -1;
    out->num_pl_spikes = out->rank_loss = out->weak_rank_loss = out->num_spikes = -1;
    out->num_traps = -1;
}

enum err_code farms_plan_finish(struct farms_plan *plan, struct farms_result *out, struct err *e)
{
    enum err_code rc;
    int bad = 0;

    farms_result_blank(plan, out);
    if (plan->skipped) {
        out->status = FARMS_STATUS_SKIPPED;
        snprintf(out->reason, sizeof(out->reason), "%s", plan->reason);
        plan->finished = 1;
        return ERR_OK;
    }
    farms_slot_columns(plan, out);
    for (int64_t d = 0; d < plan->n_esd && !bad; d++) {
        rc = farms_fit_esd(plan, d, &bad, e);
        if (rc)
            return rc;
    }
    plan->finished = 1;
    if (bad) {
        out->status = FARMS_STATUS_FAILED;
        snprintf(out->reason, sizeof(out->reason),
                 "non-finite eigenvalues (NaN or Inf in the weights)");
        return ERR_OK;
    }
    out->alpha = out->D = out->xmin = out->alpha_hat = 0;
    farms_layer_values(plan, out);
    out->log_norm = log10(out->norm);
    out->log_spectral_norm = log10(out->spectral_norm);
    farms_ww_columns(plan, out);
    for (int64_t d = 0; d < plan->n_esd; d++) {
        if (plan->esd[d].fit.status == PL_STATUS_OK)
            continue;
        out->status = FARMS_STATUS_FAILED;
        if (plan->n_esd == 1)
            snprintf(out->reason, sizeof(out->reason), "%s", plan->esd[d].fit.reason);
        else
            snprintf(out->reason, sizeof(out->reason), "division %lld: %s", (long long)d,
                     plan->esd[d].fit.reason);
        out->alpha = out->D = out->alpha_hat = NAN;
        return ERR_OK;
    }
    farms_layer_fit_columns(plan, out);
    rc = farms_ww_extras(plan, out, e);
    if (rc)
        return rc;
    out->status = FARMS_STATUS_OK;
    out->warning = farms_warn(plan, out);
    return ERR_OK;
}

int64_t farms_plan_n_esd(const struct farms_plan *plan)
{
    return plan->n_esd;
}

const struct farms_esd *farms_plan_esd(const struct farms_plan *plan, int64_t d)
{
    if (!plan->finished || plan->skipped || d < 0 || d >= plan->n_esd)
        return NULL;
    return &plan->esd[d];
}

const double *farms_plan_eigs(const struct farms_plan *plan, int64_t d, int64_t *n)
{
    *n = 0;
    if (!plan->finished || plan->skipped || d < 0 || d >= plan->n_esd)
        return NULL;
    *n = plan->slots_per_esd * plan->gram_n;
    return plan->eigs + d * *n;
}

enum err_code farms_analyze(const struct farms_params *p, const struct farms_shape *s,
                            const double *w, struct farms_result *out, struct err *e)
{
    enum err_code rc;
    struct farms_plan *plan = NULL;
    struct esd_ws *ws = NULL;
    int64_t max_n, max_gather;

    memset(out, 0, sizeof(*out));
    rc = farms_plan_new(p, s, 1, &plan, e);
    if (rc)
        goto out;
    if (farms_plan_n_units(plan) > 0) {
        farms_plan_ws_need(plan, &max_n, &max_gather);
        rc = esd_ws_new(max_n, max_gather, &ws, e);
        if (rc)
            goto out;
    }
    for (int64_t u = 0; u < farms_plan_n_units(plan); u++) {
        rc = farms_unit_run(plan, u, w, ws, e);
        if (rc)
            goto out;
    }
    rc = farms_plan_finish(plan, out, e);
out:
    esd_ws_free(ws);
    farms_plan_free(plan);
    return rc;
}

const char *farms_status_name(enum farms_status s)
{
    switch (s) {
    case FARMS_STATUS_OK: return "ok";
    case FARMS_STATUS_SKIPPED: return "skipped";
    case FARMS_STATUS_FAILED: return "failed";
    }
    return "unknown";
}

const char *farms_warning_name(enum farms_warning w)
{
    switch (w) {
    case FARMS_WARNING_NONE: return "none";
    case FARMS_WARNING_UNDER_TRAINED: return "under_trained";
    case FARMS_WARNING_OVER_TRAINED: return "over_trained";
    case FARMS_WARNING_SUSPECT_FIT: return "suspect_fit";
    }
    return "unknown";
}
