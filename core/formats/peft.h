/* peft.h -- PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors
 * or adapter_model.bin), read alone or merged onto a base checkpoint
 * (docs/peft.md).
 *
 * Alone (ckpt_open on the adapter file or folder, format CKPT_FORMAT_PEFT),
 * an adapter is never analysed as layers: its adapted modules are listed,
 * each with its rank and the spectral norm of s*B*A, and the reason it is
 * not fitted. Merged (peft_merge_open), the result is a checkpoint with the
 * base's tensors, names and order, in which every adapted weight reads as
 * W + s*B*A (s = lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA).
 *
 * Ownership: peft_merge_open() returns a new struct ckpt, closed with
 * ckpt_close(); it keeps its own handles on both inputs.
 * Thread-safety: as ckpt.h.
 */
#ifndef CORE_PEFT_H
#define CORE_PEFT_H

#include "core/err.h"
#include "core/formats/ckpt.h"

/* Open the adapter at `adapter` (a folder with adapter_config.json, or the
 * adapter weights file with adapter_config.json beside it) merged onto the
 * checkpoint at `base` (any format ckpt_open reads, `base_format` as there).
 * `limits` may be NULL (defaults). Fails with the category of whichever
 * input is malformed, or "lora_mismatch" when an adapted module is missing
 * from the base or its shape does not fit. */
enum err_code peft_merge_open(const char *adapter, const char *base, enum ckpt_format base_format,
                              const struct ckpt_limits *limits, struct ckpt **out, struct err *e);

#endif /* CORE_PEFT_H */
