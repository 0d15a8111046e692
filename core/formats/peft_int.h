/* peft_int.h -- what peft.c (alone, merge) shares with peft_adapter.c (the
 * adapter's files, keys and modules). Ownership: struct peft_adapter owns
 * its weights ckpt, config and module table; peft__adapter_free releases
 * them. Thread-safety: read-only after peft__adapter_open. */
#ifndef CORE_PEFT_INT_H
#define CORE_PEFT_INT_H

#include "core/formats/ckpt_int.h"
#include "core/formats/peft.h"

struct peft_mod {       /* one adapted module */
    char *name;         /* owned: base weight name, "model.layers.0.self_attn.q_proj.weight" */
    size_t a, b;        /* lora_A / lora_B tensor indices in the weights ckpt */
    int has_a, has_b;   /* seen while walking the keys */
    int64_t rank;       /* rows of A */
    double scale;       /* s */
    int64_t rows, cols; /* B rows, A cols */
    int64_t
        base_shape[2]; /* the base weight's shape: (rows, cols), or (cols, rows) when transposed */
    int transpose;     /* embedding or fan_in_fan_out: delta = (B*A)^T */
    int embedding;
    int dora;
};

struct peft_copy { /* a tensor stored whole (modules_to_save): replaces the base's */
    char *name;    /* owned: base name */
    size_t t;      /* tensor index in the weights ckpt */
};

struct peft_adapter {
    struct ckpt *w; /* owned: adapter_model.safetensors / .bin */
    struct peft_config cfg;
    struct peft_mod *mods; /* owned, n_mods */
    size_t n_mods, cap_mods;
    struct peft_copy *copies; /* owned, n_copies */
    size_t n_copies, cap_copies;
};

/* Open the adapter at `path` (folder, or weights file with its config beside
 * it) into a new *out (free with peft__adapter_free). */
enum err_code peft__adapter_open(const char *path, const struct ckpt_limits *limits,
                                 struct peft_adapter **out, struct err *e);
void peft__adapter_free(struct peft_adapter *ad);

/* Module `m`'s factors as float64 (see peft_factors_read). */
enum err_code peft__factors(const struct peft_adapter *ad, const struct peft_mod *m, double **a,
                            double **b, struct err *e);

/* dst (base_shape, row-major) = beta * dst + s * delta of `m`. */
void peft__delta_add(const struct peft_mod *m, const double *a, const double *b, double beta,
                     double *dst);

#endif /* CORE_PEFT_INT_H */
