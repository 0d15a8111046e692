/* cli.c -- helpers shared by the subcommands (see cli.h). */
#include "server/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cblas.h>

#include "core/formats/peft.h"
#include "core/numerics/preset.h"
#include "server/cfg.h"

void cli_print_error(const struct err *e)
{
    fprintf(stderr, "error: %s: %s\n", err_category(e), e->msg);
}

enum err_code cli_open(const char *file, const char *base, enum ckpt_format fmt,
                       const struct ckpt_limits *limits, struct ckpt **out, struct err *e)
{
    if (base != NULL)
        return peft_merge_open(file, base, fmt, limits, out, e);
    return ckpt_open(file, fmt, limits, out, e);
}

enum err_code cli_input_format(const char *s, enum ckpt_format *out, struct err *e)
{
    static const struct {
        const char *name;
        enum ckpt_format f;
    } names[] = {{"auto", CKPT_FORMAT_UNKNOWN},
                 {"safetensors", CKPT_FORMAT_SAFETENSORS},
                 {"index", CKPT_FORMAT_SAFETENSORS_INDEX},
                 {"torch", CKPT_FORMAT_TORCH_ZIP},
                 {"npy", CKPT_FORMAT_NPY},
                 {"npz", CKPT_FORMAT_NPZ},
                 {"gguf", CKPT_FORMAT_GGUF},
                 {"dcp", CKPT_FORMAT_DCP},
                 {"deepspeed", CKPT_FORMAT_DEEPSPEED},
                 {"peft", CKPT_FORMAT_PEFT}};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].f;
            return ERR_OK;
        }
    }
    return err_setc(e, ERR_INVAL, ERR_CAT_USAGE,
                    "--input-format=%.64s: unknown input format (auto, safetensors, index, "
                    "torch, npy, npz, gguf, dcp, deepspeed, peft)",
                    s);
}

enum err_code cli_params(const char *name, char *const *sets, int n_sets, struct farms_params *p,
                         const char **resolved, struct err *e)
{
    const char *env = NULL;
    enum err_code rc;

    if (name == NULL)
        name = env = getenv("FARMSD_PRESET");
    if (name == NULL || name[0] == '\0') {
        name = PRESET_DEFAULT_NAME;
        env = NULL;
    }
    *resolved = name;
    rc = preset_get(name, p, e);
    if (rc && env != NULL) {
        char src[96];
        snprintf(src, sizeof(src), "FARMSD_PRESET=%.64s", env);
        err_prefix(e, src);
    }
    for (int i = 0; i < n_sets && rc == ERR_OK; i++)
        rc = preset_set(p, sets[i], e);
    if (rc == ERR_OK)
        rc = farms_params_check(p, e);
    if (rc && e != NULL && e->category == ERR_CAT_NONE)
        e->category = ERR_CAT_SETTINGS;
    return rc;
}

const char *cli_env_str(const char *var, const char *dflt)
{
    const char *s = getenv(var);

    return s != NULL && s[0] != '\0' ? s : dflt;
}

enum err_code cli_long(const char *src, const char *s, long lo, long hi, long *out, struct err *e)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < lo || v > hi)
        return err_setc(e, ERR_INVAL, ERR_CAT_USAGE, "%s=%.64s: not a number in %ld..%ld", src, s,
                        lo, hi);
    *out = v;
    return ERR_OK;
}

enum err_code cli_env_long(const char *var, long dflt, long lo, long hi, long *out, struct err *e)
{
    const char *s = getenv(var);

    if (s == NULL || s[0] == '\0') {
        *out = dflt;
        return ERR_OK;
    }
    return cli_long(var, s, lo, hi, out, e);
}

enum err_code cli_limits(struct ckpt_limits *l, struct err *e)
{
    const char *mem = cli_env_str("FARMSD_MAX_PICKLE_MEM", NULL);

    ckpt_limits_default(l);
    if (mem == NULL)
        return ERR_OK;
    if (cfg_parse_bytes(mem, &l->max_pickle_mem, e) != ERR_OK || l->max_pickle_mem < (1u << 20))
        return err_set(e, ERR_INVAL, "FARMSD_MAX_PICKLE_MEM=%s: not a byte count >= 1M", mem);
    return ERR_OK;
}

unsigned cli_threads(long requested)
{
    long n = requested;

    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0)
        n = 1;
    if (n > 256)
        n = 256;
    openblas_set_num_threads(1); /* parallelism comes from the workers */
    return (unsigned)n;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "farmsd %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'farmsd %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_getopt_error(const char *cmd, int ch, char *const *argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";

    if (ch == ':')
        return cli_usage_error(cmd, "option '%s' needs a value", arg);
    if (strncmp(arg, "--", 2) == 0 && optopt != 0) /* "--wide=1" */
        return cli_usage_error(cmd, "option '%.*s' takes no value", (int)strcspn(arg, "="), arg);
    if (optopt != 0)
        return cli_usage_error(cmd, "unknown option '-%c'", optopt);
    return cli_usage_error(cmd, "unknown option '%s'", arg);
}

int cli_settings_error(const char *cmd, const struct err *e)
{
    return cli_usage_error(cmd, "%s", e->msg);
}

int cli_term_width(void)
{
    struct winsize ws;
    const char *cols = getenv("COLUMNS");
    long w = 80;

    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        w = ws.ws_col;
    else if (cols != NULL && cols[0] != '\0')
        w = strtol(cols, NULL, 10);
    if (w < 40)
        w = 40;
    if (w > 1000)
        w = 1000;
    return (int)w;
}

void cli_fit(char *dst, size_t len, const char *src, int width, int keep_tail)
{
    size_t n = strlen(src), w = width > 3 ? (size_t)width : 3;

    if (len == 0)
        return;
    if (n <= w || w + 1 > len)
        snprintf(dst, len, "%s", src);
    else if (keep_tail)
        snprintf(dst, len, "...%s", src + n - (w - 3));
    else
        snprintf(dst, len, "%.*s...", (int)(w - 3), src);
}
