/* store_alerts_int.h -- internals shared by store_alerts.c (rule sets,
 * events) and store_deliveries.c (the delivery queue): the SELECT of a
 * delivery row and its reader, and the id-keyed pages both list. Not part
 * of the public API. Same thread rules as store.h.
 */
#ifndef STORAGE_STORE_ALERTS_INT_H
#define STORAGE_STORE_ALERTS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "storage/store.h"
#include "storage/store_db.h"

/* The columns of a delivery (d) with its event (ev) and run (r). */
#define STORE__DELIVERY_COLS                                                                     \
    "SELECT d.id, d.event_id, r.name, ev.step, ev.rule, d.url, d.state, d.attempts, d.next_at, " \
    "d.last_status, d.last_error, d.created, d.done_at, ev.body FROM deliveries d "              \
    "JOIN alert_events ev ON ev.id = d.event_id JOIN runs r ON r.id = d.run_id "

/* Read a row of STORE__DELIVERY_COLS into `item`, a struct store_delivery
 * (store_deliveries.c). The body column is not read. */
void store__delivery_read(struct store__q *st, void *item);

/* Read the rows of `st` into a page of `size`-byte items (read by `rd`), up
 * to `limit`; a further row sets the next token from the last id
 * (store_alerts.c). */
enum err_code store__alerts_page_fill(struct store *s, struct store__q *st, void **items, size_t *n,
                                      size_t size, size_t limit, char *next_token,
                                      void (*rd)(struct store__q *, void *), const char *what,
                                      struct err *e);

/* Page limits and the "before" id of a token (store_alerts.c). */
enum err_code store__alerts_page_args(size_t page_size, const char *page_token, size_t *limit,
                                      int64_t *before, struct err *e);

#endif /* STORAGE_STORE_ALERTS_INT_H */
