/* store_layers.c -- reads of layer rows (table layers): one checkpoint's
 * layers, the latest row per layer, a layer's history over steps and the
 * run-wide heatmap of one metric. See store.h.
 *
 * Every query is an index range scan: (checkpoint_id, settings_hash, ord)
 * for one checkpoint, (run_id, settings_hash, name, step) for histories and
 * the latest row per layer (a skip-scan over the distinct names), and
 * (run_id, settings_hash, step, ord) for the heatmap. Pages are keyed by
 * step (keyset pagination: the token is the last step of the page).
 *
 * THREAD SAFETY: as store.h (one connection per thread).
 */
#include "storage/store.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

#define LAYER_COLS       "name, kind, dtype, shape, tensor_sha256, step, " STORE__RESULT_COLS
#define LAYER_COL_RESULT 6

static enum err_code nomem(struct err *e)
{
    return err_set(e, ERR_NOMEM, "layer rows: out of memory");
}

static void parse_shape(const char *t, struct store_layer *l)
{
    char *end;

    l->ndim = 0;
    while (t != NULL && *t != '\0' && l->ndim < CKPT_MAX_RANK) {
        l->shape[l->ndim++] = (int64_t)strtoll(t, &end, 10);
        if (end == t || (*end != ',' && *end != '\0'))
            break;
        t = *end == ',' ? end + 1 : end;
    }
}

/* Read the LAYER_COLS row of `st` into *l (name allocated). */
static enum err_code read_layer(struct store__q *st, struct store_layer *l, struct err *e)
{
    const char *name = store__col_str(st, 0);
    char word[32];
    int k;

    memset(l, 0, sizeof *l);
    esd_hist_init(&l->esd);
    l->name = strdup(name != NULL ? (const char *)name : "");
    if (l->name == NULL)
        return nomem(e);
    store__col_text(st, 1, word, sizeof word);
    k = layer_kind_from_name(word);
    l->kind = k < 0 ? LAYER_KIND_OTHER : (enum layer_kind)k;
    store__col_text(st, 2, word, sizeof word);
    k = dtype_from_name(word, strlen(word)); /* C128 and ggml types too */
    l->dtype = k < 0 ? (enum dtype)0 : (enum dtype)k;
    parse_shape(store__col_str(st, 3), l);
    store__col_text(st, 4, l->tensor_sha256, sizeof l->tensor_sha256);
    l->step = store__col_int64(st, 5);
    store__read_result(st, LAYER_COL_RESULT, &l->r);
    return ERR_OK;
}

/* Append every row of `st` to l->items. */
static enum err_code collect_layers(struct store *s, struct store__q *st,
                                    struct store_layer_list *l, struct err *e)
{
    size_t cap = 0;
    int src;

    while ((src = store__step(st)) == STORE__ROW) {
        if (l->n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            struct store_layer *grown = realloc(l->items, ncap * sizeof *grown);

            if (grown == NULL)
                return nomem(e);
            l->items = grown;
            cap = ncap;
        }
        if (read_layer(st, &l->items[l->n], e) != ERR_OK)
            return ERR_NOMEM;
        l->n++;
    }
    return src == STORE__DONE ? ERR_OK : store__dberr(s, src, "layer rows", e);
}

void store_layer_list_free(struct store_layer_list *l)
{
    size_t i;

    if (l == NULL)
        return;
    for (i = 0; l->items != NULL && i < l->n; i++)
        free(l->items[i].name);
    free(l->items);
    free(l);
}

/* A new list *l for step `step` with the settings of checkpoint `ckpt` of
 * run `run_id` (store__settings_for; ckpt < 0: the run's), and in *st the
 * statement `sql`, not yet bound; *st is NULL when the run has no such
 * settings (the list stays empty). The caller frees *l and releases *st. */
static enum err_code list_start(struct store *s, int64_t run_id, int64_t ckpt, int64_t step,
                                const char *settings_hash, const char *sql,
                                struct store_layer_list **l, struct store__q **st, struct err *e)
{
    enum err_code rc;

    *st = NULL;
    *l = calloc(1, sizeof **l);
    if (*l == NULL)
        return nomem(e);
    (*l)->step = step;
    rc = store__settings_for(s, run_id, ckpt, settings_hash, (*l)->settings_hash, e);
    if (rc != ERR_OK || (*l)->settings_hash[0] == '\0')
        return rc;
    return store__stmt(s, sql, st, e);
}

enum err_code store_layers_get(struct store *s, const char *run, int64_t step,
                               const char *settings_hash, struct store_layer_list **out,
                               struct err *e)
{
    static const char sql[] = "SELECT " LAYER_COLS " FROM layers WHERE checkpoint_id = ?1 "
                              "AND settings_hash = ?2 ORDER BY ord";
    struct store_layer_list *l = NULL;
    struct store__q *st = NULL;
    int64_t run_id = 0, ckpt = 0;
    enum err_code rc;

    *out = NULL;
    rc = store__run_id(s, run, &run_id, e);
    if (rc == ERR_OK)
        rc = store__checkpoint_id(s, run_id, run, step, &ckpt, e);
    if (rc != ERR_OK)
        return rc;
    rc = list_start(s, run_id, ckpt, step, settings_hash, sql, &l, &st, e);
    if (rc != ERR_OK || st == NULL)
        goto out;
    store__bind_int64(st, 1, ckpt);
    store__bind_text(st, 2, l->settings_hash);
    rc = collect_layers(s, st, l, e);
out:
    store__release(st);
    if (rc != ERR_OK) {
        store_layer_list_free(l);
        return rc;
    }
    *out = l;
    return ERR_OK;
}

enum err_code store_layers_latest(struct store *s, const char *run, const char *settings_hash,
                                  struct store_layer_list **out, struct err *e)
{
    /* Skip-scan the distinct names with the history index, then the row
     * with each name's highest step. */
    static const char sql[] =
        "WITH RECURSIVE names(n) AS ("
        " SELECT min(name) FROM layers WHERE run_id = ?1 AND settings_hash = ?2"
        " UNION ALL"
        " SELECT (SELECT min(name) FROM layers WHERE run_id = ?1 AND settings_hash = ?2"
        "         AND name > names.n) FROM names WHERE n IS NOT NULL)"
        "SELECT " LAYER_COLS " FROM names JOIN layers l ON l.run_id = ?1 AND l.settings_hash = ?2"
        " AND l.name = names.n AND l.step = (SELECT max(step) FROM layers WHERE run_id = ?1"
        " AND settings_hash = ?2 AND name = names.n)"
        " ORDER BY l.ord, l.name";
    struct store_layer_list *l = NULL;
    struct store__q *st = NULL;
    int64_t run_id = 0;
    enum err_code rc;
    size_t i;

    *out = NULL;
    rc = store__run_id(s, run, &run_id, e);
    if (rc != ERR_OK)
        return rc;
    rc = list_start(s, run_id, -1, -1, settings_hash, sql, &l, &st, e);
    if (rc != ERR_OK || st == NULL)
        goto out;
    store__bind_int64(st, 1, run_id);
    store__bind_text(st, 2, l->settings_hash);
    rc = collect_layers(s, st, l, e);
    for (i = 0; i < l->n; i++)
        l->step = l->items[i].step > l->step ? l->items[i].step : l->step;
out:
    store__release(st);
    if (rc != ERR_OK) {
        store_layer_list_free(l);
        return rc;
    }
    *out = l;
    return ERR_OK;
}

enum err_code store_layer_get(struct store *s, const char *run, const char *layer, int64_t step,
                              const char *settings_hash, struct store_layer_list **out,
                              struct err *e)
{
    static const char sql[] = "SELECT " LAYER_COLS ", esd FROM layers WHERE run_id = ?1 AND "
                              "settings_hash = ?2 AND name = ?3 AND (CAST(?4 AS BIGINT) < 0 OR "
                              "step = CAST(?4 AS BIGINT)) "
                              "ORDER BY step DESC LIMIT 1";
    struct store_layer_list *l = NULL;
    struct store__q *st = NULL;
    int64_t run_id = 0, ckpt = -1;
    enum err_code rc;
    int src;

    *out = NULL;
    if (layer == NULL)
        return err_set(e, ERR_INVAL, "layer name missing");
    rc = store__run_id(s, run, &run_id, e);
    if (rc == ERR_OK && step >= 0)
        rc = store__checkpoint_id(s, run_id, run, step, &ckpt, e);
    if (rc != ERR_OK)
        return rc;
    rc = list_start(s, run_id, ckpt, step, settings_hash, sql, &l, &st, e);
    if (rc != ERR_OK || st == NULL)
        goto out;
    store__bind_int64(st, 1, run_id);
    store__bind_text(st, 2, l->settings_hash);
    store__bind_text(st, 3, layer);
    store__bind_int64(st, 4, step);
    l->items = calloc(1, sizeof *l->items);
    if (l->items == NULL) {
        rc = nomem(e);
        goto out;
    }
    src = store__step(st);
    if (src == STORE__ROW)
        rc = read_layer(st, &l->items[0], e);
    else if (src != STORE__DONE)
        rc = store__dberr(s, src, "layer row", e);
    if (src == STORE__ROW && rc == ERR_OK) {
        store__read_esd(st, LAYER_COL_RESULT + STORE__RESULT_NCOLS, &l->items[0].esd);
        l->step = l->items[0].step;
        l->n = 1;
    }
out:
    store__release(st);
    if (rc != ERR_OK) {
        store_layer_list_free(l);
        return rc;
    }
    *out = l;
    return ERR_OK;
}

/* --- History of one layer ------------------------------------------------------ */

static void read_point(struct store__q *st, struct store_point *p)
{
    struct farms_result r;
    int m;

    store__read_result(st, 1, &r);
    p->step = store__col_int64(st, 0);
    p->status = r.status;
    p->warning = r.warning;
    for (m = 0; m < STORE_METRIC_COUNT; m++)
        p->v[m] = store_metric_value(&r, (enum store_metric)m);
}

/* Read the rows of `st` into h->points, at most `limit`; one row more sets
 * h->next_token (not the last page). */
static enum err_code history_fill(struct store *s, struct store__q *st, struct store_history *h,
                                  size_t limit, struct err *e)
{
    int src;

    while ((src = store__step(st)) == STORE__ROW) {
        if (h->n == limit) { /* one more row exists: not the last page */
            store__token_from_step(h->points[h->n - 1].step, h->next_token);
            return ERR_OK;
        }
        read_point(st, &h->points[h->n++]);
    }
    return src == STORE__DONE ? ERR_OK : store__dberr(s, src, "layer history", e);
}

enum err_code store_layer_history(struct store *s, const struct store_history_query *q,
                                  struct store_history **out, struct err *e)
{
    static const char sql[] = "SELECT step, " STORE__RESULT_COLS " FROM layers "
                              "WHERE run_id = ?1 AND settings_hash = ?2 AND name = ?3 "
                              "AND step >= ?4 AND step <= ?5 ORDER BY step LIMIT ?6";
    size_t limit = store__page_size(q->page_size);
    struct store_history *h = NULL;
    struct store__q *st = NULL;
    int64_t run_id = 0, from = 0;
    enum err_code rc;
    int empty = 0;

    *out = NULL;
    if (q->layer == NULL)
        return err_set(e, ERR_INVAL, "layer name missing");
    rc = store__token_window(q->page_token, q->start_step, &from, &empty, e);
    if (rc == ERR_OK)
        rc = store__run_id(s, q->run, &run_id, e);
    if (rc != ERR_OK)
        return rc;
    h = calloc(1, sizeof *h);
    if (h != NULL)
        h->points = calloc(limit, sizeof *h->points);
    if (h == NULL || h->points == NULL) {
        rc = err_set(e, ERR_NOMEM, "history: out of memory");
        goto out;
    }
    rc = store__settings_for(s, run_id, -1, q->settings_hash, h->settings_hash, e);
    if (rc != ERR_OK || h->settings_hash[0] == '\0' || empty || from > q->end_step)
        goto out;
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        goto out;
    store__bind_int64(st, 1, run_id);
    store__bind_text(st, 2, h->settings_hash);
    store__bind_text(st, 3, q->layer);
    store__bind_int64(st, 4, from);
    store__bind_int64(st, 5, q->end_step);
    store__bind_int64(st, 6, (int64_t)limit + 1);
    rc = history_fill(s, st, h, limit, e);
out:
    *out = store__page_done(st, rc, h, h != NULL ? h->points : NULL);
    return rc;
}

void store_history_free(struct store_history *h)
{
    store__page_free(h, h != NULL ? h->points : NULL);
}
