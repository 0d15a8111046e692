/* npy.h -- NumPy .npy arrays and .npz archives of them (docs/checkpoint-formats.md, NumPy).
 *
 * .npy layout:
 *
 *   offset 0   6 bytes  "\x93NUMPY"
 *   offset 6   u8 major (1, 2 or 3), u8 minor
 *   offset 8   u16 HL (version 1) or u32 HL (versions 2, 3), little-endian
 *   then       HL bytes: a Python dict literal, e.g.
 *              {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 *   then       the data: prod(shape) * itemsize bytes (bytes after them are ignored)
 *
 * The header is read by a small literal parser (strings, integers, True,
 * False, None, tuples, lists, dicts), never evaluated. It must hold exactly
 * descr, fortran_order and shape. descr is a byte-order character
 * (< little, > big, | not applicable, = native, i.e. little on the hosts we
 * build for) and one of f8 f4 f2 i8 i4 i2 i1 u8 u4 u2 u1 b1 c8 c16; anything
 * else (objects, strings, voids, datetimes, structured dtypes) fails with
 * invalid_dtype. Other failures: truncated, invalid_header, overflow,
 * limit_exceeded (header bytes, rank 16), unknown_format (no magic).
 *
 * .npz: a zip whose members are <key>.npy (no '/'), stored or deflated;
 * tensor names are the member names without ".npy", in member order
 * (npz__ckpt_load in ckpt_int.h).
 *
 * npy_parse() allocates nothing; struct npy_info borrows the buffer. The
 * ckpt loaders parse only the preamble and header of a file or member
 * (within max_header_bytes) and read the data when a tensor is read.
 * Stateless: thread-safe.
 */
#ifndef CORE_NPY_H
#define CORE_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "core/formats/ckpt.h"
#include "core/dtype.h"
#include "core/err.h"

struct npy_info {     /* plain data; data borrowed from the parsed buffer */
    unsigned major;   /* format version 1, 2 or 3 */
    enum dtype dtype; /* element type (C64 / C128 for complex) */
    int ndim;         /* 0 .. CKPT_MAX_RANK */
    int64_t shape[CKPT_MAX_RANK];
    uint64_t n_elems;          /* product of shape */
    uint64_t nbytes;           /* n_elems * element size */
    int fortran_order;         /* 1: stored column-major */
    int big_endian;            /* 1: descr '>' with elements wider than a byte */
    uint64_t data_offset;      /* where the data starts in the .npy image */
    const unsigned char *data; /* the nbytes stored bytes; NULL when only the header was
                                  parsed (files: the ckpt loaders read the data later) */
};

/* Parse and validate the .npy image `buf` (`len` bytes; NULL if len is 0).
 * `l` may be NULL (defaults). Fills *out on success (zeroed on failure). */
enum err_code npy_parse(const unsigned char *buf, uint64_t len, const struct ckpt_limits *l,
                        struct npy_info *out, struct err *e);

/* 1 if the stored bytes already are C order and little-endian (no copy
 * needed), else 0. Cannot fail. */
int npy_is_c_contiguous_le(const struct npy_info *a);

/* Write the array to `dst` (a->nbytes bytes) in C order, little-endian:
 * Fortran order transposed, big-endian elements swapped (each half of a
 * complex number on its own). Cannot fail. */
void npy_to_c_le(const struct npy_info *a, unsigned char *dst);

#endif /* CORE_NPY_H */
