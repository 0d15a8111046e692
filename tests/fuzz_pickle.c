/* fuzz_pickle.c -- libFuzzer target for the restricted unpickler: pkl_parse()
 * on arbitrary bytes in strict and lenient mode, with small limits, then a
 * walk over the result (containers visited once, as the torch loader does).
 * seeds: tests/fuzz-seeds/pickle tests/fixtures/checkpoints/malformed/pt_bare_pickle.pkl
 *
 * Memory: max_pickle_mem is 1 MiB here, so the 4 KB inputs libFuzzer makes
 * can reach it (the hostile_*.pkl seeds of tests/fixtures/hostile/make_hostile.py
 * do: 4 000 lists need 1.6 MB). Under ASan, malloc/free hooks measure the
 * bytes the parse really holds at once; more than max_pickle_mem (plus a page
 * for libc) is a crash, so an allocation that escapes the byte count is a fuzz
 * failure even where it stays far below libFuzzer's -malloc_limit_mb.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/pickle.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_HOOKS 1
#endif
#endif
#if !defined(FUZZ_HOOKS) && defined(__SANITIZE_ADDRESS__)
#define FUZZ_HOOKS 1
#endif
#ifdef FUZZ_HOOKS
#include <sanitizer/allocator_interface.h>
#endif

#define FUZZ_PICKLE_MEM (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_tracking;              /* 1 while a parse runs */
static long long fuzz_live, fuzz_peak; /* bytes allocated since tracking began */

#ifdef FUZZ_HOOKS
static void fuzz_malloc_hook(const volatile void *ptr, size_t size)
{
    (void)ptr;
    if (!fuzz_tracking)
        return;
    fuzz_live += (long long)size;
    if (fuzz_live > fuzz_peak)
        fuzz_peak = fuzz_live;
}

static void fuzz_free_hook(const volatile void *vptr)
{
    const void *ptr = (const void *)(uintptr_t)vptr; /* the hook's type; nothing is volatile */

    if (fuzz_tracking && ptr != NULL && __sanitizer_get_ownership(ptr))
        fuzz_live -= (long long)__sanitizer_get_allocated_size(ptr);
}
#endif

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
#ifdef FUZZ_HOOKS
    static int installed;
    if (!installed)
        installed = __sanitizer_install_malloc_and_free_hooks(fuzz_malloc_hook, fuzz_free_hook);
#endif
    for (int strict = 0; strict <= 1; strict++) {
        struct ckpt_limits lim;
        struct pkl_result *r = NULL;
        struct err e;
        size_t budget = 100000;
        enum err_code rc;
        ckpt_limits_default(&lim);
        lim.strict = strict;
        lim.max_pickle_stack = 1000;
        lim.max_pickle_marks = 100;
        lim.max_pickle_memo = 1000;
        lim.max_tensors = 1000;
        lim.max_pickle_mem = FUZZ_PICKLE_MEM;
        fuzz_live = fuzz_peak = 0;
        fuzz_tracking = 1;
        rc = pkl_parse(data, size, &lim, &r, &e);
        fuzz_tracking = 0;
        if (fuzz_peak > (long long)FUZZ_PICKLE_MEM + 4096)
            abort(); /* an allocation escaped the max_pickle_mem count */
        if (rc == ERR_OK) {
            if (pkl_mem_peak(r) > FUZZ_PICKLE_MEM || fuzz_peak > (long long)pkl_mem_peak(r) + 4096)
                abort(); /* the reported peak bounds the real one */
            (void)fuzz_walk(pkl_root(r), 0, &budget);
            for (size_t i = 0; i < pkl_n_storages(r); i++)
                if (strlen(pkl_storage_at(r, i)->key) == 0)
                    abort(); /* keys are validated non-empty */
            pkl_free(r);
        } else if (e.category == ERR_CAT_NONE && e.code != ERR_NOMEM) {
            abort(); /* every refusal carries a category (docs/checkpoint-formats.md) */
        }
    }
    return 0;
}
