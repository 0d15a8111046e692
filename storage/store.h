/* store.h -- persistence (SQLite or PostgreSQL): runs, checkpoints, the job queue, the
 * team-wide result cache and per-layer results.
 *
 * Every SQL statement of farmsd lives in storage/ behind the functions of
 * this header and its companions, one per job:
 *   store.h          open/close, settings, copying a database, common limits
 *   store_jobs.h     the job queue (states, submit, claim, leases, job list)
 *   store_tasks.h    a job's work as tasks any runner of any replica claims
 *   store_results.h  the team-wide result cache
 *   store_layers.h   per-layer rows of a checkpoint
 *   store_history.h  metrics, one layer's history, the run heatmap
 *   store_runs.h     runs, checkpoints, run summary and delete
 * Each includes this one; the conventions below hold for all of them.
 *
 * Data model (schemas in store_db_sqlite_schema.c and store_db_pg_schema.c):
 *   run         a training run, by name; carries `version`, a change id bumped
 *               in the same transaction as any change to the run's data
 *               (checkpoints, jobs, layer rows), so an ETag costs one row read
 *   checkpoint  (run, step) -> content identity (SHA-256 hex), source (an
 *               upload in the blob store, or a path), format, size
 *   settings    SHA-256 of canonical params JSON (preset_to_json) -> preset
 *               name (first seen) and the JSON
 *   job         one analysis of a checkpoint under one settings hash
 *   task        per planned job, a row of its report; todo rows are the
 *               tensors runners claim (schema version 7; docs/storage.md)
 *   result      the cache: (tensor SHA-256, analysis key, settings hash,
 *               engine version) -> struct farms_result (metrics part)
 *   layer       per (checkpoint, settings) the per-layer rows, in canonical
 *               order, with run and step copied in for fast history reads
 *   results and layer rows also keep the ESD histogram (core/esd_hist.h)
 *   of the analysis, when there is one (schema version 2)
 *
 * Settings hash: the lower-case hex SHA-256 of the canonical params JSON,
 * computed by store_settings_hash() (storage computes it; callers that need
 * it for a cache key call that function or take it from the job).
 *
 * Errors: SQLITE_BUSY -> ERR_BUSY (retry later), other SQLite failures ->
 * ERR_DB with sqlite3_errmsg; entity lookups that find nothing ->
 * ERR_NOTFOUND; "same run+step, other content" -> ERR_CONFLICT. Absence in
 * the cache is not an error (`*hit = 0`).
 *
 * Ownership: results are caller-owned: either a caller-provided struct that
 * is filled, or "Returns a new X; free with x_free()". Strings passed in are
 * borrowed for the call.
 *
 * Thread-safety: a struct store is one SQLite connection opened with
 * SQLITE_OPEN_NOMUTEX: open one per thread and never use it from two threads
 * at once. Any number of connections (threads or processes) may use the same
 * database file: WAL mode, busy_timeout; writes run in BEGIN IMMEDIATE
 * transactions, so job claims are exactly-once across connections.
 */
#ifndef STORAGE_STORE_H
#define STORAGE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/formats/thash.h"

/* 2: ESD histograms (esd columns); 3: job leases; 4: column xmin is x_min;
 * 5: xmax (x_max, filled from spectral_norm for ok rows); 6: jobs.base_*
 * (the base a LoRA adapter job is merged onto); 7: table tasks and
 * jobs.planned (a job's work as tasks, store_tasks.h); 8: table summaries
 * (store_summary.h); 9: tables alert_rules, alert_events, deliveries
 * (store_alerts.h). A field of
 * FARMS_RESULT_FIELDS with since > 4 adds its column at `since`; data
 * migrations are store_data_migrations (store.c). */
#define STORE_SCHEMA_VERSION 9

#define STORE_RUN_MAX         128   /* run name bytes incl. NUL (longer: ERR_INVAL) */
#define STORE_PRESET_MAX      64    /* preset name bytes incl. NUL */
#define STORE_PARAMS_MAX      1024  /* params JSON bytes incl. NUL (>= PRESET_JSON_MAX) */
#define STORE_PATH_MAX        4096  /* checkpoint path bytes incl. NUL */
#define STORE_FORMAT_MAX      32    /* checkpoint format name ("safetensors", ...) */
#define STORE_KEY_MAX         128   /* analysis key / engine version bytes incl. NUL */
#define STORE_CATEGORY_MAX    48    /* error category incl. NUL */
#define STORE_MESSAGE_MAX     256   /* error message incl. NUL (longer: truncated) */
#define STORE_TOKEN_MAX       272   /* page token incl. NUL */
#define STORE_OWNER_MAX       64    /* lease owner (worker id) incl. NUL */
#define STORE_PAGE_DEFAULT    100   /* page_size 0 means this */
#define STORE_PAGE_MAX        10000 /* larger page sizes are clamped to this */
#define STORE_BUSY_TIMEOUT_MS 5000

struct store;      /* opaque: one connection */
struct blob_store; /* storage/blob.h */

/* --- Open and close ------------------------------------------------------- */

/* Open (create and migrate if needed) the database at `path`; ":memory:"
 * gives a private database for tests. Sets WAL, synchronous=FULL,
 * busy_timeout, foreign_keys=ON. Migrations run inside BEGIN IMMEDIATE and
 * are idempotent (two processes may open at once). A database with a newer
 * schema than STORE_SCHEMA_VERSION is refused (ERR_DB).
 * Returns a new store in *out; close with store_close(). */
enum err_code store_open(const char *path, struct store **out, struct err *e);

/* Finalize the cached statements and close. NULL is a no-op. Cannot fail. */
void store_close(struct store *s);

/* The backend: "sqlite" or "postgresql". Static. Cannot fail. */
const char *store_backend(const struct store *s);

/* Random id of this database, made at creation (32 hex digits). Put it into
 * ETags so that a recreated database never matches an old one.
 * Borrowed: valid until store_close(s). Cannot fail. */
const char *store_instance_id(const struct store *s);

/* PRAGMA integrity_check: ERR_OK when "ok", else ERR_DB with the first
 * problem. (/readyz, tests) */
enum err_code store_check(struct store *s, struct err *e);

/* --- Settings ----------------------------------------------------------- */

/* Hex SHA-256 of the canonical params JSON `params_json` (bytes up to the
 * NUL). ERR_INTERNAL / ERR_NOMEM from libcrypto. */
enum err_code store_settings_hash(const char *params_json, char hash[THASH_HEX_LEN], struct err *e);

/* Record settings (idempotent: an existing hash keeps its first preset
 * name) and write their hash to `hash`. store_job_submit does this itself;
 * call it before store_result_put for results made outside a job (CLI). */
enum err_code store_settings_put(struct store *s, const char *preset, const char *params_json,
                                 char hash[THASH_HEX_LEN], struct err *e);

/* --- Copying a database (farmsd migrate) ------------------------------------ */

struct store_copy_stats {
    int64_t rows_read;  /* rows of the source */
    int64_t rows_added; /* of them, new in the destination */
};

/* Copy every run, setting, checkpoint, job, cached result, layer row,
 * summary, alert rule set, alert event and delivery of `from` into `to`
 * (any backends), with their ids, in one transaction of `to`; rows already
 * there are kept (idempotent: a second copy adds nothing). Jobs running in
 * `from` arrive queued, claimed deliveries unclaimed. `stats` may be NULL. */
enum err_code store_copy(struct store *from, struct store *to, struct store_copy_stats *stats,
                         struct err *e);

#endif /* STORAGE_STORE_H */
