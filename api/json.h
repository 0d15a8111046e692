/* json.h -- the JSON shapes farmsd prints and serves (cJSON).
 *
 * One builder per object so that `farmsd analyze --format json` and the HTTP
 * API emit exactly the same layer objects. Non-finite numbers become null.
 * Returned cJSON trees are new: the caller owns them (cJSON_Delete).
 * Stateless: thread-safe.
 */
#ifndef API_JSON_H
#define API_JSON_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/dtype.h"
#include "core/numerics/farms.h"
#include "core/formats/layers.h"

/* An integer number item that prints exactly (cJSON prints numbers from a
 * double, and its round-trip check lets 16-digit integers such as
 * 9007199254740991 come out as 9.00719925474099e+15): steps. NULL on
 * allocation failure. */
cJSON *json_int_new(int64_t v);

/* Add json_int_new(v) to object `o` under `key`: 1, or 0 on allocation
 * failure. */
int json_add_int(cJSON *o, const char *key, int64_t v);

/* The analysis settings as an object, in canonical key order. NULL on
 * allocation failure. */
cJSON *json_params_new(const struct farms_params *p);

/* One layer object: {"name", "kind", "dtype", "shape", "block", "role",
 * "params", "status", "reason", then every field of FARMS_RESULT_FIELDS
 * that JSON shows ("alpha", "D", ...), then "warning"}. "block" and "role"
 * are layer_classify's of the name (null outside blocks / for no role),
 * "params" the product of the shape. Metrics are null unless status is ok;
 * reason is null when ok; warning null when none. NULL on allocation
 * failure. */
cJSON *json_layer_new(const char *name, enum layer_kind kind, enum dtype dtype, int ndim,
                      const int64_t *shape, const struct farms_result *r);

/* One cached analysis result without the tensor's identity (GET
 * /v1/tensors/{sha256}): {"status", "reason", "alpha", ... "entropy",
 * "warning"}, the members of json_layer_new after "params", same rules.
 * NULL on allocation failure (or r == NULL). */
cJSON *json_result_new(const struct farms_result *r);

/* A number, or null if not finite. Adds to `obj` under `key`; 0 on failure. */
int json_add_number(cJSON *obj, const char *key, double v);

/* Append `item` (NULL: its allocation failed) to array `arr`: 1, or 0 with
 * item freed. */
int json_append(cJSON *arr, cJSON *item);

#endif /* API_JSON_H */
