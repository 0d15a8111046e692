/* test_esd_hist.c -- core/esd_hist on the reference eigenvalues of the
 * trained mlpA fc2 layer (tests/fixtures/numerics/mlpA_fc2.json, mode
 * full_xmin_mid: 256 eigenvalues, xmin at index 128): binning, the tail
 * count behind the fit line, densities and the stored text form.
 * Run from the repository root.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/numerics/esd_hist.h"
#include "tests/check.h"

#define CASE "tests/fixtures/numerics/mlpA_fc2.json"

struct ref {
    double eigs[256];
    int64_t n;
    double alpha, xmin, D;
    int64_t n_tail;
};

static void load_ref(struct ref *r)
{
    FILE *fp = fopen(CASE, "rb");
    char *text = NULL;
    long len = -1;
    cJSON *j = NULL;
    const cJSON *m, *it;

    memset(r, 0, sizeof(*r));
    if (fp != NULL && fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) > 0 &&
        (text = malloc((size_t)len)) != NULL) {
        rewind(fp);
        if (fread(text, 1, (size_t)len, fp) == (size_t)len)
            j = cJSON_ParseWithLength(text, (size_t)len);
    }
    if (fp != NULL)
        fclose(fp);
    free(text);
    CHECK(j != NULL);
    m = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "results"), "full_xmin_mid");
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(m, "eigs"))
    {
        if (r->n < 256)
            r->eigs[r->n++] = it->valuedouble;
    }
    r->alpha = cJSON_GetObjectItem(m, "alpha")->valuedouble;
    r->xmin = cJSON_GetObjectItem(m, "xmin")->valuedouble;
    r->D = cJSON_GetObjectItem(m, "D")->valuedouble;
    r->n_tail = (int64_t)cJSON_GetObjectItem(m, "n_tail")->valuedouble;
    cJSON_Delete(j);
}

static void test_bins_cover_the_spectrum(void)
{
    static struct ref r;
    const double *sets[1];
    struct esd_hist h;
    int64_t total = 0;
    double min = INFINITY, max = 0;

    load_ref(&r);
    CHECK_EQ_INT(r.n, 256);
    sets[0] = r.eigs;
    esd_hist_compute(sets, &r.n, 1,
                     &(struct esd_hist_fit){.alpha = r.alpha, .xmin = r.xmin, .D = r.D}, &h);
    for (int64_t i = 0; i < r.n; i++) {
        min = r.eigs[i] < min ? r.eigs[i] : min;
        max = r.eigs[i] > max ? r.eigs[i] : max;
    }
    CHECK_EQ_INT(h.n_bins, ESD_HIST_BINS);
    CHECK_EQ_INT(h.n_eigs, 256);
    CHECK_EQ_INT(h.n_zero, 0);
    CHECK_NEAR(h.log_lo, log10(min), 1e-12);
    CHECK_NEAR(h.log_hi, log10(max), 1e-12);
    CHECK(h.counts[0] >= 1 && h.counts[ESD_HIST_BINS - 1] >= 1); /* min and max binned */
    for (int k = 0; k < h.n_bins; k++)
        total += h.counts[k];
    CHECK_EQ_INT(total, 256);
    /* the eigenvalues >= xmin are the reference's tail */
    CHECK_EQ_INT(h.n_tail, r.n_tail);
    CHECK(h.alpha == r.alpha && h.xmin == r.xmin && h.D == r.D);
}

/* Densities integrate to the binned fraction; the fit line has the tail's
 * mass over [xmin, inf). */
static void test_densities(void)
{
    static struct ref r;
    const double *sets[1];
    struct esd_hist h;
    double mass = 0, fit_mass;

    load_ref(&r);
    sets[0] = r.eigs;
    esd_hist_compute(sets, &r.n, 1,
                     &(struct esd_hist_fit){.alpha = r.alpha, .xmin = r.xmin, .D = r.D}, &h);
    for (int k = 0; k < h.n_bins; k++) {
        double w = esd_hist_edge_hi(&h, k) - esd_hist_edge_lo(&h, k);
        CHECK(w > 0);
        mass += esd_hist_density(&h, k) * w;
    }
    CHECK_NEAR(mass, 1.0, 1e-12);
    CHECK(esd_hist_has_fit(&h));
    CHECK(isnan(esd_hist_fit_density(&h, r.xmin * 0.99)));
    CHECK_REL(esd_hist_fit_density(&h, r.xmin), 0.5 * (r.alpha - 1) / r.xmin, 1e-12);
    /* integral of the line from xmin to 1e6 xmin (trapezoids in log space) */
    fit_mass = 0;
    for (int i = 0; i < 60000; i++) {
        double a = r.xmin * pow(10, i * 1e-4), b = r.xmin * pow(10, (i + 1) * 1e-4);
        fit_mass += 0.5 * (esd_hist_fit_density(&h, a) + esd_hist_fit_density(&h, b)) * (b - a);
    }
    CHECK_NEAR(fit_mass, 0.5 * (1 - pow(1e6, 1 - r.alpha)), 1e-6);
}

static void test_zeros_and_degenerate(void)
{
    const double z[5] = {0.0, -1e-17, 1e-20, 2.0, 2.0}, one[3] = {3.0, 3.0, 3.0};
    const double *sets[2] = {z, one};
    const int64_t lens[2] = {5, 3};
    struct esd_hist h;

    esd_hist_compute(sets, lens, 2, NULL, &h);
    CHECK_EQ_INT(h.n_eigs, 8);
    CHECK_EQ_INT(h.n_zero, 3); /* <= 1e-12 * max, negatives included */
    CHECK_EQ_INT(h.counts[0], 2);
    CHECK_EQ_INT(h.counts[ESD_HIST_BINS - 1], 3);
    CHECK_EQ_INT(h.n_tail, 0);
    CHECK(!esd_hist_has_fit(&h));
    esd_hist_compute(sets + 1, lens + 1, 1,
                     &(struct esd_hist_fit){.alpha = 2.5, .xmin = 3.0, .D = 0.1},
                     &h); /* one distinct value */
    CHECK_NEAR(h.log_hi - h.log_lo, 1.0, 1e-12);
    CHECK_EQ_INT(h.counts[ESD_HIST_BINS / 2], 3);
    CHECK_EQ_INT(h.n_tail, 3);
    esd_hist_compute(sets, lens, 0, NULL, &h);
    CHECK_EQ_INT(h.n_bins, 0);
    CHECK_EQ_INT(h.n_eigs, 0);
}

static void test_text_round_trip(void)
{
    static struct ref r;
    const double *sets[1];
    struct esd_hist h, back, empty;
    char text[ESD_HIST_TEXT_MAX], small[64];
    struct err e = {0};

    load_ref(&r);
    sets[0] = r.eigs;
    esd_hist_compute(sets, &r.n, 1,
                     &(struct esd_hist_fit){.alpha = r.alpha, .xmin = r.xmin, .D = r.D}, &h);
    CHECK_EQ_INT(esd_hist_encode(&h, text, sizeof(text), &e), ERR_OK);
    CHECK_EQ_INT(esd_hist_decode(text, &back, &e), ERR_OK);
    CHECK(memcmp(back.counts, h.counts, sizeof(h.counts)) == 0);
    CHECK(back.log_lo == h.log_lo && back.log_hi == h.log_hi && back.alpha == h.alpha);
    CHECK(back.xmin == h.xmin && back.D == h.D && back.max == h.max);
    CHECK_EQ_INT(back.n_tail, h.n_tail);
    CHECK_EQ_INT(back.n_eigs, 256);
    CHECK_EQ_INT(esd_hist_encode(&h, small, sizeof(small), &e), ERR_TOOBIG);
    esd_hist_init(&empty); /* NaN fit survives as null */
    CHECK_EQ_INT(esd_hist_encode(&empty, text, sizeof(text), &e), ERR_OK);
    CHECK_EQ_INT(esd_hist_decode(text, &back, &e), ERR_OK);
    CHECK(isnan(back.alpha) && back.n_bins == 0);
    CHECK_EQ_INT(esd_hist_decode("{\"v\":2}", &back, &e), ERR_FORMAT);
    CHECK_EQ_INT(esd_hist_decode("not json", &back, &e), ERR_FORMAT);
    CHECK_EQ_INT(esd_hist_decode(NULL, &back, &e), ERR_FORMAT);
}

int main(void)
{
    test_bins_cover_the_spectrum();
    test_densities();
    test_zeros_and_degenerate();
    test_text_round_trip();
    return check_report("test_esd_hist");
}
