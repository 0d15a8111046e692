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
 * metrics; fields JSON never shows come last.
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
    X(alpha_hat,         ALPHA_HAT,         REAL, "alpha_hat",         "alpha_hat",               \
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
    X(xmin_index,        XMIN_INDEX,        INT,  "xmin_index",        "xmin_index",              \
      NEVER,        NOHISTORY, 0, 0, 0) /* in the fitted ESD; conv FARMS: -1 */                   \
    X(n_fitted,          N_FITTED,          INT,  "n_fitted",          "n_fitted",                \
      NEVER,        NOHISTORY, 0, 0, 0) /* after filter_zeros; conv FARMS: total */               \
    X(matrix_rank,       MATRIX_RANK,       INT,  "matrix_rank",       "matrix_rank",             \
      NEVER,        NOHISTORY, 0, 0, 0) /* count(sigma > sigma_max * N * eps64) */
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
