/* compare.c -- see compare.h. Both passes sort, so matching n layers costs
 * O(n log n) whatever the names. */
#include "core/compare.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPARE_NONE SIZE_MAX

/* One side's layer in the name pass: its name and index. */
struct compare_named {
    const char *name;
    size_t idx;
};

/* One unpaired layer in the role pass: its role key, side and index. */
struct compare_keyed {
    int64_t block;
    int64_t expert;
    int role; /* enum layer_role; LAYER_ROLE_NONE for the embedding */
    int side; /* 0: a, 1: b */
    size_t idx;
};

static int compare_named_cmp(const void *x, const void *y)
{
    const struct compare_named *p = x, *q = y;
    int c = strcmp(p->name, q->name);

    return c != 0 ? c : (p->idx > q->idx) - (p->idx < q->idx);
}

static int compare_keyed_cmp(const void *x, const void *y)
{
    const struct compare_keyed *p = x, *q = y;

    if (p->block != q->block)
        return p->block < q->block ? -1 : 1;
    if (p->expert != q->expert)
        return p->expert < q->expert ? -1 : 1;
    if (p->role != q->role)
        return p->role < q->role ? -1 : 1;
    if (p->side != q->side)
        return p->side - q->side;
    return (p->idx > q->idx) - (p->idx < q->idx);
}

static int compare_same_key(const struct compare_keyed *p, const struct compare_keyed *q)
{
    return p->block == q->block && p->expert == q->expert && p->role == q->role;
}

/* 1 if record i of r takes part (a weight matrix). */
static int compare_takes(const struct layer_records *r, size_t i)
{
    return layer_kind_is_weight(r->infos[i].kind);
}

/* The role key of record i of r into *k: 1 if it has one. */
static int compare_role_key(const struct layer_records *r, size_t i, struct compare_keyed *k)
{
    const struct layer_info *info = &r->infos[i];

    k->block = info->block;
    k->expert = info->expert;
    k->role = (int)info->role;
    if (info->role != LAYER_ROLE_NONE)
        return 1;
    return info->kind == LAYER_KIND_EMBEDDING && info->block < 0;
}

/* Pass 1: pair equal names; b_of_a[i] / a_of_b[j] get the partners. */
static enum err_code compare_by_names(const struct layer_records *a, const struct layer_records *b,
                                      size_t *b_of_a, size_t *a_of_b, struct err *e)
{
    struct compare_named *sorted = malloc((b->n ? b->n : 1) * sizeof(*sorted));
    size_t n = 0;

    if (sorted == NULL)
        return err_set(e, ERR_NOMEM, "out of memory matching %zu layers", b->n);
    for (size_t j = 0; j < b->n; j++)
        if (compare_takes(b, j))
            sorted[n++] = (struct compare_named){b->names[j], j};
    qsort(sorted, n, sizeof(*sorted), compare_named_cmp);
    for (size_t i = 0; i < a->n; i++) {
        size_t lo = 0, hi = n;
        if (!compare_takes(a, i))
            continue;
        while (lo < hi) { /* first entry >= name */
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(sorted[mid].name, a->names[i]) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (; lo < n && strcmp(sorted[lo].name, a->names[i]) == 0; lo++) {
            if (a_of_b[sorted[lo].idx] == COMPARE_NONE) {
                a_of_b[sorted[lo].idx] = i;
                b_of_a[i] = sorted[lo].idx;
                break;
            }
        }
    }
    free(sorted);
    return ERR_OK;
}

/* Pass 2: among the unpaired, pair the role keys held once on each side. */
static enum err_code compare_by_roles(const struct layer_records *a, const struct layer_records *b,
                                      size_t *b_of_a, size_t *a_of_b, struct err *e)
{
    struct compare_keyed *k = malloc((a->n + b->n + 1) * sizeof(*k));
    size_t n = 0;

    if (k == NULL)
        return err_set(e, ERR_NOMEM, "out of memory matching %zu layers", a->n + b->n);
    for (size_t i = 0; i < a->n; i++) {
        if (compare_takes(a, i) && b_of_a[i] == COMPARE_NONE && compare_role_key(a, i, &k[n])) {
            k[n].side = 0;
            k[n++].idx = i;
        }
    }
    for (size_t j = 0; j < b->n; j++) {
        if (compare_takes(b, j) && a_of_b[j] == COMPARE_NONE && compare_role_key(b, j, &k[n])) {
            k[n].side = 1;
            k[n++].idx = j;
        }
    }
    qsort(k, n, sizeof(*k), compare_keyed_cmp);
    for (size_t g = 0; g < n;) {
        size_t end = g + 1;
        while (end < n && compare_same_key(&k[g], &k[end]))
            end++;
        if (end - g == 2 && k[g].side == 0 && k[g + 1].side == 1) {
            b_of_a[k[g].idx] = k[g + 1].idx;
            a_of_b[k[g + 1].idx] = k[g].idx;
        }
        g = end;
    }
    free(k);
    return ERR_OK;
}

/* The match of the partner arrays: pairs in a's order, the rest. */
static enum err_code compare_collect(const struct layer_records *a, const struct layer_records *b,
                                     const size_t *b_of_a, const size_t *a_of_b,
                                     const unsigned char *by_role, struct compare_match *m,
                                     struct err *e)
{
    m->pairs = malloc((a->n ? a->n : 1) * sizeof(*m->pairs));
    m->only_a = malloc((a->n ? a->n : 1) * sizeof(*m->only_a));
    m->only_b = malloc((b->n ? b->n : 1) * sizeof(*m->only_b));
    if (m->pairs == NULL || m->only_a == NULL || m->only_b == NULL)
        return err_set(e, ERR_NOMEM, "out of memory matching %zu layers", a->n + b->n);
    for (size_t i = 0; i < a->n; i++) {
        if (!compare_takes(a, i))
            continue;
        if (b_of_a[i] == COMPARE_NONE)
            m->only_a[m->n_only_a++] = i;
        else
            m->pairs[m->n_pairs++] =
                (struct compare_pair){i, b_of_a[i], by_role[i] ? COMPARE_BY_ROLE : COMPARE_BY_NAME};
    }
    for (size_t j = 0; j < b->n; j++)
        if (compare_takes(b, j) && a_of_b[j] == COMPARE_NONE)
            m->only_b[m->n_only_b++] = j;
    return ERR_OK;
}

enum err_code compare_match_new(const struct layer_records *a, const struct layer_records *b,
                                struct compare_match **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct compare_match *m = NULL;
    size_t *b_of_a = NULL, *a_of_b = NULL;
    unsigned char *by_role = NULL;

    *out = NULL;
    m = calloc(1, sizeof(*m));
    b_of_a = malloc((a->n ? a->n : 1) * sizeof(*b_of_a));
    a_of_b = malloc((b->n ? b->n : 1) * sizeof(*a_of_b));
    by_role = calloc(a->n ? a->n : 1, 1);
    if (m == NULL || b_of_a == NULL || a_of_b == NULL || by_role == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory matching %zu layers", a->n + b->n);
        goto out;
    }
    for (size_t i = 0; i < a->n; i++)
        b_of_a[i] = COMPARE_NONE;
    for (size_t j = 0; j < b->n; j++)
        a_of_b[j] = COMPARE_NONE;
    rc = compare_by_names(a, b, b_of_a, a_of_b, e);
    if (rc != ERR_OK)
        goto out;
    for (size_t i = 0; i < a->n; i++)
        by_role[i] = b_of_a[i] == COMPARE_NONE; /* what pass 2 pairs is by role */
    rc = compare_by_roles(a, b, b_of_a, a_of_b, e);
    if (rc == ERR_OK)
        rc = compare_collect(a, b, b_of_a, a_of_b, by_role, m, e);
    if (rc != ERR_OK)
        goto out;
    *out = m;
    m = NULL;
out:
    compare_match_free(m);
    free(b_of_a);
    free(a_of_b);
    free(by_role);
    return rc;
}

void compare_match_free(struct compare_match *m)
{
    if (m == NULL)
        return;
    free(m->pairs);
    free(m->only_a);
    free(m->only_b);
    free(m);
}

void compare_key(const char *name, const struct layer_info *info, enum compare_by by, char *buf,
                 size_t len)
{
    const char *role = layer_role_name(info->role);

    if (len == 0)
        return;
    if (by == COMPARE_BY_NAME)
        snprintf(buf, len, "%s", name);
    else if (info->role == LAYER_ROLE_NONE)
        snprintf(buf, len, "embedding");
    else if (info->block < 0)
        snprintf(buf, len, "%s", role);
    else if (info->expert >= 0)
        snprintf(buf, len, "block %lld expert %lld %s", (long long)info->block,
                 (long long)info->expert, role);
    else
        snprintf(buf, len, "block %lld %s", (long long)info->block, role);
}

const char *compare_by_name(enum compare_by by)
{
    return by == COMPARE_BY_ROLE ? "role" : "name";
}

double compare_delta(double a, double b)
{
    return isfinite(a) && isfinite(b) ? b - a : NAN;
}

double compare_mean(const double *v, size_t n, size_t *n_used)
{
    double sum = 0.0;
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        if (isfinite(v[i])) {
            sum += v[i];
            k++;
        }
    }
    if (n_used != NULL)
        *n_used = k;
    return k > 0 ? sum / (double)k : NAN;
}
