/* layers.c -- tensor selection, display names, block/role grouping
 * (docs/checkpoint-formats.md, Which tensors are analysed). See layers.h; the tensor kinds are in
 * layers_kind.c, the order and the natural sort in layers_order.c, what they share in
 * layers_int.h. Stateless, const tables only: thread-safe.
 *
 * A display name is split into its module components and its leaf (the
 * text after the last '.' or '/': PyTorch names use '.', Keras/TF/Flax names
 * '/' or '.'; a TF `:N` variable suffix is not part of the leaf). Names with
 * more than LAYER_MAX_COMPS module components are classified from their last
 * LAYER_MAX_COMPS components.
 */
#include "core/formats/layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/layers_int.h"

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

int layer__eq(const struct layer_comp *c, const char *s)
{
    return c->len == strlen(s) && memcmp(c->s, s, c->len) == 0;
}

/* Component i counted from the end of the module (0 = last), or an empty one. */
struct layer_comp layer__tail(const struct layer_name *nm, size_t i)
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

static int layer_is_sep(char c)
{
    return c == '.' || c == '/';
}

/* The leaf without a TF variable suffix `:N` (`kernel:0` is `kernel`). */
static void layer_leaf(struct layer_name *nm)
{
    const char *colon = strrchr(nm->leaf_at, ':');
    size_t len = colon != NULL ? (size_t)(colon - nm->leaf_at) : 0;

    nm->leaf = nm->leaf_at;
    if (colon == NULL || len == 0 || len >= sizeof(nm->leaf_buf) || colon[1] == '\0')
        return;
    for (const char *p = colon + 1; *p != '\0'; p++)
        if (!layer_is_digit((unsigned char)*p))
            return;
    memcpy(nm->leaf_buf, nm->leaf_at, len);
    nm->leaf_buf[len] = '\0';
    nm->leaf = nm->leaf_buf;
}

static void layer_split(const char *name, struct layer_name *nm)
{
    const char *sep = NULL;
    size_t n_total = 0, skip;
    const char *s = name;

    memset(nm, 0, sizeof(*nm));
    for (const char *p = name; *p != '\0'; p++) {
        if (layer_is_sep(*p))
            sep = p;
        nm->slash |= *p == '/';
    }
    nm->leaf_at = sep != NULL ? sep + 1 : name;
    layer_leaf(nm);
    if (sep == NULL)
        return;
    for (const char *p = name; p <= sep; p++)
        n_total += layer_is_sep(*p);
    skip = n_total > LAYER_MAX_COMPS ? n_total - LAYER_MAX_COMPS : 0;
    for (const char *p = name; p <= sep; p++) {
        if (!layer_is_sep(*p))
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

/* 1 and *val if `c` is `<kw>_<index>` for a block keyword (Keras
 * `block_3`, Flax `layers_2`). */
static int layer_kw_index(const struct layer_comp *c, int64_t *val)
{
    static const char *const kw[] = {"layers_", "blocks_", "block_", "resblocks_", "layer_"};

    for (size_t j = 0; j < sizeof(kw) / sizeof(kw[0]); j++) {
        size_t n = strlen(kw[j]);
        struct layer_comp rest = {c->s + n, c->len - n};
        if (c->len > n && memcmp(c->s, kw[j], n) == 0 && layer_index(&rest, val))
            return 1;
    }
    return 0;
}

/* Block index: the first index component after `layers`, `h`,
 * `blocks`, `block`, `resblocks`, `encoder.layer` or `decoder.layer`, or a
 * component `layers_N`, `blocks_N`, `block_N`, `resblocks_N`, `layer_N`.
 * Sets *at to its component position. Returns -1 if none. */
static int64_t layer_block(struct layer_name *nm, size_t *at)
{
    static const char *const kw[] = {"layers", "h", "blocks", "block", "resblocks"};
    int64_t v;

    for (size_t i = 0; i < nm->n_m; i++) {
        const struct layer_comp *k = i > 0 ? &nm->m[i - 1] : NULL;
        int hit = 0;

        if (layer_kw_index(&nm->m[i], &v)) {
            *at = i;
            return v;
        }
        if (k == NULL || !layer_index(&nm->m[i], &v))
            continue;
        for (size_t j = 0; j < sizeof(kw) / sizeof(kw[0]); j++)
            hit |= layer__eq(k, kw[j]);
        if (!hit && layer__eq(k, "layer") && i >= 2)
            hit = layer__eq(&nm->m[i - 2], "encoder") || layer__eq(&nm->m[i - 2], "decoder");
        if (hit) {
            nm->block_kw_h = layer__eq(k, "h");
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
        if (layer__eq(&nm->m[i - 1], "experts") && layer_index(&nm->m[i], &v))
            return v;
    return -1;
}

/* --- Matching ------------------------------------------------------------------ */

int layer__in(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return 1;
    return 0;
}

int layer__comp_in(const struct layer_comp *c, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (layer__eq(c, list[i]))
            return 1;
    return 0;
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
    struct layer_comp last = layer__tail(nm, 0), parent = layer__tail(nm, 1),
                      grand = layer__tail(nm, 2);

    if (strcmp(nm->leaf, "in_proj_weight") == 0)
        return LAYER_ROLE_ATTN_QKV; /* nn.MultiheadAttention */
    for (size_t i = 0; i < LAYER_COUNT(layer_role_rules); i++) {
        const struct layer_role_rule *r = &layer_role_rules[i];
        if (layer__eq(&last, r->last) && (r->parent == NULL || layer__eq(&parent, r->parent)) &&
            (r->grandparent == NULL || layer__eq(&grand, r->grandparent)))
            return r->role;
    }
    return LAYER_ROLE_NONE;
}

/* Heads are outside blocks: `lm_head`, `score`, `embed_out`, `classifier`
 * as the last module component, or a module that is just `output`. */
static enum layer_role layer_outside_role(const struct layer_name *nm)
{
    static const char *const heads[] = {"lm_head", "score", "embed_out", "classifier"};
    struct layer_comp last = layer__tail(nm, 0);

    if (layer__comp_in(&last, heads, LAYER_COUNT(heads)))
        return LAYER_ROLE_HEAD;
    if (nm->n_m == 1 && layer__eq(&last, "output"))
        return LAYER_ROLE_HEAD;
    return LAYER_ROLE_NONE;
}

/* --- llama.cpp (GGUF) names -------------------------------------------------------- */

/* llama.cpp's tensor names (llama-arch.cpp, LLM_TENSOR_NAMES): a block is
 * `blk.N.<tensor>.weight`, the embedding `token_embd.weight`; `output.weight`
 * (head) and the `*_norm.weight` vectors need no rule of their own. */
static const struct {
    const char *comp;
    enum layer_role role;
} layer_gguf_roles[] = {
    {"attn_q", LAYER_ROLE_ATTN_Q},       {"attn_k", LAYER_ROLE_ATTN_K},
    {"attn_v", LAYER_ROLE_ATTN_V},       {"attn_qkv", LAYER_ROLE_ATTN_QKV},
    {"attn_output", LAYER_ROLE_ATTN_O},  {"ffn_gate", LAYER_ROLE_MLP_GATE},
    {"ffn_up", LAYER_ROLE_MLP_UP},       {"ffn_down", LAYER_ROLE_MLP_DOWN},
    {"ffn_gate_inp", LAYER_ROLE_ROUTER},
};

/* Apply the llama.cpp names to a classification made by the general rules. */
static void layer_gguf_names(const struct layer_name *nm, int ndim, struct layer_info *out)
{
    struct layer_comp last = layer__tail(nm, 0);
    int64_t blk;
    char msg[LAYER_REASON_LEN];

    if (nm->n_m == 1 && layer__eq(&last, "token_embd") && out->kind == LAYER_KIND_LINEAR) {
        out->kind = LAYER_KIND_EMBEDDING;
        return;
    }
    if (nm->n_m != 3 || !layer__eq(&nm->m[0], "blk") || !layer_index(&nm->m[1], &blk))
        return;
    out->block = blk;
    if (last.len > 5 && memcmp(last.s + last.len - 5, "_exps", 5) == 0 && ndim == 3) {
        out->kind = LAYER_KIND_OTHER;
        snprintf(msg, sizeof(msg), "llama.cpp MoE expert stack '%.*s' (3-D) is not analysed",
                 (int)(last.len > 40 ? 40 : last.len), last.s);
        layer__skip(out, msg);
        return;
    }
    out->role = LAYER_ROLE_NONE;
    for (size_t i = 0; i < LAYER_COUNT(layer_gguf_roles); i++)
        if (out->kind == LAYER_KIND_LINEAR && layer__eq(&last, layer_gguf_roles[i].comp))
            out->role = layer_gguf_roles[i].role;
}

/* --- Classification -------------------------------------------------------------- */

void layer_classify(const char *name, enum dtype dtype, int ndim, const int64_t *shape,
                    struct layer_info *out)
{
    layer_classify_as(name, dtype, ndim, shape, LAYER_LAYOUT_AUTO, 0, out);
}

void layer_classify_as(const char *name, enum dtype dtype, int ndim, const int64_t *shape,
                       enum layer_layout layout, int forced, struct layer_info *out)
{
    struct layer_name nm;
    size_t block_at = 0;

    ERR_ASSERT(ndim >= 0 && ndim <= 16 && (ndim == 0 || shape != NULL));
    memset(out, 0, sizeof(*out));
    layer_split(name, &nm);
    out->module_len = nm.leaf_at == name ? 0 : (size_t)(nm.leaf_at - name - 1);
    out->block = layer_block(&nm, &block_at);
    out->expert = out->block >= 0 ? layer_expert(&nm, block_at) : -1;
    layer__kind(&nm, dtype, ndim, shape, layout, out);
    if (forced && !layer_kind_is_weight(out->kind) && ndim >= 2 && ndim <= 4) {
        /* the user's weights= selection: any 2-D..4-D tensor, kind by rank */
        out->kind = layer__kind_by_rank(ndim, layout == LAYER_LAYOUT_KERAS);
        out->analyze = 1;
        out->reason[0] = '\0';
        layer__check_extents(ndim, shape, out);
    }
    out->role = LAYER_ROLE_NONE;
    if (out->kind == LAYER_KIND_LINEAR || out->kind == LAYER_KIND_LINEAR_IO ||
        out->kind == LAYER_KIND_CONV1D_TRANSPOSED)
        out->role = out->block >= 0 ? layer_block_role(&nm) : layer_outside_role(&nm);
    layer_gguf_names(&nm, ndim, out);
    if (out->analyze && !dtype_is_analysable(dtype))
        layer__dtype_reason(dtype, out);
}

int layer_kind_is_weight(enum layer_kind k)
{
    return k == LAYER_KIND_LINEAR || k == LAYER_KIND_EMBEDDING ||
           k == LAYER_KIND_CONV1D_TRANSPOSED || k == LAYER_KIND_CONV2D || k == LAYER_KIND_CONV1D ||
           k == LAYER_KIND_LINEAR_IO || k == LAYER_KIND_CONV2D_HWIO || k == LAYER_KIND_CONV1D_WIO;
}

const char *layer_kind_layout(enum layer_kind k)
{
    ERR_ASSERT((unsigned)k < LAYER_KIND_COUNT);
    if (k == LAYER_KIND_LINEAR_IO || k == LAYER_KIND_CONV2D_HWIO || k == LAYER_KIND_CONV1D_WIO)
        return "keras";
    return layer_kind_is_weight(k) ? "torch" : "-";
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
