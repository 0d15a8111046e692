/* store_alerts.c -- alert rule sets, events, webhook deliveries and the
 * verdict counts of /metrics. See store_alerts.h.
 *
 * Rule sets live in alert_rules keyed by run id (0: the default set).
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

/* The run id of `run`, 0 for NULL (the default set). */
static enum err_code alerts_run_id(struct store *s, const char *run, int64_t *id, struct err *e)
{
    *id = 0;
    return run == NULL ? ERR_OK : store__run_id(s, run, id, e);
}

/* --- Rule sets ---------------------------------------------------------------- */

enum err_code store_alert_rules_get(struct store *s, const char *run, char **spec, struct err *e)
{
    static const char sql[] = "SELECT spec FROM alert_rules WHERE run_id = ?1";
    struct store__q *st = NULL;
    int64_t run_id = 0;
    enum err_code rc;
    int src;

    *spec = NULL;
    rc = alerts_run_id(s, run, &run_id, e);
    if (rc == ERR_OK)
        rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, run_id);
    src = store__step(st);
    if (src == STORE__ROW) {
        *spec = strdup(store__col_str(st, 0));
        if (*spec == NULL)
            rc = err_set(e, ERR_NOMEM, "alert rules: out of memory");
    } else if (src != STORE__DONE) {
        rc = store__dberr(s, src, "alert rules", e);
    }
    store__release(st);
    return rc;
}

enum err_code store_alert_rules_put(struct store *s, const char *run, const char *spec,
                                    struct err *e)
{
    static const char put[] = "INSERT INTO alert_rules(run_id, spec, updated) VALUES(?1, ?2, ?3) "
                              "ON CONFLICT(run_id) DO UPDATE SET spec = excluded.spec, "
                              "updated = excluded.updated";
    static const char del[] = "DELETE FROM alert_rules WHERE run_id = ?1";
    struct store__q *st = NULL;
    int64_t run_id = 0;
    enum err_code rc;

    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = alerts_run_id(s, run, &run_id, e);
    if (rc == ERR_OK)
        rc = store__stmt(s, spec != NULL ? put : del, &st, e);
    if (rc == ERR_OK) {
        store__bind_int64(st, 1, run_id);
        if (spec != NULL) {
            store__bind_text(st, 2, spec);
            store__bind_double(st, 3, store__now());
        }
        rc = store__step_done(s, st, "alert rules", e);
    }
    if (rc == ERR_OK)
        rc = store__commit(s, e);
    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}

/* --- Events -------------------------------------------------------------------- */

char *store_alert_body(int64_t event_id, const char *body)
{
    size_t n = body != NULL ? strlen(body) : 0, cap;
    int empty;
    char *out;

    if (n < 2 || body[0] != '{')
        return NULL;
    empty = body[1] == '}';
    cap = n + 48;
    out = malloc(cap);
    if (out != NULL)
        snprintf(out, cap, "{\"event_id\":%lld%s%s", (long long)event_id, empty ? "" : ",",
                 body + 1);
    return out;
}

enum err_code store_alert_steps(struct store *s, const char *run, const char *settings_hash,
                                int64_t step, size_t k, int64_t *steps, size_t *n, int *newest,
                                struct err *e)
{
    static const char before[] =
        "SELECT DISTINCT step FROM layers WHERE run_id = ?1 AND settings_hash = ?2 "
        "AND step < ?3 ORDER BY step DESC LIMIT ?4";
    static const char later[] = "SELECT COUNT(*) FROM layers WHERE run_id = ?1 AND "
                                "settings_hash = ?2 AND step > ?3";
    struct store__q *st = NULL;
    int64_t run_id = 0;
    enum err_code rc;
    int src = STORE__DONE;

    *n = 0;
    *newest = 0;
    rc = store__run_id(s, run, &run_id, e);
    if (rc == ERR_OK)
        rc = store__stmt(s, before, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, run_id);
    store__bind_text(st, 2, settings_hash);
    store__bind_int64(st, 3, step);
    store__bind_int64(st, 4, (int64_t)k);
    while (*n < k && (src = store__step(st)) == STORE__ROW)
        steps[(*n)++] = store__col_int64(st, 0);
    if (*n < k && src != STORE__DONE)
        rc = store__dberr(s, src, "alert steps", e);
    store__release(st);
    if (rc == ERR_OK)
        rc = store__stmt(s, later, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, run_id);
    store__bind_text(st, 2, settings_hash);
    store__bind_int64(st, 3, step);
    src = store__step(st);
    if (src == STORE__ROW)
        *newest = store__col_int64(st, 0) == 0;
    else
        rc = store__dberr(s, src == STORE__DONE ? STORE__ERROR : src, "alert steps", e);
    store__release(st);
    return rc;
}

/* Insert a pending delivery of event `id` to `url`. */
static enum err_code alerts_delivery_add(struct store *s, int64_t id, int64_t run_id,
                                         const char *url, double now, struct err *e)
{
    static const char sql[] =
        "INSERT INTO deliveries(event_id, run_id, url, state, next_at, created) "
        "VALUES(?1, ?2, ?3, 0, ?4, ?4)";
    struct store__q *st = NULL;
    enum err_code rc;

    if (strlen(url) >= STORE_URL_MAX)
        return err_set(e, ERR_INVAL, "webhook URL longer than %d bytes", STORE_URL_MAX - 1);
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, id);
    store__bind_int64(st, 2, run_id);
    store__bind_text(st, 3, url);
    store__bind_double(st, 4, now);
    return store__step_done(s, st, "delivery", e);
}

enum err_code store_alert_event_add(struct store *s, const char *run, int64_t step, int64_t job_id,
                                    const char *rule, int64_t n_layers, const char *body,
                                    const char *const *urls, size_t n_urls, int64_t *event_id,
                                    struct err *e)
{
    static const char sql[] =
        "INSERT INTO alert_events(run_id, step, job_id, rule, n_layers, body, created) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING RETURNING id";
    struct store__q *st = NULL;
    int64_t run_id = 0, id = 0;
    double now = store__now();
    enum err_code rc;
    int src;

    *event_id = 0;
    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = store__run_id(s, run, &run_id, e);
    if (rc == ERR_OK)
        rc = store__stmt(s, sql, &st, e);
    if (rc == ERR_OK) {
        store__bind_int64(st, 1, run_id);
        store__bind_int64(st, 2, step);
        store__bind_int64(st, 3, job_id);
        store__bind_text(st, 4, rule);
        store__bind_int64(st, 5, n_layers);
        store__bind_text(st, 6, body);
        store__bind_double(st, 7, now);
        src = store__step(st);
        if (src == STORE__ROW)
            id = store__col_int64(st, 0);
        else if (src != STORE__DONE) /* DONE: the job raised this rule already */
            rc = store__dberr(s, src, "alert event", e);
        store__release(st);
    }
    for (size_t i = 0; rc == ERR_OK && id > 0 && i < n_urls; i++)
        rc = alerts_delivery_add(s, id, run_id, urls[i], now, e);
    if (rc == ERR_OK)
        rc = store__commit(s, e);
    if (rc != ERR_OK) {
        store__rollback(s);
        return rc;
    }
    *event_id = id;
    return ERR_OK;
}

/* The columns of a delivery (d) with its event (ev) and run (r). */
#define ALERTS_DELIVERY_COLS                                                                     \
    "SELECT d.id, d.event_id, r.name, ev.step, ev.rule, d.url, d.state, d.attempts, d.next_at, " \
    "d.last_status, d.last_error, d.created, d.done_at, ev.body FROM deliveries d "              \
    "JOIN alert_events ev ON ev.id = d.event_id JOIN runs r ON r.id = d.run_id "

static void alerts_read_delivery(struct store__q *st, struct store_delivery *d)
{
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

/* Read the rows of `st` into a page of `size`-byte items (read by `rd`), up
 * to `limit`; a further row sets the next token from the last id. */
static enum err_code alerts_page_fill(struct store *s, struct store__q *st, void **items, size_t *n,
                                      size_t size, size_t limit, char *next_token,
                                      void (*rd)(struct store__q *, void *), const char *what,
                                      struct err *e)
{
    size_t cap = 0;
    int src;

    while ((src = store__step(st)) == STORE__ROW) {
        char *grown;

        if (*n == limit) {
            int64_t last_id;
            if (*n > 0 && *items != NULL) { /* the id is each item's first member */
                memcpy(&last_id, (char *)*items + (*n - 1) * size, sizeof(last_id));
                store__token_from_step(last_id, next_token);
            }
            return ERR_OK;
        }
        grown = store__page_grow(*items, *n, &cap, size);
        if (grown == NULL)
            return err_set(e, ERR_NOMEM, "%s: out of memory", what);
        *items = grown;
        rd(st, grown + (*n)++ * size);
    }
    return src == STORE__DONE ? ERR_OK : store__dberr(s, src, what, e);
}

static void alerts_rd_delivery(struct store__q *st, void *item)
{
    alerts_read_delivery(st, item);
}

static void alerts_rd_event(struct store__q *st, void *item)
{
    struct store_alert_event *ev = item;

    memset(ev, 0, sizeof(*ev));
    ev->id = store__col_int64(st, 0);
    ev->step = store__col_int64(st, 1);
    ev->job_id = store__col_int64(st, 2);
    store__col_text(st, 3, ev->rule, sizeof(ev->rule));
    ev->n_layers = store__col_int64(st, 4);
    ev->body = strdup(store__col_str(st, 5)); /* NULL: checked by the caller */
    ev->created = store__col_real(st, 6);
}

/* Page limits and the "before" id of a token. */
static enum err_code alerts_page_args(size_t page_size, const char *page_token, size_t *limit,
                                      int64_t *before, struct err *e)
{
    int has = 0;
    enum err_code rc = store__token_step(page_token, before, &has, e);

    *limit = store__page_size(page_size);
    if (*limit > STORE_ALERTS_PAGE_MAX)
        *limit = STORE_ALERTS_PAGE_MAX;
    if (!has)
        *before = INT64_MAX;
    return rc;
}

/* The deliveries of every event of page p (by id). */
static enum err_code alerts_event_deliveries(struct store *s, struct store_alert_event_page *p,
                                             struct err *e)
{
    static const char sql[] = ALERTS_DELIVERY_COLS "WHERE d.event_id = ?1 ORDER BY d.id";
    enum err_code rc = ERR_OK;

    for (size_t i = 0; rc == ERR_OK && i < p->n; i++) {
        struct store_alert_event *ev = &p->items[i];
        struct store__q *st = NULL;
        char tok[STORE_TOKEN_MAX] = "";
        void *items = NULL;

        if (ev->body == NULL)
            return err_set(e, ERR_NOMEM, "alert events: out of memory");
        rc = store__stmt(s, sql, &st, e);
        if (rc != ERR_OK)
            return rc;
        store__bind_int64(st, 1, ev->id);
        rc = alerts_page_fill(s, st, &items, &ev->n_deliveries, sizeof(struct store_delivery),
                              SIZE_MAX, tok, alerts_rd_delivery, "deliveries", e);
        ev->deliveries = items;
        store__release(st);
    }
    return rc;
}

enum err_code store_alert_events_list(struct store *s, const char *run, size_t page_size,
                                      const char *page_token, struct store_alert_event_page **out,
                                      struct err *e)
{
    static const char sql[] =
        "SELECT id, step, job_id, rule, n_layers, body, created FROM alert_events "
        "WHERE run_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3";
    struct store_alert_event_page *p = NULL;
    struct store__q *st = NULL;
    int64_t run_id = 0, before = 0;
    size_t limit = 0;
    void *items = NULL;
    enum err_code rc;

    *out = NULL;
    rc = alerts_page_args(page_size, page_token, &limit, &before, e);
    if (rc == ERR_OK)
        rc = store__run_id(s, run, &run_id, e);
    if (rc != ERR_OK)
        return rc;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return err_set(e, ERR_NOMEM, "alert events: out of memory");
    rc = store__stmt(s, sql, &st, e);
    if (rc == ERR_OK) {
        store__bind_int64(st, 1, run_id);
        store__bind_int64(st, 2, before);
        store__bind_int64(st, 3, (int64_t)limit + 1);
        rc = alerts_page_fill(s, st, &items, &p->n, sizeof(struct store_alert_event), limit,
                              p->next_token, alerts_rd_event, "alert events", e);
        p->items = items;
        store__release(st);
    }
    if (rc == ERR_OK)
        rc = alerts_event_deliveries(s, p, e);
    if (rc != ERR_OK) {
        store_alert_event_page_free(p);
        return rc;
    }
    *out = p;
    return ERR_OK;
}

void store_alert_event_page_free(struct store_alert_event_page *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].body);
        free(p->items[i].deliveries);
    }
    free(p->items);
    free(p);
}

/* --- Deliveries ------------------------------------------------------------------- */

enum err_code store_deliveries_list(struct store *s, const char *run, int state, size_t page_size,
                                    const char *page_token, struct store_delivery_page **out,
                                    struct err *e)
{
    static const char sql[] = ALERTS_DELIVERY_COLS
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
    rc = alerts_page_args(page_size, page_token, &limit, &before, e);
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
        rc = alerts_page_fill(s, st, &items, &p->n, sizeof(struct store_delivery), limit,
                              p->next_token, alerts_rd_delivery, "deliveries", e);
        p->items = items;
        store__release(st);
    }
    if (rc != ERR_OK) {
        store_delivery_page_free(p);
        return rc;
    }
    *out = p;
    return ERR_OK;
}

void store_delivery_page_free(struct store_delivery_page *p)
{
    if (p == NULL)
        return;
    free(p->items);
    free(p);
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
    static const char sql[] = ALERTS_DELIVERY_COLS "WHERE d.id = ?1";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, id);
    src = store__step(st);
    if (src == STORE__ROW) {
        alerts_read_delivery(st, out);
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

/* --- Verdict gauges ----------------------------------------------------------------- */

/* Runs with a succeeded job: each run's newest analysed step and the
 * settings of that step's newest succeeded job (the first row per run). */
static enum err_code alerts_verdict_runs(struct store *s, struct store_run_verdicts **out,
                                         char (**hash)[THASH_HEX_LEN], size_t *n, struct err *e)
{
    static const char sql[] =
        "SELECT r.name, c.step, j.settings_hash FROM jobs j JOIN checkpoints c ON "
        "c.id = j.checkpoint_id JOIN runs r ON r.id = c.run_id WHERE j.state "
        "= " STORE__JOB_SUCCEEDED_SQL " ORDER BY r.name, c.step DESC, j.finished DESC, j.id DESC";
    struct store__q *st = NULL;
    size_t cap = 0, hcap = 0;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    if (rc != ERR_OK)
        return rc;
    while ((src = store__step(st)) == STORE__ROW) {
        char name[STORE_RUN_MAX];
        struct store_run_verdicts *g;
        char(*h)[THASH_HEX_LEN];

        store__col_text(st, 0, name, sizeof(name));
        if (*n > 0 && strcmp((*out)[*n - 1].run, name) == 0)
            continue; /* an older step or job of the same run */
        g = store__page_grow(*out, *n, &cap, sizeof(**out));
        h = g != NULL ? store__page_grow(*hash, *n, &hcap, sizeof(**hash)) : NULL;
        if (g != NULL)
            *out = g;
        if (h == NULL) {
            rc = err_set(e, ERR_NOMEM, "verdicts: out of memory");
            break;
        }
        *hash = h;
        memset(&g[*n], 0, sizeof(g[*n]));
        snprintf(g[*n].run, sizeof(g[*n].run), "%s", name);
        g[*n].step = store__col_int64(st, 1);
        store__col_text(st, 2, h[*n], THASH_HEX_LEN);
        (*n)++;
    }
    if (rc == ERR_OK && src != STORE__DONE)
        rc = store__dberr(s, src, "verdicts", e);
    store__release(st);
    return rc;
}

/* The verdict counts of g's step under `hash`. */
static enum err_code alerts_verdict_count(struct store *s, struct store_run_verdicts *g,
                                          const char *hash, struct err *e)
{
    static const char sql[] =
        "SELECT l.warning, COUNT(*) FROM layers l JOIN runs r ON r.id = l.run_id "
        "WHERE r.name = ?1 AND l.settings_hash = ?2 AND l.step = ?3 AND l.status "
        "= " STORE__STATUS_OK_SQL " GROUP BY l.warning";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    if (rc != ERR_OK)
        return rc;
    store__bind_text(st, 1, g->run);
    store__bind_text(st, 2, hash);
    store__bind_int64(st, 3, g->step);
    while ((src = store__step(st)) == STORE__ROW) {
        const char *w = store__col_str(st, 0);
        int64_t k = store__col_int64(st, 1);

        if (strcmp(w, "under_trained") == 0)
            g->n_under = k;
        else if (strcmp(w, "over_trained") == 0)
            g->n_over = k;
        else if (strcmp(w, "suspect_fit") == 0)
            g->n_suspect = k;
        else
            g->n_ok += k;
    }
    if (src != STORE__DONE)
        rc = store__dberr(s, src, "verdict counts", e);
    store__release(st);
    return rc;
}

enum err_code store_run_verdicts_list(struct store *s, struct store_run_verdicts **out, size_t *n,
                                      struct err *e)
{
    struct store_run_verdicts *g = NULL;
    char(*hash)[THASH_HEX_LEN] = NULL;
    size_t k = 0;
    enum err_code rc;

    *out = NULL;
    *n = 0;
    rc = alerts_verdict_runs(s, &g, &hash, &k, e);
    for (size_t i = 0; rc == ERR_OK && i < k; i++)
        rc = alerts_verdict_count(s, &g[i], hash[i], e);
    free(hash);
    if (rc != ERR_OK) {
        free(g);
        return rc;
    }
    *out = g;
    *n = k;
    return ERR_OK;
}
