/* cli_run.h -- one checkpoint file analysed for a command (`farmsd analyze`,
 * `farmsd compare`): opened, its rows selected, served from a result cache
 * when one is given, the rest analysed on the command's pool and put into
 * that cache.
 *
 * The cache is the service's result cache (storage/store_results.h): a
 * SQLite file or a PostgreSQL database, keyed by tensor SHA-256, analysis
 * key, settings hash and ANALYSIS_ENGINE_VERSION, so a tensor analysed
 * before under the same settings (by a command or by the service) is not
 * analysed again.
 *
 * Also the output both commands share: a report printed as JSON, CSV or
 * a table (cli_run_emit), and RFC 4180 CSV fields.
 *
 * Ownership: everything in struct cli_run is borrowed; the opened
 * checkpoint and the report are the caller's (ckpt_close,
 * engine_report_free). Single-threaded callers only.
 */
#ifndef SERVER_CLI_RUN_H
#define SERVER_CLI_RUN_H

#include <regex.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/formats/ckpt.h"
#include "core/numerics/farms.h"
#include "server/engine.h"
#include "server/pool.h"

struct store; /* storage/store.h */

struct cli_run {
    const char *file;                 /* the checkpoint */
    const char *base;                 /* a LoRA adapter's base (cli_open), or NULL */
    enum ckpt_format input_format;    /* CKPT_FORMAT_UNKNOWN: sniff */
    const struct ckpt_limits *limits; /* reader limits (cli_limits) */
    const struct farms_params *params;
    const regex_t *include;       /* only names matching (NULL: all) */
    const regex_t *exclude;       /* drop names matching (NULL: none) */
    engine_progress_fn *progress; /* may be NULL */
    void *progress_arg;
    struct pool *pool;         /* the workers */
    struct store *cache;       /* result cache, or NULL for none */
    const char *settings_hash; /* the params' settings hash (store_settings_put) with a cache */
};

struct cli_run_counts {
    size_t n_analysed; /* tensors analysed now */
    size_t n_cached;   /* tensors served from the cache */
};

/* Analyse `o->file` as above into *c (the open checkpoint) and *r (its
 * report), counting in *n. Returns 0, or the exit status after printing
 * the error (cli_print_error): CLI_EXIT_INPUT when the file cannot be read
 * or changed while read, CLI_EXIT_FAILED when the analysis or the cache
 * failed; *c and *r are then empty. A result that cannot be put into the
 * cache is only reported on stderr. */
int cli_run_file(const struct cli_run *o, struct ckpt **c, struct engine_report *r,
                 struct cli_run_counts *n);

/* The commands' progress callback: with `arg` pointing to an int that is
 * 0 (not --quiet), a line on stderr for each layer that took 0.5 s or
 * more. Never stops the run. */
int cli_run_progress(void *arg, size_t done, size_t total, const struct engine_layer *row,
                     double seconds);

/* --- Output ------------------------------------------------------------- */

/* Prints a command's report object `root` on stdout as CSV or a table;
 * `arg` is the command's (e.g. its --wide). */
typedef void cli_run_print_fn(const cJSON *root, const void *arg);

/* Print the report `root` (taken: freed here) in `format`: "json" as
 * cJSON_Print does, "csv" with `csv`, anything else with `table` (both
 * given `arg`). A NULL `root` (it could not be built) prints "error: out of
 * memory building <what>" on stderr. Returns 0, or CLI_EXIT_FAILED for a
 * NULL `root`. */
int cli_run_emit(cJSON *root, const char *format, const char *what, cli_run_print_fn *csv,
                 cli_run_print_fn *table, const void *arg);

/* Print the CSV field `s` on stdout, after a comma unless `first`
 * (RFC 4180: quoted when it holds a comma, quote or newline, its quotes
 * doubled). Cannot fail. */
void cli_run_csv_field(const char *s, int first);

#endif /* SERVER_CLI_RUN_H */
