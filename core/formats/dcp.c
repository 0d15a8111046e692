/* dcp.c -- the PyTorch Distributed Checkpoint loader (docs/dcp.md): a folder
 * with `.metadata` and the `.distcp` files it names. The metadata is read and
 * checked by dcp_meta.c (a tensor's chunks by dcp_chunks.c); here the files
 * are opened (kept open for the ckpt's life), each chunk's byte range is
 * checked against its file, the tensors are listed with their model prefix,
 * and a tensor is read by reading each of its chunks' torch.save archives (the
 * torch zip reader over a file window) into its place in the caller's buffer.
 * See dcp.h and ckpt_int.h.
 */
#include "core/formats/dcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/torchzip.h"

struct dcp_impl {
    struct dcp_meta *meta; /* owned */
    struct rfile *files;   /* owned, parallel to meta->files */
    size_t n_files;        /* opened so far */
    size_t *entry_of;      /* owned: meta entry of each ckpt tensor */
};

static void dcp_free_impl(void *p)
{
    struct dcp_impl *impl = p;

    if (impl == NULL)
        return;
    for (size_t i = 0; i < impl->n_files; i++)
        rfile_close(&impl->files[i]);
    free(impl->files);
    free(impl->entry_of);
    dcp_meta_free(impl->meta);
    free(impl);
}

/* "<dir>/<name>" into a new string, or NULL (out of memory). */
static char *dcp_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);

    if (s != NULL)
        (void)snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* Read and parse <path>/.metadata under `lim`. */
static enum err_code dcp_read_meta(const struct ckpt_limits *lim, const char *path,
                                   struct dcp_meta **out, struct err *e)
{
    unsigned char *buf = NULL;
    size_t n = 0;
    char *mp = dcp_join(path, DCP_METADATA_NAME);
    enum err_code rc;

    if (mp == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
    rc = rfile_slurp(mp, lim->max_pickle_bytes, &buf, &n, e);
    if (rc == ERR_NOTFOUND)
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                      "%s: no .metadata, so not a PyTorch Distributed Checkpoint folder", path);
    if (rc == ERR_OK)
        rc = dcp_meta_parse(buf, n, lim, out, e);
    free(buf);
    free(mp);
    return rc;
}

/* Open every file the metadata names and check each chunk's range in it. */
static enum err_code dcp_open_files(struct dcp_impl *impl, const char *path, struct err *e)
{
    const struct dcp_meta *m = impl->meta;
    enum err_code rc = ERR_OK;

    impl->files = calloc(m->n_files ? m->n_files : 1, sizeof(*impl->files));
    if (impl->files == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
    for (size_t i = 0; i < m->n_files && !rc; i++) {
        char *fp = dcp_join(path, m->files[i]);
        if (fp == NULL)
            return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
        rc = rfile_open(fp, &impl->files[i], e);
        if (rc == ERR_OK)
            impl->n_files++;
        else if (rc == ERR_NOTFOUND)
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                          "DCP file '%.200s' named by .metadata does not exist", m->files[i]);
        free(fp);
    }
    for (size_t i = 0; i < m->n_chunks && !rc; i++) {
        const struct dcp_chunk *ch = &m->chunks[i];
        const struct rfile *f = &impl->files[ch->file];
        if (ch->off > f->size || ch->len > f->size - ch->off)
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                          "DCP file '%.200s': an item of %llu bytes at offset %llu runs past "
                          "its end (%llu bytes)",
                          m->files[ch->file], (unsigned long long)ch->len,
                          (unsigned long long)ch->off, (unsigned long long)f->size);
    }
    return rc;
}

/* 1 if `name` is a key an app state keeps its model under (Training checkpoints). */
static int dcp_model_key(const char *name, size_t n)
{
    static const char *const keys[] = {
        "state_dict", "model_state_dict", "model",          "module",
        "net",        "network",          "state_dict_ema", "model_ema"};

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strlen(keys[i]) == n && memcmp(keys[i], name, n) == 0)
            return (int)i + 1;
    return 0;
}

/* The first key of an entry's path: planner_data's, else the fqn up to its
 * first dot (when the folder has no planner data). Length in *n; NULL: none. */
static const char *dcp_key0(const struct dcp_meta *m, const struct dcp_entry *en, size_t *n)
{
    const char *dot;

    if (m->has_planner_data) {
        *n = en->path0 ? strlen(en->path0) : 0;
        return en->path0;
    }
    dot = strchr(en->fqn, '.');
    *n = dot ? (size_t)(dot - en->fqn) : 0;
    return dot ? en->fqn : NULL;
}

/* The model's key among the tensors' first keys (docs/dcp.md, Model
 * weights): the earliest of dcp_model_key()'s list that some tensor lies
 * under; without planner data only when some other tensor lies under an
 * excluded key (optim, ...), the sign of an app state. 0 when none. */
static int dcp_pick_key(const struct dcp_meta *m)
{
    int best = 0, app = m->has_planner_data;

    for (size_t i = 0; i < m->n_entries; i++) {
        const struct dcp_entry *en = &m->entries[i];
        size_t n = 0;
        const char *k = dcp_key0(m, en, &n);
        int r = k ? dcp_model_key(k, n) : 0;
        char first[64];
        if (en->is_bytes || k == NULL)
            continue;
        if (r && (best == 0 || r < best))
            best = r;
        if (!r && n < sizeof(first)) {
            memcpy(first, k, n);
            first[n] = '\0';
            app |= tz_path_excluded(first);
        }
    }
    return app ? best : 0;
}

/* ckpt model prefix and in_model of each tensor (docs/dcp.md, Names and model weights). */
static enum err_code dcp_locate_weights(struct ckpt *c, const struct dcp_impl *impl, struct err *e)
{
    const struct dcp_meta *m = impl->meta;
    int key = dcp_pick_key(m), flat = m->has_planner_data;
    const char *name = NULL;
    size_t kn = 0;

    for (size_t i = 0; flat && i < m->n_entries; i++)
        flat = m->entries[i].is_bytes || m->entries[i].path0 == NULL; /* rule 1: a bare dict */

    for (size_t i = 0; key && i < m->n_entries && name == NULL; i++) {
        const char *k = dcp_key0(m, &m->entries[i], &kn);
        if (!m->entries[i].is_bytes && k != NULL && dcp_model_key(k, kn) == key)
            name = k;
    }
    if (name != NULL) {
        c->model_prefix = malloc(kn + 2);
        if (c->model_prefix == NULL)
            return err_set(e, ERR_NOMEM, "out of memory listing tensors");
        memcpy(c->model_prefix, name, kn);
        memcpy(c->model_prefix + kn, ".", 2);
    }
    for (size_t i = 0; i < c->n_tensors; i++) {
        const struct dcp_entry *en = &m->entries[impl->entry_of[i]];
        size_t n = 0;
        const char *k = dcp_key0(m, en, &n);
        if (flat)
            c->tensors[i].in_model = 1;
        else if (name != NULL)
            c->tensors[i].in_model = k != NULL && n == kn && memcmp(k, name, kn) == 0;
        else
            c->tensors[i].in_model = !tz_path_excluded(en->fqn);
    }
    return ERR_OK;
}

/* List the tensor entries (bytes entries are not tensors). */
static enum err_code dcp_list(struct ckpt *c, struct dcp_impl *impl, struct err *e)
{
    const struct dcp_meta *m = impl->meta;
    enum err_code rc;

    impl->entry_of = calloc(m->n_entries ? m->n_entries : 1, sizeof(*impl->entry_of));
    if (impl->entry_of == NULL)
        return err_set(e, ERR_NOMEM, "out of memory listing tensors");
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct dcp_entry *en = &m->entries[i];
        struct ckpt__entry in = {en->fqn, strlen(en->fqn), en->dtype, en->ndim, en->size};
        if (en->is_bytes)
            continue;
        rc = ckpt__tensor_add(c, &in, NULL, e);
        if (rc)
            return rc;
        impl->entry_of[c->n_tensors - 1] = i;
    }
    return dcp_locate_weights(c, impl, e);
}

/* Open the torch.save archive of chunk `ch` and check it holds one tensor of
 * the entry's dtype and the chunk's sizes. On success *out is a new ckpt. */
static enum err_code dcp_open_chunk(const struct ckpt *c, const struct dcp_impl *impl,
                                    const struct dcp_entry *en, const struct dcp_chunk *ch,
                                    struct ckpt **out, struct err *e)
{
    struct ckpt *sub = calloc(1, sizeof(*sub));
    const struct ckpt_tensor *t;
    enum err_code rc;

    *out = NULL;
    if (sub == NULL)
        return err_set(e, ERR_NOMEM, "out of memory reading '%.200s'", en->fqn);
    sub->format = CKPT_FORMAT_TORCH_ZIP;
    sub->limits = c->limits;
    rc = tz__ckpt_load_window(sub, &impl->files[ch->file], ch->off, ch->len, e);
    if (rc)
        goto out;
    if (sub->n_tensors != 1) {
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                      "DCP entry '%.200s': its item in '%.200s' at %llu holds %zu tensors, not 1",
                      en->fqn, impl->meta->files[ch->file], (unsigned long long)ch->off,
                      sub->n_tensors);
        goto out;
    }
    t = &sub->tensors[0];
    if (t->dtype != en->dtype)
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_DTYPE,
                      "DCP entry '%.200s': a chunk is %s, the metadata says %s", en->fqn,
                      dtype_name(t->dtype), dtype_name(en->dtype));
    else if (t->ndim != en->ndim || memcmp(t->shape, ch->sizes, (size_t)en->ndim * 8) != 0)
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                      "DCP entry '%.200s': a stored chunk's shape differs from its metadata",
                      en->fqn);
out:
    if (rc == ERR_OK)
        *out = sub;
    else
        ckpt_close(sub);
    return rc;
}

/* 1 if the chunk is one run of the tensor in C order: leading dims of size 1,
 * then one partial dim, then whole dims. */
static int dcp_chunk_contiguous(const struct dcp_entry *en, const struct dcp_chunk *ch)
{
    int d = 0;

    while (d < en->ndim && ch->sizes[d] == 1)
        d++;
    for (d = d + 1; d < en->ndim; d++)
        if (ch->offsets[d] != 0 || ch->sizes[d] != en->size[d])
            return 0;
    return 1;
}

/* Element index of position `at` in the whole tensor (C order). */
static uint64_t dcp_linear(const struct dcp_entry *en, const int64_t *at)
{
    uint64_t lin = 0;

    for (int d = 0; d < en->ndim; d++)
        lin = lin * (uint64_t)en->size[d] + (uint64_t)at[d];
    return lin;
}

/* Copy chunk data `src` (C order, its own shape) into its place in `dst`. */
static void dcp_scatter(const struct dcp_entry *en, const struct dcp_chunk *ch, size_t es,
                        const unsigned char *src, unsigned char *dst)
{
    int64_t at[CKPT_MAX_RANK];
    int nd = en->ndim;
    uint64_t row = (uint64_t)ch->sizes[nd - 1] * es,
             rows = ch->n_elems / (uint64_t)ch->sizes[nd - 1];

    memcpy(at, ch->offsets, (size_t)nd * sizeof(at[0]));
    for (uint64_t r = 0; r < rows; r++) {
        memcpy(dst + dcp_linear(en, at) * es, src + r * row, (size_t)row);
        for (int d = nd - 2; d >= 0; d--) { /* odometer over the leading dims */
            if (++at[d] < ch->offsets[d] + ch->sizes[d])
                break;
            at[d] = ch->offsets[d];
        }
    }
}

/* Read chunk `ch` of `en` into its place in `out`; `tmp` is scratch for chunks
 * that are not one run of the tensor. */
static enum err_code dcp_read_chunk(const struct ckpt *c, const struct dcp_impl *impl,
                                    const struct dcp_entry *en, const struct dcp_chunk *ch,
                                    unsigned char *out, struct ckpt_buf *tmp, struct err *e)
{
    size_t es = dtype_size(en->dtype);
    struct ckpt *sub = NULL;
    const void *data = NULL;
    enum err_code rc;

    rc = dcp_open_chunk(c, impl, en, ch, &sub, e);
    if (rc)
        return rc;
    if (dcp_chunk_contiguous(en, ch)) {
        struct ckpt_buf place = {out + dcp_linear(en, ch->offsets) * es, ch->n_elems * es};
        rc = ckpt_tensor_read(sub, 0, &place, &data, e); /* fits: never reallocated */
    } else {
        rc = ckpt_tensor_read(sub, 0, tmp, &data, e);
        if (rc == ERR_OK)
            dcp_scatter(en, ch, es, data, out);
    }
    ckpt_close(sub);
    return rc;
}

static enum err_code dcp_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                              const void **data, struct err *e)
{
    const struct dcp_impl *impl = c->impl;
    const struct dcp_entry *en = &impl->meta->entries[impl->entry_of[i]];
    struct ckpt_buf tmp = {0};
    enum err_code rc;

    *data = NULL;
    rc = ckpt__buf_reserve(c, buf, c->tensors[i].nbytes ? c->tensors[i].nbytes : 1, e);
    for (size_t k = 0; rc == ERR_OK && k < en->n_chunks; k++) {
        const struct dcp_chunk *ch = &impl->meta->chunks[en->first_chunk + k];
        if (ch->n_elems > 0)
            rc = dcp_read_chunk(c, impl, en, ch, buf->data, &tmp, e);
    }
    ckpt_buf_free(&tmp);
    if (rc == ERR_OK)
        *data = buf->data;
    return rc;
}

static const struct ckpt_ops dcp_ops = {dcp_read, dcp_free_impl};

enum err_code dcp__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    struct dcp_impl *impl = calloc(1, sizeof(*impl));
    enum err_code rc;

    if (impl == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
    c->impl = impl; /* from here ckpt_close() frees it */
    c->ops = &dcp_ops;
    rc = dcp_read_meta(&c->limits, path, &impl->meta, e);
    if (rc == ERR_OK)
        rc = dcp_open_files(impl, path, e);
    if (rc == ERR_OK)
        rc = dcp_list(c, impl, e);
    return rc;
}

static int dcp_str_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

enum err_code dcp_folder_files(const char *path, const struct ckpt_limits *limits, char ***out,
                               size_t *n_out, struct err *e)
{
    struct ckpt_limits lim;
    struct dcp_meta *m = NULL;
    char **names = NULL;
    size_t n = 0;
    enum err_code rc;

    *out = NULL;
    *n_out = 0;
    if (limits != NULL)
        lim = *limits;
    else
        ckpt_limits_default(&lim);
    rc = dcp_read_meta(&lim, path, &m, e);
    if (rc)
        goto out;
    names = calloc(m->n_files + 1, sizeof(*names));
    if (names == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory listing %s", path);
        goto out;
    }
    names[n++] = strdup(DCP_METADATA_NAME);
    for (size_t i = 0; i < m->n_files && names[n - 1] != NULL; i++)
        names[n++] = strdup(m->files[i]);
    if (names[n - 1] == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory listing %s", path);
        goto out;
    }
    qsort(names, n, sizeof(*names), dcp_str_cmp);
    *out = names;
    *n_out = n;
    names = NULL;
out:
    dcp_folder_files_free(names, n);
    dcp_meta_free(m);
    return rc;
}

void dcp_folder_files_free(char **files, size_t n)
{
    for (size_t i = 0; files != NULL && i < n; i++)
        free(files[i]);
    free(files);
}
