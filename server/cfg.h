/* cfg.h -- the settings of `farmsd serve`: defaults, environment, flags.
 *
 * Every setting has a flag and an environment variable (the flag wins):
 *   --listen HOST:PORT   FARMSD_LISTEN       127.0.0.1:8080 (port 0: any free port)
 *   --data DIR           FARMSD_DATA         ./farms-data (farms.db + blobs/)
 *   --db URL             FARMSD_DB           sqlite:<data>/farms.db, or postgresql://...
 *   --blobs DIR          FARMSD_BLOBS        <data>/blobs (shared by replicas)
 *   --lease SECONDS      FARMSD_LEASE        60 (a dead replica's job is claimed again after)
 *   --workers N          FARMSD_WORKERS      number of CPUs (analysis threads, task runners)
 *   --analysis-memory B  FARMSD_ANALYSIS_MEMORY half the memory, for the tasks run at once
 *   --preset P           FARMSD_PRESET       farms-llm (a request may name another)
 *   --allow-root DIR     FARMSD_ALLOW_ROOTS  none (repeatable; env: ':'-separated)
 *   --tokens FILE        FARMSD_TOKENS       none (auth off; format below)
 *   --max-upload BYTES   FARMSD_MAX_UPLOAD   64 GiB (suffixes K, M, G, T)
 *   --max-uploads N      FARMSD_MAX_UPLOADS  4 concurrent uploads
 *   --min-free BYTES     FARMSD_MIN_FREE     1 GiB kept free on the data disk
 *   --max-pickle-mem B   FARMSD_MAX_PICKLE_MEM 256 MiB to unpickle one data.pkl (>= 1M)
 *   --max-tensor-bytes B FARMSD_MAX_TENSOR_BYTES memory / 8, at most 16 GiB (>= 1M)
 *   --http-threads N     FARMSD_HTTP_THREADS 4
 *   --response-cache B   FARMSD_RESPONSE_CACHE 64M of rendered run reads (0: off)
 *   --validators N       FARMSD_VALIDATORS   2 threads validating requests with a body
 *   --validation-queue N FARMSD_VALIDATION_QUEUE 8 such requests waiting
 *   --memory-budget B    FARMSD_MEMORY_BUDGET 1G shared by the validators
 *   --max-connections N  FARMSD_MAX_CONNECTIONS 1000
 *   --max-connections-per-ip N FARMSD_MAX_CONNECTIONS_PER_IP 64
 *   --header-timeout S   FARMSD_HEADER_TIMEOUT 10
 *   --min-upload-rate B  FARMSD_MIN_UPLOAD_RATE 64K bytes/s (0: off)
 *   --min-upload-window S FARMSD_MIN_UPLOAD_WINDOW 30
 *   --log-level L        FARMSD_LOG_LEVEL    info
 *   --webhook-url URL    FARMSD_WEBHOOK_URL  none (alert events are recorded, not sent)
 *   --webhook-secret-file PATH FARMSD_WEBHOOK_SECRET_FILE none (no signature header)
 *   --webhook-max-attempts N FARMSD_WEBHOOK_MAX_ATTEMPTS 8
 *   --webhook-backoff S  FARMSD_WEBHOOK_BACKOFF 1 (doubling per attempt)
 *   --webhook-backoff-max S FARMSD_WEBHOOK_BACKOFF_MAX 300
 *   --webhook-timeout S  FARMSD_WEBHOOK_TIMEOUT 10
 * Ownership: a struct cfg owns its strings; free with cfg_free().
 * Not thread-safe while being filled; read-only afterwards.
 */
#ifndef SERVER_CFG_H
#define SERVER_CFG_H

#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "core/err.h"

struct cfg {
    char host[256];           /* listen address (numeric IPv4/IPv6 or "localhost") */
    unsigned port;            /* 0: any free port */
    char *data_dir;           /* owned */
    char *db_url;             /* owned: sqlite:PATH or postgresql://... */
    char *blobs_dir;          /* owned */
    unsigned lease_s;         /* job lease (seconds) */
    unsigned workers;         /* analysis threads, and task runners sharing them */
    uint64_t analysis_memory; /* bytes the tasks running at once may take (estimates) */
    unsigned http_threads;    /* libmicrohttpd thread pool */
    char *preset;             /* owned: default preset name */
    char **allow_roots;       /* owned: realpath'd directories */
    size_t n_allow_roots;
    char *tokens_file;        /* owned, NULL: auth off */
    struct api_token *tokens; /* owned, loaded from tokens_file */
    size_t n_tokens;
    uint64_t max_upload;          /* bytes */
    unsigned max_uploads;         /* concurrent uploads */
    uint64_t min_free;            /* bytes kept free */
    uint64_t max_pickle_mem;      /* struct ckpt_limits max_pickle_mem */
    uint64_t max_tensor_bytes;    /* struct ckpt_limits max_tensor_bytes */
    uint64_t response_cache;      /* bytes of rendered run reads kept (api/cache.h) */
    unsigned validators;          /* threads validating requests with a body */
    unsigned validation_queue;    /* such requests waiting for one */
    uint64_t memory_budget;       /* bytes, shared by the validators */
    unsigned max_conns;           /* connections at once */
    unsigned max_conns_per_ip;    /* connections at once from one address */
    unsigned header_timeout_s;    /* headers complete within */
    uint64_t min_upload_rate;     /* body bytes/s (0: no rule) */
    unsigned min_upload_window_s; /* averaged over windows of */
    int log_level;                /* enum log_level */
    char *webhook_url;            /* owned, NULL: no webhook */
    char *webhook_secret_file;    /* owned, NULL: no signature */
    char *webhook_secret;         /* owned: the file's bytes (one trailing newline dropped) */
    size_t webhook_secret_len;
    unsigned webhook_max_attempts; /* attempts before a delivery fails */
    double webhook_backoff_s;      /* first retry delay, doubling */
    double webhook_backoff_max_s;  /* cap of the delay */
    unsigned webhook_timeout_s;    /* one attempt */
};

/* Fill `c` from the environment and argv (argv[0] is "serve"). On --help,
 * prints the usage and returns ERR_CANCELED. Usage errors: ERR_INVAL with a
 * message naming the flag. Free with cfg_free() in every case. */
enum err_code cfg_load(struct cfg *c, int argc, char **argv, struct err *e);

/* Parse "16G" / "1048576" into bytes. ERR_INVAL. */
enum err_code cfg_parse_bytes(const char *s, uint64_t *out, struct err *e);

/* --- The tokens file (--tokens) --------------------------------------------
 *
 * One token per line: `TOKEN SCOPES`, separated by spaces or tabs, with
 * SCOPES one of `read`, `write`, `read,write` (`write,read` also reads).
 * A token is CFG_TOKEN_MIN..CFG_TOKEN_MAX printable ASCII characters
 * without spaces and without '#'. Lines whose first non-blank character is
 * '#' are comments; blank lines are skipped; "\r\n" endings are accepted.
 * Everything else stops the start: a missing or unknown scope, text after
 * the scopes, a '#' inside a token, a byte outside printable ASCII and tab,
 * a line over CFG_TOKEN_LINE_MAX bytes, a token given twice, a file without
 * tokens. */
#define CFG_TOKEN_MIN      16
#define CFG_TOKEN_MAX      256
#define CFG_TOKEN_LINE_MAX 1024

/* Read the tokens file `path` into a new array *out of *n tokens (free with
 * cfg_tokens_free). ERR_INVAL with "PATH:LINE: what is wrong" (or the
 * open/read error); on failure *out is NULL and *n is 0. ERR_NOMEM. */
enum err_code cfg_load_tokens(const char *path, struct api_token **out, size_t *n, struct err *e);

/* Free `n` tokens from cfg_load_tokens. NULL is a no-op. Cannot fail. */
void cfg_tokens_free(struct api_token *t, size_t n);

void cfg_free(struct cfg *c);

/* The usage text of `farmsd serve`. */
const char *cfg_usage(void);

#endif /* SERVER_CFG_H */
