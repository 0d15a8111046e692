/* blob.c -- content-addressed checkpoint files. See blob.h.
 *
 * A commit is: fsync(tmp file), mkdir objects/<sha[0:2]> (fsync objects/ if
 * it was new), rename(tmp, objects/<sha[0:2]>/<sha>), fsync the fan-out
 * directory. rename(2) within one filesystem is atomic, so a reader sees no
 * blob or the whole blob; after the directory fsync the name survives power
 * loss. Two commits of the same hash race harmlessly: both files hold the
 * same bytes and the last rename wins.
 *
 * Uploads (struct blob_upload) live in blob_upload.c.
 *
 * THREAD SAFETY: the store is immutable after blob_store_open; every
 * function is reentrant. An upload is one thread's at a time.
 */
#define _GNU_SOURCE /* copy_file_range */
#include "storage/blob.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/formats/thash.h"
#include "storage/blob_int.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);

    if (p != NULL)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* mkdir `path` (0700) unless it exists as a directory. *created = 1 if new. */
static enum err_code ensure_dir(const char *path, int *created, struct err *e)
{
    struct stat sb;

    *created = 0;
    if (mkdir(path, 0700) == 0) {
        *created = 1;
        return ERR_OK;
    }
    if (errno != EEXIST)
        return err_set_errno(e, ERR_IO, errno, "mkdir %s", path);
    if (stat(path, &sb) != 0)
        return err_set_errno(e, ERR_IO, errno, "stat %s", path);
    if (!S_ISDIR(sb.st_mode))
        return err_set(e, ERR_IO, "%s exists and is not a directory", path);
    return ERR_OK;
}

/* fsync a file or directory by path. */
static enum err_code fsync_path(const char *path, int dir, struct err *e)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return err_set_errno(e, ERR_IO, errno, "open %s for fsync", path);
    rc = fsync(fd);
    if (rc != 0) {
        int saved = errno;

        close(fd);
        return err_set_errno(e, ERR_IO, saved, "fsync %s", path);
    }
    close(fd);
    return ERR_OK;
}

/* This host's name as tmp file names carry it: gethostname() with every
 * byte outside [A-Za-z0-9.] made '_' (so '-' only separates fields), cut at
 * BLOB_HOST_MAX; "localhost" if it has none. */
static void blob_host_name(char *out)
{
    char h[256] = {0};
    size_t i;

    if (gethostname(h, sizeof(h) - 1) != 0 || h[0] == '\0')
        snprintf(h, sizeof(h), "localhost");
    for (i = 0; i < BLOB_HOST_MAX && h[i] != '\0'; i++) {
        char c = h[i];
        int ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.';
        out[i] = c;
        if (!ok)
            out[i] = '_';
    }
    out[i] = '\0';
}

/* --- Open and close ---------------------------------------------------------- */

enum err_code blob_store_open(const char *dir, struct blob_store **out, struct err *e)
{
    struct blob_store *b = NULL;
    enum err_code rc;
    int created = 0;

    *out = NULL;
    if (dir == NULL || dir[0] == '\0')
        return err_set(e, ERR_INVAL, "blob store: empty directory name");
    if (strlen(dir) > PATH_MAX - 100)
        return err_set(e, ERR_TOOBIG, "blob store: directory name too long");
    b = calloc(1, sizeof *b);
    if (b == NULL)
        return err_set(e, ERR_NOMEM, "blob store: out of memory");
    b->dir = strdup(dir);
    b->tmp = path_join(dir, "tmp");
    b->objects = path_join(dir, "objects");
    if (b->dir == NULL || b->tmp == NULL || b->objects == NULL) {
        rc = err_set(e, ERR_NOMEM, "blob store: out of memory");
        goto out;
    }
    blob_host_name(b->host);
    rc = ensure_dir(b->dir, &created, e);
    if (rc == ERR_OK)
        rc = ensure_dir(b->tmp, &created, e);
    if (rc == ERR_OK)
        rc = ensure_dir(b->objects, &created, e);
    if (rc == ERR_OK)
        rc = blob_tmp_cleanup(b, BLOB_TMP_STALE_S, NULL, e);
out:
    if (rc != ERR_OK) {
        blob_store_close(b);
        return rc;
    }
    *out = b;
    return ERR_OK;
}

void blob_store_close(struct blob_store *b)
{
    if (b == NULL)
        return;
    free(b->dir);
    free(b->tmp);
    free(b->objects);
    free(b);
}

const char *blob_tmp_dir(const struct blob_store *b)
{
    return b->tmp;
}

/* --- Writing --------------------------------------------------------------------- */

enum err_code blob__tmp_create(struct blob_store *b, int *fd, char *path, size_t len, struct err *e)
{
    int n = snprintf(path, len, "%s/upload-%s-%ld-XXXXXX", b->tmp, b->host, (long)getpid());
    int f;

    *fd = -1;
    if (n < 0 || (size_t)n >= len)
        return err_set(e, ERR_TOOBIG, "tmp path does not fit in %zu bytes", len);
    f = mkstemp(path);
    if (f < 0)
        return err_set_errno(e, ERR_IO, errno, "create tmp file in %s", b->tmp);
    *fd = f;
    return ERR_OK;
}

enum err_code blob__commit_tmp(struct blob_store *b, const char *tmp_path, const char *sha256_hex,
                               int *existed, int *moved, struct err *e)
{
    char fan[PATH_MAX], dst[PATH_MAX];
    enum err_code rc;
    struct stat sb;
    int created = 0;

    *existed = 0;
    *moved = 0;
    rc = blob_path(b, sha256_hex, dst, sizeof dst, e);
    if (rc != ERR_OK)
        return rc;
    memcpy(fan, dst, sizeof fan);
    *strrchr(fan, '/') = '\0'; /* objects/<sha[0:2]> */
    if (stat(dst, &sb) == 0 && (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode))) {
        *existed = 1;
        if (lstat(tmp_path, &sb) == 0 && S_ISDIR(sb.st_mode))
            return ERR_OK; /* a folder upload's: blob_dir_abort removes it */
        if (unlink(tmp_path) != 0)
            return err_set_errno(e, ERR_IO, errno, "remove %s", tmp_path);
        *moved = 1;
        return ERR_OK;
    }
    rc = fsync_path(tmp_path, 0, e);
    if (rc == ERR_OK)
        rc = ensure_dir(fan, &created, e);
    if (rc == ERR_OK && created)
        rc = fsync_path(b->objects, 1, e);
    if (rc != ERR_OK)
        return rc;
    if (rename(tmp_path, dst) != 0) {
        int errnum = errno;
        /* a folder: the same folder committed by another upload meanwhile */
        if ((errnum == ENOTEMPTY || errnum == EEXIST) && stat(dst, &sb) == 0 &&
            S_ISDIR(sb.st_mode)) {
            *existed = 1;
            return ERR_OK;
        }
        return err_set_errno(e, ERR_IO, errnum, "rename %s to %s", tmp_path, dst);
    }
    *moved = 1;
    return fsync_path(fan, 1, e);
}

enum err_code blob_remove(struct blob_store *b, const char *sha256_hex, int *removed, struct err *e)
{
    char dst[PATH_MAX];
    enum err_code rc;

    if (removed != NULL)
        *removed = 0;
    rc = blob_path(b, sha256_hex, dst, sizeof dst, e);
    if (rc != ERR_OK)
        return rc;
    if (unlink(dst) != 0) {
        if (errno == ENOENT)
            return ERR_OK;
        if (errno != EISDIR)
            return err_set_errno(e, ERR_IO, errno, "remove %s", dst);
        rc = blob__rm_tree(AT_FDCWD, dst, e); /* a folder upload */
        if (rc != ERR_OK)
            return rc;
    }
    if (removed != NULL)
        *removed = 1;
    return ERR_OK;
}

/* The pid in tmp file name `name` if it is "upload-<host>-<pid>-XXXXXX"
 * of host `host`, else -1. */
static long blob_tmp_pid(const char *name, const char *host)
{
    size_t hl = strlen(host);
    const char *p = name + 7;
    char *end;
    long pid;

    if (strncmp(name, "upload-", 7) != 0 || strncmp(p, host, hl) != 0 || p[hl] != '-')
        return -1;
    p += hl + 1;
    if (*p < '1' || *p > '9')
        return -1;
    errno = 0;
    pid = strtol(p, &end, 10);
    if (errno != 0 || pid <= 0 || (long)(pid_t)pid != pid || *end != '-' || strlen(end + 1) != 6 ||
        strchr(end + 1, '-') != NULL)
        return -1;
    return pid;
}

/* 1 if tmp file `name` belongs to an upload that can no longer finish: a
 * file of this host whose process is gone, or any file older than
 * `max_age_s` (files of other hosts, or of the old unnamed form). */
static int blob_tmp_stale(const struct blob_store *b, const char *name, double age_s,
                          double max_age_s)
{
    long pid = blob_tmp_pid(name, b->host);

    if (age_s >= max_age_s)
        return 1;
    return pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

enum err_code blob_tmp_cleanup(struct blob_store *b, double max_age_s, int64_t *n_removed,
                               struct err *e)
{
    char path[PATH_MAX];
    struct dirent *de;
    struct stat sb;
    time_t now = time(NULL);
    DIR *d;
    int64_t n = 0;

    if (n_removed != NULL)
        *n_removed = 0;
    d = opendir(b->tmp);
    if (d == NULL)
        return err_set_errno(e, ERR_IO, errno, "open %s", b->tmp);
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", b->tmp, de->d_name) >= sizeof path)
            continue;
        if (lstat(path, &sb) != 0)
            continue;
        if (!blob_tmp_stale(b, de->d_name, difftime(now, sb.st_mtime), max_age_s))
            continue;
        if (S_ISDIR(sb.st_mode) ? blob__rm_tree(AT_FDCWD, path, NULL) == ERR_OK : unlink(path) == 0)
            n++;
    }
    closedir(d);
    if (n_removed != NULL)
        *n_removed = n;
    return ERR_OK;
}

/* --- Reading ---------------------------------------------------------------------- */

enum err_code blob_path(const struct blob_store *b, const char *sha256_hex, char *buf, size_t len,
                        struct err *e)
{
    int n;

    if (!thash_hex_ok(sha256_hex))
        return err_set(e, ERR_INVAL, "blob hash is not 64 lower-case hex digits");
    n = snprintf(buf, len, "%s/%.2s/%s", b->objects, sha256_hex, sha256_hex);
    if (n < 0 || (size_t)n >= len)
        return err_set(e, ERR_TOOBIG, "blob path does not fit in %zu bytes", len);
    return ERR_OK;
}

int blob_exists(const struct blob_store *b, const char *sha256_hex)
{
    char path[PATH_MAX];
    struct stat sb;

    if (blob_path(b, sha256_hex, path, sizeof path, NULL) != ERR_OK)
        return 0;
    return stat(path, &sb) == 0 && (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode));
}

enum err_code blob_free_bytes(const struct blob_store *b, uint64_t *out, struct err *e)
{
    struct statvfs v;

    if (statvfs(b->dir, &v) != 0)
        return err_set_errno(e, ERR_IO, errno, "statvfs %s", b->dir);
    *out = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
    return ERR_OK;
}

/* Copy what is left of `in` to `out`: in the kernel (copy_file_range), or
 * through a buffer where the kernel cannot. */
static enum err_code blob_copy_fd(int in, int out, const char *src, struct err *e)
{
    enum err_code rc = ERR_OK;
    char *buf = NULL;
    ssize_t n;

    for (;;) {
        n = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0);
        if (n > 0)
            continue;
        if (n == 0)
            return ERR_OK;
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
            return err_set_errno(e, ERR_IO, errno, "copy %s", src);
        break;
    }
    buf = malloc((size_t)1 << 20);
    if (buf == NULL)
        return err_set(e, ERR_NOMEM, "out of memory copying %s", src);
    while (rc == ERR_OK) {
        n = read(in, buf, (size_t)1 << 20);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set_errno(e, ERR_IO, errno, "read %s", src);
            break;
        }
        for (ssize_t off = 0; off < n && rc == ERR_OK;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                rc = err_set_errno(e, ERR_IO, errno, "write the copy of %s", src);
            else
                off += w;
        }
    }
    free(buf);
    return rc;
}

enum err_code blob_tmp_copy(struct blob_store *b, const char *src, char *path, size_t len,
                            struct err *e)
{
    enum err_code rc = ERR_OK;
    struct stat st;
    int in = -1, out = -1;

    path[0] = '\0';
    in = open(src, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (in < 0)
        return err_set_errno(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, errno, "open %s", src);
    if (fstat(in, &st) != 0) {
        rc = err_set_errno(e, ERR_IO, errno, "stat %s", src);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_NOT_REGULAR_FILE, "%s is not a regular file", src);
        goto out;
    }
    rc = blob__tmp_create(b, &out, path, len, e);
    if (rc != ERR_OK)
        goto out;
    if (ioctl(out, FICLONE, in) == 0) /* a reflink: no bytes copied */
        goto out;
    rc = blob_copy_fd(in, out, src, e);
out:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (rc != ERR_OK && path[0] != '\0') {
        unlink(path);
        path[0] = '\0';
    }
    return rc;
}
