/* store_summary_int.h -- the storage-internal side of checkpoint summaries
 * (store_summary.c): writing a checkpoint's summary with its layer rows
 * (store_layers_put) and filling the summaries of layer rows written before
 * schema 8 (the migration, store.c). Not part of the public API; same
 * thread rules as store.h.
 */
#ifndef STORAGE_STORE_SUMMARY_INT_H
#define STORAGE_STORE_SUMMARY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "storage/store_layers.h"

/* Replace the summary of (checkpoint_id, settings_hash) with that of
 * layers[0..n) (each weighted by the product of its shape), run_id and
 * step copied into its rows. Inside the caller's write transaction. */
enum err_code store__summary_write(struct store *s, int64_t checkpoint_id,
                                   const char *settings_hash, int64_t run_id, int64_t step,
                                   const struct store_layer *layers, size_t n, struct err *e);

/* Give every (checkpoint, settings) that has layer rows and no summary its
 * summary, computed from those rows (the migration to schema 8). Inside the
 * migration's transaction. */
enum err_code store__summary_backfill(struct store *s, struct err *e);

#endif /* STORAGE_STORE_SUMMARY_INT_H */
