/* test_service_soak.c -- the reliability soak (tests/soak.inc) as a smoke
 * test: about fifteen seconds of mixed load on the ASan build with a kill -9
 * and restart in the middle, then every check of `make soak` (every
 * acknowledged checkpoint present with its SHA-256 and the results of those
 * bytes, path jobs whose file was rewritten underneath either right or failed
 * with "changed", /healthz answered, no server death but ours, no upload temp
 * file left, database intact, memory within the budget). The slow clients
 * run too, but their close deadlines need the minutes of `make soak` to be
 * judged. Runs on SQLite and, with FARMSD_TEST_BACKEND=postgresql, on
 * PostgreSQL. Run from the repository root after `make test-build`.
 */
#include "tests/check.h"
#include "tests/svc_harness.h"

#include "tests/soak.inc"

int main(void)
{
    const struct soak_cfg cfg = {
        .name = "test_service_soak",
        .seconds = 12,
        .kill_every = 6,
        .verify_s = 180,
        .n_uploaders = 2,
        .n_pool = 2,
        .fresh_every = 4,
        .upload_pause_s = 0.25,
        .n_pollers = 1,
        .n_path_files = 1,
        .path_blocks = 1,
        .max_path_variants = 2,
        .path_every_s = 0.6,
        .rewrite_every_s = 0.8,
        .path_preset = "farms-cv",
        .n_slow_headers = 2,
        .n_slow_bodies = 1,
        .slow_body_max_s = 45,
        .slow_header_max_s = 30,
        .healthz_max_s = 5.0,
        .rss_budget_mb = 1024,
    };
    double t0 = svc_now();

    curl_global_init(CURL_GLOBAL_DEFAULT);
    soak_run(&cfg);
    curl_global_cleanup();
    printf("test_service_soak: %.1f s\n", svc_now() - t0);
    return check_report("test_service_soak");
}
