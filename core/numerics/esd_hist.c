/* esd_hist.c -- see esd_hist.h. */
#include "core/numerics/esd_hist.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#define ESD_HIST_TEXT_VERSION 1

void esd_hist_init(struct esd_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->max = h->alpha = h->xmin = h->D = NAN;
}

/* Bin of log10 value lx (clamped: the top value lands in the last bin). */
static int esd_hist_bin(const struct esd_hist *h, double lx)
{
    double k = floor((lx - h->log_lo) * h->n_bins / (h->log_hi - h->log_lo));

    if (!(k >= 0))
        return 0;
    return k >= h->n_bins ? h->n_bins - 1 : (int)k;
}

void esd_hist_compute(const double *const *sets, const int64_t *lens, size_t n_sets,
                      const struct esd_hist_fit *fit, struct esd_hist *h)
{
    double max = -INFINITY, min_pos = INFINITY, zero;
    double xmin = fit != NULL ? fit->xmin : NAN;

    esd_hist_init(h);
    h->alpha = fit != NULL ? fit->alpha : NAN;
    h->xmin = xmin;
    h->D = fit != NULL ? fit->D : NAN;
    for (size_t s = 0; s < n_sets; s++) {
        for (int64_t i = 0; i < lens[s]; i++) {
            max = sets[s][i] > max ? sets[s][i] : max;
            h->n_eigs++;
        }
    }
    if (h->n_eigs == 0)
        return;
    h->max = max;
    zero = max > 0 ? max * ESD_HIST_ZERO_REL : 0.0;
    for (size_t s = 0; s < n_sets; s++) {
        for (int64_t i = 0; i < lens[s]; i++) {
            double x = sets[s][i];
            if (x <= zero)
                h->n_zero++;
            else if (x < min_pos)
                min_pos = x;
            h->n_tail += isfinite(xmin) && x >= xmin;
        }
    }
    if (h->n_zero == h->n_eigs)
        return;
    h->n_bins = ESD_HIST_BINS;
    h->log_lo = log10(min_pos);
    h->log_hi = log10(max);
    if (!(h->log_hi - h->log_lo > 1e-9)) { /* one value: a decade around it */
        h->log_lo -= 0.5;
        h->log_hi += 0.5;
    }
    for (size_t s = 0; s < n_sets; s++)
        for (int64_t i = 0; i < lens[s]; i++)
            if (sets[s][i] > zero)
                h->counts[esd_hist_bin(h, log10(sets[s][i]))]++;
}

double esd_hist_edge_lo(const struct esd_hist *h, int k)
{
    return pow(10.0, h->log_lo + (h->log_hi - h->log_lo) * k / h->n_bins);
}

double esd_hist_edge_hi(const struct esd_hist *h, int k)
{
    return k + 1 == h->n_bins ? pow(10.0, h->log_hi) : esd_hist_edge_lo(h, k + 1);
}

double esd_hist_density(const struct esd_hist *h, int k)
{
    double w = esd_hist_edge_hi(h, k) - esd_hist_edge_lo(h, k);

    return h->n_eigs > 0 && w > 0 ? (double)h->counts[k] / ((double)h->n_eigs * w) : 0.0;
}

int esd_hist_has_fit(const struct esd_hist *h)
{
    return isfinite(h->alpha) && h->alpha > 1 && isfinite(h->xmin) && h->xmin > 0 &&
           h->n_tail > 0 && h->n_eigs > 0;
}

double esd_hist_fit_density(const struct esd_hist *h, double x)
{
    if (!esd_hist_has_fit(h) || !(x >= h->xmin))
        return NAN;
    return (double)h->n_tail / (double)h->n_eigs * (h->alpha - 1) / h->xmin *
           pow(x / h->xmin, -h->alpha);
}

/* --- Text form ------------------------------------------------------------------ */

/* Append to buf at *used; 0 when it does not fit. */
static int esd_hist_put(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int esd_hist_put(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*used >= len)
        return 0;
    va_start(ap, fmt);
    n = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - *used)
        return 0;
    *used += (size_t)n;
    return 1;
}

/* A double as exact JSON text (%.17g round-trips; NaN and infinities as
 * null). */
static int esd_hist_put_num(char *buf, size_t len, size_t *used, const char *key, double v)
{
    if (!isfinite(v))
        return esd_hist_put(buf, len, used, ",\"%s\":null", key);
    return esd_hist_put(buf, len, used, ",\"%s\":%.17g", key, v);
}

enum err_code esd_hist_encode(const struct esd_hist *h, char *buf, size_t len, struct err *e)
{
    size_t used = 0;
    int ok =
        esd_hist_put(buf, len, &used, "{\"v\":%d,\"bins\":%d", ESD_HIST_TEXT_VERSION, h->n_bins);

    ok = ok && esd_hist_put_num(buf, len, &used, "lo", h->log_lo);
    ok = ok && esd_hist_put_num(buf, len, &used, "hi", h->log_hi);
    ok = ok && esd_hist_put(buf, len, &used, ",\"counts\":[");
    for (int k = 0; ok && k < h->n_bins; k++)
        ok = esd_hist_put(buf, len, &used, "%s%lld", k ? "," : "", (long long)h->counts[k]);
    ok = ok && esd_hist_put(buf, len, &used, "],\"n\":%lld,\"zero\":%lld,\"tail\":%lld",
                            (long long)h->n_eigs, (long long)h->n_zero, (long long)h->n_tail);
    ok = ok && esd_hist_put_num(buf, len, &used, "max", h->max);
    ok = ok && esd_hist_put_num(buf, len, &used, "alpha", h->alpha);
    ok = ok && esd_hist_put_num(buf, len, &used, "xmin", h->xmin);
    ok = ok && esd_hist_put_num(buf, len, &used, "D", h->D);
    ok = ok && esd_hist_put(buf, len, &used, "}");
    if (!ok)
        return err_set(e, ERR_TOOBIG, "histogram text longer than %zu bytes", len);
    return ERR_OK;
}

/* Number member `k` of `o`; null (how NaN was written) -> NaN. */
static int esd_hist_num(const cJSON *o, const char *k, double *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);

    if (cJSON_IsNull(it)) {
        *v = NAN;
        return 1;
    }
    *v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    return cJSON_IsNumber(it);
}

static int esd_hist_count(const cJSON *o, const char *k, int64_t *v)
{
    double d;

    if (!esd_hist_num(o, k, &d) || !(d >= 0 && d <= 9.0e15) || d != floor(d))
        return 0;
    *v = (int64_t)d;
    return 1;
}

enum err_code esd_hist_decode(const char *text, struct esd_hist *h, struct err *e)
{
    cJSON *o = text != NULL ? cJSON_Parse(text) : NULL;
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(o, "counts"), *it;
    double v = 0, bins = -1;
    int ok, k = 0;

    esd_hist_init(h);
    ok = o != NULL && esd_hist_num(o, "v", &v) && v == ESD_HIST_TEXT_VERSION &&
         esd_hist_num(o, "bins", &bins) && (bins == 0 || bins == ESD_HIST_BINS) &&
         cJSON_GetArraySize(counts) == (int)bins && esd_hist_num(o, "lo", &h->log_lo) &&
         esd_hist_num(o, "hi", &h->log_hi) && esd_hist_count(o, "n", &h->n_eigs) &&
         esd_hist_count(o, "zero", &h->n_zero) && esd_hist_num(o, "max", &h->max) &&
         esd_hist_num(o, "alpha", &h->alpha) && esd_hist_num(o, "xmin", &h->xmin) &&
         esd_hist_num(o, "D", &h->D) && esd_hist_count(o, "tail", &h->n_tail);
    h->n_bins = (int)bins;
    cJSON_ArrayForEach(it, counts)
    {
        double c = cJSON_IsNumber(it) ? it->valuedouble : -1;
        ok = ok && c >= 0 && c == floor(c) && k < ESD_HIST_BINS;
        if (ok)
            h->counts[k++] = (int64_t)c;
    }
    ok = ok && (h->n_bins == 0 || h->log_hi > h->log_lo);
    cJSON_Delete(o);
    if (!ok) {
        esd_hist_init(h);
        return err_set(e, ERR_FORMAT, "stored histogram is not readable");
    }
    return ERR_OK;
}
