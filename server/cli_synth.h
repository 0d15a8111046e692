/* cli_synth.h -- `farmsd synth`: synthetic checkpoints of real model shapes,
 * for benchmarks and load tests without downloads.
 *
 * The model tables (cli_synth_models.c) list tensors with their usual
 * state-dict names and shapes; the generator fills them from a per-tensor
 * seeded stream; cli_synth.c streams them, chunk by chunk, through the
 * safetensors or torch zip writer (core/st_write.h, core/tz_write.h).
 * Plain data, single-threaded.
 */
#ifndef SERVER_CLI_SYNTH_H
#define SERVER_CLI_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/err.h"
#include "core/formats/st_write.h"

#define CLI_SYNTH_NAME_MAX 96

struct cli_synth_model {
    const char *model;                 /* in: llama7b, llama-tiny, gpt2-small, resnet */
    int blocks;                        /* in: decoder blocks / bottlenecks (>= 0) */
    int64_t hidden, ffn;               /* in: LLaMA widths; 0: the model's (4096, 11008 / 64,
                                          172) */
    int embeddings;                    /* in: 1 to include embeddings (and LLaMA's lm_head) */
    enum dtype dtype;                  /* in: F32, F16 or BF16 */
    struct st_wtensor *t;              /* out: owned, n tensors; names point into `names` */
    char (*names)[CLI_SYNTH_NAME_MAX]; /* owned */
    size_t n, cap;
};

/* Fill m->t from m->model, blocks, embeddings and dtype. ERR_INVAL for an
 * unknown model, ERR_NOMEM. Free with cli_synth_model_free() either way. */
enum err_code cli_synth_model_build(struct cli_synth_model *m, struct err *e);
void cli_synth_model_free(struct cli_synth_model *m);

/* The full depth of `model` (llama7b and llama-tiny 32, gpt2-small 12, resnet 16). */
int cli_synth_default_blocks(const char *model);

/* A tensor's value stream (xoshiro256** seeded from seed and name). */
struct cli_synth_gen {
    uint64_t s[4];
    int heavy; /* Student-t(3) instead of Gaussian */
    float scale, offset;
    float spare;
    int have_spare;
};

/* heavy: 0 Gaussian, 1 Student-t(3), 2 "mixed": each matrix is one or the
 * other, picked from (seed, name), about half of them heavy. */
void cli_synth_gen_init(struct cli_synth_gen *g, uint64_t seed, int heavy,
                        const struct st_wtensor *t);

/* The next n values of the stream. Cannot fail. */
void cli_synth_fill(struct cli_synth_gen *g, float *out, size_t n);

/* Encode n floats as `t` (F32, F16 or BF16; round to nearest even),
 * little-endian, into dst (n * dtype_size(t) bytes). Cannot fail. */
void cli_synth_encode(enum dtype t, const float *src, size_t n, unsigned char *dst);

#endif /* SERVER_CLI_SYNTH_H */
