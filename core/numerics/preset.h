/* preset.h -- named FARMS parameter sets and `key=value` overrides
 * (docs/numerics.md, Presets and parameters).
 *
 *   farms-llm  paper LLM pruning set: LLM window variant (clamp), window 2000,
 *              Q 1.0, 10 windows per dimension, xmin_peak (100 bins),
 *              filter_zeros off, embeddings not analysed
 *   farms-cv   paper image-classification set: no window clamp, window 100,
 *              Q 1.0, 9 windows per dimension, xmin_mid (xmin_pos 2)
 *   full       WeightWatcher-style: whole matrices, full KS scan,
 *              filter_zeros on (threshold 1e-5), embeddings analysed
 * All: conv_norm 0.5, eig_threshold 1e-5, min_eigs 5, bins 100, xmin_pos 2.
 *
 * Keys of preset_set: window_rows, q_ratio, windows_per_dim,
 * window_clamp (true|false), xmin (mid|peak|ks), xmin_pos, bins, conv_norm,
 * filter_zeros (true|false), eig_threshold, min_eigs, include_embeddings
 * (true|false), the WeightWatcher extras mp_fit (true|false: the
 * Marchenko-Pastur fit), randomize (true|false: the randomized copy's ESD,
 * rand_distance and num_traps) and seed (>= 0, the permutation's), all off
 * (seed 0) in every preset, and the selection keys layout (auto|torch|keras) and weights
 * (a POSIX extended regular expression, printable ASCII, at most
 * FARMS_WEIGHTS_MAX - 1 bytes; "" for none): docs/checkpoint-formats.md,
 * Framework layouts. Values are parsed strictly (the whole value must be a
 * number of the key's type) and range-checked (farms_params_check).
 *
 * Settings travel as JSON in one codec, preset_to_json / preset_from_json,
 * both driven by the key table of preset_set.
 *
 * Pure functions on caller memory and const tables: thread-safe.
 */
#ifndef CORE_PRESET_H
#define CORE_PRESET_H

#include <stddef.h>

#include "core/err.h"
#include "core/numerics/farms.h"

/* The preset used when none is named: the server's default (--preset), the
 * CLI's (no --preset, no $FARMSD_PRESET) and a request's without one. A
 * string literal, so help texts can be built from it. */
#define PRESET_DEFAULT_NAME "farms-llm"

/* Room for preset_to_json's text including the NUL (a weights= regex of
 * FARMS_WEIGHTS_MAX - 1 bytes may double when escaped). */
#define PRESET_JSON_MAX 1024

/* Fill *p with the preset `name`. ERR_NOTFOUND (listing the names) if none. */
enum err_code preset_get(const char *name, struct farms_params *p, struct err *e);

/* NULL-terminated list of the preset names (static). Never NULL. */
const char *const *preset_names(void);

/* Apply one override "key=value" to *p. On error *p is unchanged and e names
 * the key and value: ERR_INVAL for an unknown key, a malformed value or one
 * out of range. */
enum err_code preset_set(struct farms_params *p, const char *kv, struct err *e);

/* --- JSON codec: the settings as stored and hashed ----------------------- */

/* Canonical text of *p: a JSON object with every key of preset_set in a
 * fixed order, doubles as %.17g (they read back exactly), xmin as a string,
 * booleans as true/false; equal parameters give equal text (the service
 * hashes it into its cache key and stores it). The selection keys layout
 * and weights appear only when not default (auto, ""), mp_fit and
 * randomize only when true, seed only when randomize is: a job under them
 * is another job; the text (and hash) of settings without them is unchanged. ERR_TOOBIG if `len` is
 * smaller than needed (PRESET_JSON_MAX is always enough). */
enum err_code preset_to_json(const struct farms_params *p, char *buf, size_t len, struct err *e);

/* The inverse of preset_to_json: apply every member of the JSON object
 * `json` to *p (members absent keep the values *p has; preset_to_json's text
 * has them all, so it decodes to exactly the parameters it came from). Each
 * member must be a key of preset_set with a value of its JSON type (integer
 * keys take integral numbers in range); the result must pass
 * farms_params_check. ERR_FORMAT if `json` is not a JSON object, ERR_INVAL
 * naming the key otherwise; on error *p is unchanged. */
enum err_code preset_from_json(const char *json, struct farms_params *p, struct err *e);

/* "mid" / "peak" / "ks". Never NULL. */
const char *preset_xmin_name(enum pl_xmin x);

/* "auto" / "torch" / "keras". Never NULL. */
const char *preset_layout_name(enum farms_tensor_layout l);

/* ERR_OK if `re` is a valid weights= value: "" or a POSIX extended regular
 * expression (regcomp REG_EXTENDED) of printable ASCII shorter than
 * FARMS_WEIGHTS_MAX bytes; else ERR_INVAL saying why. */
enum err_code preset_regex_check(const char *re, struct err *e);

#endif /* CORE_PRESET_H */
