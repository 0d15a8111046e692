/* pg_util.h -- the PostgreSQL side of the tests: the URL of the throw-away
 * cluster that `make test` starts (tests/pg_cluster.sh), and a reset of its
 * database between cases.
 *
 * FARMSD_TEST_PG_URL names the database. When it is unset or empty the
 * PostgreSQL cases FAIL (they never pass silently): pgu_url() reports why.
 * Single-threaded helpers; no ownership beyond the call.
 */
#ifndef TESTS_PG_UTIL_H
#define TESTS_PG_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "tests/check.h"

/* The test database URL, or NULL after recording a failed check. */
static inline const char *pgu_url(void)
{
    const char *u = getenv("FARMSD_TEST_PG_URL");

    if (u == NULL || u[0] == '\0') {
        fprintf(stderr, "FARMSD_TEST_PG_URL is not set: the PostgreSQL tests cannot run. "
                        "Run them with `make test` (it starts tests/pg_cluster.sh), or set it "
                        "to a database URL the tests may wipe.\n");
        CHECK(!"PostgreSQL test database available (FARMSD_TEST_PG_URL)");
        return NULL;
    }
    return u;
}

/* Drop every table of the test database. 0 on success. */
static inline int pgu_reset(const char *url)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r = NULL;
    int ok = 0;

    if (PQstatus(c) == CONNECTION_OK) {
        r = PQexec(c, "SET client_min_messages = warning;"
                      "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "pgu_reset: %s", PQerrorMessage(c));
        PQclear(r);
    } else {
        fprintf(stderr, "pgu_reset: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return ok ? 0 : -1;
}

#endif /* TESTS_PG_UTIL_H */
