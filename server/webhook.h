/* webhook.h -- the webhook deliverer: one thread per process that POSTs
 * alert events (storage/store_alerts.h deliveries) to their URL.
 *
 * Each attempt claims the due delivery row with a lease (so among several
 * replicas one delivers a row), POSTs the event's JSON body with libcurl
 * (Content-Type: application/json; X-Farmsd-Event: <event id>;
 * X-Farmsd-Delivery: <delivery id>; X-Farmsd-Signature: sha256=<hex
 * HMAC-SHA256 of the raw body with the secret>, when a secret is set)
 * within the timeout, and records the outcome: a 2xx answer is delivered;
 * anything else is tried again after backoff_s * 2^(attempts-1), at most
 * backoff_max_s, until max_attempts, then failed. Rows live in the
 * database, so a restart (or another replica) goes on with them. The
 * thread never runs on request or worker threads: new events only wake it.
 *
 * Ownership: webhook_start copies the settings. Thread-safety:
 * webhook_notify and webhook_url from any thread; webhook_stop once, from
 * the thread that started it.
 */
#ifndef SERVER_WEBHOOK_H
#define SERVER_WEBHOOK_H

#include <stddef.h>

#include "core/err.h"

struct webhook; /* opaque */

struct webhook_cfg {
    const char *db_url; /* borrowed: the database (store_open) */
    const char *owner;  /* borrowed: lease owner of this process's claims */
    const char *url;    /* borrowed: where new events are sent */
    const char *secret; /* borrowed: HMAC key bytes; NULL: no signature header */
    size_t secret_len;
    unsigned max_attempts; /* >= 1 */
    double backoff_s;      /* first retry delay (> 0) */
    double backoff_max_s;  /* cap of the doubling delay */
    double timeout_s;      /* one attempt, connection included */
};

/* Start the deliverer thread. Returns a new webhook; stop with webhook_stop(). */
enum err_code webhook_start(const struct webhook_cfg *cfg, struct webhook **out, struct err *e);

/* New deliveries were recorded: attempt them now. NULL-safe, any thread. */
void webhook_notify(struct webhook *w);

/* The URL new events go to. Borrowed: valid until webhook_stop. */
const char *webhook_url(const struct webhook *w);

/* Stop after the attempt at hand (bounded by the timeout), then free. NULL
 * is a no-op. */
void webhook_stop(struct webhook *w);

/* "sha256=" and the hex HMAC-SHA256 of body[0..len) under key into
 * out[WEBHOOK_SIG_LEN]. Cannot fail. */
#define WEBHOOK_SIG_LEN (7 + 64 + 1)
void webhook_sign(const char *key, size_t key_len, const char *body, size_t len,
                  char out[WEBHOOK_SIG_LEN]);

#endif /* SERVER_WEBHOOK_H */
