/* tar_header.c -- decoding one tar header and what applies to it: the
 * number fields (octal, GNU base-256) and the checksum of a 512-byte ustar
 * block, the member's name (ustar name and prefix, GNU 'L' long name, pax
 * path) normalised and checked for hostile forms, the pax records and GNU
 * long-name data of an extended header, and the type flags refused. See
 * tar.h, docs/tar.md and tar_int.h; the state machine that feeds it blocks
 * is in tar.c.
 *
 * Ownership: works in the parser's own buffers (hdr, ext, pend_name, name);
 * allocates nothing. Thread-safety: as the parser's (one thread at a time).
 */
#include "core/formats/tar.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/tar_int.h"

/* --- Header fields ------------------------------------------------------- */

/* The number in header field `f` (`n` bytes): octal digits after optional
 * spaces, ended by a space, NUL or the field's end; or GNU base-256 (first
 * byte 0x80, big-endian, non-negative). 0 if fine. */
int tar__number(const unsigned char *f, size_t n, uint64_t *out)
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
int tar__checksum_ok(const unsigned char *h)
{
    uint64_t want;
    long su = 0, ss = 0;

    if (tar__number(h + 148, 8, &want) != 0)
        return 0;
    for (size_t i = 0; i < TAR_BLOCK; i++) {
        unsigned char c = i >= 148 && i < 156 ? ' ' : h[i];
        su += c;
        ss += (signed char)c;
    }
    return (uint64_t)su == want || (ss >= 0 && (uint64_t)ss == want);
}

int tar__all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

/* --- Names ----------------------------------------------------------------- */

enum err_code tar__hostile(struct tar_parser *p, struct err *e, const char *what)
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
        return tar__hostile(p, e, "an absolute name");
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && raw[j] != '/')
            j++;
        if (j - i == 2 && raw[i] == '.' && raw[i + 1] == '.')
            return tar__hostile(p, e, "a '..' component in the name");
        if (j - i > TAR_COMPONENT_MAX)
            return tar__hostile(p, e, "a name component longer than 255 bytes");
        if (j > i && !(j - i == 1 && raw[i] == '.')) {
            if (++depth > TAR_DEPTH_MAX)
                return tar__hostile(p, e, "a name with more than 32 components");
            if (o + (o > 0) + (j - i) > TAR_NAME_MAX)
                return tar__hostile(p, e, "a name longer than 4095 bytes");
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
enum err_code tar__header_name(struct tar_parser *p, struct err *e)
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
            return tar__hostile(p, e, "a sparse file (GNU.sparse pax records)");
        }
        i = end + 1;
    }
    return ERR_OK;
}

/* An extended header's data is in. */
enum err_code tar__ext_done(struct tar_parser *p, struct err *e)
{
    size_t n;

    if (p->ext_type == 'x')
        return tar_pax(p, e);
    /* 'L': the name, NUL-terminated; a NUL inside it is refused */
    n = strnlen(p->ext, p->ext_len);
    if (!tar__all_zero((const unsigned char *)p->ext + n, p->ext_len - n))
        return tar__hostile(p, e, "a NUL byte inside a GNU long name");
    if (p->pend_name_from != 2) {
        memcpy(p->pend_name, p->ext, n);
        p->pend_name_len = n;
        p->pend_name_from = n > 0 ? 1 : 0;
    }
    return ERR_OK;
}

/* --- Member types ------------------------------------------------------------ */

/* What a refused type flag is, or NULL for the types read here. */
const char *tar__type_refused(unsigned char t)
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
