/* store_results.c -- the result cache (table results), writing layer rows
 * (table layers, with the checkpoint's summary: store_summary.c) and the
 * metric table. See store.h.
 *
 * Status and warning are stored as words ("ok", "under_trained"), kind and
 * dtype as their names (layer_kind_name, dtype_name), shapes as "512,64":
 * the database stays readable and independent of enum numbering. NaN is
 * stored as NULL (what SQLite does with a NaN double) and read back as NaN.
 *
 * THREAD SAFETY: as store.h (one connection per thread).
 */
#include "storage/store.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/thash.h"
#include "storage/store_int.h"
#include "storage/store_summary_int.h"

/* --- Names ----------------------------------------------------------------- */

static const char *const status_names[] = {
    [FARMS_STATUS_OK] = STORE__STATUS_OK,
    [FARMS_STATUS_SKIPPED] = "skipped",
    [FARMS_STATUS_FAILED] = "failed",
};
static const char *const warning_names[] = {"none", "under_trained", "over_trained", "suspect_fit"};
#define METRIC_NAME(member, NAME, type, key, column, json, history, ...) \
    FARMS_FIELD_WHEN_##history(key, )
static const char *const metric_names[] = {FARMS_RESULT_FIELDS(METRIC_NAME)};
#undef METRIC_NAME

static int name_index(const char *const *names, int n, const char *s)
{
    int i;

    for (i = 0; s != NULL && i < n; i++) {
        if (strcmp(names[i], s) == 0)
            return i;
    }
    return -1;
}

const char *store_metric_name(enum store_metric m)
{
    return (unsigned)m < STORE_METRIC_COUNT ? metric_names[m] : "?";
}

int store_metric_from_name(const char *s)
{
    if (s != NULL && strcmp(s, "alpha_hat") == 0) /* deprecated: alpha_weighted's old name */
        return STORE_METRIC_ALPHA_HAT;
    return name_index(metric_names, STORE_METRIC_COUNT, s);
}

double store_metric_value(const struct farms_result *r, enum store_metric m)
{
    if (r->status != FARMS_STATUS_OK)
        return NAN;
    switch (m) {
#define METRIC_CASE(member, NAME, type, key, column, json, history, ...) \
    FARMS_FIELD_WHEN_##history(case STORE_METRIC_##NAME : return (double)r->member;)
        FARMS_RESULT_FIELDS(METRIC_CASE)
#undef METRIC_CASE
    case STORE_METRIC_COUNT: break;
    }
    return NAN;
}

/* --- Result columns -------------------------------------------------------- */

/* Bind a REAL field (NaN as NULL) / an INT field. */
static void bind_real(struct store__q *st, int idx, double v)
{
    if (isnan(v))
        store__bind_null(st, idx);
    else
        store__bind_double(st, idx, v);
}

#define BIND_REAL(st, idx, v) bind_real(st, idx, v)
#define BIND_INT(st, idx, v)  store__bind_int64(st, idx, v)
#define READ_REAL(st, col)    store__col_real(st, col)
#define READ_INT(st, col)     store__col_int64(st, col)

enum err_code store__bind_result(struct store *s, struct store__q *st, int first,
                                 const struct farms_result *r, struct err *e)
{
    int col = first + 3;

    (void)s;
    if ((unsigned)r->status > FARMS_STATUS_FAILED ||
        (unsigned)r->warning > FARMS_WARNING_SUSPECT_FIT)
        return err_set(e, ERR_INVAL, "result: status or warning out of range");
    store__bind_text(st, first, status_names[r->status]);
    store__bind_textn(st, first + 1, r->reason, strnlen(r->reason, sizeof r->reason));
    store__bind_text(st, first + 2, warning_names[r->warning]);
#define BIND_FIELD(member, NAME, type, ...) BIND_##type(st, col++, r->member);
    FARMS_RESULT_FIELDS(BIND_FIELD)
#undef BIND_FIELD
    return ERR_OK;
}

void store__read_result(struct store__q *st, int first, struct farms_result *r)
{
    char word[32];
    int k, col = first + 3;

    memset(r, 0, sizeof *r);
    store__col_text(st, first, word, sizeof word);
    k = name_index(status_names, 3, word);
    r->status = k < 0 ? FARMS_STATUS_FAILED : (enum farms_status)k;
    store__col_text(st, first + 1, r->reason, sizeof r->reason);
    store__col_text(st, first + 2, word, sizeof word);
    k = name_index(warning_names, 4, word);
    r->warning = k < 0 ? FARMS_WARNING_NONE : (enum farms_warning)k;
#define READ_FIELD(member, NAME, type, ...) r->member = READ_##type(st, col++);
    FARMS_RESULT_FIELDS(READ_FIELD)
#undef READ_FIELD
}

enum err_code store__bind_esd(struct store__q *st, int idx, const struct esd_hist *h, struct err *e)
{
    char text[ESD_HIST_TEXT_MAX];
    enum err_code rc;

    if (h == NULL || h->n_eigs == 0) {
        store__bind_null(st, idx);
        return ERR_OK;
    }
    rc = esd_hist_encode(h, text, sizeof text, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_text(st, idx, text);
    return ERR_OK;
}

void store__read_esd(struct store__q *st, int col, struct esd_hist *h)
{
    const char *t = store__col_str(st, col);

    if (t == NULL || esd_hist_decode((const char *)t, h, NULL) != ERR_OK)
        esd_hist_init(h);
}

/* --- Cache ------------------------------------------------------------------ */

static enum err_code check_key(const struct store_result_key *k, struct err *e)
{
    if (!thash_hex_ok(k->tensor_sha256))
        return err_set(e, ERR_INVAL, "tensor hash is not 64 lower-case hex digits");
    if (!thash_hex_ok(k->settings_hash))
        return err_set(e, ERR_INVAL, "settings hash is not 64 lower-case hex digits");
    if (k->analysis_key == NULL || k->analysis_key[0] == '\0' ||
        strlen(k->analysis_key) >= STORE_KEY_MAX)
        return err_set(e, ERR_INVAL, "analysis key empty or longer than %d bytes",
                       STORE_KEY_MAX - 1);
    if (k->engine_version == NULL || k->engine_version[0] == '\0' ||
        strlen(k->engine_version) >= STORE_KEY_MAX)
        return err_set(e, ERR_INVAL, "engine version empty or longer than %d bytes",
                       STORE_KEY_MAX - 1);
    return ERR_OK;
}

static void bind_key(struct store__q *st, const struct store_result_key *k)
{
    store__bind_text(st, 1, k->tensor_sha256);
    store__bind_text(st, 2, k->analysis_key);
    store__bind_text(st, 3, k->settings_hash);
    store__bind_text(st, 4, k->engine_version);
}

enum err_code store_result_get(struct store *s, const struct store_result_key *key,
                               struct farms_result *out, struct esd_hist *esd, int *hit,
                               struct err *e)
{
    static const char sql[] = "SELECT " STORE__RESULT_COLS ", esd FROM results WHERE "
                              "tensor_sha256 = ?1 AND analysis_key = ?2 AND settings_hash = ?3 "
                              "AND engine_version = ?4";
    struct store__q *st = NULL;
    enum err_code rc;
    int src;

    *hit = 0;
    rc = check_key(key, e);
    if (rc == ERR_OK)
        rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        return rc;
    bind_key(st, key);
    src = store__step(st);
    if (src == STORE__ROW) {
        store__read_result(st, 0, out);
        if (esd != NULL)
            store__read_esd(st, STORE__RESULT_NCOLS, esd);
        *hit = 1;
    } else if (src != STORE__DONE) {
        rc = store__dberr(s, src, "result get", e);
    }
    store__release(st);
    return rc;
}

enum err_code store_result_put(struct store *s, const struct store_result_key *key,
                               const struct farms_result *r, const struct esd_hist *esd,
                               struct err *e)
{
    static const char sql[] = "INSERT INTO results(tensor_sha256, analysis_key, "
                              "settings_hash, engine_version, created, " STORE__RESULT_COLS
                              ", esd) VALUES(?1, ?2, ?3, ?4, ?5, " STORE__RESULT_PARAMS ", ?) "
                              "ON CONFLICT DO NOTHING";
    struct store__q *st = NULL;
    enum err_code rc;

    rc = check_key(key, e);
    if (rc == ERR_OK)
        rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        return rc;
    bind_key(st, key);
    store__bind_double(st, 5, store__now());
    rc = store__bind_result(s, st, 6, r, e);
    if (rc == ERR_OK)
        rc = store__bind_esd(st, 6 + STORE__RESULT_NCOLS, esd, e);
    if (rc != ERR_OK) {
        store__release(st);
        return rc;
    }
    return store__step_done(s, st, "result put", e);
}

enum err_code store_results_for_tensor(struct store *s, const char *tensor_sha256,
                                       struct store_result_list **out, struct err *e)
{
    static const char sql[] =
        "SELECT r.analysis_key, r.settings_hash, coalesce(g.preset, ''), "
        "coalesce(g.params, ''), r.engine_version, r.created, " STORE__RESULT_COLS
        " FROM results r LEFT JOIN settings g ON g.hash = r.settings_hash "
        "WHERE r.tensor_sha256 = ?1 ORDER BY r.settings_hash, r.analysis_key, r.engine_version "
        "LIMIT ?2";
    struct store_result_list *l = NULL;
    struct store__q *st = NULL;
    enum err_code rc;
    int src;

    *out = NULL;
    if (!thash_hex_ok(tensor_sha256))
        return err_set(e, ERR_INVAL, "tensor hash is not 64 lower-case hex digits");
    l = calloc(1, sizeof *l);
    if (l == NULL)
        return err_set(e, ERR_NOMEM, "result list: out of memory");
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        goto out;
    store__bind_text(st, 1, tensor_sha256);
    store__bind_int64(st, 2, STORE_PAGE_MAX);
    while ((src = store__step(st)) == STORE__ROW) {
        struct store_result *it, *grown;

        grown = realloc(l->items, (l->n + 1) * sizeof *l->items);
        if (grown == NULL) {
            rc = err_set(e, ERR_NOMEM, "result list: out of memory");
            goto out;
        }
        l->items = grown;
        it = &l->items[l->n++];
        store__col_text(st, 0, it->analysis_key, sizeof it->analysis_key);
        store__col_text(st, 1, it->settings_hash, sizeof it->settings_hash);
        store__col_text(st, 2, it->preset, sizeof it->preset);
        store__col_text(st, 3, it->params_json, sizeof it->params_json);
        store__col_text(st, 4, it->engine_version, sizeof it->engine_version);
        it->created = store__col_double(st, 5);
        store__read_result(st, 6, &it->r);
    }
    if (src != STORE__DONE)
        rc = store__dberr(s, src, "results for tensor", e);
out:
    store__release(st);
    if (rc != ERR_OK) {
        store_result_list_free(l);
        return rc;
    }
    *out = l;
    return ERR_OK;
}

void store_result_list_free(struct store_result_list *l)
{
    if (l == NULL)
        return;
    free(l->items);
    free(l);
}

/* --- Writing layer rows ------------------------------------------------------ */

static enum err_code check_layer(const struct store_layer *l, size_t i, struct err *e)
{
    if (l->name == NULL || l->name[0] == '\0')
        return err_set(e, ERR_INVAL, "layer %zu: empty name", i);
    if (l->ndim < 0 || l->ndim > CKPT_MAX_RANK)
        return err_set(e, ERR_INVAL, "layer '%s': %d dims", l->name, l->ndim);
    if ((unsigned)l->kind >= LAYER_KIND_COUNT || (unsigned)l->dtype >= DTYPE_COUNT)
        return err_set(e, ERR_INVAL, "layer '%s': kind or dtype out of range", l->name);
    if (l->tensor_sha256[0] != '\0' && !thash_hex_ok(l->tensor_sha256))
        return err_set(e, ERR_INVAL, "layer '%s': tensor hash malformed", l->name);
    return ERR_OK;
}

static void shape_text(const struct store_layer *l, char *buf, size_t len)
{
    size_t off = 0;
    int d;

    buf[0] = '\0';
    for (d = 0; d < l->ndim && off < len; d++)
        off += (size_t)snprintf(buf + off, len - off, d ? ",%" PRId64 : "%" PRId64, l->shape[d]);
}

/* Where layer rows go: (checkpoint, settings), with the checkpoint's run
 * and step copied into every row. */
struct layer_target {
    int64_t checkpoint_id;
    const char *settings_hash;
    int64_t run_id;
    int64_t step;
};

/* Insert layers[0..n) at `t`. */
static enum err_code insert_layers(struct store *s, const struct layer_target *t,
                                   const struct store_layer *layers, size_t n, struct err *e)
{
    static const char sql[] =
        "INSERT INTO layers(checkpoint_id, settings_hash, ord, run_id, step, name, kind, dtype, "
        "shape, tensor_sha256, " STORE__RESULT_COLS ", esd) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, "
        "?8, ?9, ?10, " STORE__RESULT_PARAMS ", ?)";
    char shape[CKPT_MAX_RANK * 21 + 1];
    struct store__q *st = NULL;
    enum err_code rc = ERR_OK;
    size_t i;

    for (i = 0; i < n && rc == ERR_OK; i++) {
        const struct store_layer *l = &layers[i];

        rc = check_layer(l, i, e);
        if (rc == ERR_OK)
            rc = store__stmt(s, sql, &st, e);
        if (rc != ERR_OK)
            break;
        shape_text(l, shape, sizeof shape);
        store__bind_int64(st, 1, t->checkpoint_id);
        store__bind_text(st, 2, t->settings_hash);
        store__bind_int64(st, 3, (int64_t)i);
        store__bind_int64(st, 4, t->run_id);
        store__bind_int64(st, 5, t->step);
        store__bind_text(st, 6, l->name);
        store__bind_text(st, 7, layer_kind_name(l->kind));
        store__bind_text(st, 8, dtype_name(l->dtype));
        store__bind_text(st, 9, shape);
        store__bind_text(st, 10, l->tensor_sha256);
        rc = store__bind_result(s, st, 11, &l->r, e);
        if (rc == ERR_OK)
            rc = store__bind_esd(st, 11 + STORE__RESULT_NCOLS, &l->esd, e);
        if (rc == ERR_OK)
            rc = store__step_done(s, st, "layer insert", e);
        else
            store__release(st);
    }
    return rc;
}

/* Run and step of checkpoint `checkpoint_id`; ERR_NOTFOUND if none. */
static enum err_code checkpoint_run_step(struct store *s, int64_t checkpoint_id, int64_t *run_id,
                                         int64_t *step, struct err *e)
{
    static const char sql[] = "SELECT run_id, step FROM checkpoints WHERE id = ?1";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, checkpoint_id);
    src = store__step(st);
    if (src == STORE__ROW) {
        *run_id = store__col_int64(st, 0);
        *step = store__col_int64(st, 1);
    } else if (src == STORE__DONE) {
        rc = err_set(e, ERR_NOTFOUND, "checkpoint %" PRId64 " not found", checkpoint_id);
    } else {
        rc = store__dberr(s, src, "checkpoint lookup", e);
    }
    store__release(st);
    return rc;
}

/* Delete the layer rows of (checkpoint, settings). */
static enum err_code delete_layers(struct store *s, int64_t checkpoint_id,
                                   const char *settings_hash, struct err *e)
{
    static const char sql[] = "DELETE FROM layers WHERE checkpoint_id = ?1 AND settings_hash = ?2";
    struct store__q *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);

    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, checkpoint_id);
    store__bind_text(st, 2, settings_hash);
    return store__step_done(s, st, "layer delete", e);
}

enum err_code store_layers_put(struct store *s, int64_t checkpoint_id, const char *settings_hash,
                               const struct store_layer *layers, size_t n, struct err *e)
{
    struct layer_target t = {.checkpoint_id = checkpoint_id, .settings_hash = settings_hash};
    enum err_code rc;

    if (!thash_hex_ok(settings_hash))
        return err_set(e, ERR_INVAL, "settings hash is not 64 lower-case hex digits");
    if (n > 0 && layers == NULL)
        return err_set(e, ERR_INVAL, "layers missing");
    rc = store__begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = checkpoint_run_step(s, checkpoint_id, &t.run_id, &t.step, e);
    if (rc == ERR_OK)
        rc = delete_layers(s, checkpoint_id, settings_hash, e);
    if (rc == ERR_OK)
        rc = insert_layers(s, &t, layers, n, e);
    if (rc == ERR_OK)
        rc = store__summary_write(s, checkpoint_id, settings_hash, t.run_id, t.step, layers, n, e);
    if (rc == ERR_OK)
        rc = store__bump_run(s, t.run_id, e);
    if (rc == ERR_OK)
        rc = store__commit(s, e);
    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}
