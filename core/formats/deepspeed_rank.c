/* deepspeed_rank.c -- the ZeRO-3 optimizer partitions (docs/deepspeed.md, ZeRO-3), one
 * *_optim_states.pt a data-parallel rank: each opened as a torch.save zip, its stage,
 * partition_count and fp32_flat_groups checked and located, and elements of the flat groups
 * read straight from the file. deepspeed_z3.c builds the checkpoint from them. See
 * deepspeed_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/deepspeed_int.h"
#include "core/formats/pickle.h"
#include "core/formats/zip.h"

void ds__pt_close(struct ds_pt *pt)
{
    pkl_free(pt->pkl);
    zip_free(pt->zip);
    rfile_close(&pt->file);
    memset(pt, 0, sizeof(*pt));
    pt->file.fd = -1;
}

/* Open `path` as a torch.save zip and unpickle its data.pkl. */
enum err_code ds__pt_open(const char *path, const struct ckpt_limits *lim, struct ds_pt *pt,
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

    rc = ds__pt_open(path, &c->limits, pt, e);
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
enum err_code ds__ranks_open(const struct ckpt *c, struct ds_z3 *z, const struct ds__optim_files *o,
                             const char *dir, struct err *e)
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

/* Elements [from, from + n) of rank `rk`'s flat groups (concatenated) into `dst`. */
enum err_code ds__rank_read(const struct ds_rank *rk, uint64_t from, uint64_t n, unsigned char *dst,
                            struct err *e)
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
