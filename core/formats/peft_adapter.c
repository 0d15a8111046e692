/* peft_adapter.c -- an adapter's files, keys and modules (see peft_int.h;
 * docs/peft.md). Keys follow peft v0.20.0's get_peft_model_state_dict:
 *   base_model.model.<module>.lora_A[.<adapter>].weight      (r, in)
 *   base_model.model.<module>.lora_B[.<adapter>].weight      (out, r)
 *   base_model.model.<module>.lora_embedding_A[.<adapter>]   (r, vocab)
 *   base_model.model.<module>.lora_embedding_B[.<adapter>]   (dim, r)
 *   base_model.model.<module>.lora_magnitude_vector[...]     DoRA
 *   base_model.model.<module>.base_layer.weight              saved embedding (ignored)
 *   base_model.model.<name> (no lora_ part)                  modules_to_save copy
 */
#include "core/formats/peft_int.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PEFT_PREFIX "base_model.model."

enum peft_part { PEFT_A, PEFT_B, PEFT_EMB_A, PEFT_EMB_B, PEFT_MAG, PEFT_SKIP, PEFT_COPY };

/* --- Files ---------------------------------------------------------------- */

static char *peft_join(const char *dir, size_t dir_len, const char *name)
{
    size_t n = strlen(name);
    char *p = malloc(dir_len + n + 2);

    if (p == NULL)
        return NULL;
    memcpy(p, dir, dir_len);
    p[dir_len] = '/';
    memcpy(p + dir_len + 1, name, n + 1);
    return p;
}

static int peft_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The config and weights paths of the adapter at `path`. */
static enum err_code peft_paths(const char *path, char **cfg, char **weights, struct err *e)
{
    struct stat st;
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash == NULL ? 1 : (size_t)(slash - path);

    if (stat(path, &st) != 0)
        return err_set(e, ERR_NOTFOUND, "%s: no such adapter file or folder", path);
    if (S_ISDIR(st.st_mode)) {
        *cfg = peft_join(path, strlen(path), "adapter_config.json");
        *weights = peft_join(path, strlen(path), "adapter_model.safetensors");
        if (*weights != NULL && !peft_is_file(*weights)) {
            free(*weights);
            *weights = peft_join(path, strlen(path), "adapter_model.bin");
        }
    } else {
        *cfg = peft_join(slash == NULL ? "." : path, dir_len, "adapter_config.json");
        *weights = strdup(path);
    }
    if (*cfg == NULL || *weights == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
    if (!peft_is_file(*weights))
        return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                        "%s: no adapter_model.safetensors or adapter_model.bin", path);
    if (!peft_is_file(*cfg))
        return err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                        "%s: no adapter_config.json beside the adapter weights", path);
    return ERR_OK;
}

static enum err_code peft_read_config(const char *path, const struct ckpt_limits *l,
                                      struct peft_config *cfg, struct err *e)
{
    unsigned char *text = NULL;
    size_t n = 0;
    enum err_code rc = rfile_slurp(path, l->max_header_bytes, &text, &n, e);

    if (rc == ERR_OK)
        rc = peft_config_parse((const char *)text, n, cfg, e);
    free(text);
    return rc;
}

/* --- Keys ----------------------------------------------------------------- */

/* Split stored key `key` (prefix already removed): its part and in *mod_len
 * the length of the module path before it (or of the whole base name for a
 * copy). */
static enum peft_part peft_key_part(const char *key, size_t *mod_len)
{
    static const struct {
        const char *comp;
        enum peft_part part;
    } parts[] = {{".lora_A.", PEFT_A},
                 {".lora_B.", PEFT_B},
                 {".lora_embedding_A", PEFT_EMB_A},
                 {".lora_embedding_B", PEFT_EMB_B},
                 {".lora_magnitude_vector", PEFT_MAG},
                 {".base_layer.", PEFT_SKIP}};

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        const char *at = strstr(key, parts[i].comp);
        size_t n = strlen(parts[i].comp);
        if (at == NULL)
            continue;
        if (parts[i].comp[n - 1] != '.' && at[n] != '\0' && at[n] != '.')
            continue; /* lora_embedding_AB is not lora_embedding_A */
        *mod_len = (size_t)(at - key);
        if ((parts[i].part == PEFT_A || parts[i].part == PEFT_B) &&
            strcmp(key + strlen(key) - 5, ".bias") == 0)
            return PEFT_SKIP; /* lora_B.bias (lora_bias): biases are not analysed */
        return parts[i].part;
    }
    *mod_len = strlen(key);
    return PEFT_COPY;
}

static enum err_code peft_mod_get(struct peft_adapter *ad, const char *key, size_t mod_len,
                                  struct peft_mod **out, struct err *e)
{
    struct peft_mod *m;

    for (size_t i = ad->n_mods; i-- > 0;)
        if (strncmp(ad->mods[i].name, key, mod_len) == 0 &&
            strcmp(ad->mods[i].name + mod_len, ".weight") == 0) {
            *out = &ad->mods[i];
            return ERR_OK;
        }
    if (ad->n_mods == ad->cap_mods) {
        size_t cap = ad->cap_mods ? 2 * ad->cap_mods : 16;
        m = realloc(ad->mods, cap * sizeof(*m));
        if (m == NULL)
            return err_set(e, ERR_NOMEM, "out of memory listing adapter modules");
        ad->mods = m;
        ad->cap_mods = cap;
    }
    m = &ad->mods[ad->n_mods];
    memset(m, 0, sizeof(*m));
    m->name = malloc(mod_len + 8);
    if (m->name == NULL)
        return err_set(e, ERR_NOMEM, "out of memory listing adapter modules");
    memcpy(m->name, key, mod_len);
    memcpy(m->name + mod_len, ".weight", 8);
    ad->n_mods++;
    *out = m;
    return ERR_OK;
}

static enum err_code peft_copy_add(struct peft_adapter *ad, const char *key, size_t t,
                                   struct err *e)
{
    if (ad->n_copies == ad->cap_copies) {
        size_t cap = ad->cap_copies ? 2 * ad->cap_copies : 8;
        struct peft_copy *c = realloc(ad->copies, cap * sizeof(*c));
        if (c == NULL)
            return err_set(e, ERR_NOMEM, "out of memory listing adapter tensors");
        ad->copies = c;
        ad->cap_copies = cap;
    }
    ad->copies[ad->n_copies].name = strdup(key);
    if (ad->copies[ad->n_copies].name == NULL)
        return err_set(e, ERR_NOMEM, "out of memory listing adapter tensors");
    ad->copies[ad->n_copies++].t = t;
    return ERR_OK;
}

static enum err_code peft_walk(struct peft_adapter *ad, struct err *e)
{
    enum err_code rc = ERR_OK;

    for (size_t i = 0; i < ckpt_n_tensors(ad->w) && rc == ERR_OK; i++) {
        const char *key = ckpt_tensor_at(ad->w, i)->name;
        struct peft_mod *m = NULL;
        size_t mod_len;
        enum peft_part part;

        if (strncmp(key, PEFT_PREFIX, strlen(PEFT_PREFIX)) == 0)
            key += strlen(PEFT_PREFIX);
        part = peft_key_part(key, &mod_len);
        if (part == PEFT_SKIP)
            continue;
        if (part == PEFT_COPY) {
            if (strstr(key, "lora_") != NULL)
                return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                                "adapter tensor '%.200s' is not a LoRA part farmsd reads", key);
            rc = peft_copy_add(ad, key, i, e);
            continue;
        }
        rc = peft_mod_get(ad, key, mod_len, &m, e);
        if (rc)
            break;
        if ((part == PEFT_A || part == PEFT_EMB_A) ? m->has_a : (part != PEFT_MAG && m->has_b))
            return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                            "module '%.200s': two lora_%s tensors (several adapters in one file "
                            "are not read)",
                            m->name, part == PEFT_A || part == PEFT_EMB_A ? "A" : "B");
        if (part == PEFT_MAG) {
            m->dora = 1;
        } else if (part == PEFT_A || part == PEFT_EMB_A) {
            m->a = i;
            m->has_a = 1;
            m->embedding = part == PEFT_EMB_A;
        } else {
            m->b = i;
            m->has_b = 1;
        }
    }
    return rc;
}

/* --- Modules -------------------------------------------------------------- */

/* Check module `m`'s factors against each other and the config; fill its
 * rank, scale and shapes. */
static enum err_code peft_mod_check(const struct peft_adapter *ad, struct peft_mod *m,
                                    struct err *e)
{
    const struct ckpt_tensor *a, *b;
    size_t mod_len = strlen(m->name) - 7;
    char *module = NULL;
    int64_t r_cfg;
    double alpha;
    enum err_code rc = ERR_OK;

    if (!m->has_a || !m->has_b)
        return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH, "module '%.200s': lora_%s missing",
                        m->name, m->has_a ? "B" : "A");
    a = ckpt_tensor_at(ad->w, m->a);
    b = ckpt_tensor_at(ad->w, m->b);
    if (a->ndim != 2 || b->ndim != 2)
        return err_setc(e, ERR_FORMAT,
                        a->ndim == 4 ? ERR_CAT_UNSUPPORTED_FORMAT : ERR_CAT_SHAPE_MISMATCH,
                        "module '%.200s': lora_A is %d-D, lora_B %d-D (2-D factors are read; "
                        "conv LoRA is not)",
                        m->name, a->ndim, b->ndim);
    if (!dtype_is_analysable(a->dtype) || !dtype_is_analysable(b->dtype))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_DTYPE,
                        "module '%.200s': LoRA factors of dtype %s / %s", m->name,
                        dtype_name(a->dtype), dtype_name(b->dtype));
    m->rank = a->shape[0];
    m->cols = a->shape[1];
    m->rows = b->shape[0];
    if (b->shape[1] != m->rank || m->rank < 1)
        return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                        "module '%.200s': lora_A has %lld rows, lora_B %lld columns", m->name,
                        (long long)m->rank, (long long)b->shape[1]);
    module = strndup(m->name, mod_len);
    if (module == NULL)
        return err_set(e, ERR_NOMEM, "out of memory checking adapter modules");
    peft_config_module(&ad->cfg, module, &r_cfg, &alpha, &m->scale);
    if (r_cfg != m->rank)
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                      "module '%.200s': adapter_config.json says r=%lld, lora_A has %lld rows",
                      m->name, (long long)r_cfg, (long long)m->rank);
    free(module);
    m->transpose = m->embedding || ad->cfg.fan_in_fan_out;
    m->dora |= ad->cfg.use_dora;
    m->base_shape[0] = m->transpose ? m->cols : m->rows;
    m->base_shape[1] = m->transpose ? m->rows : m->cols;
    return rc;
}

enum err_code peft__adapter_open(const char *path, const struct ckpt_limits *limits,
                                 struct peft_adapter **out, struct err *e)
{
    enum err_code rc;
    struct peft_adapter *ad = calloc(1, sizeof(*ad));
    struct ckpt_limits l;
    char *cfg = NULL, *weights = NULL;
    size_t n;

    *out = NULL;
    if (limits != NULL)
        l = *limits;
    else
        ckpt_limits_default(&l);
    if (ad == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening %s", path);
    rc = peft_paths(path, &cfg, &weights, e);
    if (rc == ERR_OK)
        rc = peft_read_config(cfg, &l, &ad->cfg, e);
    n = strlen(weights != NULL ? weights : "");
    if (rc == ERR_OK)
        rc = ckpt_open(weights,
                       n > 4 && strcmp(weights + n - 4, ".bin") == 0 ? CKPT_FORMAT_TORCH_ZIP
                                                                     : CKPT_FORMAT_SAFETENSORS,
                       &l, &ad->w, e);
    if (rc == ERR_OK)
        rc = peft_walk(ad, e);
    for (size_t i = 0; i < ad->n_mods && rc == ERR_OK; i++)
        rc = peft_mod_check(ad, &ad->mods[i], e);
    if (rc == ERR_OK) {
        *out = ad;
        ad = NULL;
    }
    free(cfg);
    free(weights);
    peft__adapter_free(ad);
    return rc;
}

void peft__adapter_free(struct peft_adapter *ad)
{
    if (ad == NULL)
        return;
    ckpt_close(ad->w);
    peft_config_free(&ad->cfg);
    for (size_t i = 0; i < ad->n_mods; i++)
        free(ad->mods[i].name);
    for (size_t i = 0; i < ad->n_copies; i++)
        free(ad->copies[i].name);
    free(ad->mods);
    free(ad->copies);
    free(ad);
}

/* --- Factors and the delta -------------------------------------------------- */

static enum err_code peft_f64(const struct ckpt *w, size_t i, struct ckpt_buf *buf, double **out,
                              struct err *e)
{
    const struct ckpt_tensor *t = ckpt_tensor_at(w, i);
    const void *data = NULL;
    enum err_code rc = ckpt_tensor_read(w, i, buf, &data, e);

    if (rc)
        return rc;
    *out = malloc((t->n_elems > 0 ? (size_t)t->n_elems : 1) * sizeof(double));
    if (*out == NULL)
        return err_set(e, ERR_NOMEM, "tensor '%.200s': out of memory", t->name);
    dtype_to_f64(t->dtype, data, (size_t)t->n_elems, *out);
    return ERR_OK;
}

enum err_code peft__factors(const struct peft_adapter *ad, const struct peft_mod *m, double **a,
                            double **b, struct err *e)
{
    struct ckpt_buf buf = {0};
    enum err_code rc;

    *a = *b = NULL;
    rc = peft_f64(ad->w, m->a, &buf, a, e);
    if (rc == ERR_OK)
        rc = peft_f64(ad->w, m->b, &buf, b, e);
    ckpt_buf_free(&buf);
    if (rc) {
        free(*a);
        free(*b);
        *a = *b = NULL;
    }
    return rc;
}

void peft__delta_add(const struct peft_mod *m, const double *a, const double *b, double beta,
                     double *dst)
{
    blasint rows = (blasint)m->rows, cols = (blasint)m->cols, r = (blasint)m->rank;

    if (m->transpose) /* dst (cols x rows) = beta dst + s A^T B^T */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, cols, rows, r, m->scale, a, cols, b, r,
                    beta, dst, rows);
    else /* dst (rows x cols) = beta dst + s B A */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, r, m->scale, b, r, a,
                    cols, beta, dst, cols);
}
