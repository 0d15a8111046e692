/* sbuf.h -- a growable text buffer filled with printf-style appends, for
 * the text farmsd writes (safetensors headers, SVG, Prometheus metrics).
 *
 * Errors are sticky: once an append fails (out of memory or an encoding
 * error) `failed` is set and later appends do nothing, so a writer checks
 * once at the end. Zero-initialise (struct sbuf b = {0};), release with
 * sbuf_free(). The buffer owns `p`, NUL-terminated after every append.
 * Not thread-safe (one owner).
 */
#ifndef CORE_SBUF_H
#define CORE_SBUF_H

#include <stddef.h>

struct sbuf {
    char *p;    /* owned text, NUL-terminated (NULL before the first append) */
    size_t len; /* bytes of text, without the NUL */
    size_t cap; /* bytes allocated */
    int failed; /* 1 after a failed append */
};

/* Append formatted text. Cannot fail (see `failed`). */
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Free the text and empty the buffer. Cannot fail. */
void sbuf_free(struct sbuf *b);

#endif /* CORE_SBUF_H */
