/* webhook.c -- see webhook.h.
 *
 * LOCKS: mu guards `stopping` and `pending`; the thread waits on cv
 * (CLOCK_MONOTONIC) between attempts, for at most the time until the next
 * row is due (or WEBHOOK_POLL_S: rows other replicas add). The database
 * connection and the curl handle belong to the thread.
 */
#include "server/webhook.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/clock.h"
#include "server/log.h"
#include "storage/store.h"
#include "storage/store_alerts.h"
#include "storage/store_jobs.h"

#define WEBHOOK_POLL_S  5.0 /* longest wait without a known due row */
#define WEBHOOK_RETRY_S 1.0 /* after a database error */

struct webhook {
    struct webhook_cfg cfg; /* strings below are the owned copies */
    char *db_url, *owner, *url, *secret;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping; /* guarded by mu */
    int pending;  /* guarded by mu: webhook_notify since the last look */
};

void webhook_sign(const char *key, size_t key_len, const char *body, size_t len,
                  char out[WEBHOOK_SIG_LEN])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)body, len, mac, &n);
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < n && i < 32; i++)
        snprintf(out + 7 + 2 * (size_t)i, 3, "%02x", mac[i]);
    out[7 + 64] = '\0';
}

/* Unix time in seconds (the delivery rows' clock). */
static double webhook_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t webhook_discard(char *data, size_t size, size_t nmemb, void *arg)
{
    (void)data;
    (void)arg;
    return size * nmemb;
}

/* POST `body` for delivery `d`: the HTTP status (0: none) and the error
 * text ("" when an answer came). */
static long webhook_post(struct webhook *w, const struct store_delivery *d, const char *body,
                         char *err, size_t err_len)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    char h[160], sig[WEBHOOK_SIG_LEN];
    CURLcode rc;
    long status = 0;

    err[0] = '\0';
    if (c == NULL) {
        snprintf(err, err_len, "curl_easy_init failed");
        return 0;
    }
    hl = curl_slist_append(hl, "Content-Type: application/json");
    hl = curl_slist_append(hl, "Expect:");
    snprintf(h, sizeof h, "X-Farmsd-Event: %lld", (long long)d->event_id);
    hl = curl_slist_append(hl, h);
    snprintf(h, sizeof h, "X-Farmsd-Delivery: %lld", (long long)d->id);
    hl = curl_slist_append(hl, h);
    if (w->secret != NULL) {
        webhook_sign(w->secret, w->cfg.secret_len, body, strlen(body), sig);
        snprintf(h, sizeof h, "X-Farmsd-Signature: %s", sig);
        hl = curl_slist_append(hl, h);
    }
    curl_easy_setopt(c, CURLOPT_URL, d->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(w->cfg.timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_USERAGENT, "farmsd-webhook");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, webhook_discard);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(err, err_len, "%s", curl_easy_strerror(rc));
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return status;
}

/* The delay before attempt n + 1 after n failed attempts (n >= 1). */
static double webhook_backoff(const struct webhook *w, int64_t n)
{
    double d = w->cfg.backoff_s * pow(2.0, (double)(n - 1));

    return d < w->cfg.backoff_max_s ? d : w->cfg.backoff_max_s;
}

/* One attempt at claimed delivery `d` and its record. */
static void webhook_attempt(struct webhook *w, struct store *s, const struct store_delivery *d,
                            const char *body)
{
    char err[STORE_DELIVERY_ERR];
    long status = webhook_post(w, d, body, err, sizeof err);
    int64_t n = d->attempts + 1;
    enum store_delivery_state st = STORE_DELIVERY_PENDING;
    double next = 0;
    struct err e = {0};

    if (status >= 200 && status < 300)
        st = STORE_DELIVERY_DELIVERED;
    else if (n >= (int64_t)w->cfg.max_attempts)
        st = STORE_DELIVERY_FAILED;
    else
        next = webhook_now() + webhook_backoff(w, n);
    LOG_INFO("webhook", "delivery=%lld event=%lld run=%s attempt=%lld status=%ld state=%s%s%s%s",
             (long long)d->id, (long long)d->event_id, d->run, (long long)n, status,
             store_delivery_state_name(st), err[0] ? " err=\"" : "", err, err[0] ? "\"" : "");
    if (store_delivery_attempt(s, d->id, st, status, err, next, &e) != ERR_OK)
        LOG_WARN("webhook", "delivery=%lld msg=\"outcome not recorded\" err=\"%s\"",
                 (long long)d->id, e.msg);
}

/* Wait up to `wait_s`, or until notified or stopping. 1 if stopping. */
static int webhook_wait(struct webhook *w, double wait_s)
{
    struct timespec until = clock_mono_deadline(wait_s > 0 ? wait_s : 0);
    int stopping;

    pthread_mutex_lock(&w->mu);
    while (!w->stopping && !w->pending)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0)
            break;
    w->pending = 0;
    stopping = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return stopping;
}

/* A connection for the thread, retried while the database is away. NULL
 * when stopping. */
static struct store *webhook_connect(struct webhook *w)
{
    struct store *s = NULL;
    struct err e = {0};

    while (1) {
        if (store_open(w->db_url, &s, &e) == ERR_OK &&
            store_set_lease(s, w->owner, 60, &e) == ERR_OK)
            return s;
        store_close(s);
        s = NULL;
        LOG_WARN("webhook", "msg=\"database not reachable, retrying\" err=\"%s\"", e.msg);
        if (webhook_wait(w, WEBHOOK_RETRY_S))
            return NULL;
    }
}

static void *webhook_main(void *arg)
{
    struct webhook *w = arg;
    struct store *s = webhook_connect(w);
    double lease_s = 2 * w->cfg.timeout_s + 10;

    while (s != NULL) {
        struct store_delivery d;
        struct err e = {0};
        char *body = NULL;
        int found = 0;
        double due = 0, now = webhook_now(), wait = WEBHOOK_POLL_S;

        if (store_delivery_claim(s, now, lease_s, &d, &body, &found, &due, &e) != ERR_OK) {
            LOG_WARN("webhook", "msg=\"cannot claim deliveries\" err=\"%s\"", e.msg);
            wait = WEBHOOK_RETRY_S;
        } else if (found) {
            webhook_attempt(w, s, &d, body);
            free(body);
            wait = 0; /* the next due row at once */
        } else if (due > 0) {
            wait = due - now < WEBHOOK_POLL_S ? due - now : WEBHOOK_POLL_S;
        }
        if (webhook_wait(w, wait))
            break;
    }
    store_close(s);
    return NULL;
}

static char *webhook_dup(const char *s, size_t n, int *ok)
{
    char *d = NULL;

    if (s == NULL)
        return NULL;
    d = malloc(n + 1);
    if (d == NULL) {
        *ok = 0;
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void webhook_free(struct webhook *w)
{
    if (w == NULL)
        return;
    free(w->db_url);
    free(w->owner);
    free(w->url);
    free(w->secret);
    free(w);
}

enum err_code webhook_start(const struct webhook_cfg *cfg, struct webhook **out, struct err *e)
{
    struct webhook *w = calloc(1, sizeof(*w));
    pthread_condattr_t ca;
    int ok = w != NULL;

    *out = NULL;
    if (!(cfg->max_attempts >= 1 && cfg->backoff_s > 0 && cfg->timeout_s > 0))
        ok = 0;
    if (ok) {
        w->cfg = *cfg;
        w->db_url = webhook_dup(cfg->db_url, strlen(cfg->db_url), &ok);
        w->owner = webhook_dup(cfg->owner, strlen(cfg->owner), &ok);
        w->url = webhook_dup(cfg->url ? cfg->url : "", cfg->url ? strlen(cfg->url) : 0, &ok);
        w->secret = webhook_dup(cfg->secret, cfg->secret_len, &ok);
    }
    if (!ok) {
        webhook_free(w);
        return err_set(e, w == NULL ? ERR_NOMEM : ERR_INVAL, "webhook: bad settings or no memory");
    }
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before the thread: not thread-safe */
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, webhook_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        webhook_free(w);
        return err_set(e, ERR_INTERNAL, "webhook: cannot start its thread");
    }
    *out = w;
    return ERR_OK;
}

void webhook_notify(struct webhook *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->pending = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

const char *webhook_url(const struct webhook *w)
{
    return w != NULL && w->url != NULL ? w->url : "";
}

void webhook_stop(struct webhook *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    webhook_free(w);
    curl_global_cleanup();
}
