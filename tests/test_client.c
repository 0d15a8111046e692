/* test_client.c -- clients/python/farmsd_client.py against a real server.
 *
 * Starts build/san/farmsd serve with path ingestion allowed under the MLP
 * fixtures, and runs clients/python/test_farmsd_client.py against it (its
 * cases post, wait, read back and compare with `farmsd analyze`, and check
 * the retries against a local stand-in). Every Python case must pass, and the
 * server must then stop cleanly. Run from the repository root.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/check.h"
#include "tests/serve_fixture.h"

#define PY_TEST "clients/python/test_farmsd_client.py"

/* The unittest summary: "Ran N tests" and the last line "OK". */
static void test_python_client_against_server(void)
{
    char root[PATH_MAX], cmd[512], line[512], last[512] = "";
    const char *extra[] = {"--allow-root", root, NULL};
    int ran = -1, rc;
    struct srv s;
    FILE *p;

    CHECK(realpath("tests/fixtures/checkpoints/mlp", root) != NULL);
    if (system("python3 --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_client: python3 is missing: apt-get install python3\n");
        CHECK(0);
        return;
    }
    if (!srv_start(&s, extra)) {
        CHECK(0);
        return;
    }
    snprintf(cmd, sizeof(cmd), "FARMSD_BIN=" SRV_FARMSD " python3 " PY_TEST " '%s' 2>&1", s.url);
    p = popen(cmd, "r");
    CHECK(p != NULL);
    while (p != NULL && fgets(line, sizeof(line), p) != NULL) {
        fputs(line, stdout);
        if (strncmp(line, "Ran ", 4) == 0)
            ran = (int)strtol(line + 4, NULL, 10);
        if (line[0] != '\n')
            snprintf(last, sizeof(last), "%s", line);
    }
    rc = p ? pclose(p) : -1;
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    CHECK_EQ_INT(ran, 19); /* the Python cases (one per def test_) */
    CHECK_STR_EQ(last, "OK\n");
    CHECK_EQ_INT(srv_stop(&s), 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_python_client_against_server();
    curl_global_cleanup();
    return check_report("test_client");
}
