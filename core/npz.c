/* npz.c -- the .npz ckpt loader: a zip of <key>.npy members (spec §3.2).
 *
 * Every member is validated when the archive is opened (zip structure,
 * CRC-32, npy header and data length). Stored members are parsed in place
 * and read straight from the mapping when already C order and little-endian.
 * Deflated members are inflated once at open to validate them, then freed,
 * and inflated again when read, so memory stays bounded by one tensor.
 */
#include "core/npy.h"

#include <stdlib.h>
#include <string.h>

#include "core/ckpt_int.h"
#include "core/fmap.h"
#include "core/zip.h"

struct npz_member {
    const struct zip_member *zm; /* borrowed from the archive */
    struct npy_info info;        /* stored members: data points into the mapping */
};

struct npz_impl {
    struct fmap map;            /* owned */
    struct zip_archive *zip;    /* owned, borrows map */
    struct npz_member *members; /* owned, one per tensor */
};

static void npz_impl_free(void *p)
{
    struct npz_impl *impl = p;

    if (impl == NULL)
        return;
    free(impl->members);
    zip_free(impl->zip);
    fmap_close(&impl->map);
    free(impl);
}

/* Largest member we agree to hold: one tensor plus its npy header. */
static uint64_t npz_member_limit(const struct ckpt *c)
{
    uint64_t a = c->limits.max_tensor_bytes, b = c->limits.max_header_bytes + 12;

    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* The member's bytes (inflated into *owned when deflated) parsed as npy. */
static enum err_code npz_member_parse(const struct ckpt *c, const struct npz_impl *impl,
                                      const struct zip_member *zm, struct npy_info *info,
                                      unsigned char **owned, struct err *e)
{
    const unsigned char *data;
    enum err_code rc;

    rc = zip_member_read(impl->zip, zm, npz_member_limit(c), 1, &data, owned, e);
    if (rc == ERR_OK)
        rc = npy_parse(data, zm->usize, &c->limits, info, e);
    if (rc)
        err_prefix(e, zm->name);
    return rc;
}

static enum err_code npz_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                              const void **data, struct err *e)
{
    const struct npz_impl *impl = c->impl;
    const struct npz_member *m = &impl->members[i];
    unsigned char *owned = NULL;
    struct npy_info info = m->info;
    enum err_code rc = ERR_OK;

    if (m->zm->method == ZIP_METHOD_STORED && npy_is_c_contiguous_le(&info)) {
        *data = info.data;
        goto out;
    }
    if (m->zm->method != ZIP_METHOD_STORED) {
        rc = npz_member_parse(c, impl, m->zm, &info, &owned, e);
        if (rc)
            goto out;
    }
    rc = ckpt__buf_reserve(c, buf, info.nbytes, e);
    if (rc)
        goto out;
    npy_to_c_le(&info, buf->data);
    *data = buf->data;
out:
    free(owned);
    return rc;
}

static const struct ckpt_ops npz_ops = {npz_read, npz_impl_free};

/* Validate member `zm` and list it as a tensor. */
static enum err_code npz_add(struct ckpt *c, struct npz_impl *impl, size_t i, struct err *e)
{
    const struct zip_member *zm = zip_member_at(impl->zip, i);
    struct npz_member *m = &impl->members[i];
    unsigned char *owned = NULL;
    enum err_code rc;

    if (zm->name_len < 4 || strcmp(zm->name + zm->name_len - 4, ".npy") != 0 ||
        memchr(zm->name, '/', zm->name_len) != NULL)
        return err_setc(e, ERR_FORMAT, "invalid_zip",
                        "npz member '%.200s' is not a top-level <name>.npy", zm->name);
    m->zm = zm;
    rc = npz_member_parse(c, impl, zm, &m->info, &owned, e);
    if (owned != NULL)
        m->info.data = NULL; /* points into the inflation buffer freed here */
    free(owned);
    if (rc)
        return rc;
    return ckpt__tensor_add(c, zm->name, zm->name_len - 4, m->info.dtype, m->info.ndim,
                            m->info.shape, NULL, e);
}

enum err_code npz__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    struct npz_impl *impl;
    enum err_code rc;
    size_t n;

    impl = calloc(1, sizeof(*impl));
    if (impl == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
    c->impl = impl; /* ckpt_close() frees it from here on */
    c->ops = &npz_ops;
    rc = fmap_open(path, &impl->map, e);
    if (rc == ERR_OK)
        rc = ckpt__map_register(c, &impl->map, e);
    if (rc == ERR_OK)
        rc = zip_parse(impl->map.data, impl->map.size, c->limits.max_zip_members, &impl->zip, e);
    if (rc)
        return rc;
    n = zip_n_members(impl->zip);
    if (n == 0)
        return err_setc(e, ERR_FORMAT, "invalid_zip", "npz archive has no members");
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
