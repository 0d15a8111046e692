/* test_service_pickle.c -- a real `farmsd serve` (tests/svc_harness.h) sent
 * the hostile torch files of issue 10 item 2 (tests/fixtures/hostile/): the
 * 17 KB .pt whose data.pkl builds 16.8 M lists (6.6 GB before) and the 3 KB
 * .pt that lists one tensor under a million 60 KB paths. With
 * --max-pickle-mem 32M each upload gets 413 problem+json with category
 * limit_exceeded naming max_pickle_mem, nothing is stored, /healthz keeps
 * answering, the server's peak resident memory grows by less than two
 * uploads' worth of limits (values + tensor list + the inflated data.pkl)
 * plus 64 MiB, and a real torch checkpoint is still accepted and analysed.
 *
 * The refusals are checked on the sanitized server (build/san/farmsd); the
 * memory bound on the release build users run (build/farmsd), since ASan's
 * quarantine and redzones hold freed limits resident and put the sanitized
 * server within a few MiB of the bound (134 of 144 MiB; release: 49 MiB).
 * Run from the repository root after `make test-build build/farmsd`.
 */
#include "tests/check.h"

static const char *server_bin = "build/san/farmsd"; /* svc_start's binary */
#define SVC_FARMSD server_bin
#include "tests/svc_harness.h"

#define LIMIT_MIB 32

static char tmp_dir[256];

static void expect_refused(const struct svc *s, const char *file, long step)
{
    char path[128];
    struct svc_resp r;

    snprintf(path, sizeof(path), "/v1/runs/hostile/checkpoints?step=%ld", step);
    CHECK_EQ_INT(svc_upload(s, path, file, NULL, &r), 413);
    CHECK_STR_EQ(svc_js(r.json, "category"), "limit_exceeded");
    CHECK(svc_js(r.json, "detail") != NULL &&
          strstr(svc_js(r.json, "detail"), "max_pickle_mem") != NULL);
    svc_resp_free(&r);
}

/* Sanitized server: both hostile files refused, nothing stored, and the
 * server still serves and analyses a real torch checkpoint. */
static void test_hostile_pickles_are_refused_and_the_server_keeps_working(void)
{
    static const char *const extra[] = {"--max-pickle-mem", "32M", NULL};
    char data[512];
    struct svc s;
    struct svc_resp r;
    cJSON *job;

    server_bin = "build/san/farmsd";
    snprintf(data, sizeof(data), "%s/san", tmp_dir);
    if (!svc_start(&s, data, extra)) {
        CHECK(!"server started");
        return;
    }
    expect_refused(&s, "tests/fixtures/hostile/pt_pickle_list_flood.pt", 1);
    expect_refused(&s, "tests/fixtures/hostile/pt_tensor_name_flood.pt", 2);
    CHECK_EQ_INT(svc_get(&s, "/healthz", &r), 200);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(&s, "/v1/runs/hostile/checkpoints", &r), 404); /* nothing stored */
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_upload(&s, "/v1/runs/real/checkpoints?step=500",
                            SVC_FIX "llama/llama_step0500_lightning.ckpt", NULL, &r),
                 202);
    job = svc_wait_job(&s, (long long)svc_jn(r.json, "id"), 120.0);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    cJSON_Delete(job);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_stop(&s), 0);
}

/* Release server: refusing both files costs less than two uploads' worth of
 * limits plus 64 MiB of peak resident memory. */
static void test_hostile_pickles_stay_within_the_memory_limit(void)
{
    static const char *const extra[] = {"--max-pickle-mem", "32M", NULL};
    char data[512];
    struct svc s;
    long base_kb, peak_kb;

    server_bin = "build/farmsd";
    snprintf(data, sizeof(data), "%s/rel", tmp_dir);
    if (!svc_start(&s, data, extra)) {
        CHECK(!"server started");
        return;
    }
    base_kb = svc_proc_kb(&s, "VmRSS");
    expect_refused(&s, "tests/fixtures/hostile/pt_pickle_list_flood.pt", 1);
    expect_refused(&s, "tests/fixtures/hostile/pt_tensor_name_flood.pt", 2);
    peak_kb = svc_proc_kb(&s, "VmHWM");
    CHECK(base_kb > 0 && peak_kb > 0);
    CHECK(peak_kb - base_kb < (2 * LIMIT_MIB + 16 + 64) * 1024L);
    if (peak_kb - base_kb >= (2 * LIMIT_MIB + 16 + 64) * 1024L)
        fprintf(stderr, "server grew by %ld kB\n", peak_kb - base_kb);
    CHECK_EQ_INT(svc_stop(&s), 0);
}

int main(void)
{
    double t0 = svc_now();

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(svc_mkdtemp("svc-pickle", tmp_dir, sizeof(tmp_dir)));
    test_hostile_pickles_are_refused_and_the_server_keeps_working();
    test_hostile_pickles_stay_within_the_memory_limit();
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service_pickle: %.1f s\n", svc_now() - t0);
    return check_report("test_service_pickle");
}
