/* pool.c -- see pool.h.
 *
 * Lock discipline: `mu` guards the ring (head, n_queued), `stopping` and the
 * two condition variables; a work function always runs with `mu` released.
 * A group's own mutex is taken only after the item has run, never with `mu`.
 */
#include "server/pool.h"

#include <stdlib.h>

#define POOL_STACK_SIZE (8u << 20)

struct pool_item {
    pool_work_fn *fn;
    void *arg;
    struct pool_group *group;
};

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t has_work; /* signalled when an item is queued or on stop */
    pthread_cond_t has_room; /* signalled when an item leaves the queue */
    struct pool_item *ring;  /* owned, queue_cap slots */
    size_t queue_cap;
    size_t head; /* index of the oldest item */
    size_t n_queued;
    int stopping;
    unsigned n_threads;          /* threads started */
    pthread_t *threads;          /* owned */
    struct pool_worker *workers; /* owned, one per thread */
};

struct pool_worker {
    struct pool *pool;
    unsigned id;
};

static void pool_group_done(struct pool_group *g)
{
    pthread_mutex_lock(&g->mu);
    if (--g->pending == 0)
        pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void *pool_worker_main(void *arg)
{
    struct pool_worker *w = arg;
    struct pool *p = w->pool;
    struct pool_item it;

    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->n_queued == 0 && !p->stopping)
            pthread_cond_wait(&p->has_work, &p->mu);
        if (p->n_queued == 0) { /* stopping and drained */
            pthread_mutex_unlock(&p->mu);
            break;
        }
        it = p->ring[p->head];
        p->head = (p->head + 1) % p->queue_cap;
        p->n_queued--;
        pthread_cond_signal(&p->has_room);
        pthread_mutex_unlock(&p->mu);

        it.fn(it.arg, w->id); /* mu released */
        if (it.group != NULL)
            pool_group_done(it.group);
    }
    return NULL;
}

enum err_code pool_new(unsigned n_threads, size_t queue_cap, struct pool **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct pool *p = NULL;
    pthread_attr_t attr;
    int attr_ok = 0;

    *out = NULL;
    if (n_threads == 0 || queue_cap == 0)
        return err_set(e, ERR_INVAL, "a pool needs at least one thread and one queue slot");
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for the worker pool");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->has_work, NULL);
    pthread_cond_init(&p->has_room, NULL);
    p->queue_cap = queue_cap;
    p->ring = calloc(queue_cap, sizeof(*p->ring));
    p->threads = calloc(n_threads, sizeof(*p->threads));
    p->workers = calloc(n_threads, sizeof(*p->workers));
    if (p->ring == NULL || p->threads == NULL || p->workers == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory for the worker pool");
        goto out;
    }
    if (pthread_attr_init(&attr) != 0) {
        rc = err_set(e, ERR_INTERNAL, "pthread_attr_init failed");
        goto out;
    }
    attr_ok = 1;
    pthread_attr_setstacksize(&attr, POOL_STACK_SIZE);
    for (unsigned i = 0; i < n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].id = i;
        int prc = pthread_create(&p->threads[i], &attr, pool_worker_main, &p->workers[i]);
        if (prc != 0) {
            rc = err_set_errno(e, ERR_INTERNAL, prc, "starting worker thread %u", i);
            goto out;
        }
        p->n_threads = i + 1;
    }
    *out = p;
    p = NULL;
out:
    if (attr_ok)
        pthread_attr_destroy(&attr);
    pool_free(p);
    return rc;
}

void pool_free(struct pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->has_work);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->has_work);
    pthread_cond_destroy(&p->has_room);
    pthread_mutex_destroy(&p->mu);
    free(p->ring);
    free(p->threads);
    free(p->workers);
    free(p);
}

unsigned pool_size(const struct pool *p)
{
    return p->n_threads;
}

enum err_code pool_submit(struct pool *p, struct pool_group *g, pool_work_fn *fn, void *item,
                          int wait, struct err *e)
{
    pthread_mutex_lock(&p->mu);
    while (wait && p->n_queued == p->queue_cap && !p->stopping)
        pthread_cond_wait(&p->has_room, &p->mu);
    if (p->stopping || p->n_queued == p->queue_cap) {
        int stopping = p->stopping;
        pthread_mutex_unlock(&p->mu);
        return stopping ? err_set(e, ERR_BUSY, "the worker pool is shutting down")
                        : err_set(e, ERR_BUSY, "the work queue is full (%zu items)", p->queue_cap);
    }
    if (g != NULL) { /* counted before it can finish */
        pthread_mutex_lock(&g->mu);
        g->pending++;
        pthread_mutex_unlock(&g->mu);
    }
    p->ring[(p->head + p->n_queued) % p->queue_cap] = (struct pool_item){fn, item, g};
    p->n_queued++;
    pthread_cond_signal(&p->has_work);
    pthread_mutex_unlock(&p->mu);
    return ERR_OK;
}

size_t pool_queued(struct pool *p)
{
    size_t n;

    pthread_mutex_lock(&p->mu);
    n = p->n_queued;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void pool_group_init(struct pool_group *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->pending = 0;
}

void pool_group_wait(struct pool_group *g)
{
    pthread_mutex_lock(&g->mu);
    while (g->pending > 0)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

void pool_group_destroy(struct pool_group *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}
