/* test_service_load.c -- a real `farmsd serve` (tests/svc_harness.h) under
 * concurrent clients: four uploader threads, three uploads each (the MLP,
 * CNN and LLaMA fixture runs in mixed formats; two threads upload the same
 * CNN weights in different containers), two of them also racing to submit
 * the same bytes to the same run and step, and two pollers reading layer
 * histories and checkpoint lists with If-None-Match the whole time.
 * Expected: every upload 202, the race one 202 and one 200 with the same
 * job; pollers see only 200, 304 (only for a tag they sent, with that tag)
 * and 404 (runs not there yet), histories always in step order, and once
 * nothing changes any more only 304s; every job succeeds and every run has
 * all its checkpoints and per-layer histories. check.h is not thread-safe:
 * threads record, main() checks.
 * Run from the repository root after `make test-build`.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "tests/check.h"
#include "tests/svc_harness.h"

#define N_UPLOADERS   4
#define N_UPLOADS     3
#define N_POLLERS     2
#define POLL_BUDGET_S 120.0

struct run_spec {
    const char *run;
    const char *layer;            /* a layer polled for its history */
    const char *files[N_UPLOADS]; /* steps 0, 100, 500 */
};

static const struct run_spec specs[N_UPLOADERS] = {
    {"load-mlp",
     "net.0.weight",
     {"mlp/mlp_step0000.safetensors", "mlp/mlp_step0100.pt", "mlp/mlp_step0500.npz"}},
    {"load-cnn",
     "conv1.weight",
     {"cnn/cnn_step0000.pt", "cnn/cnn_step0100.safetensors", "cnn/cnn_step0500_train.pth"}},
    {"load-llama",
     "model.layers.0.self_attn.q_proj.weight",
     {"llama/llama_step0000.safetensors", "llama/llama_step0100.pt",
      "llama/llama_step0500.safetensors"}},
    {"load-cnn2",
     "conv1.weight",
     {"cnn/cnn_step0000.safetensors", "cnn/cnn_step0100_train.pth", "cnn/cnn_step0500.pt"}},
};
static const long steps[N_UPLOADS] = {0, 100, 500};

static struct svc srv;
static pthread_barrier_t race;
static atomic_int uploads_done;

struct uploader {
    int idx;
    long status[N_UPLOADS];
    long long job[N_UPLOADS];
    long race_status;
    long long race_job;
};

struct poller {
    long n_200, n_304, n_404, n_bad;
    char first_bad[512];
    long last_round_not_304;      /* in the rounds after everything finished */
    int seen_points[N_UPLOADERS]; /* points of the last history body received (what a
                                     dashboard shows) */
};

static void *uploader_main(void *arg)
{
    struct uploader *u = arg;
    const struct run_spec *sp = &specs[u->idx];

    for (int k = 0; k < N_UPLOADS; k++) {
        char path[160], file[PATH_MAX];
        struct svc_resp r;
        snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints?step=%ld&preset=farms-cv", sp->run,
                 steps[k]);
        snprintf(file, sizeof(file), SVC_FIX "%s", sp->files[k]);
        u->status[k] = svc_upload(&srv, path, file, NULL, &r);
        u->job[k] = (long long)svc_jn(r.json, "id");
        if (u->status[k] != 202) /* stderr is fine from threads; main() checks */
            fprintf(stderr, "uploader %d: %s -> %ld (Retry-After: %s) %s\n", u->idx, path,
                    u->status[k], r.retry_after, r.body);
        svc_resp_free(&r);
        if (k == 0 && u->idx < 2) { /* the race: the same bytes, the same run and step */
            pthread_barrier_wait(&race);
            u->race_status = svc_upload(&srv, "/v1/runs/race/checkpoints?step=7&preset=farms-cv",
                                        SVC_FIX "gpt2/gpt2_step0500.safetensors", NULL, &r);
            u->race_job = (long long)svc_jn(r.json, "id");
            if (u->race_status != 200 && u->race_status != 202)
                fprintf(stderr, "uploader %d: race -> %ld %s\n", u->idx, u->race_status, r.body);
            svc_resp_free(&r);
        }
    }
    atomic_fetch_add(&uploads_done, 1);
    return NULL;
}

static void bad(struct poller *p, const char *what, const char *path, long status)
{
    if (p->n_bad++ == 0)
        snprintf(p->first_bad, sizeof(p->first_bad), "%s: %s -> %ld", what, path, status);
}

/* GET path with If-None-Match: etag (if any); check the answer; update etag.
 * Returns the status. */
static long poll_one(struct poller *p, const char *path, char *etag, size_t cap,
                     int *history_points)
{
    char h[200];
    const char *hdrs[] = {h, NULL};
    struct svc_resp r;
    long st;

    snprintf(h, sizeof(h), "If-None-Match: %s", etag);
    st = svc_req(&srv, "GET", path, NULL, NULL, 0, etag[0] ? hdrs : NULL, &r);
    if (st == 304) {
        p->n_304++;
        if (etag[0] == '\0' || strcmp(r.etag, etag) != 0 || r.len != 0)
            bad(p, "304 without the tag sent", path, st);
    } else if (st == 200) {
        p->n_200++;
        if (r.json == NULL || r.etag[0] != '"' || (etag[0] && strcmp(r.etag, etag) == 0))
            bad(p, "200 with the tag sent, or no JSON", path, st);
        if (history_points != NULL) {
            const cJSON *pt;
            double prev = -1;
            *history_points = cJSON_GetArraySize(svc_j(r.json, "points"));
            cJSON_ArrayForEach(pt, svc_j(r.json, "points"))
            {
                if (!(svc_jn(pt, "step") > prev))
                    bad(p, "history out of step order", path, st);
                prev = svc_jn(pt, "step");
            }
        }
        snprintf(etag, cap, "%s", r.etag);
    } else if (st == 404) {
        p->n_404++;
        etag[0] = '\0';
    } else {
        bad(p, "unexpected status", path, st);
    }
    svc_resp_free(&r);
    return st;
}

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    char etags[N_UPLOADERS][2][128] = {{{0}}};
    double until = svc_now() + POLL_BUDGET_S;
    int after_done = -1; /* rounds since every job finished */

    while (svc_now() < until && after_done < 3) {
        for (int i = 0; i < N_UPLOADERS; i++) {
            char path[256];
            long a, b;
            snprintf(path, sizeof(path), "/v1/runs/%s/layers/%s/history?preset=farms-cv",
                     specs[i].run, specs[i].layer);
            a = poll_one(p, path, etags[i][0], sizeof(etags[i][0]), &p->seen_points[i]);
            snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints", specs[i].run);
            b = poll_one(p, path, etags[i][1], sizeof(etags[i][1]), NULL);
            if (after_done == 2)
                p->last_round_not_304 += (a != 304) + (b != 304);
        }
        if (after_done >= 0) {
            after_done++;
        } else if (atomic_load(&uploads_done) == N_UPLOADERS &&
                   svc_metric(&srv, "farmsd_jobs{state=\"queued\"}") == 0 &&
                   svc_metric(&srv, "farmsd_jobs{state=\"running\"}") == 0) {
            after_done = 0;
        }
    }
    if (after_done < 3)
        bad(p, "jobs still running when the poll budget ran out", "-", 0);
    return NULL;
}

static void test_concurrent_uploaders_and_pollers(void)
{
    pthread_t ut[N_UPLOADERS], pt[N_POLLERS];
    struct uploader u[N_UPLOADERS];
    struct poller p[N_POLLERS];

    memset(u, 0, sizeof(u));
    memset(p, 0, sizeof(p));
    pthread_barrier_init(&race, NULL, 2);
    for (int i = 0; i < N_POLLERS; i++)
        CHECK(pthread_create(&pt[i], NULL, poller_main, &p[i]) == 0);
    for (int i = 0; i < N_UPLOADERS; i++) {
        u[i].idx = i;
        CHECK(pthread_create(&ut[i], NULL, uploader_main, &u[i]) == 0);
    }
    for (int i = 0; i < N_UPLOADERS; i++)
        pthread_join(ut[i], NULL);
    for (int i = 0; i < N_POLLERS; i++)
        pthread_join(pt[i], NULL);
    pthread_barrier_destroy(&race);

    for (int i = 0; i < N_UPLOADERS; i++)
        for (int k = 0; k < N_UPLOADS; k++) {
            cJSON *job = u[i].status[k] == 202 ? svc_wait_job(&srv, u[i].job[k], 60) : NULL;
            CHECK_EQ_INT(u[i].status[k], 202);
            CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
            cJSON_Delete(job);
        }
    /* the race: one new job, one answer with that same job */
    CHECK((u[0].race_status == 202 && u[1].race_status == 200) ||
          (u[0].race_status == 200 && u[1].race_status == 202));
    CHECK(u[0].race_job > 0 && u[0].race_job == u[1].race_job);
    for (int i = 0; i < N_POLLERS; i++) {
        if (p[i].n_bad)
            fprintf(stderr, "poller %d: %ld bad answers, first: %s\n", i, p[i].n_bad,
                    p[i].first_bad);
        CHECK_EQ_INT(p[i].n_bad, 0);
        CHECK(p[i].n_200 > 0 && p[i].n_304 > 0);
        CHECK_EQ_INT(p[i].last_round_not_304, 0);
        for (int k = 0; k < N_UPLOADERS; k++) /* 304s never hid the final results */
            CHECK_EQ_INT(p[i].seen_points[k], N_UPLOADS);
        printf("poller %d: %ld x 200, %ld x 304, %ld x 404\n", i, p[i].n_200, p[i].n_304,
               p[i].n_404);
    }
    CHECK_EQ_INT(svc_metric(&srv, "farmsd_jobs{state=\"succeeded\"}"), N_UPLOADERS * N_UPLOADS + 1);
    CHECK_EQ_INT(svc_metric(&srv, "farmsd_jobs{state=\"failed\"}"), 0);
    CHECK_EQ_INT(svc_metric(&srv, "farmsd_uploads_in_flight"), 0);
}

/* Afterwards every run is complete: three checkpoints, every layer's history
 * with three points in step order; the two CNN runs (same weights, other
 * containers) agree value for value. */
static void test_every_result_is_present(void)
{
    for (int i = 0; i < N_UPLOADERS; i++) {
        char path[512];
        struct svc_resp r, h;
        const cJSON *l;
        int k = 0, n_layers = 0;

        snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints", specs[i].run);
        CHECK_EQ_INT(svc_get(&srv, path, &r), 200);
        cJSON_ArrayForEach(l, svc_j(r.json, "checkpoints"))
        {
            CHECK(k < N_UPLOADS && (long)svc_jn(l, "step") == steps[k]);
            CHECK_STR_EQ(svc_js(svc_j(l, "job"), "state"), "succeeded");
            k++;
        }
        CHECK_EQ_INT(k, N_UPLOADS);
        svc_resp_free(&r);
        snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints/500?preset=farms-cv", specs[i].run);
        CHECK_EQ_INT(svc_get(&srv, path, &r), 200);
        cJSON_ArrayForEach(l, svc_j(r.json, "layers"))
        {
            const cJSON *pt;
            int j = 0;
            snprintf(path, sizeof(path), "/v1/runs/%s/layers/%s/history?preset=farms-cv",
                     specs[i].run, svc_js(l, "name"));
            CHECK_EQ_INT(svc_get(&srv, path, &h), 200);
            cJSON_ArrayForEach(pt, svc_j(h.json, "points"))
            {
                CHECK(j < N_UPLOADS && (long)svc_jn(pt, "step") == steps[j]);
                j++;
            }
            CHECK_EQ_INT(j, N_UPLOADS);
            svc_resp_free(&h);
            n_layers++;
        }
        CHECK(n_layers >= 6);
        svc_resp_free(&r);
    }
    for (int k = 0; k < N_UPLOADS; k++) {
        char a[128], b[128];
        struct svc_resp ra, rb;
        const cJSON *la;
        snprintf(a, sizeof(a), "/v1/runs/load-cnn/checkpoints/%ld?preset=farms-cv", steps[k]);
        snprintf(b, sizeof(b), "/v1/runs/load-cnn2/checkpoints/%ld?preset=farms-cv", steps[k]);
        CHECK_EQ_INT(svc_get(&srv, a, &ra), 200);
        CHECK_EQ_INT(svc_get(&srv, b, &rb), 200);
        CHECK_EQ_INT(cJSON_GetArraySize(svc_j(ra.json, "layers")), 18);
        cJSON_ArrayForEach(la, svc_j(ra.json, "layers")) /* file order differs by container */
        {
            const cJSON *lb, *match = NULL;
            cJSON_ArrayForEach(lb, svc_j(rb.json, "layers")) if (strcmp(svc_js(lb, "name"),
                                                                        svc_js(la, "name")) == 0)
                match = lb;
            CHECK(match != NULL && cJSON_Compare(la, match, 1));
        }
        svc_resp_free(&ra);
        svc_resp_free(&rb);
    }
}

int main(void)
{
    char tmp[256], data[PATH_MAX];
    double t0 = svc_now();

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(svc_mkdtemp("svc-load", tmp, sizeof(tmp)));
    snprintf(data, sizeof(data), "%s/data", tmp);
    if (svc_start(&srv, data, NULL)) {
        test_concurrent_uploaders_and_pollers();
        test_every_result_is_present();
        CHECK_EQ_INT(svc_stop(&srv), 0);
        if (check_n_failed)
            svc_dump_log(&srv, 3000);
    } else {
        CHECK(!"server started");
    }
    svc_rm_rf(tmp, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service_load: %.1f s\n", svc_now() - t0);
    return check_report("test_service_load");
}
