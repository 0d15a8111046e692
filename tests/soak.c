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

int main(void)
{
    return soak_main("soak", 1);
}
