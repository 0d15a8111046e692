/* dtype.h -- element types of checkpoint tensors and their decoding to double.
 *
 * The codes are the safetensors dtype codes (docs/checkpoint-formats.md, safetensors), which every
 * reader maps its own types onto (torch storage classes, NumPy descrs), plus
 * C128 that torch and NumPy can hold. Decoding reads little-endian bytes of
 * any alignment. Stateless, const tables only: thread-safe.
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

enum dtype {
#define X(name, code, bits) DTYPE_##name,
    DTYPE_MAP(X)
#undef X
        DTYPE_COUNT
};

/* The dtype whose safetensors code is exactly `code` (case-sensitive, `len`
 * bytes, not NUL-terminated), or -1 if none. C128 is not a safetensors code
 * and is not found here. */
int dtype_from_code(const char *code, size_t len);

/* The code ("F32", ...). Never NULL for a valid dtype. */
const char *dtype_name(enum dtype t);

/* Bits per element (4, 6, 8, 16, 32, 64, 128). */
unsigned dtype_bits(enum dtype t);

/* Bytes per element, 0 for sub-byte types. */
size_t dtype_size(enum dtype t);

/* 1 if the analysis takes tensors of this type (F64, F32, F16, BF16), else 0. */
int dtype_is_analysable(enum dtype t);

/* 1 if dtype_to_f64() decodes this type (every non-complex type of 8 or more
 * bits except F8_E8M0), else 0. */
int dtype_is_decodable(enum dtype t);

/* Decode `n` little-endian elements at `src` (any alignment) into `dst`.
 * `t` must be decodable (checked by the caller; asserted). Cannot fail. */
void dtype_to_f64(enum dtype t, const void *src, size_t n, double *dst);

/* One IEEE binary16 / bfloat16 value to float (exact). */
float dtype_f16_to_f32(uint16_t h);
float dtype_bf16_to_f32(uint16_t h);

#endif /* CORE_DTYPE_H */
