/* serve.c -- `farmsd serve`: start the service, run until SIGTERM/SIGINT,
 * shut down gracefully.
 *
 * Start-up: settings (cfg), the data folder, the database (created and
 * migrated; jobs left running by a crash are re-queued), the blob store, the
 * analysis pool (BLAS pinned to one thread per worker), the alert webhook
 * deliverer (with --webhook-url), the job runners, then the HTTP server.
 * Shutdown: stop accepting and let requests finish,
 * stop the runners at their next layer, re-queue their jobs, close the
 * database. Signals are taken synchronously with sigwait() on the main
 * thread; every other thread starts with them blocked.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "server/cfg.h"
#include "server/cli.h"
#include "server/http.h"
#include "server/log.h"
#include "server/pool.h"
#include "server/webhook.h"
#include "server/worker.h"
#include "storage/blob.h"
#include "storage/store.h"
#include "storage/store_jobs.h"

#define SERVE_GRACE_S   10.0
#define SERVE_DB_WAIT_S 60.0 /* how long start-up waits for the database */

static void serve_job_queued(void *arg, int64_t job_id)
{
    (void)job_id;
    worker_notify(arg);
}

/* Whether host:port can be listened on, checked before anything is created,
 * so that a port in use is one clear line and leaves no data folder behind.
 * The socket is closed again and libmicrohttpd binds the address itself
 * (both with SO_REUSEADDR); a port taken in the moment between still fails,
 * in http_start. */
static enum err_code serve_check_listen(const struct cfg *c, struct err *e)
{
    struct addrinfo hints = {0}, *res = NULL;
    char port[16], addr[300];
    int fd = -1, one = 1, gai;
    enum err_code rc = ERR_OK;

    snprintf(addr, sizeof(addr), "%s%s%s:%u", strchr(c->host, ':') ? "[" : "", c->host,
             strchr(c->host, ':') ? "]" : "", c->port);
    snprintf(port, sizeof(port), "%u", c->port);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    gai = getaddrinfo(c->host, port, &hints, &res);
    if (gai != 0) {
        rc = err_set(e, ERR_INVAL, "cannot listen on %s: %s", addr, gai_strerror(gai));
        goto out;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1) != 0) {
        size_t at = (size_t)snprintf(NULL, 0, "cannot listen on %s: ", addr);
        rc = err_set_errno(e, ERR_IO, errno, "cannot listen on %s", addr);
        if (at < sizeof(e->msg)) /* "Address already in use" -> "address ..." */
            e->msg[at] = (char)tolower((unsigned char)e->msg[at]);
    }
out:
    if (fd >= 0)
        close(fd);
    if (res != NULL)
        freeaddrinfo(res);
    return rc;
}

/* This process's lease owner: "host:pid:random". */
static void serve_owner(char *buf, size_t len)
{
    char host[64] = "host";
    unsigned char rnd[4] = {0};
    FILE *f = fopen("/dev/urandom", "rb");

    if (f != NULL) {
        if (fread(rnd, 1, sizeof rnd, f) != sizeof rnd)
            memset(rnd, 0, sizeof rnd);
        fclose(f);
    }
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(buf, len, "%.40s:%ld:%02x%02x%02x%02x", host, (long)getpid(), rnd[0], rnd[1], rnd[2],
             rnd[3]);
}

/* The data folder, the database (migrated; on SQLite, which one process
 * serves, jobs left running by a crash are re-queued; on PostgreSQL other
 * replicas may be running jobs: their leases take care of dead ones). */
static enum err_code serve_open_data(const struct cfg *c, struct err *e)
{
    enum err_code rc;
    struct store *s = NULL;
    int64_t n = 0;

    if (mkdir(c->data_dir, 0700) != 0 && errno != EEXIST)
        return err_set_errno(e, ERR_IO, errno, "creating the data folder %s", c->data_dir);
    /* a database that is not up yet (ERR_BUSY) is waited for, with backoff */
    for (double wait = 0.25, waited = 0;; waited += wait, wait = wait < 4 ? 2 * wait : 4) {
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};

        rc = store_open(c->db_url, &s, e);
        if (rc != ERR_BUSY || waited >= SERVE_DB_WAIT_S)
            break;
        LOG_WARN("serve", "msg=\"database not reachable, retrying\" err=\"%s\"", e->msg);
        nanosleep(&ts, NULL);
    }
    if (rc == ERR_OK && strcmp(store_backend(s), "sqlite") == 0)
        rc = store_jobs_requeue(s, &n, e);
    if (rc == ERR_OK && n > 0)
        LOG_INFO("serve", "msg=\"re-queued jobs interrupted by a crash or stop\" jobs=%lld",
                 (long long)n);
    store_close(s);
    return rc;
}

/* Raise the open-files limit to its hard limit when `conns` connections
 * (plus the database, blobs and a margin) need more than the soft one. */
static void serve_raise_nofile(unsigned conns)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)conns + 256;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < need)
        LOG_WARN("serve",
                 "msg=\"open-files limit below --max-connections; connections beyond it fail\" "
                 "nofile=%llu max_connections=%u",
                 (unsigned long long)rl.rlim_cur, conns);
}

/* Give back this process's running jobs (stopped at a layer boundary). */
static void serve_requeue(const char *db_url, const char *owner, double lease_s)
{
    struct store *s = NULL;
    int64_t n = 0;
    struct err e;

    if (store_open(db_url, &s, &e) != ERR_OK || store_set_lease(s, owner, lease_s, &e) != ERR_OK ||
        store_jobs_release(s, &n, &e) != ERR_OK)
        LOG_ERROR("serve", "msg=\"cannot re-queue running jobs\" err=\"%s\"", e.msg);
    else if (n > 0)
        LOG_INFO("serve", "msg=\"re-queued running jobs\" jobs=%lld", (long long)n);
    store_close(s);
}

/* The HTTP server with the settings of `c`. */
static enum err_code serve_http_start(const struct cfg *c, const struct api_ctx *ctx,
                                      struct http_server **out, struct err *e)
{
    struct http_cfg hc = {.host = c->host,
                          .port = c->port,
                          .threads = c->http_threads,
                          .db_path = c->db_url,
                          .api = ctx,
                          .max_upload = c->max_upload,
                          .max_uploads = c->max_uploads,
                          .validators = c->validators,
                          .validation_queue = c->validation_queue,
                          .memory_budget = c->memory_budget,
                          .max_conns = c->max_conns,
                          .max_conns_per_ip = c->max_conns_per_ip,
                          .header_s = (double)c->header_timeout_s,
                          .min_rate = c->min_upload_rate,
                          .window_s = (double)c->min_upload_window_s};

    serve_raise_nofile(c->max_conns);
    return http_start(&hc, out, e);
}

/* The settings into *c and the listen check; -1 to go on, else the exit
 * status (c freed then). Usage errors are one line and the --help hint. */
static int serve_settings(struct cfg *c, int argc, char **argv)
{
    struct err e = {0};
    enum err_code rc = cfg_load(c, argc, argv, &e);
    int status = -1;

    if (rc == ERR_CANCELED)
        status = 0;
    else if (rc)
        status = cli_usage_error("serve", "%s", e.msg);
    else if (serve_check_listen(c, &e) != ERR_OK) {
        fprintf(stderr, "farmsd serve: %s\n", e.msg);
        status = CLI_EXIT_FAILED;
    }
    if (status >= 0)
        cfg_free(c);
    return status;
}

/* The running service: built by serve_start, torn down by serve_stop, owned
 * by cli_serve_main's frame (ctx, stats and limits are borrowed by the
 * threads started, so the struct must not move while they run). */
struct serve {
    char owner[STORE_OWNER_MAX]; /* lease owner of this process's claims */
    struct api_stats stats;
    struct ckpt_limits limits;
    struct blob_store *blobs; /* owned, NULL until opened */
    struct api_cache *cache;  /* owned */
    struct pool *pool;        /* owned */
    struct webhook *webhook;  /* owned, NULL without --webhook-url */
    struct worker *worker;    /* owned */
    struct api_ctx ctx;       /* borrowed by the HTTP server */
    struct http_server *http; /* owned */
};

/* Block SIGTERM/SIGINT for every thread started later (the main thread takes
 * them with sigwait on `sigs`); ignore SIGPIPE. */
static void serve_signals_block(sigset_t *sigs)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, sigs, NULL); /* inherited by every thread started below */
    signal(SIGPIPE, SIG_IGN);
}

/* The API's context over what serve_start opened. */
static void serve_ctx_fill(struct serve *sv, const struct cfg *c)
{
    sv->ctx = (struct api_ctx){.blobs = sv->blobs,
                               .default_preset = c->preset,
                               .allow_roots = c->allow_roots,
                               .n_allow_roots = c->n_allow_roots,
                               .tokens = c->tokens,
                               .n_tokens = c->n_tokens,
                               .max_upload = c->max_upload,
                               .job_queued = serve_job_queued,
                               .job_queued_arg = sv->worker,
                               .stats = &sv->stats,
                               .ready = 1,
                               .limits = &sv->limits,
                               .min_free_bytes = c->min_free,
                               .cache = sv->cache};
}

/* Open the data folder and database, the blob store, the response cache, the
 * analysis pool, the job runners and the HTTP server, in that order. On
 * failure what was started stays in *sv for serve_stop. */
static enum err_code serve_start(struct serve *sv, const struct cfg *c, struct err *e)
{
    enum err_code rc;

    api_stats_init(&sv->stats);
    ckpt_limits_default(&sv->limits);
    sv->limits.max_pickle_mem = c->max_pickle_mem;
    sv->limits.max_tensor_bytes = c->max_tensor_bytes;
    serve_owner(sv->owner, sizeof sv->owner);

    rc = serve_open_data(c, e);
    if (rc == ERR_OK)
        rc = blob_store_open(c->blobs_dir, &sv->blobs, e);
    if (rc == ERR_OK)
        rc = api_cache_new((size_t)c->response_cache, &sv->cache, e);
    if (rc == ERR_OK)
        rc = pool_new(c->workers, 4096, &sv->pool, e);
    if (rc == ERR_OK && c->webhook_url != NULL) {
        struct webhook_cfg hc = {.db_url = c->db_url,
                                 .owner = sv->owner,
                                 .url = c->webhook_url,
                                 .secret = c->webhook_secret,
                                 .secret_len = c->webhook_secret_len,
                                 .max_attempts = c->webhook_max_attempts,
                                 .backoff_s = c->webhook_backoff_s,
                                 .backoff_max_s = c->webhook_backoff_max_s,
                                 .timeout_s = (double)c->webhook_timeout_s};
        rc = webhook_start(&hc, &sv->webhook, e);
    }
    if (rc == ERR_OK) {
        struct worker_cfg wc = {.db_path = c->db_url,
                                .owner = sv->owner,
                                .lease_s = (double)c->lease_s,
                                .blobs = sv->blobs,
                                .pool = sv->pool,
                                .n_runners = c->workers,
                                .mem_budget = c->analysis_memory,
                                .stats = &sv->stats,
                                .limits = &sv->limits,
                                .webhook = sv->webhook};
        rc = worker_start(&wc, &sv->worker, e);
    }
    if (rc == ERR_OK) {
        serve_ctx_fill(sv, c);
        rc = serve_http_start(c, &sv->ctx, &sv->http, e);
    }
    return rc;
}

static void serve_log_listening(const struct serve *sv, const struct cfg *c)
{
    LOG_INFO("serve",
             "msg=\"listening\" url=http://%s%s%s:%u/ data=%s workers=%u preset=%s auth=%s "
             "db=%s blobs=%s lease=%u owner=%s",
             strchr(c->host, ':') ? "[" : "", c->host, strchr(c->host, ':') ? "]" : "",
             http_port(sv->http), c->data_dir, c->workers, c->preset, c->n_tokens ? "on" : "off",
             strncmp(c->db_url, "postgres", 8) == 0 ? "postgresql" : "sqlite", c->blobs_dir,
             c->lease_s, sv->owner);
}

/* Stop in reverse: requests finish (grace), runners stop after the task at
 * hand, this process's tasks and jobs are handed back (after a clean run
 * only: `requeue`). */
static void serve_stop(struct serve *sv, const struct cfg *c, int requeue)
{
    http_stop(sv->http, SERVE_GRACE_S);
    worker_stop(sv->worker);   /* runners stop after the task at hand */
    webhook_stop(sv->webhook); /* after the attempt at hand */
    pool_free(sv->pool);
    if (requeue)
        serve_requeue(c->db_url, sv->owner, (double)c->lease_s);
    blob_store_close(sv->blobs);
    api_cache_free(sv->cache);
}

int cli_serve_main(int argc, char **argv)
{
    struct cfg c;
    struct serve sv = {0};
    struct err e = {0};
    sigset_t sigs;
    int sig = 0, status;

    status = serve_settings(&c, argc, argv);
    if (status >= 0)
        return status;
    status = 0;
    log_set_level((enum log_level)c.log_level);
    serve_signals_block(&sigs);
    openblas_set_num_threads(1);
    if (serve_start(&sv, &c, &e) != ERR_OK) {
        LOG_ERROR("serve", "msg=\"cannot start\" err=\"%s\"", e.msg);
        fprintf(stderr, "error: %s: %s\n", err_category(&e), e.msg);
        status = CLI_EXIT_FAILED;
    } else {
        serve_log_listening(&sv, &c);
        while (sigwait(&sigs, &sig) != 0)
            ;
        LOG_INFO("serve", "msg=\"stopping\" signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        /* a second SIGTERM/SIGINT ends the process at once, as a kill does */
        pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
    }
    serve_stop(&sv, &c, status == 0);
    cfg_free(&c);
    if (status == 0)
        LOG_INFO("serve", "msg=\"stopped\"");
    return status;
}
