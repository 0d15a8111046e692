/* utf8.h -- strict UTF-8 validation (RFC 3629) for names read from files:
 * safetensors headers, zip member names, pickle strings.
 *
 * Well-formed means: no overlong forms, no surrogates (U+D800..U+DFFF), no
 * code point above U+10FFFF, no truncated sequence. NUL is a valid code
 * point here; callers that need C strings refuse it themselves.
 * Pure function: thread-safe.
 */
#ifndef CORE_UTF8_H
#define CORE_UTF8_H

#include <stdint.h>

/* Offset of the first byte of the first ill-formed sequence in s[0..n), or
 * n when all of it is well-formed. Cannot fail. */
uint64_t utf8_check(const unsigned char *s, uint64_t n);

#endif /* CORE_UTF8_H */
