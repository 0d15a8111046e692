/* zip.h -- ZIP archive reader over a file or a buffer (docs/checkpoint-formats.md, PyTorch zip
 * files).
 *
 * Parses the central directory of a zip read with pread (zip_parse_file, a
 * struct rfile) or held in memory (zip_parse): the classic end record, the
 * ZIP64 locator and end record, ZIP64 extended-information extra fields.
 * The directory is read through a fixed window (256 KiB), never whole; an
 * end record counting 0xFFFF entries without a ZIP64 record is a real count
 * of 65 535. Local headers are only used to find each
 * member's data (data = local offset + 30 + local name len + local extra len),
 * never walked sequentially. zip_parse() applies every safety check:
 * end record found and central directory inside the buffer (else
 * "truncated"), single disk, entry bounds, encryption flag, UTF-8 and unique
 * names without NUL bytes, local header signature and name, data inside the
 * buffer ("truncated"), stored members with csize == usize, and members whose
 * byte ranges do not overlap ("invalid_zip"). Nothing is allocated from a
 * declared size: the member table is bounded by the central directory's
 * size and `max_members` ("limit_exceeded").
 *
 * Member data is copied out: stored members (method 0) are read as they are,
 * deflated members (method 8) are inflated with zlib as they are read, from
 * 64 KiB input chunks (a zip_stream), never past the declared size or the
 * caller's limit; any other method fails with "unsupported_compression".
 * A stream can stop after a prefix (an npy header) without inflating the
 * rest; zip_stream_finish checks that the member inflates to exactly its
 * declared size (and its CRC-32 when asked).
 *
 * Ownership: zip_parse() returns a new struct zip_archive that borrows `buf`
 * (zip_parse_file: the struct rfile), which must outlive it; free it with
 * zip_free(). Member records and names are borrowed from the archive: valid
 * until zip_free(). A file that shrinks under a reader fails with ERR_IO
 * "changed" (rfile.h).
 *
 * Thread-safety: a parsed archive is read-only; its functions may be called
 * from several threads at once.
 */
#ifndef CORE_ZIP_H
#define CORE_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/formats/rfile.h"

#define ZIP_METHOD_STORED  0
#define ZIP_METHOD_DEFLATE 8

struct zip_archive; /* opaque */

struct zip_member {        /* plain data, borrowed from the archive */
    const char *name;      /* NUL-terminated UTF-8 name as stored (with its folder) */
    size_t name_len;       /* bytes in name */
    uint16_t method;       /* ZIP_METHOD_STORED, ZIP_METHOD_DEFLATE, or other (unreadable) */
    uint16_t flags;        /* general-purpose flags of the central entry */
    uint32_t crc32;        /* stored CRC-32; 0 may mean "not computed" */
    uint64_t csize;        /* compressed size (bytes in the file) */
    uint64_t usize;        /* declared uncompressed size */
    uint64_t local_offset; /* offset of the local header */
    uint64_t data_offset;  /* offset of the member's data in the file */
};

struct zip_stream; /* opaque: one member being read */

/* --- Parse and free --------------------------------------------------------- */

/* Parse the zip in `buf` (`len` bytes) and check it. At most
 * `max_members` central entries are accepted (limit_exceeded beyond).
 * On success *out is a new archive borrowing `buf`; free with zip_free().
 * Failures: ERR_FORMAT with category truncated / invalid_zip, ERR_TOOBIG
 * (limit_exceeded), ERR_NOMEM. */
enum err_code zip_parse(const unsigned char *buf, uint64_t len, uint64_t max_members,
                        struct zip_archive **out, struct err *e);

/* The same for the open file `f` (borrowed: it must outlive the archive).
 * Also fails with rfile_read()'s errors (ERR_IO "changed"). */
enum err_code zip_parse_file(const struct rfile *f, uint64_t max_members, struct zip_archive **out,
                             struct err *e);

/* Free `z`. NULL is a no-op. Cannot fail. */
void zip_free(struct zip_archive *z);

/* --- Members ------------------------------------------------------------------ */

/* Number of members, in central-directory order. Cannot fail. */
size_t zip_n_members(const struct zip_archive *z);

/* Member `i` (< zip_n_members) in central-directory order. Borrowed. */
const struct zip_member *zip_member_at(const struct zip_archive *z, size_t i);

/* The member named exactly `name` (NUL-terminated), or NULL when absent
 * (absence is not an error). Borrowed. O(log n). */
const struct zip_member *zip_find(const struct zip_archive *z, const char *name);

/* --- Data ----------------------------------------------------------------------- */

/* Start reading member `m` from its first uncompressed byte (about 130 KiB
 * of buffers plus zlib's state). With `verify_crc` != 0, zip_stream_finish
 * checks a non-zero stored CRC-32. Methods other than stored and deflate:
 * unsupported_compression. On success *out is a new stream; close it with
 * zip_stream_close(). */
enum err_code zip_stream_open(const struct zip_archive *z, const struct zip_member *m,
                              int verify_crc, struct zip_stream **out, struct err *e);

/* The next `n` uncompressed bytes into `dst`. Asking past the declared size,
 * or a stream that ends or breaks before `n` bytes: invalid_zip. */
enum err_code zip_stream_read(struct zip_stream *s, void *dst, uint64_t n, struct err *e);

/* Skip the next `n` uncompressed bytes (inflated into scratch space). */
enum err_code zip_stream_skip(struct zip_stream *s, uint64_t n, struct err *e);

/* Read what is left of the member and check it ends exactly at its declared
 * size (more or fewer bytes: invalid_zip) and, if asked, its CRC-32
 * (mismatch: invalid_zip). */
enum err_code zip_stream_finish(struct zip_stream *s, struct err *e);

/* Free `s`. NULL is a no-op. Cannot fail. */
void zip_stream_close(struct zip_stream *s);

/* Inflate deflated member `m` into `dst` (room for `dst_cap` bytes). The
 * member must declare usize <= dst_cap (else limit_exceeded, checked before
 * inflating) and must inflate to exactly usize bytes: more output or a
 * shorter or corrupt stream is invalid_zip. Methods other than deflate:
 * unsupported_compression (stored members have nothing to inflate: use
 * zip_member_read or a zip_stream). */
enum err_code zip_member_inflate(const struct zip_archive *z, const struct zip_member *m,
                                 unsigned char *dst, uint64_t dst_cap, struct err *e);

/* How zip_member_read reads a member. */
struct zip_read_opts {
    uint64_t limit; /* most uncompressed bytes accepted */
    int verify_crc; /* != 0: a non-zero stored CRC-32 must match */
};

/* The uncompressed bytes of member `m`, at most o->limit of them (a member
 * declaring more fails with limit_exceeded before anything is read or
 * allocated), in a new buffer of usize bytes: *data == *owned, and the
 * caller frees *owned with free(). Other methods:
 * unsupported_compression. With o->verify_crc a non-zero stored CRC must
 * match (else invalid_zip); a stored CRC of 0 is never checked. *data and
 * *owned are NULL on failure. The view / owner pair of outputs is kept
 * (rather than folded into a struct) so callers read through a const
 * pointer and free the owner, as with ckpt_buf. */
enum err_code zip_member_read(const struct zip_archive *z, const struct zip_member *m,
                              const struct zip_read_opts *o, const unsigned char **data,
                              unsigned char **owned, struct err *e);

/* Check `n` bytes `data` against the member's stored CRC-32. A stored CRC of
 * 0 passes (not computed by the writer). Mismatch: invalid_zip. */
enum err_code zip_member_crc_check(const struct zip_member *m, const unsigned char *data,
                                   uint64_t n, struct err *e);

#endif /* CORE_ZIP_H */
