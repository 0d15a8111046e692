/* ckpt.h -- one interface over every checkpoint format farmsd reads.
 *
 * A checkpoint is a list of tensors (name, dtype, shape) whose bytes are read
 * on demand, one tensor at a time, so memory is bounded by the largest
 * tensor, not by the file. Formats (docs/checkpoint-formats.md):
 *   safetensors, a sharded safetensors index or folder, torch.save zip
 *   files, NumPy .npy / .npz, GGUF, PyTorch Distributed Checkpoint folders,
 *   DeepSpeed folders and PEFT LoRA adapters (file or folder).
 * The format is sniffed from the first bytes (Format detection) unless the
 * caller declares it. Failures carry the error category (Error categories)
 * in `struct err`'s `category`.
 *
 * Files are read with pread into heap buffers, never mapped: a checkpoint
 * keeps its files open until ckpt_close(), and a file that shrinks while it
 * is read fails that read with category "changed" (never a signal).
 * Only regular files are opened (else "not_regular_file").
 *
 * Ownership: ckpt_open() returns a new struct ckpt; close it with
 * ckpt_close(). Tensor records and names are borrowed: valid until
 * ckpt_close(). Data returned by ckpt_tensor_read() always lies in the
 * caller's struct ckpt_buf (a copy of the file's bytes).
 *
 * Thread-safety: after ckpt_open() returns, a struct ckpt is read-only;
 * ckpt_tensor_read() may run on several threads at once, each with its own
 * struct ckpt_buf. ckpt_close() must not race with anything.
 */
#ifndef CORE_CKPT_H
#define CORE_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/err.h"

#define CKPT_MAX_RANK 16

enum ckpt_format {
    CKPT_FORMAT_UNKNOWN = 0, /* "sniff it" when passed to ckpt_open() */
    CKPT_FORMAT_SAFETENSORS,
    CKPT_FORMAT_SAFETENSORS_INDEX, /* model.safetensors.index.json, or a folder of shards */
    CKPT_FORMAT_TORCH_ZIP,
    CKPT_FORMAT_NPY,
    CKPT_FORMAT_NPZ,
    CKPT_FORMAT_GGUF,      /* llama.cpp GGUF v2/v3 file (docs/gguf.md) */
    CKPT_FORMAT_DCP,       /* torch.distributed.checkpoint folder: .metadata + *.distcp */
    CKPT_FORMAT_DEEPSPEED, /* DeepSpeed folder (global_stepN/ or its parent with `latest`) */
    CKPT_FORMAT_PEFT       /* PEFT LoRA adapter: adapter_config.json + adapter_model.* */
};

/* Limits (docs/checkpoint-formats.md, Limits); exceeding one fails with category "limit_exceeded".
 */
struct ckpt_limits {
    uint64_t max_header_bytes; /* safetensors header / npy header / index file */
    uint64_t max_tensors;      /* tensors per file */
    uint64_t max_tensor_bytes; /* one materialised tensor; also caps zip inflation */
    uint64_t max_zip_members;  /* members of one zip */
    uint64_t max_pickle_bytes; /* data.pkl */
    uint64_t max_pickle_stack; /* values on the pickle stack */
    uint64_t max_pickle_marks; /* MARK nesting */
    uint64_t max_pickle_memo;  /* memo entries */
    uint64_t max_pickle_mem;   /* bytes the unpickler holds at once (values, strings, item
                                  arrays, stack, memo), and again for the tensor table
                                  built from data.pkl (names and records) */
    uint64_t max_shards;       /* shards of one index */
    int strict;                /* 1: unknown pickle globals are refused (disallowed_global) */
};

/* The defaults listed under Limits, lenient pickle mode. Cannot fail. */
void ckpt_limits_default(struct ckpt_limits *l);

struct ckpt_tensor {  /* plain data, borrowed from the ckpt */
    const char *name; /* full name as stored: safetensors key, npz member without
                         ".npy", torch path from the pickle root ("model.fc.weight") */
    enum dtype dtype; /* stored element type */
    int ndim;         /* 0 .. CKPT_MAX_RANK */
    int64_t shape[CKPT_MAX_RANK];
    uint64_t n_elems; /* product of shape */
    uint64_t nbytes;  /* bytes once materialised (dtype_nbytes(): whole blocks for ggml types) */
    int64_t alias_of; /* torch: index of an earlier tensor with the same storage, offset,
                         shape and strides (the same matrix), else -1 */
    int in_model;     /* 1 if under the model weights' prefix (ckpt_model_prefix()), or
                         the format has no wrapper; 0 for optimizer state and such */
};

struct ckpt; /* opaque */

/* A caller-owned scratch buffer for ckpt_tensor_read(). Zero-initialise it
 * (struct ckpt_buf b = {0};) and release with ckpt_buf_free(). */
struct ckpt_buf {
    void *data; /* owned */
    size_t cap; /* bytes allocated */
};
void ckpt_buf_free(struct ckpt_buf *b);

/* --- Open and close ------------------------------------------------------ */

/* Decide the format from the first bytes of a file (Format detection). `head` holds the
 * first `head_len` bytes (at least 512 if the file has them), `file_size` the
 * whole size, `name` the file name (may be NULL; used for ".index.json").
 * On failure the category is empty_file, unknown_format, legacy_torch_format
 * or unsupported_format. */
enum err_code ckpt_sniff(const unsigned char *head, size_t head_len, uint64_t file_size,
                         const char *name, enum ckpt_format *out, struct err *e);

/* What the open folder `dirfd` holds (Format detection): a DCP folder has
 * `.metadata`, a PEFT adapter folder `adapter_config.json`, a DeepSpeed
 * folder its `mp_rank_00_model_states.pt` (global_stepN/) or a `latest` tag
 * file; anything else is CKPT_FORMAT_SAFETENSORS_INDEX, a folder of
 * safetensors shards. Cannot fail. */
enum ckpt_format ckpt_sniff_dir(int dirfd);

/* Open `path` (a file, a shard index, or a folder of safetensors shards) as
 * `declared` (CKPT_FORMAT_UNKNOWN: sniff), validate its structure, and list
 * its tensors. No tensor data is read beyond what validation needs.
 * `limits` may be NULL (defaults). On success *out is a new ckpt. */
enum err_code ckpt_open(const char *path, enum ckpt_format declared,
                        const struct ckpt_limits *limits, struct ckpt **out, struct err *e);

/* Close `c` and its files. NULL is a no-op. Cannot fail. */
void ckpt_close(struct ckpt *c);

/* --- Query ---------------------------------------------------------------- */

enum ckpt_format ckpt_format_of(const struct ckpt *c);
const char *ckpt_format_name(enum ckpt_format f); /* "safetensors", "torch_zip", ... */

/* The path prefix of the model weights inside a training checkpoint
 * ("model.", "state_dict.", "" for a plain state dict). Borrowed. */
const char *ckpt_model_prefix(const struct ckpt *c);

size_t ckpt_n_tensors(const struct ckpt *c);

/* Tensor `i` (< ckpt_n_tensors), in file order (as in the fixtures' manifest: pickle order,
 * offset order, member order). Borrowed. */
const struct ckpt_tensor *ckpt_tensor_at(const struct ckpt *c, size_t i);

/* --- Data ------------------------------------------------------------------ */

/* Materialise tensor `i`: contiguous, C (row-major) order, little-endian, in
 * its stored dtype, `nbytes` long, read from the file now (deflated members
 * are inflated as they are read, bounded by the declared size). The bytes are
 * always copied into `buf` (grown as needed, at least 1 byte) and *data ==
 * buf->data on success: they stay valid until `buf` is reused or freed,
 * whatever happens to the file or to `c`. *data is NULL on failure.
 * Failures: limit_exceeded past max_tensor_bytes; shape_mismatch when a view
 * exceeds its storage; ERR_IO "changed" when the file shrank since
 * ckpt_open(); invalid_zip when a member inflates to more or fewer bytes
 * than declared or fails its CRC-32; other ERR_IO read errors. */
enum err_code ckpt_tensor_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                               const void **data, struct err *e);

#endif /* CORE_CKPT_H */
