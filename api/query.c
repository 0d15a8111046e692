/* query.c -- see query.h. */
#include "api/query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

#define API_BAD ERR_CAT_INVALID_PARAMETER

static int api_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode src[0..n) into dst (NUL-terminated); -1 on a bad escape or NUL. */
static int api_pct_decode(const char *src, size_t n, char *dst)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)src[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < n ? api_hexval((unsigned char)src[i + 1]) : -1;
            int lo = i + 2 < n ? api_hexval((unsigned char)src[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

void api_query_free(struct api_query *q)
{
    free(q->buf);
    q->buf = NULL;
    q->n = 0;
}

const char *api_query_get(const struct api_query *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->p[i].key, key) == 0)
            return q->p[i].value;
    return NULL;
}

/* 1 if the C string `s` is valid UTF-8. */
static int api_utf8_ok(const char *s)
{
    size_t n = strlen(s);

    return utf8_check((const unsigned char *)s, n) == n;
}

/* Add the pair raw[0..n) to q, decoding into q->buf at *off. */
static enum err_code api_query_add(struct api_query *q, const char *raw, size_t n, size_t *off,
                                   struct err *e)
{
    const char *eq = memchr(raw, '=', n);
    size_t klen = eq ? (size_t)(eq - raw) : n;
    char *key = q->buf + *off, *val;

    if (klen == 0)
        return err_setc(e, ERR_INVAL, API_BAD, "query: empty parameter name");
    if (q->n == API_QUERY_MAX_PARAMS)
        return err_setc(e, ERR_INVAL, API_BAD, "query: more than %d parameters",
                        API_QUERY_MAX_PARAMS);
    if (api_pct_decode(raw, klen, key) != 0)
        return err_setc(e, ERR_INVAL, API_BAD, "query: bad percent-encoding in a parameter name");
    if (!api_utf8_ok(key))
        return err_setc(e, ERR_INVAL, API_BAD, "query: a parameter name is not valid UTF-8");
    *off += strlen(key) + 1;
    val = q->buf + *off;
    if (api_pct_decode(eq ? eq + 1 : raw + n, eq ? n - klen - 1 : 0, val) != 0)
        return err_setc(e, ERR_INVAL, API_BAD, "parameter '%.64s': bad percent-encoding", key);
    if (!api_utf8_ok(val))
        return err_setc(e, ERR_INVAL, API_BAD, "parameter '%.64s': not valid UTF-8", key);
    *off += strlen(val) + 1;
    if (api_query_get(q, key) != NULL)
        return err_setc(e, ERR_INVAL, API_BAD, "parameter '%.64s': given more than once", key);
    q->p[q->n].key = key;
    q->p[q->n].value = val;
    q->n++;
    return ERR_OK;
}

enum err_code api_query_parse(const char *raw, struct api_query *q, struct err *e)
{
    enum err_code rc = ERR_OK;
    size_t len, off = 0;
    const char *p;

    memset(q, 0, sizeof(*q));
    if (raw == NULL || raw[0] == '\0')
        return ERR_OK;
    len = strlen(raw);
    if (len > API_QUERY_MAX_LEN)
        return err_setc(e, ERR_INVAL, API_BAD, "query string longer than %d bytes",
                        API_QUERY_MAX_LEN);
    q->buf = malloc(2 * len + 2); /* each pair decodes to at most its length + 2 NULs */
    if (q->buf == NULL)
        return err_set(e, ERR_NOMEM, "out of memory parsing the query");
    for (p = raw; *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > 0) {
            rc = api_query_add(q, p, n, &off, e);
            if (rc)
                goto out;
        }
        p += n + (amp ? 1 : 0);
    }
out:
    if (rc)
        api_query_free(q);
    return rc;
}

enum err_code api_query_only(const struct api_query *q, const char *const *known, struct err *e)
{
    for (size_t i = 0; i < q->n; i++) {
        size_t k = 0;
        while (known[k] != NULL && strcmp(known[k], q->p[i].key) != 0)
            k++;
        if (known[k] == NULL)
            return err_setc(e, ERR_INVAL, API_BAD, "parameter '%.64s': unknown for this route",
                            q->p[i].key);
    }
    return ERR_OK;
}

enum err_code api_parse_int64(const char *what, const char *text, int64_t min, int64_t max,
                              int64_t *out, struct err *e)
{
    const char *p = text;
    int neg = 0;
    uint64_t v = 0;

    if (*p == '-' && min < 0) {
        neg = 1;
        p++;
    }
    if (*p == '\0')
        return err_setc(e, ERR_INVAL, API_BAD, "%s: not an integer: '%.64s'", what, text);
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return err_setc(e, ERR_INVAL, API_BAD, "%s: not an integer: '%.64s'", what, text);
        if (v > (UINT64_MAX - 9) / 10 || v * 10 + (uint64_t)(*p - '0') > (uint64_t)INT64_MAX)
            return err_setc(e, ERR_INVAL, API_BAD, "%s: out of range: '%.64s'", what, text);
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    if (*out < min || *out > max)
        return err_setc(e, ERR_INVAL, API_BAD, "%s: %lld is outside [%lld, %lld]", what,
                        (long long)*out, (long long)min, (long long)max);
    return ERR_OK;
}

enum err_code api_query_int64(const struct api_query *q, const char *key, int64_t min, int64_t max,
                              int64_t def, int64_t *out, struct err *e)
{
    const char *v = api_query_get(q, key);
    char what[80];

    if (v == NULL) {
        *out = def;
        return ERR_OK;
    }
    snprintf(what, sizeof(what), "parameter '%s'", key);
    return api_parse_int64(what, v, min, max, out, e);
}

int api_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= API_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* --- Page tokens ------------------------------------------------------------ */

static const char api_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int api_b64val(char c)
{
    const char *p = c ? strchr(api_b64, c) : NULL;
    return p ? (int)(p - api_b64) : -1;
}

enum err_code api_page_token_encode(const char *list, const char *cursor, char *buf, size_t len,
                                    struct err *e)
{
    char plain[API_CURSOR_MAX + 64];
    size_t n, o = 0;
    int w = snprintf(plain, sizeof(plain), "%s\n%s", list, cursor);

    if (w < 0 || (size_t)w >= sizeof(plain) || strlen(cursor) > API_CURSOR_MAX)
        return err_set(e, ERR_TOOBIG, "page cursor too long");
    n = (size_t)w;
    if ((n + 2) / 3 * 4 + 1 > len)
        return err_set(e, ERR_TOOBIG, "page token buffer too small");
    for (size_t i = 0; i < n; i += 3) {
        size_t k = n - i; /* bytes in this group, 1..3 */
        uint32_t v = (uint32_t)(unsigned char)plain[i] << 16;
        if (k > 3)
            k = 3;
        for (size_t j = 1; j < k; j++)
            v |= (uint32_t)(unsigned char)plain[i + j] << (16 - 8 * j);
        for (size_t j = 0; j < k + 1; j++)
            buf[o++] = api_b64[(v >> (18 - 6 * j)) & 63];
    }
    buf[o] = '\0';
    return ERR_OK;
}

enum err_code api_page_token_decode(const char *list, const char *token, char *cursor, size_t len,
                                    struct err *e)
{
    char plain[API_CURSOR_MAX + 64];
    size_t n = strlen(token), o = 0, ll = strlen(list);

    if (n == 0 || n >= API_PAGE_TOKEN_MAX || n % 4 == 1)
        goto bad;
    for (size_t i = 0; i < n; i += 4) {
        size_t k = n - i; /* characters in this group, 2..4 */
        uint32_t v = 0;
        if (k > 4)
            k = 4;
        for (size_t j = 0; j < k; j++) {
            int d = api_b64val(token[i + j]);
            if (d < 0)
                goto bad;
            v |= (uint32_t)d << (18 - 6 * j);
        }
        for (size_t j = 0; j + 1 < k; j++)
            plain[o++] = (char)((v >> (16 - 8 * j)) & 0xff);
    }
    plain[o] = '\0';
    if (o <= ll || memcmp(plain, list, ll) != 0 || plain[ll] != '\n' ||
        memchr(plain, '\0', o) != NULL || o - ll - 1 >= len)
        goto bad;
    memcpy(cursor, plain + ll + 1, o - ll - 1);
    cursor[o - ll - 1] = '\0';
    return ERR_OK;
bad:
    return err_setc(e, ERR_INVAL, API_BAD, "parameter 'page_token': not a token of this list");
}

enum err_code api_query_steps(const struct api_query *q, int64_t *start, int64_t *end,
                              struct err *e)
{
    enum err_code rc;

    rc = api_query_int64(q, "start_step", 0, API_STEP_MAX, 0, start, e);
    if (rc == ERR_OK)
        rc = api_query_int64(q, "end_step", 0, API_STEP_MAX, INT64_MAX, end, e);
    if (rc == ERR_OK && *start > *end)
        rc = err_setc(e, ERR_INVAL, API_BAD, "parameter 'start_step': greater than end_step");
    return rc;
}

enum err_code api_query_page(const struct api_query *q, const char *list, int64_t *page_size,
                             char *cursor, size_t cursor_len, struct err *e)
{
    const char *tok = api_query_get(q, "page_token");
    enum err_code rc;

    rc = api_query_int64(q, "page_size", 1, API_PAGE_SIZE_MAX, API_PAGE_SIZE_DEFAULT, page_size, e);
    if (rc)
        return rc;
    cursor[0] = '\0';
    if (tok == NULL)
        return ERR_OK;
    return api_page_token_decode(list, tok, cursor, cursor_len, e);
}
