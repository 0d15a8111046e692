/* store_db_sqlite.c -- the SQLite driver (store_db.h): connection,
 * pragmas, schema and migrations (PRAGMA user_version), statements.
 *
 * Migrations run each version's statements, then add the columns of new
 * result fields, then the data migrations of store_int.h, in one
 * transaction.
 *
 * Pragmas: journal_mode=WAL (readers never block the writer, dashboards
 * poll), synchronous=FULL (a commit that acknowledges an upload must survive
 * power loss; NORMAL in WAL mode may lose the last commits), busy_timeout
 * (writers queue instead of failing), foreign_keys=ON. Write transactions
 * are BEGIN IMMEDIATE: one writer at a time across processes.
 *
 * Change stamp (store__drv.stamp): the WAL-index header, read without a
 * query, so repeated run-version reads need no SQL (store_vcache.c).
 *
 * THREAD SAFETY: one connection opened with SQLITE_OPEN_NOMUTEX; the caller
 * keeps it on one thread at a time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "storage/store_db.h"
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

/* Version 3: job leases (the owner that claimed a running job, and when
 * its claim expires unless renewed). */
static const char SCHEMA_V3[] = "ALTER TABLE jobs ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';"
                                "ALTER TABLE jobs ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;"
                                "PRAGMA user_version = 3;";

/* Version 4: the column xmin is x_min in both drivers (xmin is a system
 * column in PostgreSQL), so the statements are the same text for both. */
static const char SCHEMA_V4[] = "ALTER TABLE results RENAME COLUMN xmin TO x_min;"
                                "ALTER TABLE layers RENAME COLUMN xmin TO x_min;"
                                "PRAGMA user_version = 4;";

/* Version 6: the base checkpoint a LoRA adapter job is merged onto
 * (struct store_job_base of store_jobs.h; base_sha256 '' = no base). */
static const char SCHEMA_V6[] =
    "ALTER TABLE jobs ADD COLUMN base_sha256 TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN base_source INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN base_path TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN base_format TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN base_run TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN base_step INTEGER NOT NULL DEFAULT 0;";

/* Version 7: a job's work as tasks (store_tasks.h). A task is a row of a
 * planned job's report; todo rows are claimed by any runner (state
 * STORE_TASK_*_INT, claimed_by and lease_until as a job's). jobs.planned 1:
 * the job's liveness is its tasks' leases, store_job_claim skips it. The
 * index serves the claim (per state, in claim order: job, cost desc, ord)
 * and store_task_done's "any other task open?". */
static const char SCHEMA_V7[] =
    "CREATE TABLE IF NOT EXISTS tasks("
    " job_id INTEGER NOT NULL REFERENCES jobs(id), ord INTEGER NOT NULL, name TEXT NOT NULL,"
    " tensor_sha256 TEXT NOT NULL, todo INTEGER NOT NULL, cost REAL NOT NULL,"
    " mem_bytes INTEGER NOT NULL, state INTEGER NOT NULL, claimed_by TEXT NOT NULL DEFAULT '',"
    " lease_until REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(job_id, ord));"
    "CREATE INDEX IF NOT EXISTS tasks_claim ON tasks(state, job_id, cost DESC, ord) "
    "WHERE todo = 1;"
    "ALTER TABLE jobs ADD COLUMN planned INTEGER NOT NULL DEFAULT 0;";

/* Version 8: checkpoint summaries (store_summary.h): per (checkpoint,
 * settings) and metric, the plain and parameter-weighted means over its
 * analysed layers, written with the layer rows; run and step copied in for
 * the summary history; the checkpoint's layer counts (n_total, n_ok and
 * per warning) repeated in each of its rows. Existing layer rows get their
 * summaries from the migration (store_summary_backfill, store.c). */
static const char SCHEMA_V8[] =
    "CREATE TABLE IF NOT EXISTS summaries("
    " checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id), settings_hash TEXT NOT NULL,"
    " run_id INTEGER NOT NULL, step INTEGER NOT NULL, metric TEXT NOT NULL,"
    " n_layers INTEGER NOT NULL, mean REAL, weighted_mean REAL, n_total INTEGER NOT NULL,"
    " n_ok INTEGER NOT NULL, n_under INTEGER NOT NULL, n_over INTEGER NOT NULL,"
    " n_suspect INTEGER NOT NULL, PRIMARY KEY(checkpoint_id, settings_hash, metric));"
    "CREATE INDEX IF NOT EXISTS summaries_history ON summaries(run_id, settings_hash, metric, "
    "step);";

/* Version 9: alerts (store_alerts.h): rule sets (run_id 0 = the default
 * set; spec is the JSON array), the events a finished job raised (one per
 * rule that fired), and their webhook deliveries (one per event and URL;
 * state 0 pending, 1 delivered, 2 failed; claimed with a lease like tasks). */
static const char SCHEMA_V9[] =
    "CREATE TABLE IF NOT EXISTS alert_rules("
    " run_id INTEGER PRIMARY KEY, spec TEXT NOT NULL, updated REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS alert_events("
    " id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, step INTEGER NOT NULL,"
    " job_id INTEGER NOT NULL, rule TEXT NOT NULL, n_layers INTEGER NOT NULL, body TEXT NOT NULL,"
    " created REAL NOT NULL, UNIQUE(job_id, rule));"
    "CREATE INDEX IF NOT EXISTS alert_events_run ON alert_events(run_id, id);"
    "CREATE TABLE IF NOT EXISTS deliveries("
    " id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL REFERENCES alert_events(id),"
    " run_id INTEGER NOT NULL, url TEXT NOT NULL, state INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,"
    " last_status INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',"
    " claimed_by TEXT NOT NULL DEFAULT '', lease_until REAL NOT NULL DEFAULT 0,"
    " created REAL NOT NULL, done_at REAL NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(state, next_at);"
    "CREATE INDEX IF NOT EXISTS deliveries_run ON deliveries(run_id, id);"
    "CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries(event_id);";

/* Fields of FARMS_RESULT_FIELDS added after the first schema (since > 0):
 * their columns, added to results and layers when migrating past `since`. */
#define LITE_SQL_TYPE_REAL "REAL"
#define LITE_SQL_TYPE_INT  "INTEGER"
#define LITE_FIELD_ADD(member, NAME, type, key, column, json, history, width, decimals, since) \
    {"ALTER TABLE results ADD COLUMN " column " " LITE_SQL_TYPE_##type                         \
     "; ALTER TABLE layers ADD COLUMN " column " " LITE_SQL_TYPE_##type,                       \
     since},
static const struct store__migration lite_field_adds[] = {FARMS_RESULT_FIELDS(LITE_FIELD_ADD)};
#undef LITE_FIELD_ADD

#define LITE_SINCE_CHECK(member, NAME, type, key, column, json, history, width, decimals, since) \
    _Static_assert((since) <= STORE_SCHEMA_VERSION, #member ": since > STORE_SCHEMA_VERSION");
FARMS_RESULT_FIELDS(LITE_SINCE_CHECK)
#undef LITE_SINCE_CHECK

/* --- Statements ----------------------------------------------------------------- */

struct lite_q {
    struct store__q base;
    struct store *s;
    sqlite3_stmt *st;
};

static sqlite3 *lite_db(struct store *s)
{
    return s->conn;
}

static int lite_status(int rc)
{
    int prim = rc & 0xff;

    if (rc == SQLITE_ROW)
        return STORE__ROW;
    if (rc == SQLITE_DONE || rc == SQLITE_OK)
        return STORE__DONE;
    return prim == SQLITE_BUSY || prim == SQLITE_LOCKED ? STORE__BUSY : STORE__ERROR;
}

static const char *lite_errmsg(struct store *s)
{
    return sqlite3_errmsg(lite_db(s));
}

static enum err_code lite_prepare(struct store *s, const char *sql, struct store__q **out,
                                  struct err *e)
{
    struct lite_q *q = calloc(1, sizeof *q);
    int rc;

    *out = NULL;
    if (q == NULL)
        return err_set(e, ERR_NOMEM, "prepare: out of memory");
    rc = sqlite3_prepare_v3(lite_db(s), sql, -1, SQLITE_PREPARE_PERSISTENT, &q->st, NULL);
    if (rc != SQLITE_OK) {
        free(q);
        return store__dberr(s, lite_status(rc), "prepare", e);
    }
    q->base.drv = &store__drv_sqlite;
    q->s = s;
    *out = &q->base;
    return ERR_OK;
}

static struct lite_q *lq(struct store__q *q)
{
    return (struct lite_q *)q;
}

static void lite_finalize(struct store__q *q)
{
    if (q == NULL)
        return;
    sqlite3_finalize(lq(q)->st);
    free(q);
}

static void lite_reset(struct store__q *q)
{
    sqlite3_reset(lq(q)->st);
    sqlite3_clear_bindings(lq(q)->st);
}

static void lite_bind_int64(struct store__q *q, int idx, int64_t v)
{
    sqlite3_bind_int64(lq(q)->st, idx, v);
}

static void lite_bind_double(struct store__q *q, int idx, double v)
{
    sqlite3_bind_double(lq(q)->st, idx, v);
}

static void lite_bind_text(struct store__q *q, int idx, const char *v, size_t n)
{
    sqlite3_bind_text(lq(q)->st, idx, v, (int)n, SQLITE_TRANSIENT);
}

static void lite_bind_null(struct store__q *q, int idx)
{
    sqlite3_bind_null(lq(q)->st, idx);
}

static int lite_step(struct store__q *q)
{
    return lite_status(sqlite3_step(lq(q)->st));
}

static int lite_is_null(struct store__q *q, int col)
{
    return sqlite3_column_type(lq(q)->st, col) == SQLITE_NULL;
}

static int64_t lite_col_int64(struct store__q *q, int col)
{
    return sqlite3_column_int64(lq(q)->st, col);
}

static double lite_col_double(struct store__q *q, int col)
{
    return sqlite3_column_double(lq(q)->st, col);
}

static const char *lite_col_text(struct store__q *q, int col)
{
    const unsigned char *t = sqlite3_column_text(lq(q)->st, col);

    return t != NULL ? (const char *)t : "";
}

static int64_t lite_changes(struct store *s)
{
    return sqlite3_changes64(lite_db(s));
}

/* --- Transactions ---------------------------------------------------------------- */

static enum err_code lite_exec(struct store *s, const char *sql, const char *what, struct err *e)
{
    int rc = sqlite3_exec(lite_db(s), sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? ERR_OK : store__dberr(s, lite_status(rc), what, e);
}

static enum err_code lite_begin(struct store *s, struct err *e)
{
    return lite_exec(s, "BEGIN IMMEDIATE", "begin", e);
}

static enum err_code lite_commit(struct store *s, struct err *e)
{
    return lite_exec(s, "COMMIT", "commit", e);
}

static void lite_rollback(struct store *s)
{
    if (!sqlite3_get_autocommit(lite_db(s)))
        sqlite3_exec(lite_db(s), "ROLLBACK", NULL, NULL, NULL);
}

/* --- Open, migrate, check ----------------------------------------------------------- */

static enum err_code lite_pragma_int(struct store *s, const char *sql, int *v, struct err *e)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(lite_db(s), sql, -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? ERR_OK : store__dberr(s, lite_status(rc), sql, e);
}

/* Add the columns of the fields added after schema version `v`, then run
 * the data migrations past `v`, and set user_version to
 * STORE_SCHEMA_VERSION. */
static enum err_code lite_add_fields(struct store *s, int v, struct err *e)
{
    char sql[64];
    enum err_code rc;

    rc = store__migrate_fields(s, lite_field_adds,
                               sizeof lite_field_adds / sizeof lite_field_adds[0], v, e);
    if (rc != ERR_OK)
        return rc;
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
    return lite_exec(s, sql, "migrate: schema version", e);
}

/* Bring the schema to STORE_SCHEMA_VERSION inside BEGIN IMMEDIATE: a second
 * process opening at the same time waits, then sees the new version. */
static enum err_code lite_migrate(struct store *s, struct err *e)
{
    enum err_code rc;
    int v = 0;

    rc = lite_pragma_int(s, "PRAGMA user_version", &v, e);
    if (rc != ERR_OK)
        return rc;
    if (v == STORE_SCHEMA_VERSION)
        return ERR_OK;
    rc = lite_begin(s, e);
    if (rc != ERR_OK)
        return rc;
    rc = lite_pragma_int(s, "PRAGMA user_version", &v, e);
    if (rc != ERR_OK)
        goto out;
    if (v > STORE_SCHEMA_VERSION) {
        rc = err_set(e, ERR_DB, "database schema version %d is newer than this farmsd's (%d)", v,
                     STORE_SCHEMA_VERSION);
        goto out;
    }
    if (v < 1)
        rc = lite_exec(s, SCHEMA_V1, "migrate to schema 1", e);
    if (rc == ERR_OK && v < 2)
        rc = lite_exec(s, SCHEMA_V2, "migrate to schema 2", e);
    if (rc == ERR_OK && v < 3)
        rc = lite_exec(s, SCHEMA_V3, "migrate to schema 3", e);
    if (rc == ERR_OK && v < 4)
        rc = lite_exec(s, SCHEMA_V4, "migrate to schema 4", e);
    if (rc == ERR_OK && v < 6)
        rc = lite_exec(s, SCHEMA_V6, "migrate to schema 6", e);
    if (rc == ERR_OK && v < 7)
        rc = lite_exec(s, SCHEMA_V7, "migrate to schema 7", e);
    if (rc == ERR_OK && v < 8)
        rc = lite_exec(s, SCHEMA_V8, "migrate to schema 8", e);
    if (rc == ERR_OK && v < 9)
        rc = lite_exec(s, SCHEMA_V9, "migrate to schema 9", e);
    if (rc == ERR_OK)
        rc = lite_add_fields(s, v, e);
    if (rc == ERR_OK)
        rc = lite_commit(s, e);
out:
    if (rc != ERR_OK)
        lite_rollback(s);
    return rc;
}

static enum err_code lite_load_instance(struct store *s, struct err *e)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(lite_db(s), "SELECT value FROM meta WHERE key = 'instance'", -1,
                                &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);

        snprintf(s->instance, sizeof s->instance, "%s", t != NULL ? (const char *)t : "");
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? ERR_OK : store__dberr(s, lite_status(rc), "instance id", e);
}

static enum err_code lite_open(struct store *s, const char *path, struct err *e)
{
    static const char pragmas[] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                  "PRAGMA foreign_keys=ON;";
    sqlite3 *db = NULL;
    enum err_code rc;
    int src = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);

    s->conn = db;
    if (src != SQLITE_OK) {
        return db != NULL ? store__dberr(s, lite_status(src), path, e)
                          : err_set(e, ERR_NOMEM, "%s: cannot allocate a connection", path);
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
    rc = lite_exec(s, pragmas, "pragmas", e);
    if (rc == ERR_OK)
        rc = lite_migrate(s, e);
    if (rc != ERR_OK)
        return rc;
    return lite_load_instance(s, e);
}

static void lite_close(struct store *s)
{
    sqlite3_close(lite_db(s));
    s->conn = NULL;
}

static enum err_code lite_check(struct store *s, struct err *e)
{
    sqlite3_stmt *st = NULL;
    char first[200] = "";
    int rc = sqlite3_prepare_v2(lite_db(s), "PRAGMA integrity_check", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);

        snprintf(first, sizeof first, "%s", t != NULL ? (const char *)t : "");
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return store__dberr(s, lite_status(rc), "integrity_check", e);
    if (strcmp(first, "ok") != 0)
        return err_set(e, ERR_DB, "integrity_check: %s", first);
    return ERR_OK;
}

/* --- Change stamp -------------------------------------------------------------- */

/* The WAL-index header (https://www.sqlite.org/walformat.html): the first 48
 * bytes of the shared memory every connection to the database maps, written
 * twice by each commit (second copy, barrier, first copy) and read by every
 * read transaction to find its snapshot. Its iChange counter, mxFrame and
 * salts change with every commit, by any process. Read through the VFS's
 * public xShmMap/xShmBarrier, as SQLite reads it: copy one, barrier, copy
 * two; unequal copies (a commit is writing it) or an uninitialised header
 * give no stamp, and the caller queries instead. */
#define LITE_SHM_REGION 32768 /* the WAL-index page size, fixed by the format */
#define LITE_HDR_ISINIT 12    /* offset of the header's isInit byte */

/* 1 if the connection's database is in WAL mode (checked once per connection). */
static int lite_is_wal(struct store *s, int *state)
{
    sqlite3_stmt *st = NULL;

    if (*state == 0) {
        *state = -1;
        if (sqlite3_prepare_v2(lite_db(s), "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL &&
            strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0)
            *state = 1;
        sqlite3_finalize(st);
    }
    return *state == 1;
}

static int lite_stamp(struct store *s, int *state, unsigned char *out)
{
    sqlite3_file *f = NULL;
    void volatile *p = NULL;
    const volatile unsigned char *h;
    unsigned char two[STORE__STAMP_LEN];

    /* inside a transaction the query may see its own uncommitted writes or
       an older snapshot than the header: no stamp */
    if (lite_db(s) == NULL || sqlite3_txn_state(lite_db(s), "main") != SQLITE_TXN_NONE ||
        !lite_is_wal(s, state) ||
        sqlite3_file_control(lite_db(s), "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK ||
        f == NULL || f->pMethods == NULL || f->pMethods->iVersion < 2 ||
        f->pMethods->xShmMap == NULL || f->pMethods->xShmBarrier == NULL ||
        f->pMethods->xShmMap(f, 0, LITE_SHM_REGION, 0, &p) != SQLITE_OK || p == NULL)
        return 0;
    h = (const volatile unsigned char *)p;
    for (size_t i = 0; i < STORE__STAMP_LEN; i++)
        out[i] = h[i];
    f->pMethods->xShmBarrier(f);
    for (size_t i = 0; i < STORE__STAMP_LEN; i++)
        two[i] = h[STORE__STAMP_LEN + i];
    return memcmp(out, two, STORE__STAMP_LEN) == 0 && out[LITE_HDR_ISINIT] != 0;
}

const struct store__drv store__drv_sqlite = {
    .name = "sqlite",
    .claim_lock = "", /* BEGIN IMMEDIATE: one writer at a time */
    .task_claim_lock = "",
    .open = lite_open,
    .close = lite_close,
    .prepare = lite_prepare,
    .finalize = lite_finalize,
    .reset = lite_reset,
    .bind_int64 = lite_bind_int64,
    .bind_double = lite_bind_double,
    .bind_text = lite_bind_text,
    .bind_null = lite_bind_null,
    .step = lite_step,
    .is_null = lite_is_null,
    .col_int64 = lite_col_int64,
    .col_double = lite_col_double,
    .col_text = lite_col_text,
    .changes = lite_changes,
    .exec = lite_exec,
    .begin = lite_begin,
    .commit = lite_commit,
    .rollback = lite_rollback,
    .errmsg = lite_errmsg,
    .check = lite_check,
    .stamp = lite_stamp,
};
