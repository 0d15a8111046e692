/* alerts.h -- alert evaluation when a job succeeds: the rule set in force
 * for the job's run (api/api_alerts.h) over the checkpoint's layer rows
 * and, for the rules that compare (alpha_drop, traps), the same layers at
 * the run's earlier checkpoints of the same settings; one event per rule
 * that fires, with the matching layers and their AlphaPruning / TempBalance
 * recommendations, recorded with a pending delivery to the webhook URL
 * (server/webhook.h), which is then woken.
 *
 * Only the run's newest analysed checkpoint (under those settings) is
 * compared with earlier ones: a step analysed late (a backfill) raises no
 * drop or trap events, since "before" is not its past. Level rules
 * (alpha_below, alpha_above, suspect_fit) describe the checkpoint itself
 * and fire for any step.
 *
 * Thread-safety: called on a runner thread with its own connection.
 */
#ifndef SERVER_ALERTS_H
#define SERVER_ALERTS_H

#include <stdint.h>

#include "server/webhook.h"
#include "storage/store.h"

/* Evaluate and record the alerts of job `job_id`, whose layer rows are
 * stored and which is about to be recorded as succeeded (worker__finish:
 * so a client that sees the job succeeded sees its events; evaluating a
 * job twice adds nothing). Wake `wh` (may be NULL: events are recorded
 * without deliveries). Failures are logged; the job's success stands.
 * Cannot fail. */
void alerts_job_succeeded(struct store *s, int64_t job_id, struct webhook *wh);

#endif /* SERVER_ALERTS_H */
