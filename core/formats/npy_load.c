/* npy_load.c -- the .npy ckpt loader (reads the preamble and header of the
 * file, then the data on demand with pread) and npy__materialise, which the
 * npz loader shares. See npy.h.
 */
#include "core/formats/npy.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/npy_int.h"
#include "core/formats/rfile.h"

/* --- Reading the data ------------------------------------------------------------------ */

enum err_code npy__materialise(const struct ckpt *c, const struct npy_info *a,
                               const struct npy__source *src, struct ckpt_buf *buf,
                               const void **data, struct err *e)
{
    struct npy_info raw = *a;
    unsigned char *scratch = NULL;
    enum err_code rc;

    *data = NULL;
    rc = ckpt__buf_reserve(c, buf, a->nbytes ? a->nbytes : 1, e);
    if (rc)
        return rc;
    if (npy_is_c_contiguous_le(a)) {
        rc = src->read(src->ctx, buf->data, a->nbytes, e);
        if (rc == ERR_OK)
            *data = buf->data;
        return rc;
    }
    scratch = malloc(a->nbytes ? (size_t)a->nbytes : 1); /* within max_tensor_bytes */
    if (scratch == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for %llu bytes", (unsigned long long)a->nbytes);
    rc = src->read(src->ctx, scratch, a->nbytes, e);
    if (rc == ERR_OK) {
        raw.data = scratch;
        npy_to_c_le(&raw, buf->data);
        *data = buf->data;
    }
    free(scratch);
    return rc;
}

/* --- The .npy ckpt loader --------------------------------------------------------- */

struct npy_impl {
    struct rfile file;    /* owned, open for the ckpt's life */
    struct npy_info info; /* header only: data is NULL */
};

static void npy_impl_free(void *p)
{
    struct npy_impl *impl = p;

    if (impl == NULL)
        return;
    rfile_close(&impl->file);
    free(impl);
}

static enum err_code npy_read_file(void *ctx, void *dst, uint64_t n, struct err *e)
{
    const struct npy_impl *impl = ctx;

    return rfile_read(&impl->file, impl->info.data_offset, n, dst, e);
}

static enum err_code npy_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                              const void **data, struct err *e)
{
    const struct npy_impl *impl = c->impl;

    (void)i;
    return npy__materialise(
        c, &impl->info, &(struct npy__source){.read = npy_read_file, .ctx = c->impl}, buf, data, e);
}

static const struct ckpt_ops npy_ops = {npy_read, npy_impl_free};

/* Read the preamble and header of the open file and parse them. */
static enum err_code npy_load_head(struct npy_impl *impl, const struct ckpt_limits *l,
                                   struct err *e)
{
    unsigned char pre[NPY_PREAMBLE_MAX], *head = NULL;
    uint64_t size = impl->file.size, np = size < sizeof(pre) ? size : sizeof(pre), n;
    enum err_code rc;

    rc = rfile_read(&impl->file, 0, np, pre, e);
    if (rc)
        return rc;
    n = npy__head_len(pre, size, l);
    head = malloc(n ? (size_t)n : 1);
    if (head == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for a %llu-byte npy header",
                       (unsigned long long)n);
    rc = rfile_read(&impl->file, np, n - np, head + np, e);
    memcpy(head, pre, (size_t)np); /* one consistent preamble, even if the file changed */
    if (rc == ERR_OK)
        rc = npy__parse(head, n, size, l, &impl->info, e);
    free(head);
    return rc;
}

enum err_code npy__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    const char *base = strrchr(path, '/'), *dot;
    struct npy_impl *impl;
    struct ckpt__entry entry;
    enum err_code rc;

    base = base != NULL ? base + 1 : path;
    dot = strrchr(base, '.');
    impl = calloc(1, sizeof(*impl));
    if (impl == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
    impl->file.fd = -1;
    c->impl = impl; /* ckpt_close() frees it from here on */
    c->ops = &npy_ops;
    rc = rfile_open(path, &impl->file, e);
    if (rc == ERR_OK)
        rc = npy_load_head(impl, &c->limits, e);
    if (rc)
        return rc;
    entry = (struct ckpt__entry){.name = base,
                                 .name_len = dot != NULL && dot != base ? (size_t)(dot - base)
                                                                        : strlen(base),
                                 .dtype = impl->info.dtype,
                                 .ndim = impl->info.ndim,
                                 .shape = impl->info.shape};
    return ckpt__tensor_add(c, &entry, NULL, e);
}
