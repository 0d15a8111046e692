/* store_db_pg.c -- the PostgreSQL driver (store_db.h), on libpq.
 *
 * SQL: the store files' statements are translated once, at prepare:
 * parameters `?N` become `$N` (a bare `?` numbered as SQLite does); nothing
 * else changes (both schemas name their columns alike, and no column is named
 * as a PostgreSQL system column: see core/numerics/farms_fields.h). The
 * claim's row lock is this driver's claim_lock, not a rewrite. Statements are prepared lazily, by
 * name, on the connection they run on, and re-prepared after a reconnect. Values travel as text
 * (doubles with 17 significant digits, so they come back bit for bit).
 *
 * Transactions: a write transaction is BEGIN plus a transaction-level
 * advisory lock on one store-wide key, so writers are serialized across
 * replicas exactly as SQLite's BEGIN IMMEDIATE serializes them across
 * processes: the same read-then-write logic is correct on both. Reads and
 * single-statement writes (cache inserts) take no lock.
 *
 * Connection loss: a failed call on a broken connection returns
 * STORE__BUSY (ERR_BUSY: "retry later"); the next call reconnects, at most
 * once per backoff interval (0.1 s doubling to 5 s), so a database outage
 * gives fast 503s and recovers by itself when the database is back.
 *
 * THREAD SAFETY: one PGconn per struct store; one thread at a time.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "storage/store_db.h"
#include "storage/store_int.h"
#include "storage/store_pg.h"

/* Parameters of one statement: a result row binds every column of
 * FARMS_RESULT_FIELDS and its key (47 in schema 9). */
#define PG_MAX_PARAMS   64
#define PG_BACKOFF_MIN  0.1
#define PG_BACKOFF_MAX  5.0
#define PG_LOCK_WRITERS 0x6661726d73L /* "farms": the writers' advisory lock */

struct pg_q {
    struct store__q base;
    struct store *s;
    char name[24];
    char *sql; /* translated, owned */
    int nparams;
    char *vals[PG_MAX_PARAMS]; /* owned; NULL: SQL NULL */
    unsigned gen;              /* connection generation it is prepared on; 0: none */
    PGresult *res;
    int row, nrows, ran;
};

static struct store__pg *pgc(struct store *s)
{
    return s->conn;
}

static struct pg_q *pq(struct store__q *q)
{
    return (struct pg_q *)q;
}

static void pg_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* --- Connection and errors ------------------------------------------------------ */

static void pg_setmsg(struct store__pg *p, const char *what, const char *msg)
{
    size_t n;

    snprintf(p->msg, sizeof p->msg, "%s%s%s", what, what[0] ? ": " : "", msg);
    n = strlen(p->msg);
    while (n > 0 && (p->msg[n - 1] == '\n' || p->msg[n - 1] == ' '))
        p->msg[--n] = '\0';
}

/* 1 if the connection is usable (reconnecting when its backoff allows). */
static int pg_ensure(struct store__pg *p)
{
    double now;

    if (PQstatus(p->c) == CONNECTION_OK)
        return 1;
    now = store__now();
    if (now < p->next_try) {
        snprintf(p->msg, sizeof p->msg, "database connection lost; next attempt in %.1f s",
                 p->next_try - now);
        return 0;
    }
    PQreset(p->c);
    if (PQstatus(p->c) == CONNECTION_OK) {
        p->gen++;
        p->backoff = 0;
        p->next_try = 0;
        p->reconnects++;
        return 1;
    }
    p->backoff = p->backoff <= 0 ? PG_BACKOFF_MIN : fmin(2 * p->backoff, PG_BACKOFF_MAX);
    p->next_try = now + p->backoff;
    pg_setmsg(p, "database unreachable", PQerrorMessage(p->c));
    return 0;
}

/* Classify the failed result `r` (may be NULL) and keep its message. */
static int pg_fail(struct store__pg *p, PGresult *r)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r != NULL ? PQresultErrorMessage(r) : "";

    pg_setmsg(p, "", msg != NULL && msg[0] ? msg : PQerrorMessage(p->c));
    if (PQstatus(p->c) != CONNECTION_OK)
        return STORE__BUSY;
    if (state == NULL)
        return STORE__ERROR;
    /* serialization, deadlock, lock timeout, shutdown, connection, resources */
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0 ||
        strncmp(state, "57P", 3) == 0 || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "53", 2) == 0)
        return STORE__BUSY;
    return STORE__ERROR;
}

static const char *pg_errmsg(struct store *s)
{
    return pgc(s)->msg;
}

/* Run `sql` (one or more statements, no parameters). */
static enum err_code pg_exec(struct store *s, const char *sql, const char *what, struct err *e)
{
    struct store__pg *p = pgc(s);
    PGresult *r = NULL;
    enum err_code rc = ERR_OK;
    ExecStatusType st;

    if (!pg_ensure(p))
        return store__dberr(s, STORE__BUSY, what, e);
    r = PQexec(p->c, sql);
    st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = store__dberr(s, pg_fail(p, r), what, e);
    PQclear(r);
    return rc;
}

/* --- Statements ------------------------------------------------------------------ */

/* Output of pg_translate_to: bytes past `cap` are counted, not written. */
struct pg_text {
    char *buf; /* NULL: count only */
    size_t cap, len;
};

static void pg_put(struct pg_text *t, const char *s, size_t n)
{
    if (t->buf != NULL && t->len + n <= t->cap)
        memcpy(t->buf + t->len, s, n);
    t->len += n;
}

/* Translate the shared dialect (see the header comment) into t; *nparams
 * gets the number of parameters. */
static void pg_translate_to(const char *sql, struct pg_text *t, int *nparams)
{
    size_t i = 0;

    *nparams = 0;
    while (sql[i] != '\0') {
        if (sql[i] == '?' && isdigit((unsigned char)sql[i + 1])) {
            int v = (int)strtol(sql + i + 1, NULL, 10);

            *nparams = v > *nparams ? v : *nparams;
            pg_put(t, "$", 1);
            i++;
        } else if (sql[i] == '?') { /* SQLite: one more than the largest so far */
            char num[16];
            int n = snprintf(num, sizeof num, "$%d", ++*nparams);

            pg_put(t, num, (size_t)n);
            i++;
        } else {
            pg_put(t, sql + i, 1);
            i++;
        }
    }
}

/* The translation of `sql` in a new string (free()); NULL: no memory. */
static char *pg_translate(const char *sql, int *nparams)
{
    struct pg_text t = {NULL, 0, 0};

    pg_translate_to(sql, &t, nparams);
    t.cap = t.len;
    t.buf = malloc(t.cap + 1);
    if (t.buf == NULL)
        return NULL;
    t.len = 0;
    pg_translate_to(sql, &t, nparams);
    t.buf[t.len] = '\0';
    return t.buf;
}

static enum err_code pg_prepare(struct store *s, const char *sql, struct store__q **out,
                                struct err *e)
{
    struct pg_q *q = calloc(1, sizeof *q);

    *out = NULL;
    if (q != NULL)
        q->sql = pg_translate(sql, &q->nparams);
    if (q == NULL || q->sql == NULL) {
        free(q);
        return err_set(e, ERR_NOMEM, "prepare: out of memory");
    }
    if (q->nparams > PG_MAX_PARAMS) {
        int n = q->nparams;

        free(q->sql);
        free(q);
        return err_set(e, ERR_INTERNAL, "prepare: %d parameters", n);
    }
    q->base.drv = &store__drv_pg;
    q->s = s;
    snprintf(q->name, sizeof q->name, "f%u", ++pgc(s)->n_names);
    *out = &q->base;
    return ERR_OK;
}

static void pg_reset(struct store__q *q)
{
    struct pg_q *p = pq(q);
    int i;

    PQclear(p->res);
    p->res = NULL;
    p->ran = 0;
    p->row = -1;
    p->nrows = 0;
    for (i = 0; i < PG_MAX_PARAMS; i++) {
        free(p->vals[i]);
        p->vals[i] = NULL;
    }
}

static void pg_finalize(struct store__q *q)
{
    if (q == NULL)
        return;
    pg_reset(q);
    free(pq(q)->sql);
    free(q);
}

static void pg_set(struct store__q *q, int idx, char *v)
{
    if (idx < 1 || idx > PG_MAX_PARAMS) {
        free(v);
        return;
    }
    free(pq(q)->vals[idx - 1]);
    pq(q)->vals[idx - 1] = v;
}

static void pg_bind_int64(struct store__q *q, int idx, int64_t v)
{
    char buf[24];

    snprintf(buf, sizeof buf, "%lld", (long long)v);
    pg_set(q, idx, strdup(buf));
}

static void pg_bind_double(struct store__q *q, int idx, double v)
{
    char buf[40];

    if (isinf(v))
        snprintf(buf, sizeof buf, "%s", v > 0 ? "Infinity" : "-Infinity");
    else
        snprintf(buf, sizeof buf, "%.17g", v);
    pg_set(q, idx, strdup(buf));
}

static void pg_bind_text(struct store__q *q, int idx, const char *v, size_t n)
{
    char *t = malloc(n + 1);

    if (t != NULL) {
        memcpy(t, v, n);
        t[n] = '\0';
    }
    pg_set(q, idx, t); /* out of memory binds NULL: the statement then fails */
}

static void pg_bind_null(struct store__q *q, int idx)
{
    pg_set(q, idx, NULL);
}

static int pg_run(struct pg_q *q)
{
    struct store__pg *p = pgc(q->s);
    ExecStatusType st;
    PGresult *r;

    q->ran = 1;
    if (!pg_ensure(p))
        return STORE__BUSY;
    if (q->gen != p->gen) {
        r = PQprepare(p->c, q->name, q->sql, q->nparams, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            int rc = pg_fail(p, r);

            PQclear(r);
            return rc;
        }
        PQclear(r);
        q->gen = p->gen;
    }
    q->res = PQexecPrepared(p->c, q->name, q->nparams, (const char *const *)q->vals, NULL, NULL, 0);
    st = PQresultStatus(q->res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        int rc = pg_fail(p, q->res);

        PQclear(q->res);
        q->res = NULL;
        return rc;
    }
    p->changes = strtoll(PQcmdTuples(q->res), NULL, 10);
    q->nrows = st == PGRES_TUPLES_OK ? PQntuples(q->res) : 0;
    q->row = -1;
    return STORE__DONE;
}

static int pg_step(struct store__q *q)
{
    struct pg_q *p = pq(q);
    int rc;

    if (!p->ran) {
        rc = pg_run(p);
        if (rc != STORE__DONE)
            return rc;
    }
    if (p->res == NULL)
        return STORE__ERROR;
    p->row++;
    return p->row < p->nrows ? STORE__ROW : STORE__DONE;
}

static int pg_in_row(struct pg_q *p, int col)
{
    return p->res != NULL && p->row >= 0 && p->row < p->nrows && col >= 0 &&
           col < PQnfields(p->res);
}

static int pg_is_null(struct store__q *q, int col)
{
    return !pg_in_row(pq(q), col) || PQgetisnull(pq(q)->res, pq(q)->row, col);
}

static const char *pg_col_text(struct store__q *q, int col)
{
    return pg_in_row(pq(q), col) ? PQgetvalue(pq(q)->res, pq(q)->row, col) : "";
}

static int64_t pg_col_int64(struct store__q *q, int col)
{
    const char *t = pg_col_text(q, col);

    if (strcmp(t, "t") == 0)
        return 1;
    return (int64_t)strtoll(t, NULL, 10);
}

static double pg_col_double(struct store__q *q, int col)
{
    return strtod(pg_col_text(q, col), NULL);
}

static int64_t pg_changes(struct store *s)
{
    return pgc(s)->changes;
}

/* --- Transactions ------------------------------------------------------------------ */

static enum err_code pg_begin(struct store *s, struct err *e)
{
    char sql[96];

    snprintf(sql, sizeof sql, "BEGIN; SELECT pg_advisory_xact_lock(%ld)", PG_LOCK_WRITERS);
    return pg_exec(s, sql, "begin", e);
}

static enum err_code pg_commit(struct store *s, struct err *e)
{
    struct store__pg *p = pgc(s);
    PGresult *r = PQexec(p->c, "COMMIT");
    enum err_code rc = ERR_OK;

    /* COMMIT of a failed transaction "succeeds" with the tag ROLLBACK */
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = store__dberr(s, pg_fail(p, r), "commit", e);
    else if (strcmp(PQcmdStatus(r), "COMMIT") != 0)
        rc = err_set(e, ERR_DB, "commit: the transaction was rolled back");
    PQclear(r);
    return rc;
}

static void pg_rollback(struct store *s)
{
    struct store__pg *p = pgc(s);
    PGTransactionStatusType t;

    if (p == NULL || PQstatus(p->c) != CONNECTION_OK)
        return;
    t = PQtransactionStatus(p->c);
    if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
        PQclear(PQexec(p->c, "ROLLBACK"));
}

/* --- Open, close, check ------------------------------------------------------------- */

static enum err_code pg_open(struct store *s, const char *url, struct err *e)
{
    static const char *const keys[] = {"connect_timeout", "dbname", NULL};
    const char *vals[] = {"5", url, NULL};
    struct store__pg *p = calloc(1, sizeof *p);

    if (p == NULL)
        return err_set(e, ERR_NOMEM, "store_open: out of memory");
    s->conn = p;
    p->gen = 1;
    p->c = PQconnectdbParams(keys, vals, 1);
    if (p->c == NULL)
        return err_set(e, ERR_NOMEM, "store_open: cannot allocate a connection");
    PQsetNoticeProcessor(p->c, pg_quiet, NULL);
    if (PQstatus(p->c) != CONNECTION_OK) {
        pg_setmsg(p, "", PQerrorMessage(p->c));
        return err_set(e, ERR_BUSY, "database unreachable: %s", p->msg);
    }
    return store__pg_migrate(s, e);
}

static void pg_close(struct store *s)
{
    struct store__pg *p = pgc(s);

    if (p == NULL)
        return;
    PQfinish(p->c);
    free(p);
    s->conn = NULL;
}

static enum err_code pg_check(struct store *s, struct err *e)
{
    return pg_exec(s, "SELECT 1", "database ping", e);
}

const struct store__drv store__drv_pg = {
    .name = "postgresql",
    .claim_lock = "FOR UPDATE OF j SKIP LOCKED",
    .task_claim_lock = "FOR UPDATE OF t SKIP LOCKED",
    .open = pg_open,
    .close = pg_close,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .reset = pg_reset,
    .bind_int64 = pg_bind_int64,
    .bind_double = pg_bind_double,
    .bind_text = pg_bind_text,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .is_null = pg_is_null,
    .col_int64 = pg_col_int64,
    .col_double = pg_col_double,
    .col_text = pg_col_text,
    .changes = pg_changes,
    .exec = pg_exec,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .errmsg = pg_errmsg,
    .check = pg_check,
};
