/* test_store_alerts.c -- storage/store_alerts: rule sets, events with their
 * deliveries, the delivery claim (one owner at a time, a lapsed lease taken
 * over, a lost claim refused), the delivery log, the verdict counts of
 * /metrics, run deletion taking the run's alerts with it, and farmsd
 * migrate (store_copy) carrying them over.
 *
 * Every case runs on SQLite (a temp file database, several connections as
 * the service has) and again on PostgreSQL (FARMSD_TEST_PG_URL,
 * tests/pg_util.h). Claims are made at given moments (the `now` argument),
 * so a lapsed lease needs no sleep; nothing asserts a duration.
 */
#include "storage/store_alerts.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/formats/thash.h"
#include "storage/store.h"
#include "storage/store_jobs.h"
#include "storage/store_layers.h"
#include "storage/store_runs.h"
#include "tests/check.h"
#include "tests/pg_util.h"
#include "tests/store_util.h"

static const char PARAMS[] = "{\"window_rows\":2000,\"q_ratio\":1,\"xmin\":\"peak\"}";

static const char *g_pg; /* NULL: SQLite */
static char g_path[256];

static void fresh_db(void)
{
    stu_fresh(g_pg, "test_store_alerts", NULL, g_path, sizeof g_path);
}

static struct store *open_as(const char *owner)
{
    return stu_open(g_path, owner, 60);
}

/* Submit checkpoint (run, step); the job. */
static struct store_job submit(struct store *s, const char *run, int64_t step)
{
    struct store_job job;
    int existed = 0;

    ERR_ASSERT(stu_submit(s, run, step, NULL, PARAMS, &job, &existed, NULL) == ERR_OK);
    return job;
}

static void test_rule_sets(void)
{
    struct store *s;
    struct err e = {0};
    char *spec = (char *)"x";

    fresh_db();
    s = open_as("a");
    CHECK_EQ_INT(store_alert_rules_get(s, NULL, &spec, &e), ERR_OK);
    CHECK(spec == NULL); /* nothing stored: the built-in set applies */
    CHECK_EQ_INT(store_alert_rules_put(s, NULL, "[{\"name\":\"d\"}]", &e), ERR_OK);
    CHECK_EQ_INT(store_alert_rules_put(s, NULL, "[{\"name\":\"d2\"}]", &e), ERR_OK); /* replaces */
    CHECK_EQ_INT(store_alert_rules_get(s, NULL, &spec, &e), ERR_OK);
    CHECK_STR_EQ(spec, "[{\"name\":\"d2\"}]");
    free(spec);
    CHECK_EQ_INT(store_alert_rules_get(s, "nope", &spec, &e), ERR_NOTFOUND);
    CHECK(strstr(e.msg, "nope") != NULL);
    CHECK_EQ_INT(store_alert_rules_put(s, "nope", "[]", &e), ERR_NOTFOUND);
    submit(s, "r", 1);
    CHECK_EQ_INT(store_alert_rules_get(s, "r", &spec, &e), ERR_OK);
    CHECK(spec == NULL);
    CHECK_EQ_INT(store_alert_rules_put(s, "r", "[]", &e), ERR_OK);
    CHECK_EQ_INT(store_alert_rules_get(s, "r", &spec, &e), ERR_OK);
    CHECK_STR_EQ(spec, "[]");
    free(spec);
    CHECK_EQ_INT(store_alert_rules_put(s, "r", NULL, &e), ERR_OK); /* back to the default */
    CHECK_EQ_INT(store_alert_rules_get(s, "r", &spec, &e), ERR_OK);
    CHECK(spec == NULL);
    CHECK_EQ_INT(store_alert_rules_get(s, NULL, &spec, &e), ERR_OK); /* the default stays */
    CHECK_STR_EQ(spec, "[{\"name\":\"d2\"}]");
    free(spec);
    store_close(s);
}

static void test_body_splice(void)
{
    char *b = store_alert_body(7, "{\"run\":\"r\"}");

    CHECK_STR_EQ(b, "{\"event_id\":7,\"run\":\"r\"}");
    free(b);
    b = store_alert_body(8, "{}");
    CHECK_STR_EQ(b, "{\"event_id\":8}");
    free(b);
    CHECK(store_alert_body(9, "[1]") == NULL);
    CHECK(store_alert_body(9, "") == NULL);
}

/* Two events of job 1, one URL each; the same rule again adds nothing. */
static void test_events_and_their_deliveries(void)
{
    static const char *const urls[] = {"http://127.0.0.1:9/hook", "http://127.0.0.1:9/other"};
    struct store_alert_event_page *p = NULL, *p2 = NULL;
    struct store *s;
    struct store_job j;
    struct err e = {0};
    int64_t id1 = 0, id2 = 0, again = -1;

    fresh_db();
    s = open_as("a");
    j = submit(s, "r", 5);
    CHECK_EQ_INT(store_alert_event_add(s, "r", 5, j.id, "under_trained", 2, "{\"step\":5}", urls, 2,
                                       &id1, &e),
                 ERR_OK);
    CHECK_EQ_INT(store_alert_event_add(s, "r", 5, j.id, "traps", 1, "{\"step\":5,\"t\":1}", urls, 1,
                                       &id2, &e),
                 ERR_OK);
    CHECK(id1 > 0 && id2 > id1);
    CHECK_EQ_INT(store_alert_event_add(s, "r", 5, j.id, "traps", 1, "{}", urls, 1, &again, &e),
                 ERR_OK);
    CHECK_EQ_INT(again, 0);
    CHECK_EQ_INT(store_alert_event_add(s, "gone", 5, j.id, "traps", 1, "{}", urls, 1, &again, &e),
                 ERR_NOTFOUND);
    CHECK_EQ_INT(store_alert_events_list(s, "r", 0, NULL, &p, &e), ERR_OK);
    CHECK_EQ_INT(p->n, 2);
    if (p->n == 2) {
        CHECK_EQ_INT(p->items[0].id, id2); /* newest first */
        CHECK_STR_EQ(p->items[0].rule, "traps");
        CHECK_STR_EQ(p->items[0].body, "{\"step\":5,\"t\":1}");
        CHECK_EQ_INT(p->items[0].n_deliveries, 1);
        CHECK_EQ_INT(p->items[1].n_layers, 2);
        CHECK_EQ_INT(p->items[1].job_id, j.id);
        CHECK_EQ_INT(p->items[1].step, 5);
        CHECK_EQ_INT(p->items[1].n_deliveries, 2);
        if (p->items[1].n_deliveries == 2) {
            CHECK_STR_EQ(p->items[1].deliveries[0].url, urls[0]);
            CHECK_STR_EQ(p->items[1].deliveries[1].url, urls[1]);
            CHECK_EQ_INT(p->items[1].deliveries[0].state, STORE_DELIVERY_PENDING);
            CHECK_EQ_INT(p->items[1].deliveries[0].attempts, 0);
            CHECK_STR_EQ(p->items[1].deliveries[0].rule, "under_trained");
        }
    }
    CHECK_EQ_INT(store_alert_events_list(s, "r", 1, NULL, &p2, &e), ERR_OK);
    CHECK_EQ_INT(p2->n, 1);
    CHECK(p2->next_token[0] != '\0');
    store_alert_event_page_free(p2);
    p2 = NULL;
    CHECK_EQ_INT(store_alert_events_list(s, "r", 1, p->next_token, &p2, &e), ERR_OK);
    store_alert_event_page_free(p2);
    p2 = NULL;
    CHECK_EQ_INT(store_alert_events_list(s, "r", 0, "zz", &p2, &e), ERR_INVAL);
    CHECK_EQ_INT(store_alert_events_list(s, "gone", 0, NULL, &p2, &e), ERR_NOTFOUND);
    store_alert_event_page_free(p);
    store_close(s);
}

/* One row, two replicas: a held claim is not taken; the attempt's outcome
 * is written by the holder; a lapsed lease is taken over and the old
 * holder's late outcome refused. */
static void test_claim_attempt_and_lease(void)
{
    static const char *const urls[] = {"http://127.0.0.1:9/hook"};
    struct store *a, *b;
    struct store_job j;
    struct store_delivery d;
    struct err e = {0};
    char *body = NULL;
    int found = 0;
    int64_t ev = 0, counts[STORE_DELIVERY_STATE_COUNT];
    double due = 0, now;

    fresh_db();
    a = open_as("replica-a");
    b = open_as("replica-b");
    j = submit(a, "r", 1);
    CHECK_EQ_INT(
        store_alert_event_add(a, "r", 1, j.id, "low", 1, "{\"run\":\"r\"}", urls, 1, &ev, &e),
        ERR_OK);
    now = 1e10; /* far in the future: everything is due */
    CHECK_EQ_INT(store_delivery_claim(a, now, 60, &d, &body, &found, &due, &e), ERR_OK);
    CHECK_EQ_INT(found, 1);
    CHECK_EQ_INT(d.event_id, ev);
    CHECK_STR_EQ(d.url, urls[0]);
    CHECK_STR_EQ(d.run, "r");
    CHECK_STR_EQ(d.rule, "low");
    {
        char want[64];
        snprintf(want, sizeof want, "{\"event_id\":%" PRId64 ",\"run\":\"r\"}", ev);
        CHECK_STR_EQ(body, want);
    }
    free(body);
    body = NULL;
    CHECK_EQ_INT(store_delivery_claim(b, now, 60, &d, &body, &found, &due, &e), ERR_OK);
    CHECK_EQ_INT(found, 0); /* a holds it */
    CHECK(due > now);       /* its lease ends then */
    /* a's first attempt failed: pending again, due at now + 1 */
    CHECK_EQ_INT(store_delivery_attempt(a, d.id, STORE_DELIVERY_PENDING, 500, "", now + 1, &e),
                 ERR_OK);
    CHECK_EQ_INT(store_delivery_claim(b, now, 60, &d, &body, &found, &due, &e), ERR_OK);
    CHECK_EQ_INT(found, 0); /* not yet due */
    CHECK_NEAR(due, now + 1, 1e-3);
    /* b claims it when due, with a lease that lapses at once */
    CHECK_EQ_INT(store_delivery_claim(b, now + 1, 0.05, &d, &body, &found, &due, &e), ERR_OK);
    CHECK_EQ_INT(found, 1);
    CHECK_EQ_INT(d.attempts, 1);
    CHECK_EQ_INT(d.last_status, 500);
    free(body);
    body = NULL;
    /* a (after b's lease lapsed) takes it over; b's late outcome is refused */
    CHECK_EQ_INT(store_delivery_claim(a, now + 2, 60, &d, &body, &found, &due, &e), ERR_OK);
    CHECK_EQ_INT(found, 1);
    free(body);
    body = NULL;
    CHECK_EQ_INT(store_delivery_attempt(b, d.id, STORE_DELIVERY_DELIVERED, 200, "", 0, &e),
                 ERR_CONFLICT);
    CHECK_EQ_INT(store_delivery_attempt(a, d.id, STORE_DELIVERY_DELIVERED, 200, "", 0, &e), ERR_OK);
    CHECK_EQ_INT(store_delivery_claim(a, now + 3, 60, &d, &body, &found, &due, &e), ERR_OK);
    CHECK_EQ_INT(found, 0);
    CHECK_NEAR(due, 0, 0); /* nothing pending */
    CHECK_EQ_INT(store_delivery_counts(a, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_DELIVERY_PENDING], 0);
    CHECK_EQ_INT(counts[STORE_DELIVERY_DELIVERED], 1);
    CHECK_EQ_INT(counts[STORE_DELIVERY_FAILED], 0);
    store_close(a);
    store_close(b);
}

/* The log: newest first, by run and state, paginated. */
static void test_delivery_log(void)
{
    static const char *const urls[] = {"http://127.0.0.1:9/hook"};
    struct store_delivery_page *p = NULL;
    struct store_delivery d;
    struct store *s;
    struct err e = {0};
    char *body = NULL;
    int found = 0;
    int64_t ev[3] = {0};
    double due;

    fresh_db();
    s = open_as("a");
    for (int i = 0; i < 3; i++) {
        const char *run = i < 2 ? "r" : "q";
        struct store_job j = submit(s, run, i);
        CHECK_EQ_INT(store_alert_event_add(s, run, i, j.id, "low", 1, "{}", urls, 1, &ev[i], &e),
                     ERR_OK);
    }
    CHECK_EQ_INT(store_delivery_claim(s, 1e10, 60, &d, &body, &found, &due, &e), ERR_OK);
    free(body);
    CHECK_EQ_INT(
        store_delivery_attempt(s, d.id, STORE_DELIVERY_FAILED, 0, "connection refused", 0, &e),
        ERR_OK);
    CHECK_EQ_INT(store_deliveries_list(s, NULL, -1, 0, NULL, &p, &e), ERR_OK);
    CHECK_EQ_INT(p->n, 3);
    if (p->n == 3) {
        CHECK_STR_EQ(p->items[0].run, "q");
        CHECK_EQ_INT(p->items[2].state, STORE_DELIVERY_FAILED);
        CHECK_STR_EQ(p->items[2].last_error, "connection refused");
        CHECK_EQ_INT(p->items[2].attempts, 1);
        CHECK(p->items[2].done_at > 0);
    }
    store_delivery_page_free(p);
    CHECK_EQ_INT(store_deliveries_list(s, "r", STORE_DELIVERY_PENDING, 0, NULL, &p, &e), ERR_OK);
    CHECK_EQ_INT(p->n, 1);
    if (p->n == 1)
        CHECK_EQ_INT(p->items[0].event_id, ev[1]);
    store_delivery_page_free(p);
    CHECK_EQ_INT(store_deliveries_list(s, NULL, -1, 2, NULL, &p, &e), ERR_OK);
    CHECK_EQ_INT(p->n, 2);
    CHECK(p->next_token[0] != '\0');
    {
        struct store_delivery_page *p2 = NULL;
        CHECK_EQ_INT(store_deliveries_list(s, NULL, -1, 2, p->next_token, &p2, &e), ERR_OK);
        CHECK_EQ_INT(p2->n, 1);
        CHECK_STR_EQ(p2->next_token, "");
        store_delivery_page_free(p2);
    }
    store_delivery_page_free(p);
    CHECK_EQ_INT(store_deliveries_list(s, "gone", -1, 0, NULL, &p, &e), ERR_NOTFOUND);
    CHECK_STR_EQ(store_delivery_state_name(STORE_DELIVERY_FAILED), "failed");
    CHECK_EQ_INT(store_delivery_state_from_name("delivered"), STORE_DELIVERY_DELIVERED);
    CHECK_EQ_INT(store_delivery_state_from_name("done"), -1);
    store_close(s);
}

/* Layer rows of job j: warnings w[0..n) (status ok). */
static void put_rows(struct store *s, const struct store_job *j, const enum farms_warning *w,
                     size_t n)
{
    struct store_layer rows[8];
    char names[8][32];
    struct err e = {0};

    memset(rows, 0, sizeof rows);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "l%zu.weight", i);
        rows[i].name = names[i];
        rows[i].kind = LAYER_KIND_LINEAR;
        rows[i].dtype = DTYPE_F32;
        rows[i].ndim = 2;
        rows[i].shape[0] = rows[i].shape[1] = 8;
        rows[i].r.status = FARMS_STATUS_OK;
        rows[i].r.warning = w[i];
        rows[i].r.alpha = 3;
    }
    CHECK_EQ_INT(store_layers_put(s, j->checkpoint_id, j->settings_hash, rows, n, &e), ERR_OK);
    if (e.msg[0] != '\0')
        fprintf(stderr, "store_layers_put: %s\n", e.msg);
}

/* The gauges count the newest succeeded step of each run. */
static void test_verdicts(void)
{
    static const enum farms_warning w1[] = {FARMS_WARNING_NONE, FARMS_WARNING_UNDER_TRAINED};
    static const enum farms_warning w2[] = {FARMS_WARNING_UNDER_TRAINED,
                                            FARMS_WARNING_UNDER_TRAINED, FARMS_WARNING_OVER_TRAINED,
                                            FARMS_WARNING_SUSPECT_FIT, FARMS_WARNING_NONE};
    struct store_run_verdicts *g = NULL;
    struct store_job j1, j2, j3, claimed_job;
    struct store *s;
    struct err e = {0};
    int claimed = 0;
    size_t n = 9;

    fresh_db();
    s = open_as("a");
    j1 = submit(s, "r", 1);
    j2 = submit(s, "r", 2);
    j3 = submit(s, "r", 3); /* queued: not counted */
    for (int i = 0; i < 2; i++)
        CHECK_EQ_INT(store_job_claim(s, &claimed_job, &claimed, &e), ERR_OK);
    put_rows(s, &j1, w1, 2);
    put_rows(s, &j2, w2, 5);
    CHECK_EQ_INT(store_job_finish(s, j1.id, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_run_verdicts_list(s, &g, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK_STR_EQ(g[0].run, "r");
        CHECK_EQ_INT(g[0].step, 1);
        CHECK_EQ_INT(g[0].n_ok, 1);
        CHECK_EQ_INT(g[0].n_under, 1);
    }
    free(g);
    CHECK_EQ_INT(store_job_finish(s, j2.id, STORE_JOB_SUCCEEDED, NULL, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_run_verdicts_list(s, &g, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK_EQ_INT(g[0].step, 2);
        CHECK_EQ_INT(g[0].n_ok, 1);
        CHECK_EQ_INT(g[0].n_under, 2);
        CHECK_EQ_INT(g[0].n_over, 1);
        CHECK_EQ_INT(g[0].n_suspect, 1);
    }
    free(g);
    (void)j3;
    store_close(s);
}

/* Deleting a run removes its rule set, events and deliveries; others stay. */
static void test_run_delete_takes_alerts(void)
{
    static const char *const urls[] = {"http://127.0.0.1:9/hook"};
    struct store_delivery_page *p = NULL;
    struct store *s;
    struct store_job j, k;
    struct err e = {0};
    int64_t ev = 0, counts[STORE_DELIVERY_STATE_COUNT];
    char *spec = NULL;

    fresh_db();
    s = open_as("a");
    j = submit(s, "r", 1);
    k = submit(s, "q", 1);
    CHECK_EQ_INT(store_alert_rules_put(s, "r", "[]", &e), ERR_OK);
    CHECK_EQ_INT(store_alert_rules_put(s, NULL, "[1]", &e), ERR_OK);
    CHECK_EQ_INT(store_alert_event_add(s, "r", 1, j.id, "low", 1, "{}", urls, 1, &ev, &e), ERR_OK);
    CHECK_EQ_INT(store_alert_event_add(s, "q", 1, k.id, "low", 1, "{}", urls, 1, &ev, &e), ERR_OK);
    CHECK_EQ_INT(store_run_delete(s, "r", NULL, NULL, &e), ERR_OK);
    CHECK_EQ_INT(store_delivery_counts(s, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_DELIVERY_PENDING], 1);
    CHECK_EQ_INT(store_deliveries_list(s, NULL, -1, 0, NULL, &p, &e), ERR_OK);
    CHECK_EQ_INT(p->n, 1);
    if (p->n == 1)
        CHECK_STR_EQ(p->items[0].run, "q");
    store_delivery_page_free(p);
    submit(s, "r", 1); /* the name again: a new run, without the old rules */
    CHECK_EQ_INT(store_alert_rules_get(s, "r", &spec, &e), ERR_OK);
    CHECK(spec == NULL);
    CHECK_EQ_INT(store_alert_rules_get(s, NULL, &spec, &e), ERR_OK);
    CHECK_STR_EQ(spec, "[1]");
    free(spec);
    store_close(s);
}

/* farmsd migrate (store_copy) from a SQLite file into this case's database:
 * rule sets, events with their ids and deliveries with their states; a
 * delivery a replica held in the source is free in the destination; new
 * ids there come after the copied ones; a second copy adds nothing. */
static void test_copied_by_migrate(void)
{
    static const char *const urls[] = {"http://127.0.0.1:9/hook", "http://127.0.0.1:9/two"};
    struct store_alert_event_page *p = NULL;
    struct store_delivery_page *dp = NULL;
    struct store_copy_stats stats = {0};
    struct store *src = NULL, *dst;
    struct store_job j;
    struct store_delivery d;
    struct err e = {0};
    char src_path[300], *spec = NULL, *body = NULL;
    int64_t ev1 = 0, ev2 = 0, ev3 = 0, counts[STORE_DELIVERY_STATE_COUNT];
    int found = 0;
    double due = 0, now = 1e10;

    snprintf(src_path, sizeof src_path, "/tmp/test_store_alerts_src_%ld.db", (long)getpid());
    unlink(src_path);
    CHECK_EQ_INT(store_open(src_path, &src, &e), ERR_OK);
    ERR_ASSERT(src != NULL && store_set_lease(src, "replica-a", 60, &e) == ERR_OK);
    j = submit(src, "r", 1);
    CHECK_EQ_INT(store_alert_rules_put(src, NULL, "[{\"name\":\"d\"}]", &e), ERR_OK);
    CHECK_EQ_INT(store_alert_rules_put(src, "r", "[]", &e), ERR_OK);
    CHECK_EQ_INT(store_alert_event_add(src, "r", 1, j.id, "low", 3, "{\"a\":1}", urls, 2, &ev1, &e),
                 ERR_OK);
    CHECK_EQ_INT(store_alert_event_add(src, "r", 1, j.id, "traps", 1, "{}", urls, 1, &ev2, &e),
                 ERR_OK);
    /* the first delivery delivered, the second held by replica-a, the third pending */
    CHECK_EQ_INT(store_delivery_claim(src, now, 600, &d, &body, &found, &due, &e), ERR_OK);
    free(body);
    body = NULL;
    CHECK_EQ_INT(store_delivery_attempt(src, d.id, STORE_DELIVERY_DELIVERED, 200, "", 0, &e),
                 ERR_OK);
    CHECK_EQ_INT(store_delivery_claim(src, now, 600, &d, &body, &found, &due, &e), ERR_OK);
    free(body);
    body = NULL;

    fresh_db();
    dst = open_as("replica-b");
    CHECK_EQ_INT(store_copy(src, dst, &stats, &e), ERR_OK);
    CHECK_EQ_INT(store_alert_rules_get(dst, NULL, &spec, &e), ERR_OK);
    CHECK_STR_EQ(spec, "[{\"name\":\"d\"}]");
    free(spec);
    CHECK_EQ_INT(store_alert_rules_get(dst, "r", &spec, &e), ERR_OK);
    CHECK_STR_EQ(spec, "[]");
    free(spec);
    CHECK_EQ_INT(store_alert_events_list(dst, "r", 0, NULL, &p, &e), ERR_OK);
    CHECK_EQ_INT(p != NULL ? p->n : 0, 2);
    if (p != NULL && p->n == 2) {
        CHECK_EQ_INT(p->items[0].id, ev2);
        CHECK_EQ_INT(p->items[1].id, ev1);
        CHECK_STR_EQ(p->items[1].body, "{\"a\":1}");
        CHECK_EQ_INT(p->items[1].n_layers, 3);
        CHECK_EQ_INT(p->items[1].n_deliveries, 2);
    }
    store_alert_event_page_free(p);
    CHECK_EQ_INT(store_delivery_counts(dst, counts, &e), ERR_OK);
    CHECK_EQ_INT(counts[STORE_DELIVERY_DELIVERED], 1);
    CHECK_EQ_INT(counts[STORE_DELIVERY_PENDING], 2);
    CHECK_EQ_INT(store_deliveries_list(dst, "r", STORE_DELIVERY_DELIVERED, 0, NULL, &dp, &e),
                 ERR_OK);
    CHECK_EQ_INT(dp != NULL ? dp->n : 0, 1);
    if (dp != NULL && dp->n == 1) {
        CHECK_EQ_INT(dp->items[0].attempts, 1);
        CHECK_EQ_INT(dp->items[0].last_status, 200);
    }
    store_delivery_page_free(dp);
    /* replica-a's claim did not travel: replica-b takes both pending rows now */
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(store_delivery_claim(dst, now, 60, &d, &body, &found, &due, &e), ERR_OK);
        CHECK_EQ_INT(found, 1);
        free(body);
        body = NULL;
    }
    CHECK_EQ_INT(store_alert_event_add(dst, "r", 1, j.id, "new", 1, "{}", urls, 1, &ev3, &e),
                 ERR_OK);
    CHECK(ev3 > ev2);
    CHECK(stats.rows_added > 0 && stats.rows_added == stats.rows_read);
    CHECK_EQ_INT(store_copy(src, dst, &stats, &e), ERR_OK);
    CHECK_EQ_INT(stats.rows_added, 0);
    store_close(dst);
    store_close(src);
    unlink(src_path);
    for (size_t i = 0; i < 2; i++) {
        char p2[320];
        snprintf(p2, sizeof p2, "%s%s", src_path, i == 0 ? "-wal" : "-shm");
        unlink(p2);
    }
}

static void run_cases(void)
{
    test_rule_sets();
    test_body_splice();
    test_events_and_their_deliveries();
    test_claim_attempt_and_lease();
    test_delivery_log();
    test_verdicts();
    test_run_delete_takes_alerts();
    test_copied_by_migrate();
    if (g_pg == NULL) {
        char p[300];
        snprintf(p, sizeof p, "%s", g_path);
        unlink(p);
        snprintf(p, sizeof p, "%s-wal", g_path);
        unlink(p);
        snprintf(p, sizeof p, "%s-shm", g_path);
        unlink(p);
    }
}

int main(void)
{
    const char *url;

    run_cases();
    if ((url = pgu_url()) != NULL) {
        g_pg = url;
        run_cases();
    }
    return check_report("test_store_alerts");
}
