/* gguf_int.h -- what gguf.c (the header, tensor infos, extents, the ckpt
 * loader) shares with gguf_read.c (the bounded header reader and the
 * metadata key/value pairs). Internal to core/formats/gguf*.c: not a public
 * header.
 *
 * Ownership: a struct gguf_rd borrows its file and limits; strings it copies
 * out are owned by the caller. Thread-safety: a reader is used by one thread
 * at a time; nothing else is shared.
 */
#ifndef CORE_GGUF_INT_H
#define CORE_GGUF_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/formats/ckpt.h"
#include "core/formats/gguf.h"
#include "core/formats/rfile.h"

/* The header reader: reads at `pos` through a 4 KiB window of the file,
 * every read checked against the file's end and max_header_bytes. */
struct gguf_rd {
    const struct rfile *f;
    const struct ckpt_limits *l;
    uint64_t pos; /* next byte to read */
    uint64_t win_off;
    size_t win_len;
    unsigned char win[4096];
};

/* Copy the next `n` bytes to `dst` (NULL: skip them). Fails with truncated
 * or limit_exceeded, or rfile_read()'s errors; on success rd->pos moves on. */
enum err_code gguf__rd_get(struct gguf_rd *rd, void *dst, uint64_t n, struct err *e);

/* The next little-endian u32 / u64 into *v (as gguf__rd_get fails). */
enum err_code gguf__rd_u32(struct gguf_rd *rd, uint32_t *v, struct err *e);
enum err_code gguf__rd_u64(struct gguf_rd *rd, uint64_t *v, struct err *e);

/* A count of items of at least `min_bytes` each: more than the header limit
 * could hold is limit_exceeded, before anything is allocated or looped.
 * `what` names the items in the message. */
enum err_code gguf__count_check(const struct gguf_rd *rd, uint64_t n, uint64_t min_bytes,
                                const char *what, struct err *e);

/* A string copied into a new NUL-terminated buffer (*out, owned; NULL on
 * failure). Also invalid_header for a NUL byte inside it, ERR_NOMEM. */
enum err_code gguf__rd_strdup(struct gguf_rd *rd, char **out, struct err *e);

/* One metadata key/value pair; general.alignment (into g->alignment: a u32
 * power of two, else invalid_header) and the first string
 * general.architecture (g->architecture, owned by g) are kept, every other
 * value is skipped by its type (invalid_header for an unknown type,
 * limit_exceeded for arrays nested deeper than GGUF_MAX_ARRAY_DEPTH). */
enum err_code gguf__read_kv(struct gguf_rd *rd, struct gguf_file *g, struct err *e);

#endif /* CORE_GGUF_INT_H */
