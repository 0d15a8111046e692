/* store_layers.h -- the per-layer rows of a checkpoint under one settings
 * hash, in canonical order, with run and step copied in for fast history
 * reads (store_results.c writes them, store_layers.c reads them).
 *
 * Errors, ownership and thread-safety: as store.h. Lists are caller-owned:
 * free with store_layer_list_free().
 */
#ifndef STORAGE_STORE_LAYERS_H
#define STORAGE_STORE_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/err.h"
#include "core/formats/ckpt.h"
#include "core/formats/layers.h"
#include "core/numerics/esd_hist.h"
#include "core/numerics/farms.h"
#include "storage/store.h"

/* One layer row: what json_layer_new() needs, plus its key. */
struct store_layer {
    char *name; /* owned (freed with the list) */
    enum layer_kind kind;
    enum dtype dtype;
    int ndim; /* 0..CKPT_MAX_RANK */
    int64_t shape[CKPT_MAX_RANK];
    char tensor_sha256[THASH_HEX_LEN]; /* "" if not hashed */
    int64_t step;                      /* reads: the checkpoint's step; ignored by put */
    struct farms_result r;             /* status, reason, warning, metrics; layout zeroed */
    struct esd_hist esd;               /* put: stored unless n_eigs == 0; read only by
                                          store_layer_get (else esd_hist_init'ed) */
};

struct store_layer_list {
    char settings_hash[THASH_HEX_LEN]; /* the settings the rows belong to */
    int64_t step;                      /* store_layers_get: the step; latest: max step */
    size_t n;
    struct store_layer *items; /* owned, n entries */
};

/* Replace the layer rows of (checkpoint, settings) with layers[0..n) (array
 * order is the canonical order) and bump the run's version, in one
 * transaction. ERR_NOTFOUND if the checkpoint does not exist. */
enum err_code store_layers_put(struct store *s, int64_t checkpoint_id, const char *settings_hash,
                               const struct store_layer *layers, size_t n, struct err *e);

/* The layer rows of (run, step) in canonical order. `settings_hash` NULL:
 * the settings of the checkpoint's most recent job. ERR_NOTFOUND if the run
 * or checkpoint does not exist; n == 0 if no rows yet. Returns a new list
 * in *out; free with store_layer_list_free(). */
enum err_code store_layers_get(struct store *s, const char *run, int64_t step,
                               const char *settings_hash, struct store_layer_list **out,
                               struct err *e);

/* The latest row (highest step) of every layer of `run`, ordered by canonical
 * position then name. `settings_hash` NULL: those of the run's most recent
 * job. ERR_NOTFOUND if no run. Free with store_layer_list_free(). */
enum err_code store_layers_latest(struct store *s, const char *run, const char *settings_hash,
                                  struct store_layer_list **out, struct err *e);

/* One layer's row with its histogram: layer `layer` of `run` at `step`
 * (step < 0: the highest step that has the layer). `settings_hash` NULL:
 * the settings of that checkpoint's most recent job (step >= 0) or of the
 * run's (step < 0). ERR_NOTFOUND if the run, or the checkpoint at `step`,
 * does not exist; n == 0 if the layer has no row there. Returns a new list
 * in *out (n <= 1); free with store_layer_list_free(). */
enum err_code store_layer_get(struct store *s, const char *run, const char *layer, int64_t step,
                              const char *settings_hash, struct store_layer_list **out,
                              struct err *e);

void store_layer_list_free(struct store_layer_list *l);

#endif /* STORAGE_STORE_LAYERS_H */
