/* blob.c -- content-addressed checkpoint files. See blob.h.
 *
 * A commit is: fsync(tmp file), mkdir objects/<sha[0:2]> (fsync objects/ if
 * it was new), rename(tmp, objects/<sha[0:2]>/<sha>), fsync the fan-out
 * directory. rename(2) within one filesystem is atomic, so a reader sees no
 * blob or the whole blob; after the directory fsync the name survives power
 * loss. Two commits of the same hash race harmlessly: both files hold the
 * same bytes and the last rename wins.
 *
 * THREAD SAFETY: the struct is immutable after blob_store_open; every
 * function is reentrant.
 */
#include "storage/blob.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

struct blob_store {
    char *dir;     /* owned: the store directory */
    char *tmp;     /* owned: <dir>/tmp */
    char *objects; /* owned: <dir>/objects */
};

static int is_hex64(const char *s)
{
    size_t i;

    if (s == NULL)
        return 0;
    for (i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return s[64] == '\0';
}

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
    if (b == NULL || (b->dir = strdup(dir)) == NULL || (b->tmp = path_join(dir, "tmp")) == NULL ||
        (b->objects = path_join(dir, "objects")) == NULL) {
        rc = err_set(e, ERR_NOMEM, "blob store: out of memory");
        goto out;
    }
    if ((rc = ensure_dir(b->dir, &created, e)) != ERR_OK ||
        (rc = ensure_dir(b->tmp, &created, e)) != ERR_OK ||
        (rc = ensure_dir(b->objects, &created, e)) != ERR_OK)
        goto out;
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

enum err_code blob_tmp_create(struct blob_store *b, int *fd, char *path, size_t len, struct err *e)
{
    int n = snprintf(path, len, "%s/upload-XXXXXX", b->tmp);
    int f;

    *fd = -1;
    if (n < 0 || (size_t)n >= len)
        return err_set(e, ERR_TOOBIG, "tmp path does not fit in %zu bytes", len);
    f = mkstemp(path); /* O_CREAT | O_EXCL, mode 0600 */
    if (f < 0)
        return err_set_errno(e, ERR_IO, errno, "create tmp file in %s", b->tmp);
    *fd = f;
    return ERR_OK;
}

enum err_code blob_commit(struct blob_store *b, const char *tmp_path, const char *sha256_hex,
                          int *existed, struct err *e)
{
    char fan[PATH_MAX], dst[PATH_MAX];
    enum err_code rc;
    struct stat sb;
    int created = 0;

    if (existed != NULL)
        *existed = 0;
    if (!is_hex64(sha256_hex))
        return err_set(e, ERR_INVAL, "blob hash is not 64 lower-case hex digits");
    if (tmp_path == NULL || lstat(tmp_path, &sb) != 0)
        return err_set_errno(e, ERR_IO, errno, "commit: tmp file %s", tmp_path ? tmp_path : "");
    if (!S_ISREG(sb.st_mode))
        return err_set(e, ERR_IO, "commit: %s is not a regular file", tmp_path);
    if ((rc = blob_path(b, sha256_hex, dst, sizeof dst, e)) != ERR_OK)
        return rc;
    memcpy(fan, dst, sizeof fan);
    *strrchr(fan, '/') = '\0'; /* objects/<sha[0:2]> */
    if (stat(dst, &sb) == 0 && S_ISREG(sb.st_mode)) {
        if (existed != NULL)
            *existed = 1;
        if (unlink(tmp_path) != 0)
            return err_set_errno(e, ERR_IO, errno, "remove %s", tmp_path);
        return ERR_OK;
    }
    if ((rc = fsync_path(tmp_path, 0, e)) != ERR_OK ||
        (rc = ensure_dir(fan, &created, e)) != ERR_OK)
        return rc;
    if (created && (rc = fsync_path(b->objects, 1, e)) != ERR_OK)
        return rc;
    if (rename(tmp_path, dst) != 0)
        return err_set_errno(e, ERR_IO, errno, "rename %s to %s", tmp_path, dst);
    return fsync_path(fan, 1, e);
}

enum err_code blob_remove(struct blob_store *b, const char *sha256_hex, int *removed, struct err *e)
{
    char dst[PATH_MAX];
    enum err_code rc;

    if (removed != NULL)
        *removed = 0;
    if ((rc = blob_path(b, sha256_hex, dst, sizeof dst, e)) != ERR_OK)
        return rc;
    if (unlink(dst) != 0)
        return errno == ENOENT ? ERR_OK : err_set_errno(e, ERR_IO, errno, "remove %s", dst);
    if (removed != NULL)
        *removed = 1;
    return ERR_OK;
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
        if (lstat(path, &sb) != 0 || S_ISDIR(sb.st_mode))
            continue;
        if (difftime(now, sb.st_mtime) < max_age_s)
            continue;
        if (unlink(path) == 0)
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

    if (!is_hex64(sha256_hex))
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
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

enum err_code blob_free_bytes(const struct blob_store *b, uint64_t *out, struct err *e)
{
    struct statvfs v;

    if (statvfs(b->dir, &v) != 0)
        return err_set_errno(e, ERR_IO, errno, "statvfs %s", b->dir);
    *out = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
    return ERR_OK;
}
