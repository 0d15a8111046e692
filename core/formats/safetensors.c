/* safetensors.c -- validation steps (docs/checkpoint-formats.md,
 * safetensors), queries, the ckpt loader.
 *
 * st_parse() runs the steps in the spec's order: length prefix (1-3), the
 * header (4, in safetensors_json.c, then duplicates), dtypes (5), and per
 * tensor in data-offset order: offsets (6), overflow (7), size (8); then the
 * data section's length (9).
 */
#include "core/formats/safetensors.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/rfile.h"
#include "core/formats/safetensors_int.h"
#include "core/utf8.h"

static uint64_t st_le64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void st_free(struct st_file *f)
{
    if (f == NULL)
        return;
    free(f->entries);
    free(f->by_name);
    free(f->meta);
    free(f->arena);
    free(f);
}

/* --- Validation ------------------------------------------------------------ */

/* Steps 1-3 and the header-size limit; sets f->header_len. */
static enum err_code st_check_length(struct st_file *f, const unsigned char *buf,
                                     const struct ckpt_limits *l, struct err *e)
{
    uint64_t n;

    if (f->len < 8)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "file has %llu bytes, fewer than the 8-byte header length",
                        (unsigned long long)f->len);
    n = st_le64(buf);
    if (n > ST_HEADER_FORMAT_MAX) /* before 8 + n is computed: it may overflow */
        return err_setc(e, ERR_TOOBIG, ERR_CAT_HEADER_TOO_LARGE,
                        "header length %llu exceeds the format's maximum of %u",
                        (unsigned long long)n, ST_HEADER_FORMAT_MAX);
    if (8 + n > f->len)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "header length %llu runs past the end of the file (%llu bytes)",
                        (unsigned long long)n, (unsigned long long)f->len);
    if (n > l->max_header_bytes)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "header length %llu exceeds the limit of %llu bytes", (unsigned long long)n,
                        (unsigned long long)l->max_header_bytes);
    f->header_len = n;
    return ERR_OK;
}

static int st_cmp_name(const void *a, const void *b)
{
    const struct st_entry *x = *(const struct st_entry *const *)a;
    const struct st_entry *y = *(const struct st_entry *const *)b;
    size_t n = x->t.name_len < y->t.name_len ? x->t.name_len : y->t.name_len;
    int c = memcmp(x->t.name, y->t.name, n);

    if (c != 0)
        return c;
    return (x->t.name_len > y->t.name_len) - (x->t.name_len < y->t.name_len);
}

static int st_cmp_meta(const void *a, const void *b)
{
    return strcmp(((const struct st_meta *)a)->key, ((const struct st_meta *)b)->key);
}

static int st_cmp_offsets(const void *a, const void *b)
{
    const struct st_entry *x = a, *y = b;

    if (x->t.begin != y->t.begin)
        return x->t.begin < y->t.begin ? -1 : 1;
    if (x->t.end != y->t.end)
        return x->t.end < y->t.end ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* Step 4, the part the JSON reader leaves: duplicate tensor names and
 * metadata keys. Builds f->by_name. */
static enum err_code st_check_duplicates(struct st_file *f, struct err *e)
{
    struct st_meta *keys = NULL;
    enum err_code rc = ERR_OK;

    /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
    f->by_name = malloc((f->n_entries ? f->n_entries : 1) * sizeof(*f->by_name));
    keys = malloc((f->n_meta ? f->n_meta : 1) * sizeof(*keys));
    if (f->by_name == NULL || keys == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory indexing %zu tensors", f->n_entries);
        goto out;
    }
    for (size_t i = 0; i < f->n_entries; i++)
        f->by_name[i] = &f->entries[i];
    if (f->n_entries > 1) {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
        qsort(f->by_name, f->n_entries, sizeof(*f->by_name), st_cmp_name);
    }
    for (size_t i = 1; i < f->n_entries; i++) {
        if (st_cmp_name(&f->by_name[i - 1], &f->by_name[i]) == 0) {
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER, "duplicate tensor name '%.200s'",
                          f->by_name[i]->t.name);
            goto out;
        }
    }
    if (f->n_meta > 0)
        memcpy(keys, f->meta, f->n_meta * sizeof(*keys));
    if (f->n_meta > 1)
        qsort(keys, f->n_meta, sizeof(*keys), st_cmp_meta);
    for (size_t i = 1; i < f->n_meta; i++) {
        if (strcmp(keys[i - 1].key, keys[i].key) == 0) {
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                          "duplicate __metadata__ key '%.200s'", keys[i].key);
            goto out;
        }
    }
out:
    free(keys);
    return rc;
}

/* Steps 6-8 for one entry; `*start` is where it must begin. */
static enum err_code st_check_entry(struct st_entry *en, uint64_t *start, struct err *e)
{
    struct st_tensor *t = &en->t;
    uint64_t n = 1;
    unsigned bits = dtype_bits(t->dtype);

    if (t->begin != *start || t->end < t->begin)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_OFFSETS,
                        "tensor '%.200s': data_offsets [%llu, %llu] do not continue at %llu",
                        t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                        (unsigned long long)*start);
    *start = t->end;
    if (en->big_dim)
        return err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                        "tensor '%.200s': dimension %d exceeds 2^63-1", t->name, en->big_dim - 1);
    for (int d = 0; d < t->ndim; d++) {
        uint64_t s = (uint64_t)t->shape[d];
        if (s != 0 && n > UINT64_MAX / s)
            return err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                            "tensor '%.200s': element count overflows 64 bits at dimension %d "
                            "(%llu)",
                            t->name, d, (unsigned long long)s);
        n *= s;
    }
    if (n != 0 && n > UINT64_MAX / bits)
        return err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                        "tensor '%.200s': %llu elements of %u bits overflow 64 bits", t->name,
                        (unsigned long long)n, bits);
    t->n_elems = n;
    if ((n * bits) % 8 != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                        "tensor '%.200s': %llu elements of %u bits do not end on a byte", t->name,
                        (unsigned long long)n, bits);
    if (t->end - t->begin != n * bits / 8)
        return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                        "tensor '%.200s': %llu bytes declared, dtype*shape needs %llu", t->name,
                        (unsigned long long)(t->end - t->begin),
                        (unsigned long long)(n * bits / 8));
    return ERR_OK;
}

/* Steps 5-9 on the parsed header. */
static enum err_code st_check_tensors(struct st_file *f, struct err *e)
{
    uint64_t start = 0, data_len = f->len - 8 - f->header_len;
    enum err_code rc;

    for (size_t i = 0; i < f->n_entries; i++) {
        const struct st_entry *en = &f->entries[i];
        if (!en->dtype_ok)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_DTYPE,
                            "tensor '%.200s': unknown dtype '%.*s'", en->t.name,
                            (int)(en->dtype_len > 40 ? 40 : en->dtype_len), en->dtype_code);
    }
    if (f->n_entries > 1)
        qsort(f->entries, f->n_entries, sizeof(*f->entries), st_cmp_offsets);
    for (size_t i = 0; i < f->n_entries; i++) {
        rc = st_check_entry(&f->entries[i], &start, e);
        if (rc)
            return rc;
    }
    if (start > data_len)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "tensors need %llu data bytes, file has %llu", (unsigned long long)start,
                        (unsigned long long)data_len);
    if (start < data_len)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRAILING_DATA,
                        "%llu bytes after the last tensor (data section %llu bytes, tensors "
                        "cover %llu)",
                        (unsigned long long)(data_len - start), (unsigned long long)data_len,
                        (unsigned long long)start);
    for (size_t i = 0; f->buf != NULL && i < f->n_entries; i++)
        f->entries[i].t.data = f->buf + 8 + f->header_len + f->entries[i].t.begin;
    return ERR_OK;
}

/* How many leading bytes of a `file_len`-byte file st__parse needs, given
 * its first min(8, file_len) bytes: never more than 8 + max_header_bytes. */
static uint64_t st_head_len(const unsigned char *first8, uint64_t file_len,
                            const struct ckpt_limits *l)
{
    uint64_t n;

    if (file_len < 8)
        return file_len;
    n = st_le64(first8);
    if (n > l->max_header_bytes)
        n = l->max_header_bytes; /* st_parse refuses it without reading on */
    return 8 + n < file_len ? 8 + n : file_len;
}

enum err_code st_parse(const unsigned char *buf, uint64_t len, const struct ckpt_limits *l,
                       struct st_file **out, struct err *e)
{
    return st__parse(buf, len, len, l, out, e);
}

enum err_code st__parse(const unsigned char *buf, uint64_t buf_len, uint64_t file_len,
                        const struct ckpt_limits *l, struct st_file **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct ckpt_limits defaults;
    struct st_file *f = NULL;
    uint64_t bad;

    *out = NULL;
    if (l == NULL) {
        ckpt_limits_default(&defaults);
        l = &defaults;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    ERR_ASSERT(buf_len <= file_len);
    f->buf = buf_len == file_len ? buf : NULL; /* data pointers only into a whole image */
    f->len = file_len;
    rc = st_check_length(f, buf, l, e);
    if (rc)
        goto out;
    if (buf_len < 8 + f->header_len) { /* the length prefix changed between two reads */
        rc = err_setc(e, ERR_IO, ERR_CAT_CHANGED, "header length changed while the file was read");
        goto out;
    }
    bad = utf8_check(buf + 8, f->header_len);
    if (bad != f->header_len) {
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                      "header is not valid UTF-8 (byte %llu)", (unsigned long long)bad);
        goto out;
    }
    f->arena_cap = (size_t)f->header_len + 1;
    f->arena = malloc(f->arena_cap);
    if (f->arena == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory for a %llu-byte header",
                     (unsigned long long)f->header_len);
        goto out;
    }
    rc = st__header_parse(f, buf + 8, f->header_len, l, e);
    if (rc == ERR_OK)
        rc = st_check_duplicates(f, e);
    if (rc == ERR_OK)
        rc = st_check_tensors(f, e);
    if (rc)
        goto out;
    /* by_name points at entries, which st_check_tensors reordered: rebuild. */
    for (size_t i = 0; i < f->n_entries; i++)
        f->by_name[i] = &f->entries[i];
    if (f->n_entries > 1) {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
        qsort(f->by_name, f->n_entries, sizeof(*f->by_name), st_cmp_name);
    }
    *out = f;
    f = NULL;
out:
    st_free(f);
    return rc;
}

/* --- Query ------------------------------------------------------------------ */

uint64_t st_header_len(const struct st_file *f)
{
    return f->header_len;
}

uint64_t st_data_len(const struct st_file *f)
{
    return f->len - 8 - f->header_len;
}

size_t st_n_tensors(const struct st_file *f)
{
    return f->n_entries;
}

const struct st_tensor *st_tensor_at(const struct st_file *f, size_t i)
{
    ERR_ASSERT(i < f->n_entries);
    return &f->entries[i].t;
}

const struct st_tensor *st_tensor_find(const struct st_file *f, const char *name, size_t name_len)
{
    struct st_entry key;
    const struct st_entry *kp = &key;
    const struct st_entry *const *hit;

    key.t.name = name;
    key.t.name_len = name_len;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
    hit = bsearch(&kp, f->by_name, f->n_entries, sizeof(*f->by_name), st_cmp_name);
    return hit != NULL ? &(*hit)->t : NULL;
}

size_t st_n_metadata(const struct st_file *f)
{
    return f->n_meta;
}

void st_metadata_at(const struct st_file *f, size_t i, const char **key, const char **value)
{
    ERR_ASSERT(i < f->n_meta);
    *key = f->meta[i].key;
    *value = f->meta[i].value;
}

const char *st_metadata_get(const struct st_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

/* --- The ckpt loader --------------------------------------------------------- */

struct st_impl {
    struct rfile file;    /* owned, open for the ckpt's life */
    struct st_file *head; /* owned, parsed from the header only */
};

static void st_impl_free(void *p)
{
    struct st_impl *impl = p;

    if (impl == NULL)
        return;
    st_free(impl->head);
    rfile_close(&impl->file);
    free(impl);
}

static enum err_code st_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                             const void **data, struct err *e)
{
    const struct st_impl *impl = c->impl;
    const struct st_tensor *t = &impl->head->entries[i].t;
    struct ckpt__extent x;

    /* contiguous, little-endian already */
    x = (struct ckpt__extent){
        .f = &impl->file, .off = 8 + impl->head->header_len + t->begin, .n = t->end - t->begin};
    return ckpt__read_into(c, &x, buf, data, e);
}

static const struct ckpt_ops st_ops = {st_read, st_impl_free};

const struct st_file *st_ckpt_file(const struct ckpt *c)
{
    if (c == NULL || c->ops != &st_ops)
        return NULL;
    return ((const struct st_impl *)c->impl)->head;
}

enum err_code st__read_head(const struct rfile *f, const struct ckpt_limits *l,
                            struct st_file **out, struct err *e)
{
    unsigned char first8[8], *head = NULL;
    enum err_code rc;
    uint64_t n;

    *out = NULL;
    rc = rfile_read(f, 0, f->size < 8 ? f->size : 8, first8, e);
    if (rc)
        return rc;
    n = st_head_len(first8, f->size, l);
    head = malloc(n ? (size_t)n : 1);
    if (head == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for a %llu-byte header", (unsigned long long)n);
    rc = rfile_read(f, 0, n, head, e);
    if (rc == ERR_OK)
        rc = st__parse(head, n, f->size, l, out, e);
    free(head);
    return rc;
}

enum err_code st__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    struct st_impl *impl;
    enum err_code rc;

    impl = calloc(1, sizeof(*impl));
    if (impl == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
    impl->file.fd = -1;
    c->impl = impl; /* ckpt_close() frees it from here on */
    c->ops = &st_ops;
    rc = rfile_open(path, &impl->file, e);
    if (rc == ERR_OK)
        rc = st__read_head(&impl->file, &c->limits, &impl->head, e);
    for (size_t i = 0; rc == ERR_OK && i < impl->head->n_entries; i++)
        rc = st__ckpt_add(c, &impl->head->entries[i].t, e);
    return rc;
}

enum err_code st__ckpt_add(struct ckpt *c, const struct st_tensor *t, struct err *e)
{
    return ckpt__tensor_add(c,
                            &(struct ckpt__entry){.name = t->name,
                                                  .name_len = t->name_len,
                                                  .dtype = t->dtype,
                                                  .ndim = t->ndim,
                                                  .shape = t->shape},
                            NULL, e);
}
