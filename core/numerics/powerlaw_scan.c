/* powerlaw_scan.c -- exact argmin of the KS distance over xmin candidates
 * (docs/numerics.md, Power-law fit), fast and naive.
 *
 * D(i) = max_k |F(k)|, F(k) = c(k) - k/n with c(k) = pl__ks_c(.., i, k, ..)
 * nondecreasing in k (alpha > 1) and k/n increasing. On the interior of an
 * interval [ka, kb] of k therefore
 *     c(ka) - (kb-1)/n <= F(k) <= c(kb) - (ka+1)/n,
 * so two evaluations bound |F| on a whole interval. The fast search is a
 * branch and bound on top of that:
 *   - per candidate: evaluate F on a coarse grid, then refine (depth first,
 *     highest bound first) only the intervals whose upper bound can reach the
 *     largest term seen so far. Pruned intervals hold only terms strictly
 *     below an evaluated term, so the max is found bitwise exactly;
 *   - across candidates: a candidate is abandoned as soon as one evaluated
 *     term shows it cannot beat the best D so far (ties: first index wins),
 *     and candidates are processed in ascending order of a cheap lower bound
 *     so that a near-optimal best is found early.
 * Nothing is approximated and nothing exits early in a way that could miss
 * the global argmin; pl__scan returns what pl__scan_naive returns. Worst case
 * (no pruning possible) is the naive O(N^2).
 *
 * No state: thread-safe.
 */
#include "core/numerics/powerlaw_int.h"

#include <stdlib.h>

/* Interval bounds are computed from rounded values and exp is monotone only
 * to within an ulp: an interval is pruned only if its bound is below the
 * current max by more than this (all quantities lie in [0, 1]). */
#define PL_SLACK 1e-12
#define PL_GRID1 16  /* uniform points of the ordering lower bound */
#define PL_GRID2 32  /* uniform points of the first refinement level */
#define PL_NPTS  128 /* >= 2 + PL_GRID2 + 63 geometric + 1 hint */
#define PL_STACK 256 /* >= PL_NPTS + 64 levels of depth */

struct pl_cand {
    double lb; /* lower bound of D(i) */
    int64_t i; /* candidate index */
};

struct pl_best {
    double D;      /* best D so far (1: sentinel) */
    int64_t i;     /* its index */
    int64_t jstar; /* absolute index where its max term lies, -1 if none */
};

struct pl_iv {
    int64_t ka, kb; /* evaluated ends; interior ka+1..kb-1 unevaluated */
    double ca, cb;  /* c(ka), c(kb) */
    double ub;      /* bound of |F| on the interior */
};

double pl__ks_distance(const struct pl__data *d, int64_t i)
{
    int64_t n = d->n - i, k;
    double nt = (double)n, oma = 1.0 - d->alpha[i], D = 0.0;

    for (k = 0; k < n; k++) {
        double t = pl__ks_term(pl__ks_c(d->lnx, i, k, oma), k, nt);
        if (t > D)
            D = t;
    }
    return D;
}

void pl__scan_naive(const struct pl__data *d, int64_t c0, int64_t c1, int64_t *best_i,
                    double *best_D)
{
    int64_t i;

    *best_i = 0; /* slot 0 holds D = 1 unless it is a better candidate */
    *best_D = 1.0;
    for (i = c0; i <= c1; i++) {
        if (d->alpha[i] > 1.0) {
            double D = pl__ks_distance(d, i);
            if (D < *best_D) {
                *best_D = D;
                *best_i = i;
            }
        }
    }
}

/* Would a candidate i with D = v be chosen over `b`? (first index on ties) */
static int pl_beats(double v, int64_t i, const struct pl_best *b)
{
    return v < b->D || (v == b->D && i < b->i);
}

/* k = floor(j (n-1) / g) without overflow. */
static int64_t pl_grid_k(int64_t n, int64_t j, int64_t g)
{
    return (n - 1) / g * j + (n - 1) % g * j / g;
}

/* A cheap lower bound of D(i): the max term on a geometric and a uniform grid. */
static double pl_coarse_lb(const struct pl__data *d, int64_t i)
{
    int64_t n = d->n - i, k, j;
    double nt = (double)n, oma = 1.0 - d->alpha[i], lb = 0.0, t;

    for (k = 1; k < n; k *= 2) {
        t = pl__ks_term(pl__ks_c(d->lnx, i, k, oma), k, nt);
        lb = t > lb ? t : lb;
    }
    for (j = 1; j <= PL_GRID1; j++) {
        k = pl_grid_k(n, j, PL_GRID1);
        t = pl__ks_term(pl__ks_c(d->lnx, i, k, oma), k, nt);
        lb = t > lb ? t : lb;
    }
    return lb;
}

static void pl_iv_bound(struct pl_iv *v, double nt)
{
    double a = v->cb - (double)(v->ka + 1) / nt, b = (double)(v->kb - 1) / nt - v->ca;

    v->ub = a > b ? a : b;
}

/* Sorted, distinct first-level points of candidate i (tail length n). */
static int pl_first_points(int64_t n, int64_t hint, int64_t *pk)
{
    int np = 0, a, b, j;
    int64_t k;

    pk[np++] = 0;
    pk[np++] = n - 1;
    if (hint > 0 && hint < n)
        pk[np++] = hint;
    for (k = 1; k < n; k *= 2)
        pk[np++] = k;
    for (j = 1; j < PL_GRID2; j++)
        pk[np++] = pl_grid_k(n, j, PL_GRID2);
    ERR_ASSERT(np <= PL_NPTS);
    for (a = 1; a < np; a++) { /* insertion sort: np is small */
        k = pk[a];
        for (b = a; b > 0 && pk[b - 1] > k; b--)
            pk[b] = pk[b - 1];
        pk[b] = k;
    }
    for (a = 0, b = 0; a < np; a++)
        if (b == 0 || pk[a] != pk[b - 1])
            pk[b++] = pk[a];
    return b;
}

/* Push `v` if its interior is non-empty and can hold a term >= lb. */
static void pl_push(struct pl_iv *st, int *sp, struct pl_iv v, double nt, double lb)
{
    if (v.kb - v.ka < 2)
        return;
    pl_iv_bound(&v, nt);
    if (v.ub + PL_SLACK < lb)
        return;
    ERR_ASSERT(*sp < PL_STACK);
    st[(*sp)++] = v;
}

/* The branch-and-bound state of candidate i: the running lower bound lb on
 * D(i), the largest KS term seen so far, and the k where it was. */
struct pl_search {
    const struct pl__data *d;
    const struct pl_best *best;
    int64_t i, n, argk;
    double nt, oma, lb;
};

/* Raise the bound with the KS term at k (c: its pl__ks_c). Returns 0 as soon
 * as candidate i cannot beat the best. */
static int pl_search_term(struct pl_search *s, int64_t k, double c)
{
    double t = pl__ks_term(c, k, s->nt);

    if (t > s->lb) {
        s->lb = t;
        s->argk = k;
        if (!pl_beats(s->lb, s->i, s->best))
            return 0;
    }
    return 1;
}

/* Seed the bound: the term where the best's max was, then the first points,
 * which go to pk[] with their c values in pc[]. Returns their number, or -1
 * when candidate i cannot beat the best. */
static int pl_search_seed(struct pl_search *s, int64_t *pk, double *pc)
{
    int64_t hint = s->best->jstar - s->i;
    int np;

    if (s->best->jstar >= 0 && hint > 0 && hint < s->n) { /* where the best's max was */
        s->lb = pl__ks_term(pl__ks_c(s->d->lnx, s->i, hint, s->oma), hint, s->nt);
        s->argk = hint;
        if (!pl_beats(s->lb, s->i, s->best))
            return -1;
    }
    np = pl_first_points(s->n, s->best->jstar >= 0 ? hint : -1, pk);
    for (int a = 0; a < np; a++) {
        pc[a] = pl__ks_c(s->d->lnx, s->i, pk[a], s->oma);
        if (!pl_search_term(s, pk[a], pc[a]))
            return -1;
    }
    return np;
}

/* Stack the intervals between consecutive seed points that may still hold a
 * larger term, highest bound on top. Returns the stack size. */
static int pl_search_stack(const struct pl_search *s, const int64_t *pk, const double *pc, int np,
                           struct pl_iv *st)
{
    int sp = 0, b;

    for (int a = 0; a + 1 < np; a++)
        pl_push(st, &sp, (struct pl_iv){pk[a], pk[a + 1], pc[a], pc[a + 1], 0}, s->nt, s->lb);
    for (int a = 1; a < sp; a++) {
        struct pl_iv v = st[a];
        for (b = a; b > 0 && st[b - 1].ub > v.ub; b--)
            st[b] = st[b - 1];
        st[b] = v;
    }
    return sp;
}

/* Bisect the stacked intervals until none can hold a term above the bound.
 * Returns 0 as soon as candidate i cannot beat the best. */
static int pl_search_refine(struct pl_search *s, struct pl_iv *st, int sp)
{
    while (sp > 0) {
        struct pl_iv v = st[--sp], lo, hi;
        int64_t k;
        double cm;

        if (v.ub + PL_SLACK < s->lb)
            continue;
        k = v.ka + (v.kb - v.ka) / 2;
        cm = pl__ks_c(s->d->lnx, s->i, k, s->oma);
        if (!pl_search_term(s, k, cm))
            return 0;
        /* push the half with the lower bound first: the higher one is
         * refined next (depth first, best first) */
        lo = (struct pl_iv){v.ka, k, v.ca, cm, 0};
        hi = (struct pl_iv){k, v.kb, cm, v.cb, 0};
        pl_iv_bound(&lo, s->nt);
        pl_iv_bound(&hi, s->nt);
        if (lo.ub > hi.ub) {
            struct pl_iv tmp = lo;
            lo = hi;
            hi = tmp;
        }
        pl_push(st, &sp, lo, s->nt, s->lb);
        pl_push(st, &sp, hi, s->nt, s->lb);
    }
    return 1;
}

/* Branch and bound for candidate i. Returns 1 with D(i) and the k of its
 * max term if D(i) beats `best`; 0 as soon as it cannot. */
static int pl_cand_search(const struct pl__data *d, int64_t i, const struct pl_best *best,
                          double *D_out, int64_t *k_out)
{
    struct pl_search s = {d, best, i, d->n - i, 0, (double)(d->n - i), 1.0 - d->alpha[i], 0.0};
    int64_t pk[PL_NPTS];
    double pc[PL_NPTS];
    struct pl_iv st[PL_STACK];
    int np, sp;

    np = pl_search_seed(&s, pk, pc);
    if (np < 0)
        return 0;
    sp = pl_search_stack(&s, pk, pc, np, st);
    if (!pl_search_refine(&s, st, sp))
        return 0;
    *D_out = s.lb;
    *k_out = s.argk;
    return pl_beats(s.lb, i, best);
}

static int pl_cand_cmp(const void *pa, const void *pb)
{
    const struct pl_cand *a = pa, *b = pb;

    if (a->lb != b->lb)
        return a->lb < b->lb ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

enum err_code pl__scan(const struct pl__data *d, int64_t c0, int64_t c1, int64_t *best_i,
                       double *best_D, struct err *e)
{
    struct pl_best best = {1.0, 0, -1};
    struct pl_cand *cands = NULL;
    int64_t m = 0, j, i, k;
    double D;

    if (c1 >= c0) {
        int64_t n_cand = c1 - c0 + 1;
        cands = malloc((size_t)n_cand * sizeof *cands);
        if (cands == NULL)
            return err_set(e, ERR_NOMEM, "pl_fit: %lld xmin candidates", (long long)n_cand);
    }
    for (i = c0; i <= c1; i++) {
        if (d->alpha[i] > 1.0) { /* others keep D = 1 */
            cands[m].lb = pl_coarse_lb(d, i);
            cands[m++].i = i;
        }
    }
    if (m > 0)
        qsort(cands, (size_t)m, sizeof *cands, pl_cand_cmp);
    for (j = 0; j < m; j++) {
        if (cands[j].lb > best.D)
            break; /* sorted: no later candidate can beat best */
        if (!pl_beats(cands[j].lb, cands[j].i, &best))
            continue;
        i = cands[j].i;
        if (pl_cand_search(d, i, &best, &D, &k)) {
            best.D = D;
            best.i = i;
            best.jstar = i + k;
        }
    }
    free(cands);
    *best_i = best.i;
    *best_D = best.D;
    return ERR_OK;
}
