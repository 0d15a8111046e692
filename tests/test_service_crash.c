/* test_service_crash.c -- a real `farmsd serve` (tests/svc_harness.h)
 * killed with SIGKILL in the middle of a job, then restarted on the same
 * data folder.
 *
 * A synthetic checkpoint (six 1536x1536 Gaussian matrices, a second or two
 * each under ASan) is analysed while small fixture uploads are acknowledged
 * alongside; once the long job has finished some layers the server is
 * killed. Afterwards: the database passes PRAGMA integrity_check; after a
 * restart the interrupted job's remaining tasks run and it succeeds, the
 * layers finished before the crash not analysed again, and its results equal
 * `farmsd analyze` on the same file; every upload acknowledged with 202
 * before the kill is listed, with its blob on disk; a SIGTERM then stops
 * the server cleanly (exit 0) even in the middle of another job, which
 * then finishes after the next start; the database is still intact.
 * Run from the repository root after `make test-build`.
 */
#include <sqlite3.h>

#include "tests/check.h"
#include "tests/svc_harness.h"

#define N_BIG   6
#define BIG_DIM 1536

static char tmp_dir[256];

struct acked {
    const char *run;
    long step;
    char sha256[THASH_HEX_LEN];
    long long size;
    long long job;
};

/* The database after a crash. SQLite: PRAGMA integrity_check, its single
 * row in `out` ("ok"). PostgreSQL (crash-safe by its WAL): every table the
 * service uses answers a full scan, then "ok". */
static void integrity(const char *db_path, char *out, size_t len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    snprintf(out, len, "(no answer)");
    if (svc_on_pg()) {
        PGconn *c = PQconnectdb(getenv("FARMSD_TEST_PG_URL"));
        PGresult *r = PQexec(c, "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM "
                                "checkpoints) + (SELECT count(*) FROM jobs) + (SELECT count(*) "
                                "FROM results) + (SELECT count(*) FROM layers)");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            snprintf(out, len, "ok");
        else
            snprintf(out, len, "%s", PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        return;
    }
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static long long upload(const struct svc *s, struct acked *a, const char *file)
{
    char path[160];
    struct svc_resp r;

    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints?step=%ld", a->run, a->step);
    CHECK_EQ_INT(svc_upload(s, path, file, NULL, &r), 202);
    snprintf(a->sha256, sizeof(a->sha256), "%s", svc_js(r.json, "sha256"));
    a->size = (long long)svc_jn(r.json, "size");
    a->job = r.status == 202 ? (long long)svc_jn(r.json, "id") : 0;
    svc_resp_free(&r);
    return a->job;
}

/* Poll the job until it is running with at least one finished layer. */
static int wait_progress(const struct svc *s, long long id, long *done, double timeout_s)
{
    double until = svc_now() + timeout_s;

    *done = 0;
    while (svc_now() < until) {
        cJSON *job = svc_job(s, id);
        const cJSON *p = svc_j(job, "progress");
        int running = strcmp(svc_js(job, "state"), "running") == 0;
        *done = (long)svc_jn(p, "tensors_done");
        cJSON_Delete(job);
        if (running && *done >= 1)
            return 1;
        svc_sleep_ms(25);
    }
    return 0;
}

static void check_acked_present(const struct svc *s, const struct acked *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        struct svc_resp r;
        const cJSON *c, *found = NULL;
        struct stat st;

        snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints", a[i].run);
        CHECK_EQ_INT(svc_get(s, path, &r), 200);
        cJSON_ArrayForEach(c, svc_j(r.json, "checkpoints")) if ((long)svc_jn(c, "step") ==
                                                                a[i].step) found = c;
        CHECK(found != NULL);
        CHECK_STR_EQ(svc_js(found, "sha256"), a[i].sha256);
        CHECK_EQ_INT((long long)svc_jn(found, "size"), a[i].size);
        CHECK_EQ_INT((long long)svc_jn(svc_j(found, "job"), "id"), a[i].job);
        svc_resp_free(&r);
        snprintf(path, sizeof(path), "%s/blobs/objects/%.2s/%s", s->data, a[i].sha256, a[i].sha256);
        CHECK(stat(path, &st) == 0 && (long long)st.st_size == a[i].size);
    }
}

/* The log's size: where a restart's lines begin. */
static size_t log_end(const struct svc *s)
{
    struct stat st;

    return stat(s->log, &st) == 0 ? (size_t)st.st_size : 0;
}

/* Tasks of job `job` done (debug lines msg="done") in the log from `from`. */
static long task_done_lines(const struct svc *s, long long job, size_t from)
{
    size_t len = 0;
    char *log = svc_slurp(s->log, &len), key[64];
    long n = 0;

    snprintf(key, sizeof(key), "job=%lld task=", job);
    for (char *p = log != NULL && from < len ? strstr(log + from, key) : NULL; p != NULL;
         p = strstr(p + 1, key)) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        n += strstr(p, "msg=\"done\"") != NULL;
        if (nl == NULL)
            break;
        *nl = '\n';
    }
    free(log);
    return n;
}

/* A graceful stop in the middle of a job: exit 0 within the grace period,
 * the job's remaining tasks are handed back and finish after the next
 * start; the layers done before the stop are not analysed again. `s` is
 * running on `data`; stopped on return. */
static void test_sigterm_during_a_job(struct svc *s, const char *data, const char *big)
{
    struct acked b = {"crash", 2, "", 0, 0};
    const char *const debug[] = {"--log-level", "debug", NULL};
    long done_before = 0;
    double t;
    size_t from;
    cJSON *job;

    CHECK(svc_write_gaussian_st(big, N_BIG, BIG_DIM, BIG_DIM, 2)); /* other weights */
    upload(s, &b, big);
    CHECK(wait_progress(s, b.job, &done_before, 120));
    CHECK(done_before >= 1 && done_before < N_BIG);
    t = svc_now();
    CHECK_EQ_INT(svc_stop(s), 0);
    CHECK(svc_now() - t < 10.0); /* the runners stop after the task at hand */
    from = log_end(s);
    if (!svc_start(s, data, debug)) {
        CHECK(!"server restarted after SIGTERM");
        return;
    }
    job = svc_wait_job(s, b.job, 150);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    CHECK_EQ_INT((long)svc_jn(svc_j(job, "progress"), "tensors_done"), N_BIG);
    CHECK_EQ_INT((long)svc_jn(svc_j(job, "progress"), "cache_hits"), 0);
    /* the tasks done before the stop stay done: only the others ran after it */
    CHECK(task_done_lines(s, b.job, from) >= 1);
    CHECK(task_done_lines(s, b.job, from) <= N_BIG - done_before);
    cJSON_Delete(job);
    check_acked_present(s, &b, 1);
    CHECK_EQ_INT(svc_stop(s), 0);
}

static void test_kill_9_during_a_job_then_restart(void)
{
    char data[512], big[512], db[600], ic[256];
    struct acked a[4] = {{"crash", 1, "", 0, 0},
                         {"acked", 0, "", 0, 0},
                         {"acked", 100, "", 0, 0},
                         {"acked", 500, "", 0, 0}};
    static const char *const small[3] = {SVC_FIX "mlp/mlp_step0000.safetensors",
                                         SVC_FIX "mlp/mlp_step0100.pt",
                                         SVC_FIX "mlp/mlp_step0500.npz"};
    struct svc s;
    const char *const debug[] = {"--log-level", "debug", NULL};
    long done_before = 0;
    size_t from;
    cJSON *job;

    snprintf(data, sizeof(data), "%s/data", tmp_dir);
    snprintf(big, sizeof(big), "%s/big.safetensors", tmp_dir);
    snprintf(db, sizeof(db), "%s/farms.db", data);
    CHECK(svc_write_gaussian_st(big, N_BIG, BIG_DIM, BIG_DIM, 20240607));
    if (!svc_start(&s, data, NULL)) {
        CHECK(!"server started");
        return;
    }
    upload(&s, &a[0], big);
    for (int i = 0; i < 3; i++)
        upload(&s, &a[i + 1], small[i]);
    CHECK(wait_progress(&s, a[0].job, &done_before, 120));
    CHECK(done_before >= 1 && done_before < N_BIG);
    svc_crash(&s);

    /* the database survives the crash as it is */
    integrity(db, ic, sizeof(ic));
    CHECK_STR_EQ(ic, "ok");

    from = log_end(&s);
    if (!svc_start(&s, data, debug)) {
        CHECK(!"server restarted");
        return;
    }
    job = svc_wait_job(&s, a[0].job, 150);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    CHECK_EQ_INT((long)svc_jn(svc_j(job, "progress"), "tensors_total"), N_BIG);
    CHECK_EQ_INT((long)svc_jn(svc_j(job, "progress"), "tensors_done"), N_BIG);
    /* tasks done before the kill stay done; only the others (those in
       flight at the kill among them, or cache hits if their result was
       cached before it) ran after the restart */
    CHECK(task_done_lines(&s, a[0].job, from) >= 1);
    CHECK(task_done_lines(&s, a[0].job, from) <= N_BIG - done_before);
    cJSON_Delete(job);
    for (int i = 1; i < 4; i++) {
        job = svc_wait_job(&s, a[i].job, 60);
        CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
        cJSON_Delete(job);
    }
    check_acked_present(&s, a, 4);

    /* half analysed before the crash, half after: the same as one clean run */
    svc_check_layers_as_analyze(&s, "crash", 1, big, 0, N_BIG);
    CHECK_EQ_INT(svc_metric(&s, "farmsd_jobs{state=\"succeeded\"}"), 4);
    CHECK_EQ_INT(svc_metric(&s, "farmsd_jobs{state=\"running\"}"), 0);
    test_sigterm_during_a_job(&s, data, big);
    unlink(big); /* 56 MB, not kept even when a test fails */
    integrity(db, ic, sizeof(ic));
    CHECK_STR_EQ(ic, "ok");
    if (check_n_failed)
        svc_dump_log(&s, 4000);
}

int main(void)
{
    double t0 = svc_now();

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(svc_mkdtemp("svc-crash", tmp_dir, sizeof(tmp_dir)));
    test_kill_9_during_a_job_then_restart();
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service_crash: %.1f s\n", svc_now() - t0);
    return check_report("test_service_crash");
}
