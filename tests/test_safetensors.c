/* test_safetensors.c -- the safetensors reader and shard indexes (docs/checkpoint-formats.md,
 * safetensors).
 *
 * One test per validation rule on files built in memory byte by
 * byte (category and message), the things the format accepts, the shard
 * index rules on temporary folders, and every safetensors / index fixture
 * of the manifest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/formats/ckpt.h"
#include "core/formats/safetensors.h"
#include "core/formats/shards.h"
#include "tests/check.h"
#include "tests/ckpt_manifest.h"

/* --- Building files in memory ----------------------------------------------- */

struct img {
    unsigned char *p;
    size_t len;
};

/* 8-byte little-endian `n`, then `hdr_len` header bytes, then `data_len`
 * data bytes 0, 1, 2, ... */
static struct img img_raw(uint64_t n, const char *hdr, size_t hdr_len, size_t data_len)
{
    struct img m;

    m.len = 8 + hdr_len + data_len;
    m.p = malloc(m.len);
    ERR_ASSERT(m.p != NULL);
    for (int i = 0; i < 8; i++)
        m.p[i] = (unsigned char)(n >> (8 * i));
    memcpy(m.p + 8, hdr, hdr_len);
    for (size_t i = 0; i < data_len; i++)
        m.p[8 + hdr_len + i] = (unsigned char)i;
    return m;
}

/* A well-formed prefix: N = strlen(hdr). */
static struct img img(const char *hdr, size_t data_len)
{
    return img_raw(strlen(hdr), hdr, strlen(hdr), data_len);
}

/* st_parse(m) must fail with `category` and a message containing `needle`. */
static void expect_fail_l(struct img m, const struct ckpt_limits *l, const char *category,
                          const char *needle)
{
    struct st_file *f = (struct st_file *)&m; /* must be reset to NULL */
    struct err e = {0};
    enum err_code rc = st_parse(m.p, m.len, l, &f, &e);

    CHECK(rc != ERR_OK);
    CHECK(f == NULL);
    CHECK_STR_EQ(err_category(&e), category);
    CHECK(strstr(e.msg, needle) != NULL);
    if (strcmp(err_category(&e), category) != 0 || !strstr(e.msg, needle))
        fprintf(stderr, "  got %s: %s (wanted '%s')\n", err_category(&e), e.msg, needle);
    free(m.p);
}

static void expect_fail(struct img m, const char *category, const char *needle)
{
    expect_fail_l(m, NULL, category, needle);
}

/* st_parse(m) must succeed; returns the file (m.p stays allocated). */
static struct st_file *expect_ok(struct img m)
{
    struct st_file *f = NULL;
    struct err e = {0};
    enum err_code rc = st_parse(m.p, m.len, NULL, &f, &e);

    CHECK_EQ_INT(rc, ERR_OK);
    if (rc)
        fprintf(stderr, "  unexpected failure %s: %s\n", err_category(&e), e.msg);
    return f;
}

#define W16 "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}"

/* --- Steps 1-3: the length prefix ---------------------------------------------- */

static void test_shorter_than_length_prefix_is_truncated(void)
{
    struct img m = img_raw(0, "", 0, 0);

    m.len = 5;
    expect_fail(m, "truncated", "5 bytes");
}

static void test_header_length_past_file_is_truncated(void)
{
    expect_fail(img_raw(4096, W16, strlen(W16), 16), "truncated", "header length 4096");
}

static void test_header_length_u64_max_is_header_too_large(void)
{
    /* 16 bytes claiming N = 2^64-1: 8 + N must never be computed */
    expect_fail(img_raw(UINT64_MAX, "{}      ", 8, 0), "header_too_large", "18446744073709551615");
}

static void test_header_length_above_format_maximum(void)
{
    expect_fail(img_raw(100000001, W16, strlen(W16), 16), "header_too_large", "100000001");
    /* exactly the maximum is allowed by step 2 and then fails step 3 */
    expect_fail(img_raw(100000000, W16, strlen(W16), 16), "truncated", "100000000");
}

static void test_header_above_configured_limit(void)
{
    struct ckpt_limits l;

    ckpt_limits_default(&l);
    l.max_header_bytes = 32;
    expect_fail_l(img(W16, 16), &l, "limit_exceeded", "limit of 32");
}

/* --- Step 4: the header ----------------------------------------------------------- */

static void test_header_not_json(void)
{
    expect_fail(img("{\"w\":{\"dtype\":", 0), "invalid_header", "not valid JSON");
}

static void test_header_not_object(void)
{
    expect_fail(img("[1, 2]", 0), "invalid_header", "not an object");
    expect_fail(img("\"w\"", 0), "invalid_header", "not an object");
}

static void test_empty_header_bytes(void)
{
    expect_fail(img("", 0), "invalid_header", "empty header");
}

static void test_header_invalid_utf8(void)
{
    expect_fail(img("{\"\xff\":{}}", 0), "invalid_header", "UTF-8 (byte 2)");
    /* an overlong encoding of '/' is not UTF-8 either */
    expect_fail(img("{\"\xc0\xaf\":{}}", 0), "invalid_header", "UTF-8");
}

static void test_garbage_after_object(void)
{
    expect_fail(img(W16 " x", 16), "invalid_header", "after the header object");
}

static void test_entry_not_object(void)
{
    expect_fail(img("{\"w\":3}", 0), "invalid_header", "'w': entry is not an object");
}

static void test_missing_field(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "invalid_header",
                "'w' lacks data_offsets");
}

static void test_duplicate_field(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[1],"
                    "\"data_offsets\":[0,4]}}",
                    4),
                "invalid_header", "duplicate field 'dtype'");
}

static void test_float_offsets(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0.0,16]}}", 16),
                "invalid_header", "value 0.0 is not an integer");
    expect_fail(img("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,1.6e1]}}", 16),
                "invalid_header", "1.6e1");
}

static void test_offset_above_2p53_is_read_exactly(void)
{
    /* 2^53+1 rounds to 2^53 as a double; read exactly, it runs past the data */
    expect_fail(img("{\"w\":{\"dtype\":\"U8\",\"shape\":[9007199254740993],"
                    "\"data_offsets\":[0,9007199254740993]}}",
                    0),
                "truncated", "tensors need 9007199254740993 data bytes");
}

static void test_integer_above_u64(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],"
                    "\"data_offsets\":[0,18446744073709551616]}}",
                    0),
                "invalid_header", "18446744073709551616 is not an integer");
    /* the largest u64 is an integer, and then an offset past the data */
    expect_fail(img("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],"
                    "\"data_offsets\":[0,18446744073709551615]}}",
                    0),
                "shape_mismatch", "18446744073709551615 bytes declared");
}

static void test_dimension_above_int64(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"U8\",\"shape\":[9223372036854775808],"
                    "\"data_offsets\":[0,1]}}",
                    1),
                "overflow", "dimension 0 exceeds 2^63-1");
}

static void test_negative_shape(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,2],\"data_offsets\":[0,16]}}", 16),
                "invalid_header", "'w': shape value -2");
}

static void test_duplicate_tensor_name(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                    8),
                "invalid_header", "duplicate tensor name 'w'");
}

static void test_duplicate_metadata(void)
{
    expect_fail(img("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0), "invalid_header",
                "duplicate __metadata__ key 'a'");
    expect_fail(img("{\"__metadata__\":{},\"__metadata__\":{}}", 0), "invalid_header",
                "duplicate key '__metadata__'");
}

static void test_metadata_not_string(void)
{
    expect_fail(img("{\"__metadata__\":{\"step\":500}}", 0), "invalid_header",
                "'step' is not a string");
    expect_fail(img("{\"__metadata__\":[]}", 0), "invalid_header", "__metadata__ must map");
}

static void test_nul_in_name(void)
{
    expect_fail(img("{\"w\\u0000x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "invalid_header", "NUL");
}

static void test_lone_surrogate_in_name(void)
{
    expect_fail(img("{\"w\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "invalid_header", "invalid escape");
}

static void test_name_longer_than_4k(void)
{
    char hdr[4200 + 100];
    char name[4098];

    memset(name, 'a', 4097);
    name[4097] = '\0';
    (void)snprintf(hdr, sizeof(hdr),
                   "{\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", name);
    expect_fail(img(hdr, 4), "limit_exceeded", "4097 bytes");
}

static void test_rank_above_16(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"
                    "\"data_offsets\":[0,1]}}",
                    1),
                "limit_exceeded", "'w': rank exceeds 16");
}

static void test_tensor_count_limit(void)
{
    struct ckpt_limits l;

    ckpt_limits_default(&l);
    l.max_tensors = 1;
    expect_fail_l(img("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                      2),
                  &l, "limit_exceeded", "more than 1 tensors");
}

/* --- Step 5: dtypes ----------------------------------------------------------------- */

static void test_unknown_dtype(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"F12\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16),
                "invalid_dtype", "'w': unknown dtype 'F12'");
}

static void test_lowercase_dtype(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"f32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16),
                "invalid_dtype", "'f32'");
}

/* --- Steps 6-9: offsets, overflow, sizes, coverage -------------------------------------- */

static void test_offsets_gap(void)
{
    expect_fail(img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                    20),
                "invalid_offsets", "'b': data_offsets [12, 20] do not continue at 8");
}

static void test_offsets_overlap(void)
{
    expect_fail(img("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                    24),
                "invalid_offsets", "'b': data_offsets [8, 24] do not continue at 16");
}

static void test_offsets_reversed(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 16),
                "invalid_offsets", "[16, 0]");
}

static void test_offsets_not_from_zero(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16),
                "invalid_offsets", "do not continue at 0");
}

static void test_shape_product_overflow(void)
{
    /* 2^32 * 2^32 * 16 = 2^68 elements */
    expect_fail(img("{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,16],"
                    "\"data_offsets\":[0,16]}}",
                    16),
                "overflow", "'w': element count overflows");
}

static void test_byte_size_overflow(void)
{
    /* 2^60 elements fit in u64, 2^60 * 32 bits do not */
    expect_fail(img("{\"w\":{\"dtype\":\"F32\",\"shape\":[1073741824,1073741824],"
                    "\"data_offsets\":[0,16]}}",
                    16),
                "overflow", "1152921504606846976 elements of 32 bits");
}

static void test_bytes_differ_from_shape_times_dtype(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16),
                "shape_mismatch", "tensor 'w': 16 bytes declared, dtype*shape needs 24");
}

static void test_sub_byte_tensor_not_ending_on_byte(void)
{
    expect_fail(img("{\"w\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2),
                "shape_mismatch", "do not end on a byte");
}

static void test_truncated_data(void)
{
    expect_fail(img(W16, 11), "truncated", "need 16 data bytes, file has 11");
}

static void test_trailing_bytes(void)
{
    expect_fail(img(W16, 36), "trailing_data", "20 bytes after the last tensor");
}

/* --- What the format accepts ----------------------------------------------------------- */

static void test_empty_header_object(void)
{
    struct img m = img("{}      ", 0);
    struct st_file *f = expect_ok(m);

    if (f != NULL) {
        CHECK_EQ_INT(st_n_tensors(f), 0);
        CHECK_EQ_INT(st_header_len(f), 8);
        CHECK_EQ_INT(st_data_len(f), 0);
    }
    st_free(f);
    free(m.p);
}

static void test_whitespace_around_object_no_padding(void)
{
    /* leading whitespace, a header length that is not a multiple of 8 */
    struct img m = img(" \t\r\n" W16 "\n ", 16);
    struct st_file *f = expect_ok(m);

    if (f != NULL) {
        CHECK_EQ_INT(st_header_len(f), strlen(W16) + 6);
        CHECK(st_header_len(f) % 8 != 0);
        CHECK(st_tensor_at(f, 0)->data == m.p + 8 + st_header_len(f));
    }
    st_free(f);
    free(m.p);
}

static void test_unknown_entry_field_is_ignored(void)
{
    struct img m = img("{\"w\":{\"dtype\":\"F32\",\"note\":[1.5,{\"x\":null,\"y\":true}],"
                       "\"shape\":[1],\"data_offsets\":[0,4]}}",
                       4);
    struct st_file *f = expect_ok(m);

    if (f != NULL) {
        CHECK_EQ_INT(st_n_tensors(f), 1);
        CHECK_EQ_INT(st_tensor_at(f, 0)->dtype, DTYPE_F32);
    }
    st_free(f);
    free(m.p);
}

static void test_scalar_and_zero_size_tensors(void)
{
    struct img m = img("{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
                       "\"z\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[8,8]}}",
                       8);
    struct st_file *f = expect_ok(m);

    if (f != NULL) {
        const struct st_tensor *s = st_tensor_find(f, "s", 1), *z = st_tensor_find(f, "z", 1);
        CHECK(s != NULL && z != NULL);
        if (s != NULL && z != NULL) {
            CHECK_EQ_INT(s->ndim, 0);
            CHECK_EQ_INT(s->n_elems, 1);
            CHECK_EQ_INT(z->ndim, 2);
            CHECK_EQ_INT(z->n_elems, 0);
            CHECK_EQ_INT(z->begin, z->end);
        }
    }
    st_free(f);
    free(m.p);
}

static void test_tensors_listed_in_offset_order(void)
{
    struct img m = img("{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"z.last\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                       "\"a.first\":{\"shape\":[2],\"data_offsets\":[0,4],\"dtype\":\"I16\"}}",
                       6);
    struct st_file *f = expect_ok(m);

    if (f != NULL) {
        CHECK_EQ_INT(st_n_tensors(f), 2);
        CHECK_STR_EQ(st_tensor_at(f, 0)->name, "a.first");
        CHECK_STR_EQ(st_tensor_at(f, 1)->name, "z.last");
        CHECK_EQ_INT(st_tensor_at(f, 1)->data[0], 4); /* data byte i holds i */
        CHECK_STR_EQ(st_metadata_get(f, "format"), "pt");
        CHECK(st_metadata_get(f, "purpose") == NULL);
        CHECK(st_tensor_find(f, "a", 1) == NULL);
    }
    st_free(f);
    free(m.p);
}

static void test_escaped_names_are_decoded(void)
{
    struct img m = img("{\"q\\\"\\u00e9\\ud83d\\ude00\":{\"dtype\":\"U8\",\"shape\":[1],"
                       "\"data_offsets\":[0,1]}}",
                       1);
    struct st_file *f = expect_ok(m);

    if (f != NULL) {
        CHECK_STR_EQ(st_tensor_at(f, 0)->name, "q\"\xc3\xa9\xf0\x9f\x98\x80");
        CHECK_EQ_INT(st_tensor_at(f, 0)->name_len, 8);
    }
    st_free(f);
    free(m.p);
}

/* --- Through ckpt_open ------------------------------------------------------------------- */

static void test_ckpt_metadata_accessor(void)
{
    struct ckpt *c = NULL;
    struct err e = {0};

    CHECK_EQ_INT(
        ckpt_open(CM_DIR "special/dtype_zoo.safetensors", CKPT_FORMAT_UNKNOWN, NULL, &c, &e),
        ERR_OK);
    CHECK(st_ckpt_file(c) != NULL);
    if (st_ckpt_file(c) != NULL) {
        CHECK_EQ_INT(st_n_metadata(st_ckpt_file(c)), 1);
        CHECK_STR_EQ(st_metadata_get(st_ckpt_file(c), "purpose"), "dtype decoding");
    }
    ckpt_close(c);
}

/* --- Shards -------------------------------------------------------------------------------- */

#define SHARD_DIR CM_DIR "llama/sharded/"

static void make_tmpdir(char *dir, size_t n)
{
    (void)snprintf(dir, n, "/tmp/test_safetensors_XXXXXX");
    ERR_ASSERT(mkdtemp(dir) != NULL);
}

/* Symlink fixture `src` (relative to the repo root) as dir/name. */
static void link_into(const char *dir, const char *src, const char *name)
{
    char cwd[1024], from[2048], to[2048];

    ERR_ASSERT(getcwd(cwd, sizeof(cwd)) != NULL);
    (void)snprintf(from, sizeof(from), "%s/%s", cwd, src);
    (void)snprintf(to, sizeof(to), "%s/%s", dir, name);
    ERR_ASSERT(symlink(from, to) == 0);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[2048];
    FILE *f;

    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    ERR_ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void remove_tree(const char *dir, const char *const *names)
{
    char path[2048];

    for (; *names != NULL; names++) {
        (void)snprintf(path, sizeof(path), "%s/%s", dir, *names);
        (void)unlink(path);
    }
    (void)rmdir(dir);
}

static void test_shard_folder_with_index(void)
{
    struct ckpt *c = NULL;
    struct err e = {0};

    CHECK_EQ_INT(ckpt_open(SHARD_DIR, CKPT_FORMAT_UNKNOWN, NULL, &c, &e), ERR_OK);
    if (c != NULL) {
        CHECK_EQ_INT(ckpt_format_of(c), CKPT_FORMAT_SAFETENSORS_INDEX);
        CHECK_EQ_INT(ckpt_n_tensors(c), 20);
    }
    ckpt_close(c);
}

static void test_shard_folder_without_index(void)
{
    static const char *const names[] = {"b.safetensors", "a.safetensors", "notes.txt", NULL};
    struct ckpt *c = NULL, *one = NULL;
    struct err e = {0};
    char dir[64];

    make_tmpdir(dir, sizeof(dir));
    link_into(dir, SHARD_DIR "model-00002-of-00002.safetensors", "a.safetensors");
    link_into(dir, SHARD_DIR "model-00001-of-00002.safetensors", "b.safetensors");
    write_file(dir, "notes.txt", "not a shard");
    CHECK_EQ_INT(ckpt_open(dir, CKPT_FORMAT_SAFETENSORS_INDEX, NULL, &c, &e), ERR_OK);
    CHECK_EQ_INT(ckpt_open(SHARD_DIR "model-00002-of-00002.safetensors", CKPT_FORMAT_UNKNOWN, NULL,
                           &one, &e),
                 ERR_OK);
    if (c != NULL && one != NULL) {
        CHECK_EQ_INT(ckpt_n_tensors(c), 20);
        /* name order: a.safetensors (the second shard) first, in its offset order */
        for (size_t i = 0; i < ckpt_n_tensors(one); i++)
            CHECK_STR_EQ(ckpt_tensor_at(c, i)->name, ckpt_tensor_at(one, i)->name);
    }
    ckpt_close(c);
    ckpt_close(one);
    remove_tree(dir, names);
}

static void test_shard_name_in_two_shards(void)
{
    static const char *const names[] = {"a.safetensors", "b.safetensors", NULL};
    struct ckpt *c = NULL;
    struct err e = {0};
    char dir[64];

    make_tmpdir(dir, sizeof(dir));
    link_into(dir, SHARD_DIR "model-00001-of-00002.safetensors", "a.safetensors");
    link_into(dir, SHARD_DIR "model-00001-of-00002.safetensors", "b.safetensors");
    CHECK(ckpt_open(dir, CKPT_FORMAT_SAFETENSORS_INDEX, NULL, &c, &e) != ERR_OK);
    CHECK_STR_EQ(err_category(&e), "invalid_index");
    CHECK(strstr(e.msg, "in both 'a.safetensors' and 'b.safetensors'") != NULL);
    remove_tree(dir, names);
}

static void test_index_lists_only_weight_map_tensors(void)
{
    static const char *const names[] = {"s.safetensors", "i.index.json", NULL};
    struct ckpt *c = NULL;
    struct err e = {0};
    char dir[64], path[128];

    make_tmpdir(dir, sizeof(dir));
    link_into(dir, CM_DIR "special/st_pretty_json.safetensors", "s.safetensors");
    write_file(dir, "i.index.json",
               "{\"metadata\":{\"total_size\":8},"
               "\"weight_map\":{\"b.bias\":\"s.safetensors\"}}");
    (void)snprintf(path, sizeof(path), "%s/i.index.json", dir);
    CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, &e), ERR_OK);
    if (c != NULL) {
        CHECK_EQ_INT(ckpt_n_tensors(c), 1); /* a.weight is in the shard, not in weight_map */
        CHECK_STR_EQ(ckpt_tensor_at(c, 0)->name, "b.bias");
    }
    ckpt_close(c);
    remove_tree(dir, names);
}

static void test_index_rules(void)
{
    static const struct {
        const char *text, *category, *needle;
        enum err_code code;
    } cases[] = {
        {"{\"weight_map\":{\"w\":\"..\"}}", "invalid_index", "unsafe shard name '..'", ERR_INVAL},
        {"{\"weight_map\":{\"w\":\"a\\\\b.safetensors\"}}", "invalid_index", "unsafe", ERR_INVAL},
        {"{\"weight_map\":{\"w\":\"s.bin\"}}", "invalid_index", "does not end in .safetensors",
         ERR_FORMAT},
        {"{\"weight_map\":{\"w\":3}}", "invalid_index", "'w' is not a string", ERR_FORMAT},
        {"{\"weight_map\":[]}", "invalid_index", "weight_map object", ERR_FORMAT},
        {"{\"metadata\":1,\"weight_map\":{}}", "invalid_index", "metadata", ERR_FORMAT},
        {"{\"weight_map\":{\"w\":\"s.safetensors\",\"w\":\"s.safetensors\"}}", "invalid_index",
         "'w' appears twice", ERR_FORMAT},
        {"{\"weight_map\":{\"w\\u0000\":\"s.safetensors\"}}", "invalid_index", "NUL", ERR_FORMAT},
    };
    static const char *const names[] = {"i.index.json", NULL};
    char dir[64], path[128];

    make_tmpdir(dir, sizeof(dir));
    (void)snprintf(path, sizeof(path), "%s/i.index.json", dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ckpt *c = NULL;
        struct err e = {0};
        write_file(dir, "i.index.json", cases[i].text);
        CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_SAFETENSORS_INDEX, NULL, &c, &e), cases[i].code);
        CHECK_STR_EQ(err_category(&e), cases[i].category);
        CHECK(strstr(e.msg, cases[i].needle) != NULL);
        if (strstr(e.msg, cases[i].needle) == NULL)
            fprintf(stderr, "  case %zu: %s\n", i, e.msg);
    }
    remove_tree(dir, names);
}

static void test_bad_shard_error_names_the_shard(void)
{
    static const char *const names[] = {"bad.safetensors", "i.index.json", NULL};
    struct ckpt *c = NULL;
    struct err e = {0};
    char dir[64], path[128];

    make_tmpdir(dir, sizeof(dir));
    link_into(dir, CM_DIR "malformed/st_offsets_gap.safetensors", "bad.safetensors");
    write_file(dir, "i.index.json", "{\"weight_map\":{\"a\":\"bad.safetensors\"}}");
    (void)snprintf(path, sizeof(path), "%s/i.index.json", dir);
    CHECK(ckpt_open(path, CKPT_FORMAT_SAFETENSORS_INDEX, NULL, &c, &e) != ERR_OK);
    CHECK_STR_EQ(err_category(&e), "invalid_offsets");
    CHECK(strncmp(e.msg, "bad.safetensors: ", 17) == 0);
    remove_tree(dir, names);
}

static void test_shards_list_resolves_paths(void)
{
    struct shards_paths p = {0, NULL};
    struct err e = {0};
    char *want = realpath(SHARD_DIR "model-00002-of-00002.safetensors", NULL);

    CHECK_EQ_INT(shards_list(SHARD_DIR "model.safetensors.index.json", NULL, &p, &e), ERR_OK);
    CHECK_EQ_INT(p.n, 2);
    if (p.n == 2 && want != NULL) {
        CHECK(p.paths[0][0] == '/');
        CHECK(strstr(p.paths[0], "/model-00001-of-00002.safetensors") != NULL);
        CHECK_STR_EQ(p.paths[1], want);
    }
    shards_paths_free(&p);
    free(want);
    CHECK(shards_list(CM_DIR "malformed/index_traversal/model.safetensors.index.json", NULL, &p,
                      &e) == ERR_INVAL);
    CHECK_STR_EQ(err_category(&e), "invalid_index");
    CHECK_EQ_INT(p.n, 0);
}

/* --- The manifest ---------------------------------------------------------------------------- */

static void test_manifest_fixtures(void)
{
    cJSON *m = cm_load();
    int ok, fail;

    CHECK(m != NULL);
    if (m == NULL)
        return;
    cm_check_format(m, "safetensors", &ok, &fail);
    printf("safetensors fixtures: %d opened, %d refused\n", ok, fail);
    CHECK_EQ_INT(ok, 24);   /* every good file, st_unknown_entry_field included */
    CHECK_EQ_INT(fail, 29); /* every malformed one */
    cm_check_format(m, "safetensors_index", &ok, &fail);
    printf("safetensors_index fixtures: %d opened, %d refused\n", ok, fail);
    CHECK_EQ_INT(ok, 1);
    CHECK_EQ_INT(fail, 5);
    cJSON_Delete(m);
}

int main(void)
{
    test_shorter_than_length_prefix_is_truncated();
    test_header_length_past_file_is_truncated();
    test_header_length_u64_max_is_header_too_large();
    test_header_length_above_format_maximum();
    test_header_above_configured_limit();
    test_header_not_json();
    test_header_not_object();
    test_empty_header_bytes();
    test_header_invalid_utf8();
    test_garbage_after_object();
    test_entry_not_object();
    test_missing_field();
    test_duplicate_field();
    test_float_offsets();
    test_offset_above_2p53_is_read_exactly();
    test_integer_above_u64();
    test_dimension_above_int64();
    test_negative_shape();
    test_duplicate_tensor_name();
    test_duplicate_metadata();
    test_metadata_not_string();
    test_nul_in_name();
    test_lone_surrogate_in_name();
    test_name_longer_than_4k();
    test_rank_above_16();
    test_tensor_count_limit();
    test_unknown_dtype();
    test_lowercase_dtype();
    test_offsets_gap();
    test_offsets_overlap();
    test_offsets_reversed();
    test_offsets_not_from_zero();
    test_shape_product_overflow();
    test_byte_size_overflow();
    test_bytes_differ_from_shape_times_dtype();
    test_sub_byte_tensor_not_ending_on_byte();
    test_truncated_data();
    test_trailing_bytes();
    test_empty_header_object();
    test_whitespace_around_object_no_padding();
    test_unknown_entry_field_is_ignored();
    test_scalar_and_zero_size_tensors();
    test_tensors_listed_in_offset_order();
    test_escaped_names_are_decoded();
    test_ckpt_metadata_accessor();
    test_shard_folder_with_index();
    test_shard_folder_without_index();
    test_shard_name_in_two_shards();
    test_index_lists_only_weight_map_tensors();
    test_index_rules();
    test_bad_shard_error_names_the_shard();
    test_shards_list_resolves_paths();
    test_manifest_fixtures();
    return check_report("test_safetensors");
}
