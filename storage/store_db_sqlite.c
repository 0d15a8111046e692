/* store_db_sqlite.c -- the SQLite driver (store_db.h): connection,
 * pragmas, migrations (PRAGMA user_version), statements. The schema itself
 * (each version's statements, the columns of new result fields) is in
 * store_db_sqlite_schema.c.
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
#include "storage/store_db_sqlite_int.h"
#include "storage/store_int.h"

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

    rc = store__migrate_fields(s, store__lite_field_adds, store__lite_field_adds_n, v, e);
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
    for (size_t i = 0; i < store__lite_schema_n && rc == ERR_OK; i++) {
        char what[32];

        if (store__lite_schema[i].since <= v)
            continue;
        snprintf(what, sizeof what, "migrate to schema %d", store__lite_schema[i].since);
        rc = lite_exec(s, store__lite_schema[i].sql, what, e);
    }
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
