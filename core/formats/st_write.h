/* st_write.h -- streaming writer of safetensors files (docs/checkpoint-formats.md, safetensors).
 *
 * The caller declares every tensor (name, dtype, shape) up front; the writer
 * lays them out back to back in declaration order, writes the JSON header
 * (padded with spaces to a multiple of 8 bytes, so every tensor of 2- and
 * 4-byte elements stays aligned), then takes the tensor bytes as a stream of
 * st_writer_write() calls of any size. Nothing but one stdio buffer is held
 * in memory, whatever the file size. Used by `farmsd synth`.
 *
 * struct st_wtensor is shared with the torch zip writer (core/tz_write.h).
 *
 * Ownership: st_writer_open() returns a new writer that owns the open file;
 * st_writer_close() or st_writer_abort() frees it. Not thread-safe: one
 * thread per writer.
 */
#ifndef CORE_ST_WRITE_H
#define CORE_ST_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "core/formats/ckpt.h"
#include "core/dtype.h"
#include "core/err.h"

struct st_wtensor {   /* plain data; strings borrowed for the call */
    const char *name; /* printable ASCII without '"' or '\\', 1..ST_NAME_MAX-1 bytes */
    enum dtype dtype; /* a dtype with whole-byte elements (dtype_size() > 0) */
    int ndim;         /* 0 .. CKPT_MAX_RANK */
    int64_t shape[CKPT_MAX_RANK];
};

/* Bytes of tensor `t` (product of its shape times the element size), or 0
 * with ERR_INVAL in `e` when the shape is negative, the dtype has sub-byte
 * elements or the product overflows. An empty tensor is 0 bytes and ERR_OK;
 * callers tell them apart through `e` (may be NULL). */
uint64_t st_wtensor_nbytes(const struct st_wtensor *t, struct err *e);

/* Check a tensor list for the writers: valid names (unique), dtypes and
 * shapes. ERR_INVAL naming the first bad tensor. */
enum err_code st_wtensors_check(const struct st_wtensor *t, size_t n, struct err *e);

struct st_writer; /* opaque */

/* Create (truncate) `path` and write the header for tensors t[0..n), which
 * is copied: `t` need not outlive the call. On success *out is a new writer. */
enum err_code st_writer_open(const char *path, const struct st_wtensor *t, size_t n,
                             struct st_writer **out, struct err *e);

/* Append `len` bytes of tensor data (C order, little-endian, stored dtype);
 * calls continue across tensor boundaries. ERR_INVAL if this runs past the
 * declared total; ERR_IO on write failures. */
enum err_code st_writer_write(struct st_writer *w, const void *data, size_t len, struct err *e);

/* Finish: ERR_INVAL unless exactly the declared bytes were written, ERR_IO
 * if flushing or closing fails; the file is removed on failure. Frees `w`
 * in every case. */
enum err_code st_writer_close(struct st_writer *w, struct err *e);

/* Give up: close and remove the file, free `w`. NULL is a no-op. */
void st_writer_abort(struct st_writer *w);

#endif /* CORE_ST_WRITE_H */
