/* dtype.c -- see dtype.h. */
#include "core/dtype.h"

#include <math.h>
#include <string.h>

#include "core/err.h"

static const struct {
    const char *code;
    unsigned bits;
} dtype_table[DTYPE_COUNT] = {
#define X(name, code, bits) {code, bits},
    DTYPE_MAP(X)
#undef X
#define X(name, code, id, blck, size) {code, 0},
        DTYPE_GGML_MAP(X)
#undef X
};

int dtype_from_code(const char *code, size_t len)
{
    for (int i = 0; i < DTYPE_C128; i++) { /* C128 and the ggml types are not codes */
        if (strlen(dtype_table[i].code) == len && memcmp(dtype_table[i].code, code, len) == 0)
            return i;
    }
    return -1;
}

int dtype_from_name(const char *name, size_t len)
{
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (strlen(dtype_table[i].code) == len && memcmp(dtype_table[i].code, name, len) == 0)
            return i;
    return -1;
}

const char *dtype_name(enum dtype t)
{
    ERR_ASSERT((unsigned)t < DTYPE_COUNT);
    return dtype_table[t].code;
}

unsigned dtype_bits(enum dtype t)
{
    ERR_ASSERT((unsigned)t < DTYPE_COUNT);
    return dtype_table[t].bits;
}

size_t dtype_size(enum dtype t)
{
    return dtype_bits(t) % 8 == 0 ? dtype_bits(t) / 8 : 0;
}

int dtype_nbytes(enum dtype t, uint64_t n_elems, uint64_t *nbytes)
{
    uint64_t bits = dtype_bits(t), blck = dtype_block_elems(t);

    *nbytes = 0;
    if (dtype_is_ggml(t)) {
        if (n_elems % blck != 0)
            return -2;
        if (n_elems / blck > UINT64_MAX / dtype_block_bytes(t))
            return -1;
        *nbytes = n_elems / blck * dtype_block_bytes(t);
        return 0;
    }
    if (n_elems != 0 && n_elems > (UINT64_MAX - 7) / bits)
        return -1;
    *nbytes = (n_elems * bits + 7) / 8;
    return 0;
}

/* The ggml types dtype_ggml_to_f32() decodes. */
static int dtype_ggml_decoded(enum dtype t)
{
    return t >= DTYPE_Q4_0 && t <= DTYPE_Q6_K;
}

int dtype_is_analysable(enum dtype t)
{
    return t == DTYPE_F64 || t == DTYPE_F32 || t == DTYPE_F16 || t == DTYPE_BF16 ||
           dtype_ggml_decoded(t);
}

int dtype_is_decodable(enum dtype t)
{
    if (dtype_is_ggml(t))
        return dtype_ggml_decoded(t);
    switch (t) {
    case DTYPE_F8_E8M0:
    case DTYPE_F4:
    case DTYPE_F6_E2M3:
    case DTYPE_F6_E3M2:
    case DTYPE_C64:
    case DTYPE_C128:
    case DTYPE_COUNT: return 0;
    default: return 1;
    }
}

float dtype_f16_to_f32(uint16_t h)
{
    unsigned sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v;

    if (exp == 0)
        v = ldexpf((float)man, -24); /* zero and subnormals: m * 2^-24 */
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexpf((float)(man | 0x400), (int)exp - 25);
    return sign ? -v : v;
}

float dtype_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}

/* An 8-bit float with `ebits` exponent bits, the given bias, `mbits` mantissa
 * bits. `fnuz`: only 0x80 is NaN, no infinities, no -0. `fn` (E4M3FN): no
 * infinities, S.1111.111 is NaN. Otherwise IEEE-style infinities and NaNs. */
static double dtype_f8(uint8_t b, int mbits, int bias, int fn, int fnuz)
{
    int ebits = 7 - mbits;
    unsigned sign = b >> 7, exp = (b >> mbits) & ((1u << ebits) - 1), man = b & ((1u << mbits) - 1);
    unsigned emax = (1u << ebits) - 1;
    double v;

    if (fnuz && b == 0x80)
        return NAN;
    if (fn && exp == emax && man == (1u << mbits) - 1)
        return NAN;
    if (!fn && !fnuz && exp == emax)
        return man ? NAN : (sign ? -INFINITY : INFINITY);
    if (exp == 0)
        v = ldexp((double)man, 1 - bias - mbits);
    else
        v = ldexp((double)(man | (1u << mbits)), (int)exp - bias - mbits);
    return sign ? -v : v;
}

/* Decode ggml blocks one at a time through a float buffer. */
#define DTYPE_GGML_BLOCK_MAX 256 /* the largest block of a decoded ggml type (K-quants) */

static void dtype_ggml_to_f64(enum dtype t, const unsigned char *p, size_t n, double *dst)
{
    size_t blck = dtype_block_elems(t), bytes = dtype_block_bytes(t);
    float f[DTYPE_GGML_BLOCK_MAX];

    ERR_ASSERT(blck <= DTYPE_GGML_BLOCK_MAX && n % blck == 0);
    for (size_t i = 0; i < n; i += blck) {
        dtype_ggml_to_f32(t, p + i / blck * bytes, blck, f);
        for (size_t j = 0; j < blck; j++)
            dst[i + j] = f[j];
    }
}

static uint64_t dtype_load_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static double dtype_one(enum dtype t, const unsigned char *p)
{
    uint64_t u;
    float f;
    double d;

    switch (t) {
    case DTYPE_F64:
        u = dtype_load_le(p, 8);
        memcpy(&d, &u, 8);
        return d;
    case DTYPE_F32: {
        uint32_t w = (uint32_t)dtype_load_le(p, 4);
        memcpy(&f, &w, 4);
        return f;
    }
    case DTYPE_F16: return dtype_f16_to_f32((uint16_t)dtype_load_le(p, 2));
    case DTYPE_BF16: return dtype_bf16_to_f32((uint16_t)dtype_load_le(p, 2));
    case DTYPE_F8_E4M3: return dtype_f8(p[0], 3, 7, 1, 0);
    case DTYPE_F8_E5M2: return dtype_f8(p[0], 2, 15, 0, 0);
    case DTYPE_F8_E4M3FNUZ: return dtype_f8(p[0], 3, 8, 0, 1);
    case DTYPE_F8_E5M2FNUZ: return dtype_f8(p[0], 2, 16, 0, 1);
    case DTYPE_I64: return (double)(int64_t)dtype_load_le(p, 8);
    case DTYPE_I32: return (double)(int32_t)(uint32_t)dtype_load_le(p, 4);
    case DTYPE_I16: return (double)(int16_t)(uint16_t)dtype_load_le(p, 2);
    case DTYPE_I8: return (double)(int8_t)p[0];
    case DTYPE_U64: return (double)dtype_load_le(p, 8);
    case DTYPE_U32: return (double)dtype_load_le(p, 4);
    case DTYPE_U16: return (double)dtype_load_le(p, 2);
    case DTYPE_U8:
    case DTYPE_BOOL: return (double)p[0];
    default: err_abort("dtype_one: dtype not decodable", __FILE__, __LINE__);
    }
    return 0.0;
}

/* F16 -> float64 without a call per element (the engine converts every
 * weight; ldexpf per element ran at ~30 M values/s): a normal half is a
 * float32 with the exponent rebiased (15 -> 127) and the mantissa shifted;
 * zeros, subnormals, infinities and NaNs take dtype_f16_to_f32. Same values. */
static void dtype_f16_run(const unsigned char *p, size_t n, double *dst)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t h = (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8, exp = (h >> 10) & 0x1f;
        uint32_t u = (h & 0x8000) << 16 | (exp + 112) << 23 | (h & 0x3ff) << 13;
        float f;
        memcpy(&f, &u, 4);
        dst[i] = exp == 0 || exp == 31 ? (double)dtype_f16_to_f32((uint16_t)h) : (double)f;
    }
}

void dtype_to_f64(enum dtype t, const void *src, size_t n, double *dst)
{
    const unsigned char *p = src;
    size_t sz = dtype_size(t);

    ERR_ASSERT(dtype_is_decodable(t));
    if (dtype_is_ggml(t)) {
        dtype_ggml_to_f64(t, src, n, dst);
        return;
    }
    if (t == DTYPE_F32) { /* the hot path: widen without the switch */
        for (size_t i = 0; i < n; i++) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            dst[i] = f;
        }
        return;
    }
    if (t == DTYPE_F16) {
        dtype_f16_run(p, n, dst);
        return;
    }
    if (t == DTYPE_BF16) { /* the top half of a float32 */
        for (size_t i = 0; i < n; i++) {
            uint32_t u = ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8) << 16;
            float f;
            memcpy(&f, &u, 4);
            dst[i] = f;
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = dtype_one(t, p + i * sz);
}
