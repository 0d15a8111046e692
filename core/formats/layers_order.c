/* layers_order.c -- natural sort of names and the canonical layer order
 * (docs/checkpoint-formats.md, Which tensors are analysed). See layers.h. Stateless, const tables
 * only: thread-safe.
 */
#include "core/formats/layers.h"

#include <stdlib.h>
#include <string.h>

static const char *const layer_ordering_names[] = {"canonical", "file", "natural"};

#define LAYER_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int layer_order_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

int layer_natural_cmp(const char *a, const char *b)
{
    const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;

    while (*p != '\0' && *q != '\0') {
        if (layer_order_is_digit(*p) && layer_order_is_digit(*q)) {
            const unsigned char *pe, *qe;
            size_t lp, lq;
            int c;

            while (*p == '0' && layer_order_is_digit(p[1]))
                p++;
            while (*q == '0' && layer_order_is_digit(q[1]))
                q++;
            for (pe = p; layer_order_is_digit(*pe); pe++)
                ;
            for (qe = q; layer_order_is_digit(*qe); qe++)
                ;
            lp = (size_t)(pe - p);
            lq = (size_t)(qe - q);
            if (lp != lq)
                return lp < lq ? -1 : 1;
            c = memcmp(p, q, lp);
            if (c != 0)
                return c;
            p = pe;
            q = qe;
        } else {
            if (*p != *q)
                return *p < *q ? -1 : 1;
            p++;
            q++;
        }
    }
    if (*p != '\0' || *q != '\0')
        return *p != '\0' ? 1 : -1;
    return strcmp(a, b);
}

const char *layer_ordering_name(enum layer_ordering o)
{
    ERR_ASSERT((unsigned)o < LAYER_COUNT(layer_ordering_names));
    return layer_ordering_names[o];
}

/* --- Order ------------------------------------------------------------------------ */

/* 0 embeddings outside blocks, 1 block records, 2 the rest, 3 heads. */
static int layer_group(const struct layer_info *x)
{
    if (x->block >= 0)
        return 1;
    if (x->role == LAYER_ROLE_HEAD)
        return 3;
    return x->kind == LAYER_KIND_EMBEDDING ? 0 : 2;
}

static int layer_cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static int layer_cmp(const struct layer_records *s, size_t i, size_t j)
{
    const struct layer_info *a = &s->infos[i], *b = &s->infos[j];
    int c = layer_cmp_i64(layer_group(a), layer_group(b));

    if (c == 0 && a->block >= 0) {
        c = layer_cmp_i64(a->block, b->block);
        if (c == 0)
            c = layer_cmp_i64(a->expert, b->expert);
        if (c == 0)
            c = layer_cmp_i64(a->role, b->role);
    }
    if (c == 0)
        c = layer_natural_cmp(s->names[i], s->names[j]);
    return c != 0 ? c : layer_cmp_i64((int64_t)i, (int64_t)j);
}

/* Bottom-up merge sort of idx[0..n) using tmp[0..n): stable, O(n log n). */
static void layer_merge_sort(const struct layer_records *s, size_t *idx, size_t *tmp, size_t n)
{
    size_t *src = idx, *dst = tmp;

    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n;
            size_t hi = mid + w < n ? mid + w : n;
            size_t a = lo, b = mid, k = lo;

            while (a < mid && b < hi)
                dst[k++] = layer_cmp(s, src[a], src[b]) <= 0 ? src[a++] : src[b++];
            while (a < mid)
                dst[k++] = src[a++];
            while (b < hi)
                dst[k++] = src[b++];
        }
        size_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != idx)
        memcpy(idx, src, n * sizeof(*idx));
}

enum err_code layer_order(const struct layer_records *r, int keep_file_order, size_t *order_out,
                          enum layer_ordering *how, struct err *e)
{
    const struct layer_info *infos = r->infos;
    size_t n = r->n;
    enum layer_ordering used = LAYER_ORDERING_NATURAL;
    size_t *tmp = NULL;
    int any_block = 0;

    for (size_t i = 0; i < n; i++) {
        order_out[i] = i;
        any_block |= infos[i].block >= 0;
    }
    if (any_block)
        used = LAYER_ORDERING_CANONICAL;
    else if (keep_file_order)
        used = LAYER_ORDERING_FILE;
    if (how != NULL)
        *how = used;
    if (used == LAYER_ORDERING_FILE || n < 2)
        return ERR_OK;
    if (n > SIZE_MAX / sizeof(*tmp))
        return err_set(e, ERR_NOMEM, "ordering %zu layers: size overflow", n);
    tmp = malloc(n * sizeof(*tmp));
    if (tmp == NULL)
        return err_set(e, ERR_NOMEM, "out of memory ordering %zu layers", n);
    layer_merge_sort(r, order_out, tmp, n);
    free(tmp);
    return ERR_OK;
}
