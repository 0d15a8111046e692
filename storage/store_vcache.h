/* store_vcache.h -- internal to storage/: the run versions a connection
 * read, kept while the database's change stamp (store__drv.stamp) stays what
 * it was when they were read, so the 304 path of a dashboard's poll needs no
 * query when nothing changed (store_vcache.c says why that is never stale).
 *
 * Ownership: embedded in struct store (store_int.h). Thread-safety: the
 * connection's (one thread at a time).
 */
#ifndef STORAGE_STORE_VCACHE_H
#define STORAGE_STORE_VCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"
#include "storage/store_db.h"

/* The run versions this connection read, valid while the database's stamp
 * (store__drv.stamp) stays what it was when they were read. */
#define STORE__VCACHE_SLOTS 16
struct store__vcache {
    int stamp_state; /* the driver's (store__drv.stamp) */
    int valid;       /* stamp holds a stamp; entries belong to it */
    unsigned char stamp[STORE__STAMP_LEN];
    size_t n, next; /* entries in use; the slot the next put overwrites when full */
    struct {
        char run[STORE_RUN_MAX]; /* "" is the database-wide change id */
        int64_t version;
    } e[STORE__VCACHE_SLOTS];
};

/* The version of `run` ("" for the database-wide change id) this
 * connection read before, if no commit happened since (store_vcache.c): 1
 * with *version set, else 0. Read the version by SQL after a miss and give
 * it to store__vcache_put, with no other call on the connection between. */
int store__vcache_get(struct store *s, const char *run, int64_t *version);
void store__vcache_put(struct store *s, const char *run, int64_t version);

#endif /* STORAGE_STORE_VCACHE_H */
