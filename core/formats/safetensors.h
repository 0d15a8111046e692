/* safetensors.h -- the safetensors checkpoint format: parse, validate, list.
 *
 * File layout (docs/checkpoint-formats.md, safetensors):
 *
 *   offset 0     u64 N, little-endian      header length (N <= 100 000 000)
 *   offset 8     N bytes of UTF-8 JSON     the header, often padded with spaces
 *   offset 8+N   data section              raw tensor bytes, C order, little-endian
 *
 * The header is one JSON object. Every key except "__metadata__" is a tensor
 * name mapped to {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}:
 * the tensor's bytes are data[b:e], offsets relative to the data section.
 * "__metadata__" (optional) maps strings to strings. The tensors must cover
 * the data section exactly, back to back from offset 0.
 *
 * st_parse() validates a whole file image in the documented order and fails
 * with the category of that table (err.category): truncated,
 * header_too_large, invalid_header, invalid_dtype, invalid_offsets, overflow,
 * shape_mismatch, trailing_data, or limit_exceeded for the service limits
 * (struct ckpt_limits: header bytes, tensor count, rank 16, names of 4 KiB).
 * Decisions the format leaves open: the header is parsed by our own strict
 * JSON reader: duplicate keys, NUL in names or metadata, and shape or offset
 * numbers written with a sign, fraction or exponent ("0.0", "1e3") are
 * invalid_header. Integers are read exactly from their text, so the whole
 * u64 range is kept as the Rust reference keeps it (no double rounding:
 * 2^53+1 stays 2^53+1) and larger literals are invalid_header; a shape
 * dimension above 2^63-1 is overflow. Unknown fields inside a tensor entry
 * are ignored (as the Rust reference does), whatever JSON value they hold.
 *
 * Ownership: st_parse() returns a new struct st_file that borrows `buf`: the
 * buffer must outlive it. The ckpt loader reads only the header of a file
 * (8 + N bytes, within max_header_bytes) and reads tensors with pread. Tensor records, names and
 * metadata strings are borrowed: valid until st_free(). Read-only after
 * st_parse(): safe to share between threads.
 */
#ifndef CORE_SAFETENSORS_H
#define CORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/formats/ckpt.h"
#include "core/dtype.h"
#include "core/err.h"

#define ST_HEADER_FORMAT_MAX 100000000u /* the format's own limit on N */
#define ST_NAME_MAX          4096       /* longest tensor name accepted, bytes */

struct st_file; /* opaque */

struct st_tensor {                /* plain data, borrowed from the st_file */
    const char *name;             /* NUL-terminated, UTF-8, no NUL inside */
    size_t name_len;              /* bytes, without the terminator */
    enum dtype dtype;             /* never C128 (not a safetensors code) */
    int ndim;                     /* 0 .. CKPT_MAX_RANK */
    int64_t shape[CKPT_MAX_RANK]; /* each <= INT64_MAX */
    uint64_t n_elems;             /* product of shape */
    uint64_t begin, end;          /* data_offsets, relative to the data section */
    const unsigned char *data;    /* end - begin bytes, borrowed from st_parse's buffer;
                                     NULL in a checkpoint opened from a file (the bytes
                                     are read by ckpt_tensor_read) */
};

/* --- Parse and free ------------------------------------------------------ */

/* Parse and validate the safetensors image `buf` (`len` bytes; may be NULL
 * when len is 0). `l` may be NULL (ckpt_limits_default). On success *out is
 * a new st_file borrowing `buf`; free with st_free(). On failure *out is
 * NULL and `e` names the tensor and the numbers involved. */
enum err_code st_parse(const unsigned char *buf, uint64_t len, const struct ckpt_limits *l,
                       struct st_file **out, struct err *e);

/* Free `f`. NULL is a no-op. Cannot fail. */
void st_free(struct st_file *f);

/* --- Query --------------------------------------------------------------- */

/* Header length N and the data section's length (file size - 8 - N). */
uint64_t st_header_len(const struct st_file *f);
uint64_t st_data_len(const struct st_file *f);

/* Number of tensors and tensor `i` (< st_n_tensors) in data-offset order
 * (ties, i.e. empty tensors at one offset, keep header order). Borrowed. */
size_t st_n_tensors(const struct st_file *f);
const struct st_tensor *st_tensor_at(const struct st_file *f, size_t i);

/* The tensor named `name` (`name_len` bytes), or NULL if there is none.
 * O(log n). Borrowed. */
const struct st_tensor *st_tensor_find(const struct st_file *f, const char *name, size_t name_len);

/* "__metadata__": number of entries, entry `i` (< st_n_metadata) in header
 * order, and the value of `key` (NULL if absent). Strings are borrowed. */
size_t st_n_metadata(const struct st_file *f);
void st_metadata_at(const struct st_file *f, size_t i, const char **key, const char **value);
const char *st_metadata_get(const struct st_file *f, const char *key);

/* The st_file behind a checkpoint opened as CKPT_FORMAT_SAFETENSORS (for
 * its metadata), or NULL for any other checkpoint. Borrowed: valid until
 * ckpt_close(c). */
const struct st_file *st_ckpt_file(const struct ckpt *c);

#endif /* CORE_SAFETENSORS_H */
