/* cli_inspect.c -- `farmsd inspect FILE`: list every tensor of a checkpoint
 * with its dtype, shape, SHA-256 and whether `analyze` would take it, without
 * analysing anything. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/formats/thash.h"
#include "core/numerics/preset.h"
#include "server/cli.h"
#include "server/engine.h"

static const char cli_inspect_usage[] =
    "usage: farmsd inspect FILE [options]\n"
    "       farmsd inspect ADAPTER [--base BASE] [options]\n"
    "\n"
    "List the tensors of a checkpoint in file order: name, dtype, shape, the layout the\n"
    "weight is read in (torch: (out, in) / (out, in, kh, kw); keras: Keras/TF/Flax (in, out)\n"
    "/ (kh, kw, in, out); -: not a weight; set it with --set layout=auto|torch|keras), SHA-256\n"
    "of the tensor's bytes (C order, stored dtype, little-endian), and whether `farmsd\n"
    "analyze` would analyse it (with the reason when not). A PEFT LoRA adapter alone lists its\n"
    "adapted modules under their base names with rank and ||s*B*A||_2; with --base, the\n"
    "merged checkpoint (adapted weights F64 W + s*B*A, the rest the base's own bytes).\n"
    "\n"
    "  --base BASE         the base checkpoint FILE (a LoRA adapter) is merged onto\n"
    "  --format F          table (default) or json                        [FARMSD_FORMAT]\n"
    "  --wide              the table with full names, hashes and reasons (default: fitted\n"
    "                      to the terminal, else 80 columns)\n"
    "  --preset P          the settings that decide the selection "
    "(default " PRESET_DEFAULT_NAME ")\n"
    "  --set KEY=VALUE     override a setting (repeatable; see farmsd analyze --help)\n"
    "  --input-format F    auto (default), safetensors, index, torch, npy, npz, gguf,\n"
    "                      dcp, deepspeed, peft\n"
    "                      (with --base: the base's format)\n"
    "  --strict            refuse pickles with unknown globals            [FARMSD_STRICT=1]\n"
    "  -h, --help          this help\n"
    "\n"
    "FARMSD_MAX_PICKLE_MEM (default 256M): the memory a torch file's data.pkl may take to\n"
    "unpickle (see farmsd analyze --help).\n";

#define CLI_INSPECT_MAX_SETS 64

struct cli_inspect_opts {
    const char *file;
    const char *base; /* --base: FILE is a LoRA adapter merged onto it */
    const char *format;
    const char *preset;
    char *sets[CLI_INSPECT_MAX_SETS];
    int n_sets;
    enum ckpt_format input_format;
    int strict;
    int wide;
};

struct cli_tensor_row {
    const char *name;   /* display name (borrowed) */
    const char *kind;   /* layer_kind_name, "-" outside the model (static) */
    const char *layout; /* layer_kind_layout: torch, keras or - (static) */
    const char *reason; /* NULL when selected (borrowed) */
    char sha256[THASH_HEX_LEN];
};

static cJSON *cli_inspect_json(const char *file, const struct ckpt *c,
                               const struct cli_tensor_row *rows, size_t n)
{
    cJSON *root = cJSON_CreateObject(), *arr = NULL;
    int good = root != NULL && cJSON_AddStringToObject(root, "file", file) &&
               cJSON_AddStringToObject(root, "format", ckpt_format_name(ckpt_format_of(c))) &&
               cJSON_AddStringToObject(root, "model_prefix", ckpt_model_prefix(c));

    arr = good ? cJSON_AddArrayToObject(root, "tensors") : NULL;
    good = arr != NULL;
    for (size_t i = 0; good && i < n; i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(c, i);
        cJSON *o = cJSON_CreateObject(), *shape;
        good = o != NULL && cJSON_AddItemToArray(arr, o) &&
               cJSON_AddStringToObject(o, "name", rows[i].name) &&
               cJSON_AddStringToObject(o, "stored_name", t->name) &&
               cJSON_AddStringToObject(o, "dtype", dtype_name(t->dtype)) &&
               (shape = cJSON_AddArrayToObject(o, "shape")) != NULL;
        for (int d = 0; good && d < t->ndim; d++)
            good = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        good = good && cJSON_AddStringToObject(o, "kind", rows[i].kind) &&
               cJSON_AddStringToObject(o, "layout", rows[i].layout) &&
               cJSON_AddStringToObject(o, "sha256", rows[i].sha256) &&
               cJSON_AddBoolToObject(o, "selected", rows[i].reason == NULL) &&
               (rows[i].reason ? cJSON_AddStringToObject(o, "reason", rows[i].reason)
                               : cJSON_AddNullToObject(o, "reason")) != NULL;
    }
    if (!good) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* The table: name, dtype, shape, layout, the hash's first 12 hex digits (all
 * 64 with `wide`), and "yes" or why not. Unless `wide`, fitted to the terminal: the
 * name's start cut and the reason's end when needed. */
static void cli_inspect_table(const struct ckpt *c, const struct cli_tensor_row *rows, size_t n,
                              int wide)
{
    const int hash_w = wide ? THASH_HEX_LEN - 1 : 12, width = cli_term_width();
    const int shape_w = wide ? 16 : 11, fixed = 2 + 7 + 2 + shape_w + 2 + 6 + 2 + hash_w + 2;
    const int note_min = 16;
    size_t n_selected = 0;
    char name[512], reason[256];
    int w = 4, note_w = 1 << 20;

    for (size_t i = 0; i < n; i++)
        if ((int)strlen(rows[i].name) > w)
            w = (int)strlen(rows[i].name);
    if (!wide && w > width - fixed - note_min)
        w = width - fixed - note_min > 8 ? width - fixed - note_min : 8;
    if (!wide)
        note_w = width - fixed - w;
    printf("format: %s\n", ckpt_format_name(ckpt_format_of(c)));
    printf("%-*s  %-7s  %-*s  %-6s  %-*s  %s\n", w, "name", "dtype", shape_w, "shape", "layout",
           hash_w, "sha256", "selected");
    for (size_t i = 0; i < n; i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(c, i);
        char shape[64] = "";
        size_t used = 0;
        for (int d = 0; d < t->ndim && used < sizeof(shape); d++) {
            int len = snprintf(shape + used, sizeof(shape) - used, "%s%lld", d ? "x" : "",
                               (long long)t->shape[d]);
            used += len > 0 ? (size_t)len : 0;
        }
        n_selected += rows[i].reason == NULL;
        cli_fit(name, sizeof(name), rows[i].name, wide ? 1 << 20 : w, 1);
        cli_fit(reason, sizeof(reason), rows[i].reason ? rows[i].reason : "yes", note_w, 0);
        printf("%-*s  %-7s  %-*s  %-6s  %.*s  %s\n", w, name, dtype_name(t->dtype), shape_w,
               t->ndim ? shape : "scalar", rows[i].layout, hash_w, rows[i].sha256, reason);
    }
    printf("\n%zu tensors, %zu selected for analysis\n", n, n_selected);
}

/* Selection per tensor (rows[0..n), n the checkpoint's tensor count), from
 * the engine's rows (model tensors) or "not part of the model weights"; hash
 * every tensor. */
static enum err_code cli_inspect_rows(const struct ckpt *c, const struct engine_report *r,
                                      struct cli_tensor_row *rows, size_t n, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct ckpt_buf buf = {0};

    for (size_t i = 0; i < n; i++) {
        rows[i].name = ckpt_tensor_at(c, i)->name;
        rows[i].kind = rows[i].layout = "-";
        rows[i].reason = "not part of the model weights (optimizer or training state)";
    }
    for (size_t i = 0; i < r->n; i++) {
        const struct engine_layer *l = &r->layers[i];
        rows[l->tensor].name = l->name;
        rows[l->tensor].kind = layer_kind_name(l->info.kind);
        rows[l->tensor].layout = layer_kind_layout(l->info.kind);
        rows[l->tensor].reason = l->selected ? NULL : l->res.reason;
    }
    for (size_t i = 0; i < n && rc == ERR_OK; i++)
        rc = thash_tensor(c, i, &buf, rows[i].sha256, e);
    ckpt_buf_free(&buf);
    return rc;
}

/* The environment's defaults (FARMSD_FORMAT, FARMSD_STRICT) and argv into
 * the options; returns -1 to go on, else the exit status. */
static int cli_inspect_parse(int argc, char **argv, struct cli_inspect_opts *o)
{
    static const struct option longs[] = {{"format", required_argument, NULL, 'f'},
                                          {"preset", required_argument, NULL, 'p'},
                                          {"set", required_argument, NULL, 's'},
                                          {"input-format", required_argument, NULL, 'F'},
                                          {"strict", no_argument, NULL, 'S'},
                                          {"wide", no_argument, NULL, 'w'},
                                          {"base", required_argument, NULL, 'B'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *format_src = "FARMSD_FORMAT";
    long strict = 0;
    struct err e;
    int ch;

    o->format = cli_env_str("FARMSD_FORMAT", NULL);
    if (o->format == NULL) {
        o->format = "table";
        format_src = "--format";
    }
    if (cli_env_long("FARMSD_STRICT", 0, 0, 1, &strict, &e))
        return cli_settings_error("inspect", &e);
    o->strict = strict != 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (ch) {
        case 'f':
            o->format = optarg;
            format_src = "--format";
            break;
        case 'p': o->preset = optarg; break;
        case 's':
            if (o->n_sets == CLI_INSPECT_MAX_SETS)
                return cli_usage_error("inspect", "more than %d --set options",
                                       CLI_INSPECT_MAX_SETS);
            o->sets[o->n_sets++] = optarg;
            break;
        case 'F':
            if (cli_input_format(optarg, &o->input_format, &e))
                return cli_settings_error("inspect", &e);
            break;
        case 'B': o->base = optarg; break;
        case 'S': o->strict = 1; break;
        case 'w': o->wide = 1; break;
        case 'h': fputs(cli_inspect_usage, stdout); return 0;
        default: return cli_getopt_error("inspect", ch, argv);
        }
    }
    if (optind == argc)
        return cli_usage_error("inspect", "missing FILE");
    if (optind != argc - 1)
        return cli_usage_error("inspect", "one FILE only, got '%s' and '%s'", argv[optind],
                               argv[optind + 1]);
    o->file = argv[optind];
    if (strcmp(o->format, "table") != 0 && strcmp(o->format, "json") != 0)
        return cli_usage_error("inspect", "%s=%s: unknown format (table, json)", format_src,
                               o->format);
    return -1;
}

/* The limits and parameters of `o` (preset, --set, $FARMSD_* limits); -1 to
 * go on, else the exit status after the usage message. */
static int cli_inspect_settings(const struct cli_inspect_opts *o, struct ckpt_limits *limits,
                                struct farms_params *params)
{
    const char *resolved;
    struct err e;

    if (cli_limits(limits, &e))
        return cli_settings_error("inspect", &e);
    limits->strict = o->strict;
    if (cli_params(o->preset, o->sets, o->n_sets, params, &resolved, &e))
        return cli_settings_error("inspect", &e);
    return -1;
}

/* Print the rows as --format says; the exit status. */
static int cli_inspect_print(const struct cli_inspect_opts *o, const struct ckpt *c,
                             const struct cli_tensor_row *rows, size_t n)
{
    cJSON *root;
    char *text;
    int status;

    if (strcmp(o->format, "json") != 0) {
        cli_inspect_table(c, rows, n, o->wide);
        return 0;
    }
    root = cli_inspect_json(o->file, c, rows, n);
    text = root ? cJSON_Print(root) : NULL;
    if (text != NULL)
        printf("%s\n", text);
    status = text != NULL ? 0 : CLI_EXIT_FAILED;
    cJSON_free(text);
    cJSON_Delete(root);
    return status;
}

int cli_inspect_main(int argc, char **argv)
{
    struct cli_inspect_opts o = {0};
    int status;
    struct ckpt_limits limits;
    struct farms_params params;
    struct engine_report report = {0};
    struct engine_opts eo = {.params = &params};
    struct cli_tensor_row *rows = NULL;
    struct ckpt *c = NULL;
    size_t n;
    struct err e;

    status = cli_inspect_parse(argc, argv, &o);
    if (status < 0)
        status = cli_inspect_settings(&o, &limits, &params);
    if (status >= 0)
        return status;
    status = CLI_EXIT_INPUT;
    if (cli_open(o.file, o.base, o.input_format, &limits, &c, &e) ||
        engine_select(c, &eo, &report, &e)) {
        cli_print_error(&e);
        goto out;
    }
    n = ckpt_n_tensors(c);
    rows = calloc(n + 1, sizeof(*rows));
    if (rows == NULL) {
        err_set(&e, ERR_NOMEM, "out of memory");
        cli_print_error(&e);
        goto out;
    }
    if (cli_inspect_rows(c, &report, rows, n, &e)) {
        cli_print_error(&e);
        goto out;
    }
    status = cli_inspect_print(&o, c, rows, n);
out:
    free(rows);
    engine_report_free(&report);
    ckpt_close(c);
    return status;
}
