/* dtype.h -- element types of checkpoint tensors and their decoding to double.
 *
 * The codes are the safetensors dtype codes (docs/checkpoint-formats.md, safetensors), which every
 * reader maps its own types onto (torch storage classes, NumPy descrs), plus
 * C128 that torch and NumPy can hold, plus the block-quantized types of ggml
 * (GGUF files, docs/gguf.md), which are not safetensors codes. Decoding reads
 * little-endian bytes of any alignment. Stateless, const tables only:
 * thread-safe.
 */
#ifndef CORE_DTYPE_H
#define CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#define DTYPE_MAP(X)                 \
    X(F64, "F64", 64)                \
    X(F32, "F32", 32)                \
    X(F16, "F16", 16)                \
    X(BF16, "BF16", 16)              \
    X(F8_E4M3, "F8_E4M3", 8)         \
    X(F8_E5M2, "F8_E5M2", 8)         \
    X(F8_E4M3FNUZ, "F8_E4M3FNUZ", 8) \
    X(F8_E5M2FNUZ, "F8_E5M2FNUZ", 8) \
    X(F8_E8M0, "F8_E8M0", 8)         \
    X(F4, "F4", 4)                   \
    X(F6_E2M3, "F6_E2M3", 6)         \
    X(F6_E3M2, "F6_E3M2", 6)         \
    X(I64, "I64", 64)                \
    X(I32, "I32", 32)                \
    X(I16, "I16", 16)                \
    X(I8, "I8", 8)                   \
    X(U64, "U64", 64)                \
    X(U32, "U32", 32)                \
    X(U16, "U16", 16)                \
    X(U8, "U8", 8)                   \
    X(BOOL, "BOOL", 8)               \
    X(C64, "C64", 64)                \
    X(C128, "C128", 128)

/* ggml's block-quantized types (ggml.h enum ggml_type, ggml 0.23.0): name,
 * ggml type id, elements per block, bytes per block. The first ten are
 * decoded (dtype_ggml_to_f32, bitwise as ggml's own to_float); the others
 * are listed with their geometry but not decoded. */
#define DTYPE_GGML_MAP(X)              \
    X(Q4_0, "Q4_0", 2, 32, 18)         \
    X(Q4_1, "Q4_1", 3, 32, 20)         \
    X(Q5_0, "Q5_0", 6, 32, 22)         \
    X(Q5_1, "Q5_1", 7, 32, 24)         \
    X(Q8_0, "Q8_0", 8, 32, 34)         \
    X(Q2_K, "Q2_K", 10, 256, 84)       \
    X(Q3_K, "Q3_K", 11, 256, 110)      \
    X(Q4_K, "Q4_K", 12, 256, 144)      \
    X(Q5_K, "Q5_K", 13, 256, 176)      \
    X(Q6_K, "Q6_K", 14, 256, 210)      \
    X(Q8_1, "Q8_1", 9, 32, 36)         \
    X(Q8_K, "Q8_K", 15, 256, 292)      \
    X(IQ2_XXS, "IQ2_XXS", 16, 256, 66) \
    X(IQ2_XS, "IQ2_XS", 17, 256, 74)   \
    X(IQ3_XXS, "IQ3_XXS", 18, 256, 98) \
    X(IQ1_S, "IQ1_S", 19, 256, 50)     \
    X(IQ4_NL, "IQ4_NL", 20, 32, 18)    \
    X(IQ3_S, "IQ3_S", 21, 256, 110)    \
    X(IQ2_S, "IQ2_S", 22, 256, 82)     \
    X(IQ4_XS, "IQ4_XS", 23, 256, 136)  \
    X(IQ1_M, "IQ1_M", 29, 256, 56)     \
    X(TQ1_0, "TQ1_0", 34, 256, 54)     \
    X(TQ2_0, "TQ2_0", 35, 256, 66)     \
    X(MXFP4, "MXFP4", 39, 32, 17)      \
    X(NVFP4, "NVFP4", 40, 64, 36)      \
    X(Q1_0, "Q1_0", 41, 128, 18)       \
    X(Q2_0, "Q2_0", 42, 64, 18)

/* The ggml types are numbered after the element types, so the values of the
 * element types (stored in databases) never change. */
enum dtype {
#define X(name, code, bits) DTYPE_##name,
    DTYPE_MAP(X)
#undef X
#define X(name, code, id, blck, size) DTYPE_##name,
        DTYPE_GGML_MAP(X)
#undef X
            DTYPE_COUNT
};

/* The dtype whose safetensors code is exactly `code` (case-sensitive, `len`
 * bytes, not NUL-terminated), or -1 if none. C128 is not a safetensors code
 * and is not found here. */
int dtype_from_code(const char *code, size_t len);

/* The dtype whose name (dtype_name) is exactly `name` (`len` bytes): every
 * dtype, C128 and the ggml types included; -1 if none. For reading back
 * names farmsd stored itself. */
int dtype_from_name(const char *name, size_t len);

/* The code ("F32", ...). Never NULL for a valid dtype. */
const char *dtype_name(enum dtype t);

/* Bits per element (4, 6, 8, 16, 32, 64, 128); 0 for the ggml block types. */
unsigned dtype_bits(enum dtype t);

/* Bytes per element, 0 for sub-byte and ggml block types. */
size_t dtype_size(enum dtype t);

/* Bytes that `n_elems` elements of `t` take in *nbytes: (n * bits + 7) / 8,
 * or whole ggml blocks. Returns 0, or -1 when the size overflows 64 bits, -2
 * when `n_elems` is not a whole number of ggml blocks. Cannot fail otherwise. */
int dtype_nbytes(enum dtype t, uint64_t n_elems, uint64_t *nbytes);

/* 1 if the analysis takes tensors of this type (F64, F32, F16, BF16 and the
 * decoded ggml types Q4_0 ... Q6_K), else 0. */
int dtype_is_analysable(enum dtype t);

/* 1 if dtype_to_f64() decodes this type (every non-complex type of 8 or more
 * bits except F8_E8M0, and the decoded ggml types), else 0. */
int dtype_is_decodable(enum dtype t);

/* Decode `n` little-endian elements at `src` (any alignment) into `dst`.
 * `t` must be decodable (checked by the caller; asserted); for a ggml type
 * `n` must be a whole number of blocks (asserted). Cannot fail. */
void dtype_to_f64(enum dtype t, const void *src, size_t n, double *dst);

/* --- ggml block types (dtype_ggml.c) ------------------------------------- */

/* 1 if `t` is one of DTYPE_GGML_MAP, else 0. */
int dtype_is_ggml(enum dtype t);

/* Elements and bytes per block of a ggml type (1 and dtype_size() for the
 * others, 0 and 0 for sub-byte types). */
unsigned dtype_block_elems(enum dtype t);
unsigned dtype_block_bytes(enum dtype t);

/* The dtype of ggml type id `id` (GGUF tensor info): F32, F16, BF16, F64,
 * I8 ... I64 and every DTYPE_GGML_MAP type; -1 for ids ggml removed or does
 * not have. */
int dtype_from_ggml(uint32_t id);

/* Decode `n` elements (a whole number of blocks, asserted) of the decoded
 * ggml type `t` at `src` to float32 exactly as ggml's dequantize_row_* does,
 * value for value and bit for bit. Cannot fail. */
void dtype_ggml_to_f32(enum dtype t, const void *src, size_t n, float *dst);

/* One IEEE binary16 / bfloat16 value to float (exact). */
float dtype_f16_to_f32(uint16_t h);
float dtype_bf16_to_f32(uint16_t h);

#endif /* CORE_DTYPE_H */
