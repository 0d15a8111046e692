/* store_db_sqlite_schema.c -- the SQLite schema: each version's
 * statements (store__lite_schema, run by the driver's migration past the
 * version the database has) and the columns of the result fields added
 * after the first version (store__lite_field_adds). The PostgreSQL schema
 * is in store_db_pg_schema.c; the migration itself in store_db_sqlite.c.
 *
 * THREAD SAFETY: constant tables only.
 */
#include "storage/store_db_sqlite_int.h"

#include <stddef.h>

#include "core/numerics/farms.h"
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

/* Each version's statements, in order (no version 5: its change is a
 * result field, added by store__lite_field_adds, and a data migration). */
const struct store__migration store__lite_schema[] = {
    {SCHEMA_V1, 1}, {SCHEMA_V2, 2}, {SCHEMA_V3, 3}, {SCHEMA_V4, 4},
    {SCHEMA_V6, 6}, {SCHEMA_V7, 7}, {SCHEMA_V8, 8}, {SCHEMA_V9, 9},
};
const size_t store__lite_schema_n = sizeof store__lite_schema / sizeof store__lite_schema[0];

/* Fields of FARMS_RESULT_FIELDS added after the first schema (since > 0):
 * their columns, added to results and layers when migrating past `since`. */
#define LITE_SQL_TYPE_REAL "REAL"
#define LITE_SQL_TYPE_INT  "INTEGER"
#define LITE_FIELD_ADD(member, NAME, type, key, column, json, history, width, decimals, since) \
    {"ALTER TABLE results ADD COLUMN " column " " LITE_SQL_TYPE_##type                         \
     "; ALTER TABLE layers ADD COLUMN " column " " LITE_SQL_TYPE_##type,                       \
     since},
const struct store__migration store__lite_field_adds[] = {FARMS_RESULT_FIELDS(LITE_FIELD_ADD)};
const size_t store__lite_field_adds_n =
    sizeof store__lite_field_adds / sizeof store__lite_field_adds[0];
#undef LITE_FIELD_ADD

#define LITE_SINCE_CHECK(member, NAME, type, key, column, json, history, width, decimals, since) \
    _Static_assert((since) <= STORE_SCHEMA_VERSION, #member ": since > STORE_SCHEMA_VERSION");
FARMS_RESULT_FIELDS(LITE_SINCE_CHECK)
#undef LITE_SINCE_CHECK
