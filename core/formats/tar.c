/* tar.c -- see tar.h.
 *
 * Followed: POSIX.1-2017 pax (ustar header, pax extended header records),
 * GNU tar 1.34's documentation of its format (the "ustar  " magic, 'L'
 * long names, base-256 numbers) and what Python 3.11's tarfile writes
 * (USTAR, GNU and PAX formats). docs/tar.md lists what is read.
 *
 * The stream is a sequence of 512-byte blocks: a header, then the member's
 * data padded to a block, repeated; one or two zero blocks end it. The
 * parser is a state machine over those blocks fed by tar_push in pieces of
 * any size: HEADER gathers a header block; EXT gathers a pax ('x') or GNU
 * long-name ('L') header's data, which applies to the next header; DATA
 * hands a file's bytes to the data callback; SKIP drops bytes (a pax global
 * header, a folder's data); PAD drops the padding to the next block; END
 * checks that only zeros follow the end-of-archive block.
 *
 * Decoding a header block (number fields, checksum, names, pax records and
 * GNU long names, refused type flags) is in tar_header.c; the parser state
 * both use is in tar_int.h.
 */
#include "core/formats/tar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/tar_int.h"

void tar_limits_default(struct tar_limits *l)
{
    *l = (struct tar_limits){.max_members = TAR_MAX_MEMBERS_DEFAULT};
}

enum err_code tar_parser_new(const struct tar_limits *limits, const struct tar_callbacks *cb,
                             struct tar_parser **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct tar_parser *p = NULL;

    *out = NULL;
    ERR_ASSERT(cb != NULL && cb->member != NULL);
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory for a tar parser");
        goto out;
    }
    p->ext = malloc(TAR_EXT_MAX + 1);
    p->pend_name = malloc(TAR_EXT_MAX + 1);
    if (p->ext == NULL || p->pend_name == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory for a tar parser");
        goto out;
    }
    if (limits != NULL)
        p->lim = *limits;
    else
        tar_limits_default(&p->lim);
    if (p->lim.max_members == 0)
        p->lim.max_members = TAR_MAX_MEMBERS_DEFAULT;
    p->cb = *cb;
    *out = p;
    p = NULL;
out:
    tar_parser_free(p);
    return rc;
}

void tar_parser_free(struct tar_parser *p)
{
    if (p == NULL)
        return;
    free(p->ext);
    free(p->pend_name);
    free(p);
}

uint64_t tar_n_members(const struct tar_parser *p)
{
    return p->n_members;
}

/* --- Members ----------------------------------------------------------------- */

/* A file or folder header: name, limits, the member callback. */
static enum err_code tar_member(struct tar_parser *p, unsigned char t, uint64_t size, struct err *e)
{
    struct tar_member m = {0};
    enum err_code rc = tar__header_name(p, e);
    int dir = t == '5';

    if (rc)
        return rc;
    if (!dir && p->name[0] == '\0')
        return tar__hostile(p, e, "a file with an empty name");
    if (!dir && p->lim.max_member_bytes > 0 && size > p->lim.max_member_bytes)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "tar member '%.200s': %llu bytes, over the limit of %llu", p->name,
                        (unsigned long long)size, (unsigned long long)p->lim.max_member_bytes);
    if (!dir && p->lim.max_total_bytes > 0 && size > p->lim.max_total_bytes - p->total)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "tar members: more than %llu bytes together",
                        (unsigned long long)p->lim.max_total_bytes);
    p->pend_name_from = 0;
    p->pend_size_set = 0;
    p->remain = size;
    if (dir && p->name[0] == '\0') { /* "./": the archive's root */
        p->state = size > 0 ? TAR_S_SKIP : TAR_S_HEADER;
        p->pad = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
        return ERR_OK;
    }
    if (p->n_members >= p->lim.max_members)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "tar: more than %llu members (limit)",
                        (unsigned long long)p->lim.max_members);
    m = (struct tar_member){.name = p->name,
                            .kind = dir ? TAR_KIND_DIR : TAR_KIND_FILE,
                            .size = dir ? 0 : size,
                            .index = p->n_members};
    rc = p->cb.member(p->cb.arg, &m, e);
    if (rc)
        return rc;
    p->n_members++;
    if (!dir)
        p->total += size;
    p->state = dir ? TAR_S_SKIP : TAR_S_DATA;
    p->pad = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
    return ERR_OK;
}

/* A whole header block is in. */
static enum err_code tar_header(struct tar_parser *p, struct err *e)
{
    const unsigned char *h = p->hdr;
    const char *refused;
    unsigned char t = h[156];
    uint64_t size = 0;

    if (tar__all_zero(h, TAR_BLOCK)) {
        p->state = TAR_S_END;
        return ERR_OK;
    }
    if (!tar__checksum_ok(h))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_TAR,
                        "tar header after member %llu: bad checksum",
                        (unsigned long long)p->n_members);
    if (memcmp(h + 257, "ustar", 5) != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_TAR,
                        "tar header after member %llu: no ustar magic (pre-POSIX tar)",
                        (unsigned long long)p->n_members);
    if (tar__number(h + 124, 12, &size) != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_TAR,
                        "tar header after member %llu: bad size field",
                        (unsigned long long)p->n_members);
    if (t == 'x' || t == 'L') {
        if (size > TAR_EXT_MAX)
            return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                            "tar extended header of %llu bytes (limit %d)",
                            (unsigned long long)size, TAR_EXT_MAX);
        p->ext_type = (char)t;
        p->ext_len = 0;
        p->ext_want = (size_t)size;
        p->remain = size;
        p->state = TAR_S_EXT;
        p->pad = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
        return ERR_OK;
    }
    if (t == 'g') { /* pax global header: nothing in it applies to a checkpoint */
        p->remain = size;
        p->state = TAR_S_SKIP;
        p->pad = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
        return ERR_OK;
    }
    refused = tar__type_refused(t);
    if (refused != NULL)
        return tar__hostile(p, e, refused);
    if (p->pend_size_set)
        size = p->pend_size;
    return tar_member(p, t, size, e);
}

/* --- Input --------------------------------------------------------------------- */

/* One step of the state machine over `d` (`n` > 0 bytes); *used: bytes taken. */
static enum err_code tar_step(struct tar_parser *p, const unsigned char *d, size_t n, size_t *used,
                              struct err *e)
{
    enum err_code rc = ERR_OK;
    size_t k;

    switch (p->state) {
    case TAR_S_HEADER:
        k = TAR_BLOCK - p->hdr_len < n ? TAR_BLOCK - p->hdr_len : n;
        memcpy(p->hdr + p->hdr_len, d, k);
        p->hdr_len += k;
        *used = k;
        if (p->hdr_len == TAR_BLOCK) {
            p->hdr_len = 0;
            rc = tar_header(p, e);
        }
        return rc;
    case TAR_S_EXT:
    case TAR_S_DATA:
    case TAR_S_SKIP:
        k = p->remain < n ? (size_t)p->remain : n;
        if (p->state == TAR_S_EXT) {
            memcpy(p->ext + p->ext_len, d, k);
            p->ext_len += k;
        } else if (p->state == TAR_S_DATA && p->cb.data != NULL && k > 0)
            rc = p->cb.data(p->cb.arg, d, k, e);
        p->remain -= k;
        *used = k;
        if (rc != ERR_OK || p->remain > 0)
            return rc;
        if (p->state == TAR_S_EXT)
            rc = tar__ext_done(p, e);
        else if (p->state == TAR_S_DATA && p->cb.end != NULL)
            rc = p->cb.end(p->cb.arg, e);
        p->state = p->pad > 0 ? TAR_S_PAD : TAR_S_HEADER;
        return rc;
    case TAR_S_PAD:
        k = p->pad < n ? (size_t)p->pad : n;
        p->pad -= k;
        *used = k;
        if (p->pad == 0)
            p->state = TAR_S_HEADER;
        return ERR_OK;
    case TAR_S_END:
        *used = n;
        if (!tar__all_zero(d, n))
            return err_setc(e, ERR_FORMAT, ERR_CAT_TRAILING_DATA,
                            "tar: non-zero bytes after the end-of-archive block");
        return ERR_OK;
    case TAR_S_FAILED: break;
    }
    return err_set(e, ERR_INVAL, "tar parser: used after a failure");
}

enum err_code tar_push(struct tar_parser *p, const void *data, size_t len, struct err *e)
{
    const unsigned char *d = data;
    enum err_code rc = ERR_OK;

    if (p->state == TAR_S_FAILED)
        return err_set(e, ERR_INVAL, "tar parser: used after a failure");
    while (len > 0 && rc == ERR_OK) {
        size_t used = 0;
        /* a member whose data is empty: its end is due before the next header */
        if (p->state == TAR_S_DATA && p->remain == 0) {
            rc = p->cb.end != NULL ? p->cb.end(p->cb.arg, e) : ERR_OK;
            p->state = TAR_S_HEADER;
            continue;
        }
        if ((p->state == TAR_S_SKIP || p->state == TAR_S_EXT) && p->remain == 0) {
            if (p->state == TAR_S_EXT)
                rc = tar__ext_done(p, e);
            p->state = p->pad > 0 ? TAR_S_PAD : TAR_S_HEADER;
            continue;
        }
        rc = tar_step(p, d, len, &used, e);
        d += used;
        len -= used;
    }
    if (rc == ERR_OK && p->state == TAR_S_DATA && p->remain == 0) {
        rc = p->cb.end != NULL ? p->cb.end(p->cb.arg, e) : ERR_OK;
        p->state = TAR_S_HEADER;
    }
    if (rc != ERR_OK)
        p->state = TAR_S_FAILED;
    return rc;
}

enum err_code tar_finish(struct tar_parser *p, struct err *e)
{
    if (p->state == TAR_S_FAILED)
        return err_set(e, ERR_INVAL, "tar parser: used after a failure");
    if (p->state == TAR_S_END)
        return ERR_OK;
    p->state = TAR_S_FAILED;
    if (p->hdr_len == 0 && p->remain == 0 && p->pad == 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "tar: the stream ends after member %llu without the end-of-archive "
                        "block (cut short?)",
                        (unsigned long long)p->n_members);
    return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED, "tar: the stream ends inside member %llu",
                    (unsigned long long)p->n_members + (p->hdr_len > 0));
}
