/* farms_fields.h -- the one list of per-layer result fields.
 *
 * FARMS_RESULT_FIELDS(X) names every number a struct farms_result carries
 * besides status, reason, warning and layout. Everything that lists them is
 * generated from it: the struct members (farms.h), the result columns of
 * both database drivers with their binds, reads, copies and new-column
 * migrations (storage/), the history metrics (enum store_metric), the JSON
 * of a layer and a result (api/json.c) and the CSV and --wide table of
 * `farmsd analyze` (server/cli_analyze.c). Adding a field is one line here
 * plus the code in core/numerics that computes it.
 *
 * X(member, NAME, type, "key", "column", json, history, width, decimals, since)
 *   member    struct farms_result member
 *   NAME      upper-case name for enum constants (STORE_METRIC_<NAME>)
 *   type      REAL (double; NaN is stored as NULL) or INT (int64_t)
 *   key       JSON key, CSV column, table header and history metric name
 *   column    SQL column in tables results and layers, the same in both
 *             drivers: not a PostgreSQL system column (xmin, xmax, ctid, ...),
 *             hence x_min and x_max
 *   json      when JSON and CSV carry the value rather than null:
 *             IF_OK (status ok), IF_OK_NONNEG (status ok and value >= 0),
 *             IF_POSITIVE (value > 0, any status), NEVER (stored only)
 *   history   HISTORY (a history metric: GET .../history) or NOHISTORY
 *   width     column width in `farmsd analyze --wide` (0: not in the table)
 *   decimals  decimals there
 *   since     database schema version that added the column (0: the first
 *             schema); the drivers add it when they migrate past `since`
 * The order is that of the JSON objects, the CSV columns and the history
 * metrics; fields JSON never shows come last (but matrix_rank, shown since
 * schema 8, keeps its place after them). The member alpha_hat (SQL column
 * alpha_hat) has WeightWatcher's name alpha_weighted everywhere else; the
 * history metric name "alpha_hat" is still accepted (storage).
 *
 * Plain macros, no state: usable from any thread.
 */
#ifndef CORE_NUMERICS_FARMS_FIELDS_H
#define CORE_NUMERICS_FARMS_FIELDS_H

#include <stdint.h>

/* clang-format off */
#define FARMS_RESULT_FIELDS(X)                                                                    \
    X(alpha,             ALPHA,             REAL, "alpha",             "alpha",                   \
      IF_OK,        HISTORY,   8, 4, 0) /* power law exponent; conv FARMS: mean */                \
    X(D,                 D,                 REAL, "D",                 "D",                       \
      IF_OK,        HISTORY,   7, 4, 0) /* KS distance; conv FARMS: mean */                       \
    X(xmin,              XMIN,              REAL, "xmin",              "x_min",                   \
      IF_OK,        HISTORY,   0, 0, 0) /* chosen xmin; conv FARMS: mean */                       \
    X(n_tail,            N_TAIL,            INT,  "n_tail",            "n_tail",                  \
      IF_OK_NONNEG, HISTORY,   7, 0, 0) /* n_fitted - xmin_index; conv FARMS: -1 */               \
    X(num_eigs,          NUM_EIGS,          INT,  "num_eigs",          "num_eigs",                \
      IF_POSITIVE,  HISTORY,   8, 0, 0) /* pooled eigenvalues (all ESDs) */                       \
    X(windows,           WINDOWS,           INT,  "windows",           "windows",                 \
      IF_POSITIVE,  HISTORY,   0, 0, 0) /* layout.windows */                                      \
    X(spectral_norm,     SPECTRAL_NORM,     REAL, "spectral_norm",     "spectral_norm",           \
      IF_OK,        HISTORY,   0, 0, 0) /* max eigenvalue; conv FARMS: mean */                    \
    X(norm,              NORM,              REAL, "norm",              "norm",                    \
      IF_OK,        HISTORY,   0, 0, 0) /* sum of eigenvalues; conv FARMS: mean */                \
    X(alpha_hat,         ALPHA_HAT,         REAL, "alpha_weighted",    "alpha_hat",               \
      IF_OK,        HISTORY,   0, 0, 0) /* alpha * log10(spectral_norm); conv: mean */            \
    X(stable_rank,       STABLE_RANK,       REAL, "stable_rank",       "stable_rank",             \
      IF_OK,        HISTORY,   0, 0, 0) /* norm / spectral_norm; conv FARMS: mean */              \
    X(norm_stable_rank,  NORM_STABLE_RANK,  REAL, "norm_stable_rank",  "norm_stable_rank",        \
      IF_OK,        HISTORY,   0, 0, 0) /* norm / num_eigs; conv FARMS: mean */                   \
    X(log_norm,          LOG_NORM,          REAL, "log_norm",          "log_norm",                \
      IF_OK,        HISTORY,   0, 0, 0) /* log10(norm) */                                         \
    X(log_spectral_norm, LOG_SPECTRAL_NORM, REAL, "log_spectral_norm", "log_spectral_norm",       \
      IF_OK,        HISTORY,   0, 0, 0) /* log10(spectral_norm) */                                \
    X(entropy,           ENTROPY,           REAL, "entropy",           "entropy",                 \
      IF_OK,        HISTORY,   0, 0, 0) /* WeightWatcher entropy, all eigenvalues */              \
    X(xmax,              XMAX,              REAL, "xmax",              "x_max",                   \
      IF_OK,        HISTORY,   0, 0, 5) /* largest fitted eigenvalue; conv FARMS: mean */         \
    X(sigma,             SIGMA,             REAL, "sigma",             "sigma",                   \
      IF_OK,        HISTORY,   0, 0, 8) /* alpha fit's standard error (WeightWatcher) */        \
    X(num_pl_spikes,     NUM_PL_SPIKES,     INT,  "num_pl_spikes",     "num_pl_spikes",           \
      IF_OK_NONNEG, HISTORY,   0, 0, 8) /* eigenvalues >= xmin (WeightWatcher) */               \
    X(log_alpha_norm,    LOG_ALPHA_NORM,    REAL, "log_alpha_norm",    "log_alpha_norm",          \
      IF_OK,        HISTORY,   0, 0, 8) /* log10(sum lambda^alpha) (WeightWatcher) */           \
    X(rank_loss,         RANK_LOSS,         INT,  "rank_loss",         "rank_loss",               \
      IF_OK_NONNEG, HISTORY,   0, 0, 8) /* sum over slices of (len - rank) (WeightWatcher) */   \
    X(weak_rank_loss,    WEAK_RANK_LOSS,    INT,  "weak_rank_loss",    "weak_rank_loss",          \
      IF_OK_NONNEG, NOHISTORY, 0, 0, 8) /* count(lambda < 1e-6) (WeightWatcher) */              \
    X(sv_max,            SV_MAX,            REAL, "sv_max",            "sv_max",                  \
      IF_OK,        NOHISTORY, 0, 0, 8) /* largest singular value (WeightWatcher) */            \
    X(sv_min,            SV_MIN,            REAL, "sv_min",            "sv_min",                  \
      IF_OK,        NOHISTORY, 0, 0, 8) /* WeightWatcher's sv_min (max of slice minima) */      \
    X(num_spikes,        NUM_SPIKES,        INT,  "num_spikes",        "num_spikes",              \
      IF_OK_NONNEG, HISTORY,   0, 0, 8) /* MP fit: eigenvalues above the TW bulk edge */        \
    X(sigma_mp,          SIGMA_MP,          REAL, "sigma_mp",          "sigma_mp",                \
      IF_OK,        HISTORY,   0, 0, 8) /* MP fit: sigma of the bulk */                         \
    X(mp_softrank,       MP_SOFTRANK,       REAL, "mp_softrank",       "mp_softrank",             \
      IF_OK,        HISTORY,   0, 0, 8) /* MP fit: bulk_max / lambda_max (rescaled) */          \
    X(bulk_min,          BULK_MIN,          REAL, "bulk_min",          "bulk_min",                \
      IF_OK,        NOHISTORY, 0, 0, 8) /* MP fit: bulk's lower edge */                         \
    X(bulk_max,          BULK_MAX,          REAL, "bulk_max",          "bulk_max",                \
      IF_OK,        NOHISTORY, 0, 0, 8) /* MP fit: bulk's upper edge */                         \
    X(w_scale,           W_SCALE,           REAL, "W_scale",           "w_scale",                 \
      IF_OK,        NOHISTORY, 0, 0, 8) /* MP fit: sqrt(n / sum lambda) */                      \
    X(rand_distance,     RAND_DISTANCE,     REAL, "rand_distance",     "rand_distance",           \
      IF_OK,        HISTORY,   0, 0, 8) /* randomize: ESD vs randomized copy's ESD */           \
    X(num_traps,         NUM_TRAPS,         INT,  "num_traps",         "num_traps",               \
      IF_OK_NONNEG, HISTORY,   0, 0, 8) /* randomize: correlation traps */                      \
    X(xmin_index,        XMIN_INDEX,        INT,  "xmin_index",        "xmin_index",              \
      NEVER,        NOHISTORY, 0, 0, 0) /* in the fitted ESD; conv FARMS: -1 */                   \
    X(n_fitted,          N_FITTED,          INT,  "n_fitted",          "n_fitted",                \
      NEVER,        NOHISTORY, 0, 0, 0) /* after filter_zeros; conv FARMS: total */               \
    X(matrix_rank,       MATRIX_RANK,       INT,  "matrix_rank",       "matrix_rank",             \
      IF_OK_NONNEG, NOHISTORY, 0, 0, 0) /* count(sigma > sigma_max * N * eps64) */
/* clang-format on */

/* The C type of a field's `type`. */
#define FARMS_FIELD_CTYPE_REAL double
#define FARMS_FIELD_CTYPE_INT  int64_t

/* FARMS_FIELD_WHEN_##history(...) and FARMS_FIELD_SHOWN_##json(...): the
 * arguments for history metrics / fields JSON shows, nothing for others. */
#define FARMS_FIELD_WHEN_HISTORY(...)       __VA_ARGS__
#define FARMS_FIELD_WHEN_NOHISTORY(...)     /* nothing */
#define FARMS_FIELD_SHOWN_IF_OK(...)        __VA_ARGS__
#define FARMS_FIELD_SHOWN_IF_OK_NONNEG(...) __VA_ARGS__
#define FARMS_FIELD_SHOWN_IF_POSITIVE(...)  __VA_ARGS__
#define FARMS_FIELD_SHOWN_NEVER(...)        /* nothing */

#endif /* CORE_NUMERICS_FARMS_FIELDS_H */
