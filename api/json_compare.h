/* json_compare.h -- the comparison of two checkpoints as JSON, one builder
 * for GET /v1/compare and `farmsd compare` (so both print the same object).
 *
 * The layers of both sides are matched by core/compare (name, then block,
 * expert and role); every matched pair becomes
 *   {"key", "matched_by", "name_a", "name_b", "block", "role",
 *    "a": {<metric>: value|null, ..., "status", "warning"}, "b": {...},
 *    "delta": {<metric>: b - a | null, ...}}
 * in side a's order, the unmatched weight matrices are listed by name in
 * "only_a" / "only_b", and "summary" holds per metric the plain mean over
 * each side's analysed weight matrices and their difference:
 *   {<metric>: {"a": mean|null, "b": mean|null, "delta": b - a|null}}.
 * Metrics are history metrics (storage/store_history.h), by name; a value is
 * null unless the layer's status is ok, a delta null unless both are numbers.
 *
 * Ownership: rows are borrowed for the call; the members are added to the
 * caller's object. Stateless: thread-safe.
 */
#ifndef API_JSON_COMPARE_H
#define API_JSON_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/dtype.h"
#include "core/err.h"
#include "core/formats/layers.h"
#include "core/numerics/farms.h"

struct json_compare_row {         /* one layer of a side; everything borrowed */
    const char *name;             /* display name */
    enum layer_kind kind;         /* as analysed */
    enum dtype dtype;             /* stored dtype */
    int ndim;                     /* 0..16 */
    const int64_t *shape;         /* shape[0..ndim) */
    const struct farms_result *r; /* status, warning and metrics */
};

struct json_compare_side {
    const struct json_compare_row *rows; /* n rows, canonical order */
    size_t n;
};

/* Add "layers", "only_a", "only_b" and "summary" (above) for sides `a` and
 * `b` to `root`, with the metrics metrics[0..n_metrics) (enum store_metric
 * values; metrics NULL: every history metric in its order). ERR_NOMEM is
 * the only failure (root may then hold some of the members). */
enum err_code json_compare_add(cJSON *root, const struct json_compare_side *a,
                               const struct json_compare_side *b, const int *metrics,
                               size_t n_metrics, struct err *e);

#endif /* API_JSON_COMPARE_H */
