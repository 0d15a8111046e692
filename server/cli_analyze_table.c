/* cli_analyze_table.c -- the output of `farmsd analyze` besides JSON
 * (cli_analyze_int.h): the table (fitted to the terminal, or --wide), the
 * CSV, and the --timings table. The table and the CSV are printed from the
 * report's JSON layer objects (api/json.h), so the three formats always
 * agree. */
#include "server/cli_analyze_int.h"

#include <stdio.h>
#include <string.h>

#include "core/numerics/farms_fields.h"
#include "server/cli.h"
#include "server/cli_run.h"

/* --timings: the stages summed over the analysed layers, on stderr. Wall
 * seconds on the command's thread; CPU seconds of the workers inside the
 * units (summed over threads, so they may exceed the units' wall time). */
void cli__analyze_timings(const struct engine_report *r)
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

void cli__analyze_csv(const cJSON *root, const void *arg)
{
    const size_t n_cols = sizeof(cli_csv_cols) / sizeof(cli_csv_cols[0]);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    const cJSON *layer;
    char buf[512];

    (void)arg; /* cli_run_print_fn */
    for (size_t c = 0; c < n_cols; c++)
        printf("%s%s", c ? "," : "", cli_csv_cols[c]);
    printf("\n");
    cJSON_ArrayForEach(layer, layers)
    {
        for (size_t c = 0; c < n_cols; c++) {
            cli_field(layer, cli_csv_cols[c], buf, sizeof(buf));
            cli_run_csv_field(buf, c == 0);
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

/* The text fields of a layer object that both tables print. */
struct cli_row {
    char name[512], kind[32], shape[64], status[16], warn[32], reason[256];
};

static void cli_row_get(const cJSON *layer, struct cli_row *row)
{
    cli_field(layer, "name", row->name, sizeof(row->name));
    cli_field(layer, "kind", row->kind, sizeof(row->kind));
    cli_field(layer, "shape", row->shape, sizeof(row->shape));
    cli_field(layer, "status", row->status, sizeof(row->status));
    cli_field(layer, "warning", row->warn, sizeof(row->warn));
    cli_field(layer, "reason", row->reason, sizeof(row->reason));
}

/* Today's full table: name, kind, shape, status, the numbers of
 * cli_wide_cols, and the warning or the reason, names and reasons in full. */
static void cli_print_wide(const cJSON *layers)
{
    const size_t n_cols = sizeof(cli_wide_cols) / sizeof(cli_wide_cols[0]);
    const cJSON *layer;
    struct cli_row row;
    char num[32];
    int w = cli_name_width(layers);

    printf("%-*s  %-17s  %-12s  %-7s", w, "name", "kind", "shape", "status");
    for (size_t c = 0; c < n_cols; c++)
        if (cli_wide_cols[c].width > 0)
            printf("  %*s", cli_wide_cols[c].width, cli_wide_cols[c].key);
    printf("  %s\n", "warning / reason");
    cJSON_ArrayForEach(layer, layers)
    {
        cli_row_get(layer, &row);
        printf("%-*s  %-17s  %-12s  %-7s", w, row.name, row.kind, row.shape, row.status);
        for (size_t c = 0; c < n_cols; c++) {
            if (cli_wide_cols[c].width == 0)
                continue;
            cli_num(layer, cli_wide_cols[c].key, cli_wide_cols[c].decimals, num, sizeof(num));
            printf("  %*s", cli_wide_cols[c].width, num);
        }
        printf("  %s\n", row.warn[0] ? row.warn : row.reason);
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
    struct cli_row row;
    char fitted[512], alpha[32], note[300];
    int w = cli_name_width(layers), note_w;

    if (w > width - FIXED - NOTE_MIN)
        w = width - FIXED - NOTE_MIN > NAME_MIN ? width - FIXED - NOTE_MIN : NAME_MIN;
    note_w = width - FIXED - w > 4 ? width - FIXED - w : 4;
    printf("%-*s  %-7s  %-11s  %6s  %s\n", w, "name", "kind", "shape", "alpha", "note");
    cJSON_ArrayForEach(layer, layers)
    {
        cli_row_get(layer, &row);
        cli_num(layer, "alpha", 3, alpha, sizeof(alpha));
        cli_fit(fitted, sizeof(fitted), row.name, w, 1);
        snprintf(note, sizeof(note), "%s%s", strcmp(row.status, "failed") == 0 ? "failed: " : "",
                 row.warn[0] ? row.warn : row.reason);
        cli_fit(row.reason, sizeof(row.reason), note, note_w, 0);
        cli_fit(note, sizeof(note), row.shape, 11, 0);
        /* trailing spaces of an empty note trimmed */
        printf("%-*s  %-7.7s  %-11s  %6s%s%s\n", w, fitted, cli_kind_short(row.kind), note, alpha,
               row.reason[0] ? "  " : "", row.reason);
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

void cli__analyze_table(const cJSON *root, const void *arg)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    int wide = *(const int *)arg, width = cli_term_width();

    if (wide)
        cli_print_wide(layers);
    else
        cli_print_fitted(layers, width);
    cli_print_summary(layers, wide ? 1000 : width);
}
