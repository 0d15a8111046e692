/* cfg.c -- see cfg.h: defaults, the flags and their checks, cfg_load and
 * cfg_free. The environment variables are read in cfg_env.c (through
 * cfg_int.h), the usage text is in cfg_usage.c, the tokens file is parsed
 * in cfg_tokens.c. */
#include "server/cfg.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/numerics/preset.h"
#include "server/cfg_int.h"
#include "server/log.h"

enum err_code cfg_parse_bytes(const char *s, uint64_t *out, struct err *e)
{
    char *end;
    unsigned long long v;
    uint64_t mul = 1;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (end == s || errno != 0 || s[0] == '-')
        return err_set(e, ERR_INVAL, "'%s' is not a byte count", s);
    switch (*end) {
    case 'K':
    case 'k':
        mul = 1ull << 10;
        end++;
        break;
    case 'M':
    case 'm':
        mul = 1ull << 20;
        end++;
        break;
    case 'G':
    case 'g':
        mul = 1ull << 30;
        end++;
        break;
    case 'T':
    case 't':
        mul = 1ull << 40;
        end++;
        break;
    default: break;
    }
    if (*end != '\0' || (v != 0 && mul > UINT64_MAX / v))
        return err_set(e, ERR_INVAL, "'%s' is not a byte count", s);
    *out = (uint64_t)v * mul;
    return ERR_OK;
}

static enum err_code cfg_bytes(const char *flag, const char *s, uint64_t *out, struct err *e)
{
    enum err_code rc = cfg_parse_bytes(s, out, e);

    if (rc)
        err_prefix(e, flag);
    return rc;
}

static enum err_code cfg_uint(const char *flag, const char *s, unsigned lo, unsigned hi,
                              unsigned *out, struct err *e)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < (long)lo || v > (long)hi)
        return err_set(e, ERR_INVAL, "%s: '%s' is not a number in %u..%u", flag, s, lo, hi);
    *out = (unsigned)v;
    return ERR_OK;
}

static enum err_code cfg_listen(struct cfg *c, const char *s, struct err *e)
{
    const char *colon = strrchr(s, ':');
    size_t hl;

    if (colon == NULL)
        return err_set(e, ERR_INVAL, "--listen: '%s' is not HOST:PORT", s);
    hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') { /* [::1]:8080 */
        s++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(c->host))
        return err_set(e, ERR_INVAL, "--listen: bad host in '%s'", s);
    memcpy(c->host, s, hl);
    c->host[hl] = '\0';
    return cfg_uint("--listen", colon + 1, 0, 65535, &c->port, e);
}

/* Allow path ingestion under `dir` (resolved), from --allow-root or one
 * entry of FARMSD_ALLOW_ROOTS. */
enum err_code cfg__add_root(struct cfg *c, const char *dir, struct err *e)
{
    char resolved[PATH_MAX];
    char **roots;

    if (realpath(dir, resolved) == NULL)
        return err_set_errno(e, ERR_INVAL, errno, "--allow-root %s", dir);
    roots = realloc(c->allow_roots, (c->n_allow_roots + 1) * sizeof(*roots));
    if (roots == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    c->allow_roots = roots;
    roots[c->n_allow_roots] = strdup(resolved);
    if (roots[c->n_allow_roots] == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    c->n_allow_roots++;
    return ERR_OK;
}

static enum err_code cfg_set_str(char **dst, const char *s, struct err *e)
{
    free(*dst);
    *dst = strdup(s);
    return *dst ? ERR_OK : err_set(e, ERR_NOMEM, "out of memory");
}

/* *dst = prefix dir suffix. */
static enum err_code cfg_default_path(char **dst, const char *prefix, const char *dir,
                                      const char *suffix, struct err *e)
{
    size_t n = strlen(prefix) + strlen(dir) + strlen(suffix) + 1;

    free(*dst);
    if ((*dst = malloc(n)) == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    snprintf(*dst, n, "%s%s%s", prefix, dir, suffix);
    return ERR_OK;
}

/* The HTTP server's limits (server/http.h). */
static enum err_code cfg_apply_http(struct cfg *c, const char *key, const char *v, struct err *e)
{
    enum err_code rc;

    if (strcmp(key, "validators") == 0)
        return cfg_uint("--validators", v, 1, 256, &c->validators, e);
    if (strcmp(key, "validation-queue") == 0)
        return cfg_uint("--validation-queue", v, 0, 4096, &c->validation_queue, e);
    if (strcmp(key, "max-connections") == 0)
        return cfg_uint("--max-connections", v, 1, 1000000, &c->max_conns, e);
    if (strcmp(key, "max-connections-per-ip") == 0)
        return cfg_uint("--max-connections-per-ip", v, 1, 1000000, &c->max_conns_per_ip, e);
    if (strcmp(key, "header-timeout") == 0)
        return cfg_uint("--header-timeout", v, 1, 3600, &c->header_timeout_s, e);
    if (strcmp(key, "min-upload-window") == 0)
        return cfg_uint("--min-upload-window", v, 1, 3600, &c->min_upload_window_s, e);
    if (strcmp(key, "min-upload-rate") == 0)
        return cfg_bytes("--min-upload-rate", v, &c->min_upload_rate, e);
    if (strcmp(key, "memory-budget") == 0) {
        rc = cfg_bytes("--memory-budget", v, &c->memory_budget, e);
        if (rc == ERR_OK && c->memory_budget < (64ull << 20))
            rc = err_set(e, ERR_INVAL, "--memory-budget: '%s' is below 64M", v);
        return rc;
    }
    return err_set(e, ERR_INVAL, "unknown setting '%s'", key);
}

/* Seconds with decimals in [lo, hi]. */
static enum err_code cfg_seconds(const char *flag, const char *s, double lo, double hi, double *out,
                                 struct err *e)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !(v >= lo && v <= hi))
        return err_set(e, ERR_INVAL, "%s: '%s' is not a number of seconds in %g..%g", flag, s, lo,
                       hi);
    *out = v;
    return ERR_OK;
}

/* The alert webhook's settings (server/webhook.h). */
static enum err_code cfg_apply_webhook(struct cfg *c, const char *key, const char *v, struct err *e)
{
    if (strcmp(key, "webhook-url") == 0) {
        if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
            return err_set(e, ERR_INVAL,
                           "--webhook-url: '%.100s' is not an http:// or https:// URL", v);
        if (strlen(v) >= 1024)
            return err_set(e, ERR_INVAL, "--webhook-url: longer than 1023 bytes");
        return cfg_set_str(&c->webhook_url, v, e);
    }
    if (strcmp(key, "webhook-secret-file") == 0)
        return cfg_set_str(&c->webhook_secret_file, v, e);
    if (strcmp(key, "webhook-max-attempts") == 0)
        return cfg_uint("--webhook-max-attempts", v, 1, 100, &c->webhook_max_attempts, e);
    if (strcmp(key, "webhook-timeout") == 0)
        return cfg_uint("--webhook-timeout", v, 1, 600, &c->webhook_timeout_s, e);
    if (strcmp(key, "webhook-backoff") == 0)
        return cfg_seconds("--webhook-backoff", v, 0.001, 86400, &c->webhook_backoff_s, e);
    if (strcmp(key, "webhook-backoff-max") == 0)
        return cfg_seconds("--webhook-backoff-max", v, 0.001, 86400, &c->webhook_backoff_max_s, e);
    return err_set(e, ERR_INVAL, "unknown setting '%s'", key);
}

/* The webhook secret file's bytes into c (one trailing "\n" or "\r\n" dropped). */
static enum err_code cfg_load_secret(struct cfg *c, struct err *e)
{
    FILE *f = fopen(c->webhook_secret_file, "rb");
    char buf[4097];
    size_t n;

    if (f == NULL)
        return err_set_errno(e, ERR_INVAL, errno, "--webhook-secret-file %s",
                             c->webhook_secret_file);
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n == 0 || n >= sizeof(buf) - 1)
        return err_set(e, ERR_INVAL, "--webhook-secret-file %s: empty or longer than 4095 bytes",
                       c->webhook_secret_file);
    free(c->webhook_secret);
    c->webhook_secret = malloc(n);
    if (c->webhook_secret == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    memcpy(c->webhook_secret, buf, n);
    c->webhook_secret_len = n;
    return ERR_OK;
}

/* The byte limits and the log level; the last of the cfg_apply steps. */
static enum err_code cfg_apply_limits(struct cfg *c, const char *key, const char *v, struct err *e)
{
    int lvl;

    if (strcmp(key, "max-upload") == 0)
        return cfg_bytes("--max-upload", v, &c->max_upload, e);
    if (strcmp(key, "response-cache") == 0)
        return cfg_bytes("--response-cache", v, &c->response_cache, e);
    if (strcmp(key, "min-free") == 0)
        return cfg_bytes("--min-free", v, &c->min_free, e);
    if (strcmp(key, "max-pickle-mem") == 0) {
        enum err_code rc = cfg_bytes("--max-pickle-mem", v, &c->max_pickle_mem, e);
        if (rc == ERR_OK && c->max_pickle_mem < (1u << 20))
            rc = err_set(e, ERR_INVAL, "--max-pickle-mem: '%s' is below 1M", v);
        return rc;
    }
    if (strcmp(key, "max-tensor-bytes") == 0) {
        enum err_code rc = cfg_bytes("--max-tensor-bytes", v, &c->max_tensor_bytes, e);
        if (rc == ERR_OK && c->max_tensor_bytes < (1u << 20))
            rc = err_set(e, ERR_INVAL, "--max-tensor-bytes: '%s' is below 1M", v);
        return rc;
    }
    if (strcmp(key, "log-level") == 0) {
        lvl = log_level_from_name(v);
        if (lvl < 0)
            return err_set(e, ERR_INVAL, "--log-level: '%s' (debug, info, warn, error)", v);
        c->log_level = lvl;
        return ERR_OK;
    }
    return err_set(e, ERR_INVAL, "unknown setting '%s'", key);
}

/* One setting by its flag name (without "--"), from a flag or the environment. */
enum err_code cfg__apply(struct cfg *c, const char *key, const char *v, struct err *e)
{
    if (strcmp(key, "listen") == 0)
        return cfg_listen(c, v, e);
    if (strcmp(key, "data") == 0)
        return cfg_set_str(&c->data_dir, v, e);
    if (strcmp(key, "db") == 0)
        return cfg_set_str(&c->db_url, v, e);
    if (strcmp(key, "blobs") == 0)
        return cfg_set_str(&c->blobs_dir, v, e);
    if (strcmp(key, "lease") == 0)
        return cfg_uint("--lease", v, 1, 86400, &c->lease_s, e);
    if (strcmp(key, "workers") == 0)
        return cfg_uint("--workers", v, 1, 1024, &c->workers, e);
    if (strcmp(key, "analysis-memory") == 0) {
        enum err_code rc = cfg_bytes("--analysis-memory", v, &c->analysis_memory, e);
        if (rc == ERR_OK && c->analysis_memory < (1u << 20))
            rc = err_set(e, ERR_INVAL, "--analysis-memory: '%s' is below 1M", v);
        return rc;
    }
    if (strcmp(key, "http-threads") == 0)
        return cfg_uint("--http-threads", v, 1, 256, &c->http_threads, e);
    if (strcmp(key, "max-uploads") == 0)
        return cfg_uint("--max-uploads", v, 1, 1024, &c->max_uploads, e);
    if (strcmp(key, "preset") == 0)
        return cfg_set_str(&c->preset, v, e);
    if (strncmp(key, "validat", 7) == 0 || strncmp(key, "max-conn", 8) == 0 ||
        strncmp(key, "min-upload", 10) == 0 || strcmp(key, "memory-budget") == 0 ||
        strcmp(key, "header-timeout") == 0)
        return cfg_apply_http(c, key, v, e);
    if (strcmp(key, "tokens") == 0)
        return cfg_set_str(&c->tokens_file, v, e);
    if (strcmp(key, "allow-root") == 0)
        return cfg__add_root(c, v, e);
    if (strncmp(key, "webhook-", 8) == 0)
        return cfg_apply_webhook(c, key, v, e);
    return cfg_apply_limits(c, key, v, e);
}

/* The machine's memory in bytes, 0 if unknown. */
static uint64_t cfg_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);

    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/* Memory / 8, at most 16 GiB (the readers' own limit): a tensor's working
 * set in the analysis is its bytes plus 8 bytes per element (up to 5 times a
 * 16-bit tensor's bytes), so the largest accepted one fits with room for a
 * second job. 16 GiB if the memory size is unknown. */
static uint64_t cfg_default_tensor_bytes(void)
{
    uint64_t cap = (uint64_t)16 << 30, mem = cfg_memory();

    if (mem == 0)
        return cap;
    return mem / 8 < cap ? mem / 8 : cap;
}

static void cfg_defaults(struct cfg *c)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    memset(c, 0, sizeof(*c));
    snprintf(c->host, sizeof(c->host), "127.0.0.1");
    c->port = 8080;
    c->workers = n > 0 ? (unsigned)n : 1;
    c->http_threads = 4;
    c->lease_s = 60;
    c->max_upload = 64ull << 30;
    c->max_uploads = 4;
    c->min_free = 1ull << 30;
    c->max_pickle_mem = 256ull << 20; /* = ckpt_limits_default() */
    c->max_tensor_bytes = cfg_default_tensor_bytes();
    c->analysis_memory = cfg_memory() > 0 ? cfg_memory() / 2 : (uint64_t)8 << 30;
    c->response_cache = 64ull << 20;
    c->validators = 2;
    c->validation_queue = 8;
    c->memory_budget = 1ull << 30;
    c->max_conns = 1000;
    c->max_conns_per_ip = 64;
    c->header_timeout_s = 10;
    c->min_upload_rate = 64u << 10;
    c->min_upload_window_s = 30;
    c->log_level = LOG_LEVEL_INFO;
    c->webhook_max_attempts = 8;
    c->webhook_backoff_s = 1.0;
    c->webhook_backoff_max_s = 300.0;
    c->webhook_timeout_s = 10;
}

/* The flags of `farmsd serve` (getopt_long). */
static const struct option cfg_longs[] = {{"listen", required_argument, NULL, 0},
                                          {"data", required_argument, NULL, 0},
                                          {"db", required_argument, NULL, 0},
                                          {"blobs", required_argument, NULL, 0},
                                          {"lease", required_argument, NULL, 0},
                                          {"workers", required_argument, NULL, 0},
                                          {"analysis-memory", required_argument, NULL, 0},
                                          {"preset", required_argument, NULL, 0},
                                          {"allow-root", required_argument, NULL, 0},
                                          {"tokens", required_argument, NULL, 0},
                                          {"max-upload", required_argument, NULL, 0},
                                          {"max-uploads", required_argument, NULL, 0},
                                          {"min-free", required_argument, NULL, 0},
                                          {"max-pickle-mem", required_argument, NULL, 0},
                                          {"max-tensor-bytes", required_argument, NULL, 0},
                                          {"http-threads", required_argument, NULL, 0},
                                          {"log-level", required_argument, NULL, 0},
                                          {"help", no_argument, NULL, 'h'},
                                          {"response-cache", required_argument, NULL, 0},
                                          {"validators", required_argument, NULL, 0},
                                          {"validation-queue", required_argument, NULL, 0},
                                          {"memory-budget", required_argument, NULL, 0},
                                          {"max-connections", required_argument, NULL, 0},
                                          {"max-connections-per-ip", required_argument, NULL, 0},
                                          {"header-timeout", required_argument, NULL, 0},
                                          {"min-upload-rate", required_argument, NULL, 0},
                                          {"min-upload-window", required_argument, NULL, 0},
                                          {"webhook-url", required_argument, NULL, 0},
                                          {"webhook-secret-file", required_argument, NULL, 0},
                                          {"webhook-max-attempts", required_argument, NULL, 0},
                                          {"webhook-backoff", required_argument, NULL, 0},
                                          {"webhook-backoff-max", required_argument, NULL, 0},
                                          {"webhook-timeout", required_argument, NULL, 0},
                                          {NULL, 0, NULL, 0}};

enum err_code cfg_load(struct cfg *c, int argc, char **argv, struct err *e)
{
    enum err_code rc;
    struct farms_params p;
    int ch, idx;
    const char *preset_env = getenv("FARMSD_PRESET"), *tokens_env = getenv("FARMSD_TOKENS");

    cfg_defaults(c);
    rc = cfg__from_env(c, e);
    opterr = 0; /* usage errors are reported by the caller, as one line */
    while (rc == ERR_OK && (ch = getopt_long(argc, argv, ":h", cfg_longs, &idx)) != -1) {
        if (ch == 'h') {
            fputs(cfg_usage(), stdout);
            return ERR_CANCELED;
        }
        if (ch == ':')
            return err_set(e, ERR_INVAL, "option '%s' needs a value", argv[optind - 1]);
        if (ch != 0 && optopt != 0 && argv[optind - 1][1] != '-')
            return err_set(e, ERR_INVAL, "unknown option '-%c'", optopt);
        if (ch != 0)
            return err_set(e, ERR_INVAL, "unknown option '%s'", argv[optind - 1]);
        preset_env = strcmp(cfg_longs[idx].name, "preset") == 0 ? NULL : preset_env;
        tokens_env = strcmp(cfg_longs[idx].name, "tokens") == 0 ? NULL : tokens_env;
        rc = cfg__apply(c, cfg_longs[idx].name, optarg, e);
    }
    if (rc == ERR_OK && optind != argc)
        rc = err_set(e, ERR_INVAL, "unexpected argument '%s'", argv[optind]);
    if (rc == ERR_OK && c->max_conns < c->http_threads)
        rc = err_set(e, ERR_INVAL, "--max-connections: %u is below --http-threads (%u)",
                     c->max_conns, c->http_threads);
    if (rc == ERR_OK && c->data_dir == NULL)
        rc = cfg_set_str(&c->data_dir, "./farms-data", e);
    if (rc == ERR_OK && c->db_url == NULL)
        rc = cfg_default_path(&c->db_url, "sqlite:", c->data_dir, "/farms.db", e);
    if (rc == ERR_OK && c->blobs_dir == NULL)
        rc = cfg_default_path(&c->blobs_dir, "", c->data_dir, "/blobs", e);
    if (rc == ERR_OK && c->preset == NULL)
        rc = cfg_set_str(&c->preset, PRESET_DEFAULT_NAME, e);
    if (rc == ERR_OK && preset_get(c->preset, &p, e) != ERR_OK) {
        rc = ERR_INVAL;
        if (preset_env != NULL && preset_env[0] != '\0')
            cfg__env_blame(e, "FARMSD_PRESET", "--preset", preset_env);
    }
    if (rc == ERR_OK && c->tokens_file != NULL) {
        rc = cfg_load_tokens(c->tokens_file, &c->tokens, &c->n_tokens, e);
        if (rc && tokens_env != NULL && tokens_env[0] != '\0')
            cfg__env_blame(e, "FARMSD_TOKENS", "--tokens", tokens_env);
    }
    if (rc == ERR_OK && c->webhook_secret_file != NULL)
        rc = cfg_load_secret(c, e);
    return rc;
}

void cfg_free(struct cfg *c)
{
    for (size_t i = 0; i < c->n_allow_roots; i++)
        free(c->allow_roots[i]);
    free(c->allow_roots);
    cfg_tokens_free(c->tokens, c->n_tokens);
    free(c->data_dir);
    free(c->db_url);
    free(c->blobs_dir);
    free(c->preset);
    free(c->tokens_file);
    free(c->webhook_url);
    free(c->webhook_secret_file);
    free(c->webhook_secret);
    memset(c, 0, sizeof(*c));
}
