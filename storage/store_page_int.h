/* store_page_int.h -- internals shared by the storage list reads: page
 * sizes, page tokens, growing a page as rows come, the step window a page
 * token leaves and handing a finished page to the caller (store_page.c).
 * Not part of the public API. No state of its own: same thread rules as
 * store.h for the statements it releases.
 */
#ifndef STORAGE_STORE_PAGE_INT_H
#define STORAGE_STORE_PAGE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "storage/store.h"
#include "storage/store_db.h"

/* page_size 0 -> STORE_PAGE_DEFAULT, clamped to STORE_PAGE_MAX. Inline, so
 * that the analyzer sees every caller's limit is at least 1. */
static inline size_t store__page_size(size_t page_size)
{
    if (page_size == 0)
        return STORE_PAGE_DEFAULT;
    return page_size > STORE_PAGE_MAX ? STORE_PAGE_MAX : page_size;
}

/* Room for item n of a page being filled: `items` (n used, *cap allocated,
 * `size` bytes each) when n < *cap, else `items` reallocated to twice *cap
 * (16 at first) and *cap updated. Pages grow as rows come, so a large
 * page_size costs memory only when the rows exist. NULL: no memory
 * (`items` unchanged, still owned by the caller). */
void *store__page_grow(void *items, size_t n, size_t *cap, size_t size);

/* Free `page`, a struct whose one other allocation is `items` (its
 * caller reads items from page when page is non-NULL). NULL-safe. */
void store__page_free(void *page, void *items);

/* The end of a read that built `page` (a struct whose one other allocation
 * is `items`): release `st` (NULL: none), then return `page` for the
 * caller's *out when rc is ERR_OK, else free items and page and return
 * NULL. Cannot fail. */
void *store__page_done(struct store__q *st, enum err_code rc, void *page, void *items);

/* Step tokens: decimal. NULL or "" -> *has = 0. ERR_INVAL if malformed. */
enum err_code store__token_step(const char *token, int64_t *step, int *has, struct err *e);
void store__token_from_step(int64_t step, char out[STORE_TOKEN_MAX]);

/* Effective lower bound of a step window read from `start_step` on: after
 * the page token's step, within the window; *empty when the token is the
 * last possible step (nothing after it). ERR_INVAL if the token is
 * malformed. */
enum err_code store__token_window(const char *page_token, int64_t start_step, int64_t *from,
                                  int *empty, struct err *e);

/* Name tokens: hex of the name bytes. ERR_INVAL if malformed or too long. */
enum err_code store__token_name(const char *token, char *name, size_t len, int *has, struct err *e);
void store__token_from_name(const char *name, char out[STORE_TOKEN_MAX]);

#endif /* STORAGE_STORE_PAGE_INT_H */
