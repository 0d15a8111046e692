/* shards.c -- the ckpt loader of a shard index / folder of safetensors
 * shards.
 *
 * The plan (what the index or folder says: the folder, the shard names and
 * the weight map) is made in shards_plan.c, which also has shards_list(); see
 * shards_int.h. The loader opens each shard (kept open for the ckpt's life:
 * one descriptor per shard), validates its header and lists the tensors the
 * plan assigns to it.
 */
#include "core/formats/shards.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/rfile.h"
#include "core/formats/safetensors.h"
#include "core/formats/safetensors_int.h"
#include "core/formats/shards_int.h"

struct shards_loc {    /* where a listed tensor's bytes are */
    size_t shard;      /* index into files */
    uint64_t off, len; /* in the shard file */
};

struct shards_impl {
    size_t n_shards;
    struct rfile *files;     /* owned, one per shard, open for the ckpt's life */
    struct st_file **heads;  /* owned, one per shard: parsed headers */
    struct shards_loc *locs; /* owned, per listed tensor */
    size_t cap_locs;
};

static void shards_impl_free(void *v)
{
    struct shards_impl *impl = v;

    if (impl == NULL)
        return;
    for (size_t i = 0; i < impl->n_shards; i++) {
        st_free(impl->heads[i]);
        rfile_close(&impl->files[i]);
    }
    free(impl->files);
    free(impl->heads);
    free(impl->locs);
    free(impl);
}

static enum err_code shards_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                                 const void **data, struct err *e)
{
    const struct shards_impl *impl = c->impl;
    const struct shards_loc *l = &impl->locs[i];

    return ckpt__read_into(
        c, &(struct ckpt__extent){.f = &impl->files[l->shard], .off = l->off, .n = l->len}, buf,
        data, e);
}

static const struct ckpt_ops shards_ops = {shards_read, shards_impl_free};

/* Open and validate shard `s`. */
static enum err_code shards_open_one(struct ckpt *c, const struct shards_plan *p, size_t s,
                                     struct err *e)
{
    struct shards_impl *impl = c->impl;
    enum err_code rc;
    char *path;

    path = shards__join(p->dir, p->names[s]);
    if (path == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    rc = rfile_open(path, &impl->files[s], e);
    free(path);
    if (rc == ERR_NOTFOUND)
        return shards__missing(p->names[s], e);
    if (rc == ERR_OK)
        rc = st__read_head(&impl->files[s], &c->limits, &impl->heads[s], e);
    if (rc)
        err_prefix(e, p->names[s]);
    return rc;
}

/* 1 if tensor `t` of shard `s` is to be listed; fails on a name that two
 * shards hold (folder mode). */
static enum err_code shards_wanted(const struct ckpt *c, const struct shards_plan *p, size_t s,
                                   const struct st_tensor *t, int *want, struct err *e)
{
    const struct shards_impl *impl = c->impl;
    struct shards_wm key = {0}, *hit;

    *want = 0;
    if (p->wm == NULL) {
        for (size_t k = 0; k < s; k++)
            if (st_tensor_find(impl->heads[k], t->name, t->name_len) != NULL)
                return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                                "tensor '%.200s' is in both '%.200s' and '%.200s'", t->name,
                                p->names[k], p->names[s]);
        *want = 1;
        return ERR_OK;
    }
    key.name = t->name;
    hit = bsearch(&key, p->wm, p->n_wm, sizeof(*p->wm), shards__cmp_wm);
    *want = hit != NULL && hit->shard_idx == s;
    return ERR_OK;
}

/* List the tensors of shard `s`; check it holds all the index gives it. */
static enum err_code shards_add_tensors(struct ckpt *c, const struct shards_plan *p, size_t s,
                                        struct err *e)
{
    struct shards_impl *impl = c->impl;
    const struct st_file *f = impl->heads[s];
    enum err_code rc;
    int want;

    for (size_t i = 0; i < st_n_tensors(f); i++) {
        const struct st_tensor *t = st_tensor_at(f, i);
        rc = shards_wanted(c, p, s, t, &want, e);
        if (rc)
            return rc;
        if (!want)
            continue;
        if (c->n_tensors == impl->cap_locs) {
            size_t cap = impl->cap_locs ? 2 * impl->cap_locs : 64;
            struct shards_loc *nl = realloc(impl->locs, cap * sizeof(*nl));
            if (nl == NULL)
                return err_set(e, ERR_NOMEM, "out of memory listing tensors");
            impl->locs = nl;
            impl->cap_locs = cap;
        }
        /* Each listed tensor adds one loc and one c->tensors entry, and ckpt_open's c starts
         * with none: locs was grown above for the first, never NULL here. */
        /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
        impl->locs[c->n_tensors] =
            (struct shards_loc){s, 8 + st_header_len(f) + t->begin, t->end - t->begin};
        rc = st__ckpt_add(c, t, e);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < p->n_wm; i++)
        if (p->wm[i].shard_idx == s &&
            st_tensor_find(f, p->wm[i].name, strlen(p->wm[i].name)) == NULL)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                            "tensor '%.200s' not found in shard '%.200s'", p->wm[i].name,
                            p->names[s]);
    return ERR_OK;
}

enum err_code shards__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    struct shards_impl *impl = NULL;
    struct shards_plan p;
    enum err_code rc;

    rc = shards__plan_make(path, &c->limits, &p, e);
    if (rc)
        goto out;
    impl = calloc(1, sizeof(*impl));
    if (impl == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    c->impl = impl; /* ckpt_close() frees it from here on */
    c->ops = &shards_ops;
    impl->files = calloc(p.n_names ? p.n_names : 1, sizeof(*impl->files));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
    impl->heads = calloc(p.n_names ? p.n_names : 1, sizeof(*impl->heads));
    if (impl->files == NULL || impl->heads == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t s = 0; s < p.n_names; s++)
        impl->files[s].fd = -1;
    impl->n_shards = p.n_names;
    for (size_t s = 0; s < p.n_names && rc == ERR_OK; s++) {
        rc = shards_open_one(c, &p, s, e);
        if (rc == ERR_OK)
            rc = shards_add_tensors(c, &p, s, e);
    }
out:
    shards__plan_free(&p);
    return rc;
}
