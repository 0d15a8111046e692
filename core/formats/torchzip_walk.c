/* torchzip_walk.c -- list the tensors of an unpickled torch checkpoint in
 * pickle order under dotted paths, check their views, find aliases, and
 * locate the model weights (docs/checkpoint-formats.md, Training checkpoints / PyTorch zip files).
 * See torchzip.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/torchzip_int.h"

#define TZ_MAX_DEPTH 512        /* object graph nesting walked */
#define TZ_MAX_NAME  (64 << 10) /* bytes in one tensor path */

struct tz_walk {
    struct ckpt *c;
    struct tz_impl *impl;
    char *path; /* owned, path->len bytes used */
    size_t len, cap;
    const struct pkl_value **seen; /* owned open-addressing pointer set */
    size_t n_seen, cap_seen;
    uint64_t table_bytes; /* names + records listed, against max_pickle_mem */
    struct err *e;
};

/* --- Visited containers -------------------------------------------------------------- */

static size_t tz_ptr_hash(const void *v)
{
    uint64_t x = (uint64_t)(uintptr_t)v;

    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    return (size_t)x;
}

/* Mark `v` visited; *fresh = 0 if it already was. */
static enum err_code tz_seen_add(struct tz_walk *w, const struct pkl_value *v, int *fresh)
{
    size_t mask, s;

    if (2 * (w->n_seen + 1) > w->cap_seen) {
        size_t cap = w->cap_seen ? 2 * w->cap_seen : 256;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
        const struct pkl_value **ns = calloc(cap, sizeof(*ns));
        if (ns == NULL)
            return err_set(w->e, ERR_NOMEM, "out of memory walking the pickle");
        for (size_t i = 0; i < w->cap_seen; i++) {
            if (w->seen[i] == NULL)
                continue;
            for (s = tz_ptr_hash(w->seen[i]) & (cap - 1); ns[s] != NULL; s = (s + 1) & (cap - 1))
                ;
            ns[s] = w->seen[i];
        }
        free(w->seen);
        w->seen = ns;
        w->cap_seen = cap;
    }
    mask = w->cap_seen - 1;
    for (s = tz_ptr_hash(v) & mask; w->seen[s] != NULL; s = (s + 1) & mask) {
        if (w->seen[s] == v) {
            *fresh = 0;
            return ERR_OK;
        }
    }
    w->seen[s] = v;
    w->n_seen++;
    *fresh = 1;
    return ERR_OK;
}

/* --- Paths ------------------------------------------------------------------------------ */

/* Append ".<text>" (no dot at the root) to the path. */
static enum err_code tz_path_push(struct tz_walk *w, const char *text, size_t n)
{
    size_t need = w->len + 1 + n + 1;

    if (n > TZ_MAX_NAME || need > TZ_MAX_NAME) /* the first test keeps `need` from wrapping */
        return err_setc(w->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "tensor path longer than %d bytes", TZ_MAX_NAME);
    if (need > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        char *np;
        while (cap < need)
            cap *= 2;
        np = realloc(w->path, cap);
        if (np == NULL)
            return err_set(w->e, ERR_NOMEM, "out of memory building tensor names");
        w->path = np;
        w->cap = cap;
    }
    if (w->len > 0)
        w->path[w->len++] = '.';
    memcpy(w->path + w->len, text, n);
    w->len += n;
    w->path[w->len] = '\0';
    return ERR_OK;
}

/* Text of a dict key as the manifest writes it (str as is, ints decimal). */
static enum err_code tz_push_key(struct tz_walk *w, const struct pkl_value *k)
{
    char tmp[64];
    int n;

    switch (k->kind) {
    case PKL_STR: return tz_path_push(w, k->str, k->len);
    case PKL_INT: n = snprintf(tmp, sizeof(tmp), "%" PRId64, k->i); break;
    case PKL_BOOL: n = snprintf(tmp, sizeof(tmp), "%s", k->i ? "True" : "False"); break;
    case PKL_NONE: n = snprintf(tmp, sizeof(tmp), "None"); break;
    case PKL_FLOAT: n = snprintf(tmp, sizeof(tmp), "%.17g", k->f); break;
    default: n = snprintf(tmp, sizeof(tmp), "<%s>", pkl_kind_name(k->kind)); break;
    }
    return tz_path_push(w, tmp, n < 0 ? 0 : (size_t)n);
}

/* --- Walk --------------------------------------------------------------------------------- */

static enum err_code tz_add_tensor(struct tz_walk *w, const struct pkl_tensor *t)
{
    struct tz_impl *impl = w->impl;
    struct ckpt *c = w->c;
    struct tz_view *v;
    enum err_code rc;

    /* One tensor reached along many paths is listed under each, so a small
     * pickle (a list of a million references under a 60 KB key) could ask
     * for 60 GB of names: the table is held to max_pickle_mem too. */
    w->table_bytes += w->len + 1 + sizeof(struct ckpt_tensor) + sizeof(struct tz_view);
    if (w->table_bytes > c->limits.max_pickle_mem)
        return err_setc(w->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "tensor names and records from data.pkl exceed %llu bytes "
                        "(max_pickle_mem)",
                        (unsigned long long)c->limits.max_pickle_mem);
    if (c->n_tensors == impl->cap_views) {
        size_t cap = impl->cap_views ? 2 * impl->cap_views : 64;
        struct tz_view *nv = realloc(impl->views, cap * sizeof(*nv));
        if (nv == NULL)
            return err_set(w->e, ERR_NOMEM, "out of memory listing tensors");
        impl->views = nv;
        impl->cap_views = cap;
    }
    rc = ckpt__tensor_add(c,
                          &(struct ckpt__entry){.name = w->path != NULL ? w->path : "",
                                                .name_len = w->len,
                                                .dtype = t->dtype,
                                                .ndim = t->ndim,
                                                .shape = t->size},
                          NULL, w->e);
    if (rc)
        return rc;
    v = &impl->views[c->n_tensors - 1];
    memset(v, 0, sizeof(*v));
    v->storage = t->storage;
    v->offset = t->offset;
    for (int d = 0; d < t->ndim; d++)
        v->stride[d] = t->stride[d];
    return ERR_OK;
}

static enum err_code tz_walk_value(struct tz_walk *w, const struct pkl_value *v, int depth)
{
    enum err_code rc = ERR_OK;
    size_t saved = w->len;
    int fresh;

    if (v->kind == PKL_TENSOR)
        return tz_add_tensor(w, &v->tensor);
    if (v->kind != PKL_DICT && v->kind != PKL_LIST && v->kind != PKL_TUPLE && v->kind != PKL_OPAQUE)
        return ERR_OK;
    if (depth > TZ_MAX_DEPTH)
        return err_setc(w->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "object graph nested deeper than %d", TZ_MAX_DEPTH);
    rc = tz_seen_add(w, v, &fresh);
    if (rc || !fresh)
        return rc; /* a container reached again (memo sharing, cycles) is walked once */
    for (size_t i = 0; !rc && i < v->n_items; i++) {
        char tmp[320];
        int n;
        if (v->kind == PKL_DICT) {
            rc = tz_push_key(w, v->items[i]);
        } else if (v->kind == PKL_OPAQUE) {
            n = snprintf(tmp, sizeof(tmp), "<%.290s>%zu", v->str, i);
            rc = tz_path_push(w, tmp, n < 0 ? 0 : (size_t)n);
        } else {
            n = snprintf(tmp, sizeof(tmp), "%zu", i);
            rc = tz_path_push(w, tmp, n < 0 ? 0 : (size_t)n);
        }
        if (!rc)
            rc = tz_walk_value(w, v->kind == PKL_DICT ? v->vals[i] : v->items[i], depth + 1);
        w->len = saved;
        if (w->path != NULL)
            w->path[saved] = '\0';
    }
    return rc;
}

/* --- Views, aliases, weights ----------------------------------------------------------- */

/* The view's last element lies inside its storage. */
static enum err_code tz_check_extent(const struct ckpt *c, const struct tz_impl *impl, size_t i,
                                     struct err *e)
{
    const struct ckpt_tensor *t = &c->tensors[i];
    const struct tz_view *v = &impl->views[i];
    uint64_t last = v->offset, es = dtype_size(t->dtype), have = impl->storages[v->storage].nbytes;

    if (t->n_elems == 0)
        return ERR_OK;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t step = (uint64_t)(t->shape[d] - 1), st = (uint64_t)v->stride[d];
        if (st != 0 && step > (UINT64_MAX - last) / st)
            return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                            "tensor '%.200s': view overflows", t->name);
        last += step * st;
    }
    if (es == 0 || last >= have / es)
        return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                        "tensor '%.200s': view reaches element %llu of a %llu-byte storage",
                        t->name, (unsigned long long)last, (unsigned long long)have);
    return ERR_OK;
}

struct tz_alias_ent {
    const struct ckpt_tensor *t;
    const struct tz_view *v;
    size_t idx;
};

static int tz_view_cmp(const struct tz_alias_ent *a, const struct tz_alias_ent *b)
{
    if (a->v->storage != b->v->storage)
        return a->v->storage < b->v->storage ? -1 : 1;
    if (a->v->offset != b->v->offset)
        return a->v->offset < b->v->offset ? -1 : 1;
    if (a->t->dtype != b->t->dtype)
        return a->t->dtype < b->t->dtype ? -1 : 1;
    if (a->t->ndim != b->t->ndim)
        return a->t->ndim < b->t->ndim ? -1 : 1;
    for (int d = 0; d < a->t->ndim; d++) {
        if (a->t->shape[d] != b->t->shape[d])
            return a->t->shape[d] < b->t->shape[d] ? -1 : 1;
        if (a->v->stride[d] != b->v->stride[d])
            return a->v->stride[d] < b->v->stride[d] ? -1 : 1;
    }
    return 0;
}

static int tz_alias_qcmp(const void *x, const void *y)
{
    const struct tz_alias_ent *a = x, *b = y;
    int c = tz_view_cmp(a, b);

    return c != 0 ? c : (a->idx > b->idx) - (a->idx < b->idx);
}

static enum err_code tz_mark_aliases(struct ckpt *c, const struct tz_impl *impl, struct err *e)
{
    struct tz_alias_ent *s;
    size_t n = c->n_tensors, first = 0;

    if (n < 2)
        return ERR_OK;
    s = malloc(n * sizeof(*s));
    if (s == NULL)
        return err_set(e, ERR_NOMEM, "out of memory finding aliases");
    for (size_t i = 0; i < n; i++) {
        s[i].t = &c->tensors[i];
        s[i].v = &impl->views[i];
        s[i].idx = i;
    }
    qsort(s, n, sizeof(*s), tz_alias_qcmp);
    for (size_t i = 1; i < n; i++) {
        if (tz_view_cmp(&s[first], &s[i]) == 0)
            c->tensors[s[i].idx].alias_of = (int64_t)s[first].idx;
        else
            first = i;
    }
    free(s);
    return ERR_OK;
}

int tz_path_excluded(const char *path)
{
    static const char *const excluded[] = {"optimizer",
                                           "optimizer_state_dict",
                                           "optimizer_states",
                                           "optim",
                                           "lr_scheduler",
                                           "lr_schedulers",
                                           "scheduler",
                                           "scaler",
                                           "rng_state",
                                           "callbacks",
                                           "loops"};
    const char *p = path;

    while (*p != '\0') {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        for (size_t i = 0; i < sizeof(excluded) / sizeof(excluded[0]); i++)
            if (strlen(excluded[i]) == n && memcmp(excluded[i], p, n) == 0)
                return 1;
        if (dot == NULL)
            break;
        p = dot + 1;
    }
    return 0;
}

/* 1 if `d` is a non-empty dict with more tensor values than other values (all: `all`). */
static int tz_dict_of_tensors(const struct pkl_value *d, int all)
{
    size_t n_t = 0;

    if (d == NULL || d->kind != PKL_DICT || d->n_items == 0)
        return 0;
    for (size_t i = 0; i < d->n_items; i++)
        n_t += d->vals[i]->kind == PKL_TENSOR;
    return all ? n_t == d->n_items : 2 * n_t > d->n_items;
}

void tz_locate_weights(const struct pkl_value *root, const char **key, int *rule)
{
    static const char *const first[] = {
        "state_dict", "model_state_dict", "model",          "module",
        "net",        "network",          "state_dict_ema", "model_ema"};

    *key = NULL;
    *rule = 3;
    if (tz_dict_of_tensors(root, 1)) {
        *rule = 1;
        return;
    }
    for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++) {
        if (tz_dict_of_tensors(pkl_dict_get(root, first[i]), 0)) {
            *key = first[i];
            *rule = 2;
            return;
        }
    }
}

/* Set c->model_prefix and in_model by the rules of docs/checkpoint-formats.md, Training
 * checkpoints. */
static enum err_code tz_mark_model(struct ckpt *c, const struct pkl_value *root, struct err *e)
{
    const char *key;
    size_t klen = 0, n_in = 0;
    int rule;

    tz_locate_weights(root, &key, &rule);
    if (key != NULL) {
        klen = strlen(key);
        c->model_prefix = malloc(klen + 2);
        if (c->model_prefix == NULL)
            return err_set(e, ERR_NOMEM, "out of memory");
        memcpy(c->model_prefix, key, klen);
        memcpy(c->model_prefix + klen, ".", 2);
    }
    for (size_t i = 0; i < c->n_tensors; i++) {
        const char *name = c->tensors[i].name;
        int in = rule == 1 || (rule == 2 && strncmp(name, c->model_prefix, klen + 1) == 0) ||
                 (rule == 3 && !tz_path_excluded(name));
        c->tensors[i].in_model = in;
        n_in += (size_t)in;
    }
    if (n_in == 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                        "no model weights found (%zu tensors, all optimizer/scheduler state)",
                        c->n_tensors);
    return ERR_OK;
}

enum err_code tz__list_tensors(struct ckpt *c, struct tz_impl *impl, const struct pkl_value *root,
                               struct err *e)
{
    enum err_code rc;
    struct tz_walk w;

    memset(&w, 0, sizeof(w));
    w.c = c;
    w.impl = impl;
    w.e = e;
    rc = tz_walk_value(&w, root, 0);
    for (size_t i = 0; !rc && i < c->n_tensors; i++)
        rc = tz_check_extent(c, impl, i, e);
    if (!rc)
        rc = tz_mark_aliases(c, impl, e);
    if (!rc)
        rc = tz_mark_model(c, root, e);
    free(w.path);
    free(w.seen);
    return rc;
}
