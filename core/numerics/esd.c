/* esd.c -- see esd.h.
 *
 * Memory layout: the caller's data is row-major. A row-major Gram formed with
 * CblasUpper is, read column-major, the lower triangle of the same symmetric
 * matrix, so it goes to LAPACK as (LAPACK_COL_MAJOR, 'L') without the
 * transposition copy LAPACKE makes for row-major input.
 *
 * Solver: values-only dsyevd_2stage (dense -> band with BLAS-3, band ->
 * tridiagonal by bulge chasing in cache, then dsterf). Measured on a
 * 2000 x 2000 Gram on the development machine (2 cores shared with other
 * jobs), 1 BLAS thread, column-major, the two solvers interleaved in one
 * process, thread CPU time: dsyevd_2stage 0.65-0.67 s vs dsyevr 0.75-0.83 s
 * (also with two such processes at once). Wall time on an idle machine:
 * dsyevd 0.59-0.61 s, dsyevd_2stage 0.53-0.58, dsyev_2stage 0.56-0.64,
 * dsyevr 0.52-0.54 (dsytrd alone 0.48-0.50); under load dsyevr degrades
 * most: its one-stage reduction is bound by memory bandwidth (dsymv over
 * the trailing matrix), the two-stage one much less.
 *
 * The solver runs as the two calls dsyevd_2stage makes for values only,
 * dsytrd_2stage (reduction) then dsterf (eigenvalues), so that each is
 * timed (esd_stats): the same calls on the same data, so the same bits. The
 * driver also scales a matrix whose largest entry lies outside
 * [sqrt(smlnum), sqrt(bignum)]; such a Gram (its largest entry is on the
 * diagonal) goes to the driver itself, as does n < 2.
 *
 * Alignment: OpenBLAS's AVX-512 kernels (SkylakeX) round differently when an
 * array starts 8 bytes off a 16-byte boundary (measured: a 120 x 120 Gram's
 * eigenvalues differ in 114 of 120 values, by up to 4e-14 relative, with
 * the reduction's arrays moved by 8 bytes). So every array the workspace
 * hands to BLAS or LAPACK starts on a 64-byte line (esd_f64_alloc, and
 * the reduction's e, tau, hous2 and work each rounded up to 8 doubles):
 * one block gives the same bits whatever the workspace's size.
 */
#include "core/numerics/esd.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/clock.h"
#include "core/err.h"

struct esd_ws {
    int64_t max_n;      /* Gram capacity (side) */
    int64_t max_gather; /* gather buffer capacity (doubles) */
    double *gram;       /* owned: max_n^2, the Gram (row-major upper) */
    double *copy;       /* owned: max_n^2, what the eigensolver destroys */
    double *work;       /* owned: LAPACK work, lwork doubles */
    lapack_int *iwork;  /* owned: LAPACK iwork, liwork */
    lapack_int lwork, liwork;
    double *gather; /* owned: max_gather doubles, or NULL */
    double *trd;    /* owned: dsytrd_2stage's e, tau (max_n each), hous2, work, each on a line */
    lapack_int lhous, ltrd;
    struct esd_stats st; /* stage timings */
};

/* Doubles in a line of 64 bytes: the workspace's arrays start on one. */
#define ESD_LINE 8

/* x rounded up to a whole number of lines. */
static size_t esd_lines(size_t x)
{
    return (x + ESD_LINE - 1) / ESD_LINE * ESD_LINE;
}

/* See esd.h. Measured on the development machine: first write of 360 MB
 * 1.0-1.1 s of CPU with 4 KiB pages, 0.2-0.6 s advised. */
double *esd_f64_alloc(size_t n)
{
    size_t bytes = (n > 0 ? n : 1) * sizeof(double), huge = (size_t)2 << 20;
    void *p = NULL;

    if (bytes < ((size_t)32 << 20))
        return posix_memalign(&p, ESD_LINE * sizeof(double), bytes) == 0 ? p : NULL;
    if (posix_memalign(&p, huge, bytes) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes & ~(huge - 1), MADV_HUGEPAGE); /* advice only: ignore failure */
#endif
    return p;
}

static int esd_sizes_ok(int64_t max_n, int64_t max_gather)
{
    if (max_n < 1 || max_n > ESD_MAX_N || max_gather < 0)
        return 0;
    /* the gather buffer may not exceed 2^31 doubles (16 GiB) */
    return max_gather <= ((int64_t)1 << 31);
}

size_t esd_ws_bytes(int64_t max_n, int64_t max_gather)
{
    if (!esd_sizes_ok(max_n, max_gather))
        return 0;
    size_t n = (size_t)max_n;
    /* two Grams, LAPACK work (dsyevd_2stage asks ~105 n + 3000, dsytrd_2stage
     * as much again), gather */
    return sizeof(double) * (2 * n * n + 256 * n + 8192 + (size_t)max_gather) + 64;
}

/* LAPACK workspace query for side n (values only). */
static enum err_code esd_query(int64_t n, lapack_int *lwork, lapack_int *liwork, struct err *e)
{
    double wq = 0, dummy = 0;
    lapack_int iq = 0;
    lapack_int info = LAPACKE_dsyevd_2stage_work(LAPACK_COL_MAJOR, 'N', 'L', (lapack_int)n, &dummy,
                                                 (lapack_int)n, &dummy, &wq, -1, &iq, -1);
    if (info != 0)
        return err_set(e, ERR_INTERNAL, "dsyevd_2stage workspace query: info %d", (int)info);
    /* at least the documented minimum for values only (2 n + 1, 1) */
    *lwork =
        (lapack_int)wq + 1 > 2 * (lapack_int)n + 1 ? (lapack_int)wq + 1 : 2 * (lapack_int)n + 1;
    *liwork = iq + 1;
    return ERR_OK;
}

/* dsytrd_2stage workspace query for side n (values only). */
static enum err_code esd_query_trd(int64_t n, lapack_int *lhous, lapack_int *ltrd, struct err *e)
{
    double wq = 0, hq = 0, dummy = 0;
    lapack_int nn = (lapack_int)n, minus1 = -1, info = 0;

    LAPACK_dsytrd_2stage("N", "L", &nn, &dummy, &nn, &dummy, &dummy, &dummy, &hq, &minus1, &wq,
                         &minus1, &info);
    if (info != 0 || hq < 1 || wq < 1)
        return err_set(e, ERR_INTERNAL, "dsytrd_2stage workspace query: info %d", (int)info);
    *lhous = (lapack_int)hq + 1;
    *ltrd = (lapack_int)wq + 1;
    return ERR_OK;
}

enum err_code esd_ws_new(int64_t max_n, int64_t max_gather, struct esd_ws **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct esd_ws *ws = NULL;

    *out = NULL;
    if (!esd_sizes_ok(max_n, max_gather))
        return err_set(e, ERR_TOOBIG, "eigen workspace: Gram side %lld / gather %lld out of range",
                       (long long)max_n, (long long)max_gather);
    ws = calloc(1, sizeof(*ws));
    if (ws == NULL) {
        rc = err_set(e, ERR_NOMEM, "eigen workspace");
        goto out;
    }
    ws->max_n = max_n;
    ws->max_gather = max_gather;
    rc = esd_query(max_n, &ws->lwork, &ws->liwork, e);
    if (rc)
        goto out;
    if (ws->lwork < 1 || ws->liwork < 1) {
        rc = err_set(e, ERR_INTERNAL, "dsyevd_2stage workspace query returned no size");
        goto out;
    }
    rc = esd_query_trd(max_n, &ws->lhous, &ws->ltrd, e);
    if (rc)
        goto out;
    size_t nn = (size_t)max_n * (size_t)max_n;
    ws->trd = esd_f64_alloc(2 * esd_lines((size_t)max_n) + esd_lines((size_t)ws->lhous) +
                            (size_t)ws->ltrd);
    ws->gram = esd_f64_alloc(nn);
    ws->copy = esd_f64_alloc(nn);
    ws->work = esd_f64_alloc((size_t)ws->lwork);
    ws->iwork = malloc((size_t)ws->liwork * sizeof(lapack_int));
    if (max_gather > 0)
        ws->gather = esd_f64_alloc((size_t)max_gather);
    if (!ws->gram || !ws->copy || !ws->work || !ws->iwork || !ws->trd ||
        (max_gather > 0 && !ws->gather)) {
        rc = err_set(e, ERR_NOMEM, "eigen workspace for %lld x %lld Gram", (long long)max_n,
                     (long long)max_n);
        goto out;
    }
    *out = ws;
    ws = NULL;
out:
    esd_ws_free(ws);
    return rc;
}

void esd_ws_free(struct esd_ws *ws)
{
    if (ws == NULL)
        return;
    free(ws->gram);
    free(ws->copy);
    free(ws->work);
    free(ws->iwork);
    free(ws->gather);
    free(ws->trd);
    free(ws);
}

double *esd_ws_gather(struct esd_ws *ws)
{
    return ws->gather;
}

const struct esd_stats *esd_ws_stats(const struct esd_ws *ws)
{
    return &ws->st;
}

void esd_ws_stats_reset(struct esd_ws *ws)
{
    memset(&ws->st, 0, sizeof(ws->st));
}

void esd_stats_add(struct esd_stats *a, const struct esd_stats *b)
{
    a->n_gram_set += b->n_gram_set;
    a->n_gram_update += b->n_gram_update;
    a->n_eigs += b->n_eigs;
    a->gram_set_s += b->gram_set_s;
    a->gram_update_s += b->gram_update_s;
    a->copy_s += b->copy_s;
    a->reduce_s += b->reduce_s;
    a->eigs_s += b->eigs_s;
}

int64_t esd_ws_max_n(const struct esd_ws *ws)
{
    return ws->max_n;
}

int64_t esd_ws_max_gather(const struct esd_ws *ws)
{
    return ws->max_gather;
}

enum err_code esd_gram_set(struct esd_ws *ws, const struct esd_block *b, enum esd_side side,
                           struct err *e)
{
    int64_t h = b->h, w = b->w;
    int64_t n = side == ESD_SIDE_COLS ? w : h;
    int64_t k = side == ESD_SIDE_COLS ? h : w;
    double t0;

    if (n < 1 || n > ws->max_n || k < 0 || b->lda < w)
        return err_set(e, ERR_INVAL, "Gram of %lld x %lld block: side %lld exceeds workspace %lld",
                       (long long)h, (long long)w, (long long)n, (long long)ws->max_n);
    if (k == 0) {
        memset(ws->gram, 0, (size_t)n * (size_t)n * sizeof(double));
        return ERR_OK;
    }
    t0 = clock_thread_cpu_s();
    /* Row-major upper triangle of A^T A (Trans) or A A^T (NoTrans). */
    cblas_dsyrk(CblasRowMajor, CblasUpper, side == ESD_SIDE_COLS ? CblasTrans : CblasNoTrans,
                (blasint)n, (blasint)k, 1.0, b->a, (blasint)b->lda, 0.0, ws->gram, (blasint)n);
    ws->st.gram_set_s += clock_thread_cpu_s() - t0;
    ws->st.n_gram_set++;
    return ERR_OK;
}

void esd_gram_update(struct esd_ws *ws, int64_t n, enum esd_side side, const struct esd_slide *s)
{
    enum CBLAS_TRANSPOSE t = side == ESD_SIDE_COLS ? CblasTrans : CblasNoTrans;
    const double *add = s->add, *sub = s->sub;
    int64_t k = s->k, lda = s->lda;
    double t0;

    ERR_ASSERT(n >= 1 && n <= ws->max_n && k >= 0);
    ERR_ASSERT(side == ESD_SIDE_COLS ? lda >= n : lda >= k);
    if (k == 0)
        return;
    t0 = clock_thread_cpu_s();
    if (add != NULL)
        cblas_dsyrk(CblasRowMajor, CblasUpper, t, (blasint)n, (blasint)k, 1.0, add, (blasint)lda,
                    1.0, ws->gram, (blasint)n);
    if (sub != NULL)
        cblas_dsyrk(CblasRowMajor, CblasUpper, t, (blasint)n, (blasint)k, -1.0, sub, (blasint)lda,
                    1.0, ws->gram, (blasint)n);
    ws->st.gram_update_s += clock_thread_cpu_s() - t0;
    ws->st.n_gram_update++;
}

/* 1 if the Gram g (side n) may skip the driver's scaling: its largest entry
 * (the largest diagonal one, as G is positive semi-definite; a factor 4
 * margin for rounding) lies inside [sqrt(smlnum), sqrt(bignum)]. */
static int esd_unscaled(const double *g, int64_t n)
{
    double smlnum = LAPACKE_dlamch('S') / LAPACKE_dlamch('P'), dmax = 0;

    for (int64_t i = 0; i < n; i++)
        dmax = g[i * n + i] > dmax ? g[i * n + i] : dmax;
    return n >= 2 && (dmax == 0 || (dmax > 4 * sqrt(smlnum) && dmax < 0.25 * sqrt(1 / smlnum)));
}

/* Values-only eigensolver on g (side n, lower column-major), eigenvalues
 * into out; what dsyevd_2stage does, timed per stage. Returns LAPACK info. */
static lapack_int esd_solve(struct esd_ws *ws, double *g, int64_t n, double *out)
{
    lapack_int nn = (lapack_int)n, info = 0;
    double *ev = ws->trd, *tau = ev + esd_lines((size_t)ws->max_n);
    double *hous = tau + esd_lines((size_t)ws->max_n), *work = hous + esd_lines((size_t)ws->lhous);
    double t0 = clock_thread_cpu_s(), t1;

    if (!esd_unscaled(g, n)) {
        info = LAPACKE_dsyevd_2stage_work(LAPACK_COL_MAJOR, 'N', 'L', nn, g, nn, out, ws->work,
                                          ws->lwork, ws->iwork, ws->liwork);
        ws->st.reduce_s += clock_thread_cpu_s() - t0;
        return info;
    }
    LAPACK_dsytrd_2stage("N", "L", &nn, g, &nn, out, ev, tau, hous, &ws->lhous, work, &ws->ltrd,
                         &info);
    t1 = clock_thread_cpu_s();
    ws->st.reduce_s += t1 - t0;
    if (info == 0)
        info = LAPACKE_dsterf_work(nn, out, ev);
    ws->st.eigs_s += clock_thread_cpu_s() - t1;
    return info;
}

enum err_code esd_gram_eigs(struct esd_ws *ws, int64_t n, double scale, int keep, double *out,
                            struct err *e)
{
    double *g = ws->gram;
    lapack_int info;

    ERR_ASSERT(n >= 1 && n <= ws->max_n);
    /* NaN/Inf anywhere in the block (or overflow) shows on the diagonal, a
     * sum of squares: report NaN eigenvalues rather than feed LAPACK. */
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(g[i * n + i])) {
            for (int64_t k = 0; k < n; k++)
                out[k] = NAN;
            return ERR_OK;
        }
    if (keep) {
        double t0 = clock_thread_cpu_s();
        memcpy(ws->copy, ws->gram, (size_t)n * (size_t)n * sizeof(double));
        g = ws->copy;
        ws->st.copy_s += clock_thread_cpu_s() - t0;
    }
    ws->st.n_eigs++;
    info = esd_solve(ws, g, n, out);
    if (info < 0)
        return err_set(e, ERR_INTERNAL, "dsyevd_2stage: bad argument %d", (int)-info);
    if (info > 0)
        return err_set(e, ERR_NUMERIC, "dsyevd_2stage did not converge (info %d)", (int)info);
    for (int64_t i = 0; i < n; i++) {
        double v = out[i] > 0 ? out[i] : 0.0; /* rounding noise below 0 */
        out[i] = v * scale;
    }
    return ERR_OK;
}

enum err_code esd_eigs(struct esd_ws *ws, const struct esd_block *b, double scale, double *out,
                       struct err *e)
{
    enum esd_side side = b->h >= b->w ? ESD_SIDE_COLS : ESD_SIDE_ROWS;
    enum err_code rc;

    if (b->h == 0 || b->w == 0)
        return ERR_OK;
    rc = esd_gram_set(ws, b, side, e);
    if (rc)
        return rc;
    return esd_gram_eigs(ws, b->h < b->w ? b->h : b->w, scale, 0, out, e);
}
