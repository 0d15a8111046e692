/* cli_inspect.c -- `farmsd inspect FILE`: list every tensor of a checkpoint
 * with its dtype, shape, SHA-256 and whether `analyze` would take it, without
 * analysing anything. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/thash.h"
#include "server/cli.h"
#include "server/engine.h"

static const char cli_inspect_usage[] =
    "usage: farmsd inspect FILE [options]\n"
    "\n"
    "List the tensors of a checkpoint in file order: name, dtype, shape, SHA-256 of the\n"
    "tensor's bytes (C order, stored dtype, little-endian), and whether `farmsd analyze`\n"
    "would analyse it (with the reason when not).\n"
    "\n"
    "  --format F          table (default) or json                        [FARMSD_FORMAT]\n"
    "  --preset P          the settings that decide the selection (default farms-llm)\n"
    "  --set KEY=VALUE     override a setting (repeatable; see farmsd analyze --help)\n"
    "  --input-format F    auto (default), safetensors, index, torch, npy, npz\n"
    "  --strict            refuse pickles with unknown globals            [FARMSD_STRICT=1]\n"
    "  -h, --help          this help\n"
    "\n"
    "FARMSD_MAX_PICKLE_MEM (default 256M): the memory a torch file's data.pkl may take to\n"
    "unpickle (see farmsd analyze --help).\n";

struct cli_tensor_row {
    const char *name;   /* display name (borrowed) */
    const char *reason; /* NULL when selected (borrowed) */
    char sha256[THASH_HEX_LEN];
};

static cJSON *cli_inspect_json(const char *file, const struct ckpt *c,
                               const struct cli_tensor_row *rows)
{
    cJSON *root = cJSON_CreateObject(), *arr = NULL;
    int good = root != NULL && cJSON_AddStringToObject(root, "file", file) &&
               cJSON_AddStringToObject(root, "format", ckpt_format_name(ckpt_format_of(c))) &&
               cJSON_AddStringToObject(root, "model_prefix", ckpt_model_prefix(c));

    arr = good ? cJSON_AddArrayToObject(root, "tensors") : NULL;
    good = arr != NULL;
    for (size_t i = 0; good && i < ckpt_n_tensors(c); i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(c, i);
        cJSON *o = cJSON_CreateObject(), *shape;
        good = o != NULL && cJSON_AddItemToArray(arr, o) &&
               cJSON_AddStringToObject(o, "name", rows[i].name) &&
               cJSON_AddStringToObject(o, "stored_name", t->name) &&
               cJSON_AddStringToObject(o, "dtype", dtype_name(t->dtype)) &&
               (shape = cJSON_AddArrayToObject(o, "shape")) != NULL;
        for (int d = 0; good && d < t->ndim; d++)
            good = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        good = good && cJSON_AddStringToObject(o, "sha256", rows[i].sha256) &&
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

static void cli_inspect_table(const struct ckpt *c, const struct cli_tensor_row *rows)
{
    int w = 4;

    for (size_t i = 0; i < ckpt_n_tensors(c); i++)
        if ((int)strlen(rows[i].name) > w)
            w = (int)strlen(rows[i].name);
    printf("format: %s\n", ckpt_format_name(ckpt_format_of(c)));
    printf("%-*s  %-7s  %-16s  %-16s  %s\n", w, "name", "dtype", "shape", "sha256", "selected");
    for (size_t i = 0; i < ckpt_n_tensors(c); i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(c, i);
        char shape[64] = "";
        size_t used = 0;
        for (int d = 0; d < t->ndim && used < sizeof(shape); d++) {
            int n = snprintf(shape + used, sizeof(shape) - used, "%s%lld", d ? "x" : "",
                             (long long)t->shape[d]);
            used += n > 0 ? (size_t)n : 0;
        }
        printf("%-*s  %-7s  %-16s  %.16s  %s\n", w, rows[i].name, dtype_name(t->dtype),
               t->ndim ? shape : "scalar", rows[i].sha256, rows[i].reason ? rows[i].reason : "yes");
    }
}

/* Selection per tensor, from the engine's rows (model tensors) or "not part
 * of the model weights"; hash every tensor. */
static enum err_code cli_inspect_rows(const struct ckpt *c, const struct engine_report *r,
                                      struct cli_tensor_row *rows, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct ckpt_buf buf = {0};

    for (size_t i = 0; i < ckpt_n_tensors(c); i++) {
        rows[i].name = ckpt_tensor_at(c, i)->name;
        rows[i].reason = "not part of the model weights (optimizer or training state)";
    }
    for (size_t i = 0; i < r->n; i++) {
        const struct engine_layer *l = &r->layers[i];
        rows[l->tensor].name = l->name;
        rows[l->tensor].reason = l->selected ? NULL : l->res.reason;
    }
    for (size_t i = 0; i < ckpt_n_tensors(c) && rc == ERR_OK; i++)
        rc = thash_tensor(c, i, &buf, rows[i].sha256, e);
    ckpt_buf_free(&buf);
    return rc;
}

int cli_inspect_main(int argc, char **argv)
{
    static const struct option longs[] = {{"format", required_argument, NULL, 'f'},
                                          {"preset", required_argument, NULL, 'p'},
                                          {"set", required_argument, NULL, 's'},
                                          {"input-format", required_argument, NULL, 'F'},
                                          {"strict", no_argument, NULL, 'S'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *format = cli_env_str("FARMSD_FORMAT", "table");
    const char *preset_name = NULL, *resolved;
    char *sets[64];
    int n_sets = 0, status = 0, ch;
    enum ckpt_format input_format = CKPT_FORMAT_UNKNOWN;
    struct ckpt_limits limits;
    struct farms_params params;
    struct engine_report report = {0};
    struct engine_opts eo = {0};
    struct cli_tensor_row *rows = NULL;
    struct ckpt *c = NULL;
    cJSON *root;
    struct err e;

    if (cli_limits(&limits, &e)) {
        cli_print_error(&e);
        return CLI_EXIT_USAGE;
    }
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (ch) {
        case 'f': format = optarg; break;
        case 'p': preset_name = optarg; break;
        case 's':
            if (n_sets < 64)
                sets[n_sets++] = optarg;
            break;
        case 'F':
            if (cli_input_format(optarg, &input_format, &e)) {
                cli_print_error(&e);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'S': limits.strict = 1; break;
        case 'h': fputs(cli_inspect_usage, stdout); return 0;
        default: fputs(cli_inspect_usage, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)) {
        fprintf(stderr, "error: usage: farmsd inspect FILE [--format table|json] (see --help)\n");
        return CLI_EXIT_USAGE;
    }
    if (cli_params(preset_name, sets, n_sets, &params, &resolved, &e)) {
        cli_print_error(&e);
        return CLI_EXIT_USAGE;
    }
    eo.params = &params;
    if (ckpt_open(argv[optind], input_format, &limits, &c, &e) ||
        engine_select(c, &eo, &report, &e)) {
        cli_print_error(&e);
        status = CLI_EXIT_INPUT;
        goto out;
    }
    rows = calloc(ckpt_n_tensors(c) + 1, sizeof(*rows));
    if (rows == NULL || cli_inspect_rows(c, &report, rows, &e)) {
        if (rows == NULL)
            err_set(&e, ERR_NOMEM, "out of memory");
        cli_print_error(&e);
        status = CLI_EXIT_INPUT;
        goto out;
    }
    if (strcmp(format, "json") == 0) {
        root = cli_inspect_json(argv[optind], c, rows);
        char *text = root ? cJSON_Print(root) : NULL;
        if (text != NULL)
            printf("%s\n", text);
        status = text != NULL ? 0 : CLI_EXIT_FAILED;
        cJSON_free(text);
        cJSON_Delete(root);
    } else {
        cli_inspect_table(c, rows);
    }
out:
    free(rows);
    engine_report_free(&report);
    ckpt_close(c);
    return status;
}
