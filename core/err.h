/* err.h -- status codes, error categories and the error message carrier
 * shared by every module.
 *
 * Every fallible function returns an enum err_code (ERR_OK == 0, so `if (rc)`
 * means failure) and takes a trailing `struct err *e` (may be NULL). The
 * function that detects a failure fills `e` with the code, an optional error
 * category (ERR_CAT_TRUNCATED, ...: the checkpoint formats spec's names and
 * the service's own) and a message with context; callers propagate the code
 * and leave `e` alone.
 *
 * ERR_CATEGORY_MAP is the one table from an error to its problem: the
 * category's wire name, the HTTP status, the problem title and the
 * Retry-After seconds. Status, title and Retry-After are plain data for api/
 * (core knows nothing of HTTP); an error without a category takes the row
 * its code defaults to (err_code_category).
 *
 * Plain data, no state: thread-safe.
 */
#ifndef CORE_ERR_H
#define CORE_ERR_H

#include <stddef.h>

#define ERR_MAP(X)                              \
    X(OK, "success")                            \
    X(NOMEM, "out of memory")                   \
    X(INVAL, "invalid argument")                \
    X(FORMAT, "malformed input")                \
    X(TOOBIG, "input exceeds configured limit") \
    X(IO, "I/O error")                          \
    X(NOTFOUND, "not found")                    \
    X(DB, "database error")                     \
    X(NUMERIC, "numerical failure")             \
    X(BUSY, "busy, retry later")                \
    X(CONFLICT, "conflict with stored state")   \
    X(CANCELED, "canceled")                     \
    X(INTERNAL, "internal error")

enum err_code {
#define X(name, desc) ERR_##name,
    ERR_MAP(X)
#undef X
};

/* X(ID, name, HTTP status, problem title, Retry-After seconds). The rows
 * each code defaults to come first (err_code_category); then the service's
 * categories; then the checkpoint readers' (docs/checkpoint-formats.md).
 * Two names have two rows: DB_UNAVAILABLE is "db" as well (a database that
 * cannot be opened for a request is 503, a failing statement, DB, is 500),
 * SERVER_BUSY is "busy" (the server's own admission refusals, upload slots
 * and the validation queue, ask for 5 s; BUSY, a busy resource, for 1 s). */
#define ERR_CATEGORY_MAP(X)                                                                   \
    X(INTERNAL, "internal", 500, "Internal Server Error", 0)                                  \
    X(NOMEM, "nomem", 503, "Service Unavailable", 5)                                          \
    X(INVALID_REQUEST, "invalid_request", 400, "Bad Request", 0)                              \
    X(MALFORMED, "malformed", 422, "Unprocessable Content", 0)                                \
    X(LIMIT_EXCEEDED, "limit_exceeded", 413, "Content Too Large", 0)                          \
    X(IO, "io", 500, "Internal Server Error", 0)                                              \
    X(NOT_FOUND, "not_found", 404, "Not Found", 0)                                            \
    X(DB, "db", 500, "Internal Server Error", 0)                                              \
    X(NUMERIC, "numeric", 500, "Internal Server Error", 0)                                    \
    X(BUSY, "busy", 503, "Service Unavailable", 1)                                            \
    X(CONFLICT, "conflict", 409, "Conflict", 0)                                               \
    X(CANCELED, "canceled", 409, "Conflict", 0)                                               \
    X(DB_UNAVAILABLE, "db", 503, "Database unavailable", 5)                                   \
    X(SERVER_BUSY, "busy", 503, "Server busy", 5)                                             \
    X(UNAVAILABLE, "unavailable", 503, "Service Unavailable", 1)                              \
    X(UNAUTHORIZED, "unauthorized", 401, "Unauthorized", 0)                                   \
    X(INSUFFICIENT_SCOPE, "insufficient_scope", 403, "Forbidden", 0)                          \
    X(METHOD_NOT_ALLOWED, "method_not_allowed", 405, "Method Not Allowed", 0)                 \
    X(UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", 415, "Unsupported Media Type", 0)     \
    X(TIMEOUT, "timeout", 408, "Request Timeout", 0)                                          \
    X(INSUFFICIENT_STORAGE, "insufficient_storage", 507, "Insufficient Storage", 0)           \
    X(INVALID_PARAMETER, "invalid_parameter", 400, "Bad Request", 0)                          \
    X(CHECKSUM_MISMATCH, "checksum_mismatch", 400, "Bad Request", 0)                          \
    X(PATH_NOT_ALLOWED, "path_not_allowed", 403, "Forbidden", 0)                              \
    X(UNKNOWN_LAYER, "unknown_layer", 404, "Not Found", 0)                                    \
    X(NO_HISTOGRAM, "no_histogram", 404, "Not Found", 0)                                      \
    X(NO_ALPHAS, "no_alphas", 409, "Conflict", 0)                                             \
    X(JOB_RUNNING, "job_running", 409, "Conflict", 0)                                         \
    X(CHECKPOINT_CONFLICT, "checkpoint_conflict", 409, "Conflict", 0)                         \
    X(DEGENERATE_ALPHAS, "degenerate_alphas", 400, "Bad Request", 0)                          \
    X(INVALID_CHECKPOINT, "invalid_checkpoint", 422, "Unprocessable Content", 0)              \
    X(USAGE, "usage", 400, "Bad Request", 0)                                                  \
    X(SETTINGS, "settings", 400, "Bad Request", 0)                                            \
    X(CHANGED, "changed", 500, "Internal Server Error", 0)                                    \
    X(NOT_REGULAR_FILE, "not_regular_file", 422, "Unprocessable Content", 0)                  \
    X(EMPTY_FILE, "empty_file", 422, "Unprocessable Content", 0)                              \
    X(UNKNOWN_FORMAT, "unknown_format", 422, "Unprocessable Content", 0)                      \
    X(UNSUPPORTED_FORMAT, "unsupported_format", 422, "Unprocessable Content", 0)              \
    X(LEGACY_TORCH_FORMAT, "legacy_torch_format", 422, "Unprocessable Content", 0)            \
    X(TRUNCATED, "truncated", 422, "Unprocessable Content", 0)                                \
    X(TRAILING_DATA, "trailing_data", 422, "Unprocessable Content", 0)                        \
    X(OVERFLOW, "overflow", 422, "Unprocessable Content", 0)                                  \
    X(HEADER_TOO_LARGE, "header_too_large", 422, "Unprocessable Content", 0)                  \
    X(INVALID_HEADER, "invalid_header", 422, "Unprocessable Content", 0)                      \
    X(INVALID_DTYPE, "invalid_dtype", 422, "Unprocessable Content", 0)                        \
    X(INVALID_OFFSETS, "invalid_offsets", 422, "Unprocessable Content", 0)                    \
    X(SHAPE_MISMATCH, "shape_mismatch", 422, "Unprocessable Content", 0)                      \
    X(INVALID_ZIP, "invalid_zip", 422, "Unprocessable Content", 0)                            \
    X(UNSUPPORTED_COMPRESSION, "unsupported_compression", 422, "Unprocessable Content", 0)    \
    X(MISSING_RECORD, "missing_record", 422, "Unprocessable Content", 0)                      \
    X(INVALID_PICKLE, "invalid_pickle", 422, "Unprocessable Content", 0)                      \
    X(DISALLOWED_GLOBAL, "disallowed_global", 422, "Unprocessable Content", 0)                \
    X(INVALID_INDEX, "invalid_index", 422, "Unprocessable Content", 0)                        \
    X(LORA_MISMATCH, "lora_mismatch", 422, "the adapter does not fit the base checkpoint", 0) \
    X(INVALID_TAR, "invalid_tar", 422, "Unprocessable Content", 0)                            \
    X(HOSTILE_ARCHIVE, "hostile_archive", 422, "Unprocessable Content", 0)

/* ERR_CAT_NONE: no category (the code's default row applies). ERR_CAT_COUNT
 * counts the values, NONE included; it is no category. */
/* clang-format off */
enum err_category {
    ERR_CAT_NONE,
#define X(id, name, status, title, retry) ERR_CAT_##id,
    ERR_CATEGORY_MAP(X)
#undef X
    ERR_CAT_COUNT
};
/* clang-format on */

#define ERR_MSG_LEN   256
#define ERR_ERRNO_LEN 128 /* room for err_strerror's text */

struct err {
    enum err_code code;         /* what kind of failure */
    enum err_category category; /* ERR_CAT_TRUNCATED, ..., or ERR_CAT_NONE */
    char msg[ERR_MSG_LEN];      /* context for humans, e.g. "tensor 'w1': shape overflow" */
};

/* Fill `e` (if non-NULL) with `code`, no category, and the formatted message;
 * return `code`: `return err_set(e, ERR_FORMAT, "...")`. */
enum err_code err_set(struct err *e, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same with an error category. */
enum err_code err_setc(struct err *e, enum err_code code, enum err_category category,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Same as err_set, appending ": <strerror_r(errnum)>". */
enum err_code err_set_errno(struct err *e, enum err_code code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The text of `errnum` ("No such file or directory"), thread-safe (strerror_r,
 * never strerror, which may share one buffer between threads): in `buf`
 * (ERR_ERRNO_LEN bytes suffice) or a static string. Never NULL. Cannot fail. */
const char *err_strerror(int errnum, char *buf, size_t len);

/* Prefix the message already in `e` with "<prefix>: " (e.g. a shard's name).
 * Keeps code and category. NULL `e` is a no-op. */
void err_prefix(struct err *e, const char *prefix);

/* Clear `e` to ERR_OK with an empty message. */
void err_clear(struct err *e);

/* Static description of `code`, never NULL. */
const char *err_str(enum err_code code);

/* The name of `e`'s category if set, else err_str(e->code) (what failed
 * jobs and the CLI print). Never NULL. */
const char *err_category(const struct err *e);

/* --- The category table (ERR_CATEGORY_MAP) -------------------------------- */

/* The row `code` defaults to when an error has no category: INVAL ->
 * INVALID_REQUEST, FORMAT -> MALFORMED, TOOBIG -> LIMIT_EXCEEDED, NOMEM ->
 * NOMEM, BUSY -> BUSY, ...; OK and INTERNAL -> INTERNAL. Never NONE. */
enum err_category err_code_category(enum err_code code);

/* The category a problem for `e` carries: e->category, or else
 * err_code_category(e->code). Never NONE. */
enum err_category err_problem_category(const struct err *e);

/* The row's wire name ("truncated"), HTTP status (400..599), problem title
 * and Retry-After seconds (0: none). NONE and values outside the enum read
 * as INTERNAL. Never NULL. */
const char *err_category_name(enum err_category category);
int err_category_status(enum err_category category);
const char *err_category_title(enum err_category category);
int err_category_retry(enum err_category category);

#ifdef __clang_analyzer__
/* Static analysis only (clang-tidy defines __clang_analyzer__): state the
 * contract above, "return `code`", where the analyzer can see it, so that a
 * callee's `return err_set(e, ERR_X, ...)` is known to fail on the caller's
 * side. Without it every such return may be 0 to the analyzer, and the
 * caller's `if (rc) goto out;` guards look like null dereferences. Never part
 * of a build; err.c #undefs these to define the functions. */
#define err_set(e, code, ...)       ((err_set)((e), (code), __VA_ARGS__), (code))
#define err_setc(e, code, ...)      ((err_setc)((e), (code), __VA_ARGS__), (code))
#define err_set_errno(e, code, ...) ((err_set_errno)((e), (code), __VA_ARGS__), (code))
#endif

/* Invariant check, always compiled in (like GGML_ASSERT): prints file:line, abort(). */
#define ERR_ASSERT(x) ((x) ? (void)0 : err_abort(#x, __FILE__, __LINE__))
_Noreturn void err_abort(const char *expr, const char *file, int line);

#endif /* CORE_ERR_H */
