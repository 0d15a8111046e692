/* store_deliveries.c -- the webhook delivery queue of alerts: delivery
 * state names, reading a delivery row, listing deliveries, claiming the
 * due one, recording an attempt and the counts by state. See
 * store_alerts.h; rule sets and events are in store_alerts.c.
 *
 * A delivery is claimed like a task: inside the write transaction (on
 * PostgreSQL under the store-wide advisory lock, so replicas take turns),
 * the due row whose lease has lapsed gets this connection's owner and a
 * lease; the attempt's outcome is written only while the claim is still
 * ours.
 *
 * THREAD SAFETY: as store.h (one connection per thread).
 */
#include "storage/store_alerts.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_alerts_int.h"
#include "storage/store_db.h"
#include "storage/store_int.h"

static const char *const delivery_state_names[STORE_DELIVERY_STATE_COUNT] = {"pending", "delivered",
                                                                             "failed"};

const char *store_delivery_state_name(enum store_delivery_state st)
{
    return (unsigned)st < STORE_DELIVERY_STATE_COUNT ? delivery_state_names[st] : "?";
}

int store_delivery_state_from_name(const char *s)
{
    for (int i = 0; s != NULL && i < STORE_DELIVERY_STATE_COUNT; i++)
        if (strcmp(s, delivery_state_names[i]) == 0)
            return i;
    return -1;
}

void store__delivery_read(struct store__q *st, void *item)
{
    struct store_delivery *d = item;

    memset(d, 0, sizeof(*d));
    d->id = store__col_int64(st, 0);
    d->event_id = store__col_int64(st, 1);
    store__col_text(st, 2, d->run, sizeof(d->run));
    d->step = store__col_int64(st, 3);
    store__col_text(st, 4, d->rule, sizeof(d->rule));
    store__col_text(st, 5, d->url, sizeof(d->url));
    d->state = (enum store_delivery_state)store__col_int64(st, 6);
    d->attempts = store__col_int64(st, 7);
    d->next_at = store__col_real(st, 8);
    d->last_status = store__col_int64(st, 9);
    store__col_text(st, 10, d->last_error, sizeof(d->last_error));
    d->created = store__col_real(st, 11);
    d->done_at = store__col_real(st, 12);
}

/* --- Deliveries ------------------------------------------------------------------- */

enum err_code store_deliveries_list(struct store *s, const char *run, int state, size_t page_size,
                                    const char *page_token, struct store_delivery_page **out,
                                    struct err *e)
{
    static const char sql[] = STORE__DELIVERY_COLS
        "WHERE d.id < ?1 AND (CAST(?2 AS BIGINT) < 0 OR d.run_id = CAST(?2 AS BIGINT)) "
        "AND (CAST(?3 AS BIGINT) < 0 OR d.state = CAST(?3 AS BIGINT)) "
        "ORDER BY d.id DESC LIMIT ?4";
    struct store_delivery_page *p = NULL;
    struct store__q *st = NULL;
    int64_t run_id = -1, before = 0;
    size_t limit = 0;
    void *items = NULL;
    enum err_code rc;

    *out = NULL;
    rc = store__alerts_page_args(page_size, page_token, &limit, &before, e);
    if (rc == ERR_OK && run != NULL)
        rc = store__run_id(s, run, &run_id, e);
    if (rc != ERR_OK)
        return rc;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return err_set(e, ERR_NOMEM, "deliveries: out of memory");
    rc = store__stmt(s, sql, &st, e);
    if (rc == ERR_OK) {
        store__bind_int64(st, 1, before);
        store__bind_int64(st, 2, run_id);
        store__bind_int64(st, 3, state);
        store__bind_int64(st, 4, (int64_t)limit + 1);
        rc = store__alerts_page_fill(s, st, &items, &p->n, sizeof(struct store_delivery), limit,
                                     p->next_token, store__delivery_read, "deliveries", e);
        p->items = items;
    }
    *out = store__page_done(st, rc, p, p->items);
    return rc;
}

void store_delivery_page_free(struct store_delivery_page *p)
{
    store__page_free(p, p != NULL ? p->items : NULL);
}

/* The earliest moment a pending row can be claimed (0: none pending). */
static enum err_code alerts_next_due(struct store *s, double *next_due, struct err *e)
{
    static const char sql[] =
        "SELECT MIN(CASE WHEN lease_until > next_at THEN lease_until ELSE next_at END) "
        "FROM deliveries WHERE state = 0";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    *next_due = 0;
    if (rc != ERR_OK)
        return rc;
    src = store__step(st);
    if (src == STORE__ROW && !store__is_null(st, 0))
        *next_due = store__col_double(st, 0);
    else if (src != STORE__ROW && src != STORE__DONE)
        rc = store__dberr(s, src, "deliveries due", e);
    store__release(st);
    return rc;
}

/* Inside the claim's transaction: the id of the due row (0: none), then
 * the claim. */
static enum err_code alerts_claim_row(struct store *s, double now, double lease_s, int64_t *id,
                                      struct err *e)
{
    static const char pick[] = "SELECT id FROM deliveries WHERE state = 0 AND next_at <= ?1 "
                               "AND lease_until <= ?1 ORDER BY next_at, id LIMIT 1";
    static const char take[] =
        "UPDATE deliveries SET claimed_by = ?2, lease_until = ?3 WHERE id = ?1";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, pick, &st, e);
    int src;

    *id = 0;
    if (rc != ERR_OK)
        return rc;
    store__bind_double(st, 1, now);
    src = store__step(st);
    if (src == STORE__ROW)
        *id = store__col_int64(st, 0);
    else if (src != STORE__DONE)
        rc = store__dberr(s, src, "delivery claim", e);
    store__release(st);
    if (rc != ERR_OK || *id == 0)
        return rc;
    rc = store__stmt(s, take, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, *id);
    store__bind_text(st, 2, s->owner);
    store__bind_double(st, 3, now + lease_s);
    return store__step_done(s, st, "delivery claim", e);
}

/* The claimed row `id` and its body. */
static enum err_code alerts_claimed_read(struct store *s, int64_t id, struct store_delivery *out,
                                         char **body, struct err *e)
{
    static const char sql[] = STORE__DELIVERY_COLS "WHERE d.id = ?1";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, id);
    src = store__step(st);
    if (src == STORE__ROW) {
        store__delivery_read(st, out);
        *body = store_alert_body(out->event_id, store__col_str(st, 13));
        if (*body == NULL)
            rc = err_set(e, ERR_NOMEM, "delivery %lld: out of memory or a damaged body",
                         (long long)id);
    } else {
        rc = store__dberr(s, src == STORE__DONE ? STORE__ERROR : src, "delivery read", e);
    }
    store__release(st);
    return rc;
}

enum err_code store_delivery_claim(struct store *s, double now, double lease_s,
                                   struct store_delivery *out, char **body, int *found,
                                   double *next_due, struct err *e)
{
    int64_t id = 0;
    enum err_code rc;

    *found = 0;
    *body = NULL;
    *next_due = 0;
    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = alerts_claim_row(s, now, lease_s, &id, e);
    if (rc == ERR_OK && id > 0)
        rc = alerts_claimed_read(s, id, out, body, e);
    if (rc == ERR_OK)
        rc = store__commit(s, e);
    if (rc != ERR_OK) {
        store__rollback(s);
        free(*body);
        *body = NULL;
        return rc;
    }
    *found = id > 0;
    return alerts_next_due(s, next_due, e);
}

enum err_code store_delivery_attempt(struct store *s, int64_t id, enum store_delivery_state state,
                                     int64_t http_status, const char *error, double next_at,
                                     struct err *e)
{
    static const char sql[] =
        "UPDATE deliveries SET state = ?2, attempts = attempts + 1, last_status = ?3, "
        "last_error = ?4, next_at = ?5, done_at = ?6, claimed_by = '', lease_until = 0 "
        "WHERE id = ?1 AND claimed_by = ?7 AND state = 0";
    struct store__q *st = NULL;
    char err_text[STORE_DELIVERY_ERR];
    enum err_code rc = store__stmt(s, sql, &st, e);

    if (rc != ERR_OK)
        return rc;
    snprintf(err_text, sizeof(err_text), "%s", error != NULL ? error : "");
    store__bind_int64(st, 1, id);
    store__bind_int64(st, 2, (int64_t)state);
    store__bind_int64(st, 3, http_status);
    store__bind_text(st, 4, err_text);
    store__bind_double(st, 5, next_at);
    store__bind_double(st, 6, state == STORE_DELIVERY_PENDING ? 0.0 : store__now());
    store__bind_text(st, 7, s->owner);
    rc = store__step_done(s, st, "delivery attempt", e);
    if (rc == ERR_OK && store__changes(s) == 0)
        rc = err_set(e, ERR_CONFLICT, "delivery %lld: the claim was lost", (long long)id);
    return rc;
}

enum err_code store_delivery_counts(struct store *s, int64_t *counts, struct err *e)
{
    static const char sql[] = "SELECT state, COUNT(*) FROM deliveries GROUP BY state";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    for (int i = 0; i < STORE_DELIVERY_STATE_COUNT; i++)
        counts[i] = 0;
    if (rc != ERR_OK)
        return rc;
    while ((src = store__step(st)) == STORE__ROW) {
        int64_t k = store__col_int64(st, 0);
        if (k >= 0 && k < STORE_DELIVERY_STATE_COUNT)
            counts[k] = store__col_int64(st, 1);
    }
    if (src != STORE__DONE)
        rc = store__dberr(s, src, "delivery counts", e);
    store__release(st);
    return rc;
}
