/* npy_int.h -- what npy.c shares with npz.c: parsing an .npy image from its
 * first bytes only. Same ownership and thread-safety as npy.h.
 */
#ifndef CORE_NPY_INT_H
#define CORE_NPY_INT_H

#include "core/formats/npy.h"

#define NPY_PREAMBLE_MAX 12 /* magic, version, header length (v2/v3) */

/* How many leading bytes of a `total`-byte .npy image npy__parse needs,
 * given its first min(total, NPY_PREAMBLE_MAX) bytes `pre`: the preamble
 * plus the header, never more than NPY_PREAMBLE_MAX + max_header_bytes.
 * Cannot fail. */
uint64_t npy__head_len(const unsigned char *pre, uint64_t total, const struct ckpt_limits *l);

/* npy_parse on the first `buf_len` bytes (at least npy__head_len's count) of
 * a `total`-byte image: the data length is checked against `total`;
 * out->data is set only when buf_len == total. */
enum err_code npy__parse(const unsigned char *buf, uint64_t buf_len, uint64_t total,
                         const struct ckpt_limits *l, struct npy_info *out, struct err *e);

/* Where npy__materialise gets the stored data bytes from: read(ctx, dst,
 * n, e) reads the next n of them (a file at the data offset, a zip member's
 * stream). */
typedef enum err_code npy_read_fn(void *ctx, void *dst, uint64_t n, struct err *e);
struct npy__source {
    npy_read_fn *read;
    void *ctx; /* borrowed, passed to read */
};

/* Read the npy data of `a` (a->nbytes bytes, as stored) from `src` into
 * `buf` in C order, little-endian (see npy_to_c_le), going through a
 * scratch copy only when the stored layout needs converting. */
enum err_code npy__materialise(const struct ckpt *c, const struct npy_info *a,
                               const struct npy__source *src, struct ckpt_buf *buf,
                               const void **data, struct err *e);

#endif /* CORE_NPY_INT_H */
