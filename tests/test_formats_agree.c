/* test_formats_agree.c -- the same weights give the same per-layer results
 * whatever the format they are stored in.
 *
 * Each group below names one reference checkpoint and the other files and
 * folders holding exactly its values (bitwise): the torch zip and .npz
 * twins, the Keras/TF and Flax layouts (tests/fixtures/layouts), GGUF F32
 * and F16 (tests/fixtures/gguf, written by the real ggml), PyTorch
 * Distributed Checkpoint folders (tests/fixtures/dcp) and DeepSpeed ZeRO-2
 * and ZeRO-3 folders (tests/fixtures/deepspeed). Every one is analysed
 * through the engine, as `farmsd analyze` and the service do, and its
 * analysed layers, in canonical order, must have the reference's layers'
 * alpha, D, xmin and eigenvalue count bit for bit: the same values reach
 * FARMS in the same order, whatever the names, layout or chunking.
 */
#include <stdio.h>
#include <string.h>

#include "core/formats/ckpt.h"
#include "core/numerics/preset.h"
#include "server/engine.h"
#include "server/pool.h"
#include "tests/check.h"

#define FIX "tests/fixtures/"

struct group {
    const char *preset;
    const char *reference;
    const char *same[6]; /* NULL-terminated */
    int layers;          /* analysed layers of the reference */
};

static const struct group groups[] = {
    {"farms-cv",
     FIX "checkpoints/mlp/mlp_step0500.safetensors",
     {FIX "checkpoints/mlp/mlp_step0500.pt", FIX "checkpoints/mlp/mlp_step0500.npz",
      FIX "layouts/keras_mlp.safetensors", FIX "layouts/flax_mlp.safetensors", FIX "dcp/mlp_fsdp",
      NULL},
     3},
    {"farms-cv",
     FIX "checkpoints/mlp/mlp_step0500.safetensors",
     {FIX "dcp/mlp_uneven", FIX "dcp/mlp_2d", NULL},
     3},
    {"farms-cv",
     FIX "checkpoints/mlp/mlp_step0500_bf16.safetensors",
     {FIX "checkpoints/mlp/mlp_step0500_bf16.pt", FIX "deepspeed/zero2_bf16", NULL},
     3},
    {"farms-cv",
     FIX "checkpoints/cnn/cnn_step0500.safetensors",
     {FIX "checkpoints/cnn/cnn_step0500.pt", FIX "layouts/keras_cnn.safetensors",
      FIX "layouts/flax_cnn.safetensors", FIX "deepspeed/zero3_fp32", NULL},
     4},
    {"farms-llm",
     FIX "checkpoints/llama/llama_step0500.safetensors",
     {FIX "gguf/llama_f32.gguf", FIX "dcp/llama_fsdp", FIX "deepspeed/zero3_bf16_3rank", NULL},
     14},
    {"farms-llm",
     FIX "gguf/llama_f16.safetensors",
     {FIX "gguf/llama_f16.gguf", FIX "gguf/llama_f16_v2.gguf", NULL},
     14},
};

static struct pool *test_pool;

/* Analyse `path` (format sniffed) under `preset` into *r: 0, or -1 after a
 * failed check. */
static int analyse(const char *path, const char *preset, struct engine_report *r)
{
    struct farms_params p;
    struct engine_opts o = {0};
    struct ckpt *c = NULL;
    struct err e = {0};
    enum err_code rc;

    memset(r, 0, sizeof(*r));
    rc = preset_get(preset, &p, &e);
    o.params = &p;
    if (rc == ERR_OK)
        rc = ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, &e);
    if (rc == ERR_OK)
        rc = engine_select(c, &o, r, &e);
    if (rc == ERR_OK)
        rc = engine_run(c, test_pool, &o, r, &e);
    if (rc != ERR_OK)
        fprintf(stderr, "%s: %s: %s\n", path, err_category(&e), e.msg);
    CHECK_EQ_INT(rc, ERR_OK);
    ckpt_close(c);
    return rc == ERR_OK ? 0 : -1;
}

/* The i-th analysed (status ok) row of `r`, or NULL. */
static const struct engine_layer *nth_ok(const struct engine_report *r, int i)
{
    for (size_t k = 0; k < r->n; k++)
        if (r->layers[k].res.status == FARMS_STATUS_OK && i-- == 0)
            return &r->layers[k];
    return NULL;
}

static int count_ok(const struct engine_report *r)
{
    int n = 0;

    while (nth_ok(r, n) != NULL)
        n++;
    return n;
}

/* `other`'s analysed layers equal `ref`'s, in order, bit for bit. */
static void check_same_layers(const struct engine_report *ref, const struct engine_report *other,
                              const char *path)
{
    int n = count_ok(ref), bad = 0;

    CHECK_EQ_INT(count_ok(other), n);
    for (int i = 0; i < n; i++) {
        const struct engine_layer *a = nth_ok(ref, i), *b = nth_ok(other, i);
        if (b == NULL)
            break;
        CHECK(b->res.alpha == a->res.alpha);
        CHECK(b->res.D == a->res.D);
        CHECK(b->res.xmin == a->res.xmin);
        CHECK_EQ_INT(b->res.num_eigs, a->res.num_eigs);
        if (b->res.alpha != a->res.alpha && bad++ == 0)
            fprintf(stderr, "%s: layer %d '%s': alpha %.17g, reference '%s' %.17g\n", path, i,
                    b->name, b->res.alpha, a->name, a->res.alpha);
    }
}

static void test_every_format_gives_the_reference_results(void)
{
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        struct engine_report ref;

        if (analyse(groups[g].reference, groups[g].preset, &ref) != 0)
            continue;
        CHECK_EQ_INT(count_ok(&ref), groups[g].layers);
        for (size_t i = 0; groups[g].same[i] != NULL; i++) {
            struct engine_report other;
            if (analyse(groups[g].same[i], groups[g].preset, &other) != 0)
                continue;
            check_same_layers(&ref, &other, groups[g].same[i]);
            engine_report_free(&other);
        }
        engine_report_free(&ref);
    }
}

int main(void)
{
    CHECK_EQ_INT(pool_new(2, 64, &test_pool, NULL), ERR_OK);
    if (test_pool == NULL)
        return check_report("test_formats_agree");
    test_every_format_gives_the_reference_results();
    pool_free(test_pool);
    return check_report("test_formats_agree");
}
