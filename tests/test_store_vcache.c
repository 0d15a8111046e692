/* test_store_vcache.c -- the run versions a connection keeps between reads
 * (storage/store_vcache.c) and the ETags made from them: a read answers
 * what the database holds now, whoever wrote it (another connection of this
 * process, or another process), so a dashboard never gets a stale 304.
 *
 * SQLite cases use a temp file database in WAL mode, as the service does;
 * the same cases then run against PostgreSQL (FARMSD_TEST_PG_URL,
 * tests/pg_util.h), where no stamp exists and every read is a query. The
 * other process is this test binary run again with --write (a fresh
 * process: no SQLite state inherited through fork).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/api.h"
#include "core/formats/thash.h"
#include "storage/store.h"
#include "storage/store_int.h"
#include "storage/store_jobs.h"
#include "storage/store_runs.h"
#include "tests/check.h"
#include "tests/pg_util.h"
#include "tests/store_util.h"

static const char PARAMS[] = "{\"window_rows\":2000,\"q_ratio\":1,\"xmin\":\"peak\"}";

/* NULL: the cases run on SQLite; else the PostgreSQL URL they run on. */
static const char *g_pg;
static char g_self[4096]; /* this binary, for the writer process */
static char g_db[256];

/* A fresh database: a temp SQLite file (and no WAL files), or the emptied
 * PostgreSQL test database. Its URL goes to g_db. */
static void db_fresh(void)
{
    stu_fresh(g_pg, "test_store_vcache", NULL, g_db, sizeof(g_db));
}

static void db_remove(void)
{
    stu_remove(g_pg, g_db);
}

static struct store *db_open(void)
{
    return stu_open(g_db, NULL, 0);
}

/* Submit checkpoint (run, step): a write that bumps the run's version. */
static enum err_code submit(struct store *s, const char *run, int64_t step)
{
    struct store_job job;
    int existed = 0;

    return stu_submit(s, run, step, NULL, PARAMS, &job, &existed, NULL);
}

static int64_t version_of(struct store *s, const char *run)
{
    int64_t v = -1;

    CHECK_EQ_INT(store_run_version(s, run, &v, NULL), ERR_OK);
    return v;
}

/* Submit (run, step) from another process; 1 if it succeeded. */
static int submit_elsewhere(const char *run, int64_t step)
{
    char stepstr[32];
    pid_t pid;
    int st = 0;

    snprintf(stepstr, sizeof(stepstr), "%lld", (long long)step);
    pid = fork();
    if (pid == 0) {
        execl(g_self, g_self, "--write", g_db, run, stepstr, (char *)NULL);
        _exit(127);
    }
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* --- Cases ----------------------------------------------------------------------- */

/* SQLite: a repeated read is answered from the cache (no commit in between),
 * and the first read after any commit is a query again. */
static void test_sqlite_repeats_hit_until_a_commit(void)
{
    struct store *a, *b;
    int64_t v = -1;

    db_fresh();
    a = db_open();
    b = db_open();
    CHECK_EQ_INT(submit(b, "gpt", 1), ERR_OK);
    CHECK_EQ_INT(store__vcache_get(a, "gpt", &v), 0); /* never read */
    v = version_of(a, "gpt");
    CHECK(v > 0);
    CHECK_EQ_INT(a->vcache.valid, 1);
    CHECK_EQ_INT((int)a->vcache.n, 1);
    CHECK_EQ_INT(store__vcache_get(a, "gpt", &v), 1);
    CHECK_EQ_INT(store__vcache_get(a, "other", &v), 0);
    CHECK_EQ_INT(submit(b, "other", 1), ERR_OK); /* a commit to another run */
    CHECK_EQ_INT(store__vcache_get(a, "gpt", &v), 0);
    CHECK_EQ_INT((int)a->vcache.n, 0);
    store_close(b);
    store_close(a);
    db_remove();
}

/* More runs than slots: the oldest entries are overwritten, every read
 * still answers its own run's version. */
static void test_sqlite_more_runs_than_slots(void)
{
    struct store *a = NULL;
    int64_t want[STORE__VCACHE_SLOTS + 4], v;
    char run[16];

    db_fresh();
    a = db_open();
    for (int i = 0; i < STORE__VCACHE_SLOTS + 4; i++) {
        snprintf(run, sizeof(run), "run%d", i);
        CHECK_EQ_INT(submit(a, run, 1), ERR_OK);
    }
    for (int i = 0; i < STORE__VCACHE_SLOTS + 4; i++) {
        snprintf(run, sizeof(run), "run%d", i);
        want[i] = version_of(a, run);
    }
    CHECK_EQ_INT((int)a->vcache.n, STORE__VCACHE_SLOTS);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < STORE__VCACHE_SLOTS + 4; i++) {
            snprintf(run, sizeof(run), "run%d", i);
            v = version_of(a, run);
            CHECK_EQ_INT(v, want[i]);
        }
    store_close(a);
    db_remove();
}

/* A write by another connection moves the version every reader sees, at
 * once, again and again; a reader's own write too. */
static void test_other_connection_writes_are_seen(void)
{
    struct store *a, *b;
    int64_t v0, v1, all0 = 0, all1 = 0;

    db_fresh();
    a = db_open();
    b = db_open();
    CHECK_EQ_INT(submit(b, "gpt", 1), ERR_OK);
    v0 = version_of(a, "gpt");
    CHECK_EQ_INT(store_runs_version(a, &all0, NULL), ERR_OK);
    for (int i = 2; i < 12; i++) {
        CHECK_EQ_INT(version_of(a, "gpt"), v0); /* cached or not: the same */
        CHECK_EQ_INT(submit(i % 3 == 0 ? a : b, "gpt", i), ERR_OK);
        v1 = version_of(a, "gpt");
        CHECK(v1 > v0);
        CHECK_EQ_INT(v1, version_of(b, "gpt"));
        CHECK_EQ_INT(store_runs_version(a, &all1, NULL), ERR_OK);
        CHECK(all1 > all0);
        v0 = v1;
        all0 = all1;
    }
    store_close(b);
    store_close(a);
    db_remove();
}

/* A run another connection creates after a miss is found (a missing run
 * is never kept). */
static void test_a_missing_run_is_not_kept(void)
{
    struct store *a, *b;
    int64_t v = -1;

    db_fresh();
    a = db_open();
    b = db_open();
    CHECK_EQ_INT(submit(b, "gpt", 1), ERR_OK);
    version_of(a, "gpt");
    CHECK_EQ_INT(store_run_version(a, "late", &v, NULL), ERR_NOTFOUND);
    CHECK_EQ_INT(store_run_version(a, "late", &v, NULL), ERR_NOTFOUND);
    CHECK_EQ_INT(submit(b, "late", 1), ERR_OK);
    CHECK_EQ_INT(store_run_version(a, "late", &v, NULL), ERR_OK);
    CHECK(v > 0);
    store_close(b);
    store_close(a);
    db_remove();
}

/* A write by another process moves the version this connection sees. */
static void test_other_process_writes_are_seen(void)
{
    struct store *a;
    int64_t v0, v1, all0 = 0, all1 = 0;

    db_fresh();
    a = db_open();
    CHECK_EQ_INT(submit(a, "gpt", 1), ERR_OK);
    v0 = version_of(a, "gpt");
    CHECK_EQ_INT(version_of(a, "gpt"), v0);
    CHECK_EQ_INT(store_runs_version(a, &all0, NULL), ERR_OK);
    for (int i = 2; i < 5; i++) {
        CHECK(submit_elsewhere("gpt", i));
        v1 = version_of(a, "gpt");
        CHECK(v1 > v0);
        CHECK_EQ_INT(store_runs_version(a, &all1, NULL), ERR_OK);
        CHECK(all1 > all0);
        v0 = v1;
        all0 = all1;
    }
    store_close(a);
    db_remove();
}

/* GET through the API with one connection; `inm` the If-None-Match or NULL.
 * Returns the status; the ETag goes to etag. */
static int api_get(struct store *s, const char *path, const char *inm, char *etag)
{
    struct api_stats st;
    struct api_ctx ctx = {.default_preset = "farms-llm", .stats = &st, .ready = 1};
    struct api_request rq = {.method = "GET", .path = path, .if_none_match = inm};
    struct api_response r;
    int status;

    api_stats_init(&st);
    api_handle(&ctx, s, &rq, &r);
    status = r.status;
    snprintf(etag, 80, "%s", r.etag);
    api_response_free(&r);
    return status;
}

/* The dashboard's poll: 304 while nothing changed, then, after a write by
 * another connection or another process, a 200 with a new ETag (never a
 * stale 304), and 304 again on the new one. */
static void test_no_stale_304_after_a_write_elsewhere(void)
{
    static const char *const paths[] = {"/v1/runs/gpt/checkpoints", "/v1/runs"};
    struct store *a, *b;
    char tag[80], again[80];

    db_fresh();
    a = db_open();
    b = db_open();
    CHECK_EQ_INT(submit(b, "gpt", 1), ERR_OK);
    for (size_t k = 0; k < 2; k++) {
        CHECK_EQ_INT(api_get(a, paths[k], NULL, tag), 200);
        CHECK(tag[0] == '"');
        for (int i = 0; i < 3; i++) {
            CHECK_EQ_INT(api_get(a, paths[k], tag, again), 304);
            CHECK_STR_EQ(again, tag);
        }
        CHECK_EQ_INT(submit(b, "gpt", 10 + (int64_t)k), ERR_OK); /* another connection */
        CHECK_EQ_INT(api_get(a, paths[k], tag, again), 200);
        CHECK(strcmp(again, tag) != 0);
        CHECK_EQ_INT(api_get(a, paths[k], again, tag), 304);
        CHECK(submit_elsewhere("gpt", 20 + (int64_t)k)); /* another process */
        CHECK_EQ_INT(api_get(a, paths[k], tag, again), 200);
        CHECK(strcmp(again, tag) != 0);
        CHECK_EQ_INT(api_get(a, paths[k], again, tag), 304);
    }
    store_close(b);
    store_close(a);
    db_remove();
}

/* The writer process: submit (run, step) to the database at url. */
static int writer_main(const char *url, const char *run, const char *step)
{
    struct store *s = NULL;
    enum err_code rc;

    if (store_open(url, &s, NULL) != ERR_OK)
        return 1;
    rc = submit(s, run, strtoll(step, NULL, 10));
    store_close(s);
    return rc == ERR_OK ? 0 : 1;
}

static void run_cases(void)
{
    test_other_connection_writes_are_seen();
    test_a_missing_run_is_not_kept();
    test_other_process_writes_are_seen();
    test_no_stale_304_after_a_write_elsewhere();
}

int main(int argc, char **argv)
{
    const char *url;
    ssize_t n;

    if (argc == 5 && strcmp(argv[1], "--write") == 0)
        return writer_main(argv[2], argv[3], argv[4]);
    n = readlink("/proc/self/exe", g_self, sizeof(g_self) - 1);
    ERR_ASSERT(n > 0);
    g_self[n] = '\0';
    test_sqlite_repeats_hit_until_a_commit();
    test_sqlite_more_runs_than_slots();
    run_cases();
    url = pgu_url();
    if (url != NULL) {
        g_pg = url;
        run_cases();
    }
    return check_report("test_store_vcache");
}
