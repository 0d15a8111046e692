/* store_int.h -- internals shared by the storage/store*.c files.
 *
 * The connection struct, the per-connection statement cache (keyed by the
 * address of each SQL string: a static one, or the connection's own
 * sql_claim), error conversion, transactions, the run version bump and
 * the column helpers that results and layer rows share. Included here:
 * store_page_int.h (page sizes and tokens) and store_jobs_int.h (job states
 * as SQL, job rows, the requeue). Not part of the public API. Same thread
 * rules as store.h.
 */
#ifndef STORAGE_STORE_INT_H
#define STORAGE_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/numerics/farms.h"
#include "storage/store.h"
#include "storage/store_db.h"
#include "storage/store_history.h"
#include "storage/store_jobs.h"
#include "storage/store_jobs_int.h" /* job states as SQL, job rows, requeue */
#include "storage/store_layers.h"
#include "storage/store_page_int.h" /* page sizes, tokens and pages */
#include "storage/store_results.h"
#include "storage/store_runs.h"
#include "storage/store_tasks.h"

#define STORE__MAX_STMTS     192
#define STORE__SQL_CLAIM_MAX 512

struct store__stmt_slot {
    const char *sql;     /* borrowed: a static string, the cache key */
    struct store__q *st; /* owned, finalized by store_close */
};

#include "storage/store_vcache.h" /* struct store__vcache, embedded below */

struct store {
    const struct store__drv *drv; /* the backend (store_db.h) */
    void *conn;                   /* owned: the driver's connection */
    char instance[33];            /* meta 'instance' */
    char owner[STORE_OWNER_MAX];  /* lease owner of this connection's claims */
    double lease_s;               /* claims expire lease_s after progress; 0: never */
    struct store__vcache vcache;  /* run versions read (store_vcache.c) */
    size_t n_stmts;
    struct store__stmt_slot stmts[STORE__MAX_STMTS]; /* prepared statement cache */
    char sql_claim[STORE__SQL_CLAIM_MAX];            /* the claim SELECT with drv->claim_lock,
                                                        made on first claim (store_jobs.c) */
    char sql_task_claim[2][STORE__SQL_CLAIM_MAX];    /* task claims (queued, lapsed) with
                                                        drv->task_claim_lock (store_tasks.c) */
};

/* The columns of a struct farms_result (not layout) in tables results and
 * layers, in bind/read order: status, reason, warning, then the fields of
 * FARMS_RESULT_FIELDS (core/numerics/farms_fields.h). SQL text, parameter
 * list, count and the type letters of store_copy.c (T text, R real, I
 * integer) are string literals made from that list at compile time. */
#define STORE__COL(member, NAME, type, key, column, ...) ", " column
#define STORE__PARAM(...)                                ", ?"
#define STORE__TYPE_LETTER(member, NAME, type, ...)      STORE__TYPE_LETTER_##type
#define STORE__TYPE_LETTER_REAL                          "R"
#define STORE__TYPE_LETTER_INT                           "I"

#define STORE__RESULT_COLS   "status, reason, warning" FARMS_RESULT_FIELDS(STORE__COL)
#define STORE__RESULT_PARAMS "?, ?, ?" FARMS_RESULT_FIELDS(STORE__PARAM)
#define STORE__RESULT_NCOLS  ((int)sizeof(STORE__RESULT_TYPES) - 1)
#define STORE__RESULT_TYPES  "TTT" FARMS_RESULT_FIELDS(STORE__TYPE_LETTER)

/* The status column's word for FARMS_STATUS_OK (store_results.c), and as SQL. */
#define STORE__STATUS_OK     "ok"
#define STORE__STATUS_OK_SQL "'" STORE__STATUS_OK "'"

/* A migration statement, run by a migration past schema version `since`. */
struct store__migration {
    const char *sql;
    int since;
};

/* Migrating past schema version `have`: the driver's new-column statements
 * adds[0..n) (from FARMS_RESULT_FIELDS, in its dialect), then the data
 * migrations (store.c: the same SQL for both drivers), each in order through
 * s->drv->exec, inside the caller's migration transaction. */
enum err_code store__migrate_fields(struct store *s, const struct store__migration *adds, size_t n,
                                    int have, struct err *e);

/* --- Statements and errors (store.c) ------------------------------------- */

/* Convert a failed step (enum store__status): STORE__BUSY -> ERR_BUSY, else
 * ERR_DB, with "<what>: <the driver's message>". Returns the code. */
enum err_code store__dberr(struct store *s, int rc, const char *what, struct err *e);

/* The cached statement for the static string `sql`, reset and unbound,
 * prepared on first use. */
enum err_code store__stmt(struct store *s, const char *sql, struct store__q **out, struct err *e);

/* Reset `st` (releases read locks). NULL is a no-op. */
void store__release(struct store__q *st);

/* Run a statement that returns no rows (after binding). STORE__DONE (or a row) -> OK. */
enum err_code store__step_done(struct store *s, struct store__q *st, const char *what,
                               struct err *e);

/* The cached statement for `sql` (as store__stmt) with `id` bound to ?1. */
enum err_code store__stmt_id(struct store *s, const char *sql, int64_t id, struct store__q **out,
                             struct err *e);

/* store__stmt_id, then one step: *row = 1 with the row to read in *out, or
 * 0 when there is none; a failed step -> store__dberr(what). The caller
 * releases *out (store__release) in every case. */
enum err_code store__row_id(struct store *s, const char *sql, int64_t id, const char *what,
                            struct store__q **out, int *row, struct err *e);

/* Write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: BEGIN and the
 * store-wide advisory lock) / COMMIT / ROLLBACK. rollback cannot fail (it ignores
 * errors: a failed statement may already have ended the transaction). */
enum err_code store__begin(struct store *s, struct err *e);
enum err_code store__commit(struct store *s, struct err *e);
void store__rollback(struct store *s);

/* Unix time in seconds. */
double store__now(void);

/* Copy text column `col` into buf (truncated, NUL-terminated; NULL -> ""). */
void store__col_text(struct store__q *st, int col, char *buf, size_t len);

/* Real column; NULL (how NaN is stored) -> NaN. */
double store__col_real(struct store__q *st, int col);

/* --- Runs and versions (store.c) ------------------------------------------- */

/* Bump the change id and give it to run `run_id` (inside a transaction). */
enum err_code store__bump_run(struct store *s, int64_t run_id, struct err *e);

/* The id of run `name`: ERR_NOTFOUND ("run 'x' not found") if none. */
enum err_code store__run_id(struct store *s, const char *name, int64_t *id, struct err *e);

/* The id of checkpoint (run_id, step) of run `run` (named in the message;
 * store_runs.c):
 * ERR_NOTFOUND ("run 'x' has no checkpoint at step n") if none. */
enum err_code store__checkpoint_id(struct store *s, int64_t run_id, const char *run, int64_t step,
                                   int64_t *id, struct err *e);

/* The settings for run-level reads: `given` if non-NULL (validated), else
 * the settings of the newest succeeded job of the run's highest analysed
 * step (checkpoint_id < 0) or of that checkpoint, else of the newest job;
 * "" if there is no job (the rule of store_read_preset). */
enum err_code store__settings_for(struct store *s, int64_t run_id, int64_t checkpoint_id,
                                  const char *given, char out[THASH_HEX_LEN], struct err *e);

/* --- Result columns (store_results.c) ---------------------------------------- */

/* Bind r's fields to parameters first..first+STORE__RESULT_NCOLS-1. */
enum err_code store__bind_result(struct store *s, struct store__q *st, int first,
                                 const struct farms_result *r, struct err *e);

/* Read columns first..first+STORE__RESULT_NCOLS-1 into *r (layout zeroed). */
void store__read_result(struct store__q *st, int first, struct farms_result *r);

/* Bind histogram `h` as esd_hist text to parameter `idx` (NULL when h is
 * NULL or empty). ERR_TOOBIG from the encoder (cannot happen in practice). */
enum err_code store__bind_esd(struct store__q *st, int idx, const struct esd_hist *h,
                              struct err *e);

/* Read the esd column `col` into *h (esd_hist_init'ed when NULL or
 * unreadable: a damaged histogram is not worth failing a read). */
void store__read_esd(struct store__q *st, int col, struct esd_hist *h);

#endif /* STORAGE_STORE_INT_H */
