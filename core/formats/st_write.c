/* st_write.c -- streaming safetensors writer (see st_write.h). */
#include "core/formats/st_write.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/formats/safetensors.h"
#include "core/formats/st_write_int.h"
#include "core/sbuf.h"

struct st_writer {
    FILE *f;
    char *path;       /* owned copy, for removal on failure */
    uint64_t total;   /* declared data bytes */
    uint64_t written; /* data bytes so far */
};

uint64_t st_wtensor_nbytes(const struct st_wtensor *t, struct err *e)
{
    uint64_t n = dtype_size(t->dtype);

    if (n == 0 || t->ndim < 0 || t->ndim > CKPT_MAX_RANK) {
        err_set(e, ERR_INVAL, "tensor '%s': bad dtype or rank", t->name);
        return 0;
    }
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0) {
            err_set(e, ERR_INVAL, "tensor '%s': negative dimension", t->name);
            return 0;
        }
        if (t->shape[d] != 0 && n > UINT64_MAX / (uint64_t)t->shape[d]) {
            err_set(e, ERR_INVAL, "tensor '%s': size overflows", t->name);
            return 0;
        }
        n *= (uint64_t)t->shape[d];
    }
    if (e != NULL)
        err_clear(e);
    return n;
}

static int st_name_ok(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e || s[n] == '"' || s[n] == '\\')
            return 0;
    return n > 0 && n < ST_NAME_MAX && strcmp(s, "__metadata__") != 0;
}

enum err_code st_wtensors_check(const struct st_wtensor *t, size_t n, struct err *e)
{
    uint64_t total = 0;

    for (size_t i = 0; i < n; i++) {
        uint64_t b;
        if (t[i].name == NULL || !st_name_ok(t[i].name))
            return err_set(e, ERR_INVAL, "tensor %zu: name is empty, too long or not plain ASCII",
                           i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0)
                return err_set(e, ERR_INVAL, "tensor '%s' declared twice", t[i].name);
        b = st_wtensor_nbytes(&t[i], e);
        if (e != NULL && e->code != ERR_OK)
            return e->code;
        if (b > UINT64_MAX - total)
            return err_set(e, ERR_INVAL, "checkpoint size overflows");
        total += b;
    }
    return ERR_OK;
}


/* The header JSON, space-padded so that 8 + its length is a multiple of 8. */
static enum err_code st_header(const struct st_wtensor *t, size_t n, struct sbuf *b,
                               uint64_t *total, struct err *e)
{
    uint64_t off = 0;

    b->cap = 256;
    b->p = malloc(b->cap);
    if (b->p == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    sbuf_printf(b, "{");
    for (size_t i = 0; i < n; i++) {
        uint64_t nb = st_wtensor_nbytes(&t[i], NULL);
        sbuf_printf(b, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t[i].name,
                    dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++)
            sbuf_printf(b, "%s%" PRId64, d ? "," : "", t[i].shape[d]);
        sbuf_printf(b, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + nb);
        off += nb;
    }
    sbuf_printf(b, "}");
    while (!b->failed && b->len % 8 != 0)
        sbuf_printf(b, " ");
    if (b->failed)
        return err_set(e, ERR_NOMEM, "out of memory");
    if (b->len > ST_HEADER_FORMAT_MAX)
        return err_set(e, ERR_INVAL, "header of %zu bytes exceeds the format's limit", b->len);
    *total = off;
    return ERR_OK;
}

enum err_code st_writer_open(const char *path, const struct st_wtensor *t, size_t n,
                             struct st_writer **out, struct err *e)
{
    struct st_writer *w = NULL;
    struct sbuf b = {0};
    unsigned char len8[8];
    uint64_t total = 0;
    enum err_code rc;

    *out = NULL;
    rc = st_wtensors_check(t, n, e);
    if (rc == ERR_OK)
        rc = st_header(t, n, &b, &total, e);
    if (rc)
        goto out;
    w = calloc(1, sizeof(*w));
    if (w == NULL || (w->path = strdup(path)) == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    w->total = total;
    w->f = fopen(path, "wb");
    if (w->f == NULL) {
        rc = err_set_errno(e, ERR_IO, errno, "creating %s", path);
        goto out;
    }
    setvbuf(w->f, NULL, _IOFBF, 1u << 20);
    for (int k = 0; k < 8; k++)
        len8[k] = (unsigned char)((uint64_t)b.len >> (8 * k));
    if (fwrite(len8, 1, 8, w->f) != 8 || fwrite(b.p, 1, b.len, w->f) != b.len)
        rc = err_set_errno(e, ERR_IO, errno, "writing %s", path);
out:
    sbuf_free(&b);
    if (rc) {
        st_writer_abort(w);
        return rc;
    }
    *out = w;
    return ERR_OK;
}

enum err_code st_writer_write(struct st_writer *w, const void *data, size_t len, struct err *e)
{
    if (len > w->total - w->written)
        return err_set(e, ERR_INVAL, "%zu bytes past the declared tensors", len);
    if (len > 0 && fwrite(data, 1, len, w->f) != len)
        return err_set_errno(e, ERR_IO, errno, "writing %s", w->path);
    w->written += len;
    return ERR_OK;
}

enum err_code st_writer_close(struct st_writer *w, struct err *e)
{
    enum err_code rc = ERR_OK;

    if (w->written != w->total)
        rc = err_set(e, ERR_INVAL, "%" PRIu64 " of %" PRIu64 " data bytes written", w->written,
                     w->total);
    rc = st_file_finish(&w->f, w->path, rc, e);
    st_writer_abort(w); /* the file is closed (w->f NULL): frees w */
    return rc;
}

enum err_code st_file_finish(FILE **f, const char *path, enum err_code rc, struct err *e)
{
    int closed;

    if (rc == ERR_OK && fflush(*f) != 0)
        rc = err_set_errno(e, ERR_IO, errno, "writing %s", path);
    closed = fclose(*f);
    *f = NULL;
    if (rc == ERR_OK && closed != 0)
        rc = err_set_errno(e, ERR_IO, errno, "closing %s", path);
    if (rc)
        unlink(path);
    return rc;
}

void st_file_discard(FILE **f, char **path)
{
    if (*f != NULL) {
        fclose(*f);
        unlink(*path);
    }
    *f = NULL;
    free(*path);
    *path = NULL;
}

void st_writer_abort(struct st_writer *w)
{
    if (w == NULL)
        return;
    st_file_discard(&w->f, &w->path);
    free(w);
}
