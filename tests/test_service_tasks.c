/* test_service_tasks.c -- one checkpoint's tasks shared by the runners of
 * real `farmsd serve` processes (tests/svc_harness.h; README "Beyond one
 * machine").
 *
 * A synthetic checkpoint of N_LAYERS Gaussian DIM x DIM matrices (0.08 s
 * each under ASan on a 2-core AVX-512 Xeon, several times that on slower
 * machines) is one job; each row is a task. The shared case's rows are
 * SHARE_DIM wide, so that its job outlasts the other replica's idle poll
 * (one second) many times over on any machine. Against
 * PostgreSQL (FARMSD_TEST_BACKEND=postgresql) two replicas A and B, each
 * with one runner (--workers 1), share one database and one blob folder;
 * on SQLite, which one process serves, one process with two runners
 * (--workers 2) shares the tasks between its runners, and "the other
 * replica" of a kill or a stop is the same process started again. Each
 * replica logs a line per task done (--log-level debug: job, task, runner,
 * attempt, cache_hit), read back from the server logs:
 *   - shared: the job succeeds; both replicas (SQLite: both runners) ran
 *     some of its tasks; every tensor was analysed exactly once (one done
 *     line per row, no cache hit); the layers equal `farmsd analyze`;
 *   - kill -9 of A mid-job: B (SQLite: the restarted process) finishes the
 *     job after A's lease; every row done exactly once; only A's tasks in
 *     flight ran again (attempt 2);
 *   - cancel mid-job: the job is canceled, at most the tasks in flight at
 *     the cancel finish after it, and the next job runs to success;
 *   - SIGTERM of A mid-job: A exits 0 after the task at hand, B (SQLite:
 *     the restarted process) finishes the job; every row done exactly once;
 *   - --analysis-memory below one task's estimate: one task at a time (by
 *     the claim lines' running=), the job succeeds; with the default budget
 *     the two runners of one process ran tasks side by side (SQLite).
 * Bounded waits everywhere, no timing asserted. Run from the repository
 * root after `make test-build`.
 */
#include "tests/check.h"
#include "tests/svc_harness.h"

#define N_LAYERS     10
#define DIM          768
#define SHARE_DIM    1536 /* ~8x a DIM row: the shared job lasts ~6 s here */
#define LEASE_S      "10" /* long: a loaded machine's stall must not lapse a lease */
#define KILL_LEASE_S "3"  /* the kill case waits one lease for A's tasks */
#define WAIT_S       180.0

static char tmp_dir[256];

/* The tasks of job `job` a server log says were done, from byte `from`:
 * per row the number of done lines (done[ord]), those served from the
 * cache, those on a second or later attempt, and the runners seen (bit i:
 * runner i). */
struct done_lines {
    int done[N_LAYERS];
    int n_lines, n_hits, n_retried;
    unsigned runners;
    int n_claims;    /* "claimed" lines */
    int max_running; /* the most tasks the process ran at once, by its claim lines */
};

static void parse_done(const char *log_path, long long job, size_t from, struct done_lines *d)
{
    size_t len = 0;
    char *log = svc_slurp(log_path, &len);
    char key[64];

    memset(d, 0, sizeof(*d));
    snprintf(key, sizeof(key), "job=%lld task=", job);
    for (char *p = log != NULL && from < len ? log + from : NULL; p != NULL && *p != '\0';) {
        char *nl = strchr(p, '\n'), *k;

        if (nl != NULL)
            *nl = '\0';
        k = strstr(p, key);
        if (k != NULL && strstr(p, "msg=\"claimed\"") != NULL) {
            const char *r = strstr(p, " running=");
            int running = r != NULL ? (int)strtol(r + 9, NULL, 10) : 0;
            d->n_claims++;
            d->max_running = running > d->max_running ? running : d->max_running;
        }
        if (k != NULL && strstr(p, "msg=\"done\"") != NULL) {
            long ord = strtol(k + strlen(key), NULL, 10);
            const char *r = strstr(p, " runner="), *a = strstr(p, " attempt="),
                       *h = strstr(p, " cache_hit=");
            if (ord >= 0 && ord < N_LAYERS)
                d->done[ord]++;
            d->n_lines++;
            d->runners |= r != NULL ? 1u << (strtoul(r + 8, NULL, 10) & 31) : 0;
            d->n_retried += a != NULL && strtol(a + 9, NULL, 10) >= 2;
            d->n_hits += h != NULL && strtol(h + 11, NULL, 10) == 1;
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    free(log);
}

/* The sum of two logs' done lines. */
static void add_done(struct done_lines *sum, const struct done_lines *d)
{
    for (int i = 0; i < N_LAYERS; i++)
        sum->done[i] += d->done[i];
    sum->n_lines += d->n_lines;
    sum->n_hits += d->n_hits;
    sum->n_retried += d->n_retried;
    sum->runners |= d->runners;
    sum->n_claims += d->n_claims;
    sum->max_running = d->max_running > sum->max_running ? d->max_running : sum->max_running;
}

/* Every row of the job was done exactly once. */
static void check_each_row_once(const struct done_lines *d)
{
    for (int i = 0; i < N_LAYERS; i++)
        CHECK_EQ_INT(d->done[i], 1);
    CHECK_EQ_INT(d->n_lines, N_LAYERS);
}

/* Start a replica on data folder `name` under tmp_dir sharing `blobs`;
 * `workers` runners; the kill case's replicas ("kill-*") with a short
 * lease; `budget` its --analysis-memory (NULL: the default). On
 * PostgreSQL only the first replica of a case (`fresh`) starts from an
 * empty database. */
static int start_replica_ex(struct svc *s, const char *name, const char *workers, int fresh,
                            const char *budget)
{
    char data[512], blobs[512], marker[600];
    const char *lease = strncmp(name, "kill", 4) == 0 ? KILL_LEASE_S : LEASE_S;
    const char *extra[] = {"--workers",   workers,   "--blobs",
                           blobs,         "--lease", lease,
                           "--log-level", "debug",   budget != NULL ? "--analysis-memory" : NULL,
                           budget,        NULL};
    int fd;

    snprintf(data, sizeof(data), "%s/%s", tmp_dir, name);
    snprintf(blobs, sizeof(blobs), "%s/blobs", tmp_dir);
    mkdir(data, 0700);
    snprintf(marker, sizeof(marker), "%s/.pg-test-db", data);
    if (!fresh && svc_on_pg()) { /* join the database the first replica reset */
        fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    return svc_start(s, data, extra);
}

static int start_replica(struct svc *s, const char *name, const char *workers, int fresh)
{
    return start_replica_ex(s, name, workers, fresh, NULL);
}

/* Write a checkpoint with `seed` (each case its own weights: no cache hits
 * across cases) and POST it as run `run` step 1 through `s`: the job id,
 * or -1. */
static long long submit_dim(const struct svc *s, const char *run, uint64_t seed, int dim,
                            char *file, size_t len)
{
    struct svc_resp r;
    char path[256];
    long long id = -1;

    snprintf(file, len, "%s/%s.safetensors", tmp_dir, run);
    if (!svc_write_gaussian_st(file, N_LAYERS, dim, dim, seed))
        return -1;
    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints?step=1", run);
    if (svc_upload(s, path, file, NULL, &r) == 202 && r.json != NULL)
        id = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);
    return id;
}

/* submit_dim with rows DIM x DIM. */
static long long submit(const struct svc *s, const char *run, uint64_t seed, char *file, size_t len)
{
    return submit_dim(s, run, seed, DIM, file, len);
}

/* Wait until the logs of `a` and `b` (may be NULL) hold at least `n` done
 * lines of job `job` (bounded). 1 if they do. */
static int wait_done_lines(const struct svc *a, const struct svc *b, long long job, int n)
{
    double until = svc_now() + WAIT_S;
    struct done_lines da, db;

    while (svc_now() < until) {
        parse_done(a->log, job, 0, &da);
        if (b != NULL) {
            parse_done(b->log, job, 0, &db);
            add_done(&da, &db);
        }
        if (da.n_lines >= n)
            return 1;
        svc_sleep_ms(50);
    }
    fprintf(stderr, "job %lld: fewer than %d tasks done after %.0f s\n", job, n, WAIT_S);
    return 0;
}

/* The job succeeded with every row done and `max_hits` cache hits at most. */
static void check_succeeded(const struct svc *s, long long id, int max_hits)
{
    cJSON *job = svc_wait_job(s, id, WAIT_S);
    const cJSON *p = svc_j(job, "progress");

    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    CHECK_EQ_INT((long)svc_jn(p, "tensors_total"), N_LAYERS);
    CHECK_EQ_INT((long)svc_jn(p, "tensors_done"), N_LAYERS);
    CHECK(svc_jn(p, "cache_hits") >= 0 && svc_jn(p, "cache_hits") <= max_hits);
    cJSON_Delete(job);
}

/* Replica A (SQLite: with two runners; PostgreSQL: one) on a fresh
 * database and, on PostgreSQL, replica B beside it with one; then a new
 * checkpoint of run `run` (random with `seed`, rows dim x dim, written to
 * `file`) submitted through A. Returns the job id. */
static long long start_and_submit(struct svc *a, struct svc *b, const char *run, uint64_t seed,
                                  int dim, char *file, size_t len)
{
    char name[64];
    int pg = svc_on_pg();
    long long id;

    snprintf(name, sizeof(name), "%s-a", run);
    CHECK(start_replica(a, name, pg ? "1" : "2", 1));
    snprintf(name, sizeof(name), "%s-b", run);
    if (pg)
        CHECK(start_replica(b, name, "1", 0));
    id = submit_dim(a, run, seed, dim, file, len);
    CHECK(id > 0);
    return id;
}

/* The done lines of job `id` in A's log, plus those in B's (B not NULL,
 * alone to *db) into *da. */
static void parse_done_both(const struct svc *a, const struct svc *b, long long id,
                            struct done_lines *da, struct done_lines *db)
{
    parse_done(a->log, id, 0, da);
    if (b != NULL) {
        parse_done(b->log, id, 0, db);
        add_done(da, db);
    }
}

/* Stop A and B (when not NULL), each exiting 0; remove the checkpoint `file`. */
static void stop_replicas(struct svc *a, struct svc *b, const char *file)
{
    CHECK_EQ_INT(svc_stop(a), 0);
    if (b != NULL)
        CHECK_EQ_INT(svc_stop(b), 0);
    unlink(file);
}

/* Both replicas (SQLite: both runners of the one process) run tasks of one
 * checkpoint; each row is analysed once; the results are the CLI's. */
static void test_two_replicas_share_one_checkpoint(void)
{
    struct svc a, b = {.pid = -1};
    struct done_lines da, db;
    char file[512];
    long long id;
    int pg = svc_on_pg();

    id = start_and_submit(&a, &b, "share", 11, SHARE_DIM, file, sizeof(file));
    check_succeeded(pg ? &b : &a, id, 0);
    parse_done(a.log, id, 0, &da);
    if (pg) {
        parse_done(b.log, id, 0, &db);
        CHECK(da.n_lines >= 1); /* A ran some of the tasks ... */
        CHECK(db.n_lines >= 1); /* ... and so did B */
        add_done(&da, &db);
    } else {
        CHECK_EQ_INT(da.runners, 3);     /* runner 0 and runner 1 ... */
        CHECK_EQ_INT(da.max_running, 2); /* ... side by side (the budget allows it) */
    }
    check_each_row_once(&da);
    CHECK_EQ_INT(da.n_hits, 0);
    CHECK_EQ_INT(da.n_retried, 0);
    svc_check_layers_as_analyze(pg ? &b : &a, "share", 1, file, pg ? 1 : 2, N_LAYERS);
    stop_replicas(&a, pg ? &b : NULL, file);
}

/* kill -9 of A mid-job: the job still succeeds, each row done once; only
 * A's tasks in flight ran again. */
static void test_killed_replica_loses_only_its_tasks_in_flight(void)
{
    struct svc a, b = {.pid = -1};
    struct done_lines da, db;
    char file[512];
    long long id;
    int pg = svc_on_pg();

    id = start_and_submit(&a, &b, "kill", 12, DIM, file, sizeof(file));
    CHECK(wait_done_lines(&a, NULL, id, 2)); /* A is in the middle of the job */
    svc_crash(&a);
    if (!pg) /* SQLite: the same process again (its start re-queues the tasks) */
        CHECK(start_replica(&a, "kill-a", "2", 0));
    check_succeeded(pg ? &b : &a, id, pg ? 1 : 2); /* A may have cached its task in flight */
    parse_done_both(&a, pg ? &b : NULL, id, &da, &db);
    if (pg)
        CHECK(db.n_lines >= 1);
    check_each_row_once(&da);
    CHECK(da.n_retried <= (pg ? 1 : 2)); /* A's runners' tasks in flight at the kill */
    svc_check_layers_as_analyze(pg ? &b : &a, "kill", 1, file, pg ? 1 : 2, N_LAYERS);
    if (!pg)
        CHECK_EQ_INT(svc_stop(&a), 0);
    svc_crash(&a);
    if (pg)
        CHECK_EQ_INT(svc_stop(&b), 0);
    unlink(file);
}

/* Cancel mid-job: canceled; no task of it is done after the tasks in
 * flight; the next job runs. */
static void test_cancel_mid_job_stops_its_tasks(void)
{
    struct svc a, b = {.pid = -1};
    struct done_lines da, db;
    struct svc_resp r;
    char file[512], file2[512], path[64];
    long long id, id2;
    int pg = svc_on_pg(), at_cancel;
    cJSON *job;

    id = start_and_submit(&a, &b, "cancel", 13, DIM, file, sizeof(file));
    CHECK(wait_done_lines(&a, pg ? &b : NULL, id, 2));
    snprintf(path, sizeof(path), "/v1/jobs/%lld", id);
    CHECK_EQ_INT(svc_req(&a, "DELETE", path, NULL, NULL, 0, NULL, &r), 200);
    CHECK_STR_EQ(svc_js(r.json, "state"), "canceled");
    svc_resp_free(&r);
    parse_done_both(&a, pg ? &b : NULL, id, &da, &db);
    at_cancel = da.n_lines;
    id2 = submit(pg ? &b : &a, "after-cancel", 14, file2, sizeof(file2));
    CHECK(id2 > 0);
    check_succeeded(&a, id2, 0);
    job = svc_job(&a, id);
    CHECK_STR_EQ(svc_js(job, "state"), "canceled");
    cJSON_Delete(job);
    parse_done_both(&a, pg ? &b : NULL, id, &da, &db);
    CHECK(da.n_lines <= at_cancel + 2); /* the two runners' tasks in flight at most */
    CHECK(da.n_lines < N_LAYERS);
    for (int i = 0; i < N_LAYERS; i++)
        CHECK(da.done[i] <= 1);
    stop_replicas(&a, pg ? &b : NULL, file);
    unlink(file2);
}

/* SIGTERM of A mid-job: A exits 0 after the task at hand; its remaining
 * work is handed back and finished by B (SQLite: after the restart). */
static void test_sigterm_hands_tasks_back(void)
{
    struct svc a, b = {.pid = -1};
    struct done_lines da, db;
    char file[512];
    long long id;
    int pg = svc_on_pg();

    id = start_and_submit(&a, &b, "term", 15, DIM, file, sizeof(file));
    CHECK(wait_done_lines(&a, NULL, id, 2));
    CHECK_EQ_INT(svc_stop(&a), 0);
    parse_done(a.log, id, 0, &da);
    CHECK(da.n_lines < N_LAYERS); /* stopped mid-job */
    if (!pg)
        CHECK(start_replica(&a, "term-a", "2", 0));
    check_succeeded(pg ? &b : &a, id, 0);
    parse_done_both(&a, pg ? &b : NULL, id, &da, &db);
    if (pg)
        CHECK(db.n_lines >= 1);
    check_each_row_once(&da);
    CHECK_EQ_INT(da.n_hits, 0);              /* nothing analysed before the stop was lost */
    stop_replicas(pg ? &b : &a, NULL, file); /* the one still running */
}

/* --analysis-memory below one task's estimate: the process runs one task
 * at a time (one that does not fit waits unless nothing runs here), and
 * the job still succeeds. */
static void test_memory_budget_runs_one_task_at_a_time(void)
{
    struct svc a;
    struct done_lines d;
    char file[512];
    long long id;

    CHECK(start_replica_ex(&a, "budget", "2", 1, "1M"));
    id = submit(&a, "budget", 16, file, sizeof(file));
    CHECK(id > 0);
    check_succeeded(&a, id, 0);
    parse_done(a.log, id, 0, &d);
    check_each_row_once(&d);
    CHECK_EQ_INT(d.n_claims, N_LAYERS);
    CHECK_EQ_INT(d.max_running, 1);
    CHECK_EQ_INT(svc_stop(&a), 0);
    unlink(file);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!svc_mkdtemp("tasks", tmp_dir, sizeof(tmp_dir))) {
        CHECK(!"temporary folder");
        return check_report("test_service_tasks");
    }
    test_two_replicas_share_one_checkpoint();
    test_killed_replica_loses_only_its_tasks_in_flight();
    test_cancel_mid_job_stops_its_tasks();
    test_sigterm_hands_tasks_back();
    test_memory_budget_runs_one_task_at_a_time();
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    return check_report("test_service_tasks");
}
