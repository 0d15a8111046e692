/* fmap.c -- see fmap.h. */
#include "core/fmap.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum err_code fmap_open(const char *path, struct fmap *m, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct stat st;
    void *p;
    int fd = -1;

    m->data = NULL;
    m->size = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = err_set_errno(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, errno, "open %s", path);
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = err_set_errno(e, ERR_IO, errno, "stat %s", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = err_set(e, ERR_IO, "%s is not a regular file", path);
        goto out;
    }
    if (st.st_size == 0)
        goto out;
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        rc = err_set_errno(e, ERR_IO, errno, "mmap %s", path);
        goto out;
    }
    m->data = p;
    m->size = (uint64_t)st.st_size;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

void fmap_release(const void *p, uint64_t len)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo, hi;

    if (p == NULL || len == 0 || page == 0)
        return;
    lo = (uintptr_t)p & ~(page - 1); /* whole pages around the range: a neighbour */
    hi = ((uintptr_t)p + (uintptr_t)len + page - 1) & ~(page - 1); /* just reads again */
    (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void fmap_close(struct fmap *m)
{
    if (m->data != NULL)
        munmap((void *)(uintptr_t)m->data, (size_t)m->size);
    m->data = NULL;
    m->size = 0;
}
