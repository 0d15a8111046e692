/* farms_layout.c -- which submatrices FARMS decomposes (docs/numerics.md, Windows):
 * Python floor division, the reference's slice rule, dense windows of both
 * variants, conv divisions. Pure functions; thread-safe.
 */
#include "core/numerics/farms_layout.h"

#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/numerics/esd.h"
#include "core/numerics/farms_int.h"

#define FARMS_MAX_DIM ((int64_t)1 << 31)

int64_t farms__floordiv(int64_t a, int64_t b)
{
    int64_t q, r;

    ERR_ASSERT(b != 0);
    q = a / b;
    r = a % b;
    if (r != 0 && ((r < 0) != (b < 0)))
        q--;
    return q;
}

/* CPython's float_floor_div (Objects/floatobject.c, _float_div_mod). */
double farms__floordiv_f(double vx, double wx)
{
    double mod, div, floordiv;

    if (wx == 0)
        return NAN;
    mod = fmod(vx, wx);
    div = (vx - mod) / wx;
    if (mod != 0) {
        if ((wx < 0) != (mod < 0))
            div -= 1.0;
    }
    if (div != 0) {
        floordiv = floor(div);
        if (div - floordiv > 0.5)
            floordiv += 1.0;
    } else {
        floordiv = copysign(0.0, vx / wx);
    }
    return floordiv;
}

void farms__slice(int64_t s, int64_t len, int64_t n, int64_t *lo, int64_t *hi)
{
    int64_t l = s < 0 ? s + n : s, h = s + len;

    l = l < 0 ? 0 : (l > n ? n : l);
    h = h < 0 ? 0 : (h > n ? n : h);
    if (h < l)
        h = l;
    *lo = l;
    *hi = h;
}

void farms__conv_block(int64_t cols, double q_ratio, int64_t *br, int64_t *bc)
{
    if (q_ratio > 1) {
        *br = (int64_t)farms__floordiv_f((double)cols, q_ratio);
        *bc = cols;
    } else {
        *br = cols;
        *bc = (int64_t)farms__floordiv_f((double)cols, 1.0 / q_ratio);
    }
    if (*br < 1)
        *br = 1;
    if (*bc < 1)
        *bc = 1;
}

enum err_code farms_params_check(const struct farms_params *p, struct err *e)
{
    if (p->window_rows < 0 || p->window_rows > FARMS_MAX_DIM)
        return err_set(e, ERR_INVAL, "window_rows %lld out of range [0, 2^31]",
                       (long long)p->window_rows);
    if (!(p->q_ratio > 0) || !(p->q_ratio * (double)(p->window_rows + 1) < 1e15))
        return err_set(e, ERR_INVAL, "q_ratio %g out of range (> 0, window cols < 1e15)",
                       p->q_ratio);
    if (p->windows_per_dim < 2 || p->windows_per_dim > FARMS_MAX_WINDOWS_PER_DIM)
        return err_set(e, ERR_INVAL, "windows_per_dim %lld out of range [2, %d]",
                       (long long)p->windows_per_dim, FARMS_MAX_WINDOWS_PER_DIM);
    if (p->xmin != PL_XMIN_MID && p->xmin != PL_XMIN_PEAK && p->xmin != PL_XMIN_KS)
        return err_set(e, ERR_INVAL, "xmin rule %d unknown", (int)p->xmin);
    if (!(p->xmin_pos >= 1 && p->xmin_pos <= 1e9))
        return err_set(e, ERR_INVAL, "xmin_pos %g out of range [1, 1e9]", p->xmin_pos);
    if (p->bins < 1 || p->bins > 1000000)
        return err_set(e, ERR_INVAL, "bins %d out of range [1, 1000000]", p->bins);
    if (!(p->conv_norm > 0 && isfinite(p->conv_norm)))
        return err_set(e, ERR_INVAL, "conv_norm %g must be finite and > 0", p->conv_norm);
    if (!(p->eig_threshold >= 0 && isfinite(p->eig_threshold)))
        return err_set(e, ERR_INVAL, "eig_threshold %g must be finite and >= 0", p->eig_threshold);
    if (p->min_eigs < 0 || p->min_eigs > FARMS_MAX_POOLED)
        return err_set(e, ERR_INVAL, "min_eigs %lld out of range", (long long)p->min_eigs);
    if (p->seed < 0)
        return err_set(e, ERR_INVAL, "seed %lld must be >= 0", (long long)p->seed);
    if (p->tensor_layout != FARMS_TENSOR_LAYOUT_AUTO &&
        p->tensor_layout != FARMS_TENSOR_LAYOUT_TORCH &&
        p->tensor_layout != FARMS_TENSOR_LAYOUT_KERAS)
        return err_set(e, ERR_INVAL, "layout rule %d unknown", (int)p->tensor_layout);
    if (memchr(p->weights, '\0', sizeof(p->weights)) == NULL)
        return err_set(e, ERR_INVAL, "weights: not a string of at most %d bytes",
                       FARMS_WEIGHTS_MAX - 1);
    return ERR_OK;
}

/* Dense windows (docs/numerics.md, Windows). */
static enum err_code farms_layout_dense(const struct farms_params *p, int64_t rows, int64_t cols,
                                        struct farms_layout *l, struct err *e)
{
    int64_t nrs, ncs, ops = p->windows_per_dim, lo, hi;

    l->rows = rows;
    l->cols = cols;
    l->kernel_positions = 1;
    if (p->window_rows == 0) {
        l->window_rows = l->window_h = rows;
        l->window_cols = l->window_w = cols;
        l->row_step = l->col_step = 1;
        l->n_row_windows = l->n_col_windows = l->windows = 1;
        return ERR_OK;
    }
    l->subsampled = 1;
    nrs = p->window_rows;
    if (p->window_clamp && nrs > (rows < cols ? rows : cols))
        nrs = rows < cols ? rows : cols;
    ncs = (int64_t)((double)nrs * p->q_ratio); /* Python int(): truncation */
    l->window_rows = nrs;
    l->window_cols = ncs;
    l->row_step = farms__floordiv(rows - nrs, ops - 1);
    l->row_step = l->row_step > 1 ? l->row_step : 1;
    l->col_step = farms__floordiv(cols - ncs, ops - 1);
    l->col_step = l->col_step > 1 ? l->col_step : 1;
    l->n_row_windows = farms__floordiv(rows - nrs, l->row_step) + 1;
    l->n_row_windows = l->n_row_windows > 1 ? (l->n_row_windows < ops ? l->n_row_windows : ops) : 1;
    l->n_col_windows = farms__floordiv(cols - ncs, l->col_step) + 1;
    l->n_col_windows = l->n_col_windows > 1 ? (l->n_col_windows < ops ? l->n_col_windows : ops) : 1;
    l->windows = l->n_row_windows * l->n_col_windows;
    farms__slice(rows - nrs < 0 ? rows - nrs : 0, nrs, rows, &lo, &hi);
    l->window_h = hi - lo;
    farms__slice(cols - ncs < 0 ? cols - ncs : 0, ncs, cols, &lo, &hi);
    l->window_w = hi - lo;
    /* Every window has the same effective shape (one window when the side is
     * shorter than the window); check it rather than assume it. */
    for (int64_t i = 0; i < l->n_row_windows; i++) {
        int64_t s = i * l->row_step < rows - nrs ? i * l->row_step : rows - nrs;
        farms__slice(s, nrs, rows, &lo, &hi);
        if (hi - lo != l->window_h)
            return err_set(e, ERR_INTERNAL, "row window %lld has %lld rows, not %lld", (long long)i,
                           (long long)(hi - lo), (long long)l->window_h);
    }
    for (int64_t j = 0; j < l->n_col_windows; j++) {
        int64_t s = j * l->col_step < cols - ncs ? j * l->col_step : cols - ncs;
        farms__slice(s, ncs, cols, &lo, &hi);
        if (hi - lo != l->window_w)
            return err_set(e, ERR_INTERNAL, "column window %lld has %lld columns, not %lld",
                           (long long)j, (long long)(hi - lo), (long long)l->window_w);
    }
    return ERR_OK;
}

/* Conv kernel slices (docs/numerics.md, Convolutions). */
static enum err_code farms_layout_conv(const struct farms_params *p, const int64_t *shape,
                                       struct farms_layout *l, struct err *e)
{
    int64_t out = shape[0], in = shape[1], br, bc;

    if (out + in < shape[2] + shape[3])
        return err_set(e, ERR_INVAL,
                       "conv kernel %lldx%lld larger than its channels %lld+%lld: the "
                       "reference's channels-first branch is not supported",
                       (long long)shape[2], (long long)shape[3], (long long)out, (long long)in);
    l->rows = out > in ? out : in;
    l->cols = out < in ? out : in;
    l->kernel_positions = shape[2] * shape[3];
    l->n_row_windows = l->n_col_windows = 1;
    l->row_step = l->col_step = 1;
    if (p->window_rows == 0) {
        l->window_rows = l->window_h = l->rows;
        l->window_cols = l->window_w = l->cols;
        l->windows = 1;
        return ERR_OK;
    }
    l->subsampled = 1;
    farms__conv_block(l->cols, p->q_ratio, &br, &bc);
    l->window_rows = l->window_h = br;
    l->window_cols = l->window_w = bc;
    l->divisions = l->rows / l->cols;
    l->rows_used = l->divisions * br;
    l->windows = l->divisions;
    return ERR_OK;
}

enum err_code farms_layout_compute(const struct farms_params *p, const struct farms_shape *s,
                                   struct farms_layout *out, struct err *e)
{
    enum farms_kind kind = s->kind;
    const int64_t *shape = s->shape;
    int n_dims = s->n_dims;
    enum err_code rc;
    struct farms_layout l;
    int64_t per, pooled;

    memset(out, 0, sizeof(*out));
    memset(&l, 0, sizeof(l));
    rc = farms_params_check(p, e);
    if (rc)
        return rc;
    if ((kind == FARMS_KIND_DENSE && n_dims != 2) || (kind == FARMS_KIND_CONV2D && n_dims != 4) ||
        (kind != FARMS_KIND_DENSE && kind != FARMS_KIND_CONV2D))
        return err_set(e, ERR_INVAL, "layer kind %d with %d dimensions", (int)kind, n_dims);
    for (int d = 0; d < n_dims; d++)
        if (shape[d] < 1 || shape[d] > FARMS_MAX_DIM)
            return err_set(e, ERR_INVAL, "dimension %d of size %lld out of range [1, 2^31]", d,
                           (long long)shape[d]);
    rc = kind == FARMS_KIND_DENSE ? farms_layout_dense(p, shape[0], shape[1], &l, e)
                                  : farms_layout_conv(p, shape, &l, e);
    if (rc)
        return rc;
    if (kind == FARMS_KIND_CONV2D && l.kernel_positions > FARMS_MAX_POOLED)
        return err_set(e, ERR_TOOBIG, "conv kernel has %lld positions",
                       (long long)l.kernel_positions);
    per = l.window_h < l.window_w ? l.window_h : l.window_w;
    if (per > ESD_MAX_N)
        return err_set(e, ERR_TOOBIG, "%lld x %lld window: Gram side %lld exceeds %d",
                       (long long)l.window_h, (long long)l.window_w, (long long)per, ESD_MAX_N);
    if (kind == FARMS_KIND_CONV2D && l.rows * l.cols > ((int64_t)1 << 31))
        return err_set(e, ERR_TOOBIG, "conv slice %lld x %lld too large", (long long)l.rows,
                       (long long)l.cols);
    pooled = l.windows * l.kernel_positions; /* both <= 2^31: no overflow */
    if (per > 0 && pooled > FARMS_MAX_POOLED / per)
        return err_set(e, ERR_TOOBIG, "%lld windows of %lld eigenvalues exceed %lld",
                       (long long)pooled, (long long)per, (long long)FARMS_MAX_POOLED);
    *out = l;
    return ERR_OK;
}

/* First index of window `i` of `window` along a dimension of `n`, windows
 * `step` apart, the last one flush with the end. */
static int64_t farms_layout_start(int64_t i, int64_t step, int64_t window, int64_t n)
{
    int64_t lo, hi, s;

    s = i * step < n - window ? i * step : n - window;
    farms__slice(s, window, n, &lo, &hi);
    return lo;
}

int64_t farms_layout_row_start(const struct farms_layout *l, int64_t i)
{
    ERR_ASSERT(i >= 0 && i < l->n_row_windows);
    return farms_layout_start(i, l->row_step, l->window_rows, l->rows);
}

int64_t farms_layout_col_start(const struct farms_layout *l, int64_t j)
{
    ERR_ASSERT(j >= 0 && j < l->n_col_windows);
    return farms_layout_start(j, l->col_step, l->window_cols, l->cols);
}
