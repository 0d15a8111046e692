/* tz_write.c -- streaming torch.save zip writer (see tz_write.h). */
#include "core/formats/tz_write.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core/formats/st_write_int.h"

#define TZ_SAT32       0xFFFFFFFFu
#define TZ_ALIGN       64
#define TZ_LOCAL_LEN   30
#define TZ_ARCHIVE_MAX 100

struct tz_member {
    uint64_t off;  /* local header */
    uint64_t size; /* data bytes */
    uint32_t crc;
};

struct tz_writer {
    FILE *f;
    char *path; /* owned */
    char archive[TZ_ARCHIVE_MAX + 1];
    size_t n;                  /* tensors */
    uint64_t *nbytes;          /* owned, per tensor */
    struct tz_member *members; /* owned: data.pkl, data/0..n-1, version, byteorder */
    uint64_t pos;              /* bytes written to the file */
    size_t cur;                /* tensor being written (n: all done) */
    int open;                  /* member of `cur` started */
    uint64_t left;             /* its bytes still to come */
};

struct tz_buf {
    unsigned char *p;
    size_t len, cap;
    int failed;
};

static void tz_put(struct tz_buf *b, const void *data, size_t len)
{
    if (b->failed)
        return;
    if (len > b->cap - b->len) {
        size_t cap = b->cap * 2 + len + 256;
        unsigned char *q = realloc(b->p, cap);
        if (q == NULL) {
            b->failed = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void tz_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int k = 0; k < bytes; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

/* A ZIP record signature: 'P', 'K', a, b (four bytes, no NUL). */
static void tz_sig(unsigned char *p, unsigned char a, unsigned char b)
{
    p[0] = 'P';
    p[1] = 'K';
    p[2] = a;
    p[3] = b;
}

static void tz_put_le(struct tz_buf *b, uint64_t v, int bytes)
{
    unsigned char tmp[8];

    tz_le(tmp, v, bytes);
    tz_put(b, tmp, (size_t)bytes);
}

/* --- data.pkl ---------------------------------------------------------------- */

static void tz_pkl_str(struct tz_buf *b, const char *s)
{
    tz_put(b, "X", 1);
    tz_put_le(b, strlen(s), 4);
    tz_put(b, s, strlen(s));
}

static void tz_pkl_int(struct tz_buf *b, uint64_t v)
{
    if (v < 0x80000000u) {
        tz_put(b, "J", 1);
        tz_put_le(b, v, 4);
    } else {
        tz_put(b, "\x8a\x08", 2); /* LONG1, 8 bytes, v < 2^63 */
        tz_put_le(b, v, 8);
    }
}

static void tz_pkl_global(struct tz_buf *b, const char *module, const char *name)
{
    tz_put(b, "c", 1);
    tz_put(b, module, strlen(module));
    tz_put(b, "\n", 1);
    tz_put(b, name, strlen(name));
    tz_put(b, "\n", 1);
}

static const char *tz_storage_class(enum dtype t)
{
    switch (t) {
    case DTYPE_F64: return "DoubleStorage";
    case DTYPE_F32: return "FloatStorage";
    case DTYPE_F16: return "HalfStorage";
    case DTYPE_BF16: return "BFloat16Storage";
    case DTYPE_I64: return "LongStorage";
    case DTYPE_I32: return "IntStorage";
    case DTYPE_I16: return "ShortStorage";
    case DTYPE_I8: return "CharStorage";
    case DTYPE_U8: return "ByteStorage";
    case DTYPE_BOOL: return "BoolStorage";
    default: return NULL;
    }
}

/* One dict entry: name, _rebuild_tensor_v2((persid), 0, shape, stride, False, OrderedDict()). */
static void tz_pkl_tensor(struct tz_buf *b, const struct st_wtensor *t, size_t key)
{
    char keys[32];
    uint64_t numel = 1;

    for (int d = 0; d < t->ndim; d++)
        numel *= (uint64_t)t->shape[d];
    snprintf(keys, sizeof(keys), "%zu", key);
    tz_pkl_str(b, t->name);
    tz_pkl_global(b, "torch._utils", "_rebuild_tensor_v2");
    tz_put(b, "((", 2);
    tz_pkl_str(b, "storage");
    tz_pkl_global(b, "torch", tz_storage_class(t->dtype));
    tz_pkl_str(b, keys);
    tz_pkl_str(b, "cpu");
    tz_pkl_int(b, numel);
    tz_put(b, "tQ", 2); /* TUPLE, BINPERSID */
    tz_pkl_int(b, 0);   /* storage offset */
    tz_put(b, "(", 1);
    for (int d = 0; d < t->ndim; d++)
        tz_pkl_int(b, (uint64_t)t->shape[d]);
    tz_put(b, "t(", 2);
    for (int d = 0; d < t->ndim; d++) {
        uint64_t stride = 1;
        for (int k = d + 1; k < t->ndim; k++)
            stride *= (uint64_t)t->shape[k];
        tz_pkl_int(b, stride);
    }
    tz_put(b, "t\x89", 2); /* TUPLE, NEWFALSE (requires_grad) */
    tz_pkl_global(b, "collections", "OrderedDict");
    tz_put(b, ")RtR", 4); /* OrderedDict(), close the args, rebuild */
}

static enum err_code tz_pickle(const struct st_wtensor *t, size_t n, struct tz_buf *b,
                               struct err *e)
{
    tz_put(b, "\x80\x02", 2);
    tz_pkl_global(b, "collections", "OrderedDict");
    tz_put(b, ")R(", 3);
    for (size_t i = 0; i < n; i++)
        tz_pkl_tensor(b, &t[i], i);
    tz_put(b, "u.", 2); /* SETITEMS, STOP */
    return b->failed ? err_set(e, ERR_NOMEM, "out of memory for data.pkl") : ERR_OK;
}

/* --- zip records -------------------------------------------------------------- */

static enum err_code tz_raw(struct tz_writer *w, const void *p, size_t len, struct err *e)
{
    if (len > 0 && fwrite(p, 1, len, w->f) != len)
        return err_set_errno(e, ERR_IO, errno, "writing %s", w->path);
    w->pos += len;
    return ERR_OK;
}

static void tz_member_name(const struct tz_writer *w, size_t m, char *name, size_t cap)
{
    if (m == 0)
        snprintf(name, cap, "%s/data.pkl", w->archive);
    else if (m <= w->n)
        snprintf(name, cap, "%s/data/%zu", w->archive, m - 1);
    else
        snprintf(name, cap, "%s/%s", w->archive, m == w->n + 1 ? "version" : "byteorder");
}

/* Local header of member `m` (size known, CRC patched later), padded so
 * that its data starts on a TZ_ALIGN boundary. */
static enum err_code tz_local(struct tz_writer *w, size_t m, uint64_t size, struct err *e)
{
    unsigned char h[TZ_LOCAL_LEN + 20 + 4 + TZ_ALIGN];
    char name[TZ_ARCHIVE_MAX + 48];
    size_t nlen, xlen, z64 = size >= TZ_SAT32 ? 20 : 0, pad;
    enum err_code rc;

    tz_member_name(w, m, name, sizeof(name));
    nlen = strlen(name);
    pad = (TZ_ALIGN - (w->pos + TZ_LOCAL_LEN + nlen + z64 + 4) % TZ_ALIGN) % TZ_ALIGN;
    xlen = z64 + 4 + pad;
    memset(h, 0, sizeof(h));
    tz_sig(h, 3, 4);
    tz_le(h + 4, z64 ? 45 : 20, 2);
    tz_le(h + 10, 0x21, 2); /* 1980-01-01 */
    tz_le(h + 18, z64 ? TZ_SAT32 : size, 4);
    tz_le(h + 22, z64 ? TZ_SAT32 : size, 4);
    tz_le(h + 26, nlen, 2);
    tz_le(h + 28, xlen, 2);
    w->members[m].off = w->pos;
    w->members[m].size = size;
    w->members[m].crc = 0;
    rc = tz_raw(w, h, TZ_LOCAL_LEN, e);
    if (rc == ERR_OK)
        rc = tz_raw(w, name, nlen, e);
    memset(h, 0, sizeof(h));
    if (z64) {
        tz_le(h, 0x0001, 2);
        tz_le(h + 2, 16, 2);
        tz_le(h + 4, size, 8);
        tz_le(h + 12, size, 8);
    }
    tz_le(h + z64, 0x4246, 2); /* "FB" padding, as torch writes it */
    tz_le(h + z64 + 2, pad, 2);
    return rc == ERR_OK ? tz_raw(w, h, xlen, e) : rc;
}

/* Patch member m's CRC into its local header. */
static enum err_code tz_patch_crc(struct tz_writer *w, size_t m, struct err *e)
{
    unsigned char c[4];

    tz_le(c, w->members[m].crc, 4);
    if (fseeko(w->f, (off_t)(w->members[m].off + 14), SEEK_SET) != 0 ||
        fwrite(c, 1, 4, w->f) != 4 || fseeko(w->f, (off_t)w->pos, SEEK_SET) != 0)
        return err_set_errno(e, ERR_IO, errno, "writing %s", w->path);
    return ERR_OK;
}

static uint32_t tz_crc(uint32_t crc, const void *p, size_t len)
{
    return (uint32_t)crc32_z(crc, p, len);
}

/* A whole small member. */
static enum err_code tz_small(struct tz_writer *w, size_t m, const void *p, size_t len,
                              struct err *e)
{
    enum err_code rc = tz_local(w, m, len, e);

    if (rc == ERR_OK)
        rc = tz_raw(w, p, len, e);
    w->members[m].crc = tz_crc(0, p, len);
    return rc == ERR_OK ? tz_patch_crc(w, m, e) : rc;
}

/* Close finished tensor members and open the next one (skipping empty ones). */
static enum err_code tz_advance(struct tz_writer *w, struct err *e)
{
    enum err_code rc = ERR_OK;

    while (rc == ERR_OK && w->cur < w->n) {
        if (w->open && w->left > 0)
            break;
        if (w->open) {
            rc = tz_patch_crc(w, w->cur + 1, e);
            w->open = 0;
            w->cur++;
            continue;
        }
        rc = tz_local(w, w->cur + 1, w->nbytes[w->cur], e);
        w->open = 1;
        w->left = w->nbytes[w->cur];
    }
    return rc;
}

static int tz_archive_ok(const char *a)
{
    size_t n = strlen(a);

    if (n == 0 || n > TZ_ARCHIVE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') ||
              (a[i] >= '0' && a[i] <= '9') || a[i] == '_' || a[i] == '.' || a[i] == '-'))
            return 0;
    return 1;
}

static enum err_code tz_check(const char *archive, const struct st_wtensor *t, size_t n,
                              struct err *e)
{
    enum err_code rc = st_wtensors_check(t, n, e);

    if (rc)
        return rc;
    if (!tz_archive_ok(archive))
        return err_set(e, ERR_INVAL, "archive folder name must be 1..%d of [A-Za-z0-9_.-]",
                       TZ_ARCHIVE_MAX);
    if (n > SIZE_MAX / sizeof(struct tz_member) - 3)
        return err_set(e, ERR_INVAL, "too many tensors");
    for (size_t i = 0; i < n; i++)
        if (tz_storage_class(t[i].dtype) == NULL)
            return err_set(e, ERR_INVAL, "tensor '%s': dtype %s has no torch storage class",
                           t[i].name, dtype_name(t[i].dtype));
    return ERR_OK;
}

enum err_code tz_writer_open(const char *path, const char *archive, const struct st_wtensor *t,
                             size_t n, struct tz_writer **out, struct err *e)
{
    struct tz_writer *w = NULL;
    struct tz_buf pkl = {0};
    enum err_code rc;

    *out = NULL;
    rc = tz_check(archive, t, n, e);
    if (rc)
        return rc;
    w = calloc(1, sizeof(*w));
    if (w == NULL || (w->path = strdup(path)) == NULL ||
        (w->nbytes = calloc(n + 1, sizeof(*w->nbytes))) == NULL ||
        (w->members = calloc(n + 3, sizeof(*w->members))) == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(w->archive, sizeof(w->archive), "%s", archive);
    w->n = n;
    for (size_t i = 0; i < n; i++)
        w->nbytes[i] = st_wtensor_nbytes(&t[i], NULL);
    rc = tz_pickle(t, n, &pkl, e);
    if (rc)
        goto out;
    w->f = fopen(path, "wb");
    if (w->f == NULL) {
        rc = err_set_errno(e, ERR_IO, errno, "creating %s", path);
        goto out;
    }
    setvbuf(w->f, NULL, _IOFBF, 1u << 20);
    rc = tz_small(w, 0, pkl.p, pkl.len, e);
    if (rc == ERR_OK)
        rc = tz_advance(w, e);
out:
    free(pkl.p);
    if (rc) {
        tz_writer_abort(w);
        return rc;
    }
    *out = w;
    return ERR_OK;
}

enum err_code tz_writer_write(struct tz_writer *w, const void *data, size_t len, struct err *e)
{
    const unsigned char *p = data;
    enum err_code rc = ERR_OK;

    while (len > 0 && rc == ERR_OK) {
        size_t k;
        if (w->cur >= w->n)
            return err_set(e, ERR_INVAL, "%zu bytes past the declared tensors", len);
        k = len < w->left ? len : (size_t)w->left;
        rc = tz_raw(w, p, k, e);
        w->members[w->cur + 1].crc = tz_crc(w->members[w->cur + 1].crc, p, k);
        w->left -= k;
        p += k;
        len -= k;
        if (rc == ERR_OK)
            rc = tz_advance(w, e);
    }
    return rc;
}

/* Central entry of member m, with a ZIP64 extra field for saturated values. */
static enum err_code tz_central(struct tz_writer *w, size_t m, struct err *e)
{
    unsigned char h[46 + 28];
    char name[TZ_ARCHIVE_MAX + 48];
    const struct tz_member *mb = &w->members[m];
    int big = mb->size >= TZ_SAT32, far = mb->off >= TZ_SAT32;
    size_t nlen, xlen = (big || far) ? 4 + 16 * (size_t)big + 8 * (size_t)far : 0, q = 4;
    enum err_code rc;

    tz_member_name(w, m, name, sizeof(name));
    nlen = strlen(name);
    memset(h, 0, sizeof(h));
    tz_sig(h, 1, 2);
    tz_le(h + 4, 45, 2);
    tz_le(h + 6, xlen ? 45 : 20, 2);
    tz_le(h + 14, 0x21, 2);
    tz_le(h + 16, mb->crc, 4);
    tz_le(h + 20, big ? TZ_SAT32 : mb->size, 4);
    tz_le(h + 24, big ? TZ_SAT32 : mb->size, 4);
    tz_le(h + 28, nlen, 2);
    tz_le(h + 30, xlen, 2);
    tz_le(h + 42, far ? TZ_SAT32 : mb->off, 4);
    rc = tz_raw(w, h, 46, e);
    if (rc == ERR_OK)
        rc = tz_raw(w, name, nlen, e);
    if (rc || xlen == 0)
        return rc;
    memset(h, 0, sizeof(h));
    tz_le(h, 0x0001, 2);
    tz_le(h + 2, xlen - 4, 2);
    if (big) {
        tz_le(h + q, mb->size, 8);
        tz_le(h + q + 8, mb->size, 8);
        q += 16;
    }
    if (far)
        tz_le(h + q, mb->off, 8);
    return tz_raw(w, h, xlen, e);
}

/* Central directory, ZIP64 end record and locator, classic end record. */
static enum err_code tz_directory(struct tz_writer *w, struct err *e)
{
    unsigned char z[56 + 20 + 22];
    uint64_t cd = w->pos, n = w->n + 3, size, z64;
    enum err_code rc = ERR_OK;

    for (size_t m = 0; m < n && rc == ERR_OK; m++)
        rc = tz_central(w, m, e);
    if (rc)
        return rc;
    size = w->pos - cd;
    z64 = w->pos;
    memset(z, 0, sizeof(z));
    tz_sig(z, 6, 6);
    tz_le(z + 4, 44, 8);
    tz_le(z + 12, 45, 2);
    tz_le(z + 14, 45, 2);
    tz_le(z + 24, n, 8);
    tz_le(z + 32, n, 8);
    tz_le(z + 40, size, 8);
    tz_le(z + 48, cd, 8);
    tz_sig(z + 56, 6, 7);
    tz_le(z + 64, z64, 8);
    tz_le(z + 72, 1, 4);
    tz_sig(z + 76, 5, 6);
    tz_le(z + 84, n >= 0xFFFF ? 0xFFFF : n, 2);
    tz_le(z + 86, n >= 0xFFFF ? 0xFFFF : n, 2);
    tz_le(z + 88, size >= TZ_SAT32 ? TZ_SAT32 : size, 4);
    tz_le(z + 92, cd >= TZ_SAT32 ? TZ_SAT32 : cd, 4);
    return tz_raw(w, z, sizeof(z), e);
}

enum err_code tz_writer_close(struct tz_writer *w, struct err *e)
{
    enum err_code rc = ERR_OK;

    if (w->cur < w->n)
        rc = err_set(e, ERR_INVAL, "tensor %zu of %zu not complete", w->cur, w->n);
    if (rc == ERR_OK)
        rc = tz_small(w, w->n + 1, "3\n", 2, e);
    if (rc == ERR_OK)
        rc = tz_small(w, w->n + 2, "little", 6, e);
    if (rc == ERR_OK)
        rc = tz_directory(w, e);
    rc = st_file_finish(&w->f, w->path, rc, e);
    tz_writer_abort(w); /* the file is closed (w->f NULL): frees w */
    return rc;
}

void tz_writer_abort(struct tz_writer *w)
{
    if (w == NULL)
        return;
    st_file_discard(&w->f, &w->path);
    free(w->nbytes);
    free(w->members);
    free(w);
}
