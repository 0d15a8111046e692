/* engine.h -- analyse the layers of an opened checkpoint on a worker pool.
 *
 * The engine is the one path from a struct ckpt to per-layer FARMS results,
 * shared by `farmsd analyze` and the service's job runner:
 *   engine_select: list the model's tensors in canonical layer order, with
 *                  their display names (wrapper prefixes removed), kinds and
 *                  the reason each skipped tensor is skipped;
 *   engine_run:    analyse every selected row, fanning each layer's FARMS
 *                  units out over the pool's workers.
 * Optimizer state and other tensors outside the model weights are not rows.
 * The rules (which tensors are analysed, their layout, the cache key's
 * analysis key and engine version) are core/analysis.h; this module reads
 * the bytes, runs the units on the pool and reports progress.
 *
 * Ownership: a struct engine_report and its rows are owned by the caller;
 * free with engine_report_free(). engine_run borrows the ckpt and pool.
 * Thread-safety: one call at a time per report; the pool is shared safely.
 */
#ifndef SERVER_ENGINE_H
#define SERVER_ENGINE_H

#include <regex.h>
#include <stddef.h>

#include "core/formats/ckpt.h"
#include "core/numerics/esd.h"
#include "core/numerics/esd_hist.h"
#include "core/numerics/farms.h"
#include "core/formats/layers.h"
#include "core/formats/thash.h"
#include "server/pool.h"

struct engine_stages {    /* where an analysed layer's time went (engine_run) */
    double load_s;        /* read, verify, decode to float64: wall seconds */
    double units_s;       /* the units on the pool, submit to last done: wall seconds */
    double finish_s;      /* fit, metrics, histogram: wall seconds */
    struct esd_stats esd; /* inside the units, summed over the workers: CPU seconds */
};

struct engine_layer {       /* one row of a report */
    char *name;             /* owned: display name (wrapper prefixes removed) */
    size_t tensor;          /* index in the ckpt */
    struct layer_info info; /* kind, role, block, why not analysed */
    enum dtype dtype;       /* stored dtype */
    int ndim;
    int64_t shape[CKPT_MAX_RANK];
    int selected;                /* 1: analysed by engine_run (analysis_select) */
    char sha256[THASH_HEX_LEN];  /* hex SHA-256 of the tensor bytes, "" if not hashed */
    struct farms_result res;     /* status, reason and metrics (valid after engine_run) */
    struct esd_hist esd;         /* histogram of the pooled eigenvalues with the fit (after
                                    engine_run; n_eigs 0 when the layer was not analysed) */
    struct engine_stages stages; /* after engine_run; zero when not analysed */
};

struct engine_report {
    struct engine_layer *layers; /* owned, n entries, canonical order */
    size_t n;
    enum layer_ordering ordering;
};

/* Called on the engine's thread after each analysed layer (done of total).
 * Returning non-zero stops the run: engine_run then returns ERR_CANCELED. */
typedef int engine_progress_fn(void *arg, size_t done, size_t total, const struct engine_layer *row,
                               double seconds);

struct engine_opts {
    const struct farms_params *params; /* analysis settings */
    const regex_t *include;            /* only names matching (NULL: all) */
    const regex_t *exclude;            /* drop names matching (NULL: none) */
    int hash;                          /* compute sha256 of every row's tensor */
    engine_progress_fn *progress;      /* may be NULL */
    void *progress_arg;
};

/* List the rows of `c` (see above) into *out. Skipped rows get status
 * FARMS_STATUS_SKIPPED and a reason; selected rows stay to be analysed.
 * With opts->hash, every row's tensor is hashed (reads its bytes). */
enum err_code engine_select(const struct ckpt *c, const struct engine_opts *opts,
                            struct engine_report *out, struct err *e);

/* Analyse every selected row of `r` on `pool`. A layer whose fit fails is a
 * result (status failed), not an error; errors are I/O, memory and
 * numerical failures of the engine itself, and ERR_CANCELED when the
 * progress callback asked to stop. A row with a sha256 (engine_select with
 * opts->hash) is analysed only if the bytes read now hash the same: else
 * the run fails with ERR_IO, category "changed" (the file changed since
 * engine_select), before that row is analysed or reported to `progress`. */
enum err_code engine_run(const struct ckpt *c, struct pool *pool, const struct engine_opts *opts,
                         struct engine_report *r, struct err *e);

/* Free the rows of `r` and empty it. Cannot fail. */
void engine_report_free(struct engine_report *r);

#endif /* SERVER_ENGINE_H */
