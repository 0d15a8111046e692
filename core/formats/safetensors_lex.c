/* safetensors_lex.c -- the tokens of the strict JSON reader for safetensors
 * headers, which safetensors_json.c reads the header's schema with:
 * whitespace, strings (escapes and surrogate pairs decoded as UTF-8 into the
 * file's arena), number tokens, non-negative integers read exactly from their
 * text, object keys, and any value checked and skipped. Errors are
 * invalid_header. Writes only into the cursor and the st_file it is given
 * (struct st_ps, safetensors_int.h); no globals: thread-safe as
 * safetensors.h.
 */
#include "core/formats/safetensors_int.h"

#include <string.h>

#define ST_JSON_DEPTH 64 /* nesting accepted inside unknown fields */

void st__ws(struct st_ps *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

enum err_code st__syntax(struct st_ps *ps, const char *what)
{
    return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                    "header is not valid JSON: %s at byte %llu", what,
                    (unsigned long long)(ps->p - ps->start));
}

/* 1 if the next byte is `ch`, after whitespace; consumes it. */
int st__eat(struct st_ps *ps, unsigned char ch)
{
    st__ws(ps);
    if (ps->p < ps->end && *ps->p == ch) {
        ps->p++;
        return 1;
    }
    return 0;
}

static int st_hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        v = v * 16 + d;
    }
    *out = v;
    return 1;
}

static size_t st_put_utf8(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The \uXXXX escape at p (after the backslash and 'u'), with a following
 * low surrogate if it is a high one; advances p. 0 on a malformed escape. */
static int st_unicode_escape(struct st_ps *ps, unsigned *cp)
{
    unsigned lo;

    if (ps->end - ps->p < 4 || !st_hex4(ps->p, cp))
        return 0;
    ps->p += 4;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return 0;
    if (*cp < 0xD800 || *cp > 0xDBFF)
        return 1;
    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || !st_hex4(ps->p + 2, &lo) ||
        lo < 0xDC00 || lo > 0xDFFF)
        return 0;
    ps->p += 6;
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    return 1;
}

/* Decode the string at the cursor (which is at its opening quote) into the
 * arena; *out is NUL-terminated, *out_len excludes the terminator. */
enum err_code st__string(struct st_ps *ps, const char **out, size_t *out_len)
{
    static const char plain[] = "\"\\/\b\f\n\r\t", esc[] = "\"\\/bfnrt";
    char *dst = ps->f->arena + ps->f->arena_used;
    size_t k = 0;
    unsigned cp;

    ps->p++; /* opening quote */
    for (;;) {
        if (ps->p >= ps->end)
            return st__syntax(ps, "unterminated string");
        unsigned char c = *ps->p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return st__syntax(ps, "control character in a string");
        if (c != '\\') {
            dst[k++] = (char)c;
            continue;
        }
        if (ps->p >= ps->end)
            return st__syntax(ps, "unterminated string");
        c = *ps->p++;
        const char *hit = c != '\0' ? strchr(esc, c) : NULL;
        if (hit != NULL) {
            dst[k++] = plain[hit - esc];
        } else if (c == 'u' && st_unicode_escape(ps, &cp)) {
            k += st_put_utf8(dst + k, cp);
        } else {
            return st__syntax(ps, "invalid escape in a string");
        }
    }
    dst[k] = '\0';
    ERR_ASSERT(ps->f->arena_used + k + 1 <= ps->f->arena_cap);
    ps->f->arena_used += k + 1;
    *out = dst;
    *out_len = k;
    return ERR_OK;
}

/* Scan a JSON number token; *plain is 1 if it is digits only (no sign,
 * fraction or exponent). */
static enum err_code st_number(struct st_ps *ps, int *plain)
{
    *plain = 1;
    if (ps->p < ps->end && *ps->p == '-') {
        *plain = 0;
        ps->p++;
    }
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
        return st__syntax(ps, "expected a value");
    if (*ps->p == '0') {
        ps->p++;
    } else {
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    if (ps->p < ps->end && *ps->p == '.') {
        *plain = 0;
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return st__syntax(ps, "digit expected after '.'");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        *plain = 0;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return st__syntax(ps, "digit expected in an exponent");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    return ERR_OK;
}

/* A non-negative integer that fits in u64, written as plain digits, for
 * `field` of tensor `name`. Read exactly from its text: no double rounding. */
enum err_code st__uint(struct st_ps *ps, const char *name, const char *field, uint64_t *out)
{
    const unsigned char *tok;
    enum err_code rc;
    uint64_t v = 0;
    int plain, big = 0;

    st__ws(ps);
    tok = ps->p;
    rc = st_number(ps, &plain);
    if (rc)
        return rc;
    for (const unsigned char *q = tok; plain && q < ps->p; q++) {
        unsigned d = (unsigned)(*q - '0');
        if (v > (UINT64_MAX - d) / 10)
            big = 1;
        v = v * 10 + d;
    }
    if (!plain || big)
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor '%.200s': %s value %.*s is not an integer in [0, 2^64)", name,
                        field, (int)(ps->p - tok > 40 ? 40 : ps->p - tok), (const char *)tok);
    *out = v;
    return ERR_OK;
}

/* An object's `"key":`: the key in *key (*key_len bytes, unescaped). */
enum err_code st__key(struct st_ps *ps, const char **key, size_t *key_len)
{
    enum err_code rc;

    st__ws(ps);
    if (ps->p >= ps->end || *ps->p != '"')
        return st__syntax(ps, "expected a string key");
    rc = st__string(ps, key, key_len);
    if (rc)
        return rc;
    if (!st__eat(ps, ':'))
        return st__syntax(ps, "expected ':'");
    return ERR_OK;
}

/* Check and skip any JSON value (the value of an unknown entry field). */
enum err_code st__skip(struct st_ps *ps, int depth)
{
    static const char *const words[] = {"true", "false", "null"};
    const char *s;
    size_t n;
    int plain;
    enum err_code rc;

    st__ws(ps);
    if (ps->p >= ps->end)
        return st__syntax(ps, "expected a value");
    if (*ps->p == '"')
        return st__string(ps, &s, &n);
    if (*ps->p == '{' || *ps->p == '[') {
        unsigned char close = *ps->p == '{' ? '}' : ']';
        int obj = *ps->p == '{';
        if (depth >= ST_JSON_DEPTH)
            return st__syntax(ps, "nesting too deep");
        ps->p++;
        if (st__eat(ps, close))
            return ERR_OK;
        do {
            rc = obj ? st__key(ps, &s, &n) : ERR_OK;
            if (rc == ERR_OK)
                rc = st__skip(ps, depth + 1);
            if (rc)
                return rc;
        } while (st__eat(ps, ','));
        return st__eat(ps, close) ? ERR_OK : st__syntax(ps, "expected ',' or a closing bracket");
    }
    for (int i = 0; i < 3; i++) {
        n = strlen(words[i]);
        if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, words[i], n) == 0) {
            ps->p += n;
            return ERR_OK;
        }
    }
    return st_number(ps, &plain);
}
