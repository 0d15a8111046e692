/* test_synth.c -- `farmsd synth` as a user runs it (build/san/farmsd): the
 * files it writes open with the project's own readers (ckpt_open) with the
 * model's real names, shapes and dtypes; a seed gives the same tensor
 * SHA-256s in safetensors and torch zip form; torch members are 64-byte
 * aligned; F16/BF16 encoding rounds exactly; the entries have the promised
 * distributions; llama-tiny has LLaMA's names at test size. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/formats/ckpt.h"
#include "core/formats/rfile.h"
#include "core/formats/thash.h"
#include "core/formats/zip.h"
#include "server/cli_synth.h"
#include "tests/check.h"

#define FARMSD "build/san/farmsd"

static char dir[] = "/tmp/farmsd-synthXXXXXX";

/* Run farmsd synth with the given options (NULL-terminated), stdout to /dev/null. */
static int synth(const char *const *args)
{
    const char *argv[32] = {FARMSD, "synth", "--quiet"};
    int n = 3, ws = 0;
    pid_t pid;

    for (int i = 0; args[i] != NULL && n < 30; i++)
        argv[n++] = args[i];
    pid = fork();
    if (pid == 0) {
        (void)freopen("/dev/null", "w", stderr); /* quiet if it works, else as is */
        execv(FARMSD, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    waitpid(pid, &ws, 0);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

static char *path(const char *name)
{
    static char buf[8][256];
    static int k;

    k = (k + 1) % 8;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
    return buf[k];
}

static struct ckpt *open_ckpt(const char *p)
{
    struct ckpt *c = NULL;
    struct err e;

    if (ckpt_open(p, CKPT_FORMAT_UNKNOWN, NULL, &c, &e) != ERR_OK)
        fprintf(stderr, "ckpt_open %s: %s\n", p, e.msg);
    return c;
}

static const struct ckpt_tensor *find(const struct ckpt *c, const char *name, size_t *idx)
{
    for (size_t i = 0; i < ckpt_n_tensors(c); i++)
        if (strcmp(ckpt_tensor_at(c, i)->name, name) == 0) {
            if (idx != NULL)
                *idx = i;
            return ckpt_tensor_at(c, i);
        }
    return NULL;
}

static void test_gpt2_block_has_real_names_shapes_and_dtype(void)
{
    const char *a[] = {
        "--model", "gpt2-small",          "--blocks", "1", "--no-embeddings", "--dtype", "F16",
        "--out",   path("g.safetensors"), NULL};
    struct ckpt *c;
    const struct ckpt_tensor *t;

    CHECK_EQ_INT(synth(a), 0);
    c = open_ckpt(path("g.safetensors"));
    CHECK(c != NULL);
    if (c == NULL)
        return;
    CHECK_EQ_INT((int)ckpt_n_tensors(c), 14); /* 12 per block + ln_f weight, bias */
    t = find(c, "transformer.h.0.attn.c_attn.weight", NULL);
    CHECK(t != NULL && t->ndim == 2 && t->shape[0] == 768 && t->shape[1] == 2304);
    CHECK(t != NULL && t->dtype == DTYPE_F16 && t->nbytes == (uint64_t)768 * 2304 * 2);
    t = find(c, "transformer.h.0.mlp.c_proj.weight", NULL);
    CHECK(t != NULL && t->shape[0] == 3072 && t->shape[1] == 768);
    CHECK(find(c, "transformer.wte.weight", NULL) == NULL);
    CHECK(find(c, "transformer.h.1.ln_1.weight", NULL) == NULL);
    ckpt_close(c);
}

/* llama-tiny: LLaMA's names, 7 matrices per block (q, k, v, o 64x64; gate,
 * up 172x64; down 64x172) and 32 blocks; --hidden/--ffn change the widths;
 * --dist mixed makes each matrix exactly the Gaussian or the heavy one of
 * the same seed, both kinds present. */
static void test_llama_tiny_names_shapes_and_mixed_entries(void)
{
    const char *g[] = {"--model", "llama-tiny", "--no-embeddings",      "--dtype", "F32", "--seed",
                       "3",       "--out",      path("lg.safetensors"), NULL};
    const char *h[] = {
        "--model", "llama-tiny", "--no-embeddings",      "--dtype", "F32", "--seed", "3", "--dist",
        "heavy",   "--out",      path("lh.safetensors"), NULL};
    const char *m[] = {
        "--model", "llama-tiny", "--no-embeddings",      "--dtype", "F32", "--seed", "3", "--dist",
        "mixed",   "--out",      path("lm.safetensors"), NULL};
    const char *w[] = {"--model", "llama-tiny", "--blocks", "2",     "--hidden",
                       "32",      "--ffn",      "48",       "--out", path("lw.safetensors"),
                       NULL};
    struct ckpt *cg = NULL, *ch = NULL, *cm = NULL, *cw = NULL;
    struct ckpt_buf buf = {0};
    char hg[THASH_HEX_LEN], hh[THASH_HEX_LEN], hm[THASH_HEX_LEN];
    const struct ckpt_tensor *t;
    int n_heavy = 0, n_gauss = 0, n_matrices = 0;
    struct err e;

    CHECK_EQ_INT(synth(g), 0);
    CHECK_EQ_INT(synth(h), 0);
    CHECK_EQ_INT(synth(m), 0);
    CHECK_EQ_INT(synth(w), 0);
    cg = open_ckpt(path("lg.safetensors"));
    ch = open_ckpt(path("lh.safetensors"));
    cm = open_ckpt(path("lm.safetensors"));
    cw = open_ckpt(path("lw.safetensors"));
    CHECK(cg != NULL && ch != NULL && cm != NULL && cw != NULL);
    if (cg == NULL || ch == NULL || cm == NULL || cw == NULL)
        goto out;
    CHECK_EQ_INT((int)ckpt_n_tensors(cg), 32 * 9 + 1); /* 7 matrices + 2 norms, final norm */
    t = find(cg, "model.layers.31.self_attn.q_proj.weight", NULL);
    CHECK(t != NULL && t->ndim == 2 && t->shape[0] == 64 && t->shape[1] == 64);
    t = find(cg, "model.layers.0.mlp.gate_proj.weight", NULL);
    CHECK(t != NULL && t->shape[0] == 172 && t->shape[1] == 64);
    t = find(cg, "model.layers.5.mlp.down_proj.weight", NULL);
    CHECK(t != NULL && t->shape[0] == 64 && t->shape[1] == 172 && t->dtype == DTYPE_F32);
    CHECK(find(cg, "model.embed_tokens.weight", NULL) == NULL);
    t = find(cw, "model.layers.1.mlp.up_proj.weight", NULL);
    CHECK(t != NULL && t->shape[0] == 48 && t->shape[1] == 32);
    CHECK_EQ_INT((int)ckpt_n_tensors(cw), 2 * 9 + 1 + 2); /* with embeddings and lm_head */
    t = find(cw, "lm_head.weight", NULL);
    CHECK(t != NULL && t->shape[0] == 256 && t->shape[1] == 32);
    for (size_t i = 0; i < ckpt_n_tensors(cm) && i < ckpt_n_tensors(cg); i++) {
        if (ckpt_tensor_at(cm, i)->ndim != 2)
            continue;
        if (thash_tensor(cg, i, &buf, hg, &e) || thash_tensor(ch, i, &buf, hh, &e) ||
            thash_tensor(cm, i, &buf, hm, &e))
            break;
        n_matrices++;
        n_gauss += strcmp(hm, hg) == 0;
        n_heavy += strcmp(hm, hh) == 0;
    }
    CHECK_EQ_INT(n_matrices, 224);
    CHECK_EQ_INT(n_gauss + n_heavy, 224);
    CHECK(n_gauss > 60 && n_heavy > 60); /* about half each */
out:
    ckpt_buf_free(&buf);
    ckpt_close(cg);
    ckpt_close(ch);
    ckpt_close(cm);
    ckpt_close(cw);
}

/* The same seed: the same bytes per tensor from safetensors and torch. */
static void test_same_seed_same_hashes_in_both_formats(void)
{
    const char *st[] = {"--model", "resnet", "--blocks", "2",     "--dtype",
                        "BF16",    "--seed", "7",        "--out", path("r.safetensors"),
                        NULL};
    const char *pt[] = {"--model", "resnet",   "--blocks", "2",     "--dtype",    "BF16", "--seed",
                        "7",       "--format", "torch",    "--out", path("r.pt"), NULL};
    const char *other[] = {"--model", "resnet", "--blocks", "2",     "--dtype",
                           "BF16",    "--seed", "8",        "--out", path("r8.safetensors"),
                           NULL};
    struct ckpt *a, *b, *o;
    struct ckpt_buf buf = {0};
    char ha[THASH_HEX_LEN], hb[THASH_HEX_LEN], ho[THASH_HEX_LEN];
    struct err e;
    size_t same = 0, differ = 0;

    CHECK_EQ_INT(synth(st), 0);
    CHECK_EQ_INT(synth(pt), 0);
    CHECK_EQ_INT(synth(other), 0);
    a = open_ckpt(path("r.safetensors"));
    b = open_ckpt(path("r.pt"));
    o = open_ckpt(path("r8.safetensors"));
    CHECK(a != NULL && b != NULL && o != NULL);
    if (a == NULL || b == NULL || o == NULL)
        goto out;
    CHECK_EQ_INT(ckpt_format_of(b), CKPT_FORMAT_TORCH_ZIP);
    /* stem + bn1, 2 bottlenecks of 3 convs + 3 bns, one downsample conv + bn, fc + bias */
    CHECK_EQ_INT((int)ckpt_n_tensors(a), 5 + 2 * 15 + 5 + 2);
    CHECK_EQ_INT((int)ckpt_n_tensors(b), (int)ckpt_n_tensors(a));
    for (size_t i = 0; i < ckpt_n_tensors(a) && i < ckpt_n_tensors(b); i++) {
        const struct ckpt_tensor *ta = ckpt_tensor_at(a, i), *tb = ckpt_tensor_at(b, i);
        CHECK_STR_EQ(ta->name, tb->name);
        CHECK(ta->dtype == DTYPE_BF16 && tb->dtype == DTYPE_BF16 && ta->ndim == tb->ndim);
        CHECK(memcmp(ta->shape, tb->shape, sizeof(ta->shape)) == 0);
        if (thash_tensor(a, i, &buf, ha, &e) || thash_tensor(b, i, &buf, hb, &e) ||
            thash_tensor(o, i, &buf, ho, &e))
            break;
        same += strcmp(ha, hb) == 0;
        differ += strcmp(ha, ho) != 0;
    }
    CHECK_EQ_INT((int)same, (int)ckpt_n_tensors(a));
    CHECK_EQ_INT((int)differ, (int)ckpt_n_tensors(a));
    {
        const struct ckpt_tensor *t = find(a, "layer1.0.conv2.weight", NULL);
        CHECK(t != NULL && t->ndim == 4 && t->shape[0] == 64 && t->shape[1] == 64 &&
              t->shape[2] == 3 && t->shape[3] == 3);
        t = find(a, "fc.weight", NULL);
        CHECK(t != NULL && t->shape[0] == 1000 && t->shape[1] == 256); /* 4 x 64 after stage 1 */
    }
out:
    ckpt_buf_free(&buf);
    ckpt_close(a);
    ckpt_close(b);
    ckpt_close(o);
}

/* Every stored member's data starts on a 64-byte boundary, as torch writes them. */
static void test_torch_members_are_64_byte_aligned(void)
{
    struct rfile m;
    struct zip_archive *z = NULL;
    struct err e;
    size_t aligned = 0;

    if (rfile_open(path("r.pt"), &m, &e) != ERR_OK || zip_parse_file(&m, 1000, &z, &e) != ERR_OK) {
        CHECK(0);
        rfile_close(&m);
        return;
    }
    CHECK_EQ_INT((int)zip_n_members(z),
                 5 + 2 * 15 + 5 + 2 + 3); /* + data.pkl, version, byteorder */
    for (size_t i = 0; i < zip_n_members(z); i++)
        aligned += zip_member_at(z, i)->data_offset % 64 == 0;
    CHECK_EQ_INT((int)aligned, (int)zip_n_members(z));
    CHECK(zip_find(z, "r/data.pkl") != NULL && zip_find(z, "r/version") != NULL);
    zip_free(z);
    rfile_close(&m);
}

/* Every finite binary16 value survives decode (dtype.c) then encode; ties
 * round to even; BF16 rounds to nearest even. */
static void test_f16_and_bf16_encoding_round_exactly(void)
{
    float v[7] = {1.0f, -2.0f, 65504.0f, 65520.0f, 0x1.0p-24f, 0.1f, 1.0f + 0x1.0p-11f};
    unsigned char enc[14];
    int bad = 0;

    for (uint32_t h = 0; h < 0x10000u; h++) {
        unsigned char b[2];
        float f = dtype_f16_to_f32((uint16_t)h);
        if ((h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0)
            continue; /* NaN */
        cli_synth_encode(DTYPE_F16, &f, 1, b);
        bad += (uint32_t)(b[0] | b[1] << 8) != h;
    }
    CHECK_EQ_INT(bad, 0);
    cli_synth_encode(DTYPE_F16, v, 7, enc);
    CHECK_EQ_INT(enc[0] | enc[1] << 8, 0x3C00);
    CHECK_EQ_INT(enc[2] | enc[3] << 8, 0xC000);
    CHECK_EQ_INT(enc[4] | enc[5] << 8, 0x7BFF);   /* largest finite */
    CHECK_EQ_INT(enc[6] | enc[7] << 8, 0x7C00);   /* halfway to 2^16 rounds to even: inf */
    CHECK_EQ_INT(enc[8] | enc[9] << 8, 0x0001);   /* smallest subnormal */
    CHECK_EQ_INT(enc[10] | enc[11] << 8, 0x2E66); /* 0.1 */
    CHECK_EQ_INT(enc[12] | enc[13] << 8, 0x3C00); /* 1 + half an ulp: tie to even */
    cli_synth_encode(DTYPE_BF16, v, 7, enc);
    CHECK_EQ_INT(enc[0] | enc[1] << 8, 0x3F80);
    CHECK_EQ_INT(enc[10] | enc[11] << 8, 0x3DCD); /* 0x3DCCCCCD rounds up */
}

/* Moments of a tensor read back from the file (F16 decoded by dtype.c). */
static void moments(const struct ckpt *c, const char *name, double *mean, double *sd, double *kurt)
{
    size_t i = 0;
    const struct ckpt_tensor *t = find(c, name, &i);
    struct ckpt_buf buf = {0};
    const void *data;
    double *x, s1 = 0, s2 = 0, s4 = 0;
    struct err e;

    *mean = *sd = *kurt = NAN;
    if (t == NULL || ckpt_tensor_read(c, i, &buf, &data, &e) != ERR_OK ||
        (x = malloc(t->n_elems * sizeof(*x))) == NULL) {
        ckpt_buf_free(&buf);
        return;
    }
    dtype_to_f64(t->dtype, data, t->n_elems, x);
    for (size_t k = 0; k < t->n_elems; k++)
        s1 += x[k];
    *mean = s1 / (double)t->n_elems;
    for (size_t k = 0; k < t->n_elems; k++) {
        double d = x[k] - *mean;
        s2 += d * d;
        s4 += d * d * d * d;
    }
    *sd = sqrt(s2 / (double)t->n_elems);
    *kurt = (s4 / (double)t->n_elems) / (*sd * *sd * *sd * *sd);
    free(x);
    ckpt_buf_free(&buf);
}

/* Gaussian entries: N(0, 1/fan_in) (kurtosis 3); heavy: Student-t(3), unit
 * variance before scaling, much larger kurtosis; norm weights near 1. */
static void test_entries_follow_the_promised_distributions(void)
{
    const char *h[] = {
        "--model", "gpt2-small", "--blocks", "1",     "--no-embeddings",     "--dist",
        "heavy",   "--seed",     "3",        "--out", path("h.safetensors"), NULL};
    struct ckpt *g = open_ckpt(path("g.safetensors")), *t;
    double mean, sd, kurt;

    CHECK_EQ_INT(synth(h), 0);
    t = open_ckpt(path("h.safetensors"));
    CHECK(g != NULL && t != NULL);
    if (g == NULL || t == NULL)
        goto out;
    moments(g, "transformer.h.0.attn.c_attn.weight", &mean, &sd, &kurt);
    CHECK_NEAR(mean, 0.0, 1e-4);
    CHECK_REL(sd, 1.0 / sqrt(2304.0), 0.01);
    CHECK_NEAR(kurt, 3.0, 0.05);
    moments(g, "transformer.h.0.ln_1.weight", &mean, &sd, &kurt);
    CHECK_NEAR(mean, 1.0, 0.005);
    CHECK_REL(sd, 0.02, 0.1);
    moments(t, "transformer.h.0.mlp.c_fc.weight", &mean, &sd, &kurt);
    CHECK_REL(sd, 1.0 / sqrt(3072.0), 0.1);
    CHECK(kurt > 8.0);
out:
    ckpt_close(g);
    ckpt_close(t);
}

static void test_usage_errors_exit_2(void)
{
    const char *unknown[] = {"--model", "bert", "--out", path("x.safetensors"), NULL};
    const char *no_out[] = {"--model", "gpt2-small", NULL};
    const char *dtype[] = {"--model", "gpt2-small", "--dtype", "F8", "--out", path("x"), NULL};
    const char *hidden[] = {"--model", "llama-tiny", "--hidden", "0", "--out", path("x"), NULL};
    const char *dist[] = {"--model", "llama-tiny", "--dist", "odd", "--out", path("x"), NULL};

    CHECK_EQ_INT(synth(unknown), 2);
    CHECK_EQ_INT(synth(no_out), 2);
    CHECK_EQ_INT(synth(dtype), 2);
    CHECK_EQ_INT(synth(hidden), 2);
    CHECK_EQ_INT(synth(dist), 2);
    CHECK(access(path("x.safetensors"), F_OK) != 0);
}

int main(void)
{
    char cmd[64];

    if (mkdtemp(dir) == NULL)
        return 1;
    test_gpt2_block_has_real_names_shapes_and_dtype();
    test_llama_tiny_names_shapes_and_mixed_entries();
    test_same_seed_same_hashes_in_both_formats();
    test_torch_members_are_64_byte_aligned();
    test_f16_and_bf16_encoding_round_exactly();
    test_entries_follow_the_promised_distributions();
    test_usage_errors_exit_2();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_report("test_synth");
}
