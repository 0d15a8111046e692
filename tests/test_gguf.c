/* test_gguf.c -- GGUF v2/v3 files as ggml writes them (tests/fixtures/gguf,
 * made by gen_gguf.c with ggml 0.23.0 itself): tensors listed in PyTorch
 * order, every quantized type dequantized bit for bit as ggml's to_float,
 * the same per-layer alphas as the safetensors twin, llama.cpp names in
 * block/role order, the stored bytes as identity, and each malformed file
 * refused with its category (malformed/manifest.txt). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/analysis.h"
#include "core/formats/gguf.h"
#include "core/formats/layers.h"
#include "core/formats/thash.h"
#include "core/numerics/preset.h"
#include "server/engine.h"
#include "tests/check.h"
#include "tests/engine_util.h"

#define GG "tests/fixtures/gguf/"

/* The bits of a double / float: "bitwise equal" compares these. */
static uint64_t bits64(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof(u));
    return u;
}

static uint32_t bits32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof(u));
    return u;
}

static void test_llama_tensors_in_pytorch_order(void)
{
    struct ckpt *c = eng_open_ok(GG "llama_f32.gguf", CKPT_FORMAT_UNKNOWN, NULL);
    const struct ckpt_tensor *t;

    if (c == NULL)
        return;
    CHECK_STR_EQ(ckpt_format_name(ckpt_format_of(c)), "gguf");
    CHECK_EQ_INT(ckpt_n_tensors(c), 20);
    CHECK_STR_EQ(ckpt_tensor_at(c, 0)->name, "token_embd.weight"); /* file order */
    t = eng_find_tensor(c, "token_embd.weight", NULL);
    CHECK(t != NULL && t->ndim == 2 && t->shape[0] == 28 && t->shape[1] == 64);
    t = eng_find_tensor(c, "blk.1.ffn_down.weight", NULL); /* ggml ne [128, 64] */
    CHECK(t != NULL && t->ndim == 2 && t->shape[0] == 64 && t->shape[1] == 128);
    CHECK(t != NULL && t->dtype == DTYPE_F32 && t->nbytes == (uint64_t)64 * 128 * 4);
    t = eng_find_tensor(c, "blk.0.attn_k.weight", NULL);
    CHECK(t != NULL && t->shape[0] == 32 && t->shape[1] == 64);
    t = eng_find_tensor(c, "output_norm.weight", NULL);
    CHECK(t != NULL && t->ndim == 1 && t->shape[0] == 64);
    ckpt_close(c);
}

/* The GGUF name of the HF LLaMA tensor `hf` (the generator's map). */
static void gguf_name_of(const char *hf, char *out, size_t len)
{
    static const char *const map[][2] = {
        {"input_layernorm", "attn_norm"},    {"self_attn.q_proj", "attn_q"},
        {"self_attn.k_proj", "attn_k"},      {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
        {"mlp.gate_proj", "ffn_gate"},       {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"}};
    const char *p = hf + strlen("model.layers."), *rest;
    char *end = NULL;
    long layer;

    if (strcmp(hf, "model.embed_tokens.weight") == 0) {
        snprintf(out, len, "token_embd.weight");
        return;
    }
    if (strcmp(hf, "model.norm.weight") == 0) {
        snprintf(out, len, "output_norm.weight");
        return;
    }
    out[0] = '\0';
    if (strncmp(hf, "model.layers.", strlen("model.layers.")) != 0)
        return;
    layer = strtol(p, &end, 10);
    if (end == p || *end != '.')
        return;
    rest = end + 1;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strncmp(rest, map[i][0], strlen(map[i][0])) == 0 && rest[strlen(map[i][0])] == '.')
            snprintf(out, len, "blk.%ld.%s.weight", layer, map[i][1]);
}

/* Every tensor of the safetensors twin `st` is in `gguf` under its GGUF
 * name with the same dtype, shape and bytes. */
static void check_same_bytes(const char *st, const char *gguf)
{
    struct ckpt *a = eng_open_ok(st, CKPT_FORMAT_UNKNOWN, NULL),
                *b = eng_open_ok(gguf, CKPT_FORMAT_GGUF, NULL);
    struct ckpt_buf ba = {0}, bb = {0};
    const void *da, *db;
    struct err e;
    char name[160];
    size_t j = 0, n_same = 0;

    for (size_t i = 0; a != NULL && b != NULL && i < ckpt_n_tensors(a); i++) {
        const struct ckpt_tensor *ta = ckpt_tensor_at(a, i), *tb;
        gguf_name_of(ta->name, name, sizeof(name));
        tb = eng_find_tensor(b, name, &j);
        CHECK(tb != NULL);
        if (tb == NULL)
            continue;
        CHECK_EQ_INT(tb->dtype, ta->dtype);
        CHECK_EQ_INT(tb->ndim, ta->ndim);
        CHECK(memcmp(tb->shape, ta->shape, sizeof(ta->shape[0]) * (size_t)ta->ndim) == 0);
        CHECK_EQ_INT(ckpt_tensor_read(a, i, &ba, &da, &e), ERR_OK);
        CHECK_EQ_INT(ckpt_tensor_read(b, j, &bb, &db, &e), ERR_OK);
        if (da != NULL && db != NULL && ta->nbytes == tb->nbytes && memcmp(da, db, ta->nbytes) == 0)
            n_same++;
    }
    CHECK_EQ_INT(n_same, 20);
    CHECK(b != NULL && ckpt_n_tensors(b) == 20);
    ckpt_buf_free(&ba);
    ckpt_buf_free(&bb);
    ckpt_close(a);
    ckpt_close(b);
}

static void test_f32_f16_and_v2_hold_the_twins_bytes(void)
{
    check_same_bytes("tests/fixtures/checkpoints/llama/llama_step0500.safetensors",
                     GG "llama_f32.gguf");
    check_same_bytes(GG "llama_f16.safetensors", GG "llama_f16.gguf");
    check_same_bytes(GG "llama_f16.safetensors", GG "llama_f16_v2.gguf");
}

/* --- The analysis ------------------------------------------------------------ */

/* Row k of both reports: the same block and role, alphas bitwise equal;
 * `n_fitted` rows have a fit. */
static void check_same_alphas(const char *st, const char *gguf, const char *preset, int n_fitted)
{
    struct engine_report a, b;
    int n_ok = 0;

    if (eng_analyse_as(st, preset, ENG_RUN | ENG_HASH, &a))
        return;
    if (eng_analyse_as(gguf, preset, ENG_RUN | ENG_HASH, &b) == 0) {
        CHECK_EQ_INT(a.n, b.n);
        CHECK_EQ_INT(b.ordering, LAYER_ORDERING_CANONICAL);
        for (size_t k = 0; k < a.n && k < b.n; k++) {
            const struct engine_layer *la = &a.layers[k], *lb = &b.layers[k];
            CHECK_EQ_INT(lb->info.kind, la->info.kind);
            CHECK_EQ_INT(lb->info.block, la->info.block);
            CHECK_EQ_INT(lb->info.role, la->info.role);
            CHECK_EQ_INT(lb->res.status, la->res.status);
            CHECK_STR_EQ(lb->sha256, la->sha256); /* the same stored bytes */
            if (la->res.status != FARMS_STATUS_OK)
                continue;
            CHECK(bits64(la->res.alpha) == bits64(lb->res.alpha));
            CHECK(bits64(la->res.D) == bits64(lb->res.D));
            n_ok++;
        }
        CHECK_EQ_INT(n_ok, n_fitted);
        engine_report_free(&b);
    }
    engine_report_free(&a);
}

static void test_same_alphas_as_the_safetensors_twin(void)
{
    check_same_alphas("tests/fixtures/checkpoints/llama/llama_step0500.safetensors",
                      GG "llama_f32.gguf", "farms-llm", 14); /* 7 linear layers x 2 blocks */
    check_same_alphas(GG "llama_f16.safetensors", GG "llama_f16.gguf", "farms-llm", 14);
    check_same_alphas(GG "llama_f16.safetensors", GG "llama_f16_v2.gguf", "full",
                      15); /* + embedding */
}

/* --- Quantized types --------------------------------------------------------- */

/* Each tensor of quant.gguf decodes to exactly ggml's to_float output. */
static void test_quant_types_dequantize_bitwise_as_ggml(void)
{
    static const char *const decoded[] = {"F16",  "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                          "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
    struct ckpt *q = eng_open_ok(GG "quant.gguf", CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt *ref = eng_open_ok(GG "quant_ref.safetensors", CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt_buf bq = {0}, br = {0};
    const void *dq, *dr;
    struct err e;
    size_t n_checked = 0, j = 0;

    for (size_t i = 0; q != NULL && ref != NULL && i < ckpt_n_tensors(q); i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(q, i);
        double *got;
        float want;
        size_t bad = 0;

        CHECK(t->ndim == 2 && t->shape[0] == 16 && t->shape[1] == 256);
        if (!dtype_is_decodable(t->dtype))
            continue;
        if (eng_find_tensor(ref, t->name, &j) == NULL) {
            CHECK(!"every decoded tensor has ggml's values in quant_ref.safetensors");
            continue;
        }
        CHECK_EQ_INT(ckpt_tensor_read(q, i, &bq, &dq, &e), ERR_OK);
        CHECK_EQ_INT(ckpt_tensor_read(ref, j, &br, &dr, &e), ERR_OK);
        got = malloc(t->n_elems * sizeof(*got));
        if (got == NULL || dq == NULL || dr == NULL) {
            free(got);
            continue;
        }
        dtype_to_f64(t->dtype, dq, t->n_elems, got);
        for (size_t k = 0; k < t->n_elems; k++) {
            memcpy(&want, (const unsigned char *)dr + 4 * k, 4);
            bad += bits64((double)want) != bits64(got[k]);
        }
        if (bad)
            fprintf(stderr, "%s (%s): %zu values differ from ggml's to_float\n", t->name,
                    dtype_name(t->dtype), bad);
        CHECK_EQ_INT(bad, 0);
        CHECK_STR_EQ(dtype_name(t->dtype), decoded[n_checked < 12 ? n_checked : 0]);
        n_checked++;
        free(got);
    }
    CHECK_EQ_INT(n_checked, 12);
    ckpt_buf_free(&bq);
    ckpt_buf_free(&br);
    ckpt_close(q);
    ckpt_close(ref);
}

/* The float32 entry point agrees with ggml too (one type is enough here:
 * dtype_to_f64 goes through it for all). */
static void test_ggml_to_f32_matches_for_q4_k(void)
{
    struct ckpt *q = eng_open_ok(GG "quant.gguf", CKPT_FORMAT_GGUF, NULL);
    struct ckpt *ref = eng_open_ok(GG "quant_ref.safetensors", CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt_buf bq = {0}, br = {0};
    const void *dq = NULL, *dr = NULL;
    static float got[4096];
    size_t i = 0, j = 0;
    struct err e;

    if (eng_find_tensor(q, "quant.q4_k.weight", &i) == NULL ||
        eng_find_tensor(ref, "quant.q4_k.weight", &j) == NULL) {
        CHECK(0);
    } else {
        CHECK_EQ_INT(ckpt_tensor_read(q, i, &bq, &dq, &e), ERR_OK);
        CHECK_EQ_INT(ckpt_tensor_read(ref, j, &br, &dr, &e), ERR_OK);
        CHECK_EQ_INT(ckpt_tensor_at(q, i)->nbytes, 16 * 144);
        if (dq != NULL && dr != NULL) {
            size_t bad = 0;
            float want;
            dtype_ggml_to_f32(DTYPE_Q4_K, dq, 4096, got);
            for (size_t k = 0; k < 4096; k++) {
                memcpy(&want, (const unsigned char *)dr + 4 * k, 4);
                bad += bits32(got[k]) != bits32(want);
            }
            CHECK_EQ_INT(bad, 0);
        }
    }
    ckpt_buf_free(&bq);
    ckpt_buf_free(&br);
    ckpt_close(q);
    ckpt_close(ref);
}

/* The stored bytes of tensor `name` of GGUF file `path`, read with stdio at
 * the offset gguf_parse() found, hashed into hex[]. */
static void raw_sha256(const char *path, const char *name, char hex[THASH_HEX_LEN])
{
    struct gguf_file g;
    struct rfile rf = {.fd = -1};
    struct err e;
    unsigned char *b = NULL;
    FILE *f = fopen(path, "rb");

    hex[0] = '\0';
    CHECK_EQ_INT(rfile_open(path, &rf, &e), ERR_OK);
    CHECK_EQ_INT(gguf_parse(&rf, NULL, &g, &e), ERR_OK);
    for (size_t i = 0; f != NULL && i < g.n_tensors; i++) {
        if (strcmp(g.tensors[i].name, name) != 0)
            continue;
        b = malloc(g.tensors[i].nbytes);
        if (b != NULL && fseek(f, (long)g.tensors[i].offset, SEEK_SET) == 0 &&
            fread(b, 1, g.tensors[i].nbytes, f) == g.tensors[i].nbytes)
            CHECK_EQ_INT(thash_bytes(b, g.tensors[i].nbytes, hex, &e), ERR_OK);
        break; /* names are unique */
    }
    free(b);
    if (f != NULL)
        fclose(f);
    gguf_file_free(&g);
    rfile_close(&rf);
}

/* Not-dequantized types are listed and skipped with the type in the reason;
 * the identity of a quantized tensor is the hash of its stored bytes, and
 * its analysis key names the type. */
static void test_quant_file_rows_and_identity(void)
{
    struct engine_report r;
    char key[96], hex[THASH_HEX_LEN];
    const int64_t shape[2] = {16, 256};
    struct analysis_tensor t = {.name = "quant.q4_k.weight",
                                .dtype = DTYPE_Q4_K,
                                .ndim = 2,
                                .shape = shape,
                                .n_elems = 4096};

    raw_sha256(GG "quant.gguf", "quant.q4_k.weight", hex);
    CHECK_EQ_INT(strlen(hex), 64);
    if (eng_analyse_as(GG "quant.gguf", "farms-llm", ENG_RUN | ENG_HASH, &r) == 0) {
        CHECK_EQ_INT(r.n, 14);
        for (size_t k = 0; k < r.n; k++) {
            const struct engine_layer *l = &r.layers[k];
            if (strcmp(l->name, "quant.iq4_nl.weight") == 0) {
                CHECK_EQ_INT(l->selected, 0);
                CHECK_STR_EQ(l->res.reason, "GGUF type IQ4_NL is not dequantized");
            } else if (strcmp(l->name, "quant.tq2_0.weight") == 0) {
                CHECK_EQ_INT(l->selected, 0);
                CHECK_STR_EQ(l->res.reason, "GGUF type TQ2_0 is not dequantized");
            } else {
                CHECK_EQ_INT(l->selected, 1);
                CHECK_EQ_INT(l->res.status, FARMS_STATUS_OK);
                CHECK(isfinite(l->res.alpha) && l->res.alpha > 1.0);
            }
            if (strcmp(l->name, "quant.q4_k.weight") == 0)
                CHECK_STR_EQ(l->sha256, hex);
        }
        engine_report_free(&r);
    }
    analysis_key(LAYER_KIND_LINEAR, &t, key, sizeof(key));
    CHECK_STR_EQ(key, "linear Q4_K 16x256");
}

/* --- Names and types ------------------------------------------------------------ */

static void test_llama_cpp_names_map_to_blocks_and_roles(void)
{
    static const struct {
        const char *name;
        int ndim;
        enum layer_kind kind;
        int64_t block;
        enum layer_role role;
    } cases[] = {
        {"token_embd.weight", 2, LAYER_KIND_EMBEDDING, -1, LAYER_ROLE_NONE},
        {"output.weight", 2, LAYER_KIND_LINEAR, -1, LAYER_ROLE_HEAD},
        {"output_norm.weight", 1, LAYER_KIND_NORM, -1, LAYER_ROLE_NONE},
        {"blk.3.attn_q.weight", 2, LAYER_KIND_LINEAR, 3, LAYER_ROLE_ATTN_Q},
        {"blk.3.attn_k.weight", 2, LAYER_KIND_LINEAR, 3, LAYER_ROLE_ATTN_K},
        {"blk.3.attn_v.weight", 2, LAYER_KIND_LINEAR, 3, LAYER_ROLE_ATTN_V},
        {"blk.3.attn_qkv.weight", 2, LAYER_KIND_LINEAR, 3, LAYER_ROLE_ATTN_QKV},
        {"blk.3.attn_output.weight", 2, LAYER_KIND_LINEAR, 3, LAYER_ROLE_ATTN_O},
        {"blk.12.ffn_gate.weight", 2, LAYER_KIND_LINEAR, 12, LAYER_ROLE_MLP_GATE},
        {"blk.12.ffn_up.weight", 2, LAYER_KIND_LINEAR, 12, LAYER_ROLE_MLP_UP},
        {"blk.12.ffn_down.weight", 2, LAYER_KIND_LINEAR, 12, LAYER_ROLE_MLP_DOWN},
        {"blk.12.ffn_gate_inp.weight", 2, LAYER_KIND_LINEAR, 12, LAYER_ROLE_ROUTER},
        {"blk.0.attn_norm.weight", 1, LAYER_KIND_NORM, 0, LAYER_ROLE_NONE},
        {"blk.0.ffn_norm.weight", 1, LAYER_KIND_NORM, 0, LAYER_ROLE_NONE},
        {"blk.0.ffn_up_exps.weight", 3, LAYER_KIND_OTHER, 0, LAYER_ROLE_NONE},
    };
    const int64_t shape[3] = {8, 64, 32};
    struct layer_info info;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        layer_classify(cases[i].name, DTYPE_Q4_K, cases[i].ndim, shape, &info);
        CHECK_EQ_INT(info.kind, cases[i].kind);
        CHECK_EQ_INT(info.block, cases[i].block);
        CHECK_EQ_INT(info.role, cases[i].role);
    }
    layer_classify("blk.0.ffn_up_exps.weight", DTYPE_Q4_K, 3, shape, &info);
    CHECK_EQ_INT(info.analyze, 0);
    CHECK_STR_EQ(info.reason, "llama.cpp MoE expert stack 'ffn_up_exps' (3-D) is not analysed");
    layer_classify("blk.0.attn_q.weight", DTYPE_Q4_K, 2, shape + 1, &info);
    CHECK_EQ_INT(info.analyze, 1);
    layer_classify("blk.0.attn_q.weight", DTYPE_IQ2_XXS, 2, shape + 1, &info);
    CHECK_EQ_INT(info.analyze, 0);
    CHECK_STR_EQ(info.reason, "GGUF type IQ2_XXS is not dequantized");
}

/* dtype's ggml table agrees with ggml's own (ggml_types.txt, written by the
 * generator from ggml_type_name / ggml_blck_size / ggml_type_size). */
static void test_ggml_type_table_matches_ggml(void)
{
    FILE *f = fopen(GG "ggml_types.txt", "r");
    char line[128], name[32];
    int n_types = 0;

    CHECK(f != NULL);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        char *p = line, *q = NULL;
        long id, blck, size;
        size_t name_len;
        int dt;
        if (line[0] == '#')
            continue;
        id = strtol(p, &q, 10); /* "id name blck size" */
        p = q + strspn(q, " ");
        name_len = strcspn(p, " ");
        if (q == line || name_len == 0 || name_len >= sizeof(name))
            continue;
        memcpy(name, p, name_len);
        name[name_len] = '\0';
        blck = strtol(p + name_len, &q, 10);
        size = strtol(q, NULL, 10);
        dt = dtype_from_ggml((uint32_t)id);
        if (size == 0) { /* removed from ggml */
            CHECK_EQ_INT(dt, -1);
            continue;
        }
        CHECK(dt >= 0);
        if (dt < 0)
            continue;
        CHECK_EQ_INT(dtype_block_elems((enum dtype)dt), blck);
        CHECK_EQ_INT(dtype_block_bytes((enum dtype)dt), size);
        CHECK(strcasecmp(dtype_name((enum dtype)dt), name) == 0);
        CHECK_EQ_INT(dtype_from_code(dtype_name((enum dtype)dt), strlen(name)),
                     dtype_is_ggml((enum dtype)dt) ? -1 : dt); /* not safetensors codes */
        CHECK_EQ_INT(dtype_from_name(dtype_name((enum dtype)dt), strlen(name)), dt);
        n_types++;
    }
    CHECK_EQ_INT(n_types, 35);
    CHECK_EQ_INT(dtype_from_ggml(43), -1);
    if (f != NULL)
        fclose(f);
}

static void test_dtype_nbytes_counts_whole_blocks(void)
{
    uint64_t n = 0;

    CHECK_EQ_INT(dtype_nbytes(DTYPE_Q4_0, 64, &n), 0);
    CHECK_EQ_INT(n, 36);
    CHECK_EQ_INT(dtype_nbytes(DTYPE_Q6_K, 512, &n), 0);
    CHECK_EQ_INT(n, 420);
    CHECK_EQ_INT(dtype_nbytes(DTYPE_Q6_K, 100, &n), -2);
    CHECK_EQ_INT(dtype_nbytes(DTYPE_F4, 3, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(dtype_nbytes(DTYPE_F32, UINT64_MAX / 2, &n), -1);
    CHECK_EQ_INT(dtype_nbytes(DTYPE_Q8_0, UINT64_MAX / 32 * 32, &n), -1);
}

/* --- Malformed files ---------------------------------------------------------- */

static void test_malformed_files_give_their_category(void)
{
    FILE *f = fopen(GG "malformed/manifest.txt", "r");
    char line[256], file[96], cat[48], path[160];
    int n = 0;

    CHECK(f != NULL);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        struct ckpt *c = NULL;
        struct err e;
        if (line[0] == '#' || sscanf(line, "%95s %47s", file, cat) != 2)
            continue;
        snprintf(path, sizeof(path), GG "malformed/%s", file);
        memset(&e, 0, sizeof(e));
        CHECK(ckpt_open(path, CKPT_FORMAT_GGUF, NULL, &c, &e) != ERR_OK);
        if (strcmp(err_category(&e), cat) != 0)
            fprintf(stderr, "%s: got %s (%s)\n", file, err_category(&e), e.msg);
        CHECK_STR_EQ(err_category(&e), cat);
        ckpt_close(c);
        n++;
    }
    CHECK_EQ_INT(n, 22);
    if (f != NULL)
        fclose(f);
}

static void test_sniffing_and_messages(void)
{
    struct ckpt *c = NULL;
    struct err e;

    CHECK(ckpt_open(GG "malformed/bad_magic.gguf", CKPT_FORMAT_UNKNOWN, NULL, &c, &e) != ERR_OK);
    CHECK_STR_EQ(err_category(&e), "unknown_format");
    CHECK(ckpt_open(GG "malformed/version_1.gguf", CKPT_FORMAT_UNKNOWN, NULL, &c, &e) != ERR_OK);
    CHECK(strstr(e.msg, "version 1") != NULL);
    CHECK(ckpt_open(GG "malformed/big_endian.gguf", CKPT_FORMAT_UNKNOWN, NULL, &c, &e) != ERR_OK);
    CHECK(strstr(e.msg, "big-endian") != NULL);
    CHECK(c == NULL);
}

/* The metadata and tensor infos together are bounded by max_header_bytes. */
static void test_header_limit(void)
{
    struct ckpt_limits l;
    struct ckpt *c = NULL;
    struct err e;

    ckpt_limits_default(&l);
    l.max_header_bytes = 512; /* llama_f32.gguf's header is 1.7 KB */
    CHECK(ckpt_open(GG "llama_f32.gguf", CKPT_FORMAT_GGUF, &l, &c, &e) != ERR_OK);
    CHECK_STR_EQ(err_category(&e), "limit_exceeded");
    l.max_header_bytes = 4096;
    CHECK_EQ_INT(ckpt_open(GG "llama_f32.gguf", CKPT_FORMAT_GGUF, &l, &c, &e), ERR_OK);
    ckpt_close(c);
}

/* gguf_parse on a buffer: general.alignment 64 moves the data section and
 * the tensors to multiples of 64, and the values are read from there. */
static void test_general_alignment_is_followed(void)
{
    FILE *f = fopen(GG "aligned64.gguf", "rb");
    static unsigned char buf[4096];
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf), f) : 0;
    struct gguf_file g;
    struct rfile rf;
    struct err e;
    struct ckpt *c = eng_open_ok(GG "aligned64.gguf", CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt_buf b = {0};
    const void *d = NULL;
    double v[8];

    if (f != NULL)
        fclose(f);
    rfile_mem(&rf, buf, n);
    CHECK_EQ_INT(gguf_parse(&rf, NULL, &g, &e), ERR_OK);
    CHECK_EQ_INT(g.version, 3);
    CHECK_EQ_INT(g.alignment, 64);
    CHECK_EQ_INT(g.n_tensors, 2);
    CHECK_EQ_INT(g.data_start, 256); /* 24 + 2 KVs (45 + 33) + 2 infos (2 x 59) = 220 */
    CHECK_STR_EQ(g.architecture, "llama");
    CHECK(g.n_tensors == 2 && g.tensors[1].offset == 256 + 64 && g.tensors[1].nbytes == 32);
    gguf_file_free(&g);
    CHECK(g.tensors == NULL);
    if (c != NULL && ckpt_n_tensors(c) == 2) {
        CHECK_EQ_INT(ckpt_tensor_at(c, 0)->shape[0], 3);
        CHECK_EQ_INT(ckpt_tensor_at(c, 0)->shape[1], 5);
        CHECK_EQ_INT(ckpt_tensor_read(c, 1, &b, &d, &e), ERR_OK);
        if (d != NULL) {
            dtype_to_f64(DTYPE_F32, d, 8, v);
            CHECK_NEAR(v[0], 100.0, 0);
            CHECK_NEAR(v[7], 107.0, 0);
        }
    }
    CHECK(c != NULL && ckpt_n_tensors(c) == 2);
    ckpt_buf_free(&b);
    ckpt_close(c);
}

int main(void)
{
    static void (*const cases[])(void) = {
        test_llama_tensors_in_pytorch_order,
        test_f32_f16_and_v2_hold_the_twins_bytes,
        test_same_alphas_as_the_safetensors_twin,
        test_quant_types_dequantize_bitwise_as_ggml,
        test_ggml_to_f32_matches_for_q4_k,
        test_quant_file_rows_and_identity,
        test_llama_cpp_names_map_to_blocks_and_roles,
        test_ggml_type_table_matches_ggml,
        test_dtype_nbytes_counts_whole_blocks,
        test_malformed_files_give_their_category,
        test_sniffing_and_messages,
        test_header_limit,
        test_general_alignment_is_followed,
    };

    return eng_run_cases("test_gguf", cases, sizeof(cases) / sizeof(cases[0]));
}
