/* thash.h -- SHA-256 content hashes of tensors (docs/checkpoint-formats.md, Tensor hashes), via
 * libcrypto's EVP interface.
 *
 * A tensor's hash is SHA-256 over its elements in C (row-major) order, each
 * in its stored dtype, little-endian: exactly the bytes ckpt_tensor_read()
 * materialises (views materialised, big-endian sources swapped), so the same
 * weights hash the same from .pt, .safetensors or .npz. The fixtures'
 * manifest `sha256` follows this rule. The cache key of the design adds
 * dtype and shape; that is the caller's business.
 *
 * Ownership: a struct thash owns a libcrypto context from thash_init() until
 * thash_final() or thash_free(). Thread-safety: no shared state; one struct
 * thash per thread, any number of them at once.
 */
#ifndef CORE_THASH_H
#define CORE_THASH_H

#include <stddef.h>

#include "core/formats/ckpt.h"
#include "core/err.h"

#define THASH_DIGEST_LEN 32 /* SHA-256 bytes */
#define THASH_HEX_LEN    65 /* 64 lower-case hex digits and a NUL */

struct thash { /* caller-owned; zero-initialise or thash_init() */
    void *ctx; /* owned EVP_MD_CTX, NULL when not started */
};

/* --- Streaming ------------------------------------------------------------ */

/* Start a SHA-256 over `h`. On failure (ERR_NOMEM, ERR_INTERNAL from
 * libcrypto) h->ctx is NULL. */
enum err_code thash_init(struct thash *h, struct err *e);

/* A SHA-256 implementation looked up once, for callers that start many
 * short hashes (the API's ETags): libcrypto 3 looks EVP_sha256() up again,
 * under a lock, on every thash_init(). Immutable once made: share it
 * between threads freely; free it after the last thash_init_md() using it
 * (hashes started from it keep their own reference). */
struct thash_md; /* opaque */

/* A new lookup in *out (ERR_INTERNAL if libcrypto has no SHA-256). */
enum err_code thash_md_new(struct thash_md **out, struct err *e);
void thash_md_free(struct thash_md *md); /* NULL: no-op */

/* thash_init() with the implementation `md` (NULL: as thash_init()). */
enum err_code thash_init_md(struct thash *h, const struct thash_md *md, struct err *e);

/* Add `len` bytes at `data` (may be NULL when len == 0). */
enum err_code thash_update(struct thash *h, const void *data, size_t len, struct err *e);

/* Finish: write the digest and release the context (also on failure).
 * `h` may be started again with thash_init(). */
enum err_code thash_final(struct thash *h, unsigned char digest[THASH_DIGEST_LEN], struct err *e);

/* Release an unfinished hash. NULL or never started is a no-op. Cannot fail. */
void thash_free(struct thash *h);

/* --- One shot ----------------------------------------------------------------- */

/* 1 if `s` is exactly THASH_HEX_LEN - 1 (64) lower-case hex digits, the
 * form thash_hex() writes and every stored SHA-256 takes; 0 otherwise,
 * NULL included. The one check of that form. Cannot fail. */
int thash_hex_ok(const char *s);

/* Lower-case hex of a digest, NUL-terminated. Cannot fail. */
void thash_hex(const unsigned char digest[THASH_DIGEST_LEN], char hex[THASH_HEX_LEN]);

/* SHA-256 of `len` bytes at `data` as hex (one EVP call, no copy). */
enum err_code thash_bytes(const void *data, size_t len, char hex[THASH_HEX_LEN], struct err *e);

/* SHA-256 of tensor `i` of `c` as hex: read it into `buf` with
 * ckpt_tensor_read() and hash its `nbytes` bytes in one update.
 * Fails with ckpt_tensor_read()'s errors and libcrypto failures. */
enum err_code thash_tensor(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                           char hex[THASH_HEX_LEN], struct err *e);

#endif /* CORE_THASH_H */
