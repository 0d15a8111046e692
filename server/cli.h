/* cli.h -- the farmsd subcommands and what they share.
 *
 * Each cli_<cmd>_main(argc, argv) parses its own options (argv[0] is the
 * subcommand name), prints to stdout/stderr and returns the process exit
 * status: 0 success; 2 a usage or settings error (one line `farmsd CMD: ...`
 * naming the flag or environment variable, then `Try 'farmsd CMD --help'.`)
 * or an input that cannot be read (`error: <category>: <message>`), as grep
 * and diff use 2 for "trouble"; 3 the analysis itself failed.
 * Single-threaded callers only (they start their own worker pools).
 */
#ifndef SERVER_CLI_H
#define SERVER_CLI_H

#include "core/formats/ckpt.h"
#include "core/err.h"
#include "core/numerics/farms.h"

#define CLI_EXIT_USAGE  2
#define CLI_EXIT_INPUT  2
#define CLI_EXIT_FAILED 3

int cli_analyze_main(int argc, char **argv);
int cli_inspect_main(int argc, char **argv);
int cli_serve_main(int argc, char **argv);
int cli_migrate_main(int argc, char **argv);
int cli_synth_main(int argc, char **argv);
int cli_compare_main(int argc, char **argv);

/* --- Shared helpers ------------------------------------------------------- */

/* Print `error: <category>: <message>` to stderr. */
void cli_print_error(const struct err *e);

/* Open FILE for analyze / inspect: with `base` non-NULL, FILE is a PEFT LoRA
 * adapter merged onto `base` (peft_merge_open; `fmt` is the base's format),
 * else ckpt_open(file, fmt). */
enum err_code cli_open(const char *file, const char *base, enum ckpt_format fmt,
                       const struct ckpt_limits *limits, struct ckpt **out, struct err *e);

/* Parse an --input-format value (auto, safetensors, index, torch, npy, npz, gguf,
 * dcp, deepspeed, peft). */
enum err_code cli_input_format(const char *s, enum ckpt_format *out, struct err *e);

/* The preset named `name` (NULL: $FARMSD_PRESET or farms-llm) with every
 * "key=value" of `sets` applied in order; *resolved gets the preset's name. */
enum err_code cli_params(const char *name, char *const *sets, int n_sets, struct farms_params *p,
                         const char **resolved, struct err *e);

/* Print the usage error `farmsd CMD: <fmt...>` and `Try 'farmsd CMD --help'.`
 * to stderr (two lines, never the whole help). Returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The usage error for getopt_long's return `ch` ('?' unknown option, ':'
 * missing value; the option string must start with ':' and opterr be 0).
 * Returns CLI_EXIT_USAGE. */
int cli_getopt_error(const char *cmd, int ch, char *const *argv);

/* Print `farmsd CMD: <e->msg>` and the --help hint. Returns CLI_EXIT_USAGE. */
int cli_settings_error(const char *cmd, const struct err *e);

/* An environment variable's value, or `dflt` when it is unset or empty. */
const char *cli_env_str(const char *var, const char *dflt);

/* The integer in `s` (from `src`: a flag such as "--threads" or an
 * environment variable such as "FARMSD_THREADS") within lo..hi. ERR_INVAL
 * naming the source and value: "FARMSD_THREADS=x: not a number in 0..256". */
enum err_code cli_long(const char *src, const char *s, long lo, long hi, long *out, struct err *e);

/* The reader limits of analyze and inspect: ckpt_limits_default() with
 * FARMSD_MAX_PICKLE_MEM (bytes, K/M/G/T suffixes, at least 1M) applied
 * (FARMSD_STRICT is read by each command). ERR_INVAL naming the variable. */
enum err_code cli_limits(struct ckpt_limits *l, struct err *e);

/* $var as an integer within lo..hi, `dflt` when unset or empty; ERR_INVAL
 * naming the variable as cli_long does. */
enum err_code cli_env_long(const char *var, long dflt, long lo, long hi, long *out, struct err *e);

/* Worker threads: `requested` if > 0, else the number of online CPUs.
 * Sets OpenBLAS to one thread per worker. Cannot fail. */
unsigned cli_threads(long requested);

/* --- Tables --------------------------------------------------------------- */

/* The width a table may use: the terminal's (TIOCGWINSZ) when stdout is a
 * terminal, else $COLUMNS when set, else 80; never below 40. */
int cli_term_width(void);

/* `src` fitted into `width` columns (bytes count as columns) in dst (`len`
 * bytes): unchanged if it fits, else cut with "..." at the start
 * (`keep_tail` != 0: tensor names, whose end tells them apart) or the end. */
void cli_fit(char *dst, size_t len, const char *src, int width, int keep_tail);

#endif /* SERVER_CLI_H */
