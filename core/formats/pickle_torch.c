/* pickle_torch.c -- what REDUCE / NEWOBJ / BUILD / BINPERSID make of the restricted unpickler's
 * globals (docs/checkpoint-formats.md, Restricted unpickler): lenient opaque values, torch's
 * tensor rebuild functions and storages. Nothing here calls anything: every allow-listed
 * global is interpreted into plain data. The deny-list and allow-list that classify a global
 * are in pickle_globals.c. See pickle.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/pickle_int.h"

/* A new opaque value "<what>()" whose one child is `child`. */
static enum err_code pkl_opaque(struct pkl_parser *p, const struct pkl_value *callee,
                                struct pkl_value *child, struct pkl_value **out)
{
    char what[300];
    enum err_code rc;
    int n;

    n = snprintf(what, sizeof(what), "%.290s()", callee->str ? callee->str : "?");
    rc = pkl__new_str(p, PKL_OPAQUE, what, n < 0 ? 0 : (size_t)n, out);
    if (!rc && child != NULL)
        rc = pkl__append(p, *out, child);
    return rc;
}

static int pkl_is_int(const struct pkl_value *v)
{
    return v->kind == PKL_INT;
}

/* Validate storage/offset/size/stride of a tensor rebuild and fill t. */
static enum err_code pkl_tensor_view(struct pkl_parser *p, struct pkl_value **a, int has_dtype,
                                     enum dtype dtype, struct pkl_tensor *t)
{
    const struct pkl_value *st = a[0], *size = a[2], *stride = a[3];
    const struct pkl_storage *s;

    if (st->kind != PKL_STORAGE)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                         "tensor storage is a %s, not a persistent storage reference",
                         pkl_kind_name(st->kind));
    s = &p->r->storages[st->storage];
    if (!has_dtype && s->untyped)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "untyped storage without a dtype");
    if (has_dtype && !s->untyped && s->dtype != dtype)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                         "storage dtype disagrees with dtype");
    if (!pkl_is_int(a[1]) || size->kind != PKL_TUPLE || stride->kind != PKL_TUPLE ||
        size->n_items != stride->n_items)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                         "tensor needs an int offset and size/stride tuples of equal length");
    if (size->n_items > PKL_MAX_RANK)
        return pkl__fail(p, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "tensor rank %zu exceeds %d",
                         size->n_items, PKL_MAX_RANK);
    if (a[1]->i < 0)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH, "negative storage offset");
    memset(t, 0, sizeof(*t));
    t->storage = st->storage;
    t->dtype = has_dtype ? dtype : s->dtype;
    t->ndim = (int)size->n_items;
    t->offset = (uint64_t)a[1]->i;
    for (int d = 0; d < t->ndim; d++) {
        if (!pkl_is_int(size->items[d]) || !pkl_is_int(stride->items[d]))
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                             "size/stride entries must be ints");
        if (size->items[d]->i < 0 || stride->items[d]->i < 0)
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH, "negative size or stride");
        t->size[d] = size->items[d]->i;
        t->stride[d] = stride->items[d]->i;
    }
    return ERR_OK;
}

/* torch._utils rebuild functions (docs/checkpoint-formats.md, PyTorch zip files). */
static enum err_code pkl_rebuild(struct pkl_parser *p, const char *fn, struct pkl_value *args,
                                 struct pkl_value **out)
{
    struct pkl_value **a = args->items;
    size_t n = args->n_items;
    enum dtype dtype = DTYPE_U8;
    int has_dtype = 0;
    enum err_code rc;

    if (strcmp(fn, "_rebuild_parameter") == 0 || strcmp(fn, "_rebuild_parameter_with_state") == 0) {
        size_t want = strcmp(fn, "_rebuild_parameter") == 0 ? 3 : 4;
        if (n != want || a[0]->kind != PKL_TENSOR || a[1]->kind != PKL_BOOL)
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "bad %s arguments", fn);
        *out = a[0];
        return ERR_OK;
    }
    if (strcmp(fn, "_rebuild_tensor") == 0) {
        if (n != 4)
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                             "_rebuild_tensor takes 4 arguments, got %zu", n);
    } else {
        int v3 = strcmp(fn, "_rebuild_tensor_v3") == 0;
        if (n != (v3 ? 7u : 6u) && n != (v3 ? 8u : 7u))
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                             "%s takes %d or %d arguments, got %zu", fn, v3 ? 7 : 6, v3 ? 8 : 7, n);
        if (a[4]->kind != PKL_BOOL || a[5]->kind != PKL_DICT ||
            (n == (v3 ? 8u : 7u) && a[n - 1]->kind != PKL_DICT))
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                             "%s: requires_grad must be a bool, hooks and metadata dicts", fn);
        if (v3) {
            if (a[6]->kind != PKL_GLOBAL || pkl__gclass_of(a[6], &dtype, 0) != PKL_G_DTYPE)
                return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_DTYPE,
                                 "_rebuild_tensor_v3 dtype is not a supported torch dtype");
            has_dtype = 1;
        }
    }
    rc = pkl__new(p, PKL_TENSOR, out);
    if (rc)
        return rc;
    return pkl_tensor_view(p, a, has_dtype, dtype, &(*out)->tensor);
}

/* _codecs.encode(str, 'latin1') -> bytes. */
static enum err_code pkl_encode(struct pkl_parser *p, struct pkl_value *args,
                                struct pkl_value **out)
{
    struct pkl_value *s;
    enum err_code rc;
    size_t j = 0;
    char *b;

    if (args->n_items != 2 || args->items[0]->kind != PKL_STR || args->items[1]->kind != PKL_STR ||
        (strcmp(args->items[1]->str, "latin1") != 0 && strcmp(args->items[1]->str, "latin-1") != 0))
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "bad _codecs.encode arguments");
    s = args->items[0];
    rc = pkl__new_str(p, PKL_BYTES, s->str, s->len, out);
    if (rc)
        return rc;
    b = (char *)(uintptr_t)(*out)->str;
    for (size_t i = 0; i < s->len; i++) { /* UTF-8 -> latin-1, in place (never longer) */
        unsigned char c = (unsigned char)s->str[i];
        if (c < 0x80) {
            b[j++] = (char)c;
        } else if ((c == 0xC2 || c == 0xC3) && i + 1 < s->len) {
            b[j++] = (char)(((c & 0x03) << 6) | ((unsigned char)s->str[++i] & 0x3F));
        } else {
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                             "non-latin1 data in _codecs.encode");
        }
    }
    b[j] = '\0';
    (*out)->len = j;
    return ERR_OK;
}

/* set / frozenset / bytearray / complex / torch.Size / torch.device / OrderedDict. */
static enum err_code pkl_call_value(struct pkl_parser *p, enum pkl_gclass cls,
                                    struct pkl_value *args, struct pkl_value **out)
{
    struct pkl_value **a = args->items, *src;
    size_t n = args->n_items;
    enum err_code rc = ERR_OK;

    switch (cls) {
    case PKL_G_BYTEARRAY:
        if (n == 0)
            return pkl__new_str(p, PKL_BYTES, "", 0, out);
        if (n == 1 && a[0]->kind == PKL_BYTES)
            return pkl__new_str(p, PKL_BYTES, a[0]->str, a[0]->len, out);
        break;
    case PKL_G_COMPLEX:
        if (n != 2 ||
            (a[0]->kind != PKL_INT && a[0]->kind != PKL_FLOAT && a[0]->kind != PKL_BOOL) ||
            (a[1]->kind != PKL_INT && a[1]->kind != PKL_FLOAT && a[1]->kind != PKL_BOOL))
            break;
        rc = pkl__new(p, PKL_COMPLEX, out);
        if (!rc) {
            (*out)->f = a[0]->kind == PKL_FLOAT ? a[0]->f : (double)a[0]->i;
            (*out)->f_imag = a[1]->kind == PKL_FLOAT ? a[1]->f : (double)a[1]->i;
        }
        return rc;
    case PKL_G_DEVICE: return pkl__new_str(p, PKL_STR, "device", 6, out);
    case PKL_G_ODICT:
    case PKL_G_SET:
    case PKL_G_FROZENSET:
    case PKL_G_SIZE:
        if (n > 1 || (n == 1 && a[0]->kind != PKL_LIST && a[0]->kind != PKL_TUPLE) ||
            (n == 0 && cls == PKL_G_SIZE))
            break;
        src = n == 1 ? a[0] : NULL;
        rc = pkl__new(p,
                      cls == PKL_G_ODICT  ? PKL_DICT
                      : cls == PKL_G_SIZE ? PKL_TUPLE
                                          : PKL_SET,
                      out);
        if (!rc)
            (*out)->frozen = cls == PKL_G_FROZENSET;
        for (size_t i = 0; !rc && src != NULL && i < src->n_items; i++) {
            struct pkl_value *it = src->items[i];
            if (cls == PKL_G_ODICT) {
                if ((it->kind != PKL_TUPLE && it->kind != PKL_LIST) || it->n_items != 2)
                    return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                                     "OrderedDict items must be pairs");
                rc = pkl__dict_set(p, *out, it->items[0], it->items[1]);
            } else if (cls == PKL_G_SIZE && !pkl_is_int(it)) {
                return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "torch.Size of non-ints");
            } else {
                rc = cls == PKL_G_SIZE ? ERR_OK : pkl__check_hashable(p, it);
                if (!rc)
                    rc = pkl__append(p, *out, it);
            }
        }
        return rc;
    default: break;
    }
    return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                     "bad arguments for an allow-listed call");
}

static enum err_code pkl_reduce_depth(struct pkl_parser *p, struct pkl_value *func,
                                      struct pkl_value *args, int depth, struct pkl_value **out)
{
    enum pkl_gclass cls;

    *out = NULL;
    if (func->kind == PKL_OPAQUE)
        return pkl_opaque(p, func, args, out);
    if (func->kind != PKL_GLOBAL)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "REDUCE on a non-callable %s",
                         pkl_kind_name(func->kind));
    if (args->kind != PKL_TUPLE)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                         "REDUCE arguments are a %s, not a tuple", pkl_kind_name(args->kind));
    cls = pkl__gclass_of(func, NULL, p->dcp);
    switch (cls) {
    case PKL_G_REBUILD: return pkl_rebuild(p, func->str + func->dot + 1, args, out);
    case PKL_G_FROM_TYPE:
        if (args->n_items != 4 || args->items[0]->kind != PKL_GLOBAL ||
            args->items[2]->kind != PKL_TUPLE || depth > 4)
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                             "bad _rebuild_from_type_v2 arguments");
        return pkl_reduce_depth(p, args->items[0], args->items[2], depth + 1, out);
    case PKL_G_ENCODE: return pkl_encode(p, args, out);
    case PKL_G_ODICT:
    case PKL_G_SET:
    case PKL_G_FROZENSET:
    case PKL_G_BYTEARRAY:
    case PKL_G_COMPLEX:
    case PKL_G_SIZE:
    case PKL_G_DEVICE: return pkl_call_value(p, cls, args, out);
    case PKL_G_DCP:
    case PKL_G_INERT: return pkl_opaque(p, func, args, out); /* an enum member, a path */
    default: break;
    }
    if (!p->lim.strict)
        return pkl_opaque(p, func, args, out);
    return pkl__fail(p, ERR_FORMAT, ERR_CAT_DISALLOWED_GLOBAL, "call of %.200s is not supported",
                     func->str);
}

enum err_code pkl__reduce(struct pkl_parser *p, struct pkl_value *func, struct pkl_value *args,
                          struct pkl_value **out)
{
    return pkl_reduce_depth(p, func, args, 0, out);
}

enum err_code pkl__newobj(struct pkl_parser *p, struct pkl_value *cls, struct pkl_value *args,
                          struct pkl_value **out)
{
    enum pkl_gclass gc;

    *out = NULL;
    if (cls->kind == PKL_OPAQUE)
        return pkl_opaque(p, cls, args, out);
    if (cls->kind != PKL_GLOBAL)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "NEWOBJ on a non-class %s",
                         pkl_kind_name(cls->kind));
    gc = pkl__gclass_of(cls, NULL, p->dcp);
    if (gc == PKL_G_TOKEN && args->kind == PKL_TUPLE && args->n_items > 0 &&
        args->items[0]->kind == PKL_TENSOR) {
        *out = args->items[0];
        return ERR_OK;
    }
    if (gc == PKL_G_ODICT)
        return pkl__new(p, PKL_DICT, out);
    if (gc == PKL_G_DCP || (gc == PKL_G_UNKNOWN && !p->lim.strict))
        return pkl_opaque(p, cls, args, out);
    return pkl__fail(p, ERR_FORMAT, ERR_CAT_DISALLOWED_GLOBAL, "NEWOBJ of %.200s is not supported",
                     cls->str);
}

enum err_code pkl__build(struct pkl_parser *p, struct pkl_value *inst, struct pkl_value *state)
{
    if (inst->kind == PKL_DICT || inst->kind == PKL_TENSOR)
        return ERR_OK; /* OrderedDict._metadata, tensor attributes: ignored */
    if (inst->kind == PKL_OPAQUE)
        return pkl__append(p, inst, state);
    return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "BUILD on a %s",
                     pkl_kind_name(inst->kind));
}

/* [A-Za-z0-9_.-]{1,64} without "..". */
static int pkl_key_ok(const char *k, size_t n)
{
    if (n == 0 || n > 64 || strstr(k, "..") != NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Room for one more storage (limit_exceeded past max_tensors). */
static enum err_code pkl_storage_reserve(struct pkl_parser *p)
{
    struct pkl_result *r = p->r;
    struct pkl_storage *ns;
    size_t cap;
    enum err_code rc;

    if (r->n_storages >= p->lim.max_tensors)
        return pkl__fail(p, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "more than %llu storages",
                         (unsigned long long)p->lim.max_tensors);
    if (r->n_storages < r->cap_storages)
        return ERR_OK;
    cap = r->cap_storages ? 2 * r->cap_storages : 16;
    rc = pkl__mem(p, (uint64_t)cap * sizeof(*ns), (uint64_t)r->cap_storages * sizeof(*ns),
                  "the storage table");
    if (rc)
        return rc;
    ns = realloc(r->storages, cap * sizeof(*ns));
    if (ns == NULL)
        return err_set(p->e, ERR_NOMEM, "out of memory listing storages");
    r->storages = ns;
    r->cap_storages = cap;
    return ERR_OK;
}

enum err_code pkl__persid(struct pkl_parser *p, struct pkl_value *pid, struct pkl_value **out)
{
    struct pkl_result *r = p->r;
    struct pkl_value **a = pid->items, *sv;
    struct pkl_storage *s;
    enum dtype dt = DTYPE_U8;
    enum err_code rc;
    long at;

    *out = NULL;
    if (pid->kind != PKL_TUPLE || pid->n_items != 5 || a[0]->kind != PKL_STR ||
        strcmp(a[0]->str, "storage") != 0 || a[1]->kind != PKL_GLOBAL)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                         "persistent id is not ('storage', class, key, location, numel)");
    if (pkl__gclass_of(a[1], &dt, 0) != PKL_G_STORAGE)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_DTYPE, "storage class %.200s not supported",
                         a[1]->str);
    if (a[2]->kind != PKL_STR || !pkl_key_ok(a[2]->str, a[2]->len))
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "unsafe storage key '%.80s'",
                         a[2]->kind == PKL_STR ? a[2]->str : "(not a str)");
    if (a[4]->kind != PKL_INT || a[4]->i < 0)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                         "storage numel must be an int >= 0");
    at = pkl__dict_find(r->storage_index, a[2], &p->key_work);
    rc = pkl__key_work(p);
    if (rc)
        return rc;
    if (at >= 0) {
        sv = r->storage_index->vals[at];
        s = &r->storages[sv->storage];
        if (s->dtype != dt || s->numel != (uint64_t)a[4]->i ||
            s->untyped != (strcmp(a[1]->str, "torch.UntypedStorage") == 0))
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                             "storage '%s' referenced with another type or size", s->key);
        *out = sv;
        return ERR_OK;
    }
    rc = pkl_storage_reserve(p);
    if (!rc)
        rc = pkl__new(p, PKL_STORAGE, &sv);
    if (!rc)
        rc = pkl__dict_set(p, r->storage_index, a[2], sv);
    if (rc)
        return rc;
    s = &r->storages[r->n_storages];
    s->key = a[2]->str;
    s->dtype = dt;
    s->untyped = strcmp(a[1]->str, "torch.UntypedStorage") == 0;
    s->numel = (uint64_t)a[4]->i;
    sv->storage = r->n_storages++;
    *out = sv;
    return ERR_OK;
}
