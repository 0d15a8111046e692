/* peft.c -- PEFT LoRA adapters read alone (the CKPT_FORMAT_PEFT loader) and
 * merged onto a base (peft_merge_open). See peft.h; the adapter's files and
 * modules are peft_adapter.c. */
#include "core/formats/peft.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/layers.h"
#include "core/formats/peft_int.h"

/* --- Alone ------------------------------------------------------------------ */

/* Tensor i of an adapter opened alone: modules first (0 .. n_mods), then copies. */
static enum err_code peft_alone_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                                     const void **data, struct err *e);
static void peft_alone_free(void *impl)
{
    peft__adapter_free(impl);
}
static const struct ckpt_ops peft_alone_ops = {peft_alone_read, peft_alone_free};

/* dst = the module's delta s*B*A in the base weight's layout, float64. */
static enum err_code peft_delta(const struct peft_adapter *ad, const struct peft_mod *m,
                                double beta, double *dst, struct err *e)
{
    double *a = NULL, *b = NULL;
    enum err_code rc = peft__factors(ad, m, &a, &b, e);

    if (rc == ERR_OK)
        peft__delta_add(m, a, b, beta, dst);
    free(a);
    free(b);
    return rc;
}

static enum err_code peft_alone_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                                     const void **data, struct err *e)
{
    const struct peft_adapter *ad = c->impl;
    enum err_code rc;

    if (i >= ad->n_mods)
        return ckpt_tensor_read(ad->w, ad->copies[i - ad->n_mods].t, buf, data, e);
    rc = ckpt__buf_reserve(c, buf, c->tensors[i].nbytes ? c->tensors[i].nbytes : 1, e);
    if (rc)
        return rc;
    memset(buf->data, 0, (size_t)c->tensors[i].nbytes);
    rc = peft_delta(ad, &ad->mods[i], 0.0, buf->data, e);
    if (rc == ERR_OK)
        *data = buf->data;
    return rc;
}

enum err_code peft__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    struct peft_adapter *ad = NULL;
    enum err_code rc = peft__adapter_open(path, &c->limits, &ad, e);

    if (rc)
        return rc;
    c->impl = ad;
    c->ops = &peft_alone_ops;
    for (size_t i = 0; i < ad->n_mods && rc == ERR_OK; i++) {
        const struct peft_mod *m = &ad->mods[i];
        struct ckpt__entry en = {m->name, strlen(m->name), DTYPE_F64, 2, m->base_shape};
        rc = ckpt__tensor_add(c, &en, NULL, e);
    }
    for (size_t i = 0; i < ad->n_copies && rc == ERR_OK; i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(ad->w, ad->copies[i].t);
        struct ckpt__entry en = {ad->copies[i].name, strlen(ad->copies[i].name), t->dtype, t->ndim,
                                 t->shape};
        rc = ckpt__tensor_add(c, &en, NULL, e);
    }
    return rc;
}

int peft_module_at(const struct ckpt *c, size_t i, struct peft_module_info *out)
{
    const struct peft_adapter *ad = c->impl;
    const struct peft_mod *m;

    if (c->ops != &peft_alone_ops || i >= ad->n_mods)
        return 0;
    m = &ad->mods[i];
    *out = (struct peft_module_info){.rank = m->rank,
                                     .scale = m->scale,
                                     .rows = m->rows,
                                     .cols = m->cols,
                                     .embedding = m->embedding,
                                     .fan_in_fan_out = m->transpose && !m->embedding,
                                     .dora = m->dora};
    return 1;
}

enum err_code peft_factors_read(const struct ckpt *c, size_t i, double **a, double **b,
                                struct err *e)
{
    const struct peft_adapter *ad = c->impl;

    *a = *b = NULL;
    ERR_ASSERT(c->ops == &peft_alone_ops && i < ad->n_mods);
    return peft__factors(ad, &ad->mods[i], a, b, e);
}

/* --- Merged ----------------------------------------------------------------- */

enum peft_slot_kind { PEFT_SLOT_BASE, PEFT_SLOT_LORA, PEFT_SLOT_COPY };

struct peft_slot { /* what base tensor i reads as */
    enum peft_slot_kind kind;
    size_t idx; /* module or copy index */
};

struct peft_merged {
    struct peft_adapter *ad; /* owned */
    struct ckpt *base;       /* owned */
    struct peft_slot *slots; /* owned, one per base tensor */
};

static void peft_merged_free(void *impl)
{
    struct peft_merged *mg = impl;

    if (mg == NULL)
        return;
    peft__adapter_free(mg->ad);
    ckpt_close(mg->base);
    free(mg->slots);
    free(mg);
}

static enum err_code peft_merged_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                                      const void **data, struct err *e)
{
    const struct peft_merged *mg = c->impl;
    const struct peft_slot *s = &mg->slots[i];
    const struct ckpt_tensor *bt = ckpt_tensor_at(mg->base, i);
    struct ckpt_buf wbuf = {0};
    const void *w = NULL;
    enum err_code rc;

    if (s->kind == PEFT_SLOT_BASE)
        return ckpt_tensor_read(mg->base, i, buf, data, e);
    if (s->kind == PEFT_SLOT_COPY)
        return ckpt_tensor_read(mg->ad->w, mg->ad->copies[s->idx].t, buf, data, e);
    rc = ckpt_tensor_read(mg->base, i, &wbuf, &w, e);
    if (rc == ERR_OK)
        rc = ckpt__buf_reserve(c, buf, c->tensors[i].nbytes ? c->tensors[i].nbytes : 1, e);
    if (rc == ERR_OK) {
        dtype_to_f64(bt->dtype, w, (size_t)bt->n_elems, buf->data);
        rc = peft_delta(mg->ad, &mg->ad->mods[s->idx], 1.0, buf->data, e);
    }
    if (rc == ERR_OK)
        *data = buf->data;
    ckpt_buf_free(&wbuf);
    return rc;
}

static const struct ckpt_ops peft_merged_ops = {peft_merged_read, peft_merged_free};

/* 1 if `n` ends with "." `name`. */
static int peft_suffix(const char *n, const char *name)
{
    size_t a = strlen(n), b = strlen(name);
    return a > b && n[a - b - 1] == '.' && strcmp(n + a - b, name) == 0;
}

/* The model tensor of the base named `name`: as stored or by its display
 * name, else the one model tensor whose display name ends with "." `name`
 * (a Lightning module holding the model as `self.model`); -1 if none, -2 if
 * that suffix is not unique. Optimizer state and such (in_model 0) never
 * match. */
static int64_t peft_base_find(const struct ckpt *base, const char *name)
{
    int64_t found = -1;

    for (size_t i = 0; i < ckpt_n_tensors(base); i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(base, i);
        if (t->in_model &&
            (strcmp(t->name, name) == 0 ||
             strcmp(layer_strip_prefixes(t->name, ckpt_model_prefix(base)), name) == 0))
            return (int64_t)i;
    }
    for (size_t i = 0; i < ckpt_n_tensors(base); i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(base, i);
        if (!t->in_model ||
            !peft_suffix(layer_strip_prefixes(t->name, ckpt_model_prefix(base)), name))
            continue;
        if (found >= 0)
            return -2;
        found = (int64_t)i;
    }
    return found;
}

static enum err_code peft_mismatch(struct err *e, const char *name, const char *why)
{
    return err_setc(e, ERR_FORMAT, ERR_CAT_LORA_MISMATCH, "adapter module '%.200s': %s", name, why);
}

/* Map every module and copy of the adapter onto the base's tensors. */
static enum err_code peft_slots(struct peft_merged *mg, struct err *e)
{
    const struct peft_adapter *ad = mg->ad;

    for (size_t k = 0; k < ad->n_mods; k++) {
        const struct peft_mod *m = &ad->mods[k];
        int64_t i = peft_base_find(mg->base, m->name);
        const struct ckpt_tensor *t;

        if (m->dora)
            return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                            "adapter module '%.200s': DoRA (lora_magnitude_vector) adapters are "
                            "not merged",
                            m->name);
        if (i < 0)
            return peft_mismatch(e, m->name,
                                 i == -1 ? "not in the base checkpoint"
                                         : "several base tensors end with this name");
        t = ckpt_tensor_at(mg->base, (size_t)i);
        if (t->ndim != 2 || t->shape[0] != m->base_shape[0] || t->shape[1] != m->base_shape[1] ||
            !dtype_is_analysable(t->dtype))
            return peft_mismatch(e, m->name, "the base weight's shape or dtype does not fit");
        mg->slots[i] = (struct peft_slot){PEFT_SLOT_LORA, k};
    }
    for (size_t k = 0; k < ad->n_copies; k++) {
        int64_t i = peft_base_find(mg->base, ad->copies[k].name);
        const struct ckpt_tensor *t, *a = ckpt_tensor_at(ad->w, ad->copies[k].t);

        if (i < 0)
            return peft_mismatch(e, ad->copies[k].name,
                                 i == -1 ? "not in the base checkpoint"
                                         : "several base tensors end with this name");
        t = ckpt_tensor_at(mg->base, (size_t)i);
        if (t->ndim != a->ndim ||
            memcmp(t->shape, a->shape, (size_t)a->ndim * sizeof(int64_t)) != 0)
            return peft_mismatch(e, ad->copies[k].name, "its shape is not the base's");
        mg->slots[i] = (struct peft_slot){PEFT_SLOT_COPY, k};
    }
    return ERR_OK;
}

/* The merged tensor list: the base's, adapted ones as F64, copies in their dtype. */
static enum err_code peft_merged_list(struct ckpt *c, const struct peft_merged *mg, struct err *e)
{
    enum err_code rc = ERR_OK;

    for (size_t i = 0; i < ckpt_n_tensors(mg->base) && rc == ERR_OK; i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(mg->base, i);
        struct ckpt__entry en = {t->name, strlen(t->name), t->dtype, t->ndim, t->shape};
        struct ckpt_tensor *nt = NULL;
        int64_t alias = t->alias_of;

        if (mg->slots[i].kind == PEFT_SLOT_LORA)
            en.dtype = DTYPE_F64;
        else if (mg->slots[i].kind == PEFT_SLOT_COPY)
            en.dtype = ckpt_tensor_at(mg->ad->w, mg->ad->copies[mg->slots[i].idx].t)->dtype;
        rc = ckpt__tensor_add(c, &en, &nt, e);
        if (rc)
            break;
        nt->in_model = t->in_model;
        /* An alias stays one only if neither side changed. */
        if (alias >= 0 && mg->slots[i].kind == PEFT_SLOT_BASE &&
            mg->slots[alias].kind == PEFT_SLOT_BASE)
            nt->alias_of = alias;
    }
    return rc;
}

enum err_code peft_merge_open(const char *adapter, const char *base, enum ckpt_format base_format,
                              const struct ckpt_limits *limits, struct ckpt **out, struct err *e)
{
    enum err_code rc;
    struct ckpt *c = calloc(1, sizeof(*c));
    struct peft_merged *mg = calloc(1, sizeof(*mg));

    *out = NULL;
    if (c == NULL || mg == NULL) {
        free(c);
        free(mg);
        return err_set(e, ERR_NOMEM, "out of memory opening %s", adapter);
    }
    if (limits != NULL)
        c->limits = *limits;
    else
        ckpt_limits_default(&c->limits);
    c->impl = mg;
    c->ops = &peft_merged_ops;
    rc = peft__adapter_open(adapter, &c->limits, &mg->ad, e);
    if (rc == ERR_OK)
        rc = ckpt_open(base, base_format, &c->limits, &mg->base, e);
    if (rc == ERR_OK) {
        c->format = ckpt_format_of(mg->base);
        mg->slots = calloc(ckpt_n_tensors(mg->base) + 1, sizeof(*mg->slots));
        if (mg->slots == NULL)
            rc = err_set(e, ERR_NOMEM, "out of memory merging %s", adapter);
    }
    if (rc == ERR_OK)
        rc = peft_slots(mg, e);
    if (rc == ERR_OK && ckpt_model_prefix(mg->base)[0] != '\0') {
        c->model_prefix = strdup(ckpt_model_prefix(mg->base));
        if (c->model_prefix == NULL)
            rc = err_set(e, ERR_NOMEM, "out of memory merging %s", adapter);
    }
    if (rc == ERR_OK)
        rc = peft_merged_list(c, mg, e);
    if (rc == ERR_OK) {
        *out = c;
        c = NULL;
    }
    ckpt_close(c);
    return rc;
}
