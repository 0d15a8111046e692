/* store_db_sqlite_int.h -- internals of the SQLite driver shared by
 * store_db_sqlite.c (connection, statements, the migration) and
 * store_db_sqlite_schema.c (the schema). Not part of the public API.
 * Constant tables: safe from any thread.
 */
#ifndef STORAGE_STORE_DB_SQLITE_INT_H
#define STORAGE_STORE_DB_SQLITE_INT_H

#include <stddef.h>

#include "storage/store_int.h"

/* The schema: version n's statements with since = n, in order. A migration
 * from version v runs those with since > v. */
extern const struct store__migration store__lite_schema[];
extern const size_t store__lite_schema_n;

/* The columns of the result fields added after version 1 (since > 0), for
 * store__migrate_fields. */
extern const struct store__migration store__lite_field_adds[];
extern const size_t store__lite_field_adds_n;

#endif /* STORAGE_STORE_DB_SQLITE_INT_H */
