/* cli_analyze.c -- `farmsd analyze FILE`: per-layer FARMS results as a
 * table, JSON or CSV. The rows are built as the JSON layer objects of
 * api/json.h, and the table and CSV are printed from those objects, so the
 * three formats always agree. */
#include <getopt.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/json.h"
#include "core/numerics/preset.h"
#include "server/cli.h"
#include "server/cli_run.h"
#include "server/engine.h"

#define CLI_MAX_SETS 64

static const char cli_analyze_usage[] =
    "usage: farmsd analyze FILE [options]\n"
    "       farmsd analyze ADAPTER --base BASE [options]\n"
    "\n"
    "Analyse every weight matrix of a checkpoint (safetensors file, shard index or folder,\n"
    "torch.save .pt/.bin/.ckpt, .npy, .npz) with FARMS and print one row per tensor.\n"
    "A PEFT LoRA adapter (a folder with adapter_config.json, or its adapter_model file) is\n"
    "not analysed alone: each adapted module is listed with its rank and ||s*B*A||_2.\n"
    "With --base, the merged weights W + s*B*A are analysed under the base's names.\n"
    "\n"
    "  --base BASE         the base checkpoint FILE (a LoRA adapter) is merged onto\n"
    "  --preset P          farms-llm (default), farms-cv or full          [FARMSD_PRESET]\n"
    "  --set KEY=VALUE     override a setting (repeatable): window_rows, q_ratio,\n"
    "                      windows_per_dim, window_clamp, xmin (mid|peak|ks), xmin_pos,\n"
    "                      bins, conv_norm, filter_zeros, eig_threshold, min_eigs,\n"
    "                      include_embeddings; mp_fit (true: WeightWatcher's MP fit),\n"
    "                      randomize (true: a shuffled copy's ESD, rand_distance and\n"
    "                      num_traps; doubles the work), seed (of the shuffle, >= 0);\n"
    "                      layout (auto|torch|keras: how weights\n"
    "                      are read, auto by name: `kernel`/`filters` are Keras (in, out)\n"
    "                      / (kh, kw, in, out)); weights=REGEX (POSIX extended: tensors\n"
    "                      whose name matches are analysed whatever their name says)\n"
    "  --format F          table (default), json or csv                   [FARMSD_FORMAT]\n"
    "  --wide              the table with every column and the full names and reasons\n"
    "                      (default: fitted to the terminal, else 80 columns)\n"
    "  --include REGEX     only tensors whose name matches (POSIX extended regex)\n"
    "  --exclude REGEX     leave out tensors whose name matches\n"
    "  --threads N         worker threads, 0..256 (default 0: number of CPUs)\n"
    "                                                                     [FARMSD_THREADS]\n"
    "  --input-format F    auto (default), safetensors, index, torch, npy, npz, gguf,\n"
    "                      dcp, deepspeed, peft\n"
    "                      (with --base: the base's format)\n"
    "  --strict            refuse pickles with unknown globals            [FARMSD_STRICT=1]\n"
    "  --quiet             no progress lines on stderr\n"
    "  --timings           after the report, where the time went, on stderr: reading and\n"
    "                      decoding, the Gram matrices, the tridiagonal reduction, the\n"
    "                      eigenvalues, the fit\n"
    "  -h, --help          this help\n"
    "\n"
    "FARMSD_MAX_PICKLE_MEM (default 256M): the memory a torch file's data.pkl may take to\n"
    "unpickle, and again its tensor list; beyond it the file is refused (limit_exceeded).\n"
    "\n"
    "The table ends with a summary: layers analysed, skipped and failed, and how many\n"
    "are over-trained (alpha < 2) and under-trained (alpha > 6).\n"
    "\n"
    "Exit status: 0 ok; 2 a usage or settings error (one line naming the option or\n"
    "environment variable) or a file that cannot be read (\"error: <category>:\n"
    "<message>\" on stderr); 3 the analysis failed.\n";

struct cli_analyze_opts {
    const char *file;
    const char *base; /* --base: FILE is a LoRA adapter merged onto it */
    const char *preset;
    const char *format;
    const char *include;
    const char *exclude;
    char *sets[CLI_MAX_SETS];
    int n_sets;
    long threads;
    enum ckpt_format input_format;
    int strict;
    int quiet;
    int wide;
    int timings; /* --timings: the stage table on stderr after the report */
};

/* The environment's defaults: FARMSD_FORMAT, FARMSD_STRICT, FARMSD_THREADS;
 * *format_src names where the format came from. Returns -1 or the status. */
static int cli_analyze_env(struct cli_analyze_opts *o, const char **format_src)
{
    long strict = 0;
    struct err e;

    o->format = cli_env_str("FARMSD_FORMAT", NULL);
    *format_src = o->format != NULL ? "FARMSD_FORMAT" : "--format";
    if (o->format == NULL)
        o->format = "table";
    if (cli_env_long("FARMSD_STRICT", 0, 0, 1, &strict, &e) ||
        cli_env_long("FARMSD_THREADS", 0, 0, 256, &o->threads, &e))
        return cli_settings_error("analyze", &e);
    o->strict = strict != 0;
    return -1;
}

/* Parse argv; returns -1 to go on, else the exit status. */
static int cli_analyze_parse(int argc, char **argv, struct cli_analyze_opts *o)
{
    static const struct option longs[] = {{"preset", required_argument, NULL, 'p'},
                                          {"set", required_argument, NULL, 's'},
                                          {"format", required_argument, NULL, 'f'},
                                          {"include", required_argument, NULL, 'i'},
                                          {"exclude", required_argument, NULL, 'x'},
                                          {"threads", required_argument, NULL, 't'},
                                          {"input-format", required_argument, NULL, 'F'},
                                          {"base", required_argument, NULL, 'B'},
                                          {"strict", no_argument, NULL, 'S'},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {"wide", no_argument, NULL, 'w'},
                                          {"timings", no_argument, NULL, 'T'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *format_src;
    struct err e;
    int ch, status = cli_analyze_env(o, &format_src);

    opterr = 0;
    while (status < 0 && (ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (ch) {
        case 'p': o->preset = optarg; break;
        case 's':
            if (o->n_sets == CLI_MAX_SETS)
                return cli_usage_error("analyze", "more than %d --set options", CLI_MAX_SETS);
            o->sets[o->n_sets++] = optarg;
            break;
        case 'f':
            o->format = optarg;
            format_src = "--format";
            break;
        case 'i': o->include = optarg; break;
        case 'x': o->exclude = optarg; break;
        case 't':
            if (cli_long("--threads", optarg, 0, 256, &o->threads, &e))
                return cli_settings_error("analyze", &e);
            break;
        case 'F':
            if (cli_input_format(optarg, &o->input_format, &e))
                return cli_settings_error("analyze", &e);
            break;
        case 'B': o->base = optarg; break;
        case 'S': o->strict = 1; break;
        case 'q': o->quiet = 1; break;
        case 'w': o->wide = 1; break;
        case 'T': o->timings = 1; break;
        case 'h': fputs(cli_analyze_usage, stdout); return 0;
        default: return cli_getopt_error("analyze", ch, argv);
        }
    }
    if (status >= 0)
        return status;
    if (optind == argc)
        return cli_usage_error("analyze", "missing FILE");
    if (optind != argc - 1)
        return cli_usage_error("analyze", "one FILE only, got '%s' and '%s'", argv[optind],
                               argv[optind + 1]);
    o->file = argv[optind];
    if (strcmp(o->format, "table") != 0 && strcmp(o->format, "json") != 0 &&
        strcmp(o->format, "csv") != 0)
        return cli_usage_error("analyze", "%s=%s: unknown format (table, json, csv)", format_src,
                               o->format);
    return -1;
}

/* --- Output ------------------------------------------------------------- */

/* --timings: the stages summed over the analysed layers, on stderr. Wall
 * seconds on the command's thread; CPU seconds of the workers inside the
 * units (summed over threads, so they may exceed the units' wall time). */
static void cli_timings_print(const struct engine_report *r)
{
    struct engine_stages t = {0};
    size_t n = 0;

    for (size_t i = 0; i < r->n; i++) {
        const struct engine_stages *s = &r->layers[i].stages;
        if (!r->layers[i].selected)
            continue;
        n++;
        t.load_s += s->load_s;
        t.units_s += s->units_s;
        t.finish_s += s->finish_s;
        esd_stats_add(&t.esd, &s->esd);
    }
    fprintf(stderr,
            "timings: %zu layers, %lld eigenproblems\n"
            "  read + decode to float64   %9.2f s wall\n"
            "  units                      %9.2f s wall\n"
            "    Gram formed              %9.2f s CPU (%lld)\n"
            "    Gram updated             %9.2f s CPU (%lld)\n"
            "    Gram copied              %9.2f s CPU\n"
            "    tridiagonal reduction    %9.2f s CPU\n"
            "    eigenvalues              %9.2f s CPU\n"
            "  fit, metrics, histogram    %9.2f s wall\n",
            n, (long long)t.esd.n_eigs, t.load_s, t.units_s, t.esd.gram_set_s,
            (long long)t.esd.n_gram_set, t.esd.gram_update_s, (long long)t.esd.n_gram_update,
            t.esd.copy_s, t.esd.reduce_s, t.esd.eigs_s, t.finish_s);
}

/* The CSV columns: the layer, then the result fields JSON shows
 * (FARMS_RESULT_FIELDS, core/numerics/farms_fields.h), then the warning. */
#define CLI_CSV_COL(member, NAME, type, key, column, json, ...) FARMS_FIELD_SHOWN_##json(key, )
static const char *const cli_csv_cols[] = {"name",
                                           "kind",
                                           "dtype",
                                           "shape",
                                           "status",
                                           "reason",
                                           FARMS_RESULT_FIELDS(CLI_CSV_COL) "warning"};
#undef CLI_CSV_COL

/* The numbers of the --wide table: the fields with a width there. */
struct cli_wide_col {
    const char *key;
    int width;
    int decimals;
};

#define CLI_WIDE_COL(member, NAME, type, key, column, json, history, width, decimals, ...) \
    {key, width, decimals},
static const struct cli_wide_col cli_wide_cols[] = {FARMS_RESULT_FIELDS(CLI_WIDE_COL)};
#undef CLI_WIDE_COL

/* A field of a layer object as text: strings as is, numbers %.10g, shape AxB. */
static void cli_field(const cJSON *layer, const char *key, char *buf, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(layer, key);

    buf[0] = '\0';
    if (cJSON_IsString(v)) {
        snprintf(buf, len, "%s", v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        snprintf(buf, len, "%.10g", v->valuedouble);
    } else if (cJSON_IsArray(v)) {
        size_t used = 0;
        const cJSON *d;
        cJSON_ArrayForEach(d, v)
        {
            int n = snprintf(buf + used, len - used, "%s%lld", used ? "x" : "",
                             (long long)d->valuedouble);
            if (n < 0 || (size_t)n >= len - used)
                break;
            used += (size_t)n;
        }
    }
}

static void cli_print_csv(const cJSON *layers)
{
    const size_t n_cols = sizeof(cli_csv_cols) / sizeof(cli_csv_cols[0]);
    const cJSON *layer;
    char buf[512];

    for (size_t c = 0; c < n_cols; c++)
        printf("%s%s", c ? "," : "", cli_csv_cols[c]);
    printf("\n");
    cJSON_ArrayForEach(layer, layers)
    {
        for (size_t c = 0; c < n_cols; c++) {
            cli_field(layer, cli_csv_cols[c], buf, sizeof(buf));
            if (c)
                putchar(',');
            if (strpbrk(buf, ",\"\n") == NULL) {
                fputs(buf, stdout);
                continue;
            }
            putchar('"'); /* RFC 4180: quote, double the quotes inside */
            for (const char *q = buf; *q; q++) {
                if (*q == '"')
                    putchar('"');
                putchar(*q);
            }
            putchar('"');
        }
        printf("\n");
    }
}

/* The short name of a kind for the fitted table (at most 7 columns). */
static const char *cli_kind_short(const char *kind)
{
    static const char *const names[][2] = {
        {"conv1d_transposed", "conv1dT"}, {"embedding", "embed"}, {"norm_stat", "nstat"}};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(kind, names[i][0]) == 0)
            return names[i][1];
    return kind;
}

/* A number field with `decimals` decimals, or "-" when null. */
static void cli_num(const cJSON *layer, const char *key, int decimals, char *buf, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(layer, key);

    if (cJSON_IsNumber(v))
        snprintf(buf, len, "%.*f", decimals, v->valuedouble);
    else
        snprintf(buf, len, "-");
}

static int cli_name_width(const cJSON *layers)
{
    const cJSON *layer;
    char name[512];
    int w = 4;

    cJSON_ArrayForEach(layer, layers)
    {
        cli_field(layer, "name", name, sizeof(name));
        if ((int)strlen(name) > w)
            w = (int)strlen(name);
    }
    return w;
}

/* Today's full table: name, kind, shape, status, the numbers of
 * cli_wide_cols, and the warning or the reason, names and reasons in full. */
static void cli_print_wide(const cJSON *layers)
{
    const size_t n_cols = sizeof(cli_wide_cols) / sizeof(cli_wide_cols[0]);
    const cJSON *layer;
    char name[512], kind[32], shape[64], status[16], num[32], warn[32], reason[256];
    int w = cli_name_width(layers);

    printf("%-*s  %-17s  %-12s  %-7s", w, "name", "kind", "shape", "status");
    for (size_t c = 0; c < n_cols; c++)
        if (cli_wide_cols[c].width > 0)
            printf("  %*s", cli_wide_cols[c].width, cli_wide_cols[c].key);
    printf("  %s\n", "warning / reason");
    cJSON_ArrayForEach(layer, layers)
    {
        cli_field(layer, "name", name, sizeof(name));
        cli_field(layer, "kind", kind, sizeof(kind));
        cli_field(layer, "shape", shape, sizeof(shape));
        cli_field(layer, "status", status, sizeof(status));
        cli_field(layer, "warning", warn, sizeof(warn));
        cli_field(layer, "reason", reason, sizeof(reason));
        printf("%-*s  %-17s  %-12s  %-7s", w, name, kind, shape, status);
        for (size_t c = 0; c < n_cols; c++) {
            if (cli_wide_cols[c].width == 0)
                continue;
            cli_num(layer, cli_wide_cols[c].key, cli_wide_cols[c].decimals, num, sizeof(num));
            printf("  %*s", cli_wide_cols[c].width, num);
        }
        printf("  %s\n", warn[0] ? warn : reason);
    }
}

/* The default table, fitted to `width` columns: name (its start cut if
 * needed), short kind, shape, alpha, and a note (the warning, the reason a
 * layer was skipped, or "failed: " and why), cut at the end. D, n_tail and
 * num_eigs are in --wide, the JSON and the CSV. */
static void cli_print_fitted(const cJSON *layers, int width)
{
    enum { FIXED = 2 + 7 + 2 + 11 + 2 + 6 + 2, NOTE_MIN = 13, NAME_MIN = 12 };
    const cJSON *layer;
    char name[512], fitted[512], kind[32], shape[64], status[16], alpha[32], warn[32];
    char reason[256], note[300];
    int w = cli_name_width(layers), note_w;

    if (w > width - FIXED - NOTE_MIN)
        w = width - FIXED - NOTE_MIN > NAME_MIN ? width - FIXED - NOTE_MIN : NAME_MIN;
    note_w = width - FIXED - w > 4 ? width - FIXED - w : 4;
    printf("%-*s  %-7s  %-11s  %6s  %s\n", w, "name", "kind", "shape", "alpha", "note");
    cJSON_ArrayForEach(layer, layers)
    {
        cli_field(layer, "name", name, sizeof(name));
        cli_field(layer, "kind", kind, sizeof(kind));
        cli_field(layer, "shape", shape, sizeof(shape));
        cli_field(layer, "status", status, sizeof(status));
        cli_field(layer, "warning", warn, sizeof(warn));
        cli_field(layer, "reason", reason, sizeof(reason));
        cli_num(layer, "alpha", 3, alpha, sizeof(alpha));
        cli_fit(fitted, sizeof(fitted), name, w, 1);
        snprintf(note, sizeof(note), "%s%s", strcmp(status, "failed") == 0 ? "failed: " : "",
                 warn[0] ? warn : reason);
        cli_fit(reason, sizeof(reason), note, note_w, 0);
        cli_fit(note, sizeof(note), shape, 11, 0);
        /* trailing spaces of an empty note trimmed */
        printf("%-*s  %-7.7s  %-11s  %6s%s%s\n", w, fitted, cli_kind_short(kind), note, alpha,
               reason[0] ? "  " : "", reason);
    }
}

/* The summary line: analysed / skipped / failed layers, over- and
 * under-trained ones (alpha < 2, alpha > 6, among the analysed). */
static void cli_print_summary(const cJSON *layers, int width)
{
    const cJSON *layer;
    long n_ok = 0, n_skip = 0, n_fail = 0, n_over = 0, n_under = 0;
    char line[256];

    cJSON_ArrayForEach(layer, layers)
    {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(layer, "status");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(layer, "alpha");
        const char *s = cJSON_IsString(st) ? st->valuestring : "";
        n_ok += strcmp(s, "ok") == 0;
        n_skip += strcmp(s, "skipped") == 0;
        n_fail += strcmp(s, "failed") == 0;
        n_over += strcmp(s, "ok") == 0 && cJSON_IsNumber(a) && a->valuedouble < 2.0;
        n_under += strcmp(s, "ok") == 0 && cJSON_IsNumber(a) && a->valuedouble > 6.0;
    }
    snprintf(line, sizeof(line),
             "%ld analysed, %ld skipped, %ld failed; %ld over-trained (alpha < 2), "
             "%ld under-trained (alpha > 6)",
             n_ok, n_skip, n_fail, n_over, n_under);
    if ((int)strlen(line) > width)
        snprintf(line, sizeof(line),
                 "%ld analysed, %ld skipped, %ld failed; %ld over-trained, "
                 "%ld under-trained",
                 n_ok, n_skip, n_fail, n_over, n_under);
    printf("\n%s\n", line);
}

static void cli_print_table(const cJSON *layers, int wide)
{
    int width = cli_term_width();

    if (wide)
        cli_print_wide(layers);
    else
        cli_print_fitted(layers, width);
    cli_print_summary(layers, wide ? 1000 : width);
}

/* The report as {"file", "format", "preset", "params", "ordering", "layers"}. */
static cJSON *cli_report_json(const struct cli_analyze_opts *o, const struct ckpt *c,
                              const char *preset, const struct farms_params *p,
                              const struct engine_report *r)
{
    cJSON *root = cJSON_CreateObject(), *layers;
    int good = root != NULL;

    good = good && cJSON_AddStringToObject(root, "file", o->file) &&
           cJSON_AddStringToObject(root, "format", ckpt_format_name(ckpt_format_of(c))) &&
           cJSON_AddStringToObject(root, "preset", preset) &&
           cJSON_AddItemToObject(root, "params", json_params_new(p)) &&
           cJSON_AddStringToObject(root, "ordering", layer_ordering_name(r->ordering));
    layers = good ? cJSON_AddArrayToObject(root, "layers") : NULL;
    good = layers != NULL;
    for (size_t i = 0; i < r->n && good; i++) {
        const struct engine_layer *row = &r->layers[i];
        cJSON *l =
            json_layer_new(row->name, row->info.kind, row->dtype, row->ndim, row->shape, &row->res);
        good = l != NULL && cJSON_AddItemToArray(layers, l);
    }
    if (!good) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static int cli_emit(const struct cli_analyze_opts *o, const struct ckpt *c, const char *preset,
                    const struct farms_params *p, const struct engine_report *r)
{
    cJSON *root = cli_report_json(o, c, preset, p, r);
    char *text;

    if (root == NULL) {
        fprintf(stderr, "error: out of memory building the report\n");
        return CLI_EXIT_FAILED;
    }
    if (strcmp(o->format, "json") == 0) {
        text = cJSON_Print(root);
        if (text != NULL)
            printf("%s\n", text);
        cJSON_free(text);
    } else if (strcmp(o->format, "csv") == 0) {
        cli_print_csv(cJSON_GetObjectItemCaseSensitive(root, "layers"));
    } else {
        cli_print_table(cJSON_GetObjectItemCaseSensitive(root, "layers"), o->wide);
    }
    cJSON_Delete(root);
    return 0;
}

static int cli_compile(const char *what, const char *pattern, regex_t *re)
{
    char msg[256];
    int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);

    if (rc == 0)
        return 1;
    regerror(rc, re, msg, sizeof(msg));
    cli_usage_error("analyze", "--%s=%s: bad regex: %s", what, pattern, msg);
    return 0;
}

int cli_analyze_main(int argc, char **argv)
{
    struct cli_analyze_opts o = {0};
    struct engine_report report = {0};
    struct cli_run_counts counts;
    struct cli_run run = {0};
    struct ckpt_limits limits;
    struct farms_params params;
    const char *preset;
    regex_t inc, exc;
    int have_inc = 0, have_exc = 0, status;
    struct ckpt *c = NULL;
    struct pool *pool = NULL;
    struct err e;

    status = cli_analyze_parse(argc, argv, &o);
    if (status >= 0)
        return status;
    if (cli_params(o.preset, o.sets, o.n_sets, &params, &preset, &e))
        return cli_settings_error("analyze", &e);
    if ((o.include && !(have_inc = cli_compile("include", o.include, &inc))) ||
        (o.exclude && !(have_exc = cli_compile("exclude", o.exclude, &exc)))) {
        status = CLI_EXIT_USAGE;
        goto out;
    }
    if (cli_limits(&limits, &e)) {
        status = cli_settings_error("analyze", &e);
        goto out;
    }
    limits.strict = o.strict;
    if (pool_new(cli_threads(o.threads), 1024, &pool, &e)) {
        cli_print_error(&e);
        status = CLI_EXIT_FAILED;
        goto out;
    }
    run = (struct cli_run){.file = o.file,
                           .base = o.base,
                           .input_format = o.input_format,
                           .limits = &limits,
                           .params = &params,
                           .include = have_inc ? &inc : NULL,
                           .exclude = have_exc ? &exc : NULL,
                           .progress = cli_run_progress,
                           .progress_arg = &o.quiet,
                           .pool = pool};
    status = cli_run_file(&run, &c, &report, &counts);
    if (status != 0)
        goto out;
    status = cli_emit(&o, c, preset, &params, &report);
    if (o.timings)
        cli_timings_print(&report);
out:
    pool_free(pool);
    engine_report_free(&report);
    ckpt_close(c);
    if (have_inc)
        regfree(&inc);
    if (have_exc)
        regfree(&exc);
    return status;
}
