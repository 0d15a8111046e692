/* cache.h -- rendered responses of run reads, keyed by their strong ETag.
 *
 * A run read's ETag hashes the database instance, the run's change id and
 * the normalised request, so a body rendered once stays right until the
 * run changes, and then its ETag is never asked for again. Dashboards poll
 * the same few URLs: the cache makes a repeated 200 a memcpy instead of a
 * database read and a JSON rendering. Bounded by bytes; least recently used
 * entries go first.
 *
 * Ownership: the cache owns copies of the bodies it holds; api_cache_get
 * hands the caller a new copy. Thread-safety: every function may be called
 * from any thread (one mutex; bodies are copied outside of no lock-free
 * paths, so keep entries small relative to the budget).
 */
#ifndef API_CACHE_H
#define API_CACHE_H

#include <stddef.h>

#include "core/err.h"

struct api_cache; /* opaque */

/* A cache of at most `max_bytes` of bodies (0: a cache that holds nothing).
 * Returns a new cache in *out; free with api_cache_free(). */
enum err_code api_cache_new(size_t max_bytes, struct api_cache **out, struct err *e);
void api_cache_free(struct api_cache *c);

/* The body stored under `etag`: 1 with *body a new copy (free()), *len and
 * `content_type` (at least 64 bytes) filled; 0 if absent. NULL c: 0. */
int api_cache_get(struct api_cache *c, const char *etag, char **body, size_t *len,
                  char *content_type);

/* The strong ETag of `head` followed by `key`: '"' + the first 32 hex
 * digits of their SHA-256 + '"' into etag (API_CACHE_ETAG_LEN bytes). The
 * SHA-256 implementation is looked up once per cache (c NULL: on every
 * call). 1, or 0 if libcrypto failed (no ETag). */
#define API_CACHE_ETAG_LEN 35
int api_cache_etag(const struct api_cache *c, const char *head, const char *key, char *etag);

/* Store a copy of `body` under `etag` (an existing entry is kept). Bodies
 * larger than a quarter of the budget are not stored. NULL c: no-op. */
void api_cache_put(struct api_cache *c, const char *etag, const char *body, size_t len,
                   const char *content_type);

#endif /* API_CACHE_H */
