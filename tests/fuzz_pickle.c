/* fuzz_pickle.c -- libFuzzer target for the restricted unpickler: pkl_parse()
 * on arbitrary bytes in strict and lenient mode, with small limits, then a
 * walk over the result (containers visited once, as the torch loader does).
 * seeds: tests/fuzz-seeds/pickle tests/fixtures/checkpoints/malformed/pt_bare_pickle.pkl
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Count tensors reachable from v; `budget` bounds the visits of shared values. */
static size_t fuzz_walk(const struct pkl_value *v, int depth, size_t *budget)
{
    size_t n = 0;

    if (v->kind == PKL_TENSOR)
        return 1;
    if (depth > 64 || *budget == 0)
        return 0;
    (*budget)--;
    for (size_t i = 0; i < v->n_items; i++) {
        n += fuzz_walk(v->items[i], depth + 1, budget);
        if (v->kind == PKL_DICT)
            n += fuzz_walk(v->vals[i], depth + 1, budget);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int strict = 0; strict <= 1; strict++) {
        struct ckpt_limits lim;
        struct pkl_result *r = NULL;
        struct err e;
        size_t budget = 100000;
        ckpt_limits_default(&lim);
        lim.strict = strict;
        lim.max_pickle_stack = 1000;
        lim.max_pickle_marks = 100;
        lim.max_pickle_memo = 1000;
        lim.max_tensors = 1000;
        if (pkl_parse(data, size, &lim, &r, &e) == ERR_OK) {
            (void)fuzz_walk(pkl_root(r), 0, &budget);
            for (size_t i = 0; i < pkl_n_storages(r); i++)
                if (strlen(pkl_storage_at(r, i)->key) == 0)
                    abort(); /* keys are validated non-empty */
            pkl_free(r);
        } else if (e.category == NULL && e.code != ERR_NOMEM) {
            abort(); /* every refusal carries a category (docs/checkpoint-formats.md) */
        }
    }
    return 0;
}
