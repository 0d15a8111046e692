/* safetensors_json.c -- the strict JSON reader for safetensors headers.
 *
 * A general JSON library hides what validation must see: cJSON keeps duplicate keys,
 * stores numbers as doubles (16.0 == 16, 2^53+1 == 2^53) and cuts strings at
 * an escaped NUL. This reader knows the header's schema, reads integers from
 * their text, and decodes every string into the file's arena (decoded
 * strings are never longer than their JSON form, so N + 1 bytes hold them
 * all). Values of unknown entry fields are checked as JSON and skipped.
 */
#include "core/formats/safetensors_int.h"

#include <stdlib.h>
#include <string.h>

#define ST_JSON_DEPTH 64 /* nesting accepted inside unknown fields */

struct st_ps {
    const unsigned char *p, *start, *end; /* cursor within the header */
    struct st_file *f;
    const struct ckpt_limits *l;
    struct err *e;
};

static void st_ws(struct st_ps *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static enum err_code st_syntax(struct st_ps *ps, const char *what)
{
    return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                    "header is not valid JSON: %s at byte %llu", what,
                    (unsigned long long)(ps->p - ps->start));
}

/* 1 if the next byte is `ch`, after whitespace; consumes it. */
static int st_eat(struct st_ps *ps, unsigned char ch)
{
    st_ws(ps);
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
static enum err_code st_string(struct st_ps *ps, const char **out, size_t *out_len)
{
    static const char plain[] = "\"\\/\b\f\n\r\t", esc[] = "\"\\/bfnrt";
    char *dst = ps->f->arena + ps->f->arena_used;
    size_t k = 0;
    unsigned cp;

    ps->p++; /* opening quote */
    for (;;) {
        if (ps->p >= ps->end)
            return st_syntax(ps, "unterminated string");
        unsigned char c = *ps->p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return st_syntax(ps, "control character in a string");
        if (c != '\\') {
            dst[k++] = (char)c;
            continue;
        }
        if (ps->p >= ps->end)
            return st_syntax(ps, "unterminated string");
        c = *ps->p++;
        const char *hit = c != '\0' ? strchr(esc, c) : NULL;
        if (hit != NULL) {
            dst[k++] = plain[hit - esc];
        } else if (c == 'u' && st_unicode_escape(ps, &cp)) {
            k += st_put_utf8(dst + k, cp);
        } else {
            return st_syntax(ps, "invalid escape in a string");
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
        return st_syntax(ps, "expected a value");
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
            return st_syntax(ps, "digit expected after '.'");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        *plain = 0;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return st_syntax(ps, "digit expected in an exponent");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    return ERR_OK;
}

/* A non-negative integer that fits in u64, written as plain digits, for
 * `field` of tensor `name`. Read exactly from its text: no double rounding. */
static enum err_code st_uint(struct st_ps *ps, const char *name, const char *field, uint64_t *out)
{
    const unsigned char *tok;
    enum err_code rc;
    uint64_t v = 0;
    int plain, big = 0;

    st_ws(ps);
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
static enum err_code st_key(struct st_ps *ps, const char **key, size_t *key_len)
{
    enum err_code rc;

    st_ws(ps);
    if (ps->p >= ps->end || *ps->p != '"')
        return st_syntax(ps, "expected a string key");
    rc = st_string(ps, key, key_len);
    if (rc)
        return rc;
    if (!st_eat(ps, ':'))
        return st_syntax(ps, "expected ':'");
    return ERR_OK;
}

/* Check and skip any JSON value (the value of an unknown entry field). */
static enum err_code st_skip(struct st_ps *ps, int depth)
{
    static const char *const words[] = {"true", "false", "null"};
    const char *s;
    size_t n;
    int plain;
    enum err_code rc;

    st_ws(ps);
    if (ps->p >= ps->end)
        return st_syntax(ps, "expected a value");
    if (*ps->p == '"')
        return st_string(ps, &s, &n);
    if (*ps->p == '{' || *ps->p == '[') {
        unsigned char close = *ps->p == '{' ? '}' : ']';
        int obj = *ps->p == '{';
        if (depth >= ST_JSON_DEPTH)
            return st_syntax(ps, "nesting too deep");
        ps->p++;
        if (st_eat(ps, close))
            return ERR_OK;
        do {
            rc = obj ? st_key(ps, &s, &n) : ERR_OK;
            if (rc == ERR_OK)
                rc = st_skip(ps, depth + 1);
            if (rc)
                return rc;
        } while (st_eat(ps, ','));
        return st_eat(ps, close) ? ERR_OK : st_syntax(ps, "expected ',' or a closing bracket");
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

/* "shape": [d0, d1, ...] */
static enum err_code st_shape(struct st_ps *ps, struct st_entry *en)
{
    enum err_code rc;
    uint64_t v;

    if (!st_eat(ps, '['))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor '%.200s': shape is not an array", en->t.name);
    en->t.ndim = 0;
    if (st_eat(ps, ']'))
        return ERR_OK;
    do {
        if (en->t.ndim == CKPT_MAX_RANK)
            return err_setc(ps->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                            "tensor '%.200s': rank exceeds %d", en->t.name, CKPT_MAX_RANK);
        rc = st_uint(ps, en->t.name, "shape", &v);
        if (rc)
            return rc;
        if (v > (uint64_t)INT64_MAX && en->big_dim == 0)
            en->big_dim = en->t.ndim + 1; /* step 7 reports it as overflow */
        en->t.shape[en->t.ndim++] = (int64_t)(v & (uint64_t)INT64_MAX);
    } while (st_eat(ps, ','));
    if (!st_eat(ps, ']'))
        return st_syntax(ps, "expected ',' or ']' in shape");
    return ERR_OK;
}

/* "data_offsets": [begin, end] */
static enum err_code st_offsets(struct st_ps *ps, struct st_entry *en)
{
    uint64_t *offsets[2] = {&en->t.begin, &en->t.end};
    enum err_code rc;

    if (!st_eat(ps, '['))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor '%.200s': data_offsets is not an array", en->t.name);
    for (int i = 0; i < 2; i++) { /* begin ',' end ']' */
        rc = st_uint(ps, en->t.name, "data_offsets", offsets[i]);
        if (rc)
            return rc;
        if (!st_eat(ps, i == 0 ? ',' : ']'))
            return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                            "tensor '%.200s': data_offsets must hold exactly two integers",
                            en->t.name);
    }
    return ERR_OK;
}

/* One field of a tensor entry; `seen` has a bit per known field. */
static enum err_code st_field(struct st_ps *ps, struct st_entry *en, unsigned *seen)
{
    static const char *const known[] = {"dtype", "shape", "data_offsets"};
    const char *key;
    size_t key_len;
    enum err_code rc;
    int f = -1;

    rc = st_key(ps, &key, &key_len);
    if (rc)
        return rc;
    st_ws(ps);
    if (ps->p >= ps->end)
        return st_syntax(ps, "unexpected end");
    for (int i = 0; i < 3; i++)
        if (key_len == strlen(known[i]) && memcmp(key, known[i], key_len) == 0)
            f = i;
    if (f < 0)
        return st_skip(ps, 2); /* unknown field: ignored, as the Rust reference does */
    if (*seen & (1u << f))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor '%.200s': duplicate field '%s'", en->t.name, known[f]);
    *seen |= 1u << f;
    if (f == 1)
        return st_shape(ps, en);
    if (f == 2)
        return st_offsets(ps, en);
    st_ws(ps);
    if (ps->p >= ps->end || *ps->p != '"')
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor '%.200s': dtype is not a string", en->t.name);
    rc = st_string(ps, &en->dtype_code, &en->dtype_len);
    if (rc)
        return rc;
    int d = dtype_from_code(en->dtype_code, en->dtype_len);
    en->dtype_ok = d >= 0;
    en->t.dtype = d >= 0 ? (enum dtype)d : DTYPE_F32;
    return ERR_OK;
}

static enum err_code st_entry_new(struct st_ps *ps, struct st_entry **out)
{
    struct st_file *f = ps->f;

    *out = NULL;
    if (f->n_entries >= ps->l->max_tensors)
        return err_setc(ps->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "more than %llu tensors",
                        (unsigned long long)ps->l->max_tensors);
    if (f->n_entries == f->cap_entries) {
        size_t cap = f->cap_entries ? 2 * f->cap_entries : 16;
        struct st_entry *p = realloc(f->entries, cap * sizeof(*p));
        if (p == NULL)
            return err_set(ps->e, ERR_NOMEM, "out of memory for %zu tensor entries", cap);
        f->entries = p;
        f->cap_entries = cap;
    }
    *out = &f->entries[f->n_entries];
    memset(*out, 0, sizeof(**out));
    (*out)->order = f->n_entries++;
    return ERR_OK;
}

/* The value of tensor `name`: {"dtype": ..., "shape": [...], "data_offsets": [b, e]} */
static enum err_code st_entry(struct st_ps *ps, const char *name, size_t name_len)
{
    static const char *const fields[] = {"dtype", "shape", "data_offsets"};
    struct st_entry *en;
    unsigned seen = 0;
    enum err_code rc;

    if (memchr(name, '\0', name_len) != NULL)
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor name '%.200s...' contains a NUL character", name);
    if (name_len > ST_NAME_MAX)
        return err_setc(ps->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "tensor name of %zu bytes exceeds %d ('%.60s...')", name_len, ST_NAME_MAX,
                        name);
    rc = st_entry_new(ps, &en);
    if (rc)
        return rc;
    en->t.name = name;
    en->t.name_len = name_len;
    if (!st_eat(ps, '{'))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor '%.200s': entry is not an object", name);
    if (!st_eat(ps, '}')) {
        do {
            rc = st_field(ps, en, &seen);
            if (rc)
                return rc;
        } while (st_eat(ps, ','));
        if (!st_eat(ps, '}'))
            return st_syntax(ps, "expected ',' or '}' in a tensor entry");
    }
    for (int i = 0; i < 3; i++)
        if (!(seen & (1u << i)))
            return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER, "tensor '%.200s' lacks %s",
                            name, fields[i]);
    return ERR_OK;
}

/* "__metadata__": {"key": "value", ...} */
static enum err_code st_metadata(struct st_ps *ps)
{
    struct st_file *f = ps->f;
    const char *k, *v;
    size_t kn, vn;
    enum err_code rc;

    if (!st_eat(ps, '{'))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "__metadata__ must map strings to strings: it is not an object");
    if (st_eat(ps, '}'))
        return ERR_OK;
    do {
        rc = st_key(ps, &k, &kn);
        if (rc)
            return rc;
        st_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"')
            return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                            "__metadata__ must map strings to strings: '%.200s' is not a string",
                            k);
        rc = st_string(ps, &v, &vn);
        if (rc)
            return rc;
        if (memchr(k, '\0', kn) != NULL || memchr(v, '\0', vn) != NULL)
            return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                            "__metadata__ entry '%.200s' contains a NUL character", k);
        if (f->n_meta == f->cap_meta) {
            size_t cap = f->cap_meta ? 2 * f->cap_meta : 8;
            struct st_meta *p = realloc(f->meta, cap * sizeof(*p));
            if (p == NULL)
                return err_set(ps->e, ERR_NOMEM, "out of memory for metadata");
            f->meta = p;
            f->cap_meta = cap;
        }
        f->meta[f->n_meta].key = k;
        f->meta[f->n_meta++].value = v;
    } while (st_eat(ps, ','));
    if (!st_eat(ps, '}'))
        return st_syntax(ps, "expected ',' or '}' in __metadata__");
    return ERR_OK;
}

/* One "key": value member of the top-level object. */
static enum err_code st_member(struct st_ps *ps, int *seen_meta)
{
    const char *key;
    size_t key_len;
    enum err_code rc;

    rc = st_key(ps, &key, &key_len);
    if (rc)
        return rc;
    if (key_len != 12 || memcmp(key, "__metadata__", 12) != 0)
        return st_entry(ps, key, key_len);
    if (*seen_meta)
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER, "duplicate key '__metadata__'");
    *seen_meta = 1;
    return st_metadata(ps);
}

enum err_code st__header_parse(struct st_file *f, const unsigned char *hdr, uint64_t n,
                               const struct ckpt_limits *l, struct err *e)
{
    struct st_ps ps = {hdr, hdr, hdr + n, f, l, e};
    enum err_code rc;
    int seen_meta = 0;

    st_ws(&ps);
    if (ps.p >= ps.end)
        return st_syntax(&ps, "empty header");
    if (*ps.p != '{')
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "header JSON is not an object (it starts with '%c')",
                        *ps.p >= 0x20 && *ps.p < 0x7F ? *ps.p : '?');
    ps.p++;
    if (!st_eat(&ps, '}')) {
        do {
            rc = st_member(&ps, &seen_meta);
            if (rc)
                return rc;
        } while (st_eat(&ps, ','));
        if (!st_eat(&ps, '}'))
            return st_syntax(&ps, "expected ',' or '}'");
    }
    st_ws(&ps);
    if (ps.p != ps.end)
        return st_syntax(&ps, "unexpected bytes after the header object");
    return ERR_OK;
}
