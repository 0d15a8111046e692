/* analysis.c -- see analysis.h. */
#include "core/analysis.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/numerics/lowrank.h"

/* --- Selection ----------------------------------------------------------- */

int analysis_select(const struct analysis_tensor *t, const struct farms_params *p,
                    struct layer_info *info, char *why, size_t why_len)
{
    layer_classify(t->name, t->dtype, t->ndim, t->shape, info);
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
    if (info->kind == LAYER_KIND_EMBEDDING && !p->include_embeddings) {
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

void analysis_layout_of(enum layer_kind kind, const struct analysis_tensor *t,
                        struct analysis_layout *out)
{
    *out = (struct analysis_layout){
        .kind = FARMS_KIND_DENSE,
        .n_dims = 2,
        .shape = {t->ndim > 0 ? t->shape[0] : 1, t->ndim > 1 ? t->shape[1] : 1, 1, 1},
        .transpose = 0,
    };
    if (kind == LAYER_KIND_CONV1D_TRANSPOSED) {
        /* GPT-2 Conv1D stores (in, out): analyse (out, in) like nn.Linear. */
        out->shape[0] = t->shape[1];
        out->shape[1] = t->shape[0];
        out->transpose = 1;
    } else if (kind == LAYER_KIND_CONV2D || kind == LAYER_KIND_CONV1D) {
        out->kind = FARMS_KIND_CONV2D;
        out->n_dims = 4;
        for (int d = 0; d < 4; d++)
            out->shape[d] =
                d < t->ndim ? t->shape[d] : 1; /* conv1d (out, in, k) = (out, in, k, 1) */
    }
}

enum err_code analysis_matrix_new(const struct analysis_tensor *t, const struct analysis_layout *l,
                                  const void *data, double **out, struct err *e)
{
    size_t n = (size_t)t->n_elems;
    double *m = malloc((n > 0 ? n : 1) * sizeof(*m));
    double *tr = NULL;
    int64_t r = l->shape[1], k = l->shape[0]; /* stored (r, k), analysed (k, r) */

    *out = NULL;
    if (m == NULL)
        return err_set(e, ERR_NOMEM, "tensor '%s': out of memory for %llu values", t->name,
                       (unsigned long long)t->n_elems);
    dtype_to_f64(t->dtype, data, n, m);
    if (!l->transpose) {
        *out = m;
        return ERR_OK;
    }
    tr = malloc((n > 0 ? n : 1) * sizeof(*tr));
    if (tr == NULL) {
        free(m);
        return err_set(e, ERR_NOMEM, "tensor '%s': out of memory", t->name);
    }
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < k; j++)
            tr[j * r + i] = m[i * k + j];
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
