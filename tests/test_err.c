/* test_err.c -- the one error -> problem table (ERR_CATEGORY_MAP in
 * core/err.h): every category has a wire name, a status and a title; an
 * error maps to the status, category and Retry-After the service has always
 * answered with; and api_problem_err / api_fail turn it into that
 * problem+json response.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "core/err.h"
#include "tests/check.h"

/* The identifiers of the rows, as written in the map. */
static const char *const row_ids[] = {
#define X(id, name, status, title, retry) #id,
    ERR_CATEGORY_MAP(X)
#undef X
};

/* An error of `code` and `category`, as a reader would set it. */
static struct err err_of(enum err_code code, enum err_category category)
{
    struct err e = {0};

    (void)err_setc(&e, code, category, "detail of the error");
    return e;
}

static int status_of(enum err_code code, enum err_category category)
{
    struct err e = err_of(code, category);

    return err_category_status(err_problem_category(&e));
}

static void test_every_category_has_a_name_a_status_and_a_title(void)
{
    CHECK_EQ_INT(sizeof(row_ids) / sizeof(row_ids[0]), ERR_CAT_COUNT - 1);
    for (int c = ERR_CAT_NONE + 1; c < ERR_CAT_COUNT; c++) {
        const char *name = err_category_name((enum err_category)c);
        int status = err_category_status((enum err_category)c);
        int retry = err_category_retry((enum err_category)c);

        CHECK(name[0] != '\0' && strspn(name, "abcdefghijklmnopqrstuvwxyz_") == strlen(name));
        CHECK(status >= 400 && status <= 599);
        CHECK(err_category_title((enum err_category)c)[0] != '\0');
        /* Retry-After only where a retry can help */
        CHECK(retry >= 0 && (retry == 0 || status == 503));
        if (!(status >= 400 && status <= 599))
            fprintf(stderr, "  ERR_CAT_%s: status %d\n", row_ids[c - 1], status);
    }
}

/* Each name is one row, except the two names whose cause decides the
 * status: "db" (a failing statement 500, no database for the request 503)
 * and "busy" (a busy resource asks for 1 s, the server's admission 5 s). */
static void test_every_name_is_one_row_but_db_and_busy(void)
{
    for (int a = ERR_CAT_NONE + 1; a < ERR_CAT_COUNT; a++)
        for (int b = a + 1; b < ERR_CAT_COUNT; b++) {
            const char *na = err_category_name((enum err_category)a);
            int same = strcmp(na, err_category_name((enum err_category)b)) == 0;
            int alias = (a == ERR_CAT_DB && b == ERR_CAT_DB_UNAVAILABLE) ||
                        (a == ERR_CAT_BUSY && b == ERR_CAT_SERVER_BUSY);

            CHECK_EQ_INT(same, alias);
            if (same != alias)
                fprintf(stderr, "  ERR_CAT_%s and ERR_CAT_%s: '%s'\n", row_ids[a - 1],
                        row_ids[b - 1], na);
        }
    CHECK_EQ_INT(err_category_status(ERR_CAT_DB), 500);
    CHECK_EQ_INT(err_category_status(ERR_CAT_DB_UNAVAILABLE), 503);
    CHECK_EQ_INT(err_category_retry(ERR_CAT_DB_UNAVAILABLE), 5);
    CHECK_EQ_INT(err_category_retry(ERR_CAT_SERVER_BUSY), 5);
}

static void test_errors_map_to_the_statuses_clients_know(void)
{
    CHECK_EQ_INT(status_of(ERR_FORMAT, ERR_CAT_TRUNCATED), 422);
    CHECK_EQ_INT(status_of(ERR_FORMAT, ERR_CAT_NONE), 422);
    CHECK_EQ_INT(status_of(ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED), 413);
    CHECK_EQ_INT(status_of(ERR_TOOBIG, ERR_CAT_NONE), 413);
    /* a safetensors header over the format's own maximum is malformed content */
    CHECK_EQ_INT(status_of(ERR_TOOBIG, ERR_CAT_HEADER_TOO_LARGE), 422);
    CHECK_EQ_INT(status_of(ERR_INVAL, ERR_CAT_NONE), 400);
    CHECK_EQ_INT(status_of(ERR_INVAL, ERR_CAT_INVALID_PARAMETER), 400);
    CHECK_EQ_INT(status_of(ERR_INVAL, ERR_CAT_PATH_NOT_ALLOWED), 403);
    CHECK_EQ_INT(status_of(ERR_NOTFOUND, ERR_CAT_NONE), 404);
    CHECK_EQ_INT(status_of(ERR_CONFLICT, ERR_CAT_NONE), 409);
    CHECK_EQ_INT(status_of(ERR_CANCELED, ERR_CAT_NONE), 409);
    CHECK_EQ_INT(status_of(ERR_IO, ERR_CAT_NONE), 500);
    CHECK_EQ_INT(status_of(ERR_IO, ERR_CAT_CHANGED), 500);
    CHECK_EQ_INT(status_of(ERR_IO, ERR_CAT_INSUFFICIENT_STORAGE), 507);
    CHECK_EQ_INT(status_of(ERR_DB, ERR_CAT_NONE), 500);
    CHECK_EQ_INT(status_of(ERR_INTERNAL, ERR_CAT_NONE), 500);
    CHECK_EQ_INT(status_of(ERR_OK, ERR_CAT_NONE), 500);
    CHECK_EQ_INT(status_of(ERR_BUSY, ERR_CAT_NONE), 503);
    CHECK_EQ_INT(err_category_retry(err_code_category(ERR_BUSY)), 1);
    CHECK_EQ_INT(status_of(ERR_NOMEM, ERR_CAT_NONE), 503);
    CHECK_EQ_INT(err_category_retry(err_code_category(ERR_NOMEM)), 5);
}

static void test_err_category_names_the_category_or_the_code(void)
{
    struct err e = err_of(ERR_FORMAT, ERR_CAT_TRUNCATED);

    CHECK_STR_EQ(err_category(&e), "truncated");
    /* no category: the code's description, as failed jobs have stored it */
    e = err_of(ERR_IO, ERR_CAT_NONE);
    CHECK_STR_EQ(err_category(&e), "I/O error");
    CHECK_STR_EQ(err_category_name(err_problem_category(&e)), "io");
    err_clear(&e);
    CHECK_EQ_INT(e.category, ERR_CAT_NONE);
    /* outside the enum reads as internal, never NULL */
    CHECK_STR_EQ(err_category_name((enum err_category)9999), "internal");
    CHECK_EQ_INT(err_category_status((enum err_category) - 1), 500);
}

/* The problem+json response of `e`: status, Retry-After and the body's
 * members come from the table. */
static void check_problem(const struct api_response *r, int status, int retry, const char *category,
                          const char *title, const char *detail)
{
    cJSON *j = r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
    char type[96];

    snprintf(type, sizeof(type), "urn:farmsd:problem:%s", category);
    CHECK_EQ_INT(r->status, status);
    CHECK_EQ_INT(r->retry_after, retry);
    CHECK_STR_EQ(r->content_type, "application/problem+json");
    CHECK(j != NULL);
    if (j == NULL)
        return;
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(j, "category")), category);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(j, "type")), type);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(j, "title")), title);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(j, "detail")), detail);
    CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "status")), status);
    cJSON_Delete(j);
}

static void test_api_answers_an_error_with_its_problem(void)
{
    struct api_response r = {0};
    struct err e = err_of(ERR_FORMAT, ERR_CAT_TRUNCATED);

    api_problem_err(&r, &e);
    check_problem(&r, 422, 0, "truncated", "Unprocessable Content", "detail of the error");
    api_response_free(&r);
    e = err_of(ERR_NOMEM, ERR_CAT_NONE);
    api_problem_err(&r, &e);
    check_problem(&r, 503, 5, "nomem", "Service Unavailable", "detail of the error");
    api_response_free(&r);
    e = err_of(ERR_BUSY, ERR_CAT_NONE);
    api_problem_err(&r, &e);
    check_problem(&r, 503, 1, "busy", "Service Unavailable", "detail of the error");
    api_response_free(&r);
    /* no message: the code's description is the detail */
    err_clear(&e);
    e.code = ERR_NOTFOUND;
    api_problem_err(&r, &e);
    check_problem(&r, 404, 0, "not_found", "Not Found", "not found");
    api_response_free(&r);
    api_fail(&r, ERR_DB, ERR_CAT_DB_UNAVAILABLE, "no connection: %d", 7);
    check_problem(&r, 503, 5, "db", "Database unavailable", "no connection: 7");
    api_response_free(&r);
    api_fail(&r, ERR_INVAL, ERR_CAT_NONE, "%s", "no method or path");
    check_problem(&r, 400, 0, "invalid_request", "Bad Request", "no method or path");
    /* a later problem on the same response replaces the Retry-After */
    api_fail(&r, ERR_BUSY, ERR_CAT_SERVER_BUSY, "queue full");
    check_problem(&r, 503, 5, "busy", "Server busy", "queue full");
    api_fail(&r, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "too big");
    check_problem(&r, 413, 0, "limit_exceeded", "Content Too Large", "too big");
    api_response_free(&r);
}

int main(void)
{
    test_every_category_has_a_name_a_status_and_a_title();
    test_every_name_is_one_row_but_db_and_busy();
    test_errors_map_to_the_statuses_clients_know();
    test_err_category_names_the_category_or_the_code();
    test_api_answers_an_error_with_its_problem();
    return check_report("test_err");
}
