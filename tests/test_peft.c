/* test_peft.c -- PEFT LoRA adapters (core/formats/peft*.c, docs/peft.md):
 * alone, an adapter's modules are rows that are never fitted and say their
 * rank and ||s*B*A||_2; merged onto a base, adapted weights read W + s*B*A
 * (float64) and everything else the base's own bytes; the layer rules never
 * select lora_A / lora_B; broken adapters fail with their category.
 * Expected values come from tests/fixtures/peft/gen_peft.py (float64, in
 * Python): expected.json (rank, scale, norm) and the merged/ safetensors files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/formats/peft.h"
#include "core/formats/st_write.h"
#include "core/formats/thash.h"
#include "core/formats/tz_write.h"
#include "core/numerics/lowrank.h"
#include "core/numerics/preset.h"
#include "server/engine.h"
#include "tests/check.h"

#define FIX        "tests/fixtures/peft/"
#define LLAMA      "tests/fixtures/checkpoints/llama/llama_step0500.safetensors"
#define GPT2       "tests/fixtures/checkpoints/gpt2/gpt2_step0500.safetensors"
#define LLAMA_PT   "tests/fixtures/checkpoints/llama/llama_step0500.pt"
#define LLAMA_CKPT "tests/fixtures/checkpoints/llama/llama_step0500_lightning.ckpt"

static struct pool *test_pool;
static cJSON *test_expected; /* expected.json */

static cJSON *test_load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    long n;
    cJSON *j = NULL;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        text = malloc((size_t)n);
        if (text != NULL && fread(text, 1, (size_t)n, f) == (size_t)n)
            j = cJSON_ParseWithLength(text, (size_t)n);
    }
    free(text);
    fclose(f);
    return j;
}

/* expected.json's entry for `adapter` / `tensor`. */
static const cJSON *test_exp(const char *adapter, const char *tensor)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(test_expected, adapter);
    return tensor == NULL ? a : cJSON_GetObjectItemCaseSensitive(a, tensor);
}

static double test_exp_num(const char *adapter, const char *tensor, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(test_exp(adapter, tensor), key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void test_params(struct farms_params *p)
{
    struct err e;
    CHECK_EQ_INT(preset_get("farms-llm", p, &e), ERR_OK);
}

/* --- Alone ------------------------------------------------------------------ */

static void test_alone_modules_are_rows_with_rank_and_norm(void)
{
    struct ckpt *c = NULL;
    struct farms_params p;
    struct engine_report r = {0};
    struct engine_opts o = {.params = &p};
    struct err e;
    const char *ad = "llama_lora/step0100";

    test_params(&p);
    CHECK_EQ_INT(ckpt_open(FIX "llama_lora/step0100", CKPT_FORMAT_UNKNOWN, NULL, &c, &e), ERR_OK);
    if (c == NULL)
        return;
    CHECK_EQ_INT(ckpt_format_of(c), CKPT_FORMAT_PEFT);
    CHECK_EQ_INT(ckpt_n_tensors(c), cJSON_GetArraySize(test_exp(ad, NULL)));
    CHECK_EQ_INT(engine_select(c, &o, &r, &e), ERR_OK);
    CHECK_EQ_INT(r.n, 10);
    for (size_t i = 0; i < r.n; i++) {
        const struct engine_layer *row = &r.layers[i];
        double want = test_exp_num(ad, row->name, "norm2"), got = NAN, *a = NULL, *b = NULL;
        struct peft_module_info m;
        char reason[160];

        CHECK(!isnan(want)); /* named by its base weight name */
        CHECK_EQ_INT(row->selected, 0);
        CHECK_EQ_INT(row->res.status, FARMS_STATUS_SKIPPED);
        CHECK_EQ_INT(row->dtype, DTYPE_F64);
        snprintf(reason, sizeof(reason),
                 "LoRA adapter, rank 4, ||s*B*A||_2 = %.4g: not fitted without a base checkpoint "
                 "(--base)",
                 want);
        CHECK_STR_EQ(row->res.reason, reason);
        CHECK_EQ_INT(peft_module_at(c, row->tensor, &m), 1);
        CHECK_EQ_INT(m.rank, 4);
        CHECK_NEAR(m.scale, 2.0, 0.0); /* lora_alpha 8 / r 4 */
        CHECK_EQ_INT(peft_factors_read(c, row->tensor, &a, &b, &e), ERR_OK);
        CHECK_EQ_INT(lowrank_norm2(m.rows, m.cols, m.rank, b, a, m.scale, &got, &e), ERR_OK);
        CHECK_REL(got, want, 1e-9);
        free(a);
        free(b);
    }
    engine_report_free(&r);
    ckpt_close(c);
}

/* The adapter's weights file with adapter_config.json beside it is the adapter. */
static void test_adapter_file_is_sniffed_as_peft(void)
{
    struct ckpt *c = NULL;
    struct err e;

    CHECK_EQ_INT(ckpt_open(FIX "llama_lora/step0200/adapter_model.safetensors", CKPT_FORMAT_UNKNOWN,
                           NULL, &c, &e),
                 ERR_OK);
    CHECK(c != NULL && ckpt_format_of(c) == CKPT_FORMAT_PEFT && ckpt_n_tensors(c) == 10);
    ckpt_close(c);
}

/* A plain safetensors file of lora_A / lora_B keys (no config): never layers. */
static void test_bare_factors_are_never_selected(void)
{
    struct ckpt *c = NULL;
    struct farms_params p;
    struct engine_report r = {0};
    struct engine_opts o = {.params = &p};
    struct err e;

    test_params(&p);
    CHECK_EQ_INT(ckpt_open(FIX "bare_lora.safetensors", CKPT_FORMAT_UNKNOWN, NULL, &c, &e), ERR_OK);
    if (c == NULL)
        return;
    CHECK_EQ_INT(ckpt_format_of(c), CKPT_FORMAT_SAFETENSORS);
    CHECK_EQ_INT(engine_select(c, &o, &r, &e), ERR_OK);
    CHECK_EQ_INT(r.n, 20);
    for (size_t i = 0; i < r.n; i++) {
        CHECK_EQ_INT(r.layers[i].selected, 0);
        CHECK(strstr(r.layers[i].res.reason, "LoRA factor (lora_") == r.layers[i].res.reason);
    }
    engine_report_free(&r);
    ckpt_close(c);
}

/* rsLoRA: s = lora_alpha / sqrt(r); rank_pattern / alpha_pattern per module. */
static void test_scales_rslora_and_patterns(void)
{
    static const struct {
        const char *adapter, *tensor;
        int64_t rank;
        double scale;
    } cases[] = {
        {"llama_lora_rslora", "model.layers.0.self_attn.q_proj.weight", 4, 4.0}, /* 8/sqrt(4) */
        {"llama_lora/step0300", "model.layers.0.self_attn.q_proj.weight", 4, 2.0},
        {"llama_lora_qv", "model.layers.0.self_attn.q_proj.weight", 4, 2.0},
        {"llama_lora_qv", "model.layers.1.self_attn.q_proj.weight", 4, 4.0}, /* alpha 16 */
        {"llama_lora_qv", "model.layers.0.self_attn.v_proj.weight", 2, 4.0}, /* r 2 */
        {"llama_lora_qv", "model.embed_tokens.weight", 4, 2.0},
        {"gpt2_lora_fifo", "transformer.h.1.attn.c_attn.weight", 4, 4.0},
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char path[256];
        struct ckpt *c = NULL;
        struct err e;
        int found = 0;

        snprintf(path, sizeof(path), FIX "%s", cases[k].adapter);
        CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, &e), ERR_OK);
        for (size_t i = 0; c != NULL && i < ckpt_n_tensors(c); i++) {
            struct peft_module_info m;
            if (strcmp(ckpt_tensor_at(c, i)->name, cases[k].tensor) != 0)
                continue;
            found = peft_module_at(c, i, &m);
            CHECK_EQ_INT(m.rank, cases[k].rank);
            CHECK_NEAR(m.scale, cases[k].scale, 1e-15);
            CHECK_NEAR(m.scale, test_exp_num(cases[k].adapter, cases[k].tensor, "scale"), 1e-15);
        }
        CHECK_EQ_INT(found, 1);
        ckpt_close(c);
    }
}

/* --- Merged ----------------------------------------------------------------- */

/* 1 if base name `n` is `want` or ends with "." `want` (a Lightning base). */
static int test_same_name(const char *n, const char *want)
{
    size_t a = strlen(n), b = strlen(want);
    return strcmp(n, want) == 0 || (a > b && n[a - b - 1] == '.' && strcmp(n + a - b, want) == 0);
}

/* Every tensor of `m` (adapter merged onto `base`): the base's names and
 * order; tensors in `want` (Python's merge) are F64 and equal it to 1e-12;
 * the others hash like the base's. Returns the number of merged tensors. */
static size_t test_check_merge(const struct ckpt *m, const char *base, const char *want_path)
{
    struct ckpt *b = NULL, *w = NULL;
    struct ckpt_buf bm = {0}, bw = {0};
    struct err e;
    size_t merged = 0;

    CHECK_EQ_INT(ckpt_open(base, CKPT_FORMAT_UNKNOWN, NULL, &b, &e), ERR_OK);
    CHECK_EQ_INT(ckpt_open(want_path, CKPT_FORMAT_UNKNOWN, NULL, &w, &e), ERR_OK);
    if (b == NULL || w == NULL)
        goto out;
    CHECK_EQ_INT(ckpt_n_tensors(m), ckpt_n_tensors(b));
    for (size_t i = 0; i < ckpt_n_tensors(m) && i < ckpt_n_tensors(b); i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(m, i);
        const void *dm = NULL, *dw = NULL;
        size_t j = 0;

        CHECK_STR_EQ(t->name, ckpt_tensor_at(b, i)->name);
        while (j < ckpt_n_tensors(w) && !test_same_name(t->name, ckpt_tensor_at(w, j)->name))
            j++;
        if (j == ckpt_n_tensors(w)) { /* not adapted: the base's own bytes */
            char hm[THASH_HEX_LEN], hb[THASH_HEX_LEN];
            CHECK_EQ_INT(thash_tensor(m, i, &bm, hm, &e), ERR_OK);
            CHECK_EQ_INT(thash_tensor(b, i, &bw, hb, &e), ERR_OK);
            CHECK_STR_EQ(hm, hb);
            CHECK_EQ_INT(t->dtype, ckpt_tensor_at(b, i)->dtype);
            continue;
        }
        merged++;
        CHECK_EQ_INT(t->dtype, DTYPE_F64);
        CHECK_EQ_INT(ckpt_tensor_read(m, i, &bm, &dm, &e), ERR_OK);
        CHECK_EQ_INT(ckpt_tensor_read(w, j, &bw, &dw, &e), ERR_OK);
        if (dm == NULL || dw == NULL || t->n_elems != ckpt_tensor_at(w, j)->n_elems)
            continue;
        double worst = 0.0;
        for (uint64_t k = 0; k < t->n_elems; k++) {
            double x = ((const double *)dm)[k], y = ((const double *)dw)[k];
            double d = fabs(x - y) / fmax(1.0, fabs(y));
            worst = d > worst ? d : worst;
        }
        CHECK_NEAR(worst, 0.0, 1e-12);
    }
out:
    ckpt_buf_free(&bm);
    ckpt_buf_free(&bw);
    ckpt_close(b);
    ckpt_close(w);
    return merged;
}

static void test_merged_weights_equal_python_merge(void)
{
    static const struct {
        const char *adapter, *base, *want;
        size_t n_merged;
    } cases[] = {
        {FIX "llama_lora/step0100", LLAMA, FIX "merged/llama_lora_step0100.safetensors", 10},
        {FIX "llama_lora_rslora", LLAMA, FIX "merged/llama_lora_rslora.safetensors", 10},
        {FIX "llama_lora_qv", LLAMA, FIX "merged/llama_lora_qv.safetensors", 5},  /* + embedding */
        {FIX "gpt2_lora_fifo", GPT2, FIX "merged/gpt2_lora_fifo.safetensors", 4}, /* Conv1D */
        {FIX "llama_lora/step0100/adapter_model.safetensors", LLAMA,
         FIX "merged/llama_lora_step0100.safetensors", 10},
        /* The same trained weights as torch.save files: a state dict, and a Lightning
         * checkpoint (state_dict.model.model.layers...: matched by name suffix). */
        {FIX "llama_lora/step0100", LLAMA_PT, FIX "merged/llama_lora_step0100.safetensors", 10},
        {FIX "llama_lora/step0100", LLAMA_CKPT, FIX "merged/llama_lora_step0100.safetensors", 10},
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct ckpt *m = NULL;
        struct err e;

        CHECK_EQ_INT(
            peft_merge_open(cases[k].adapter, cases[k].base, CKPT_FORMAT_UNKNOWN, NULL, &m, &e),
            ERR_OK);
        if (m == NULL) {
            fprintf(stderr, "%s: %s\n", cases[k].adapter, e.msg);
            continue;
        }
        CHECK_EQ_INT(ckpt_format_of(m), strstr(cases[k].base, ".safetensors") != NULL
                                            ? CKPT_FORMAT_SAFETENSORS
                                            : CKPT_FORMAT_TORCH_ZIP); /* the base's */
        CHECK_EQ_INT(test_check_merge(m, cases[k].base, cases[k].want), cases[k].n_merged);
        ckpt_close(m);
    }
}

/* Copy the tensors of safetensors `src` into the torch.save zip `dst`
 * (tz_write, the layout torch.save writes). */
static enum err_code test_st_to_torch(const char *src, const char *dst, struct err *e)
{
    struct ckpt *c = NULL;
    struct st_wtensor *t = NULL;
    struct tz_writer *w = NULL;
    struct ckpt_buf buf = {0};
    enum err_code rc = ckpt_open(src, CKPT_FORMAT_SAFETENSORS, NULL, &c, e);
    size_t n = rc == ERR_OK ? ckpt_n_tensors(c) : 0;

    t = calloc(n + 1, sizeof(*t));
    if (rc == ERR_OK && t == NULL)
        rc = err_set(e, ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        const struct ckpt_tensor *ct = ckpt_tensor_at(c, i);
        t[i] = (struct st_wtensor){.name = ct->name, .dtype = ct->dtype, .ndim = ct->ndim};
        memcpy(t[i].shape, ct->shape, sizeof(t[i].shape));
    }
    if (rc == ERR_OK)
        rc = tz_writer_open(dst, "adapter_model", t, n, &w, e);
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        const void *data = NULL;
        rc = ckpt_tensor_read(c, i, &buf, &data, e);
        if (rc == ERR_OK)
            rc = tz_writer_write(w, data, (size_t)ckpt_tensor_at(c, i)->nbytes, e);
    }
    if (w != NULL && rc == ERR_OK)
        rc = tz_writer_close(w, e);
    else
        tz_writer_abort(w);
    ckpt_buf_free(&buf);
    free(t);
    ckpt_close(c);
    return rc;
}

static int test_copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    char buf[4096];
    size_t n;
    int ok = in != NULL && out != NULL;

    while (ok && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        ok = fwrite(buf, 1, n, out) == n;
    if (in != NULL)
        fclose(in);
    if (out != NULL && fclose(out) != 0)
        ok = 0;
    return ok;
}

/* adapter_model.bin (safe_serialization=False): the same adapter as a
 * torch.save zip merges to the same weights. */
static void test_adapter_bin(void)
{
    char dir[] = "/tmp/farmsd-peft-XXXXXX", bin[64], cfg[64];
    struct ckpt *m = NULL, *a = NULL;
    struct err e;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(bin, sizeof(bin), "%s/adapter_model.bin", dir);
    snprintf(cfg, sizeof(cfg), "%s/adapter_config.json", dir);
    CHECK_EQ_INT(test_st_to_torch(FIX "llama_lora/step0100/adapter_model.safetensors", bin, &e),
                 ERR_OK);
    CHECK(test_copy_file(FIX "llama_lora/step0100/adapter_config.json", cfg));
    CHECK_EQ_INT(ckpt_open(dir, CKPT_FORMAT_UNKNOWN, NULL, &a, &e), ERR_OK);
    CHECK(a != NULL && ckpt_format_of(a) == CKPT_FORMAT_PEFT && ckpt_n_tensors(a) == 10);
    CHECK_EQ_INT(peft_merge_open(bin, LLAMA, CKPT_FORMAT_UNKNOWN, NULL, &m, &e), ERR_OK);
    if (m != NULL)
        CHECK_EQ_INT(test_check_merge(m, LLAMA, FIX "merged/llama_lora_step0100.safetensors"), 10);
    ckpt_close(a);
    ckpt_close(m);
    unlink(bin);
    unlink(cfg);
    rmdir(dir);
}

/* alpha of the row named `name`, NAN if none. */
static double test_alpha(const struct engine_report *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->layers[i].name, name) == 0)
            return r->layers[i].res.alpha;
    return NAN;
}

static void test_merged_alphas_differ_where_adapted(void)
{
    struct ckpt *m = NULL, *b = NULL;
    struct farms_params p;
    struct engine_report rm = {0}, rb = {0};
    struct engine_opts o = {.params = &p, .hash = 1};
    struct err e;

    test_params(&p);
    CHECK_EQ_INT(
        peft_merge_open(FIX "llama_lora/step0300", LLAMA, CKPT_FORMAT_UNKNOWN, NULL, &m, &e),
        ERR_OK);
    CHECK_EQ_INT(ckpt_open(LLAMA, CKPT_FORMAT_UNKNOWN, NULL, &b, &e), ERR_OK);
    if (m == NULL || b == NULL)
        goto out;
    CHECK_EQ_INT(engine_select(m, &o, &rm, &e), ERR_OK);
    CHECK_EQ_INT(engine_select(b, &o, &rb, &e), ERR_OK);
    CHECK_EQ_INT(engine_run(m, test_pool, &o, &rm, &e), ERR_OK);
    CHECK_EQ_INT(engine_run(b, test_pool, &o, &rb, &e), ERR_OK);
    CHECK_EQ_INT(rm.n, rb.n);
    for (size_t i = 0; i < rm.n && i < rb.n; i++)
        CHECK_STR_EQ(rm.layers[i].name, rb.layers[i].name); /* same rows, same order */
    /* Adapted: a different matrix, a different alpha. */
    CHECK(test_alpha(&rm, "model.layers.0.self_attn.q_proj.weight") !=
          test_alpha(&rb, "model.layers.0.self_attn.q_proj.weight"));
    CHECK(test_alpha(&rm, "model.layers.1.mlp.down_proj.weight") !=
          test_alpha(&rb, "model.layers.1.mlp.down_proj.weight"));
    CHECK(!isnan(test_alpha(&rm, "model.layers.1.mlp.down_proj.weight")));
    /* Not adapted: the same bytes, the same alpha, bitwise. */
    CHECK(test_alpha(&rm, "model.layers.1.mlp.gate_proj.weight") ==
          test_alpha(&rb, "model.layers.1.mlp.gate_proj.weight"));
out:
    engine_report_free(&rm);
    engine_report_free(&rb);
    ckpt_close(m);
    ckpt_close(b);
}

/* --- Errors ----------------------------------------------------------------- */

/* Every row of malformed/manifest.tsv fails with its category. */
static void test_malformed_adapters(void)
{
    FILE *f = fopen(FIX "malformed/manifest.tsv", "r");
    char line[512];
    int rows = 0;

    CHECK(f != NULL);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL && rows < 100) {
        char name[128], mode[16], cat[64], path[256];
        struct ckpt *c = NULL;
        struct err e = {0};
        enum err_code rc;

        if (line[0] == '#' || sscanf(line, "%127s %15s %63s", name, mode, cat) != 3)
            continue;
        rows++;
        snprintf(path, sizeof(path), FIX "malformed/%s", name);
        if (strcmp(mode, "merge") == 0)
            rc = peft_merge_open(path, LLAMA, CKPT_FORMAT_UNKNOWN, NULL, &c, &e);
        else
            rc = ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, &e);
        CHECK(rc != ERR_OK && c == NULL);
        CHECK_STR_EQ(err_category(&e), cat);
        if (strcmp(err_category(&e), cat) != 0)
            fprintf(stderr, "  %s: %s\n", name, e.msg);
        ckpt_close(c);
    }
    CHECK_EQ_INT(rows, 8);
    if (f != NULL)
        fclose(f);
}

/* Write safetensors `path` with tensors t[0..n) whose bytes are data[i]. */
static enum err_code test_write_st(const char *path, const struct st_wtensor *t, size_t n,
                                   const void *const *data, struct err *e)
{
    struct st_writer *w = NULL;
    enum err_code rc = st_writer_open(path, t, n, &w, e);

    for (size_t i = 0; rc == ERR_OK && i < n; i++)
        rc = st_writer_write(w, data[i], (size_t)(t[i].shape[0] * t[i].shape[1]) * 4, e);
    if (w != NULL && rc == ERR_OK)
        rc = st_writer_close(w, e);
    else
        st_writer_abort(w);
    return rc;
}

/* Two adapters' factors in one file (adapter names kept): refused, not mixed. */
static void test_two_adapters_in_one_file(void)
{
    char dir[] = "/tmp/farmsd-peft-XXXXXX", st[64], cfg[64];
    const float a[8] = {1, 0, 0, 1, 1, 0, 0, 1}, b[4] = {1, 2, 3, 4};
    const char *const names[] = {"base_model.model.fc.lora_A.one.weight",
                                 "base_model.model.fc.lora_A.two.weight",
                                 "base_model.model.fc.lora_B.one.weight"};
    const char *json = "{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":2}";
    struct st_wtensor t[3];
    struct ckpt *c = NULL;
    struct err e;
    FILE *f;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(st, sizeof(st), "%s/adapter_model.safetensors", dir);
    snprintf(cfg, sizeof(cfg), "%s/adapter_config.json", dir);
    for (int i = 0; i < 3; i++) /* A: (2, 4), B: (2, 2) */
        t[i] = (struct st_wtensor){
            .name = names[i], .dtype = DTYPE_F32, .ndim = 2, .shape = {2, i < 2 ? 4 : 2}};
    f = fopen(cfg, "w");
    CHECK(f != NULL && fputs(json, f) >= 0);
    if (f != NULL)
        fclose(f);
    {
        const void *const data[3] = {a, a, b};
        CHECK_EQ_INT(test_write_st(st, t, 3, data, &e), ERR_OK);
    }
    CHECK_EQ_INT(ckpt_open(dir, CKPT_FORMAT_UNKNOWN, NULL, &c, &e), ERR_FORMAT);
    CHECK_STR_EQ(err_category(&e), "unsupported_format");
    CHECK(strstr(e.msg, "two lora_A") != NULL);
    ckpt_close(c);
    unlink(st);
    unlink(cfg);
    rmdir(dir);
}

static void test_merge_onto_a_base_without_the_modules(void)
{
    struct ckpt *c = NULL;
    struct err e;

    /* A LLaMA adapter onto GPT-2: no q_proj there. */
    CHECK_EQ_INT(
        peft_merge_open(FIX "llama_lora/step0100", GPT2, CKPT_FORMAT_UNKNOWN, NULL, &c, &e),
        ERR_FORMAT);
    CHECK_STR_EQ(err_category(&e), "lora_mismatch");
    CHECK(strstr(e.msg, "not in the base checkpoint") != NULL);
    CHECK_EQ_INT(err_problem_category(&e), ERR_CAT_LORA_MISMATCH);
    CHECK_EQ_INT(err_category_status(ERR_CAT_LORA_MISMATCH), 422);
    CHECK(c == NULL);
}

static void test_config_parse(void)
{
    static const struct {
        const char *json, *category; /* NULL: parses */
        int64_t r;
        double alpha;
    } cases[] = {
        {"{\"peft_type\":\"LORA\",\"r\":8,\"lora_alpha\":16}", NULL, 8, 16},
        {"{\"peft_type\":\"LORA\",\"r\":8,\"lora_alpha\":16,\"rank_pattern\":null}", NULL, 8, 16},
        {"{\"peft_type\":\"LORA\",\"lora_alpha\":16}", "invalid_header", 0, 0},
        {"{\"peft_type\":\"LORA\",\"r\":8}", "invalid_header", 0, 0},
        {"{\"peft_type\":\"LORA\",\"r\":0,\"lora_alpha\":16}", "invalid_header", 0, 0},
        {"{\"peft_type\":\"LORA\",\"r\":2.5,\"lora_alpha\":16}", "invalid_header", 0, 0},
        {"{\"peft_type\":\"LORA\",\"r\":8,\"lora_alpha\":\"16\"}", "invalid_header", 0, 0},
        {"{\"peft_type\":\"LORA\",\"r\":8,\"lora_alpha\":16,\"use_rslora\":1}", "invalid_header", 0,
         0},
        {"{\"peft_type\":\"LORA\",\"r\":8,\"lora_alpha\":1,\"rank_pattern\":{\"q\":0}}",
         "invalid_header", 0, 0},
        {"{\"peft_type\":\"LORA\",\"r\":8,\"lora_alpha\":1,\"alpha_pattern\":[]}", "invalid_header",
         0, 0},
        {"{\"r\":8,\"lora_alpha\":16}", "invalid_header", 0, 0},
        {"{\"peft_type\":\"IA3\",\"r\":8,\"lora_alpha\":16}", "unsupported_format", 0, 0},
        {"[1]", "invalid_header", 0, 0},
        {"{\"peft_type\":\"LO\\u0000RA\",\"r\":8,\"lora_alpha\":16}", "invalid_header", 0, 0},
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct peft_config cfg;
        struct err e = {0};
        enum err_code rc = peft_config_parse(cases[k].json, strlen(cases[k].json), &cfg, &e);

        if (cases[k].category == NULL) {
            CHECK_EQ_INT(rc, ERR_OK);
            CHECK_EQ_INT(cfg.r, cases[k].r);
            CHECK_NEAR(cfg.lora_alpha, cases[k].alpha, 0.0);
        } else {
            CHECK(rc != ERR_OK);
            CHECK_STR_EQ(err_category(&e), cases[k].category);
        }
        peft_config_free(&cfg);
    }
}

/* Patterns match like peft's get_pattern_key: (.*\.)?(key)$, first key wins;
 * a key POSIX cannot compile is matched literally as a name suffix. */
static void test_config_patterns(void)
{
    const char *json = "{\"peft_type\":\"LORA\",\"r\":8,\"lora_alpha\":16,\"use_rslora\":true,"
                       "\"rank_pattern\":{\"layers\\\\.[01]\\\\.self_attn\\\\.q_proj\":4,"
                       "\"(?P<x>v_proj)\":2},\"alpha_pattern\":{\"o_proj\":32}}";
    struct peft_config cfg;
    struct err e;
    int64_t r;
    double alpha, s;

    CHECK_EQ_INT(peft_config_parse(json, strlen(json), &cfg, &e), ERR_OK);
    peft_config_module(&cfg, "model.layers.1.self_attn.q_proj", &r, &alpha, &s);
    CHECK_EQ_INT(r, 4);
    CHECK_NEAR(s, 16.0 / 2.0, 0.0); /* rsLoRA: 16 / sqrt(4) */
    peft_config_module(&cfg, "model.layers.2.self_attn.q_proj", &r, &alpha, &s);
    CHECK_EQ_INT(r, 8);
    peft_config_module(&cfg, "model.layers.0.self_attn.o_proj", &r, &alpha, &s);
    CHECK_NEAR(alpha, 32.0, 0.0);
    peft_config_module(&cfg, "model.layers.0.self_attn.xo_proj", &r, &alpha, &s);
    CHECK_NEAR(alpha, 16.0, 0.0); /* "o_proj" matches whole components only */
    peft_config_module(&cfg, "model.layers.0.self_attn.(?P<x>v_proj)", &r, &alpha, &s);
    CHECK_EQ_INT(r, 2); /* Python-only syntax: literal */
    peft_config_free(&cfg);
}

/* ||s*B*A||_2 without forming B*A, against hand-computed values. */
static void test_lowrank_norm2(void)
{
    /* B = 3 e_1 (3 x 1), A = 2 e_2^T (1 x 2): B*A has one singular value, 6. */
    const double b1[] = {3, 0, 0}, a1[] = {0, 2};
    /* B = diag(1, 5) (2 x 2), A = I (2 x 4 padded): singular values 5, 1. */
    const double b2[] = {1, 0, 0, 5}, a2[] = {1, 0, 0, 0, 0, 1, 0, 0};
    /* Rank 3 > rows 1: B (1 x 3) = (1 2 2), A (3 x 1) = (2 1 2)^T: B*A = 2+2+4 = 8. */
    const double b3[] = {1, 2, 2}, a3[] = {2, 1, 2};
    double n = 0;
    struct err e;

    CHECK_EQ_INT(lowrank_norm2(3, 2, 1, b1, a1, 0.5, &n, &e), ERR_OK);
    CHECK_NEAR(n, 3.0, 1e-14);
    CHECK_EQ_INT(lowrank_norm2(2, 4, 2, b2, a2, -2.0, &n, &e), ERR_OK);
    CHECK_NEAR(n, 10.0, 1e-13);
    CHECK_EQ_INT(lowrank_norm2(1, 1, 3, b3, a3, 1.0, &n, &e), ERR_OK);
    CHECK_NEAR(n, 8.0, 1e-13);
    CHECK_EQ_INT(lowrank_norm2(0, 1, 3, b3, a3, 1.0, &n, &e), ERR_INVAL);
    CHECK(isnan(n));
}

int main(void)
{
    test_expected = test_load_json(FIX "expected.json");
    CHECK(test_expected != NULL);
    if (pool_new(2, 64, &test_pool, NULL) != ERR_OK)
        return 1;
    test_alone_modules_are_rows_with_rank_and_norm();
    test_adapter_file_is_sniffed_as_peft();
    test_bare_factors_are_never_selected();
    test_scales_rslora_and_patterns();
    test_merged_weights_equal_python_merge();
    test_merged_alphas_differ_where_adapted();
    test_adapter_bin();
    test_malformed_adapters();
    test_merge_onto_a_base_without_the_modules();
    test_two_adapters_in_one_file();
    test_config_parse();
    test_config_patterns();
    test_lowrank_norm2();
    pool_free(test_pool);
    cJSON_Delete(test_expected);
    return check_report("test_peft");
}
