/* zip.c -- see zip.h. Central-directory zip reader with the §2.2 safety checks. */
#include "core/zip.h"
#include "core/utf8.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#define ZLIB_CONST 1
#include <zlib.h>

#define ZIP_EOCD_LEN    22
#define ZIP_LOC64_LEN   20
#define ZIP_EOCD64_LEN  56
#define ZIP_CENTRAL_LEN 46
#define ZIP_LOCAL_LEN   30
#define ZIP_SAT32       0xFFFFFFFFu
#define ZIP_SAT16       0xFFFFu

struct zip_archive {
    const unsigned char *buf; /* borrowed from the caller */
    uint64_t len;
    struct zip_member *members; /* owned, central-directory order */
    size_t n_members;
    size_t *by_name; /* owned: member indices sorted by name */
    char *names;     /* owned: every name, NUL-terminated, back to back */
};

static uint16_t zip_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t zip_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t zip_u64(const unsigned char *p)
{
    return (uint64_t)zip_u32(p) | ((uint64_t)zip_u32(p + 4) << 32);
}

/* 1 if s[0..n) is well-formed UTF-8 without NUL (a name must be a C string). */
static int zip_utf8_ok(const unsigned char *s, size_t n)
{
    return utf8_check(s, n) == n && memchr(s, 0, n) == NULL;
}

/* Where the central directory is, from the end records (§2.2 steps 1). */
struct zip_cd {
    uint64_t n_entries, size, offset;
};

static enum err_code zip_find_cd(const unsigned char *buf, uint64_t len, struct zip_cd *cd,
                                 struct err *e)
{
    uint64_t pos, lo, z64;
    int found = 0;
    const unsigned char *p;

    if (len < ZIP_EOCD_LEN)
        return err_setc(e, ERR_FORMAT, "truncated", "%llu bytes: too short for a zip end record",
                        (unsigned long long)len);
    lo = len - ZIP_EOCD_LEN > 0xFFFF ? len - ZIP_EOCD_LEN - 0xFFFF : 0;
    for (pos = len - ZIP_EOCD_LEN;; pos--) {
        if (memcmp(buf + pos, "PK\5\6", 4) == 0 &&
            pos + ZIP_EOCD_LEN + zip_u16(buf + pos + 20) == len) {
            found = 1;
            break;
        }
        if (pos == lo)
            break;
    }
    if (!found)
        return err_setc(e, ERR_FORMAT, "truncated",
                        "no zip end-of-central-directory record (file cut short?)");
    p = buf + pos;
    if (zip_u16(p + 4) != 0 || zip_u16(p + 6) != 0 || zip_u16(p + 8) != zip_u16(p + 10))
        return err_setc(e, ERR_FORMAT, "invalid_zip", "multi-disk zip archives are not supported");
    cd->n_entries = zip_u16(p + 10);
    cd->size = zip_u32(p + 12);
    cd->offset = zip_u32(p + 16);
    if (pos >= ZIP_LOC64_LEN && memcmp(p - ZIP_LOC64_LEN, "PK\6\7", 4) == 0) {
        z64 = zip_u64(p - ZIP_LOC64_LEN + 8);
        if (z64 > len || len - z64 < ZIP_EOCD64_LEN || memcmp(buf + z64, "PK\6\6", 4) != 0)
            return err_setc(e, ERR_FORMAT, "invalid_zip",
                            "zip64 locator points at no zip64 end record (offset %llu)",
                            (unsigned long long)z64);
        p = buf + z64;
        if (zip_u32(p + 16) != 0 || zip_u32(p + 20) != 0 || zip_u64(p + 24) != zip_u64(p + 32))
            return err_setc(e, ERR_FORMAT, "invalid_zip", "multi-disk zip64 archive");
        cd->n_entries = zip_u64(p + 32);
        cd->size = zip_u64(p + 40);
        cd->offset = zip_u64(p + 48);
    } else if (cd->n_entries == ZIP_SAT16 || cd->size == ZIP_SAT32 || cd->offset == ZIP_SAT32) {
        return err_setc(e, ERR_FORMAT, "invalid_zip",
                        "zip64 sentinel values without a zip64 locator");
    }
    if (cd->offset > len || cd->size > len - cd->offset)
        return err_setc(e, ERR_FORMAT, "truncated",
                        "central directory (offset %llu, %llu bytes) runs past the end (%llu)",
                        (unsigned long long)cd->offset, (unsigned long long)cd->size,
                        (unsigned long long)len);
    return ERR_OK;
}

/* Replace saturated sizes/offset with the ZIP64 extra field's values. */
static enum err_code zip_apply_zip64(const unsigned char *extra, size_t xlen, struct zip_member *m,
                                     struct err *e)
{
    size_t q = 0, r = 0, zlen = 0;
    const unsigned char *z = NULL;
    uint64_t *fields[3] = {&m->usize, &m->csize, &m->local_offset};

    while (q + 4 <= xlen) {
        size_t ln = zip_u16(extra + q + 2);
        if (zip_u16(extra + q) == 0x0001) {
            z = extra + q + 4;
            zlen = ln <= xlen - q - 4 ? ln : xlen - q - 4;
            break;
        }
        q += 4 + ln;
    }
    if (z == NULL)
        return err_setc(e, ERR_FORMAT, "invalid_zip", "zip64 sizes without a zip64 extra field");
    for (int i = 0; i < 3; i++) {
        if (*fields[i] != ZIP_SAT32)
            continue;
        if (zlen - r < 8)
            return err_setc(e, ERR_FORMAT, "invalid_zip", "short zip64 extra field");
        *fields[i] = zip_u64(z + r);
        r += 8;
    }
    return ERR_OK;
}

/* Parse the central entry at buf[*pos] (inside [.., end)) into `m` and check its local header. */
static enum err_code zip_entry(const unsigned char *buf, uint64_t len, uint64_t *pos, uint64_t end,
                               struct zip_member *m, struct err *e)
{
    const unsigned char *p = buf + *pos, *lh;
    size_t nlen, xlen, clen, lnlen, lxlen;
    enum err_code rc;

    if (end - *pos < ZIP_CENTRAL_LEN || memcmp(p, "PK\1\2", 4) != 0)
        return err_setc(e, ERR_FORMAT, "invalid_zip", "bad central directory entry at offset %llu",
                        (unsigned long long)*pos);
    nlen = zip_u16(p + 28);
    xlen = zip_u16(p + 30);
    clen = zip_u16(p + 32);
    if (end - *pos - ZIP_CENTRAL_LEN < (uint64_t)nlen + xlen + clen)
        return err_setc(e, ERR_FORMAT, "invalid_zip",
                        "central directory entry at %llu overruns the directory",
                        (unsigned long long)*pos);
    memset(m, 0, sizeof(*m));
    m->flags = zip_u16(p + 8);
    m->method = zip_u16(p + 10);
    m->crc32 = zip_u32(p + 16);
    m->csize = zip_u32(p + 20);
    m->usize = zip_u32(p + 24);
    m->local_offset = zip_u32(p + 42);
    m->name = (const char *)(p + ZIP_CENTRAL_LEN); /* not yet NUL-terminated */
    m->name_len = nlen;
    if (m->usize == ZIP_SAT32 || m->csize == ZIP_SAT32 || m->local_offset == ZIP_SAT32) {
        rc = zip_apply_zip64(p + ZIP_CENTRAL_LEN + nlen, xlen, m, e);
        if (rc)
            return rc;
    }
    if (m->flags & 1u)
        return err_setc(e, ERR_FORMAT, "invalid_zip", "member '%.*s' is encrypted",
                        (int)(nlen > 200 ? 200 : nlen), m->name);
    if (!zip_utf8_ok(p + ZIP_CENTRAL_LEN, nlen))
        return err_setc(e, ERR_FORMAT, "invalid_zip",
                        "member name at offset %llu is not UTF-8 (or holds NUL)",
                        (unsigned long long)*pos);
    if (m->local_offset > len || len - m->local_offset < ZIP_LOCAL_LEN)
        return err_setc(e, ERR_FORMAT, "truncated", "local header of '%.*s' past end of file",
                        (int)(nlen > 200 ? 200 : nlen), m->name);
    lh = buf + m->local_offset;
    lnlen = zip_u16(lh + 26);
    lxlen = zip_u16(lh + 28);
    if (memcmp(lh, "PK\3\4", 4) != 0)
        return err_setc(e, ERR_FORMAT, "invalid_zip", "bad local header signature for '%.*s'",
                        (int)(nlen > 200 ? 200 : nlen), m->name);
    if (lnlen != nlen || len - m->local_offset - ZIP_LOCAL_LEN < lnlen ||
        memcmp(lh + ZIP_LOCAL_LEN, m->name, nlen) != 0)
        return err_setc(e, ERR_FORMAT, "invalid_zip", "local and central names differ for '%.*s'",
                        (int)(nlen > 200 ? 200 : nlen), m->name);
    m->data_offset = m->local_offset + ZIP_LOCAL_LEN + lnlen + lxlen;
    if (m->method == ZIP_METHOD_STORED && m->csize != m->usize)
        return err_setc(e, ERR_FORMAT, "invalid_zip",
                        "stored member '%.*s': compressed size %llu != size %llu",
                        (int)(nlen > 200 ? 200 : nlen), m->name, (unsigned long long)m->csize,
                        (unsigned long long)m->usize);
    if (m->data_offset > len || m->csize > len - m->data_offset)
        return err_setc(e, ERR_FORMAT, "truncated",
                        "data of '%.*s' (%llu bytes at %llu) runs past end of file (%llu)",
                        (int)(nlen > 200 ? 200 : nlen), m->name, (unsigned long long)m->csize,
                        (unsigned long long)m->data_offset, (unsigned long long)len);
    *pos += ZIP_CENTRAL_LEN + nlen + xlen + clen;
    return ERR_OK;
}

/* qsort contexts: C qsort has no user pointer, so sort (key, index) records. */
struct zip_sort_ent {
    const struct zip_member *m;
    size_t idx;
};

static int zip_cmp_name(const void *a, const void *b)
{
    const struct zip_member *x = ((const struct zip_sort_ent *)a)->m;
    const struct zip_member *y = ((const struct zip_sort_ent *)b)->m;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);

    if (c != 0)
        return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static int zip_cmp_offset(const void *a, const void *b)
{
    const struct zip_member *x = ((const struct zip_sort_ent *)a)->m;
    const struct zip_member *y = ((const struct zip_sort_ent *)b)->m;

    return (x->local_offset > y->local_offset) - (x->local_offset < y->local_offset);
}

/* Duplicate names and overlapping byte ranges; fills z->by_name. */
static enum err_code zip_check_members(struct zip_archive *z, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct zip_sort_ent *s = NULL;
    size_t n = z->n_members;

    if (n == 0)
        return ERR_OK;
    s = malloc(n * sizeof(*s));
    z->by_name = malloc(n * sizeof(*z->by_name));
    if (s == NULL || z->by_name == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory indexing %zu zip members", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        s[i].m = &z->members[i];
        s[i].idx = i;
    }
    qsort(s, n, sizeof(*s), zip_cmp_name);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && zip_cmp_name(&s[i - 1], &s[i]) == 0) {
            rc = err_setc(e, ERR_FORMAT, "invalid_zip", "duplicate member name '%.200s'",
                          s[i].m->name);
            goto out;
        }
        z->by_name[i] = s[i].idx;
    }
    qsort(s, n, sizeof(*s), zip_cmp_offset);
    for (size_t i = 1; i < n; i++) {
        const struct zip_member *a = s[i - 1].m, *b = s[i].m;
        if (b->local_offset < a->data_offset + a->csize) {
            rc = err_setc(e, ERR_FORMAT, "invalid_zip", "members '%.100s' and '%.100s' overlap",
                          a->name, b->name);
            goto out;
        }
    }
out:
    free(s);
    return rc;
}

/* Copy names into one NUL-terminated block (names point into buf until then). */
static enum err_code zip_own_names(struct zip_archive *z, struct err *e)
{
    size_t total = 0;
    char *p;

    for (size_t i = 0; i < z->n_members; i++)
        total += z->members[i].name_len + 1; /* each <= 65536, count bounded: no overflow */
    z->names = malloc(total ? total : 1);
    if (z->names == NULL)
        return err_set(e, ERR_NOMEM, "out of memory copying zip member names");
    p = z->names;
    for (size_t i = 0; i < z->n_members; i++) {
        memcpy(p, z->members[i].name, z->members[i].name_len);
        p[z->members[i].name_len] = '\0';
        z->members[i].name = p;
        p += z->members[i].name_len + 1;
    }
    return ERR_OK;
}

enum err_code zip_parse(const unsigned char *buf, uint64_t len, uint64_t max_members,
                        struct zip_archive **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct zip_archive *z = NULL;
    struct zip_cd cd = {0};
    uint64_t pos, end;

    *out = NULL;
    rc = zip_find_cd(buf, len, &cd, e);
    if (rc)
        goto out;
    if (cd.n_entries > max_members) {
        rc = err_setc(e, ERR_TOOBIG, "limit_exceeded", "zip declares %llu members (limit %llu)",
                      (unsigned long long)cd.n_entries, (unsigned long long)max_members);
        goto out;
    }
    if (cd.n_entries > cd.size / ZIP_CENTRAL_LEN) {
        rc = err_setc(e, ERR_FORMAT, "invalid_zip",
                      "%llu members cannot fit a %llu-byte central directory",
                      (unsigned long long)cd.n_entries, (unsigned long long)cd.size);
        goto out;
    }
    z = calloc(1, sizeof(*z));
    if (z == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory parsing a zip");
        goto out;
    }
    z->buf = buf;
    z->len = len;
    z->members = calloc(cd.n_entries ? (size_t)cd.n_entries : 1, sizeof(*z->members));
    if (z->members == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory for %llu zip members",
                     (unsigned long long)cd.n_entries);
        goto out;
    }
    pos = cd.offset;
    end = cd.offset + cd.size;
    for (uint64_t i = 0; i < cd.n_entries; i++) {
        rc = zip_entry(buf, len, &pos, end, &z->members[i], e);
        if (rc)
            goto out;
        z->n_members++;
    }
    rc = zip_own_names(z, e);
    if (rc)
        goto out;
    rc = zip_check_members(z, e);
    if (rc)
        goto out;
    *out = z;
    z = NULL;
out:
    zip_free(z);
    return rc;
}

void zip_free(struct zip_archive *z)
{
    if (z == NULL)
        return;
    free(z->members);
    free(z->by_name);
    free(z->names);
    free(z);
}

size_t zip_n_members(const struct zip_archive *z)
{
    return z->n_members;
}

const struct zip_member *zip_member_at(const struct zip_archive *z, size_t i)
{
    ERR_ASSERT(i < z->n_members);
    return &z->members[i];
}

const struct zip_member *zip_find(const struct zip_archive *z, const char *name)
{
    size_t lo = 0, hi = z->n_members, n = strlen(name);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct zip_member *m = &z->members[z->by_name[mid]];
        size_t k = m->name_len < n ? m->name_len : n;
        int c = memcmp(m->name, name, k);
        if (c == 0)
            c = (m->name_len > n) - (m->name_len < n);
        if (c == 0)
            return m;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const unsigned char *zip_member_raw(const struct zip_archive *z, const struct zip_member *m)
{
    return z->buf + m->data_offset;
}

/* Inflate state machine for zip_member_inflate; returns ERR_OK or invalid_zip. */
static enum err_code zip_inflate_run(z_stream *zs, const unsigned char *src, uint64_t csize,
                                     unsigned char *dst, uint64_t usize, const char *name,
                                     struct err *e)
{
    uint64_t in_left = csize, out_left = usize;
    unsigned char sentinel;
    int using_sentinel = 0, ret;

    for (;;) {
        if (zs->avail_in == 0 && in_left > 0) {
            uInt n = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
            zs->next_in = src + (csize - in_left);
            zs->avail_in = n;
            in_left -= n;
        }
        if (zs->avail_out == 0) {
            if (using_sentinel)
                return err_setc(e, ERR_FORMAT, "invalid_zip",
                                "member '%.200s' inflates past its declared %llu bytes", name,
                                (unsigned long long)usize);
            if (out_left > 0) {
                uInt n = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
                zs->next_out = dst + (usize - out_left);
                zs->avail_out = n;
                out_left -= n;
            } else {
                /* cppcheck-suppress autoVariables ; the caller ends the stream next */
                zs->next_out = &sentinel;
                zs->avail_out = 1;
                using_sentinel = 1;
            }
        }
        ret = inflate(zs, Z_NO_FLUSH);
        if (ret == Z_STREAM_END)
            break;
        if (ret == Z_BUF_ERROR && zs->avail_in == 0 && in_left == 0)
            return err_setc(e, ERR_FORMAT, "invalid_zip", "deflate stream of '%.200s' is cut short",
                            name);
        if (ret != Z_OK && ret != Z_BUF_ERROR)
            return err_setc(e, ERR_FORMAT, "invalid_zip", "bad deflate stream in '%.200s': %s",
                            name, zs->msg ? zs->msg : "error");
    }
    if (using_sentinel && zs->avail_out == 0)
        return err_setc(e, ERR_FORMAT, "invalid_zip",
                        "member '%.200s' inflates past its declared %llu bytes", name,
                        (unsigned long long)usize);
    if (out_left > 0 || (!using_sentinel && zs->avail_out > 0))
        return err_setc(e, ERR_FORMAT, "invalid_zip",
                        "member '%.200s' inflates to fewer than its declared %llu bytes", name,
                        (unsigned long long)usize);
    return ERR_OK;
}

enum err_code zip_member_inflate(const struct zip_archive *z, const struct zip_member *m,
                                 unsigned char *dst, uint64_t dst_cap, struct err *e)
{
    enum err_code rc;
    z_stream zs;

    if (m->method != ZIP_METHOD_DEFLATE)
        return err_setc(e, ERR_FORMAT, "unsupported_compression",
                        "member '%.200s' uses compression method %u, not deflate", m->name,
                        (unsigned)m->method);
    if (m->usize > dst_cap)
        return err_setc(e, ERR_TOOBIG, "limit_exceeded",
                        "member '%.200s' declares %llu bytes, more than the %llu allowed", m->name,
                        (unsigned long long)m->usize, (unsigned long long)dst_cap);
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
        return err_set(e, ERR_NOMEM, "cannot start inflating '%.200s'", m->name);
    rc = zip_inflate_run(&zs, z->buf + m->data_offset, m->csize, dst, m->usize, m->name, e);
    inflateEnd(&zs);
    return rc;
}

enum err_code zip_member_crc_check(const struct zip_member *m, const unsigned char *data,
                                   uint64_t n, struct err *e)
{
    uLong crc = crc32(0L, Z_NULL, 0);

    if (m->crc32 == 0)
        return ERR_OK;
    while (n > 0) {
        uInt k = n > UINT_MAX ? UINT_MAX : (uInt)n;
        crc = crc32(crc, data, k);
        data += k;
        n -= k;
    }
    if ((uint32_t)crc != m->crc32)
        return err_setc(e, ERR_FORMAT, "invalid_zip",
                        "CRC mismatch in '%.200s': stored %08x, computed %08x", m->name,
                        (unsigned)m->crc32, (unsigned)(uint32_t)crc);
    return ERR_OK;
}

enum err_code zip_member_read(const struct zip_archive *z, const struct zip_member *m,
                              uint64_t limit, int verify_crc, const unsigned char **data,
                              unsigned char **owned, struct err *e)
{
    enum err_code rc = ERR_OK;
    unsigned char *buf = NULL;
    const unsigned char *p = NULL;

    *data = NULL;
    *owned = NULL;
    if (m->method != ZIP_METHOD_STORED && m->method != ZIP_METHOD_DEFLATE)
        return err_setc(e, ERR_FORMAT, "unsupported_compression",
                        "member '%.200s' uses compression method %u", m->name, (unsigned)m->method);
    if (m->usize > limit)
        return err_setc(e, ERR_TOOBIG, "limit_exceeded",
                        "member '%.200s' declares %llu bytes, more than the %llu allowed", m->name,
                        (unsigned long long)m->usize, (unsigned long long)limit);
    if (m->method == ZIP_METHOD_STORED) {
        p = z->buf + m->data_offset;
    } else {
        if (m->usize > SIZE_MAX - 1) {
            rc = err_setc(e, ERR_TOOBIG, "limit_exceeded", "member '%.200s' too large", m->name);
            goto out;
        }
        buf = malloc(m->usize ? (size_t)m->usize : 1);
        if (buf == NULL) {
            rc = err_set(e, ERR_NOMEM, "out of memory inflating '%.200s' (%llu bytes)", m->name,
                         (unsigned long long)m->usize);
            goto out;
        }
        rc = zip_member_inflate(z, m, buf, m->usize, e);
        if (rc)
            goto out;
        p = buf;
    }
    if (verify_crc) {
        rc = zip_member_crc_check(m, p, m->usize, e);
        if (rc)
            goto out;
    }
    *data = p;
    *owned = buf;
    buf = NULL;
out:
    free(buf);
    return rc;
}
