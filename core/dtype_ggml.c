/* dtype_ggml.c -- ggml's block-quantized types: geometry and decoding to
 * float32 (see dtype.h, docs/gguf.md).
 *
 * The decoders reproduce ggml's dequantize_row_* (ggml/src/ggml-quants.c,
 * ggml 0.23.0 as shipped in @node-llama-cpp/linux-x64 3.21.1) value for
 * value: the same float32 operations in the same order. Each product and
 * sum is its own statement, so no compiler may fuse them into one FMA
 * (C11 6.5p8 contracts only within an expression). Blocks are read byte by
 * byte (little-endian), so any alignment works. Stateless: thread-safe.
 */
#include "core/dtype.h"

#include <string.h>

#include "core/err.h"

#define DTYPE_QK_K 256 /* elements of a K-quant super-block */

static const struct {
    uint32_t id;
    unsigned blck, size;
} dtype_ggml_geom[] = {
#define X(name, code, id, blck, size) {id, blck, size},
    DTYPE_GGML_MAP(X)
#undef X
};

/* --- Geometry --------------------------------------------------------------- */

int dtype_is_ggml(enum dtype t)
{
    return t >= DTYPE_Q4_0 && t < DTYPE_COUNT;
}

unsigned dtype_block_elems(enum dtype t)
{
    if (dtype_is_ggml(t))
        return dtype_ggml_geom[t - DTYPE_Q4_0].blck;
    return dtype_size(t) > 0 ? 1 : 0;
}

unsigned dtype_block_bytes(enum dtype t)
{
    if (dtype_is_ggml(t))
        return dtype_ggml_geom[t - DTYPE_Q4_0].size;
    return (unsigned)dtype_size(t);
}

int dtype_from_ggml(uint32_t id)
{
    switch (id) { /* ggml's element types */
    case 0: return DTYPE_F32;
    case 1: return DTYPE_F16;
    case 24: return DTYPE_I8;
    case 25: return DTYPE_I16;
    case 26: return DTYPE_I32;
    case 27: return DTYPE_I64;
    case 28: return DTYPE_F64;
    case 30: return DTYPE_BF16;
    default: break;
    }
    for (size_t i = 0; i < sizeof(dtype_ggml_geom) / sizeof(dtype_ggml_geom[0]); i++)
        if (dtype_ggml_geom[i].id == id)
            return DTYPE_Q4_0 + (int)i;
    return -1;
}

/* --- Block fields ------------------------------------------------------------- */

static float dtype_half(const unsigned char *p)
{
    return dtype_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* A float32 product and difference, kept apart (no FMA). */
static float dtype_mul_sub(float a, float b, float c)
{
    float p = a * b;
    return p - c;
}

static float dtype_mul_add(float a, float b, float c)
{
    float p = a * b;
    return p + c;
}

/* --- 32-element blocks ------------------------------------------------------ */

/* Q4_0: f16 d, 16 bytes of nibbles (low nibbles first, then high), (q - 8) d.
 * Q4_1: f16 d, f16 m, nibbles, q d + m. */
static void dtype_q4(const unsigned char *b, int with_min, float *y)
{
    float d = dtype_half(b), m = with_min ? dtype_half(b + 2) : 0.0f;
    const unsigned char *qs = b + (with_min ? 4 : 2);

    for (int j = 0; j < 16; j++) {
        int lo = qs[j] & 0x0F, hi = qs[j] >> 4;
        if (with_min) {
            y[j] = dtype_mul_add((float)lo, d, m);
            y[j + 16] = dtype_mul_add((float)hi, d, m);
        } else {
            y[j] = (float)(lo - 8) * d;
            y[j + 16] = (float)(hi - 8) * d;
        }
    }
}

/* Q5_0: f16 d, u32 high bits, nibbles, (q - 16) d. Q5_1: f16 d, f16 m,
 * u32 high bits, nibbles, q d + m. */
static void dtype_q5(const unsigned char *b, int with_min, float *y)
{
    float d = dtype_half(b), m = with_min ? dtype_half(b + 2) : 0.0f;
    const unsigned char *h = b + (with_min ? 4 : 2), *qs = h + 4;
    uint32_t qh =
        (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;

    for (int j = 0; j < 16; j++) {
        int x0 = (qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
        int x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
        if (with_min) {
            y[j] = dtype_mul_add((float)x0, d, m);
            y[j + 16] = dtype_mul_add((float)x1, d, m);
        } else {
            y[j] = (float)(x0 - 16) * d;
            y[j + 16] = (float)(x1 - 16) * d;
        }
    }
}

/* Q8_0: f16 d, 32 signed bytes, q d. */
static void dtype_q8_0(const unsigned char *b, float *y)
{
    float d = dtype_half(b);

    for (int j = 0; j < 32; j++)
        y[j] = (float)(int8_t)b[2 + j] * d;
}

/* --- K-quants (256-element super-blocks) ------------------------------------- */

/* Q2_K: 16 scale bytes (low nibble scale, high nibble min), 64 bytes of
 * 2-bit quants, f16 d, f16 dmin; (d sc) q - (dmin m) per 16 values. */
static void dtype_q2_k(const unsigned char *b, float *y)
{
    const unsigned char *sc = b, *q = b + 16;
    float d = dtype_half(b + 80), dmin = dtype_half(b + 82);
    int is = 0;

    for (int n = 0; n < DTYPE_QK_K; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2)
            for (int half = 0; half < 2; half++, is++) {
                float dl = d * (float)(sc[is] & 0xF), ml = dmin * (float)(sc[is] >> 4);
                for (int l = 0; l < 16; l++)
                    *y++ = dtype_mul_sub(dl, (float)((q[l + 16 * half] >> shift) & 3), ml);
            }
}

/* The sixteen 6-bit scales of Q3_K, packed in 12 bytes: low nibbles in
 * bytes 0-7 (two per byte), the two high bits in bytes 8-11. */
static int dtype_q3_k_scale(const unsigned char *s, int j)
{
    int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | hi << 4) - 32;
}

/* Q3_K: 32 bytes of high-bit mask, 64 bytes of 2-bit quants, 12 scale
 * bytes, f16 d; (d sc) (q - 4 if its mask bit is clear). */
static void dtype_q3_k(const unsigned char *b, float *y)
{
    const unsigned char *hm = b, *q = b + 32, *s = b + 96;
    float d = dtype_half(b + 108);
    unsigned m = 1;
    int is = 0;

    for (int n = 0; n < DTYPE_QK_K; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2, m <<= 1)
            for (int half = 0; half < 2; half++, is++) {
                float dl = d * (float)dtype_q3_k_scale(s, is);
                for (int l = 0; l < 16; l++) {
                    int k = l + 16 * half;
                    int v = ((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4);
                    *y++ = dl * (float)v;
                }
            }
}

/* Scale and min `j` (0..7) of Q4_K / Q5_K, 6 bits each in 12 bytes. */
static void dtype_k4_scale(const unsigned char *q, int j, int *sc, int *mn)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K: f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles. Q5_K: the
 * same with 32 bytes of fifth bits before the nibbles. Per 32 values
 * (d sc) q - (dmin m). */
static void dtype_q45_k(const unsigned char *b, int five, float *y)
{
    float d = dtype_half(b), dmin = dtype_half(b + 2);
    const unsigned char *s = b + 4, *qh = b + 16, *ql = b + (five ? 48 : 16);
    unsigned u1 = 1, u2 = 2;

    for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
        int sc, mn;
        dtype_k4_scale(s, is, &sc, &mn);
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        dtype_k4_scale(s, is + 1, &sc, &mn);
        float d2 = d * (float)sc, m2 = dmin * (float)mn;
        for (int l = 0; l < 32; l++)
            *y++ = dtype_mul_sub(d1, (float)((ql[l] & 0xF) + (five && (qh[l] & u1) ? 16 : 0)), m1);
        for (int l = 0; l < 32; l++)
            *y++ = dtype_mul_sub(d2, (float)((ql[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)), m2);
    }
}

/* Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed
 * scales, f16 d; (d sc) (q - 32). */
static void dtype_q6_k(const unsigned char *b, float *y)
{
    const unsigned char *ql = b, *qh = b + 128, *s = b + 192;
    float d = dtype_half(b + 208);

    for (int n = 0; n < DTYPE_QK_K; n += 128, y += 128, ql += 64, qh += 32, s += 8)
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            float d1 = d * (float)(int8_t)s[is], d2 = d * (float)(int8_t)s[is + 2];
            float d3 = d * (float)(int8_t)s[is + 4], d4 = d * (float)(int8_t)s[is + 6];
            y[l] = d1 * (float)q1;
            y[l + 32] = d2 * (float)q2;
            y[l + 64] = d3 * (float)q3;
            y[l + 96] = d4 * (float)q4;
        }
}

/* --- Rows ---------------------------------------------------------------------- */

static void dtype_ggml_block(enum dtype t, const unsigned char *b, float *y)
{
    switch (t) {
    case DTYPE_Q4_0: dtype_q4(b, 0, y); break;
    case DTYPE_Q4_1: dtype_q4(b, 1, y); break;
    case DTYPE_Q5_0: dtype_q5(b, 0, y); break;
    case DTYPE_Q5_1: dtype_q5(b, 1, y); break;
    case DTYPE_Q8_0: dtype_q8_0(b, y); break;
    case DTYPE_Q2_K: dtype_q2_k(b, y); break;
    case DTYPE_Q3_K: dtype_q3_k(b, y); break;
    case DTYPE_Q4_K: dtype_q45_k(b, 0, y); break;
    case DTYPE_Q5_K: dtype_q45_k(b, 1, y); break;
    case DTYPE_Q6_K: dtype_q6_k(b, y); break;
    default: err_abort("dtype_ggml_block: ggml type not decoded", __FILE__, __LINE__);
    }
}

void dtype_ggml_to_f32(enum dtype t, const void *src, size_t n, float *dst)
{
    const unsigned char *p = src;
    size_t blck = dtype_block_elems(t), bytes = dtype_block_bytes(t);

    ERR_ASSERT(dtype_is_ggml(t) && dtype_is_decodable(t) && n % blck == 0);
    for (size_t i = 0; i < n / blck; i++)
        dtype_ggml_block(t, p + i * bytes, dst + i * blck);
}
