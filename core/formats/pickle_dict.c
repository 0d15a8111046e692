/* pickle_dict.c -- the restricted unpickler's dicts and sets: Python key
 * equality and hashing, the hashable check, and the open-addressing index
 * that keeps lookups O(1) with the work on colliding keys bounded
 * (PKL_KEY_WORK). See pickle_int.h; the values they hold are in pickle.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/pickle_int.h"

/* --- Dict keys: Python equality and hashing ------------------------------------------ */

static int pkl_is_number(const struct pkl_value *v)
{
    return v->kind == PKL_BOOL || v->kind == PKL_INT || v->kind == PKL_FLOAT ||
           (v->kind == PKL_COMPLEX && v->f_imag == 0.0);
}

static double pkl_num_f(const struct pkl_value *v)
{
    return v->kind == PKL_BOOL || v->kind == PKL_INT ? (double)v->i : v->f;
}

/* Python equality of keys; every call adds its cost to *work (the values
 * visited, long strings by the 64 bytes). */
static int pkl_key_eq(const struct pkl_value *a, const struct pkl_value *b, int depth,
                      uint64_t *work)
{
    ++*work;
    if (a == b)
        return 1;
    if (depth > PKL_MAX_KEY_DEPTH)
        return 0;
    if (pkl_is_number(a) && pkl_is_number(b)) {
        int ai = a->kind == PKL_BOOL || a->kind == PKL_INT;
        int bi = b->kind == PKL_BOOL || b->kind == PKL_INT;
        if (ai && bi)
            return a->i == b->i;
        if (ai != bi) { /* int vs float: equal only if the float is that integer */
            const struct pkl_value *iv = ai ? a : b, *fv = ai ? b : a;
            return fv->f == (double)iv->i && fv->f >= -9.2233720368547758e18 &&
                   fv->f < 9.2233720368547758e18 && (int64_t)fv->f == iv->i;
        }
        return pkl_num_f(a) == pkl_num_f(b);
    }
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case PKL_NONE: return 1;
    case PKL_COMPLEX: return a->f == b->f && a->f_imag == b->f_imag;
    case PKL_STR:
    case PKL_BYTES:
        *work += a->len / 64;
        return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    case PKL_OPAQUE: /* pkl_parse_dcp only: a DCP instance (MetadataIndex) */
        if (a->len != b->len || memcmp(a->str, b->str, a->len) != 0)
            return 0;
        /* fall through */
    case PKL_TUPLE:
    case PKL_SET:
    case PKL_DICT: /* the state of a DCP instance, keys in order */
        if (a->n_items != b->n_items)
            return 0;
        for (size_t i = 0; i < a->n_items; i++)
            if (!pkl_key_eq(a->items[i], b->items[i], depth + 1, work) ||
                (a->kind == PKL_DICT && !pkl_key_eq(a->vals[i], b->vals[i], depth + 1, work)))
                return 0;
        return 1;
    default: return 0;
    }
}

static uint64_t pkl_mix(uint64_t h, uint64_t x)
{
    h ^= x + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h * 0x100000001B3ull;
}

static uint64_t pkl_bits(double f)
{
    uint64_t u;

    memcpy(&u, &f, sizeof(u));
    return u;
}

/* The hash of a key (equal keys hash equal); its cost is added to *work. */
static uint64_t pkl_key_hash(const struct pkl_value *v, int depth, uint64_t *work)
{
    uint64_t h = 0xCBF29CE484222325ull;

    ++*work;
    if (depth > PKL_MAX_KEY_DEPTH)
        return h;
    if (pkl_is_number(v)) {
        double f = pkl_num_f(v);
        if (v->kind == PKL_BOOL || v->kind == PKL_INT)
            return pkl_mix(h, (uint64_t)v->i);
        if (f >= -9.2233720368547758e18 && f < 9.2233720368547758e18 && f == floor(f))
            return pkl_mix(h, (uint64_t)(int64_t)f);
        return pkl_mix(h, pkl_bits(f));
    }
    h = pkl_mix(h, (uint64_t)v->kind);
    switch (v->kind) {
    case PKL_STR:
    case PKL_BYTES:
        *work += v->len / 64;
        for (size_t i = 0; i < v->len; i++)
            h = (h ^ (unsigned char)v->str[i]) * 0x100000001B3ull;
        return h;
    case PKL_OPAQUE:
        for (size_t i = 0; i < v->len; i++)
            h = (h ^ (unsigned char)v->str[i]) * 0x100000001B3ull;
        /* fall through */
    case PKL_TUPLE:
    case PKL_SET:
    case PKL_DICT:
        for (size_t i = 0; i < v->n_items; i++) {
            h = pkl_mix(h, pkl_key_hash(v->items[i], depth + 1, work));
            if (v->kind == PKL_DICT)
                h = pkl_mix(h, pkl_key_hash(v->vals[i], depth + 1, work));
        }
        return h;
    case PKL_COMPLEX: return pkl_mix(pkl_mix(h, pkl_bits(v->f)), pkl_bits(v->f_imag));
    default: return h;
    }
}

/* Hashing and comparing a key walk it as a tree, so shared values count each
 * time they are reached (*nodes): a key of 60 nested pairs made with DUP is
 * 2^60 nodes from 120 bytes. Bounding the nodes bounds every later hash and
 * comparison of a stored key. */
static enum err_code pkl_hashable(struct pkl_parser *p, const struct pkl_value *k, int depth,
                                  size_t *nodes)
{
    if (depth > PKL_MAX_KEY_DEPTH)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "dict key nested too deeply");
    if (++*nodes > PKL_MAX_KEY_NODES)
        return pkl__fail(p, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                         "dict key or set member of more than %d values", PKL_MAX_KEY_NODES);
    switch (k->kind) {
    case PKL_NONE:
    case PKL_BOOL:
    case PKL_INT:
    case PKL_FLOAT:
    case PKL_COMPLEX:
    case PKL_STR:
    case PKL_BYTES: return ERR_OK;
    case PKL_SET:
        if (!k->frozen)
            break;
        /* fall through */
    case PKL_OPAQUE:
    case PKL_DICT:
        if (!p->dcp || (k->kind == PKL_DICT && depth == 0))
            break; /* DCP instances (and their state dicts) only */
        /* fall through */
    case PKL_TUPLE:
        for (size_t i = 0; i < k->n_items; i++) {
            enum err_code rc = pkl_hashable(p, k->items[i], depth + 1, nodes);
            if (!rc && k->kind == PKL_DICT)
                rc = pkl_hashable(p, k->vals[i], depth + 1, nodes);
            if (rc)
                return rc;
        }
        return ERR_OK;
    default: break;
    }
    return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "unhashable dict key of type %s",
                     pkl_kind_name(k->kind));
}

enum err_code pkl__check_hashable(struct pkl_parser *p, const struct pkl_value *k)
{
    size_t nodes = 0;

    return pkl_hashable(p, k, 0, &nodes);
}

/* The first slot of a key's probe sequence: the hash finalised (murmur3's
 * fmix64), so that keys differing only in high bits spread. */
static size_t pkl_slot(const struct pkl_value *k, size_t mask, uint64_t *work)
{
    uint64_t h = pkl_key_hash(k, 0, work);

    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return (size_t)h & mask;
}

static long pkl_dict_scan(const struct pkl_value *d, const struct pkl_value *k, uint64_t *work)
{
    for (size_t i = 0; i < d->n_items; i++)
        if (pkl_key_eq(d->items[i], k, 0, work))
            return (long)i;
    return -1;
}

long pkl__dict_find(const struct pkl_value *d, const struct pkl_value *k, uint64_t *work)
{
    uint64_t ignored = 0;
    size_t mask, s;

    if (work == NULL)
        work = &ignored;
    if (d->hash_slots == NULL)
        return pkl_dict_scan(d, k, work);
    mask = d->hash_cap - 1;
    for (s = pkl_slot(k, mask, work); d->hash_slots[s] != 0; s = (s + 1) & mask) {
        size_t i = d->hash_slots[s] - 1;
        if (pkl_key_eq(d->items[i], k, 0, work))
            return (long)i;
    }
    return -1;
}

enum err_code pkl__key_work(struct pkl_parser *p)
{
    uint64_t budget = PKL_KEY_WORK(p->len);

    if (p->key_work <= budget)
        return ERR_OK;
    return pkl__fail(p, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                     "dict keys took more than %llu hash and comparison steps "
                     "(keys made to collide?)",
                     (unsigned long long)budget);
}

/* (Re)build the open-addressing index of `d` with room for twice its items. */
static enum err_code pkl_dict_index(struct pkl_parser *p, struct pkl_value *d)
{
    size_t cap = 16, mask;
    uint32_t *slots;
    enum err_code rc;

    while (cap < 4 * (d->n_items + 1))
        cap *= 2;
    rc = pkl__mem(p, (uint64_t)cap * sizeof(*slots), (uint64_t)d->hash_cap * sizeof(*slots),
                  "a dict index");
    if (rc)
        return rc;
    slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return err_set(p->e, ERR_NOMEM, "out of memory indexing a pickle dict");
    mask = cap - 1;
    for (size_t i = 0; i < d->n_items; i++) {
        size_t s = pkl_slot(d->items[i], mask, &p->key_work);
        for (; slots[s] != 0; s = (s + 1) & mask)
            p->key_work++;
        slots[s] = (uint32_t)(i + 1);
    }
    free(d->hash_slots);
    d->hash_slots = slots;
    d->hash_cap = cap;
    return pkl__key_work(p);
}

enum err_code pkl__dict_set(struct pkl_parser *p, struct pkl_value *d, struct pkl_value *k,
                            struct pkl_value *v)
{
    enum err_code rc;
    long at;

    rc = pkl__check_hashable(p, k);
    if (rc)
        return rc;
    at = pkl__dict_find(d, k, &p->key_work);
    rc = pkl__key_work(p);
    if (rc)
        return rc;
    if (at >= 0) {
        d->vals[at] = v;
        return ERR_OK;
    }
    rc = pkl__reserve(p, d);
    if (rc)
        return rc;
    d->items[d->n_items] = k;
    d->vals[d->n_items] = v;
    d->n_items++;
    if (d->n_items >= 8 && 2 * d->n_items >= d->hash_cap)
        return pkl_dict_index(p, d);
    if (d->hash_slots != NULL) { /* the walk pkl__dict_find just counted */
        size_t mask = d->hash_cap - 1, s = pkl_slot(k, mask, &p->key_work);
        while (d->hash_slots[s] != 0)
            s = (s + 1) & mask;
        d->hash_slots[s] = (uint32_t)d->n_items;
    }
    return ERR_OK;
}
