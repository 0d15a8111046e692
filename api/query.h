/* query.h -- query strings, path segments and page tokens for the API.
 *
 * A query string (RFC 3986 `key=value&key=value`, `+` as space, %XX escapes)
 * is decoded once into a struct api_query; the typed getters validate a
 * parameter and, on failure, fill `struct err` with ERR_INVAL, the category
 * "invalid_parameter" and a message that starts with the parameter's name
 * ("parameter 'step': ..."), which the handlers turn into a 400.
 *
 * Page tokens are opaque to clients: base64url of "<list>\n<cursor>", so a
 * token from one list is refused by another.
 *
 * Ownership: a parsed query owns its strings (api_query_free); getters return
 * strings borrowed from it. Thread-safety: no state, thread-safe.
 */
#ifndef API_QUERY_H
#define API_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define API_QUERY_MAX_PARAMS 32   /* more parameters: ERR_INVAL */
#define API_QUERY_MAX_LEN    4096 /* longer query strings: ERR_INVAL */
#define API_PAGE_TOKEN_MAX   420  /* room for a token, NUL included */
#define API_CURSOR_MAX       272  /* longest cursor a token carries (STORE_TOKEN_MAX) */
#define API_NAME_MAX         128  /* run names and preset names */
/* The largest step: 2^53 - 1, the largest integer every JSON reader (a
 * double) carries exactly. Steps above it are refused (400) wherever they
 * enter: query parameters, path segments, JSON bodies. */
#define API_STEP_MAX 9007199254740991LL

struct api_param {
    char *key;   /* borrowed from the query's buffer */
    char *value; /* borrowed from the query's buffer ("" for `key` or `key=`) */
};

struct api_query {
    size_t n; /* parameters in order of appearance */
    struct api_param p[API_QUERY_MAX_PARAMS];
    char *buf; /* owned: decoded text */
};

/* --- Parsing ------------------------------------------------------------ */

/* Decode `raw` (may be NULL or "": no parameters) into *q. ERR_INVAL for a bad
 * %-escape, an encoded NUL, a key or value that is not UTF-8 (core/utf8.h),
 * an empty key, a repeated key, more than
 * API_QUERY_MAX_PARAMS parameters or a string longer than API_QUERY_MAX_LEN;
 * ERR_NOMEM. On failure *q is empty (api_query_free is still safe). */
enum err_code api_query_parse(const char *raw, struct api_query *q, struct err *e);

/* Release the query's text. Safe on a zeroed or failed query. Cannot fail. */
void api_query_free(struct api_query *q);

/* The value of `key`, or NULL when absent. Borrowed from `q`. */
const char *api_query_get(const struct api_query *q, const char *key);

/* ERR_INVAL naming the first parameter of `q` that is not in the
 * NULL-terminated list `known`. */
enum err_code api_query_only(const struct api_query *q, const char *const *known, struct err *e);

/* --- Typed values ---------------------------------------------------------- */

/* Parse `text` as a decimal integer in [min, max] (no sign for min >= 0, no
 * spaces, no leading '+'). `what` names the value in the message. */
enum err_code api_parse_int64(const char *what, const char *text, int64_t min, int64_t max,
                              int64_t *out, struct err *e);

/* Integer parameter `key`: `def` when absent, else as api_parse_int64. */
enum err_code api_query_int64(const struct api_query *q, const char *key, int64_t min, int64_t max,
                              int64_t def, int64_t *out, struct err *e);

/* The step window of a history read: start_step (default 0) and end_step
 * (default INT64_MAX), each in [0, API_STEP_MAX]; ERR_INVAL when start_step
 * is greater than end_step. */
enum err_code api_query_steps(const struct api_query *q, int64_t *start, int64_t *end,
                              struct err *e);

/* 1 if `s` is a valid run name: 1..API_NAME_MAX-1 bytes of [A-Za-z0-9._-],
 * not "." or "..". */
int api_name_ok(const char *s);

/* --- Page tokens ---------------------------------------------------------- */

/* Write the token for position `cursor` (<= API_CURSOR_MAX bytes) of the
 * list named `list` into `buf` (API_PAGE_TOKEN_MAX bytes). ERR_TOOBIG if the
 * cursor is too long. */
enum err_code api_page_token_encode(const char *list, const char *cursor, char *buf, size_t len,
                                    struct err *e);

/* Decode `token` of list `list` into `cursor` (API_CURSOR_MAX + 1 bytes).
 * ERR_INVAL ("parameter 'page_token': ...") if it is not one of ours. */
enum err_code api_page_token_decode(const char *list, const char *token, char *cursor, size_t len,
                                    struct err *e);

/* page_size (default 100, 1..1000) and page_token (decoded cursor, "" when
 * absent) of `q` for list `list`. */
#define API_PAGE_SIZE_DEFAULT 100
#define API_PAGE_SIZE_MAX     1000
enum err_code api_query_page(const struct api_query *q, const char *list, int64_t *page_size,
                             char *cursor, size_t cursor_len, struct err *e);

#endif /* API_QUERY_H */
