/* farms.c -- FARMS plans: units of eigenvalue work, pooling, fit, per-layer
 * metrics (docs/numerics.md). See farms.h; layouts are in farms_layout.c.
 *
 * Sliding Grams: all windows of a dense layout have one effective shape
 * h x w; the Gram is formed on the smaller side and, along the contracted
 * dimension, consecutive windows of a unit overlap, so the next window's Gram
 * is the previous one plus the entering slices' outer products minus the
 * leaving ones' (esd_gram_update), when the shift is below half the window.
 * For square windows the sliding direction with the lower estimated dsyrk
 * cost is used. A Gram is formed from scratch at least every
 * FARMS_SLIDE_REFRESH windows to bound the accumulated rounding.
 */
#include "core/numerics/farms.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/numerics/esd.h"
#include "core/numerics/farms_int.h"
#include "core/numerics/farms_ww.h"
#include "core/numerics/powerlaw.h"

#define FARMS_SLIDE_REFRESH 32

/* --- Planning ------------------------------------------------------------- */

/* dsyrk cost (in units of n^2) of a line of `n` windows, shift `d`, length L. */
static double farms_line_cost(int64_t lines, int64_t n, int64_t d, int64_t len)
{
    int64_t upd = 2 * d < len ? 2 * d : len;
    return (double)lines * ((double)len + (double)(n - 1) * (double)upd);
}

/* Dense: Gram side and sliding direction, then cut lines into units. */
static enum err_code farms_plan_dense_units(struct farms_plan *pl, int n_parallel_hint,
                                            struct err *e)
{
    const struct farms_layout *l = &pl->lay;
    int64_t h = l->window_h, w = l->window_w, lines, n_slide, chunks;
    double c_rows = INFINITY, c_cols = INFINITY;

    if (h >= w) /* Gram w x w, contracted over rows: slide rows */
        c_rows = farms_line_cost(l->n_col_windows, l->n_row_windows, l->row_step, h);
    if (h <= w) /* Gram h x h, contracted over columns: slide columns */
        c_cols = farms_line_cost(l->n_row_windows, l->n_col_windows, l->col_step, w);
    pl->slide_rows = c_rows <= c_cols;
    pl->side = pl->slide_rows ? ESD_SIDE_COLS : ESD_SIDE_ROWS;
    lines = pl->slide_rows ? l->n_col_windows : l->n_row_windows;
    n_slide = pl->slide_rows ? l->n_row_windows : l->n_col_windows;
    chunks = 1;
    if (n_parallel_hint > 1 && lines < n_parallel_hint) {
        chunks = (n_parallel_hint + lines - 1) / lines;
        chunks = chunks < n_slide ? chunks : n_slide;
    }
    pl->n_units = lines * chunks;
    pl->units = calloc((size_t)pl->n_units, sizeof(*pl->units));
    if (pl->units == NULL)
        return err_set(e, ERR_NOMEM, "%lld work units", (long long)pl->n_units);
    for (int64_t f = 0; f < lines; f++)
        for (int64_t c = 0; c < chunks; c++) {
            struct farms__unit *u = &pl->units[f * chunks + c];
            u->fixed = f;
            u->s0 = c * n_slide / chunks;
            u->s1 = (c + 1) * n_slide / chunks;
        }
    return ERR_OK;
}

static enum err_code farms_plan_conv_units(struct farms_plan *pl, struct err *e)
{
    pl->n_units = pl->lay.kernel_positions;
    pl->units = calloc((size_t)pl->n_units, sizeof(*pl->units));
    if (pl->units == NULL)
        return err_set(e, ERR_NOMEM, "%lld work units", (long long)pl->n_units);
    for (int64_t u = 0; u < pl->n_units; u++)
        pl->units[u].fixed = u;
    return ERR_OK;
}

/* randomize: every unit once more for the randomized copy, its slots and
 * the permutation's key. */
static enum err_code farms_plan_rand(struct farms_plan *pl, struct err *e)
{
    struct farms__unit *u;
    uint64_t st = (uint64_t)pl->p.seed;

    pl->n_base_units = pl->n_units;
    if (!pl->p.randomize || pl->n_units == 0)
        return ERR_OK;
    u = realloc(pl->units, (size_t)(2 * pl->n_units) * sizeof(*u));
    if (u == NULL)
        return err_set(e, ERR_NOMEM, "%lld work units", 2 * (long long)pl->n_units);
    pl->units = u;
    memcpy(u + pl->n_units, u, (size_t)pl->n_units * sizeof(*u));
    pl->n_units *= 2;
    pl->rand_key = farms_rng_next(&st);
    pl->rand_eigs = malloc((size_t)pl->n_eigs * sizeof(double));
    if (pl->rand_eigs == NULL)
        return err_set(e, ERR_NOMEM, "%lld randomized eigenvalues", (long long)pl->n_eigs);
    return ERR_OK;
}

enum err_code farms_plan_new(const struct farms_params *p, const struct farms_shape *s,
                             int n_parallel_hint, struct farms_plan **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    enum farms_kind kind = s->kind;
    struct farms_plan *pl = NULL;

    *out = NULL;
    pl = calloc(1, sizeof(*pl));
    if (pl == NULL)
        return err_set(e, ERR_NOMEM, "FARMS plan");
    rc = farms_layout_compute(p, s, &pl->lay, e);
    if (rc)
        goto out;
    pl->p = *p;
    pl->kind = kind;
    memcpy(pl->shape, s->shape, (size_t)s->n_dims * sizeof(*s->shape));
    pl->gram_n = pl->lay.window_h < pl->lay.window_w ? pl->lay.window_h : pl->lay.window_w;
    pl->slots_per_esd = kind == FARMS_KIND_DENSE ? pl->lay.windows : pl->lay.kernel_positions;
    pl->n_esd = kind == FARMS_KIND_DENSE ? 1 : pl->lay.windows;
    pl->n_eigs = pl->n_esd * pl->slots_per_esd * pl->gram_n; /* bounded by the layout */
    if (kind == FARMS_KIND_DENSE && pl->n_eigs < p->min_eigs) {
        pl->skipped = 1;
        snprintf(pl->reason, sizeof(pl->reason), "fewer than min_eigs (%lld) eigenvalues: %lld",
                 (long long)p->min_eigs, (long long)pl->n_eigs);
    } else if (pl->gram_n > 0) {
        rc = kind == FARMS_KIND_DENSE ? farms_plan_dense_units(pl, n_parallel_hint, e)
                                      : farms_plan_conv_units(pl, e);
        if (rc)
            goto out;
    }
    pl->esd = calloc((size_t)pl->n_esd, sizeof(*pl->esd));
    pl->eigs = malloc((size_t)(pl->n_eigs > 0 ? pl->n_eigs : 1) * sizeof(double));
    if (pl->esd == NULL || pl->eigs == NULL) {
        rc = err_set(e, ERR_NOMEM, "%lld pooled eigenvalues", (long long)pl->n_eigs);
        goto out;
    }
    rc = farms_plan_rand(pl, e);
    if (rc)
        goto out;
    *out = pl;
    pl = NULL;
out:
    farms_plan_free(pl);
    return rc;
}

int64_t farms_plan_n_units(const struct farms_plan *plan)
{
    return plan->n_units;
}

void farms_plan_ws_need(const struct farms_plan *plan, int64_t *max_n, int64_t *max_gather)
{
    *max_n = plan->gram_n > 0 ? plan->gram_n : 1;
    *max_gather = 0;
    if (plan->kind == FARMS_KIND_DENSE && plan->rand_eigs != NULL)
        *max_gather = plan->lay.window_h * plan->lay.window_w;
    if (plan->kind == FARMS_KIND_CONV2D)
        *max_gather =
            (plan->lay.subsampled ? plan->lay.rows_used : plan->lay.rows) * plan->lay.cols;
}

void farms_plan_free(struct farms_plan *plan)
{
    if (plan == NULL)
        return;
    free(plan->units);
    free(plan->rand_eigs);
    free(plan->eigs);
    free(plan->esd);
    free(plan);
}

/* --- Units ------------------------------------------------------------------ */

/* First row / column (along the sliding dimension) of sliding window s. */
static int64_t farms_slide_lo(const struct farms_plan *pl, int64_t s)
{
    return pl->slide_rows ? farms_layout_row_start(&pl->lay, s)
                          : farms_layout_col_start(&pl->lay, s);
}

static enum err_code farms_unit_dense(struct farms_plan *pl, const struct farms__unit *u,
                                      const double *w, struct esd_ws *ws, struct err *e)
{
    const struct farms_layout *l = &pl->lay;
    int64_t ld = l->cols, h = l->window_h, wd = l->window_w;
    int64_t len = pl->slide_rows ? h : wd, fixed_lo, prev = -1, n_upd = 0;
    enum err_code rc;

    fixed_lo =
        pl->slide_rows ? farms_layout_col_start(l, u->fixed) : farms_layout_row_start(l, u->fixed);
    for (int64_t s = u->s0; s < u->s1; s++) {
        int64_t lo = farms_slide_lo(pl, s), d = lo - prev, r0, c0, i, j;
        int keep;

        r0 = pl->slide_rows ? lo : fixed_lo;
        c0 = pl->slide_rows ? fixed_lo : lo;
        if (prev >= 0 && d >= 0 && 2 * d < len && n_upd < FARMS_SLIDE_REFRESH) {
            /* leaving: [prev, prev + d); entering: [prev + len, prev + len + d) */
            const double *sub = pl->slide_rows ? w + prev * ld + c0 : w + r0 * ld + prev;
            const double *add =
                pl->slide_rows ? w + (prev + len) * ld + c0 : w + r0 * ld + prev + len;
            esd_gram_update(ws, pl->gram_n, pl->side,
                            &(struct esd_slide){.add = add, .sub = sub, .k = d, .lda = ld});
            n_upd++;
        } else {
            rc = esd_gram_set(
                ws, &(struct esd_block){.a = w + r0 * ld + c0, .h = h, .w = wd, .lda = ld},
                pl->side, e);
            if (rc)
                return rc;
            n_upd = 0;
        }
        keep = 0;
        if (s + 1 < u->s1) {
            int64_t dn = farms_slide_lo(pl, s + 1) - lo;
            keep = dn >= 0 && 2 * dn < len && n_upd < FARMS_SLIDE_REFRESH;
        }
        i = pl->slide_rows ? s : u->fixed;
        j = pl->slide_rows ? u->fixed : s;
        rc = esd_gram_eigs(ws, pl->gram_n, 1.0, keep,
                           pl->eigs + (i * l->n_col_windows + j) * pl->gram_n, e);
        if (rc)
            return rc;
        prev = lo;
    }
    return ERR_OK;
}

/* Conv: gather kernel position `pos` as a rows x cols slice (transposed when
 * out < in), only the first `n_rows` rows, into g. */
static void farms_gather_slice(const struct farms_plan *pl, int64_t pos, const double *w,
                               int64_t n_rows, double *g)
{
    int64_t out = pl->shape[0], in = pl->shape[1], kk = pl->shape[2] * pl->shape[3];
    int64_t cols = pl->lay.cols;

    if (out >= in) {
        for (int64_t r = 0; r < n_rows; r++)
            for (int64_t c = 0; c < cols; c++)
                g[r * cols + c] = w[(r * in + c) * kk + pos];
    } else {
        for (int64_t r = 0; r < n_rows; r++)
            for (int64_t c = 0; c < cols; c++)
                g[r * cols + c] = w[(c * in + r) * kk + pos];
    }
}

/* Conv: the ESD slots of kernel position `pos` from its slice g (gathered:
 * all rows, or the first rows_used) into out (the plan's eigs or rand_eigs). */
static enum err_code farms_conv_slots(struct farms_plan *pl, int64_t pos, const double *g,
                                      struct esd_ws *ws, double *out, struct err *e)
{
    const struct farms_layout *l = &pl->lay;
    int64_t gn = pl->gram_n, kpos = l->kernel_positions;

    if (!l->subsampled)
        return esd_eigs(ws, &(struct esd_block){.a = g, .h = l->rows, .w = l->cols, .lda = l->cols},
                        pl->p.conv_norm, out + pos * gn, e);
    for (int64_t d = 0; d < l->divisions; d++) {
        double *slot = out + (d * kpos + pos) * gn;
        struct esd_block b = {
            .a = g + d * l->window_h * l->cols, .h = l->window_h, .w = l->window_w, .lda = l->cols};
        enum err_code rc = esd_eigs(ws, &b, pl->p.conv_norm, slot, e);
        if (rc)
            return rc;
    }
    return ERR_OK;
}

static enum err_code farms_unit_conv(struct farms_plan *pl, const struct farms__unit *u,
                                     const double *w, struct esd_ws *ws, struct err *e)
{
    const struct farms_layout *l = &pl->lay;
    double *g = esd_ws_gather(ws);

    farms_gather_slice(pl, u->fixed, w, l->subsampled ? l->rows_used : l->rows, g);
    return farms_conv_slots(pl, u->fixed, g, ws, pl->eigs, e);
}

/* The randomized copy (WeightWatcher random_eigenvalues: each matrix's
 * elements shuffled, np.random.shuffle; here the seeded farms_perm): dense,
 * the whole matrix permuted; conv, each kernel-position slice on its own
 * (key mixed with the position). Unit u's windows or slice of the copy are
 * gathered into the workspace and decomposed from scratch. */
static enum err_code farms_unit_rand(struct farms_plan *pl, const struct farms__unit *u,
                                     const double *w, struct esd_ws *ws, struct err *e)
{
    const struct farms_layout *l = &pl->lay;
    uint64_t n = (uint64_t)(l->rows * l->cols), key = pl->rand_key, k;
    int64_t cols = l->cols, h = l->window_h, wd = l->window_w, in = pl->shape[1];
    double *g = esd_ws_gather(ws);
    enum err_code rc = ERR_OK;

    if (pl->kind == FARMS_KIND_CONV2D) {
        int64_t pos = u->fixed, kk = pl->shape[2] * pl->shape[3], flip = pl->shape[0] < in;
        uint64_t st = (uint64_t)pos;
        key ^= farms_rng_next(&st);
        for (int64_t r = 0; r < (l->subsampled ? l->rows_used : l->rows); r++)
            for (int64_t c = 0; c < cols; c++) {
                k = farms_perm((uint64_t)(r * cols + c), n, key);
                int64_t rr = (int64_t)(k / (uint64_t)cols), cc = (int64_t)(k % (uint64_t)cols);
                g[r * cols + c] =
                    flip ? w[(cc * in + rr) * kk + pos] : w[(rr * in + cc) * kk + pos];
            }
        return farms_conv_slots(pl, pos, g, ws, pl->rand_eigs, e);
    }
    for (int64_t s = u->s0; s < u->s1 && rc == ERR_OK; s++) {
        int64_t i = pl->slide_rows ? s : u->fixed, j = pl->slide_rows ? u->fixed : s;
        int64_t r0 = farms_layout_row_start(l, i), c0 = farms_layout_col_start(l, j);
        for (int64_t r = 0; r < h; r++)
            for (int64_t c = 0; c < wd; c++)
                g[r * wd + c] = w[farms_perm((uint64_t)((r0 + r) * cols + c0 + c), n, key)];
        rc = esd_eigs(ws, &(struct esd_block){.a = g, .h = h, .w = wd, .lda = wd}, 1.0,
                      pl->rand_eigs + (i * l->n_col_windows + j) * pl->gram_n, e);
    }
    return rc;
}

enum err_code farms_unit_run(struct farms_plan *plan, int64_t u, const double *w, struct esd_ws *ws,
                             struct err *e)
{
    int64_t need_n, need_g;

    ERR_ASSERT(u >= 0 && u < plan->n_units);
    farms_plan_ws_need(plan, &need_n, &need_g);
    if (esd_ws_max_n(ws) < need_n || esd_ws_max_gather(ws) < need_g)
        return err_set(e, ERR_INVAL, "workspace %lld/%lld smaller than needed %lld/%lld",
                       (long long)esd_ws_max_n(ws), (long long)esd_ws_max_gather(ws),
                       (long long)need_n, (long long)need_g);
    if (u >= plan->n_base_units)
        return farms_unit_rand(plan, &plan->units[u], w, ws, e);
    if (plan->kind == FARMS_KIND_DENSE)
        return farms_unit_dense(plan, &plan->units[u], w, ws, e);
    return farms_unit_conv(plan, &plan->units[u], w, ws, e);
}
