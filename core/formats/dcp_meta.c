/* dcp_meta.c -- the `.metadata` pickle of a PyTorch Distributed Checkpoint
 * (docs/dcp.md, The .metadata pickle) read into struct dcp_meta: entries,
 * chunks, the storage records that place each chunk in a file, and the checks
 * that the chunks tile their tensors. See dcp.h.
 */
#include "core/formats/dcp.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/pickle.h"

#define DCP_MOD  "torch.distributed.checkpoint.metadata."
#define DCP_OLD  "torch.distributed._shard.sharded_tensor.metadata."
#define DCP_FS   "torch.distributed.checkpoint.filesystem."
#define DCP_WORK ((uint64_t)1 << 28) /* chunk comparisons one parse may make */

struct dcp_name {
    const char *fqn; /* borrowed from the entry */
    size_t i;        /* entry index */
};

struct dcp_parse {
    struct dcp_meta *m;
    const struct ckpt_limits *lim;
    size_t cap_entries, cap_chunks, cap_files;
    struct dcp_name *by_name; /* entries sorted by fqn */
    uint64_t work;            /* chunk comparisons made, against DCP_WORK */
    struct err *e;
};

/* 1 if `v` is an instance of DCP class `name` (built by pkl_parse_dcp as an
 * opaque value "<module>.<name>()"). */
static int dcp_is(const struct pkl_value *v, const char *module, const char *name)
{
    size_t ml = strlen(module), nl = strlen(name);

    return v != NULL && v->kind == PKL_OPAQUE && v->len == ml + nl + 2 &&
           memcmp(v->str, module, ml) == 0 && memcmp(v->str + ml, name, nl) == 0 &&
           memcmp(v->str + ml + nl, "()", 2) == 0;
}

/* The BUILD state of an instance: the child after its constructor arguments. */
static const struct pkl_value *dcp_state(const struct pkl_value *v)
{
    return v->n_items >= 2 ? v->items[v->n_items - 1] : NULL;
}

/* Field `name` of a dataclass instance whose state is its __dict__. */
static const struct pkl_value *dcp_field(const struct pkl_value *v, const char *name)
{
    const struct pkl_value *st = dcp_state(v);

    return st != NULL && st->kind == PKL_DICT ? pkl_dict_get(st, name) : NULL;
}

/* A tuple of ints (torch.Size) into out[]; -1 rank when it is not one. */
static int dcp_ints(const struct pkl_value *v, int64_t *out)
{
    if (v == NULL || v->kind != PKL_TUPLE || v->n_items > CKPT_MAX_RANK)
        return -1;
    for (size_t i = 0; i < v->n_items; i++) {
        if (v->items[i]->kind != PKL_INT)
            return -1;
        out[i] = v->items[i]->i;
    }
    return (int)v->n_items;
}

/* Grow array *a of *cap elements of `size` bytes to hold n + 1; new room is zeroed. */
static enum err_code dcp_grow(void **a, size_t *cap, size_t n, size_t size, struct err *e)
{
    size_t nc;
    void *p;

    if (n < *cap)
        return ERR_OK;
    nc = *cap ? 2 * *cap : 16;
    p = realloc(*a, nc * size);
    if (p == NULL)
        return err_set(e, ERR_NOMEM, "out of memory reading DCP metadata");
    memset((char *)p + *cap * size, 0, (nc - *cap) * size);
    *a = p;
    *cap = nc;
    return ERR_OK;
}

/* TensorProperties.dtype: the first item of its __getstate__ tuple (torch >= 2.0),
 * or the "dtype" key of a __dict__ state. */
static enum err_code dcp_dtype(struct dcp_parse *p, const char *fqn, const struct pkl_value *props,
                               enum dtype *out)
{
    const struct pkl_value *st, *g = NULL;

    if (!dcp_is(props, DCP_MOD, "TensorProperties") && !dcp_is(props, DCP_OLD, "TensorProperties"))
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                        "DCP entry '%.200s': properties is not a TensorProperties", fqn);
    st = dcp_state(props);
    if (st != NULL && st->kind == PKL_TUPLE && st->n_items >= 1)
        g = st->items[0];
    else if (st != NULL && st->kind == PKL_DICT)
        g = pkl_dict_get(st, "dtype");
    if (!pkl_global_dtype(g, out))
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_DTYPE,
                        "DCP entry '%.200s': dtype %.100s is not a supported torch dtype", fqn,
                        g != NULL && g->kind == PKL_GLOBAL ? g->str : "(missing)");
    return ERR_OK;
}

/* One ChunkStorageMetadata of entry `en`, appended to the chunk table. */
static enum err_code dcp_add_chunk(struct dcp_parse *p, const struct dcp_entry *en,
                                   const struct pkl_value *cv)
{
    struct dcp_meta *m = p->m;
    struct dcp_chunk *ch;
    enum err_code rc;
    int no, ns;

    if (!dcp_is(cv, DCP_MOD, "ChunkStorageMetadata"))
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                        "DCP entry '%.200s': a chunk is not a ChunkStorageMetadata", en->fqn);
    if (m->n_chunks >= p->lim->max_tensors)
        return err_setc(p->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "more than %llu DCP chunks",
                        (unsigned long long)p->lim->max_tensors);
    rc = dcp_grow((void **)&m->chunks, &p->cap_chunks, m->n_chunks, sizeof(*m->chunks), p->e);
    if (rc)
        return rc;
    ch = &m->chunks[m->n_chunks];
    memset(ch, 0, sizeof(*ch));
    ch->file = SIZE_MAX; /* until storage_data places it */
    no = dcp_ints(dcp_field(cv, "offsets"), ch->offsets);
    ns = dcp_ints(dcp_field(cv, "sizes"), ch->sizes);
    if (no != en->ndim || ns != en->ndim)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_OFFSETS,
                        "DCP entry '%.200s': chunk offsets/sizes are not %d ints", en->fqn,
                        en->ndim);
    ch->n_elems = 1;
    for (int d = 0; d < en->ndim; d++) {
        if (ch->offsets[d] < 0 || ch->sizes[d] < 0 || ch->offsets[d] > en->size[d] ||
            ch->sizes[d] > en->size[d] - ch->offsets[d])
            return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_OFFSETS,
                            "DCP entry '%.200s': chunk %zu (dim %d: offset %lld, size %lld) lies "
                            "outside the tensor (%lld)",
                            en->fqn, m->n_chunks - en->first_chunk, d, (long long)ch->offsets[d],
                            (long long)ch->sizes[d], (long long)en->size[d]);
        ch->n_elems *= (uint64_t)ch->sizes[d]; /* <= the tensor's count: no overflow */
    }
    m->n_chunks++;
    return ERR_OK;
}

/* 1 if chunks a and b share an element (both non-empty). */
static int dcp_overlap(const struct dcp_chunk *a, const struct dcp_chunk *b, int ndim)
{
    for (int d = 0; d < ndim; d++)
        if (a->offsets[d] >= b->offsets[d] + b->sizes[d] ||
            b->offsets[d] >= a->offsets[d] + a->sizes[d])
            return 0;
    return 1;
}

struct dcp_order {
    int64_t off0;
    size_t i;
};

static int dcp_order_cmp(const void *x, const void *y)
{
    const struct dcp_order *a = x, *b = y;

    return a->off0 < b->off0 ? -1 : a->off0 > b->off0;
}

/* The chunks of `en` tile it exactly: their element counts add up to the
 * tensor's and no two overlap (sweep in order of the first dim's offset). */
static enum err_code dcp_check_tiling(struct dcp_parse *p, const struct dcp_entry *en,
                                      uint64_t n_elems)
{
    const struct dcp_chunk *ch = &p->m->chunks[en->first_chunk];
    struct dcp_order *ord = NULL;
    uint64_t sum = 0;
    int over = 0;
    enum err_code rc = ERR_OK;

    for (size_t i = 0; i < en->n_chunks && !over; i++) {
        over = ch[i].n_elems > n_elems - sum; /* checked before adding: never wraps */
        sum += over ? 0 : ch[i].n_elems;
    }
    if (over || sum != n_elems)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_OFFSETS,
                        "DCP entry '%.200s': its chunks hold %s%llu elements, the tensor %llu",
                        en->fqn, over ? "more than " : "", (unsigned long long)sum,
                        (unsigned long long)n_elems);
    if (en->ndim == 0 || en->n_chunks < 2)
        return ERR_OK;
    ord = malloc(en->n_chunks * sizeof(*ord));
    if (ord == NULL)
        return err_set(p->e, ERR_NOMEM, "out of memory checking DCP chunks");
    for (size_t i = 0; i < en->n_chunks; i++)
        ord[i] = (struct dcp_order){ch[i].offsets[0], i};
    qsort(ord, en->n_chunks, sizeof(*ord), dcp_order_cmp);
    for (size_t i = 0; i < en->n_chunks && !rc; i++) {
        const struct dcp_chunk *a = &ch[ord[i].i];
        for (size_t j = i + 1; j < en->n_chunks && !rc; j++) {
            const struct dcp_chunk *b = &ch[ord[j].i];
            if (b->offsets[0] >= a->offsets[0] + a->sizes[0])
                break;
            if (++p->work > DCP_WORK)
                rc = err_setc(p->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                              "DCP chunks take too many comparisons to check");
            else if (a->n_elems && b->n_elems && dcp_overlap(a, b, en->ndim))
                rc = err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_OFFSETS,
                              "DCP entry '%.200s': chunks %zu and %zu overlap", en->fqn, ord[i].i,
                              ord[j].i);
        }
    }
    free(ord);
    return rc;
}

/* A TensorStorageMetadata: dtype, size, chunks (checked to tile it). */
static enum err_code dcp_tensor_entry(struct dcp_parse *p, struct dcp_entry *en,
                                      const struct pkl_value *v)
{
    const struct pkl_value *chunks = dcp_field(v, "chunks");
    uint64_t n = 1;
    enum err_code rc;

    rc = dcp_dtype(p, en->fqn, dcp_field(v, "properties"), &en->dtype);
    if (rc)
        return rc;
    en->ndim = dcp_ints(dcp_field(v, "size"), en->size);
    if (en->ndim < 0 || chunks == NULL || chunks->kind != PKL_LIST)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                        "DCP entry '%.200s': size must be a torch.Size of at most %d ints and "
                        "chunks a list",
                        en->fqn, CKPT_MAX_RANK);
    for (int d = 0; d < en->ndim; d++) {
        if (en->size[d] < 0)
            return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                            "DCP entry '%.200s': negative dimension", en->fqn);
        if (en->size[d] != 0 && n > UINT64_MAX / (uint64_t)en->size[d])
            return err_setc(p->e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                            "DCP entry '%.200s': element count overflows 64 bits", en->fqn);
        n *= (uint64_t)en->size[d];
    }
    en->first_chunk = p->m->n_chunks;
    for (size_t i = 0; i < chunks->n_items; i++) {
        rc = dcp_add_chunk(p, en, chunks->items[i]);
        if (rc)
            return rc;
        en->n_chunks++;
    }
    return dcp_check_tiling(p, en, n);
}

/* The entries of state_dict_metadata, in order. */
static enum err_code dcp_entries(struct dcp_parse *p, const struct pkl_value *sdm)
{
    struct dcp_meta *m = p->m;
    enum err_code rc;

    if (sdm == NULL || sdm->kind != PKL_DICT)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                        "DCP metadata has no state_dict_metadata dict");
    for (size_t i = 0; i < sdm->n_items; i++) {
        const struct pkl_value *k = sdm->items[i], *v = sdm->vals[i];
        struct dcp_entry *en;
        if (k->kind != PKL_STR || strlen(k->str) != k->len)
            return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                            "DCP state_dict_metadata key is not a string");
        rc = dcp_grow((void **)&m->entries, &p->cap_entries, m->n_entries, sizeof(*en), p->e);
        if (rc)
            return rc;
        en = &m->entries[m->n_entries];
        memset(en, 0, sizeof(*en));
        en->fqn = strdup(k->str);
        if (en->fqn == NULL)
            return err_set(p->e, ERR_NOMEM, "out of memory reading DCP metadata");
        m->n_entries++;
        if (dcp_is(v, DCP_MOD, "BytesStorageMetadata"))
            en->is_bytes = 1;
        else if (dcp_is(v, DCP_MOD, "TensorStorageMetadata"))
            rc = dcp_tensor_entry(p, en, v);
        else
            rc = err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                          "DCP entry '%.200s' is neither TensorStorageMetadata nor "
                          "BytesStorageMetadata",
                          en->fqn);
        if (rc)
            return rc;
    }
    return ERR_OK;
}


static int dcp_name_cmp(const void *x, const void *y)
{
    const struct dcp_name *a = x, *b = y;

    return strcmp(a->fqn, b->fqn);
}

/* Sort the entries by name for dcp_find; duplicate names cannot occur (dict keys). */
static enum err_code dcp_index_names(struct dcp_parse *p)
{
    size_t n = p->m->n_entries;

    p->by_name = malloc((n ? n : 1) * sizeof(*p->by_name));
    if (p->by_name == NULL)
        return err_set(p->e, ERR_NOMEM, "out of memory indexing DCP entries");
    for (size_t i = 0; i < n; i++)
        p->by_name[i] = (struct dcp_name){p->m->entries[i].fqn, i};
    qsort(p->by_name, n, sizeof(*p->by_name), dcp_name_cmp);
    return ERR_OK;
}

/* The entry named `fqn`, or NULL. */
static struct dcp_entry *dcp_find(const struct dcp_parse *p, const char *fqn)
{
    struct dcp_name key = {fqn, 0}, *hit;

    hit = bsearch(&key, p->by_name, p->m->n_entries, sizeof(key), dcp_name_cmp);
    return hit != NULL ? &p->m->entries[hit->i] : NULL;
}

/* A relative_path DCP writes: "__<rank>_<n>.distcp" or any plain name of the
 * folder: no '/' or '\\', not "." or "..", at most 255 bytes. */
static int dcp_name_ok(const struct pkl_value *v)
{
    return v != NULL && v->kind == PKL_STR && v->len > 0 && v->len <= 255 &&
           strlen(v->str) == v->len && strchr(v->str, '/') == NULL &&
           strchr(v->str, '\\') == NULL && strcmp(v->str, ".") != 0 && strcmp(v->str, "..") != 0;
}

/* The index of file `name` in m->files, added if new (max_shards files). */
static enum err_code dcp_file(struct dcp_parse *p, const char *name, size_t *out)
{
    struct dcp_meta *m = p->m;
    enum err_code rc;

    for (size_t i = m->n_files; i-- > 0;) {
        if (strcmp(m->files[i], name) == 0) {
            *out = i;
            return ERR_OK;
        }
    }
    if (m->n_files >= p->lim->max_shards)
        return err_setc(p->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "more than %llu DCP files",
                        (unsigned long long)p->lim->max_shards);
    rc = dcp_grow((void **)&m->files, &p->cap_files, m->n_files, sizeof(*m->files), p->e);
    if (rc)
        return rc;
    m->files[m->n_files] = strdup(name);
    if (m->files[m->n_files] == NULL)
        return err_set(p->e, ERR_NOMEM, "out of memory reading DCP metadata");
    *out = m->n_files++;
    return ERR_OK;
}

/* The chunk of `en` starting at `off` (rank en->ndim): the index hint first. */
static struct dcp_chunk *dcp_chunk_at(struct dcp_parse *p, const struct dcp_entry *en,
                                      const int64_t *off, const struct pkl_value *hint)
{
    struct dcp_chunk *ch = &p->m->chunks[en->first_chunk];
    size_t nb = (size_t)en->ndim * sizeof(*off);

    if (hint != NULL && hint->kind == PKL_INT && hint->i >= 0 && (uint64_t)hint->i < en->n_chunks &&
        memcmp(ch[hint->i].offsets, off, nb) == 0)
        return &ch[hint->i];
    for (size_t i = 0; i < en->n_chunks && ++p->work <= DCP_WORK; i++)
        if (memcmp(ch[i].offsets, off, nb) == 0)
            return &ch[i];
    return NULL;
}

/* One storage_data item: MetadataIndex(fqn, offset, index) -> _StorageInfo(relative_path,
 * offset, length[, transform_descriptors]). */
static enum err_code dcp_storage_item(struct dcp_parse *p, const struct pkl_value *k,
                                      const struct pkl_value *v)
{
    const struct pkl_value *fqn = dcp_field(k, "fqn"), *rel = dcp_field(v, "relative_path");
    const struct pkl_value *off = dcp_field(v, "offset"), *len = dcp_field(v, "length");
    const struct pkl_value *tr = dcp_field(v, "transform_descriptors");
    int64_t at[CKPT_MAX_RANK];
    struct dcp_entry *en;
    struct dcp_chunk *ch;
    size_t file = 0;
    enum err_code rc;

    if (!dcp_is(k, DCP_MOD, "MetadataIndex") || !dcp_is(v, DCP_FS, "_StorageInfo") || fqn == NULL ||
        fqn->kind != PKL_STR || off == NULL || off->kind != PKL_INT || len == NULL ||
        len->kind != PKL_INT || off->i < 0 || len->i < 0)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                        "DCP storage_data item is not MetadataIndex(fqn) -> "
                        "_StorageInfo(relative_path, offset >= 0, length >= 0)");
    if (!dcp_name_ok(rel))
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                        "DCP item '%.200s': unsafe or invalid file name '%.200s'", fqn->str,
                        rel != NULL && rel->kind == PKL_STR ? rel->str : "(not a str)");
    if (tr != NULL && !(tr->kind == PKL_NONE || (tr->kind == PKL_LIST && tr->n_items == 0) ||
                        (tr->kind == PKL_TUPLE && tr->n_items == 0)))
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_COMPRESSION,
                        "DCP item '%.200s' is stored through transforms (torch >= 2.7 "
                        "extensions), which farmsd does not read",
                        fqn->str);
    en = dcp_find(p, fqn->str);
    if (en == NULL)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                        "DCP storage_data names '%.200s', which state_dict_metadata lacks",
                        fqn->str);
    rc = dcp_file(p, rel->str, &file);
    if (rc || en->is_bytes)
        return rc;
    ch = dcp_ints(dcp_field(k, "offset"), at) == en->ndim
             ? dcp_chunk_at(p, en, at, dcp_field(k, "index"))
             : NULL;
    if (ch == NULL)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                        "DCP storage_data item for '%.200s' matches none of its chunks", fqn->str);
    if (ch->file != SIZE_MAX)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                        "DCP entry '%.200s': a chunk is stored twice", fqn->str);
    ch->file = file;
    ch->off = (uint64_t)off->i;
    ch->len = (uint64_t)len->i;
    return ERR_OK;
}

/* storage_data: every item placed, then every tensor chunk must have a place. */
static enum err_code dcp_storage(struct dcp_parse *p, const struct pkl_value *sd)
{
    const struct dcp_meta *m = p->m;
    enum err_code rc;

    if (sd == NULL || sd->kind != PKL_DICT)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                        "DCP metadata has no storage_data dict (not written by FileSystemWriter)");
    for (size_t i = 0; i < sd->n_items; i++) {
        rc = dcp_storage_item(p, sd->items[i], sd->vals[i]);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct dcp_entry *en = &m->entries[i];
        for (size_t c = 0; c < en->n_chunks; c++)
            if (m->chunks[en->first_chunk + c].file == SIZE_MAX)
                return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                                "DCP entry '%.200s': chunk %zu has no storage_data item", en->fqn,
                                c);
    }
    return ERR_OK;
}

/* planner_data of the default planner: {fqn: path tuple}; records each
 * entry's first key when its path has two keys or more. Anything else is
 * ignored (custom planners keep their own data there). */
static enum err_code dcp_planner(struct dcp_parse *p, const struct pkl_value *pd)
{
    if (pd == NULL || pd->kind != PKL_DICT)
        return ERR_OK;
    p->m->has_planner_data = 1;
    for (size_t i = 0; i < pd->n_items; i++) {
        const struct pkl_value *k = pd->items[i], *path = pd->vals[i];
        struct dcp_entry *en = k->kind == PKL_STR ? dcp_find(p, k->str) : NULL;
        if (path->kind != PKL_TUPLE && path->kind != PKL_LIST) {
            p->m->has_planner_data = 0; /* not the default planner's mapping */
            return ERR_OK;
        }
        if (en == NULL || en->path0 != NULL || path->n_items < 2 || path->items[0]->kind != PKL_STR)
            continue;
        en->path0 = strdup(path->items[0]->str);
        if (en->path0 == NULL)
            return err_set(p->e, ERR_NOMEM, "out of memory reading DCP metadata");
    }
    return ERR_OK;
}

/* The Metadata root: entries, names, storage, planner data. */
static enum err_code dcp_walk(struct dcp_parse *p, const struct pkl_value *root)
{
    enum err_code rc;

    if (!dcp_is(root, DCP_MOD, "Metadata"))
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                        "the .metadata pickle is a %s, not a torch.distributed.checkpoint "
                        "Metadata",
                        root->kind == PKL_OPAQUE ? root->str : pkl_kind_name(root->kind));
    rc = dcp_entries(p, dcp_field(root, "state_dict_metadata"));
    if (!rc)
        rc = dcp_index_names(p);
    if (!rc)
        rc = dcp_storage(p, dcp_field(root, "storage_data"));
    if (!rc)
        rc = dcp_planner(p, dcp_field(root, "planner_data"));
    return rc;
}

enum err_code dcp_meta_parse(const unsigned char *buf, size_t len, const struct ckpt_limits *limits,
                             struct dcp_meta **out, struct err *e)
{
    struct ckpt_limits lim;
    struct pkl_result *pr = NULL;
    struct dcp_parse p;
    enum err_code rc;

    *out = NULL;
    if (limits != NULL)
        lim = *limits;
    else
        ckpt_limits_default(&lim);
    memset(&p, 0, sizeof(p));
    p.lim = &lim;
    p.e = e;
    p.m = calloc(1, sizeof(*p.m));
    if (p.m == NULL)
        return err_set(e, ERR_NOMEM, "out of memory reading DCP metadata");
    rc = dcp_grow((void **)&p.m->chunks, &p.cap_chunks, 0, sizeof(*p.m->chunks), e);
    if (rc)
        goto out; /* the chunk table exists from here, even when empty */
    rc = pkl_parse_dcp(buf, len, &lim, &pr, e);
    if (rc)
        goto out;
    rc = dcp_walk(&p, pkl_root(pr));
    if (rc)
        goto out;
    *out = p.m;
    p.m = NULL;
out:
    free(p.by_name);
    pkl_free(pr);
    dcp_meta_free(p.m);
    return rc;
}

void dcp_meta_free(struct dcp_meta *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_entries; i++) {
        free(m->entries[i].fqn);
        free(m->entries[i].path0);
    }
    for (size_t i = 0; i < m->n_files; i++)
        free(m->files[i]);
    free(m->entries);
    free(m->chunks);
    free(m->files);
    free(m);
}
