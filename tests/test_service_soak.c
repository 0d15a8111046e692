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
    return soak_main("test_service_soak", 0);
}
