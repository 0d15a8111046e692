/* engine.c -- see engine.h. */
#include "server/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/analysis.h"
#include "core/clock.h"
#include "core/formats/peft.h"
#include "core/formats/thash.h"
#include "core/numerics/esd.h"
#include "core/numerics/preset.h"

/* --- Selection ---------------------------------------------------------- */

static void engine_skip(struct engine_layer *row, const char *reason)
{
    row->selected = 0;
    row->res.status = FARMS_STATUS_SKIPPED;
    snprintf(row->res.reason, sizeof(row->res.reason), "%.*s", (int)sizeof(row->res.reason) - 1,
             reason);
}

/* The rules' view of row `row` (tensor info borrowed from the row). */
static struct analysis_tensor engine_tensor_of(const struct engine_layer *row, uint64_t n_elems,
                                               const char *alias_of)
{
    return (struct analysis_tensor){.name = row->name,
                                    .dtype = row->dtype,
                                    .ndim = row->ndim,
                                    .shape = row->shape,
                                    .n_elems = n_elems,
                                    .alias_of = alias_of};
}

/* Fill the row for tensor `i` (row->name is set) and decide, by the
 * analysis rules, whether it is analysed; `weights` is the compiled
 * weights= setting (NULL for none). */
static void engine_row_init(const struct ckpt *c, size_t i, const struct engine_opts *o,
                            const regex_t *weights, struct engine_layer *row)
{
    const struct ckpt_tensor *t = ckpt_tensor_at(c, i);
    const char *alias = NULL;
    struct analysis_tensor at;
    char why[sizeof(row->res.reason)];

    row->tensor = i;
    row->dtype = t->dtype;
    row->ndim = t->ndim;
    memcpy(row->shape, t->shape, sizeof(row->shape));
    row->res.alpha = NAN;
    esd_hist_init(&row->esd);
    if (t->alias_of >= 0)
        alias = layer_strip_prefixes(ckpt_tensor_at(c, (size_t)t->alias_of)->name,
                                     ckpt_model_prefix(c));
    at = engine_tensor_of(row, t->n_elems, alias);
    at.forced = weights != NULL && regexec(weights, row->name, 0, NULL, 0) == 0;
    row->selected = 1;
    if (!analysis_select(&at, o->params, &row->info, why, sizeof(why)))
        engine_skip(row, why);
}

static int engine_name_wanted(const char *name, const struct engine_opts *o)
{
    if (o->include != NULL && regexec(o->include, name, 0, NULL, 0) != 0)
        return 0;
    if (o->exclude != NULL && regexec(o->exclude, name, 0, NULL, 0) == 0)
        return 0;
    return 1;
}

/* Put the rows of `r` in canonical layer order. */
static enum err_code engine_order(const struct ckpt *c, struct engine_report *r, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct layer_info *infos = NULL;
    const char **names = NULL;
    struct layer_records recs;
    struct engine_layer *sorted = NULL;
    size_t *order = NULL;

    if (r->n == 0)
        return ERR_OK;
    infos = malloc(r->n * sizeof(*infos));
    names = malloc(r->n * sizeof(*names));
    order = malloc(r->n * sizeof(*order));
    sorted = malloc(r->n * sizeof(*sorted));
    if (infos == NULL || names == NULL || order == NULL || sorted == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory ordering %zu layers", r->n);
        goto out;
    }
    for (size_t i = 0; i < r->n; i++) {
        infos[i] = r->layers[i].info;
        names[i] = r->layers[i].name;
    }
    recs = (struct layer_records){.infos = infos, .names = names, .n = r->n};
    rc = layer_order(&recs, ckpt_format_of(c) == CKPT_FORMAT_TORCH_ZIP, order, &r->ordering, e);
    if (rc)
        goto out;
    for (size_t i = 0; i < r->n; i++)
        sorted[i] = r->layers[order[i]];
    memcpy(r->layers, sorted, r->n * sizeof(*sorted));
out:
    free(infos);
    free(names);
    free(order);
    free(sorted);
    return rc;
}

/* A LoRA adapter read alone: its adapted modules are never fitted; each row
 * says why, with the module's rank and ||s*B*A||_2 (analysis_lora_reason). */
static enum err_code engine_lora_rows(const struct ckpt *c, struct engine_report *r, struct err *e)
{
    enum err_code rc = ERR_OK;

    for (size_t i = 0; i < r->n && rc == ERR_OK; i++) {
        struct engine_layer *row = &r->layers[i];
        struct peft_module_info m;
        double *a = NULL, *b = NULL;
        char why[sizeof(row->res.reason)];

        if (!peft_module_at(c, row->tensor, &m))
            continue;
        rc = peft_factors_read(c, row->tensor, &a, &b, e);
        if (rc == ERR_OK)
            rc = analysis_lora_reason(&m, a, b, why, sizeof(why), e);
        if (rc == ERR_OK)
            engine_skip(row, why);
        free(a);
        free(b);
    }
    return rc;
}

static enum err_code engine_hash_rows(const struct ckpt *c, struct engine_report *r, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct ckpt_buf buf = {0};

    for (size_t i = 0; i < r->n && rc == ERR_OK; i++)
        rc = thash_tensor(c, r->layers[i].tensor, &buf, r->layers[i].sha256, e);
    ckpt_buf_free(&buf);
    return rc;
}

/* The weights= setting of `p` compiled into *rx; *have 0 when there is none. */
static enum err_code engine_weights(const struct farms_params *p, regex_t *rx, int *have,
                                    struct err *e)
{
    *have = 0;
    if (p->weights[0] == '\0')
        return ERR_OK;
    if (regcomp(rx, p->weights, REG_EXTENDED | REG_NOSUB) != 0) {
        enum err_code rc = preset_regex_check(p->weights, e); /* says why */
        return rc ? rc : err_set(e, ERR_INVAL, "weights: '%.64s' does not compile", p->weights);
    }
    *have = 1;
    return ERR_OK;
}

enum err_code engine_select(const struct ckpt *c, const struct engine_opts *opts,
                            struct engine_report *out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct engine_report r = {0};
    size_t n = ckpt_n_tensors(c);
    regex_t weights;
    int have_weights = 0;

    memset(out, 0, sizeof(*out));
    rc = engine_weights(opts->params, &weights, &have_weights, e);
    if (rc)
        return rc;
    r.layers = calloc(n > 0 ? n : 1, sizeof(*r.layers));
    if (r.layers == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory listing %zu tensors", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(c, i);
        const char *name;

        if (!t->in_model)
            continue;
        name = layer_strip_prefixes(t->name, ckpt_model_prefix(c));
        if (!engine_name_wanted(name, opts))
            continue;
        r.layers[r.n].name = strdup(name);
        if (r.layers[r.n].name == NULL) {
            rc = err_set(e, ERR_NOMEM, "out of memory listing tensors");
            goto out;
        }
        engine_row_init(c, i, opts, have_weights ? &weights : NULL, &r.layers[r.n]);
        r.n++;
    }
    if (ckpt_format_of(c) == CKPT_FORMAT_PEFT)
        rc = engine_lora_rows(c, &r, e);
    if (rc == ERR_OK)
        rc = engine_order(c, &r, e);
    if (rc == ERR_OK && opts->hash)
        rc = engine_hash_rows(c, &r, e);
    if (rc)
        goto out;
    *out = r;
    memset(&r, 0, sizeof(r));
out:
    if (have_weights)
        regfree(&weights);
    engine_report_free(&r);
    return rc;
}

void engine_report_free(struct engine_report *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->layers[i].name);
    free(r->layers);
    memset(r, 0, sizeof(*r));
}

/* --- Analysis ------------------------------------------------------------- */

/* Per-run state shared by the unit items of one layer. Each worker uses only
 * its own workspace slot, so no lock is needed around `ws`. */
struct engine_ctx {
    struct farms_plan *plan;
    const double *w;    /* the layer as float64, row-major */
    struct esd_ws **ws; /* one slot per worker, grown on demand */
    int64_t need_n;     /* workspace the plan needs */
    int64_t need_gather;
};

struct engine_unit {
    struct engine_ctx *ctx;
    int64_t u;
    enum err_code rc;
    struct err err;
};

static void engine_unit_work(void *item, unsigned worker)
{
    struct engine_unit *it = item;
    struct engine_ctx *x = it->ctx;
    struct esd_ws **ws = &x->ws[worker];

    if (*ws == NULL || esd_ws_max_n(*ws) < x->need_n || esd_ws_max_gather(*ws) < x->need_gather) {
        esd_ws_free(*ws);
        *ws = NULL;
        it->rc = esd_ws_new(x->need_n, x->need_gather, ws, &it->err);
        if (it->rc)
            return;
    }
    it->rc = farms_unit_run(x->plan, it->u, x->w, *ws, &it->err);
}

/* The bytes about to be analysed are the bytes engine_select hashed (when
 * it hashed): nothing is analysed, or cached under a tensor hash, from
 * other bytes. `data` is the private copy ckpt_tensor_read made, so the
 * bytes hashed here are the bytes converted next, whatever happens to the
 * file meanwhile. A second SHA-256 of a buffer in memory costs little next
 * to the layer's eigensolves. A mismatch means the file changed in between. */
static enum err_code engine_verify(const struct engine_layer *row, const void *data,
                                   uint64_t nbytes, struct err *e)
{
    char hex[THASH_HEX_LEN];
    enum err_code rc;

    if (row->sha256[0] == '\0')
        return ERR_OK;
    rc = thash_bytes(data, (size_t)nbytes, hex, e);
    if (rc == ERR_OK && strcmp(hex, row->sha256) != 0)
        rc = err_setc(e, ERR_IO, ERR_CAT_CHANGED,
                      "tensor '%.100s': its bytes changed after they were hashed (the file was "
                      "modified while it was analysed)",
                      row->name);
    return rc;
}

/* The layer as float64 in the layout the analysis rules give it. */
static enum err_code engine_load(const struct ckpt *c, const struct engine_layer *row,
                                 struct ckpt_buf *buf, double **w, struct analysis_layout *lay,
                                 struct err *e)
{
    const struct ckpt_tensor *t = ckpt_tensor_at(c, row->tensor);
    struct analysis_tensor at = engine_tensor_of(row, t->n_elems, NULL);
    const void *data = NULL;
    enum err_code rc;

    *w = NULL;
    analysis_layout_of(row->info.kind, &at, lay);
    rc = ckpt_tensor_read(c, row->tensor, buf, &data, e);
    if (rc == ERR_OK)
        rc = engine_verify(row, data, t->nbytes, e);
    if (rc == ERR_OK)
        rc = analysis_matrix_new(&at, lay, data, w, e);
    return rc;
}

/* Run the units of x->plan on the pool and wait for them. */
static enum err_code engine_fan_out(struct pool *pool, struct engine_ctx *x, struct err *e)
{
    enum err_code rc = ERR_OK;
    int64_t n = farms_plan_n_units(x->plan);
    struct engine_unit *items = NULL;
    struct pool_group g;

    if (n == 0)
        return ERR_OK;
    items = calloc((size_t)n, sizeof(*items));
    if (items == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for %lld work items", (long long)n);
    pool_group_init(&g);
    for (int64_t u = 0; u < n; u++) {
        items[u].ctx = x;
        items[u].u = u;
        rc = pool_submit(pool, &g, engine_unit_work, &items[u], 1, e);
        if (rc)
            break;
    }
    pool_group_wait(&g);
    pool_group_destroy(&g);
    for (int64_t u = 0; u < n && rc == ERR_OK; u++) {
        if (items[u].rc) {
            rc = items[u].rc;
            if (e != NULL)
                *e = items[u].err;
        }
    }
    free(items);
    return rc;
}

/* The histogram of the plan's pooled eigenvalues (every ESD) with the
 * row's fit. */
static enum err_code engine_hist(const struct farms_plan *plan, struct engine_layer *row,
                                 struct err *e)
{
    int64_t n_esd = farms_plan_n_esd(plan), *lens = NULL;
    const double **sets = NULL;
    const struct farms_result *r = &row->res;
    struct esd_hist_fit fit;
    int ok = r->status == FARMS_STATUS_OK;

    if (n_esd <= 0)
        return ERR_OK;
    sets = calloc((size_t)n_esd, sizeof(*sets));
    lens = calloc((size_t)n_esd, sizeof(*lens));
    if (sets == NULL || lens == NULL) {
        free(sets);
        free(lens);
        return err_set(e, ERR_NOMEM, "out of memory for a histogram");
    }
    for (int64_t d = 0; d < n_esd; d++)
        sets[d] = farms_plan_eigs(plan, d, &lens[d]);
    fit = (struct esd_hist_fit){.alpha = r->alpha, .xmin = r->xmin, .D = r->D};
    esd_hist_compute(sets, lens, (size_t)n_esd, ok ? &fit : NULL, &row->esd);
    free(sets);
    free(lens);
    return ERR_OK;
}

/* Sum the stage timings of the n workspaces into *sum (NULL: drop them),
 * and zero them for the next layer. */
static void engine_stats_take(struct esd_ws **ws, unsigned n, struct esd_stats *sum)
{
    if (sum != NULL)
        memset(sum, 0, sizeof(*sum));
    for (unsigned i = 0; i < n; i++)
        if (ws[i] != NULL) {
            if (sum != NULL)
                esd_stats_add(sum, esd_ws_stats(ws[i]));
            esd_ws_stats_reset(ws[i]);
        }
}

/* Analyse one selected row. Numerical failures and oversized layouts become
 * the row's status; other failures are returned. */
static enum err_code engine_layer_run(const struct ckpt *c, struct pool *pool,
                                      const struct engine_opts *o, struct esd_ws **ws,
                                      struct ckpt_buf *buf, struct engine_layer *row, struct err *e)
{
    enum err_code rc;
    struct engine_ctx x = {0};
    struct analysis_layout lay;
    struct farms_shape shape;
    double *w = NULL, t0;
    struct err le;

    t0 = clock_mono_s();
    rc = engine_load(c, row, buf, &w, &lay, e);
    row->stages.load_s = clock_mono_s() - t0;
    if (rc)
        goto out;
    shape = (struct farms_shape){.kind = lay.kind, .n_dims = lay.n_dims, .shape = lay.shape};
    rc = farms_plan_new(o->params, &shape, (int)pool_size(pool), &x.plan, &le);
    if (rc == ERR_TOOBIG || rc == ERR_INVAL) {
        engine_skip(row, le.msg);
        rc = ERR_OK;
        goto out;
    }
    if (rc) {
        if (e != NULL)
            *e = le;
        goto out;
    }
    x.w = w;
    x.ws = ws;
    farms_plan_ws_need(x.plan, &x.need_n, &x.need_gather);
    engine_stats_take(ws, pool_size(pool), NULL);
    t0 = clock_mono_s();
    rc = engine_fan_out(pool, &x, &le);
    row->stages.units_s = clock_mono_s() - t0;
    engine_stats_take(ws, pool_size(pool), &row->stages.esd);
    t0 = clock_mono_s();
    if (rc == ERR_OK)
        rc = farms_plan_finish(x.plan, &row->res, &le);
    if (rc == ERR_OK)
        rc = engine_hist(x.plan, row, &le);
    row->stages.finish_s = clock_mono_s() - t0;
    if (rc == ERR_NUMERIC) { /* e.g. the eigensolver did not converge */
        row->res.status = FARMS_STATUS_FAILED;
        snprintf(row->res.reason, sizeof(row->res.reason), "%.*s", (int)sizeof(row->res.reason) - 1,
                 le.msg);
        rc = ERR_OK;
    } else if (rc && e != NULL) {
        *e = le;
        err_prefix(e, row->name);
    }
out:
    farms_plan_free(x.plan);
    free(w);
    return rc;
}

enum err_code engine_run(const struct ckpt *c, struct pool *pool, const struct engine_opts *opts,
                         struct engine_report *r, struct err *e)
{
    enum err_code rc = ERR_OK;
    unsigned n_workers = pool_size(pool);
    struct esd_ws **ws = NULL;
    struct ckpt_buf buf = {0};
    size_t total = 0, done = 0;

    ws = calloc(n_workers, sizeof(*ws)); /* NOLINT(bugprone-sizeof-expression): of pointers */
    if (ws == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for workspaces");
    for (size_t i = 0; i < r->n; i++)
        total += r->layers[i].selected ? 1 : 0;
    for (size_t i = 0; i < r->n && rc == ERR_OK; i++) {
        struct engine_layer *row = &r->layers[i];
        double t0;

        if (!row->selected)
            continue;
        t0 = clock_mono_s();
        rc = engine_layer_run(c, pool, opts, ws, &buf, row, e);
        done++;
        if (rc == ERR_OK && opts->progress != NULL &&
            opts->progress(opts->progress_arg, done, total, row, clock_mono_s() - t0) != 0)
            rc = err_set(e, ERR_CANCELED, "stopped after %zu of %zu layers", done, total);
    }
    for (unsigned i = 0; i < n_workers; i++)
        esd_ws_free(ws[i]);
    free(ws);
    ckpt_buf_free(&buf);
    return rc;
}
