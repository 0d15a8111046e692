/* store_vcache.c -- the connection's cache of run versions (store_int.h),
 * so the 304 path of a dashboard's poll reads no SQL when nothing changed.
 *
 * Validity: the driver's stamp (store__drv.stamp) changes with every commit
 * by any connection of any process, and is read without a query (SQLite in
 * WAL mode: the WAL-index header every reader starts from). A lookup reads
 * the stamp first: a different stamp empties the cache and adopts the new
 * one. A version read by SQL after that is stored under the stamp read
 * BEFORE it, so an entry is only ever used while no commit has happened
 * since its stamp was read, and its SQL read came after that stamp: the
 * entry is what a query would answer now. A commit between the stamp and
 * the query makes the entry newer than its stamp, never older; the next
 * lookup sees a new stamp and drops it. No stamp (PostgreSQL; SQLite not in
 * WAL mode; inside a transaction): every lookup misses, nothing is kept, and
 * every version is one indexed read, as before.
 */
#include <string.h>

#include "storage/store_vcache.h"

#include "storage/store_int.h"

int store__vcache_get(struct store *s, const char *run, int64_t *version)
{
    struct store__vcache *c = &s->vcache;
    unsigned char now[STORE__STAMP_LEN];

    if (s->drv->stamp == NULL || !s->drv->stamp(s, &c->stamp_state, now)) {
        c->valid = 0;
        c->n = c->next = 0;
        return 0;
    }
    if (!c->valid || memcmp(now, c->stamp, sizeof(now)) != 0) {
        memcpy(c->stamp, now, sizeof(now));
        c->valid = 1;
        c->n = c->next = 0;
        return 0;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->e[i].run, run) == 0) {
            *version = c->e[i].version;
            return 1;
        }
    }
    return 0;
}

void store__vcache_put(struct store *s, const char *run, int64_t version)
{
    struct store__vcache *c = &s->vcache;
    size_t i;

    if (!c->valid || strlen(run) >= sizeof(c->e[0].run))
        return;
    if (c->n < STORE__VCACHE_SLOTS) {
        i = c->n++;
    } else {
        i = c->next;
        c->next = (c->next + 1) % STORE__VCACHE_SLOTS;
    }
    memcpy(c->e[i].run, run, strlen(run) + 1);
    c->e[i].version = version;
}
