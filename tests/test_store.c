/* test_store.c -- storage/store: schema, job queue, cache, layer rows, reads.
 *
 * Most cases use store_open(":memory:"); the migration, crash/requeue and
 * two-thread claim cases use a temp file database (WAL), as the service does.
 * Then every case that is not about SQLite files runs again against
 * PostgreSQL (FARMSD_TEST_PG_URL, tests/pg_util.h): a fresh database per case.
 */
#include "storage/store.h"
#include "storage/store_history.h"
#include "storage/store_jobs.h"
#include "storage/store_layers.h"
#include "storage/store_results.h"
#include "storage/store_runs.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/formats/thash.h"
#include "storage/blob.h"
#include "tests/check.h"
#include "tests/pg_util.h"
#include "tests/store_util.h"

static const char PARAMS_LLM[] = "{\"window_rows\":2000,\"q_ratio\":1,\"xmin\":\"peak\"}";
static const char PARAMS_CV[] = "{\"window_rows\":100,\"q_ratio\":1,\"xmin\":\"mid\"}";

/* --- Helpers ------------------------------------------------------------------ */

static void sha_of(const char *text, char hex[THASH_HEX_LEN])
{
    ERR_ASSERT(thash_bytes(text, strlen(text), hex, NULL) == ERR_OK);
}

/* NULL: the cases run on SQLite; else the PostgreSQL URL they run on. */
static const char *g_pg;

static struct store *open_mem(void)
{
    struct store *s = NULL;
    struct err e = {0};

    if (g_pg != NULL)
        ERR_ASSERT(pgu_reset(g_pg) == 0);
    if (store_open(g_pg != NULL ? g_pg : ":memory:", &s, &e) != ERR_OK) {
        fprintf(stderr, "store_open: %s\n", e.msg);
        ERR_ASSERT(!"store_open");
    }
    return s;
}

/* Submit checkpoint (run, step) whose content is the text `content`. */
static enum err_code submit(struct store *s, const char *run, int64_t step, const char *content,
                            const char *preset, const char *params, struct store_job *job,
                            int *existed, struct err *e)
{
    char sha[THASH_HEX_LEN];
    struct store_submit sub = {0};

    sha_of(content, sha);
    sub.run = run;
    sub.step = step;
    sub.content_sha256 = sha;
    sub.source = STORE_SOURCE_UPLOAD;
    sub.format = "safetensors";
    sub.size = 1000 + (uint64_t)step;
    sub.preset = preset;
    sub.params_json = params;
    return store_job_submit(s, &sub, job, existed, e);
}

static int64_t submit_ok(struct store *s, const char *run, int64_t step)
{
    char content[64];
    struct store_job job;
    struct err e = {0};
    int existed = 0;

    snprintf(content, sizeof content, "%s@%" PRId64, run, step);
    ERR_ASSERT(submit(s, run, step, content, "farms-llm", PARAMS_LLM, &job, &existed, &e) ==
               ERR_OK);
    return job.id;
}

/* --- Schema -------------------------------------------------------------------- */

static void test_open_twice_migrates_once(void)
{
    char path[256], id1[40];
    struct store *s = NULL, *t = NULL;
    struct err e = {0};

    stu_fresh(g_pg, "test_store", "open", path, sizeof path);
    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    CHECK_EQ_INT(strlen(store_instance_id(s)), 32);
    snprintf(id1, sizeof id1, "%s", store_instance_id(s));
    submit_ok(s, "r", 1);
    /* a second connection while the first is open, then a reopen */
    CHECK_EQ_INT(store_open(path, &t, &e), ERR_OK);
    CHECK_STR_EQ(store_instance_id(t), id1);
    store_close(t);
    store_close(s);
    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    CHECK_STR_EQ(store_instance_id(s), id1);
    {
        struct store_job job;

        CHECK_EQ_INT(store_job_get(s, 1, &job, &e), ERR_OK); /* data kept */
        CHECK_STR_EQ(job.run, "r");
    }
    CHECK_EQ_INT(store_check(s, &e), ERR_OK);
    store_close(s);
    stu_remove(g_pg, path);
}

static void test_open_rejects_bad_path(void)
{
    struct store *s = NULL;
    struct err e = {0};

    CHECK_EQ_INT(store_open("/nonexistent-dir/x/farms.db", &s, &e), ERR_DB);
    CHECK(s == NULL);
    CHECK_EQ_INT(store_open("", &s, &e), ERR_INVAL);
}

/* --- Jobs ---------------------------------------------------------------------- */

static void test_submit_new_existing_conflict(void)
{
    struct store *s = open_mem();
    struct store_job a, b;
    struct err e = {0};
    char sha[THASH_HEX_LEN], hash[THASH_HEX_LEN];
    int existed = -1;

    CHECK_EQ_INT(submit(s, "gpt", 100, "bytes-A", "farms-llm", PARAMS_LLM, &a, &existed, &e),
                 ERR_OK);
    CHECK_EQ_INT(existed, 0);
    CHECK_EQ_INT(a.state, STORE_JOB_QUEUED);
    CHECK_STR_EQ(a.run, "gpt");
    CHECK_EQ_INT(a.step, 100);
    sha_of("bytes-A", sha);
    CHECK_STR_EQ(a.content_sha256, sha);
    CHECK_STR_EQ(a.format, "safetensors");
    CHECK_EQ_INT(a.size, 1100);
    CHECK_STR_EQ(a.preset, "farms-llm");
    CHECK_STR_EQ(a.params_json, PARAMS_LLM);
    CHECK_EQ_INT(store_settings_hash(PARAMS_LLM, hash, &e), ERR_OK);
    CHECK_STR_EQ(a.settings_hash, hash);
    CHECK(a.created > 1.6e9 && a.started == 0 && a.finished == 0);

    /* same run + step + content: the same job, nothing new */
    CHECK_EQ_INT(submit(s, "gpt", 100, "bytes-A", "farms-llm", PARAMS_LLM, &b, &existed, &e),
                 ERR_OK);
    CHECK_EQ_INT(existed, 1);
    CHECK_EQ_INT(b.id, a.id);

    /* same run + step, other content: conflict */
    CHECK_EQ_INT(submit(s, "gpt", 100, "bytes-B", "farms-llm", PARAMS_LLM, &b, &existed, &e),
                 ERR_CONFLICT);
    CHECK(strstr(e.msg, "step 100") != NULL);
    CHECK_EQ_INT(existed, 0);

    /* same checkpoint, other settings: a second job on the same checkpoint */
    CHECK_EQ_INT(submit(s, "gpt", 100, "bytes-A", "farms-cv", PARAMS_CV, &b, &existed, &e), ERR_OK);
    CHECK_EQ_INT(existed, 0);
    CHECK(b.id != a.id);
    CHECK_EQ_INT(b.checkpoint_id, a.checkpoint_id);

    /* the same step in another run is another checkpoint */
    CHECK_EQ_INT(submit(s, "bert", 100, "bytes-B", "farms-llm", PARAMS_LLM, &b, &existed, &e),
                 ERR_OK);
    CHECK(b.checkpoint_id != a.checkpoint_id);
    store_close(s);
}

/* A LoRA adapter job records its base and reads it back; the same
 * adapter checkpoint and settings merged onto another base (or none) is a
 * conflict, not the old job. */
static void test_submit_base_round_trip_and_conflict(void)
{
    struct store *s = open_mem();
    struct store_job a, b;
    struct store_job_base base = {.source = STORE_SOURCE_PATH, .step = 0};
    struct store_submit sub = {0};
    struct err e = {0};
    char sha[THASH_HEX_LEN];
    int existed = -1;

    sha_of("adapter-1", sha);
    sha_of("base-bytes", base.sha256);
    snprintf(base.path, sizeof base.path, "/models/base.safetensors");
    snprintf(base.format, sizeof base.format, "safetensors");
    snprintf(base.run, sizeof base.run, "base");
    sub = (struct store_submit){.run = "ft",
                                .step = 10,
                                .content_sha256 = sha,
                                .source = STORE_SOURCE_PATH,
                                .path = "/models/ft/step10",
                                .format = "peft",
                                .preset = "farms-llm",
                                .params_json = PARAMS_LLM,
                                .base = &base};
    CHECK_EQ_INT(store_job_submit(s, &sub, &a, &existed, &e), ERR_OK);
    CHECK_EQ_INT(existed, 0);
    CHECK_STR_EQ(a.base.sha256, base.sha256);
    CHECK_EQ_INT(a.base.source, STORE_SOURCE_PATH);
    CHECK_STR_EQ(a.base.path, "/models/base.safetensors");
    CHECK_STR_EQ(a.base.format, "safetensors");
    CHECK_STR_EQ(a.base.run, "base");
    CHECK_EQ_INT(a.base.step, 0);
    CHECK_EQ_INT(store_job_get(s, a.id, &b, &e), ERR_OK);
    CHECK_STR_EQ(b.base.sha256, base.sha256);
    CHECK_STR_EQ(b.base.path, "/models/base.safetensors");

    /* the same submission again: the same job */
    CHECK_EQ_INT(store_job_submit(s, &sub, &b, &existed, &e), ERR_OK);
    CHECK_EQ_INT(existed, 1);
    CHECK_EQ_INT(b.id, a.id);

    /* another base, or none: conflict, nothing changes */
    sha_of("other-base", base.sha256);
    CHECK_EQ_INT(store_job_submit(s, &sub, &b, &existed, &e), ERR_CONFLICT);
    CHECK(strstr(e.msg, "step 10") != NULL && strstr(e.msg, "merged onto the base") != NULL);
    sub.base = NULL;
    CHECK_EQ_INT(store_job_submit(s, &sub, &b, &existed, &e), ERR_CONFLICT);
    CHECK_EQ_INT(store_job_get(s, a.id, &b, &e), ERR_OK);
    CHECK(strcmp(b.base.sha256, a.base.sha256) == 0);

    /* a job without a base reads back with none */
    CHECK_EQ_INT(store_job_get(s, submit_ok(s, "plain", 1), &b, &e), ERR_OK);
    CHECK_STR_EQ(b.base.sha256, "");

    /* a base with a malformed identity is refused */
    base.sha256[0] = 'X';
    sub.base = &base;
    sub.step = 11;
    CHECK_EQ_INT(store_job_submit(s, &sub, &b, &existed, &e), ERR_INVAL);
    store_close(s);
}

static void test_submit_validates(void)
{
    struct store *s = open_mem();
    struct store_submit sub = {0};
    struct store_job job;
    struct err e = {0};
    char longname[STORE_RUN_MAX + 10];
    int existed;
    int64_t counts[STORE_JOB_STATE_COUNT];

    sub.run = "r";
    sub.step = 1;
    sub.content_sha256 = "ABC"; /* not 64 lower-case hex */
    sub.preset = "farms-llm";
    sub.params_json = PARAMS_LLM;
    CHECK_EQ_INT(store_job_submit(s, &sub, &job, &existed, &e), ERR_INVAL);
    sub.content_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    sub.step = -1;
    CHECK_EQ_INT(store_job_submit(s, &sub, &job, &existed, &e), ERR_INVAL);
    sub.step = 1;
    sub.source = STORE_SOURCE_PATH; /* path missing */
    CHECK_EQ_INT(store_job_submit(s, &sub, &job, &existed, &e), ERR_INVAL);
    sub.source = STORE_SOURCE_UPLOAD;
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    sub.run = longname;
    CHECK_EQ_INT(store_job_submit(s, &sub, &job, &existed, &e), ERR_INVAL);
    sub.run = "r";
    sub.preset = NULL;
    CHECK_EQ_INT(store_job_submit(s, &sub, &job, &existed, &e), ERR_INVAL);
    /* nothing was written */
    CHECK_EQ_INT(store_job_counts(s, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_JOB_QUEUED], 0);
    sub.preset = "farms-llm";
    sub.source = STORE_SOURCE_PATH;
    sub.path = "/data/ckpt/step1";
    CHECK_EQ_INT(store_job_submit(s, &sub, &job, &existed, &e), ERR_OK);
    CHECK_EQ_INT(job.source, STORE_SOURCE_PATH);
    CHECK_STR_EQ(job.path, "/data/ckpt/step1");
    CHECK_STR_EQ(job.format, "");
    store_close(s);
}

/* The database holds each job state and checkpoint source as a fixed
 * number (existing databases depend on them): queued 0, running 1,
 * succeeded 2, failed 3, canceled 4; upload 0, path 1. */
static void test_states_are_stored_as_fixed_numbers(void)
{
    static const char *const names[] = {"queued", "running", "succeeded", "failed", "canceled"};
    char path[512], sql[128];
    struct store *s = NULL;
    struct store_job job;
    struct err e = {0};
    int64_t ids[5];
    int claimed = 0, i;

    stu_fresh(g_pg, "test_store", "states", path, sizeof path);
    ERR_ASSERT(store_open(path, &s, &e) == ERR_OK);
    for (i = 0; i < 5; i++)
        ids[i] = submit_ok(s, "states", i);
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_job_finish(s, ids[0], STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_job_finish(s, ids[1], STORE_JOB_FAILED, "numeric", "x", &e), ERR_OK);
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(job.id, ids[2]);
    CHECK_EQ_INT(store_job_cancel(s, ids[3], NULL, &e), ERR_OK);
    for (i = 0; i < 5; i++) {
        static const int64_t stored[] = {2, 3, 1, 4, 0}; /* ids[i]'s state as stored */

        snprintf(sql, sizeof sql, "SELECT state FROM jobs WHERE id = %" PRId64, ids[i]);
        CHECK_EQ_INT(stu_raw_int(g_pg, path, sql), stored[i]);
        CHECK_STR_EQ(store_job_state_name((enum store_job_state)i), names[i]);
    }
    CHECK_STR_EQ(store_job_state_name(STORE_JOB_STATE_COUNT), "?");
    CHECK_EQ_INT(stu_raw_int(g_pg, path, "SELECT count(*) FROM checkpoints WHERE source = 0"), 5);
    CHECK_EQ_INT(STORE_SOURCE_PATH, 1);
    store_close(s);
    stu_remove(g_pg, path);
}

static void test_claim_fifo(void)
{
    struct store *s = open_mem();
    struct store_job job;
    struct err e = {0};
    int64_t ids[3];
    int claimed = -1, i;

    ids[0] = submit_ok(s, "r", 30); /* submission order, not step order */
    ids[1] = submit_ok(s, "r", 10);
    ids[2] = submit_ok(s, "q", 20);
    for (i = 0; i < 3; i++) {
        CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
        CHECK_EQ_INT(claimed, 1);
        CHECK_EQ_INT(job.id, ids[i]);
        CHECK_EQ_INT(job.state, STORE_JOB_RUNNING);
        CHECK(job.started >= job.created);
    }
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 0);
    store_close(s);
}

/* PostgreSQL: a claim passes over a job whose row another session holds
 * locked (the driver's claim lock, FOR UPDATE SKIP LOCKED) instead of
 * waiting for it; without it the claim would wait, here at most the
 * connection's lock_timeout, and fail. */
static void test_claim_skips_locked_rows(void)
{
    char url[600], sql[96];
    struct store *s = NULL;
    struct store_job job;
    struct err e = {0};
    PGconn *other = NULL;
    int64_t ids[2];
    int claimed = 0;

    if (g_pg == NULL)
        return;
    ERR_ASSERT(pgu_reset(g_pg) == 0);
    snprintf(url, sizeof url, "%s%coptions=-c%%20lock_timeout%%3D5000", g_pg,
             strchr(g_pg, '?') != NULL ? '&' : '?');
    ERR_ASSERT(store_open(url, &s, &e) == ERR_OK);
    ids[0] = submit_ok(s, "locked", 1);
    ids[1] = submit_ok(s, "locked", 2);
    other = PQconnectdb(g_pg);
    snprintf(sql, sizeof sql, "BEGIN; SELECT id FROM jobs WHERE id = %" PRId64 " FOR UPDATE",
             ids[0]);
    PQclear(PQexec(other, sql));
    CHECK_EQ_INT(PQtransactionStatus(other), PQTRANS_INTRANS);
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(job.id, ids[1]);
    PQclear(PQexec(other, "ROLLBACK"));
    PQfinish(other);
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(job.id, ids[0]);
    store_close(s);
}

#define CLAIM_JOBS 40

struct claimer {
    const char *path;
    int64_t ids[CLAIM_JOBS];
    int n;
    enum err_code rc;
};

static void *claim_all(void *arg)
{
    struct claimer *c = arg;
    struct store *s = NULL;
    struct store_job job;
    struct err e = {0};
    int claimed = 1;

    c->rc = store_open(c->path, &s, &e);
    while (c->rc == ERR_OK && claimed) {
        c->rc = store_job_claim(s, &job, &claimed, &e);
        if (c->rc == ERR_OK && claimed) {
            c->ids[c->n++] = job.id;
            c->rc = store_job_finish(s, job.id, STORE_JOB_SUCCEEDED, NULL, NULL, &e);
        }
    }
    store_close(s);
    return NULL;
}

static void test_claim_exactly_once_two_threads(void)
{
    char path[256];
    struct claimer a = {0}, b = {0};
    struct store *s = NULL;
    struct err e = {0};
    pthread_t ta, tb;
    int seen[CLAIM_JOBS + 1] = {0};
    int64_t counts[STORE_JOB_STATE_COUNT];
    int i, dup = 0, missing = 0;

    stu_fresh(g_pg, "test_store", "claim", path, sizeof path);
    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    for (i = 0; i < CLAIM_JOBS; i++)
        CHECK_EQ_INT(submit_ok(s, "r", i), i + 1);
    a.path = b.path = path;
    pthread_create(&ta, NULL, claim_all, &a);
    pthread_create(&tb, NULL, claim_all, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_EQ_INT(a.rc, ERR_OK);
    CHECK_EQ_INT(b.rc, ERR_OK);
    CHECK_EQ_INT(a.n + b.n, CLAIM_JOBS);
    for (i = 0; i < a.n; i++)
        dup += seen[a.ids[i]]++ > 0;
    for (i = 0; i < b.n; i++)
        dup += seen[b.ids[i]]++ > 0;
    for (i = 1; i <= CLAIM_JOBS; i++)
        missing += seen[i] == 0;
    CHECK_EQ_INT(dup, 0);
    CHECK_EQ_INT(missing, 0);
    /* each thread's claims are in FIFO order */
    for (i = 1; i < a.n; i++)
        CHECK(a.ids[i] > a.ids[i - 1]);
    CHECK_EQ_INT(store_job_counts(s, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_JOB_SUCCEEDED], CLAIM_JOBS);
    CHECK_EQ_INT(counts[STORE_JOB_QUEUED], 0);
    CHECK_EQ_INT(store_check(s, &e), ERR_OK);
    store_close(s);
    stu_remove(g_pg, path);
}

static void test_cancel(void)
{
    struct store *s = open_mem();
    struct store_job job;
    struct err e = {0};
    enum store_job_state st;
    int64_t queued = submit_ok(s, "r", 1), running = submit_ok(s, "r", 2);
    int64_t done = submit_ok(s, "r", 3);
    int claimed;

    /* queued -> canceled; the queue skips it */
    CHECK_EQ_INT(store_job_cancel(s, queued, &job, &e), ERR_OK);
    CHECK_EQ_INT(job.state, STORE_JOB_CANCELED);
    CHECK(job.finished > 0);
    CHECK_EQ_INT(store_job_cancel(s, queued, NULL, &e), ERR_OK); /* idempotent */
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(job.id, running);
    /* running -> canceled: the worker sees it between tensors */
    CHECK_EQ_INT(store_job_progress(s, running, 1, 10, 0, &e), ERR_OK);
    CHECK_EQ_INT(store_job_cancel(s, running, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_job_state(s, running, &st, &e), ERR_OK);
    CHECK_EQ_INT(st, STORE_JOB_CANCELED);
    CHECK_EQ_INT(store_job_progress(s, running, 2, 10, 0, &e), ERR_CANCELED);
    CHECK_EQ_INT(store_job_finish(s, running, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_CANCELED);
    CHECK_EQ_INT(store_job_get(s, running, &job, &e), ERR_OK);
    CHECK_EQ_INT(job.state, STORE_JOB_CANCELED);
    CHECK_EQ_INT(job.n_done, 1);
    /* finished jobs cannot be canceled */
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(job.id, done);
    CHECK_EQ_INT(store_job_finish(s, done, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_job_cancel(s, done, NULL, &e), ERR_CONFLICT);
    CHECK_EQ_INT(store_job_cancel(s, 999, NULL, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_job_state(s, 999, &st, &e), ERR_NOTFOUND);
    store_close(s);
}

static void test_finish_records_error_and_timings(void)
{
    struct store *s = open_mem();
    struct store_job job;
    struct err e = {0};
    int64_t id = submit_ok(s, "r", 7), counts[STORE_JOB_STATE_COUNT];
    int claimed;

    CHECK_EQ_INT(store_job_finish(s, id, STORE_JOB_FAILED, "x", "y", &e), ERR_CONFLICT);
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_job_progress(s, id, 3, 12, 2, &e), ERR_OK);
    CHECK_EQ_INT(store_job_finish(s, id, STORE_JOB_QUEUED, NULL, NULL, &e), ERR_INVAL);
    CHECK_EQ_INT(store_job_finish(s, id, STORE_JOB_FAILED, "truncated",
                                  "tensor 'w1': data past end of file", &e),
                 ERR_OK);
    CHECK_EQ_INT(store_job_get(s, id, &job, &e), ERR_OK);
    CHECK_EQ_INT(job.state, STORE_JOB_FAILED);
    CHECK_STR_EQ(job.error_category, "truncated");
    CHECK_STR_EQ(job.error_message, "tensor 'w1': data past end of file");
    CHECK_EQ_INT(job.n_done, 3);
    CHECK_EQ_INT(job.n_total, 12);
    CHECK_EQ_INT(job.n_cache_hits, 2);
    CHECK(job.created > 0 && job.started >= job.created && job.finished >= job.started);
    CHECK_STR_EQ(store_job_state_name(job.state), "failed");
    CHECK_EQ_INT(store_job_counts(s, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_JOB_FAILED], 1);
    CHECK_EQ_INT(counts[STORE_JOB_RUNNING], 0);
    store_close(s);
}

static void test_requeue_after_crash(void)
{
    char path[256];
    struct store *s = NULL;
    struct store_job job;
    struct err e = {0};
    int64_t n = -1, a, b;
    int claimed;

    stu_fresh(g_pg, "test_store", "crash", path, sizeof path);
    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    a = submit_ok(s, "r", 1);
    b = submit_ok(s, "r", 2);
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_job_progress(s, a, 5, 9, 1, &e), ERR_OK);
    store_close(s); /* "crash": job a left running */

    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    CHECK_EQ_INT(store_jobs_requeue(s, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(store_job_get(s, a, &job, &e), ERR_OK);
    CHECK_EQ_INT(job.state, STORE_JOB_QUEUED);
    CHECK_EQ_INT(job.n_done, 0);
    CHECK(job.started == 0);
    /* it runs again, before the younger job */
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(job.id, a);
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(job.id, b);
    CHECK_EQ_INT(store_jobs_requeue(s, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 2);
    store_close(s);
    stu_remove(g_pg, path);
}

/* Two workers with leases on one database: a claim is not taken while its
 * lease runs; once it lapses (the worker died) the other worker claims it,
 * and the first one's late progress and finish are refused. At shutdown a
 * worker gives back only its own running jobs. */
static void test_lease_expires_and_is_reclaimed(void)
{
    char path[256];
    struct store *a = NULL, *b = NULL;
    struct store_job job, got;
    struct err e = {0};
    int64_t j1, j2, n = -1;
    int claimed = 0;

    stu_fresh(g_pg, "test_store", "lease", path, sizeof path);
    CHECK_EQ_INT(store_open(path, &a, &e), ERR_OK);
    CHECK_EQ_INT(store_open(path, &b, &e), ERR_OK);
    CHECK_EQ_INT(store_set_lease(a, "replica-a", 1.0, &e), ERR_OK);
    CHECK_EQ_INT(store_set_lease(b, "replica-b", 1.0, &e), ERR_OK);
    CHECK_EQ_INT(store_set_lease(b, "", 1, &e), ERR_INVAL);
    j1 = submit_ok(a, "r", 1);
    CHECK_EQ_INT(store_job_claim(a, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(job.id, j1);
    CHECK_STR_EQ(job.claimed_by, "replica-a");
    CHECK(job.lease_until > job.started);
    CHECK_EQ_INT(store_job_claim(b, &got, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 0); /* the lease runs */
    usleep(500 * 1000);
    CHECK_EQ_INT(store_job_progress(a, j1, 1, 3, 0, &e), ERR_OK); /* renewed */
    usleep(600 * 1000);
    CHECK_EQ_INT(store_job_claim(b, &got, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 0); /* 1.1 s after the claim, 0.6 s after the renewal */
    usleep(1200 * 1000);      /* replica a "dies" */
    CHECK_EQ_INT(store_job_claim(b, &got, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(got.id, j1);
    CHECK_STR_EQ(got.claimed_by, "replica-b");
    CHECK_EQ_INT(got.n_done, 0);
    CHECK_EQ_INT(store_job_progress(a, j1, 2, 3, 0, &e), ERR_CANCELED);
    CHECK(strstr(e.msg, "another worker") != NULL);
    CHECK_EQ_INT(store_job_finish(a, j1, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_CANCELED);
    CHECK_EQ_INT(store_job_progress(b, j1, 3, 3, 1, &e), ERR_OK);
    CHECK_EQ_INT(store_job_finish(b, j1, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
    /* shutdown of b gives back b's running job, not a's */
    j2 = submit_ok(a, "r", 2);
    submit_ok(a, "r", 3);
    CHECK_EQ_INT(store_job_claim(b, &got, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(got.id, j2);
    CHECK_EQ_INT(store_job_claim(a, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_jobs_release(b, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(store_job_get(a, j2, &got, &e), ERR_OK);
    CHECK_EQ_INT(got.state, STORE_JOB_QUEUED);
    CHECK_STR_EQ(got.claimed_by, "");
    CHECK_EQ_INT(store_job_get(a, job.id, &got, &e), ERR_OK);
    CHECK_EQ_INT(got.state, STORE_JOB_RUNNING);
    store_close(a);
    store_close(b);
    stu_remove(g_pg, path);
}

/* --- Result cache ---------------------------------------------------------------- */

static struct farms_result result_ok(double alpha)
{
    struct farms_result r;

    memset(&r, 0, sizeof r);
    r.status = FARMS_STATUS_OK;
    r.warning = alpha > 6 ? FARMS_WARNING_UNDER_TRAINED : FARMS_WARNING_NONE;
    r.alpha = alpha;
    r.D = 0.04;
    r.xmin = 1.25;
    r.xmin_index = 700;
    r.n_tail = 300;
    r.n_fitted = 1000;
    r.spectral_norm = 9.5;
    r.norm = 120.0;
    r.alpha_hat = alpha * log10(9.5);
    r.stable_rank = 120.0 / 9.5;
    r.norm_stable_rank = 0.12;
    r.log_norm = log10(120.0);
    r.log_spectral_norm = log10(9.5);
    r.matrix_rank = 64;
    r.entropy = 0.91;
    r.num_eigs = 1000;
    r.windows = 10;
    return r;
}

/* A result whose k-th field of FARMS_RESULT_FIELDS holds 100.5 + k (an
 * integer field 100 + k): every field a value of its own. */
static struct farms_result result_distinct(void)
{
    struct farms_result r = result_ok(3.5);
    int k = 0;

#define SET_FIELD(member, NAME, type, ...) r.member = (FARMS_FIELD_CTYPE_##type)(100.5 + k++);
    FARMS_RESULT_FIELDS(SET_FIELD)
#undef SET_FIELD
    return r;
}

/* Every field of FARMS_RESULT_FIELDS that `got` holds equals `want`'s. */
static void check_fields_equal(const struct farms_result *got, const struct farms_result *want)
{
#define CHECK_FIELD(member, NAME, type, ...)                                           \
    if (!(got->member == want->member)) {                                              \
        fprintf(stderr, "field %s: %.17g, want %.17g\n", #member, (double)got->member, \
                (double)want->member);                                                 \
        CHECK(!"a result field round-trips");                                          \
    }
    FARMS_RESULT_FIELDS(CHECK_FIELD)
#undef CHECK_FIELD
}

/* The columns, binds and reads made from FARMS_RESULT_FIELDS line up: each
 * field, with a value of its own, comes back from the cache, a layer row and
 * a history point in its own place (a column read off by one fails). */
static void test_result_fields_round_trip(void)
{
    struct store *s = open_mem();
    char tsha[THASH_HEX_LEN], llm[THASH_HEX_LEN], n0[] = "fc1.weight";
    struct store_result_key k = {0};
    struct farms_result r = result_distinct(), got;
    struct store_layer row;
    struct store_layer_list *l = NULL;
    struct store_history *h = NULL;
    struct store_job job;
    struct err e = {0};
    int hit = 0, claimed = 0;

    sha_of("tensor fields", tsha);
    CHECK_EQ_INT(store_settings_put(s, "farms-llm", PARAMS_LLM, llm, &e), ERR_OK);
    k.tensor_sha256 = tsha;
    k.analysis_key = "linear F32 8x8";
    k.settings_hash = llm;
    k.engine_version = "farmsd 0.1 / fit 1";
    CHECK_EQ_INT(store_result_put(s, &k, &r, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_result_get(s, &k, &got, NULL, &hit, &e), ERR_OK);
    CHECK_EQ_INT(hit, 1);
    check_fields_equal(&got, &r);
    CHECK_NEAR(got.xmin, r.xmin, 0); /* the x_min column */

    submit_ok(s, "fields", 3);
    ERR_ASSERT(store_job_claim(s, &job, &claimed, NULL) == ERR_OK && claimed);
    memset(&row, 0, sizeof row);
    row.name = n0;
    row.kind = LAYER_KIND_LINEAR;
    row.dtype = DTYPE_F32;
    row.ndim = 2;
    row.shape[0] = row.shape[1] = 8;
    row.r = r;
    CHECK_EQ_INT(store_layers_put(s, job.checkpoint_id, job.settings_hash, &row, 1, &e), ERR_OK);
    CHECK_EQ_INT(store_layer_get(s, "fields", "fc1.weight", 3, NULL, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n, 1);
    if (l->n == 1)
        check_fields_equal(&l->items[0].r, &r);
    store_layer_list_free(l);

    CHECK_EQ_INT(store_layer_history(s,
                                     &(struct store_history_query){.run = "fields",
                                                                   .layer = "fc1.weight",
                                                                   .start_step = STORE_STEP_MIN,
                                                                   .end_step = STORE_STEP_MAX},
                                     &h, &e),
                 ERR_OK);
    CHECK_EQ_INT(h->n, 1);
    for (int m = 0; h->n == 1 && m < STORE_METRIC_COUNT; m++)
        CHECK_NEAR(h->points[0].v[m], store_metric_value(&r, (enum store_metric)m), 0);
    if (h->n == 1) {
        CHECK_NEAR(h->points[0].v[STORE_METRIC_XMIN], r.xmin, 0);
        CHECK_NEAR(h->points[0].v[STORE_METRIC_ENTROPY], r.entropy, 0);
    }
    store_history_free(h);
    store_close(s);
}

/* The history metrics are the HISTORY fields of the list, by name, in its
 * order; the message list names each once. */
static void test_metric_names(void)
{
    char names[] = STORE_METRIC_NAMES;

    CHECK_EQ_INT(STORE_METRIC_COUNT, 24);
    CHECK_STR_EQ(store_metric_name(STORE_METRIC_ALPHA), "alpha");
    CHECK_STR_EQ(store_metric_name(STORE_METRIC_XMIN), "xmin");
    CHECK_STR_EQ(store_metric_name(STORE_METRIC_ENTROPY), "entropy");
    CHECK_STR_EQ(store_metric_name(STORE_METRIC_COUNT), "?");
    CHECK_EQ_INT(store_metric_from_name("x_min"), -1);
    CHECK_EQ_INT(store_metric_from_name("xmin_index"), -1); /* stored, not a metric */
    CHECK(strncmp(names, "alpha, D, xmin, n_tail, num_eigs, windows, spectral_norm, ", 58) == 0);
    CHECK(strstr(names, "log_spectral_norm, entropy, xmax, ") != NULL);
}

static struct farms_result result_skipped(void)
{
    struct farms_result r;

    memset(&r, 0, sizeof r);
    r.status = FARMS_STATUS_SKIPPED;
    snprintf(r.reason, sizeof r.reason, "too few eigenvalues (3 < 5)");
    r.alpha = r.D = r.xmin = r.spectral_norm = r.norm = r.alpha_hat = NAN;
    r.stable_rank = r.norm_stable_rank = r.log_norm = r.log_spectral_norm = r.entropy = NAN;
    r.num_eigs = 3;
    return r;
}

static void test_cache_put_get_ignore(void)
{
    struct store *s = open_mem();
    char tsha[THASH_HEX_LEN], llm[THASH_HEX_LEN], cv[THASH_HEX_LEN], other[THASH_HEX_LEN];
    struct store_result_key k = {0};
    struct farms_result r = result_ok(3.5), got, sk = result_skipped();
    struct store_result_list *l = NULL;
    struct err e = {0};
    int hit = -1;

    sha_of("tensor fc1", tsha);
    CHECK_EQ_INT(store_settings_put(s, "farms-llm", PARAMS_LLM, llm, &e), ERR_OK);
    CHECK_EQ_INT(store_settings_put(s, "farms-cv", PARAMS_CV, cv, &e), ERR_OK);
    k.tensor_sha256 = tsha;
    k.analysis_key = "linear F32 512x64";
    k.settings_hash = llm;
    k.engine_version = "farmsd 0.1 / fit 1";
    CHECK_EQ_INT(store_result_get(s, &k, &got, NULL, &hit, &e), ERR_OK);
    CHECK_EQ_INT(hit, 0);
    CHECK_EQ_INT(store_result_put(s, &k, &r, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_result_get(s, &k, &got, NULL, &hit, &e), ERR_OK);
    CHECK_EQ_INT(hit, 1);
    CHECK_EQ_INT(got.status, FARMS_STATUS_OK);
    CHECK_NEAR(got.alpha, 3.5, 0);
    CHECK_NEAR(got.alpha_hat, r.alpha_hat, 0);
    CHECK_NEAR(got.log_norm, r.log_norm, 0);
    CHECK_EQ_INT(got.n_tail, 300);
    CHECK_EQ_INT(got.xmin_index, 700);
    CHECK_EQ_INT(got.matrix_rank, 64);
    CHECK_EQ_INT(got.windows, 10);
    /* a racing second put is ignored: the first result stays */
    r.alpha = 4.0;
    CHECK_EQ_INT(store_result_put(s, &k, &r, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_result_get(s, &k, &got, NULL, &hit, &e), ERR_OK);
    CHECK_NEAR(got.alpha, 3.5, 0);
    /* every part of the key matters */
    k.engine_version = "farmsd 0.2 / fit 2";
    CHECK_EQ_INT(store_result_get(s, &k, &got, NULL, &hit, &e), ERR_OK);
    CHECK_EQ_INT(hit, 0);
    k.engine_version = "farmsd 0.1 / fit 1";
    k.analysis_key = "linear F32 64x512";
    CHECK_EQ_INT(store_result_get(s, &k, &got, NULL, &hit, &e), ERR_OK);
    CHECK_EQ_INT(hit, 0);
    /* a skipped result under other settings: NaN round-trips, reason kept */
    k.analysis_key = "linear F32 512x64";
    k.settings_hash = cv;
    CHECK_EQ_INT(store_result_put(s, &k, &sk, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_result_get(s, &k, &got, NULL, &hit, &e), ERR_OK);
    CHECK_EQ_INT(got.status, FARMS_STATUS_SKIPPED);
    CHECK_STR_EQ(got.reason, "too few eigenvalues (3 < 5)");
    CHECK(isnan(got.alpha) && isnan(got.entropy));
    CHECK_EQ_INT(got.num_eigs, 3);
    /* the team-wide view of the tensor */
    CHECK_EQ_INT(store_results_for_tensor(s, tsha, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n, 2);
    if (l->n == 2) {
        int i_llm = strcmp(l->items[0].settings_hash, llm) == 0 ? 0 : 1;

        CHECK_STR_EQ(l->items[i_llm].preset, "farms-llm");
        CHECK_STR_EQ(l->items[i_llm].params_json, PARAMS_LLM);
        CHECK_NEAR(l->items[i_llm].r.alpha, 3.5, 0);
        CHECK_STR_EQ(l->items[1 - i_llm].preset, "farms-cv");
        CHECK_EQ_INT(l->items[1 - i_llm].r.status, FARMS_STATUS_SKIPPED);
        CHECK(strcmp(l->items[0].settings_hash, l->items[1].settings_hash) < 0);
    }
    store_result_list_free(l);
    sha_of("never seen", other);
    CHECK_EQ_INT(store_results_for_tensor(s, other, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n, 0);
    store_result_list_free(l);
    k.tensor_sha256 = "nothex";
    CHECK_EQ_INT(store_result_put(s, &k, &r, NULL, &e), ERR_INVAL);
    store_close(s);
}

/* --- Layer rows and reads ------------------------------------------------------- */

static const char *const LAYER_NAMES[] = {"h.0.attn.q.weight", "h.0.mlp.fc.weight",
                                          "h.1.attn.q.weight"};

/* alpha of layer i at `step` in the fixture run */
static double fixture_alpha(int i, int64_t step)
{
    return 2.0 + i + (double)step / 1000.0;
}

/* Run "gpt": steps 0, 100, ..., 900, each with layers 0 and 1, and layer 2
 * up to step 500; layer 1 is skipped at step 300. All jobs succeeded. */
static struct store *layer_fixture(void)
{
    struct store *s = open_mem();
    struct err e = {0};
    int64_t step;

    for (step = 0; step <= 900; step += 100) {
        struct store_layer rows[3];
        struct store_job job;
        int claimed, i, n = step <= 500 ? 3 : 2;

        submit_ok(s, "gpt", step);
        ERR_ASSERT(store_job_claim(s, &job, &claimed, NULL) == ERR_OK && claimed);
        memset(rows, 0, sizeof rows);
        for (i = 0; i < n; i++) {
            char content[64];

            rows[i].name = (char *)(uintptr_t)LAYER_NAMES[i];
            rows[i].kind = LAYER_KIND_LINEAR;
            rows[i].dtype = i == 2 ? DTYPE_Q4_K : DTYPE_F32; /* a GGUF type reads back too */
            rows[i].ndim = 2;
            rows[i].shape[0] = 512;
            rows[i].shape[1] = 64 * (int64_t)(i + 1);
            snprintf(content, sizeof content, "%s@%" PRId64, LAYER_NAMES[i], step);
            sha_of(content, rows[i].tensor_sha256);
            rows[i].r = result_ok(fixture_alpha(i, step));
        }
        if (step == 300)
            rows[1].r = result_skipped();
        CHECK_EQ_INT(store_layers_put(s, job.checkpoint_id, job.settings_hash, rows, (size_t)n, &e),
                     ERR_OK);
        CHECK_EQ_INT(store_job_finish(s, job.id, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
    }
    return s;
}

static void test_layer_reads(void)
{
    struct store *s = layer_fixture();
    struct store_layer_list *l = NULL;
    char llm[THASH_HEX_LEN], cv[THASH_HEX_LEN], sha[THASH_HEX_LEN];
    struct err e = {0};

    store_settings_hash(PARAMS_LLM, llm, NULL);
    store_settings_hash(PARAMS_CV, cv, NULL);
    /* one checkpoint, canonical order, settings given or defaulted */
    CHECK_EQ_INT(store_layers_get(s, "gpt", 300, NULL, &l, &e), ERR_OK);
    CHECK_STR_EQ(l->settings_hash, llm);
    CHECK_EQ_INT(l->n, 3);
    if (l->n == 3) {
        CHECK_STR_EQ(l->items[0].name, LAYER_NAMES[0]);
        CHECK_STR_EQ(l->items[2].name, LAYER_NAMES[2]);
        CHECK_EQ_INT(l->items[1].kind, LAYER_KIND_LINEAR);
        CHECK_EQ_INT(l->items[1].dtype, DTYPE_F32);
        CHECK_EQ_INT(l->items[2].dtype, DTYPE_Q4_K);
        CHECK_EQ_INT(l->items[1].ndim, 2);
        CHECK_EQ_INT(l->items[1].shape[1], 128);
        CHECK_EQ_INT(l->items[1].step, 300);
        sha_of("h.0.mlp.fc.weight@300", sha);
        CHECK_STR_EQ(l->items[1].tensor_sha256, sha);
        CHECK_EQ_INT(l->items[1].r.status, FARMS_STATUS_SKIPPED);
        CHECK(isnan(l->items[1].r.alpha));
        CHECK_NEAR(l->items[2].r.alpha, fixture_alpha(2, 300), 0);
    }
    store_layer_list_free(l);
    CHECK_EQ_INT(store_layers_get(s, "gpt", 300, llm, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n, 3);
    store_layer_list_free(l);
    CHECK_EQ_INT(store_layers_get(s, "gpt", 300, cv, &l, &e), ERR_OK); /* no rows */
    CHECK_EQ_INT(l->n, 0);
    store_layer_list_free(l);
    CHECK_EQ_INT(store_layers_get(s, "gpt", 350, NULL, &l, &e), ERR_NOTFOUND);
    CHECK(l == NULL);
    CHECK_EQ_INT(store_layers_get(s, "nope", 300, NULL, &l, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_layers_get(s, "gpt", 300, "bad", &l, &e), ERR_INVAL);

    /* latest per layer: layer 2 stopped at step 500 */
    CHECK_EQ_INT(store_layers_latest(s, "gpt", NULL, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n, 3);
    CHECK_EQ_INT(l->step, 900);
    if (l->n == 3) {
        CHECK_STR_EQ(l->items[0].name, LAYER_NAMES[0]);
        CHECK_EQ_INT(l->items[0].step, 900);
        CHECK_NEAR(l->items[0].r.alpha, fixture_alpha(0, 900), 0);
        CHECK_EQ_INT(l->items[1].step, 900);
        CHECK_STR_EQ(l->items[2].name, LAYER_NAMES[2]);
        CHECK_EQ_INT(l->items[2].step, 500);
        CHECK_NEAR(l->items[2].r.alpha, fixture_alpha(2, 500), 0);
    }
    store_layer_list_free(l);
    CHECK_EQ_INT(store_check(s, &e), ERR_OK);
    store_close(s);
}

static void test_history_pages(void)
{
    struct store *s = layer_fixture();
    struct store_history *h = NULL;
    char token[STORE_TOKEN_MAX] = "";
    int64_t seen[16];
    struct err e = {0};
    int n_seen = 0, pages = 0, i;

    /* window [200, 700] in pages of 2: 200 300 | 400 500 | 600 700 */
    do {
        CHECK_EQ_INT(store_layer_history(s,
                                         &(struct store_history_query){.run = "gpt",
                                                                       .layer = LAYER_NAMES[1],
                                                                       .start_step = 200,
                                                                       .end_step = 700,
                                                                       .page_size = 2,
                                                                       .page_token = token},
                                         &h, &e),
                     ERR_OK);
        if (h == NULL)
            break;
        for (i = 0; i < (int)h->n && n_seen < 16; i++) {
            const struct store_point *p = &h->points[i];

            seen[n_seen++] = p->step;
            if (p->step == 300) {
                CHECK_EQ_INT(p->status, FARMS_STATUS_SKIPPED);
                CHECK(isnan(p->v[STORE_METRIC_ALPHA]));
            } else {
                CHECK_NEAR(p->v[STORE_METRIC_ALPHA], fixture_alpha(1, p->step), 0);
                CHECK_NEAR(p->v[STORE_METRIC_D], 0.04, 0);
                CHECK_NEAR(p->v[STORE_METRIC_N_TAIL], 300, 0);
            }
        }
        snprintf(token, sizeof token, "%s", h->next_token);
        pages++;
        store_history_free(h);
        h = NULL;
    } while (token[0] != '\0' && pages < 10);
    CHECK_EQ_INT(pages, 3);
    CHECK_EQ_INT(n_seen, 6);
    for (i = 0; i < n_seen; i++)
        CHECK_EQ_INT(seen[i], 200 + 100 * i);

    /* whole range in one page; a layer that stopped early */
    CHECK_EQ_INT(store_layer_history(s,
                                     &(struct store_history_query){.run = "gpt",
                                                                   .layer = LAYER_NAMES[2],
                                                                   .start_step = STORE_STEP_MIN,
                                                                   .end_step = STORE_STEP_MAX},
                                     &h, &e),
                 ERR_OK);
    CHECK_EQ_INT(h->n, 6);
    CHECK_STR_EQ(h->next_token, "");
    store_history_free(h);
    CHECK_EQ_INT(store_layer_history(s,
                                     &(struct store_history_query){
                                         .run = "gpt", .layer = "no.such.layer", .end_step = 1000},
                                     &h, &e),
                 ERR_OK);
    CHECK_EQ_INT(h->n, 0);
    store_history_free(h);
    CHECK_EQ_INT(store_layer_history(s,
                                     &(struct store_history_query){.run = "gpt",
                                                                   .layer = LAYER_NAMES[0],
                                                                   .end_step = 1000,
                                                                   .page_token = "12x"},
                                     &h, &e),
                 ERR_INVAL);
    store_close(s);
}

static void test_heatmap_pages(void)
{
    struct store *s = layer_fixture();
    struct store_heatmap *h = NULL;
    char token[STORE_TOKEN_MAX] = "";
    int cover[10][3] = {{0}};
    struct err e = {0};
    int pages = 0, i, once = 1, n_cells = 0;
    size_t c;

    /* pages of 3 steps: 0-200 | 300-500 | 600-800 | 900 */
    do {
        CHECK_EQ_INT(store_run_history(s,
                                       &(struct store_history_query){.run = "gpt",
                                                                     .metric = STORE_METRIC_ALPHA,
                                                                     .start_step = STORE_STEP_MIN,
                                                                     .end_step = STORE_STEP_MAX,
                                                                     .page_size = 3,
                                                                     .page_token = token},
                                       &h, &e),
                     ERR_OK);
        if (h == NULL)
            break;
        CHECK_EQ_INT(h->n_steps, pages < 3 ? 3 : 1);
        for (c = 0; c < h->n_cells; c++) {
            const struct store_cell *cell = &h->cells[c];
            int li = -1;

            for (i = 0; i < 3; i++)
                if (strcmp(h->layers[cell->layer], LAYER_NAMES[i]) == 0)
                    li = i;
            CHECK(li >= 0 && cell->step % 100 == 0 && cell->step <= 900);
            if (li < 0 || cell->step % 100 != 0 || cell->step > 900)
                continue;
            cover[cell->step / 100][li]++;
            n_cells++;
            if (cell->status == FARMS_STATUS_OK)
                CHECK_NEAR(cell->value, fixture_alpha(li, cell->step), 0);
            else
                CHECK(cell->step == 300 && li == 1 && isnan(cell->value));
        }
        snprintf(token, sizeof token, "%s", h->next_token);
        pages++;
        store_heatmap_free(h);
        h = NULL;
    } while (token[0] != '\0' && pages < 10);
    CHECK_EQ_INT(pages, 4);
    CHECK_EQ_INT(n_cells, 10 * 2 + 6);
    for (i = 0; i < 10; i++) {
        once = once && cover[i][0] == 1 && cover[i][1] == 1 && cover[i][2] == (i <= 5);
    }
    CHECK(once);
    /* a step window and another metric */
    CHECK_EQ_INT(store_run_history(s,
                                   &(struct store_history_query){.run = "gpt",
                                                                 .metric = STORE_METRIC_D,
                                                                 .start_step = 600,
                                                                 .end_step = 700},
                                   &h, &e),
                 ERR_OK);
    CHECK_EQ_INT(h->n_steps, 2);
    CHECK_EQ_INT(h->n_cells, 4);
    CHECK_EQ_INT(h->n_layers, 2);
    CHECK_NEAR(h->cells[0].value, 0.04, 0);
    store_heatmap_free(h);
    CHECK_EQ_INT(store_run_history(s,
                                   &(struct store_history_query){
                                       .run = "gpt", .metric = STORE_METRIC_COUNT, .end_step = 1},
                                   &h, &e),
                 ERR_INVAL);
    CHECK_EQ_INT(store_metric_from_name("log_spectral_norm"), STORE_METRIC_LOG_SPECTRAL_NORM);
    CHECK_EQ_INT(store_metric_from_name("Alpha"), -1);
    CHECK_STR_EQ(store_metric_name(STORE_METRIC_D), "D");
    store_close(s);
}

/* Pages hold the rows that exist, however large the page size asked for:
 * 40 checkpoints (and jobs) at the largest page size come in one page, in
 * order, and a page of 20 stops at 20 with a token. */
static void test_large_page_sizes_hold_the_rows(void)
{
    struct store *s = open_mem();
    struct store_checkpoint_page *cp = NULL;
    struct store_job_page *jp = NULL;
    struct store_run_page *rp = NULL;
    struct store_job_filter any = {-1, NULL};
    struct err e = {0};
    int64_t ids[40];
    int i, ok = 1;

    for (i = 0; i < 40; i++)
        ids[i] = submit_ok(s, "wide", 10 * (int64_t)i);
    CHECK_EQ_INT(store_checkpoints_list(s, "wide", STORE_PAGE_MAX, NULL, &cp, &e), ERR_OK);
    CHECK_EQ_INT(cp->n, 40);
    for (i = 0; i < 40 && cp->n == 40; i++)
        ok = ok && cp->items[i].step == 10 * (int64_t)i && cp->items[i].job_id == ids[i];
    CHECK(ok);
    CHECK_STR_EQ(cp->next_token, "");
    store_checkpoint_page_free(cp);
    CHECK_EQ_INT(store_checkpoints_list(s, "wide", 20, NULL, &cp, &e), ERR_OK);
    CHECK_EQ_INT(cp->n, 20);
    CHECK_STR_EQ(cp->next_token, "190");
    store_checkpoint_page_free(cp);
    CHECK_EQ_INT(store_jobs_list(s, &any, STORE_JOBS_PAGE_MAX, NULL, &jp, &e), ERR_OK);
    CHECK_EQ_INT(jp->n, 40);
    CHECK_EQ_INT(jp->items[0].id, ids[39]);
    CHECK_EQ_INT(jp->items[jp->n - 1].id, ids[0]);
    store_job_page_free(jp);
    CHECK_EQ_INT(store_runs_list(s, STORE_PAGE_MAX, NULL, &rp, &e), ERR_OK);
    CHECK_EQ_INT(rp->n, 1);
    CHECK_STR_EQ(rp->items[0].name, "wide");
    store_run_page_free(rp);
    store_close(s);
}

static void test_runs_and_checkpoints_pages(void)
{
    static const char *const runs[] = {"alpha", "beta", "delta", "epsilon", "gamma"};
    struct store *s = open_mem();
    struct store_run_page *rp = NULL;
    struct store_checkpoint_page *cp = NULL;
    struct store_checkpoint ck;
    char token[STORE_TOKEN_MAX] = "";
    struct err e = {0};
    int i, n = 0, pages = 0, ok_order = 1;
    int64_t step;

    for (i = 4; i >= 0; i--)
        submit_ok(s, runs[i], 5);
    for (step = 10; step >= 1; step--)
        submit_ok(s, "gamma", step * 1000);
    do {
        CHECK_EQ_INT(store_runs_list(s, 2, token, &rp, &e), ERR_OK);
        if (rp == NULL)
            break;
        for (i = 0; i < (int)rp->n; i++, n++)
            ok_order = ok_order && n < 5 && strcmp(rp->items[i].name, runs[n]) == 0;
        if (rp->n > 0 && strcmp(rp->items[rp->n - 1].name, "gamma") == 0) {
            CHECK_EQ_INT(rp->items[rp->n - 1].n_checkpoints, 11);
            CHECK_EQ_INT(rp->items[rp->n - 1].last_step, 10000);
        }
        snprintf(token, sizeof token, "%s", rp->next_token);
        store_run_page_free(rp);
        rp = NULL;
        pages++;
    } while (token[0] != '\0' && pages < 10);
    CHECK(ok_order);
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_INT(pages, 3);

    token[0] = '\0';
    n = pages = 0;
    ok_order = 1;
    do {
        CHECK_EQ_INT(store_checkpoints_list(s, "gamma", 4, token, &cp, &e), ERR_OK);
        if (cp == NULL)
            break;
        for (i = 0; i < (int)cp->n; i++, n++) {
            ok_order = ok_order && cp->items[i].step == (n == 0 ? 5 : 1000 * n);
            ok_order = ok_order && cp->items[i].job_state == STORE_JOB_QUEUED &&
                       cp->items[i].job_id > 0 && cp->items[i].n_layers == 0 &&
                       strcmp(cp->items[i].format, "safetensors") == 0;
        }
        snprintf(token, sizeof token, "%s", cp->next_token);
        store_checkpoint_page_free(cp);
        cp = NULL;
        pages++;
    } while (token[0] != '\0' && pages < 10);
    CHECK(ok_order);
    CHECK_EQ_INT(n, 11);
    CHECK_EQ_INT(pages, 3);
    CHECK_EQ_INT(store_checkpoint_get(s, "gamma", 3000, &ck, &e), ERR_OK);
    CHECK_EQ_INT(ck.size, 4000);
    CHECK_STR_EQ(ck.preset, "farms-llm");
    CHECK_EQ_INT(store_checkpoint_get(s, "gamma", 3001, &ck, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_checkpoints_list(s, "zeta", 4, NULL, &cp, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_runs_list(s, 2, "zz", &rp, &e), ERR_INVAL);
    store_close(s);
}

static void test_version_changes_on_writes_only(void)
{
    struct store *s = layer_fixture();
    struct store_layer_list *l = NULL;
    struct store_history *h = NULL;
    struct store_heatmap *hm = NULL;
    struct store_run_page *rp = NULL;
    struct store_job job;
    struct err e = {0};
    int64_t v0 = 0, v1 = 0, other = 0, all0 = 0, all1 = 0, id;
    int claimed;

    CHECK_EQ_INT(store_run_version(s, "gpt", &v0, &e), ERR_OK);
    CHECK_EQ_INT(store_runs_version(s, &all0, &e), ERR_OK);
    CHECK(v0 > 0 && all0 >= v0);
    /* reads change nothing */
    store_layers_get(s, "gpt", 100, NULL, &l, &e);
    store_layer_list_free(l);
    store_layers_latest(s, "gpt", NULL, &l, &e);
    store_layer_list_free(l);
    store_layer_history(
        s, &(struct store_history_query){.run = "gpt", .layer = LAYER_NAMES[0], .end_step = 900},
        &h, &e);
    store_history_free(h);
    store_run_history(
        s,
        &(struct store_history_query){.run = "gpt", .metric = STORE_METRIC_ALPHA, .end_step = 900},
        &hm, &e);
    store_heatmap_free(hm);
    store_runs_list(s, 0, NULL, &rp, &e);
    store_run_page_free(rp);
    CHECK_EQ_INT(store_run_version(s, "gpt", &v1, &e), ERR_OK);
    CHECK_EQ_INT(v1, v0);
    /* a write to another run leaves this run's version alone */
    submit_ok(s, "other", 1);
    CHECK_EQ_INT(store_run_version(s, "gpt", &v1, &e), ERR_OK);
    CHECK_EQ_INT(v1, v0);
    CHECK_EQ_INT(store_run_version(s, "other", &other, &e), ERR_OK);
    CHECK(other > v0);
    CHECK_EQ_INT(store_runs_version(s, &all1, &e), ERR_OK);
    CHECK(all1 > all0);
    /* every kind of write to this run moves it */
    id = submit_ok(s, "gpt", 1000);
    CHECK_EQ_INT(store_run_version(s, "gpt", &v1, &e), ERR_OK);
    CHECK(v1 > v0);
    v0 = v1;
    store_job_claim(s, &job, &claimed, &e); /* "other" first */
    store_job_claim(s, &job, &claimed, &e);
    CHECK_EQ_INT(job.id, id);
    CHECK_EQ_INT(store_run_version(s, "gpt", &v1, &e), ERR_OK);
    CHECK(v1 > v0);
    v0 = v1;
    CHECK_EQ_INT(store_job_progress(s, id, 1, 2, 0, &e), ERR_OK);
    CHECK_EQ_INT(store_run_version(s, "gpt", &v1, &e), ERR_OK);
    CHECK(v1 > v0);
    v0 = v1;
    CHECK_EQ_INT(store_layers_put(s, job.checkpoint_id, job.settings_hash, NULL, 0, &e), ERR_OK);
    CHECK_EQ_INT(store_run_version(s, "gpt", &v1, &e), ERR_OK);
    CHECK(v1 > v0);
    CHECK_EQ_INT(store_run_version(s, "nope", &v1, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_layers_put(s, 12345, job.settings_hash, NULL, 0, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_check(s, &e), ERR_OK);
    store_close(s);
}

/* --- ESD histograms (schema 2) --------------------------------------------------- */

/* A histogram of eigenvalues 1, 2, ..., n with a fit. */
static struct esd_hist hist_of(int n, double alpha)
{
    static double eig[1000];
    const double *sets[1] = {eig};
    int64_t len = n;
    struct esd_hist h;

    for (int i = 0; i < n; i++)
        eig[i] = i + 1;
    esd_hist_compute(sets, &len, 1,
                     &(struct esd_hist_fit){.alpha = alpha, .xmin = n / 2.0, .D = 0.05}, &h);
    return h;
}

static void test_cache_carries_the_histogram(void)
{
    struct store *s = open_mem();
    char tsha[THASH_HEX_LEN], llm[THASH_HEX_LEN];
    struct store_result_key k = {0};
    struct farms_result r = result_ok(3.5), got;
    struct esd_hist h = hist_of(100, 3.5), back;
    struct err e = {0};
    int hit = 0;

    sha_of("tensor esd", tsha);
    CHECK_EQ_INT(store_settings_put(s, "farms-llm", PARAMS_LLM, llm, &e), ERR_OK);
    k.tensor_sha256 = tsha;
    k.analysis_key = "linear F32 100x100";
    k.settings_hash = llm;
    k.engine_version = "e2";
    CHECK_EQ_INT(store_result_put(s, &k, &r, &h, &e), ERR_OK);
    CHECK_EQ_INT(store_result_get(s, &k, &got, &back, &hit, &e), ERR_OK);
    CHECK_EQ_INT(hit, 1);
    CHECK_EQ_INT(back.n_bins, ESD_HIST_BINS);
    CHECK(memcmp(back.counts, h.counts, sizeof h.counts) == 0);
    CHECK(back.alpha == 3.5 && back.xmin == 50.0 && back.log_hi == h.log_hi);
    CHECK_EQ_INT(back.n_tail, 51);
    /* a result stored without one reads back empty */
    k.analysis_key = "linear F32 10x10";
    CHECK_EQ_INT(store_result_put(s, &k, &r, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_result_get(s, &k, &got, &back, &hit, &e), ERR_OK);
    CHECK_EQ_INT(hit, 1);
    CHECK_EQ_INT(back.n_eigs, 0);
    CHECK(isnan(back.alpha));
    store_close(s);
}

/* store_layer_get: one layer at a step or at its latest step, with the
 * histogram its row was stored with. */
static void test_layer_get_with_histogram(void)
{
    struct store *s = open_mem();
    struct store_layer_list *l = NULL;
    struct err e = {0};

    for (int64_t step = 0; step <= 200; step += 100) {
        char n0[] = "fc1.weight", n1[] = "fc2.weight";
        struct store_layer rows[2];
        struct store_job job;
        int claimed;

        submit_ok(s, "esd", step);
        ERR_ASSERT(store_job_claim(s, &job, &claimed, NULL) == ERR_OK && claimed);
        memset(rows, 0, sizeof rows);
        for (int i = 0; i < 2; i++) {
            rows[i].name = i ? n1 : n0;
            rows[i].kind = LAYER_KIND_LINEAR;
            rows[i].dtype = DTYPE_F32;
            rows[i].ndim = 2;
            rows[i].shape[0] = rows[i].shape[1] = 64;
            rows[i].r = result_ok(2.0 + (double)step / 100);
            if (i == 0) /* fc2 has no histogram */
                rows[i].esd = hist_of(64 + (int)step, rows[i].r.alpha);
        }
        CHECK_EQ_INT(store_layers_put(s, job.checkpoint_id, job.settings_hash, rows, 2, &e),
                     ERR_OK);
        CHECK_EQ_INT(store_job_finish(s, job.id, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
    }
    CHECK_EQ_INT(store_layer_get(s, "esd", "fc1.weight", -1, NULL, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n, 1);
    CHECK_EQ_INT(l->step, 200);
    if (l->n == 1) {
        CHECK_STR_EQ(l->items[0].name, "fc1.weight");
        CHECK_EQ_INT(l->items[0].esd.n_eigs, 264);
        CHECK(l->items[0].esd.alpha == 4.0 && l->items[0].r.alpha == 4.0);
    }
    store_layer_list_free(l);
    CHECK_EQ_INT(store_layer_get(s, "esd", "fc1.weight", 100, NULL, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n == 1 ? l->items[0].esd.n_eigs : -1, 164);
    store_layer_list_free(l);
    CHECK_EQ_INT(store_layer_get(s, "esd", "fc2.weight", 100, NULL, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n == 1 ? l->items[0].esd.n_eigs : -1, 0);
    store_layer_list_free(l);
    /* the list reads do not carry histograms */
    CHECK_EQ_INT(store_layers_get(s, "esd", 100, NULL, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n == 2 ? l->items[0].esd.n_eigs : -1, 0);
    store_layer_list_free(l);
    CHECK_EQ_INT(store_layer_get(s, "esd", "fc9.weight", 100, NULL, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n, 0);
    store_layer_list_free(l);
    CHECK_EQ_INT(store_layer_get(s, "esd", "fc1.weight", 150, NULL, &l, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_layer_get(s, "nope", "fc1.weight", -1, NULL, &l, &e), ERR_NOTFOUND);
    CHECK(l == NULL);
    store_close(s);
}

static int user_version(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int v = -1;

    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The SQL column and schema version (`since`) of each result field. */
#define FIELD_SINCE(member, NAME, type, key, column, json, history, width, decimals, since) \
    {column, since},
static const struct {
    const char *column;
    int since;
} FIELD_COLUMNS[] = {FARMS_RESULT_FIELDS(FIELD_SINCE)};
#undef FIELD_SINCE

/* Turn the SQLite database at `path` into what schema `v` (1, 3 or 4)
 * looked like: without the columns of the result fields added after v
 * (their `since` in FARMS_RESULT_FIELDS), before 7 without table tasks and
 * jobs.planned, before 6 without the jobs' base
 * columns, before 4 column x_min named xmin,
 * and for v 1 without the esd (2) and lease (3) columns. */
static void downgrade(const char *path, int v)
{
    static const char to_v1[] = "ALTER TABLE results DROP COLUMN esd;"
                                "ALTER TABLE layers DROP COLUMN esd; ALTER TABLE jobs DROP COLUMN "
                                "claimed_by; ALTER TABLE jobs DROP COLUMN lease_until;";
    char sql[256];
    sqlite3 *db = NULL;

    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    for (size_t i = 0; i < sizeof FIELD_COLUMNS / sizeof FIELD_COLUMNS[0]; i++) {
        if (FIELD_COLUMNS[i].since <= v)
            continue;
        snprintf(sql, sizeof sql,
                 "ALTER TABLE results DROP COLUMN %s; ALTER TABLE layers DROP COLUMN %s;",
                 FIELD_COLUMNS[i].column, FIELD_COLUMNS[i].column);
        CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
    }
    if (v < 7)
        CHECK(sqlite3_exec(db, "DROP TABLE tasks; ALTER TABLE jobs DROP COLUMN planned;", NULL,
                           NULL, NULL) == SQLITE_OK);
    if (v < 6)
        CHECK(sqlite3_exec(db,
                           "ALTER TABLE jobs DROP COLUMN base_sha256; ALTER TABLE jobs DROP COLUMN "
                           "base_source; ALTER TABLE jobs DROP COLUMN base_path; ALTER TABLE jobs "
                           "DROP COLUMN base_format; ALTER TABLE jobs DROP COLUMN base_run; ALTER "
                           "TABLE jobs DROP COLUMN base_step;",
                           NULL, NULL, NULL) == SQLITE_OK);
    if (v < 4)
        CHECK(sqlite3_exec(db,
                           "ALTER TABLE results RENAME COLUMN x_min TO xmin;"
                           "ALTER TABLE layers RENAME COLUMN x_min TO xmin;",
                           NULL, NULL, NULL) == SQLITE_OK);
    if (v < 3)
        CHECK(sqlite3_exec(db, to_v1, NULL, NULL, NULL) == SQLITE_OK);
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v);
    CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    CHECK_EQ_INT(user_version(path), v);
}

/* A version-1 database (as farmsd 0.2 wrote it: no esd columns) is
 * upgraded in place on open; its rows stay and take histograms. */
static void test_migrate_v1_in_place(void)
{
    char path[256], n0[] = "fc1.weight", newer[64];
    struct store *s = NULL;
    struct store_layer row;
    struct store_layer_list *l = NULL;
    struct store_job job;
    struct err e = {0};
    sqlite3 *db = NULL;
    int claimed = 0;

    stu_fresh(g_pg, "test_store", "v1", path, sizeof path);
    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    submit_ok(s, "old", 7);
    ERR_ASSERT(store_job_claim(s, &job, &claimed, NULL) == ERR_OK && claimed);
    memset(&row, 0, sizeof row);
    row.name = n0;
    row.kind = LAYER_KIND_LINEAR;
    row.dtype = DTYPE_F32;
    row.ndim = 2;
    row.shape[0] = row.shape[1] = 8;
    row.r = result_ok(2.5);
    CHECK_EQ_INT(store_layers_put(s, job.checkpoint_id, job.settings_hash, &row, 1, &e), ERR_OK);
    store_close(s);
    downgrade(path, 1);

    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    CHECK_EQ_INT(user_version(path), STORE_SCHEMA_VERSION);
    CHECK_EQ_INT(STORE_SCHEMA_VERSION, 9);
    CHECK_EQ_INT(store_layer_get(s, "old", "fc1.weight", 7, NULL, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n, 1); /* the old row, without a histogram, xmax from spectral_norm */
    if (l->n == 1) {
        CHECK(l->items[0].r.alpha == 2.5);
        CHECK_EQ_INT(l->items[0].esd.n_eigs, 0);
        CHECK_NEAR(l->items[0].r.xmax, 9.5, 0);
    }
    store_layer_list_free(l);
    row.esd = hist_of(8, 2.5);
    CHECK_EQ_INT(store_layers_put(s, job.checkpoint_id, job.settings_hash, &row, 1, &e), ERR_OK);
    CHECK_EQ_INT(store_layer_get(s, "old", "fc1.weight", 7, NULL, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n == 1 ? l->items[0].esd.n_eigs : -1, 8);
    store_layer_list_free(l);
    CHECK_EQ_INT(store_check(s, &e), ERR_OK);
    store_close(s);
    /* opening again changes nothing; a newer schema is refused */
    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    store_close(s);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    snprintf(newer, sizeof newer, "PRAGMA user_version = %d", STORE_SCHEMA_VERSION + 1);
    CHECK(sqlite3_exec(db, newer, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    CHECK_EQ_INT(store_open(path, &s, &e), ERR_DB);
    CHECK(strstr(e.msg, "newer") != NULL);
    stu_remove(g_pg, path);
}

/* A version-3 database (xmin column named xmin) is upgraded in place: the
 * column becomes x_min with its values, and reads and writes go on. */
static void test_migrate_v3_renames_xmin(void)
{
    char path[256], n0[] = "fc1.weight";
    struct store *s = NULL, *to = NULL;
    struct store_copy_stats stats = {0};
    struct store_layer row;
    struct store_layer_list *l = NULL;
    struct store_job job;
    struct err e = {0};
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int claimed = 0, n_x_min = -1;

    stu_fresh(g_pg, "test_store", "v3", path, sizeof path);
    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    submit_ok(s, "old", 7);
    ERR_ASSERT(store_job_claim(s, &job, &claimed, NULL) == ERR_OK && claimed);
    memset(&row, 0, sizeof row);
    row.name = n0;
    row.kind = LAYER_KIND_LINEAR;
    row.dtype = DTYPE_F32;
    row.ndim = 2;
    row.shape[0] = row.shape[1] = 8;
    row.r = result_ok(2.5); /* xmin 1.25 */
    CHECK_EQ_INT(store_layers_put(s, job.checkpoint_id, job.settings_hash, &row, 1, &e), ERR_OK);
    store_close(s);
    downgrade(path, 3);

    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    CHECK_EQ_INT(user_version(path), STORE_SCHEMA_VERSION);
    CHECK_EQ_INT(store_layer_get(s, "old", "fc1.weight", 7, NULL, &l, &e), ERR_OK);
    CHECK_EQ_INT(l->n, 1);
    if (l->n == 1)
        CHECK_NEAR(l->items[0].r.xmin, 1.25, 0);
    store_layer_list_free(l);
    row.r.xmin = 1.5;
    CHECK_EQ_INT(store_layers_put(s, job.checkpoint_id, job.settings_hash, &row, 1, &e), ERR_OK);
    CHECK_EQ_INT(store_layer_get(s, "old", "fc1.weight", 7, NULL, &l, &e), ERR_OK);
    CHECK_NEAR(l->n == 1 ? l->items[0].r.xmin : -1, 1.5, 0);
    store_layer_list_free(l);
    CHECK_EQ_INT(store_check(s, &e), ERR_OK);
    /* farmsd migrate copies the upgraded database, xmin included */
    CHECK_EQ_INT(store_open(":memory:", &to, &e), ERR_OK);
    CHECK_EQ_INT(store_copy(s, to, &stats, &e), ERR_OK);
    CHECK_EQ_INT(store_layer_get(to, "old", "fc1.weight", 7, NULL, &l, &e), ERR_OK);
    CHECK_NEAR(l->n == 1 ? l->items[0].r.xmin : -1, 1.5, 0);
    CHECK_NEAR(l->n == 1 ? l->items[0].r.alpha : -1, 2.5, 0);
    store_layer_list_free(l);
    store_close(to);
    store_close(s);
    /* the tables have x_min and no xmin */
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db,
                             "SELECT count(*) FROM pragma_table_info('layers') WHERE name = "
                             "'x_min' UNION ALL SELECT count(*) FROM pragma_table_info('results') "
                             "WHERE name = 'x_min' UNION ALL SELECT -count(*) FROM "
                             "pragma_table_info('layers') WHERE name = 'xmin'",
                             -1, &st, NULL) == SQLITE_OK);
    n_x_min = 0;
    while (st != NULL && sqlite3_step(st) == SQLITE_ROW)
        n_x_min += sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    CHECK_EQ_INT(n_x_min, 2);
    stu_remove(g_pg, path);
}

/* Run `sql` on `c`; 1 if it succeeded. */
static int pg_exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

    if (!ok)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

/* The PostgreSQL database at `url` as schema `v` (4 or later) had it:
 * without the columns of the result fields added after v, before 6
 * without the jobs' base columns. */
static void downgrade_pg(const char *url, int v)
{
    PGconn *c = PQconnectdb(url);
    char sql[256];

    CHECK(PQstatus(c) == CONNECTION_OK);
    for (size_t i = 0; i < sizeof FIELD_COLUMNS / sizeof FIELD_COLUMNS[0]; i++) {
        if (FIELD_COLUMNS[i].since <= v)
            continue;
        snprintf(sql, sizeof sql,
                 "ALTER TABLE results DROP COLUMN %s; ALTER TABLE layers DROP COLUMN %s",
                 FIELD_COLUMNS[i].column, FIELD_COLUMNS[i].column);
        CHECK(pg_exec_ok(c, sql));
    }
    if (v < 6)
        CHECK(pg_exec_ok(c, "ALTER TABLE jobs DROP COLUMN base_sha256, DROP COLUMN base_source, "
                            "DROP COLUMN base_path, DROP COLUMN base_format, DROP COLUMN "
                            "base_run, DROP COLUMN base_step"));
    snprintf(sql, sizeof sql, "DELETE FROM schema_version; INSERT INTO schema_version VALUES(%d)",
             v);
    CHECK(pg_exec_ok(c, sql));
    PQfinish(c);
}

/* A layer row (fc1.weight: ok, fc2.weight: skipped) and a cached result
 * (analysis keys "ok" and "skipped") of each status, written by `s`. A
 * skipped result holds spectral_norm 0 and xmax NaN, as farms_plan_finish
 * leaves them. */
static void put_ok_and_skipped(struct store *s, const struct store_job *job,
                               struct store_result_key *k)
{
    char n0[] = "fc1.weight", n1[] = "fc2.weight";
    struct store_layer rows[2];
    struct farms_result sk = result_skipped();
    struct err e = {0};

    sk.spectral_norm = 0;
    sk.xmax = NAN;
    memset(rows, 0, sizeof rows);
    for (int i = 0; i < 2; i++) {
        rows[i].name = i == 0 ? n0 : n1;
        rows[i].kind = LAYER_KIND_LINEAR;
        rows[i].dtype = DTYPE_F32;
        rows[i].ndim = 2;
        rows[i].shape[0] = rows[i].shape[1] = 8;
    }
    rows[0].r = result_ok(2.5); /* spectral_norm 9.5 */
    rows[0].r.xmax = 9.5;
    rows[1].r = sk;
    CHECK_EQ_INT(store_layers_put(s, job->checkpoint_id, job->settings_hash, rows, 2, &e), ERR_OK);
    k->analysis_key = "ok";
    CHECK_EQ_INT(store_result_put(s, k, &rows[0].r, NULL, &e), ERR_OK);
    k->analysis_key = "skipped";
    CHECK_EQ_INT(store_result_put(s, k, &sk, NULL, &e), ERR_OK);
}

/* xmax of layer `name` at step 7 of run "old"; -1 if there is no row. */
static double layer_xmax(struct store *s, const char *name)
{
    struct store_layer_list *l = NULL;
    struct err e = {0};
    double x = -1;

    CHECK_EQ_INT(store_layer_get(s, "old", name, 7, NULL, &l, &e), ERR_OK);
    if (l != NULL && l->n == 1)
        x = l->items[0].r.xmax;
    store_layer_list_free(l);
    return x;
}

/* xmax of the cached result `k` with analysis key `analysis_key`; -1 if
 * there is none. */
static double result_xmax(struct store *s, struct store_result_key *k, const char *analysis_key)
{
    struct farms_result got;
    struct err e = {0};
    int hit = 0;

    k->analysis_key = analysis_key;
    CHECK_EQ_INT(store_result_get(s, k, &got, NULL, &hit, &e), ERR_OK);
    return hit ? got.xmax : -1;
}

/* A version-4 database (no x_max column: rows analysed before xmax
 * existed) is upgraded in place: ok rows of layers and results get xmax =
 * their spectral_norm (the same number, core/numerics/farms_metrics.c);
 * rows of other statuses keep xmax null. */
static void test_migrate_v4_fills_xmax(void)
{
    char path[256], tsha[THASH_HEX_LEN];
    struct store_result_key k = {0};
    struct store *s = NULL;
    struct store_job job;
    struct err e = {0};
    int claimed = 0;

    stu_fresh(g_pg, "test_store", "v4", path, sizeof path);
    sha_of("tensor", tsha);
    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    submit_ok(s, "old", 7);
    ERR_ASSERT(store_job_claim(s, &job, &claimed, NULL) == ERR_OK && claimed);
    k.tensor_sha256 = tsha;
    k.settings_hash = job.settings_hash;
    k.engine_version = "farmsd 0.4 / fit 1";
    put_ok_and_skipped(s, &job, &k);
    store_close(s);
    if (g_pg != NULL)
        downgrade_pg(path, 4);
    else
        downgrade(path, 4);

    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    if (s == NULL)
        return;
    CHECK_NEAR(layer_xmax(s, "fc1.weight"), 9.5, 0);
    CHECK(isnan(layer_xmax(s, "fc2.weight")));
    CHECK_NEAR(result_xmax(s, &k, "ok"), 9.5, 0);
    CHECK(isnan(result_xmax(s, &k, "skipped")));
    CHECK_EQ_INT(store_check(s, &e), ERR_OK);
    store_close(s);
    /* opening again migrates nothing more */
    CHECK_EQ_INT(store_open(path, &s, &e), ERR_OK);
    CHECK_NEAR(s != NULL ? layer_xmax(s, "fc1.weight") : -1, 9.5, 0);
    store_close(s);
    stu_remove(g_pg, path);
}

/* Every case but those about SQLite files. */
/* --- Deleting a run ---------------------------------------------------------------- */

/* A blob for the text `content` in `b` (its hash as sha_of gives it). */
static void put_blob(struct blob_store *b, const char *content)
{
    struct blob_committed c;
    struct blob_upload *u = NULL;
    char sha[THASH_HEX_LEN];
    struct err e = {0};

    sha_of(content, sha);
    ERR_ASSERT(blob_upload_create(b, &u, &e) == ERR_OK);
    ERR_ASSERT(blob_upload_write(u, content, strlen(content), &e) == ERR_OK);
    ERR_ASSERT(blob_upload_finish(u, &e) == ERR_OK);
    ERR_ASSERT(blob_upload_commit(u, &c, &e) == ERR_OK && strcmp(c.sha256, sha) == 0);
    blob_upload_abort(u);
}

/* DELETE /v1/runs/{run} underneath: refused while a job runs; then the run,
 * its checkpoints, jobs and layer rows go in one transaction that moves the
 * change id, and only the blobs no other run refers to. */
static void test_run_delete(void)
{
    struct store *s = open_mem();
    struct store_run_deleted d = {0};
    struct blob_store *b = NULL;
    struct store_job job;
    struct store_checkpoint k;
    struct err e = {0};
    char dir[] = "/tmp/test_store_blobs_XXXXXX", cmd[128], sha1[THASH_HEX_LEN], sha2[THASH_HEX_LEN];
    int64_t a = submit_ok(s, "r", 1), q = submit_ok(s, "r", 2), v0 = 0, v1 = 0, ver = 0;
    int existed = 0, claimed = 0;
    struct store_layer row = {.name = "w", .kind = LAYER_KIND_LINEAR, .ndim = 0};

    ERR_ASSERT(mkdtemp(dir) != NULL);
    ERR_ASSERT(blob_store_open(dir, &b, &e) == ERR_OK);
    put_blob(b, "r@1");
    put_blob(b, "r@2");
    sha_of("r@1", sha1);
    sha_of("r@2", sha2);
    /* run "o" holds the same bytes as r@1 */
    CHECK_EQ_INT(submit(s, "o", 5, "r@1", "farms-llm", PARAMS_LLM, &job, &existed, &e), ERR_OK);
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(job.id, a);
    /* a running job: nothing changes, the answer names it */
    CHECK_EQ_INT(store_run_delete(s, "r", b, &d, &e), ERR_CONFLICT);
    CHECK(strstr(e.msg, "is running") != NULL);
    CHECK_EQ_INT(store_checkpoint_get(s, "r", 2, &k, &e), ERR_OK);
    CHECK_EQ_INT(blob_exists(b, sha2), 1);
    CHECK_EQ_INT(store_layers_put(s, job.checkpoint_id, job.settings_hash, &row, 1, &e), ERR_OK);
    CHECK_EQ_INT(store_job_finish(s, a, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_runs_version(s, &v0, &e), ERR_OK);
    /* finished and queued jobs go with the run */
    CHECK_EQ_INT(store_run_delete(s, "r", b, &d, &e), ERR_OK);
    CHECK_EQ_INT(d.n_checkpoints, 2);
    CHECK_EQ_INT(d.n_jobs, 2);
    CHECK_EQ_INT(d.n_layers, 1);
    CHECK_EQ_INT(d.n_blobs, 1);
    CHECK_EQ_INT(blob_exists(b, sha1), 1); /* run "o" still refers to it */
    CHECK_EQ_INT(blob_exists(b, sha2), 0);
    CHECK_EQ_INT(store_runs_version(s, &v1, &e), ERR_OK);
    CHECK(v1 > v0);
    CHECK_EQ_INT(store_run_version(s, "r", &ver, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_job_get(s, q, &job, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_job_get(s, a, &job, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK); /* o@5 is next, not r@2 */
    CHECK(claimed && strcmp(job.run, "o") == 0);
    CHECK_EQ_INT(store_checkpoint_get(s, "o", 5, &k, &e), ERR_OK);
    CHECK_EQ_INT(store_run_delete(s, "r", b, &d, &e), ERR_NOTFOUND);
    /* the name can be used again, from scratch */
    CHECK(submit_ok(s, "r", 2) > q);
    blob_store_close(b);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
    store_close(s);
}

/* The preset reads use without ?preset=: the checkpoint's own, else that of
 * the run's highest analysed step; a queued job counts only when nothing
 * succeeded. */
static void test_read_preset(void)
{
    struct store *s = open_mem();
    char preset[STORE_PRESET_MAX], hash[THASH_HEX_LEN];
    struct store_job job;
    struct err e = {0};
    int existed = 0, claimed = 0;

    CHECK_EQ_INT(store_read_preset(s, "none", -1, preset, hash, &e), ERR_OK);
    CHECK_STR_EQ(preset, "");
    CHECK_EQ_INT(submit(s, "r", 1, "a", "farms-cv", PARAMS_CV, &job, &existed, &e), ERR_OK);
    CHECK_EQ_INT(submit(s, "r", 2, "b", "farms-llm", PARAMS_LLM, &job, &existed, &e), ERR_OK);
    CHECK_EQ_INT(store_read_preset(s, "r", -1, preset, hash, &e), ERR_OK);
    CHECK_STR_EQ(preset, "farms-llm"); /* nothing succeeded: the newest job */
    CHECK_EQ_INT(store_job_claim(s, &job, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_job_finish(s, job.id, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_read_preset(s, "r", -1, preset, hash, &e), ERR_OK);
    CHECK_STR_EQ(preset, "farms-cv"); /* step 1 is the only analysed step */
    CHECK_EQ_INT(strlen(hash), 64);
    CHECK_EQ_INT(store_read_preset(s, "r", 2, preset, hash, &e), ERR_OK);
    CHECK_STR_EQ(preset, "farms-llm"); /* the checkpoint's own */
    CHECK_EQ_INT(store_read_preset(s, "r", 9, preset, hash, &e), ERR_OK);
    CHECK_STR_EQ(preset, "farms-cv"); /* no such step: the run's */
    store_close(s);
}

static void run_portable_cases(void)
{
    test_open_twice_migrates_once();
    test_submit_new_existing_conflict();
    test_submit_base_round_trip_and_conflict();
    test_submit_validates();
    test_states_are_stored_as_fixed_numbers();
    test_claim_fifo();
    test_claim_exactly_once_two_threads();
    test_claim_skips_locked_rows();
    test_cancel();
    test_finish_records_error_and_timings();
    test_requeue_after_crash();
    test_lease_expires_and_is_reclaimed();
    test_cache_put_get_ignore();
    test_result_fields_round_trip();
    test_layer_reads();
    test_history_pages();
    test_heatmap_pages();
    test_runs_and_checkpoints_pages();
    test_large_page_sizes_hold_the_rows();
    test_version_changes_on_writes_only();
    test_cache_carries_the_histogram();
    test_layer_get_with_histogram();
    test_run_delete();
    test_read_preset();
    test_migrate_v4_fills_xmax();
}

int main(void)
{
    const char *url;

    run_portable_cases();
    test_open_rejects_bad_path();
    test_migrate_v1_in_place();
    test_migrate_v3_renames_xmin();
    test_metric_names();
    if ((url = pgu_url()) != NULL) {
        g_pg = url;
        run_portable_cases();
    }
    return check_report("test_store");
}
