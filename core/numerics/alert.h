/* alert.h -- alert rules on a checkpoint's layer verdicts: the rule set
 * (parsed from and printed to JSON, validated member by member), the
 * built-in default set, and the evaluation of one rule over a checkpoint's
 * layers and the layers' values at earlier checkpoints.
 *
 * Rule kinds:
 *   alpha_below  alpha < threshold (default 2.0: over-trained)
 *   alpha_above  alpha > threshold (default 6.0: under-trained)
 *   alpha_drop   alpha fell by more than threshold (default 1.0) from its
 *                value at any of the `window` (default 3) checkpoints before
 *   suspect_fit  the fit's warning is suspect_fit (farms.h)
 *   traps        num_traps > 0 where the checkpoint before had 0 or none
 * A rule fires when at least `min_layers` (default 1) layers match and it
 * is enabled. Only layers analysed ok take part.
 *
 * Pure functions on caller memory (cJSON for the JSON forms): nothing is
 * kept. Thread-safety: no state: thread-safe.
 */
#ifndef CORE_NUMERICS_ALERT_H
#define CORE_NUMERICS_ALERT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/numerics/farms.h"

#define FARMS_ALERT_RULES_MAX  32  /* rules in one set */
#define FARMS_ALERT_NAME_MAX   64  /* bytes of a rule name, with the NUL */
#define FARMS_ALERT_WINDOW_MAX 100 /* alpha_drop looks back at most this many checkpoints */

enum farms_alert_kind {
    FARMS_ALERT_ALPHA_BELOW,
    FARMS_ALERT_ALPHA_ABOVE,
    FARMS_ALERT_ALPHA_DROP,
    FARMS_ALERT_SUSPECT_FIT,
    FARMS_ALERT_TRAPS,
    FARMS_ALERT_KIND_COUNT
};

struct farms_alert_rule {
    char name[FARMS_ALERT_NAME_MAX]; /* 1-63 of A-Z a-z 0-9 . _ -, unique in a set */
    enum farms_alert_kind kind;
    double threshold;   /* alpha_below/above: the bound; alpha_drop: the drop; else NaN */
    int64_t window;     /* alpha_drop: checkpoints looked back (1..FARMS_ALERT_WINDOW_MAX);
                           traps: 1; else 0 */
    int64_t min_layers; /* fires when at least this many layers match (>= 1) */
    int enabled;        /* 0: never fires */
};

struct farms_alert_rules {
    size_t n;
    struct farms_alert_rule r[FARMS_ALERT_RULES_MAX];
};

/* "alpha_below", ...; "?" out of range. Never NULL. */
const char *farms_alert_kind_name(enum farms_alert_kind k);

/* The kind named exactly `s`, or -1. */
int farms_alert_kind_from_name(const char *s);

/* The built-in default set: over_trained (alpha_below 2), under_trained
 * (alpha_above 6), alpha_drop (1.0 over 3 checkpoints), suspect_fit
 * (min_layers 1), traps. Cannot fail. */
void farms_alert_defaults(struct farms_alert_rules *out);

/* Parse a rule set from `json`: an array of rule objects {"name", "kind",
 * "threshold", "window", "min_layers", "enabled"} (name and kind required,
 * the rest default by kind). ERR_INVAL with a message naming the member
 * ("rules[1].threshold: must be a finite number"; unknown members, wrong
 * types, duplicate names, more than FARMS_ALERT_RULES_MAX rules). On
 * failure *out is unspecified. */
enum err_code farms_alert_rules_parse(const cJSON *json, struct farms_alert_rules *out,
                                      struct err *e);

/* The set as a new JSON array (every member written; threshold null where
 * the kind has none). NULL when out of memory. */
cJSON *farms_alert_rules_json(const struct farms_alert_rules *rules);

/* One rule as a new JSON object, as in the array above. NULL on NOMEM. */
cJSON *farms_alert_rule_json(const struct farms_alert_rule *r);

/* --- Evaluation ----------------------------------------------------------- */

/* One layer of the checkpoint evaluated. */
struct farms_alert_layer {
    int ok;                     /* analysed ok (only such layers match) */
    double alpha;               /* NaN if none */
    enum farms_warning warning; /* the fit's verdict */
    int64_t num_traps;          /* -1 when not computed */
};

/* The checkpoint's layers and the same layers at earlier checkpoints of
 * the run (same settings), newest first: prev_alpha[k][i] / prev_traps[k][i]
 * is layer i at the (k+1)-th checkpoint before (NaN / -1 when the layer had
 * no ok row there). n_prev may be 0. */
struct farms_alert_input {
    const struct farms_alert_layer *layers;
    size_t n;
    const double *const *prev_alpha;  /* n_prev arrays of n; borrowed */
    const int64_t *const *prev_traps; /* n_prev arrays of n; borrowed */
    size_t n_prev;
    int history; /* 0: rules that compare with earlier
                    checkpoints (alpha_drop, traps) match nothing
                    (the checkpoint is not the run's newest) */
};

/* A matching layer: its index and, for alpha_drop, the earlier alpha it
 * dropped from (the largest in the window); NaN for other kinds. */
struct farms_alert_hit {
    size_t layer;
    double previous_alpha;
};

/* Evaluate rule `r` over `in`: the matching layers into hits[0..*n_hits)
 * (room for in->n), in layer order. Returns 1 if the rule fires (enabled
 * and *n_hits >= r->min_layers), else 0. Cannot fail. */
int farms_alert_eval(const struct farms_alert_rule *r, const struct farms_alert_input *in,
                     struct farms_alert_hit *hits, size_t *n_hits);

#endif /* CORE_NUMERICS_ALERT_H */
