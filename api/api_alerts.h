/* api_alerts.h -- what the alert evaluation (server/alerts.c) shares with
 * the alert routes (api_alerts.c): the rule set in force for a run, and the
 * AlphaPruning / TempBalance recommendations of a checkpoint's rows with
 * the defaults of the recommendation routes (api_recommend.c), so an
 * alert's numbers are the ones GET .../recommendations answers.
 *
 * Ownership: the caller's arrays and structs; nothing is kept.
 * Thread-safety: as api.h (the caller's own store connection).
 */
#ifndef API_API_ALERTS_H
#define API_API_ALERTS_H

#include "core/err.h"
#include "core/numerics/alert.h"
#include "storage/store.h"
#include "storage/store_layers.h"

/* Where a run's rule set comes from. */
enum api_alert_scope {
    API_ALERT_SCOPE_RUN,     /* the run's own set (PUT /v1/runs/{run}/alerts/rules) */
    API_ALERT_SCOPE_DEFAULT, /* the stored default set (PUT /v1/alerts/rules) */
    API_ALERT_SCOPE_BUILTIN  /* the built-in default set (farms_alert_defaults) */
};

/* "run", "default", "builtin". Never NULL. */
const char *api_alert_scope_name(enum api_alert_scope sc);

/* The rule set in force for `run` (NULL: the default set) into *out and
 * where it comes from into *scope (may be NULL). ERR_NOTFOUND if the run
 * does not exist; ERR_DB if a stored set no longer parses. */
enum err_code api_alert_rules_for(struct store *s, const char *run, struct farms_alert_rules *out,
                                  enum api_alert_scope *scope, struct err *e);

/* The recommendations of rows[0..n) with the routes' defaults: sparsity[i]
 * (AlphaPruning ratio, target 0.7, epsilon 0.3, the layers' own blocks) and
 * lr_scale[i] (TempBalance linear map, rate / base rate, ratios 0.5..1.5),
 * NaN for a row that takes no part (or when the checkpoint's alphas are
 * degenerate). `rows` is borrowed, not changed. ERR_NOMEM. */
enum err_code api_alert_recommend(struct store_layer_list *rows, double *sparsity, double *lr_scale,
                                  struct err *e);

#endif /* API_API_ALERTS_H */
