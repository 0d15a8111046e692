/* store.c -- open, schema migrations, statement cache, transactions, run
 * versions and page tokens. See store.h.
 *
 * THREAD SAFETY: a struct store is one connection opened with
 * SQLITE_OPEN_NOMUTEX; the caller keeps it on one thread at a time.
 *
 * Pragmas: journal_mode=WAL (readers never block the writer, dashboards
 * poll), synchronous=FULL (a commit that acknowledges an upload must survive
 * power loss; NORMAL in WAL mode may lose the last commits), busy_timeout
 * (writers queue instead of failing), foreign_keys=ON.
 */
#include "storage/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "core/thash.h"
#include "storage/store_int.h"

/* --- Schema ------------------------------------------------------------------ */

/* Version 1. The result columns are STORE__RESULT_COLS (store_int.h). */
static const char SCHEMA_V1[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO meta VALUES('instance', lower(hex(randomblob(16))));"
    "INSERT OR IGNORE INTO meta VALUES('change_seq', 0);"
    "CREATE TABLE IF NOT EXISTS runs("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL,"
    " version INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS settings("
    " hash TEXT PRIMARY KEY, preset TEXT NOT NULL, params TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS checkpoints("
    " id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),"
    " step INTEGER NOT NULL, content_sha256 TEXT NOT NULL, source INTEGER NOT NULL,"
    " path TEXT NOT NULL DEFAULT '', format TEXT NOT NULL DEFAULT '',"
    " size INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, UNIQUE(run_id, step));"
    "CREATE TABLE IF NOT EXISTS jobs("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),"
    " settings_hash TEXT NOT NULL REFERENCES settings(hash), preset TEXT NOT NULL,"
    " state INTEGER NOT NULL, n_done INTEGER NOT NULL DEFAULT 0,"
    " n_total INTEGER NOT NULL DEFAULT 0, n_cache_hits INTEGER NOT NULL DEFAULT 0,"
    " error_category TEXT NOT NULL DEFAULT '', error_message TEXT NOT NULL DEFAULT '',"
    " created REAL NOT NULL, started REAL NOT NULL DEFAULT 0,"
    " finished REAL NOT NULL DEFAULT 0, UNIQUE(checkpoint_id, settings_hash));"
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);"
    "CREATE TABLE IF NOT EXISTS results("
    " tensor_sha256 TEXT NOT NULL, analysis_key TEXT NOT NULL, settings_hash TEXT NOT NULL,"
    " engine_version TEXT NOT NULL, created REAL NOT NULL,"
    " status TEXT NOT NULL, reason TEXT NOT NULL, warning TEXT NOT NULL, alpha REAL, D REAL,"
    " xmin REAL, xmin_index INTEGER, n_tail INTEGER, n_fitted INTEGER, spectral_norm REAL,"
    " norm REAL, alpha_hat REAL, stable_rank REAL, norm_stable_rank REAL, log_norm REAL,"
    " log_spectral_norm REAL, matrix_rank INTEGER, entropy REAL, num_eigs INTEGER,"
    " windows INTEGER,"
    " PRIMARY KEY(tensor_sha256, analysis_key, settings_hash, engine_version)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS layers("
    " checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),"
    " settings_hash TEXT NOT NULL, ord INTEGER NOT NULL,"
    " run_id INTEGER NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL,"
    " kind TEXT NOT NULL, dtype TEXT NOT NULL, shape TEXT NOT NULL,"
    " tensor_sha256 TEXT NOT NULL,"
    " status TEXT NOT NULL, reason TEXT NOT NULL, warning TEXT NOT NULL, alpha REAL, D REAL,"
    " xmin REAL, xmin_index INTEGER, n_tail INTEGER, n_fitted INTEGER, spectral_norm REAL,"
    " norm REAL, alpha_hat REAL, stable_rank REAL, norm_stable_rank REAL, log_norm REAL,"
    " log_spectral_norm REAL, matrix_rank INTEGER, entropy REAL, num_eigs INTEGER,"
    " windows INTEGER,"
    " PRIMARY KEY(checkpoint_id, settings_hash, ord));"
    "CREATE INDEX IF NOT EXISTS layers_history ON layers(run_id, settings_hash, name, step);"
    "CREATE INDEX IF NOT EXISTS layers_step ON layers(run_id, settings_hash, step, ord);"
    "PRAGMA user_version = 1;";

/* Version 2: the ESD histogram (core/esd_hist text form, NULL when none)
 * of every cached result and layer row. */
static const char SCHEMA_V2[] = "ALTER TABLE results ADD COLUMN esd TEXT;"
                                "ALTER TABLE layers ADD COLUMN esd TEXT;"
                                "PRAGMA user_version = 2;";

/* --- Errors, statements, transactions -------------------------------------- */

enum err_code store__dberr(struct store *s, int rc, const char *what, struct err *e)
{
    int prim = rc & 0xff;
    const char *msg = s != NULL && s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);

    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
        return err_set(e, ERR_BUSY, "%s: database busy: %s", what, msg);
    return err_set(e, ERR_DB, "%s: %s", what, msg);
}

enum err_code store__stmt(struct store *s, const char *sql, sqlite3_stmt **out, struct err *e)
{
    size_t i;
    int rc;

    *out = NULL;
    for (i = 0; i < s->n_stmts; i++) {
        if (s->stmts[i].sql == sql) {
            sqlite3_reset(s->stmts[i].st);
            sqlite3_clear_bindings(s->stmts[i].st);
            *out = s->stmts[i].st;
            return ERR_OK;
        }
    }
    ERR_ASSERT(s->n_stmts < STORE__MAX_STMTS);
    rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[i].st, NULL);
    if (rc != SQLITE_OK) {
        s->stmts[i].st = NULL;
        return store__dberr(s, rc, "prepare", e);
    }
    s->stmts[i].sql = sql;
    s->n_stmts++;
    *out = s->stmts[i].st;
    return ERR_OK;
}

void store__release(sqlite3_stmt *st)
{
    if (st != NULL)
        sqlite3_reset(st);
}

enum err_code store__step_done(struct store *s, sqlite3_stmt *st, const char *what, struct err *e)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return store__dberr(s, rc, what, e);
    return ERR_OK;
}

static enum err_code store_exec(struct store *s, const char *sql, const char *what, struct err *e)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? ERR_OK : store__dberr(s, rc, what, e);
}

enum err_code store__begin(struct store *s, struct err *e)
{
    return store_exec(s, "BEGIN IMMEDIATE", "begin", e);
}

enum err_code store__commit(struct store *s, struct err *e)
{
    enum err_code rc = store_exec(s, "COMMIT", "commit", e);

    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}

void store__rollback(struct store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

double store__now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void store__col_text(sqlite3_stmt *st, int col, char *buf, size_t len)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    if (len == 0)
        return;
    snprintf(buf, len, "%s", t != NULL ? (const char *)t : "");
}

double store__col_real(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NAN;
    return sqlite3_column_double(st, col);
}

int store__is_hex64(const char *s)
{
    size_t i;

    if (s == NULL)
        return 0;
    for (i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return s[64] == '\0';
}

/* --- Open and close ---------------------------------------------------------- */

static enum err_code store_user_version(struct store *s, int *v, struct err *e)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);

    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *v = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? ERR_OK : store__dberr(s, rc, "user_version", e);
}

/* Bring the schema to STORE_SCHEMA_VERSION inside BEGIN IMMEDIATE: a second
 * process opening at the same time waits, then sees the new version. */
static enum err_code store_migrate(struct store *s, struct err *e)
{
    enum err_code rc;
    int v = 0;

    if ((rc = store_user_version(s, &v, e)) != ERR_OK)
        return rc;
    if (v == STORE_SCHEMA_VERSION)
        return ERR_OK;
    if ((rc = store__begin(s, e)) != ERR_OK)
        return rc;
    if ((rc = store_user_version(s, &v, e)) != ERR_OK)
        goto out;
    if (v > STORE_SCHEMA_VERSION) {
        rc = err_set(e, ERR_DB, "database schema version %d is newer than this farmsd's (%d)", v,
                     STORE_SCHEMA_VERSION);
        goto out;
    }
    if (v < 1 && (rc = store_exec(s, SCHEMA_V1, "migrate to schema 1", e)) != ERR_OK)
        goto out;
    if (v < 2 && (rc = store_exec(s, SCHEMA_V2, "migrate to schema 2", e)) != ERR_OK)
        goto out;
    rc = store__commit(s, e);
out:
    if (rc != ERR_OK)
        store__rollback(s);
    return rc;
}

static enum err_code store_load_instance(struct store *s, struct err *e)
{
    static const char sql[] = "SELECT value FROM meta WHERE key = 'instance'";
    sqlite3_stmt *st = NULL;
    enum err_code rc = store__stmt(s, sql, &st, e);
    int src;

    if (rc != ERR_OK)
        return rc;
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        store__col_text(st, 0, s->instance, sizeof s->instance);
    else
        rc = store__dberr(s, src, "instance id", e);
    store__release(st);
    return rc;
}

enum err_code store_open(const char *path, struct store **out, struct err *e)
{
    static const char pragmas[] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                  "PRAGMA foreign_keys=ON;";
    struct store *s = NULL;
    enum err_code rc;
    int src;

    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return err_set(e, ERR_INVAL, "store_open: empty path");
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return err_set(e, ERR_NOMEM, "store_open: out of memory");
    src = sqlite3_open_v2(path, &s->db,
                          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = s->db != NULL ? store__dberr(s, src, path, e)
                           : err_set(e, ERR_NOMEM, "%s: cannot allocate a connection", path);
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    if ((rc = store_exec(s, pragmas, "pragmas", e)) != ERR_OK)
        goto out;
    if ((rc = store_migrate(s, e)) != ERR_OK)
        goto out;
    rc = store_load_instance(s, e);
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
        sqlite3_finalize(s->stmts[i].st);
    sqlite3_close(s->db);
    free(s);
}

const char *store_instance_id(const struct store *s)
{
    return s->instance;
}

enum err_code store_check(struct store *s, struct err *e)
{
    sqlite3_stmt *st = NULL;
    char first[200] = "";
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL);

    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        store__col_text(st, 0, first, sizeof first);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return store__dberr(s, rc, "integrity_check", e);
    if (strcmp(first, "ok") != 0)
        return err_set(e, ERR_DB, "integrity_check: %s", first);
    return ERR_OK;
}

/* --- Settings ----------------------------------------------------------------- */

enum err_code store_settings_hash(const char *params_json, char hash[STORE_HASH_LEN], struct err *e)
{
    return thash_bytes(params_json, strlen(params_json), hash, e);
}

enum err_code store_settings_put(struct store *s, const char *preset, const char *params_json,
                                 char hash[STORE_HASH_LEN], struct err *e)
{
    static const char sql[] = "INSERT OR IGNORE INTO settings(hash, preset, params) "
                              "VALUES(?1, ?2, ?3)";
    sqlite3_stmt *st = NULL;
    enum err_code rc;

    if (preset == NULL || preset[0] == '\0' || strlen(preset) >= STORE_PRESET_MAX)
        return err_set(e, ERR_INVAL, "preset name empty or longer than %d bytes",
                       STORE_PRESET_MAX - 1);
    if (params_json == NULL || strlen(params_json) >= STORE_PARAMS_MAX)
        return err_set(e, ERR_INVAL, "params JSON missing or longer than %d bytes",
                       STORE_PARAMS_MAX - 1);
    if ((rc = store_settings_hash(params_json, hash, e)) != ERR_OK)
        return rc;
    if ((rc = store__stmt(s, sql, &st, e)) != ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, preset, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, params_json, -1, SQLITE_STATIC);
    return store__step_done(s, st, "settings put", e);
}

/* --- Runs and versions ------------------------------------------------------ */

enum err_code store__bump_run(struct store *s, int64_t run_id, struct err *e)
{
    static const char bump[] = "UPDATE meta SET value = value + 1 WHERE key = 'change_seq'";
    static const char set[] = "UPDATE runs SET version = "
                              "(SELECT value FROM meta WHERE key = 'change_seq') WHERE id = ?1";
    sqlite3_stmt *st = NULL;
    enum err_code rc;

    if ((rc = store__stmt(s, bump, &st, e)) != ERR_OK)
        return rc;
    if ((rc = store__step_done(s, st, "bump change id", e)) != ERR_OK)
        return rc;
    if ((rc = store__stmt(s, set, &st, e)) != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    return store__step_done(s, st, "bump run version", e);
}

enum err_code store__run_id(struct store *s, const char *name, int64_t *id, struct err *e)
{
    static const char sql[] = "SELECT id FROM runs WHERE name = ?1";
    sqlite3_stmt *st = NULL;
    enum err_code rc;
    int src;

    if (name == NULL)
        return err_set(e, ERR_INVAL, "run name missing");
    if ((rc = store__stmt(s, sql, &st, e)) != ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    else if (src == SQLITE_DONE)
        rc = err_set(e, ERR_NOTFOUND, "run '%.*s' not found", STORE_RUN_MAX, name);
    else
        rc = store__dberr(s, src, "run lookup", e);
    store__release(st);
    return rc;
}

enum err_code store__settings_for(struct store *s, int64_t run_id, int64_t checkpoint_id,
                                  const char *given, char out[STORE_HASH_LEN], struct err *e)
{
    static const char by_run[] =
        "SELECT j.settings_hash FROM jobs j JOIN checkpoints c ON c.id = j.checkpoint_id "
        "WHERE c.run_id = ?1 ORDER BY j.state = 2 DESC, j.id DESC LIMIT 1";
    static const char by_ckpt[] = "SELECT settings_hash FROM jobs WHERE checkpoint_id = ?1 "
                                  "ORDER BY state = 2 DESC, id DESC LIMIT 1";
    sqlite3_stmt *st = NULL;
    enum err_code rc;
    int src;

    out[0] = '\0';
    if (given != NULL) {
        if (!store__is_hex64(given))
            return err_set(e, ERR_INVAL, "settings hash is not 64 lower-case hex digits");
        memcpy(out, given, STORE_HASH_LEN);
        return ERR_OK;
    }
    rc = store__stmt(s, checkpoint_id < 0 ? by_run : by_ckpt, &st, e);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, checkpoint_id < 0 ? run_id : checkpoint_id);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        store__col_text(st, 0, out, STORE_HASH_LEN);
    else if (src != SQLITE_DONE)
        rc = store__dberr(s, src, "settings lookup", e);
    store__release(st);
    return rc;
}

enum err_code store_run_version(struct store *s, const char *run, int64_t *version, struct err *e)
{
    static const char sql[] = "SELECT version FROM runs WHERE name = ?1";
    sqlite3_stmt *st = NULL;
    enum err_code rc;
    int src;

    if (run == NULL)
        return err_set(e, ERR_INVAL, "run name missing");
    if ((rc = store__stmt(s, sql, &st, e)) != ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *version = sqlite3_column_int64(st, 0);
    else if (src == SQLITE_DONE)
        rc = err_set(e, ERR_NOTFOUND, "run '%.*s' not found", STORE_RUN_MAX, run);
    else
        rc = store__dberr(s, src, "run version", e);
    store__release(st);
    return rc;
}

enum err_code store_runs_version(struct store *s, int64_t *version, struct err *e)
{
    static const char sql[] = "SELECT value FROM meta WHERE key = 'change_seq'";
    sqlite3_stmt *st = NULL;
    enum err_code rc;
    int src;

    if ((rc = store__stmt(s, sql, &st, e)) != ERR_OK)
        return rc;
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *version = sqlite3_column_int64(st, 0);
    else
        rc = store__dberr(s, src, "change id", e);
    store__release(st);
    return rc;
}
