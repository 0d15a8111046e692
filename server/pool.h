/* pool.h -- a fixed pool of worker threads with a bounded FIFO queue.
 *
 * Ownership: an item given to pool_submit() belongs to the pool until its
 * work function has run; the work function then owns it (frees it or hands
 * it back through the caller's own structures). Submitters keep no reference.
 * The work function cannot fail through the pool: it records its own
 * enum err_code inside the item.
 *
 * Locking: the queue is guarded by one mutex; work functions run with it
 * released and must not call pool_free() on their own pool. They may call
 * pool_submit() (with wait = 0 only, to avoid a self-deadlock on a full queue).
 *
 * Groups: a struct pool_group counts items submitted with it that have not
 * finished yet; pool_group_wait() blocks until it is zero, so a caller can
 * fan work out and join it. Thread-safe: every function may be called from
 * any thread except as noted.
 */
#ifndef SERVER_POOL_H
#define SERVER_POOL_H

#include <pthread.h>
#include <stddef.h>

#include "core/err.h"

struct pool; /* opaque */

/* Runs one item on worker `worker` (0 .. pool_size()-1, so per-worker
 * scratch can be indexed by it). */
typedef void pool_work_fn(void *item, unsigned worker);

struct pool_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending; /* items submitted with this group and not finished */
};

/* Start `n_threads` workers (8 MB stacks) and a queue of `queue_cap` items.
 * Returns a new pool; free with pool_free(). */
enum err_code pool_new(unsigned n_threads, size_t queue_cap, struct pool **out, struct err *e);

/* Run every queued item, then join all workers and free the pool. NULL is a
 * no-op. Must not be called from a work function. */
void pool_free(struct pool *p);

unsigned pool_size(const struct pool *p);

/* Queue `fn(item)`. With `wait` set, block while the queue is full;
 * otherwise a full queue fails with ERR_BUSY (and the item stays the
 * caller's). `g` may be NULL. */
enum err_code pool_submit(struct pool *p, struct pool_group *g, pool_work_fn *fn, void *item,
                          int wait, struct err *e);

/* Items queued and not yet started. */
size_t pool_queued(struct pool *p);

void pool_group_init(struct pool_group *g);
void pool_group_wait(struct pool_group *g);
void pool_group_destroy(struct pool_group *g);

#endif /* SERVER_POOL_H */
