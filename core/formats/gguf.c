/* gguf.c -- GGUF v2/v3 header parsing and the GGUF ckpt loader. See gguf.h
 * and docs/gguf.md (llama.cpp docs/gguf.md and ggml/src/gguf.cpp followed).
 *
 * The header is read through a small window (struct gguf_rd) with pread, so
 * a tokenizer's megabytes of metadata are walked, not held: only keys, the
 * architecture string and tensor names are copied. The reader and the
 * metadata key/value pairs are in gguf_read.c; the header (magic, version,
 * counts), tensor infos, their extents and the ckpt loader are here; what the
 * two share is in gguf_int.h. Stateless apart from the objects it fills:
 * thread-safe.
 */
#include "core/formats/gguf.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/gguf_int.h"

/* --- The header ------------------------------------------------------------- */

/* Magic, version, counts; then the metadata. */
static enum err_code gguf_read_head(struct gguf_rd *rd, struct gguf_file *g, uint64_t *n_tensors,
                                    struct err *e)
{
    unsigned char magic[4];
    enum err_code rc = gguf__rd_get(rd, magic, 4, e);

    if (rc == ERR_OK && memcmp(magic, "GGUF", 4) != 0)
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER, "not a GGUF file: no GGUF magic");
    if (rc == ERR_OK)
        rc = gguf__rd_u32(rd, &g->version, e);
    if (rc)
        return rc;
    if (g->version != 0 && (g->version & 0xFFFF) == 0)
        return err_setc(
            e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
            "big-endian GGUF (version bytes %08x) is not read: use a little-endian file",
            (unsigned)g->version);
    if (g->version == 1)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                        "GGUF version 1 is not read (only 2 and 3): convert the model again "
                        "with a current llama.cpp");
    if (g->version < 2 || g->version > 3)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                        "GGUF version %u is not read (only 2 and 3)", (unsigned)g->version);
    rc = gguf__rd_u64(rd, n_tensors, e);
    if (rc == ERR_OK)
        rc = gguf__rd_u64(rd, &g->n_kv, e);
    if (rc == ERR_OK && *n_tensors > rd->l->max_tensors)
        rc = err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "GGUF: %llu tensors, more than %llu",
                      (unsigned long long)*n_tensors, (unsigned long long)rd->l->max_tensors);
    if (rc == ERR_OK)
        rc = gguf__count_check(rd, *n_tensors, 32, "tensor infos", e);
    if (rc == ERR_OK)
        rc = gguf__count_check(rd, g->n_kv, 13, "metadata pairs", e);
    for (uint64_t i = 0; rc == ERR_OK && i < g->n_kv; i++)
        rc = gguf__read_kv(rd, g, e);
    return rc;
}

/* --- Tensor infos ------------------------------------------------------------- */

/* One tensor info: name, n_dims, ne[], type, offset (relative). */
static enum err_code gguf_read_info(struct gguf_rd *rd, struct gguf_tensor *t, struct err *e)
{
    uint32_t n_dims = 0;
    int64_t n = 1;
    int dt;
    enum err_code rc = gguf__rd_strdup(rd, &t->name, e);

    if (rc == ERR_OK)
        rc = gguf__rd_u32(rd, &n_dims, e);
    if (rc == ERR_OK && n_dims > GGUF_MAX_DIMS)
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                      "GGUF tensor '%.64s': %u dimensions, at most %d", t->name, n_dims,
                      GGUF_MAX_DIMS);
    for (uint32_t d = 0; rc == ERR_OK && d < n_dims; d++) {
        uint64_t v = 0;
        rc = gguf__rd_u64(rd, &v, e);
        if (rc == ERR_OK && v > (uint64_t)INT64_MAX)
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                          "GGUF tensor '%.64s': negative extent", t->name);
        else if (rc == ERR_OK && v != 0 && n > INT64_MAX / (int64_t)v)
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                          "GGUF tensor '%.64s': element count overflows 64 bits", t->name);
        if (rc)
            break;
        t->ne[d] = (int64_t)v;
        n *= (int64_t)v;
    }
    t->n_dims = (int)n_dims;
    if (rc == ERR_OK)
        rc = gguf__rd_u32(rd, &t->ggml_type, e);
    if (rc == ERR_OK)
        rc = gguf__rd_u64(rd, &t->offset, e);
    if (rc)
        return rc;
    dt = dtype_from_ggml(t->ggml_type);
    if (dt < 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_DTYPE,
                        "GGUF tensor '%.64s': ggml type %u is not a type ggml has", t->name,
                        (unsigned)t->ggml_type);
    t->dtype = (enum dtype)dt;
    if (n_dims > 0 && t->ne[0] % (int64_t)dtype_block_elems(t->dtype) != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                        "GGUF tensor '%.64s': row of %lld is not whole %s blocks of %u", t->name,
                        (long long)t->ne[0], dtype_name(t->dtype), dtype_block_elems(t->dtype));
    if (dtype_nbytes(t->dtype, (uint64_t)n, &t->nbytes) != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                        "GGUF tensor '%.64s': byte size overflows 64 bits", t->name);
    return ERR_OK;
}

/* Where a tensor lies, for the pairwise checks. */
struct gguf_span {
    uint64_t off, end;
    const char *name; /* borrowed */
};

static int gguf_cmp_name(const void *a, const void *b)
{
    const struct gguf_span *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static int gguf_cmp_offset(const void *a, const void *b)
{
    const struct gguf_span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Sorted by name, neighbours must differ; sorted by offset, they must not
 * overlap. */
static enum err_code gguf_check_pairs(struct gguf_span *v, size_t n, struct err *e)
{
    qsort(v, n, sizeof(struct gguf_span), gguf_cmp_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i - 1].name, v[i].name) == 0)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                            "GGUF: tensor name '%.64s' appears twice", v[i].name);
    qsort(v, n, sizeof(struct gguf_span), gguf_cmp_offset);
    for (size_t i = 1; i < n; i++)
        if (v[i - 1].end > v[i].off)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_OFFSETS,
                            "GGUF: tensors '%.64s' and '%.64s' overlap", v[i - 1].name, v[i].name);
    return ERR_OK;
}

/* Offsets aligned, every tensor inside the file, names unique, no overlap. */
static enum err_code gguf_check_extents(const struct rfile *f, struct gguf_file *g, struct err *e)
{
    struct gguf_span *v = NULL;
    enum err_code rc = ERR_OK;

    for (size_t i = 0; i < g->n_tensors; i++) {
        struct gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_OFFSETS,
                            "GGUF tensor '%.64s': offset %llu is not a multiple of the "
                            "alignment %u",
                            t->name, (unsigned long long)t->offset, (unsigned)g->alignment);
        if (t->offset > f->size || g->data_start > f->size - t->offset ||
            t->nbytes > f->size - g->data_start - t->offset)
            return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                            "GGUF tensor '%.64s': %llu bytes at data offset %llu pass the end "
                            "of the file (%llu bytes)",
                            t->name, (unsigned long long)t->nbytes, (unsigned long long)t->offset,
                            (unsigned long long)f->size);
        t->offset += g->data_start;
    }
    v = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof(struct gguf_span));
    if (v == NULL)
        return err_set(e, ERR_NOMEM, "out of memory checking GGUF tensors");
    for (size_t i = 0; i < g->n_tensors; i++)
        v[i] = (struct gguf_span){g->tensors[i].offset, g->tensors[i].offset + g->tensors[i].nbytes,
                                  g->tensors[i].name};
    rc = gguf_check_pairs(v, g->n_tensors, e);
    free(v);
    return rc;
}

/* --- Parsing ----------------------------------------------------------------- */

void gguf_file_free(struct gguf_file *g)
{
    if (g == NULL)
        return;
    /* n_tensors counts allocated tensors only (gguf_parse): the analyzer loses
     * track of g through the reader calls into gguf_read.c and reports a NULL
     * tensors here. */
    for (size_t i = 0; i < g->n_tensors; i++)
        /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
        free(g->tensors[i].name);
    free(g->tensors);
    free(g->architecture);
    memset(g, 0, sizeof(*g));
}

enum err_code gguf_parse(const struct rfile *f, const struct ckpt_limits *l, struct gguf_file *out,
                         struct err *e)
{
    struct ckpt_limits def;
    struct gguf_rd *rd = NULL;
    uint64_t n_tensors = 0;
    enum err_code rc = ERR_OK;

    memset(out, 0, sizeof(*out));
    out->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (l == NULL) {
        ckpt_limits_default(&def);
        l = &def;
    }
    rd = calloc(1, sizeof(*rd));
    if (rd == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory reading a GGUF header");
        goto out;
    }
    rd->f = f;
    rd->l = l;
    rc = gguf_read_head(rd, out, &n_tensors, e);
    if (rc)
        goto out;
    out->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof(*out->tensors));
    if (out->tensors == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory for %llu GGUF tensor infos",
                     (unsigned long long)n_tensors);
        goto out;
    }
    for (; rc == ERR_OK && out->n_tensors < n_tensors; out->n_tensors++)
        rc = gguf_read_info(rd, &out->tensors[out->n_tensors], e);
    if (rc)
        goto out;
    out->data_start = (rd->pos + out->alignment - 1) / out->alignment * out->alignment;
    if (out->n_tensors > 0 && out->data_start > f->size)
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED, "GGUF: the file ends before its data");
    if (rc == ERR_OK)
        rc = gguf_check_extents(f, out, e);
out:
    free(rd);
    if (rc)
        gguf_file_free(out);
    return rc;
}

/* --- The ckpt loader ------------------------------------------------------------ */

struct gguf_impl {
    struct rfile file; /* owned, open for the ckpt's life */
    struct gguf_file g;
};

static void gguf_impl_free(void *p)
{
    struct gguf_impl *impl = p;

    if (impl == NULL)
        return;
    gguf_file_free(&impl->g);
    rfile_close(&impl->file);
    free(impl);
}

/* The stored bytes, quantized or not: the tensor hash covers them as stored. */
static enum err_code gguf_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                               const void **data, struct err *e)
{
    const struct gguf_impl *impl = c->impl;
    const struct gguf_tensor *t = &impl->g.tensors[i];
    struct ckpt__extent x = {&impl->file, t->offset, t->nbytes};

    return ckpt__read_into(c, &x, buf, data, e);
}

static const struct ckpt_ops gguf_ops = {gguf_read, gguf_impl_free};

enum err_code gguf__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    struct gguf_impl *impl = calloc(1, sizeof(*impl));
    enum err_code rc;

    if (impl == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
    impl->file.fd = -1;
    c->impl = impl; /* ckpt_close() frees it from here on */
    c->ops = &gguf_ops;
    rc = rfile_open(path, &impl->file, e);
    if (rc == ERR_OK)
        rc = gguf_parse(&impl->file, &c->limits, &impl->g, e);
    for (size_t i = 0; rc == ERR_OK && i < impl->g.n_tensors; i++) {
        const struct gguf_tensor *t = &impl->g.tensors[i];
        int64_t shape[GGUF_MAX_DIMS];
        struct ckpt_tensor *ct = NULL;

        ERR_ASSERT(t->name != NULL);        /* every info of a parsed file has its name */
        for (int d = 0; d < t->n_dims; d++) /* ggml order, reversed: PyTorch [out, in] */
            shape[d] = t->ne[t->n_dims - 1 - d];
        rc = ckpt__tensor_add(c,
                              &(struct ckpt__entry){.name = t->name,
                                                    .name_len = strlen(t->name),
                                                    .dtype = t->dtype,
                                                    .ndim = t->n_dims,
                                                    .shape = shape},
                              &ct, e);
        if (rc == ERR_OK)
            ERR_ASSERT(ct->nbytes == t->nbytes);
    }
    return rc;
}
