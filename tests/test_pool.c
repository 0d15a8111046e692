/* test_pool.c -- the worker pool runs every item exactly once, joins groups,
 * refuses work when full, and drains its queue on shutdown. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "server/pool.h"
#include "tests/check.h"

#define N_ITEMS 1000

struct counter {
    atomic_int runs[N_ITEMS];
    atomic_int max_worker;
};

struct job {
    struct counter *c;
    int index;
};

static void job_run(void *item, unsigned worker)
{
    struct job *j = item;

    atomic_fetch_add(&j->c->runs[j->index], 1);
    if ((int)worker > atomic_load(&j->c->max_worker))
        atomic_store(&j->c->max_worker, (int)worker);
}

static void test_every_item_runs_exactly_once(void)
{
    static struct counter c;
    static struct job jobs[N_ITEMS];
    struct pool_group g;
    struct pool *p = NULL;
    int once = 1;

    CHECK_EQ_INT(pool_new(4, 16, &p, NULL), ERR_OK);
    CHECK_EQ_INT(pool_size(p), 4);
    pool_group_init(&g);
    for (int i = 0; i < N_ITEMS; i++) {
        jobs[i] = (struct job){&c, i};
        CHECK_EQ_INT(pool_submit(p, &g, job_run, &jobs[i], 1, NULL), ERR_OK);
    }
    pool_group_wait(&g);
    for (int i = 0; i < N_ITEMS; i++)
        once = once && atomic_load(&c.runs[i]) == 1;
    CHECK(once);
    CHECK(atomic_load(&c.max_worker) < 4);
    pool_group_destroy(&g);
    pool_free(p);
}

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    atomic_int ran;
};

static void gate_run(void *item, unsigned worker)
{
    struct gate *gt = item;

    (void)worker;
    pthread_mutex_lock(&gt->mu);
    while (!gt->open)
        pthread_cond_wait(&gt->cv, &gt->mu);
    pthread_mutex_unlock(&gt->mu);
    atomic_fetch_add(&gt->ran, 1);
}

static void test_full_queue_is_busy_and_shutdown_drains(void)
{
    struct gate gt = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    struct pool *p = NULL;
    struct err e;
    int rc;

    CHECK_EQ_INT(pool_new(1, 2, &p, NULL), ERR_OK);
    /* One item blocks the only worker; wait until it has left the queue. */
    CHECK_EQ_INT(pool_submit(p, NULL, gate_run, &gt, 0, NULL), ERR_OK);
    while (pool_queued(p) != 0)
        usleep(1000);
    CHECK_EQ_INT(pool_submit(p, NULL, gate_run, &gt, 0, NULL), ERR_OK);
    CHECK_EQ_INT(pool_submit(p, NULL, gate_run, &gt, 0, NULL), ERR_OK);
    rc = pool_submit(p, NULL, gate_run, &gt, 0, &e);
    CHECK_EQ_INT(rc, ERR_BUSY);
    CHECK(strstr(e.msg, "queue is full") != NULL);
    pthread_mutex_lock(&gt.mu);
    gt.open = 1;
    pthread_cond_broadcast(&gt.cv);
    pthread_mutex_unlock(&gt.mu);
    pool_free(p); /* runs the two queued items before joining */
    CHECK_EQ_INT(atomic_load(&gt.ran), 3);
}

static void test_bad_sizes_are_refused(void)
{
    struct pool *p = (struct pool *)1;

    CHECK_EQ_INT(pool_new(0, 4, &p, NULL), ERR_INVAL);
    CHECK(p == NULL);
}

int main(void)
{
    test_every_item_runs_exactly_once();
    test_full_queue_is_busy_and_shutdown_drains();
    test_bad_sizes_are_refused();
    return check_report("test_pool");
}
