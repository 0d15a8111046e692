/* deepspeed_z3.c -- ZeRO-3 reconstruction (docs/deepspeed.md, ZeRO-3), after
 * DeepSpeed v0.19.5's deepspeed/utils/zero_to_fp32.py
 * (_get_fp32_state_dict_from_zero3_checkpoint): buffers from rank 0's model
 * states, the frozen parameters from every rank's frozen_param_fragments,
 * then each parameter of param_shapes in order, ceil(numel / world) fp32
 * elements from every rank's flat groups at a running offset, the padding
 * dropped, then the shared_params aliases. Only the slices of one
 * tensor are read at a time, straight from the optimizer files. See
 * deepspeed.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/deepspeed_int.h"
#include "core/formats/pickle.h"
#include "core/formats/zip.h"

struct ds_pt { /* a torch.save file opened for its pickle; never moved once open */
    struct rfile file;
    struct zip_archive *zip; /* borrows file */
    struct pkl_result *pkl;
    char folder[256]; /* the archive's top folder */
};

struct ds_group {               /* one fp32 flat group of a rank */
    const struct zip_member *m; /* its storage record, borrowed from the rank's zip */
    uint64_t off;               /* byte offset of its first element in the record */
    uint64_t n;                 /* elements */
};

struct ds_rank {             /* one *_optim_states.pt */
    struct ds_pt pt;         /* owned, open for the ckpt's life; pkl NULL once read */
    struct ds_group *groups; /* owned */
    size_t n_groups;
    uint64_t n_elems; /* sum of the groups' elements */
};

enum ds_src { DS_SRC_BUFFER, DS_SRC_FROZEN, DS_SRC_PARAM, DS_SRC_ALIAS };

struct ds_map { /* where ckpt tensor i comes from; parallel to the tensors */
    enum ds_src src;
    size_t idx;      /* BUFFER: tensor of `model`; FROZEN: its fragment's tensor in every
                        rank's model states; ALIAS: the ckpt tensor it repeats */
    uint64_t offset; /* PARAM: first element in every rank's flat groups */
    uint64_t part;   /* PARAM, FROZEN: elements per rank (ceil(numel / world)) */
};

struct ds_z3 {
    struct ckpt *model;    /* owned: rank 0's model states (the buffers) */
    struct ckpt **ms;      /* owned, world slots: ranks 1.. model states (frozen
                              fragments; opened only when there are frozen params);
                              slot 0 unused (that is `model`) */
    struct ds_rank *ranks; /* owned, world of them */
    size_t world;
    struct ds_map *map; /* owned, cap_map slots */
    size_t cap_map;
};

static void ds_pt_close(struct ds_pt *pt)
{
    pkl_free(pt->pkl);
    zip_free(pt->zip);
    rfile_close(&pt->file);
    memset(pt, 0, sizeof(*pt));
    pt->file.fd = -1;
}

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
        ds_pt_close(&z->ranks[r].pt);
        free(z->ranks[r].groups);
    }
    free(z->ranks);
    free(z->map);
    free(z);
}

/* Open `path` as a torch.save zip and unpickle its data.pkl. */
static enum err_code ds_pt_open(const char *path, const struct ckpt_limits *lim, struct ds_pt *pt,
                                struct err *e)
{
    const struct zip_member *first, *m;
    unsigned char *owned = NULL;
    const unsigned char *data;
    enum err_code rc;
    const char *slash;
    char name[300];

    rc = rfile_open(path, &pt->file, e);
    if (rc == ERR_OK)
        rc = zip_parse_file(&pt->file, lim->max_zip_members, &pt->zip, e);
    if (rc)
        return rc;
    first = zip_n_members(pt->zip) > 0 ? zip_member_at(pt->zip, 0) : NULL;
    slash = first != NULL ? strchr(first->name, '/') : NULL;
    if (slash == NULL || (size_t)(slash - first->name) >= sizeof(pt->folder))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP, "%s: not a torch.save archive", path);
    memcpy(pt->folder, first->name, (size_t)(slash - first->name));
    pt->folder[slash - first->name] = '\0';
    (void)snprintf(name, sizeof(name), "%s/data.pkl", pt->folder);
    m = zip_find(pt->zip, name);
    if (m == NULL)
        return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD, "%s: no data.pkl", path);
    rc = zip_member_read(pt->zip, m,
                         &(struct zip_read_opts){.limit = lim->max_pickle_bytes, .verify_crc = 1},
                         &data, &owned, e);
    if (rc == ERR_OK)
        rc = pkl_parse(data, (size_t)m->usize, lim, &pt->pkl, e);
    free(owned);
    return rc;
}

/* An int, or DeepSpeed's ZeroStageEnum(n) (an opaque value in lenient mode). */
static int ds_int_of(const struct pkl_value *v, int64_t *out)
{
    if (v != NULL && (v->kind == PKL_INT || v->kind == PKL_BOOL)) {
        *out = v->i;
        return 1;
    }
    if (v != NULL && v->kind == PKL_OPAQUE && v->n_items >= 1 && v->items[0]->kind == PKL_TUPLE &&
        v->items[0]->n_items == 1 && v->items[0]->items[0]->kind == PKL_INT) {
        *out = v->items[0]->items[0]->i;
        return 1;
    }
    return 0;
}

/* partition_count: an int, or (ZeRO-2) a list whose largest entry counts. */
static int ds_partition_count(const struct pkl_value *v, int64_t *out)
{
    int64_t best = -1, x;

    if (ds_int_of(v, out))
        return 1;
    if (v == NULL || (v->kind != PKL_LIST && v->kind != PKL_TUPLE))
        return 0;
    for (size_t i = 0; i < v->n_items; i++)
        if (ds_int_of(v->items[i], &x) && x > best)
            best = x;
    *out = best;
    return best >= 0;
}

/* Check one flat group tensor and locate its bytes in the rank's zip. */
static enum err_code ds_group_bind(const struct ds_pt *pt, const struct pkl_value *v,
                                   struct ds_group *g, const char *path, struct err *e)
{
    const struct pkl_tensor *t = &v->tensor;
    const struct pkl_storage *s;
    uint64_t es = 4, recs;
    char name[340];

    if (v->kind != PKL_TENSOR || t->ndim != 1 || (t->size[0] > 1 && t->stride[0] != 1))
        return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                        "%s: an fp32_flat_groups entry is not a contiguous 1-D tensor", path);
    if (t->dtype != DTYPE_F32)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_DTYPE,
                        "%s: fp32_flat_groups holds %s, not F32", path, dtype_name(t->dtype));
    s = pkl_storage_at(pt->pkl, t->storage);
    (void)snprintf(name, sizeof(name), "%s/data/%s", pt->folder, s->key);
    g->m = zip_find(pt->zip, name);
    if (g->m == NULL)
        return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD, "%s: storage record %s is missing",
                        path, name);
    recs = s->untyped ? s->numel : s->numel * es; /* numel < 2^62: checked by pkl_parse */
    if (g->m->usize != recs || t->offset > recs / es ||
        (uint64_t)t->size[0] > recs / es - t->offset)
        return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                        "%s: record %s holds %llu bytes, not the flat group's", path, name,
                        (unsigned long long)g->m->usize);
    if (g->m->method != ZIP_METHOD_STORED && g->m->method != ZIP_METHOD_DEFLATE)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_COMPRESSION,
                        "%s: record %s uses compression method %u", path, name, g->m->method);
    g->off = t->offset * es;
    g->n = (uint64_t)t->size[0];
    return ERR_OK;
}

/* Refuse big-endian archives: the flat groups are copied as they are. */
static enum err_code ds_check_byteorder(const struct ds_pt *pt, const char *path, struct err *e)
{
    const struct zip_member *m;
    unsigned char *owned = NULL;
    const unsigned char *data;
    enum err_code rc;
    char name[300];

    (void)snprintf(name, sizeof(name), "%s/byteorder", pt->folder);
    m = zip_find(pt->zip, name);
    if (m == NULL)
        return ERR_OK;
    rc = zip_member_read(pt->zip, m, &(struct zip_read_opts){.limit = 16, .verify_crc = 1}, &data,
                         &owned, e);
    if (rc == ERR_OK && !(m->usize >= 6 && memcmp(data, "little", 6) == 0))
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                      "%s: a big-endian optimizer file; re-save it on a little-endian machine",
                      path);
    free(owned);
    return rc;
}

/* Open rank `r`'s optimizer file: its stage, partition count and flat groups. */
static enum err_code ds_rank_open(const struct ckpt *c, struct ds_rank *rk, const char *path,
                                  int64_t *world, struct err *e)
{
    const struct pkl_value *osd, *groups;
    struct ds_pt *pt = &rk->pt;
    enum err_code rc;
    int64_t stage = 3;

    rc = ds_pt_open(path, &c->limits, pt, e);
    if (rc == ERR_OK)
        rc = ds_check_byteorder(pt, path, e);
    if (rc)
        goto out;
    osd = pkl_dict_get(pkl_root(pt->pkl), "optimizer_state_dict");
    groups = pkl_dict_get(osd, "fp32_flat_groups");
    if (ds_int_of(pkl_dict_get(osd, "zero_stage"), &stage) && stage != 3) {
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                      "%s: zero_stage %lld beside ZeRO-3 (zero_pp_rank_*) model states", path,
                      (long long)stage);
        goto out;
    }
    if (groups == NULL || (groups->kind != PKL_LIST && groups->kind != PKL_TUPLE) ||
        !ds_partition_count(pkl_dict_get(osd, "partition_count"), world)) {
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                      "%s: no optimizer_state_dict.fp32_flat_groups / partition_count: not a "
                      "ZeRO-3 optimizer partition",
                      path);
        goto out;
    }
    rk->groups = calloc(groups->n_items ? groups->n_items : 1, sizeof(*rk->groups));
    if (rk->groups == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory reading %s", path);
        goto out;
    }
    rk->n_groups = groups->n_items;
    for (size_t g = 0; rc == ERR_OK && g < groups->n_items; g++) {
        rc = ds_group_bind(pt, groups->items[g], &rk->groups[g], path, e);
        if (rc == ERR_OK && rk->groups[g].n > UINT64_MAX - rk->n_elems)
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW, "%s: fp32_flat_groups overflow", path);
        rk->n_elems += rc == ERR_OK ? rk->groups[g].n : 0;
    }
out:
    pkl_free(pt->pkl); /* the file and the zip stay open; the pickle is done with */
    pt->pkl = NULL;
    return rc;
}

/* Open every rank's optimizer file; their count must be partition_count. */
static enum err_code ds_ranks_open(const struct ckpt *c, struct ds_z3 *z,
                                   const struct ds__optim_files *o, const char *dir, struct err *e)
{
    enum err_code rc = ERR_OK;
    int64_t world = 0, w;

    if (o->n == 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                        "%s: ZeRO-3 model states but no *_optim_states.pt (the fp32 weights)", dir);
    for (size_t r = 0; r < o->n; r++)
        if (o->path[r] == NULL)
            return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                            "%s: the optimizer partition of rank %zu "
                            "(*zero_pp_rank_%zu_mp_rank_00_optim_states.pt) is missing",
                            dir, r, r);
    z->ranks = calloc(o->n, sizeof(*z->ranks));
    if (z->ranks == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", dir);
    z->world = o->n;
    for (size_t r = 0; r < o->n; r++)
        z->ranks[r].pt.file.fd = -1;
    for (size_t r = 0; rc == ERR_OK && r < o->n; r++) {
        rc = ds_rank_open(c, &z->ranks[r], o->path[r], &w, e);
        if (rc == ERR_OK && r == 0)
            world = w;
    }
    if (rc)
        return rc;
    if (world > (int64_t)o->n)
        return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                        "%s: partition_count is %lld but only ranks 0..%zu have an "
                        "*_optim_states.pt: the optimizer partition of rank %zu is missing",
                        dir, (long long)world, o->n - 1, o->n);
    if (world != (int64_t)o->n)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                        "%s: %zu optimizer partition files, but partition_count is %lld", dir, o->n,
                        (long long)world);
    return ERR_OK;
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

/* Elements [from, from + n) of rank `rk`'s flat groups (concatenated) into `dst`. */
static enum err_code ds_rank_read(const struct ds_rank *rk, uint64_t from, uint64_t n,
                                  unsigned char *dst, struct err *e)
{
    struct zip_stream *zs = NULL;
    enum err_code rc = ERR_OK;
    uint64_t start = 0;

    for (size_t g = 0; rc == ERR_OK && n > 0 && g < rk->n_groups; g++) {
        const struct ds_group *gr = &rk->groups[g];
        uint64_t lo, take;
        if (from >= start + gr->n) {
            start += gr->n;
            continue;
        }
        lo = from - start;
        take = gr->n - lo < n ? gr->n - lo : n;
        if (gr->m->method == ZIP_METHOD_STORED) {
            rc = rfile_read(&rk->pt.file, gr->m->data_offset + gr->off + lo * 4, take * 4, dst, e);
        } else {
            rc = zip_stream_open(rk->pt.zip, gr->m, 0, &zs, e);
            if (rc == ERR_OK)
                rc = zip_stream_skip(zs, gr->off + lo * 4, e);
            if (rc == ERR_OK)
                rc = zip_stream_read(zs, dst, take * 4, e);
            zip_stream_close(zs);
            zs = NULL;
        }
        dst += take * 4;
        from += take;
        n -= take;
        start += gr->n;
    }
    if (rc == ERR_OK && n > 0) /* the counts were checked when opened */
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH, "flat groups end too early");
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
        rc = ds_rank_read(&z->ranks[r], mp->offset, n, (unsigned char *)buf->data + at * 4, e);
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
        rc = ds_pt_open(model, &c->limits, &pt, e);
    if (rc == ERR_OK && pkl_root(pt.pkl)->kind != PKL_DICT)
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "%s: not a dict", model);
    if (rc == ERR_OK)
        rc = ds_ranks_open(c, z, optim, dir, e);
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
    ds_pt_close(&pt);
    return rc;
}
