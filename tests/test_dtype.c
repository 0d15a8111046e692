/* test_dtype.c -- dtype codes and exact decoding of every float format. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "tests/check.h"

static void test_codes_round_trip(void)
{
    CHECK_EQ_INT(dtype_from_code("F32", 3), DTYPE_F32);
    CHECK_EQ_INT(dtype_from_code("BF16", 4), DTYPE_BF16);
    CHECK_EQ_INT(dtype_from_code("F8_E4M3", 7), DTYPE_F8_E4M3);
    CHECK_EQ_INT(dtype_from_code("f32", 3), -1);          /* case-sensitive */
    CHECK_EQ_INT(dtype_from_code("C128", 4), -1);         /* not a safetensors code */
    CHECK_EQ_INT(dtype_from_code("Q4_K", 4), -1);         /* nor are the ggml types */
    CHECK_EQ_INT(dtype_from_name("C128", 4), DTYPE_C128); /* names read back from storage */
    CHECK_EQ_INT(dtype_from_name("Q4_K", 4), DTYPE_Q4_K);
    CHECK_EQ_INT(dtype_from_name("q4_K", 4), -1);
    CHECK_EQ_INT(dtype_from_code("F12", 3), -1);
    CHECK_STR_EQ(dtype_name(DTYPE_U16), "U16");
    CHECK_EQ_INT(dtype_bits(DTYPE_F6_E2M3), 6);
    CHECK_EQ_INT(dtype_size(DTYPE_F4), 0);
    CHECK_EQ_INT(dtype_size(DTYPE_C64), 8);
}

static void test_f16_decodes_subnormals_inf_nan(void)
{
    CHECK_NEAR(dtype_f16_to_f32(0x3c00), 1.0, 0);
    CHECK_NEAR(dtype_f16_to_f32(0xc000), -2.0, 0);
    CHECK_NEAR(dtype_f16_to_f32(0x0001), ldexp(1.0, -24), 0); /* smallest subnormal */
    CHECK_NEAR(dtype_f16_to_f32(0x7bff), 65504.0, 0);         /* largest finite */
    CHECK(isinf(dtype_f16_to_f32(0x7c00)));
    CHECK(isnan(dtype_f16_to_f32(0x7e00)));
    CHECK(signbit(dtype_f16_to_f32(0x8000)));
}

static void test_bf16_is_upper_half_of_f32(void)
{
    CHECK_NEAR(dtype_bf16_to_f32(0x3f80), 1.0, 0);
    CHECK_NEAR(dtype_bf16_to_f32(0x4049), 3.140625, 0);
}

/* The bulk F16 and BF16 paths of dtype_to_f64 give, for every one of the
 * 65536 bit patterns, the value of the one-element decoders (NaN as NaN,
 * the sign of zero kept), read from an odd address. */
static void test_bulk_half_paths_match_every_pattern(void)
{
    unsigned char *buf = malloc(2 * 65536 + 1);
    double *out = malloc(65536 * sizeof(double));
    int64_t bad16 = 0, bad_bf = 0;

    CHECK(buf != NULL && out != NULL);
    if (buf == NULL || out == NULL)
        goto out;
    for (uint32_t h = 0; h < 65536; h++) {
        buf[1 + 2 * h] = (unsigned char)(h & 0xff);
        buf[2 + 2 * h] = (unsigned char)(h >> 8);
    }
    dtype_to_f64(DTYPE_F16, buf + 1, 65536, out);
    for (uint32_t h = 0; h < 65536; h++) {
        double want = dtype_f16_to_f32((uint16_t)h);
        bad16 += isnan(want) ? !isnan(out[h]) : out[h] != want || signbit(out[h]) != signbit(want);
    }
    dtype_to_f64(DTYPE_BF16, buf + 1, 65536, out);
    for (uint32_t h = 0; h < 65536; h++) {
        double want = dtype_bf16_to_f32((uint16_t)h);
        bad_bf += isnan(want) ? !isnan(out[h]) : out[h] != want || signbit(out[h]) != signbit(want);
    }
    CHECK_EQ_INT(bad16, 0);
    CHECK_EQ_INT(bad_bf, 0);
    CHECK_NEAR(out[0x3f80], 1.0, 0);
out:
    free(buf);
    free(out);
}

static void test_f8_formats(void)
{
    const unsigned char e4m3[] = {0x7e, 0x7f, 0x01, 0x38, 0xb8};
    const unsigned char e5m2[] = {0x7b, 0x7c, 0x7d, 0x01, 0x3c};
    double out[5];

    dtype_to_f64(DTYPE_F8_E4M3, e4m3, 5, out);
    CHECK_NEAR(out[0], 448.0, 0);          /* max, no infinities */
    CHECK(isnan(out[1]));                  /* S.1111.111 */
    CHECK_NEAR(out[2], ldexp(1.0, -9), 0); /* subnormal 1/8 * 2^-6 */
    CHECK_NEAR(out[3], 1.0, 0);
    CHECK_NEAR(out[4], -1.0, 0);
    dtype_to_f64(DTYPE_F8_E5M2, e5m2, 5, out);
    CHECK_NEAR(out[0], 57344.0, 0);
    CHECK(isinf(out[1]));
    CHECK(isnan(out[2]));
    CHECK_NEAR(out[3], ldexp(1.0, -16), 0); /* subnormal 1/4 * 2^-14 */
    CHECK_NEAR(out[4], 1.0, 0);
}

static void test_unaligned_little_endian_ints(void)
{
    const unsigned char buf[] = {0x00, 0xfe, 0xff, 0xff, 0xff, 0x02, 0x00};
    double out[1];

    dtype_to_f64(DTYPE_I32, buf + 1, 1, out);
    CHECK_NEAR(out[0], -2.0, 0);
    dtype_to_f64(DTYPE_U16, buf + 5, 1, out);
    CHECK_NEAR(out[0], 2.0, 0);
}

int main(void)
{
    test_codes_round_trip();
    test_f16_decodes_subnormals_inf_nan();
    test_bf16_is_upper_half_of_f32();
    test_bulk_half_paths_match_every_pattern();
    test_f8_formats();
    test_unaligned_little_endian_ints();
    return check_report("test_dtype");
}
