/* cfg_env.c -- the settings of `farmsd serve` from the environment: each
 * FARMSD_* variable applied as its flag would be (cfg_int.h), and the
 * errors of those that came from the environment named by the variable. */
#include "server/cfg_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rewrite the error of a setting that came from the environment as
 * "VAR=value: why", dropping the flag's own name ("--lease: ") from why. */
void cfg__env_blame(struct err *e, const char *var, const char *flag, const char *value)
{
    char msg[sizeof(e->msg)];
    const char *why = e->msg;
    size_t n = strlen(flag);

    if (strncmp(why, flag, n) == 0 && (why[n] == ':' || why[n] == ' '))
        why += n + (why[n] == ':');
    while (*why == ' ')
        why++;
    snprintf(msg, sizeof(msg), "%s=%.64s: %.150s", var, value, why);
    memcpy(e->msg, msg, sizeof(msg));
}

enum err_code cfg__from_env(struct cfg *c, struct err *e)
{
    static const char *const vars[][2] = {
        {"FARMSD_LISTEN", "listen"},
        {"FARMSD_DATA", "data"},
        {"FARMSD_DB", "db"},
        {"FARMSD_BLOBS", "blobs"},
        {"FARMSD_LEASE", "lease"},
        {"FARMSD_WORKERS", "workers"},
        {"FARMSD_ANALYSIS_MEMORY", "analysis-memory"},
        {"FARMSD_PRESET", "preset"},
        {"FARMSD_TOKENS", "tokens"},
        {"FARMSD_MAX_UPLOAD", "max-upload"},
        {"FARMSD_MAX_UPLOADS", "max-uploads"},
        {"FARMSD_MIN_FREE", "min-free"},
        {"FARMSD_MAX_PICKLE_MEM", "max-pickle-mem"},
        {"FARMSD_MAX_TENSOR_BYTES", "max-tensor-bytes"},
        {"FARMSD_HTTP_THREADS", "http-threads"},
        {"FARMSD_LOG_LEVEL", "log-level"},
        {"FARMSD_RESPONSE_CACHE", "response-cache"},
        {"FARMSD_VALIDATORS", "validators"},
        {"FARMSD_VALIDATION_QUEUE", "validation-queue"},
        {"FARMSD_MEMORY_BUDGET", "memory-budget"},
        {"FARMSD_MAX_CONNECTIONS", "max-connections"},
        {"FARMSD_MAX_CONNECTIONS_PER_IP", "max-connections-per-ip"},
        {"FARMSD_HEADER_TIMEOUT", "header-timeout"},
        {"FARMSD_MIN_UPLOAD_RATE", "min-upload-rate"},
        {"FARMSD_MIN_UPLOAD_WINDOW", "min-upload-window"},
        {"FARMSD_WEBHOOK_URL", "webhook-url"},
        {"FARMSD_WEBHOOK_SECRET_FILE", "webhook-secret-file"},
        {"FARMSD_WEBHOOK_MAX_ATTEMPTS", "webhook-max-attempts"},
        {"FARMSD_WEBHOOK_BACKOFF", "webhook-backoff"},
        {"FARMSD_WEBHOOK_BACKOFF_MAX", "webhook-backoff-max"},
        {"FARMSD_WEBHOOK_TIMEOUT", "webhook-timeout"}};
    enum err_code rc = ERR_OK;
    const char *roots = getenv("FARMSD_ALLOW_ROOTS");

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]) && rc == ERR_OK; i++) {
        const char *v = getenv(vars[i][0]);
        if (v != NULL && v[0] != '\0') {
            char flag[64];
            snprintf(flag, sizeof(flag), "--%s", vars[i][1]);
            rc = cfg__apply(c, vars[i][1], v, e);
            if (rc)
                cfg__env_blame(e, vars[i][0], flag, v);
        }
    }
    while (rc == ERR_OK && roots != NULL && roots[0] != '\0') {
        char dir[PATH_MAX];
        size_t n = strcspn(roots, ":");
        if (n > 0 && n < sizeof(dir)) {
            memcpy(dir, roots, n);
            dir[n] = '\0';
            rc = cfg__add_root(c, dir, e);
            if (rc)
                cfg__env_blame(e, "FARMSD_ALLOW_ROOTS", "--allow-root",
                               getenv("FARMSD_ALLOW_ROOTS"));
        }
        roots += n + (roots[n] == ':');
    }
    return rc;
}
