/* test_npy.c -- the NumPy .npy / .npz readers (docs/checkpoint-formats.md, NumPy).
 *
 * One test per rule on .npy images built in memory byte by byte (category
 * and message), materialisation of Fortran-order and big-endian data, and
 * every npy / npz fixture of the manifest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt.h"
#include "core/formats/npy.h"
#include "tests/check.h"
#include "tests/ckpt_manifest.h"

/* --- Building files in memory --------------------------------------------- */

struct img {
    unsigned char p[512];
    size_t len;
};

/* "\x93NUMPY", version `major`.0, the header length (2 bytes for version
 * 1, else 4), `hdr`, then `data_len` bytes of `data` (or 0, 1, 2, ...). */
static struct img npy_img(unsigned major, const char *hdr, const void *data, size_t data_len)
{
    struct img m;
    size_t hl = strlen(hdr), pre = major == 1 ? 10 : 12;

    ERR_ASSERT(pre + hl + data_len <= sizeof(m.p));
    memcpy(m.p, "\x93NUMPY", 6);
    m.p[6] = (unsigned char)major;
    m.p[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        m.p[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(m.p + pre, hdr, hl);
    for (size_t i = 0; i < data_len; i++)
        m.p[pre + hl + i] = data != NULL ? ((const unsigned char *)data)[i] : (unsigned char)i;
    m.len = pre + hl + data_len;
    return m;
}

static void expect_fail_l(struct img m, const struct ckpt_limits *l, const char *category,
                          const char *needle)
{
    struct npy_info a;
    struct err e = {0};

    CHECK(npy_parse(m.p, m.len, l, &a, &e) != ERR_OK);
    CHECK(a.data == NULL);
    CHECK_STR_EQ(err_category(&e), category);
    CHECK(strstr(e.msg, needle) != NULL);
    if (strcmp(err_category(&e), category) != 0 || !strstr(e.msg, needle))
        fprintf(stderr, "  got %s: %s (wanted '%s')\n", err_category(&e), e.msg, needle);
}

static void expect_fail(struct img m, const char *category, const char *needle)
{
    expect_fail_l(m, NULL, category, needle);
}

static struct npy_info expect_ok(const struct img *m)
{
    struct npy_info a;
    struct err e = {0};
    enum err_code rc = npy_parse(m->p, m->len, NULL, &a, &e);

    CHECK_EQ_INT(rc, ERR_OK);
    if (rc)
        fprintf(stderr, "  unexpected failure %s: %s\n", err_category(&e), e.msg);
    return a;
}

#define HDR(descr, fo, shape) \
    "{'descr': '" descr "', 'fortran_order': " fo ", 'shape': " shape ", }\n"

/* --- Preamble ---------------------------------------------------------------- */

static void test_preamble_cut_short(void)
{
    struct img m = npy_img(1, HDR("<f4", "False", "(2,)"), NULL, 8);

    m.len = 9;
    expect_fail(m, "truncated", "preamble cut short (9 bytes)");
    m = npy_img(2, HDR("<f4", "False", "(2,)"), NULL, 8);
    m.len = 11;
    expect_fail(m, "truncated", "preamble cut short (11 bytes)");
}

static void test_magic_missing(void)
{
    struct img m = npy_img(1, HDR("<f4", "False", "(2,)"), NULL, 8);

    m.p[1] = 'X';
    expect_fail(m, "unknown_format", "magic");
}

static void test_version_not_1_2_3(void)
{
    struct img m = npy_img(1, HDR("<f4", "False", "(2,)"), NULL, 8);

    m.p[6] = 9;
    expect_fail(m, "invalid_header", "version 9.0");
}

static void test_header_past_end_of_file(void)
{
    struct img m = npy_img(1, HDR("<f4", "False", "(2,)"), NULL, 0);

    m.len -= 5;
    expect_fail(m, "truncated", "header of 58 bytes runs past the end");
}

static void test_header_above_limit(void)
{
    struct ckpt_limits l;

    ckpt_limits_default(&l);
    l.max_header_bytes = 16;
    expect_fail_l(npy_img(1, HDR("<f4", "False", "(2,)"), NULL, 8), &l, "limit_exceeded",
                  "58 bytes exceeds the limit of 16");
}

/* --- The header literal ---------------------------------------------------------- */

static void test_header_not_a_dict(void)
{
    expect_fail(npy_img(1, "['<f4', False, (2,)]\n", NULL, 8), "invalid_header", "not a dict");
}

static void test_header_with_code_is_not_evaluated(void)
{
    expect_fail(npy_img(1,
                        "{'descr': __import__('os').system('x'), 'fortran_order': False, "
                        "'shape': (2,), }\n",
                        NULL, 8),
                "invalid_header", "unparsable: unexpected character at byte 10 ('_')");
}

static void test_header_keys_exactly_three(void)
{
    expect_fail(npy_img(1, "{'descr': '<f4', 'shape': (2,), }\n", NULL, 8), "invalid_header",
                "fortran_order missing");
    expect_fail(
        npy_img(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n", NULL, 8),
        "invalid_header", "unexpected key 'x'");
    expect_fail(npy_img(1,
                        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                        "'shape': (2,)}\n",
                        NULL, 8),
                "invalid_header", "duplicate key 'descr'");
}

static void test_header_trailing_text(void)
{
    expect_fail(npy_img(1, HDR("<f4", "False", "(2,)") "x", NULL, 8), "invalid_header",
                "trailing characters");
}

static void test_fortran_order_not_bool(void)
{
    expect_fail(npy_img(1, HDR("<f4", "0", "(2,)"), NULL, 8), "invalid_header",
                "fortran_order is not a bool");
}

static void test_shape_not_tuple_or_negative(void)
{
    expect_fail(npy_img(1, HDR("<f4", "False", "[2]"), NULL, 8), "invalid_header",
                "shape is not a tuple");
    expect_fail(npy_img(1, HDR("<f4", "False", "(2, -1)"), NULL, 8), "invalid_header",
                "dimension 1 is negative");
}

static void test_rank_above_16(void)
{
    expect_fail(npy_img(1, HDR("<f4", "False", "(1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1)"), NULL, 4),
                "limit_exceeded", "rank exceeds 16");
}

/* --- dtypes ------------------------------------------------------------------------ */

static void test_refused_descrs(void)
{
    static const char *const refused[] = {"|O",  "<U7", "|S4",  "|V2", "<M8",
                                          "<m8", "!f4", "<f16", "f4"};
    char hdr[128], needle[32];

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        (void)snprintf(hdr, sizeof(hdr), "{'descr': '%s', 'fortran_order': False, 'shape': (2,), }",
                       refused[i]);
        (void)snprintf(needle, sizeof(needle), "'%s' not supported", refused[i]);
        expect_fail(npy_img(1, hdr, NULL, 64), "invalid_dtype", needle);
    }
}

static void test_structured_descr_refused(void)
{
    expect_fail(npy_img(1,
                        "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, "
                        "'shape': (2,), }",
                        NULL, 16),
                "invalid_dtype", "structured");
}

static void test_descr_table(void)
{
    static const struct {
        const char *descr;
        enum dtype dtype;
    } cases[] = {
        {"<f8", DTYPE_F64}, {"<f4", DTYPE_F32},   {"<f2", DTYPE_F16}, {"<i8", DTYPE_I64},
        {"<i4", DTYPE_I32}, {"<i2", DTYPE_I16},   {"|i1", DTYPE_I8},  {"<u8", DTYPE_U64},
        {"<u4", DTYPE_U32}, {"<u2", DTYPE_U16},   {"|u1", DTYPE_U8},  {"|b1", DTYPE_BOOL},
        {"<c8", DTYPE_C64}, {"<c16", DTYPE_C128}, {"=f4", DTYPE_F32}, {">f8", DTYPE_F64},
    };
    char hdr[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct img m;
        struct npy_info a;
        (void)snprintf(hdr, sizeof(hdr),
                       "{\"descr\": \"%s\", \"fortran_order\": False, "
                       "\"shape\": (3,)}",
                       cases[i].descr);
        m = npy_img(1, hdr, NULL, 48);
        a = expect_ok(&m);
        CHECK_EQ_INT(a.dtype, cases[i].dtype);
        CHECK_EQ_INT(a.nbytes, 3 * dtype_size(cases[i].dtype));
        CHECK_EQ_INT(a.big_endian, cases[i].descr[0] == '>');
    }
}

/* --- Sizes --------------------------------------------------------------------------- */

static void test_shape_overflow(void)
{
    expect_fail(npy_img(1, HDR("<f4", "False", "(4294967296, 4294967296, 4294967296)"), NULL, 48),
                "overflow", "overflows 64 bits at dimension 1");
    expect_fail(npy_img(1, HDR("<f8", "False", "(4611686018427387904,)"), NULL, 48), "overflow",
                "4611686018427387904 elements of 8 bytes");
    expect_fail(npy_img(1, HDR("<f8", "False", "(9223372036854775808,)"), NULL, 48), "overflow",
                "exceeds 2^63-1");
}

static void test_truncated_data(void)
{
    expect_fail(npy_img(1, HDR("<f4", "False", "(3, 4)"), NULL, 40), "truncated",
                "npy data needs 48 bytes, 40 present");
}

static void test_versions_scalars_and_trailing_bytes(void)
{
    struct img v2 = npy_img(2, HDR("<f4", "False", "(3,)"), NULL, 12);
    struct img v3 = npy_img(3, HDR("<i2", "False", "()"), NULL, 2 + 7); /* 7 extra bytes */
    struct npy_info a = expect_ok(&v2), b = expect_ok(&v3);

    CHECK_EQ_INT(a.major, 2);
    CHECK_EQ_INT(a.ndim, 1);
    CHECK_EQ_INT(a.shape[0], 3);
    CHECK(a.data == v2.p + 12 + strlen(HDR("<f4", "False", "(3,)")));
    CHECK_EQ_INT(b.major, 3);
    CHECK_EQ_INT(b.ndim, 0);
    CHECK_EQ_INT(b.n_elems, 1);
    CHECK_EQ_INT(b.nbytes, 2);
}

/* --- Materialisation ----------------------------------------------------------------- */

static void test_fortran_order_is_transposed(void)
{
    /* C-order values 0..23 of shape (2, 3, 4) stored column-major */
    float f[24], c[24];
    unsigned char out[96];
    struct img m;
    struct npy_info a;

    for (int i0 = 0; i0 < 2; i0++)
        for (int i1 = 0; i1 < 3; i1++)
            for (int i2 = 0; i2 < 4; i2++)
                f[i0 + 2 * i1 + 6 * i2] = (float)(i0 * 12 + i1 * 4 + i2);
    m = npy_img(1, HDR("<f4", "True", "(2, 3, 4)"), f, sizeof(f));
    a = expect_ok(&m);
    CHECK_EQ_INT(a.fortran_order, 1);
    CHECK_EQ_INT(npy_is_c_contiguous_le(&a), 0);
    npy_to_c_le(&a, out);
    memcpy(c, out, sizeof(c));
    for (int i = 0; i < 24; i++)
        CHECK_EQ_INT((int)c[i], i);
}

static void test_fortran_order_of_a_vector_needs_no_copy(void)
{
    struct img m = npy_img(1, HDR("<f4", "True", "(1, 5, 1)"), NULL, 20);
    struct npy_info a = expect_ok(&m);

    CHECK_EQ_INT(npy_is_c_contiguous_le(&a), 1);
}

static void test_big_endian_is_swapped(void)
{
    static const unsigned char be_i16[] = {0x01, 0x02, 0xFF, 0xFE};
    static const unsigned char be_c8[] = {0x3F, 0x80, 0, 0, 0x40, 0, 0, 0}; /* 1 + 2j */
    unsigned char out[8];
    struct img m;
    struct npy_info a;
    float re, im;

    m = npy_img(1, HDR(">i2", "False", "(2,)"), be_i16, sizeof(be_i16));
    a = expect_ok(&m);
    CHECK_EQ_INT(npy_is_c_contiguous_le(&a), 0);
    npy_to_c_le(&a, out);
    CHECK_EQ_INT(out[0], 0x02);
    CHECK_EQ_INT(out[1], 0x01);
    CHECK_EQ_INT((int16_t)(out[2] | out[3] << 8), -2); /* 0xFFFE */
    m = npy_img(1, HDR(">c8", "False", "()"), be_c8, sizeof(be_c8));
    a = expect_ok(&m);
    npy_to_c_le(&a, out);
    memcpy(&re, out, 4);
    memcpy(&im, out + 4, 4);
    CHECK_NEAR(re, 1.0, 0);
    CHECK_NEAR(im, 2.0, 0);
    m = npy_img(1, HDR(">u1", "False", "(2,)"), NULL, 2);
    a = expect_ok(&m);
    CHECK_EQ_INT(npy_is_c_contiguous_le(&a), 1); /* bytes have no order */
}

static void test_big_endian_fortran_order(void)
{
    /* (2, 2) uint16 [[1, 2], [3, 4]] stored column-major, big-endian: 1 3 2 4 */
    static const unsigned char be[] = {0, 1, 0, 3, 0, 2, 0, 4};
    unsigned char out[8];
    struct img m = npy_img(1, HDR(">u2", "True", "(2, 2)"), be, sizeof(be));
    struct npy_info a = expect_ok(&m);

    npy_to_c_le(&a, out);
    for (size_t i = 0; i < 4; i++)
        CHECK_EQ_INT(out[2 * i] | out[2 * i + 1] << 8, (int)i + 1);
}

/* --- Through ckpt_open ------------------------------------------------------------------- */

static void test_npy_tensor_name_is_file_name(void)
{
    struct ckpt *c = NULL;
    struct err e = {0};

    CHECK_EQ_INT(
        ckpt_open(CM_DIR "special/npy_fortran_order.npy", CKPT_FORMAT_UNKNOWN, NULL, &c, &e),
        ERR_OK);
    if (c != NULL) {
        CHECK_EQ_INT(ckpt_format_of(c), CKPT_FORMAT_NPY);
        CHECK_STR_EQ(ckpt_tensor_at(c, 0)->name, "npy_fortran_order");
    }
    ckpt_close(c);
}

static void test_npz_tensor_limit_applies_to_members(void)
{
    struct ckpt_limits l;
    struct ckpt *c = NULL;
    struct err e = {0};

    ckpt_limits_default(&l);
    l.max_tensor_bytes = 1000; /* net.0.weight is 64 KiB */
    l.max_header_bytes = 100;
    CHECK(ckpt_open(CM_DIR "mlp/mlp_step0500_compressed.npz", CKPT_FORMAT_NPZ, &l, &c, &e) !=
          ERR_OK);
    CHECK_STR_EQ(err_category(&e), "limit_exceeded");
    CHECK(strstr(e.msg, "net.0.weight.npy") != NULL);
}

static void test_manifest_fixtures(void)
{
    cJSON *m = cm_load();
    int ok, fail;

    CHECK(m != NULL);
    if (m == NULL)
        return;
    cm_check_format(m, "npy", &ok, &fail);
    printf("npy fixtures: %d opened, %d refused\n", ok, fail);
    CHECK_EQ_INT(ok, 4);
    CHECK_EQ_INT(fail, 7);
    cm_check_format(m, "npz", &ok, &fail);
    printf("npz fixtures: %d opened, %d refused\n", ok, fail);
    CHECK_EQ_INT(ok, 2); /* the deflated one included */
    CHECK_EQ_INT(fail, 1);
    cJSON_Delete(m);
}

int main(void)
{
    test_preamble_cut_short();
    test_magic_missing();
    test_version_not_1_2_3();
    test_header_past_end_of_file();
    test_header_above_limit();
    test_header_not_a_dict();
    test_header_with_code_is_not_evaluated();
    test_header_keys_exactly_three();
    test_header_trailing_text();
    test_fortran_order_not_bool();
    test_shape_not_tuple_or_negative();
    test_rank_above_16();
    test_refused_descrs();
    test_structured_descr_refused();
    test_descr_table();
    test_shape_overflow();
    test_truncated_data();
    test_versions_scalars_and_trailing_bytes();
    test_fortran_order_is_transposed();
    test_fortran_order_of_a_vector_needs_no_copy();
    test_big_endian_is_swapped();
    test_big_endian_fortran_order();
    test_npy_tensor_name_is_file_name();
    test_npz_tensor_limit_applies_to_members();
    test_manifest_fixtures();
    return check_report("test_npy");
}
