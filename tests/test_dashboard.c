/* test_dashboard.c -- the dashboard: its embedded files served by the API,
 * and the page itself in Debian's headless Chromium against a real server.
 *
 * The first cases call api_handle() in memory: / and /dashboard/{file} must
 * serve exactly the bytes of api/dashboard/, with their Content-Type, a
 * strong ETag from the file's SHA-256 and Cache-Control: no-cache.
 * routes.json's metric list must be the history metrics and openapi.yaml's
 * MetricName enum. test_browser starts build/san/farmsd serve, uploads two
 * runs of a 224-layer LLaMA-shaped synthetic model (`farmsd synth --model
 * llama-tiny`: 32 blocks x 7 roles; "llama" three steps, "llama-b" two),
 * the three-step MLP run and a run under two presets, and runs
 * tests/browser/dashboard.mjs (playwright-core + /usr/bin/chromium), which
 * checks every view against numbers it reads from the API itself: the
 * first view (newest run, latest step, worst layer), the block x role grid
 * and its step slider, the metric selector, the colour scale and text
 * contrast, CSV/SVG/PNG exports, the overlay, the summary plot, the delta
 * view, the heatmap, presets, unknown run/layer messages, a 390 px screen;
 * no console error may occur. Checks of routes this build lacks (summary,
 * compare) are skipped with a note on stderr. Screenshots go to
 * build/artifacts/dashboard-{grid,heatmap,compare,narrow}.png (FARMSD_SHOTS
 * names another folder: FARMSD_SHOTS=docs refreshes the README's).
 * Without chromium, node or playwright-core the test fails and says how to
 * install them (`make test` does, as root). Run from the repository root.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "core/formats/thash.h"
#include "core/numerics/summary.h"
#include "storage/store_history.h"
#include "tests/check.h"
#include "tests/serve_fixture.h"

#define MLP        "tests/fixtures/checkpoints/mlp/"
#define SHOTS      "build/artifacts" /* FARMSD_SHOTS=docs refreshes the README's */
#define CHROMIUM   "/usr/bin/chromium"
#define PLAYWRIGHT "tests/browser/node_modules/playwright-core/package.json"

static size_t file_read(const char *path, char **out)
{
    FILE *fp = fopen(path, "rb");
    long n = -1;

    *out = NULL;
    if (fp != NULL && fseek(fp, 0, SEEK_END) == 0)
        n = ftell(fp);
    if (fp == NULL || n < 0) {
        if (fp != NULL)
            fclose(fp);
        return 0;
    }
    rewind(fp);
    *out = calloc((size_t)n + 1, 1);
    if (*out == NULL || fread(*out, 1, (size_t)n, fp) != (size_t)n)
        n = 0;
    fclose(fp);
    return (size_t)n;
}

static void get(const struct api_ctx *ctx, const char *method, const char *path, const char *inm,
                struct api_response *resp)
{
    struct api_request req = {.method = method, .path = path, .if_none_match = inm};
    api_handle(ctx, NULL, &req, resp);
}

/* GET `path` serves `file` byte for byte with `type`, its ETag and no-cache;
 * If-None-Match with that ETag gives a 304 without a body. */
static void check_serves(const struct api_ctx *ctx, const char *path, const char *file,
                         const char *type)
{
    struct api_response r = {0};
    char *want = NULL, hex[THASH_HEX_LEN], etag[40];
    size_t n = file_read(file, &want);

    CHECK(n > 0 && thash_bytes(want, n, hex, NULL) == ERR_OK);
    snprintf(etag, sizeof(etag), "\"%.32s\"", hex);
    get(ctx, "GET", path, NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR_EQ(r.content_type, type);
    CHECK_STR_EQ(r.etag, etag);
    CHECK_STR_EQ(r.cache_control, "no-cache");
    CHECK_EQ_INT(r.body_len, n);
    CHECK(r.body != NULL && n > 0 && memcmp(r.body, want, n) == 0);
    api_response_free(&r);
    get(ctx, "GET", path, etag, &r);
    CHECK_EQ_INT(r.status, 304);
    CHECK(r.body == NULL);
    CHECK_STR_EQ(r.etag, etag);
    api_response_free(&r);
    free(want);
}

static void test_serves_embedded_files(void)
{
    struct api_stats st;
    struct api_ctx ctx = {.default_preset = "farms-llm", .stats = &st, .ready = 1};

    api_stats_init(&st);
    check_serves(&ctx, "/", "api/dashboard/index.html", "text/html; charset=utf-8");
    check_serves(&ctx, "/dashboard/index.html", "api/dashboard/index.html",
                 "text/html; charset=utf-8");
    check_serves(&ctx, "/dashboard/app.js", "api/dashboard/app.js",
                 "text/javascript; charset=utf-8");
    check_serves(&ctx, "/dashboard/grid.js", "api/dashboard/grid.js",
                 "text/javascript; charset=utf-8");
    check_serves(&ctx, "/dashboard/plots.js", "api/dashboard/plots.js",
                 "text/javascript; charset=utf-8");
    check_serves(&ctx, "/dashboard/export.js", "api/dashboard/export.js",
                 "text/javascript; charset=utf-8");
    check_serves(&ctx, "/dashboard/style.css", "api/dashboard/style.css",
                 "text/css; charset=utf-8");
}

static void test_unknown_files_and_methods(void)
{
    struct api_ctx ctx = {.default_preset = "farms-llm", .ready = 1};
    struct api_response r = {0};

    get(&ctx, "GET", "/dashboard/secret.db", NULL, &r);
    CHECK_EQ_INT(r.status, 404);
    CHECK_STR_EQ(r.content_type, "application/problem+json");
    api_response_free(&r);
    get(&ctx, "GET", "/dashboard/../farms.db", NULL, &r); /* two segments: no route */
    CHECK_EQ_INT(r.status, 404);
    api_response_free(&r);
    get(&ctx, "POST", "/", NULL, &r);
    CHECK_EQ_INT(r.status, 405);
    CHECK_STR_EQ(r.allow, "GET");
    api_response_free(&r);
    get(&ctx, "HEAD", "/dashboard/app.js", NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    api_response_free(&r);
}

/* routes.json lists the route table, so the page can find optional views. */
static void test_routes_json_lists_the_routes(void)
{
    struct api_ctx ctx = {.default_preset = "farms-llm", .ready = 1};
    struct api_response r = {0};
    const struct api_route_info *ri = api_routes();
    cJSON *j, *arr;
    int n = 0;

    get(&ctx, "GET", "/dashboard/routes.json", NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR_EQ(r.content_type, "application/json");
    j = r.body ? cJSON_ParseWithLength(r.body, r.body_len) : NULL;
    arr = cJSON_GetObjectItemCaseSensitive(j, "routes");
    while (ri[n].method != NULL)
        n++;
    CHECK_EQ_INT(cJSON_GetArraySize(arr), n);
    for (int i = 0; i < n && i < cJSON_GetArraySize(arr); i++) {
        const cJSON *it = cJSON_GetArrayItem(arr, i);
        CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "method")),
                     ri[i].method);
        CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "path")),
                     ri[i].path);
    }
    cJSON_Delete(j);
    api_response_free(&r);
}

/* With tokens the page still loads (it then asks for a token); the API does not. */
static void test_page_is_open_when_auth_is_on(void)
{
    struct api_token tok = {.token = "s3cret", .scopes = API_SCOPE_READ};
    struct api_ctx ctx = {.default_preset = "farms-llm", .ready = 1, .tokens = &tok, .n_tokens = 1};
    struct api_response r = {0};

    get(&ctx, "GET", "/", NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    api_response_free(&r);
    get(&ctx, "GET", "/v1/runs", NULL, &r);
    CHECK_EQ_INT(r.status, 401);
    api_response_free(&r);
}

/* --- The page in a browser ------------------------------------------------------ */

static int have_browser(void)
{
    int ok = 1;

    if (access(CHROMIUM, X_OK) != 0) {
        fprintf(stderr,
                "test_browser: %s is missing: apt-get install chromium "
                "(`make test` as root installs it)\n",
                CHROMIUM);
        ok = 0;
    }
    if (system("node --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_browser: node is missing: apt-get install nodejs npm\n");
        ok = 0;
    }
    if (access(PLAYWRIGHT, R_OK) != 0) {
        fprintf(stderr, "test_browser: playwright-core is missing: "
                        "(cd tests/browser && npm ci) or `make test`\n");
        ok = 0;
    }
    return ok;
}

/* Names of the layers of `file` that `farmsd analyze` fits (status ok). */
static int analysed_layers(const char *file, const char *preset, char names[][64], int max)
{
    char cmd[256], *out = NULL;
    size_t cap = 0, len = 0;
    FILE *p;
    cJSON *j, *l;
    int n = 0;

    snprintf(cmd, sizeof(cmd), SRV_FARMSD " analyze '%s' --format json --quiet --preset %s", file,
             preset);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *b = realloc(out, cap = cap * 2 + 8192);
            if (b == NULL)
                break;
            out = b;
        }
        size_t k = fread(out + len, 1, 4096, p);
        if (k == 0)
            break;
        len += k;
    }
    pclose(p);
    if (out == NULL)
        return -1;
    out[len] = '\0';
    j = cJSON_Parse(out);
    free(out);
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(j, "layers"))
    {
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "status"));
        const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "name"));
        if (st != NULL && nm != NULL && strcmp(st, "ok") == 0 && n < max)
            snprintf(names[n++], 64, "%s", nm);
    }
    cJSON_Delete(j);
    return n;
}

/* Layers of the heatmap with at least one value, and the steps. */
static void heatmap_shape(const struct srv *s, int *n_layers, int *n_steps, long steps[8])
{
    cJSON *j = http_json(s, "/v1/runs/mlp/history?metric=alpha"), *l, *v;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "steps");

    *n_layers = 0;
    *n_steps = cJSON_GetArraySize(st);
    for (int i = 0; i < *n_steps && i < 8; i++)
        steps[i] = (long)cJSON_GetArrayItem(st, i)->valuedouble;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(j, "layers"))
    {
        int any = 0;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(l, "values")) any |=
            cJSON_IsNumber(v);
        *n_layers += any;
    }
    cJSON_Delete(j);
}

static int png_ok(const char *path)
{
    char *d = NULL;
    size_t n = file_read(path, &d);
    int ok = n > 10000 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0;

    free(d);
    return ok;
}

/* The dashboard's metric selector offers routes.json's "metrics": they must
 * be the server's history metrics, in order, and exactly the MetricName enum
 * of openapi.yaml but for its last entry, the deprecated alias alpha_hat (so
 * the contract, the code and the page agree). */
static void test_metrics_match_openapi(void)
{
    struct api_ctx ctx = {.default_preset = "farms-llm", .ready = 1};
    struct api_response r = {0};
    char *yaml = NULL, want[2048] = "", got[2048] = "";
    const char *at, *end;
    cJSON *j, *m;

    CHECK(file_read("openapi.yaml", &yaml) > 0);
    at = yaml ? strstr(yaml, "    MetricName:\n      type: string\n") : NULL;
    at = at ? strstr(at, "      enum: [") : NULL;
    CHECK(at != NULL);
    if (at != NULL) {
        at = strchr(at, '[') + 1;
        end = strchr(at, ']');
        CHECK(end != NULL && end - at < (long)sizeof(want));
        if (end != NULL && end - at < (long)sizeof(want))
            memcpy(want, at, (size_t)(end - at));
    }
    get(&ctx, "GET", "/dashboard/routes.json", NULL, &r);
    j = r.body ? cJSON_ParseWithLength(r.body, r.body_len) : NULL;
    m = cJSON_GetObjectItemCaseSensitive(j, "metrics");
    CHECK_EQ_INT(cJSON_GetArraySize(m), STORE_METRIC_COUNT);
    for (int i = 0; i < cJSON_GetArraySize(m); i++) {
        const char *nm = cJSON_GetStringValue(cJSON_GetArrayItem(m, i));
        CHECK_STR_EQ(nm, store_metric_name((enum store_metric)i));
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? ", " : "", nm);
    }
    /* the enum ends with the deprecated request-only alias of alpha_weighted */
    snprintf(got + strlen(got), sizeof(got) - strlen(got), ", alpha_hat");
    CHECK_STR_EQ(got, want);
    m = cJSON_GetObjectItemCaseSensitive(j, "summary_metrics");
    CHECK_EQ_INT(cJSON_GetArraySize(m), FARMS_SUMMARY_COUNT);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetArrayItem(m, 0)), "alpha");
    cJSON_Delete(j);
    api_response_free(&r);
    free(yaml);
}

/* Write `n` llama-tiny checkpoints (32 blocks x 7 matrices, 64 and 172 wide:
 * 224 layers) with seeds seed0, seed0 + 1, ... into dir/NAME_i.safetensors. */
static int synth_llama(const char *dir, const char *name, int n, int seed0)
{
    char cmd[512];

    for (int i = 0; i < n; i++) {
        snprintf(cmd, sizeof(cmd),
                 SRV_FARMSD " synth --model llama-tiny --no-embeddings --dtype F32 --dist mixed "
                            "--seed %d --quiet --out '%s/%s_%d.safetensors'",
                 seed0 + i, dir, name, i);
        if (system(cmd) != 0)
            return 0;
    }
    return 1;
}

/* Upload dir/NAME_i.safetensors as steps 100, 200, ... of run NAME. */
static void upload_llama(const struct srv *s, const char *dir, const char *name, int n)
{
    char file[512], state[32];

    for (int i = 0; i < n; i++) {
        snprintf(file, sizeof(file), "%s/%s_%d.safetensors", dir, name, i);
        CHECK(srv_upload_wait(s, name, 100L * (i + 1), file, state, sizeof(state)));
        CHECK_STR_EQ(state, "succeeded");
    }
}

/* Routes the browser checks need that this server lacks: "summary,compare". */
static void missing_routes(char *out, size_t cap)
{
    int sum = 0, cmp = 0;

    for (const struct api_route_info *ri = api_routes(); ri->method != NULL; ri++) {
        sum |= strcmp(ri->path, "/v1/runs/{run}/summary/history") == 0;
        cmp |= strcmp(ri->path, "/v1/compare") == 0;
    }
    snprintf(out, cap, "%s%s%s%s%s", sum && cmp ? "" : "\"", sum ? "" : "summary",
             !sum && !cmp ? "\",\"" : "", cmp ? "" : "compare", sum && cmp ? "" : "\"");
    if (!sum || !cmp)
        fprintf(stderr,
                "test_dashboard: this build lacks %s%s%s: those browser checks are skipped\n",
                sum ? "" : "/v1/runs/{run}/summary/history", !sum && !cmp ? " and " : "",
                cmp ? "" : "/v1/compare");
}

/* tests/browser/dashboard.mjs against server s (see its header for the
 * members); run again once if it fails (a loaded machine). */
static void run_browser(const struct srv *s, int mlp_cells, const char *mlp_layer, int cv_cells,
                        int llm_cells)
{
    const char *shots = getenv("FARMSD_SHOTS") ? getenv("FARMSD_SHOTS") : SHOTS;
    char cmd[2048], without[64], shot[512];
    int rc;

    mkdir("build/artifacts", 0755);
    snprintf(shot, sizeof(shot), "%s/dashboard-grid.png", shots);
    remove(shot);
    missing_routes(without, sizeof(without));
    snprintf(cmd, sizeof(cmd),
             "node tests/browser/dashboard.mjs '{\"url\": \"%s/\", \"shots\": \"%s\", "
             "\"mlp\": {\"run\": \"mlp\", \"cells\": %d, \"layer\": \"%s\", \"points\": 3}, "
             "\"mixed\": {\"run\": \"mixed\", \"cells\": %d, \"preset2\": \"farms-llm\", "
             "\"cells2\": %d}, \"llama\": \"llama\", \"other\": \"llama-b\", "
             "\"without\": [%s]}'",
             s->url, shots, mlp_cells, mlp_layer, cv_cells, llm_cells, without);
    rc = system(cmd);
    if (!(WIFEXITED(rc) && WEXITSTATUS(rc) == 0)) {
        /* A headless browser on a loaded 2-core machine has timed out
         * once in many runs: say so (the FAIL lines above tell what),
         * then drive the page once more; a second failure fails. */
        fprintf(stderr, "test_dashboard: the browser run failed (status %d); once more\n", rc);
        remove(shot);
        rc = system(cmd);
    }
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    CHECK(png_ok(shot));
}

static void test_browser(void)
{
    static const char *const files[] = {MLP "mlp_step0000.safetensors",
                                        MLP "mlp_step0100.safetensors",
                                        MLP "mlp_step0500.safetensors"};
    static const long want_steps[] = {0, 100, 500};
    char names[16][64], names_cv[16][64], state[32], url[256], tmp[] = "/tmp/farmsd-dash-XXXXXX";
    int n_ok = analysed_layers(files[2], "farms-llm", names, 16), n_layers = 0, n_steps = 0;
    int n_cv = analysed_layers(files[2], "farms-cv", names_cv, 16);
    long steps[8] = {0};
    struct http_res r;
    struct srv s;

    CHECK(have_browser());
    CHECK_EQ_INT(n_ok, 3); /* the MLP's three linear weights */
    CHECK(mkdtemp(tmp) != NULL);
    CHECK(synth_llama(tmp, "llama-b", 2, 11));
    CHECK(synth_llama(tmp, "llama", 3, 1));
    if (n_ok < 2 || !srv_start(&s, NULL)) {
        CHECK(0);
        return;
    }
    /* llama-b first, llama last: llama is the newest run (the first view) */
    upload_llama(&s, tmp, "llama-b", 2);
    for (int i = 0; i < 3; i++) {
        CHECK(srv_upload_wait(&s, "mlp", want_steps[i], files[i], state, sizeof(state)));
        CHECK_STR_EQ(state, "succeeded");
    }
    /* "mixed": the three steps under farms-cv, step 0 also under farms-llm:
     * the run's preset is farms-cv (that of its latest step) */
    CHECK_EQ_INT(n_cv, 3);
    for (int i = 0; i < 3; i++) {
        CHECK(srv_upload_wait_preset(&s, "mixed", want_steps[i], files[i], "farms-cv", state,
                                     sizeof(state)));
        CHECK_STR_EQ(state, "succeeded");
    }
    CHECK(srv_upload_wait_preset(&s, "mixed", 0, files[0], "farms-llm", state, sizeof(state)));
    CHECK_STR_EQ(state, "succeeded");
    upload_llama(&s, tmp, "llama", 3);
    /* Over the socket: the headers of the page come through server/http.c. */
    snprintf(url, sizeof(url), "%s/", s.url);
    http_do(url, NULL, NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR_EQ(r.content_type, "text/html; charset=utf-8");
    CHECK_STR_EQ(r.cache_control, "no-cache");
    CHECK(strlen(r.etag) == 34 && r.body != NULL && strstr(r.body, "/dashboard/app.js") != NULL);
    free(r.body);

    heatmap_shape(&s, &n_layers, &n_steps, steps); /* the second layer: a click changes it */
    CHECK_EQ_INT(n_steps, 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(steps[i], want_steps[i]);
    CHECK_EQ_INT(n_layers, n_ok);

    if (have_browser())
        run_browser(&s, n_layers * n_steps, names[1], n_cv * 3, n_ok);
    CHECK_EQ_INT(srv_stop(&s), 0);
    for (int i = 0; i < 3; i++) {
        char f[512];
        snprintf(f, sizeof(f), "%s/llama_%d.safetensors", tmp, i);
        remove(f);
        snprintf(f, sizeof(f), "%s/llama-b_%d.safetensors", tmp, i);
        remove(f);
    }
    rmdir(tmp);
}

int main(void)
{
    test_serves_embedded_files();
    test_unknown_files_and_methods();
    test_routes_json_lists_the_routes();
    test_metrics_match_openapi();
    test_page_is_open_when_auth_is_on();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_browser();
    curl_global_cleanup();
    return check_report("test_dashboard");
}
