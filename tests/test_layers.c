/* test_layers.c -- tensor selection, display names, block/role grouping and
 * canonical order (docs/checkpoint-formats.md, Which tensors are analysed), checked against every
 * `suggested` classification in tests/fixtures/checkpoints/manifest.json and against the spec's own
 * examples. Run from the repository root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/formats/layers.h"
#include "tests/check.h"
#include "tests/file_util.h"

#define MANIFEST    "tests/fixtures/checkpoints/manifest.json"
#define N_SUGGESTED 685 /* model tensors with `suggested` in the manifest */

/* One line describing a classification, so a mismatch shows every field. */
static void describe(char *out, size_t len, const char *kind, int analyze, long long block,
                     const char *module, int module_len, const char *role)
{
    snprintf(out, len, "kind=%s analyze=%d block=%lld module=%.*s role=%s", kind, analyze, block,
             module_len, module, role);
}

/* Classify one manifest tensor and compare with its `suggested` object. */
static void check_suggested(const cJSON *t, const char *model_prefix)
{
    const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
    const cJSON *s = cJSON_GetObjectItem(t, "suggested"), *shape = cJSON_GetObjectItem(t, "shape");
    const cJSON *block = cJSON_GetObjectItem(s, "block"), *role = cJSON_GetObjectItem(s, "role");
    const char *dt = cJSON_GetObjectItem(t, "dtype")->valuestring;
    const char *module = cJSON_GetObjectItem(s, "module")->valuestring;
    int64_t dims[16];
    int ndim = 0;
    struct layer_info li;
    char got[512], want[512];
    const char *shown = layer_strip_prefixes(name, model_prefix);

    for (const cJSON *d = shape->child; d != NULL && ndim < 16; d = d->next)
        dims[ndim++] = (int64_t)d->valuedouble;
    CHECK(dtype_from_code(dt, strlen(dt)) >= 0);
    layer_classify(shown, (enum dtype)dtype_from_code(dt, strlen(dt)), ndim, dims, &li);
    describe(want, sizeof(want), cJSON_GetObjectItem(s, "kind")->valuestring,
             cJSON_IsTrue(cJSON_GetObjectItem(s, "analyze")),
             cJSON_IsNull(block) ? -1 : (long long)block->valuedouble, module, (int)strlen(module),
             role != NULL ? role->valuestring : "none");
    describe(got, sizeof(got), layer_kind_name(li.kind), li.analyze, (long long)li.block, shown,
             (int)li.module_len, layer_role_name(li.role));
    if (strcmp(got, want) != 0)
        fprintf(stderr, "tensor %s (prefix \"%s\"):\n", name, model_prefix);
    CHECK_STR_EQ(got, want);
    CHECK_EQ_INT(li.reason[0] == '\0', li.analyze); /* a reason exactly when skipped */
}

static void test_manifest_suggested_classification(void)
{
    char *text = fu_read(MANIFEST, NULL);
    cJSON *root = text != NULL ? cJSON_Parse(text) : NULL;
    const cJSON *f;
    int n_checked = 0;

    CHECK(root != NULL);
    if (root == NULL) {
        free(text);
        return;
    }
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(root, "files"))
    {
        const cJSON *prefix = cJSON_GetObjectItem(f, "model_prefix"), *t;
        const char *p = cJSON_IsString(prefix) ? prefix->valuestring : "";

        cJSON_ArrayForEach(t, cJSON_GetObjectItem(f, "tensors"))
        {
            if (cJSON_GetObjectItem(t, "suggested") == NULL)
                continue;
            check_suggested(t, p);
            n_checked++;
        }
    }
    CHECK_EQ_INT(n_checked, N_SUGGESTED);
    cJSON_Delete(root);
    free(text);
}

static void test_strip_prefixes(void)
{
    /* DDP + torch.compile wrappers, nested either way */
    CHECK_STR_EQ(layer_strip_prefixes("module._orig_mod.net.0.weight", ""), "net.0.weight");
    CHECK_STR_EQ(layer_strip_prefixes("_orig_mod.module.net.0.weight", NULL), "net.0.weight");
    CHECK_STR_EQ(layer_strip_prefixes("module.module.fc.weight", ""), "fc.weight");
    /* container prefix, then wrappers under it */
    CHECK_STR_EQ(layer_strip_prefixes("model.net.0.weight", "model."), "net.0.weight");
    CHECK_STR_EQ(layer_strip_prefixes("model.module.net.0.weight", "model."), "net.0.weight");
    /* Lightning: only the container prefix goes, the LightningModule's `model.` stays */
    CHECK_STR_EQ(
        layer_strip_prefixes("state_dict.model.model.layers.0.mlp.up_proj.weight", "state_dict."),
        "model.model.layers.0.mlp.up_proj.weight");
    CHECK_STR_EQ(layer_strip_prefixes("model.model.layers.0.mlp.up_proj.weight", "state_dict."),
                 "model.model.layers.0.mlp.up_proj.weight");
    /* a bare HF `model.` is part of the name */
    CHECK_STR_EQ(layer_strip_prefixes("model.layers.0.self_attn.q_proj.weight", ""),
                 "model.layers.0.self_attn.q_proj.weight");
    /* nothing would be left: keep the name */
    CHECK_STR_EQ(layer_strip_prefixes("module.", ""), "module.");
    CHECK_STR_EQ(layer_strip_prefixes("model.", "model."), "model.");
}

static void test_natural_cmp(void)
{
    CHECK(layer_natural_cmp("model.layers.2.mlp", "model.layers.10.mlp") < 0);
    CHECK(layer_natural_cmp("model.layers.10.mlp", "model.layers.2.mlp") > 0);
    CHECK(layer_natural_cmp("net.0.weight", "net.0.weight") == 0);
    CHECK(layer_natural_cmp("conv9", "conv10") < 0);
    CHECK(layer_natural_cmp("a", "a.b") < 0);
    CHECK(layer_natural_cmp("fc1.bias", "fc1.weight") < 0);
    /* numerically equal digit runs: still a total order, antisymmetric */
    CHECK(layer_natural_cmp("x01", "x1") != 0);
    CHECK((layer_natural_cmp("x01", "x1") < 0) == (layer_natural_cmp("x1", "x01") > 0));
    /* digit runs longer than any integer type compare by length */
    CHECK(layer_natural_cmp("n123456789012345678901234567890", "n99") > 0);
    CHECK(layer_natural_cmp("n000000000000000000000000000007", "n8") < 0);
}

/* Classify stripped `names`, order them, and compare with `want`. */
static void check_order(const char *const *names, size_t n, int keep_file_order,
                        const char *const *want, enum layer_ordering want_how)
{
    struct layer_info infos[64];
    size_t order[64];
    enum layer_ordering how = (enum layer_ordering) - 1;
    const int64_t mat[2] = {64, 64};

    CHECK(n <= 64);
    for (size_t i = 0; i < n; i++) {
        const char *leaf = strrchr(names[i], '.');
        int one_d = leaf != NULL && strcmp(leaf, ".weight") != 0;
        layer_classify(names[i], DTYPE_F32, one_d ? 1 : 2, mat, &infos[i]);
    }
    CHECK_EQ_INT(layer_order(&(struct layer_records){.infos = infos, .names = names, .n = n},
                             keep_file_order, order, &how, NULL),
                 ERR_OK);
    CHECK_EQ_INT(how, want_how);
    for (size_t k = 0; k < n; k++)
        CHECK_STR_EQ(names[order[k]], want[k]);
}

static void test_llama_canonical_order(void)
{
    /* safetensors-style (shuffled, layers.10 sorts before layers.2 by bytes) */
    const char *const names[] = {
        "lm_head.weight",
        "model.layers.10.mlp.down_proj.weight",
        "model.layers.10.self_attn.q_proj.weight",
        "model.layers.2.mlp.up_proj.weight",
        "model.layers.2.self_attn.o_proj.weight",
        "model.layers.2.self_attn.k_proj.weight",
        "model.norm.weight",
        "model.layers.2.mlp.gate_proj.weight",
        "model.layers.2.input_layernorm.weight",
        "model.layers.2.mlp.down_proj.weight",
        "model.embed_tokens.weight",
        "model.layers.2.self_attn.v_proj.weight",
        "model.layers.2.self_attn.q_proj.weight",
    };
    const char *const want[] = {
        "model.embed_tokens.weight",
        "model.layers.2.self_attn.q_proj.weight",
        "model.layers.2.self_attn.k_proj.weight",
        "model.layers.2.self_attn.v_proj.weight",
        "model.layers.2.self_attn.o_proj.weight",
        "model.layers.2.mlp.gate_proj.weight",
        "model.layers.2.mlp.up_proj.weight",
        "model.layers.2.mlp.down_proj.weight",
        "model.layers.2.input_layernorm.weight",
        "model.layers.10.self_attn.q_proj.weight",
        "model.layers.10.mlp.down_proj.weight",
        "model.norm.weight",
        "lm_head.weight",
    };
    /* blocks present: canonical even if the caller has a pickle order */
    check_order(names, 13, 1, want, LAYER_ORDERING_CANONICAL);
}

static void test_gpt2_names(void)
{
    const char *const names[] = {
        "lm_head.weight",
        "transformer.h.1.mlp.c_fc.weight",
        "transformer.h.0.mlp.c_proj.weight",
        "transformer.ln_f.weight",
        "transformer.h.0.attn.c_proj.weight",
        "transformer.h.0.attn.c_attn.weight",
        "transformer.wpe.weight",
        "transformer.wte.weight",
        "transformer.h.0.mlp.c_fc.weight",
    };
    const char *const want[] = {
        "transformer.wpe.weight",
        "transformer.wte.weight",
        "transformer.h.0.attn.c_attn.weight",
        "transformer.h.0.attn.c_proj.weight",
        "transformer.h.0.mlp.c_fc.weight",
        "transformer.h.0.mlp.c_proj.weight",
        "transformer.h.1.mlp.c_fc.weight",
        "transformer.ln_f.weight",
        "lm_head.weight",
    };
    const int64_t qkv[2] = {48, 144}, mask[4] = {1, 1, 66, 66};
    struct layer_info li;

    check_order(names, 9, 0, want, LAYER_ORDERING_CANONICAL);
    layer_classify("transformer.h.3.attn.c_attn.weight", DTYPE_F32, 2, qkv, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_CONV1D_TRANSPOSED);
    CHECK_EQ_INT(li.role, LAYER_ROLE_ATTN_QKV);
    CHECK_EQ_INT(li.block, 3);
    layer_classify("h.0.mlp.c_proj.weight", DTYPE_F32, 2, qkv, &li); /* GPT2Model, no prefix */
    CHECK_EQ_INT(li.kind, LAYER_KIND_CONV1D_TRANSPOSED);
    CHECK_EQ_INT(li.role, LAYER_ROLE_MLP_DOWN);
    layer_classify("transformer.h.0.attn.bias", DTYPE_U8, 4, mask, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_MASK);
    CHECK_STR_EQ(li.reason, "mask buffer");
    /* c_fc/c_proj outside the GPT-2 family (CLIP resblocks) are nn.Linear */
    layer_classify("visual.transformer.resblocks.4.mlp.c_fc.weight", DTYPE_F32, 2, qkv, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_LINEAR);
    CHECK_EQ_INT(li.role, LAYER_ROLE_MLP_UP);
    CHECK_EQ_INT(li.block, 4);
}

static void test_bert_roles(void)
{
    const int64_t w[2] = {32, 32};
    struct layer_info li;

    layer_classify("bert.encoder.layer.5.attention.output.dense.weight", DTYPE_F32, 2, w, &li);
    CHECK_EQ_INT(li.block, 5);
    CHECK_STR_EQ(layer_role_name(li.role), "attn_o");
    layer_classify("bert.encoder.layer.5.output.dense.weight", DTYPE_F32, 2, w, &li);
    CHECK_STR_EQ(layer_role_name(li.role), "mlp_down");
    layer_classify("bert.encoder.layer.5.intermediate.dense.weight", DTYPE_F32, 2, w, &li);
    CHECK_STR_EQ(layer_role_name(li.role), "mlp_up");
    layer_classify("roberta.encoder.layer.11.attention.self.value.weight", DTYPE_F32, 2, w, &li);
    CHECK_EQ_INT(li.block, 11);
    CHECK_STR_EQ(layer_role_name(li.role), "attn_v");
    /* TF-converted names: LayerNorm.gamma / beta */
    layer_classify("bert.encoder.layer.0.output.LayerNorm.gamma", DTYPE_F32, 1, w, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_NORM);
    layer_classify("bert.encoder.layer.0.output.LayerNorm.beta", DTYPE_F32, 1, w, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_BIAS);
    CHECK_STR_EQ(li.reason, "1-D tensor (bias)");
    /* `layer` counts only after encoder/decoder */
    layer_classify("bert.layer.3.output.dense.weight", DTYPE_F32, 2, w, &li);
    CHECK_EQ_INT(li.block, -1);
    CHECK_EQ_INT(li.role, LAYER_ROLE_NONE);
}

static void test_moe_experts(void)
{
    const char *const names[] = {
        "model.layers.3.block_sparse_moe.experts.7.w2.weight",
        "model.layers.3.block_sparse_moe.experts.0.w3.weight",
        "model.layers.3.block_sparse_moe.gate.weight",
        "model.layers.3.block_sparse_moe.experts.7.w1.weight",
        "model.layers.3.self_attn.o_proj.weight",
        "model.layers.3.block_sparse_moe.experts.0.w1.weight",
        "model.layers.3.block_sparse_moe.experts.0.w2.weight",
        "model.layers.3.self_attn.q_proj.weight",
    };
    const char *const want[] = {
        "model.layers.3.self_attn.q_proj.weight",
        "model.layers.3.self_attn.o_proj.weight",
        "model.layers.3.block_sparse_moe.gate.weight",
        "model.layers.3.block_sparse_moe.experts.0.w1.weight",
        "model.layers.3.block_sparse_moe.experts.0.w3.weight",
        "model.layers.3.block_sparse_moe.experts.0.w2.weight",
        "model.layers.3.block_sparse_moe.experts.7.w1.weight",
        "model.layers.3.block_sparse_moe.experts.7.w2.weight",
    };
    const int64_t w[2] = {8, 64};
    struct layer_info li;

    check_order(names, 8, 0, want, LAYER_ORDERING_CANONICAL);
    layer_classify(names[3], DTYPE_BF16, 2, w, &li);
    CHECK_EQ_INT(li.block, 3); /* experts.7 is not a block */
    CHECK_EQ_INT(li.expert, 7);
    CHECK_STR_EQ(layer_role_name(li.role), "mlp_gate");
    layer_classify("model.layers.1.mlp.experts.12.down_proj.weight", DTYPE_F32, 2, w, &li);
    CHECK_EQ_INT(li.block, 1);
    CHECK_EQ_INT(li.expert, 12);
    CHECK_STR_EQ(layer_role_name(li.role), "mlp_down");
    layer_classify("model.layers.1.mlp.gate.weight", DTYPE_F32, 2, w, &li);
    CHECK_STR_EQ(layer_role_name(li.role), "router");
    CHECK_EQ_INT(li.expert, -1);
}

static void test_sequential_is_not_blocks(void)
{
    /* TempBalance keeps named_modules() (pickle) order; safetensors has byte order */
    const char *const pickle[] = {"net.0.weight", "net.0.bias", "net.2.weight", "net.10.weight"};
    const char *const bytes[] = {"net.0.bias", "net.0.weight", "net.10.weight", "net.2.weight"};
    const char *const natural[] = {"net.0.bias", "net.0.weight", "net.2.weight", "net.10.weight"};
    const char *const cls[] = {"classifier.weight", "features.0.weight", "embed_tokens.weight",
                               "bn.weight"};
    const char *const cls_want[] = {"embed_tokens.weight", "bn.weight", "features.0.weight",
                                    "classifier.weight"};
    const int64_t conv[4] = {64, 3, 3, 3};
    struct layer_info li;

    check_order(pickle, 4, 1, pickle, LAYER_ORDERING_FILE);
    check_order(bytes, 4, 0, natural, LAYER_ORDERING_NATURAL);
    /* natural order without blocks: embeddings first, head last */
    check_order(cls, 4, 0, cls_want, LAYER_ORDERING_NATURAL);
    layer_classify("features.3.weight", DTYPE_F32, 4, conv, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_CONV2D);
    CHECK_EQ_INT(li.block, -1);
    CHECK_EQ_INT(li.module_len, strlen("features.3"));
    layer_classify("model.encoder.layers.5.fc1.weight", DTYPE_F32, 2, conv, &li); /* BART */
    CHECK_EQ_INT(li.block, 5);
    CHECK_STR_EQ(layer_role_name(li.role), "mlp_up");
    layer_classify("fc1.weight", DTYPE_F32, 2, conv, &li); /* outside blocks: no block role */
    CHECK_EQ_INT(li.role, LAYER_ROLE_NONE);
}

static void test_skip_reasons(void)
{
    const int64_t m[2] = {16, 8}, row[2] = {1, 64}, empty[2] = {0, 8}, c1[4] = {32, 1, 3, 3};
    const int64_t k3[3] = {16, 8, 5}, k5[5] = {4, 4, 3, 3, 3}, one[4] = {1, 1, 3, 3};
    struct layer_info li;

    layer_classify("fc.weight", DTYPE_I32, 2, m, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_LINEAR);
    CHECK_EQ_INT(li.analyze, 0);
    CHECK_STR_EQ(li.reason, "dtype I32 is not a floating-point type");
    layer_classify("fc.weight", DTYPE_C64, 2, m, &li);
    CHECK_STR_EQ(li.reason, "dtype C64 is complex");
    layer_classify("fc.weight", DTYPE_F8_E8M0, 2, m, &li);
    CHECK_EQ_INT(li.analyze, 0);
    layer_classify("fc.weight", DTYPE_BF16, 2, m, &li);
    CHECK_EQ_INT(li.analyze, 1);
    CHECK_STR_EQ(li.reason, "");
    layer_classify("score.weight", DTYPE_F32, 2, row, &li);
    CHECK_EQ_INT(li.role, LAYER_ROLE_HEAD);
    CHECK_STR_EQ(li.reason, "2-D weight with a dimension < 2 (one singular value)");
    layer_classify("fc.weight", DTYPE_F32, 2, empty, &li);
    CHECK_STR_EQ(li.reason, "zero-size tensor");
    layer_classify("conv1.weight", DTYPE_F32, 4, c1, &li); /* in == 1: still analysed */
    CHECK_EQ_INT(li.kind, LAYER_KIND_CONV2D);
    CHECK_EQ_INT(li.analyze, 1);
    layer_classify("conv.weight", DTYPE_F32, 4, one, &li); /* channel dims 1: a buffer */
    CHECK_EQ_INT(li.kind, LAYER_KIND_MASK);
    layer_classify("tcn.0.weight", DTYPE_F32, 3, k3, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_CONV1D);
    CHECK_EQ_INT(li.analyze, 1);
    layer_classify("c3d.weight", DTYPE_F32, 5, k5, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_OTHER);
    CHECK_EQ_INT(li.analyze, 0);
    layer_classify("rotary_emb.inv_freq", DTYPE_F32, 1, m, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_VECTOR);
    layer_classify("logit_scale", DTYPE_F32, 0, NULL, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_SCALAR);
    CHECK_STR_EQ(li.reason, "0-dim tensor (scalar)");
    layer_classify("weight", DTYPE_F32, 2, m, &li); /* a bare .npy matrix */
    CHECK_EQ_INT(li.kind, LAYER_KIND_LINEAR);
    CHECK_EQ_INT(li.module_len, 0);
    CHECK_EQ_INT(li.analyze, 1);
    layer_classify("self_attn.in_proj_weight", DTYPE_F32, 2, m, &li);
    CHECK_EQ_INT(li.kind, LAYER_KIND_LINEAR);
    layer_classify("encoder.layers.0.self_attn.in_proj_weight", DTYPE_F32, 2, m, &li);
    CHECK_STR_EQ(layer_role_name(li.role), "attn_qkv");
}

static void test_names_round_trip(void)
{
    for (int k = 0; k < LAYER_KIND_COUNT; k++)
        CHECK_EQ_INT(layer_kind_from_name(layer_kind_name((enum layer_kind)k)), k);
    for (int r = 0; r < LAYER_ROLE_COUNT; r++)
        CHECK_EQ_INT(layer_role_from_name(layer_role_name((enum layer_role)r)), r);
    CHECK_EQ_INT(layer_kind_from_name("Linear"), -1);
    CHECK_STR_EQ(layer_ordering_name(LAYER_ORDERING_FILE), "file");
}

int main(void)
{
    test_manifest_suggested_classification();
    test_strip_prefixes();
    test_natural_cmp();
    test_llama_canonical_order();
    test_gpt2_names();
    test_bert_roles();
    test_moe_experts();
    test_sequential_is_not_blocks();
    test_skip_reasons();
    test_names_round_trip();
    return check_report("test_layers");
}
