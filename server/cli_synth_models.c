/* cli_synth_models.c -- the tensor lists of `farmsd synth`: real model
 * shapes (LLaMA-7B, GPT-2 small, a ResNet-50-like CNN) with their usual
 * state-dict names, and the seeded entries written into them.
 *
 * Entries: weight matrices and convolutions are N(0,1)/sqrt(fan_in)
 * ("gaussian") or Student-t with 3 degrees of freedom scaled to unit
 * variance, /sqrt(fan_in) ("heavy"), fan_in = product of every dimension but
 * the first; 1-D weights and running variances are 1 + 0.02 N(0,1), other
 * 1-D tensors 0.02 N(0,1). Every tensor has its own xoshiro256** stream
 * seeded from (seed, name), so a tensor's values depend only on the seed,
 * its name and its shape: the same weights in any format, file or block
 * count. Single-threaded; no shared state.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cli_synth.h"

/* --- Tensor lists ------------------------------------------------------------ */

static enum err_code cli_synth_add(struct cli_synth_model *m, const char *name, int ndim,
                                   const int64_t *shape, struct err *e)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct st_wtensor *t = realloc(m->t, cap * sizeof(*t));
        if (t == NULL)
            return err_set(e, ERR_NOMEM, "out of memory");
        m->t = t;
        char(*names)[CLI_SYNTH_NAME_MAX] = realloc(m->names, cap * sizeof(*names));
        if (names == NULL)
            return err_set(e, ERR_NOMEM, "out of memory");
        m->names = names;
        m->cap = cap;
    }
    snprintf(m->names[m->n], CLI_SYNTH_NAME_MAX, "%s", name);
    memset(&m->t[m->n], 0, sizeof(m->t[m->n]));
    m->t[m->n].dtype = m->dtype;
    m->t[m->n].ndim = ndim;
    for (int d = 0; d < ndim; d++)
        m->t[m->n].shape[d] = shape[d];
    m->n++;
    return ERR_OK;
}

#define CLI_SYNTH_ADD(m, e, name, ...)                                                    \
    cli_synth_add((m), (name), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                  (int64_t[]){__VA_ARGS__}, (e))

/* LLaMA: 7 matrices per block (q, k, v, o hidden x hidden; gate, up ffn x
 * hidden; down hidden x ffn). llama7b: 4096, 11008, vocabulary 32000;
 * llama-tiny: 64, 172 (LLaMA's ffn/hidden ratio), vocabulary 256. */
static enum err_code cli_synth_llama(struct cli_synth_model *m, int tiny, struct err *e)
{
    static const char *const attn[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    int64_t h = m->hidden > 0 ? m->hidden : tiny ? 64 : 4096;
    int64_t f = m->ffn > 0 ? m->ffn : tiny ? 172 : 11008, vocab = tiny ? 256 : 32000;
    enum err_code rc = ERR_OK;
    char nm[CLI_SYNTH_NAME_MAX];

    if (m->embeddings)
        rc = CLI_SYNTH_ADD(m, e, "model.embed_tokens.weight", vocab, h);
    for (int b = 0; b < m->blocks && rc == ERR_OK; b++) {
        for (int k = 0; k < 4 && rc == ERR_OK; k++) {
            snprintf(nm, sizeof(nm), "model.layers.%d.self_attn.%s.weight", b, attn[k]);
            rc = CLI_SYNTH_ADD(m, e, nm, h, h);
        }
        snprintf(nm, sizeof(nm), "model.layers.%d.mlp.gate_proj.weight", b);
        rc = rc ? rc : CLI_SYNTH_ADD(m, e, nm, f, h);
        snprintf(nm, sizeof(nm), "model.layers.%d.mlp.up_proj.weight", b);
        rc = rc ? rc : CLI_SYNTH_ADD(m, e, nm, f, h);
        snprintf(nm, sizeof(nm), "model.layers.%d.mlp.down_proj.weight", b);
        rc = rc ? rc : CLI_SYNTH_ADD(m, e, nm, h, f);
        snprintf(nm, sizeof(nm), "model.layers.%d.input_layernorm.weight", b);
        rc = rc ? rc : CLI_SYNTH_ADD(m, e, nm, h);
        snprintf(nm, sizeof(nm), "model.layers.%d.post_attention_layernorm.weight", b);
        rc = rc ? rc : CLI_SYNTH_ADD(m, e, nm, h);
    }
    rc = rc ? rc : CLI_SYNTH_ADD(m, e, "model.norm.weight", h);
    if (m->embeddings)
        rc = rc ? rc : CLI_SYNTH_ADD(m, e, "lm_head.weight", vocab, h);
    return rc;
}

/* GPT-2 small: Conv1D weights stored (in, out); lm_head is tied to wte. */
static enum err_code cli_synth_gpt2(struct cli_synth_model *m, struct err *e)
{
    static const struct {
        const char *name;
        int ndim;
        int64_t shape[2];
    } blk[] = {{"ln_1.weight", 1, {768}},
               {"ln_1.bias", 1, {768}},
               {"attn.c_attn.weight", 2, {768, 2304}},
               {"attn.c_attn.bias", 1, {2304}},
               {"attn.c_proj.weight", 2, {768, 768}},
               {"attn.c_proj.bias", 1, {768}},
               {"ln_2.weight", 1, {768}},
               {"ln_2.bias", 1, {768}},
               {"mlp.c_fc.weight", 2, {768, 3072}},
               {"mlp.c_fc.bias", 1, {3072}},
               {"mlp.c_proj.weight", 2, {3072, 768}},
               {"mlp.c_proj.bias", 1, {768}}};
    enum err_code rc = ERR_OK;
    char nm[CLI_SYNTH_NAME_MAX];

    if (m->embeddings) {
        rc = CLI_SYNTH_ADD(m, e, "transformer.wte.weight", 50257, 768);
        rc = rc ? rc : CLI_SYNTH_ADD(m, e, "transformer.wpe.weight", 1024, 768);
    }
    for (int b = 0; b < m->blocks && rc == ERR_OK; b++)
        for (size_t k = 0; k < sizeof(blk) / sizeof(blk[0]) && rc == ERR_OK; k++) {
            snprintf(nm, sizeof(nm), "transformer.h.%d.%s", b, blk[k].name);
            rc = cli_synth_add(m, nm, blk[k].ndim, blk[k].shape, e);
        }
    rc = rc ? rc : CLI_SYNTH_ADD(m, e, "transformer.ln_f.weight", 768);
    return rc ? rc : CLI_SYNTH_ADD(m, e, "transformer.ln_f.bias", 768);
}

static enum err_code cli_synth_bn(struct cli_synth_model *m, const char *prefix, int64_t c,
                                  struct err *e)
{
    static const char *const parts[] = {"weight", "bias", "running_mean", "running_var"};
    enum err_code rc = ERR_OK;
    char nm[CLI_SYNTH_NAME_MAX];

    for (int k = 0; k < 4 && rc == ERR_OK; k++) {
        snprintf(nm, sizeof(nm), "%s.%s", prefix, parts[k]);
        rc = cli_synth_add(m, nm, 1, &c, e);
    }
    return rc;
}

/* ResNet-50 (torchvision names): stem, bottlenecks of stages 3-4-6-3 (the
 * first `blocks` of them), fc. */
static enum err_code cli_synth_resnet(struct cli_synth_model *m, struct err *e)
{
    static const int depth[4] = {3, 4, 6, 3};
    enum err_code rc = CLI_SYNTH_ADD(m, e, "conv1.weight", 64, 3, 7, 7);
    int64_t in = 64;
    int done = 0;
    char nm[CLI_SYNTH_NAME_MAX], pre[CLI_SYNTH_NAME_MAX];

    rc = rc ? rc : cli_synth_bn(m, "bn1", 64, e);
    for (int s = 0; s < 4 && done < m->blocks && rc == ERR_OK; s++) {
        int64_t w = 64 << s;
        for (int b = 0; b < depth[s] && done < m->blocks && rc == ERR_OK; b++, done++) {
            const int64_t shapes[3][4] = {{w, in, 1, 1}, {w, w, 3, 3}, {4 * w, w, 1, 1}};
            for (int k = 0; k < 3 && rc == ERR_OK; k++) {
                snprintf(nm, sizeof(nm), "layer%d.%d.conv%d.weight", s + 1, b, k + 1);
                snprintf(pre, sizeof(pre), "layer%d.%d.bn%d", s + 1, b, k + 1);
                rc = cli_synth_add(m, nm, 4, shapes[k], e);
                rc = rc ? rc : cli_synth_bn(m, pre, shapes[k][0], e);
            }
            if (b == 0 && rc == ERR_OK) {
                snprintf(nm, sizeof(nm), "layer%d.0.downsample.0.weight", s + 1);
                snprintf(pre, sizeof(pre), "layer%d.0.downsample.1", s + 1);
                rc = CLI_SYNTH_ADD(m, e, nm, 4 * w, in, 1, 1);
                rc = rc ? rc : cli_synth_bn(m, pre, 4 * w, e);
            }
            in = 4 * w;
        }
    }
    rc = rc ? rc : CLI_SYNTH_ADD(m, e, "fc.weight", 1000, in);
    return rc ? rc : CLI_SYNTH_ADD(m, e, "fc.bias", 1000);
}

enum err_code cli_synth_model_build(struct cli_synth_model *m, struct err *e)
{
    enum err_code rc;

    if (strcmp(m->model, "llama7b") == 0)
        rc = cli_synth_llama(m, 0, e);
    else if (strcmp(m->model, "llama-tiny") == 0)
        rc = cli_synth_llama(m, 1, e);
    else if (strcmp(m->model, "gpt2-small") == 0)
        rc = cli_synth_gpt2(m, e);
    else if (strcmp(m->model, "resnet") == 0)
        rc = cli_synth_resnet(m, e);
    else
        return err_set(e, ERR_INVAL, "unknown model '%s' (llama7b, llama-tiny, gpt2-small, resnet)",
                       m->model);
    for (size_t i = 0; rc == ERR_OK && i < m->n; i++)
        m->t[i].name = m->names[i]; /* names moved with realloc: point at them only now */
    return rc;
}

int cli_synth_default_blocks(const char *model)
{
    if (strcmp(model, "llama7b") == 0 || strcmp(model, "llama-tiny") == 0)
        return 32;
    if (strcmp(model, "gpt2-small") == 0)
        return 12;
    return 16; /* resnet: 3 + 4 + 6 + 3 bottlenecks */
}

void cli_synth_model_free(struct cli_synth_model *m)
{
    free(m->t);
    free(m->names);
    m->t = NULL;
    m->names = NULL;
    m->n = m->cap = 0;
}

/* --- Entries ------------------------------------------------------------------- */

static uint64_t cli_synth_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t cli_synth_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t cli_synth_next(struct cli_synth_gen *g)
{
    uint64_t *s = g->s, r = cli_synth_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = cli_synth_rotl(s[3], 45);
    return r;
}

void cli_synth_gen_init(struct cli_synth_gen *g, uint64_t seed, int heavy,
                        const struct st_wtensor *t)
{
    uint64_t h = 0xcbf29ce484222325ull, x; /* FNV-1a of the name */
    size_t len = strlen(t->name);
    double fan_in = 1.0;

    for (const char *p = t->name; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    x = seed ^ cli_synth_splitmix(&h);
    for (int k = 0; k < 4; k++)
        g->s[k] = cli_synth_splitmix(&x);
    g->heavy = heavy == 2 ? (int)(cli_synth_splitmix(&x) >> 63) : heavy;
    g->have_spare = 0;
    for (int d = 1; d < t->ndim; d++)
        fan_in *= (double)t->shape[d];
    if (t->ndim >= 2) {
        g->scale = (float)(1.0 / sqrt(fan_in));
        g->offset = 0.0f;
    } else {
        int unit = (len >= 6 && strcmp(t->name + len - 6, "weight") == 0) ||
                   (len >= 11 && strcmp(t->name + len - 11, "running_var") == 0);
        g->scale = 0.02f;
        g->offset = unit ? 1.0f : 0.0f;
        g->heavy = 0;
    }
}

/* One N(0,1) value: Marsaglia's polar method on 32-bit uniforms in (-1, 1),
 * the second value of each pair kept for the next call. */
static float cli_synth_normal(struct cli_synth_gen *g)
{
    float u, v, q, f;

    if (g->have_spare) {
        g->have_spare = 0;
        return g->spare;
    }
    do {
        uint64_t r = cli_synth_next(g);
        u = (float)(int32_t)(uint32_t)r * 0x1.0p-31f;
        v = (float)(int32_t)(uint32_t)(r >> 32) * 0x1.0p-31f;
        q = u * u + v * v;
    } while (q >= 1.0f || q == 0.0f);
    f = sqrtf(-2.0f * logf(q) / q);
    g->spare = v * f;
    g->have_spare = 1;
    return u * f;
}

void cli_synth_fill(struct cli_synth_gen *g, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float z = cli_synth_normal(g);
        if (g->heavy) { /* t_3 / sqrt(3) = Z / sqrt(chi2_3) */
            float a = cli_synth_normal(g), b = cli_synth_normal(g), c = cli_synth_normal(g);
            z /= sqrtf(a * a + b * b + c * c);
        }
        out[i] = g->offset + g->scale * z;
    }
}

/* float -> IEEE binary16, round to nearest even (overflow to infinity). */
static uint16_t cli_synth_f16(float f)
{
    uint32_t x, sign, mant;
    int32_t ex;

    memcpy(&x, &f, 4);
    sign = (x >> 16) & 0x8000u;
    ex = (int32_t)((x >> 23) & 0xFF) - 127 + 15;
    mant = x & 0x7FFFFFu;
    if (((x >> 23) & 0xFF) == 0xFF) /* inf, nan */
        return (uint16_t)(sign | 0x7C00u | (mant ? 0x200u : 0));
    if (ex >= 31)
        return (uint16_t)(sign | 0x7C00u);
    if (ex <= 0) { /* subnormal or zero */
        if (ex < -10)
            return (uint16_t)sign;
        mant |= 0x800000u;
        int shift = 14 - ex;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)ex << 10) | (mant >> 13), rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* may carry into the exponent, up to infinity: still correct */
    return (uint16_t)(sign | h);
}

static uint16_t cli_synth_bf16(float f)
{
    uint32_t x;

    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    x += 0x7FFFu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

void cli_synth_encode(enum dtype t, const float *src, size_t n, unsigned char *dst)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        switch (t) {
        case DTYPE_F16:
            v = cli_synth_f16(src[i]);
            dst[2 * i] = (unsigned char)v;
            dst[2 * i + 1] = (unsigned char)(v >> 8);
            break;
        case DTYPE_BF16:
            v = cli_synth_bf16(src[i]);
            dst[2 * i] = (unsigned char)v;
            dst[2 * i + 1] = (unsigned char)(v >> 8);
            break;
        default: /* F32 */
            memcpy(&v, &src[i], 4);
            for (int k = 0; k < 4; k++)
                dst[4 * i + (size_t)k] = (unsigned char)(v >> (8 * k));
            break;
        }
    }
}
