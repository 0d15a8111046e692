/* npy.c -- .npy header literal parser, validation, C-order materialisation.
 * The .npy ckpt loader is in npy_load.c, the .npz loader in npz.c.
 */
#include "core/formats/npy.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/npy_int.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c reads '=' (native) descrs as little-endian"
#endif

#define NPY_DEPTH 32 /* nesting accepted in values we skip (structured descrs) */

/* --- The header literal ------------------------------------------------------ */

struct npy_ps {
    const unsigned char *p, *start, *end; /* cursor within the header */
    struct err *e;
};

struct npy_hdr {
    const unsigned char *descr; /* descr string, in the header; NULL if not a string */
    size_t descr_len;
    int seen; /* bit per key: 1 descr, 2 fortran_order, 4 shape */
    int fortran_order;
    int ndim;
    int64_t shape[CKPT_MAX_RANK];
};

static void npy_ws(struct npy_ps *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int npy_eat(struct npy_ps *ps, unsigned char ch)
{
    npy_ws(ps);
    if (ps->p < ps->end && *ps->p == ch) {
        ps->p++;
        return 1;
    }
    return 0;
}

static enum err_code npy_bad(struct npy_ps *ps, const char *what)
{
    unsigned char c = ps->p < ps->end ? *ps->p : '?';

    return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                    "npy header unparsable: %s at byte %llu ('%c')", what,
                    (unsigned long long)(ps->p - ps->start), c >= 0x20 && c < 0x7F ? c : '?');
}

/* A '...' or "..." string without escapes; *s / *n span its contents. */
static enum err_code npy_string(struct npy_ps *ps, const unsigned char **s, size_t *n)
{
    unsigned char q;
    const unsigned char *close;

    npy_ws(ps);
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
        return npy_bad(ps, "expected a string");
    q = *ps->p++;
    close = memchr(ps->p, q, (size_t)(ps->end - ps->p));
    if (close == NULL)
        return npy_bad(ps, "unterminated string");
    if (memchr(ps->p, '\\', (size_t)(close - ps->p)) != NULL)
        return npy_bad(ps, "escapes are not supported");
    *s = ps->p;
    *n = (size_t)(close - ps->p);
    ps->p = close + 1;
    return ERR_OK;
}

/* An integer literal; *neg set for a leading '-'; *big if it exceeds INT64_MAX. */
static enum err_code npy_int(struct npy_ps *ps, int64_t *v, int *neg, int *big)
{
    uint64_t x = 0;

    npy_ws(ps);
    *neg = ps->p < ps->end && *ps->p == '-';
    *big = 0;
    if (*neg)
        ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
        return npy_bad(ps, "unexpected character");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        unsigned d = (unsigned)(*ps->p++ - '0');
        if (x > ((uint64_t)INT64_MAX - d) / 10)
            *big = 1;
        else
            x = x * 10 + d;
    }
    *v = (int64_t)x;
    return ERR_OK;
}

/* Check and skip any literal (strings, ints, True/False/None, (), [], {}). */
static enum err_code npy_skip(struct npy_ps *ps, int depth)
{
    static const char *const words[] = {"True", "False", "None"};
    const unsigned char *s;
    size_t n;
    int64_t v;
    int neg, big;
    enum err_code rc;

    npy_ws(ps);
    if (ps->p >= ps->end)
        return npy_bad(ps, "unexpected end");
    if (*ps->p == '\'' || *ps->p == '"')
        return npy_string(ps, &s, &n);
    if (*ps->p == '(' || *ps->p == '[' || *ps->p == '{') {
        unsigned char open = *ps->p, close = open == '(' ? ')' : open == '[' ? ']' : '}';
        if (depth >= NPY_DEPTH)
            return npy_bad(ps, "nesting too deep");
        ps->p++;
        if (npy_eat(ps, close))
            return ERR_OK;
        for (;;) {
            rc = npy_skip(ps, depth + 1);
            if (rc == ERR_OK && open == '{')
                rc = npy_eat(ps, ':') ? npy_skip(ps, depth + 1) : npy_bad(ps, "expected ':'");
            if (rc)
                return rc;
            if (npy_eat(ps, close))
                break;
            if (!npy_eat(ps, ','))
                return npy_bad(ps, "expected ',' or a closing bracket");
            if (npy_eat(ps, close))
                break;
        }
        return ERR_OK;
    }
    for (int i = 0; i < 3; i++) {
        n = strlen(words[i]);
        if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, words[i], n) == 0) {
            ps->p += n;
            return ERR_OK;
        }
    }
    return npy_int(ps, &v, &neg, &big);
}

/* 'shape': (d0, d1, ...) */
static enum err_code npy_shape(struct npy_ps *ps, struct npy_hdr *h)
{
    enum err_code rc;
    int neg, big;

    if (!npy_eat(ps, '('))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER, "npy shape is not a tuple");
    while (!npy_eat(ps, ')')) {
        if (h->ndim == CKPT_MAX_RANK)
            return err_setc(ps->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "npy rank exceeds %d",
                            CKPT_MAX_RANK);
        rc = npy_int(ps, &h->shape[h->ndim], &neg, &big);
        if (rc)
            return rc;
        if (neg)
            return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                            "npy shape dimension %d is negative", h->ndim);
        if (big)
            return err_setc(ps->e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                            "npy shape dimension %d exceeds 2^63-1", h->ndim);
        h->ndim++;
        if (!npy_eat(ps, ',')) {
            if (!npy_eat(ps, ')'))
                return npy_bad(ps, "expected ',' or ')' in shape");
            break;
        }
    }
    return ERR_OK;
}

/* One 'key': value pair of the header dict. */
static enum err_code npy_pair(struct npy_ps *ps, struct npy_hdr *h)
{
    static const char *const keys[] = {"descr", "fortran_order", "shape"};
    const unsigned char *k = NULL;
    size_t kn = 0;
    enum err_code rc;
    int which = -1;

    rc = npy_string(ps, &k, &kn);
    if (rc)
        return rc;
    for (int i = 0; i < 3; i++)
        if (kn == strlen(keys[i]) && memcmp(k, keys[i], kn) == 0)
            which = i;
    if (which < 0 || (h->seen & (1 << which)))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "npy header must have exactly descr, fortran_order, shape: %s key "
                        "'%.*s'",
                        which < 0 ? "unexpected" : "duplicate", (int)(kn > 40 ? 40 : kn),
                        (const char *)k);
    h->seen |= 1 << which;
    if (!npy_eat(ps, ':'))
        return npy_bad(ps, "expected ':'");
    npy_ws(ps);
    if (which == 2)
        return npy_shape(ps, h);
    if (which == 0) {
        if (ps->p < ps->end && (*ps->p == '\'' || *ps->p == '"'))
            return npy_string(ps, &h->descr, &h->descr_len);
        return npy_skip(ps, 0); /* structured: refused as invalid_dtype later */
    }
    if (ps->end - ps->p >= 4 && memcmp(ps->p, "True", 4) == 0) {
        h->fortran_order = 1;
        ps->p += 4;
    } else if (ps->end - ps->p >= 5 && memcmp(ps->p, "False", 5) == 0) {
        ps->p += 5;
    } else {
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "npy fortran_order is not a bool");
    }
    return ERR_OK;
}

static enum err_code npy_header(const unsigned char *s, uint64_t n, struct npy_hdr *h,
                                struct err *e)
{
    struct npy_ps ps = {s, s, s + n, e};
    enum err_code rc;

    memset(h, 0, sizeof(*h));
    if (!npy_eat(&ps, '{')) {
        npy_ws(&ps);
        if (ps.p < ps.end && (*ps.p == '[' || *ps.p == '(' || *ps.p == '\'' || *ps.p == '"' ||
                              (*ps.p >= '0' && *ps.p <= '9')))
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER, "npy header is not a dict");
        return npy_bad(&ps, "unexpected character");
    }
    while (!npy_eat(&ps, '}')) {
        rc = npy_pair(&ps, h);
        if (rc)
            return rc;
        if (!npy_eat(&ps, ',')) {
            if (!npy_eat(&ps, '}'))
                return npy_bad(&ps, "expected ',' or '}'");
            break;
        }
    }
    npy_ws(&ps);
    if (ps.p != ps.end)
        return npy_bad(&ps, "trailing characters");
    if (h->seen != 7)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "npy header must have exactly descr, fortran_order, shape (%s missing)",
                        !(h->seen & 1)   ? "descr"
                        : !(h->seen & 2) ? "fortran_order"
                                         : "shape");
    return ERR_OK;
}

/* --- Validation ---------------------------------------------------------------- */

static const struct {
    const char *code;
    enum dtype dtype;
} npy_descrs[] = {
    {"f8", DTYPE_F64}, {"f4", DTYPE_F32},   {"f2", DTYPE_F16}, {"i8", DTYPE_I64},
    {"i4", DTYPE_I32}, {"i2", DTYPE_I16},   {"i1", DTYPE_I8},  {"u8", DTYPE_U64},
    {"u4", DTYPE_U32}, {"u2", DTYPE_U16},   {"u1", DTYPE_U8},  {"b1", DTYPE_BOOL},
    {"c8", DTYPE_C64}, {"c16", DTYPE_C128},
};

static enum err_code npy_dtype(const struct npy_hdr *h, struct npy_info *a, struct err *e)
{
    const char *d = (const char *)h->descr;
    size_t n = h->descr_len;

    if (d == NULL)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_DTYPE,
                        "structured npy dtype (descr is not a string) not supported");
    if (n >= 2 && strchr("<>|=", d[0]) != NULL) {
        for (size_t i = 0; i < sizeof(npy_descrs) / sizeof(npy_descrs[0]); i++) {
            if (n - 1 == strlen(npy_descrs[i].code) &&
                memcmp(d + 1, npy_descrs[i].code, n - 1) == 0) {
                a->dtype = npy_descrs[i].dtype;
                a->big_endian = d[0] == '>' && dtype_size(a->dtype) > 1;
                return ERR_OK;
            }
        }
    }
    return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_DTYPE,
                    "npy dtype '%.*s' not supported (objects, strings, voids, datetimes and "
                    "structured dtypes are refused)",
                    (int)(n > 40 ? 40 : n), d);
}

/* Version and header length; *start is where the header text begins. */
static enum err_code npy_preamble(const unsigned char *buf, uint64_t len,
                                  const struct ckpt_limits *l, struct npy_info *a, uint64_t *start,
                                  uint64_t *hl, struct err *e)
{
    if (len < 10)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED, "npy preamble cut short (%llu bytes)",
                        (unsigned long long)len);
    if (memcmp(buf, "\x93NUMPY", 6) != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNKNOWN_FORMAT,
                        "not an npy file (no \\x93NUMPY magic)");
    a->major = buf[6];
    if (a->major == 1) {
        *hl = (uint64_t)buf[8] | (uint64_t)buf[9] << 8;
        *start = 10;
    } else if (a->major == 2 || a->major == 3) {
        if (len < 12)
            return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED, "npy preamble cut short (%llu bytes)",
                            (unsigned long long)len);
        *hl = (uint64_t)buf[8] | (uint64_t)buf[9] << 8 | (uint64_t)buf[10] << 16 |
              (uint64_t)buf[11] << 24;
        *start = 12;
    } else {
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER, "npy version %u.%u is not 1, 2 or 3",
                        (unsigned)buf[6], (unsigned)buf[7]);
    }
    if (*hl > l->max_header_bytes)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "npy header of %llu bytes exceeds the limit of %llu",
                        (unsigned long long)*hl, (unsigned long long)l->max_header_bytes);
    if (*hl > len - *start)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "npy header of %llu bytes runs past the end of the file (%llu bytes)",
                        (unsigned long long)*hl, (unsigned long long)len);
    return ERR_OK;
}

uint64_t npy__head_len(const unsigned char *pre, uint64_t total, const struct ckpt_limits *l)
{
    uint64_t hl, start;

    if (total < 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return total < NPY_PREAMBLE_MAX ? total : NPY_PREAMBLE_MAX;
    if (pre[6] == 1) {
        hl = (uint64_t)pre[8] | (uint64_t)pre[9] << 8;
        start = 10;
    } else if ((pre[6] == 2 || pre[6] == 3) && total >= 12) {
        hl = (uint64_t)pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 |
             (uint64_t)pre[11] << 24;
        start = 12;
    } else {
        return total < NPY_PREAMBLE_MAX ? total : NPY_PREAMBLE_MAX;
    }
    if (hl > l->max_header_bytes)
        hl = l->max_header_bytes; /* npy__parse refuses it without reading on */
    return start + hl < total ? start + hl : total;
}

enum err_code npy_parse(const unsigned char *buf, uint64_t len, const struct ckpt_limits *l,
                        struct npy_info *out, struct err *e)
{
    return npy__parse(buf, len, len, l, out, e);
}

enum err_code npy__parse(const unsigned char *buf, uint64_t buf_len, uint64_t len,
                         const struct ckpt_limits *l, struct npy_info *out, struct err *e)
{
    struct ckpt_limits defaults;
    struct npy_info a;
    struct npy_hdr h;
    uint64_t start = 0, hl = 0, n = 1, size;
    enum err_code rc;

    memset(out, 0, sizeof(*out));
    memset(&a, 0, sizeof(a));
    if (l == NULL) {
        ckpt_limits_default(&defaults);
        l = &defaults;
    }
    ERR_ASSERT(buf_len <= len); /* and buf holds npy__head_len's bytes of its own prefix */
    rc = npy_preamble(buf, len, l, &a, &start, &hl, e);
    if (rc == ERR_OK && start + hl > buf_len) /* the caller read fewer: the header changed */
        rc = err_setc(e, ERR_IO, ERR_CAT_CHANGED, "npy header length changed while it was read");
    if (rc == ERR_OK)
        rc = npy_header(buf + start, hl, &h, e);
    if (rc == ERR_OK)
        rc = npy_dtype(&h, &a, e);
    if (rc)
        return rc;
    for (int d = 0; d < h.ndim; d++) {
        uint64_t s = (uint64_t)h.shape[d];
        if (s != 0 && n > UINT64_MAX / s)
            return err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                            "npy shape overflows 64 bits at dimension %d", d);
        n *= s;
        a.shape[d] = h.shape[d];
    }
    size = dtype_size(a.dtype);
    if (n != 0 && n > UINT64_MAX / size)
        return err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                        "npy array of %llu elements of %llu bytes overflows 64 bits",
                        (unsigned long long)n, (unsigned long long)size);
    a.ndim = h.ndim;
    a.n_elems = n;
    a.nbytes = n * size;
    a.fortran_order = h.fortran_order;
    if (a.nbytes > len - start - hl)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED, "npy data needs %llu bytes, %llu present",
                        (unsigned long long)a.nbytes, (unsigned long long)(len - start - hl));
    a.data_offset = start + hl;
    a.data = buf_len == len ? buf + start + hl : NULL;
    *out = a;
    return ERR_OK;
}

/* --- Materialisation ------------------------------------------------------------- */

/* 1 if the stored element order already is C order. */
static int npy_c_layout(const struct npy_info *a)
{
    int n_long = 0;

    for (int d = 0; d < a->ndim; d++)
        n_long += a->shape[d] > 1;
    return !a->fortran_order || n_long <= 1;
}

int npy_is_c_contiguous_le(const struct npy_info *a)
{
    return !a->big_endian && npy_c_layout(a);
}

static void npy_copy_elem(unsigned char *dst, const unsigned char *src, size_t size, int swap,
                          int complex)
{
    size_t unit = complex ? size / 2 : size;

    if (!swap) {
        memcpy(dst, src, size);
        return;
    }
    for (size_t h = 0; h < size; h += unit)
        for (size_t b = 0; b < unit; b++)
            dst[h + b] = src[h + unit - 1 - b];
}

void npy_to_c_le(const struct npy_info *a, unsigned char *dst)
{
    size_t size = dtype_size(a->dtype), src = 0;
    int complex = a->dtype == DTYPE_C64 || a->dtype == DTYPE_C128;
    int64_t idx[CKPT_MAX_RANK] = {0};
    size_t fstride[CKPT_MAX_RANK];
    size_t acc = 1;

    if (npy_c_layout(a)) {
        if (!a->big_endian) {
            memcpy(dst, a->data, (size_t)a->nbytes);
            return;
        }
        for (uint64_t j = 0; j < a->n_elems; j++)
            npy_copy_elem(dst + j * size, a->data + j * size, size, 1, complex);
        return;
    }
    /* Fortran order with two or more dimensions longer than 1. */
    ERR_ASSERT(a->ndim >= 2 && a->ndim <= CKPT_MAX_RANK);
    for (int d = 0; d < a->ndim; d++) { /* column-major strides, in elements */
        fstride[d] = acc;
        acc *= (size_t)a->shape[d];
    }
    for (uint64_t j = 0; j < a->n_elems; j++) {
        npy_copy_elem(dst + j * size, a->data + src * size, size, a->big_endian, complex);
        for (int d = a->ndim - 1; d >= 0; d--) { /* odometer over the C-order index */
            idx[d]++;
            src += fstride[d];
            if (idx[d] < a->shape[d])
                break;
            src -= fstride[d] * (size_t)a->shape[d];
            idx[d] = 0;
        }
    }
}
