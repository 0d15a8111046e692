/* pickle.c -- see pickle.h. The value arena, containers, and the public entry
 * points; dict keys with Python semantics are in pickle_dict.c, the opcodes in
 * pickle_ops.c.
 */
#include "core/formats/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/pickle_int.h"

/* (pkl__fail): not expanded by the analyzer-only macro of pickle_int.h. */
enum err_code(pkl__fail)(struct pkl_parser *p, enum err_code code, enum err_category cat,
                         const char *fmt, ...)
{
    char msg[ERR_MSG_LEN];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->op_pos < p->len)
        return err_setc(p->e, code, cat, "data.pkl byte %zu (opcode 0x%02x): %s", p->op_pos,
                        (unsigned)p->buf[p->op_pos], msg);
    return err_setc(p->e, code, cat, "data.pkl byte %zu: %s", p->op_pos, msg);
}

enum err_code pkl__mem(struct pkl_parser *p, uint64_t need, uint64_t old, const char *what)
{
    uint64_t lim = p->lim.max_pickle_mem;

    if (need > lim || p->mem > lim - need)
        return pkl__fail(p, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                         "unpickling needs more than %llu bytes (max_pickle_mem) for %s",
                         (unsigned long long)lim, what);
    if (p->mem + need > p->mem_peak)
        p->mem_peak = p->mem + need;
    p->mem = p->mem + need - old; /* `old` was charged when it was allocated */
    return ERR_OK;
}

enum err_code pkl__new(struct pkl_parser *p, enum pkl_kind kind, struct pkl_value **out)
{
    struct pkl_result *r = p->r;
    struct pkl_value *v;

    *out = NULL;
    if (r->n_values >= PKL_MAX_VALUES)
        return pkl__fail(p, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "more than %zu pickle values",
                         (size_t)PKL_MAX_VALUES);
    if (r->chunks == NULL || r->chunks->used == PKL_CHUNK) {
        struct pkl_chunk *c;
        enum err_code rc = pkl__mem(p, sizeof(*c), 0, "values");
        if (rc)
            return rc;
        c = malloc(sizeof(*c));
        if (c == NULL)
            return err_set(p->e, ERR_NOMEM, "out of memory unpickling");
        c->next = r->chunks;
        c->used = 0;
        r->chunks = c;
    }
    v = &r->chunks->v[r->chunks->used++];
    memset(v, 0, sizeof(*v));
    v->kind = kind;
    r->n_values++;
    *out = v;
    return ERR_OK;
}

enum err_code pkl__new_str(struct pkl_parser *p, enum pkl_kind kind, const char *s, size_t n,
                           struct pkl_value **out)
{
    enum err_code rc;
    struct pkl_value *v;
    char *copy;

    *out = NULL;
    if (n == SIZE_MAX)
        return pkl__fail(p, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "string too long");
    rc = pkl__mem(p, (uint64_t)n + 1, 0, "a string");
    if (rc)
        return rc;
    copy = malloc(n + 1);
    if (copy == NULL)
        return err_set(p->e, ERR_NOMEM, "out of memory for a %zu-byte pickle string", n);
    if (n > 0)
        memcpy(copy, s, n);
    copy[n] = '\0';
    rc = pkl__new(p, kind, &v);
    if (rc) {
        free(copy);
        return rc;
    }
    v->str = copy;
    v->len = n;
    *out = v;
    return ERR_OK;
}

enum err_code pkl__reserve(struct pkl_parser *p, struct pkl_value *c)
{
    size_t cap, per = (c->kind == PKL_DICT ? 2 : 1) * sizeof(struct pkl_value *);
    struct pkl_value **ni, **nv;
    enum err_code rc;

    if (c->n_items < c->cap_items)
        return ERR_OK;
    cap = c->cap_items ? 2 * c->cap_items : 4;
    if (cap > PKL_MAX_VALUES * 2)
        return pkl__fail(p, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "container with too many items");
    rc = pkl__mem(p, (uint64_t)cap * per, (uint64_t)c->cap_items * per, "a container's items");
    if (rc)
        return rc;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
    ni = realloc(c->items, cap * sizeof(*ni));
    if (ni == NULL)
        return err_set(p->e, ERR_NOMEM, "out of memory growing a pickle container");
    c->items = ni;
    if (c->kind == PKL_DICT) {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
        nv = realloc(c->vals, cap * sizeof(*nv));
        if (nv == NULL)
            return err_set(p->e, ERR_NOMEM, "out of memory growing a pickle dict");
        c->vals = nv;
    }
    c->cap_items = cap;
    return ERR_OK;
}

enum err_code pkl__append(struct pkl_parser *p, struct pkl_value *c, struct pkl_value *v)
{
    enum err_code rc = pkl__reserve(p, c);

    if (rc)
        return rc;
    c->items[c->n_items++] = v;
    return ERR_OK;
}

/* --- Public API ------------------------------------------------------------------------ */

/* pkl_parse / pkl_parse_dcp: `dcp` allows the DCP metadata classes. */
static enum err_code pkl_parse_mode(const unsigned char *buf, size_t len,
                                    const struct ckpt_limits *limits, int dcp,
                                    struct pkl_result **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct pkl_parser p;

    *out = NULL;
    memset(&p, 0, sizeof(p));
    p.dcp = dcp;
    p.buf = buf;
    p.len = len;
    p.e = e;
    if (limits != NULL)
        p.lim = *limits;
    else
        ckpt_limits_default(&p.lim);
    if (len > p.lim.max_pickle_bytes)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "data.pkl of %zu bytes exceeds %llu",
                        len, (unsigned long long)p.lim.max_pickle_bytes);
    rc = pkl__mem(&p, sizeof(*p.r), 0, "the result");
    if (rc)
        return rc;
    p.r = calloc(1, sizeof(*p.r));
    if (p.r == NULL)
        return err_set(e, ERR_NOMEM, "out of memory unpickling");
    rc = pkl__new(&p, PKL_NONE, &p.none);
    if (!rc)
        rc = pkl__new(&p, PKL_BOOL, &p.vfalse);
    if (!rc)
        rc = pkl__new(&p, PKL_BOOL, &p.vtrue);
    if (!rc)
        rc = pkl__new(&p, PKL_DICT, &p.r->storage_index);
    if (rc)
        goto out;
    p.vtrue->i = 1;
    rc = pkl__run(&p);
    if (rc)
        goto out;
    p.r->mem_peak = p.mem_peak;
    *out = p.r;
    p.r = NULL;
out:
    free(p.stack);
    free(p.marks);
    free(p.memo);
    pkl_free(p.r);
    return rc;
}

enum err_code pkl_parse(const unsigned char *buf, size_t len, const struct ckpt_limits *limits,
                        struct pkl_result **out, struct err *e)
{
    return pkl_parse_mode(buf, len, limits, 0, out, e);
}

enum err_code pkl_parse_dcp(const unsigned char *buf, size_t len, const struct ckpt_limits *limits,
                            struct pkl_result **out, struct err *e)
{
    return pkl_parse_mode(buf, len, limits, 1, out, e);
}

void pkl_free(struct pkl_result *r)
{
    struct pkl_chunk *c, *next;

    if (r == NULL)
        return;
    for (c = r->chunks; c != NULL; c = next) {
        next = c->next;
        for (size_t i = 0; i < c->used; i++) {
            free((char *)(uintptr_t)c->v[i].str);
            free(c->v[i].items);
            free(c->v[i].vals);
            free(c->v[i].hash_slots);
        }
        free(c);
    }
    free(r->storages);
    free(r);
}

const struct pkl_value *pkl_root(const struct pkl_result *r)
{
    return r->root;
}

size_t pkl_n_storages(const struct pkl_result *r)
{
    return r->n_storages;
}

const struct pkl_storage *pkl_storage_at(const struct pkl_result *r, size_t i)
{
    ERR_ASSERT(i < r->n_storages);
    return &r->storages[i];
}

int pkl_protocol(const struct pkl_result *r)
{
    return r->protocol;
}

uint64_t pkl_mem_peak(const struct pkl_result *r)
{
    return r->mem_peak;
}

const struct pkl_value *pkl_dict_get(const struct pkl_value *d, const char *key)
{
    struct pkl_value k;
    long at;

    if (d == NULL || d->kind != PKL_DICT)
        return NULL;
    memset(&k, 0, sizeof(k));
    k.kind = PKL_STR;
    k.str = key;
    k.len = strlen(key);
    at = pkl__dict_find(d, &k, NULL);
    return at >= 0 ? d->vals[at] : NULL;
}

const char *pkl_kind_name(enum pkl_kind k)
{
    static const char *const names[] = {"None", "bool",   "int",     "float",  "complex",
                                        "str",  "bytes",  "tuple",   "list",   "set",
                                        "dict", "global", "storage", "tensor", "opaque"};

    return (size_t)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}
