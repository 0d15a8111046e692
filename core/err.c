/* err.c -- see err.h. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The analyzer-only macros of err.h would rewrite the definitions below. */
#undef err_set
#undef err_setc
#undef err_set_errno

static const char *const err_descs[] = {
#define X(name, desc) desc,
    ERR_MAP(X)
#undef X
};

/* One row of ERR_CATEGORY_MAP; index 0 is ERR_CAT_NONE, read as INTERNAL. */
struct err_category_row {
    const char *name;
    int status;
    const char *title;
    int retry;
};

static const struct err_category_row err_category_rows[] = {
    {"internal", 500, "Internal Server Error", 0},
#define X(id, name, status, title, retry) {name, status, title, retry},
    ERR_CATEGORY_MAP(X)
#undef X
};
_Static_assert(sizeof(err_category_rows) / sizeof(err_category_rows[0]) == ERR_CAT_COUNT,
               "one row per category");

static enum err_code err_vset(struct err *e, enum err_code code, enum err_category category,
                              const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static enum err_code err_vset(struct err *e, enum err_code code, enum err_category category,
                              const char *fmt, va_list ap)
{
    if (e == NULL)
        return code;
    e->code = code;
    e->category = category;
    (void)vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    return code;
}

enum err_code err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)err_vset(e, code, ERR_CAT_NONE, fmt, ap);
    va_end(ap);
    return code;
}

enum err_code err_setc(struct err *e, enum err_code code, enum err_category category,
                       const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)err_vset(e, code, category, fmt, ap);
    va_end(ap);
    return code;
}

const char *err_strerror(int errnum, char *buf, size_t len)
{
    if (buf == NULL || len == 0)
        return "unknown error";
    /* GNU strerror_r may return a static string instead of filling buf. */
    buf[0] = '\0';
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(errnum, buf, len);
#else
    return strerror_r(errnum, buf, len) == 0 ? buf : "unknown error";
#endif
}

enum err_code err_set_errno(struct err *e, enum err_code code, int errnum, const char *fmt, ...)
{
    va_list ap;
    char buf[ERR_ERRNO_LEN];
    const char *s;
    size_t len;

    va_start(ap, fmt);
    (void)err_vset(e, code, ERR_CAT_NONE, fmt, ap);
    va_end(ap);
    if (e == NULL)
        return code;
    s = err_strerror(errnum, buf, sizeof(buf));
    len = strlen(e->msg);
    if (len < sizeof(e->msg))
        (void)snprintf(e->msg + len, sizeof(e->msg) - len, ": %s", s);
    return code;
}

void err_prefix(struct err *e, const char *prefix)
{
    char tmp[2 * ERR_MSG_LEN + 8];

    if (e == NULL)
        return;
    (void)snprintf(tmp, sizeof(tmp), "%s: %s", prefix, e->msg);
    tmp[sizeof(e->msg) - 1] = '\0'; /* truncate to fit */
    memcpy(e->msg, tmp, sizeof(e->msg));
}

void err_clear(struct err *e)
{
    if (e == NULL)
        return;
    e->code = ERR_OK;
    e->category = ERR_CAT_NONE;
    e->msg[0] = '\0';
}

const char *err_str(enum err_code code)
{
    if ((unsigned)code >= sizeof(err_descs) / sizeof(err_descs[0]))
        return "unknown error code";
    return err_descs[code];
}

const char *err_category(const struct err *e)
{
    if (e->category != ERR_CAT_NONE)
        return err_category_name(e->category);
    return err_str(e->code);
}

enum err_category err_code_category(enum err_code code)
{
    switch (code) {
    case ERR_NOMEM: return ERR_CAT_NOMEM;
    case ERR_INVAL: return ERR_CAT_INVALID_REQUEST;
    case ERR_FORMAT: return ERR_CAT_MALFORMED;
    case ERR_TOOBIG: return ERR_CAT_LIMIT_EXCEEDED;
    case ERR_IO: return ERR_CAT_IO;
    case ERR_NOTFOUND: return ERR_CAT_NOT_FOUND;
    case ERR_DB: return ERR_CAT_DB;
    case ERR_NUMERIC: return ERR_CAT_NUMERIC;
    case ERR_BUSY: return ERR_CAT_BUSY;
    case ERR_CONFLICT: return ERR_CAT_CONFLICT;
    case ERR_CANCELED: return ERR_CAT_CANCELED;
    case ERR_OK:
    case ERR_INTERNAL: break;
    }
    return ERR_CAT_INTERNAL;
}

enum err_category err_problem_category(const struct err *e)
{
    if (e->category > ERR_CAT_NONE && e->category < ERR_CAT_COUNT)
        return e->category;
    return err_code_category(e->code);
}

static const struct err_category_row *err_row(enum err_category category)
{
    if ((unsigned)category >= sizeof(err_category_rows) / sizeof(err_category_rows[0]))
        category = ERR_CAT_NONE;
    return &err_category_rows[category];
}

const char *err_category_name(enum err_category category)
{
    return err_row(category)->name;
}

int err_category_status(enum err_category category)
{
    return err_row(category)->status;
}

const char *err_category_title(enum err_category category)
{
    return err_row(category)->title;
}

int err_category_retry(enum err_category category)
{
    return err_row(category)->retry;
}

_Noreturn void err_abort(const char *expr, const char *file, int line)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}
