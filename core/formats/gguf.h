/* gguf.h -- GGUF files (llama.cpp / ggml), versions 2 and 3 (docs/gguf.md).
 *
 * Layout: "GGUF", u32 version, u64 tensor count, u64 metadata count; the
 * metadata key/value pairs; one info per tensor (name, n_dims, ne[] in ggml
 * order, ggml type, offset into the data section); padding to the alignment
 * (general.alignment, default 32); the data section. Little-endian only: a
 * big-endian file is refused ("unsupported_format"), as is version 1.
 *
 * gguf_parse() reads and validates the header of an rfile (a file or a
 * buffer) without reading tensor data: every value type of the metadata
 * (arrays, nested arrays, strings) within the ckpt limits, n_dims <= 4,
 * known ggml types, rows of whole blocks, offsets aligned, every tensor
 * inside the file and no two overlapping. The ckpt loader (gguf.c) lists the
 * tensors with the shape reversed to PyTorch order ([out, in]) and reads
 * their stored (quantized) bytes.
 *
 * Ownership: a struct gguf_file is filled by gguf_parse() and owns its
 * arrays; free it with gguf_file_free(). Thread-safety: none needed (plain
 * data, read-only after parsing).
 */
#ifndef CORE_FORMATS_GGUF_H
#define CORE_FORMATS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/err.h"
#include "core/formats/ckpt.h"
#include "core/formats/rfile.h"

#define GGUF_MAX_DIMS          4  /* GGML_MAX_DIMS */
#define GGUF_DEFAULT_ALIGNMENT 32 /* GGUF_DEFAULT_ALIGNMENT */
#define GGUF_MAX_ARRAY_DEPTH   8  /* arrays of arrays nest at most this deep */

struct gguf_tensor {           /* plain data, owned by the gguf_file */
    char *name;                /* owned, NUL-terminated (names hold no NUL) */
    uint32_t ggml_type;        /* the type id as stored */
    enum dtype dtype;          /* dtype_from_ggml(ggml_type) */
    int n_dims;                /* 1 .. GGUF_MAX_DIMS */
    int64_t ne[GGUF_MAX_DIMS]; /* extents in ggml order: ne[0] is the row length */
    uint64_t offset;           /* first byte, from the start of the file */
    uint64_t nbytes;           /* stored bytes */
};

struct gguf_file {
    uint32_t version;            /* 2 or 3 */
    uint64_t n_kv;               /* metadata pairs */
    uint32_t alignment;          /* general.alignment or 32 */
    uint64_t data_start;         /* start of the data section, from the start of the file */
    char *architecture;          /* general.architecture (owned), or NULL */
    struct gguf_tensor *tensors; /* owned, n_tensors, in file order */
    size_t n_tensors;
};

/* Parse the header of `f` within `l` (NULL: defaults) into *out (zeroed
 * first). Categories: truncated (the file ends inside the header or a tensor),
 * invalid_header (bad magic, n_dims, negative extent, duplicate name, bad
 * alignment value or type of general.alignment, unknown metadata value type,
 * unaligned offset, overlapping tensors), unsupported_format (version 1,
 * versions above 3, big-endian), invalid_dtype (a ggml type id ggml does not
 * have), shape_mismatch (a row that is not whole blocks), overflow (sizes past
 * 64 bits), limit_exceeded (counts, strings, array nesting, tensors, or
 * metadata and tensor infos together, over the limits: max_header_bytes,
 * max_tensors). On failure *out is freed and zeroed. */
enum err_code gguf_parse(const struct rfile *f, const struct ckpt_limits *l, struct gguf_file *out,
                         struct err *e);

/* Free what gguf_parse() filled in and zero *g. NULL-safe. Cannot fail. */
void gguf_file_free(struct gguf_file *g);

#endif /* CORE_FORMATS_GGUF_H */
