/* test_analysis.c -- the analysis rules (core/analysis.h) on real cases:
 * which tensors are analysed and why the others are not, how a GPT-2
 * Conv1D weight and conv kernels reach FARMS, the analysis key and the
 * settings part of the cache key, and the one weight-matrix rule. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/analysis.h"
#include "core/formats/thash.h"
#include "core/numerics/preset.h"
#include "tests/check.h"

static struct farms_params params_of(const char *preset)
{
    struct farms_params p;

    memset(&p, 0, sizeof(p));
    CHECK_EQ_INT(preset_get(preset, &p, NULL), ERR_OK);
    return p;
}

/* Select `name` (dtype, shape) under `preset`; *info and why[] get the result. */
static int select_of(const char *name, enum dtype dt, int ndim, const int64_t *shape,
                     const char *preset, struct layer_info *info, char why[160])
{
    struct farms_params p = params_of(preset);
    struct analysis_tensor t = {.name = name, .dtype = dt, .ndim = ndim, .shape = shape};

    return analysis_select(&t, &p, info, why, 160);
}

/* The 2-D tensor `t` (its bytes `stored`) is selected under `preset` as
 * `kind` and reaches FARMS as a dense rows x cols matrix (`transpose`: read
 * transposed) whose values, row-major, are want[0..rows*cols). The
 * selection to *info. */
static void check_dense(const struct analysis_tensor *t, const void *stored, const char *preset,
                        enum layer_kind kind, int64_t rows, int64_t cols, int transpose,
                        const double *want, struct layer_info *info)
{
    struct farms_params p = params_of(preset);
    struct analysis_layout lay;
    double *m = NULL;
    char why[160];

    CHECK_EQ_INT(analysis_select(t, &p, info, why, sizeof(why)), 1);
    CHECK_EQ_INT(info->kind, kind);
    CHECK_STR_EQ(why, "");
    analysis_layout_of(info->kind, t, &lay);
    CHECK_EQ_INT(lay.kind, FARMS_KIND_DENSE);
    CHECK_EQ_INT(lay.n_dims, 2);
    CHECK_EQ_INT(lay.shape[0], rows);
    CHECK_EQ_INT(lay.shape[1], cols);
    CHECK_EQ_INT(lay.transpose, transpose);
    CHECK_EQ_INT(analysis_matrix_new(t, &lay, stored, &m, NULL), ERR_OK);
    for (int64_t i = 0; m != NULL && i < rows * cols; i++)
        CHECK_NEAR(m[i], want[i], 0);
    free(m);
}

static void test_gpt2_conv1d_is_analysed_transposed_to_out_in(void)
{
    const int64_t shape[2] = {2, 3}; /* stored (in 2, out 3) */
    const float stored[6] = {1, 2, 3, 4, 5, 6};
    const double want[6] = {1, 4, 2, 5, 3, 6}; /* (out 3, in 2), row-major */
    struct analysis_tensor t = {.name = "h.0.attn.c_attn.weight",
                                .dtype = DTYPE_F32,
                                .ndim = 2,
                                .shape = shape,
                                .n_elems = 6};
    struct layer_info info;

    check_dense(&t, stored, "farms-llm", LAYER_KIND_CONV1D_TRANSPOSED, 3, 2, 1, want, &info);
}

static void test_linear_weight_is_analysed_as_stored(void)
{
    const int64_t shape[2] = {2, 2};
    const uint16_t stored[4] = {0x3C00, 0x3E00, 0xC000, 0x0000}; /* F16 1, 1.5, -2, 0 */
    const double want[4] = {1.0, 1.5, -2.0, 0.0};
    struct analysis_tensor t = {.name = "model.layers.0.self_attn.q_proj.weight",
                                .dtype = DTYPE_F16,
                                .ndim = 2,
                                .shape = shape,
                                .n_elems = 4};
    struct layer_info info;

    check_dense(&t, stored, "farms-cv", LAYER_KIND_LINEAR, 2, 2, 0, want, &info);
    CHECK_EQ_INT(info.role, LAYER_ROLE_ATTN_Q);
}

static void test_conv_kernels_are_reshaped_to_four_dims(void)
{
    const int64_t k2[4] = {64, 3, 7, 5}, k1[3] = {16, 8, 5};
    struct analysis_tensor c2 = {
        .name = "features.0.weight", .dtype = DTYPE_F32, .ndim = 4, .shape = k2};
    struct analysis_tensor c1 = {
        .name = "encoder.conv.weight", .dtype = DTYPE_BF16, .ndim = 3, .shape = k1};
    struct farms_params p = params_of("farms-cv");
    struct analysis_layout lay;
    struct layer_info info;
    char why[160];

    CHECK_EQ_INT(analysis_select(&c2, &p, &info, why, sizeof(why)), 1);
    CHECK_EQ_INT(info.kind, LAYER_KIND_CONV2D);
    analysis_layout_of(info.kind, &c2, &lay);
    CHECK_EQ_INT(lay.kind, FARMS_KIND_CONV2D);
    CHECK_EQ_INT(lay.n_dims, 4);
    CHECK(lay.shape[0] == 64 && lay.shape[1] == 3 && lay.shape[2] == 7 && lay.shape[3] == 5);
    CHECK_EQ_INT(lay.transpose, 0);

    CHECK_EQ_INT(analysis_select(&c1, &p, &info, why, sizeof(why)), 1);
    CHECK_EQ_INT(info.kind, LAYER_KIND_CONV1D);
    analysis_layout_of(info.kind, &c1, &lay);
    CHECK_EQ_INT(lay.kind, FARMS_KIND_CONV2D); /* (out, in, k) = (out, in, k, 1) */
    CHECK_EQ_INT(lay.n_dims, 4);
    CHECK(lay.shape[0] == 16 && lay.shape[1] == 8 && lay.shape[2] == 5 && lay.shape[3] == 1);
}

static void test_embedding_is_skipped_unless_the_preset_includes_it(void)
{
    const int64_t shape[2] = {32000, 64};
    struct layer_info info;
    char why[160];

    CHECK_EQ_INT(
        select_of("model.embed_tokens.weight", DTYPE_BF16, 2, shape, "farms-llm", &info, why), 0);
    CHECK_EQ_INT(info.kind, LAYER_KIND_EMBEDDING);
    CHECK_STR_EQ(why, "embedding table: not analysed by this preset (set include_embeddings=true)");
    CHECK_EQ_INT(select_of("model.embed_tokens.weight", DTYPE_BF16, 2, shape, "full", &info, why),
                 1);
    CHECK_STR_EQ(why, "");
}

static void test_skipped_tensors_say_why(void)
{
    const int64_t vec[1] = {64}, mat[2] = {64, 64}, one[2] = {1, 64};
    struct farms_params p = params_of("full");
    struct analysis_tensor tied = {.name = "lm_head.weight",
                                   .dtype = DTYPE_F32,
                                   .ndim = 2,
                                   .shape = mat,
                                   .alias_of = "model.embed_tokens.weight"};
    struct layer_info info;
    char why[160];

    CHECK_EQ_INT(
        select_of("model.layers.0.mlp.up_proj.bias", DTYPE_F32, 1, vec, "full", &info, why), 0);
    CHECK_EQ_INT(info.kind, LAYER_KIND_BIAS);
    CHECK_STR_EQ(why, "1-D tensor (bias)");
    CHECK_EQ_INT(select_of("model.norm.weight", DTYPE_F32, 1, vec, "full", &info, why), 0);
    CHECK_STR_EQ(why, "1-D tensor (norm)");
    CHECK_EQ_INT(select_of("fc.weight", DTYPE_I32, 2, mat, "full", &info, why), 0);
    CHECK_STR_EQ(why, "dtype I32 is not a floating-point type");
    CHECK_EQ_INT(select_of("fc.weight", DTYPE_F32, 2, one, "full", &info, why), 0);
    CHECK_STR_EQ(why, "2-D weight with a dimension < 2 (one singular value)");
    CHECK_EQ_INT(analysis_select(&tied, &p, &info, why, sizeof(why)), 0);
    CHECK_EQ_INT(info.kind, LAYER_KIND_LINEAR); /* classified all the same */
    CHECK_STR_EQ(why, "same tensor as 'model.embed_tokens.weight' (shared storage), analysed once");
    /* a short buffer gets the reason cut, NUL-terminated */
    CHECK_EQ_INT(analysis_select(&tied, &p, &info, why, 10), 0);
    CHECK_STR_EQ(why, "same tens");
}

static void test_analysis_key_names_kind_dtype_and_stored_shape(void)
{
    const int64_t lin[2] = {512, 64}, gpt2[2] = {768, 2304}, conv[4] = {64, 3, 7, 7};
    struct analysis_tensor t = {.name = "fc.weight", .dtype = DTYPE_F32, .ndim = 2, .shape = lin};
    char key[ANALYSIS_KEY_MAX];

    analysis_key(LAYER_KIND_LINEAR, &t, key, sizeof(key));
    CHECK_STR_EQ(key, "linear F32 512x64");
    t.shape = gpt2;
    t.dtype = DTYPE_BF16;
    analysis_key(LAYER_KIND_CONV1D_TRANSPOSED, &t, key, sizeof(key));
    CHECK_STR_EQ(key, "conv1d_transposed BF16 768x2304"); /* the stored shape, not the analysed */
    t.shape = conv;
    t.ndim = 4;
    t.dtype = DTYPE_F16;
    analysis_key(LAYER_KIND_CONV2D, &t, key, sizeof(key));
    CHECK_STR_EQ(key, "conv2d F16 64x3x7x7");
    analysis_key(LAYER_KIND_CONV2D, &t, key, 8);
    CHECK_STR_EQ(key, "conv2d ");
    CHECK_STR_EQ(ANALYSIS_ENGINE_VERSION, "farmsd-engine-3");
}

/* The cache key is (tensor hash, analysis key, settings hash, engine
 * version): the analysis key says how the bytes are read and is the same
 * under every preset; the settings hash tells two presets apart, and the
 * default preset's is the one stored today. */
static void test_cache_key_of_two_presets_differs_in_the_settings(void)
{
    const int64_t shape[2] = {512, 64};
    struct analysis_tensor t = {.name = "fc.weight", .dtype = DTYPE_F32, .ndim = 2, .shape = shape};
    struct farms_params llm = params_of("farms-llm"), cv = params_of("farms-cv");
    char key_llm[ANALYSIS_KEY_MAX], key_cv[ANALYSIS_KEY_MAX];
    char json_llm[PRESET_JSON_MAX], json_cv[PRESET_JSON_MAX];
    char hash_llm[THASH_HEX_LEN], hash_cv[THASH_HEX_LEN];
    struct layer_info info;
    char why[160];

    CHECK_EQ_INT(analysis_select(&t, &llm, &info, why, sizeof(why)), 1);
    analysis_key(info.kind, &t, key_llm, sizeof(key_llm));
    CHECK_EQ_INT(analysis_select(&t, &cv, &info, why, sizeof(why)), 1);
    analysis_key(info.kind, &t, key_cv, sizeof(key_cv));
    CHECK_STR_EQ(key_llm, key_cv);
    CHECK_EQ_INT(preset_to_json(&llm, json_llm, sizeof(json_llm), NULL), ERR_OK);
    CHECK_EQ_INT(preset_to_json(&cv, json_cv, sizeof(json_cv), NULL), ERR_OK);
    CHECK_EQ_INT(thash_bytes(json_llm, strlen(json_llm), hash_llm, NULL), ERR_OK);
    CHECK_EQ_INT(thash_bytes(json_cv, strlen(json_cv), hash_cv, NULL), ERR_OK);
    CHECK(strcmp(hash_llm, hash_cv) != 0);
    CHECK_STR_EQ(hash_llm, "f759d08784f76103bb467aa7e4f98380c686499682b2ada7ab86efc352536baa");
}

static void test_weight_matrices_are_exactly_eight_kinds(void)
{
    int n = 0;

    for (int k = 0; k < LAYER_KIND_COUNT; k++)
        n += layer_kind_is_weight((enum layer_kind)k);
    CHECK_EQ_INT(n, 8); /* the five PyTorch-layout kinds and the three Keras-layout ones */
    CHECK(layer_kind_is_weight(LAYER_KIND_LINEAR));
    CHECK(layer_kind_is_weight(LAYER_KIND_EMBEDDING));
    CHECK(layer_kind_is_weight(LAYER_KIND_CONV1D_TRANSPOSED));
    CHECK(layer_kind_is_weight(LAYER_KIND_CONV2D));
    CHECK(layer_kind_is_weight(LAYER_KIND_CONV1D));
    CHECK(layer_kind_is_weight(LAYER_KIND_LINEAR_IO));
    CHECK(layer_kind_is_weight(LAYER_KIND_CONV2D_HWIO));
    CHECK(layer_kind_is_weight(LAYER_KIND_CONV1D_WIO));
    CHECK(!layer_kind_is_weight(LAYER_KIND_BIAS));
    CHECK(!layer_kind_is_weight(LAYER_KIND_NORM));
    CHECK(!layer_kind_is_weight(LAYER_KIND_OTHER));
}

/* The task queue's estimate: cost rows * cols * min(rows, cols) of the
 * FARMS matrix; memory the stored bytes, the float64 matrix (twice for a
 * transposed layout: the copy and its permutation) and one ESD workspace
 * per pool worker. */
static void test_task_estimate_counts_bytes_matrix_and_workspaces(void)
{
    const int64_t lin_shape[2] = {512, 64}, io_shape[2] = {64, 512};
    struct analysis_tensor lin = {
        .name = "fc.weight", .dtype = DTYPE_F32, .ndim = 2, .shape = lin_shape, .n_elems = 32768};
    struct analysis_tensor io = {.name = "h.0.mlp.c_fc.weight",
                                 .dtype = DTYPE_F32,
                                 .ndim = 2,
                                 .shape = io_shape,
                                 .n_elems = 32768};
    struct farms_params p = params_of("full");
    struct analysis_estimate e1, e2, e4, eio;
    uint64_t ws;

    analysis_estimate(LAYER_KIND_LINEAR, &lin, 131072, &p, 1, &e1);
    analysis_estimate(LAYER_KIND_LINEAR, &lin, 131072, &p, 2, &e2);
    analysis_estimate(LAYER_KIND_LINEAR, &lin, 131072, &p, 4, &e4);
    analysis_estimate(LAYER_KIND_CONV1D_TRANSPOSED, &io, 131072, &p, 1, &eio);
    CHECK_NEAR(e1.cost, 512.0 * 64 * 64, 0);
    CHECK_NEAR(e4.cost, e1.cost, 0);  /* the work does not depend on the workers */
    CHECK_NEAR(eio.cost, e1.cost, 0); /* (in 64, out 512) is analysed as (512, 64) */
    ws = e2.mem_bytes - e1.mem_bytes; /* one worker's workspace */
    CHECK(ws >= 8ULL * 2 * 64 * 64);  /* at least the two 64 x 64 Grams */
    CHECK_EQ_INT(e1.mem_bytes, 131072 + 262144 + ws);
    CHECK_EQ_INT(e4.mem_bytes, 131072 + 262144 + 4 * ws);
    CHECK_EQ_INT(eio.mem_bytes, e1.mem_bytes + 262144); /* the transposed copy */
}

int main(void)
{
    test_gpt2_conv1d_is_analysed_transposed_to_out_in();
    test_linear_weight_is_analysed_as_stored();
    test_conv_kernels_are_reshaped_to_four_dims();
    test_embedding_is_skipped_unless_the_preset_includes_it();
    test_skipped_tensors_say_why();
    test_analysis_key_names_kind_dtype_and_stored_shape();
    test_cache_key_of_two_presets_differs_in_the_settings();
    test_weight_matrices_are_exactly_eight_kinds();
    test_task_estimate_counts_bytes_matrix_and_workspaces();
    return check_report("test_analysis");
}
