/* cli_run.c -- see cli_run.h. */
#include "server/cli_run.h"

#include <stdio.h>
#include <string.h>

#include "server/cli.h"
#include "server/worker.h"
#include "storage/store.h"
#include "storage/store_results.h"

/* Serve the selected rows of `r` the cache has; they are then no longer
 * selected. */
static enum err_code cli_run_lookup(const struct cli_run *o, struct engine_report *r,
                                    struct cli_run_counts *n, struct err *e)
{
    char akey[STORE_KEY_MAX];

    for (size_t i = 0; i < r->n; i++) {
        struct engine_layer *row = &r->layers[i];
        struct store_result_key key;
        enum err_code rc;
        int hit = 0;

        if (!row->selected)
            continue;
        key = worker_result_key(o->settings_hash, row, akey, sizeof(akey));
        rc = store_result_get(o->cache, &key, &row->res, &row->esd, &hit, e);
        if (rc != ERR_OK)
            return rc;
        if (hit) {
            row->selected = 0;
            n->n_cached++;
        }
    }
    return ERR_OK;
}

/* Put the rows analysed now into the cache; a failure is only reported. */
static void cli_run_put(const struct cli_run *o, const struct engine_report *r)
{
    char akey[STORE_KEY_MAX];

    for (size_t i = 0; i < r->n; i++) {
        const struct engine_layer *row = &r->layers[i];
        struct store_result_key key;
        struct err e = {0};

        if (!row->selected)
            continue;
        key = worker_result_key(o->settings_hash, row, akey, sizeof(akey));
        if (store_result_put(o->cache, &key, &row->res, &row->esd, &e) != ERR_OK)
            fprintf(stderr, "farmsd: %s: result not cached: %s\n", row->name, e.msg);
    }
}

int cli_run_progress(void *arg, size_t done, size_t total, const struct engine_layer *row,
                     double seconds)
{
    const int *quiet = arg;

    if (!*quiet && seconds >= 0.5)
        fprintf(stderr, "farmsd: [%zu/%zu] %s: %s, %lld windows, %.1f s\n", done, total, row->name,
                farms_status_name(row->res.status), (long long)row->res.windows, seconds);
    return 0;
}

int cli_run_file(const struct cli_run *o, struct ckpt **c, struct engine_report *r,
                 struct cli_run_counts *n)
{
    struct engine_opts eo = {.params = o->params,
                             .include = o->include,
                             .exclude = o->exclude,
                             .hash = o->cache != NULL,
                             .progress = o->progress,
                             .progress_arg = o->progress_arg};
    struct err e = {0};
    int status = 0;

    *c = NULL;
    *n = (struct cli_run_counts){0, 0};
    if (cli_open(o->file, o->base, o->input_format, o->limits, c, &e) != ERR_OK ||
        engine_select(*c, &eo, r, &e) != ERR_OK) {
        status = CLI_EXIT_INPUT;
        goto out;
    }
    if (o->cache != NULL && cli_run_lookup(o, r, n, &e) != ERR_OK) {
        status = CLI_EXIT_FAILED;
        goto out;
    }
    for (size_t i = 0; i < r->n; i++)
        n->n_analysed += r->layers[i].selected != 0;
    if (engine_run(*c, o->pool, &eo, r, &e) != ERR_OK) {
        status = e.category != ERR_CAT_NONE ? CLI_EXIT_INPUT : CLI_EXIT_FAILED;
        goto out;
    }
    if (o->cache != NULL)
        cli_run_put(o, r);
out:
    if (status != 0) {
        cli_print_error(&e);
        engine_report_free(r);
        ckpt_close(*c);
        *c = NULL;
    }
    return status;
}

int cli_run_emit(cJSON *root, const char *format, const char *what, cli_run_print_fn *csv,
                 cli_run_print_fn *table, const void *arg)
{
    char *text;

    if (root == NULL) {
        fprintf(stderr, "error: out of memory building %s\n", what);
        return CLI_EXIT_FAILED;
    }
    if (strcmp(format, "json") == 0) {
        text = cJSON_Print(root);
        if (text != NULL)
            printf("%s\n", text);
        cJSON_free(text);
    } else if (strcmp(format, "csv") == 0) {
        csv(root, arg);
    } else {
        table(root, arg);
    }
    cJSON_Delete(root);
    return 0;
}

void cli_run_csv_field(const char *s, int first)
{
    if (!first)
        putchar(',');
    if (strpbrk(s, ",\"\n") == NULL) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}
