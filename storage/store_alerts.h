/* store_alerts.h -- alerts: rule sets (the default set and per-run sets,
 * stored as the JSON text of core/numerics/alert.h), the events a finished
 * job raised, their webhook deliveries (claimed with a lease so that one
 * replica delivers a row; retried with backoff by the caller, which
 * records each attempt), and the counts /metrics shows.
 *
 * Events and deliveries belong to their run: store_run_delete removes them
 * with it. Errors, ownership and thread-safety: as store.h. Pages are
 * caller-owned: free with their _free function.
 */
#ifndef STORAGE_STORE_ALERTS_H
#define STORAGE_STORE_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "storage/store.h"

#define STORE_URL_MAX         1024 /* webhook URL bytes incl. NUL */
#define STORE_RULE_NAME_MAX   64   /* = FARMS_ALERT_NAME_MAX */
#define STORE_DELIVERY_ERR    256  /* last_error bytes incl. NUL */
#define STORE_ALERTS_PAGE_MAX 1000 /* event and delivery pages are clamped to this */

/* --- Rule sets ---------------------------------------------------------- */

/* The rule set of `run` (NULL: the default set) as a new JSON text in
 * *spec (free()), or *spec NULL when none was stored. ERR_NOTFOUND if the
 * run does not exist. */
enum err_code store_alert_rules_get(struct store *s, const char *run, char **spec, struct err *e);

/* Store `spec` (the JSON array text, validated by the caller) as the rule
 * set of `run` (NULL: the default set), replacing the one there; spec NULL
 * removes the run's own set (the run follows the default again).
 * ERR_NOTFOUND if the run does not exist. */
enum err_code store_alert_rules_put(struct store *s, const char *run, const char *spec,
                                    struct err *e);

/* --- Events ---------------------------------------------------------------- */

/* Record the event of rule `rule` fired by job `job_id` at (run, step),
 * with `body` (a JSON object text without "event_id": readers splice it in,
 * see store_alert_body) and `n_layers` matching layers, and a pending
 * delivery to each of urls[0..n_urls), in one transaction. *event_id gets
 * the new id, or 0 when the job already raised this rule (nothing changes:
 * a job's evaluation may run twice). ERR_NOTFOUND if no run. */
enum err_code store_alert_event_add(struct store *s, const char *run, int64_t step, int64_t job_id,
                                    const char *rule, int64_t n_layers, const char *body,
                                    const char *const *urls, size_t n_urls, int64_t *event_id,
                                    struct err *e);

/* The steps of `run` before `step` that have layer rows under
 * `settings_hash`, newest first, at most k, into steps[0..*n); *newest is
 * 1 when no later step has such rows (the checkpoint is the run's newest
 * analysed one). */
enum err_code store_alert_steps(struct store *s, const char *run, const char *settings_hash,
                                int64_t step, size_t k, int64_t *steps, size_t *n, int *newest,
                                struct err *e);

/* The text of `body` with "event_id": id as its first member: a new
 * string (free()), or NULL when out of memory or `body` is not an object
 * text. */
char *store_alert_body(int64_t event_id, const char *body);

enum store_delivery_state {
    STORE_DELIVERY_PENDING = 0,   /* waiting for its (next) attempt */
    STORE_DELIVERY_DELIVERED = 1, /* a 2xx answer */
    STORE_DELIVERY_FAILED = 2,    /* gave up after the last attempt */
    STORE_DELIVERY_STATE_COUNT
};

/* "pending", "delivered", "failed"; "?" out of range. Never NULL. */
const char *store_delivery_state_name(enum store_delivery_state st);
/* The state named exactly `s`, or -1. */
int store_delivery_state_from_name(const char *s);

struct store_delivery {
    int64_t id;
    int64_t event_id;
    char run[STORE_RUN_MAX];
    int64_t step;
    char rule[STORE_RULE_NAME_MAX];
    char url[STORE_URL_MAX];
    enum store_delivery_state state;
    int64_t attempts;
    double next_at;                      /* unix seconds of the next attempt (pending) */
    int64_t last_status;                 /* HTTP status of the last attempt; 0 none */
    char last_error[STORE_DELIVERY_ERR]; /* "" when the last attempt got an answer */
    double created, done_at;             /* done_at 0 while pending */
};

struct store_alert_event {
    int64_t id;
    int64_t step, job_id;
    char rule[STORE_RULE_NAME_MAX];
    int64_t n_layers;
    char *body; /* owned: the JSON object text without event_id */
    double created;
    size_t n_deliveries;
    struct store_delivery *deliveries; /* owned, by id */
};

struct store_alert_event_page {
    size_t n;
    struct store_alert_event *items;  /* owned, newest first */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

/* The events of `run`, newest first, with their deliveries, keyset-
 * paginated (page_size 0: STORE_PAGE_DEFAULT, at most
 * STORE_ALERTS_PAGE_MAX). ERR_NOTFOUND if no run; ERR_INVAL for a bad
 * token. Free with store_alert_event_page_free(). */
enum err_code store_alert_events_list(struct store *s, const char *run, size_t page_size,
                                      const char *page_token, struct store_alert_event_page **out,
                                      struct err *e);
void store_alert_event_page_free(struct store_alert_event_page *p);

/* --- Deliveries -------------------------------------------------------------- */

struct store_delivery_page {
    size_t n;
    struct store_delivery *items;     /* owned, newest first */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

/* Deliveries, newest first, of `run` (NULL: all) in `state` (< 0: any),
 * keyset-paginated as store_alert_events_list. ERR_NOTFOUND if a named run
 * does not exist. Free with store_delivery_page_free(). */
enum err_code store_deliveries_list(struct store *s, const char *run, int state, size_t page_size,
                                    const char *page_token, struct store_delivery_page **out,
                                    struct err *e);
void store_delivery_page_free(struct store_delivery_page *p);

/* Claim the pending delivery due first (next_at <= now) that no live lease
 * holds, for this connection's owner (store_set_lease) until now +
 * lease_s. *found 1 with the row in *out and its body (event_id spliced
 * in, free()) in *body; *found 0 when none is due. *next_due gets the
 * earliest next_at of the pending rows (0 when none), for the caller's
 * wait. */
enum err_code store_delivery_claim(struct store *s, double now, double lease_s,
                                   struct store_delivery *out, char **body, int *found,
                                   double *next_due, struct err *e);

/* Record an attempt at claimed delivery `id`: its HTTP status (0: no
 * answer) and error text ("" none); the row becomes `state` (pending again
 * with next_at, or delivered / failed with done_at = now) and its lease is
 * released. Only by the owner that holds the claim: ERR_CONFLICT when the
 * lease was lost (another replica may have taken the row). */
enum err_code store_delivery_attempt(struct store *s, int64_t id, enum store_delivery_state state,
                                     int64_t http_status, const char *error, double next_at,
                                     struct err *e);

/* Delivery rows by state into counts[STORE_DELIVERY_STATE_COUNT]. */
enum err_code store_delivery_counts(struct store *s, int64_t *counts, struct err *e);

/* --- Verdict gauges ----------------------------------------------------------- */

struct store_run_verdicts {
    char run[STORE_RUN_MAX];
    int64_t step;      /* the run's newest step with a succeeded job */
    int64_t n_ok;      /* analysed ok, warning none */
    int64_t n_under;   /* under_trained */
    int64_t n_over;    /* over_trained */
    int64_t n_suspect; /* suspect_fit */
};

/* For every run with a succeeded job: the verdict counts of the layer rows
 * (status ok) of its newest analysed step, under the settings of that
 * step's newest succeeded job. A new array *out of *n (free()), by run
 * name. */
enum err_code store_run_verdicts_list(struct store *s, struct store_run_verdicts **out, size_t *n,
                                      struct err *e);

#endif /* STORAGE_STORE_ALERTS_H */
