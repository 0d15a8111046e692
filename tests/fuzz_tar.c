/* fuzz_tar.c -- libFuzzer target for the tar push parser: the input is
 * parsed whole and again in pieces whose sizes come from its first byte;
 * both runs must agree on the outcome and the members, and every data byte
 * handed out is touched (out-of-range reads trip ASan).
 * seeds: tests/fuzz-seeds/tar
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
    uint64_t n_members, n_bytes, n_end;
    unsigned sum; /* of names and data: the two runs must agree */
};

static enum err_code fz_member(void *arg, const struct tar_member *m, struct err *e)
{
    struct fz *f = arg;
    size_t n = strlen(m->name);

    (void)e;
    if (n == 0 || n > TAR_NAME_MAX || m->name[0] == '/')
        abort(); /* never empty, never absolute */
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)m->name[i] < 0x20 || m->name[i] == 0x7f)
            abort();
        if (m->name[i] == '.' && m->name[i + 1] == '.' && (i == 0 || m->name[i - 1] == '/') &&
            (m->name[i + 2] == '/' || m->name[i + 2] == '\0'))
            abort(); /* no ".." component */
        f->sum = f->sum * 31 + (unsigned char)m->name[i];
    }
    f->n_members++;
    return ERR_OK;
}

static enum err_code fz_data(void *arg, const void *data, size_t len, struct err *e)
{
    struct fz *f = arg;
    const unsigned char *p = data;

    (void)e;
    for (size_t i = 0; i < len; i++)
        f->sum = f->sum * 31 + p[i];
    f->n_bytes += len;
    return ERR_OK;
}

static enum err_code fz_end(void *arg, struct err *e)
{
    (void)e;
    ((struct fz *)arg)->n_end++;
    return ERR_OK;
}

static enum err_code fz_run(const uint8_t *data, size_t size, size_t piece, struct fz *f)
{
    struct tar_limits lim = {
        .max_members = 1000, .max_member_bytes = 1 << 20, .max_total_bytes = 4 << 20};
    struct tar_callbacks cb = {.member = fz_member, .data = fz_data, .end = fz_end, .arg = f};
    struct tar_parser *p = NULL;
    struct err e;
    enum err_code rc = tar_parser_new(&lim, &cb, &p, &e);

    for (size_t off = 0; rc == ERR_OK && off < size; off += piece)
        rc = tar_push(p, data + off, size - off < piece ? size - off : piece, &e);
    if (rc == ERR_OK)
        rc = tar_finish(p, &e);
    tar_parser_free(p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz a = {0}, b = {0};
    size_t piece = size > 0 ? (size_t)data[0] % 97 + 1 : 1;
    enum err_code ra = fz_run(data, size, size > 0 ? size : 1, &a);
    enum err_code rb = fz_run(data, size, piece, &b);

    if (ra != rb || a.n_members != b.n_members || a.n_bytes != b.n_bytes || a.sum != b.sum ||
        a.n_end != b.n_end)
        abort(); /* the pieces a stream arrives in change nothing */
    return 0;
}
