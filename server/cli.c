/* cli.c -- helpers shared by the subcommands (see cli.h). */
#include "server/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "core/preset.h"
#include "server/cfg.h"

void cli_print_error(const struct err *e)
{
    fprintf(stderr, "error: %s: %s\n", err_category(e), e->msg);
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
                 {"npz", CKPT_FORMAT_NPZ}};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].f;
            return ERR_OK;
        }
    }
    return err_setc(e, ERR_INVAL, "usage",
                    "unknown input format '%s' (auto, safetensors, index, torch, npy, npz)", s);
}

enum err_code cli_params(const char *name, char **sets, int n_sets, struct farms_params *p,
                         const char **resolved, struct err *e)
{
    enum err_code rc;

    if (name == NULL)
        name = getenv("FARMSD_PRESET");
    if (name == NULL || name[0] == '\0')
        name = "farms-llm";
    *resolved = name;
    rc = preset_get(name, p, e);
    for (int i = 0; i < n_sets && rc == ERR_OK; i++)
        rc = preset_set(p, sets[i], e);
    if (rc == ERR_OK)
        rc = farms_params_check(p, e);
    if (rc && e != NULL && e->category == NULL)
        e->category = "settings";
    return rc;
}

const char *cli_env_str(const char *var, const char *dflt)
{
    const char *s = getenv(var);

    return s != NULL && s[0] != '\0' ? s : dflt;
}

long cli_env_long(const char *var, long dflt)
{
    const char *s = getenv(var);
    char *end;
    long v;

    if (s == NULL || s[0] == '\0')
        return dflt;
    v = strtol(s, &end, 10);
    return *end == '\0' ? v : dflt;
}

enum err_code cli_limits(struct ckpt_limits *l, struct err *e)
{
    const char *mem = cli_env_str("FARMSD_MAX_PICKLE_MEM", NULL);

    ckpt_limits_default(l);
    l->strict = cli_env_long("FARMSD_STRICT", 0) != 0;
    if (mem == NULL)
        return ERR_OK;
    if (cfg_parse_bytes(mem, &l->max_pickle_mem, e) != ERR_OK || l->max_pickle_mem < (1u << 20))
        return err_set(e, ERR_INVAL, "FARMSD_MAX_PICKLE_MEM: '%s' is not a byte count >= 1M", mem);
    return ERR_OK;
}

unsigned cli_threads(long requested)
{
    long n = requested > 0 ? requested : cli_env_long("FARMSD_THREADS", 0);

    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0)
        n = 1;
    if (n > 256)
        n = 256;
    openblas_set_num_threads(1); /* parallelism comes from the workers */
    return (unsigned)n;
}
