/* analysis.c -- see analysis.h. */
#include "core/analysis.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/numerics/esd.h"
#include "core/numerics/lowrank.h"

/* --- Selection ----------------------------------------------------------- */

static enum layer_layout analysis_layout_rule(enum farms_tensor_layout l)
{
    switch (l) {
    case FARMS_TENSOR_LAYOUT_TORCH: return LAYER_LAYOUT_TORCH;
    case FARMS_TENSOR_LAYOUT_KERAS: return LAYER_LAYOUT_KERAS;
    case FARMS_TENSOR_LAYOUT_AUTO: break;
    }
    return LAYER_LAYOUT_AUTO;
}

int analysis_select(const struct analysis_tensor *t, const struct farms_params *p,
                    struct layer_info *info, char *why, size_t why_len)
{
    layer_classify_as(t->name, t->dtype, t->ndim, t->shape, analysis_layout_rule(p->tensor_layout),
                      t->forced, info);
    if (t->alias_of != NULL) {
        snprintf(why, why_len, "same tensor as '%.100s' (shared storage), analysed once",
                 t->alias_of);
        return 0;
    }
    if (!info->analyze) {
        snprintf(why, why_len, "%s", info->reason);
        return 0;
    }
    if (!layer_kind_is_weight(info->kind)) {
        snprintf(why, why_len, "%s tensors are not analysed", layer_kind_name(info->kind));
        return 0;
    }
    if (info->kind == LAYER_KIND_EMBEDDING && !p->include_embeddings && !t->forced) {
        snprintf(why, why_len, "%s",
                 "embedding table: not analysed by this preset (set include_embeddings=true)");
        return 0;
    }
    if (why_len > 0)
        why[0] = '\0';
    return 1;
}

enum err_code analysis_lora_reason(const struct peft_module_info *m, const double *a,
                                   const double *b, char *why, size_t why_len, struct err *e)
{
    double norm = 0.0;
    enum err_code rc = lowrank_norm2(m->rows, m->cols, m->rank, b, a, m->scale, &norm, e);

    if (rc)
        return rc;
    snprintf(why, why_len, "%s adapter, rank %lld, ||s*B*A||_2 = %.4g: %s",
             m->dora ? "DoRA" : "LoRA", (long long)m->rank, norm,
             m->dora ? "not fitted (DoRA adapters are not merged)"
                     : "not fitted without a base checkpoint (--base)");
    return ERR_OK;
}

/* --- Layout -------------------------------------------------------------- */

/* Keras/TF stored orders: FARMS dimension d is stored dimension src[d]. */
static const int analysis_src_io[4] = {1, 0, -1, -1}; /* (in, out) -> (out, in) */
static const int analysis_src_hwio[4] = {3, 2, 0, 1}; /* (kh, kw, in, out) */
static const int analysis_src_wio[4] = {2, 1, 0, -1}; /* (k, in, out) -> (out, in, k, 1) */
static const int analysis_src_same[4] = {0, 1, 2, 3};

void analysis_layout_of(enum layer_kind kind, const struct analysis_tensor *t,
                        struct analysis_layout *out)
{
    const int *src = analysis_src_same;
    int conv = 0;

    switch (kind) {
    case LAYER_KIND_CONV1D_TRANSPOSED: /* GPT-2 Conv1D stores (in, out) */
    case LAYER_KIND_LINEAR_IO: src = analysis_src_io; break;
    case LAYER_KIND_CONV2D_HWIO:
        src = analysis_src_hwio;
        conv = 1;
        break;
    case LAYER_KIND_CONV1D_WIO:
        src = analysis_src_wio;
        conv = 1;
        break;
    case LAYER_KIND_CONV2D:
    case LAYER_KIND_CONV1D: conv = 1; break; /* conv1d (out, in, k) = (out, in, k, 1) */
    default: break;
    }
    *out = (struct analysis_layout){
        .kind = conv ? FARMS_KIND_CONV2D : FARMS_KIND_DENSE,
        .n_dims = conv ? 4 : 2,
        .transpose = src != analysis_src_same,
    };
    for (int d = 0; d < 4; d++) {
        int s = src[d];
        out->src[d] = s >= 0 && s < t->ndim ? s : -1;
        out->shape[d] = out->src[d] >= 0 ? t->shape[out->src[d]] : 1;
    }
}

/* Move the values of m (stored row-major in t's shape) into tr, row-major in
 * l's shape: tr[o0, o1, o2, o3] = m[stored index with dim src[d] = od]. */
static void analysis_permute(const struct analysis_tensor *t, const struct analysis_layout *l,
                             const double *m, double *tr)
{
    int64_t stride[4] = {0, 0, 0, 0}, st[4], run = 1;
    size_t at = 0;

    for (int d = t->ndim - 1; d >= 0; d--) {
        if (d < 4)
            stride[d] = run;
        run *= t->shape[d];
    }
    for (int d = 0; d < 4; d++)
        st[d] = l->src[d] >= 0 ? stride[l->src[d]] : 0;
    for (int64_t a = 0; a < l->shape[0]; a++)
        for (int64_t b = 0; b < l->shape[1]; b++)
            for (int64_t c = 0; c < l->shape[2]; c++)
                for (int64_t d = 0; d < l->shape[3]; d++)
                    tr[at++] = m[a * st[0] + b * st[1] + c * st[2] + d * st[3]];
}


enum err_code analysis_matrix_new(const struct analysis_tensor *t, const struct analysis_layout *l,
                                  const void *data, double **out, struct err *e)
{
    size_t n = (size_t)t->n_elems;
    double *m = esd_f64_alloc(n);
    double *tr = NULL;

    *out = NULL;
    if (m == NULL)
        return err_set(e, ERR_NOMEM, "tensor '%s': out of memory for %llu values", t->name,
                       (unsigned long long)t->n_elems);
    dtype_to_f64(t->dtype, data, n, m);
    if (!l->transpose) {
        *out = m;
        return ERR_OK;
    }
    tr = esd_f64_alloc(n);
    if (tr == NULL) {
        free(m);
        return err_set(e, ERR_NOMEM, "tensor '%s': out of memory", t->name);
    }
    analysis_permute(t, l, m, tr);
    free(m);
    *out = tr;
    return ERR_OK;
}

/* --- Identity ------------------------------------------------------------ */

void analysis_key(enum layer_kind kind, const struct analysis_tensor *t, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "%s %s ", layer_kind_name(kind), dtype_name(t->dtype));

    for (int d = 0; d < t->ndim && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", d ? "x" : "",
                                 (long long)t->shape[d]);
}

/* --- Cost ----------------------------------------------------------------- */

void analysis_estimate(enum layer_kind kind, const struct analysis_tensor *t, uint64_t nbytes,
                       const struct farms_params *p, unsigned n_workers,
                       struct analysis_estimate *out)
{
    struct analysis_layout lay;
    struct farms_shape shape;
    struct farms_plan *plan = NULL;
    double rows, cols;
    int64_t max_n = 0, max_gather = 0;
    uint64_t f64 = t->n_elems * (uint64_t)sizeof(double);

    analysis_layout_of(kind, t, &lay);
    rows = (double)lay.shape[0];
    cols = lay.n_dims == 4 ? (double)lay.shape[1] * (double)lay.shape[2] * (double)lay.shape[3]
                           : (double)lay.shape[1];
    out->cost = rows * cols * (rows < cols ? rows : cols);
    if (p->randomize) /* every eigenproblem once more, on the randomized copy */
        out->cost *= 2;
    out->mem_bytes = nbytes + (lay.transpose ? 2 * f64 : f64);
    shape = (struct farms_shape){.kind = lay.kind, .n_dims = lay.n_dims, .shape = lay.shape};
    if (farms_plan_new(p, &shape, (int)n_workers, &plan, NULL) != ERR_OK)
        return;
    farms_plan_ws_need(plan, &max_n, &max_gather);
    out->mem_bytes += (uint64_t)n_workers * esd_ws_bytes(max_n, max_gather);
    farms_plan_free(plan);
}
