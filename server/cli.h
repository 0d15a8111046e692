/* cli.h -- the farmsd subcommands and what they share.
 *
 * Each cli_<cmd>_main(argc, argv) parses its own options (argv[0] is the
 * subcommand name), prints to stdout/stderr and returns the process exit
 * status: 0 success, 1 usage or settings error, 2 the input cannot be read
 * (`error: <category>: <message>` on stderr), 3 the analysis itself failed.
 * Single-threaded callers only (they start their own worker pools).
 */
#ifndef SERVER_CLI_H
#define SERVER_CLI_H

#include "core/ckpt.h"
#include "core/err.h"
#include "core/farms.h"

#define CLI_EXIT_USAGE  1
#define CLI_EXIT_INPUT  2
#define CLI_EXIT_FAILED 3

int cli_analyze_main(int argc, char **argv);
int cli_inspect_main(int argc, char **argv);
int cli_serve_main(int argc, char **argv);
int cli_migrate_main(int argc, char **argv);
int cli_synth_main(int argc, char **argv);

/* --- Shared helpers ------------------------------------------------------- */

/* Print `error: <category>: <message>` to stderr. */
void cli_print_error(const struct err *e);

/* Parse an --input-format value (auto, safetensors, index, torch, npy, npz). */
enum err_code cli_input_format(const char *s, enum ckpt_format *out, struct err *e);

/* The preset named `name` (NULL: $FARMSD_PRESET or farms-llm) with every
 * "key=value" of `sets` applied in order; *resolved gets the preset's name. */
enum err_code cli_params(const char *name, char **sets, int n_sets, struct farms_params *p,
                         const char **resolved, struct err *e);

/* An environment variable's value, or `dflt` when it is unset or empty. */
const char *cli_env_str(const char *var, const char *dflt);

/* An integer from an environment variable, or `dflt` if unset. */
long cli_env_long(const char *var, long dflt);

/* The reader limits of analyze and inspect: ckpt_limits_default() with
 * FARMSD_STRICT=1 and FARMSD_MAX_PICKLE_MEM (bytes, K/M/G/T suffixes, at
 * least 1M) applied. ERR_INVAL naming the variable. */
enum err_code cli_limits(struct ckpt_limits *l, struct err *e);

/* Worker threads: `requested` if > 0, else $FARMSD_THREADS, else the number
 * of online CPUs. Sets OpenBLAS to one thread per worker. */
unsigned cli_threads(long requested);

#endif /* SERVER_CLI_H */
