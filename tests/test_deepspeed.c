/* test_deepspeed.c -- DeepSpeed checkpoint folders (docs/deepspeed.md)
 * against tests/fixtures/deepspeed/ (made by gen_deepspeed.py from the
 * trained mlp, cnn and llama fixtures):
 *   - the file-name, tag and ZeRO-3 partition rules of deepspeed.h;
 *   - a save folder is sniffed as "deepspeed" and follows `latest`;
 *   - ZeRO-2 bf16: the `module` weights are bitwise the BF16 cast
 *     (mlp_step0500_bf16.safetensors), model prefix "module.";
 *   - ZeRO-3 fp32 over 2 ranks (cnn: buffers, two param groups) and bf16
 *     over 3 ranks (llama: padding, two flat groups per rank, lm_head tied
 *     through shared_params): every tensor bitwise the F32 original;
 *   - ZeRO-3 with deflated storage records and with frozen parameters;
 *   - the per-layer alphas equal those of the safetensors originals;
 *   - each malformed folder fails with the category malformed/manifest.txt
 *     lists, refusals say what to do, a ZeRO-2 folder without one optimizer
 *     partition still opens;
 *   - reading holds one tensor (max_tensor_bytes), strict pickle mode.
 * Run from the repository root.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt.h"
#include "core/formats/deepspeed.h"
#include "core/numerics/preset.h"
#include "server/engine.h"
#include "tests/check.h"
#include "tests/engine_util.h"

#define DS  "tests/fixtures/deepspeed/"
#define FIX "tests/fixtures/checkpoints/"

static void test_file_names(void)
{
    static const struct {
        const char *name;
        enum ds_file_kind kind;
        unsigned long dp, mp;
    } cases[] = {
        {"mp_rank_00_model_states.pt", DS_FILE_MODEL, 0, 0},
        {"mp_rank_01_model_states.pt", DS_FILE_MODEL, 0, 1},
        {"zero_pp_rank_0_mp_rank_00_model_states.pt", DS_FILE_ZERO_MODEL, 0, 0},
        {"zero_pp_rank_12_mp_rank_00_optim_states.pt", DS_FILE_OPTIM, 12, 0},
        {"bf16_zero_pp_rank_3_mp_rank_02_optim_states.pt", DS_FILE_OPTIM, 3, 2},
        {"fp16_zero_pp_rank_1_mp_rank_00_optim_states.pt", DS_FILE_OPTIM, 1, 0},
        {"layer_01-model_00-model_states.pt", DS_FILE_PIPELINE, 0, 0},
        {"layer_3_expert_0_mp_rank_00_model_states.pt", DS_FILE_EXPERT, 0, 0},
        {"expp_rank_0_mp_rank_00_optim_states.pt", DS_FILE_EXPERT, 0, 0},
        {"zero_to_fp32.py", DS_FILE_OTHER, 0, 0},
        {"zero_pp_rank_x_mp_rank_00_optim_states.pt", DS_FILE_OTHER, 0, 0},
        {"zero_pp_rank_0_mp_rank_00_optim_states.pt.tmp", DS_FILE_OTHER, 0, 0},
        {"mp_rank_00_model_states.ptx", DS_FILE_OTHER, 0, 0},
        {"zero_pp_rank_1234567890_mp_rank_00_optim_states.pt", DS_FILE_OTHER, 0, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ds_file f;
        ds_file_classify(cases[i].name, &f);
        if (f.kind != cases[i].kind)
            fprintf(stderr, "%s\n", cases[i].name);
        CHECK_EQ_INT(f.kind, cases[i].kind);
        CHECK_EQ_INT(f.dp_rank, cases[i].dp);
        CHECK_EQ_INT(f.mp_rank, cases[i].mp);
    }
}

static void test_partition_and_tags(void)
{
    uint64_t part, pad;

    ds_zero3_partition(10, 3, &part, &pad); /* 4 + 4 + 2, two zeros of padding */
    CHECK_EQ_INT(part, 4);
    CHECK_EQ_INT(pad, 2);
    ds_zero3_partition(64, 3, &part, &pad);
    CHECK_EQ_INT(part, 22);
    CHECK_EQ_INT(pad, 2);
    ds_zero3_partition(288, 2, &part, &pad);
    CHECK_EQ_INT(part, 144);
    CHECK_EQ_INT(pad, 0);
    ds_zero3_partition(0, 4, &part, &pad);
    CHECK_EQ_INT(part, 0);
    CHECK_EQ_INT(pad, 0);
    ds_zero3_partition(1, 8, &part, &pad);
    CHECK_EQ_INT(part, 1);
    CHECK_EQ_INT(pad, 7);
    CHECK(ds_tag_valid("global_step500"));
    CHECK(ds_tag_valid("best-model.v2"));
    CHECK(!ds_tag_valid(""));
    CHECK(!ds_tag_valid(".."));
    CHECK(!ds_tag_valid("."));
    CHECK(!ds_tag_valid("../global_step1"));
    CHECK(!ds_tag_valid("a/b"));
    CHECK(!ds_tag_valid("step\001"));
}

static long find_tensor(const struct ckpt *c, const char *name)
{
    for (size_t i = 0; i < ckpt_n_tensors(c); i++)
        if (strcmp(ckpt_tensor_at(c, i)->name, name) == 0)
            return (long)i;
    return -1;
}

/* Every tensor of `ref` appears in `c` as "module.<name>" with the same
 * dtype, shape and bytes; returns how many matched. */
static size_t check_bitwise(const struct ckpt *c, const struct ckpt *ref)
{
    struct ckpt_buf b1 = {0}, b2 = {0};
    size_t matched = 0;
    struct err e;

    for (size_t i = 0; i < ckpt_n_tensors(ref); i++) {
        const struct ckpt_tensor *rt = ckpt_tensor_at(ref, i), *t;
        const void *d1 = NULL, *d2 = NULL;
        char name[512];
        long j;
        (void)snprintf(name, sizeof(name), "module.%s", rt->name);
        j = find_tensor(c, name);
        CHECK(j >= 0);
        if (j < 0) {
            fprintf(stderr, "missing %s\n", name);
            continue;
        }
        t = ckpt_tensor_at(c, (size_t)j);
        CHECK_EQ_INT(t->dtype, rt->dtype);
        CHECK_EQ_INT(t->ndim, rt->ndim);
        for (int d = 0; d < t->ndim && d < rt->ndim; d++)
            CHECK_EQ_INT(t->shape[d], rt->shape[d]);
        CHECK_EQ_INT(t->in_model, 1);
        CHECK_EQ_INT(ckpt_tensor_read(c, (size_t)j, &b1, &d1, &e), ERR_OK);
        CHECK_EQ_INT(ckpt_tensor_read(ref, i, &b2, &d2, &e), ERR_OK);
        if (d1 != NULL && d2 != NULL && t->nbytes == rt->nbytes) {
            CHECK(memcmp(d1, d2, t->nbytes) == 0);
            matched += memcmp(d1, d2, t->nbytes) == 0;
        }
    }
    ckpt_buf_free(&b1);
    ckpt_buf_free(&b2);
    return matched;
}

static void test_zero2_bf16(void)
{
    struct ckpt *c = eng_open_ok(DS "zero2_bf16", CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt *step = eng_open_ok(DS "zero2_bf16/global_step500", CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt *ref =
        eng_open_ok(FIX "mlp/mlp_step0500_bf16.safetensors", CKPT_FORMAT_UNKNOWN, NULL);
    size_t in_model = 0;

    if (c == NULL || step == NULL || ref == NULL)
        goto out;
    CHECK_EQ_INT(ckpt_format_of(c), CKPT_FORMAT_DEEPSPEED);
    CHECK_EQ_INT(ckpt_format_of(step), CKPT_FORMAT_DEEPSPEED);
    CHECK(strcmp(ckpt_model_prefix(c), "module.") == 0);
    CHECK_EQ_INT(ckpt_n_tensors(c), ckpt_n_tensors(step));
    for (size_t i = 0; i < ckpt_n_tensors(c); i++)
        in_model += ckpt_tensor_at(c, i)->in_model;
    CHECK_EQ_INT(in_model, 6); /* net.{0,2,4}.{weight,bias}: nothing of the optimizer */
    CHECK(strcmp(ckpt_tensor_at(c, 0)->name, "module.net.0.weight") == 0);
    CHECK_EQ_INT(ckpt_tensor_at(c, 0)->dtype, DTYPE_BF16);
    CHECK_EQ_INT(check_bitwise(c, ref), 6);
    CHECK_EQ_INT(check_bitwise(step, ref), 6);
out:
    ckpt_close(c);
    ckpt_close(step);
    ckpt_close(ref);
}

static void test_zero3_fp32_two_ranks(void)
{
    static const char *const order[] = {
        "module.bn1.running_mean", "module.bn1.running_var", "module.bn1.num_batches_tracked",
        "module.bn2.running_mean", "module.bn2.running_var", "module.bn2.num_batches_tracked",
        "module.conv1.weight",     "module.conv2.weight",    "module.fc1.weight",
        "module.fc2.weight",       "module.conv1.bias",      "module.bn1.weight"};
    struct ckpt *c = eng_open_ok(DS "zero3_fp32", CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt *ref = eng_open_ok(FIX "cnn/cnn_step0500.safetensors", CKPT_FORMAT_UNKNOWN, NULL);

    if (c == NULL || ref == NULL)
        goto out;
    CHECK_EQ_INT(ckpt_format_of(c), CKPT_FORMAT_DEEPSPEED);
    CHECK(strcmp(ckpt_model_prefix(c), "module.") == 0);
    CHECK_EQ_INT(ckpt_n_tensors(c), 18); /* 6 buffers, 12 parameters */
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        CHECK(strcmp(ckpt_tensor_at(c, i)->name, order[i]) == 0);
    CHECK_EQ_INT(ckpt_tensor_at(c, 2)->dtype, DTYPE_I64);
    CHECK_EQ_INT(ckpt_tensor_at(c, 2)->ndim, 0);
    CHECK_EQ_INT(ckpt_tensor_at(c, 7)->dtype, DTYPE_F32);
    CHECK_EQ_INT(ckpt_tensor_at(c, 7)->ndim, 4);
    CHECK_EQ_INT(check_bitwise(c, ref), 18);
out:
    ckpt_close(c);
    ckpt_close(ref);
}

static void test_zero3_bf16_three_ranks(void)
{
    struct ckpt *c = eng_open_ok(DS "zero3_bf16_3rank/global_step500", CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt *ref =
        eng_open_ok(FIX "llama/llama_step0500.safetensors", CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt_buf b1 = {0}, b2 = {0};
    const void *d1 = NULL, *d2 = NULL;
    long head, embed;
    struct err e;

    if (c == NULL || ref == NULL)
        goto out;
    CHECK_EQ_INT(ckpt_n_tensors(c), 21); /* 20 parameters + lm_head.weight (shared) */
    CHECK_EQ_INT(check_bitwise(c, ref), 20);
    head = find_tensor(c, "module.lm_head.weight");
    embed = find_tensor(c, "module.model.embed_tokens.weight");
    CHECK_EQ_INT(head, 20);
    CHECK_EQ_INT(embed, 0);
    if (head < 0 || embed < 0)
        goto out;
    CHECK_EQ_INT(ckpt_tensor_at(c, (size_t)head)->alias_of, embed);
    CHECK_EQ_INT(ckpt_tensor_at(c, (size_t)head)->shape[0], 28);
    CHECK_EQ_INT(ckpt_tensor_read(c, (size_t)head, &b1, &d1, &e), ERR_OK);
    CHECK_EQ_INT(ckpt_tensor_read(c, (size_t)embed, &b2, &d2, &e), ERR_OK);
    CHECK(d1 != NULL && d2 != NULL && memcmp(d1, d2, (size_t)28 * 64 * 4) == 0);
out:
    ckpt_buf_free(&b1);
    ckpt_buf_free(&b2);
    ckpt_close(c);
    ckpt_close(ref);
}

/* Every analysed layer of `ref` has the same alpha (bitwise) in `got`. */
static void check_same_alphas(const char *got_path, const char *ref_path, const char *preset,
                              size_t want_layers)
{
    struct engine_report got, ref;
    size_t n_ok = 0;

    if (eng_analyse(got_path, preset, &got) == 0 && eng_analyse(ref_path, preset, &ref) == 0) {
        for (size_t i = 0; i < ref.n; i++) {
            const struct engine_layer *a = &ref.layers[i], *b = NULL;
            if (a->res.status != FARMS_STATUS_OK)
                continue;
            for (size_t j = 0; j < got.n && b == NULL; j++)
                if (strcmp(got.layers[j].name, a->name) == 0)
                    b = &got.layers[j];
            CHECK(b != NULL);
            if (b == NULL)
                continue;
            CHECK_EQ_INT(b->res.status, FARMS_STATUS_OK);
            CHECK(a->res.alpha == b->res.alpha); /* same bytes in, same alpha out */
            n_ok++;
        }
        CHECK_EQ_INT(n_ok, want_layers);
    }
    engine_report_free(&got);
    engine_report_free(&ref);
}

static void test_alphas(void)
{
    check_same_alphas(DS "zero2_bf16", FIX "mlp/mlp_step0500_bf16.safetensors", "farms-cv", 3);
    check_same_alphas(DS "zero3_fp32", FIX "cnn/cnn_step0500.safetensors", "farms-cv", 4);
    check_same_alphas(DS "zero3_bf16_3rank", FIX "llama/llama_step0500.safetensors", "farms-llm",
                      14);
}

static void test_malformed(void)
{
    FILE *f = fopen(DS "malformed/manifest.txt", "r");
    char line[512], dir[600], name[256], cat[64];
    size_t n = 0;

    CHECK(f != NULL);
    while (f != NULL && n < 100 && fgets(line, sizeof(line), f) != NULL) {
        struct ckpt *c = NULL;
        struct err e = {0};
        if (line[0] == '#' || sscanf(line, "%255s %63s", name, cat) != 2)
            continue;
        (void)snprintf(dir, sizeof(dir), DS "malformed/%s", name);
        CHECK(ckpt_open(dir, CKPT_FORMAT_UNKNOWN, NULL, &c, &e) != ERR_OK);
        CHECK(c == NULL);
        if (strcmp(err_category(&e), cat) != 0)
            fprintf(stderr, "%s: got %s (%s), want %s\n", name, err_category(&e), e.msg, cat);
        CHECK(strcmp(err_category(&e), cat) == 0);
        ckpt_close(c);
        n++;
    }
    if (f != NULL)
        fclose(f);
    CHECK_EQ_INT(n, 9);
}

/* Deflated storage records (3 ranks, three flat groups each) read the same. */
static void test_zero3_deflated(void)
{
    struct ckpt *c = eng_open_ok(DS "zero3_deflated", CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt *ref = eng_open_ok(DS "zero3_deflated/tiny.safetensors", CKPT_FORMAT_UNKNOWN, NULL);

    if (c != NULL && ref != NULL) {
        CHECK_EQ_INT(ckpt_n_tensors(c), 4);
        CHECK_EQ_INT(check_bitwise(c, ref), 4);
    }
    ckpt_close(c);
    ckpt_close(ref);
}

/* Frozen parameters: rank 0's and rank 1's fragments (5 + 4 of 9 elements),
 * listed after the buffers and before the trainable parameters. */
static void test_zero3_frozen(void)
{
    struct ckpt *c = eng_open_ok(DS "zero3_frozen", CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt *ref =
        eng_open_ok(DS "zero3_frozen/reference.safetensors", CKPT_FORMAT_UNKNOWN, NULL);

    if (c != NULL && ref != NULL) {
        CHECK_EQ_INT(ckpt_n_tensors(c), 5);
        CHECK(strcmp(ckpt_tensor_at(c, 0)->name, "module.emb.weight") == 0);
        CHECK(strcmp(ckpt_tensor_at(c, 1)->name, "module.fc1.weight") == 0);
        CHECK_EQ_INT(ckpt_tensor_at(c, 0)->shape[1], 3);
        CHECK_EQ_INT(check_bitwise(c, ref), 5);
    }
    ckpt_close(c);
    ckpt_close(ref);
}

/* The messages of refused layouts say what to do; declared folders and files. */
static void test_refusals_explain(void)
{
    struct ckpt *c = NULL;
    struct err e = {0};

    CHECK(ckpt_open(DS "malformed/tensor_parallel", CKPT_FORMAT_UNKNOWN, NULL, &c, &e) != ERR_OK);
    CHECK(strstr(e.msg, "mp_rank_01_model_states.pt") != NULL);
    CHECK(strstr(e.msg, "ds_to_universal.py") != NULL);
    CHECK(ckpt_open(DS "malformed/zero3_frozen_rank_missing", CKPT_FORMAT_UNKNOWN, NULL, &c, &e) !=
          ERR_OK);
    CHECK(strstr(e.msg, "zero_pp_rank_1_mp_rank_00_model_states.pt is missing") != NULL);
    CHECK(ckpt_open(DS "malformed/zero3_rank_missing", CKPT_FORMAT_UNKNOWN, NULL, &c, &e) !=
          ERR_OK);
    CHECK(strstr(e.msg, "rank 1 is missing") != NULL);
    /* ZeRO-2 reads only the model states: a lost optimizer partition does not matter */
    c = eng_open_ok(DS "zero2_optim_rank_missing", CKPT_FORMAT_UNKNOWN, NULL);
    CHECK(c != NULL && ckpt_n_tensors(c) == 4 && ckpt_tensor_at(c, 0)->dtype == DTYPE_BF16);
    ckpt_close(c);
    c = NULL;
    /* declared: a folder without model states or `latest` */
    CHECK_EQ_INT(ckpt_open(DS "malformed", CKPT_FORMAT_DEEPSPEED, NULL, &c, &e), ERR_FORMAT);
    CHECK(strcmp(err_category(&e), "missing_record") == 0);
    /* declared: a model states file itself is a torch zip */
    c = eng_open_ok(DS "zero2_bf16/global_step500/mp_rank_00_model_states.pt",
                    CKPT_FORMAT_DEEPSPEED, NULL);
    CHECK(c != NULL && ckpt_format_of(c) == CKPT_FORMAT_DEEPSPEED);
    CHECK(c != NULL && strcmp(ckpt_model_prefix(c), "module.") == 0);
    ckpt_close(c);
}

/* Memory is one tensor: under a 4 KiB max_tensor_bytes the folder opens (the
 * optimizer state's 100 KiB tensors are never materialised), small tensors
 * read, and fc1.weight (128 KiB) is refused alone. */
static void test_one_tensor_at_a_time(void)
{
    struct ckpt_limits lim;
    struct ckpt_buf b = {0};
    const void *d = NULL;
    struct ckpt *c = NULL;
    struct err e = {0};
    long fc1, bias;

    ckpt_limits_default(&lim);
    lim.max_tensor_bytes = 4096;
    c = eng_open_ok(DS "zero3_fp32", CKPT_FORMAT_UNKNOWN, &lim);
    if (c == NULL)
        return;
    fc1 = find_tensor(c, "module.fc1.weight");
    bias = find_tensor(c, "module.fc1.bias");
    CHECK(fc1 >= 0 && bias >= 0);
    if (fc1 >= 0 && bias >= 0) {
        CHECK_EQ_INT(ckpt_tensor_read(c, (size_t)fc1, &b, &d, &e), ERR_TOOBIG);
        CHECK(strcmp(err_category(&e), "limit_exceeded") == 0);
        CHECK_EQ_INT(ckpt_tensor_read(c, (size_t)bias, &b, &d, &e), ERR_OK);
        CHECK(b.cap < 4096);
    }
    ckpt_buf_free(&b);
    ckpt_close(c);
}

/* Strict pickle mode refuses the DeepSpeed classes in ZeRO-3 optimizer
 * files (ZeroStageEnum, LossScaler); ZeRO-2 model states have none. */
static void test_strict_mode(void)
{
    struct ckpt_limits lim;
    struct ckpt *c = NULL;
    struct err e = {0};

    ckpt_limits_default(&lim);
    lim.strict = 1;
    CHECK(ckpt_open(DS "zero3_fp32", CKPT_FORMAT_UNKNOWN, &lim, &c, &e) != ERR_OK);
    CHECK(strcmp(err_category(&e), "disallowed_global") == 0);
    CHECK(strstr(e.msg, "deepspeed.runtime") != NULL);
    c = eng_open_ok(DS "zero2_bf16", CKPT_FORMAT_UNKNOWN, &lim);
    CHECK(c != NULL && ckpt_n_tensors(c) == 6);
    ckpt_close(c);
}

int main(void)
{
    static void (*const cases[])(void) = {
        test_file_names,           test_partition_and_tags,     test_zero2_bf16,
        test_zero3_fp32_two_ranks, test_zero3_bf16_three_ranks, test_alphas,
        test_zero3_deflated,       test_zero3_frozen,           test_malformed,
        test_refusals_explain,     test_one_tensor_at_a_time,   test_strict_mode,
    };

    return eng_run_cases("test_deepspeed", cases, sizeof(cases) / sizeof(cases[0]));
}
