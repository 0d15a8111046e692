/* zip.c -- see zip.h. Central-directory zip reader with the safety checks of
 * docs/checkpoint-formats.md, PyTorch zip files: the central entries, their
 * local headers and the member checks (names, duplicates, overlaps).
 * Locating the central directory (the end records, ZIP64) is in zip_cd.c,
 * reading members in zip_read.c; what they share is in zip_int.h. */
#include "core/formats/zip.h"
#include "core/utf8.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/zip_int.h"

#define ZIP_CENTRAL_LEN 46
#define ZIP_LOCAL_LEN   30
#define ZIP_WIN_LEN     (256u << 10) /* central directory window: > one 46 + 3 x 64 KiB entry */

uint16_t zip__u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t zip__u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint64_t zip__u64(const unsigned char *p)
{
    return (uint64_t)zip__u32(p) | ((uint64_t)zip__u32(p + 4) << 32);
}

/* 1 if s[0..n) is well-formed UTF-8 without NUL (a name must be a C string). */
static int zip_utf8_ok(const unsigned char *s, size_t n)
{
    return utf8_check(s, n) == n && memchr(s, 0, n) == NULL;
}

/* Replace saturated sizes/offset with the ZIP64 extra field's values. */
static enum err_code zip_apply_zip64(const unsigned char *extra, size_t xlen, struct zip_member *m,
                                     struct err *e)
{
    size_t q = 0, r = 0, zlen = 0;
    const unsigned char *z = NULL;
    uint64_t *fields[3] = {&m->usize, &m->csize, &m->local_offset};

    while (q + 4 <= xlen) {
        size_t ln = zip__u16(extra + q + 2);
        if (zip__u16(extra + q) == 0x0001) {
            z = extra + q + 4;
            zlen = ln <= xlen - q - 4 ? ln : xlen - q - 4;
            break;
        }
        q += 4 + ln;
    }
    if (z == NULL)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "zip64 sizes without a zip64 extra field");
    for (int i = 0; i < 3; i++) {
        if (*fields[i] != ZIP_SAT32)
            continue;
        if (zlen - r < 8)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP, "short zip64 extra field");
        *fields[i] = zip__u64(z + r);
        r += 8;
    }
    return ERR_OK;
}

/* A window over the central directory: entries are parsed in order, each
 * inside [base, base + have) of `buf`, read again from the file when an
 * entry reaches past it. */
struct zip_win {
    const struct rfile *f;
    uint64_t base, end; /* window start; end of the central directory */
    size_t have;
    unsigned char *buf; /* owned, ZIP_WIN_LEN bytes */
    char *names;        /* owned arena of names (NUL-terminated), grown as read */
    size_t names_len, names_cap;
    unsigned char *local; /* owned scratch for one local header and its name */
};

/* Point *p at [pos, pos + n) of the directory (n <= ZIP_WIN_LEN, pos + n <= end). */
static enum err_code zip_win_get(struct zip_win *w, uint64_t pos, size_t n, const unsigned char **p,
                                 struct err *e)
{
    enum err_code rc;
    uint64_t k;

    if (pos < w->base || pos + n > w->base + w->have) {
        k = w->end - pos < ZIP_WIN_LEN ? w->end - pos : ZIP_WIN_LEN;
        rc = rfile_read(w->f, pos, k, w->buf, e);
        if (rc)
            return rc;
        w->base = pos;
        w->have = (size_t)k;
    }
    *p = w->buf + (pos - w->base);
    return ERR_OK;
}

/* Append name `s` (n bytes) to the arena; *off gets its offset. */
static enum err_code zip_win_name(struct zip_win *w, const unsigned char *s, size_t n, size_t *off,
                                  struct err *e)
{
    if (w->names_cap - w->names_len < n + 1) {
        size_t cap = w->names_cap ? w->names_cap : 4096;
        char *nn;
        while (cap - w->names_len < n + 1)
            cap *= 2;
        nn = realloc(w->names, cap);
        if (nn == NULL)
            return err_set(e, ERR_NOMEM, "out of memory copying zip member names");
        w->names = nn;
        w->names_cap = cap;
    }
    memcpy(w->names + w->names_len, s, n);
    w->names[w->names_len + n] = '\0';
    *off = w->names_len;
    w->names_len += n + 1;
    return ERR_OK;
}

/* The local header of `m` (name at w->names + name_off): signature, same
 * name; sets data_offset and checks the data lies inside the file. */
static enum err_code zip_local(struct zip_win *w, struct zip_member *m, size_t name_off,
                               struct err *e)
{
    const char *name = w->names + name_off;
    uint64_t len = w->f->size;
    size_t nlen = m->name_len, lnlen, lxlen;
    enum err_code rc;
    int pn = (int)(nlen > 200 ? 200 : nlen);

    if (m->local_offset > len || len - m->local_offset < ZIP_LOCAL_LEN)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED, "local header of '%.*s' past end of file",
                        pn, name);
    rc = rfile_read(w->f, m->local_offset,
                    len - m->local_offset - ZIP_LOCAL_LEN < nlen ? ZIP_LOCAL_LEN
                                                                 : ZIP_LOCAL_LEN + nlen,
                    w->local, e);
    if (rc)
        return rc;
    lnlen = zip__u16(w->local + 26);
    lxlen = zip__u16(w->local + 28);
    if (memcmp(w->local, "PK\3\4", 4) != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP, "bad local header signature for '%.*s'",
                        pn, name);
    if (lnlen != nlen || len - m->local_offset - ZIP_LOCAL_LEN < lnlen ||
        memcmp(w->local + ZIP_LOCAL_LEN, name, nlen) != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "local and central names differ for '%.*s'", pn, name);
    m->data_offset = m->local_offset + ZIP_LOCAL_LEN + lnlen + lxlen;
    if (m->method == ZIP_METHOD_STORED && m->csize != m->usize)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "stored member '%.*s': compressed size %llu != size %llu", pn, name,
                        (unsigned long long)m->csize, (unsigned long long)m->usize);
    if (m->data_offset > len || m->csize > len - m->data_offset)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "data of '%.*s' (%llu bytes at %llu) runs past end of file (%llu)", pn,
                        name, (unsigned long long)m->csize, (unsigned long long)m->data_offset,
                        (unsigned long long)len);
    return ERR_OK;
}

/* Parse the central entry at *pos (inside [.., w->end)) into `m`, copy its
 * name to the arena (*name_off) and check its local header. */
static enum err_code zip_entry(struct zip_win *w, uint64_t *pos, struct zip_member *m,
                               size_t *name_off, struct err *e)
{
    const unsigned char *p;
    size_t nlen, xlen, clen;
    enum err_code rc;

    if (w->end - *pos < ZIP_CENTRAL_LEN)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "bad central directory entry at offset %llu", (unsigned long long)*pos);
    rc = zip_win_get(w, *pos, ZIP_CENTRAL_LEN, &p, e);
    if (rc)
        return rc;
    if (memcmp(p, "PK\1\2", 4) != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "bad central directory entry at offset %llu", (unsigned long long)*pos);
    nlen = zip__u16(p + 28);
    xlen = zip__u16(p + 30);
    clen = zip__u16(p + 32);
    if (w->end - *pos - ZIP_CENTRAL_LEN < (uint64_t)nlen + xlen + clen)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "central directory entry at %llu overruns the directory",
                        (unsigned long long)*pos);
    rc = zip_win_get(w, *pos, ZIP_CENTRAL_LEN + nlen + xlen, &p, e);
    if (rc)
        return rc;
    memset(m, 0, sizeof(*m));
    m->flags = zip__u16(p + 8);
    m->method = zip__u16(p + 10);
    m->crc32 = zip__u32(p + 16);
    m->csize = zip__u32(p + 20);
    m->usize = zip__u32(p + 24);
    m->local_offset = zip__u32(p + 42);
    m->name_len = nlen;
    if (m->usize == ZIP_SAT32 || m->csize == ZIP_SAT32 || m->local_offset == ZIP_SAT32) {
        rc = zip_apply_zip64(p + ZIP_CENTRAL_LEN + nlen, xlen, m, e);
        if (rc)
            return rc;
    }
    if (m->flags & 1u)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP, "member '%.*s' is encrypted",
                        (int)(nlen > 200 ? 200 : nlen), (const char *)(p + ZIP_CENTRAL_LEN));
    if (!zip_utf8_ok(p + ZIP_CENTRAL_LEN, nlen))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "member name at offset %llu is not UTF-8 (or holds NUL)",
                        (unsigned long long)*pos);
    /* p points into w->buf, which zip_read_entries owns and frees: the
     * analyzer loses track of it through `w` and reports a leak here. */
    /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
    rc = zip_win_name(w, p + ZIP_CENTRAL_LEN, nlen, name_off, e);
    if (rc == ERR_OK)
        rc = zip_local(w, m, *name_off, e);
    if (rc == ERR_OK)
        *pos += ZIP_CENTRAL_LEN + nlen + xlen + clen;
    return rc;
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
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP, "duplicate member name '%.200s'",
                          s[i].m->name);
            goto out;
        }
        z->by_name[i] = s[i].idx;
    }
    qsort(s, n, sizeof(*s), zip_cmp_offset);
    for (size_t i = 1; i < n; i++) {
        const struct zip_member *a = s[i - 1].m, *b = s[i].m;
        if (b->local_offset < a->data_offset + a->csize) {
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                          "members '%.100s' and '%.100s' overlap", a->name, b->name);
            goto out;
        }
    }
out:
    free(s);
    return rc;
}

/* Read every central entry of `cd` into z->members, names into z->names. */
static enum err_code zip_read_entries(struct zip_archive *z, const struct zip_cd *cd, struct err *e)
{
    struct zip_win w;
    size_t *offs = NULL;
    enum err_code rc = ERR_OK;
    uint64_t pos = cd->offset;

    memset(&w, 0, sizeof(w));
    w.f = z->src;
    w.base = cd->offset;
    w.end = cd->offset + cd->size;
    /* calloc: the analyzer cannot see rfile_read fill them */
    w.buf = calloc(1, cd->size < ZIP_WIN_LEN ? (size_t)cd->size + 1 : ZIP_WIN_LEN);
    w.local = calloc(1, ZIP_LOCAL_LEN + 0xFFFF);
    offs = calloc(cd->n_entries ? (size_t)cd->n_entries : 1, sizeof(*offs));
    if (w.buf == NULL || w.local == NULL || offs == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory reading a zip central directory");
        goto out;
    }
    for (uint64_t i = 0; i < cd->n_entries; i++) {
        rc = zip_entry(&w, &pos, &z->members[i], &offs[i], e);
        if (rc)
            goto out;
        z->n_members++;
    }
    for (size_t i = 0; i < z->n_members; i++) /* the arena no longer moves */
        z->members[i].name = w.names + offs[i];
    z->names = w.names;
    w.names = NULL;
out:
    free(w.buf);
    free(w.local);
    free(w.names);
    free(offs);
    return rc;
}

/* Parse the archive z->src. */
static enum err_code zip_load(struct zip_archive *z, uint64_t max_members, struct err *e)
{
    struct zip_cd cd = {0};
    enum err_code rc;

    rc = zip__find_cd(z->src, &cd, e);
    if (rc)
        return rc;
    if (cd.n_entries > max_members)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "zip declares %llu members (limit %llu)", (unsigned long long)cd.n_entries,
                        (unsigned long long)max_members);
    if (cd.n_entries > cd.size / ZIP_CENTRAL_LEN)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "%llu members cannot fit a %llu-byte central directory",
                        (unsigned long long)cd.n_entries, (unsigned long long)cd.size);
    z->members = calloc(cd.n_entries ? (size_t)cd.n_entries : 1, sizeof(*z->members));
    if (z->members == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for %llu zip members",
                       (unsigned long long)cd.n_entries);
    rc = zip_read_entries(z, &cd, e);
    if (rc == ERR_OK)
        rc = zip_check_members(z, e);
    return rc;
}

/* zip_parse_file / zip_parse: the archive in `f`, or (f NULL) in the
 * `len` bytes at `buf`, which the archive reads through its own z->mem. */
static enum err_code zip_parse_src(const struct rfile *f, const unsigned char *buf, uint64_t len,
                                   uint64_t max_members, struct zip_archive **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct zip_archive *z = NULL;

    *out = NULL;
    z = calloc(1, sizeof(*z));
    if (z == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory parsing a zip");
        goto out;
    }
    if (f == NULL) {
        rfile_mem(&z->mem, buf, len);
        f = &z->mem;
    }
    z->src = f;
    rc = zip_load(z, max_members, e);
    if (rc)
        goto out;
    *out = z;
    z = NULL;
out:
    zip_free(z);
    return rc;
}

enum err_code zip_parse_file(const struct rfile *f, uint64_t max_members, struct zip_archive **out,
                             struct err *e)
{
    return zip_parse_src(f, NULL, 0, max_members, out, e);
}

enum err_code zip_parse(const unsigned char *buf, uint64_t len, uint64_t max_members,
                        struct zip_archive **out, struct err *e)
{
    return zip_parse_src(NULL, buf, len, max_members, out, e);
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
