/* test_replicas.c -- several `farmsd serve` replicas on one PostgreSQL
 * database and one blob folder (README "Beyond one machine").
 *
 * The reference: one replica on SQLite (the default) analyses the
 * three-step MLP and LLaMA-style runs. Then, against PostgreSQL
 * (FARMSD_TEST_PG_URL, started by `make test` with tests/pg_cluster.sh):
 *   - two replicas A and B: the uploads go through A, the histories read
 *     through B equal A's (body and ETag) and the reference; every tensor
 *     is analysed exactly once across both (the jobs' counters sum to the
 *     rows of the shared result cache); a run deleted through B answers
 *     404 through A at once (its cached ETags too), its blobs leave the
 *     shared folder, the result cache stays;
 *   - kill -9 of A while it holds a job: B finishes it, and not before the
 *     leases of what A held (the job, or once planned its tasks) ran out;
 *     every acknowledged checkpoint has its succeeded job; the histories
 *     equal the reference;
 *   - `farmsd migrate` of the reference's SQLite database into PostgreSQL:
 *     a replica on it reads the same histories; a second migrate adds
 *     nothing; new jobs get ids after the migrated ones;
 *   - a database outage (tests/pg_cluster.sh halt): requests get 503 with
 *     Retry-After, /readyz says not ready, the replica does not crash; when
 *     the database is back (resume) it serves and analyses again by itself.
 * Runs build/san/farmsd from the repository root (tests/serve_fixture.h).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/err.h"
#include "storage/store_tasks.h"
#include "tests/check.h"
#include "tests/pg_util.h"
#include "tests/serve_fixture.h"

#define FIX     "tests/fixtures/checkpoints/"
#define N_UPL   6
#define LEASE_S "2"
#define N_HIST  4

struct upl {
    const char *run;
    long step;
    const char *file;
};

static const struct upl UPLOADS[N_UPL] = {
    {"mlp", 0, FIX "mlp/mlp_step0000.safetensors"},
    {"mlp", 100, FIX "mlp/mlp_step0100.safetensors"},
    {"mlp", 500, FIX "mlp/mlp_step0500.safetensors"},
    {"llama", 0, FIX "llama/llama_step0000.safetensors"},
    {"llama", 100, FIX "llama/llama_step0100.safetensors"},
    {"llama", 500, FIX "llama/llama_step0500.safetensors"},
};

/* The reads compared across replicas and backends. */
static const char *const HIST[N_HIST] = {
    "/v1/runs/mlp/history?metric=alpha", "/v1/runs/llama/history?metric=alpha",
    "/v1/runs/mlp/history?metric=entropy", "/v1/runs/llama/history?metric=stable_rank"};

struct outcome {
    char *body[N_HIST]; /* owned */
    int64_t analysed;   /* sum over the jobs of tensors_done - cache_hits */
    int ok;
};

static void outcome_free(struct outcome *o)
{
    for (int i = 0; i < N_HIST; i++)
        free(o->body[i]);
    memset(o, 0, sizeof *o);
}

/* PUT one checkpoint; its job id, or -1 (the upload was not acknowledged). */
static long upload(const struct srv *s, const struct upl *u)
{
    char url[512];
    struct http_res r;
    cJSON *j;
    long id = -1;

    snprintf(url, sizeof url, "%s/v1/runs/%s/checkpoints?step=%ld", s->url, u->run, u->step);
    http_do(url, u->file, NULL, &r);
    if ((r.status == 202 || r.status == 200) && (j = cJSON_Parse(r.body)) != NULL) {
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(j, "id");

        id = cJSON_IsNumber(idj) ? (long)idj->valuedouble : -1;
        cJSON_Delete(j);
    }
    free(r.body);
    return id;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Wait (through `s`) until job `id` ends; add its analysed tensors. 1 if
 * it succeeded. */
static int wait_job(const struct srv *s, long id, int64_t *analysed, int timeout_s)
{
    char path[64];

    snprintf(path, sizeof path, "/v1/jobs/%ld", id);
    for (int tries = 0; tries < timeout_s * 10; tries++) {
        cJSON *j = http_json(s, path);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "state");
        int done = cJSON_IsString(st) && strcmp(st->valuestring, "queued") != 0 &&
                   strcmp(st->valuestring, "running") != 0;
        int ok = done && strcmp(st->valuestring, "succeeded") == 0;

        if (ok) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "progress");

            *analysed += (int64_t)(jnum(p, "tensors_done") - jnum(p, "cache_hits"));
        }
        cJSON_Delete(j);
        if (done)
            return ok;
        srv_sleep_ms(100);
    }
    return 0;
}

/* GET each HIST read through `s`: body (and ETag into etags, may be NULL). */
static void read_hist(const struct srv *s, struct outcome *o, char etags[N_HIST][96])
{
    char url[512];
    struct http_res r;

    for (int i = 0; i < N_HIST; i++) {
        snprintf(url, sizeof url, "%s%s", s->url, HIST[i]);
        http_do(url, NULL, NULL, &r);
        CHECK_EQ_INT(r.status, 200);
        o->body[i] = r.body;
        if (etags != NULL)
            snprintf(etags[i], 96, "%s", r.etag);
    }
}

static int64_t pg_count(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQexec(c, sql);
    int64_t n = -1;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return n;
}

/* One text value of a query (into buf, "" if none). */
static void pg_text(const char *url, const char *sql, char *buf, size_t len)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQexec(c, sql);

    buf[0] = '\0';
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1)
        snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
}

/* The `owner=` of a replica's listening line. */
static void owner_of(const struct srv *s, char *buf, size_t len)
{
    char line[1024];
    FILE *f = fopen(s->log, "r");

    buf[0] = '\0';
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        const char *o = strstr(line, " owner=");

        if (o != NULL && strstr(line, "msg=\"listening\"") != NULL)
            snprintf(buf, len, "%.*s", (int)strcspn(o + 7, " \n"), o + 7);
    }
    if (f != NULL)
        fclose(f);
}

static void test_migrate_from_sqlite(const char *url, const char *db, const struct outcome *ref);
static int start_replica(struct srv *s, const char *url, const char *blobs);

/* --- The reference: one replica, SQLite ------------------------------------------- */

static void run_reference(struct outcome *ref, const char *url)
{
    char db[160];

    struct srv s;
    long ids[N_UPL];

    if (!srv_start(&s, NULL)) {
        CHECK(!"reference replica started");
        return;
    }
    for (int i = 0; i < N_UPL; i++)
        ids[i] = upload(&s, &UPLOADS[i]);
    ref->ok = 1;
    for (int i = 0; i < N_UPL; i++) {
        CHECK(ids[i] > 0);
        ref->ok &= ids[i] > 0 && wait_job(&s, ids[i], &ref->analysed, 120);
    }
    CHECK(ref->ok);
    read_hist(&s, ref, NULL);
    CHECK(ref->analysed > 10);
    snprintf(db, sizeof db, "sqlite:%s/data/farms.db", s.dir);
    if (url != NULL && ref->ok)
        test_migrate_from_sqlite(url, db, ref); /* the reference replica is idle */
    CHECK_EQ_INT(srv_stop(&s), 0);
}

/* --- Two replicas, one database, one blob folder ------------------------------------- */

static int start_replica(struct srv *s, const char *url, const char *blobs)
{
    const char *extra[] = {"--db", url, "--blobs", blobs, "--lease", LEASE_S, NULL};

    return srv_start(s, extra);
}

/* DELETE s->url + path: the status (0 on a transport error). */
static long http_delete(const struct srv *s, const char *path)
{
    CURL *c = curl_easy_init();
    struct http_res r;
    char url[512];

    memset(&r, 0, sizeof(r));
    if (c == NULL)
        return 0;
    snprintf(url, sizeof url, "%s%s", s->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    free(r.body);
    return r.status;
}

/* Regular files under `dir` (find | wc -l), -1 on failure. */
static long count_files(const char *dir)
{
    char cmd[256];
    char line[64] = "";
    char *end = NULL;
    long n = -1;
    FILE *p;

    snprintf(cmd, sizeof cmd, "find '%s' -type f | wc -l", dir);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    if (fgets(line, sizeof line, p) != NULL) {
        n = strtol(line, &end, 10);
        if (end == line)
            n = -1;
    }
    pclose(p);
    return n;
}

/* GET s->url + path with If-None-Match `etag` (NULL: none): the status. */
static long get_inm(const struct srv *s, const char *path, const char *etag)
{
    char url[512], hdr[160];
    struct http_res r;

    snprintf(url, sizeof url, "%s%s", s->url, path);
    snprintf(hdr, sizeof hdr, "If-None-Match: %s", etag ? etag : "");
    http_do(url, NULL, etag ? hdr : NULL, &r);
    free(r.body);
    return r.status;
}

/* A run deleted through B is gone through A at once, A's cached bodies
 * included; its blobs go from the shared folder, the other run's and the
 * shared result cache stay. */
static void check_delete_across_replicas(const char *url, const char *blobs, struct srv *ra,
                                         struct srv *rb, char etag_a[N_HIST][96])
{
    int64_t results = pg_count(url, "SELECT count(*) FROM results");

    CHECK_EQ_INT(get_inm(ra, HIST[0], etag_a[0]), 304); /* A has it cached */
    CHECK_EQ_INT(http_delete(rb, "/v1/runs/mlp"), 200);
    CHECK_EQ_INT(get_inm(ra, HIST[0], etag_a[0]), 404);
    CHECK_EQ_INT(get_inm(ra, HIST[0], NULL), 404);
    CHECK_EQ_INT(get_inm(ra, HIST[1], etag_a[1]), 304); /* llama untouched */
    CHECK_EQ_INT(http_delete(ra, "/v1/runs/mlp"), 404);
    CHECK_EQ_INT(pg_count(url, "SELECT count(*) FROM checkpoints"), 3);
    CHECK_EQ_INT(pg_count(url, "SELECT count(*) FROM jobs"), 3);
    CHECK_EQ_INT(pg_count(url, "SELECT count(*) FROM results"), results);
    CHECK_EQ_INT(count_files(blobs), 3);
}


static void test_two_replicas_share_work_and_reads(const char *url, const struct outcome *ref)
{
    char blobs[] = "/tmp/farmsd-blobs-XXXXXX", etag_a[N_HIST][96], etag_b[N_HIST][96], cmd[128];
    struct outcome a = {0}, b = {0};
    struct srv ra, rb;
    long ids[N_UPL];

    ERR_ASSERT(pgu_reset(url) == 0 && mkdtemp(blobs) != NULL);
    if (!start_replica(&ra, url, blobs) || !start_replica(&rb, url, blobs)) {
        CHECK(!"both replicas started");
        return;
    }
    for (int i = 0; i < N_UPL; i++)
        ids[i] = upload(&ra, &UPLOADS[i]); /* through A */
    b.ok = 1;
    for (int i = 0; i < N_UPL; i++) {
        CHECK(ids[i] > 0);
        b.ok &= ids[i] > 0 && wait_job(&rb, ids[i], &b.analysed, 120); /* through B */
    }
    CHECK(b.ok);
    read_hist(&ra, &a, etag_a);
    read_hist(&rb, &b, etag_b);
    for (int i = 0; i < N_HIST; i++) {
        CHECK_STR_EQ(etag_b[i], etag_a[i]);
        CHECK(a.body[i] != NULL && b.body[i] != NULL && strcmp(a.body[i], b.body[i]) == 0);
        CHECK(ref->body[i] != NULL && b.body[i] != NULL && strcmp(ref->body[i], b.body[i]) == 0);
    }
    /* each tensor analysed once: the analyses add up to the shared cache's rows,
       and to what one replica alone analysed */
    CHECK_EQ_INT(b.analysed, pg_count(url, "SELECT count(*) FROM results"));
    CHECK_EQ_INT(b.analysed, ref->analysed);
    CHECK_EQ_INT(pg_count(url, "SELECT count(*) FROM jobs WHERE state = 2"), N_UPL);
    check_delete_across_replicas(url, blobs, &ra, &rb, etag_a);
    CHECK_EQ_INT(srv_stop(&ra), 0);
    CHECK_EQ_INT(srv_stop(&rb), 0);
    outcome_free(&a);
    outcome_free(&b);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", blobs);
    CHECK_EQ_INT(system(cmd), 0);
}

/* --- kill -9 of a replica that holds work ------------------------------------------------ */

/* 1 if the log of `s` has a line of job `id` with `what` (a job's end is
 * logged by the replica whose runner finished it; its claimed_by stays the
 * replica that planned it). */
static int log_has_job_line(const struct srv *s, long id, const char *what)
{
    FILE *f = fopen(s->log, "r");
    char line[4096], key[48];
    int found = 0;

    snprintf(key, sizeof key, " job=%ld ", id);
    while (f != NULL && !found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, key) != NULL && strstr(line, what) != NULL;
    if (f != NULL)
        fclose(f);
    return found;
}

static void test_killed_replica_work_is_claimed_again(const char *url, const struct outcome *ref)
{
    char blobs[] = "/tmp/farmsd-blobs-XXXXXX", owner_a[64], owner_b[64], held[64], cmd[160],
         sql[256], lease_end[64];
    struct outcome b = {0};
    struct srv ra, rb;
    long ids[N_UPL], victim = -1;
    int ws = 0;

    ERR_ASSERT(pgu_reset(url) == 0 && mkdtemp(blobs) != NULL);
    if (!start_replica(&ra, url, blobs)) {
        CHECK(!"replica A started");
        return;
    }
    owner_of(&ra, owner_a, sizeof owner_a);
    CHECK(owner_a[0] != '\0');
    for (int i = 0; i < N_UPL; i++) {
        ids[i] = upload(&ra, &UPLOADS[i]);
        CHECK(ids[i] > 0); /* acknowledged */
    }
    /* kill -9 while A holds a job. A job is running nearly all the time; if
       the kill fell between two jobs, A starts again and is killed again. */
    for (int attempt = 0; attempt < 5 && victim < 0; attempt++) {
        if (attempt > 0) {
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", ra.dir);
            CHECK_EQ_INT(system(cmd), 0);
            if (!start_replica(&ra, url, blobs))
                break;
            owner_of(&ra, owner_a, sizeof owner_a);
        }
        for (int tries = 0; tries < 2000; tries++) {
            if (pg_count(url, "SELECT count(*) FROM jobs WHERE state = 1") > 0)
                break;
            srv_sleep_ms(2);
        }
        kill(ra.pid, SIGKILL);
        waitpid(ra.pid, &ws, 0);
        CHECK(WIFSIGNALED(ws));
        victim = pg_count(url, "SELECT coalesce(min(id), -1) FROM jobs WHERE state = 1");
    }
    if (victim < 0) {
        CHECK(!"a job was running on A when it was killed");
        return;
    }
    snprintf(sql, sizeof sql, "SELECT claimed_by FROM jobs WHERE id = %ld", victim);
    pg_text(url, sql, held, sizeof held);
    CHECK_STR_EQ(held, owner_a); /* A died holding it */
    /* What A held when it died: the job itself until it is planned, then
       the tasks it had claimed (queued tasks of a planned job are anyone's
       at once, so a job whose tasks A held none of may end before the
       job's own lease). */
    snprintf(sql, sizeof sql,
             "SELECT CASE WHEN j.planned = 0 THEN j.lease_until ELSE coalesce((SELECT "
             "max(t.lease_until) FROM tasks t WHERE t.job_id = j.id AND t.state = %d AND "
             "t.claimed_by = j.claimed_by), 0) END FROM jobs j WHERE j.id = %ld",
             STORE_TASK_RUNNING_INT, victim);
    pg_text(url, sql, lease_end, sizeof lease_end);

    if (!start_replica(&rb, url, blobs)) {
        CHECK(!"replica B started");
        return;
    }
    owner_of(&rb, owner_b, sizeof owner_b);
    b.ok = 1;
    for (int i = 0; i < N_UPL; i++)
        b.ok &= wait_job(&rb, ids[i], &b.analysed, 120);
    CHECK(b.ok);                                             /* no acknowledged checkpoint lost */
    CHECK(log_has_job_line(&rb, victim, "state=succeeded")); /* B finished A's job */
    snprintf(sql, sizeof sql, "SELECT (finished >= %s)::int FROM jobs WHERE id = %ld",
             lease_end[0] ? lease_end : "0", victim);
    CHECK_EQ_INT(pg_count(url, sql), 1); /* only after A's lease ended */
    CHECK_EQ_INT(pg_count(url, "SELECT count(*) FROM jobs WHERE state = 2"), N_UPL);
    CHECK_EQ_INT(pg_count(url, "SELECT count(*) FROM checkpoints"), N_UPL);
    read_hist(&rb, &b, NULL);
    for (int i = 0; i < N_HIST; i++)
        CHECK(ref->body[i] != NULL && b.body[i] != NULL && strcmp(ref->body[i], b.body[i]) == 0);
    CHECK_EQ_INT(srv_stop(&rb), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", blobs, ra.dir);
    CHECK_EQ_INT(system(cmd), 0);
    outcome_free(&b);
}

/* --- farmsd migrate ------------------------------------------------------------------ */

/* Run `farmsd migrate`; its exit status, its stdout line in out. */
static int migrate(const char *from, const char *to, char *out, size_t len)
{
    char cmd[1024];
    FILE *p;
    int st;

    snprintf(cmd, sizeof cmd, "%s migrate --from '%s' --to '%s' 2>&1", SRV_FARMSD, from, to);
    out[0] = '\0';
    if ((p = popen(cmd, "r")) == NULL)
        return -1;
    if (fgets(out, (int)len, p) == NULL)
        out[0] = '\0';
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_migrate_from_sqlite(const char *url, const char *db, const struct outcome *ref)
{
    char blobs[] = "/tmp/farmsd-blobs-XXXXXX", line[512], cmd[128];
    struct outcome m = {0};
    struct srv r;
    int64_t results;
    long id;

    ERR_ASSERT(pgu_reset(url) == 0 && mkdtemp(blobs) != NULL);
    CHECK_EQ_INT(migrate(db, url, line, sizeof line), 0);
    CHECK(strstr(line, "migrated sqlite -> postgresql") != NULL);
    results = pg_count(url, "SELECT count(*) FROM results");
    CHECK_EQ_INT(results, ref->analysed);
    CHECK_EQ_INT(pg_count(url, "SELECT count(*) FROM jobs WHERE state = 2"), N_UPL);
    /* again: idempotent */
    CHECK_EQ_INT(migrate(db, url, line, sizeof line), 0);
    CHECK(strstr(line, " 0 new") != NULL);
    CHECK_EQ_INT(pg_count(url, "SELECT count(*) FROM results"), results);
    CHECK_EQ_INT(pg_count(url, "SELECT count(*) FROM layers"),
                 pg_count(url, "SELECT count(*) FROM layers l JOIN checkpoints c ON "
                               "c.id = l.checkpoint_id"));
    if (!start_replica(&r, url, blobs)) {
        CHECK(!"replica on the migrated database started");
        return;
    }
    read_hist(&r, &m, NULL);
    for (int i = 0; i < N_HIST; i++)
        CHECK(ref->body[i] != NULL && m.body[i] != NULL && strcmp(ref->body[i], m.body[i]) == 0);
    /* a new checkpoint: a new job after the migrated ones, its tensors cache hits */
    {
        const struct upl again = {"mlp-copy", 0, FIX "mlp/mlp_step0000.safetensors"};
        int64_t analysed = 0;

        id = upload(&r, &again);
        CHECK_EQ_INT(id, N_UPL + 1);
        CHECK(id > 0 && wait_job(&r, id, &analysed, 60));
        CHECK_EQ_INT(analysed, 0);
    }
    CHECK_EQ_INT(srv_stop(&r), 0);
    outcome_free(&m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", blobs);
    CHECK_EQ_INT(system(cmd), 0);
}

/* --- Losing the database --------------------------------------------------------------- */

/* GET path: the status; its Retry-After header and whether the body
 * mentions `word` (both may be NULL). */
static long get_status(const struct srv *s, const char *path, char retry[16], const char *word,
                       int *has_word)
{
    char url[512];
    struct http_res r;

    snprintf(url, sizeof url, "%s%s", s->url, path);
    http_do(url, NULL, NULL, &r);
    if (retry != NULL)
        snprintf(retry, 16, "%s", r.retry_after);
    if (has_word != NULL)
        *has_word = r.body != NULL && strstr(r.body, word) != NULL;
    free(r.body);
    return r.status;
}

static void test_database_outage_gives_503_then_recovers(const char *url)
{
    char blobs[] = "/tmp/farmsd-blobs-XXXXXX", cmd[128], retry[16];
    const struct upl later = {"after-outage", 0, FIX "mlp/mlp_step0100.safetensors"};
    struct srv r;
    int64_t analysed = 0;
    long st = 0, id;
    int said = 0;

    ERR_ASSERT(pgu_reset(url) == 0 && mkdtemp(blobs) != NULL);
    if (!start_replica(&r, url, blobs)) {
        CHECK(!"replica started");
        return;
    }
    CHECK_EQ_INT(get_status(&r, "/readyz", NULL, NULL, NULL), 200);
    CHECK_EQ_INT(get_status(&r, "/v1/runs", NULL, NULL, NULL), 200);
    if (system("tests/pg_cluster.sh halt") != 0) {
        CHECK(!"the test cluster can be halted (tests/pg_cluster.sh)");
        srv_stop(&r);
        return;
    }
    CHECK_EQ_INT(get_status(&r, "/v1/runs", retry, NULL, NULL), 503);
    CHECK(strtol(retry, NULL, 10) >= 1);
    CHECK_EQ_INT(get_status(&r, "/v1/runs/mlp/history?metric=alpha", retry, NULL, NULL), 503);
    CHECK(strtol(retry, NULL, 10) >= 1);
    CHECK_EQ_INT(get_status(&r, "/readyz", retry, "database", &said), 503);
    CHECK(strtol(retry, NULL, 10) >= 1);
    CHECK(said); /* the reason names the database */
    CHECK_EQ_INT(get_status(&r, "/healthz", NULL, NULL, NULL), 200); /* the process is fine */
    CHECK_EQ_INT(waitpid(r.pid, NULL, WNOHANG), 0);                  /* not crashed */
    CHECK_EQ_INT(system("tests/pg_cluster.sh resume"), 0);
    for (int tries = 0; tries < 100 && st != 200; tries++) { /* backoff <= 5 s */
        srv_sleep_ms(100);
        st = get_status(&r, "/v1/runs", NULL, NULL, NULL);
    }
    CHECK_EQ_INT(st, 200);
    /* each request thread has its own connection, back within its backoff */
    st = 0;
    for (int tries = 0; tries < 100 && st != 200; tries++) {
        st = get_status(&r, "/readyz", NULL, NULL, NULL);
        if (st != 200)
            srv_sleep_ms(100);
    }
    CHECK_EQ_INT(st, 200);
    id = upload(&r, &later);
    CHECK(id > 0 && wait_job(&r, id, &analysed, 60)); /* the workers reconnected too */
    CHECK(analysed > 0);
    CHECK_EQ_INT(srv_stop(&r), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", blobs);
    CHECK_EQ_INT(system(cmd), 0);
}

int main(void)
{
    struct outcome ref = {0};
    const char *url;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    url = pgu_url();
    run_reference(&ref, url);
    if (url != NULL && ref.ok) {
        test_two_replicas_share_work_and_reads(url, &ref);
        test_killed_replica_work_is_claimed_again(url, &ref);
        test_database_outage_gives_503_then_recovers(url);
    }
    outcome_free(&ref);
    curl_global_cleanup();
    return check_report("test_replicas");
}
