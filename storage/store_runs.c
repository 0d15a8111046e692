/* store_runs.c -- reads of runs and checkpoints (and the checkpoint id
 * lookup of store_int.h), and the run-wide heatmap of one metric. See
 * store.h.
 *
 * Runs are paged by name (token: hex of the last name), checkpoints and the
 * heatmap by step (token: the last step). A heatmap page ends at a step
 * boundary: after page_size steps, or earlier once it holds
 * HEATMAP_MAX_CELLS cells, so memory stays bounded for very wide runs.
 * Page tokens (store_page.c) are URL-safe ([0-9a-f-]) and opaque to
 * callers.
 *
 * THREAD SAFETY: as store.h (one connection per thread).
 */
#include "storage/store_runs.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

#define HEATMAP_MAX_CELLS ((size_t)1 << 20)

/* --- Runs ----------------------------------------------------------------------- */

enum err_code store_runs_list(struct store *s, size_t page_size, const char *page_token,
                              struct store_run_page **out, struct err *e)
{
    static const char sql[] =
        "SELECT r.name, r.created, r.version,"
        " (SELECT count(*) FROM checkpoints c WHERE c.run_id = r.id),"
        " coalesce((SELECT max(step) FROM checkpoints c WHERE c.run_id = r.id), -1) "
        "FROM runs r WHERE r.name > ?1 ORDER BY r.name LIMIT ?2";
    size_t limit = store__page_size(page_size), cap = 0;
    char after[STORE_RUN_MAX] = "";
    struct store_run_page *p = NULL;
    struct store__q *st = NULL;
    struct store_run *grown = NULL;
    enum err_code rc;
    int has = 0, src;

    *out = NULL;
    rc = store__token_name(page_token, after, sizeof after, &has, e);
    if (rc != ERR_OK)
        return rc;
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        rc = err_set(e, ERR_NOMEM, "runs list: out of memory");
        goto out;
    }
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        goto out;
    store__bind_text(st, 1, after);
    store__bind_int64(st, 2, (int64_t)limit + 1);
    while ((src = store__step(st)) == STORE__ROW) {
        struct store_run *r;

        if (p->n == limit) {
            store__token_from_name(p->items[p->n - 1].name, p->next_token);
            src = STORE__DONE;
            break;
        }
        grown = store__page_grow(p->items, p->n, &cap, sizeof *grown);
        if (grown == NULL) {
            rc = err_set(e, ERR_NOMEM, "runs list: out of memory");
            goto out;
        }
        p->items = grown;
        r = &p->items[p->n];
        store__col_text(st, 0, r->name, sizeof r->name);
        r->created = store__col_double(st, 1);
        r->version = store__col_int64(st, 2);
        r->n_checkpoints = store__col_int64(st, 3);
        r->last_step = store__col_int64(st, 4);
        p->n++;
    }
    if (src != STORE__DONE)
        rc = store__dberr(s, src, "runs list", e);
out:
    *out = store__page_done(st, rc, p, p != NULL ? p->items : NULL);
    return rc;
}

void store_run_page_free(struct store_run_page *p)
{
    store__page_free(p, p != NULL ? p->items : NULL);
}

/* --- Checkpoints ------------------------------------------------------------------ */

/* Prepare `sql`, bind (?1 run_id, ?2 step) and step to its row, for the
 * caller to read; the caller releases *out in every case. No row:
 * ERR_NOTFOUND ("run 'x' has no checkpoint at step n"); a failed step:
 * store__dberr(what). */
static enum err_code checkpoint_row(struct store *s, const char *sql, int64_t run_id,
                                    const char *run, int64_t step, const char *what,
                                    struct store__q **out, struct err *e)
{
    enum err_code rc = store__stmt(s, sql, out, e);
    int src;

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(*out, 1, run_id);
    store__bind_int64(*out, 2, step);
    src = store__step(*out);
    if (src == STORE__DONE)
        rc = err_set(e, ERR_NOTFOUND, "run '%s' has no checkpoint at step %" PRId64, run, step);
    else if (src != STORE__ROW)
        rc = store__dberr(s, src, what, e);
    return rc;
}

enum err_code store__checkpoint_id(struct store *s, int64_t run_id, const char *run, int64_t step,
                                   int64_t *id, struct err *e)
{
    static const char sql[] = "SELECT id FROM checkpoints WHERE run_id = ?1 AND step = ?2";
    struct store__q *st = NULL;
    enum err_code rc = checkpoint_row(s, sql, run_id, run, step, "checkpoint lookup", &st, e);

    if (rc == ERR_OK)
        *id = store__col_int64(st, 0);
    store__release(st);
    return rc;
}

#define CKPT_SELECT                                                                             \
    "SELECT c.id, c.step, c.content_sha256, c.source, c.path, c.format, c.size, c.created,"     \
    " coalesce(j.id, 0), coalesce(j.state, " STORE__JOB_QUEUED_SQL "), coalesce(j.preset, '')," \
    " coalesce(j.settings_hash, ''), coalesce(j.n_done, 0), coalesce(j.n_total, 0),"            \
    " coalesce(j.n_cache_hits, 0), (SELECT count(*) FROM layers l WHERE"                        \
    " l.checkpoint_id = c.id AND l.settings_hash = j.settings_hash) "                           \
    "FROM checkpoints c LEFT JOIN jobs j ON j.id ="                                             \
    " (SELECT max(id) FROM jobs WHERE checkpoint_id = c.id) "

static void read_checkpoint(struct store__q *st, struct store_checkpoint *c)
{
    memset(c, 0, sizeof *c);
    c->id = store__col_int64(st, 0);
    c->step = store__col_int64(st, 1);
    store__col_text(st, 2, c->content_sha256, sizeof c->content_sha256);
    c->source = (enum store_source)(int)store__col_int64(st, 3);
    store__col_text(st, 4, c->path, sizeof c->path);
    store__col_text(st, 5, c->format, sizeof c->format);
    c->size = (uint64_t)store__col_int64(st, 6);
    c->created = store__col_double(st, 7);
    c->job_id = store__col_int64(st, 8);
    c->job_state = (enum store_job_state)(int)store__col_int64(st, 9);
    store__col_text(st, 10, c->preset, sizeof c->preset);
    store__col_text(st, 11, c->settings_hash, sizeof c->settings_hash);
    c->n_done = store__col_int64(st, 12);
    c->n_total = store__col_int64(st, 13);
    c->n_cache_hits = store__col_int64(st, 14);
    c->n_layers = store__col_int64(st, 15);
}

enum err_code store_checkpoint_get(struct store *s, const char *run, int64_t step,
                                   struct store_checkpoint *out, struct err *e)
{
    static const char sql[] = CKPT_SELECT "WHERE c.run_id = ?1 AND c.step = ?2";
    struct store__q *st = NULL;
    int64_t run_id = 0;
    enum err_code rc;

    rc = store__run_id(s, run, &run_id, e);
    if (rc == ERR_OK)
        rc = checkpoint_row(s, sql, run_id, run, step, "checkpoint get", &st, e);
    if (rc == ERR_OK)
        read_checkpoint(st, out);
    store__release(st);
    return rc;
}

enum err_code store_checkpoints_list(struct store *s, const char *run, size_t page_size,
                                     const char *page_token, struct store_checkpoint_page **out,
                                     struct err *e)
{
    static const char sql[] = CKPT_SELECT "WHERE c.run_id = ?1 AND c.step > ?2 "
                                          "ORDER BY c.step LIMIT ?3";
    size_t limit = store__page_size(page_size), cap = 0;
    struct store_checkpoint_page *p = NULL;
    struct store_checkpoint *grown = NULL;
    struct store__q *st = NULL;
    int64_t run_id = 0, after = INT64_MIN;
    enum err_code rc;
    int has = 0, src;

    *out = NULL;
    rc = store__token_step(page_token, &after, &has, e);
    if (rc == ERR_OK)
        rc = store__run_id(s, run, &run_id, e);
    if (rc != ERR_OK)
        return rc;
    if (!has)
        after = INT64_MIN;
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        rc = err_set(e, ERR_NOMEM, "checkpoint list: out of memory");
        goto out;
    }
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        goto out;
    store__bind_int64(st, 1, run_id);
    store__bind_int64(st, 2, after);
    store__bind_int64(st, 3, (int64_t)limit + 1);
    while ((src = store__step(st)) == STORE__ROW) {
        if (p->n == limit) {
            store__token_from_step(p->items[p->n - 1].step, p->next_token);
            src = STORE__DONE;
            break;
        }
        grown = store__page_grow(p->items, p->n, &cap, sizeof *grown);
        if (grown == NULL) {
            rc = err_set(e, ERR_NOMEM, "checkpoint list: out of memory");
            goto out;
        }
        p->items = grown;
        read_checkpoint(st, &p->items[p->n++]);
    }
    if (src != STORE__DONE)
        rc = store__dberr(s, src, "checkpoint list", e);
out:
    store__release(st);
    if (rc != ERR_OK) {
        store_checkpoint_page_free(p);
        return rc;
    }
    *out = p;
    return ERR_OK;
}

void store_checkpoint_page_free(struct store_checkpoint_page *p)
{
    if (p == NULL)
        return;
    free(p->items);
    free(p);
}

/* --- Heatmap ------------------------------------------------------------------------ */

/* Index of layer `name` in h->layers: first try `guess` (rows of every step
 * usually come in the same order), else search, else append. -1: no memory. */
static int64_t heat_layer(struct store_heatmap *h, size_t *cap, const char *name, size_t guess)
{
    size_t i;
    char **grown;

    if (guess < h->n_layers && strcmp(h->layers[guess], name) == 0)
        return (int64_t)guess;
    for (i = 0; i < h->n_layers; i++) {
        if (strcmp(h->layers[i], name) == 0)
            return (int64_t)i;
    }
    if (h->n_layers == *cap) {
        size_t ncap = *cap ? 2 * *cap : 64;

        grown = realloc(h->layers, ncap * sizeof *grown);
        if (grown == NULL)
            return -1;
        h->layers = grown;
        *cap = ncap;
    }
    h->layers[h->n_layers] = strdup(name);
    if (h->layers[h->n_layers] == NULL)
        return -1;
    return (int64_t)h->n_layers++;
}

static int heat_cell_room(struct store_heatmap *h, size_t *cap)
{
    struct store_cell *grown;
    size_t ncap;

    if (h->n_cells < *cap)
        return 1;
    ncap = *cap ? 2 * *cap : 256;
    grown = realloc(h->cells, ncap * sizeof *grown);
    if (grown == NULL)
        return 0;
    h->cells = grown;
    *cap = ncap;
    return 1;
}

/* Read cells from `st` (step, name, result columns; ordered by step, ord)
 * until page_size steps or the cell cap, ending at a step boundary. */
static enum err_code heat_fill(struct store *s, struct store__q *st, struct store_heatmap *h,
                               size_t page_size, struct err *e)
{
    size_t layer_cap = 0, cell_cap = 0, pos = 0;
    int64_t cur = 0;
    int src;

    while ((src = store__step(st)) == STORE__ROW) {
        int64_t step = store__col_int64(st, 0);
        const char *name = store__col_str(st, 1);
        struct farms_result r;

        if (h->n_steps == 0 || step != cur) {
            if (h->n_steps == page_size || h->n_cells >= HEATMAP_MAX_CELLS) {
                store__token_from_step(cur, h->next_token);
                return ERR_OK;
            }
            h->n_steps++;
            cur = step;
            pos = 0;
        }
        int64_t idx = heat_layer(h, &layer_cap, name != NULL ? (const char *)name : "", pos++);
        if (idx < 0 || !heat_cell_room(h, &cell_cap))
            return err_set(e, ERR_NOMEM, "heatmap: out of memory");
        store__read_result(st, 2, &r);
        h->cells[h->n_cells].step = step;
        h->cells[h->n_cells].layer = (size_t)idx;
        h->cells[h->n_cells].status = r.status;
        h->cells[h->n_cells].value = store_metric_value(&r, h->metric);
        h->n_cells++;
    }
    return src == STORE__DONE ? ERR_OK : store__dberr(s, src, "run history", e);
}

enum err_code store_run_history(struct store *s, const struct store_history_query *q,
                                struct store_heatmap **out, struct err *e)
{
    static const char sql[] = "SELECT step, name, " STORE__RESULT_COLS " FROM layers "
                              "WHERE run_id = ?1 AND settings_hash = ?2 AND step >= ?3 "
                              "AND step <= ?4 ORDER BY step, ord";
    struct store_heatmap *h = NULL;
    struct store__q *st = NULL;
    int64_t run_id = 0, from = q->start_step, after = 0;
    enum err_code rc;
    int has = 0;

    *out = NULL;
    if ((unsigned)q->metric >= STORE_METRIC_COUNT)
        return err_set(e, ERR_INVAL, "unknown metric %d", (int)q->metric);
    rc = store__token_step(q->page_token, &after, &has, e);
    if (rc == ERR_OK)
        rc = store__run_id(s, q->run, &run_id, e);
    if (rc != ERR_OK)
        return rc;
    if (has && after >= q->start_step)
        from = after == INT64_MAX ? INT64_MAX : after + 1;
    h = calloc(1, sizeof *h);
    if (h == NULL)
        return err_set(e, ERR_NOMEM, "heatmap: out of memory");
    h->metric = q->metric;
    rc = store__settings_for(s, run_id, -1, q->settings_hash, h->settings_hash, e);
    if (rc != ERR_OK || h->settings_hash[0] == '\0' || from > q->end_step ||
        (has && after == INT64_MAX))
        goto out;
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        goto out;
    store__bind_int64(st, 1, run_id);
    store__bind_text(st, 2, h->settings_hash);
    store__bind_int64(st, 3, from);
    store__bind_int64(st, 4, q->end_step);
    rc = heat_fill(s, st, h, store__page_size(q->page_size), e);
out:
    store__release(st);
    if (rc != ERR_OK) {
        store_heatmap_free(h);
        return rc;
    }
    *out = h;
    return ERR_OK;
}

void store_heatmap_free(struct store_heatmap *h)
{
    size_t i;

    if (h == NULL)
        return;
    for (i = 0; i < h->n_layers; i++)
        free(h->layers[i]);
    free(h->layers);
    free(h->cells);
    free(h);
}
