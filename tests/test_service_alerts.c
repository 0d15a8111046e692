/* test_service_alerts.c -- alerts end to end (README "Alerts and
 * webhooks"): a real `farmsd serve` (tests/svc_harness.h) whose webhook
 * points at a receiver in this test (libmicrohttpd on 127.0.0.1).
 *
 *   - rules: the built-in default set, replacing it, a run's own set and
 *     going back to the default, refusals naming the bad member;
 *   - a checkpoint of Gaussian matrices analysed under preset full (two of
 *     its three come out under-trained, alpha > 6) raises one event of the
 *     rule under_trained listing exactly the layers the API calls
 *     under-trained, with their recommendations, readable as soon as the
 *     job reads succeeded;
 *   - the receiver answers 500 twice, then 200, for run "good": the
 *     delivery ends delivered after 3 attempts; every request carries the
 *     event and delivery ids and a signature that verifies (HMAC-SHA256 of
 *     the raw body with the secret, computed here with libcrypto);
 *   - for run "bad" it never recovers: the delivery ends failed after
 *     --webhook-max-attempts (3), with the last status;
 *   - the delivery log (GET /v1/alerts/deliveries?run=&state=) and the
 *     run's events (GET /v1/runs/{run}/alerts) show both outcomes;
 *   - /metrics: farmsd_run_layers{run,verdict} equals the verdict counts of
 *     the run's layers, farmsd_webhook_deliveries{state} the log's;
 *   - alpha_drop on the newest step lists exactly the layers whose alpha
 *     fell (with the earlier alpha); a step analysed late raises none;
 *   - a delivery still pending when the server stops (the receiver answers
 *     503) is delivered by the next start on the same data.
 * Backoff is 0.05 s (--webhook-backoff) so retries come quickly; every
 * wait is bounded; no timing is asserted. Run from the repository root
 * after `make test-build`.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>

#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tests/check.h"
#include "tests/svc_harness.h"

#define N_LAYERS   3
#define DIM        256
#define WAIT_S     120.0
#define SECRET     "s3cret-for-the-test"
#define MAX_HOOKS  64
#define MAX_BODY   (1 << 20)
#define FAIL_FIRST 2 /* run "good": answers 500 this many times, then 200 */

static char tmp_dir[256];

/* --- The receiver ---------------------------------------------------------------- */

struct hook {
    char *body;
    char signature[160], event[32], delivery[32];
    int status; /* what the receiver answered */
};

static struct {
    pthread_mutex_t mu;
    struct hook hooks[MAX_HOOKS];
    int n;
    int n_good;       /* requests seen for run "good" */
    int restart_down; /* run "restart": answer 503 while set */
} rx = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct rx_conn {
    char *buf;
    size_t len;
};

static void rx_header(struct MHD_Connection *conn, const char *name, char *dst, size_t cap)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);

    snprintf(dst, cap, "%s", v != NULL ? v : "");
}

/* Record one POST and decide its answer: run "good" fails FAIL_FIRST
 * times, run "bad" always, run "restart" while restart_down is set,
 * anything else succeeds. */
static int rx_record(struct MHD_Connection *conn, struct rx_conn *c)
{
    struct hook *h;
    int status = 200;

    pthread_mutex_lock(&rx.mu);
    if (strstr(c->buf, "\"run\":\"good\"") != NULL && rx.n_good++ < FAIL_FIRST)
        status = 500;
    if (strstr(c->buf, "\"run\":\"bad\"") != NULL)
        status = 500;
    if (strstr(c->buf, "\"run\":\"restart\"") != NULL && rx.restart_down)
        status = 503;
    if (rx.n < MAX_HOOKS) {
        h = &rx.hooks[rx.n++];
        h->body = c->buf;
        c->buf = NULL;
        h->status = status;
        rx_header(conn, "X-Farmsd-Signature", h->signature, sizeof h->signature);
        rx_header(conn, "X-Farmsd-Event", h->event, sizeof h->event);
        rx_header(conn, "X-Farmsd-Delivery", h->delivery, sizeof h->delivery);
    }
    pthread_mutex_unlock(&rx.mu);
    return status;
}

static enum MHD_Result rx_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls)
{
    struct rx_conn *c = *con_cls;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    int status;

    (void)cls, (void)url, (void)method, (void)version;
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        c->buf = calloc(1, 1);
        *con_cls = c;
        return MHD_YES;
    }
    if (*data_size > 0) {
        if (c->len + *data_size < MAX_BODY) {
            char *g = realloc(c->buf, c->len + *data_size + 1);
            if (g != NULL) {
                memcpy(g + c->len, data, *data_size);
                c->len += *data_size;
                g[c->len] = '\0';
                c->buf = g;
            }
        }
        *data_size = 0;
        return MHD_YES;
    }
    status = rx_record(conn, c);
    resp = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
    ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void rx_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    struct rx_conn *c = *con_cls;

    (void)cls, (void)conn, (void)toe;
    if (c != NULL) {
        free(c->buf);
        free(c);
    }
    *con_cls = NULL;
}

/* --- Helpers --------------------------------------------------------------------- */

/* The hex HMAC-SHA256 of `body` with SECRET, as the header carries it. */
static void expected_signature(const char *body, char out[80])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)body, strlen(body), mac,
         &n);
    memcpy(out, "sha256=", 8);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 7 + 2 * (size_t)i, 3, "%02x", mac[i]);
}

static long put_json(const struct svc *s, const char *path, const char *json, struct svc_resp *r)
{
    return svc_req(s, "PUT", path, "application/json", json, strlen(json), NULL, r);
}

/* Submit `file` as (run, step) under preset full and wait for its job: 1 if it succeeded. */
static int analyse(const struct svc *s, const char *run, int step, const char *file)
{
    struct svc_resp r;
    char path[128];
    long long id = -1;
    cJSON *job;
    int ok;

    snprintf(path, sizeof path, "/v1/runs/%s/checkpoints?step=%d&preset=full", run, step);
    if (svc_upload(s, path, file, NULL, &r) == 202)
        id = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);
    job = id > 0 ? svc_wait_job(s, id, WAIT_S) : NULL;
    ok = strcmp(svc_js(job, "state"), "succeeded") == 0;
    cJSON_Delete(job);
    return ok;
}

/* The number of alert events of `run` now (-1: no answer). */
static int n_events(const struct svc *s, const char *run)
{
    struct svc_resp r;
    char path[128];
    int n = -1;

    snprintf(path, sizeof path, "/v1/runs/%s/alerts", run);
    if (svc_get(s, path, &r) == 200)
        n = cJSON_GetArraySize(svc_j(r.json, "events"));
    svc_resp_free(&r);
    return n;
}

/* The delivery of `run` once it is no longer pending (or the last seen
 * after WAIT_S): a new object (cJSON_Delete) or NULL. */
static cJSON *wait_delivery(const struct svc *s, const char *run)
{
    double until = svc_now() + WAIT_S;
    char path[128];

    snprintf(path, sizeof path, "/v1/alerts/deliveries?run=%s", run);
    for (;;) {
        struct svc_resp r;
        cJSON *d = NULL;

        if (svc_get(s, path, &r) == 200)
            d = cJSON_DetachItemFromArray(cJSON_GetObjectItemCaseSensitive(r.json, "deliveries"),
                                          0);
        svc_resp_free(&r);
        if ((d != NULL && strcmp(svc_js(d, "state"), "pending") != 0) || svc_now() > until)
            return d;
        cJSON_Delete(d);
        svc_sleep_ms(50);
    }
}

/* Layers of run's latest checkpoint analysed ok with warning `w` (NULL:
 * none, the JSON's null). */
static int count_warning(const struct svc *s, const char *run, const char *w)
{
    struct svc_resp r;
    char path[128];
    const cJSON *l;
    int n = 0;

    snprintf(path, sizeof path, "/v1/runs/%s/layers", run);
    if (svc_get(s, path, &r) == 200)
        cJSON_ArrayForEach(l, svc_j(r.json, "layers"))
        {
            if (strcmp(svc_js(l, "status"), "ok") == 0 &&
                (w != NULL ? strcmp(svc_js(l, "warning"), w) == 0
                           : cJSON_IsNull(svc_j(l, "warning"))))
                n++;
        }
    svc_resp_free(&r);
    return n;
}

/* --- Cases ----------------------------------------------------------------------- */

static void check_rules_api(const struct svc *s)
{
    struct svc_resp r;

    CHECK_EQ_INT(svc_get(s, "/v1/alerts/rules", &r), 200);
    CHECK_STR_EQ(svc_js(r.json, "scope"), "builtin");
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "rules")), 5);
    svc_resp_free(&r);
    /* only under-trained layers alert, from now on, for every run */
    CHECK_EQ_INT(put_json(s, "/v1/alerts/rules",
                          "{\"rules\":[{\"name\":\"under_trained\",\"kind\":\"alpha_above\"}]}",
                          &r),
                 200);
    CHECK_STR_EQ(svc_js(r.json, "scope"), "default");
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "rules")), 1);
    CHECK_NEAR(svc_jn(cJSON_GetArrayItem(svc_j(r.json, "rules"), 0), "threshold"), 6.0, 0);
    svc_resp_free(&r);
    CHECK_EQ_INT(put_json(s, "/v1/alerts/rules",
                          "{\"rules\":[{\"name\":\"x\",\"kind\":\"alpha_above\",\"window\":2}]}",
                          &r),
                 400);
    CHECK(strstr(svc_js(r.json, "detail"), "rules[0].window") != NULL);
    svc_resp_free(&r);
    CHECK_EQ_INT(put_json(s, "/v1/alerts/rules", "{\"rule\":[]}", &r), 400);
    CHECK(strstr(svc_js(r.json, "detail"), "rule") != NULL);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_req(s, "PUT", "/v1/alerts/rules", "text/plain", "x", 1, NULL, &r), 415);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/runs/nosuchrun/alerts/rules", &r), 404);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/alerts/deliveries?state=lost", &r), 400);
    CHECK(strstr(svc_js(r.json, "detail"), "pending, delivered, failed") != NULL);
    svc_resp_free(&r);
}

/* A run's own set replaces the default for it; DELETE goes back. */
static void check_run_rules(const struct svc *s)
{
    struct svc_resp r;

    CHECK_EQ_INT(svc_get(s, "/v1/runs/good/alerts/rules", &r), 200);
    CHECK_STR_EQ(svc_js(r.json, "scope"), "default");
    CHECK_STR_EQ(svc_js(r.json, "run"), "good");
    svc_resp_free(&r);
    CHECK_EQ_INT(put_json(s, "/v1/runs/good/alerts/rules",
                          "{\"rules\":[{\"name\":\"low\",\"kind\":\"alpha_below\",\"threshold\":1,"
                          "\"min_layers\":2,\"enabled\":false}]}",
                          &r),
                 200);
    CHECK_STR_EQ(svc_js(r.json, "scope"), "run");
    CHECK_EQ_INT(cJSON_IsFalse(svc_j(cJSON_GetArrayItem(svc_j(r.json, "rules"), 0), "enabled")), 1);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_req(s, "DELETE", "/v1/runs/good/alerts/rules", NULL, NULL, 0, NULL, &r), 200);
    CHECK_STR_EQ(svc_js(r.json, "scope"), "default");
    svc_resp_free(&r);
}

/* The one event of run `run`: rule under_trained, the layers the API
 * calls under-trained, with recommendations; its delivery as given. */
static void check_event(const struct svc *s, const char *run, const char *state, int attempts)
{
    struct svc_resp r;
    const cJSON *ev, *l, *d;
    char path[128];
    int n_under = count_warning(s, run, "under_trained");

    CHECK_EQ_INT(n_under, 2); /* seed 11: two of the three Gaussian matrices have alpha > 6 */
    snprintf(path, sizeof path, "/v1/runs/%s/alerts", run);
    CHECK_EQ_INT(svc_get(s, path, &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "events")), 1);
    ev = cJSON_GetArrayItem(svc_j(r.json, "events"), 0);
    CHECK_STR_EQ(svc_js(ev, "run"), run);
    CHECK_NEAR(svc_jn(ev, "step"), 1, 0);
    CHECK(svc_jn(ev, "event_id") > 0);
    CHECK(svc_jn(ev, "job_id") > 0);
    CHECK_STR_EQ(svc_js(svc_j(ev, "rule"), "name"), "under_trained");
    CHECK_STR_EQ(svc_js(svc_j(ev, "rule"), "kind"), "alpha_above");
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(ev, "layers")), n_under);
    CHECK_NEAR(svc_jn(ev, "n_layers"), n_under, 0);
    cJSON_ArrayForEach(l, svc_j(ev, "layers"))
    {
        CHECK(svc_jn(l, "alpha") > 6);
        CHECK_STR_EQ(svc_js(l, "warning"), "under_trained");
        CHECK(strncmp(svc_js(l, "name"), "model.layers.", 13) == 0);
        CHECK(svc_jn(l, "lr_scale") >= 0.5 && svc_jn(l, "lr_scale") <= 1.5);
    }
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(svc_j(ev, "recommendations"), "learning_rates")),
                 n_under);
    CHECK(cJSON_IsArray(svc_j(svc_j(ev, "recommendations"), "sparsity")));
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(ev, "deliveries")), 1);
    d = cJSON_GetArrayItem(svc_j(ev, "deliveries"), 0);
    CHECK_STR_EQ(svc_js(d, "state"), state);
    CHECK_NEAR(svc_jn(d, "attempts"), attempts, 0);
    svc_resp_free(&r);
}

/* Every request the receiver got carries the ids and a valid signature;
 * those of run "good" were 500, 500, 200 of one delivery. */
static void check_received(void)
{
    int n_good = 0, n_bad = 0, statuses[8] = {0};

    pthread_mutex_lock(&rx.mu);
    for (int i = 0; i < rx.n; i++) {
        const struct hook *h = &rx.hooks[i];
        char want[80];
        cJSON *b = cJSON_Parse(h->body);

        expected_signature(h->body, want);
        CHECK_STR_EQ(h->signature, want);
        CHECK(b != NULL);
        CHECK_NEAR(svc_jn(b, "event_id"), strtod(h->event, NULL), 0);
        CHECK(strtol(h->delivery, NULL, 10) > 0);
        if (strcmp(svc_js(b, "run"), "good") == 0 && n_good < 8)
            statuses[n_good++] = h->status;
        else if (strcmp(svc_js(b, "run"), "bad") == 0)
            n_bad++;
        cJSON_Delete(b);
    }
    pthread_mutex_unlock(&rx.mu);
    CHECK_EQ_INT(n_good, 3);
    CHECK_EQ_INT(statuses[0], 500);
    CHECK_EQ_INT(statuses[1], 500);
    CHECK_EQ_INT(statuses[2], 200);
    CHECK_EQ_INT(n_bad, 3); /* --webhook-max-attempts 3 */
}

static void check_metrics(const struct svc *s)
{
    static const char *const verdicts[] = {"under_trained", "over_trained", "suspect_fit"};
    char name[160];

    for (size_t i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "farmsd_run_layers{run=\"good\",verdict=\"%s\"}", verdicts[i]);
        CHECK_NEAR(svc_metric(s, name), count_warning(s, "good", verdicts[i]), 0);
    }
    CHECK_NEAR(svc_metric(s, "farmsd_run_layers{run=\"good\",verdict=\"ok\"}"),
               count_warning(s, "good", NULL), 0);
    CHECK_NEAR(svc_metric(s, "farmsd_webhook_deliveries{state=\"delivered\"}"), 1, 0);
    CHECK_NEAR(svc_metric(s, "farmsd_webhook_deliveries{state=\"failed\"}"), 1, 0);
    CHECK_NEAR(svc_metric(s, "farmsd_webhook_deliveries{state=\"pending\"}"), 0, 0);
}

static void check_delivery_log(const struct svc *s)
{
    struct svc_resp r;
    const cJSON *d;

    CHECK_EQ_INT(svc_get(s, "/v1/alerts/deliveries?state=failed", &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "deliveries")), 1);
    d = cJSON_GetArrayItem(svc_j(r.json, "deliveries"), 0);
    CHECK_STR_EQ(svc_js(d, "run"), "bad");
    CHECK_STR_EQ(svc_js(d, "rule"), "under_trained");
    CHECK_NEAR(svc_jn(d, "last_status"), 500, 0);
    CHECK(cJSON_IsString(svc_j(d, "done")));
    CHECK(cJSON_IsNull(svc_j(d, "next_attempt")));
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/alerts/deliveries?page_size=1", &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "deliveries")), 1);
    CHECK(cJSON_IsString(svc_j(r.json, "next_page_token")));
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/alerts/deliveries?run=nosuchrun", &r), 404);
    svc_resp_free(&r);
}

static void test_alerts_end_to_end(struct MHD_Daemon *d)
{
    char data[300], file[300], secret[300], url[128];
    const char *extra[16];
    struct svc s;
    cJSON *del;
    int n = 0;

    snprintf(data, sizeof data, "%s/data", tmp_dir);
    snprintf(file, sizeof file, "%s/gauss.safetensors", tmp_dir);
    snprintf(secret, sizeof secret, "%s/secret", tmp_dir);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook",
             (unsigned)MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
    CHECK(svc_write_gaussian_st(file, N_LAYERS, DIM, DIM, 11));
    CHECK(svc_write_file(secret, SECRET "\n", strlen(SECRET) + 1));
    extra[n++] = "--webhook-url";
    extra[n++] = url;
    extra[n++] = "--webhook-secret-file";
    extra[n++] = secret;
    extra[n++] = "--webhook-backoff";
    extra[n++] = "0.05";
    extra[n++] = "--webhook-max-attempts";
    extra[n++] = "3";
    extra[n++] = "--webhook-timeout";
    extra[n++] = "10";
    extra[n] = NULL;
    if (!svc_start(&s, data, extra)) {
        CHECK(!"farmsd serve started");
        return;
    }
    check_rules_api(&s);
    CHECK(analyse(&s, "good", 1, file));
    CHECK_EQ_INT(n_events(&s, "good"), 1); /* recorded before the job was marked succeeded */
    del = wait_delivery(&s, "good");
    CHECK_STR_EQ(svc_js(del, "state"), "delivered");
    CHECK_NEAR(svc_jn(del, "attempts"), 3, 0);
    CHECK_NEAR(svc_jn(del, "last_status"), 200, 0);
    CHECK_STR_EQ(svc_js(del, "url"), url);
    cJSON_Delete(del);
    CHECK(analyse(&s, "bad", 1, file));
    del = wait_delivery(&s, "bad");
    CHECK_STR_EQ(svc_js(del, "state"), "failed");
    CHECK_NEAR(svc_jn(del, "attempts"), 3, 0);
    cJSON_Delete(del);
    check_event(&s, "good", "delivered", 3);
    check_event(&s, "bad", "failed", 3);
    check_run_rules(&s);
    check_received();
    check_delivery_log(&s);
    check_metrics(&s);
    if (check_n_failed > 0)
        svc_dump_log(&s, 6000);
    CHECK_EQ_INT(svc_stop(&s), 0);
}

/* The alpha of every ok layer of checkpoint (run, step), by position. */
static int step_alphas(const struct svc *s, const char *run, int step, char names[][64],
                       double *alpha, int max)
{
    struct svc_resp r;
    char path[128];
    const cJSON *l;
    int n = 0;

    snprintf(path, sizeof path, "/v1/runs/%s/checkpoints/%d", run, step);
    if (svc_get(s, path, &r) == 200)
        cJSON_ArrayForEach(l, svc_j(r.json, "layers"))
        {
            if (n < max && strcmp(svc_js(l, "status"), "ok") == 0) {
                snprintf(names[n], 64, "%s", svc_js(l, "name"));
                alpha[n++] = svc_jn(l, "alpha");
            }
        }
    svc_resp_free(&r);
    return n;
}

/* The events of `run` whose rule is `rule`: their count; the step and
 * layers of the newest in *step / layers (a new array, cJSON_Delete). */
static int events_of(const struct svc *s, const char *run, const char *rule, int *step,
                     cJSON **layers)
{
    struct svc_resp r;
    char path[128];
    const cJSON *ev;
    int n = 0;

    *layers = NULL;
    snprintf(path, sizeof path, "/v1/runs/%s/alerts", run);
    if (svc_get(s, path, &r) == 200)
        cJSON_ArrayForEach(ev, svc_j(r.json, "events"))
        {
            if (strcmp(svc_js(svc_j(ev, "rule"), "name"), rule) != 0)
                continue;
            if (n++ == 0) {
                *step = (int)svc_jn(ev, "step");
                *layers = cJSON_Duplicate(svc_j(ev, "layers"), 1);
            }
        }
    svc_resp_free(&r);
    return n;
}

/* alpha_drop compares the newest step with the ones before: the event
 * lists exactly the layers whose alpha fell by more than the threshold,
 * with their earlier alpha; a step analysed late (a backfill) raises none. */
static void check_drop(const struct svc *s, const char *files[3])
{
    char names[2][N_LAYERS][64];
    double a[2][N_LAYERS];
    int n1, n2, n_drop = 0, step = -1;
    cJSON *layers = NULL;
    struct svc_resp r;
    const cJSON *l;

    CHECK(analyse(s, "drift", 1, files[0]));
    CHECK_EQ_INT(put_json(s, "/v1/runs/drift/alerts/rules",
                          "{\"rules\":[{\"name\":\"drop\",\"kind\":\"alpha_drop\","
                          "\"threshold\":0.001,\"window\":3}]}",
                          &r),
                 200);
    svc_resp_free(&r);
    CHECK(analyse(s, "drift", 2, files[1]));
    n1 = step_alphas(s, "drift", 1, names[0], a[0], N_LAYERS);
    n2 = step_alphas(s, "drift", 2, names[1], a[1], N_LAYERS);
    CHECK_EQ_INT(n1, N_LAYERS);
    CHECK_EQ_INT(n2, N_LAYERS);
    for (int i = 0; i < n1 && i < n2; i++)
        n_drop += a[0][i] - a[1][i] > 0.001;
    CHECK(n_drop >= 1); /* seeds 11 -> 12: some layer's alpha falls */
    CHECK_EQ_INT(events_of(s, "drift", "drop", &step, &layers), 1);
    CHECK_EQ_INT(step, 2);
    CHECK_EQ_INT(cJSON_GetArraySize(layers), n_drop);
    cJSON_ArrayForEach(l, layers)
    {
        int k = 0;
        while (k < n1 && strcmp(names[0][k], svc_js(l, "name")) != 0)
            k++;
        CHECK(k < n1);
        if (k < n1) {
            CHECK_NEAR(svc_jn(l, "previous_alpha"), a[0][k], 1e-9);
            CHECK_NEAR(svc_jn(l, "alpha"), a[1][k], 1e-9);
        }
    }
    cJSON_Delete(layers);
    /* a backfilled step 0, even with a falling alpha, is not compared */
    CHECK(analyse(s, "drift", 0, files[2]));
    CHECK_EQ_INT(events_of(s, "drift", "drop", &step, &layers), 1);
    cJSON_Delete(layers);
}

/* A delivery pending when the server stops is sent by the next start. */
static void check_restart(struct svc *s, const char *data, const char *const *extra,
                          const char *file)
{
    double until = svc_now() + WAIT_S;
    cJSON *del = NULL;
    int attempts = 0, n_ok = 0, n_down = 0;

    pthread_mutex_lock(&rx.mu);
    rx.restart_down = 1;
    pthread_mutex_unlock(&rx.mu);
    CHECK(analyse(s, "restart", 1, file));
    while (attempts < 1 && svc_now() < until) { /* the first attempt got its 503 */
        struct svc_resp r;
        if (svc_get(s, "/v1/alerts/deliveries?run=restart", &r) == 200)
            attempts = (int)svc_jn(cJSON_GetArrayItem(svc_j(r.json, "deliveries"), 0), "attempts");
        svc_resp_free(&r);
        svc_sleep_ms(50);
    }
    CHECK_EQ_INT(svc_stop(s), 0);
    pthread_mutex_lock(&rx.mu);
    rx.restart_down = 0;
    pthread_mutex_unlock(&rx.mu);
    if (!svc_start(s, data, extra)) {
        CHECK(!"farmsd serve started again");
        return;
    }
    del = wait_delivery(s, "restart");
    CHECK_STR_EQ(svc_js(del, "state"), "delivered");
    CHECK(svc_jn(del, "attempts") >= 2);
    cJSON_Delete(del);
    pthread_mutex_lock(&rx.mu);
    for (int i = 0; i < rx.n; i++) {
        if (strstr(rx.hooks[i].body, "\"run\":\"restart\"") == NULL)
            continue;
        n_ok += rx.hooks[i].status == 200;
        n_down += rx.hooks[i].status == 503;
    }
    pthread_mutex_unlock(&rx.mu);
    CHECK_EQ_INT(n_ok, 1);
    CHECK(n_down >= 1);
}

/* A second server: alpha_drop over a run's checkpoints, and a delivery
 * carried over a restart. */
static void test_drop_and_restart(struct MHD_Daemon *d)
{
    char data[300], files[3][300], url[128];
    const char *fp[3] = {files[0], files[1], files[2]};
    const char *extra[] = {
        "--webhook-url", url, "--webhook-backoff", "0.2", "--webhook-max-attempts", "50", NULL};
    struct svc s;
    struct svc_resp r;

    snprintf(data, sizeof data, "%s/data2", tmp_dir);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook",
             (unsigned)MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
    for (int i = 0; i < 3; i++) {
        snprintf(files[i], sizeof files[i], "%s/drift%d.safetensors", tmp_dir, i);
        CHECK(svc_write_gaussian_st(files[i], N_LAYERS, DIM, DIM, 11 + (uint64_t)i));
    }
    if (!svc_start(&s, data, extra)) {
        CHECK(!"farmsd serve started");
        return;
    }
    CHECK_EQ_INT(put_json(&s, "/v1/alerts/rules",
                          "{\"rules\":[{\"name\":\"under_trained\",\"kind\":\"alpha_above\"}]}",
                          &r),
                 200);
    svc_resp_free(&r);
    check_drop(&s, fp);
    check_restart(&s, data, extra, files[0]);
    if (check_n_failed > 0)
        svc_dump_log(&s, 6000);
    CHECK_EQ_INT(svc_stop(&s), 0);
}

int main(void)
{
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_port = 0};
    struct MHD_Daemon *d;

    lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!svc_mkdtemp("alerts", tmp_dir, sizeof(tmp_dir))) {
        CHECK(!"temporary folder");
        return check_report("test_service_alerts");
    }
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                         rx_handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, rx_done, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&lo, MHD_OPTION_END);
    CHECK(d != NULL);
    if (d != NULL) {
        test_alerts_end_to_end(d);
        test_drop_and_restart(d);
        MHD_stop_daemon(d);
    }
    for (int i = 0; i < rx.n; i++)
        free(rx.hooks[i].body);
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    return check_report("test_service_alerts");
}
