/* test_store_summary.c -- storage/store_summary: checkpoint summaries are
 * written with the layer rows (store_layers_put), replaced when the rows
 * are, read per checkpoint and as a paginated history over steps, copied by
 * store_copy, deleted with their run, and filled by the migration to
 * schema 8 for layer rows written before it.
 *
 * Every case runs on SQLite (a temp file), then again on PostgreSQL
 * (FARMSD_TEST_PG_URL, tests/pg_util.h): a fresh database per case.
 */
#include "storage/store_summary.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "core/formats/thash.h"
#include "storage/store_jobs.h"
#include "storage/store_layers.h"
#include "storage/store_results.h"
#include "storage/store_runs.h"
#include "tests/check.h"
#include "tests/pg_util.h"
#include "tests/store_util.h"

static const char PARAMS_LLM[] = "{\"window_rows\":2000,\"q_ratio\":1,\"xmin\":\"peak\"}";

/* NULL: the cases run on SQLite; else the PostgreSQL URL they run on. */
static const char *g_pg;

/* Submit (run, step) and claim its job: *job has the checkpoint and
 * settings. */
static void submit_claim(struct store *s, const char *run, int64_t step, struct store_job *job)
{
    struct err e = {0};
    int existed = 0, claimed = 0;

    ERR_ASSERT(stu_submit(s, run, step, NULL, PARAMS_LLM, job, &existed, &e) == ERR_OK);
    if (!existed) /* a checkpoint submitted again keeps its (claimed) job */
        ERR_ASSERT(store_job_claim(s, job, &claimed, &e) == ERR_OK && claimed);
}

static struct farms_result result_ok(double alpha)
{
    struct farms_result r;

    memset(&r, 0, sizeof r);
    r.status = FARMS_STATUS_OK;
    r.warning = alpha > 6 ? FARMS_WARNING_UNDER_TRAINED : FARMS_WARNING_NONE;
    r.alpha = alpha;
    r.spectral_norm = 9.5;
    r.alpha_hat = alpha * log10(9.5);
    r.log_norm = log10(120.0);
    r.log_spectral_norm = log10(9.5);
    r.stable_rank = 120.0 / 9.5;
    r.log_alpha_norm = NAN;
    r.mp_softrank = NAN;
    return r;
}

/* Three layer rows at (run, step): fc1 8x8 (64 params) alpha a1, fc2
 * 16x32 (512 params) alpha a2, norm skipped (1-D). */
static void put_three(struct store *s, const char *run, int64_t step, double a1, double a2)
{
    char n0[] = "fc1.weight", n1[] = "fc2.weight", n2[] = "norm.weight";
    struct store_layer rows[3];
    struct store_job job;
    struct err e = {0};
    enum err_code rc;

    submit_claim(s, run, step, &job);
    memset(rows, 0, sizeof rows);
    rows[0].name = n0;
    rows[1].name = n1;
    rows[2].name = n2;
    for (int i = 0; i < 3; i++) {
        rows[i].kind = LAYER_KIND_LINEAR;
        rows[i].dtype = DTYPE_F32;
        rows[i].ndim = 2;
    }
    rows[0].shape[0] = rows[0].shape[1] = 8;
    rows[1].shape[0] = 16;
    rows[1].shape[1] = 32;
    rows[2].ndim = 1;
    rows[2].shape[0] = 32;
    rows[0].r = result_ok(a1);
    rows[1].r = result_ok(a2);
    rows[2].r.status = FARMS_STATUS_SKIPPED;
    rc = store_layers_put(s, job.checkpoint_id, job.settings_hash, rows, 3, &e);
    if (rc != ERR_OK)
        fprintf(stderr, "store_layers_put: %s\n", e.msg);
    CHECK_EQ_INT(rc, ERR_OK);
    if (job.state == STORE_JOB_RUNNING)
        CHECK_EQ_INT(store_job_finish(s, job.id, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
}

/* The plain and weighted alpha means of put_three(a1, a2). */
static double mean2(double a1, double a2)
{
    return (a1 + a2) / 2;
}
static double wmean2(double a1, double a2)
{
    return (64 * a1 + 512 * a2) / 576;
}

/* A checkpoint's summary comes with its layer rows: counts, plain and
 * parameter-weighted means (they differ: the layers differ in size),
 * metrics no layer has are NaN. Writing the rows again replaces it. */
static void test_written_with_the_layers(void)
{
    char path[512];
    struct store *s = NULL;
    struct store_summary sum;
    struct err e = {0};
    int found = 0;

    stu_fresh(g_pg, "test_store_summary", "put", path, sizeof path);
    s = stu_open(path, NULL, 0);
    put_three(s, "r", 100, 2.0, 5.0);
    CHECK_EQ_INT(store_summary_get(s, "r", 100, NULL, &sum, &found, &e), ERR_OK);
    CHECK_EQ_INT(found, 1);
    CHECK_EQ_INT(sum.step, 100);
    CHECK_EQ_INT(strlen(sum.settings_hash), 64);
    CHECK_EQ_INT(sum.sum.n_layers, 3);
    CHECK_EQ_INT(sum.sum.n_ok, 2);
    CHECK_EQ_INT(sum.sum.n_under, 0);
    CHECK_EQ_INT(sum.sum.v[FARMS_SUMMARY_ALPHA].n_layers, 2);
    CHECK_NEAR(sum.sum.v[FARMS_SUMMARY_ALPHA].mean, 3.5, 1e-12);
    CHECK_NEAR(sum.sum.v[FARMS_SUMMARY_ALPHA].weighted_mean, wmean2(2.0, 5.0), 1e-12);
    CHECK(sum.sum.v[FARMS_SUMMARY_ALPHA].weighted_mean > 4.6); /* 2784 / 576 = 4.833 */
    CHECK_NEAR(sum.sum.v[FARMS_SUMMARY_ALPHA_WEIGHTED].mean, 3.5 * log10(9.5), 1e-12);
    CHECK_NEAR(sum.sum.v[FARMS_SUMMARY_STABLE_RANK].weighted_mean, 120.0 / 9.5, 1e-12);
    CHECK_EQ_INT(sum.sum.v[FARMS_SUMMARY_MP_SOFTRANK].n_layers, 0);
    CHECK(isnan(sum.sum.v[FARMS_SUMMARY_MP_SOFTRANK].mean));
    CHECK(isnan(sum.sum.v[FARMS_SUMMARY_MP_SOFTRANK].weighted_mean));
    /* the rows again, other alphas (one under-trained): the summary follows */
    put_three(s, "r", 100, 7.0, 3.0);
    CHECK_EQ_INT(store_summary_get(s, "r", 100, NULL, &sum, &found, &e), ERR_OK);
    CHECK_EQ_INT(sum.sum.n_under, 1);
    CHECK_NEAR(sum.sum.v[FARMS_SUMMARY_ALPHA].mean, 5.0, 1e-12);
    CHECK_NEAR(sum.sum.v[FARMS_SUMMARY_ALPHA].weighted_mean, wmean2(7.0, 3.0), 1e-12);
    store_close(s);
    stu_remove(g_pg, path);
}

/* Absence: an unknown run or step is ERR_NOTFOUND; a checkpoint not
 * analysed yet has no summary (found 0); step -1 is the latest summary. */
static void test_absent_and_latest(void)
{
    char path[512];
    struct store *s = NULL;
    struct store_summary sum;
    struct store_job job;
    struct err e = {0};
    int found = 1;

    stu_fresh(g_pg, "test_store_summary", "absent", path, sizeof path);
    s = stu_open(path, NULL, 0);
    CHECK_EQ_INT(store_summary_get(s, "nope", -1, NULL, &sum, &found, &e), ERR_NOTFOUND);
    CHECK(strstr(e.msg, "nope") != NULL);
    put_three(s, "r", 100, 2.0, 4.0);
    put_three(s, "r", 300, 3.0, 3.0);
    submit_claim(s, "r", 400, &job); /* no layer rows yet */
    CHECK_EQ_INT(store_summary_get(s, "r", 999, NULL, &sum, &found, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_summary_get(s, "r", 400, NULL, &sum, &found, &e), ERR_OK);
    CHECK_EQ_INT(found, 0);
    CHECK_EQ_INT(store_summary_get(s, "r", -1, NULL, &sum, &found, &e), ERR_OK);
    CHECK_EQ_INT(found, 1);
    CHECK_EQ_INT(sum.step, 300);
    CHECK_NEAR(sum.sum.v[FARMS_SUMMARY_ALPHA].mean, 3.0, 1e-12);
    store_close(s);
    stu_remove(g_pg, path);
}

/* The history of one metric over 3 steps, in step order, paginated by
 * step, windowed; ERR_INVAL for a bad token or metric. */
static void test_history_over_steps(void)
{
    static const double a1[3] = {2.0, 3.0, 4.5}, a2[3] = {6.0, 4.0, 3.5};
    struct store_history_query q = {
        .run = "r", .start_step = STORE_STEP_MIN, .end_step = STORE_STEP_MAX, .page_size = 2};
    struct store_summary_history *h = NULL;
    char path[512], token[STORE_TOKEN_MAX];
    struct store *s = NULL;
    struct err e = {0};

    stu_fresh(g_pg, "test_store_summary", "hist", path, sizeof path);
    s = stu_open(path, NULL, 0);
    for (int i = 0; i < 3; i++)
        put_three(s, "r", 100 * (int64_t)(i + 1), a1[i], a2[i]);
    CHECK_EQ_INT(store_summary_history(s, &q, FARMS_SUMMARY_ALPHA, &h, &e), ERR_OK);
    CHECK_EQ_INT(h->n, 2);
    CHECK(h->next_token[0] != '\0');
    for (size_t i = 0; i < h->n; i++) {
        CHECK_EQ_INT(h->points[i].step, 100 * (int64_t)(i + 1));
        CHECK_EQ_INT(h->points[i].n_layers, 2);
        CHECK_NEAR(h->points[i].mean, mean2(a1[i], a2[i]), 1e-12);
        CHECK_NEAR(h->points[i].weighted_mean, wmean2(a1[i], a2[i]), 1e-12);
    }
    snprintf(token, sizeof token, "%s", h->next_token);
    store_summary_history_free(h);
    q.page_token = token;
    CHECK_EQ_INT(store_summary_history(s, &q, FARMS_SUMMARY_ALPHA, &h, &e), ERR_OK);
    CHECK_EQ_INT(h->n, 1);
    CHECK_EQ_INT(h->n ? h->points[0].step : -1, 300);
    CHECK_NEAR(h->n ? h->points[0].weighted_mean : -1, wmean2(4.5, 3.5), 1e-12);
    CHECK_STR_EQ(h->next_token, "");
    store_summary_history_free(h);
    /* a window, another metric */
    q.page_token = NULL;
    q.page_size = 0;
    q.start_step = 150;
    q.end_step = 250;
    CHECK_EQ_INT(store_summary_history(s, &q, FARMS_SUMMARY_LOG_NORM, &h, &e), ERR_OK);
    CHECK_EQ_INT(h->n, 1);
    CHECK_EQ_INT(h->n ? h->points[0].step : -1, 200);
    CHECK_NEAR(h->n ? h->points[0].mean : -1, log10(120.0), 1e-12);
    store_summary_history_free(h);
    q.page_token = "x";
    CHECK_EQ_INT(store_summary_history(s, &q, FARMS_SUMMARY_ALPHA, &h, &e), ERR_INVAL);
    q.page_token = NULL;
    CHECK_EQ_INT(store_summary_history(s, &q, FARMS_SUMMARY_COUNT, &h, &e), ERR_INVAL);
    q.run = "nope";
    CHECK_EQ_INT(store_summary_history(s, &q, FARMS_SUMMARY_ALPHA, &h, &e), ERR_NOTFOUND);
    CHECK(h == NULL);
    store_close(s);
    stu_remove(g_pg, path);
}

/* Rows of table summaries in the database at `path` (-1 if unreadable). */
static long count_summaries(const char *path)
{
    return (long)stu_raw_int(g_pg, path, "SELECT count(*) FROM summaries");
}

/* Deleting a run deletes its summaries, not another run's; farmsd migrate
 * (store_copy) carries them over. */
static void test_copied_and_deleted_with_the_run(void)
{
    struct store_history_query q = {
        .run = "r", .start_step = STORE_STEP_MIN, .end_step = STORE_STEP_MAX};
    struct store_summary_history *h = NULL;
    struct store_copy_stats stats = {0};
    struct store *s = NULL, *to = NULL;
    char path[512];
    struct err e = {0};

    stu_fresh(g_pg, "test_store_summary", "del", path, sizeof path);
    s = stu_open(path, NULL, 0);
    put_three(s, "r", 100, 2.0, 4.0);
    put_three(s, "r", 200, 2.5, 4.5);
    put_three(s, "other", 100, 3.0, 3.0);
    CHECK_EQ_INT(count_summaries(path), 3 * FARMS_SUMMARY_COUNT);
    CHECK_EQ_INT(store_open(":memory:", &to, &e), ERR_OK);
    CHECK_EQ_INT(store_copy(s, to, &stats, &e), ERR_OK);
    CHECK_EQ_INT(store_summary_history(to, &q, FARMS_SUMMARY_ALPHA, &h, &e), ERR_OK);
    CHECK_EQ_INT(h != NULL ? h->n : 0, 2);
    CHECK_NEAR(h != NULL && h->n == 2 ? h->points[1].weighted_mean : -1, wmean2(2.5, 4.5), 1e-12);
    store_summary_history_free(h);
    store_close(to);
    CHECK_EQ_INT(store_run_delete(s, "r", NULL, NULL, &e), ERR_OK);
    CHECK_EQ_INT(count_summaries(path), FARMS_SUMMARY_COUNT);
    store_close(s);
    stu_remove(g_pg, path);
}

/* Run `sql` on the database at `path`; 1 if it succeeded. */
static int exec_ok(const char *path, const char *sql)
{
    int ok = 0;

    if (g_pg != NULL) {
        PGconn *c = PQconnectdb(path);
        PGresult *r = PQexec(c, sql);

        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
    } else {
        sqlite3 *db = NULL;

        ok = sqlite3_open(path, &db) == SQLITE_OK &&
             sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
        if (!ok)
            fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
        sqlite3_close(db);
    }
    return ok;
}

/* The SQL column and schema version (`since`) of each result field. */
#define FIELD_SINCE(member, NAME, type, key, column, json, history, width, decimals, since) \
    {column, since},
static const struct {
    const char *column;
    int since;
} FIELD_COLUMNS[] = {FARMS_RESULT_FIELDS(FIELD_SINCE)};
#undef FIELD_SINCE

/* Make the database at `path` what schema 7 was: no table summaries, no
 * columns of the fields added at 8, version 7. */
static void downgrade_to_7(const char *path)
{
    char sql[256];

    for (size_t i = 0; i < sizeof FIELD_COLUMNS / sizeof FIELD_COLUMNS[0]; i++) {
        if (FIELD_COLUMNS[i].since <= 7)
            continue;
        snprintf(sql, sizeof sql,
                 "ALTER TABLE results DROP COLUMN %s; ALTER TABLE layers DROP COLUMN %s;",
                 FIELD_COLUMNS[i].column, FIELD_COLUMNS[i].column);
        CHECK(exec_ok(path, sql));
    }
    if (g_pg != NULL)
        CHECK(exec_ok(path, "DROP TABLE summaries; DELETE FROM schema_version; "
                            "INSERT INTO schema_version VALUES(7)"));
    else
        CHECK(exec_ok(path, "DROP TABLE summaries; PRAGMA user_version = 7"));
    CHECK_EQ_INT(count_summaries(path), -1);
}

/* A schema-7 database with layer rows (two runs, three checkpoints) is
 * upgraded in place: every checkpoint gets the summary its rows give, so
 * the summary history is whole; opening again changes nothing. */
static void test_migration_fills_older_checkpoints(void)
{
    struct store_history_query q = {
        .run = "r", .start_step = STORE_STEP_MIN, .end_step = STORE_STEP_MAX};
    struct store_summary_history *h = NULL;
    struct store_summary sum;
    struct store *s = NULL;
    char path[512];
    struct err e = {0};
    int found = 0;

    stu_fresh(g_pg, "test_store_summary", "v7", path, sizeof path);
    s = stu_open(path, NULL, 0);
    put_three(s, "r", 100, 2.0, 4.0);
    put_three(s, "r", 200, 2.5, 3.5);
    put_three(s, "other", 5, 7.0, 7.0);
    store_close(s);
    downgrade_to_7(path);

    s = stu_open(path, NULL, 0);
    CHECK_EQ_INT(count_summaries(path), 3 * FARMS_SUMMARY_COUNT);
    CHECK_EQ_INT(store_summary_history(s, &q, FARMS_SUMMARY_ALPHA, &h, &e), ERR_OK);
    CHECK_EQ_INT(h != NULL ? h->n : 0, 2);
    if (h != NULL && h->n == 2) {
        CHECK_EQ_INT(h->points[0].step, 100);
        CHECK_NEAR(h->points[0].mean, 3.0, 1e-12);
        CHECK_NEAR(h->points[0].weighted_mean, wmean2(2.0, 4.0), 1e-12);
        CHECK_NEAR(h->points[1].weighted_mean, wmean2(2.5, 3.5), 1e-12);
    }
    store_summary_history_free(h);
    CHECK_EQ_INT(store_summary_get(s, "other", 5, NULL, &sum, &found, &e), ERR_OK);
    CHECK_EQ_INT(found, 1);
    CHECK_EQ_INT(sum.sum.n_layers, 3);
    CHECK_EQ_INT(sum.sum.n_under, 2);
    CHECK_NEAR(sum.sum.v[FARMS_SUMMARY_ALPHA].weighted_mean, 7.0, 1e-12);
    store_close(s);
    s = stu_open(path, NULL, 0);
    CHECK_EQ_INT(count_summaries(path), 3 * FARMS_SUMMARY_COUNT);
    store_close(s);
    stu_remove(g_pg, path);
}

static void run_cases(void)
{
    test_written_with_the_layers();
    test_absent_and_latest();
    test_history_over_steps();
    test_copied_and_deleted_with_the_run();
    test_migration_fills_older_checkpoints();
}

int main(void)
{
    const char *url;

    run_cases();
    if ((url = pgu_url()) != NULL) {
        g_pg = url;
        run_cases();
    }
    return check_report("test_store_summary");
}
