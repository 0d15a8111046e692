/* cli_analyze_int.h -- internal to `farmsd analyze` (server/cli_analyze*.c),
 * not for other modules: the printers of cli_analyze_table.c that
 * cli_analyze.c hands the report to.
 *
 * Ownership: the printers borrow what they are given and write to stdout
 * (the report) or stderr (the timings). Single-threaded callers only.
 */
#ifndef SERVER_CLI_ANALYZE_INT_H
#define SERVER_CLI_ANALYZE_INT_H

#include <cjson/cJSON.h>

#include "server/engine.h"

/* The report `root` ({"layers": [...]}, cli_analyze.c) as CSV: a header
 * line, then one line per layer (RFC 4180 quoting). `arg` is unused
 * (cli_run_print_fn). Cannot fail. */
void cli__analyze_csv(const cJSON *root, const void *arg);

/* The report `root` as a table, then the summary line: every column when
 * *(const int *)arg (--wide) is non-zero, else fitted to the terminal
 * (cli_run_print_fn). Cannot fail. */
void cli__analyze_table(const cJSON *root, const void *arg);

/* --timings: the stages of `r` summed over the analysed layers, on
 * stderr. Cannot fail. */
void cli__analyze_timings(const struct engine_report *r);

#endif /* SERVER_CLI_ANALYZE_INT_H */
