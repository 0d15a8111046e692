/* store_db.h -- the database driver under storage/: one interface, two
 * backends (SQLite: store_db_sqlite.c, PostgreSQL: store_db_pg.c).
 *
 * The store_*.c files write their SQL once, in the dialect both backends
 * accept (parameters `?N`, `INSERT ... ON CONFLICT DO NOTHING`,
 * `RETURNING id`, CAST), and run it through these functions; the driver
 * prepares, binds, steps and reads columns, runs transactions and owns the
 * schema (created and migrated by its open). The PostgreSQL driver rewrites
 * `?N` to `$N` (and the one column name PostgreSQL reserves, see there).
 * What a dialect cannot share is a field of the driver, never a rewrite:
 * the claims' row locks (claim_lock, task_claim_lock). Nothing outside storage/ sees which
 * backend runs.
 *
 * Ownership: statements are owned by the connection's statement cache
 * (store.c) and finalized by store_close. Strings bound are copied.
 * Thread-safety: as store.h (one connection per thread).
 */
#ifndef STORAGE_STORE_DB_H
#define STORAGE_STORE_DB_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct store;

/* Result of store__step and the driver's status codes. */
enum store__status {
    STORE__DONE = 0, /* no (more) rows; the statement ran */
    STORE__ROW = 1,  /* a row is ready */
    STORE__BUSY = 2, /* locked, or the connection is down: retry later */
    STORE__ERROR = 3 /* any other failure: store__errmsg(s) says what */
};

/* A prepared statement; each driver embeds this first in its own struct. */
struct store__q {
    const struct store__drv *drv;
};

struct store__drv {
    const char *name; /* "sqlite", "postgresql" */
    /* appended to the SELECT that picks the job to claim (store_jobs.c;
       the jobs table is aliased j), inside the write transaction: SQLite
       "" (BEGIN IMMEDIATE: one writer holds the whole database),
       PostgreSQL "FOR UPDATE OF j SKIP LOCKED" (the row it takes) */
    const char *claim_lock;
    /* the same for the SELECT that picks the task to claim (store_tasks.c;
       the tasks table is aliased t) */
    const char *task_claim_lock;
    /* connect to `target` (a path or a URL), create/migrate the schema,
       fill s->instance */
    enum err_code (*open)(struct store *s, const char *target, struct err *e);
    void (*close)(struct store *s);
    enum err_code (*prepare)(struct store *s, const char *sql, struct store__q **out,
                             struct err *e);
    void (*finalize)(struct store__q *q);
    void (*reset)(struct store__q *q); /* also clears the bindings */
    void (*bind_int64)(struct store__q *q, int idx, int64_t v);
    void (*bind_double)(struct store__q *q, int idx, double v); /* NaN binds NULL */
    void (*bind_text)(struct store__q *q, int idx, const char *v, size_t n);
    void (*bind_null)(struct store__q *q, int idx);
    int (*step)(struct store__q *q); /* enum store__status */
    int (*is_null)(struct store__q *q, int col);
    int64_t (*col_int64)(struct store__q *q, int col);
    double (*col_double)(struct store__q *q, int col);
    const char *(*col_text)(struct store__q *q, int col); /* never NULL ("" for NULL) */
    int64_t (*changes)(struct store *s);                  /* rows changed by the last statement */
    enum err_code (*exec)(struct store *s, const char *sql, const char *what, struct err *e);
    enum err_code (*begin)(struct store *s, struct err *e); /* a write transaction */
    enum err_code (*commit)(struct store *s, struct err *e);
    void (*rollback)(struct store *s);
    const char *(*errmsg)(struct store *s);
    enum err_code (*check)(struct store *s, struct err *e); /* integrity / ping */
};

extern const struct store__drv store__drv_sqlite;
extern const struct store__drv store__drv_pg;

/* Dispatch (store.c). */
void store__bind_int64(struct store__q *q, int idx, int64_t v);
void store__bind_double(struct store__q *q, int idx, double v);
void store__bind_text(struct store__q *q, int idx, const char *v); /* NUL-terminated */
void store__bind_textn(struct store__q *q, int idx, const char *v, size_t n);
void store__bind_null(struct store__q *q, int idx);
int store__step(struct store__q *q);
int store__is_null(struct store__q *q, int col);
int64_t store__col_int64(struct store__q *q, int col);
double store__col_double(struct store__q *q, int col);
const char *store__col_str(struct store__q *q, int col);
int64_t store__changes(struct store *s);

#endif /* STORAGE_STORE_DB_H */
