/* deepspeed.h -- DeepSpeed checkpoint folders (docs/deepspeed.md), as written
 * by DeepSpeed v0.19.5's engine.save_checkpoint().
 *
 * The loader behind ckpt_open() for CKPT_FORMAT_DEEPSPEED is ds__ckpt_load()
 * (core/formats/ckpt_int.h). Given the save folder it follows the tag in
 * `latest` to global_stepN/; given global_stepN/ it reads it. ZeRO-0/1/2
 * folders are read through their mp_rank_00_model_states.pt (a torch.save
 * zip whose `module` holds the full 16-bit weights: a training checkpoint
 * with model prefix "module."). ZeRO-3 folders are reconstructed the way
 * deepspeed/utils/zero_to_fp32.py does it: the buffers from rank 0's
 * zero_pp_rank_0_mp_rank_00_model_states.pt, every parameter of
 * param_shapes (in order) stitched as fp32 from the fp32_flat_groups of
 * every rank's *_optim_states.pt, one tensor at a time (memory: the tensor),
 * the frozen parameters from every rank's frozen_param_fragments, then the
 * shared_params aliases; names are "module.<name>" as in ZeRO-1/2.
 * Model-parallel (mp_rank_01+), pipeline (layer_*) and MoE (expert_*,
 * expp_rank_*) folders are refused with category "unsupported_format" and
 * how to convert them.
 *
 * The helpers below expose the pure decisions of the loader for tests.
 * Stateless: thread-safe.
 */
#ifndef CORE_DEEPSPEED_H
#define CORE_DEEPSPEED_H

#include <stdint.h>

enum ds_file_kind {
    DS_FILE_OTHER = 0,  /* not a checkpoint file (zero_to_fp32.py, ...) */
    DS_FILE_MODEL,      /* mp_rank_NN_model_states.pt (ZeRO-0/1/2) */
    DS_FILE_ZERO_MODEL, /* zero_pp_rank_R_mp_rank_NN_model_states.pt (ZeRO-3) */
    DS_FILE_OPTIM,      /* [bf16_|fp16_]zero_pp_rank_R_mp_rank_NN_optim_states.pt */
    DS_FILE_PIPELINE,   /* layer_XX-model_NN-model_states.pt (PipelineModule) */
    DS_FILE_EXPERT      /* MoE: [layer_L_]expert_E_mp_rank_NN_model_states.pt,
                           expp_rank_R_mp_rank_NN_optim_states.pt */
};

struct ds_file { /* plain data */
    enum ds_file_kind kind;
    unsigned long dp_rank; /* data-parallel rank R (ZERO_MODEL, OPTIM), else 0 */
    unsigned long mp_rank; /* model-parallel rank NN (MODEL, ZERO_MODEL, OPTIM), else 0 */
};

/* Classify the file name `name` (no folder) as engine.py names checkpoint
 * files; ranks of up to 9 digits. Cannot fail: unknown names are
 * DS_FILE_OTHER. */
void ds_file_classify(const char *name, struct ds_file *out);

/* ZeRO-3's split of a parameter of `numel` elements over `world` (>= 1)
 * ranks (zero3_partitioned_param_info): *part = ceil(numel / world)
 * elements per rank, of which the last ranks hold *pad zeros in all.
 * Cannot fail. */
void ds_zero3_partition(uint64_t numel, uint64_t world, uint64_t *part, uint64_t *pad);

/* 1 if `tag` (the content of `latest`, whitespace already stripped) names
 * one folder entry: non-empty, not "." or "..", no '/', no control bytes.
 * Cannot fail. */
int ds_tag_valid(const char *tag);

#endif /* CORE_DEEPSPEED_H */
