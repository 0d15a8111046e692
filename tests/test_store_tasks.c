/* test_store_tasks.c -- storage/store_tasks: a job's work as tasks that any
 * runner of any replica claims.
 *
 * Every case runs on SQLite (a temp file database in WAL mode, as the
 * service uses: several connections share it) and again on PostgreSQL
 * (FARMSD_TEST_PG_URL, tests/pg_util.h: a fresh database per case).
 * "Owners" stand for replicas: each connection names its own
 * (store_set_lease). Leases that must lapse are 0.05 s and the tests sleep
 * longer than that; nothing asserts a duration.
 */
#include "storage/store_tasks.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "core/numerics/farms_fields.h"
#include "storage/store.h"
#include "storage/store_jobs.h"
#include "storage/store_runs.h"
#include "tests/check.h"
#include "tests/pg_util.h"
#include "tests/store_util.h"
#include "tests/task_rate.h"

static const char PARAMS[] = "{\"window_rows\":2000,\"q_ratio\":1,\"xmin\":\"peak\"}";

#define SHORT_LEASE 0.05 /* s: lapses during sleep_past_lease() */
#define LONG_LEASE  3600.0

/* NULL: the cases run on SQLite; else the PostgreSQL URL they run on. */
static const char *g_pg;
static char g_path[256];

static void sleep_past_lease(void)
{
    struct timespec ts = {0, 150000000L};

    nanosleep(&ts, NULL);
}

/* --- Helpers ------------------------------------------------------------------ */

/* A fresh, empty database for the case: g_path. */
static void fresh_db(void)
{
    stu_fresh(g_pg, "test_store_tasks", NULL, g_path, sizeof g_path);
}

static void remove_db(void)
{
    stu_remove(g_pg, g_path);
}

/* A connection to g_path whose claims are `owner`'s with lease `lease_s`. */
static struct store *open_as(const char *owner, double lease_s)
{
    return stu_open(g_path, owner, lease_s);
}

/* A fresh database with owner A (lease `a_lease`) and owner B
 * (LONG_LEASE) connected to it. */
static void open_two(struct store **a, struct store **b, double a_lease)
{
    fresh_db();
    *a = open_as("A", a_lease);
    *b = open_as("B", LONG_LEASE);
}

/* Close A's and B's connections and remove the database. */
static void close_two(struct store *a, struct store *b)
{
    store_close(a);
    store_close(b);
    remove_db();
}

static void sha_of(const char *text, char hex[THASH_HEX_LEN])
{
    ERR_ASSERT(thash_bytes(text, strlen(text), hex, NULL) == ERR_OK);
}

/* Submit checkpoint ("r", step). Returns the job id. */
static int64_t submit_job(struct store *s, int64_t step)
{
    char content[64];
    struct store_job job;
    struct err e = {0};
    int existed = 0;

    snprintf(content, sizeof content, "ckpt@%" PRId64, step);
    ERR_ASSERT(stu_submit(s, "r", step, content, PARAMS, &job, &existed, &e) == ERR_OK);
    return job.id;
}

/* Claim the oldest queued job on `s`; returns its id (asserts one). */
static int64_t claim_job(struct store *s)
{
    struct store_job job;
    struct err e = {0};
    int claimed = 0;

    ERR_ASSERT(store_job_claim(s, &job, &claimed, &e) == ERR_OK && claimed);
    return job.id;
}

/* n rows named "layer.<ord>": row k todo with cost costs[k] (< 0: not
 * todo, a cache hit) and mem_bytes 1000 * (k + 1). Names are static
 * buffers: one plan at a time. */
#define MAX_ROWS 128
static char g_names[MAX_ROWS][32];

static void make_rows(struct store_task_row *rows, const double *costs, size_t n)
{
    ERR_ASSERT(n <= MAX_ROWS);
    for (size_t k = 0; k < n; k++) {
        memset(&rows[k], 0, sizeof rows[k]);
        snprintf(g_names[k], sizeof g_names[k], "layer.%zu", k);
        rows[k].ord = (int64_t)k;
        rows[k].name = g_names[k];
        sha_of(g_names[k], rows[k].tensor_sha256);
        rows[k].todo = costs[k] >= 0;
        rows[k].cost = costs[k] >= 0 ? costs[k] : 0;
        rows[k].mem_bytes = 1000 * (uint64_t)(k + 1);
    }
}

/* Plan job `id` (claimed on `s`) with tasks of costs[] (see make_rows);
 * returns n_open. */
static int64_t plan_costs(struct store *s, int64_t id, const double *costs, size_t n)
{
    struct store_task_row rows[MAX_ROWS];
    struct err e = {0};
    int64_t n_open = -1, n_hits = 0;

    make_rows(rows, costs, n);
    for (size_t k = 0; k < n; k++)
        n_hits += !rows[k].todo;
    if (store_tasks_plan(s, id, rows, n, n_hits, &n_open, &e) != ERR_OK) {
        fprintf(stderr, "store_tasks_plan: %s\n", e.msg);
        ERR_ASSERT(!"store_tasks_plan");
    }
    return n_open;
}

/* A new job with `n` todo tasks of cost 1, claimed and planned on `s`. */
static int64_t planned_job(struct store *s, int64_t step, size_t n)
{
    double costs[MAX_ROWS];
    int64_t id = submit_job(s, step);

    for (size_t k = 0; k < n; k++)
        costs[k] = 1;
    ERR_ASSERT(claim_job(s) == id);
    ERR_ASSERT(plan_costs(s, id, costs, n) == (int64_t)n);
    return id;
}

static struct store_job job_of(struct store *s, int64_t id)
{
    struct store_job j;
    struct err e = {0};

    ERR_ASSERT(store_job_get(s, id, &j, &e) == ERR_OK);
    return j;
}

static int64_t run_version(struct store *s)
{
    int64_t v = -1;
    struct err e = {0};

    ERR_ASSERT(store_run_version(s, "r", &v, &e) == ERR_OK);
    return v;
}

/* --- Plan and claim ------------------------------------------------------------ */

/* Claims go oldest job first, then the costliest task, then ord; a claim
 * returns the planned row; rows that are not todo are never claimed. */
static void test_plan_then_claim_order(void)
{
    const double costs1[] = {1, -1, 5, 5, 2}; /* row 1: a cache hit */
    const double costs2[] = {100};
    const int64_t want_job[] = {1, 1, 1, 1, 2};
    const int64_t want_ord[] = {2, 3, 4, 0, 0};
    struct store *s = NULL;
    struct store_task t;
    struct store_job j;
    struct err e = {0};
    int64_t id1, id2, counts[STORE_TASK_STATE_COUNT];
    int claimed = 0;

    fresh_db();
    s = open_as("A", LONG_LEASE);
    id1 = submit_job(s, 1);
    id2 = submit_job(s, 2);
    CHECK_EQ_INT(claim_job(s), id1);
    CHECK_EQ_INT(plan_costs(s, id1, costs1, 5), 4);
    j = job_of(s, id1);
    CHECK_EQ_INT(j.state, STORE_JOB_RUNNING);
    CHECK_EQ_INT(j.n_total, 5); /* 4 todo + 1 hit */
    CHECK_EQ_INT(j.n_done, 1);
    CHECK_EQ_INT(j.n_cache_hits, 1);
    CHECK_EQ_INT(claim_job(s), id2);
    CHECK_EQ_INT(plan_costs(s, id2, costs2, 1), 1);
    CHECK_EQ_INT(store_task_counts(s, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_TASK_QUEUED], 5);
    CHECK_EQ_INT(counts[STORE_TASK_RUNNING], 0);
    for (size_t i = 0; i < 5; i++) {
        CHECK_EQ_INT(store_task_claim(s, UINT64_MAX, &t, &claimed, &e), ERR_OK);
        CHECK_EQ_INT(claimed, 1);
        CHECK_EQ_INT(t.job_id, want_job[i] == 1 ? id1 : id2);
        CHECK_EQ_INT(t.ord, want_ord[i]);
        CHECK_EQ_INT(t.state, STORE_TASK_RUNNING);
        CHECK_EQ_INT(t.attempts, 1);
        CHECK_EQ_INT(t.todo, 1);
        CHECK_EQ_INT(t.mem_bytes, 1000 * (t.ord + 1));
        CHECK_NEAR(t.cost, want_job[i] == 1 ? costs1[t.ord] : 100, 0);
        CHECK_STR_EQ(t.name, g_names[t.ord]);
        if (i == 0) {
            char sha[THASH_HEX_LEN];

            sha_of("layer.2", sha);
            CHECK_STR_EQ(t.tensor_sha256, sha);
        }
    }
    CHECK_EQ_INT(store_task_claim(s, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 0);
    CHECK_EQ_INT(store_task_counts(s, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_TASK_QUEUED], 0);
    CHECK_EQ_INT(counts[STORE_TASK_RUNNING], 5);
    CHECK_EQ_INT(counts[STORE_TASK_DONE], 0);
    store_close(s);
    remove_db();
}

/* The plan reads back whole, in ord order, hits and skipped rows included. */
static void test_plan_get(void)
{
    const double costs[] = {3, -1, 7};
    struct store_task_row rows[3];
    struct store *s = NULL;
    struct store_task *p = NULL;
    struct err e = {0};
    size_t n = 0;
    int64_t id, n_open = -1;

    fresh_db();
    s = open_as("A", LONG_LEASE);
    id = submit_job(s, 1);
    CHECK_EQ_INT(store_tasks_plan_get(s, id, &p, &n, &e), ERR_NOTFOUND);
    CHECK(p == NULL);
    CHECK_EQ_INT(claim_job(s), id);
    make_rows(rows, costs, 3);
    rows[1].tensor_sha256[0] = '\0'; /* a skipped row: not hashed */
    CHECK_EQ_INT(store_tasks_plan(s, id, rows, 3, 0, &n_open, &e), ERR_OK);
    CHECK_EQ_INT(n_open, 2);
    CHECK_EQ_INT(job_of(s, id).n_total, 2);
    CHECK_EQ_INT(job_of(s, id).n_done, 0);
    CHECK_EQ_INT(store_tasks_plan_get(s, id, &p, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 3);
    for (size_t k = 0; k < n && k < 3; k++) {
        CHECK_EQ_INT(p[k].job_id, id);
        CHECK_EQ_INT(p[k].ord, (int64_t)k);
        CHECK_STR_EQ(p[k].name, rows[k].name);
        CHECK_STR_EQ(p[k].tensor_sha256, rows[k].tensor_sha256);
        CHECK_EQ_INT(p[k].todo, k != 1);
        CHECK_EQ_INT(p[k].state, k == 1 ? STORE_TASK_DONE : STORE_TASK_QUEUED);
        CHECK_EQ_INT(p[k].mem_bytes, 1000 * (k + 1));
        CHECK_EQ_INT(p[k].attempts, 0);
    }
    free(p);
    store_close(s);
    remove_db();
}

/* Bad rows and bad hit counts are refused, and nothing is written. */
static void test_plan_rejects_bad_rows(void)
{
    const double costs[] = {1, 2};
    struct store_task_row rows[2];
    struct store *s = NULL;
    struct store_task *p = NULL;
    struct err e = {0};
    char longname[STORE_TASK_NAME_MAX + 8];
    size_t n = 0;
    int64_t id, n_open = -1;

    fresh_db();
    s = open_as("A", LONG_LEASE);
    id = submit_job(s, 1);
    CHECK_EQ_INT(claim_job(s), id);
    make_rows(rows, costs, 2);
    rows[1].tensor_sha256[0] = '\0'; /* todo but not hashed */
    CHECK_EQ_INT(store_tasks_plan(s, id, rows, 2, 0, &n_open, &e), ERR_INVAL);
    make_rows(rows, costs, 2);
    rows[0].cost = -1;
    CHECK_EQ_INT(store_tasks_plan(s, id, rows, 2, 0, &n_open, &e), ERR_INVAL);
    make_rows(rows, costs, 2);
    rows[0].mem_bytes = UINT64_MAX;
    CHECK_EQ_INT(store_tasks_plan(s, id, rows, 2, 0, &n_open, &e), ERR_INVAL);
    make_rows(rows, costs, 2);
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    rows[0].name = longname;
    CHECK_EQ_INT(store_tasks_plan(s, id, rows, 2, 0, &n_open, &e), ERR_INVAL);
    make_rows(rows, costs, 2);
    CHECK_EQ_INT(store_tasks_plan(s, id, rows, 2, 1, &n_open, &e), ERR_INVAL); /* no hit rows */
    CHECK_EQ_INT(store_tasks_plan(s, id + 100, rows, 2, 0, &n_open, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_tasks_plan_get(s, id, &p, &n, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(job_of(s, id).n_total, 0);
    store_close(s);
    remove_db();
}

/* A claim takes only a task whose mem_bytes fits mem_max. */
static void test_claim_mem_max(void)
{
    const double costs[] = {1, 2, 3}; /* mem 1000, 2000, 3000; largest cost first */
    struct store *s = NULL;
    struct store_task t;
    struct err e = {0};
    int64_t id;
    int claimed = 0;

    fresh_db();
    s = open_as("A", LONG_LEASE);
    id = submit_job(s, 1);
    CHECK_EQ_INT(claim_job(s), id);
    CHECK_EQ_INT(plan_costs(s, id, costs, 3), 3);
    CHECK_EQ_INT(store_task_claim(s, 999, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 0);
    CHECK_EQ_INT(store_task_claim(s, 2500, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(t.ord, 1);
    CHECK_EQ_INT(store_task_claim(s, 2500, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(t.ord, 0);
    CHECK_EQ_INT(store_task_claim(s, 2500, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 0);
    CHECK_EQ_INT(store_task_claim(s, 3000, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(t.ord, 2);
    store_close(s);
    remove_db();
}

/* --- Done and the *last rule ----------------------------------------------------- */

/* Each done counts on the job (n_done, n_cache_hits) and bumps the run's
 * version; the last one leaves the task running and n_done = n_total;
 * finishing the job drops its tasks. */
static void test_done_progress_and_last(void)
{
    const double costs[] = {3, 2, -1, 1};
    struct store *s = NULL;
    struct store_task t;
    struct store_task *p = NULL;
    struct store_job j;
    struct err e = {0};
    int64_t id, v0, counts[STORE_TASK_STATE_COUNT];
    size_t n = 0;
    int claimed = 0, last = -1;

    fresh_db();
    s = open_as("A", LONG_LEASE);
    id = submit_job(s, 1);
    CHECK_EQ_INT(claim_job(s), id);
    CHECK_EQ_INT(plan_costs(s, id, costs, 4), 3);
    v0 = run_version(s);
    CHECK_EQ_INT(store_task_claim(s, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(t.ord, 0);
    CHECK_EQ_INT(store_task_done(s, id, 0, 0, &last, &e), ERR_OK);
    CHECK_EQ_INT(last, 0);
    CHECK(run_version(s) > v0);
    j = job_of(s, id);
    CHECK_EQ_INT(j.n_total, 4);
    CHECK_EQ_INT(j.n_done, 2);
    CHECK_EQ_INT(j.n_cache_hits, 1);
    /* done twice: the task is no longer running */
    CHECK_EQ_INT(store_task_done(s, id, 0, 0, &last, &e), ERR_CANCELED);
    CHECK_EQ_INT(store_task_claim(s, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(t.ord, 1);
    CHECK_EQ_INT(store_task_done(s, id, 1, 1, &last, &e), ERR_OK); /* a cache hit */
    CHECK_EQ_INT(last, 0);
    j = job_of(s, id);
    CHECK_EQ_INT(j.n_done, 3);
    CHECK_EQ_INT(j.n_cache_hits, 2);
    CHECK_EQ_INT(store_task_claim(s, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(t.ord, 3);
    v0 = run_version(s);
    CHECK_EQ_INT(store_task_done(s, id, 3, 0, &last, &e), ERR_OK);
    CHECK_EQ_INT(last, 1);
    CHECK(run_version(s) > v0);
    j = job_of(s, id);
    CHECK_EQ_INT(j.n_done, 4);
    CHECK_EQ_INT(j.n_cache_hits, 2);
    CHECK_EQ_INT(store_task_counts(s, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_TASK_DONE], 2);
    CHECK_EQ_INT(counts[STORE_TASK_RUNNING], 1); /* the finaliser's, under its lease */
    CHECK_EQ_INT(store_tasks_plan_get(s, id, &p, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(n == 4 ? (int)p[3].state : -1, STORE_TASK_RUNNING);
    free(p);
    CHECK_EQ_INT(store_job_finish(s, id, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
    CHECK_EQ_INT(job_of(s, id).state, STORE_JOB_SUCCEEDED);
    CHECK_EQ_INT(store_task_counts(s, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_TASK_DONE] + counts[STORE_TASK_RUNNING], 0);
    CHECK_EQ_INT(store_tasks_plan_get(s, id, &p, &n, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_task_done(s, id, 3, 0, &last, &e), ERR_CANCELED);
    store_close(s);
    remove_db();
}

/* Nothing to analyse (all hits): n_open 0, the job stays unplanned, so
 * when its planner dies before finishing, store_job_claim takes it again. */
static void test_plan_nothing_open_stays_claimable(void)
{
    const double costs[] = {-1, -1};
    struct store *a = NULL, *b = NULL;
    struct store_job j;
    struct err e = {0};
    int64_t id;
    int claimed = 0;

    open_two(&a, &b, SHORT_LEASE);
    id = submit_job(a, 1);
    CHECK_EQ_INT(claim_job(a), id);
    CHECK_EQ_INT(plan_costs(a, id, costs, 2), 0);
    j = job_of(a, id);
    CHECK_EQ_INT(j.n_total, 2);
    CHECK_EQ_INT(j.n_done, 2);
    sleep_past_lease();
    CHECK_EQ_INT(store_job_claim(b, &j, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(j.id, id);
    CHECK_STR_EQ(j.claimed_by, "B");
    CHECK_EQ_INT(plan_costs(b, id, costs, 2), 0);
    CHECK_EQ_INT(store_job_finish(b, id, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
    close_two(a, b);
}

/* A planned job whose job lease lapsed is not claimed again: its tasks are. */
static void test_planned_job_not_reclaimed(void)
{
    struct store *a = NULL, *b = NULL;
    struct store_job j;
    struct store_task t;
    struct err e = {0};
    int64_t id;
    int claimed = 0;

    open_two(&a, &b, SHORT_LEASE);
    id = planned_job(a, 1, 2);
    sleep_past_lease();
    CHECK_EQ_INT(store_job_claim(b, &j, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 0);
    CHECK_EQ_INT(job_of(b, id).state, STORE_JOB_RUNNING);
    CHECK_STR_EQ(job_of(b, id).claimed_by, "A");
    CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(t.job_id, id);
    /* an unplanned job of another owner is not B's to finish; a planned one is */
    CHECK_EQ_INT(store_job_progress(b, id, 1, 2, 0, &e), ERR_OK);
    CHECK_EQ_INT(store_job_finish(b, id, STORE_JOB_FAILED, "analysis", "boom", &e), ERR_OK);
    j = job_of(b, id);
    CHECK_EQ_INT(j.state, STORE_JOB_FAILED);
    CHECK_STR_EQ(j.error_message, "boom");
    CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 0);
    id = submit_job(a, 2);
    CHECK_EQ_INT(claim_job(a), id);
    CHECK_EQ_INT(store_job_finish(b, id, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_CANCELED);
    close_two(a, b);
}

/* --- Concurrency --------------------------------------------------------------- */

#define RACE_JOBS    3
#define RACE_TASKS   20 /* per job */
#define RACE_THREADS 4
#define RACE_MAX_OPS (RACE_JOBS * RACE_TASKS + 10)

struct runner {
    int idx;
    int64_t job_ids[RACE_JOBS];
    int claims[RACE_JOBS][RACE_TASKS]; /* how often this runner claimed each task */
    int lasts[RACE_JOBS];              /* *last seen per job */
    int n;
    enum err_code rc;
    char msg[256];
};

/* Run `call` into `rc` again while it answers ERR_BUSY ("retry later":
 * SQLite's busy timeout ran out while the other writers kept the lock),
 * as a runner does; bounded. */
#define BUSY_RETRIES 20
#define RETRY_BUSY(rc, call)                                               \
    do {                                                                   \
        int retry_n_ = 0;                                                  \
        while (((rc) = (call)) == ERR_BUSY && retry_n_++ < BUSY_RETRIES) { \
        }                                                                  \
    } while (0)

static int job_index(const struct runner *r, int64_t id)
{
    for (int k = 0; k < RACE_JOBS; k++)
        if (r->job_ids[k] == id)
            return k;
    return -1;
}

/* Claim, done, and finalise on *last, until there is nothing to claim. */
static void *run_tasks(void *arg)
{
    struct runner *r = arg;
    char owner[16];
    struct store *s = NULL;
    struct store_task t;
    struct err e = {0};
    int claimed = 1, last = 0, k;

    snprintf(owner, sizeof owner, "R%d", r->idx);
    r->rc = store_open(g_path, &s, &e);
    if (r->rc == ERR_OK)
        r->rc = store_set_lease(s, owner, LONG_LEASE, &e);
    for (int op = 0; r->rc == ERR_OK && claimed && op < RACE_MAX_OPS; op++) {
        RETRY_BUSY(r->rc, store_task_claim(s, UINT64_MAX, &t, &claimed, &e));
        if (r->rc != ERR_OK || !claimed)
            break;
        k = job_index(r, t.job_id);
        if (k < 0 || t.ord < 0 || t.ord >= RACE_TASKS) {
            r->rc = err_set(&e, ERR_INTERNAL, "claimed an unknown task");
            break;
        }
        r->claims[k][t.ord]++;
        r->n++;
        RETRY_BUSY(r->rc, store_task_done(s, t.job_id, t.ord, t.ord % 2 != 0, &last, &e));
        if (r->rc == ERR_OK && last) {
            r->lasts[k]++;
            RETRY_BUSY(r->rc, store_job_finish(s, t.job_id, STORE_JOB_SUCCEEDED, NULL, NULL, &e));
        }
    }
    if (r->rc != ERR_OK)
        snprintf(r->msg, sizeof r->msg, "%s", e.msg);
    store_close(s);
    return NULL;
}

/* Four runners, each with its own connection and owner, share three
 * planned jobs: every task is claimed exactly once, exactly one runner
 * finalises each job, and the counts add up. */
static void test_claims_exactly_once_threads(void)
{
    struct runner r[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    struct store *s = NULL;
    struct err e = {0};
    int64_t ids[RACE_JOBS], counts[STORE_TASK_STATE_COUNT];
    int total = 0;

    fresh_db();
    s = open_as("planner", LONG_LEASE);
    for (int k = 0; k < RACE_JOBS; k++)
        ids[k] = planned_job(s, k + 1, RACE_TASKS);
    memset(r, 0, sizeof r);
    for (int i = 0; i < RACE_THREADS; i++) {
        r[i].idx = i;
        memcpy(r[i].job_ids, ids, sizeof ids);
        pthread_create(&th[i], NULL, run_tasks, &r[i]);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < RACE_THREADS; i++) {
        if (r[i].rc != ERR_OK)
            fprintf(stderr, "runner %d: %s\n", i, r[i].msg);
        CHECK_EQ_INT(r[i].rc, ERR_OK);
        total += r[i].n;
    }
    CHECK_EQ_INT(total, RACE_JOBS * RACE_TASKS);
    for (int k = 0; k < RACE_JOBS; k++) {
        int lasts = 0, once = 0;
        struct store_job j = job_of(s, ids[k]);

        for (int i = 0; i < RACE_THREADS; i++)
            lasts += r[i].lasts[k];
        for (int o = 0; o < RACE_TASKS; o++) {
            int c = 0;

            for (int i = 0; i < RACE_THREADS; i++)
                c += r[i].claims[k][o];
            once += c == 1;
        }
        CHECK_EQ_INT(once, RACE_TASKS);
        CHECK_EQ_INT(lasts, 1);
        CHECK_EQ_INT(j.state, STORE_JOB_SUCCEEDED);
        CHECK_EQ_INT(j.n_done, RACE_TASKS);
        CHECK_EQ_INT(j.n_total, RACE_TASKS);
        CHECK_EQ_INT(j.n_cache_hits, RACE_TASKS / 2); /* odd ords were reported as hits */
    }
    CHECK_EQ_INT(store_task_counts(s, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_TASK_QUEUED] + counts[STORE_TASK_RUNNING] + counts[STORE_TASK_DONE],
                 0);
    CHECK_EQ_INT(store_check(s, &e), ERR_OK);
    store_close(s);
    remove_db();
}

struct finisher {
    struct store *s;
    pthread_barrier_t *go;
    int64_t job_id, ord;
    int last;
    enum err_code rc;
};

static void *finish_one(void *arg)
{
    struct finisher *f = arg;
    struct err e = {0};

    pthread_barrier_wait(f->go);
    f->rc = store_task_done(f->s, f->job_id, f->ord, 0, &f->last, &e);
    return NULL;
}

#define LAST_ROUNDS 8

/* Two runners finishing a job's last two tasks at the same moment: exactly
 * one of them sees *last = 1, every round. */
static void test_last_seen_once_racing(void)
{
    struct store *a = NULL, *b = NULL;
    struct finisher fa, fb;
    struct store_task t;
    struct err e = {0};
    pthread_barrier_t go;
    pthread_t ta, tb;
    int claimed = 0, exactly_one = 0;

    open_two(&a, &b, LONG_LEASE);
    pthread_barrier_init(&go, NULL, 2);
    for (int round = 0; round < LAST_ROUNDS; round++) {
        int64_t id = planned_job(a, round + 1, 2);

        fa = (struct finisher){.s = a, .go = &go, .job_id = id, .last = -1};
        fb = (struct finisher){.s = b, .go = &go, .job_id = id, .last = -1};
        CHECK_EQ_INT(store_task_claim(a, UINT64_MAX, &t, &claimed, &e), ERR_OK);
        fa.ord = t.ord;
        CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
        fb.ord = t.ord;
        CHECK(fa.ord != fb.ord);
        pthread_create(&ta, NULL, finish_one, &fa);
        pthread_create(&tb, NULL, finish_one, &fb);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        CHECK_EQ_INT(fa.rc, ERR_OK);
        CHECK_EQ_INT(fb.rc, ERR_OK);
        exactly_one += fa.last + fb.last == 1;
        CHECK_EQ_INT(job_of(a, id).n_done, 2);
        CHECK_EQ_INT(store_job_finish(fa.last ? a : b, id, STORE_JOB_SUCCEEDED, NULL, NULL, &e),
                     ERR_OK);
    }
    CHECK_EQ_INT(exactly_one, LAST_ROUNDS);
    pthread_barrier_destroy(&go);
    close_two(a, b);
}

/* --- Leases, release, requeue ---------------------------------------------------- */

/* A task whose lease lapsed is claimed by another owner (attempts 2); the
 * old owner's done is refused and the new owner's counts. A released task
 * is claimed again at once. */
static void test_lapsed_lease_reclaimed(void)
{
    struct store *a = NULL, *b = NULL;
    struct store_task t;
    struct err e = {0};
    int64_t id;
    int claimed = 0, last = -1;

    open_two(&a, &b, SHORT_LEASE);
    id = planned_job(a, 1, 3);
    CHECK_EQ_INT(store_task_claim(a, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(t.ord, 0);
    CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(t.ord, 1); /* A's is not lapsed yet */
    CHECK_EQ_INT(store_task_release(b, id, 1, &e), ERR_OK);
    CHECK_EQ_INT(store_task_release(b, id, 1, &e), ERR_OK); /* not held: no error */
    sleep_past_lease();
    CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(t.ord, 0);
    CHECK_EQ_INT(t.attempts, 2);
    CHECK_EQ_INT(store_task_done(a, id, 0, 0, &last, &e), ERR_CANCELED);
    CHECK_EQ_INT(store_task_release(a, id, 0, &e), ERR_OK); /* not A's: nothing happens */
    CHECK_EQ_INT(store_task_done(b, id, 0, 0, &last, &e), ERR_OK);
    CHECK_EQ_INT(last, 0);
    CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(t.ord, 1);
    CHECK_EQ_INT(t.attempts, 2); /* claimed, released, claimed */
    CHECK_EQ_INT(job_of(b, id).n_done, 1);
    close_two(a, b);
}

/* store_leases_renew keeps a short lease alive past its first end; without
 * it the task would be claimed by another owner. */
static void test_renew_keeps_short_lease(void)
{
    struct store *a = NULL, *b = NULL;
    struct store_task t;
    struct err e = {0};
    int64_t id, n = -1;
    int claimed = 0;

    open_two(&a, &b, SHORT_LEASE);
    id = planned_job(a, 1, 2);
    CHECK_EQ_INT(store_task_claim(a, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_task_claim(a, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    /* the heartbeat of a runner whose lease is longer than a pause */
    CHECK_EQ_INT(store_set_lease(a, "A", LONG_LEASE, &e), ERR_OK);
    CHECK_EQ_INT(store_leases_renew(a, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 3); /* the job and two tasks */
    sleep_past_lease();
    CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 0);
    CHECK_EQ_INT(store_leases_renew(b, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 0);
    /* the same without the renewal: lapsed, claimed by B */
    CHECK_EQ_INT(store_set_lease(a, "A", SHORT_LEASE, &e), ERR_OK);
    CHECK_EQ_INT(store_leases_renew(a, &n, &e), ERR_OK);
    sleep_past_lease();
    CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(t.job_id, id);
    CHECK_EQ_INT(t.attempts, 2);
    close_two(a, b);
}

/* Planning again (after a planner died) keeps the tasks already done. */
static void test_replan_keeps_done(void)
{
    const double costs[] = {3, 2, 1};
    struct store *s = NULL;
    struct store_task t;
    struct store_task *p = NULL;
    struct err e = {0};
    int64_t id;
    size_t n = 0;
    int claimed = 0, last = -1;

    fresh_db();
    s = open_as("A", LONG_LEASE);
    id = submit_job(s, 1);
    CHECK_EQ_INT(claim_job(s), id);
    CHECK_EQ_INT(plan_costs(s, id, costs, 3), 3);
    CHECK_EQ_INT(store_task_claim(s, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_task_done(s, id, t.ord, 0, &last, &e), ERR_OK);
    CHECK_EQ_INT(plan_costs(s, id, costs, 3), 2);
    CHECK_EQ_INT(job_of(s, id).n_done, 1);
    CHECK_EQ_INT(job_of(s, id).n_total, 3);
    CHECK_EQ_INT(store_tasks_plan_get(s, id, &p, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(n == 3 ? (int)p[0].state : -1, STORE_TASK_DONE);
    CHECK_EQ_INT(n == 3 ? (int)p[1].state : -1, STORE_TASK_QUEUED);
    free(p);
    store_close(s);
    remove_db();
}

/* Cancel drops the tasks: done is refused, nothing is left to claim. */
static void test_cancel_drops_tasks(void)
{
    struct store *a = NULL, *b = NULL;
    struct store_task t;
    struct store_task *p = NULL;
    struct store_job j;
    struct err e = {0};
    int64_t id, counts[STORE_TASK_STATE_COUNT];
    size_t n = 0;
    int claimed = 0, last = -1;

    open_two(&a, &b, LONG_LEASE);
    id = planned_job(a, 1, 3);
    CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_job_cancel(a, id, &j, &e), ERR_OK);
    CHECK_EQ_INT(j.state, STORE_JOB_CANCELED);
    CHECK_EQ_INT(store_task_done(b, id, t.ord, 0, &last, &e), ERR_CANCELED);
    CHECK_EQ_INT(last, 0);
    CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 0);
    CHECK_EQ_INT(store_task_counts(a, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_TASK_QUEUED] + counts[STORE_TASK_RUNNING], 0);
    CHECK_EQ_INT(store_tasks_plan_get(a, id, &p, &n, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(store_job_finish(b, id, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_CANCELED);
    close_two(a, b);
}

/* Shutdown (release): this owner's running tasks and unplanned jobs go back
 * to the queue, its planned jobs stay running, other owners' work stays.
 * Start-up (requeue): every running task is queued; planned jobs stay. */
static void test_release_and_requeue(void)
{
    struct store *a = NULL, *b = NULL;
    struct store_task t;
    struct err e = {0};
    int64_t planned, plain, n = -1, counts[STORE_TASK_STATE_COUNT];
    int claimed = 0;

    open_two(&a, &b, LONG_LEASE);
    planned = planned_job(a, 1, 4);
    plain = submit_job(a, 2);
    CHECK_EQ_INT(claim_job(a), plain);
    CHECK_EQ_INT(store_task_claim(a, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_task_claim(a, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(store_jobs_release(a, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(job_of(a, plain).state, STORE_JOB_QUEUED);
    CHECK_EQ_INT(job_of(a, planned).state, STORE_JOB_RUNNING);
    CHECK_EQ_INT(store_task_counts(a, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_TASK_QUEUED], 3);
    CHECK_EQ_INT(counts[STORE_TASK_RUNNING], 1); /* B's */
    CHECK_EQ_INT(store_task_claim(b, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(t.ord, 0);
    CHECK_EQ_INT(t.attempts, 2);
    CHECK_EQ_INT(store_jobs_requeue(a, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(job_of(a, planned).state, STORE_JOB_RUNNING);
    CHECK_EQ_INT(store_task_counts(a, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_TASK_QUEUED], 4);
    CHECK_EQ_INT(counts[STORE_TASK_RUNNING], 0);
    close_two(a, b);
}

/* The bench's claim-rate helper (tests/task_rate.h) claims every task once
 * over its connections and finalises the job once. Counts only. */
static void test_task_rate_counts(void)
{
    struct store *s = NULL;
    struct task_rate r;
    struct store_job j;
    struct err e = {0};
    int64_t counts[STORE_TASK_STATE_COUNT];

    fresh_db();
    CHECK_EQ_INT(task_rate_measure(g_path, 1, 50, 3, &r, &e), ERR_OK);
    CHECK_EQ_INT(r.n_claims, 50);
    CHECK_EQ_INT(r.n_last, 1);
    CHECK_EQ_INT(r.n_conns, 3);
    CHECK(r.seconds > 0);
    CHECK_NEAR(r.per_s * r.seconds, 50, 1e-6);
    s = open_as("A", LONG_LEASE);
    j = job_of(s, 1);
    CHECK_EQ_INT(j.state, STORE_JOB_SUCCEEDED);
    CHECK_EQ_INT(j.n_done, 50);
    CHECK_EQ_INT(store_task_counts(s, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_TASK_QUEUED] + counts[STORE_TASK_RUNNING], 0);
    CHECK_EQ_INT(task_rate_measure(g_path, 2, 0, 3, &r, &e), ERR_INVAL);
    store_close(s);
    remove_db();
}

/* --- Schema ---------------------------------------------------------------------- */

/* Append to sql[] the statements that drop what schema versions 7.. added:
 * the tables of versions 9, 8 and 7, jobs.planned and the result-field
 * columns added after version 6 (FARMS_RESULT_FIELDS' since). */
#define DOWNGRADE_FIELD(member, NAME, type, key, column, json, history, width, decimals, since) \
    if ((since) > 6)                                                                            \
        n += snprintf(sql + n, sizeof(sql) - n,                                                 \
                      "ALTER TABLE results DROP COLUMN " column ";"                             \
                      "ALTER TABLE layers DROP COLUMN " column ";");
static void downgrade_to_v6(void)
{
    char sql[8192];
    size_t n = (size_t)snprintf(sql, sizeof(sql),
                                "DROP TABLE deliveries; DROP TABLE alert_events;"
                                "DROP TABLE alert_rules; DROP TABLE summaries; DROP TABLE tasks;"
                                "ALTER TABLE jobs DROP COLUMN planned;");

    FARMS_RESULT_FIELDS(DOWNGRADE_FIELD)
    CHECK(n < sizeof(sql));
    if (g_pg != NULL) {
        PGconn *c = PQconnectdb(g_pg);
        PGresult *r;

        n += snprintf(sql + n, sizeof(sql) - n,
                      "DELETE FROM schema_version; INSERT INTO schema_version VALUES(6)");
        CHECK(n < sizeof(sql));
        r = PQexec(c, sql);
        CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
        PQclear(r);
        PQfinish(c);
    } else {
        sqlite3 *db = NULL;

        CHECK(sqlite3_open(g_path, &db) == SQLITE_OK);
        CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
        CHECK(sqlite3_exec(db, "PRAGMA user_version = 6", NULL, NULL, NULL) == SQLITE_OK);
        sqlite3_close(db);
    }
}
#undef DOWNGRADE_FIELD

/* A schema-6 database with a running job migrates to the current schema on
 * open: the job keeps its state, unplanned, and can be planned into tasks. */
static void test_migrate_from_v6(void)
{
    struct store *s = NULL;
    struct store_task t;
    struct err e = {0};
    int64_t id;
    int claimed = 0;

    fresh_db();
    s = open_as("A", LONG_LEASE);
    id = submit_job(s, 1);
    CHECK_EQ_INT(claim_job(s), id);
    store_close(s);
    downgrade_to_v6();
    s = open_as("A", LONG_LEASE);
    CHECK_EQ_INT(job_of(s, id).state, STORE_JOB_RUNNING);
    CHECK_EQ_INT(store_check(s, &e), ERR_OK);
    {
        const double costs[] = {1};

        CHECK_EQ_INT(plan_costs(s, id, costs, 1), 1);
    }
    CHECK_EQ_INT(store_task_claim(s, UINT64_MAX, &t, &claimed, &e), ERR_OK);
    CHECK_EQ_INT(claimed, 1);
    store_close(s);
    if (g_pg == NULL) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;

        CHECK(sqlite3_open(g_path, &db) == SQLITE_OK);
        CHECK(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK);
        CHECK(sqlite3_step(st) == SQLITE_ROW);
        CHECK_EQ_INT(sqlite3_column_int(st, 0), STORE_SCHEMA_VERSION);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    remove_db();
}

static void run_cases(void)
{
    test_plan_then_claim_order();
    test_plan_get();
    test_plan_rejects_bad_rows();
    test_claim_mem_max();
    test_done_progress_and_last();
    test_plan_nothing_open_stays_claimable();
    test_planned_job_not_reclaimed();
    test_claims_exactly_once_threads();
    test_last_seen_once_racing();
    test_lapsed_lease_reclaimed();
    test_renew_keeps_short_lease();
    test_replan_keeps_done();
    test_cancel_drops_tasks();
    test_release_and_requeue();
    test_task_rate_counts();
    test_migrate_from_v6();
}

int main(void)
{
    const char *url;

    run_cases();
    if ((url = pgu_url()) != NULL) {
        g_pg = url;
        run_cases();
    }
    return check_report("test_store_tasks");
}
