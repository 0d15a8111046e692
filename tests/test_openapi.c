/* test_openapi.c -- openapi.yaml describes exactly the routes of api_routes(),
 * and is a valid OpenAPI document (Redocly's CLI, pinned in tests/openapi/,
 * reports no error: code generators take it).
 *
 * A small line-based reader for our own file: inside the top-level `paths:`
 * block, a line indented by 2 spaces and ending in ':' is a path, a line
 * indented by 4 spaces naming an HTTP method is an operation of the last
 * path. Run from the repository root.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/api.h"
#include "tests/check.h"

#define MAX_OPS 64
#define REDOCLY "tests/openapi/node_modules/.bin/redocly"

struct op {
    char method[8];
    char path[128];
};

static int read_ops(const char *file, struct op *ops, int max)
{
    static const char *const methods[] = {"get",   "put",  "post",    "delete",
                                          "patch", "head", "options", "trace"};
    FILE *fp = fopen(file, "r");
    char line[512], path[128] = "";
    int in_paths = 0, n = 0;

    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp) != NULL) {
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        if (line[0] != ' ') { /* a top-level key */
            in_paths = strcmp(line, "paths:") == 0;
            continue;
        }
        if (!in_paths)
            continue;
        if (strncmp(line, "  /", 3) == 0 && line[len - 1] == ':') {
            snprintf(path, sizeof(path), "%.*s", (int)(len - 3), line + 2);
            continue;
        }
        if (strncmp(line, "    ", 4) != 0 || line[4] == ' ')
            continue;
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
            size_t ml = strlen(methods[m]);
            if (strncmp(line + 4, methods[m], ml) == 0 && line[4 + ml] == ':' && n < max) {
                for (size_t k = 0; k <= ml; k++)
                    ops[n].method[k] = (char)toupper((unsigned char)methods[m][k]);
                snprintf(ops[n].path, sizeof(ops[n].path), "%s", path);
                n++;
            }
        }
    }
    fclose(fp);
    return n;
}

static int has_op(const struct op *ops, int n, const char *method, const char *path)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ops[i].method, method) == 0 && strcmp(ops[i].path, path) == 0)
            return 1;
    return 0;
}

/* Every route is in the file, every operation of the file is a route. */
static void test_paths_equal_routes(void)
{
    struct op ops[MAX_OPS];
    const struct api_route_info *r = api_routes();
    int n = read_ops("openapi.yaml", ops, MAX_OPS), n_routes = 0;

    CHECK(n > 0);
    for (; r[n_routes].method != NULL; n_routes++) {
        CHECK(has_op(ops, n, r[n_routes].method, r[n_routes].path));
        if (!has_op(ops, n, r[n_routes].method, r[n_routes].path))
            fprintf(stderr, "  route %s %s is not in openapi.yaml\n", r[n_routes].method,
                    r[n_routes].path);
    }
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int k = 0; k < n_routes; k++)
            found |= strcmp(r[k].method, ops[i].method) == 0 && strcmp(r[k].path, ops[i].path) == 0;
        CHECK(found);
        if (!found)
            fprintf(stderr, "  openapi.yaml %s %s is not a route\n", ops[i].method, ops[i].path);
    }
    CHECK_EQ_INT(n, n_routes);
}

/* The reader itself: it finds the operations of a known document. */
static void test_reader_on_sample(void)
{
    static const char sample[] = "openapi: 3.0.3\npaths:\n  /a:\n    get:\n      summary: x\n"
                                 "    post:\n      summary: y\n  /b/{id}:\n    parameters: []\n"
                                 "    delete:\n      responses: {}\ncomponents:\n  /c:\n    get:\n";
    const char *tmp = "build/test_openapi_sample.yaml";
    struct op ops[8];
    FILE *fp = fopen(tmp, "w");
    int n;

    CHECK(fp != NULL);
    if (fp == NULL)
        return;
    fputs(sample, fp);
    fclose(fp);
    n = read_ops(tmp, ops, 8);
    CHECK_EQ_INT(n, 3);
    CHECK(has_op(ops, n, "GET", "/a"));
    CHECK(has_op(ops, n, "POST", "/a"));
    CHECK(has_op(ops, n, "DELETE", "/b/{id}"));
    CHECK(!has_op(ops, n, "GET", "/c")); /* outside paths: */
    remove(tmp);
}

/* `redocly lint` with its recommended rules: exit 0 (no error) and the
 * "valid" verdict. Warnings are printed for the reader. */
static void test_document_is_valid_openapi(void)
{
    char line[512];
    int valid = 0, rc;
    FILE *p;

    if (access(REDOCLY, X_OK) != 0) {
        fprintf(stderr,
                "test_openapi: %s is missing: (cd tests/openapi && npm ci) or `make test`\n",
                REDOCLY);
        CHECK(0);
        return;
    }
    /* no telemetry or update check: the tests reach no network */
    p = popen("REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true " REDOCLY
              " lint openapi.yaml --format=stylish 2>&1",
              "r");
    CHECK(p != NULL);
    if (p == NULL)
        return;
    while (fgets(line, sizeof(line), p) != NULL) {
        if (strstr(line, "  error  ") != NULL || strstr(line, "  warning  ") != NULL)
            fputs(line, stderr);
        if (strstr(line, "Your API description is valid") != NULL)
            valid = 1;
    }
    rc = pclose(p);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    CHECK(valid);
}

int main(void)
{
    test_reader_on_sample();
    test_document_is_valid_openapi();
    test_paths_equal_routes();
    return check_report("test_openapi");
}
