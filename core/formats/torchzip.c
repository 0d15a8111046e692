/* torchzip.c -- the torch.save zip loader (docs/checkpoint-formats.md,
 * PyTorch zip files) and on-demand tensor reading. See torchzip.h. The
 * tensor listing is in torchzip_walk.c.
 */
#include "core/formats/torchzip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/torchzip_int.h"

#define TZ_SMALL_RECORD 4096 /* byteorder / version records */

static void tz_free_impl(void *p)
{
    struct tz_impl *impl = p;

    if (impl == NULL)
        return;
    zip_free(impl->zip);
    rfile_close(&impl->file);
    free(impl->storages);
    free(impl->views);
    free(impl);
}

int tz_is_npz_layout(const struct zip_archive *z)
{
    size_t n = zip_n_members(z);

    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const struct zip_member *m = zip_member_at(z, i);
        if (m->name_len < 4 || strcmp(m->name + m->name_len - 4, ".npy") != 0 ||
            memchr(m->name, '/', m->name_len) != NULL)
            return 0;
    }
    return 1;
}

/* The member "<folder>/<rel>", or NULL. */
static const struct zip_member *tz_find(const struct tz_impl *impl, const char *folder,
                                        const char *rel)
{
    char name[512];
    int n = snprintf(name, sizeof(name), "%s/%s", folder, rel);

    if (n < 0 || (size_t)n >= sizeof(name))
        return NULL;
    return zip_find(impl->zip, name);
}

/* One top-level folder holding every member; TorchScript refused. */
static enum err_code tz_check_folder(const struct tz_impl *impl, char *folder, size_t cap,
                                     struct err *e)
{
    const struct zip_member *first;
    const char *slash;
    size_t n = zip_n_members(impl->zip), nf;

    if (n == 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD, "empty zip: no data.pkl");
    first = zip_member_at(impl->zip, 0);
    slash = strchr(first->name, '/');
    if (slash == NULL || slash == first->name)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "first member '%.200s' is not inside an archive folder", first->name);
    nf = (size_t)(slash - first->name);
    if (nf >= cap)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP, "archive folder name too long");
    memcpy(folder, first->name, nf);
    folder[nf] = '\0';
    for (size_t i = 0; i < n; i++) {
        const struct zip_member *m = zip_member_at(impl->zip, i);
        if (m->name_len <= nf || memcmp(m->name, folder, nf) != 0 || m->name[nf] != '/')
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                            "member '%.200s' is outside the archive folder '%s'", m->name, folder);
        if (strcmp(m->name + nf + 1, "constants.pkl") == 0 ||
            strncmp(m->name + nf + 1, "code/", 5) == 0)
            return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                            "TorchScript archive; send model.state_dict()");
    }
    return ERR_OK;
}

/* The byteorder record: absent or "little" -> 0, "big" -> 1. */
static enum err_code tz_read_byteorder(struct tz_impl *impl, const char *folder, struct err *e)
{
    const struct zip_member *m = tz_find(impl, folder, "byteorder");
    const unsigned char *data;
    unsigned char *owned = NULL;
    enum err_code rc;
    size_t n;

    impl->big_endian = 0;
    if (m == NULL)
        return ERR_OK;
    rc = zip_member_read(impl->zip, m,
                         &(struct zip_read_opts){.limit = TZ_SMALL_RECORD, .verify_crc = 1}, &data,
                         &owned, e);
    if (rc)
        return rc;
    n = (size_t)m->usize;
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
        n--;
    if (n == 3 && memcmp(data, "big", 3) == 0)
        impl->big_endian = 1;
    else if (!(n == 6 && memcmp(data, "little", 6) == 0))
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                      "byteorder record is neither little nor big");
    free(owned);
    return rc;
}

/* Every storage has its record, of exactly numel x element size bytes. */
static enum err_code tz_bind_storages(const struct ckpt *c, struct tz_impl *impl,
                                      const char *folder, const struct pkl_result *pr,
                                      struct err *e)
{
    size_t n = pkl_n_storages(pr);

    impl->storages = calloc(n ? n : 1, sizeof(*impl->storages));
    if (impl->storages == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for %zu storages", n);
    impl->n_storages = n;
    for (size_t i = 0; i < n; i++) {
        const struct pkl_storage *s = pkl_storage_at(pr, i);
        char rel[80];
        const struct zip_member *m;
        uint64_t es = s->untyped ? 1 : dtype_size(s->dtype);
        (void)snprintf(rel, sizeof(rel), "data/%s", s->key);
        m = tz_find(impl, folder, rel);
        if (m == NULL)
            return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                            "storage record '%s/%s' is missing", folder, rel);
        if (es == 0 || s->numel > UINT64_MAX / es)
            return err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW, "storage '%s': byte size overflows",
                            s->key);
        if (m->usize != s->numel * es)
            return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                            "record '%s' holds %llu bytes, %llu expected", m->name,
                            (unsigned long long)m->usize, (unsigned long long)s->numel * es);
        if (m->method != ZIP_METHOD_STORED && m->method != ZIP_METHOD_DEFLATE)
            return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_COMPRESSION,
                            "record '%s' uses compression method %u", m->name, (unsigned)m->method);
        if (m->method == ZIP_METHOD_DEFLATE && m->usize > c->limits.max_tensor_bytes)
            return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                            "record '%s' would inflate to %llu bytes (limit %llu)", m->name,
                            (unsigned long long)m->usize,
                            (unsigned long long)c->limits.max_tensor_bytes);
        impl->storages[i].m = m;
        impl->storages[i].nbytes = m->usize;
    }
    return ERR_OK;
}

/* Unpickle data.pkl and list its tensors. */
static enum err_code tz_load_pickle(struct ckpt *c, struct tz_impl *impl, const char *folder,
                                    struct err *e)
{
    const struct zip_member *m = tz_find(impl, folder, "data.pkl");
    struct pkl_result *pr = NULL;
    const unsigned char *data;
    unsigned char *owned = NULL;
    enum err_code rc;

    if (m == NULL)
        return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD, "archive '%s' has no data.pkl",
                        folder);
    rc = zip_member_read(
        impl->zip, m, &(struct zip_read_opts){.limit = c->limits.max_pickle_bytes, .verify_crc = 1},
        &data, &owned, e);
    if (rc)
        goto out;
    rc = pkl_parse(data, (size_t)m->usize, &c->limits, &pr, e);
    if (rc)
        goto out;
    rc = tz_bind_storages(c, impl, folder, pr, e);
    if (rc)
        goto out;
    rc = tz__list_tensors(c, impl, pkl_root(pr), e);
out:
    pkl_free(pr);
    free(owned);
    return rc;
}

/* Copy element by element in C order (stride 0 allowed); swap bytes if asked. */
static void tz_gather(const struct ckpt_tensor *t, const struct tz_view *v,
                      const unsigned char *src, unsigned char *dst, int swap)
{
    size_t es = dtype_size(t->dtype), unit = es;
    int64_t idx[PKL_MAX_RANK] = {0};
    uint64_t pos = v->offset;

    if (t->dtype == DTYPE_C64 || t->dtype == DTYPE_C128)
        unit = es / 2; /* each half of a complex number is swapped on its own */
    for (uint64_t k = 0; k < t->n_elems; k++) {
        const unsigned char *s = src + pos * es;
        unsigned char *d = dst + k * es;
        if (swap) {
            for (size_t h = 0; h < es; h += unit)
                for (size_t b = 0; b < unit; b++)
                    d[h + b] = s[h + unit - 1 - b];
        } else {
            memcpy(d, s, es);
        }
        for (int dim = t->ndim - 1; dim >= 0; dim--) { /* odometer over the shape */
            if (++idx[dim] < t->shape[dim]) {
                pos += (uint64_t)v->stride[dim];
                break;
            }
            pos -= (uint64_t)v->stride[dim] * (uint64_t)(t->shape[dim] - 1);
            idx[dim] = 0;
        }
    }
}

/* Row-major strides of the shape, ignoring dims of size 1. */
static int tz_contiguous(const struct ckpt_tensor *t, const struct tz_view *v)
{
    int64_t expect = 1;

    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && v->stride[d] != expect)
            return 0;
        expect *= t->shape[d];
    }
    return 1;
}

/* The storage bytes [lo, lo + n) of `s` into `dst`: a pread for stored
 * records; deflated ones are inflated from the start, and the rest of the
 * stream is checked to end at the declared size. */
static enum err_code tz_read_range(const struct tz_impl *impl, const struct tz_storage *s,
                                   uint64_t lo, uint64_t n, unsigned char *dst, struct err *e)
{
    struct zip_stream *zs = NULL;
    enum err_code rc;

    if (s->m->method == ZIP_METHOD_STORED)
        return rfile_read(&impl->file, s->m->data_offset + lo, n, dst, e);
    rc = zip_stream_open(impl->zip, s->m, 0, &zs, e);
    if (rc == ERR_OK)
        rc = zip_stream_skip(zs, lo, e);
    if (rc == ERR_OK)
        rc = zip_stream_read(zs, dst, n, e);
    if (rc == ERR_OK)
        rc = zip_stream_finish(zs, e);
    zip_stream_close(zs);
    return rc;
}

/* The element span [first, last] of view `v` of tensor `t` (n_elems > 0). */
static void tz_span(const struct ckpt_tensor *t, const struct tz_view *v, uint64_t *first,
                    uint64_t *last)
{
    *first = v->offset;
    *last = v->offset;
    for (int d = 0; d < t->ndim; d++) /* strides are >= 0, extent checked when listed */
        *last += (uint64_t)(t->shape[d] - 1) * (uint64_t)v->stride[d];
}

static enum err_code tz_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                             const void **data, struct err *e)
{
    const struct tz_impl *impl = c->impl;
    const struct ckpt_tensor *t = &c->tensors[i];
    const struct tz_view *v = &impl->views[i];
    const struct tz_storage *s = &impl->storages[v->storage];
    uint64_t es = dtype_size(t->dtype), first, last, span;
    unsigned char *ext = NULL;
    enum err_code rc;

    *data = NULL;
    rc = ckpt__buf_reserve(c, buf, t->nbytes ? t->nbytes : 1, e);
    if (rc || t->n_elems == 0)
        goto out;
    if (tz_contiguous(t, v) && !impl->big_endian) {
        rc = tz_read_range(impl, s, v->offset * es, t->nbytes, buf->data, e);
        goto out;
    }
    tz_span(t, v, &first, &last);
    span = (last - first + 1) * es; /* inside the storage: checked when listed */
    if (span > c->limits.max_tensor_bytes) {
        rc = err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                      "tensor '%.200s': its view spans %llu bytes of storage (limit %llu)", t->name,
                      (unsigned long long)span, (unsigned long long)c->limits.max_tensor_bytes);
        goto out;
    }
    ext = malloc((size_t)span);
    if (ext == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory reading '%.200s'", t->name);
        goto out;
    }
    rc = tz_read_range(impl, s, first * es, span, ext, e);
    if (rc == ERR_OK) {
        struct tz_view rel = *v;
        rel.offset = 0; /* ext starts at the view's first element */
        tz_gather(t, &rel, ext, buf->data, impl->big_endian);
    }
out:
    free(ext);
    if (rc == ERR_OK)
        *data = buf->data;
    return rc;
}

static const struct ckpt_ops tz_ops = {tz_read, tz_free_impl};

/* Parse the zip of impl->file, check its folder and byteorder, unpickle and
 * list; `impl` is handed to `c` (freed by ckpt_close) once checked. `path`:
 * the file for the npz hand-off, NULL for a window (an npz is refused). */
static enum err_code tz_load_file(struct ckpt *c, struct tz_impl *impl, const char *path,
                                  struct err *e)
{
    enum err_code rc;
    char folder[256];

    rc = zip_parse_file(&impl->file, c->limits.max_zip_members, &impl->zip, e);
    if (rc)
        goto out;
    if (tz_is_npz_layout(impl->zip)) {
        tz_free_impl(impl);
        impl = NULL;
        if (path == NULL)
            return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                            "an npz archive where a torch.save archive was expected");
        c->format = CKPT_FORMAT_NPZ;
        return npz__ckpt_load(c, path, e);
    }
    rc = tz_check_folder(impl, folder, sizeof(folder), e);
    if (rc)
        goto out;
    rc = tz_read_byteorder(impl, folder, e);
    if (rc)
        goto out;
    c->impl = impl; /* from here ckpt_close() frees it */
    c->ops = &tz_ops;
    impl = NULL;
    rc = tz_load_pickle(c, c->impl, folder, e);
out:
    tz_free_impl(impl);
    return rc;
}

enum err_code tz__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct tz_impl *impl = NULL;

    impl = calloc(1, sizeof(*impl));
    if (impl == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
    impl->file.fd = -1;
    rc = rfile_open(path, &impl->file, e);
    if (rc) {
        tz_free_impl(impl);
        return rc;
    }
    return tz_load_file(c, impl, path, e);
}

enum err_code tz__ckpt_load_window(struct ckpt *c, const struct rfile *f, uint64_t off,
                                   uint64_t len, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct tz_impl *impl = NULL;

    impl = calloc(1, sizeof(*impl));
    if (impl == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening an archive in %s", rfile_name(f));
    impl->file.fd = -1;
    rc = rfile_window(f, off, len, &impl->file, e);
    if (rc) {
        tz_free_impl(impl);
        return rc;
    }
    return tz_load_file(c, impl, NULL, e);
}
