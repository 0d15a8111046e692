/* farms_layout.h -- FARMS parameters and the layout of a layer: which
 * submatrices (dense windows, conv kernel slices and divisions) are
 * decomposed (docs/numerics.md, Windows). Part of farms.h, which includes it;
 * the analysis itself is declared there.
 *
 * Plain data and pure functions on caller memory: thread-safe.
 */
#ifndef CORE_FARMS_LAYOUT_H
#define CORE_FARMS_LAYOUT_H

#include <stdint.h>

#include "core/err.h"
#include "core/numerics/powerlaw.h"

/* Bounds checked by farms_plan_new (and preset_set). */
#define FARMS_MAX_WINDOWS_PER_DIM 1000
#define FARMS_MAX_POOLED          ((int64_t)1 << 28) /* eigenvalues per layer (2 GiB) */

/* Room for the `weights=` regex including the NUL (printable ASCII only). */
#define FARMS_WEIGHTS_MAX 201

/* The `layout=` setting (docs/checkpoint-formats.md, Framework layouts). */
enum farms_tensor_layout {
    FARMS_TENSOR_LAYOUT_AUTO,  /* by the tensor's name (Keras leaves read (in, out) / HWIO) */
    FARMS_TENSOR_LAYOUT_TORCH, /* every tensor the PyTorch way */
    FARMS_TENSOR_LAYOUT_KERAS  /* every weight matrix the Keras way */
};

struct farms_params {
    int64_t window_rows;     /* num_row_samples; 0 = no subsampling (whole matrix) */
    double q_ratio;          /* window cols / window rows (Q_ratio), > 0 */
    int64_t windows_per_dim; /* sampling_ops_per_dim, >= 2 */
    int window_clamp;        /* 1: LLM variant (window side <= min(rows, cols)) */
    enum pl_xmin xmin;       /* xmin rule */
    double xmin_pos;         /* xmin_mid: index int(N / xmin_pos) */
    int bins;                /* xmin_peak histogram bins */
    double conv_norm;        /* conv eigenvalue scale (reference 0.5) */
    int filter_zeros;        /* fit only eigenvalues > eig_threshold */
    double eig_threshold;    /* EVALS_THRESH */
    int64_t min_eigs;        /* dense layers with fewer pooled eigenvalues are skipped */
    int include_embeddings;  /* analyse embedding tables (used by the caller) */
    int mp_fit;              /* 1: WeightWatcher's Marchenko-Pastur fit (num_spikes, ...) */
    int randomize;           /* 1: ESD of a randomized copy (rand_distance, num_traps) */
    int64_t seed;            /* randomize: seed of the element permutation, >= 0 */
    /* Selection settings, used by the caller (core/analysis.h), not by FARMS: */
    enum farms_tensor_layout tensor_layout; /* how tensor layouts are read (`layout=`) */
    char weights[FARMS_WEIGHTS_MAX];        /* POSIX ERE: display names analysed whatever their
                                               kind (`weights=`); "" for none */
};

enum farms_kind {
    FARMS_KIND_DENSE, /* 2-D (rows, cols) */
    FARMS_KIND_CONV2D /* 4-D (out, in, kh, kw) */
};

/* What FARMS sees of a layer before its values: kind and extents (the
 * values, row-major as the shape says, are passed where they are read).
 * Borrowed; farms_plan_new copies what it keeps. */
struct farms_shape {
    enum farms_kind kind;
    int n_dims;           /* 2 for dense, 4 for conv (anything else: ERR_INVAL) */
    const int64_t *shape; /* n_dims extents: (rows, cols) or (out, in, kh, kw) */
};

/* Which submatrices are decomposed. Dense: windows (one for no subsampling);
 * conv: kernel positions x divisions. */
struct farms_layout {
    int subsampled;      /* 0: whole matrix / all kernel slices */
    int64_t rows, cols;  /* analysed matrix; conv: slice (max(out,in), min(out,in)) */
    int64_t window_rows; /* dense FARMS: nrs after the optional clamp */
    int64_t window_cols; /* dense FARMS: ncs = int(nrs * Q) */
    int64_t row_step, col_step;
    int64_t n_row_windows, n_col_windows;
    int64_t windows; /* dense: number of windows; conv: number of ESDs (divisions, or 1) */
    int64_t window_h, window_w; /* effective window / block shape after slicing */
    int64_t kernel_positions;   /* conv: kh * kw; dense: 1 */
    int64_t divisions;          /* conv FARMS: rows // cols; else 0 */
    int64_t rows_used;          /* conv FARMS: divisions * block rows */
};

/* --- Parameters and layout (pure) ----------------------------------------- */

/* Check the ranges of every field (ERR_INVAL naming the field). */
enum err_code farms_params_check(const struct farms_params *p, struct err *e);

/* The window / block layout of a layer of shape `s` under `p`. ERR_INVAL
 * for bad shapes or parameters, ERR_TOOBIG if the pooled eigenvalue count
 * exceeds FARMS_MAX_POOLED. */
enum err_code farms_layout_compute(const struct farms_params *p, const struct farms_shape *s,
                                   struct farms_layout *out, struct err *e);

/* Effective first row / column of window i / j (after the reference's
 * Python slice rule); 0 for whole matrices and conv blocks' first row.
 * Cannot fail (i, j in range: asserted). */
int64_t farms_layout_row_start(const struct farms_layout *l, int64_t i);
int64_t farms_layout_col_start(const struct farms_layout *l, int64_t j);

#endif /* CORE_FARMS_LAYOUT_H */
