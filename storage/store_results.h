/* store_results.h -- the team-wide result cache (store_results.c): one
 * struct farms_result (metrics part) and its ESD histogram per (tensor
 * SHA-256, analysis key, settings hash, engine version).
 *
 * Absence in the cache is not an error (`*hit = 0`). Errors, ownership and
 * thread-safety: as store.h.
 */
#ifndef STORAGE_STORE_RESULTS_H
#define STORAGE_STORE_RESULTS_H

#include <stddef.h>

#include "core/err.h"
#include "core/numerics/esd_hist.h"
#include "core/numerics/farms.h"
#include "storage/store.h"

/* The cache key. analysis_key says how the bytes were analysed, e.g.
 * "linear F32 512x64" (kind, dtype, analysed shape). */
struct store_result_key {
    const char *tensor_sha256;  /* thash hex */
    const char *analysis_key;   /* 1..STORE_KEY_MAX-1 bytes */
    const char *settings_hash;  /* store_settings_hash */
    const char *engine_version; /* 1..STORE_KEY_MAX-1 bytes */
};

/* Look up a result: *hit = 1 and *out filled (status, reason, warning and
 * every metric of struct farms_result except `layout`, which is zeroed)
 * and, when `esd` is non-NULL, its histogram (esd_hist_init'ed when none
 * was stored), or *hit = 0 and *out, *esd untouched. */
enum err_code store_result_get(struct store *s, const struct store_result_key *key,
                               struct farms_result *out, struct esd_hist *esd, int *hit,
                               struct err *e);

/* Insert a result with its histogram `esd` (NULL or n_eigs == 0: none);
 * an existing one with the same key is kept (ON CONFLICT DO NOTHING: two workers
 * analysing the same tensor is harmless). */
enum err_code store_result_put(struct store *s, const struct store_result_key *key,
                               const struct farms_result *r, const struct esd_hist *esd,
                               struct err *e);

/* One cached result of a tensor, with its settings. */
struct store_result {
    char analysis_key[STORE_KEY_MAX];
    char settings_hash[THASH_HEX_LEN];
    char preset[STORE_PRESET_MAX];      /* "" if the settings were never recorded */
    char params_json[STORE_PARAMS_MAX]; /* "" likewise */
    char engine_version[STORE_KEY_MAX];
    double created;        /* unix seconds */
    struct farms_result r; /* layout zeroed */
};

struct store_result_list {
    size_t n;
    struct store_result *items; /* owned, n entries, ordered by settings hash, analysis
                                   key, engine version */
};

/* Every cached result of tensor `tensor_sha256` (GET /v1/tensors/{sha256});
 * n == 0 when none. Returns a new list in *out; free with
 * store_result_list_free(). At most STORE_PAGE_MAX entries. */
enum err_code store_results_for_tensor(struct store *s, const char *tensor_sha256,
                                       struct store_result_list **out, struct err *e);
void store_result_list_free(struct store_result_list *l);

#endif /* STORAGE_STORE_RESULTS_H */
