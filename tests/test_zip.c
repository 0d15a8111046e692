/* test_zip.c -- the zip layer (core/zip.h, docs/checkpoint-formats.md, PyTorch zip files): zips
 * built byte by byte in memory, one test per rule, plus the ZIP64 and deflate
 * fixtures. Run from the repository root.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/formats/zip.h"
#include "tests/check.h"

#define FIXTURES "tests/fixtures/checkpoints/"

struct zb { /* a zip being written */
    unsigned char buf[8192];
    size_t len;
    unsigned char cd[4096]; /* central directory, appended at the end */
    size_t cd_len;
    int n;
};

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

/* A ZIP record signature: 'P', 'K', a, b (four bytes, no NUL). */
static void put_sig(unsigned char *p, unsigned char a, unsigned char b)
{
    p[0] = 'P';
    p[1] = 'K';
    p[2] = a;
    p[3] = b;
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v & 0xFFFF);
    put16(p + 2, v >> 16);
}

/* Append a member: local header + data, and its central entry. `method`,
 * `flags`, declared sizes and crc are written as given. */
static void zb_add(struct zb *z, const char *name, const void *data, size_t n, unsigned method,
                   unsigned flags, uint32_t csize, uint32_t usize, uint32_t crc)
{
    size_t nl = strlen(name), off = z->len;
    unsigned char *l = z->buf + z->len, *c = z->cd + z->cd_len;

    memset(l, 0, 30);
    put_sig(l, 3, 4);
    put16(l + 6, flags);
    put16(l + 8, method);
    put16(l + 26, (unsigned)nl);
    memcpy(l + 30, name, nl); /* NOLINT(bugprone-not-null-terminated-result): no NUL in ZIP */
    memcpy(l + 30 + nl, data, n);
    z->len += 30 + nl + n;
    memset(c, 0, 46);
    put_sig(c, 1, 2);
    put16(c + 8, flags);
    put16(c + 10, method);
    put32(c + 16, crc);
    put32(c + 20, csize);
    put32(c + 24, usize);
    put16(c + 28, (unsigned)nl);
    put32(c + 42, (uint32_t)off);
    memcpy(c + 46, name, nl); /* NOLINT(bugprone-not-null-terminated-result): no NUL in ZIP */
    z->cd_len += 46 + nl;
    z->n++;
}

static void zb_stored(struct zb *z, const char *name, const char *text)
{
    size_t n = strlen(text);
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)text, (uInt)n);

    zb_add(z, name, text, n, 0, 0, (uint32_t)n, (uint32_t)n, crc);
}

/* Central directory + classic end record. */
static void zb_finish(struct zb *z)
{
    unsigned char *e;
    size_t cd_off = z->len;

    memcpy(z->buf + z->len, z->cd, z->cd_len);
    z->len += z->cd_len;
    e = z->buf + z->len;
    memset(e, 0, 22);
    put_sig(e, 5, 6);
    put16(e + 8, (unsigned)z->n);
    put16(e + 10, (unsigned)z->n);
    put32(e + 12, (uint32_t)z->cd_len);
    put32(e + 16, (uint32_t)cd_off);
    z->len += 22;
}

static const char *parse_cat(const unsigned char *buf, size_t len, uint64_t max_members)
{
    static struct err e;
    struct zip_archive *z = NULL;
    enum err_code rc = zip_parse(buf, len, max_members, &z, &e);

    zip_free(z);
    return rc == ERR_OK ? "ok" : err_category(&e);
}

static void test_stored_members(void)
{
    struct zb z = {0};
    struct zip_archive *a = NULL;
    struct err e = {0};
    const struct zip_member *m;
    const unsigned char *data;
    unsigned char *owned;
    struct zip_read_opts o = {.limit = 100, .verify_crc = 1};

    zb_stored(&z, "archive/data.pkl", "pickle!");
    zb_stored(&z, "archive/version", "3\n");
    zb_finish(&z);
    CHECK_EQ_INT(zip_parse(z.buf, z.len, 10, &a, &e), ERR_OK);
    if (a == NULL)
        return;
    CHECK_EQ_INT(zip_n_members(a), 2);
    CHECK_STR_EQ(zip_member_at(a, 0)->name, "archive/data.pkl");
    CHECK_STR_EQ(zip_member_at(a, 1)->name, "archive/version");
    m = zip_find(a, "archive/version");
    CHECK(m == zip_member_at(a, 1));
    CHECK(zip_find(a, "archive/data") == NULL);
    CHECK(zip_find(a, "archive/versions") == NULL);
    CHECK_EQ_INT(m->data_offset, 30 + 16 + 7 + 30 + 15);
    CHECK_EQ_INT(zip_member_read(a, m, &o, &data, &owned, &e), ERR_OK);
    /* a copy, never a pointer into the archive's bytes */
    CHECK(owned != NULL && data == owned && data != z.buf + m->data_offset &&
          memcmp(data, "3\n", 2) == 0);
    free(owned);
    o.limit = 6;
    CHECK_EQ_INT(zip_member_read(a, zip_member_at(a, 0), &o, &data, &owned, &e), ERR_TOOBIG);
    CHECK_STR_EQ(err_category(&e), "limit_exceeded");
    zip_free(a);
}

static void test_end_record_rules(void)
{
    struct zb z = {0};

    zb_stored(&z, "a/x", "12345");
    zb_finish(&z);
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 10), "ok");
    CHECK_STR_EQ(parse_cat(z.buf, z.len - 10, 10), "truncated"); /* end record cut */
    CHECK_STR_EQ(parse_cat(z.buf, 21, 10), "truncated");         /* shorter than an EOCD */
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 0), "limit_exceeded");  /* member cap */
    put32(z.buf + z.len - 22 + 16, 0xFFFFFFFFu);                 /* zip64 sentinel, no locator */
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 10), "invalid_zip");
    put32(z.buf + z.len - 22 + 16, 4000); /* directory past the end */
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 10), "truncated");
}

static void test_member_rules(void)
{
    struct zb z;

    memset(&z, 0, sizeof(z)); /* encryption flag */
    zb_add(&z, "a/x", "abc", 3, 0, 1, 3, 3, 0);
    zb_finish(&z);
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 10), "invalid_zip");
    memset(&z, 0, sizeof(z)); /* duplicate names */
    zb_stored(&z, "a/x", "abc");
    zb_stored(&z, "a/x", "def");
    zb_finish(&z);
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 10), "invalid_zip");
    memset(&z, 0, sizeof(z)); /* stored with csize != usize */
    zb_add(&z, "a/x", "abc", 3, 0, 0, 3, 4, 0);
    zb_finish(&z);
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 10), "invalid_zip");
    memset(&z, 0, sizeof(z)); /* name not UTF-8 */
    zb_stored(&z, "a/\xff", "abc");
    zb_finish(&z);
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 10), "invalid_zip");
    memset(&z, 0, sizeof(z)); /* bad local signature */
    zb_stored(&z, "a/x", "abc");
    zb_stored(&z, "a/y", "def");
    zb_finish(&z);
    z.buf[30 + 3 + 3 + 2] = 'X';
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 10), "invalid_zip");
    memset(&z, 0, sizeof(z)); /* local name differs */
    zb_stored(&z, "a/x", "abc");
    zb_finish(&z);
    z.buf[32] = 'y';
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 10), "invalid_zip");
}

static void test_ranges(void)
{
    struct zb z;

    memset(&z, 0, sizeof(z)); /* first member's declared data runs into the second */
    zb_add(&z, "a/x", "abcdef", 6, 0, 0, 10, 10, 0);
    zb_stored(&z, "a/y", "ghi");
    zb_finish(&z);
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 10), "invalid_zip");
    memset(&z, 0, sizeof(z)); /* data past the end of the buffer */
    zb_add(&z, "a/x", "abc", 3, 0, 0, 5000, 5000, 0);
    zb_finish(&z);
    CHECK_STR_EQ(parse_cat(z.buf, z.len, 10), "truncated");
}

static void test_crc(void)
{
    struct zb z = {0};
    struct zip_archive *a = NULL;
    struct err e = {0};
    const unsigned char *data;
    unsigned char *owned;
    const struct zip_read_opts crc = {.limit = 10, .verify_crc = 1};
    const struct zip_read_opts no_crc = {.limit = 10, .verify_crc = 0};

    zb_add(&z, "a/good", "abc", 3, 0, 0, 3, 3, (uint32_t)crc32(0, (const Bytef *)"abc", 3));
    zb_add(&z, "a/bad", "abc", 3, 0, 0, 3, 3, 0x12345678u);
    zb_add(&z, "a/none", "abc", 3, 0, 0, 3, 3, 0);
    zb_finish(&z);
    CHECK_EQ_INT(zip_parse(z.buf, z.len, 10, &a, &e), ERR_OK);
    if (a == NULL)
        return;
    CHECK_EQ_INT(zip_member_read(a, zip_find(a, "a/good"), &crc, &data, &owned, &e), ERR_OK);
    free(owned);
    CHECK_EQ_INT(zip_member_read(a, zip_find(a, "a/bad"), &crc, &data, &owned, &e), ERR_FORMAT);
    CHECK_STR_EQ(err_category(&e), "invalid_zip");
    CHECK(data == NULL && owned == NULL);
    CHECK_EQ_INT(zip_member_read(a, zip_find(a, "a/bad"), &no_crc, &data, &owned, &e), ERR_OK);
    free(owned);
    CHECK_EQ_INT(zip_member_read(a, zip_find(a, "a/none"), &crc, &data, &owned, &e), ERR_OK);
    free(owned);
    zip_free(a);
}

/* Raw deflate of `src` into `dst`; returns the compressed length. */
static size_t deflate_raw(const void *src, size_t n, unsigned char *dst, size_t cap)
{
    z_stream s;
    size_t out;

    memset(&s, 0, sizeof(s));
    deflateInit2(&s, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    s.next_in = (Bytef *)(uintptr_t)src;
    s.avail_in = (uInt)n;
    s.next_out = dst;
    s.avail_out = (uInt)cap;
    deflate(&s, Z_FINISH);
    out = s.total_out;
    deflateEnd(&s);
    return out;
}

static void test_deflate(void)
{
    char text[1000];
    unsigned char comp[1200];
    size_t cn;
    struct zb z = {0};
    struct zip_archive *a = NULL;
    struct err e = {0};
    const unsigned char *data;
    unsigned char *owned = NULL, small[100];
    struct zip_read_opts o = {.limit = 1000, .verify_crc = 1};

    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + i % 7);
    cn = deflate_raw(text, sizeof(text), comp, sizeof(comp));
    CHECK(cn > 0 && cn < 200);
    zb_add(&z, "a/ok", comp, cn, 8, 0, (uint32_t)cn, 1000,
           (uint32_t)crc32(0, (const Bytef *)text, 1000));
    zb_add(&z, "a/more", comp, cn, 8, 0, (uint32_t)cn, 999, 0);  /* inflates past 999 */
    zb_add(&z, "a/less", comp, cn, 8, 0, (uint32_t)cn, 1001, 0); /* ends before 1001 */
    zb_add(&z, "a/bzip2", comp, cn, 12, 0, (uint32_t)cn, 1000, 0);
    zb_finish(&z);
    CHECK_EQ_INT(zip_parse(z.buf, z.len, 10, &a, &e), ERR_OK);
    if (a == NULL)
        return;
    CHECK_EQ_INT(zip_member_read(a, zip_find(a, "a/ok"), &o, &data, &owned, &e), ERR_OK);
    CHECK(owned != NULL && data == owned && memcmp(data, text, 1000) == 0);
    free(owned);
    o.limit = 999;
    CHECK_EQ_INT(zip_member_read(a, zip_find(a, "a/ok"), &o, &data, &owned, &e), ERR_TOOBIG);
    CHECK_EQ_INT(zip_member_inflate(a, zip_find(a, "a/ok"), small, sizeof(small), &e), ERR_TOOBIG);
    o = (struct zip_read_opts){.limit = 5000, .verify_crc = 0};
    CHECK_EQ_INT(zip_member_read(a, zip_find(a, "a/more"), &o, &data, &owned, &e), ERR_FORMAT);
    CHECK_STR_EQ(err_category(&e), "invalid_zip");
    CHECK_EQ_INT(zip_member_read(a, zip_find(a, "a/less"), &o, &data, &owned, &e), ERR_FORMAT);
    CHECK_STR_EQ(err_category(&e), "invalid_zip");
    CHECK_EQ_INT(zip_member_read(a, zip_find(a, "a/bzip2"), &o, &data, &owned, &e), ERR_FORMAT);
    CHECK_STR_EQ(err_category(&e), "unsupported_compression");
    zip_free(a);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL;
    long sz;

    *n = 0;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        b = malloc((size_t)sz);
        if (b != NULL && fread(b, 1, (size_t)sz, f) == (size_t)sz)
            *n = (size_t)sz;
    }
    fclose(f);
    return b;
}

/* The ZIP64-extra-field and deflated fixtures hold the same data.pkl as the plain one. */
static void test_fixture_variants(void)
{
    static const char *const names[] = {"mlp/mlp_step0500.pt",
                                        "special/mlp_step0500_zip64_fields.pt",
                                        "special/mlp_step0500_deflated.pt"};
    unsigned char *ref = NULL;
    size_t ref_len = 0;
    const struct zip_read_opts o = {.limit = 1 << 20, .verify_crc = 1};

    for (int v = 0; v < 3; v++) {
        char path[256];
        size_t n;
        unsigned char *buf, *owned = NULL;
        const unsigned char *data;
        struct zip_archive *a = NULL;
        struct err e = {0};
        const struct zip_member *m;
        snprintf(path, sizeof(path), FIXTURES "%s", names[v]);
        buf = slurp(path, &n);
        CHECK(buf != NULL);
        CHECK_EQ_INT(zip_parse(buf, n, 100, &a, &e), ERR_OK);
        m = a ? zip_find(a, "mlp_step0500/data.pkl") : NULL;
        if (m == NULL && a != NULL)
            m = zip_find(a, "archive/data.pkl"); /* the ZIP64 variant was saved to a buffer */
        CHECK(m != NULL);
        if (m != NULL && zip_member_read(a, m, &o, &data, &owned, &e) == ERR_OK) {
            if (v == 0) {
                ref = malloc(m->usize);
                if (ref != NULL) {
                    memcpy(ref, data, m->usize);
                    ref_len = m->usize;
                }
            } else { /* no reference (v == 0 failed) fails here */
                CHECK(ref != NULL && m->usize == ref_len && memcmp(data, ref, ref_len) == 0);
            }
        }
        CHECK(m == NULL || v != 2 || m->method == ZIP_METHOD_DEFLATE);
        free(owned);
        zip_free(a);
        free(buf);
    }
    free(ref);
}

/* `n` empty stored members "m/00000".. whose end record counts `count`
 * entries (no zip64 records); *len gets the size. Heap buffer. */
static unsigned char *many_members(unsigned n, unsigned count, size_t *len)
{
    size_t per_local = 30 + 7, per_cd = 46 + 7, cd_off = (size_t)n * per_local;
    size_t total = cd_off + (size_t)n * per_cd + 22;
    unsigned char *b = calloc(1, total), *c, *e;

    if (b == NULL)
        return NULL;
    for (unsigned i = 0; i < n; i++) {
        unsigned char *l = b + (size_t)i * per_local;
        char name[16];
        snprintf(name, sizeof(name), "m/%05u", i % 100000);
        put_sig(l, 3, 4);
        put16(l + 26, 7);
        memcpy(l + 30, name, 7); /* NOLINT(bugprone-not-null-terminated-result): no NUL in ZIP */
        c = b + cd_off + (size_t)i * per_cd;
        put_sig(c, 1, 2);
        put16(c + 28, 7);
        put32(c + 42, (uint32_t)((size_t)i * per_local));
        memcpy(c + 46, name, 7); /* NOLINT(bugprone-not-null-terminated-result): no NUL in ZIP */
    }
    e = b + total - 22;
    put_sig(e, 5, 6);
    put16(e + 8, count);
    put16(e + 10, count);
    put32(e + 12, (uint32_t)((size_t)n * per_cd));
    put32(e + 16, (uint32_t)cd_off);
    *len = total;
    return b;
}

/* An end record counting 0xFFFF entries without a zip64 record is a real
 * count (Python's zipfile writes 65 535 members so), as long as the central
 * directory holds them all. */
static void test_65535_members(void)
{
    struct zip_archive *a = NULL;
    struct err e = {0};
    size_t len = 0;
    unsigned char *b = many_members(65535, 0xFFFF, &len);

    CHECK(b != NULL);
    if (b == NULL)
        return;
    CHECK_EQ_INT(zip_parse(b, len, 1u << 20, &a, &e), ERR_OK);
    CHECK_EQ_INT(a != NULL ? zip_n_members(a) : 0, 65535);
    CHECK(a != NULL && zip_find(a, "m/65534") != NULL && zip_find(a, "m/00000") != NULL);
    CHECK(a != NULL && zip_find(a, "m/65535") == NULL);
    zip_free(a);
    CHECK_STR_EQ(parse_cat(b, len, 65534), "limit_exceeded"); /* the member cap still applies */
    free(b);
    b = many_members(65534, 0xFFFF, &len); /* claims one entry more than it holds */
    CHECK(b != NULL);
    if (b != NULL)
        CHECK_STR_EQ(parse_cat(b, len, 1u << 20), "invalid_zip");
    free(b);
}

/* A stream stops after a prefix without inflating the rest; finish checks
 * the exact size and the CRC-32. */
static void test_stream_prefix(void)
{
    static unsigned char text[100000], packed[200000];
    struct zb *z = calloc(1, sizeof(*z));
    struct zip_archive *a = NULL;
    struct zip_stream *s = NULL;
    struct err e = {0};
    unsigned char got[16];
    uLongf n = sizeof(packed);
    z_stream zs;

    if (z == NULL)
        return;
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (unsigned char)('a' + i % 7);
    memset(&zs, 0, sizeof(zs));
    deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = text;
    zs.avail_in = sizeof(text);
    zs.next_out = packed;
    zs.avail_out = (uInt)n;
    CHECK_EQ_INT(deflate(&zs, Z_FINISH), Z_STREAM_END);
    n = zs.total_out;
    deflateEnd(&zs);
    CHECK(n < 4000); /* fits the builder */
    zb_add(z, "a/t", packed, n, 8, 0, (uint32_t)n, sizeof(text),
           (uint32_t)crc32(0, text, sizeof(text)));
    zb_add(z, "a/badcrc", packed, n, 8, 0, (uint32_t)n, sizeof(text), 0x1234u);
    zb_finish(z);
    CHECK_EQ_INT(zip_parse(z->buf, z->len, 10, &a, &e), ERR_OK);
    if (a != NULL) {
        CHECK_EQ_INT(zip_stream_open(a, zip_find(a, "a/t"), 1, &s, &e), ERR_OK);
        CHECK_EQ_INT(s ? zip_stream_read(s, got, 5, &e) : ERR_INTERNAL, ERR_OK);
        CHECK(memcmp(got, "abcde", 5) == 0);
        CHECK_EQ_INT(s ? zip_stream_skip(s, 70000, &e) : ERR_INTERNAL, ERR_OK);
        CHECK_EQ_INT(s ? zip_stream_read(s, got, 2, &e) : ERR_INTERNAL, ERR_OK);
        CHECK(got[0] == 'a' + 70005 % 7 && got[1] == 'a' + 70006 % 7);
        CHECK_EQ_INT(s ? zip_stream_finish(s, &e) : ERR_INTERNAL, ERR_OK);
        zip_stream_close(s);
        s = NULL;
        CHECK_EQ_INT(zip_stream_open(a, zip_find(a, "a/t"), 0, &s, &e), ERR_OK);
        CHECK_EQ_INT(s ? zip_stream_read(s, got, 3, &e) : ERR_INTERNAL, ERR_OK);
        zip_stream_close(s); /* stopping early is fine */
        s = NULL;
        CHECK_EQ_INT(zip_stream_open(a, zip_find(a, "a/t"), 0, &s, &e), ERR_OK);
        CHECK_EQ_INT(s ? zip_stream_skip(s, sizeof(text) + 1, &e) : ERR_INTERNAL, ERR_FORMAT);
        zip_stream_close(s);
        s = NULL;
        CHECK_EQ_INT(zip_stream_open(a, zip_find(a, "a/badcrc"), 1, &s, &e), ERR_OK);
        CHECK_EQ_INT(s ? zip_stream_finish(s, &e) : ERR_INTERNAL, ERR_FORMAT);
        CHECK(strstr(e.msg, "CRC mismatch") != NULL);
        zip_stream_close(s);
    }
    zip_free(a);
    free(z);
}

int main(void)
{
    test_stored_members();
    test_end_record_rules();
    test_member_rules();
    test_ranges();
    test_crc();
    test_deflate();
    test_fixture_variants();
    test_65535_members();
    test_stream_prefix();
    return check_report("test_zip");
}
