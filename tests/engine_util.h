/* engine_util.h -- TEST-ONLY: checkpoints opened and analysed end to end,
 * shared by the format and engine tests (test_dcp, test_deepspeed,
 * test_engine, test_gguf, test_layouts): open a checkpoint or fail a check, find a tensor or an
 * analysed layer by name, select and analyse a checkpoint's layers on the test's worker pool, and
 * the main() that runs a test's cases on that pool.
 *
 * Header-only (static inline functions). The one global, eng_pool, is the
 * worker pool eng_run_cases() makes for the cases and frees after them.
 * Ownership: a report filled here is the caller's (engine_report_free);
 * a checkpoint opened here is the caller's (ckpt_close). Not thread-safe:
 * for the main thread of a test (check.h).
 */
#ifndef TESTS_ENGINE_UTIL_H
#define TESTS_ENGINE_UTIL_H

#include <stdio.h>
#include <string.h>

#include "core/formats/ckpt.h"
#include "core/numerics/preset.h"
#include "server/engine.h"
#include "server/pool.h"
#include "tests/check.h"

static struct pool *eng_pool; /* the cases' worker pool (eng_run_cases) */

/* Open `path` as format `f` under `lim` (NULL: the defaults). NULL, after a
 * failed check and the reason on stderr, when it does not open. */
static inline struct ckpt *eng_open_ok(const char *path, enum ckpt_format f,
                                       const struct ckpt_limits *lim)
{
    struct ckpt *c = NULL;
    struct err e = {0};

    if (ckpt_open(path, f, lim, &c, &e) != ERR_OK)
        fprintf(stderr, "%s: %s: %s\n", path, err_category(&e), e.msg);
    CHECK(c != NULL);
    return c;
}

/* The tensor of `c` named `name` (its index to *at when at is not NULL),
 * or NULL; c may be NULL. */
static inline const struct ckpt_tensor *eng_find_tensor(const struct ckpt *c, const char *name,
                                                        size_t *at)
{
    for (size_t i = 0; c != NULL && i < ckpt_n_tensors(c); i++) {
        if (strcmp(ckpt_tensor_at(c, i)->name, name) == 0) {
            if (at != NULL)
                *at = i;
            return ckpt_tensor_at(c, i);
        }
    }
    return NULL;
}

/* What eng_select_run() does beyond selecting the layers. */
enum { ENG_RUN = 1 /* analyse them on eng_pool */, ENG_HASH = 2 /* with their SHA-256 */ };

/* Open `path` and select its layers under *p into *r, and with `flags`
 * analyse them (ENG_RUN) and hash them (ENG_HASH). Returns 0 on success,
 * else the error code after a failed check and the reason on stderr. */
static inline int eng_select_run(const char *path, const struct farms_params *p, int flags,
                                 struct engine_report *r)
{
    struct engine_opts o = {.params = p, .hash = (flags & ENG_HASH) != 0};
    struct ckpt *c = NULL;
    struct err e = {0};
    int rc;

    memset(r, 0, sizeof(*r));
    rc = ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, &e);
    if (rc == ERR_OK)
        rc = engine_select(c, &o, r, &e);
    if (rc == ERR_OK && (flags & ENG_RUN))
        rc = engine_run(c, eng_pool, &o, r, &e);
    if (rc)
        fprintf(stderr, "%s: %s: %s\n", path, err_category(&e), e.msg);
    CHECK_EQ_INT(rc, ERR_OK);
    ckpt_close(c);
    return rc;
}

/* Open `path`, select its layers under preset `preset` into *r and do
 * `flags` (ENG_RUN, ENG_HASH) with them. Returns 0 on success. */
static inline int eng_analyse_as(const char *path, const char *preset, int flags,
                                 struct engine_report *r)
{
    struct farms_params p;
    struct err e = {0};

    memset(&p, 0, sizeof(p));
    CHECK_EQ_INT(preset_get(preset, &p, &e), ERR_OK);
    return eng_select_run(path, &p, flags, r);
}

/* Open `path` and analyse it under preset `preset` into *r. Returns 0 on
 * success. */
static inline int eng_analyse(const char *path, const char *preset, struct engine_report *r)
{
    return eng_analyse_as(path, preset, ENG_RUN, r);
}

/* The analysed layer of *r named `name`, or NULL. */
static inline const struct engine_layer *eng_find_layer(const struct engine_report *r,
                                                        const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->layers[i].name, name) == 0)
            return &r->layers[i];
    return NULL;
}

/* The main() of a test `prog`: runs cases[0..n) on a two-worker eng_pool
 * and returns check_report(prog) (1 when the pool cannot be made). */
static inline int eng_run_cases(const char *prog, void (*const *cases)(void), size_t n)
{
    if (pool_new(2, 64, &eng_pool, NULL) != ERR_OK)
        return 1;
    for (size_t i = 0; i < n; i++)
        cases[i]();
    pool_free(eng_pool);
    eng_pool = NULL;
    return check_report(prog);
}

#endif /* TESTS_ENGINE_UTIL_H */
