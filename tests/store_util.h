/* store_util.h -- TEST-ONLY: the database of a storage test case, on either
 * backend, shared by the test_store*.c tests: a fresh database per case (a
 * temp SQLite file without its WAL files, or the emptied PostgreSQL test
 * database of tests/pg_util.h), its removal, a connection that stops the
 * test when it cannot open, a checkpoint submitted with made-up content,
 * and one integer read past the store with the backend's own client (the
 * numbers the database really holds).
 *
 * `pg` is NULL when the case runs on SQLite, else the PostgreSQL URL it
 * runs on. Header-only (static inline); no state. Ownership: a store opened
 * here is the caller's (store_close). For the main thread (check.h).
 */
#ifndef TESTS_STORE_UTIL_H
#define TESTS_STORE_UTIL_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "core/formats/thash.h"
#include "storage/store.h"
#include "storage/store_jobs.h"
#include "tests/check.h"
#include "tests/pg_util.h"

/* Remove the SQLite database file `path` and its -wal and -shm files. */
static inline void stu_unlink(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    char p[600];

    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
}

/* A fresh, empty database for a case, its path or URL to buf: SQLite, the
 * temp file of test `test` (and `tag`, which one, when not NULL), removed
 * first; PostgreSQL, the URL pg with its database emptied. */
static inline void stu_fresh(const char *pg, const char *test, const char *tag, char *buf,
                             size_t len)
{
    if (pg != NULL) {
        ERR_ASSERT(pgu_reset(pg) == 0);
        snprintf(buf, len, "%s", pg);
        return;
    }
    if (tag != NULL)
        snprintf(buf, len, "/tmp/%s_%ld_%s.db", test, (long)getpid(), tag);
    else
        snprintf(buf, len, "/tmp/%s_%ld.db", test, (long)getpid());
    stu_unlink(buf);
}

/* Remove a case's database: SQLite, its files; PostgreSQL, nothing (the
 * next case empties it). */
static inline void stu_remove(const char *pg, const char *path)
{
    if (pg == NULL)
        stu_unlink(path);
}

/* A connection to `path`; with `owner`, its claims are owner's with lease
 * `lease_s` (store_set_lease). The test stops when it cannot open. */
static inline struct store *stu_open(const char *path, const char *owner, double lease_s)
{
    struct store *s = NULL;
    struct err e = {0};

    if (store_open(path, &s, &e) != ERR_OK) {
        fprintf(stderr, "store_open %s: %s\n", path, e.msg);
        ERR_ASSERT(!"store_open");
    }
    if (owner != NULL)
        ERR_ASSERT(store_set_lease(s, owner, lease_s, &e) == ERR_OK);
    return s;
}

/* Submit checkpoint (run, step) of 1000 bytes uploaded as safetensors,
 * whose content is the text `content` (NULL: "RUN@STEP"), for preset
 * farms-llm with `params`. As store_job_submit. */
static inline enum err_code stu_submit(struct store *s, const char *run, int64_t step,
                                       const char *content, const char *params,
                                       struct store_job *job, int *existed, struct err *e)
{
    char text[64], sha[THASH_HEX_LEN];
    struct store_submit sub = {0};

    if (content == NULL) {
        snprintf(text, sizeof(text), "%s@%" PRId64, run, step);
        content = text;
    }
    ERR_ASSERT(thash_bytes(content, strlen(content), sha, NULL) == ERR_OK);
    sub.run = run;
    sub.step = step;
    sub.content_sha256 = sha;
    sub.source = STORE_SOURCE_UPLOAD;
    sub.format = "safetensors";
    sub.size = 1000;
    sub.preset = "farms-llm";
    sub.params_json = params;
    return store_job_submit(s, &sub, job, existed, e);
}

/* One integer from the first row of `sql` on the database at `path`, read
 * with the backend's own client (libpq or sqlite3), not the store; -1 if
 * none. */
static inline int64_t stu_raw_int(const char *pg, const char *path, const char *sql)
{
    int64_t v = -1;

    if (pg != NULL) {
        PGconn *c = PQconnectdb(path);
        PGresult *r = PQexec(c, sql);

        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        PQfinish(c);
    } else {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;

        if (sqlite3_open(path, &db) == SQLITE_OK &&
            sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    return v;
}

#endif /* TESTS_STORE_UTIL_H */
