/* store_summary.c -- checkpoint summaries (table summaries): written with
 * the layer rows (store__summary_write, from store_layers_put), filled for
 * older rows by the migration to schema 8 (store__summary_backfill), read
 * one checkpoint at a time (store_summary_get) or one metric over a run's
 * steps (store_summary_history). See store_summary.h.
 *
 * One row per (checkpoint, settings, metric): the metric's layer count,
 * plain and parameter-weighted means (NaN stored as NULL), and the
 * checkpoint's layer counts repeated. Histories scan the index (run_id,
 * settings_hash, metric, step); pages are keyed by step like the layer
 * histories.
 *
 * THREAD SAFETY: as store.h (one connection per thread).
 */
#include "storage/store_summary.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"
#include "storage/store_summary_int.h"

#define SUMMARY_COLS \
    "step, metric, n_layers, mean, weighted_mean, n_total, n_ok, n_under, n_over, n_suspect"

static enum err_code nomem(struct err *e)
{
    return err_set(e, ERR_NOMEM, "summaries: out of memory");
}

/* A layer's weight: the product of its shape (saturating), 0 without one. */
static int64_t params_of(const int64_t *shape, int ndim)
{
    int64_t p = ndim > 0 ? 1 : 0;

    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0)
            return 0;
        p = p > INT64_MAX / shape[d] ? INT64_MAX : p * shape[d];
    }
    return p;
}

/* --- Writing ------------------------------------------------------------------ */

/* Replace the rows of (checkpoint, settings) with those of `sum`. */
static enum err_code summary_insert(struct store *s, int64_t checkpoint_id,
                                    const char *settings_hash, int64_t run_id, int64_t step,
                                    const struct farms_summary *sum, struct err *e)
{
    static const char del[] =
        "DELETE FROM summaries WHERE checkpoint_id = ?1 AND settings_hash = ?2";
    static const char ins[] =
        "INSERT INTO summaries(checkpoint_id, settings_hash, run_id, " SUMMARY_COLS
        ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, del, &st, e);

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, checkpoint_id);
    store__bind_text(st, 2, settings_hash);
    rc = store__step_done(s, st, "summary delete", e);
    for (int m = 0; m < FARMS_SUMMARY_COUNT && rc == ERR_OK; m++) {
        const struct farms_summary_value *v = &sum->v[m];

        rc = store__stmt(s, ins, &st, e);
        if (rc != ERR_OK)
            break;
        store__bind_int64(st, 1, checkpoint_id);
        store__bind_text(st, 2, settings_hash);
        store__bind_int64(st, 3, run_id);
        store__bind_int64(st, 4, step);
        store__bind_text(st, 5, farms_summary_metric_name((enum farms_summary_metric)m));
        store__bind_int64(st, 6, v->n_layers);
        store__bind_double(st, 7, v->mean); /* NaN binds NULL */
        store__bind_double(st, 8, v->weighted_mean);
        store__bind_int64(st, 9, sum->n_layers);
        store__bind_int64(st, 10, sum->n_ok);
        store__bind_int64(st, 11, sum->n_under);
        store__bind_int64(st, 12, sum->n_over);
        store__bind_int64(st, 13, sum->n_suspect);
        rc = store__step_done(s, st, "summary insert", e);
    }
    return rc;
}

enum err_code store__summary_write(struct store *s, int64_t checkpoint_id,
                                   const char *settings_hash, int64_t run_id, int64_t step,
                                   const struct store_layer *layers, size_t n, struct err *e)
{
    struct farms_result *r = NULL;
    struct farms_summary sum;
    int64_t *params = NULL;
    enum err_code rc = ERR_OK;

    r = calloc(n > 0 ? n : 1, sizeof *r);
    params = calloc(n > 0 ? n : 1, sizeof *params);
    if (r == NULL || params == NULL) {
        rc = nomem(e);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        r[i] = layers[i].r;
        params[i] = params_of(layers[i].shape, layers[i].ndim);
    }
    farms_summary_compute(r, params, n, &sum);
    rc = summary_insert(s, checkpoint_id, settings_hash, run_id, step, &sum, e);
out:
    free(r);
    free(params);
    return rc;
}

/* --- Filling older rows (migration to schema 8) -------------------------------- */

/* A (checkpoint, settings) with layer rows. */
struct summary_group {
    int64_t checkpoint_id, run_id, step;
    char settings_hash[THASH_HEX_LEN];
};

/* The groups with layer rows and no summary, into *out (n in *n). */
static enum err_code backfill_groups(struct store *s, struct summary_group **out, size_t *n,
                                     struct err *e)
{
    static const char sql[] =
        "SELECT DISTINCT l.checkpoint_id, l.settings_hash, l.run_id, l.step FROM layers l "
        "WHERE NOT EXISTS (SELECT 1 FROM summaries u WHERE u.checkpoint_id = l.checkpoint_id "
        "AND u.settings_hash = l.settings_hash) ORDER BY l.checkpoint_id, l.settings_hash";
    struct summary_group *g = NULL, *grown = NULL;
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    size_t cap = 0;
    int src;

    *out = NULL;
    *n = 0;
    if (rc != ERR_OK)
        return rc;
    while ((src = store__step(st)) == STORE__ROW) {
        grown = store__page_grow(g, *n, &cap, sizeof *g);
        if (grown == NULL) {
            rc = nomem(e);
            break;
        }
        g = grown;
        g[*n].checkpoint_id = store__col_int64(st, 0);
        store__col_text(st, 1, g[*n].settings_hash, sizeof g[*n].settings_hash);
        g[*n].run_id = store__col_int64(st, 2);
        g[*n].step = store__col_int64(st, 3);
        (*n)++;
    }
    if (rc == ERR_OK && src != STORE__DONE)
        rc = store__dberr(s, src, "summary backfill", e);
    store__release(st);
    *out = g;
    return rc;
}

/* Read the layer rows of `g` (shape and result) into *rows (*cap
 * allocated, grown as needed; n in *n). */
static enum err_code backfill_rows(struct store *s, const struct summary_group *g,
                                   struct store_layer **rows, size_t *cap, size_t *n, struct err *e)
{
    static const char sql[] = "SELECT shape, " STORE__RESULT_COLS " FROM layers "
                              "WHERE checkpoint_id = ?1 AND settings_hash = ?2 ORDER BY ord";
    struct store_layer *l = *rows, *grown = NULL;
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    *n = 0;
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, g->checkpoint_id);
    store__bind_text(st, 2, g->settings_hash);
    while ((src = store__step(st)) == STORE__ROW) {
        const char *t = store__col_str(st, 0);
        char *end = NULL;

        grown = store__page_grow(l, *n, cap, sizeof *l);
        if (grown == NULL) {
            rc = nomem(e);
            break;
        }
        l = grown;
        memset(&l[*n], 0, sizeof l[*n]);
        while (*t != '\0' && l[*n].ndim < CKPT_MAX_RANK) {
            l[*n].shape[l[*n].ndim++] = (int64_t)strtoll(t, &end, 10);
            t = *end == ',' ? end + 1 : "";
        }
        store__read_result(st, 1, &l[*n].r);
        (*n)++;
    }
    if (rc == ERR_OK && src != STORE__DONE)
        rc = store__dberr(s, src, "summary backfill rows", e);
    store__release(st);
    *rows = l;
    return rc;
}

enum err_code store__summary_backfill(struct store *s, struct err *e)
{
    struct summary_group *g = NULL;
    struct store_layer *rows = NULL;
    size_t n_groups = 0, n_rows = 0, cap = 0;
    enum err_code rc = backfill_groups(s, &g, &n_groups, e);

    for (size_t i = 0; i < n_groups && rc == ERR_OK; i++) {
        rc = backfill_rows(s, &g[i], &rows, &cap, &n_rows, e);
        if (rc == ERR_OK)
            rc = store__summary_write(s, g[i].checkpoint_id, g[i].settings_hash, g[i].run_id,
                                      g[i].step, rows, n_rows, e);
    }
    free(rows);
    free(g);
    return rc;
}

/* --- Reads ---------------------------------------------------------------------- */

/* Read the SUMMARY_COLS rows of `st` into *out; *found = 1 if any. */
static enum err_code summary_fill(struct store *s, struct store__q *st, struct store_summary *out,
                                  int *found, struct err *e)
{
    char name[32];
    int src, m;

    while ((src = store__step(st)) == STORE__ROW) {
        struct farms_summary *sum = &out->sum;

        store__col_text(st, 1, name, sizeof name);
        m = farms_summary_metric_from_name(name);
        if (!*found) {
            for (int k = 0; k < FARMS_SUMMARY_COUNT; k++)
                sum->v[k] = (struct farms_summary_value){0, NAN, NAN};
            out->step = store__col_int64(st, 0);
            sum->n_layers = store__col_int64(st, 5);
            sum->n_ok = store__col_int64(st, 6);
            sum->n_under = store__col_int64(st, 7);
            sum->n_over = store__col_int64(st, 8);
            sum->n_suspect = store__col_int64(st, 9);
            *found = 1;
        }
        if (m < 0) /* a metric of a newer farmsd: not shown */
            continue;
        sum->v[m].n_layers = store__col_int64(st, 2);
        sum->v[m].mean = store__col_real(st, 3);
        sum->v[m].weighted_mean = store__col_real(st, 4);
    }
    return src == STORE__DONE ? ERR_OK : store__dberr(s, src, "summary", e);
}

enum err_code store_summary_get(struct store *s, const char *run, int64_t step,
                                const char *settings_hash, struct store_summary *out, int *found,
                                struct err *e)
{
    static const char sql[] =
        "SELECT " SUMMARY_COLS " FROM summaries WHERE run_id = ?1 AND settings_hash = ?2 "
        "AND step = CASE WHEN CAST(?3 AS BIGINT) < 0 THEN (SELECT max(step) FROM summaries "
        "WHERE run_id = ?1 AND settings_hash = ?2) ELSE CAST(?3 AS BIGINT) END";
    struct store_summary got;
    struct store__q *st = NULL;
    int64_t run_id = 0, ckpt = -1;
    enum err_code rc;

    *found = 0;
    memset(&got, 0, sizeof got);
    rc = store__run_id(s, run, &run_id, e);
    if (rc == ERR_OK && step >= 0)
        rc = store__checkpoint_id(s, run_id, run, step, &ckpt, e);
    if (rc == ERR_OK)
        rc = store__settings_for(s, run_id, ckpt, settings_hash, got.settings_hash, e);
    if (rc != ERR_OK || got.settings_hash[0] == '\0')
        return rc;
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, run_id);
    store__bind_text(st, 2, got.settings_hash);
    store__bind_int64(st, 3, step);
    rc = summary_fill(s, st, &got, found, e);
    store__release(st);
    if (rc == ERR_OK && *found)
        *out = got;
    else
        *found = 0;
    return rc;
}

/* Read the points of `st` into h, at most `limit`; one row more sets
 * h->next_token. */
static enum err_code history_fill(struct store *s, struct store__q *st,
                                  struct store_summary_history *h, size_t limit, struct err *e)
{
    int src;

    while ((src = store__step(st)) == STORE__ROW) {
        struct store_summary_point *p = NULL;

        if (h->n == limit) { /* one more row exists: not the last page */
            store__token_from_step(h->points[h->n - 1].step, h->next_token);
            return ERR_OK;
        }
        p = &h->points[h->n];
        p->step = store__col_int64(st, 0);
        p->n_layers = store__col_int64(st, 1);
        p->mean = store__col_real(st, 2);
        p->weighted_mean = store__col_real(st, 3);
        h->n++;
    }
    return src == STORE__DONE ? ERR_OK : store__dberr(s, src, "summary history", e);
}

enum err_code store_summary_history(struct store *s, const struct store_history_query *q,
                                    enum farms_summary_metric metric,
                                    struct store_summary_history **out, struct err *e)
{
    static const char sql[] =
        "SELECT step, n_layers, mean, weighted_mean FROM summaries WHERE run_id = ?1 "
        "AND settings_hash = ?2 AND metric = ?3 AND step >= ?4 AND step <= ?5 "
        "ORDER BY step LIMIT ?6";
    size_t limit = store__page_size(q->page_size);
    struct store_summary_history *h = NULL;
    struct store__q *st = NULL;
    int64_t run_id = 0, from = 0;
    enum err_code rc;
    int empty = 0;

    *out = NULL;
    if ((unsigned)metric >= FARMS_SUMMARY_COUNT)
        return err_set(e, ERR_INVAL, "summary metric out of range");
    rc = store__token_window(q->page_token, q->start_step, &from, &empty, e);
    if (rc == ERR_OK)
        rc = store__run_id(s, q->run, &run_id, e);
    if (rc != ERR_OK)
        return rc;
    h = calloc(1, sizeof *h);
    if (h != NULL)
        h->points = calloc(limit, sizeof *h->points);
    if (h == NULL || h->points == NULL) {
        rc = nomem(e);
        goto out;
    }
    h->metric = metric;
    rc = store__settings_for(s, run_id, -1, q->settings_hash, h->settings_hash, e);
    if (rc != ERR_OK || h->settings_hash[0] == '\0' || empty || from > q->end_step)
        goto out;
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        goto out;
    store__bind_int64(st, 1, run_id);
    store__bind_text(st, 2, h->settings_hash);
    store__bind_text(st, 3, farms_summary_metric_name(metric));
    store__bind_int64(st, 4, from);
    store__bind_int64(st, 5, q->end_step);
    store__bind_int64(st, 6, (int64_t)limit + 1);
    rc = history_fill(s, st, h, limit, e);
out:
    *out = store__page_done(st, rc, h, h != NULL ? h->points : NULL);
    return rc;
}

void store_summary_history_free(struct store_summary_history *h)
{
    store__page_free(h, h != NULL ? h->points : NULL);
}

/* --- Every run's latest summary -------------------------------------------------- */

enum err_code store_summary_latest(struct store *s, size_t max, struct store_summary_run **out,
                                   size_t *n, struct err *e)
{
    static const char sql[] = "SELECT name FROM runs ORDER BY version DESC, id DESC LIMIT ?1";
    struct store_summary_run *r = NULL;
    struct store__q *st = NULL;
    enum err_code rc;
    size_t n_runs = 0, i, k = 0;
    int src, found = 0;

    *out = NULL;
    *n = 0;
    r = calloc(max > 0 ? max : 1, sizeof *r);
    if (r == NULL)
        return nomem(e);
    rc = store__stmt(s, sql, &st, e);
    if (rc == ERR_OK) {
        store__bind_int64(st, 1, (int64_t)max);
        while ((src = store__step(st)) == STORE__ROW) { /* LIMIT max: at most max rows */
            if (n_runs < max)
                store__col_text(st, 0, r[n_runs++].run, sizeof r->run);
        }
        if (src != STORE__DONE)
            rc = store__dberr(s, src, "runs", e);
        store__release(st);
    }
    for (i = 0; i < n_runs && rc == ERR_OK; i++) {
        rc = store_summary_get(s, r[i].run, -1, NULL, &r[k].s, &found, e);
        if (rc == ERR_OK && found) {
            if (k != i)
                memcpy(r[k].run, r[i].run, sizeof r->run);
            k++;
        }
    }
    if (rc != ERR_OK) {
        free(r);
        return rc;
    }
    *out = r;
    *n = k;
    return ERR_OK;
}
