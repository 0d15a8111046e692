/* store_tasks.c -- see store_tasks.h.
 *
 * Not implemented yet: every call fails with ERR_INTERNAL (the room for
 * issue 14's task queue).
 */
#include "storage/store_tasks.h"

enum err_code store_tasks_plan(struct store *s, int64_t job_id, const struct store_task_row *rows,
                               size_t n, int64_t n_hits, int64_t *n_open, struct err *e)
{
    (void)s, (void)job_id, (void)rows, (void)n, (void)n_hits, (void)n_open;
    return err_set(e, ERR_INTERNAL, "tasks: not implemented");
}

enum err_code store_task_claim(struct store *s, uint64_t mem_max, struct store_task *out,
                               int *claimed, struct err *e)
{
    (void)s, (void)mem_max, (void)out;
    *claimed = 0;
    return err_set(e, ERR_INTERNAL, "tasks: not implemented");
}

enum err_code store_task_done(struct store *s, int64_t job_id, int64_t ord, int cache_hit,
                              int *last, struct err *e)
{
    (void)s, (void)job_id, (void)ord, (void)cache_hit;
    *last = 0;
    return err_set(e, ERR_INTERNAL, "tasks: not implemented");
}

enum err_code store_task_release(struct store *s, int64_t job_id, int64_t ord, struct err *e)
{
    (void)s, (void)job_id, (void)ord;
    return err_set(e, ERR_INTERNAL, "tasks: not implemented");
}

enum err_code store_leases_renew(struct store *s, int64_t *n_renewed, struct err *e)
{
    (void)s, (void)n_renewed;
    return err_set(e, ERR_INTERNAL, "tasks: not implemented");
}

enum err_code store_tasks_plan_get(struct store *s, int64_t job_id, struct store_task **out,
                                   size_t *n, struct err *e)
{
    (void)s, (void)job_id;
    *out = NULL;
    *n = 0;
    return err_set(e, ERR_INTERNAL, "tasks: not implemented");
}

enum err_code store_task_counts(struct store *s, int64_t counts[STORE_TASK_STATE_COUNT],
                                struct err *e)
{
    (void)s, (void)counts;
    return err_set(e, ERR_INTERNAL, "tasks: not implemented");
}
