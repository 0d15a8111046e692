/* gguf_read.c -- reading a GGUF header: the bounded reader (struct gguf_rd,
 * in gguf_int.h) with its fixed-size numbers and strings, and the metadata
 * key/value pairs, every value type walked and skipped except the two keys
 * kept (general.alignment, general.architecture). See gguf.h, docs/gguf.md;
 * the header, tensor infos and the ckpt loader are in gguf.c.
 *
 * The reader reads short fields through a 4 KiB window (pread), so a
 * tokenizer's megabytes of metadata are walked, not held. Strings it copies
 * are owned by the caller (gguf__rd_strdup). Stateless apart from the reader
 * and the objects it fills: thread-safe.
 */
#include "core/formats/gguf.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf_int.h"

#define GGUF_KEY_MAX 64 /* longer keys are skipped, not compared */

enum gguf_vtype { /* gguf_type in ggml's gguf.h */
                  GGUF_VT_U8,
                  GGUF_VT_I8,
                  GGUF_VT_U16,
                  GGUF_VT_I16,
                  GGUF_VT_U32,
                  GGUF_VT_I32,
                  GGUF_VT_F32,
                  GGUF_VT_BOOL,
                  GGUF_VT_STRING,
                  GGUF_VT_ARRAY,
                  GGUF_VT_U64,
                  GGUF_VT_I64,
                  GGUF_VT_F64,
                  GGUF_VT_COUNT
};

/* Bytes of one value of a fixed-size type, 0 for string, array, unknown. */
static unsigned gguf_vsize(uint32_t t)
{
    static const unsigned size[GGUF_VT_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < GGUF_VT_COUNT ? size[t] : 0;
}

/* --- Reading the header ------------------------------------------------------ */

/* Check that `n` more header bytes exist in the file and the limit. */
static enum err_code gguf_rd_room(const struct gguf_rd *rd, uint64_t n, struct err *e)
{
    if (n > rd->f->size || rd->pos > rd->f->size - n)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "GGUF header: the file ends at %llu bytes, inside the header",
                        (unsigned long long)rd->f->size);
    if (rd->pos + n > rd->l->max_header_bytes)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "GGUF header: metadata and tensor infos exceed the limit of %llu bytes",
                        (unsigned long long)rd->l->max_header_bytes);
    return ERR_OK;
}

/* Copy the next `n` bytes to `dst` (NULL: skip them). */
enum err_code gguf__rd_get(struct gguf_rd *rd, void *dst, uint64_t n, struct err *e)
{
    enum err_code rc = gguf_rd_room(rd, n, e);

    if (rc || dst == NULL || n == 0) {
        if (rc == ERR_OK)
            rd->pos += n;
        return rc;
    }
    if (n > sizeof(rd->win)) {
        rc = rfile_read(rd->f, rd->pos, n, dst, e);
    } else {
        if (rd->pos < rd->win_off || rd->pos + n > rd->win_off + rd->win_len) {
            uint64_t left = rd->f->size - rd->pos;
            rd->win_len = left < sizeof(rd->win) ? (size_t)left : sizeof(rd->win);
            rd->win_off = rd->pos;
            rc = rfile_read(rd->f, rd->pos, rd->win_len, rd->win, e);
            if (rc) {
                rd->win_len = 0;
                return rc;
            }
        }
        memcpy(dst, rd->win + (rd->pos - rd->win_off), (size_t)n);
    }
    if (rc == ERR_OK)
        rd->pos += n;
    return rc;
}

enum err_code gguf__rd_u32(struct gguf_rd *rd, uint32_t *v, struct err *e)
{
    unsigned char b[4] = {0};
    enum err_code rc = gguf__rd_get(rd, b, 4, e);

    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return rc;
}

enum err_code gguf__rd_u64(struct gguf_rd *rd, uint64_t *v, struct err *e)
{
    unsigned char b[8] = {0};
    enum err_code rc = gguf__rd_get(rd, b, 8, e);

    *v = 0;
    for (int i = 7; i >= 0; i--)
        *v = *v << 8 | b[i];
    return rc;
}

/* A count of items of at least `min_bytes` each: more than the header limit
 * could hold is limit_exceeded, before anything is allocated or looped. */
enum err_code gguf__count_check(const struct gguf_rd *rd, uint64_t n, uint64_t min_bytes,
                                const char *what, struct err *e)
{
    if (n > rd->l->max_header_bytes / min_bytes)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "GGUF header: %llu %s cannot fit in the header limit of %llu bytes",
                        (unsigned long long)n, what, (unsigned long long)rd->l->max_header_bytes);
    return ERR_OK;
}

/* A string's length (u64); the bytes follow. */
static enum err_code gguf_rd_strlen(struct gguf_rd *rd, uint64_t *len, struct err *e)
{
    enum err_code rc = gguf__rd_u64(rd, len, e);

    if (rc == ERR_OK && *len > rd->l->max_header_bytes)
        rc = err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                      "GGUF header: a string of %llu bytes exceeds the header limit of %llu",
                      (unsigned long long)*len, (unsigned long long)rd->l->max_header_bytes);
    return rc;
}

/* A string copied into a new NUL-terminated buffer (*out, owned). */
enum err_code gguf__rd_strdup(struct gguf_rd *rd, char **out, struct err *e)
{
    uint64_t len = 0;
    enum err_code rc = gguf_rd_strlen(rd, &len, e);
    char *s = NULL;

    *out = NULL;
    if (rc == ERR_OK)
        rc = gguf_rd_room(rd, len, e);
    if (rc)
        return rc;
    s = malloc((size_t)len + 1);
    if (s == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for a %llu-byte GGUF string",
                       (unsigned long long)len);
    rc = gguf__rd_get(rd, s, len, e);
    s[len] = '\0';
    if (rc == ERR_OK && strlen(s) != len)
        rc =
            err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER, "GGUF header: a name holds a NUL byte");
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return ERR_OK;
}

/* --- Metadata ----------------------------------------------------------------- */

static enum err_code gguf_skip_value(struct gguf_rd *rd, uint32_t type, int depth, struct err *e);

/* An array: element type, count, elements (arrays nest up to
 * GGUF_MAX_ARRAY_DEPTH). */
static enum err_code gguf_skip_array(struct gguf_rd *rd, int depth, struct err *e)
{
    uint32_t et = 0;
    uint64_t n = 0;
    enum err_code rc;

    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "GGUF metadata: arrays nest deeper than %d", GGUF_MAX_ARRAY_DEPTH);
    rc = gguf__rd_u32(rd, &et, e);
    if (rc == ERR_OK)
        rc = gguf__rd_u64(rd, &n, e);
    if (rc)
        return rc;
    if (gguf_vsize(et) > 0) {
        rc = gguf__count_check(rd, n, gguf_vsize(et), "array elements", e);
        return rc ? rc : gguf__rd_get(rd, NULL, n * gguf_vsize(et), e);
    }
    if (et != GGUF_VT_STRING && et != GGUF_VT_ARRAY)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "GGUF metadata: unknown array element type %u", et);
    rc = gguf__count_check(rd, n, et == GGUF_VT_STRING ? 8 : 12, "array elements", e);
    for (uint64_t i = 0; rc == ERR_OK && i < n; i++)
        rc = gguf_skip_value(rd, et, depth + 1, e);
    return rc;
}

static enum err_code gguf_skip_value(struct gguf_rd *rd, uint32_t type, int depth, struct err *e)
{
    uint64_t len = 0;
    enum err_code rc;

    if (gguf_vsize(type) > 0)
        return gguf__rd_get(rd, NULL, gguf_vsize(type), e);
    if (type == GGUF_VT_ARRAY)
        return gguf_skip_array(rd, depth, e);
    if (type != GGUF_VT_STRING)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                        "GGUF metadata: unknown value type %u", type);
    rc = gguf_rd_strlen(rd, &len, e);
    return rc ? rc : gguf__rd_get(rd, NULL, len, e);
}

/* One key/value pair; general.alignment and general.architecture are kept. */
enum err_code gguf__read_kv(struct gguf_rd *rd, struct gguf_file *g, struct err *e)
{
    char key[GGUF_KEY_MAX + 1] = "";
    uint64_t klen = 0;
    uint32_t type = 0, align = 0;
    enum err_code rc = gguf_rd_strlen(rd, &klen, e);

    if (rc == ERR_OK)
        rc = gguf__rd_get(rd, klen <= GGUF_KEY_MAX ? key : NULL, klen, e);
    if (rc == ERR_OK)
        rc = gguf__rd_u32(rd, &type, e);
    if (rc)
        return rc;
    key[klen <= GGUF_KEY_MAX ? klen : 0] = '\0';
    if (strcmp(key, "general.alignment") == 0) {
        if (type != GGUF_VT_U32)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                            "GGUF metadata: general.alignment has type %u, not u32", type);
        rc = gguf__rd_u32(rd, &align, e);
        if (rc == ERR_OK && (align == 0 || (align & (align - 1)) != 0))
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                          "GGUF metadata: general.alignment %u is not a power of two", align);
        g->alignment = align;
        return rc;
    }
    if (strcmp(key, "general.architecture") == 0 && type == GGUF_VT_STRING &&
        g->architecture == NULL)
        return gguf__rd_strdup(rd, &g->architecture, e);
    return gguf_skip_value(rd, type, 0, e);
}
