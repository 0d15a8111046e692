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
 */
#include "core/formats/tar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tar_state {
    TAR_S_HEADER,
    TAR_S_EXT,
    TAR_S_DATA,
    TAR_S_SKIP,
    TAR_S_PAD,
    TAR_S_END,
    TAR_S_FAILED
};

struct tar_parser {
    struct tar_limits lim;
    struct tar_callbacks cb;
    enum tar_state state;
    unsigned char hdr[TAR_BLOCK]; /* the header being gathered */
    size_t hdr_len;
    char *ext; /* TAR_EXT_MAX + 1 bytes: an extended header's data */
    size_t ext_len, ext_want;
    char ext_type;               /* 'x' or 'L' */
    char *pend_name;             /* TAR_EXT_MAX + 1: the next member's name (pax path, 'L') */
    size_t pend_name_len;        /* bytes of pend_name */
    int pend_name_from;          /* 0: none, 1: GNU 'L', 2: pax path (wins) */
    uint64_t pend_size;          /* pax size */
    int pend_size_set;           /* 1: pend_size applies */
    char name[TAR_NAME_MAX + 1]; /* the current member's normalised name */
    uint64_t remain;             /* DATA/SKIP/EXT bytes left */
    uint64_t pad;                /* PAD bytes left */
    uint64_t n_members, total;
};

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

/* --- Header fields ------------------------------------------------------- */

/* The number in header field `f` (`n` bytes): octal digits after optional
 * spaces, ended by a space, NUL or the field's end; or GNU base-256 (first
 * byte 0x80, big-endian, non-negative). 0 if fine. */
static int tar_number(const unsigned char *f, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;

    *out = 0;
    if (n > 0 && f[0] == 0x80) {
        for (i = 1; i < n; i++) {
            if (v >> 55 != 0)
                return -1; /* over 2^63 */
            v = v << 8 | f[i];
        }
        *out = v;
        return 0;
    }
    while (i < n && f[i] == ' ')
        i++;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60 != 0)
            return -1;
        v = v << 3 | (uint64_t)(f[i] - '0');
    }
    for (; i < n; i++) /* the terminator(s), then nothing but padding */
        if (f[i] != ' ' && f[i] != '\0')
            return -1;
    *out = v;
    return 0;
}

/* 1 if the header's checksum (field 148..155) matches its bytes, summed
 * with that field as spaces, unsigned (POSIX) or signed (old tars). */
static int tar_checksum_ok(const unsigned char *h)
{
    uint64_t want;
    long su = 0, ss = 0;

    if (tar_number(h + 148, 8, &want) != 0)
        return 0;
    for (size_t i = 0; i < TAR_BLOCK; i++) {
        unsigned char c = i >= 148 && i < 156 ? ' ' : h[i];
        su += c;
        ss += (signed char)c;
    }
    return (uint64_t)su == want || (ss >= 0 && (uint64_t)ss == want);
}

static int tar_all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

/* --- Names ----------------------------------------------------------------- */

static enum err_code tar_hostile(struct tar_parser *p, struct err *e, const char *what)
{
    return err_setc(e, ERR_FORMAT, ERR_CAT_HOSTILE_ARCHIVE, "tar member %llu: %s",
                    (unsigned long long)p->n_members + 1, what);
}

/* Normalise `raw` (`n` bytes) into p->name (rules in tar.h). */
static enum err_code tar_name_norm(struct tar_parser *p, const char *raw, size_t n, struct err *e)
{
    size_t o = 0, depth = 0;

    p->name[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c < 0x20 || c == 0x7f)
            return err_setc(e, ERR_FORMAT, ERR_CAT_HOSTILE_ARCHIVE,
                            "tar member %llu: the name has the control byte 0x%02x at %zu",
                            (unsigned long long)p->n_members + 1, c, i);
    }
    if (n > 0 && raw[0] == '/')
        return tar_hostile(p, e, "an absolute name");
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && raw[j] != '/')
            j++;
        if (j - i == 2 && raw[i] == '.' && raw[i + 1] == '.')
            return tar_hostile(p, e, "a '..' component in the name");
        if (j - i > TAR_COMPONENT_MAX)
            return tar_hostile(p, e, "a name component longer than 255 bytes");
        if (j > i && !(j - i == 1 && raw[i] == '.')) {
            if (++depth > TAR_DEPTH_MAX)
                return tar_hostile(p, e, "a name with more than 32 components");
            if (o + (o > 0) + (j - i) > TAR_NAME_MAX)
                return tar_hostile(p, e, "a name longer than 4095 bytes");
            if (o > 0)
                p->name[o++] = '/';
            memcpy(p->name + o, raw + i, j - i);
            o += j - i;
        }
        i = j + 1;
    }
    p->name[o] = '\0';
    return ERR_OK;
}

/* The current header's raw name: the pending pax/GNU name, else the ustar
 * name, with the prefix field in front for POSIX ustar ("ustar\0"; GNU's
 * "ustar  " uses that room for other fields). */
static enum err_code tar_header_name(struct tar_parser *p, struct err *e)
{
    char raw[256 + 1 + 100];
    const unsigned char *h = p->hdr;
    size_t nn = strnlen((const char *)h, 100), np = 0;

    if (p->pend_name_from != 0)
        return tar_name_norm(p, p->pend_name, p->pend_name_len, e);
    if (h[262] == '\0' && h[345] != '\0') {
        np = strnlen((const char *)h + 345, 155);
        memcpy(raw, h + 345, np);
        raw[np++] = '/';
    }
    memcpy(raw + np, h, nn);
    return tar_name_norm(p, raw, np + nn, e);
}

/* --- Extended headers ------------------------------------------------------ */

/* Apply the pax records in p->ext (POSIX "LEN KEY=VALUE\n"). */
static enum err_code tar_pax(struct tar_parser *p, struct err *e)
{
    size_t i = 0, n = p->ext_len;

    while (i < n) {
        size_t len = 0, k, v, end;
        while (i + len < n && p->ext[i + len] >= '0' && p->ext[i + len] <= '9' && len < 8)
            len++;
        if (len == 0 || i + len >= n || p->ext[i + len] != ' ')
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_TAR, "malformed pax record at %zu", i);
        end = (size_t)strtoul(p->ext + i, NULL, 10);
        if (end < len + 4 || end > n - i || p->ext[i + end - 1] != '\n')
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_TAR, "malformed pax record at %zu", i);
        k = i + len + 1;
        end += i - 1; /* the '\n' */
        v = k;
        while (v < end && p->ext[v] != '=')
            v++;
        if (v == end || v == k)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_TAR, "pax record without a key at %zu",
                            i);
        if (v - k == 4 && memcmp(p->ext + k, "path", 4) == 0) {
            memcpy(p->pend_name, p->ext + v + 1, end - v - 1);
            p->pend_name_len = end - v - 1;
            p->pend_name_from = p->pend_name_len > 0 ? 2 : 0;
        } else if (v - k == 4 && memcmp(p->ext + k, "size", 4) == 0) {
            uint64_t s = 0;
            if (end - v - 1 == 0 || end - v - 1 > 19)
                return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_TAR, "pax size is not a number");
            for (size_t j = v + 1; j < end; j++) {
                if (p->ext[j] < '0' || p->ext[j] > '9')
                    return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_TAR, "pax size is not a number");
                s = s * 10 + (uint64_t)(p->ext[j] - '0');
            }
            p->pend_size = s;
            p->pend_size_set = 1;
        } else if (v - k >= 10 && memcmp(p->ext + k, "GNU.sparse", 10) == 0) {
            return tar_hostile(p, e, "a sparse file (GNU.sparse pax records)");
        }
        i = end + 1;
    }
    return ERR_OK;
}

/* An extended header's data is in. */
static enum err_code tar_ext_done(struct tar_parser *p, struct err *e)
{
    size_t n;

    if (p->ext_type == 'x')
        return tar_pax(p, e);
    /* 'L': the name, NUL-terminated; a NUL inside it is refused */
    n = strnlen(p->ext, p->ext_len);
    if (!tar_all_zero((const unsigned char *)p->ext + n, p->ext_len - n))
        return tar_hostile(p, e, "a NUL byte inside a GNU long name");
    if (p->pend_name_from != 2) {
        memcpy(p->pend_name, p->ext, n);
        p->pend_name_len = n;
        p->pend_name_from = n > 0 ? 1 : 0;
    }
    return ERR_OK;
}

/* --- Members ----------------------------------------------------------------- */

/* What a refused type flag is, or NULL for the types read here. */
static const char *tar_type_refused(unsigned char t)
{
    switch (t) {
    case '0':
    case '\0':
    case '7':
    case '5': return NULL;
    case '1': return "a hard link";
    case '2': return "a symbolic link";
    case 'K': return "a GNU long link name";
    case '3': return "a character device";
    case '4': return "a block device";
    case '6': return "a FIFO";
    case 'S': return "a GNU sparse file";
    case 'M':
    case 'V': return "a multi-volume or volume header member";
    default: return "a member type that is not a file or folder";
    }
}

/* A file or folder header: name, limits, the member callback. */
static enum err_code tar_member(struct tar_parser *p, unsigned char t, uint64_t size, struct err *e)
{
    struct tar_member m = {0};
    enum err_code rc = tar_header_name(p, e);
    int dir = t == '5';

    if (rc)
        return rc;
    if (!dir && p->name[0] == '\0')
        return tar_hostile(p, e, "a file with an empty name");
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

    if (tar_all_zero(h, TAR_BLOCK)) {
        p->state = TAR_S_END;
        return ERR_OK;
    }
    if (!tar_checksum_ok(h))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_TAR,
                        "tar header after member %llu: bad checksum",
                        (unsigned long long)p->n_members);
    if (memcmp(h + 257, "ustar", 5) != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_TAR,
                        "tar header after member %llu: no ustar magic (pre-POSIX tar)",
                        (unsigned long long)p->n_members);
    if (tar_number(h + 124, 12, &size) != 0)
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
    refused = tar_type_refused(t);
    if (refused != NULL)
        return tar_hostile(p, e, refused);
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
            rc = tar_ext_done(p, e);
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
        if (!tar_all_zero(d, n))
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
                rc = tar_ext_done(p, e);
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
