/* store_page.c -- page tokens and page building shared by the list reads
 * (store_runs.c, store_layers.c, store_summary.c, store_runinfo.c,
 * store_alerts.c, store_deliveries.c, store_task_plan.c): page sizes, step
 * and name tokens, growing a page as rows come, the window a step token
 * leaves, and handing a finished page to the caller.
 * Page tokens are URL-safe ([0-9a-f-]) and opaque to callers. See
 * store_page_int.h.
 *
 * THREAD SAFETY: no state; as store.h for the statements released here.
 */
#include "storage/store_page_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

/* --- Page tokens ------------------------------------------------------------- */
enum err_code store__token_step(const char *token, int64_t *step, int *has, struct err *e)
{
    char *end = NULL;
    long long v;

    *has = 0;
    if (token == NULL || token[0] == '\0')
        return ERR_OK;
    errno = 0;
    v = strtoll(token, &end, 10);
    if (errno != 0 || end == token || *end != '\0' ||
        !(token[0] == '-' || (token[0] >= '0' && token[0] <= '9')))
        return err_set(e, ERR_INVAL, "malformed page token");
    *step = (int64_t)v;
    *has = 1;
    return ERR_OK;
}

void *store__page_grow(void *items, size_t n, size_t *cap, size_t size)
{
    size_t ncap = *cap != 0 ? 2 * *cap : 16;
    void *grown;

    if (n < *cap)
        return items;
    if (ncap > SIZE_MAX / size)
        return NULL;
    grown = realloc(items, ncap * size);
    if (grown != NULL)
        *cap = ncap;
    return grown;
}

void store__page_free(void *page, void *items)
{
    free(items);
    free(page);
}

void *store__page_done(struct store__q *st, enum err_code rc, void *page, void *items)
{
    store__release(st);
    if (rc == ERR_OK)
        return page;
    store__page_free(page, items);
    return NULL;
}

void store__token_from_step(int64_t step, char out[STORE_TOKEN_MAX])
{
    snprintf(out, STORE_TOKEN_MAX, "%" PRId64, step);
}

enum err_code store__token_window(const char *page_token, int64_t start_step, int64_t *from,
                                  int *empty, struct err *e)
{
    int64_t after = 0;
    int has = 0;
    enum err_code rc = store__token_step(page_token, &after, &has, e);

    if (rc != ERR_OK)
        return rc;
    *from = start_step;
    *empty = has && after == INT64_MAX; /* nothing after the last possible step */
    if (has && !*empty && after + 1 > start_step)
        *from = after + 1;
    return ERR_OK;
}

static int store_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

enum err_code store__token_name(const char *token, char *name, size_t len, int *has, struct err *e)
{
    size_t n, i;

    *has = 0;
    if (token == NULL || token[0] == '\0')
        return ERR_OK;
    n = strlen(token);
    if (n % 2 != 0 || n / 2 >= len)
        return err_set(e, ERR_INVAL, "malformed page token");
    for (i = 0; i < n / 2; i++) {
        int hi = store_hexval(token[2 * i]), lo = store_hexval(token[2 * i + 1]);

        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return err_set(e, ERR_INVAL, "malformed page token");
        name[i] = (char)(hi * 16 + lo);
    }
    name[n / 2] = '\0';
    *has = 1;
    return ERR_OK;
}

void store__token_from_name(const char *name, char out[STORE_TOKEN_MAX])
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    for (i = 0; name[i] != '\0' && 2 * i + 2 < STORE_TOKEN_MAX; i++) {
        out[2 * i] = hex[(unsigned char)name[i] >> 4];
        out[2 * i + 1] = hex[(unsigned char)name[i] & 15];
    }
    out[2 * i] = '\0';
}
