/* store_tasks_int.h -- task row helpers shared by store_tasks.c (claims,
 * done, release, renewal) and store_task_plan.c (the plan, its reads and
 * counts); defined in store_tasks.c. Not part of the public API. Same
 * thread rules as store.h.
 */
#ifndef STORAGE_STORE_TASKS_INT_H
#define STORAGE_STORE_TASKS_INT_H

#include <stdint.h>

#include "core/err.h"
#include "storage/store.h"
#include "storage/store_db.h"
#include "storage/store_tasks.h"

/* The columns of a task row, in store__task_read's order. */
#define STORE__TASK_COLS "job_id, ord, name, tensor_sha256, todo, cost, mem_bytes, state, attempts"

/* Read a row of STORE__TASK_COLS into *t. */
void store__task_read(struct store__q *st, struct store_task *t);

/* One integer of a one-row query bound to (?1 job, ?2 ord) (NULL -> 0). */
enum err_code store__task_query_int(struct store *s, const char *sql, int64_t job_id, int64_t ord,
                                    int64_t *out, struct err *e);

#endif /* STORAGE_STORE_TASKS_INT_H */
