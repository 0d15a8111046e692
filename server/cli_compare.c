/* cli_compare.c -- `farmsd compare FILE_A FILE_B`: two checkpoints analysed
 * (cli_run.h: from a result cache where it has them) and printed side by
 * side as a table, CSV or JSON. The comparison is the object of
 * GET /v1/compare (api/json_compare.h), built once; the table and the CSV
 * are printed from it, so the formats always agree. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "api/json_compare.h"
#include "core/numerics/preset.h"
#include "server/cli.h"
#include "server/cli_run.h"
#include "storage/store.h"
#include "storage/store_history.h"

#define CLI_CMP_MAX_SETS 64

static const char cli_compare_usage[] =
    "usage: farmsd compare FILE_A FILE_B [options]\n"
    "\n"
    "Analyse two checkpoints (any file farmsd analyze reads) and print them side by side,\n"
    "layer by layer, with delta = B - A. Layers pair up by name, then by block and role, so\n"
    "model.layers.3.self_attn.q_proj.weight meets blk.3.attn_q.weight of a GGUF conversion;\n"
    "the weight matrices without a partner are listed after the table, then the mean of\n"
    "each metric over each file's analysed layers.\n"
    "\n"
    "  --preset P          farms-llm (default), farms-cv or full          [FARMSD_PRESET]\n"
    "  --set KEY=VALUE     override a setting (repeatable), as farmsd analyze --set\n"
    "  --db URL            a result cache: sqlite:PATH (or a PATH) or postgresql://USER@HOST/DB,\n"
    "                      the service's database works; tensors analysed before under the\n"
    "                      same settings come from it, the others are put into it  [FARMSD_DB]\n"
    "  --format F          table (default), csv or json\n"
    "  --metric LIST       the metrics, comma-separated (alpha, D, log_norm, ...; default\n"
    "                      alpha in the table, every metric in csv and json)\n"
    "  --threads N         worker threads, 0..256 (default 0: number of CPUs)\n"
    "                                                                     [FARMSD_THREADS]\n"
    "  --quiet             no progress lines on stderr\n"
    "  --verbose           for each file, how many tensors were analysed and how many came\n"
    "                      from the cache, on stderr\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 ok; 2 a usage or settings error (one line naming the option or\n"
    "environment variable) or a file that cannot be read (\"error: <category>:\n"
    "<message>\" on stderr); 3 the analysis failed.\n";

struct cli_cmp_opts {
    const char *files[2];
    const char *preset;
    const char *db;
    const char *format;
    const char *metric_list; /* --metric, NULL: the default */
    char *sets[CLI_CMP_MAX_SETS];
    int n_sets;
    long threads;
    int quiet;
    int verbose;
    int metrics[STORE_METRIC_COUNT]; /* enum store_metric */
    size_t n_metrics;                /* 0: every metric */
};

/* --metric LIST into o->metrics: -1, or the usage error's status. */
static int cli_cmp_metrics(struct cli_cmp_opts *o)
{
    char list[512], *save = NULL, *tok;

    if (o->metric_list == NULL) {
        if (strcmp(o->format, "table") == 0)
            o->metrics[o->n_metrics++] = STORE_METRIC_ALPHA;
        return -1;
    }
    if (strlen(o->metric_list) >= sizeof(list))
        return cli_usage_error("compare", "--metric: longer than %zu bytes", sizeof(list) - 1);
    memcpy(list, o->metric_list, strlen(o->metric_list) + 1);
    for (tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        int m = store_metric_from_name(tok);
        if (m < 0) {
            static const char names[] = STORE_METRIC_NAMES;
            return cli_usage_error("compare", "--metric=%s: unknown metric '%s' (%.*s)",
                                   o->metric_list, tok, (int)sizeof(names) - 3, names);
        }
        if (o->n_metrics < STORE_METRIC_COUNT)
            o->metrics[o->n_metrics++] = m;
    }
    if (o->n_metrics == 0)
        return cli_usage_error("compare", "--metric: no metric named");
    return -1;
}

/* Parse argv; returns -1 to go on, else the exit status. */
static int cli_cmp_parse(int argc, char **argv, struct cli_cmp_opts *o)
{
    static const struct option longs[] = {
        {"preset", required_argument, NULL, 'p'}, {"set", required_argument, NULL, 's'},
        {"db", required_argument, NULL, 'd'},     {"format", required_argument, NULL, 'f'},
        {"metric", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    struct err e;
    int ch;

    o->format = "table";
    o->db = cli_env_str("FARMSD_DB", NULL);
    if (cli_env_long("FARMSD_THREADS", 0, 0, 256, &o->threads, &e))
        return cli_settings_error("compare", &e);
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (ch) {
        case 'p': o->preset = optarg; break;
        case 's':
            if (o->n_sets == CLI_CMP_MAX_SETS)
                return cli_usage_error("compare", "more than %d --set options", CLI_CMP_MAX_SETS);
            o->sets[o->n_sets++] = optarg;
            break;
        case 'd': o->db = optarg; break;
        case 'f': o->format = optarg; break;
        case 'm': o->metric_list = optarg; break;
        case 't':
            if (cli_long("--threads", optarg, 0, 256, &o->threads, &e))
                return cli_settings_error("compare", &e);
            break;
        case 'q': o->quiet = 1; break;
        case 'v': o->verbose = 1; break;
        case 'h': fputs(cli_compare_usage, stdout); return 0;
        default: return cli_getopt_error("compare", ch, argv);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("compare", "two files, FILE_A and FILE_B, got %d", argc - optind);
    o->files[0] = argv[optind];
    o->files[1] = argv[optind + 1];
    if (strcmp(o->format, "table") != 0 && strcmp(o->format, "json") != 0 &&
        strcmp(o->format, "csv") != 0)
        return cli_usage_error("compare", "--format=%s: unknown format (table, json, csv)",
                               o->format);
    return cli_cmp_metrics(o);
}

/* --- Output ------------------------------------------------------------- */

/* A number of object `o` under `key` into buf: %.4g (%+.3g for a delta),
 * "-" when null or absent. */
static void cli_cmp_num(const cJSON *o, const char *key, int delta, char *buf, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!cJSON_IsNumber(v))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, delta ? "%+.3g" : "%.4g", v->valuedouble);
}

static const char *cli_cmp_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The metric names of the report, from its summary (the metrics asked for). */
static size_t cli_cmp_metric_names(const cJSON *root, const char **names, size_t max)
{
    const cJSON *m;
    size_t n = 0;

    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "summary"))
    {
        if (n < max)
            names[n++] = m->string;
    }
    return n;
}

/* The width of the longest name_a / name_b shown, at least `min` (a
 * name_b equal to name_a is shown as "="). */
static int cli_cmp_name_width(const cJSON *layers, const char *key, int min)
{
    const cJSON *l;
    int w = min;

    cJSON_ArrayForEach(l, layers)
    {
        int same = strcmp(key, "name_b") == 0 && strcmp(cli_cmp_str(l, "matched_by"), "name") == 0;
        int n = same ? 1 : (int)strlen(cli_cmp_str(l, key));
        w = n > w ? n : w;
    }
    return w;
}

/* One table row: both names (cut to wa / wb) and each metric's a, b, delta. */
static void cli_cmp_table_row(const cJSON *l, const char **names, size_t n_names, int wa, int wb)
{
    char na[512], nb[512], va[32], vb[32], vd[32];

    cli_fit(na, sizeof(na), cli_cmp_str(l, "name_a"), wa, 1);
    if (strcmp(cli_cmp_str(l, "matched_by"), "name") == 0)
        snprintf(nb, sizeof(nb), "=");
    else
        cli_fit(nb, sizeof(nb), cli_cmp_str(l, "name_b"), wb, 1);
    printf("%-*s  %-*s", wa, na, wb, nb);
    for (size_t k = 0; k < n_names; k++) {
        cli_cmp_num(cJSON_GetObjectItemCaseSensitive(l, "a"), names[k], 0, va, sizeof(va));
        cli_cmp_num(cJSON_GetObjectItemCaseSensitive(l, "b"), names[k], 0, vb, sizeof(vb));
        cli_cmp_num(cJSON_GetObjectItemCaseSensitive(l, "delta"), names[k], 1, vd, sizeof(vd));
        printf("  %10s  %10s  %9s", va, vb, vd);
    }
    printf("\n");
}

/* The table: one row per pair (name_b "=" when the names are equal), the
 * unpaired, and the mean of each metric on each side. */
static void cli_cmp_table(const cJSON *root, const void *arg)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers"), *l, *s;
    const char *names[STORE_METRIC_COUNT], *sides[2] = {"only_a", "only_b"};
    size_t n_names = cli_cmp_metric_names(root, names, STORE_METRIC_COUNT);
    int room = cli_term_width() - 2 - (int)n_names * 37, wa, wb;
    char hdr[3][80];

    (void)arg; /* cli_run_print_fn */
    wa = cli_cmp_name_width(layers, "name_a", 6);
    wb = cli_cmp_name_width(layers, "name_b", 6);
    room = room > 24 ? room : 24;
    if (wa + wb > room) { /* cut the longer names (their starts) to what is left */
        if (wb <= room / 2)
            wa = room - wb;
        else if (wa <= room / 2)
            wb = room - wa;
        else
            wa = wb = room / 2;
    }
    printf("%-*s  %-*s", wa, "name_a", wb, "name_b");
    for (size_t k = 0; k < n_names; k++) {
        snprintf(hdr[0], sizeof(hdr[0]), "%.30s_a", names[k]);
        snprintf(hdr[1], sizeof(hdr[1]), "%.30s_b", names[k]);
        snprintf(hdr[2], sizeof(hdr[2]), "delta");
        printf("  %10s  %10s  %9s", hdr[0], hdr[1], hdr[2]);
    }
    printf("\n");
    cJSON_ArrayForEach(l, layers)
    {
        cli_cmp_table_row(l, names, n_names, wa, wb);
    }
    printf("\n%d pair%s", cJSON_GetArraySize(layers), cJSON_GetArraySize(layers) == 1 ? "" : "s");
    for (int i = 0; i < 2; i++)
        printf("; %d only in %c", cJSON_GetArraySize(cJSON_GetObjectItem(root, sides[i])), "AB"[i]);
    printf("\n");
    for (int i = 0; i < 2; i++) {
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(root, sides[i]))
        {
            printf("only in %c: %s\n", "AB"[i], cJSON_GetStringValue(s));
        }
    }
    for (size_t k = 0; k < n_names; k++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(root, "summary"), names[k]);
        char va[32], vb[32], vd[32];
        cli_cmp_num(m, "a", 0, va, sizeof(va));
        cli_cmp_num(m, "b", 0, vb, sizeof(vb));
        cli_cmp_num(m, "delta", 1, vd, sizeof(vd));
        printf("mean %s: A %s, B %s, delta %s\n", names[k], va, vb, vd);
    }
}

/* A number for CSV: %.10g (an exact integer, json_int_new, as is), empty
 * when null or absent. */
static void cli_cmp_csv_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char buf[32] = "";

    if (cJSON_IsNumber(v))
        snprintf(buf, sizeof(buf), "%.10g", v->valuedouble);
    else if (cJSON_IsRaw(v))
        snprintf(buf, sizeof(buf), "%s", v->valuestring);
    cli_run_csv_field(buf, 0);
}

/* CSV: key, matched_by, name_a, name_b, block, role, status_a, status_b,
 * then <metric>_a, <metric>_b, <metric>_delta per metric; the unpaired
 * follow with matched_by only_a / only_b and one name. */
static void cli_cmp_csv(const cJSON *root, const void *arg)
{
    static const char *const cols[] = {"key",   "matched_by", "name_a",   "name_b",
                                       "block", "role",       "status_a", "status_b"};
    const char *names[STORE_METRIC_COUNT], *sides[2] = {"only_a", "only_b"};
    size_t n_names = cli_cmp_metric_names(root, names, STORE_METRIC_COUNT);
    const cJSON *l, *s;

    (void)arg; /* cli_run_print_fn */
    for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++)
        cli_run_csv_field(cols[c], c == 0);
    for (size_t k = 0; k < n_names; k++)
        printf(",%s_a,%s_b,%s_delta", names[k], names[k], names[k]);
    printf("\n");
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(root, "layers"))
    {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(l, "a");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(l, "b");
        cli_run_csv_field(cli_cmp_str(l, "key"), 1);
        cli_run_csv_field(cli_cmp_str(l, "matched_by"), 0);
        cli_run_csv_field(cli_cmp_str(l, "name_a"), 0);
        cli_run_csv_field(cli_cmp_str(l, "name_b"), 0);
        cli_cmp_csv_num(l, "block");
        cli_run_csv_field(cli_cmp_str(l, "role"), 0);
        cli_run_csv_field(cli_cmp_str(a, "status"), 0);
        cli_run_csv_field(cli_cmp_str(b, "status"), 0);
        for (size_t k = 0; k < n_names; k++) {
            cli_cmp_csv_num(a, names[k]);
            cli_cmp_csv_num(b, names[k]);
            cli_cmp_csv_num(cJSON_GetObjectItemCaseSensitive(l, "delta"), names[k]);
        }
        printf("\n");
    }
    for (int i = 0; i < 2; i++) {
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(root, sides[i]))
        {
            cli_run_csv_field(s->valuestring, 1);
            cli_run_csv_field(sides[i], 0);
            cli_run_csv_field(i == 0 ? s->valuestring : "", 0);
            cli_run_csv_field(i == 1 ? s->valuestring : "", 0);
            for (size_t c = 4; c < sizeof(cols) / sizeof(cols[0]) + 3 * n_names; c++)
                putchar(',');
            printf("\n");
        }
    }
}

/* --- Main ----------------------------------------------------------------- */

/* {"file", "format", "preset", "settings_hash"} of one side. */
static cJSON *cli_cmp_side_json(const char *file, const struct ckpt *c, const char *preset,
                                const char *hash)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || !cJSON_AddStringToObject(o, "file", file) ||
        !cJSON_AddStringToObject(o, "format", ckpt_format_name(ckpt_format_of(c))) ||
        !cJSON_AddStringToObject(o, "preset", preset) ||
        !cJSON_AddStringToObject(o, "settings_hash", hash)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The rows of report `r` for json_compare_add, in rows[0..r->n) (the
 * caller's, free()); 0 when out of memory. */
static int cli_cmp_rows(const struct engine_report *r, struct json_compare_row **rows)
{
    *rows = malloc((r->n ? r->n : 1) * sizeof(**rows));
    if (*rows == NULL)
        return 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct engine_layer *y = &r->layers[i];
        (*rows)[i] =
            (struct json_compare_row){y->name, y->info.kind, y->dtype, y->ndim, y->shape, &y->res};
    }
    return 1;
}

/* The comparison of the two reports as JSON, or NULL when out of memory. */
static cJSON *cli_cmp_json(const struct cli_cmp_opts *o, struct ckpt *const *c,
                           const struct engine_report *r, const char *preset, const char *hash)
{
    struct json_compare_row *rows[2] = {NULL, NULL};
    struct json_compare_side sides[2];
    cJSON *root = cJSON_CreateObject();
    int good = root != NULL;

    for (int s = 0; good && s < 2; s++) {
        good = cJSON_AddItemToObject(root, s == 0 ? "a" : "b",
                                     cli_cmp_side_json(o->files[s], c[s], preset, hash)) &&
               cli_cmp_rows(&r[s], &rows[s]);
        sides[s] = (struct json_compare_side){rows[s], r[s].n};
    }
    good = good && json_compare_add(root, &sides[0], &sides[1], o->n_metrics ? o->metrics : NULL,
                                    o->n_metrics, NULL) == ERR_OK;
    free(rows[0]);
    free(rows[1]);
    if (!good) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static int cli_cmp_emit(const struct cli_cmp_opts *o, struct ckpt *const *c,
                        const struct engine_report *r, const char *preset, const char *hash)
{
    return cli_run_emit(cli_cmp_json(o, c, r, preset, hash), o->format, "the comparison",
                        cli_cmp_csv, cli_cmp_table, NULL);
}

/* The settings' hash in hash (THASH_HEX_LEN), recorded in the cache `db`
 * when there is one. */
static enum err_code cli_cmp_settings(struct store *db, const char *preset,
                                      const struct farms_params *p, char *hash, struct err *e)
{
    char json[PRESET_JSON_MAX];
    enum err_code rc = preset_to_json(p, json, sizeof(json), e);

    if (rc != ERR_OK)
        return rc;
    return db != NULL ? store_settings_put(db, preset, json, hash, e)
                      : store_settings_hash(json, hash, e);
}

/* Analyse both files into c[2], r[2]: 0 or the exit status. */
static int cli_cmp_analyse(const struct cli_cmp_opts *o, struct cli_run *run, struct ckpt **c,
                           struct engine_report *r)
{
    for (int s = 0; s < 2; s++) {
        struct cli_run_counts n;
        int status;

        run->file = o->files[s];
        status = cli_run_file(run, &c[s], &r[s], &n);
        if (status != 0)
            return status;
        if (o->verbose)
            fprintf(stderr, "farmsd: %c: %s: %zu tensors analysed, %zu from the cache\n", "AB"[s],
                    o -> files[s], n.n_analysed, n.n_cached);
    }
    return 0;
}

int cli_compare_main(int argc, char **argv)
{
    struct cli_cmp_opts o = {0};
    struct engine_report r[2] = {{0}, {0}};
    struct ckpt *c[2] = {NULL, NULL};
    struct cli_run run = {0};
    struct ckpt_limits limits;
    struct farms_params params;
    char hash[THASH_HEX_LEN];
    const char *preset;
    struct store *db = NULL;
    struct pool *pool = NULL;
    struct err e = {0};
    int status = cli_cmp_parse(argc, argv, &o);

    if (status >= 0)
        return status;
    if (cli_params(o.preset, o.sets, o.n_sets, &params, &preset, &e) || cli_limits(&limits, &e))
        return cli_settings_error("compare", &e);
    if (o.db != NULL && store_open(o.db, &db, &e) != ERR_OK) {
        status = cli_usage_error("compare", "--db=%s: %s", o.db, e.msg);
        goto out;
    }
    if (cli_cmp_settings(db, preset, &params, hash, &e) != ERR_OK ||
        pool_new(cli_threads(o.threads), 1024, &pool, &e) != ERR_OK) {
        cli_print_error(&e);
        status = CLI_EXIT_FAILED;
        goto out;
    }
    run = (struct cli_run){.limits = &limits,
                           .params = &params,
                           .progress = cli_run_progress,
                           .progress_arg = &o.quiet,
                           .pool = pool,
                           .cache = db,
                           .settings_hash = hash};
    status = cli_cmp_analyse(&o, &run, c, r);
    if (status == 0)
        status = cli_cmp_emit(&o, c, r, preset, hash);
out:
    for (int s = 0; s < 2; s++) {
        engine_report_free(&r[s]);
        ckpt_close(c[s]);
    }
    pool_free(pool);
    store_close(db);
    return status;
}
