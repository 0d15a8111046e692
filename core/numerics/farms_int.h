/* farms_int.h -- internals shared by farms.c and farms_layout.c (and the
 * unit tests): Python integer/float floor division, the reference's slice
 * rule, the plan structure. Not a public interface.
 */
#ifndef CORE_FARMS_INT_H
#define CORE_FARMS_INT_H

#include <stdint.h>

#include "core/numerics/esd.h"
#include "core/numerics/farms.h"

/* Python `a // b` on integers (rounds toward -inf). b != 0 (asserted). */
int64_t farms__floordiv(int64_t a, int64_t b);

/* Python `a // b` on floats, exactly as CPython computes it (fmod-based).
 * b == 0 gives NaN (Python raises ZeroDivisionError). */
double farms__floordiv_f(double a, double b);

/* Python slice `x[s : s + len]` on an axis of size n: *lo, *hi after the
 * negative-start rule and clamping (docs/numerics.md, Windows). */
void farms__slice(int64_t s, int64_t len, int64_t n, int64_t *lo, int64_t *hi);

/* Conv FARMS block shape (docs/numerics.md, Convolutions) for slice columns `cols`. */
void farms__conv_block(int64_t cols, double q_ratio, int64_t *br, int64_t *bc);

/* One unit: a run of windows sharing a fixed range (dense), or one kernel
 * position (conv). */
struct farms__unit {
    int64_t fixed;  /* dense: index of the fixed window range; conv: kernel position */
    int64_t s0, s1; /* dense: sliding window indices [s0, s1) */
};

struct farms_plan {
    struct farms_params p;
    enum farms_kind kind;
    int64_t shape[4];
    struct farms_layout lay;
    int skipped; /* decided at plan time (too few eigenvalues) */
    char reason[160];
    enum esd_side side; /* dense: Gram side of every window */
    int slide_rows;     /* dense: 1 = units fix a column window and slide rows */
    int64_t gram_n;     /* eigenvalues per slot (Gram side) */
    int64_t n_units;
    struct farms__unit *units; /* owned */
    int64_t n_esd;             /* ESDs fitted separately */
    int64_t slots_per_esd;     /* windows or kernel positions per ESD */
    int64_t n_eigs;            /* pooled eigenvalues, all ESDs */
    double *eigs;              /* owned: n_eigs; ESD d at [d * slots_per_esd * gram_n, ...) */
    struct farms_esd *esd;     /* owned: n_esd fits, valid when finished */
    int64_t n_base_units;      /* randomize: units [n_base_units, n_units) repeat units
                                  [0, n_base_units) on the randomized copy; else n_units */
    uint64_t rand_key;         /* randomize: key of the permutation (from the seed) */
    double *rand_eigs;         /* owned, randomize: n_eigs, the slots of eigs; else NULL */
    int finished;
};

#endif /* CORE_FARMS_INT_H */
