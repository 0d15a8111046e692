/* deepspeed_z3.c -- ZeRO-3 reconstruction (docs/deepspeed.md, ZeRO-3), after
 * DeepSpeed v0.19.5's deepspeed/utils/zero_to_fp32.py
 * (_get_fp32_state_dict_from_zero3_checkpoint): buffers from rank 0's model
 * states, the frozen parameters from every rank's frozen_param_fragments,
 * then each parameter of param_shapes in order, ceil(numel / world) fp32
 * elements from every rank's flat groups at a running offset, the padding
 * dropped, then the shared_params aliases. Only the slices of one
 * tensor are read at a time, straight from the optimizer files (opened and
 * read by deepspeed_rank.c). See deepspeed.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/deepspeed_int.h"
#include "core/formats/pickle.h"
#include "core/formats/zip.h"

static void ds_z3_free(void *p)
{
    struct ds_z3 *z = p;

    if (z == NULL)
        return;
    ckpt_close(z->model);
    for (size_t r = 1; z->ms != NULL && r < z->world; r++)
        ckpt_close(z->ms[r]);
    free(z->ms);
    for (size_t r = 0; z->ranks != NULL && r < z->world; r++) {
        ds__pt_close(&z->ranks[r].pt);
        free(z->ranks[r].groups);
    }
    free(z->ranks);
    free(z->map);
    free(z);
}

/* Add a tensor to `c` with its map entry. */
static enum err_code ds_add(struct ckpt *c, struct ds_z3 *z, const struct ckpt__entry *en,
                            const struct ds_map *mp, struct ckpt_tensor **out, struct err *e)
{
    enum err_code rc;

    if (c->n_tensors == z->cap_map) {
        size_t cap = z->cap_map ? 2 * z->cap_map : 64;
        struct ds_map *nm = realloc(z->map, cap * sizeof(*nm));
        if (nm == NULL)
            return err_set(e, ERR_NOMEM, "out of memory listing tensors");
        z->map = nm;
        z->cap_map = cap;
    }
    rc = ckpt__tensor_add(c, en, out, e);
    if (rc == ERR_OK)
        z->map[c->n_tensors - 1] = *mp;
    return rc;
}

/* Add "module.<key>" (key `key_len` bytes) with `ndim` dims `shape`. */
static enum err_code ds_add_named(struct ckpt *c, struct ds_z3 *z, const char *key, size_t key_len,
                                  enum dtype dt, int ndim, const int64_t *shape,
                                  const struct ds_map *mp, struct ckpt_tensor **out, struct err *e)
{
    char *name = malloc(key_len + 8);
    enum err_code rc;

    if (name == NULL)
        return err_set(e, ERR_NOMEM, "out of memory listing tensors");
    (void)snprintf(name, 8, "module.");
    memcpy(name + 7, key, key_len);
    name[key_len + 7] = '\0';
    rc = ds_add(c, z, &(struct ckpt__entry){name, key_len + 7, dt, ndim, shape}, mp, out, e);
    free(name);
    return rc;
}

/* 1 if str `name` is an item of list `names`. */
static int ds_listed(const struct pkl_value *names, const char *name)
{
    for (size_t i = 0; names != NULL && i < names->n_items; i++)
        if (names->items[i]->kind == PKL_STR && strcmp(names->items[i]->str, name) == 0)
            return 1;
    return 0;
}

/* The buffers: rank 0's module tensors named in buffer_names, module order. */
static enum err_code ds_add_buffers(struct ckpt *c, struct ds_z3 *z, const struct pkl_value *root,
                                    struct err *e)
{
    const struct pkl_value *names = pkl_dict_get(root, "buffer_names");
    enum err_code rc = ERR_OK;

    if (names != NULL && names->kind != PKL_LIST && names->kind != PKL_TUPLE)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "buffer_names is not a list");
    for (size_t i = 0; rc == ERR_OK && i < ckpt_n_tensors(z->model); i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(z->model, i);
        if (strncmp(t->name, "module.", 7) != 0 || !ds_listed(names, t->name + 7))
            continue;
        rc = ds_add_named(c, z, t->name + 7, strlen(t->name + 7), t->dtype, t->ndim, t->shape,
                          &(struct ds_map){.src = DS_SRC_BUFFER, .idx = i}, NULL, e);
    }
    return rc;
}

/* One entry of param_shapes: its shape (a torch.Size: a tuple of ints). */
static enum err_code ds_shape_of(const struct pkl_value *v, int64_t *shape, int *ndim,
                                 struct err *e)
{
    if (v->kind != PKL_TUPLE && v->kind != PKL_LIST)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                        "a param_shapes entry is a %s, not a torch.Size", pkl_kind_name(v->kind));
    if (v->n_items > CKPT_MAX_RANK)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "a param_shapes rank exceeds %d",
                        CKPT_MAX_RANK);
    for (size_t d = 0; d < v->n_items; d++) {
        if (v->items[d]->kind != PKL_INT || v->items[d]->i < 0)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                            "a param_shapes entry holds a bad dimension");
        shape[d] = v->items[d]->i;
    }
    *ndim = (int)v->n_items;
    return ERR_OK;
}

/* Rank r's model states: `model` for rank 0. */
static const struct ckpt *ds_ms(const struct ds_z3 *z, size_t r)
{
    return r == 0 ? z->model : z->ms[r];
}

/* Open the model states of ranks 1.. (they hold the frozen fragments). */
static enum err_code ds_open_model_states(struct ckpt *c, struct ds_z3 *z, const char *dir,
                                          struct err *e)
{
    enum err_code rc = ERR_OK;
    char path[4200];

    z->ms = calloc(z->world, sizeof(struct ckpt *));
    if (z->ms == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", dir);
    for (size_t r = 1; rc == ERR_OK && r < z->world; r++) {
        int n =
            snprintf(path, sizeof(path), "%s/zero_pp_rank_%zu_mp_rank_00_model_states.pt", dir, r);
        if (n < 0 || (size_t)n >= sizeof(path))
            return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "%s: path too long", dir);
        rc = ckpt_open(path, CKPT_FORMAT_TORCH_ZIP, &c->limits, &z->ms[r], e);
        if (rc == ERR_NOTFOUND)
            rc =
                err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                         "%s is missing (it holds rank %zu's frozen parameter fragments)", path, r);
    }
    return rc;
}

/* The index of "frozen_param_fragments.<key>" in every rank's model states
 * (the same in all), each a 1-D tensor of `part` elements of one dtype. */
static enum err_code ds_fragment_find(const struct ds_z3 *z, const char *key, uint64_t part,
                                      size_t *idx, struct err *e)
{
    const struct ckpt_tensor *t0 = NULL;
    char name[4200];
    int n = snprintf(name, sizeof(name), "frozen_param_fragments.%s", key);

    if (n < 0 || (size_t)n >= sizeof(name))
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "frozen parameter name too long");
    for (size_t r = 0; r < z->world; r++) {
        const struct ckpt *m = ds_ms(z, r);
        size_t i = 0, cnt = ckpt_n_tensors(m);
        const struct ckpt_tensor *t;
        while (i < cnt && strcmp(ckpt_tensor_at(m, i)->name, name) != 0)
            i++;
        if (i == cnt)
            return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                            "rank %zu's model states have no %.200s", r, name);
        t = ckpt_tensor_at(m, i);
        if (r == 0) {
            *idx = i;
            t0 = t;
        }
        if (i != *idx || t->ndim != 1 || t->n_elems != part || t->dtype != t0->dtype ||
            dtype_bits(t->dtype) % 8 != 0)
            return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                            "rank %zu's %.200s is not a 1-D partition of %llu elements like "
                            "rank 0's",
                            r, name, (unsigned long long)part);
    }
    return ERR_OK;
}

/* The frozen parameters (frozen_param_shapes, in order): every rank's
 * fragment concatenated, cut to the shape (_zero3_merge_frozen_params). */
static enum err_code ds_add_frozen(struct ckpt *c, struct ds_z3 *z, const struct pkl_value *root,
                                   const char *dir, struct err *e)
{
    const struct pkl_value *f = pkl_dict_get(root, "frozen_param_shapes");
    int64_t shape[CKPT_MAX_RANK];
    enum err_code rc;
    int ndim = 0;

    if (f == NULL || f->kind == PKL_NONE || (f->kind == PKL_DICT && f->n_items == 0))
        return ERR_OK;
    if (f->kind != PKL_DICT)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "frozen_param_shapes is not a dict");
    rc = ds_open_model_states(c, z, dir, e);
    for (size_t k = 0; rc == ERR_OK && k < f->n_items; k++) {
        struct ds_map mp = {.src = DS_SRC_FROZEN};
        uint64_t n = 1, pad;
        if (f->items[k]->kind != PKL_STR)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                            "frozen_param_shapes has a key that is not a str");
        rc = ds_shape_of(f->vals[k], shape, &ndim, e);
        for (int d = 0; rc == ERR_OK && d < ndim; d++) {
            if (shape[d] != 0 && n > UINT64_MAX / (uint64_t)shape[d])
                return err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW, "frozen shape overflows");
            n *= (uint64_t)shape[d];
        }
        ds_zero3_partition(n, z->world, &mp.part, &pad);
        if (rc == ERR_OK)
            rc = ds_fragment_find(z, f->items[k]->str, mp.part, &mp.idx, e);
        if (rc == ERR_OK)
            rc = ds_add_named(c, z, f->items[k]->str, f->items[k]->len,
                              ckpt_tensor_at(z->model, mp.idx)->dtype, ndim, shape, &mp, NULL, e);
    }
    return rc;
}

/* A frozen parameter: each rank's fragment in turn, the padding dropped. */
static enum err_code ds_frozen_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                                    const void **data, struct err *e)
{
    const struct ds_z3 *z = c->impl;
    const struct ds_map *mp = &z->map[i];
    const struct ckpt_tensor *t = &c->tensors[i];
    uint64_t es = dtype_bits(t->dtype) / 8;
    struct ckpt_buf frag = {0};
    enum err_code rc;

    rc = ckpt__buf_reserve(c, buf, t->nbytes ? t->nbytes : 1, e);
    for (size_t r = 0; rc == ERR_OK && r < z->world && r * mp->part < t->n_elems; r++) {
        uint64_t at = r * mp->part, n = t->n_elems - at < mp->part ? t->n_elems - at : mp->part;
        const void *d = NULL;
        rc = ckpt_tensor_read(ds_ms(z, r), mp->idx, &frag, &d, e);
        if (rc == ERR_OK)
            memcpy((unsigned char *)buf->data + at * es, d, n * es);
    }
    ckpt_buf_free(&frag);
    if (rc == ERR_OK)
        *data = buf->data;
    return rc;
}

/* The trainable parameters, param_shapes order, each `part` elements per rank. */
static enum err_code ds_add_params(struct ckpt *c, struct ds_z3 *z, const struct pkl_value *root,
                                   uint64_t *consumed, struct err *e)
{
    const struct pkl_value *groups = pkl_dict_get(root, "param_shapes");
    int64_t shape[CKPT_MAX_RANK];
    enum err_code rc = ERR_OK;
    struct ckpt_tensor *t;
    uint64_t off = 0, pad;
    int ndim = 0;

    if (groups == NULL || (groups->kind != PKL_LIST && groups->kind != PKL_TUPLE))
        return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                        "rank 0's model states have no param_shapes list");
    for (size_t g = 0; rc == ERR_OK && g < groups->n_items; g++) {
        const struct pkl_value *d = groups->items[g];
        if (d->kind != PKL_DICT)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                            "param_shapes[%zu] is a %s, not a dict", g, pkl_kind_name(d->kind));
        for (size_t k = 0; rc == ERR_OK && k < d->n_items; k++) {
            struct ds_map mp = {.src = DS_SRC_PARAM, .offset = off};
            if (d->items[k]->kind != PKL_STR)
                return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                                "param_shapes[%zu] has a key that is not a str", g);
            rc = ds_shape_of(d->vals[k], shape, &ndim, e);
            if (rc == ERR_OK)
                rc = ds_add_named(c, z, d->items[k]->str, d->items[k]->len, DTYPE_F32, ndim, shape,
                                  &mp, &t, e);
            if (rc)
                return rc;
            ds_zero3_partition(t->n_elems, z->world, &z->map[c->n_tensors - 1].part, &pad);
            if (z->map[c->n_tensors - 1].part > UINT64_MAX - off)
                return err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW, "param_shapes overflow");
            off += z->map[c->n_tensors - 1].part;
        }
    }
    *consumed = off;
    return rc;
}

/* shared_params {alias: name}: the alias repeats a tensor already listed. */
static enum err_code ds_add_shared(struct ckpt *c, struct ds_z3 *z, const struct pkl_value *root,
                                   struct err *e)
{
    const struct pkl_value *sh = pkl_dict_get(root, "shared_params");
    enum err_code rc = ERR_OK;
    struct ckpt_tensor *t;

    if (sh == NULL || sh->kind == PKL_NONE)
        return ERR_OK;
    if (sh->kind != PKL_DICT)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "shared_params is not a dict");
    for (size_t k = 0; rc == ERR_OK && k < sh->n_items; k++) {
        size_t n = c->n_tensors, j;
        if (sh->items[k]->kind != PKL_STR || sh->vals[k]->kind != PKL_STR)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                            "shared_params holds a non-str name");
        for (j = 0; j < n; j++)
            if (strncmp(c->tensors[j].name, "module.", 7) == 0 &&
                strcmp(c->tensors[j].name + 7, sh->vals[k]->str) == 0)
                break;
        if (j == n) /* zero_to_fp32.py: only when the target is in the state dict */
            continue;
        if (z->map[j].src == DS_SRC_ALIAS)
            j = z->map[j].idx;
        rc = ds_add_named(c, z, sh->items[k]->str, sh->items[k]->len, c->tensors[j].dtype,
                          c->tensors[j].ndim, c->tensors[j].shape,
                          &(struct ds_map){.src = DS_SRC_ALIAS, .idx = j}, &t, e);
        if (rc == ERR_OK)
            t->alias_of = (int64_t)j;
    }
    return rc;
}

static enum err_code ds_z3_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                                const void **data, struct err *e)
{
    const struct ds_z3 *z = c->impl;
    const struct ds_map *mp = &z->map[i];
    const struct ckpt_tensor *t;
    enum err_code rc;

    *data = NULL;
    if (mp->src == DS_SRC_ALIAS) {
        i = mp->idx;
        mp = &z->map[i];
    }
    if (mp->src == DS_SRC_BUFFER)
        return ckpt_tensor_read(z->model, mp->idx, buf, data, e);
    if (mp->src == DS_SRC_FROZEN)
        return ds_frozen_read(c, i, buf, data, e);
    t = &c->tensors[i];
    rc = ckpt__buf_reserve(c, buf, t->nbytes ? t->nbytes : 1, e);
    for (size_t r = 0; rc == ERR_OK && r < z->world && r * mp->part < t->n_elems; r++) {
        uint64_t at = r * mp->part, n = t->n_elems - at < mp->part ? t->n_elems - at : mp->part;
        rc = ds__rank_read(&z->ranks[r], mp->offset, n, (unsigned char *)buf->data + at * 4, e);
    }
    if (rc == ERR_OK)
        *data = buf->data;
    return rc;
}

static const struct ckpt_ops ds_z3_ops = {ds_z3_read, ds_z3_free};

enum err_code ds__z3_load(struct ckpt *c, const char *dir, const char *model,
                          const struct ds__optim_files *optim, struct err *e)
{
    struct ds_pt pt = {.file = {.fd = -1}};
    uint64_t consumed = 0;
    struct ds_z3 *z;
    enum err_code rc;

    z = calloc(1, sizeof(*z));
    if (z == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", dir);
    c->impl = z;
    c->ops = &ds_z3_ops;
    c->model_prefix = strdup("module.");
    if (c->model_prefix == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", dir);
    rc = ckpt_open(model, CKPT_FORMAT_TORCH_ZIP, &c->limits, &z->model, e);
    if (rc == ERR_OK)
        rc = ds__pt_open(model, &c->limits, &pt, e);
    if (rc == ERR_OK && pkl_root(pt.pkl)->kind != PKL_DICT)
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "%s: not a dict", model);
    if (rc == ERR_OK)
        rc = ds__ranks_open(c, z, optim, dir, e);
    if (rc == ERR_OK)
        rc = ds_add_buffers(c, z, pkl_root(pt.pkl), e);
    if (rc == ERR_OK)
        rc = ds_add_frozen(c, z, pkl_root(pt.pkl), dir, e);
    if (rc == ERR_OK)
        rc = ds_add_params(c, z, pkl_root(pt.pkl), &consumed, e);
    for (size_t r = 0; rc == ERR_OK && r < z->world; r++)
        if (z->ranks[r].n_elems != consumed) /* zero_to_fp32.py: "consumed N numels out of M" */
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                          "%s: rank %zu's fp32_flat_groups hold %llu elements, param_shapes "
                          "need %llu per rank",
                          optim->path[r], r, (unsigned long long)z->ranks[r].n_elems,
                          (unsigned long long)consumed);
    if (rc == ERR_OK)
        rc = ds_add_shared(c, z, pkl_root(pt.pkl), e);
    ds__pt_close(&pt);
    return rc;
}
