/* layers.c -- tensor selection, display names, block/role grouping
 * (docs/checkpoint-formats.md, Which tensors are analysed). See layers.h; the order and the natural
 * sort are in layers_order.c. Stateless, const tables only: thread-safe.
 *
 * A display name is split into its module components and its leaf (the
 * text after the last '.'). Names with more than LAYER_MAX_COMPS module
 * components are classified from their last LAYER_MAX_COMPS components.
 */
#include "core/formats/layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAYER_MAX_COMPS  64
#define LAYER_MAX_DIGITS 18 /* a block/expert index longer than this is not one */

struct layer_comp {
    const char *s; /* borrowed from the name */
    size_t len;
};

struct layer_name {                       /* a display name, split */
    struct layer_comp m[LAYER_MAX_COMPS]; /* module components */
    size_t n_m;
    const char *leaf; /* text after the last '.', or the whole name */
    int block_kw_h;   /* the block index follows `h` (GPT-2 family) */
};

static const char *const layer_kind_names[] = {
#define X(name, str) str,
    LAYER_KIND_MAP(X)
#undef X
};

static const char *const layer_role_names[] = {
#define X(name, str) str,
    LAYER_ROLE_MAP(X)
#undef X
};

/* --- Names ------------------------------------------------------------------ */

static int layer_starts(const char *s, const char *prefix, size_t *len)
{
    *len = strlen(prefix);
    return strncmp(s, prefix, *len) == 0;
}

const char *layer_strip_prefixes(const char *name, const char *model_prefix)
{
    const char *s = name;
    size_t n;

    if (model_prefix != NULL && model_prefix[0] != '\0' && layer_starts(s, model_prefix, &n) &&
        s[n] != '\0')
        s += n;
    for (;;) {
        int wrapped = layer_starts(s, "module.", &n) || layer_starts(s, "_orig_mod.", &n);
        if (!wrapped || s[n] == '\0')
            break;
        s += n;
    }
    return s;
}

static int layer_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* --- Splitting -------------------------------------------------------------- */

static int layer_eq(const struct layer_comp *c, const char *s)
{
    return c->len == strlen(s) && memcmp(c->s, s, c->len) == 0;
}

/* Component i counted from the end of the module (0 = last), or an empty one. */
static struct layer_comp layer_tail(const struct layer_name *nm, size_t i)
{
    struct layer_comp none = {"", 0};
    return i < nm->n_m ? nm->m[nm->n_m - 1 - i] : none;
}

/* 1 and *val if `c` is a decimal index of at most LAYER_MAX_DIGITS digits. */
static int layer_index(const struct layer_comp *c, int64_t *val)
{
    int64_t v = 0;

    if (c->len == 0 || c->len > LAYER_MAX_DIGITS)
        return 0;
    for (size_t i = 0; i < c->len; i++) {
        if (!layer_is_digit((unsigned char)c->s[i]))
            return 0;
        v = v * 10 + (c->s[i] - '0');
    }
    *val = v;
    return 1;
}

static void layer_split(const char *name, struct layer_name *nm)
{
    const char *dot = strrchr(name, '.');
    size_t n_total = 0, skip;
    const char *s = name;

    memset(nm, 0, sizeof(*nm));
    nm->leaf = dot != NULL ? dot + 1 : name;
    if (dot == NULL)
        return;
    for (const char *p = name; p <= dot; p++)
        n_total += *p == '.';
    skip = n_total > LAYER_MAX_COMPS ? n_total - LAYER_MAX_COMPS : 0;
    for (const char *p = name; p <= dot; p++) {
        if (*p != '.')
            continue;
        if (skip > 0) {
            skip--;
        } else {
            nm->m[nm->n_m].s = s;
            nm->m[nm->n_m].len = (size_t)(p - s);
            nm->n_m++;
        }
        s = p + 1;
    }
}

/* Block index: the first index component after `layers`, `h`,
 * `blocks`, `block`, `resblocks`, `encoder.layer` or `decoder.layer`. Sets
 * *at to its component position. Returns -1 if none. */
static int64_t layer_block(struct layer_name *nm, size_t *at)
{
    static const char *const kw[] = {"layers", "h", "blocks", "block", "resblocks"};
    int64_t v;

    for (size_t i = 1; i < nm->n_m; i++) {
        const struct layer_comp *k = &nm->m[i - 1];
        int hit = 0;

        if (!layer_index(&nm->m[i], &v))
            continue;
        for (size_t j = 0; j < sizeof(kw) / sizeof(kw[0]); j++)
            hit |= layer_eq(k, kw[j]);
        if (!hit && layer_eq(k, "layer") && i >= 2)
            hit = layer_eq(&nm->m[i - 2], "encoder") || layer_eq(&nm->m[i - 2], "decoder");
        if (hit) {
            nm->block_kw_h = layer_eq(k, "h");
            *at = i;
            return v;
        }
    }
    return -1;
}

/* MoE expert index: `experts.E` after the block index. -1 if none. */
static int64_t layer_expert(const struct layer_name *nm, size_t block_at)
{
    int64_t v;

    for (size_t i = block_at + 2; i < nm->n_m; i++)
        if (layer_eq(&nm->m[i - 1], "experts") && layer_index(&nm->m[i], &v))
            return v;
    return -1;
}

/* --- Kinds --------------------------------------------------------------------- */

static int layer_in(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return 1;
    return 0;
}

static int layer_comp_in(const struct layer_comp *c, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (layer_eq(c, list[i]))
            return 1;
    return 0;
}

#define LAYER_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int layer_is_embedding(const struct layer_name *nm)
{
    static const char *const emb[] = {"embed_tokens",
                                      "wte",
                                      "wpe",
                                      "word_embeddings",
                                      "position_embeddings",
                                      "token_type_embeddings",
                                      "tok_embeddings",
                                      "embed_positions",
                                      "embed_in"};
    struct layer_comp last = layer_tail(nm, 0);
    return layer_comp_in(&last, emb, LAYER_COUNT(emb));
}

/* HF GPT-2 Conv1D: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj in a
 * GPT-2-family name (blocks under `h`). */
static int layer_is_gpt2_conv1d(const struct layer_name *nm)
{
    struct layer_comp last = layer_tail(nm, 0), parent = layer_tail(nm, 1);

    if (!nm->block_kw_h)
        return 0;
    if (layer_eq(&parent, "attn"))
        return layer_eq(&last, "c_attn") || layer_eq(&last, "c_proj");
    if (layer_eq(&parent, "mlp"))
        return layer_eq(&last, "c_fc") || layer_eq(&last, "c_proj");
    return 0;
}

static int layer_is_mask(const char *leaf, enum dtype dtype, int ndim, const int64_t *shape)
{
    if (strcmp(leaf, "masked_bias") == 0 || strstr(leaf, "mask") != NULL)
        return 1;
    if (strcmp(leaf, "bias") == 0 && ndim >= 2)
        return 1; /* GPT-2 attn.bias (1, 1, T, T): a buffer, not a bias */
    return ndim == 4 && ((shape[0] == 1 && shape[1] == 1) || dtype == DTYPE_BOOL);
}

/* A weight leaf: `weight`, `*_weight` (in_proj_weight), or a bare name
 * without module (an .npy / .npz matrix). */
static int layer_is_weight_leaf(const struct layer_name *nm)
{
    size_t n = strlen(nm->leaf);

    if (nm->n_m == 0 || strcmp(nm->leaf, "weight") == 0)
        return 1;
    return n > 7 && strcmp(nm->leaf + n - 7, "_weight") == 0;
}

static void layer_skip(struct layer_info *out, const char *reason)
{
    out->analyze = 0;
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

/* Kind of a 0-D / 1-D tensor; never a candidate. */
static void layer_kind_small(const struct layer_name *nm, int ndim, struct layer_info *out)
{
    static const char *const biases[] = {"bias", "beta"};
    static const char *const scales[] = {"weight", "gamma"};

    if (ndim == 0) {
        out->kind = LAYER_KIND_SCALAR;
        layer_skip(out, "0-dim tensor (scalar)");
    } else if (layer_in(nm->leaf, biases, LAYER_COUNT(biases))) {
        out->kind = LAYER_KIND_BIAS;
        layer_skip(out, "1-D tensor (bias)");
    } else if (layer_in(nm->leaf, scales, LAYER_COUNT(scales))) {
        out->kind = LAYER_KIND_NORM; /* LayerNorm/RMSNorm/BatchNorm scale */
        layer_skip(out, "1-D tensor (norm)");
    } else {
        out->kind = LAYER_KIND_VECTOR;
        layer_skip(out, "1-D tensor");
    }
}

/* A PEFT LoRA factor (lora_A, lora_B, lora_embedding_A/B,
 * lora_magnitude_vector as a module component or the leaf): never a layer
 * on its own (docs/peft.md). Its name in *which. */
static int layer_is_lora(const struct layer_name *nm, const char **which)
{
    static const char *const parts[] = {"lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B",
                                        "lora_magnitude_vector"};

    for (size_t p = 0; p < LAYER_COUNT(parts); p++) {
        *which = parts[p];
        if (strcmp(nm->leaf, parts[p]) == 0)
            return 1;
        for (size_t i = 0; i < nm->n_m; i++)
            if (layer_eq(&nm->m[i], parts[p]))
                return 1;
    }
    return 0;
}

/* Kind and structural candidacy (the table in docs/checkpoint-formats.md). */
static void layer_kind(const struct layer_name *nm, enum dtype dtype, int ndim,
                       const int64_t *shape, struct layer_info *out)
{
    static const char *const stats[] = {"running_mean", "running_var", "num_batches_tracked"};
    int weight = layer_is_weight_leaf(nm);
    char msg[LAYER_REASON_LEN];
    const char *lora = NULL;

    out->analyze = 1;
    if (layer_is_lora(nm, &lora)) {
        out->kind = LAYER_KIND_OTHER;
        snprintf(msg, sizeof(msg),
                 "LoRA factor (%s), not a layer: read the adapter with its config", lora);
        layer_skip(out, msg);
    } else if (layer_in(nm->leaf, stats, LAYER_COUNT(stats))) {
        out->kind = LAYER_KIND_NORM_STAT;
        layer_skip(out, "normalisation statistic");
    } else if (layer_is_mask(nm->leaf, dtype, ndim, shape)) {
        out->kind = LAYER_KIND_MASK;
        layer_skip(out, "mask buffer");
    } else if (ndim <= 1) {
        layer_kind_small(nm, ndim, out);
    } else if (ndim == 2 && layer_is_embedding(nm)) {
        out->kind = LAYER_KIND_EMBEDDING;
    } else if (ndim == 2 && layer_is_gpt2_conv1d(nm)) {
        out->kind = LAYER_KIND_CONV1D_TRANSPOSED;
    } else if (ndim == 2 && weight) {
        out->kind = LAYER_KIND_LINEAR;
    } else if (ndim == 3 && weight) {
        out->kind = LAYER_KIND_CONV1D;
    } else if (ndim == 4 && weight) {
        out->kind = LAYER_KIND_CONV2D;
    } else {
        out->kind = LAYER_KIND_OTHER;
        snprintf(msg, sizeof(msg), "%d-D tensor '%.40s' is not a layer weight", ndim, nm->leaf);
        layer_skip(out, msg);
    }
    if (!out->analyze)
        return;
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0) {
            layer_skip(out, "zero-size tensor");
            return;
        }
    if (ndim == 2 && (shape[0] < 2 || shape[1] < 2))
        layer_skip(out, "2-D weight with a dimension < 2 (one singular value)");
}

static void layer_dtype_reason(enum dtype t, struct layer_info *out)
{
    const char *what = "is not taken by the analysis (F64, F32, F16, BF16 are)";

    switch (t) {
    case DTYPE_I64:
    case DTYPE_I32:
    case DTYPE_I16:
    case DTYPE_I8:
    case DTYPE_U64:
    case DTYPE_U32:
    case DTYPE_U16:
    case DTYPE_U8:
    case DTYPE_BOOL: what = "is not a floating-point type"; break;
    case DTYPE_C64:
    case DTYPE_C128: what = "is complex"; break;
    default: break;
    }
    out->analyze = 0;
    snprintf(out->reason, sizeof(out->reason), "dtype %s %s", dtype_name(t), what);
}

/* --- Roles ---------------------------------------------------------------------- */

struct layer_role_rule {
    const char *last;        /* last module component */
    const char *parent;      /* the one before it, or NULL for any */
    const char *grandparent; /* the one before that, or NULL for any */
    enum layer_role role;
};

/* Roles, first match wins (attention.output.dense before output.dense). */
static const struct layer_role_rule layer_role_rules[] = {
    {"q_proj", NULL, NULL, LAYER_ROLE_ATTN_Q},
    {"k_proj", NULL, NULL, LAYER_ROLE_ATTN_K},
    {"v_proj", NULL, NULL, LAYER_ROLE_ATTN_V},
    {"o_proj", NULL, NULL, LAYER_ROLE_ATTN_O},
    {"query", NULL, NULL, LAYER_ROLE_ATTN_Q},
    {"key", NULL, NULL, LAYER_ROLE_ATTN_K},
    {"value", NULL, NULL, LAYER_ROLE_ATTN_V},
    {"wq", NULL, NULL, LAYER_ROLE_ATTN_Q},
    {"wk", NULL, NULL, LAYER_ROLE_ATTN_K},
    {"wv", NULL, NULL, LAYER_ROLE_ATTN_V},
    {"to_q", NULL, NULL, LAYER_ROLE_ATTN_Q},
    {"to_k", NULL, NULL, LAYER_ROLE_ATTN_K},
    {"to_v", NULL, NULL, LAYER_ROLE_ATTN_V},
    {"q", "SelfAttention", NULL, LAYER_ROLE_ATTN_Q}, /* T5 */
    {"k", "SelfAttention", NULL, LAYER_ROLE_ATTN_K},
    {"v", "SelfAttention", NULL, LAYER_ROLE_ATTN_V},
    {"o", "SelfAttention", NULL, LAYER_ROLE_ATTN_O},
    {"q", "EncDecAttention", NULL, LAYER_ROLE_ATTN_Q},
    {"k", "EncDecAttention", NULL, LAYER_ROLE_ATTN_K},
    {"v", "EncDecAttention", NULL, LAYER_ROLE_ATTN_V},
    {"o", "EncDecAttention", NULL, LAYER_ROLE_ATTN_O},
    {"c_attn", "attn", NULL, LAYER_ROLE_ATTN_QKV}, /* GPT-2 */
    {"c_proj", "attn", NULL, LAYER_ROLE_ATTN_O},
    {"c_fc", "mlp", NULL, LAYER_ROLE_MLP_UP},
    {"c_proj", "mlp", NULL, LAYER_ROLE_MLP_DOWN},
    {"query_key_value", NULL, NULL, LAYER_ROLE_ATTN_QKV}, /* GPT-NeoX, Falcon */
    {"qkv", NULL, NULL, LAYER_ROLE_ATTN_QKV},
    {"Wqkv", NULL, NULL, LAYER_ROLE_ATTN_QKV},
    {"dense", "output", "attention", LAYER_ROLE_ATTN_O}, /* BERT */
    {"dense", "attention", NULL, LAYER_ROLE_ATTN_O},
    {"dense", "self_attention", NULL, LAYER_ROLE_ATTN_O},
    {"out_proj", NULL, NULL, LAYER_ROLE_ATTN_O},
    {"wo", "DenseReluDense", NULL, LAYER_ROLE_MLP_DOWN}, /* T5 */
    {"wo", NULL, NULL, LAYER_ROLE_ATTN_O},
    {"0", "to_out", NULL, LAYER_ROLE_ATTN_O},
    {"gate_proj", NULL, NULL, LAYER_ROLE_MLP_GATE},
    {"up_proj", NULL, NULL, LAYER_ROLE_MLP_UP},
    {"down_proj", NULL, NULL, LAYER_ROLE_MLP_DOWN},
    {"w1", NULL, NULL, LAYER_ROLE_MLP_GATE},
    {"w3", NULL, NULL, LAYER_ROLE_MLP_UP},
    {"w2", NULL, NULL, LAYER_ROLE_MLP_DOWN},
    {"wi_0", "DenseReluDense", NULL, LAYER_ROLE_MLP_GATE},
    {"wi_1", "DenseReluDense", NULL, LAYER_ROLE_MLP_UP},
    {"wi", "DenseReluDense", NULL, LAYER_ROLE_MLP_UP},
    {"fc1", NULL, NULL, LAYER_ROLE_MLP_UP},
    {"fc2", NULL, NULL, LAYER_ROLE_MLP_DOWN},
    {"dense_h_to_4h", NULL, NULL, LAYER_ROLE_MLP_UP},
    {"dense_4h_to_h", NULL, NULL, LAYER_ROLE_MLP_DOWN},
    {"dense", "intermediate", NULL, LAYER_ROLE_MLP_UP},
    {"dense", "output", NULL, LAYER_ROLE_MLP_DOWN},
    {"gate", "block_sparse_moe", NULL, LAYER_ROLE_ROUTER}, /* MoE routers */
    {"gate", "mlp", NULL, LAYER_ROLE_ROUTER},
    {"router", NULL, NULL, LAYER_ROLE_ROUTER},
};

static enum layer_role layer_block_role(const struct layer_name *nm)
{
    struct layer_comp last = layer_tail(nm, 0), parent = layer_tail(nm, 1),
                      grand = layer_tail(nm, 2);

    if (strcmp(nm->leaf, "in_proj_weight") == 0)
        return LAYER_ROLE_ATTN_QKV; /* nn.MultiheadAttention */
    for (size_t i = 0; i < LAYER_COUNT(layer_role_rules); i++) {
        const struct layer_role_rule *r = &layer_role_rules[i];
        if (layer_eq(&last, r->last) && (r->parent == NULL || layer_eq(&parent, r->parent)) &&
            (r->grandparent == NULL || layer_eq(&grand, r->grandparent)))
            return r->role;
    }
    return LAYER_ROLE_NONE;
}

/* Heads are outside blocks: `lm_head`, `score`, `embed_out`, `classifier`
 * as the last module component, or a module that is just `output`. */
static enum layer_role layer_outside_role(const struct layer_name *nm)
{
    static const char *const heads[] = {"lm_head", "score", "embed_out", "classifier"};
    struct layer_comp last = layer_tail(nm, 0);

    if (layer_comp_in(&last, heads, LAYER_COUNT(heads)))
        return LAYER_ROLE_HEAD;
    if (nm->n_m == 1 && layer_eq(&last, "output"))
        return LAYER_ROLE_HEAD;
    return LAYER_ROLE_NONE;
}

/* --- Classification -------------------------------------------------------------- */

void layer_classify(const char *name, enum dtype dtype, int ndim, const int64_t *shape,
                    struct layer_info *out)
{
    struct layer_name nm;
    size_t block_at = 0;

    ERR_ASSERT(ndim >= 0 && ndim <= 16 && (ndim == 0 || shape != NULL));
    memset(out, 0, sizeof(*out));
    layer_split(name, &nm);
    out->module_len = nm.leaf == name ? 0 : (size_t)(nm.leaf - name - 1);
    out->block = layer_block(&nm, &block_at);
    out->expert = out->block >= 0 ? layer_expert(&nm, block_at) : -1;
    layer_kind(&nm, dtype, ndim, shape, out);
    out->role = LAYER_ROLE_NONE;
    if (out->kind == LAYER_KIND_LINEAR || out->kind == LAYER_KIND_CONV1D_TRANSPOSED)
        out->role = out->block >= 0 ? layer_block_role(&nm) : layer_outside_role(&nm);
    if (out->analyze && !dtype_is_analysable(dtype))
        layer_dtype_reason(dtype, out);
}

int layer_kind_is_weight(enum layer_kind k)
{
    return k == LAYER_KIND_LINEAR || k == LAYER_KIND_EMBEDDING ||
           k == LAYER_KIND_CONV1D_TRANSPOSED || k == LAYER_KIND_CONV2D || k == LAYER_KIND_CONV1D;
}

const char *layer_kind_name(enum layer_kind k)
{
    ERR_ASSERT((unsigned)k < LAYER_KIND_COUNT);
    return layer_kind_names[k];
}

const char *layer_role_name(enum layer_role r)
{
    ERR_ASSERT((unsigned)r < LAYER_ROLE_COUNT);
    return layer_role_names[r];
}

int layer_kind_from_name(const char *s)
{
    for (int k = 0; k < LAYER_KIND_COUNT; k++)
        if (strcmp(s, layer_kind_names[k]) == 0)
            return k;
    return -1;
}

int layer_role_from_name(const char *s)
{
    for (int r = 0; r < LAYER_ROLE_COUNT; r++)
        if (strcmp(s, layer_role_names[r]) == 0)
            return r;
    return -1;
}
