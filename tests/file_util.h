/* file_util.h -- TEST-ONLY: a whole file read into memory, for the tests
 * that compare a file's bytes or parse a fixture (manifests, reference
 * vectors, hand-written checkpoints) without the product's readers.
 *
 * Header-only (static inline). Ownership: the buffer returned is the
 * caller's (free). Thread-safe (no state).
 */
#ifndef TESTS_FILE_UTIL_H
#define TESTS_FILE_UTIL_H

#include <stdio.h>
#include <stdlib.h>

/* The whole file `path` in a new buffer with a NUL after its bytes; their
 * number to *len when len is not NULL (0 on failure). NULL when the file
 * cannot be opened or read. */
static inline void *fu_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (len != NULL)
        *len = 0;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            if (len != NULL)
                *len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

#endif /* TESTS_FILE_UTIL_H */
