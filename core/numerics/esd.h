/* esd.h -- eigenvalues of (sub)matrices in float64 through OpenBLAS/LAPACKE
 * (docs/numerics.md, Eigenvalues).
 *
 * The empirical spectral density of a matrix A (h x w) is the multiset of its
 * squared singular values, i.e. the eigenvalues of the Gram matrix on its
 * smaller side (A^T A when h >= w, else A A^T). The Gram is formed in float64
 * with dsyrk directly on the caller's row-major data (any leading dimension:
 * a window of a larger matrix needs no copy) and its eigenvalues come from a
 * values-only symmetric eigensolver; tiny negative values (rounding noise,
 * ~1e-16 lambda_max) are clamped to 0. A float32 Gram would not be accurate
 * enough (Eigenvalues) and is not offered.
 *
 * Sliding windows: the Gram kept in the workspace can be updated by a rank-k
 * change (esd_gram_update) when a window slides along the contracted
 * dimension, which is much cheaper than forming it again.
 *
 * A struct esd_ws is a per-worker scratch area (Gram, eigensolver copy,
 * LAPACK work arrays, a gather buffer), allocated once at the largest size
 * and reused (style §5). It is not thread-safe: one per thread. The functions
 * keep no other state; distinct workspaces may be used concurrently (BLAS
 * threading is the caller's choice: openblas_set_num_threads).
 *
 * Timings: every workspace accumulates, per stage, the CPU time of the
 * calling thread spent in its calls (struct esd_stats: Gram formed, Gram
 * updated, tridiagonal reduction, eigenvalues of the tridiagonal, copy kept
 * for further updates). Two clock reads per stage per window (~0.1 us
 * against ~0.1 s of work). BLAS threads other than the caller's are not
 * counted: read them with one BLAS thread.
 */
#ifndef CORE_ESD_H
#define CORE_ESD_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Largest Gram side accepted (the eigensolver's memory is 2 * n^2 doubles). */
#define ESD_MAX_N 65536

struct esd_ws; /* opaque */

/* A row-major block A of doubles: h x w, rows lda >= w apart (a window of a
 * larger matrix, or the whole of it with lda == w). Borrowed. */
struct esd_block {
    const double *a; /* first element */
    int64_t h, w;    /* rows, columns */
    int64_t lda;     /* leading dimension (elements from one row to the next) */
};

/* The slices that enter and leave a window sliding along the contracted
 * dimension (esd_gram_update): k of them each, rows lda apart. Borrowed. */
struct esd_slide {
    const double *add; /* the k entering slices, or NULL */
    const double *sub; /* the k leaving slices, or NULL */
    int64_t k;         /* slices entering (and leaving) */
    int64_t lda;       /* leading dimension of the matrix they lie in */
};

/* Which Gram a call forms for a row-major block A (h x w, leading dim lda). */
enum esd_side {
    ESD_SIDE_COLS, /* G = A^T A (w x w): contract over rows */
    ESD_SIDE_ROWS  /* G = A A^T (h x h): contract over columns */
};

/* Per-stage totals of one workspace (esd_ws_stats). Plain data. */
struct esd_stats {
    int64_t n_gram_set;    /* Grams formed from scratch (esd_gram_set) */
    int64_t n_gram_update; /* sliding updates (esd_gram_update) */
    int64_t n_eigs;        /* eigenvalue calls that ran the solver */
    double gram_set_s;     /* thread CPU seconds in dsyrk forming Grams */
    double gram_update_s;  /* ... in the rank-k sliding updates */
    double copy_s;         /* ... copying a kept Gram for the solver */
    double reduce_s;       /* ... reducing to tridiagonal (dsytrd_2stage) */
    double eigs_s;         /* ... eigenvalues of the tridiagonal (dsterf), clamp, scale */
};

/* --- Workspace --------------------------------------------------------- */

/* Bytes a workspace for Gram side `max_n` and `max_gather` gather elements
 * takes (for budgeting before esd_ws_new). Returns 0 if out of range. */
size_t esd_ws_bytes(int64_t max_n, int64_t max_gather);

/* A workspace for Gram matrices up to max_n x max_n and a gather buffer of
 * `max_gather` doubles (0: none). Returns a new workspace in *out; free with
 * esd_ws_free(). ERR_TOOBIG if max_n > ESD_MAX_N or sizes overflow, ERR_NOMEM. */
enum err_code esd_ws_new(int64_t max_n, int64_t max_gather, struct esd_ws **out, struct err *e);

/* Free `ws`. NULL is a no-op. */
void esd_ws_free(struct esd_ws *ws);

/* The gather buffer (esd_ws_new's max_gather doubles, NULL if 0).
 * Borrowed: valid until esd_ws_free(ws). */
double *esd_ws_gather(struct esd_ws *ws);

/* The stage timings accumulated since esd_ws_new or the last
 * esd_ws_stats_reset. Borrowed: valid until esd_ws_free(ws). Cannot fail. */
const struct esd_stats *esd_ws_stats(const struct esd_ws *ws);

/* Zero the stage timings. Cannot fail. */
void esd_ws_stats_reset(struct esd_ws *ws);

/* Add the totals of `b` to `a` (summing the workspaces of several workers).
 * Cannot fail. */
void esd_stats_add(struct esd_stats *a, const struct esd_stats *b);

/* Capacity of the workspace (Gram side, gather elements). Cannot fail. */
int64_t esd_ws_max_n(const struct esd_ws *ws);
int64_t esd_ws_max_gather(const struct esd_ws *ws);

/* --- Gram matrix kept in the workspace ----------------------------------- */

/* Form the Gram of block `b` on `side` in the workspace. ERR_INVAL if that
 * side exceeds the capacity or b->lda < b->w. */
enum err_code esd_gram_set(struct esd_ws *ws, const struct esd_block *b, enum esd_side side,
                           struct err *e);

/* Update the Gram kept in the workspace, formed on `side` with side length n
 * (the same as the esd_gram_set call), for a window that slides along the
 * contracted dimension: add the contribution of the s->k entering slices
 * s->add and subtract that of the s->k leaving slices s->sub.
 * For ESD_SIDE_COLS the slices are k rows of length n (row-major, lda);
 * for ESD_SIDE_ROWS they are k columns of length n, i.e. an n x k block.
 * Exact in exact arithmetic; float64 rounding adds ~1e-16 * lambda_max per
 * update. Cannot fail for consistent arguments (asserted). */
void esd_gram_update(struct esd_ws *ws, int64_t n, enum esd_side side, const struct esd_slide *s);

/* Eigenvalues of the Gram in the workspace (side n), ascending, clamped at 0,
 * multiplied by `scale`, written to out[0..n-1]. keep != 0 leaves the Gram
 * intact for further updates (costs one n x n copy). LAPACK info < 0 ->
 * ERR_INTERNAL, info > 0 -> ERR_NUMERIC. A Gram with a non-finite diagonal
 * (NaN/Inf in the data) gives n NaN values and ERR_OK. */
enum err_code esd_gram_eigs(struct esd_ws *ws, int64_t n, double scale, int keep, double *out,
                            struct err *e);

/* --- One-call convenience ------------------------------------------------ */

/* The min(h, w) squared singular values of block `b`, ascending, times
 * `scale`, into out (min(h, w) slots). h or w == 0 writes nothing. Errors as
 * above. */
enum err_code esd_eigs(struct esd_ws *ws, const struct esd_block *b, double scale, double *out,
                       struct err *e);

/* Room for n doubles, freed with free(), 64-byte aligned. Blocks of 32 MiB
 * and more are 2 MiB-aligned and advised for transparent huge pages, so a fresh block's
 * first touch faults 2 MiB pages. NULL when out of memory. Thread-safe. */
double *esd_f64_alloc(size_t n);

#endif /* CORE_ESD_H */
