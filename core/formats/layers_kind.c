/* layers_kind.c -- a tensor's kind and structural candidacy (docs/checkpoint-formats.md, Which
 * tensors are analysed: the table of kinds), from its split display name, dtype and shape, and the
 * reason a tensor is not a candidate. See layers.h and layers_int.h. Stateless, const tables
 * only: thread-safe.
 */
#include <stdio.h>
#include <string.h>

#include "core/formats/layers_int.h"

/* --- Kinds --------------------------------------------------------------------- */


/* Embedding tables: by module (PyTorch/HF names) or by leaf (Keras
 * `embeddings`, Flax `nn.Embed`'s `embedding`); all are (vocab, d). */
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
    static const char *const leaves[] = {"embeddings", "embedding"};
    struct layer_comp last = layer__tail(nm, 0);
    return layer__comp_in(&last, emb, LAYER_COUNT(emb)) ||
           layer__in(nm->leaf, leaves, LAYER_COUNT(leaves));
}

/* A Keras/TF/Flax weight leaf: `kernel`, `filters`, or `weights` in a
 * `/`-separated name (TF-slim); stored (in, out) / (kh, kw, in, out). */
static int layer_is_keras_leaf(const struct layer_name *nm)
{
    return strcmp(nm->leaf, "kernel") == 0 || strcmp(nm->leaf, "filters") == 0 ||
           (nm->slash && strcmp(nm->leaf, "weights") == 0);
}

/* HF GPT-2 Conv1D: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj in a
 * GPT-2-family name (blocks under `h`). */
static int layer_is_gpt2_conv1d(const struct layer_name *nm)
{
    struct layer_comp last = layer__tail(nm, 0), parent = layer__tail(nm, 1);

    if (!nm->block_kw_h)
        return 0;
    if (layer__eq(&parent, "attn"))
        return layer__eq(&last, "c_attn") || layer__eq(&last, "c_proj");
    if (layer__eq(&parent, "mlp"))
        return layer__eq(&last, "c_fc") || layer__eq(&last, "c_proj");
    return 0;
}

/* `keras`: a Keras leaf, whose (1, 1, in, out) is a 1x1 conv kernel, not a mask. */
static int layer_is_mask(const char *leaf, int keras, enum dtype dtype, int ndim,
                         const int64_t *shape)
{
    if (strcmp(leaf, "masked_bias") == 0 || strstr(leaf, "mask") != NULL)
        return 1;
    if (strcmp(leaf, "bias") == 0 && ndim >= 2)
        return 1; /* GPT-2 attn.bias (1, 1, T, T): a buffer, not a bias */
    return ndim == 4 && ((!keras && shape[0] == 1 && shape[1] == 1) || dtype == DTYPE_BOOL);
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

void layer__skip(struct layer_info *out, const char *reason)
{
    out->analyze = 0;
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

/* Kind of a 0-D / 1-D tensor; never a candidate. */
static void layer_kind_small(const struct layer_name *nm, int ndim, struct layer_info *out)
{
    static const char *const biases[] = {"bias", "beta"};
    static const char *const scales[] = {"weight", "gamma", "scale"};

    if (ndim == 0) {
        out->kind = LAYER_KIND_SCALAR;
        layer__skip(out, "0-dim tensor (scalar)");
    } else if (layer__in(nm->leaf, biases, LAYER_COUNT(biases))) {
        out->kind = LAYER_KIND_BIAS;
        layer__skip(out, "1-D tensor (bias)");
    } else if (layer__in(nm->leaf, scales, LAYER_COUNT(scales))) {
        out->kind = LAYER_KIND_NORM; /* LayerNorm/RMSNorm/BatchNorm scale */
        layer__skip(out, "1-D tensor (norm)");
    } else {
        out->kind = LAYER_KIND_VECTOR;
        layer__skip(out, "1-D tensor");
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
            if (layer__eq(&nm->m[i], parts[p]))
                return 1;
    }
    return 0;
}

/* The weight kind of a 2-D..4-D tensor by its rank, in the PyTorch or the
 * Keras (`io`) reading. */
enum layer_kind layer__kind_by_rank(int ndim, int io)
{
    if (ndim == 2)
        return io ? LAYER_KIND_LINEAR_IO : LAYER_KIND_LINEAR;
    if (ndim == 3)
        return io ? LAYER_KIND_CONV1D_WIO : LAYER_KIND_CONV1D;
    return io ? LAYER_KIND_CONV2D_HWIO : LAYER_KIND_CONV2D;
}

/* The structural checks of a candidate weight: no zero extent, a 2-D
 * weight with both dimensions >= 2. */
void layer__check_extents(int ndim, const int64_t *shape, struct layer_info *out)
{
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0) {
            layer__skip(out, "zero-size tensor");
            return;
        }
    if (ndim == 2 && (shape[0] < 2 || shape[1] < 2))
        layer__skip(out, "2-D weight with a dimension < 2 (one singular value)");
}

/* Kind and structural candidacy (the table in docs/checkpoint-formats.md),
 * under layout rule `layout`. */
void layer__kind(const struct layer_name *nm, enum dtype dtype, int ndim, const int64_t *shape,
                 enum layer_layout layout, struct layer_info *out)
{
    static const char *const stats[] = {"running_mean", "running_var", "num_batches_tracked",
                                        "moving_mean", "moving_variance"};
    int keras = layer_is_keras_leaf(nm), weight = keras || layer_is_weight_leaf(nm);
    int io = layout == LAYER_LAYOUT_KERAS || (layout == LAYER_LAYOUT_AUTO && keras);
    char msg[LAYER_REASON_LEN];
    const char *lora = NULL;

    out->analyze = 1;
    if (layer_is_lora(nm, &lora)) {
        out->kind = LAYER_KIND_OTHER;
        snprintf(msg, sizeof(msg),
                 "LoRA factor (%s), not a layer: read the adapter with its config", lora);
        layer__skip(out, msg);
    } else if (layer__in(nm->leaf, stats, LAYER_COUNT(stats))) {
        out->kind = LAYER_KIND_NORM_STAT;
        layer__skip(out, "normalisation statistic");
    } else if (layer_is_mask(nm->leaf, keras, dtype, ndim, shape)) {
        out->kind = LAYER_KIND_MASK;
        layer__skip(out, "mask buffer");
    } else if (ndim <= 1) {
        layer_kind_small(nm, ndim, out);
    } else if (ndim == 2 && layer_is_embedding(nm)) {
        out->kind = LAYER_KIND_EMBEDDING;
    } else if (ndim == 2 && layer_is_gpt2_conv1d(nm)) {
        out->kind = LAYER_KIND_CONV1D_TRANSPOSED;
    } else if (ndim <= 4 && weight) {
        out->kind = layer__kind_by_rank(ndim, io);
    } else {
        out->kind = LAYER_KIND_OTHER;
        snprintf(msg, sizeof(msg), "%d-D tensor '%.40s' is not a layer weight", ndim, nm->leaf);
        layer__skip(out, msg);
    }
    if (out->analyze)
        layer__check_extents(ndim, shape, out);
}

void layer__dtype_reason(enum dtype t, struct layer_info *out)
{
    const char *what = "is not taken by the analysis (F64, F32, F16, BF16 are)";

    if (dtype_is_ggml(t)) { /* a ggml type farmsd lists but does not decode */
        out->analyze = 0;
        snprintf(out->reason, sizeof(out->reason), "GGUF type %s is not dequantized",
                 dtype_name(t));
        return;
    }
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
