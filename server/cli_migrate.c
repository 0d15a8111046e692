/* cli_migrate.c -- `farmsd migrate --from URL --to URL`: copy an existing
 * database (runs, checkpoints, jobs, the result cache, layer rows,
 * summaries, alert rules, events and deliveries) into
 * another, typically a SQLite cache into PostgreSQL before switching to
 * replicas. Idempotent (store_copy): run it again after an interruption.
 * Uploaded checkpoint files are not in the database: copy the blob folder
 * (<data>/blobs) to the replicas' --blobs folder too. Single-threaded.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "server/cli.h"
#include "storage/store.h"

static const char migrate_usage[] =
    "usage: farmsd migrate --from URL --to URL\n"
    "\n"
    "Copy every run, checkpoint, job, cached result, layer row, summary, alert rule set,\n"
    "alert event and webhook delivery of one database into another, keeping ids\n"
    "(histories, job ids and page tokens read the same). Rows already in the destination\n"
    "are kept: running it twice adds nothing. Jobs that were running arrive queued.\n"
    "Stop the service on the source first. Copy the blob folder\n"
    "(<data>/blobs) to the new --blobs folder as well.\n"
    "\n"
    "  --from URL    source: sqlite:PATH (or a path, or postgresql://...)\n"
    "  --to URL      destination: postgresql://USER@HOST/DB (or sqlite:PATH)\n"
    "  -h, --help    this help\n";

int cli_migrate_main(int argc, char **argv)
{
    static const struct option longs[] = {{"from", required_argument, NULL, 'f'},
                                          {"to", required_argument, NULL, 't'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *from_url = NULL, *to_url = NULL;
    struct store *from = NULL, *to = NULL;
    struct store_copy_stats st = {0};
    struct err e = {0};
    int ch, status = 0;

    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        if (ch == 'h') {
            fputs(migrate_usage, stdout);
            return 0;
        }
        if (ch == 'f')
            from_url = optarg;
        else if (ch == 't')
            to_url = optarg;
        else
            return cli_getopt_error("migrate", ch, argv);
    }
    if (optind != argc)
        return cli_usage_error("migrate", "unexpected argument '%s'", argv[optind]);
    if (from_url == NULL || to_url == NULL)
        return cli_usage_error("migrate", "missing %s", from_url == NULL ? "--from" : "--to");
    if (strcmp(from_url, to_url) == 0)
        return cli_usage_error("migrate", "--from and --to name the same database");
    if (store_open(from_url, &from, &e) != ERR_OK || store_open(to_url, &to, &e) != ERR_OK ||
        store_copy(from, to, &st, &e) != ERR_OK) {
        fprintf(stderr, "error: %s: %s\n", err_category(&e), e.msg);
        status = CLI_EXIT_FAILED;
    } else {
        printf("migrated %s -> %s: %lld rows read, %lld new\n", store_backend(from),
               store_backend(to), (long long)st.rows_read, (long long)st.rows_added);
    }
    store_close(to);
    store_close(from);
    return status;
}
