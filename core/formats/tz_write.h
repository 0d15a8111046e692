/* tz_write.h -- streaming writer of PyTorch torch.save zip checkpoints
 * (docs/checkpoint-formats.md, PyTorch zip files), the layout torch.save(state_dict) produces:
 *
 *   ARCHIVE/data.pkl     protocol-2 pickle: an OrderedDict of name ->
 *                        torch._utils._rebuild_tensor_v2((storage persistent
 *                        id), 0, shape, contiguous strides, False, OrderedDict())
 *                        with FloatStorage / HalfStorage / BFloat16Storage /
 *                        DoubleStorage ... persistent ids ("storage", class,
 *                        key, "cpu", numel); storage keys "0", "1", ...
 *   ARCHIVE/data/K       tensor K's bytes, stored (not deflated), each member's
 *                        data 64-byte aligned through a padding extra field
 *   ARCHIVE/version      "3\n"
 *   ARCHIVE/byteorder    "little"
 *
 * followed by the central directory, a ZIP64 end record and locator (always
 * written; members, offsets and sizes past 4 GiB use ZIP64 extra fields) and
 * the classic end record. CRC-32s are computed while streaming and patched
 * into each local header when its member is complete. Only the stdio buffer
 * and the member table are held in memory. Used by `farmsd synth`.
 *
 * Ownership: tz_writer_open() returns a new writer owning the open file;
 * tz_writer_close() or tz_writer_abort() frees it. Not thread-safe.
 */
#ifndef CORE_TZ_WRITE_H
#define CORE_TZ_WRITE_H

#include <stddef.h>

#include "core/err.h"
#include "core/formats/st_write.h"

struct tz_writer; /* opaque */

/* Create (truncate) `path`, write data.pkl for tensors t[0..n) (copied; same
 * rules as st_wtensors_check(); dtypes F64, F32, F16, BF16, I64, I32, I16,
 * I8, U8, BOOL) under the folder `archive` (1..100 bytes of [A-Za-z0-9_.-]).
 * On success *out is a new writer expecting tensor 0's bytes. */
enum err_code tz_writer_open(const char *path, const char *archive, const struct st_wtensor *t,
                             size_t n, struct tz_writer **out, struct err *e);

/* Append `len` bytes of tensor data in declaration order (C order,
 * little-endian); calls continue across tensor boundaries. ERR_INVAL past
 * the declared total; ERR_IO on write failures. */
enum err_code tz_writer_write(struct tz_writer *w, const void *data, size_t len, struct err *e);

/* Finish the archive. ERR_INVAL unless exactly the declared bytes were
 * written; ERR_IO. The file is removed on failure. Frees `w` in every case. */
enum err_code tz_writer_close(struct tz_writer *w, struct err *e);

/* Give up: close and remove the file, free `w`. NULL is a no-op. */
void tz_writer_abort(struct tz_writer *w);

#endif /* CORE_TZ_WRITE_H */
