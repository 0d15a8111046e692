/* rfile.c -- see rfile.h. */
#include "core/formats/rfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *rfile_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    return "not a regular file";
}

enum err_code rfile_open_stat(const char *path, int *fd, struct stat *st, struct err *e)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (*fd < 0)
        return err_set_errno(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, errno, "open %s", path);
    if (fstat(*fd, st) != 0) {
        enum err_code rc = err_set_errno(e, ERR_IO, errno, "stat %s", path);
        close(*fd);
        *fd = -1;
        return rc;
    }
    return ERR_OK;
}

enum err_code rfile_open(const char *path, struct rfile *f, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct stat st;
    int fd = -1, fl;

    memset(f, 0, sizeof(*f));
    f->fd = -1;
    rc = rfile_open_stat(path, &fd, &st, e);
    if (rc)
        goto out;
    if (!S_ISREG(st.st_mode)) {
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_NOT_REGULAR_FILE, "%s is %s, not a regular file", path,
                      rfile_kind(st.st_mode));
        goto out;
    }
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        rc = err_set_errno(e, ERR_IO, errno, "fcntl %s", path);
        goto out;
    }
    f->path = strdup(path);
    if (f->path == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory opening %s", path);
        goto out;
    }
    f->size = (uint64_t)st.st_size;
    f->fd = fd;
    fd = -1; /* ownership moved to f */
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

void rfile_mem(struct rfile *f, const void *buf, uint64_t len)
{
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    f->mem = buf;
    f->size = len;
}

enum err_code rfile_window(const struct rfile *f, uint64_t off, uint64_t len, struct rfile *w,
                           struct err *e)
{
    memset(w, 0, sizeof(*w));
    w->fd = -1;
    if (off > f->size || len > f->size - off)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "%s: %llu bytes at offset %llu run past the end (%llu bytes)",
                        rfile_name(f), (unsigned long long)len, (unsigned long long)off,
                        (unsigned long long)f->size);
    if (f->path == NULL) {
        rfile_mem(w, len ? f->mem + off : NULL, len);
        return ERR_OK;
    }
    w->path = strdup(f->path);
    if (w->path == NULL)
        return err_set(e, ERR_NOMEM, "out of memory opening a window on %s", f->path);
    w->fd = f->fd;
    w->size = len;
    w->base = f->base + off;
    w->borrowed = 1;
    return ERR_OK;
}

void rfile_close(struct rfile *f)
{
    if (f->path != NULL && f->fd >= 0 && !f->borrowed)
        close(f->fd);
    free(f->path);
    memset(f, 0, sizeof(*f));
    f->fd = -1;
}

const char *rfile_name(const struct rfile *f)
{
    return f->path != NULL ? f->path : "<buffer>";
}

/* End of file at `got` bytes into [off, off + len): the file shrank. */
static enum err_code rfile_short(const struct rfile *f, uint64_t off, uint64_t len, uint64_t got,
                                 struct err *e)
{
    struct stat st;
    long long now = fstat(f->fd, &st) == 0 ? (long long)st.st_size : -1;

    return err_setc(e, ERR_IO, ERR_CAT_CHANGED,
                    "%s changed while being read: end of file at offset %llu reading %llu bytes "
                    "at %llu (%llu bytes when opened, %lld now)",
                    rfile_name(f), (unsigned long long)(f->base + off + got),
                    (unsigned long long)len, (unsigned long long)(f->base + off),
                    (unsigned long long)(f->base + f->size), now);
}

enum err_code rfile_read(const struct rfile *f, uint64_t off, uint64_t len, void *dst,
                         struct err *e)
{
    unsigned char *p = dst;
    uint64_t got = 0;

    if (off > f->size || len > f->size - off)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "%s: %llu bytes at offset %llu run past the end (%llu bytes)",
                        rfile_name(f), (unsigned long long)len, (unsigned long long)off,
                        (unsigned long long)f->size);
    if (len == 0)
        return ERR_OK;
    if (f->path == NULL) {
        memcpy(dst, f->mem + off, (size_t)len);
        return ERR_OK;
    }
    while (got < len) {
        size_t want = len - got > ((size_t)1 << 30) ? (size_t)1 << 30 : (size_t)(len - got);
        ssize_t n = pread(f->fd, p + got, want, (off_t)(f->base + off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_set_errno(e, ERR_IO, errno, "read %s at offset %llu", rfile_name(f),
                                 (unsigned long long)(off + got));
        if (n == 0)
            return rfile_short(f, off, len, got, e);
        got += (uint64_t)n;
    }
    return ERR_OK;
}

enum err_code rfile_slurp(const char *path, uint64_t max, unsigned char **out, size_t *len,
                          struct err *e)
{
    struct rfile f = {.fd = -1};
    unsigned char *buf = NULL;
    enum err_code rc;

    *out = NULL;
    *len = 0;
    rc = rfile_open(path, &f, e);
    if (rc)
        return rc;
    if (f.size > max) {
        rc = err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                      "%s: %llu bytes exceed the limit of %llu bytes", path,
                      (unsigned long long)f.size, (unsigned long long)max);
        goto out;
    }
    buf = malloc((size_t)f.size + 1);
    if (buf == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory reading %s", path);
        goto out;
    }
    rc = rfile_read(&f, 0, f.size, buf, e);
    if (rc)
        goto out;
    buf[f.size] = '\0';
    *out = buf;
    *len = (size_t)f.size;
    buf = NULL;
out:
    free(buf);
    rfile_close(&f);
    return rc;
}
