/* npz.c -- the .npz ckpt loader: a zip of <key>.npy members (docs/checkpoint-formats.md, NumPy).
 *
 * Opening the archive validates the zip structure and each member's npy
 * preamble and header, which are all it reads (or inflates) of a member: a
 * member of gigabytes of deflated zeros opens in microseconds. Reading a
 * tensor streams the member from the file (inflating 64 KiB input chunks)
 * into the caller's buffer, then checks the member ends exactly at its
 * declared size and matches its CRC-32, so memory stays bounded by one
 * tensor (plus one scratch copy for Fortran-order or big-endian arrays).
 */
#include "core/formats/npy.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/npy_int.h"
#include "core/formats/rfile.h"
#include "core/formats/zip.h"

struct npz_member {
    const struct zip_member *zm; /* borrowed from the archive */
    struct npy_info info;        /* header only: data is NULL */
};

struct npz_impl {
    struct rfile file;          /* owned, open for the ckpt's life */
    struct zip_archive *zip;    /* owned, borrows file */
    struct npz_member *members; /* owned, one per tensor */
};

static void npz_impl_free(void *p)
{
    struct npz_impl *impl = p;

    if (impl == NULL)
        return;
    free(impl->members);
    zip_free(impl->zip);
    rfile_close(&impl->file);
    free(impl);
}

/* Largest member we agree to read: one tensor plus its npy header. */
static uint64_t npz_member_limit(const struct ckpt *c)
{
    uint64_t a = c->limits.max_tensor_bytes, b = c->limits.max_header_bytes + 12;

    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Read (inflate) the npy preamble and header at the start of stream `s`
 * (member `zm`) and parse them; the stream stops right after the header. */
static enum err_code npz_member_head(const struct ckpt *c, struct zip_stream *s,
                                     const struct zip_member *zm, struct npy_info *info,
                                     struct err *e)
{
    unsigned char pre[NPY_PREAMBLE_MAX], *head = NULL;
    uint64_t np = zm->usize < sizeof(pre) ? zm->usize : sizeof(pre), n;
    enum err_code rc;

    rc = zip_stream_read(s, pre, np, e);
    if (rc)
        return rc;
    n = npy__head_len(pre, zm->usize, &c->limits); /* <= 12 + max_header_bytes */
    head = malloc(n ? (size_t)n : 1);
    if (head == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for a %llu-byte npy header",
                       (unsigned long long)n);
    memcpy(head, pre, (size_t)np);
    rc = zip_stream_read(s, head + np, n - np, e);
    if (rc == ERR_OK)
        rc = npy__parse(head, n, zm->usize, &c->limits, info, e);
    free(head);
    return rc;
}

static enum err_code npz_stream_raw(void *ctx, void *dst, uint64_t n, struct err *e)
{
    return zip_stream_read(ctx, dst, n, e);
}

static enum err_code npz_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                              const void **data, struct err *e)
{
    const struct npz_impl *impl = c->impl;
    const struct npz_member *m = &impl->members[i];
    struct zip_stream *s = NULL;
    enum err_code rc;

    *data = NULL;
    rc = zip_stream_open(impl->zip, m->zm, 1, &s, e);
    if (rc == ERR_OK)
        rc = zip_stream_skip(s, m->info.data_offset, e);
    if (rc == ERR_OK)
        rc = npy__materialise(c, &m->info, &(struct npy__source){.read = npz_stream_raw, .ctx = s},
                              buf, data, e);
    if (rc == ERR_OK)
        rc = zip_stream_finish(s, e); /* exact size, CRC-32 */
    zip_stream_close(s);
    if (rc) {
        *data = NULL;
        err_prefix(e, m->zm->name);
    }
    return rc;
}

static const struct ckpt_ops npz_ops = {npz_read, npz_impl_free};

/* Validate member `zm` (its npy header only) and list it as a tensor. */
static enum err_code npz_add(struct ckpt *c, struct npz_impl *impl, size_t i, struct err *e)
{
    const struct zip_member *zm = zip_member_at(impl->zip, i);
    struct npz_member *m = &impl->members[i];
    struct zip_stream *s = NULL;
    enum err_code rc;

    if (zm->name_len < 4 || strcmp(zm->name + zm->name_len - 4, ".npy") != 0 ||
        memchr(zm->name, '/', zm->name_len) != NULL)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "npz member '%.200s' is not a top-level <name>.npy", zm->name);
    m->zm = zm;
    if (zm->usize > npz_member_limit(c))
        rc = err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                      "member declares %llu bytes, more than the %llu allowed",
                      (unsigned long long)zm->usize, (unsigned long long)npz_member_limit(c));
    else
        rc = zip_stream_open(impl->zip, zm, 0, &s, e);
    if (rc == ERR_OK)
        rc = npz_member_head(c, s, zm, &m->info, e);
    zip_stream_close(s);
    if (rc) {
        err_prefix(e, zm->name);
        return rc;
    }
    return ckpt__tensor_add(c,
                            &(struct ckpt__entry){.name = zm->name,
                                                  .name_len = zm->name_len - 4,
                                                  .dtype = m->info.dtype,
                                                  .ndim = m->info.ndim,
                                                  .shape = m->info.shape},
                            NULL, e);
}

enum err_code npz__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    struct npz_impl *impl;
    enum err_code rc;
    size_t n;

    impl = calloc(1, sizeof(*impl));
    if (impl == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
    impl->file.fd = -1;
    c->impl = impl; /* ckpt_close() frees it from here on */
    c->ops = &npz_ops;
    rc = rfile_open(path, &impl->file, e);
    if (rc == ERR_OK)
        rc = zip_parse_file(&impl->file, c->limits.max_zip_members, &impl->zip, e);
    if (rc)
        return rc;
    n = zip_n_members(impl->zip);
    if (n == 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP, "npz archive has no members");
    impl->members = calloc(n, sizeof(*impl->members));
    if (impl->members == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for %zu npz members", n);
    for (size_t i = 0; i < n; i++) {
        rc = npz_add(c, impl, i, e);
        if (rc)
            return rc;
    }
    return ERR_OK;
}
