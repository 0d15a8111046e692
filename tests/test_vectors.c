/* test_vectors.c -- the FARMS engine against every reference vector in
 * tests/fixtures/numerics (README.md there: schema and tolerances).
 *
 * For every case of index.json and every mode in its `results`, the mode's
 * `params` become farms_params, the engine runs on the case's tensor, and
 * every reported field is compared: layout, skipped, num_eigs, xmin_index,
 * n_tail exactly; alpha 1e-3 relative; D 1e-4 absolute; xmin 1e-4 relative;
 * spectral_norm, norm, stable_rank, norm_stable_rank 1e-4 relative;
 * alpha_hat 1e-3 * max(1, |alpha_hat|); eigenvalues |d| <= 5e-5 * max.
 * precision_sensitive results may match either the reference or its `f64`
 * values (D then within 1e-3). The `weightwatcher` block is compared with
 * the `full` preset and mp_fit=true, every column of it (tolerances at
 * check_ww_columns). The number of case x mode checks must equal the number
 * of results in the files, so nothing is skipped silently.
 *
 * The safetensors reader below is a minimal TEST-ONLY one (the fixtures are
 * hand-written, contiguous files); the product reader is core/safetensors.c.
 */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/err.h"
#include "core/numerics/farms.h"
#include "core/numerics/preset.h"
#include "tests/check.h"
#include "tests/file_util.h"

#define DIR "tests/fixtures/numerics/"

static int n_results_present, n_results_checked, n_ww_present, n_ww_checked, n_ww_skipped;

/* --- test-only file helpers ------------------------------------------------ */

static cJSON *load_json(const char *name)
{
    char path[512];
    size_t len;
    snprintf(path, sizeof(path), DIR "%s", name);
    char *text = fu_read(path, &len);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(j != NULL);
    return j;
}

/* Tensor `name` of a safetensors file as float64 (test-only reader). */
static double *load_tensor(const char *file, const char *name, int64_t *shape, int *n_dims)
{
    char path[512], *buf, *hdr;
    size_t len;
    uint64_t hlen = 0;
    double *out = NULL;

    snprintf(path, sizeof(path), DIR "%s", file);
    buf = fu_read(path, &len);
    if (buf == NULL || len < 8)
        goto fail;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | (unsigned char)buf[i];
    if (hlen > len - 8)
        goto fail;
    hdr = malloc(hlen + 1);
    memcpy(hdr, buf + 8, hlen);
    hdr[hlen] = '\0';
    cJSON *h = cJSON_Parse(hdr), *t = cJSON_GetObjectItem(h, name);
    free(hdr);
    cJSON *dt = cJSON_GetObjectItem(t, "dtype"), *sh = cJSON_GetObjectItem(t, "shape");
    cJSON *off = cJSON_GetObjectItem(t, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || cJSON_GetArraySize(off) != 2) {
        cJSON_Delete(h);
        goto fail;
    }
    int code = dtype_from_code(dt->valuestring, strlen(dt->valuestring));
    size_t n = 1, b0 = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
    size_t b1 = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
    *n_dims = cJSON_GetArraySize(sh);
    for (int d = 0; d < *n_dims && d < 4; d++)
        n *= (size_t)(shape[d] = (int64_t)cJSON_GetArrayItem(sh, d)->valuedouble);
    cJSON_Delete(h);
    if (code < 0 || !dtype_is_analysable((enum dtype)code) || *n_dims > 4 ||
        b1 - b0 != n * dtype_size((enum dtype)code) || 8 + hlen + b1 > len)
        goto fail;
    out = malloc(n * sizeof(double));
    dtype_to_f64((enum dtype)code, buf + 8 + hlen + b0, n, out);
fail:
    free(buf);
    CHECK(out != NULL);
    return out;
}

/* --- JSON accessors ---------------------------------------------------------- */

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) {
        fprintf(stderr, "vector field '%s' missing\n", key);
        CHECK(!"vector field present");
        return NAN;
    }
    return v->valuedouble;
}

static int flag(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* --- tolerance checks ----------------------------------------------------------- */

static const char *cur_case, *cur_mode, *cur_field;

static void report(int ok, double got, double want, double alt)
{
    check_n_run++;
    if (!ok) {
        check_n_failed++;
        fprintf(stderr, "%s/%s: %s = %.10g, want %.10g (f64 %.10g)\n", cur_case, cur_mode,
                cur_field, got, want, alt);
    }
}

static void near_rel(const char *field, double got, double want, double alt, double rel)
{
    cur_field = field;
    report(fabs(got - want) <= rel * fabs(want) ||
               (!isnan(alt) && fabs(got - alt) <= rel * fabs(alt)),
           got, want, alt);
}

static void near_abs(const char *field, double got, double want, double alt, double tol)
{
    cur_field = field;
    report(fabs(got - want) <= tol || (!isnan(alt) && fabs(got - alt) <= tol), got, want, alt);
}

static void exact(const char *field, double got, double want, double alt)
{
    cur_field = field;
    report(got == want || (!isnan(alt) && got == alt), got, want, alt);
}

static void check_eigs(const cJSON *arr, const double *got, int64_t n)
{
    double mx = 0, dmax = 0;
    if (arr == NULL)
        return;
    exact("eigs count", (double)n, cJSON_GetArraySize(arr), NAN);
    if (cJSON_GetArraySize(arr) != n)
        return;
    for (int64_t k = 0; k < n; k++)
        mx = fmax(mx, cJSON_GetArrayItem(arr, (int)k)->valuedouble);
    for (int64_t k = 0; k < n; k++)
        dmax = fmax(dmax, fabs(got[k] - cJSON_GetArrayItem(arr, (int)k)->valuedouble));
    cur_field = "eigs";
    report(dmax <= 5e-5 * mx, dmax, 0, NAN);
}

/* --- one mode ----------------------------------------------------------------- */

static int mode_params(const char *mode, const cJSON *pj, struct farms_params *p)
{
    const char *ff = str(pj, "fix_fingers"), *sampling = str(pj, "sampling");
    const char *variant = str(pj, "variant");

    CHECK_EQ_INT(preset_get("farms-cv", p, NULL), ERR_OK);
    p->filter_zeros = flag(pj, "filter_zeros");
    p->eig_threshold = num(pj, "EVALS_THRESH");
    p->bins = (int)num(pj, "bins");
    p->xmin_pos = num(pj, "xmin_pos");
    p->conv_norm = num(pj, "conv_norm");
    p->min_eigs = (int64_t)num(pj, "eigs_num_thresh");
    if (ff == NULL)
        p->xmin = PL_XMIN_KS;
    else if (strcmp(ff, "median") == 0 || strcmp(ff, "xmin_mid") == 0)
        p->xmin = PL_XMIN_MID;
    else if (strcmp(ff, "xmin_peak") == 0)
        p->xmin = PL_XMIN_PEAK;
    else
        return 0;
    if (sampling != NULL && strcmp(sampling, "none") == 0) {
        p->window_rows = 0;
        return strncmp(mode, "full_", 5) == 0;
    }
    p->window_rows = (int64_t)num(pj, "num_row_samples");
    p->q_ratio = num(pj, "Q_ratio");
    p->windows_per_dim = (int64_t)num(pj, "sampling_ops_per_dim");
    if (variant != NULL && strcmp(variant, "llm") == 0) {
        p->window_clamp = 1;
        return strncmp(mode, "farms_llm", 9) == 0 && p->xmin == PL_XMIN_PEAK;
    }
    p->window_clamp = 0;
    return variant != NULL && strcmp(variant, "image_classification") == 0 &&
           strncmp(mode, "farms_imgcls", 12) == 0 && p->xmin == PL_XMIN_MID;
}

static void check_layout(const cJSON *lj, const struct farms_result *r, int conv)
{
    const struct farms_layout *l = &r->layout;
    if (conv) {
        exact("layout.kernel_positions", (double)l->kernel_positions, num(lj, "kernel_positions"),
              NAN);
        if (!l->subsampled)
            return;
        const cJSON *ss = cJSON_GetObjectItem(lj, "slice_shape");
        exact("layout.slice_shape[0]", (double)l->rows, cJSON_GetArrayItem(ss, 0)->valuedouble,
              NAN);
        exact("layout.slice_shape[1]", (double)l->cols, cJSON_GetArrayItem(ss, 1)->valuedouble,
              NAN);
        exact("layout.block_rows", (double)l->window_h, num(lj, "block_rows"), NAN);
        exact("layout.block_cols", (double)l->window_w, num(lj, "block_cols"), NAN);
        exact("layout.divisions", (double)l->divisions, num(lj, "divisions"), NAN);
        exact("layout.rows_used", (double)l->rows_used, num(lj, "rows_used"), NAN);
        return;
    }
    exact("layout.windows", (double)r->windows, num(lj, "windows"), NAN);
    if (!l->subsampled)
        return;
    const cJSON *ws = cJSON_GetObjectItem(lj, "window_shape");
    const cJSON *rs = cJSON_GetObjectItem(lj, "row_starts"),
                *cs = cJSON_GetObjectItem(lj, "col_starts");
    exact("layout.window_rows_param", (double)l->window_rows, num(lj, "window_rows_param"), NAN);
    exact("layout.window_cols_param", (double)l->window_cols, num(lj, "window_cols_param"), NAN);
    exact("layout.row_step", (double)l->row_step, num(lj, "row_step"), NAN);
    exact("layout.col_step", (double)l->col_step, num(lj, "col_step"), NAN);
    exact("layout.num_row_windows", (double)l->n_row_windows, num(lj, "num_row_windows"), NAN);
    exact("layout.num_col_windows", (double)l->n_col_windows, num(lj, "num_col_windows"), NAN);
    exact("layout.window_shape[0]", (double)l->window_h, cJSON_GetArrayItem(ws, 0)->valuedouble,
          NAN);
    exact("layout.window_shape[1]", (double)l->window_w, cJSON_GetArrayItem(ws, 1)->valuedouble,
          NAN);
    exact("layout.row_starts count", (double)cJSON_GetArraySize(rs), (double)l->n_row_windows, NAN);
    exact("layout.col_starts count", (double)cJSON_GetArraySize(cs), (double)l->n_col_windows, NAN);
    for (int64_t i = 0; i < l->n_row_windows && i < cJSON_GetArraySize(rs); i++)
        exact("layout.row_starts[i]", (double)farms_layout_row_start(l, i),
              cJSON_GetArrayItem(rs, (int)i)->valuedouble, NAN);
    for (int64_t j = 0; j < l->n_col_windows && j < cJSON_GetArraySize(cs); j++)
        exact("layout.col_starts[j]", (double)farms_layout_col_start(l, j),
              cJSON_GetArrayItem(cs, (int)j)->valuedouble, NAN);
}

/* alpha, D, xmin, xmin_index, n_tail of one fit against a JSON object. */
static void check_fit(const cJSON *rj, double alpha, double D, double xmin, int64_t xi, int64_t nt,
                      int ps, int with_index)
{
    const cJSON *f = cJSON_GetObjectItem(rj, "f64");
    double fa = ps ? num(f, "alpha") : NAN, fd = ps ? num(f, "D") : NAN;
    near_rel("alpha", alpha, num(rj, "alpha"), fa, 1e-3);
    near_abs("D", D, num(rj, "D"), fd, ps ? 1e-3 : 1e-4);
    if (!with_index)
        return;
    near_rel("xmin", xmin, num(rj, "xmin"), ps ? num(f, "xmin") : NAN, 1e-4);
    exact("xmin_index", (double)xi, num(rj, "xmin_index"), ps ? num(f, "xmin_index") : NAN);
    if (cJSON_GetObjectItem(rj, "n_tail") != NULL)
        exact("n_tail", (double)nt, num(rj, "n_tail"), ps ? num(f, "n_tail") : NAN);
}

static void check_norms(const cJSON *rj, double sn, double nm, double ah, double sr, double nsr)
{
    double want_ah = num(rj, "alpha_hat");
    near_rel("spectral_norm", sn, num(rj, "spectral_norm"), NAN, 1e-4);
    near_rel("norm", nm, num(rj, "norm"), NAN, 1e-4);
    near_rel("stable_rank", sr, num(rj, "stable_rank"), NAN, 1e-4);
    near_rel("norm_stable_rank", nsr, num(rj, "norm_stable_rank"), NAN, 1e-4);
    near_abs("alpha_hat", ah, want_ah, NAN, 1e-3 * fmax(1, fabs(want_ah)));
}

static void check_mode(const char *mode, const cJSON *rj, const double *w, const int64_t *shape,
                       int n_dims)
{
    struct farms_params p;
    struct farms_shape fs;
    struct farms_plan *plan = NULL;
    struct farms_result r;
    struct esd_ws *ws = NULL;
    struct err e = {0};
    int64_t max_n, max_g, n;
    int conv = n_dims == 4, ps = flag(rj, "precision_sensitive");

    cur_mode = mode;
    if (!mode_params(mode, cJSON_GetObjectItem(rj, "params"), &p)) {
        fprintf(stderr, "%s/%s: mode not understood\n", cur_case, mode);
        CHECK(!"known mode");
        return;
    }
    fs = (struct farms_shape){
        .kind = conv ? FARMS_KIND_CONV2D : FARMS_KIND_DENSE, .n_dims = n_dims, .shape = shape};
    CHECK_EQ_INT(farms_plan_new(&p, &fs, 2, &plan, &e), ERR_OK);
    if (plan == NULL)
        return;
    farms_plan_ws_need(plan, &max_n, &max_g);
    CHECK_EQ_INT(esd_ws_new(max_n, max_g, &ws, &e), ERR_OK);
    for (int64_t u = 0; u < farms_plan_n_units(plan); u++)
        CHECK_EQ_INT(farms_unit_run(plan, u, w, ws, &e), ERR_OK);
    CHECK_EQ_INT(farms_plan_finish(plan, &r, &e), ERR_OK);
    exact("skipped", r.status == FARMS_STATUS_SKIPPED, flag(rj, "skipped"), NAN);
    exact("num_eigs", (double)r.num_eigs, num(rj, "num_eigs"), NAN);
    check_layout(cJSON_GetObjectItem(rj, "layout"), &r, conv);
    if (!flag(rj, "skipped")) {
        exact("status ok", r.status, FARMS_STATUS_OK, NAN);
        check_fit(rj, r.alpha, r.D, r.xmin, r.xmin_index, r.n_tail, ps, !(conv && p.window_rows));
        check_norms(rj, r.spectral_norm, r.norm, r.alpha_hat, r.stable_rank, r.norm_stable_rank);
        const cJSON *divs = cJSON_GetObjectItem(rj, "divisions");
        if (conv && p.window_rows)
            exact("divisions count", (double)farms_plan_n_esd(plan), cJSON_GetArraySize(divs), NAN);
        for (int64_t d = 0; d < farms_plan_n_esd(plan); d++) {
            const struct farms_esd *s = farms_plan_esd(plan, d);
            const double *eigs = farms_plan_eigs(plan, d, &n);
            const cJSON *dj = divs ? cJSON_GetArrayItem(divs, (int)d) : rj;
            if (dj == NULL || s == NULL)
                continue;
            if (divs != NULL) {
                check_fit(dj, s->fit.alpha, s->fit.D, s->fit.xmin, s->fit.xmin_index, s->fit.n_tail,
                          ps, 1);
                check_norms(dj, s->spectral_norm, s->norm, s->alpha_hat, s->stable_rank,
                            s->norm_stable_rank);
                exact("division num_eigs", (double)s->num_eigs, num(dj, "num_eigs"), NAN);
            }
            check_eigs(cJSON_GetObjectItem(dj, "eigs"), eigs, n);
        }
    }
    n_results_checked++;
    esd_ws_free(ws);
    farms_plan_free(plan);
}

/* --- the weightwatcher block -------------------------------------------------- */

/* Tolerances of the columns of WeightWatcher's analyze(mp_fit=True) (the
 * fixtures' `weightwatcher` block) under the `full` preset + mp_fit=true:
 * those with a FARMS counterpart as that one (numerics spec, tolerances);
 * sigma 1e-3 relative (as alpha, of which it is a function); log_alpha_norm
 * 1e-3 * max(1, |v|) (as alpha_weighted); counts and ranks exactly. The
 * Marchenko-Pastur columns are informational (a KDE + brute grid + Nelder-
 * Mead port, docs/numerics.md): W_scale 1e-4 relative (a plain sum);
 * sigma_mp, bulk_max, bulk_min, mp_softrank within WW_MP_REL relative
 * (bulk_min also WW_MP_REL * bulk_max absolute, it is 0 when N == M) and
 * num_spikes within WW_SPIKES, the loosest bounds that hold on every case. */
#define WW_MP_REL 1e-3
#define WW_SPIKES 0

static int n_ww_columns; /* column checks made: every column of every block */

static void ww_rel(const char *f, double got, const cJSON *ww, double alt, double rel)
{
    n_ww_columns++;
    near_rel(f, got, num(ww, f), alt, rel);
}

static void ww_exact(const char *f, double got, const cJSON *ww, double alt)
{
    n_ww_columns++;
    exact(f, got, num(ww, f), alt);
}

static void ww_abs(const char *f, double got, const cJSON *ww, double alt, double tol)
{
    n_ww_columns++;
    near_abs(f, got, num(ww, f), alt, tol);
}

/* The columns WeightWatcher 0.7.5.5 added to FARMS's (this issue's). */
static void check_ww_columns(const cJSON *ww, const struct farms_result *r, int ps, const cJSON *sc)
{
    double aw = num(ww, "alpha_weighted"), lan = num(ww, "log_alpha_norm");
    double sc_sigma = ps ? (num(sc, "alpha") - 1) / sqrt((double)r->n_tail) : NAN;

    ww_rel("xmax", r->xmax, ww, NAN, 1e-4);
    ww_rel("sigma", r->sigma, ww, sc_sigma, 1e-3);
    ww_exact("num_pl_spikes", (double)r->num_pl_spikes, ww, ps ? (double)r->num_pl_spikes : NAN);
    ww_abs("alpha_weighted", r->alpha_hat, ww, NAN, 1e-3 * fmax(1, fabs(aw)));
    ww_abs("log_alpha_norm", r->log_alpha_norm, ww, NAN, 1e-3 * fmax(1, fabs(lan)));
    ww_exact("matrix_rank", (double)r->matrix_rank, ww, NAN);
    ww_exact("rank_loss", (double)r->rank_loss, ww, NAN);
    ww_exact("weak_rank_loss", (double)r->weak_rank_loss, ww, NAN);
    ww_abs("num_spikes", (double)r->num_spikes, ww, NAN, WW_SPIKES);
    ww_rel("sigma_mp", r->sigma_mp, ww, NAN, WW_MP_REL);
    ww_rel("mp_softrank", r->mp_softrank, ww, NAN, WW_MP_REL);
    ww_abs("bulk_min", r->bulk_min, ww, NAN,
           WW_MP_REL * fmax(fabs(num(ww, "bulk_min")), num(ww, "bulk_max")));
    ww_rel("bulk_max", r->bulk_max, ww, NAN, WW_MP_REL);
    ww_rel("lambda_max", r->spectral_norm, ww, NAN, 1e-4);
    ww_rel("sv_max", r->sv_max, ww, NAN, 1e-4);
    ww_rel("sv_min", r->sv_min, ww, NAN, 1e-4);
    ww_rel("W_scale", r->w_scale, ww, NAN, 1e-4);
    if (getenv("WW_DEBUG"))
        fprintf(stderr,
                "%s: sigma_mp %.6g/%.6g soft %.6g/%.6g bmax %.6g/%.6g bmin %.6g/%.6g sp %lld/%g\n",
                cur_case, r->sigma_mp, num(ww, "sigma_mp"), r->mp_softrank, num(ww, "mp_softrank"),
                r->bulk_max, num(ww, "bulk_max"), r->bulk_min, num(ww, "bulk_min"),
                (long long)r->num_spikes, num(ww, "num_spikes"));
}

static void check_ww(const cJSON *ww, const double *w, const int64_t *shape, int n_dims)
{
    struct farms_params p;
    struct farms_shape fs;
    struct farms_result r;
    const cJSON *sc = cJSON_GetObjectItem(ww, "spec_check");
    int ps = flag(ww, "precision_sensitive");
    const char *warn = str(ww, "warning");

    n_ww_present++;
    cur_mode = "weightwatcher";
    if (flag(ww, "skipped")) {
        n_ww_skipped++;
        return;
    }
    CHECK_EQ_INT(preset_get("full", &p, NULL), ERR_OK);
    CHECK_EQ_INT(preset_set(&p, "mp_fit=true", NULL), ERR_OK);
    fs = (struct farms_shape){.kind = n_dims == 4 ? FARMS_KIND_CONV2D : FARMS_KIND_DENSE,
                              .n_dims = n_dims,
                              .shape = shape};
    CHECK_EQ_INT(farms_analyze(&p, &fs, w, &r, NULL), ERR_OK);
    exact("status ok", r.status, FARMS_STATUS_OK, NAN);
    exact("num_evals", (double)r.num_eigs, num(ww, "num_evals"), NAN);
    near_rel("alpha", r.alpha, num(ww, "alpha"), ps ? num(sc, "alpha") : NAN, 1e-3);
    near_abs("D", r.D, num(ww, "D"), ps ? num(sc, "D") : NAN, ps ? 1e-3 : 1e-4);
    near_rel("xmin", r.xmin, num(ww, "xmin"), ps ? num(sc, "xmin") : NAN, 1e-4);
    exact("spec_check.xmin_index", (double)r.xmin_index, num(sc, "xmin_index"), NAN);
    near_rel("spectral_norm", r.spectral_norm, num(ww, "spectral_norm"), NAN, 1e-4);
    near_rel("norm", r.norm, num(ww, "norm"), NAN, 1e-4);
    near_abs("log_norm", r.log_norm, num(ww, "log_norm"), NAN, 1e-4);
    near_abs("log_spectral_norm", r.log_spectral_norm, num(ww, "log_spectral_norm"), NAN, 1e-4);
    near_rel("stable_rank", r.stable_rank, num(ww, "stable_rank"), NAN, 1e-4);
    near_abs("entropy", r.entropy, num(ww, "entropy"), NAN, 1e-6);
    check_ww_columns(ww, &r, ps, sc);
    cur_field = "warning";
    if (warn != NULL && strcmp(warn, "under-trained") == 0)
        report(r.warning == FARMS_WARNING_UNDER_TRAINED, r.warning, 1, NAN);
    else if (warn != NULL && strcmp(warn, "over-trained") == 0)
        report(r.warning == FARMS_WARNING_OVER_TRAINED, r.warning, 2, NAN);
    else
        report(r.warning == FARMS_WARNING_NONE || r.warning == FARMS_WARNING_SUSPECT_FIT, r.warning,
               0, NAN);
    n_ww_checked++;
}

static void test_every_reference_vector(void)
{
    cJSON *index = load_json("index.json"), *c;
    int n_cases = 0;

    c = cJSON_GetObjectItem(index, "cases");
    for (c = c ? c->child : NULL; c != NULL; c = c->next) {
        cJSON *cj = load_json(str(c, "json")), *res, *m;
        int64_t shape[4] = {0};
        int n_dims = 0;
        double *w = load_tensor(str(c, "tensor_file"), str(c, "tensor_name"), shape, &n_dims);

        cur_case = str(c, "case_id");
        n_cases++;
        res = cJSON_GetObjectItem(cj, "results");
        for (m = res ? res->child : NULL; m != NULL; m = m->next)
            n_results_present++;
        if (w != NULL) {
            for (m = res ? res->child : NULL; m != NULL; m = m->next)
                check_mode(m->string, m, w, shape, n_dims);
            check_ww(cJSON_GetObjectItem(cj, "weightwatcher"), w, shape, n_dims);
        }
        free(w);
        cJSON_Delete(cj);
    }
    cJSON_Delete(index);
    CHECK(n_cases >= 23);
    CHECK(n_results_present > 0);
    CHECK_EQ_INT(n_results_checked, n_results_present);
    CHECK_EQ_INT(n_ww_checked + n_ww_skipped, n_ww_present);
    CHECK_EQ_INT(n_ww_present, n_cases);
    CHECK_EQ_INT(n_ww_columns, 17 * n_ww_checked); /* every column of every block */
    printf("vectors: %d cases, %d/%d case x mode results checked, weightwatcher %d checked + %d "
           "skipped by the reference\n",
           n_cases, n_results_checked, n_results_present, n_ww_checked, n_ww_skipped);
}

int main(void)
{
    openblas_set_num_threads(1);
    test_every_reference_vector();
    return check_report("test_vectors");
}
