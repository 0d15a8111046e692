/* farms.h -- FARMS per-layer eigenspectrum analysis (docs/numerics.md).
 *
 * A layer is a dense 2-D matrix (analysed as stored; the caller transposes
 * a GPT-2 Conv1D first) or a 4-D Conv2D kernel (out, in, kh, kw), row-major
 * float64. Parameters (struct farms_params, presets in core/preset.h) select
 *   - no subsampling (window_rows == 0): whole dense matrices, all conv slices;
 *   - FARMS windows (window_rows > 0): dense windows (LLM variant with the
 *     window clamp, or the image-classification variant with the reference's
 *     negative-start slicing), conv divisions (of cols x cols blocks;
 *     window_rows and windows_per_dim are ignored for conv, as in the paper).
 * The pooled, sorted eigenvalues of each ESD are fitted with pl_fit (Power-law fit) and
 * reduced to per-layer metrics (Metrics) plus WeightWatcher's columns
 * (WeightWatcher columns): the cheap ones always, the Marchenko-Pastur fit
 * under p.mp_fit, and under p.randomize the ESD of a randomized copy (the
 * elements permuted by a permutation seeded with p.seed, farms_ww.h), for
 * rand_distance and num_traps.
 *
 * Work split for the caller's threads (core/ has none): a plan is cut into
 * independent units (a unit forms one Gram and slides it across a run of
 * overlapping windows, or handles one conv kernel position; under
 * p.randomize every unit is there twice, the second half reading the
 * randomized copy window by window). farms_unit_run
 * is thread-safe for distinct units with distinct workspaces; every other
 * call on a plan must not overlap with any call on the same plan.
 *
 *   farms_plan_new -> farms_plan_ws_need -> esd_ws_new (one per worker)
 *   -> farms_unit_run for u in [0, farms_plan_n_units) (any order, parallel)
 *   -> farms_plan_finish -> farms_plan_free
 *
 * farms_analyze does all of it on the calling thread.
 */
#ifndef CORE_FARMS_H
#define CORE_FARMS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/numerics/esd.h"
#include "core/numerics/farms_fields.h"
#include "core/numerics/farms_layout.h"
#include "core/numerics/powerlaw.h"

/* Warning thresholds (documented in farms_warning). */
#define FARMS_SUSPECT_MIN_TAIL 10
#define FARMS_SUSPECT_MAX_D    0.25

enum farms_status {
    FARMS_STATUS_OK,
    FARMS_STATUS_SKIPPED, /* too few eigenvalues; `reason` says why */
    FARMS_STATUS_FAILED   /* the power-law fit failed; `reason` says why */
};

/* WeightWatcher-style verdict on alpha (docs/numerics.md, Metrics), plus one of ours:
 * suspect_fit = alpha within [2, 6] but the fit is weak: the tail has fewer
 * than FARMS_SUSPECT_MIN_TAIL eigenvalues (for conv FARMS: the shortest
 * division tail) or D > FARMS_SUSPECT_MAX_D. */
enum farms_warning {
    FARMS_WARNING_NONE,
    FARMS_WARNING_UNDER_TRAINED, /* alpha > 6 */
    FARMS_WARNING_OVER_TRAINED,  /* alpha < 2 */
    FARMS_WARNING_SUSPECT_FIT
};

/* Per-ESD fit (one for dense and conv full; one per division for conv FARMS). */
struct farms_esd {
    struct pl_result fit;    /* the power-law fit */
    int64_t num_eigs;        /* eigenvalues in this ESD */
    double spectral_norm;    /* max */
    double norm;             /* sum */
    double alpha_hat;        /* alpha * log10(spectral_norm) */
    double stable_rank;      /* sum / max */
    double norm_stable_rank; /* sum / count */
};

/* One layer's result. The numbers are the fields of FARMS_RESULT_FIELDS
 * (farms_fields.h: alpha, D, xmin, n_tail, num_eigs, windows, spectral_norm,
 * ..., each documented there); a skipped or failed layer has NaN for the
 * fit's values. */
struct farms_result {
    enum farms_status status;
    char reason[160]; /* why skipped / failed; "" when ok */
    enum farms_warning warning;
#define FARMS__MEMBER(member, NAME, type, ...) FARMS_FIELD_CTYPE_##type member;
    FARMS_RESULT_FIELDS(FARMS__MEMBER)
#undef FARMS__MEMBER
    struct farms_layout layout;
};

struct farms_plan; /* opaque */

/* --- Plan: parallel analysis of one layer --------------------------------- */

/* Plan the analysis of a layer of shape `s` (2 dims for dense, 4 for conv;
 * copied). `n_parallel_hint` (>= 1) is the number of workers the caller
 * will use: runs of sliding windows are split so there are at least that
 * many units where possible. A layer to be skipped gets a plan with 0 units.
 * Returns a new plan in *out; free with farms_plan_free(). */
enum err_code farms_plan_new(const struct farms_params *p, const struct farms_shape *s,
                             int n_parallel_hint, struct farms_plan **out, struct err *e);

/* Number of units. Cannot fail. */
int64_t farms_plan_n_units(const struct farms_plan *plan);

/* Workspace any unit of the plan needs: pass to esd_ws_new. Cannot fail. */
void farms_plan_ws_need(const struct farms_plan *plan, int64_t *max_n, int64_t *max_gather);

/* Run unit u on the layer's data `w` (row-major, the shape given to
 * farms_plan_new) with workspace `ws` (at least farms_plan_ws_need).
 * Writes the unit's eigenvalues into plan-owned slots. Thread-safe for
 * distinct u with distinct ws. Errors: those of esd_gram_eigs, ERR_INVAL for
 * a too small workspace. */
enum err_code farms_unit_run(struct farms_plan *plan, int64_t u, const double *w, struct esd_ws *ws,
                             struct err *e);

/* After every unit ran: pool and sort each ESD, fit, compute the metrics
 * into *out. A skipped layer or failed fit is a result (out->status), not an
 * error; errors are those of pl_fit (ERR_NOMEM, ERR_INVAL). */
enum err_code farms_plan_finish(struct farms_plan *plan, struct farms_result *out, struct err *e);

/* After farms_plan_finish: number of ESDs and the fit of ESD d, and its
 * ascending eigenvalues (count in *n). Borrowed: valid until
 * farms_plan_free(plan). NULL if d is out of range or not finished. */
int64_t farms_plan_n_esd(const struct farms_plan *plan);
const struct farms_esd *farms_plan_esd(const struct farms_plan *plan, int64_t d);
const double *farms_plan_eigs(const struct farms_plan *plan, int64_t d, int64_t *n);

/* Free `plan`. NULL is a no-op. */
void farms_plan_free(struct farms_plan *plan);

/* --- One call --------------------------------------------------------------- */

/* Plan the layer of shape `s`, run every unit on its data `w` (row-major)
 * on the calling thread with a workspace of its own, finish. Errors as
 * above. */
enum err_code farms_analyze(const struct farms_params *p, const struct farms_shape *s,
                            const double *w, struct farms_result *out, struct err *e);

/* Static names: "ok"/"skipped"/"failed"; "none"/"under_trained"/
 * "over_trained"/"suspect_fit". Never NULL. */
const char *farms_status_name(enum farms_status s);
const char *farms_warning_name(enum farms_warning w);

#endif /* CORE_FARMS_H */
