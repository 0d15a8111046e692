/* layers_int.h -- what layers.c (names, splitting, roles, classification)
 * shares with layers_kind.c (kinds and structural candidacy). Internal to
 * core/formats/layers*.c: not a public header. Split names borrow from the
 * caller's string; no state, const tables only: thread-safe.
 */
#ifndef CORE_LAYERS_INT_H
#define CORE_LAYERS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/formats/layers.h"

#define LAYER_MAX_COMPS  64
#define LAYER_MAX_DIGITS 18 /* a block/expert index longer than this is not one */
#define LAYER_LEAF_MAX   64 /* a leaf with a `:N` suffix longer than this keeps it */

struct layer_comp {
    const char *s; /* borrowed from the name */
    size_t len;
};

struct layer_name {                       /* a display name, split */
    struct layer_comp m[LAYER_MAX_COMPS]; /* module components */
    size_t n_m;
    const char *leaf;    /* text after the last separator, or the whole name, without a
                            TF `:N` suffix (then a copy in leaf_buf) */
    const char *leaf_at; /* where the leaf starts in the name */
    int slash;           /* the name has a '/' (Keras/TF/Flax) */
    int block_kw_h;      /* the block index follows `h` (GPT-2 family) */
    char leaf_buf[LAYER_LEAF_MAX];
};

#define LAYER_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* --- layers.c: components ----------------------------------------------------- */

/* 1 if component `c` is the string `s`. */
int layer__eq(const struct layer_comp *c, const char *s);

/* Component i counted from the end of the module (0 = last), or an empty one. */
struct layer_comp layer__tail(const struct layer_name *nm, size_t i);

/* 1 if `s` is one of the `n` strings of `list`. */
int layer__in(const char *s, const char *const *list, size_t n);

/* 1 if component `c` is one of the `n` strings of `list`. */
int layer__comp_in(const struct layer_comp *c, const char *const *list, size_t n);

/* --- layers_kind.c: kinds ------------------------------------------------------ */

/* Not a candidate: clear out->analyze and set out->reason to `reason`. */
void layer__skip(struct layer_info *out, const char *reason);

/* Kind and structural candidacy (the table in docs/checkpoint-formats.md),
 * under layout rule `layout`. */
void layer__kind(const struct layer_name *nm, enum dtype dtype, int ndim, const int64_t *shape,
                 enum layer_layout layout, struct layer_info *out);

/* The weight kind of a 2-D..4-D tensor by its rank, in the PyTorch or the
 * Keras (`io`) reading. */
enum layer_kind layer__kind_by_rank(int ndim, int io);

/* The structural checks of a candidate weight: no zero extent, a 2-D
 * weight with both dimensions >= 2. */
void layer__check_extents(int ndim, const int64_t *shape, struct layer_info *out);

/* Not a candidate because of dtype `t` (not analysable): the reason says why. */
void layer__dtype_reason(enum dtype t, struct layer_info *out);

#endif /* CORE_LAYERS_INT_H */
