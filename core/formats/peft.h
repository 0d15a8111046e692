/* peft.h -- PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors
 * or adapter_model.bin), read alone or merged onto a base checkpoint
 * (docs/peft.md; huggingface/peft v0.20.0 is the writer followed).
 *
 * Alone (ckpt_open on the adapter file or folder, format CKPT_FORMAT_PEFT),
 * an adapter is never analysed as layers: each adapted module is one tensor
 * named by its base weight name ("model.layers.0.self_attn.q_proj.weight"),
 * dtype F64, the base weight's shape, whose bytes are the delta s*B*A; the
 * engine lists it with its rank and ||s*B*A||_2 (peft_module_at,
 * peft_factors_read) and the reason it is not fitted. modules_to_save
 * copies are listed as stored, under their base names. Merged
 * (peft_merge_open), the result is a checkpoint with the base's tensors,
 * names, order and model prefix, in which every adapted weight reads as
 * W + s*B*A in float64 (dtype F64) and every other tensor as the base's own
 * bytes (s = lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA).
 *
 * Ownership: ckpt_open() / peft_merge_open() return a new struct ckpt,
 * closed with ckpt_close(); a merged one keeps its own handles on both
 * inputs. peft_config_parse() fills a struct peft_config that
 * peft_config_free() releases. Thread-safety: as ckpt.h (the read paths
 * allocate per call); the config functions have no shared state.
 */
#ifndef CORE_PEFT_H
#define CORE_PEFT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/formats/ckpt.h"

/* --- adapter_config.json ---------------------------------------------------- */

struct peft_pattern { /* one rank_pattern / alpha_pattern entry */
    char *key;        /* owned: a regular expression matched like peft's get_pattern_key */
    double value;
    void *re; /* owned compiled regex_t, or NULL: `key` is then matched literally */
};

struct peft_config {
    int64_t r;          /* default rank (> 0) */
    double lora_alpha;  /* default alpha (finite) */
    int use_rslora;     /* s = alpha / sqrt(r) instead of alpha / r */
    int fan_in_fan_out; /* the base weights are stored (in, out) (GPT-2 Conv1D) */
    int use_dora;       /* DoRA: merging is refused */
    struct peft_pattern *rank_pattern, *alpha_pattern; /* owned arrays */
    size_t n_rank_pattern, n_alpha_pattern;
    char *base_model; /* owned base_model_name_or_path, or NULL */
};

/* Parse adapter_config.json (`len` bytes of `text`, need not be
 * NUL-terminated) into *out (zeroed first; free with peft_config_free even
 * on failure). Requires a JSON object with peft_type "LORA" (another type:
 * category unsupported_format), an integer r > 0 and a number lora_alpha;
 * use_rslora, fan_in_fan_out, use_dora are booleans, rank_pattern and
 * alpha_pattern objects of numbers (null or absent: empty). Anything else
 * malformed: category invalid_header. Fails with ERR_NOMEM too. */
enum err_code peft_config_parse(const char *text, size_t len, struct peft_config *out,
                                struct err *e);

/* Free what *cfg owns and zero it. NULL-safe. Cannot fail. */
void peft_config_free(struct peft_config *cfg);

/* The rank and alpha of `module` (the module path without "base_model.model."
 * and without ".weight", e.g. "model.layers.0.self_attn.q_proj"): the first
 * rank_pattern / alpha_pattern key k such that the module matches
 * (.*\.)?(k)$, else r / lora_alpha; *scale is the LoRA scaling s. Cannot fail. */
void peft_config_module(const struct peft_config *cfg, const char *module, int64_t *rank,
                        double *alpha, double *scale);

/* --- Adapters read alone ------------------------------------------------------ */

struct peft_module_info { /* one adapted module of an adapter opened alone */
    int64_t rank;         /* rows of lora_A */
    double scale;         /* s */
    int64_t rows, cols;   /* B is rows x rank, A is rank x cols (stored orientation) */
    int embedding;        /* lora_embedding_A/B: the delta is (B*A)^T */
    int fan_in_fan_out;   /* the delta is (B*A)^T (the base stores (in, out)) */
    int dora;             /* has lora_magnitude_vector */
};

/* 1 with *out filled when tensor `i` of `c` is an adapted module of an
 * adapter opened alone (ckpt_open as CKPT_FORMAT_PEFT); 0 for every other
 * tensor or checkpoint (a merged one included). Cannot fail. */
int peft_module_at(const struct ckpt *c, size_t i, struct peft_module_info *out);

/* The factors of module tensor `i` (peft_module_at is 1) as float64,
 * row-major as stored: *a rank x cols, *b rows x rank, new arrays (free()).
 * Fails like ckpt_tensor_read, or ERR_NOMEM; then both are NULL. */
enum err_code peft_factors_read(const struct ckpt *c, size_t i, double **a, double **b,
                                struct err *e);

/* --- Merged onto a base --------------------------------------------------------- */

/* Open the adapter at `adapter` (a folder with adapter_config.json, or the
 * adapter weights file with adapter_config.json beside it) merged onto the
 * checkpoint at `base` (any format ckpt_open reads, `base_format` as there).
 * `limits` may be NULL (defaults); they apply to both inputs. The result's
 * format is the base's. Fails with the category of whichever input is
 * malformed, "lora_mismatch" when an adapted module (or a modules_to_save
 * copy) is missing from the base or its shape does not fit, and
 * "unsupported_format" for DoRA adapters. */
enum err_code peft_merge_open(const char *adapter, const char *base, enum ckpt_format base_format,
                              const struct ckpt_limits *limits, struct ckpt **out, struct err *e);

#endif /* CORE_PEFT_H */
