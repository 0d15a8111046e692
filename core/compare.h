/* compare.h -- which layer of one checkpoint is which layer of another:
 * the matching behind GET /v1/compare and `farmsd compare`.
 *
 * Two checkpoints of one model rarely name every layer alike: a HF
 * safetensors LLaMA calls `model.layers.3.self_attn.q_proj.weight` what its
 * GGUF conversion calls `blk.3.attn_q.weight`. The matching therefore has
 * two passes over the weight matrices of both sides (layer_kind_is_weight;
 * biases, norms and buffers take no part):
 *   1. by name: equal display names pair up;
 *   2. by role: among the still unpaired, equal role keys pair up: (block,
 *      expert, role) of layer_classify for a layer with a role (attn_q, ...,
 *      head), and "the embedding" for an embedding table outside blocks. A
 *      key held by more than one unpaired layer of a side is ambiguous: those
 *      layers stay unpaired.
 * What is left is reported as only in a / only in b. Pairs come in a's
 * order, the unpaired of each side in that side's order (callers pass
 * canonical order, layer_order()).
 *
 * Also the arithmetic of a comparison: delta = b - a and plain means, with
 * NaN for "no value" throughout.
 *
 * Ownership: a struct compare_match is the caller's (compare_match_free);
 * records are borrowed for the call only. Thread-safety: no state:
 * thread-safe.
 */
#ifndef CORE_COMPARE_H
#define CORE_COMPARE_H

#include <stddef.h>

#include "core/err.h"
#include "core/formats/layers.h"

/* How a pair was matched. */
enum compare_by {
    COMPARE_BY_NAME, /* equal display names */
    COMPARE_BY_ROLE  /* equal (block, expert, role), or both the embedding */
};

struct compare_pair {
    size_t a;           /* index into side a's records */
    size_t b;           /* index into side b's records */
    enum compare_by by; /* how they were matched */
};

struct compare_match {
    size_t n_pairs;
    struct compare_pair *pairs; /* owned: in a's order */
    size_t n_only_a;
    size_t *only_a; /* owned: unpaired weight layers of a, in a's order */
    size_t n_only_b;
    size_t *only_b; /* owned: unpaired weight layers of b, in b's order */
};

/* --- Matching --------------------------------------------------------------- */

/* Match the records of side `a` against those of side `b` (names and
 * layer_classify infos, as layer_order takes them) as described above.
 * Returns a new match in *out; free with compare_match_free(). Fails only
 * with ERR_NOMEM; *out is then NULL. */
enum err_code compare_match_new(const struct layer_records *a, const struct layer_records *b,
                                struct compare_match **out, struct err *e);

/* Free `m`. NULL is a no-op. */
void compare_match_free(struct compare_match *m);

/* The key of a pair for people and for JSON: the name for a pair matched
 * by name (`name`, side a's), else the role key of `info` (side a's):
 * "block 3 attn_q", "block 1 expert 2 mlp_up", "head", "embedding".
 * Written to buf[0..len), truncated to fit. Cannot fail. */
void compare_key(const char *name, const struct layer_info *info, enum compare_by by, char *buf,
                 size_t len);

/* "name" / "role". Never NULL for a valid value. */
const char *compare_by_name(enum compare_by by);

/* --- Arithmetic ------------------------------------------------------------- */

/* b - a, or NaN unless both are finite. Cannot fail. */
double compare_delta(double a, double b);

/* The plain mean of the finite values of v[0..n) (NaN: no value), with
 * their count in *n_used (may be NULL); NaN when there is none. Cannot
 * fail. */
double compare_mean(const double *v, size_t n, size_t *n_used);

#endif /* CORE_COMPARE_H */
