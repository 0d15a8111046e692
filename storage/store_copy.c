/* store_copy.c -- copy one database into another (farmsd migrate): runs,
 * settings, checkpoints, jobs, the result cache, layer rows, checkpoint
 * summaries, alert rule sets, alert events and their webhook deliveries,
 * with their ids, so page tokens, job ids, histories and event ids read the
 * same afterwards.
 *
 * Idempotent: every row is inserted with ON CONFLICT DO NOTHING (the keys
 * are the source's), so a second run, or a run after an interrupted one,
 * adds only what is missing. Values are copied by type (integers, doubles
 * bit for bit, text, NULL). Jobs that were running in the source are
 * copied as queued, and deliveries claimed in the source as unclaimed: the
 * service that held them is not running any more.
 * The change id of the destination becomes at least the source's. On
 * PostgreSQL the identity sequences are moved past the copied ids.
 *
 * THREAD SAFETY: as store.h; two connections, one thread.
 */
#include <stdio.h>
#include <string.h>

#include "storage/store.h"
#include "storage/store_db.h"
#include "storage/store_int.h"

/* A table: its SELECT (source), INSERT (destination) and column types
 * (I integer, R double, T text) in the same order. */
struct copy_table {
    const char *name;
    const char *select;
    const char *insert;
    const char *types;
};

/* Jobs running in the source arrive queued, their progress reset. */
#define COPY_RUNNING "CASE WHEN state = " STORE__JOB_RUNNING_SQL

static const struct copy_table TABLES[] = {
    {"runs", "SELECT id, name, created, version FROM runs ORDER BY id",
     "INSERT INTO runs(id, name, created, version) VALUES(?1, ?2, ?3, ?4) "
     "ON CONFLICT DO NOTHING",
     "ITRI"},
    {"settings", "SELECT hash, preset, params FROM settings ORDER BY hash",
     "INSERT INTO settings(hash, preset, params) VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING", "TTT"},
    {"checkpoints",
     "SELECT id, run_id, step, content_sha256, source, path, format, size, created "
     "FROM checkpoints ORDER BY id",
     "INSERT INTO checkpoints(id, run_id, step, content_sha256, source, path, format, size, "
     "created) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
     "IIITITTIR"},
    {"jobs",
     "SELECT id, checkpoint_id, settings_hash, preset, " COPY_RUNNING " THEN " STORE__JOB_QUEUED_SQL
     " ELSE state END, " COPY_RUNNING " THEN 0 ELSE n_done END, n_total, " COPY_RUNNING
     " THEN 0 ELSE n_cache_hits END, error_category, error_message, created, " COPY_RUNNING
     " THEN 0 ELSE started END, finished, base_sha256, base_source, base_path, base_format, "
     "base_run, base_step FROM jobs ORDER BY id",
     "INSERT INTO jobs(id, checkpoint_id, settings_hash, preset, state, n_done, n_total, "
     "n_cache_hits, error_category, error_message, created, started, finished, base_sha256, "
     "base_source, base_path, base_format, base_run, base_step) VALUES(?1, ?2, ?3, ?4, ?5, ?6, "
     "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) ON CONFLICT DO NOTHING",
     "IITTIIIITTRRRTITTTI"},
    {"results",
     "SELECT tensor_sha256, analysis_key, settings_hash, engine_version, "
     "created, " STORE__RESULT_COLS ", esd FROM results ORDER BY tensor_sha256, analysis_key, "
     "settings_hash, engine_version",
     "INSERT INTO results(tensor_sha256, analysis_key, settings_hash, engine_version, "
     "created, " STORE__RESULT_COLS ", esd) VALUES(?, ?, ?, ?, ?, " STORE__RESULT_PARAMS
     ", ?) ON CONFLICT DO NOTHING",
     "TTTTR" STORE__RESULT_TYPES "T"},
    {"layers",
     "SELECT checkpoint_id, settings_hash, ord, run_id, step, name, kind, dtype, shape, "
     "tensor_sha256, " STORE__RESULT_COLS ", esd FROM layers ORDER BY checkpoint_id, "
     "settings_hash, ord",
     "INSERT INTO layers(checkpoint_id, settings_hash, ord, run_id, step, name, kind, dtype, "
     "shape, tensor_sha256, " STORE__RESULT_COLS
     ", esd) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, " STORE__RESULT_PARAMS
     ", ?) ON CONFLICT DO NOTHING",
     "TTIIITTTTT" STORE__RESULT_TYPES "T"},
    {"summaries",
     "SELECT checkpoint_id, settings_hash, run_id, step, metric, n_layers, mean, weighted_mean, "
     "n_total, n_ok, n_under, n_over, n_suspect FROM summaries ORDER BY checkpoint_id, "
     "settings_hash, metric",
     "INSERT INTO summaries(checkpoint_id, settings_hash, run_id, step, metric, n_layers, mean, "
     "weighted_mean, n_total, n_ok, n_under, n_over, n_suspect) VALUES(?1, ?2, ?3, ?4, ?5, ?6, "
     "?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
     "ITIITIRRIIIII"},
    {"alert_rules", "SELECT run_id, spec, updated FROM alert_rules ORDER BY run_id",
     "INSERT INTO alert_rules(run_id, spec, updated) VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING",
     "ITR"},
    {"alert_events",
     "SELECT id, run_id, step, job_id, rule, n_layers, body, created FROM alert_events ORDER BY id",
     "INSERT INTO alert_events(id, run_id, step, job_id, rule, n_layers, body, created) "
     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
     "IIIITITR"},
    {"deliveries",
     "SELECT id, event_id, run_id, url, state, attempts, next_at, last_status, last_error, '', 0, "
     "created, done_at FROM deliveries ORDER BY id",
     "INSERT INTO deliveries(id, event_id, run_id, url, state, attempts, next_at, last_status, "
     "last_error, claimed_by, lease_until, created, done_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, "
     "?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
     "IIITIIRITTRRR"},
};

/* Bind column `c` of the source row to parameter c+1 of `ins`. */
static void copy_col(struct store__q *sel, struct store__q *ins, int c, char type)
{
    if (store__is_null(sel, c))
        store__bind_null(ins, c + 1);
    else if (type == 'I')
        store__bind_int64(ins, c + 1, store__col_int64(sel, c));
    else if (type == 'R')
        store__bind_double(ins, c + 1, store__col_double(sel, c));
    else
        store__bind_text(ins, c + 1, store__col_str(sel, c));
}

static enum err_code copy_table(struct store *from, struct store *to, const struct copy_table *t,
                                struct store_copy_stats *st, struct err *e)
{
    struct store__q *sel = NULL, *ins = NULL;
    int ncols = (int)strlen(t->types), src;
    enum err_code rc;

    rc = store__stmt(from, t->select, &sel, e);
    if (rc != ERR_OK)
        return rc;
    while ((src = store__step(sel)) == STORE__ROW) {
        rc = store__stmt(to, t->insert, &ins, e);
        if (rc != ERR_OK)
            break;
        for (int c = 0; c < ncols; c++)
            copy_col(sel, ins, c, t->types[c]);
        rc = store__step_done(to, ins, t->name, e);
        if (rc != ERR_OK)
            break;
        st->rows_read++;
        st->rows_added += store__changes(to);
    }
    if (rc == ERR_OK && src != STORE__DONE)
        rc = store__dberr(from, src, t->name, e);
    store__release(sel);
    return rc;
}

/* Destination's change id = max(its own, the source's); PostgreSQL
 * identities past the copied ids. */
static enum err_code copy_finish(struct store *from, struct store *to, struct err *e)
{
    static const char seq[] =
        "SELECT setval(pg_get_serial_sequence('runs', 'id'), coalesce(max(id), 0) + 1, false) "
        "FROM runs; SELECT setval(pg_get_serial_sequence('checkpoints', 'id'), "
        "coalesce(max(id), 0) + 1, false) FROM checkpoints; SELECT setval("
        "pg_get_serial_sequence('jobs', 'id'), coalesce(max(id), 0) + 1, false) FROM jobs; "
        "SELECT setval(pg_get_serial_sequence('alert_events', 'id'), coalesce(max(id), 0) + 1, "
        "false) FROM alert_events; SELECT setval(pg_get_serial_sequence('deliveries', 'id'), "
        "coalesce(max(id), 0) + 1, false) FROM deliveries";
    static const char set[] = "UPDATE meta SET value = CAST(?1 AS BIGINT) WHERE key = "
                              "'change_seq' AND CAST(value AS BIGINT) < CAST(?1 AS BIGINT)";
    struct store__q *q = NULL;
    int64_t v = 0;
    enum err_code rc;

    rc = store_runs_version(from, &v, e);
    if (rc == ERR_OK)
        rc = store__stmt(to, set, &q, e);
    if (rc != ERR_OK)
        return rc;
    store__bind_int64(q, 1, v);
    rc = store__step_done(to, q, "change id", e);
    if (rc != ERR_OK)
        return rc;
    if (strcmp(store_backend(to), "postgresql") == 0)
        rc = to->drv->exec(to, seq, "identity sequences", e);
    return rc;
}

enum err_code store_copy(struct store *from, struct store *to, struct store_copy_stats *stats,
                         struct err *e)
{
    struct store_copy_stats st = {0};
    enum err_code rc;
    size_t i;

    if (stats != NULL)
        *stats = st;
    rc = store__begin(to, e);
    if (rc != ERR_OK)
        return rc;
    for (i = 0; i < sizeof TABLES / sizeof TABLES[0] && rc == ERR_OK; i++)
        rc = copy_table(from, to, &TABLES[i], &st, e);
    if (rc == ERR_OK)
        rc = copy_finish(from, to, e);
    if (rc == ERR_OK)
        rc = store__commit(to, e);
    if (rc != ERR_OK) {
        store__rollback(to);
        return rc;
    }
    if (stats != NULL)
        *stats = st;
    return ERR_OK;
}
