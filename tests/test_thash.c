/* test_thash.c -- SHA-256 tensor hashes (docs/checkpoint-formats.md, Tensor hashes): FIPS 180-2
 * vectors, streaming == one shot, and the fixtures' hashes: a numerics
 * fixture file's sha256, and every tensor of mlp/mlp_step0000.safetensors
 * against manifest.json, read through an in-memory struct ckpt (the header
 * is parsed here, so the test does not depend on the format readers).
 * Run from the repository root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/thash.h"
#include "tests/check.h"
#include "tests/file_util.h"

#define MANIFEST  "tests/fixtures/checkpoints/manifest.json"
#define MLP_ST    "tests/fixtures/checkpoints/mlp/mlp_step0000.safetensors"
#define TINY_ST   "tests/fixtures/numerics/tiny_4x3.safetensors"
#define TINY_JSON "tests/fixtures/numerics/tiny_4x3.json"
#define MAX_T     16

static void hex_of(const char *s, size_t len, char hex[THASH_HEX_LEN])
{
    CHECK_EQ_INT(thash_bytes(s, len, hex, NULL), ERR_OK);
}

static void test_fips_vectors(void)
{
    char hex[THASH_HEX_LEN];
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

    hex_of("abc", 3, hex);
    CHECK_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    hex_of(NULL, 0, hex);
    CHECK_STR_EQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of(two_blocks, strlen(two_blocks), hex);
    CHECK_STR_EQ(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* A stored SHA-256 is exactly 64 lower-case hex digits: what thash_hex writes
 * passes; upper case, a non-hex digit, one digit short or long, and NULL do not. */
static void test_hex_ok_accepts_only_thash_hex(void)
{
    char hex[THASH_HEX_LEN], bad[THASH_HEX_LEN + 1];

    hex_of("abc", 3, hex);
    CHECK_EQ_INT(thash_hex_ok(hex), 1);
    CHECK_EQ_INT(thash_hex_ok("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015AD"),
                 0);
    CHECK_EQ_INT(thash_hex_ok("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ag"),
                 0);
    memcpy(bad, hex, THASH_HEX_LEN);
    bad[THASH_HEX_LEN - 2] = '\0';
    CHECK_EQ_INT(thash_hex_ok(bad), 0); /* 63 digits */
    memcpy(bad, hex, THASH_HEX_LEN - 1);
    bad[THASH_HEX_LEN - 1] = '0';
    bad[THASH_HEX_LEN] = '\0';
    CHECK_EQ_INT(thash_hex_ok(bad), 0); /* 65 digits */
    CHECK_EQ_INT(thash_hex_ok(""), 0);
    CHECK_EQ_INT(thash_hex_ok(NULL), 0);
}

static void test_streaming_equals_one_shot(void)
{
    const size_t n = 1000000; /* FIPS 180-2: one million 'a' */
    const size_t pieces[] = {1, 63, 64, 65, 4096, 999};
    char *a = malloc(n), one[THASH_HEX_LEN], streamed[THASH_HEX_LEN];
    unsigned char digest[THASH_DIGEST_LEN];
    struct thash h = {0};
    size_t off = 0, k = 0;

    CHECK(a != NULL);
    if (a == NULL)
        return;
    memset(a, 'a', n);
    hex_of(a, n, one);
    CHECK_STR_EQ(one, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    thash_free(&h); /* never started: no-op */
    CHECK_EQ_INT(thash_init(&h, NULL), ERR_OK);
    while (off < n) {
        size_t len = pieces[k++ % 6];
        len = len < n - off ? len : n - off;
        CHECK_EQ_INT(thash_update(&h, a + off, len, NULL), ERR_OK);
        off += len;
    }
    CHECK_EQ_INT(thash_update(&h, NULL, 0, NULL), ERR_OK);
    CHECK_EQ_INT(thash_final(&h, digest, NULL), ERR_OK);
    CHECK(h.ctx == NULL);
    thash_hex(digest, streamed);
    CHECK_STR_EQ(streamed, one);
    /* a finished hash can be started again; an abandoned one is freed */
    CHECK_EQ_INT(thash_init(&h, NULL), ERR_OK);
    CHECK_EQ_INT(thash_update(&h, "abc", 3, NULL), ERR_OK);
    CHECK_EQ_INT(thash_final(&h, digest, NULL), ERR_OK);
    thash_hex(digest, streamed);
    CHECK_STR_EQ(streamed, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK_EQ_INT(thash_init(&h, NULL), ERR_OK);
    thash_free(&h);
    free(a);
}

/* The numerics fixture names its file's sha256: stream the file in 7-byte pieces. */
static void test_numerics_file_hash(void)
{
    size_t len = 0, jlen = 0;
    unsigned char *bytes = fu_read(TINY_ST, &len);
    char *json = fu_read(TINY_JSON, &jlen), hex[THASH_HEX_LEN];
    cJSON *doc = json != NULL ? cJSON_Parse(json) : NULL;
    const cJSON *want = cJSON_GetObjectItem(doc, "tensor_file_sha256");
    struct thash h = {0};

    CHECK(bytes != NULL && len > 8);
    CHECK(cJSON_IsString(want));
    if (bytes != NULL && cJSON_IsString(want)) {
        unsigned char digest[THASH_DIGEST_LEN];

        CHECK_EQ_INT(thash_init(&h, NULL), ERR_OK);
        for (size_t off = 0; off < len; off += 7)
            CHECK_EQ_INT(thash_update(&h, bytes + off, len - off < 7 ? len - off : 7, NULL), 0);
        CHECK_EQ_INT(thash_final(&h, digest, NULL), ERR_OK);
        thash_hex(digest, hex);
        CHECK_STR_EQ(hex, want->valuestring);
    }
    cJSON_Delete(doc);
    free(json);
    free(bytes);
}

/* --- An in-memory struct ckpt over a safetensors file's bytes ---------------- */

struct mem_impl {
    const unsigned char *data; /* borrowed: the file's data section */
    uint64_t begin[MAX_T];     /* tensor i starts at data + begin[i] */
    int swapped;               /* data is stored big-endian (4-byte elements) */
};

static enum err_code mem_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                              const void **data, struct err *e)
{
    const struct mem_impl *m = c->impl;
    const unsigned char *src = m->data + m->begin[i];
    uint64_t n = c->tensors[i].nbytes;
    enum err_code rc;

    rc = ckpt__buf_reserve(c, buf, n ? n : 1, e);
    if (rc)
        return rc;
    *data = buf->data; /* always a copy in the caller's buffer (ckpt.h) */
    if (!m->swapped) {
        memcpy(buf->data, src, (size_t)n);
        return ERR_OK;
    }
    for (uint64_t k = 0; k + 3 < n; k += 4)
        for (int b = 0; b < 4; b++)
            ((unsigned char *)buf->data)[k + (uint64_t)b] = src[k + 3 - (uint64_t)b];
    return ERR_OK;
}

static void mem_free(void *impl)
{
    free(impl);
}

static const struct ckpt_ops mem_ops = {mem_read, mem_free};

/* A ckpt over the safetensors bytes `st` (header parsed with cJSON). */
static struct ckpt *mem_open(const unsigned char *st, size_t len)
{
    struct ckpt *c = calloc(1, sizeof(*c));
    struct mem_impl *m = calloc(1, sizeof(*m));
    uint64_t hlen = 0;
    cJSON *hdr = NULL;
    const cJSON *t;

    CHECK(c != NULL && m != NULL && len >= 8);
    if (c == NULL || m == NULL || len < 8) {
        free(c);
        free(m);
        return NULL;
    }
    for (int b = 7; b >= 0; b--)
        hlen = hlen << 8 | st[b];
    c->format = CKPT_FORMAT_SAFETENSORS;
    ckpt_limits_default(&c->limits);
    c->ops = &mem_ops;
    c->impl = m;
    CHECK(hlen <= len - 8);
    if (hlen > len - 8)
        hlen = len - 8;
    m->data = st + 8 + hlen;
    hdr = cJSON_ParseWithLength((const char *)st + 8, (size_t)hlen);
    CHECK(hdr != NULL);
    cJSON_ArrayForEach(t, hdr)
    {
        const char *dt = cJSON_GetObjectItem(t, "dtype") != NULL
                             ? cJSON_GetObjectItem(t, "dtype")->valuestring
                             : NULL;
        int64_t shape[CKPT_MAX_RANK];
        int ndim = 0;
        const cJSON *d;
        struct ckpt__entry entry;

        if (dt == NULL || c->n_tensors >= MAX_T)
            continue; /* __metadata__ */
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(t, "shape"))
        {
            if (ndim < CKPT_MAX_RANK)
                shape[ndim++] = (int64_t)d->valuedouble;
        }
        m->begin[c->n_tensors] =
            (uint64_t)cJSON_GetArrayItem(cJSON_GetObjectItem(t, "data_offsets"), 0)->valuedouble;
        entry = (struct ckpt__entry){.name = t->string,
                                     .name_len = strlen(t->string),
                                     .dtype = (enum dtype)dtype_from_code(dt, strlen(dt)),
                                     .ndim = ndim,
                                     .shape = shape};
        CHECK_EQ_INT(ckpt__tensor_add(c, &entry, NULL, NULL), ERR_OK);
    }
    cJSON_Delete(hdr);
    return c;
}

/* The manifest's sha256 of tensor `name` in file `path`, or NULL. */
static const char *manifest_sha(const cJSON *root, const char *path, const char *name)
{
    const cJSON *f, *t;

    cJSON_ArrayForEach(f, cJSON_GetObjectItem(root, "files"))
    {
        if (strcmp(cJSON_GetObjectItem(f, "path")->valuestring, path) != 0)
            continue;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(f, "tensors"))
        {
            if (strcmp(cJSON_GetObjectItem(t, "name")->valuestring, name) == 0)
                return cJSON_GetObjectItem(t, "sha256")->valuestring;
        }
    }
    return NULL;
}

/* Hash every tensor of `c` and compare with the manifest; returns the count. */
static int check_manifest_hashes(const struct ckpt *c, const cJSON *root)
{
    struct ckpt_buf buf = {0};
    char hex[THASH_HEX_LEN];
    int n_ok = 0;

    for (size_t i = 0; i < ckpt_n_tensors(c); i++) {
        const char *name = ckpt_tensor_at(c, i)->name;
        const char *want = manifest_sha(root, "mlp/mlp_step0000.safetensors", name);

        CHECK(want != NULL);
        CHECK_EQ_INT(thash_tensor(c, i, &buf, hex, NULL), ERR_OK);
        if (want != NULL && strcmp(hex, want) == 0)
            n_ok++;
        else
            CHECK_STR_EQ(hex, want);
    }
    ckpt_buf_free(&buf);
    return n_ok;
}

static void test_tensor_hashes_match_manifest(void)
{
    size_t len = 0, mlen = 0;
    unsigned char *st = fu_read(MLP_ST, &len), *be = NULL;
    char *mtext = fu_read(MANIFEST, &mlen);
    cJSON *root = mtext != NULL ? cJSON_Parse(mtext) : NULL;
    struct ckpt *c = NULL;

    CHECK(st != NULL && root != NULL);
    if (st == NULL || root == NULL)
        goto out;
    /* zero-copy path: hashes of the file's own bytes */
    c = mem_open(st, len);
    CHECK(c != NULL && ckpt_n_tensors(c) == 6);
    if (c != NULL)
        CHECK_EQ_INT(check_manifest_hashes(c, root), 6);
    ckpt_close(c);
    /* materialised path: a big-endian copy (F32 elements) swapped back through the buffer */
    c = mem_open(st, len);
    be = malloc(len);
    CHECK(c != NULL && be != NULL);
    if (c != NULL && be != NULL) {
        struct mem_impl *m = c->impl;
        size_t data_at = (size_t)(m->data - st);

        memcpy(be, st, len);
        for (size_t k = data_at; k + 3 < len; k += 4)
            for (size_t b = 0; b < 4; b++)
                be[k + b] = st[k + 3 - b];
        m->data = be + data_at;
        m->swapped = 1;
        CHECK(memcmp(be + data_at, st + data_at, 64) != 0);
        CHECK_EQ_INT(check_manifest_hashes(c, root), 6);
    }
    ckpt_close(c);
out:
    free(be);
    cJSON_Delete(root);
    free(mtext);
    free(st);
}

/* The index of the tensor named `name` in `c`, or -1. */
static long find_tensor(const struct ckpt *c, const char *name)
{
    for (size_t i = 0; i < ckpt_n_tensors(c); i++)
        if (strcmp(ckpt_tensor_at(c, i)->name, name) == 0)
            return (long)i;
    return -1;
}

static void test_tensor_over_limit_fails(void)
{
    size_t len = 0;
    unsigned char *st = fu_read(MLP_ST, &len);
    struct ckpt *c = st != NULL ? mem_open(st, len) : NULL;
    struct ckpt_buf buf = {0};
    struct err e = {0};
    char hex[THASH_HEX_LEN] = "x";
    long i = c != NULL ? find_tensor(c, "net.0.weight") : -1;

    CHECK(i >= 0);
    if (i >= 0) {
        c->limits.max_tensor_bytes = 1024; /* net.0.weight has 65536 bytes */
        CHECK_EQ_INT(thash_tensor(c, (size_t)i, &buf, hex, &e), ERR_TOOBIG);
        CHECK_STR_EQ(err_category(&e), "limit_exceeded");
        CHECK_STR_EQ(hex, "");
    }
    ckpt_close(c);
    ckpt_buf_free(&buf);
    free(st);
}

int main(void)
{
    test_fips_vectors();
    test_hex_ok_accepts_only_thash_hex();
    test_streaming_equals_one_shot();
    test_numerics_file_hash();
    test_tensor_hashes_match_manifest();
    test_tensor_over_limit_fails();
    return check_report("test_thash");
}
