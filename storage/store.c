/* store.c -- open (picks the driver by URL), driver dispatch, statement
 * cache, transactions, settings and run versions. See store.h; the schema
 * and migrations live with each driver (store_db_sqlite*.c, store_db_pg*.c).
 *
 * THREAD SAFETY: a struct store is one connection; the caller keeps it on
 * one thread at a time.
 */
#include "storage/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/formats/thash.h"
#include "storage/store_db.h"
#include "storage/store_int.h"
#include "storage/store_summary_int.h"

/* --- Driver dispatch ------------------------------------------------------- */

void store__bind_int64(struct store__q *q, int idx, int64_t v)
{
    q->drv->bind_int64(q, idx, v);
}

void store__bind_double(struct store__q *q, int idx, double v)
{
    if (isnan(v))
        q->drv->bind_null(q, idx);
    else
        q->drv->bind_double(q, idx, v);
}

void store__bind_text(struct store__q *q, int idx, const char *v)
{
    q->drv->bind_text(q, idx, v, strlen(v));
}

void store__bind_textn(struct store__q *q, int idx, const char *v, size_t n)
{
    q->drv->bind_text(q, idx, v, n);
}

void store__bind_null(struct store__q *q, int idx)
{
    q->drv->bind_null(q, idx);
}

int store__step(struct store__q *q)
{
    return q->drv->step(q);
}

int store__is_null(struct store__q *q, int col)
{
    return q->drv->is_null(q, col);
}

int64_t store__col_int64(struct store__q *q, int col)
{
    return q->drv->col_int64(q, col);
}

double store__col_double(struct store__q *q, int col)
{
    return q->drv->col_double(q, col);
}

const char *store__col_str(struct store__q *q, int col)
{
    return q->drv->col_text(q, col);
}

int64_t store__changes(struct store *s)
{
    return s->drv->changes(s);
}

/* --- Errors, statements, transactions -------------------------------------- */

/* --- Migrations shared by the drivers -------------------------------------- */

/* Data migrations, run (once, in order) by a migration past `since` after it
 * has added the columns of the fields of its version.
 * 5: x_max is the largest eigenvalue of the fitted ESD, the number
 *    spectral_norm holds (core/numerics/farms_metrics.c): ok rows analysed
 *    before the column existed get it; other rows keep NULL. */
static const struct store__migration store_data_migrations[] = {
    {"UPDATE results SET x_max = spectral_norm"
     " WHERE x_max IS NULL AND status = " STORE__STATUS_OK_SQL ";"
     " UPDATE layers SET x_max = spectral_norm"
     " WHERE x_max IS NULL AND status = " STORE__STATUS_OK_SQL,
     5},
};

/* Run list[0..n) with since > have, in order. */
static enum err_code store_run_since(struct store *s, const struct store__migration *list, size_t n,
                                     int have, const char *what, struct err *e)
{
    enum err_code rc = ERR_OK;

    for (size_t i = 0; i < n && rc == ERR_OK; i++) {
        if (list[i].since > have)
            rc = s->drv->exec(s, list[i].sql, what, e);
    }
    return rc;
}

enum err_code store__migrate_fields(struct store *s, const struct store__migration *adds, size_t n,
                                    int have, struct err *e)
{
    enum err_code rc = store_run_since(s, adds, n, have, "migrate: add a result column", e);

    if (rc == ERR_OK)
        rc = store_run_since(s, store_data_migrations,
                             sizeof store_data_migrations / sizeof store_data_migrations[0], have,
                             "migrate: fill new columns", e);
    /* 8: the summaries of the checkpoints analysed before (computed in C:
     * the weights are products of the shape text) */
    if (rc == ERR_OK && have < 8)
        rc = store__summary_backfill(s, e);
    return rc;
}


enum err_code store__dberr(struct store *s, int rc, const char *what, struct err *e)
{
    const char *msg = s != NULL && s->conn != NULL ? s->drv->errmsg(s) : "no connection";

    if (rc == STORE__BUSY)
        return err_set(e, ERR_BUSY, "%s: database busy: %s", what, msg);
    return err_set(e, ERR_DB, "%s: %s", what, msg);
}

enum err_code store__stmt(struct store *s, const char *sql, struct store__q **out, struct err *e)
{
    enum err_code rc;
    size_t i;

    *out = NULL;
    for (i = 0; i < s->n_stmts; i++) {
        if (s->stmts[i].sql == sql) {
            s->drv->reset(s->stmts[i].st);
            *out = s->stmts[i].st;
            return ERR_OK;
        }
    }
    ERR_ASSERT(s->n_stmts < STORE__MAX_STMTS);
    rc = s->drv->prepare(s, sql, &s->stmts[i].st, e);
    if (rc != ERR_OK) {
        s->stmts[i].st = NULL;
        return rc;
    }
    s->stmts[i].sql = sql;
    s->n_stmts++;
    *out = s->stmts[i].st;
    return ERR_OK;
}

void store__release(struct store__q *st)
{
    if (st != NULL)
        st->drv->reset(st);
}

enum err_code store__step_done(struct store *s, struct store__q *st, const char *what,
                               struct err *e)
{
    int rc = store__step(st);

    if (rc != STORE__DONE && rc != STORE__ROW) {
        rc = store__dberr(s, rc, what, e);
        store__release(st);
        return (enum err_code)rc;
    }
    store__release(st);
    return ERR_OK;
}

enum err_code store__stmt_id(struct store *s, const char *sql, int64_t id, struct store__q **out,
                             struct err *e)
{
    enum err_code rc = store__stmt(s, sql, out, e);

    if (rc == ERR_OK)
        store__bind_int64(*out, 1, id);
    return rc;
}

enum err_code store__row_id(struct store *s, const char *sql, int64_t id, const char *what,
                            struct store__q **out, int *row, struct err *e)
{
    enum err_code rc = store__stmt_id(s, sql, id, out, e);
    int src;

    *row = 0;
    if (rc != ERR_OK)
        return rc;
    src = store__step(*out);
    if (src == STORE__ROW)
        *row = 1;
    else if (src != STORE__DONE)
        rc = store__dberr(s, src, what, e);
    return rc;
}

enum err_code store__begin(struct store *s, struct err *e)
{
    return s->drv->begin(s, e);
}

enum err_code store__commit(struct store *s, struct err *e)
{
    enum err_code rc = s->drv->commit(s, e);

    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}

void store__rollback(struct store *s)
{
    s->drv->rollback(s);
}

double store__now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void store__col_text(struct store__q *st, int col, char *buf, size_t len)
{
    if (len == 0)
        return;
    snprintf(buf, len, "%s", store__col_str(st, col));
}

double store__col_real(struct store__q *st, int col)
{
    if (store__is_null(st, col))
        return NAN;
    return store__col_double(st, col);
}

/* --- Open and close ---------------------------------------------------------- */

/* The driver for `url` and the target it connects to: "postgresql://..." or
 * "postgres://..." (the whole URL), "sqlite:PATH" (PATH), else a path. */
static const struct store__drv *store_pick(const char *url, const char **target)
{
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        *target = url;
        return &store__drv_pg;
    }
    *target = strncmp(url, "sqlite:", 7) == 0 ? url + 7 : url;
    return &store__drv_sqlite;
}

enum err_code store_open(const char *url, struct store **out, struct err *e)
{
    const char *target = NULL;
    struct store *s = NULL;
    enum err_code rc;

    *out = NULL;
    if (url == NULL || url[0] == '\0')
        return err_set(e, ERR_INVAL, "store_open: empty database URL");
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return err_set(e, ERR_NOMEM, "store_open: out of memory");
    s->drv = store_pick(url, &target);
    if (target[0] == '\0') {
        rc = err_set(e, ERR_INVAL, "store_open: '%s' names no database", url);
        goto out;
    }
    rc = s->drv->open(s, target, e);
out:
    if (rc != ERR_OK) {
        store_close(s);
        return rc;
    }
    *out = s;
    return ERR_OK;
}

void store_close(struct store *s)
{
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; i < s->n_stmts; i++)
        s->drv->finalize(s->stmts[i].st);
    s->drv->close(s);
    free(s);
}

const char *store_instance_id(const struct store *s)
{
    return s->instance;
}

const char *store_backend(const struct store *s)
{
    return s->drv->name;
}

enum err_code store_check(struct store *s, struct err *e)
{
    return s->drv->check(s, e);
}

/* --- Settings ----------------------------------------------------------------- */

enum err_code store_settings_hash(const char *params_json, char hash[THASH_HEX_LEN], struct err *e)
{
    return thash_bytes(params_json, strlen(params_json), hash, e);
}

enum err_code store_settings_put(struct store *s, const char *preset, const char *params_json,
                                 char hash[THASH_HEX_LEN], struct err *e)
{
    static const char sql[] = "INSERT INTO settings(hash, preset, params) "
                              "VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING";
    struct store__q *st = NULL;
    enum err_code rc;

    if (preset == NULL || preset[0] == '\0' || strlen(preset) >= STORE_PRESET_MAX)
        return err_set(e, ERR_INVAL, "preset name empty or longer than %d bytes",
                       STORE_PRESET_MAX - 1);
    if (params_json == NULL || strlen(params_json) >= STORE_PARAMS_MAX)
        return err_set(e, ERR_INVAL, "params JSON missing or longer than %d bytes",
                       STORE_PARAMS_MAX - 1);
    rc = store_settings_hash(params_json, hash, e);
    if (rc != ERR_OK)
        return rc;
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_text(st, 1, hash);
    store__bind_text(st, 2, preset);
    store__bind_text(st, 3, params_json);
    return store__step_done(s, st, "settings put", e);
}

/* --- Runs and versions ------------------------------------------------------ */

enum err_code store__bump_run(struct store *s, int64_t run_id, struct err *e)
{
    static const char bump[] =
        "UPDATE meta SET value = CAST(value AS BIGINT) + 1 WHERE key = 'change_seq'";
    static const char set[] =
        "UPDATE runs SET version = "
        "(SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'change_seq') WHERE id = ?1";
    struct store__q *st = NULL;
    enum err_code rc;

    rc = store__stmt(s, bump, &st, e);
    if (rc != ERR_OK)
        return rc;
    rc = store__step_done(s, st, "bump change id", e);
    if (rc != ERR_OK)
        return rc;
    rc = store__stmt(s, set, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, run_id);
    return store__step_done(s, st, "bump run version", e);
}

enum err_code store__run_id(struct store *s, const char *name, int64_t *id, struct err *e)
{
    static const char sql[] = "SELECT id FROM runs WHERE name = ?1";
    struct store__q *st = NULL;
    enum err_code rc;
    int src;

    if (name == NULL)
        return err_set(e, ERR_INVAL, "run name missing");
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_text(st, 1, name);
    src = store__step(st);
    if (src == STORE__ROW)
        *id = store__col_int64(st, 0);
    else if (src == STORE__DONE)
        rc = err_set(e, ERR_NOTFOUND, "run '%.*s' not found", STORE_RUN_MAX, name);
    else
        rc = store__dberr(s, src, "run lookup", e);
    store__release(st);
    return rc;
}

enum err_code store__settings_for(struct store *s, int64_t run_id, int64_t checkpoint_id,
                                  const char *given, char out[THASH_HEX_LEN], struct err *e)
{
    static const char by_run[] =
        "SELECT j.settings_hash FROM jobs j JOIN checkpoints c ON c.id = j.checkpoint_id "
        "WHERE c.run_id = ?1 ORDER BY j.state = " STORE__JOB_SUCCEEDED_SQL " DESC, c.step DESC, "
        "j.id DESC LIMIT 1";
    static const char by_ckpt[] =
        "SELECT settings_hash FROM jobs WHERE checkpoint_id = ?1 "
        "ORDER BY state = " STORE__JOB_SUCCEEDED_SQL " DESC, id DESC LIMIT 1";
    struct store__q *st = NULL;
    enum err_code rc;
    int src;

    out[0] = '\0';
    if (given != NULL) {
        if (!thash_hex_ok(given))
            return err_set(e, ERR_INVAL, "settings hash is not 64 lower-case hex digits");
        memcpy(out, given, THASH_HEX_LEN);
        return ERR_OK;
    }
    rc = store__stmt(s, checkpoint_id < 0 ? by_run : by_ckpt, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(st, 1, checkpoint_id < 0 ? run_id : checkpoint_id);
    src = store__step(st);
    if (src == STORE__ROW)
        store__col_text(st, 0, out, THASH_HEX_LEN);
    else if (src != STORE__DONE)
        rc = store__dberr(s, src, "settings lookup", e);
    store__release(st);
    return rc;
}

enum err_code store_run_version(struct store *s, const char *run, int64_t *version, struct err *e)
{
    static const char sql[] = "SELECT version FROM runs WHERE name = ?1";
    struct store__q *st = NULL;
    enum err_code rc;
    int src;

    if (run == NULL)
        return err_set(e, ERR_INVAL, "run name missing");
    if (run[0] != '\0' && store__vcache_get(s, run, version))
        return ERR_OK;
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_text(st, 1, run);
    src = store__step(st);
    if (src == STORE__ROW) {
        *version = store__col_int64(st, 0);
        store__vcache_put(s, run, *version);
    } else if (src == STORE__DONE)
        rc = err_set(e, ERR_NOTFOUND, "run '%.*s' not found", STORE_RUN_MAX, run);
    else
        rc = store__dberr(s, src, "run version", e);
    store__release(st);
    return rc;
}

enum err_code store_runs_version(struct store *s, int64_t *version, struct err *e)
{
    static const char sql[] = "SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'change_seq'";
    struct store__q *st = NULL;
    enum err_code rc;
    int src;

    if (store__vcache_get(s, "", version))
        return ERR_OK;
    rc = store__stmt(s, sql, &st, e);
    if (rc != ERR_OK)
        return rc;
    src = store__step(st);
    if (src == STORE__ROW) {
        *version = store__col_int64(st, 0);
        store__vcache_put(s, "", *version);
    } else {
        rc = store__dberr(s, src, "change id", e);
    }
    store__release(st);
    return rc;
}
