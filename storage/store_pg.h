/* store_pg.h -- internals of the PostgreSQL driver shared by
 * store_db_pg.c (connection, statements) and store_db_pg_schema.c (schema,
 * migrations). Not part of the public API. Same thread rules as store.h.
 */
#ifndef STORAGE_STORE_PG_H
#define STORAGE_STORE_PG_H

#include <stdint.h>

#include <libpq-fe.h>

#include "core/err.h"

struct store;

struct store__pg {
    PGconn *c;          /* owned */
    unsigned gen;       /* bumped by each reconnect: statements re-prepare */
    unsigned n_names;   /* prepared statement names f1, f2, ... */
    double next_try;    /* no reconnect attempt before this (unix s) */
    double backoff;     /* current reconnect interval (s); 0: connected */
    int64_t changes;    /* rows changed by the last statement */
    int64_t reconnects; /* successful reconnects */
    char msg[512];      /* last error */
};

/* Create or migrate the schema to STORE_SCHEMA_VERSION under a
 * transaction-level advisory lock (replicas starting at once wait for the
 * first), then read the instance id. */
enum err_code store__pg_migrate(struct store *s, struct err *e);

#endif /* STORAGE_STORE_PG_H */
