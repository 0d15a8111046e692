/* cfg_usage.c -- the usage text of `farmsd serve` (cfg_usage in cfg.h):
 * every flag with its default and environment variable. `farmsd serve
 * --help` prints it, and the man page is checked against it (make
 * man-check). */
#include "server/cfg.h"

#include <stdio.h>

#include "core/numerics/preset.h"

static const char cfg_usage_text[] =
    "usage: farmsd serve [options]\n"
    "\n"
    "Run the farmsd service: training jobs POST checkpoints, a pool of workers analyses\n"
    "them with FARMS, results are cached by tensor hash in SQLite (or in PostgreSQL,\n"
    "shared by several replicas), and a REST API serves per-layer alpha histories, ESD\n"
    "histograms and plots, and per-layer sparsity and learning-rate recommendations\n"
    "(see openapi.yaml). Every option has an environment variable.\n"
    "\n"
    "  --listen HOST:PORT    address to listen on (default 127.0.0.1:8080; port 0 picks\n"
    "                        a free port)                                  [FARMSD_LISTEN]\n"
    "  --data DIR            data folder: farms.db and blobs/ (default ./farms-data)\n"
    "                                                                      [FARMSD_DATA]\n"
    "  --db URL              database: sqlite:PATH (default sqlite:<data>/farms.db) or\n"
    "                        postgresql://USER@HOST/DB (several replicas)  [FARMSD_DB]\n"
    "  --blobs DIR           uploaded checkpoints (default <data>/blobs); replicas share\n"
    "                        one folder (e.g. a network file system)      [FARMSD_BLOBS]\n"
    "  --lease SECONDS       lease of a running job's tasks (and of a job being planned),\n"
    "                        renewed every third of it; the tasks of a replica that died\n"
    "                        are claimed again after it (default 60)       [FARMSD_LEASE]\n"
    "  --workers N           analysis threads, and task runners sharing them (default:\n"
    "                        number of CPUs)                               [FARMSD_WORKERS]\n"
    "  --analysis-memory BYTES  memory the tasks running at once may take, by their\n"
    "                        estimates; a task that does not fit waits unless nothing\n"
    "                        runs (default: half the memory)     [FARMSD_ANALYSIS_MEMORY]\n"
    "  --preset P            default preset: farms-llm, farms-cv, full "
    "(default " PRESET_DEFAULT_NAME ")\n"
    "                                                                      [FARMSD_PRESET]\n"
    "  --allow-root DIR      allow path ingestion under DIR (repeatable; none: path\n"
    "                        ingestion off)                 [FARMSD_ALLOW_ROOTS, ':'-separated]\n"
    "  --tokens FILE         bearer tokens, one per line: TOKEN SCOPES, SCOPES read,\n"
    "                        write or read,write; a token is 16-256 printable ASCII\n"
    "                        characters without spaces or '#'; '#' starts a comment\n"
    "                        line; any other line stops the start (default: no\n"
    "                        authentication)                               [FARMSD_TOKENS]\n"
    "  --max-upload BYTES    largest upload, with K/M/G/T suffixes (default 64G)\n"
    "                                                                      [FARMSD_MAX_UPLOAD]\n"
    "  --max-uploads N       concurrent uploads (default 4)                [FARMSD_MAX_UPLOADS]\n"
    "  --min-free BYTES      free disk space to keep; uploads beyond it get 507 (default 1G)\n"
    "                                                                      [FARMSD_MIN_FREE]\n"
    "  --max-pickle-mem BYTES  memory one torch file's data.pkl may take to unpickle (and\n"
    "                        again for its tensor list); beyond it 413 limit_exceeded\n"
    "                        (default 256M, at least 1M)              [FARMSD_MAX_PICKLE_MEM]\n"
    "  --max-tensor-bytes BYTES  largest tensor read; a job reaching a larger one fails\n"
    "                        with limit_exceeded (default: memory / 8, at most 16G)\n"
    "                                                              [FARMSD_MAX_TENSOR_BYTES]\n"
    "  --http-threads N      HTTP threads (default 4)                      [FARMSD_HTTP_THREADS]\n"
    "  --response-cache BYTES  memory for rendered run reads served again while the run\n"
    "                        is unchanged (default 64M; 0: off)          [FARMSD_RESPONSE_CACHE]\n";

/* The HTTP server's limits (a second literal: one would pass C's 4095 bytes). */
static const char cfg_usage_http[] =
    "  --validators N        threads that validate uploads and path ingestions, off the HTTP\n"
    "                        threads (default 2)                           [FARMSD_VALIDATORS]\n"
    "  --validation-queue N  such requests waiting for a validator; more get 503 busy\n"
    "                        (default 8)                             [FARMSD_VALIDATION_QUEUE]\n"
    "  --memory-budget BYTES memory the validators share; each validation's reader limits\n"
    "                        are cut to BYTES / validators (default 1G)  [FARMSD_MEMORY_BUDGET]\n"
    "  --max-connections N   connections at once (default 1000)      [FARMSD_MAX_CONNECTIONS]\n"
    "  --max-connections-per-ip N  connections at once from one address (default 64)\n"
    "                                                          [FARMSD_MAX_CONNECTIONS_PER_IP]\n"
    "  --header-timeout S    request headers must arrive within S seconds of connecting or\n"
    "                        of the previous request, else 408 (default 10)\n"
    "                                                                 [FARMSD_HEADER_TIMEOUT]\n"
    "  --min-upload-rate BYTES  a body slower than BYTES per second, averaged over the\n"
    "                        window, gets 408 (default 64K; 0: off)   [FARMSD_MIN_UPLOAD_RATE]\n"
    "  --min-upload-window S the window of --min-upload-rate (default 30)\n"
    "                                                              [FARMSD_MIN_UPLOAD_WINDOW]\n"
    "  --log-level L         debug, info, warn, error (default info)       [FARMSD_LOG_LEVEL]\n"
    "  -h, --help            this help\n"
    "\n"
    "SIGTERM or SIGINT stops accepting, lets requests in flight finish (up to 10 s),\n"
    "re-queues running work and closes the database; a second one ends the process at once.\n";

/* Alert webhooks (README "Alerts and webhooks"). */
static const char cfg_usage_webhook[] =
    "  --webhook-url URL     POST alert events (JSON) to URL; without it events are only\n"
    "                        recorded (GET /v1/runs/RUN/alerts)          [FARMSD_WEBHOOK_URL]\n"
    "  --webhook-secret-file PATH  sign each body: header X-Farmsd-Signature: sha256=<hex\n"
    "                        HMAC-SHA256 of the body with the file's bytes, one trailing\n"
    "                        newline dropped>                     [FARMSD_WEBHOOK_SECRET_FILE]\n"
    "  --webhook-max-attempts N  attempts before a delivery is failed (default 8)\n"
    "                                                          [FARMSD_WEBHOOK_MAX_ATTEMPTS]\n"
    "  --webhook-backoff S   delay before the first retry, doubling with each attempt\n"
    "                        (default 1; decimals allowed)           [FARMSD_WEBHOOK_BACKOFF]\n"
    "  --webhook-backoff-max S  the longest delay between attempts (default 300)\n"
    "                                                           [FARMSD_WEBHOOK_BACKOFF_MAX]\n"
    "  --webhook-timeout S   one attempt, connecting included (default 10)\n"
    "                                                               [FARMSD_WEBHOOK_TIMEOUT]\n";

const char *cfg_usage(void)
{
    static char text[sizeof(cfg_usage_text) + sizeof(cfg_usage_webhook) + sizeof(cfg_usage_http)];

    if (text[0] == '\0') /* main thread, before any other starts */
        snprintf(text, sizeof(text), "%s%s%s", cfg_usage_text, cfg_usage_webhook, cfg_usage_http);
    return text;
}
