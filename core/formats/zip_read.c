/* zip_read.c -- see zip.h: member data, read from the archive's file in
 * fixed-size chunks and inflated as it streams, never past the declared size.
 */
#include "core/formats/zip.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#define ZLIB_CONST 1
#include <zlib.h>

#include "core/formats/zip_int.h"

#define ZIP_CHUNK (64u << 10) /* compressed input read per refill; scratch output */

struct zip_stream {
    const struct zip_archive *z; /* borrowed */
    const struct zip_member *m;  /* borrowed */
    z_stream zs;
    int zs_live;        /* inflateInit2 done */
    int ended;          /* Z_STREAM_END seen */
    int verify_crc;     /* check the stored CRC-32 in zip_stream_finish */
    uint64_t in_pos;    /* compressed bytes read from the file */
    uint64_t out_pos;   /* uncompressed bytes handed out (or skipped) */
    uLong crc;          /* CRC-32 of those bytes */
    unsigned char *in;  /* owned, min(csize + 1, ZIP_CHUNK) bytes of input */
    unsigned char *out; /* owned, min(usize + 1, ZIP_CHUNK): scratch output (skip, finish) */
};

enum err_code zip_stream_open(const struct zip_archive *z, const struct zip_member *m,
                              int verify_crc, struct zip_stream **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct zip_stream *s = NULL;

    *out = NULL;
    if (m->method != ZIP_METHOD_STORED && m->method != ZIP_METHOD_DEFLATE)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_COMPRESSION,
                        "member '%.200s' uses compression method %u", m->name, (unsigned)m->method);
    s = calloc(1, sizeof(*s));
    if (s != NULL) {
        /* small members need small buffers */
        s->in = malloc(m->csize < ZIP_CHUNK ? (size_t)m->csize + 1 : ZIP_CHUNK);
        s->out = malloc(m->usize < ZIP_CHUNK ? (size_t)m->usize + 1 : ZIP_CHUNK);
    }
    if (s == NULL || s->in == NULL || s->out == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory reading '%.200s'", m->name);
        goto out;
    }
    s->z = z;
    s->m = m;
    s->verify_crc = verify_crc;
    s->crc = crc32(0L, Z_NULL, 0);
    if (m->method == ZIP_METHOD_DEFLATE) {
        if (inflateInit2(&s->zs, -MAX_WBITS) != Z_OK) {
            rc = err_set(e, ERR_NOMEM, "cannot start inflating '%.200s'", m->name);
            goto out;
        }
        s->zs_live = 1;
    }
    *out = s;
    s = NULL;
out:
    zip_stream_close(s);
    return rc;
}

void zip_stream_close(struct zip_stream *s)
{
    if (s == NULL)
        return;
    if (s->zs_live)
        inflateEnd(&s->zs);
    free(s->in);
    free(s->out);
    free(s);
}

/* Refill the inflater's input from the file (at most ZIP_CHUNK bytes). */
static enum err_code zip_stream_fill(struct zip_stream *s, struct err *e)
{
    uint64_t left = s->m->csize - s->in_pos;
    size_t k = left > ZIP_CHUNK ? ZIP_CHUNK : (size_t)left;
    enum err_code rc;

    rc = rfile_read(s->z->src, s->m->data_offset + s->in_pos, k, s->in, e);
    if (rc)
        return rc;
    s->in_pos += k;
    s->zs.next_in = s->in;
    s->zs.avail_in = (uInt)k;
    return ERR_OK;
}

/* One inflate step into [next_out, avail_out); classifies zlib's answer. */
static enum err_code zip_stream_step(struct zip_stream *s, struct err *e)
{
    enum err_code rc;
    int ret;

    if (s->zs.avail_in == 0 && s->in_pos < s->m->csize) {
        rc = zip_stream_fill(s, e);
        if (rc)
            return rc;
    }
    ret = inflate(&s->zs, Z_NO_FLUSH);
    if (ret == Z_STREAM_END) {
        s->ended = 1;
        return ERR_OK;
    }
    if (ret == Z_BUF_ERROR && s->zs.avail_in == 0 && s->in_pos == s->m->csize)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "deflate stream of '%.200s' is cut short", s->m->name);
    if (ret != Z_OK && ret != Z_BUF_ERROR)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP, "bad deflate stream in '%.200s': %s",
                        s->m->name, s->zs.msg ? s->zs.msg : "error");
    return ERR_OK;
}

/* Inflate exactly `n` bytes into `dst`. */
static enum err_code zip_stream_inflate(struct zip_stream *s, unsigned char *dst, uint64_t n,
                                        struct err *e)
{
    uint64_t done = 0;
    enum err_code rc;

    while (done < n) {
        uInt want = n - done > UINT_MAX ? UINT_MAX : (uInt)(n - done);
        if (s->ended)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                            "member '%.200s' inflates to fewer than its declared %llu bytes",
                            s->m->name, (unsigned long long)s->m->usize);
        s->zs.next_out = dst + done;
        s->zs.avail_out = want;
        rc = zip_stream_step(s, e);
        done += want - s->zs.avail_out;
        if (rc)
            return rc;
    }
    return ERR_OK;
}

enum err_code zip_stream_read(struct zip_stream *s, void *dst, uint64_t n, struct err *e)
{
    const struct zip_member *m = s->m;
    unsigned char *p = dst;
    enum err_code rc;

    if (n > m->usize - s->out_pos)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "member '%.200s': %llu bytes wanted at %llu, only %llu declared", m->name,
                        (unsigned long long)n, (unsigned long long)s->out_pos,
                        (unsigned long long)m->usize);
    if (m->method == ZIP_METHOD_STORED)
        rc = rfile_read(s->z->src, m->data_offset + s->out_pos, n, dst, e);
    else
        rc = zip_stream_inflate(s, dst, n, e);
    if (rc)
        return rc;
    s->out_pos += n;
    for (uint64_t left = n; s->verify_crc && left > 0;) {
        uInt k = left > UINT_MAX ? UINT_MAX : (uInt)left;
        s->crc = crc32(s->crc, p, k);
        p += k;
        left -= k;
    }
    return ERR_OK;
}

enum err_code zip_stream_skip(struct zip_stream *s, uint64_t n, struct err *e)
{
    enum err_code rc = ERR_OK;

    if (s->m->method == ZIP_METHOD_STORED && !s->verify_crc) {
        if (n > s->m->usize - s->out_pos)
            return zip_stream_read(s, s->out, n, e); /* fails with the message */
        s->out_pos += n;
        return ERR_OK;
    }
    while (rc == ERR_OK && n > 0) {
        uint64_t k = n > ZIP_CHUNK ? ZIP_CHUNK : n;
        rc = zip_stream_read(s, s->out, k, e);
        n -= k;
    }
    return rc;
}

enum err_code zip_stream_finish(struct zip_stream *s, struct err *e)
{
    enum err_code rc;

    rc = zip_stream_skip(s, s->m->usize - s->out_pos, e);
    while (rc == ERR_OK && s->m->method == ZIP_METHOD_DEFLATE && !s->ended) {
        s->zs.next_out = s->out; /* room for one byte: the stream must end here */
        s->zs.avail_out = 1;
        rc = zip_stream_step(s, e);
        if (rc == ERR_OK && s->zs.avail_out == 0)
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                          "member '%.200s' inflates past its declared %llu bytes", s->m->name,
                          (unsigned long long)s->m->usize);
    }
    if (rc == ERR_OK && s->verify_crc && s->m->crc32 != 0 && (uint32_t)s->crc != s->m->crc32)
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                      "CRC mismatch in '%.200s': stored %08x, computed %08x", s->m->name,
                      (unsigned)s->m->crc32, (unsigned)(uint32_t)s->crc);
    return rc;
}

/* --- Whole members ------------------------------------------------------------ */

enum err_code zip_member_inflate(const struct zip_archive *z, const struct zip_member *m,
                                 unsigned char *dst, uint64_t dst_cap, struct err *e)
{
    struct zip_stream *s = NULL;
    enum err_code rc;

    if (m->method != ZIP_METHOD_DEFLATE)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_COMPRESSION,
                        "member '%.200s' uses compression method %u, not deflate", m->name,
                        (unsigned)m->method);
    if (m->usize > dst_cap)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "member '%.200s' declares %llu bytes, more than the %llu allowed", m->name,
                        (unsigned long long)m->usize, (unsigned long long)dst_cap);
    rc = zip_stream_open(z, m, 0, &s, e);
    if (rc == ERR_OK)
        rc = zip_stream_read(s, dst, m->usize, e);
    if (rc == ERR_OK)
        rc = zip_stream_finish(s, e);
    zip_stream_close(s);
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
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "CRC mismatch in '%.200s': stored %08x, computed %08x", m->name,
                        (unsigned)m->crc32, (unsigned)(uint32_t)crc);
    return ERR_OK;
}

enum err_code zip_member_read(const struct zip_archive *z, const struct zip_member *m,
                              const struct zip_read_opts *o, const unsigned char **data,
                              unsigned char **owned, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct zip_stream *s = NULL;
    unsigned char *buf = NULL;

    *data = NULL;
    *owned = NULL;
    if (m->method != ZIP_METHOD_STORED && m->method != ZIP_METHOD_DEFLATE)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_COMPRESSION,
                        "member '%.200s' uses compression method %u", m->name, (unsigned)m->method);
    if (m->usize > o->limit || m->usize > SIZE_MAX - 1)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "member '%.200s' declares %llu bytes, more than the %llu allowed", m->name,
                        (unsigned long long)m->usize, (unsigned long long)o->limit);
    buf = malloc(m->usize ? (size_t)m->usize : 1);
    if (buf == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory reading '%.200s' (%llu bytes)", m->name,
                     (unsigned long long)m->usize);
        goto out;
    }
    rc = zip_stream_open(z, m, o->verify_crc, &s, e);
    if (rc == ERR_OK)
        rc = zip_stream_read(s, buf, m->usize, e);
    if (rc == ERR_OK)
        rc = zip_stream_finish(s, e);
    if (rc)
        goto out;
    *data = buf;
    *owned = buf;
    buf = NULL;
out:
    zip_stream_close(s);
    free(buf);
    return rc;
}
