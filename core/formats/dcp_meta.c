/* dcp_meta.c -- the `.metadata` pickle of a PyTorch Distributed Checkpoint
 * (docs/dcp.md, The .metadata pickle) read into struct dcp_meta: entries,
 * the storage records that place each chunk in a file, and planner data.
 * A tensor entry's chunks and the checks that they tile it are in
 * dcp_chunks.c; the parse state both share is in dcp_int.h. See dcp.h.
 */
#include "core/formats/dcp.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/dcp_int.h"
#include "core/formats/pickle.h"

/* 1 if `v` is an instance of DCP class `name` (built by pkl_parse_dcp as an
 * opaque value "<module>.<name>()"). */
int dcp__is(const struct pkl_value *v, const char *module, const char *name)
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
const struct pkl_value *dcp__field(const struct pkl_value *v, const char *name)
{
    const struct pkl_value *st = dcp_state(v);

    return st != NULL && st->kind == PKL_DICT ? pkl_dict_get(st, name) : NULL;
}

/* A tuple of ints (torch.Size) into out[]; -1 rank when it is not one. */
int dcp__ints(const struct pkl_value *v, int64_t *out)
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
enum err_code dcp__grow(void **a, size_t *cap, size_t n, size_t size, struct err *e)
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
enum err_code dcp__dtype(struct dcp_parse *p, const char *fqn, const struct pkl_value *props,
                         enum dtype *out)
{
    const struct pkl_value *st, *g = NULL;

    if (!dcp__is(props, DCP_MOD, "TensorProperties") &&
        !dcp__is(props, DCP_OLD, "TensorProperties"))
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
        rc = dcp__grow((void **)&m->entries, &p->cap_entries, m->n_entries, sizeof(*en), p->e);
        if (rc)
            return rc;
        en = &m->entries[m->n_entries];
        memset(en, 0, sizeof(*en));
        en->fqn = strdup(k->str);
        if (en->fqn == NULL)
            return err_set(p->e, ERR_NOMEM, "out of memory reading DCP metadata");
        m->n_entries++;
        if (dcp__is(v, DCP_MOD, "BytesStorageMetadata"))
            en->is_bytes = 1;
        else if (dcp__is(v, DCP_MOD, "TensorStorageMetadata"))
            rc = dcp__tensor_entry(p, en, v);
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
    rc = dcp__grow((void **)&m->files, &p->cap_files, m->n_files, sizeof(*m->files), p->e);
    if (rc)
        return rc;
    m->files[m->n_files] = strdup(name);
    if (m->files[m->n_files] == NULL)
        return err_set(p->e, ERR_NOMEM, "out of memory reading DCP metadata");
    *out = m->n_files++;
    return ERR_OK;
}

/* One storage_data item: MetadataIndex(fqn, offset, index) -> _StorageInfo(relative_path,
 * offset, length[, transform_descriptors]). */
static enum err_code dcp_storage_item(struct dcp_parse *p, const struct pkl_value *k,
                                      const struct pkl_value *v)
{
    const struct pkl_value *fqn = dcp__field(k, "fqn"), *rel = dcp__field(v, "relative_path");
    const struct pkl_value *off = dcp__field(v, "offset"), *len = dcp__field(v, "length");
    const struct pkl_value *tr = dcp__field(v, "transform_descriptors");
    int64_t at[CKPT_MAX_RANK];
    struct dcp_entry *en;
    struct dcp_chunk *ch;
    size_t file = 0;
    enum err_code rc;

    if (!dcp__is(k, DCP_MOD, "MetadataIndex") || !dcp__is(v, DCP_FS, "_StorageInfo") ||
        fqn == NULL || fqn->kind != PKL_STR || off == NULL || off->kind != PKL_INT || len == NULL ||
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
    ch = dcp__ints(dcp__field(k, "offset"), at) == en->ndim
             ? dcp__chunk_at(p, en, at, dcp__field(k, "index"))
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

    if (!dcp__is(root, DCP_MOD, "Metadata"))
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                        "the .metadata pickle is a %s, not a torch.distributed.checkpoint "
                        "Metadata",
                        root->kind == PKL_OPAQUE ? root->str : pkl_kind_name(root->kind));
    rc = dcp_entries(p, dcp__field(root, "state_dict_metadata"));
    if (!rc)
        rc = dcp_index_names(p);
    if (!rc)
        rc = dcp_storage(p, dcp__field(root, "storage_data"));
    if (!rc)
        rc = dcp_planner(p, dcp__field(root, "planner_data"));
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
    rc = dcp__grow((void **)&p.m->chunks, &p.cap_chunks, 0, sizeof(*p.m->chunks), e);
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
