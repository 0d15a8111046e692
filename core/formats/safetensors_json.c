/* safetensors_json.c -- the strict JSON reader for safetensors headers: the
 * header's schema (tensor entries with their dtype, shape and data_offsets
 * fields, and __metadata__) read into a struct st_file.
 *
 * A general JSON library hides what validation must see: cJSON keeps duplicate keys,
 * stores numbers as doubles (16.0 == 16, 2^53+1 == 2^53) and cuts strings at
 * an escaped NUL. This reader knows the header's schema, reads integers from
 * their text, and decodes every string into the file's arena (decoded
 * strings are never longer than their JSON form, so N + 1 bytes hold them
 * all). Values of unknown entry fields are checked as JSON and skipped. The
 * tokens (whitespace, strings, numbers, keys, skipped values) are read by
 * safetensors_lex.c.
 */
#include "core/formats/safetensors_int.h"

#include <stdlib.h>
#include <string.h>

/* "shape": [d0, d1, ...] */
static enum err_code st_shape(struct st_ps *ps, struct st_entry *en)
{
    enum err_code rc;
    uint64_t v;

    if (!st__eat(ps, '['))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor '%.200s': shape is not an array", en->t.name);
    en->t.ndim = 0;
    if (st__eat(ps, ']'))
        return ERR_OK;
    do {
        if (en->t.ndim == CKPT_MAX_RANK)
            return err_setc(ps->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                            "tensor '%.200s': rank exceeds %d", en->t.name, CKPT_MAX_RANK);
        rc = st__uint(ps, en->t.name, "shape", &v);
        if (rc)
            return rc;
        if (v > (uint64_t)INT64_MAX && en->big_dim == 0)
            en->big_dim = en->t.ndim + 1; /* step 7 reports it as overflow */
        en->t.shape[en->t.ndim++] = (int64_t)(v & (uint64_t)INT64_MAX);
    } while (st__eat(ps, ','));
    if (!st__eat(ps, ']'))
        return st__syntax(ps, "expected ',' or ']' in shape");
    return ERR_OK;
}

/* "data_offsets": [begin, end] */
static enum err_code st_offsets(struct st_ps *ps, struct st_entry *en)
{
    uint64_t *offsets[2] = {&en->t.begin, &en->t.end};
    enum err_code rc;

    if (!st__eat(ps, '['))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor '%.200s': data_offsets is not an array", en->t.name);
    for (int i = 0; i < 2; i++) { /* begin ',' end ']' */
        rc = st__uint(ps, en->t.name, "data_offsets", offsets[i]);
        if (rc)
            return rc;
        if (!st__eat(ps, i == 0 ? ',' : ']'))
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

    rc = st__key(ps, &key, &key_len);
    if (rc)
        return rc;
    st__ws(ps);
    if (ps->p >= ps->end)
        return st__syntax(ps, "unexpected end");
    for (int i = 0; i < 3; i++)
        if (key_len == strlen(known[i]) && memcmp(key, known[i], key_len) == 0)
            f = i;
    if (f < 0)
        return st__skip(ps, 2); /* unknown field: ignored, as the Rust reference does */
    if (*seen & (1u << f))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor '%.200s': duplicate field '%s'", en->t.name, known[f]);
    *seen |= 1u << f;
    if (f == 1)
        return st_shape(ps, en);
    if (f == 2)
        return st_offsets(ps, en);
    st__ws(ps);
    if (ps->p >= ps->end || *ps->p != '"')
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor '%.200s': dtype is not a string", en->t.name);
    rc = st__string(ps, &en->dtype_code, &en->dtype_len);
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
    if (!st__eat(ps, '{'))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "tensor '%.200s': entry is not an object", name);
    if (!st__eat(ps, '}')) {
        do {
            rc = st_field(ps, en, &seen);
            if (rc)
                return rc;
        } while (st__eat(ps, ','));
        if (!st__eat(ps, '}'))
            return st__syntax(ps, "expected ',' or '}' in a tensor entry");
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

    if (!st__eat(ps, '{'))
        return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "__metadata__ must map strings to strings: it is not an object");
    if (st__eat(ps, '}'))
        return ERR_OK;
    do {
        rc = st__key(ps, &k, &kn);
        if (rc)
            return rc;
        st__ws(ps);
        if (ps->p >= ps->end || *ps->p != '"')
            return err_setc(ps->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                            "__metadata__ must map strings to strings: '%.200s' is not a string",
                            k);
        rc = st__string(ps, &v, &vn);
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
    } while (st__eat(ps, ','));
    if (!st__eat(ps, '}'))
        return st__syntax(ps, "expected ',' or '}' in __metadata__");
    return ERR_OK;
}

/* One "key": value member of the top-level object. */
static enum err_code st_member(struct st_ps *ps, int *seen_meta)
{
    const char *key;
    size_t key_len;
    enum err_code rc;

    rc = st__key(ps, &key, &key_len);
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

    st__ws(&ps);
    if (ps.p >= ps.end)
        return st__syntax(&ps, "empty header");
    if (*ps.p != '{')
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "header JSON is not an object (it starts with '%c')",
                        *ps.p >= 0x20 && *ps.p < 0x7F ? *ps.p : '?');
    ps.p++;
    if (!st__eat(&ps, '}')) {
        do {
            rc = st_member(&ps, &seen_meta);
            if (rc)
                return rc;
        } while (st__eat(&ps, ','));
        if (!st__eat(&ps, '}'))
            return st__syntax(&ps, "expected ',' or '}'");
    }
    st__ws(&ps);
    if (ps.p != ps.end)
        return st__syntax(&ps, "unexpected bytes after the header object");
    return ERR_OK;
}
