/* err.h -- status codes and the error message carrier shared by every module.
 *
 * Every fallible function returns an enum err_code (ERR_OK == 0, so `if (rc)`
 * means failure) and takes a trailing `struct err *e` (may be NULL). The
 * function that detects a failure fills `e` with the code, an optional error
 * category (the checkpoint formats spec's names, such as "truncated") and a
 * message with context; callers propagate the code and leave `e` alone.
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

#define ERR_MSG_LEN   256
#define ERR_ERRNO_LEN 128 /* room for err_strerror's text */

struct err {
    enum err_code code;    /* what kind of failure */
    const char *category;  /* static string ("truncated", ...) or NULL */
    char msg[ERR_MSG_LEN]; /* context for humans, e.g. "tensor 'w1': shape overflow" */
};

/* Fill `e` (if non-NULL) with `code`, no category, and the formatted message;
 * return `code`: `return err_set(e, ERR_FORMAT, "...")`. */
enum err_code err_set(struct err *e, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same with an error category (a string literal; it is not copied). */
enum err_code err_setc(struct err *e, enum err_code code, const char *category, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

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

/* The category of `e` if set, else err_str(e->code). Never NULL. */
const char *err_category(const struct err *e);

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
