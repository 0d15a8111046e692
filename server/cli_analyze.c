/* cli_analyze.c -- `farmsd analyze FILE`: per-layer FARMS results as a
 * table, JSON or CSV. The rows are built as the JSON layer objects of
 * api/json.h, and the table and CSV are printed from those objects
 * (cli_analyze_table.c), so the three formats always agree. This file has
 * the options, the report's JSON and the command. */
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
#include "server/cli_analyze_int.h"
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
    return cli_run_emit(cli_report_json(o, c, preset, p, r), o->format, "the report",
                        cli__analyze_csv, cli__analyze_table, &o->wide);
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
        cli__analyze_timings(&report);
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
