/* soak.c -- `make soak`: the reliability soak (tests/soak.inc) against the
 * release build, minutes per backend; not part of `make test`.
 *
 * SOAK_SECONDS (default 180) of load, a kill -9 and restart every
 * SOAK_KILL_EVERY seconds (default 60), then the checks. The backend is
 * SQLite, or PostgreSQL with FARMSD_TEST_BACKEND=postgresql and
 * FARMSD_TEST_PG_URL (the Makefile runs both). Prints PASS/FAIL per
 * invariant, a summary and "soak: N passed, N failed"; exit 1 on a failure.
 * Run from the repository root after `make build/rel/farmsd build/rel/tests/soak`.
 */
#define SVC_FARMSD "build/rel/farmsd"

#include "tests/check.h"
#include "tests/svc_harness.h"

#include "tests/soak.inc"

static double soak_env(const char *name, double dflt)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? strtod(v, NULL) : dflt;
}

int main(void)
{
    struct soak_cfg cfg = {
        .name = "soak",
        .seconds = soak_env("SOAK_SECONDS", 180),
        .kill_every = soak_env("SOAK_KILL_EVERY", 60),
        .verify_s = 900,
        .n_uploaders = 4,
        .n_pool = 4,
        .fresh_every = 5,
        .upload_pause_s = 1.0,
        .n_pollers = 2,
        .n_path_files = 1,
        .path_blocks = 2,
        .max_path_variants = 6,
        .path_every_s = 3.0,
        .rewrite_every_s = 1.5,
        .path_preset = "farms-llm",
        .n_slow_headers = 8,
        .n_slow_bodies = 2,
        .slow_body_max_s = 45,
        .slow_header_max_s = 30,
        .healthz_max_s = 3.0,
        .rss_budget_mb = 1024,
    };
    double t0 = svc_now();

    curl_global_init(CURL_GLOBAL_DEFAULT);
    soak_run(&cfg);
    curl_global_cleanup();
    printf("soak: %.0f s\n", svc_now() - t0);
    return check_report("soak");
}
