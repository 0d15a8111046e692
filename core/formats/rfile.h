/* rfile.h -- a checkpoint file opened for positioned reads (pread), or a
 * buffer standing in for one.
 *
 * Readers never map checkpoint files: a mapping of a file that shrinks under
 * the reader kills the process with SIGBUS. They open the file once
 * (rfile_open), keep the descriptor for the checkpoint's life, and copy the
 * bytes they need into their own buffers with rfile_read(). Only regular
 * files are opened: a FIFO, device, socket or directory is refused before
 * anything is read (category "not_regular_file"), and the open itself cannot
 * block (O_NONBLOCK, cleared once the file is known to be regular).
 *
 * A file that shrinks after rfile_open (a read hits end of file before the
 * size seen at open) fails the read with ERR_IO and category "changed"; a
 * file that grows or is rewritten in place is read as found (callers that
 * must notice compare hashes). rfile_mem() wraps a buffer in the same
 * interface, so parsers run unchanged on memory (tests, fuzzers).
 *
 * Ownership: a struct rfile is plain data owned by whoever filled it; close a
 * file with rfile_close(). Thread-safety: after rfile_open() the struct is
 * read-only and rfile_read() may run on several threads at once.
 */
#ifndef CORE_RFILE_H
#define CORE_RFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/err.h"

struct rfile {
    int fd;                   /* owned descriptor (when path != NULL), else -1 */
    const unsigned char *mem; /* borrowed buffer when fd < 0 (NULL if size is 0) */
    uint64_t size;            /* bytes at open (file) or in the buffer */
    char *path;               /* owned copy of the path, for messages; NULL for a buffer */
    uint64_t base;            /* a window (rfile_window): offset of byte 0 in the file */
    int borrowed;             /* 1: a window; fd belongs to the file it views */
};

/* --- Open and close ------------------------------------------------------ */

/* Open the regular file `path` for reading and record its size. Failures:
 * ERR_NOTFOUND (no such file), ERR_FORMAT with category "not_regular_file"
 * (FIFO, device, socket, directory: nothing is read from it), ERR_IO,
 * ERR_NOMEM. On failure `f` is closed (fd -1). */
enum err_code rfile_open(const char *path, struct rfile *f, struct err *e);

/* Open `path` read-only without blocking (a FIFO with no writer opens at
 * once; O_NONBLOCK stays set) and fstat it into *st, whatever the file is:
 * the caller decides what it accepts. *fd is the owned descriptor, -1 on
 * failure (ERR_NOTFOUND, ERR_IO). */
enum err_code rfile_open_stat(const char *path, int *fd, struct stat *st, struct err *e);

/* Make `f` read from `buf` (`len` bytes, borrowed: it must outlive every
 * read). Cannot fail. */
void rfile_mem(struct rfile *f, const void *buf, uint64_t len);

/* Make `w` a window on bytes [off, off + len) of `f` (an open file, a buffer,
 * or another window): rfile_read(w, x, ...) reads byte off + x of `f`, and
 * nothing past off + len. The descriptor is borrowed: `f` must stay open while
 * `w` is used; rfile_close(w) frees only the window's copy of the path. A
 * range past f's size is ERR_FORMAT "truncated"; ERR_NOMEM. */
enum err_code rfile_window(const struct rfile *f, uint64_t off, uint64_t len, struct rfile *w,
                           struct err *e);

/* Close the descriptor and free the path; `f` becomes an empty buffer
 * reader. Safe on a zeroed struct, a buffer reader or a closed file (the
 * descriptor is closed only when `path` is set, i.e. rfile_open succeeded).
 * Cannot fail. */
void rfile_close(struct rfile *f);

/* --- Read ---------------------------------------------------------------- */

/* Copy bytes [off, off + len) of `f` to `dst`. A range past the size seen at
 * open is ERR_FORMAT "truncated" (the caller asked for bytes the file never
 * had); end of file inside the range is ERR_IO "changed" (the file shrank
 * since it was opened); other read errors are ERR_IO. Interrupted reads are
 * resumed. */
enum err_code rfile_read(const struct rfile *f, uint64_t off, uint64_t len, void *dst,
                         struct err *e);

/* The whole of the regular file `path`, at most `max` bytes, in a new buffer
 * *out (free(); *len bytes, and a '\0' after them). A larger file is
 * ERR_TOOBIG, category "limit_exceeded", and nothing is read; other failures
 * as rfile_open and rfile_read. On failure *out is NULL. For the small
 * side files of a checkpoint (an index, a config, a metadata pickle). */
enum err_code rfile_slurp(const char *path, uint64_t max, unsigned char **out, size_t *len,
                          struct err *e);

/* The name to use in messages: the path, or "<buffer>". Never NULL. */
const char *rfile_name(const struct rfile *f);

#endif /* CORE_RFILE_H */
