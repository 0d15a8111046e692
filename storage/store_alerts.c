/* store_alerts.c -- alert rule sets, events (with their deliveries), the
 * verdict counts of /metrics and the id-keyed pages that events and
 * deliveries share. See store_alerts.h; the delivery queue (listing,
 * claims, attempts, counts) is in store_deliveries.c.
 *
 * Rule sets live in alert_rules keyed by run id (0: the default set).
 *
 * THREAD SAFETY: as store.h (one connection per thread).
 */
#include "storage/store_alerts.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_db.h"
#include "storage/store_alerts_int.h"
#include "storage/store_int.h"

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

/* Read the rows of `st` into a page of `size`-byte items (read by `rd`), up
 * to `limit`; a further row sets the next token from the last id. */
enum err_code store__alerts_page_fill(struct store *s, struct store__q *st, void **items, size_t *n,
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
enum err_code store__alerts_page_args(size_t page_size, const char *page_token, size_t *limit,
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
    static const char sql[] = STORE__DELIVERY_COLS "WHERE d.event_id = ?1 ORDER BY d.id";
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
        rc =
            store__alerts_page_fill(s, st, &items, &ev->n_deliveries, sizeof(struct store_delivery),
                                    SIZE_MAX, tok, store__delivery_read, "deliveries", e);
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
    rc = store__alerts_page_args(page_size, page_token, &limit, &before, e);
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
        rc = store__alerts_page_fill(s, st, &items, &p->n, sizeof(struct store_alert_event), limit,
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
