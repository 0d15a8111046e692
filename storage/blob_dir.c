/* blob_dir.c -- folder uploads: a tar body extracted into a tmp folder,
 * then committed by one rename. See blob_dir.h.
 *
 * Every file and folder is created relative to a descriptor of the tmp
 * folder (openat, mkdirat) and every folder on the way is opened with
 * O_DIRECTORY | O_NOFOLLOW, so whatever the names (the parser has refused
 * "..", absolute names and links already) nothing is written outside the
 * tmp folder. Files are created O_EXCL: a duplicate name fails.
 *
 * The tar is read twice: once through the parser alone (every structural
 * and hostile check, the member and size limits: a refused stream writes
 * nothing), then again to write the files; the file system is synced once
 * at the end (syncfs), not per file, so many small files stay cheap.
 *
 * THREAD SAFETY: a folder upload is one thread's at a time.
 */
#define _GNU_SOURCE /* syncfs */
#include "storage/blob_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/blob_int.h"

#define BLOB_DIR_CHUNK    (1u << 20) /* bytes read from the tar at a time */
#define BLOB_DIR_RM_DEPTH 64
#define BLOB_DIR_ROOT_MAX (TAR_DEPTH_MAX + 1)

struct blob_dir {
    struct blob_store *b;     /* borrowed */
    char tmp[BLOB_PATH_MAX];  /* the tmp folder */
    char root[BLOB_PATH_MAX]; /* blob_dir_root's answer, "" before */
    int root_is_file;
    int owns_tmp;                /* 1 while `tmp` is this upload's */
    int committed;               /* 1 once the root was moved */
    int extracted;               /* 1 once blob_dir_extract_tar ran */
    int dirfd;                   /* the tmp folder during extraction, else -1 */
    int fd;                      /* the file being written, else -1 */
    char name[TAR_NAME_MAX + 1]; /* its name, for messages */
    uint64_t bytes;              /* bytes of files written */
};

enum err_code blob_dir_create(struct blob_store *b, struct blob_dir **out, struct err *e)
{
    struct blob_dir *d = NULL;
    int n;

    *out = NULL;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return err_set(e, ERR_NOMEM, "folder upload: out of memory");
    d->b = b;
    d->dirfd = -1;
    d->fd = -1;
    n = snprintf(d->tmp, sizeof(d->tmp), "%s/upload-%s-%ld-XXXXXX", b->tmp, b->host,
                 (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(d->tmp)) {
        free(d);
        return err_set(e, ERR_TOOBIG, "tmp path does not fit in %d bytes", BLOB_PATH_MAX);
    }
    if (mkdtemp(d->tmp) == NULL) {
        enum err_code rc = err_set_errno(e, ERR_IO, errno, "create tmp folder in %s", b->tmp);
        free(d);
        return rc;
    }
    d->owns_tmp = 1;
    *out = d;
    return ERR_OK;
}

uint64_t blob_dir_bytes(const struct blob_dir *d)
{
    return d->bytes;
}

/* --- Extraction ------------------------------------------------------------------ */

static enum err_code blob_dir_write_err(int errnum, const char *what, struct err *e)
{
    char buf[ERR_ERRNO_LEN];

    return err_setc(e, ERR_IO, errnum == ENOSPC ? ERR_CAT_INSUFFICIENT_STORAGE : ERR_CAT_IO,
                    "%s: %s", what, err_strerror(errnum, buf, sizeof(buf)));
}

/* Open (creating as needed) the folders of `name` below the tmp folder:
 * all its components, or all but the last (`all` = 0). The innermost
 * folder's descriptor goes to *out (the tmp folder's own if none). */
static enum err_code blob_dir_mkdirs(struct blob_dir *d, char *name, int all, int *out,
                                     struct err *e)
{
    int cur = d->dirfd, next;
    char *p = name, *slash;

    *out = -1;
    for (;;) {
        slash = strchr(p, '/');
        if (slash == NULL && !all)
            break;
        if (slash != NULL)
            *slash = '\0';
        if (mkdirat(cur, p, 0700) != 0 && errno != EEXIST) {
            int errnum = errno;
            if (slash != NULL)
                *slash = '/';
            if (cur != d->dirfd)
                close(cur);
            return blob_dir_write_err(errnum, "create a folder", e);
        }
        next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (slash != NULL)
            *slash = '/';
        if (cur != d->dirfd)
            close(cur);
        if (next < 0)
            return err_setc(e, ERR_FORMAT, ERR_CAT_HOSTILE_ARCHIVE,
                            "tar member '%.200s': a name that is both a file and a folder", name);
        cur = next;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    *out = cur;
    return ERR_OK;
}

static enum err_code blob_dir_member(void *arg, const struct tar_member *m, struct err *e)
{
    struct blob_dir *d = arg;
    const char *base;
    enum err_code rc;
    int parent = -1;

    snprintf(d->name, sizeof(d->name), "%s", m->name);
    rc = blob_dir_mkdirs(d, d->name, m->kind == TAR_KIND_DIR, &parent, e);
    if (rc != ERR_OK || m->kind == TAR_KIND_DIR)
        goto out;
    base = strrchr(d->name, '/');
    base = base != NULL ? base + 1 : d->name;
    d->fd = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (d->fd < 0 && (errno == EEXIST || errno == EISDIR || errno == ELOOP))
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_HOSTILE_ARCHIVE,
                      "tar member '%.200s': a duplicate name", d->name);
    else if (d->fd < 0)
        rc = blob_dir_write_err(errno, "create a file", e);
out:
    if (parent >= 0 && parent != d->dirfd)
        close(parent);
    return rc;
}

static enum err_code blob_dir_data(void *arg, const void *data, size_t len, struct err *e)
{
    struct blob_dir *d = arg;
    const char *p = data;

    while (len > 0) {
        ssize_t w = write(d->fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return blob_dir_write_err(errno, "write", e);
        p += w;
        len -= (size_t)w;
        d->bytes += (uint64_t)w;
    }
    return ERR_OK;
}

static enum err_code blob_dir_end(void *arg, struct err *e)
{
    struct blob_dir *d = arg;
    int rc = close(d->fd);

    d->fd = -1;
    return rc == 0 ? ERR_OK : blob_dir_write_err(errno, "write", e);
}

/* The first pass's member callback: nothing to do (the parser's checks
 * are the point). */
static enum err_code blob_dir_check(void *arg, const struct tar_member *m, struct err *e)
{
    (void)arg;
    (void)m;
    (void)e;
    return ERR_OK;
}

/* Read the tar at `fd` from its start to its end through a new parser
 * reporting to `cb`. */
static enum err_code blob_dir_feed(const struct tar_limits *limits, const struct tar_callbacks *cb,
                                   int fd, struct err *e)
{
    struct tar_parser *p = NULL;
    char *buf = NULL;
    enum err_code rc;
    ssize_t got;

    if (lseek(fd, 0, SEEK_SET) != 0)
        return err_set_errno(e, ERR_IO, errno, "seek the tar");
    rc = tar_parser_new(limits, cb, &p, e);
    if (rc != ERR_OK)
        return rc;
    buf = malloc(BLOB_DIR_CHUNK);
    if (buf == NULL)
        rc = err_set(e, ERR_NOMEM, "out of memory reading a tar");
    while (rc == ERR_OK) {
        got = read(fd, buf, BLOB_DIR_CHUNK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            rc = err_set_errno(e, ERR_IO, errno, "read the tar");
        else if (got == 0)
            break;
        else
            rc = tar_push(p, buf, (size_t)got, e);
    }
    if (rc == ERR_OK)
        rc = tar_finish(p, e);
    free(buf);
    tar_parser_free(p);
    return rc;
}

enum err_code blob_dir_extract_tar(struct blob_dir *d, const char *tar_path,
                                   const struct tar_limits *limits, struct err *e)
{
    struct tar_callbacks check = {.member = blob_dir_check, .arg = d};
    struct tar_callbacks write = {
        .member = blob_dir_member, .data = blob_dir_data, .end = blob_dir_end, .arg = d};
    enum err_code rc = ERR_OK;
    int fd = -1;

    if (d->extracted || !d->owns_tmp)
        return err_set(e, ERR_INVAL, "folder upload: extracted already");
    d->extracted = 1;
    fd = open(tar_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = err_set_errno(e, ERR_IO, errno, "open the tar");
        goto out;
    }
    d->dirfd = open(d->tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d->dirfd < 0) {
        rc = err_set_errno(e, ERR_IO, errno, "open %s", d->tmp);
        goto out;
    }
    /* the whole stream first: a refused one writes nothing */
    rc = blob_dir_feed(limits, &check, fd, e);
    if (rc == ERR_OK)
        rc = blob_dir_feed(limits, &write, fd, e);
    if (rc == ERR_OK && syncfs(d->dirfd) != 0) /* one sync for every file */
        rc = blob_dir_write_err(errno, "sync", e);
out:
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    if (d->dirfd >= 0)
        close(d->dirfd);
    d->dirfd = -1;
    if (fd >= 0)
        close(fd);
    return rc;
}

/* --- Root, commit, abort ----------------------------------------------------------- */

/* The one entry of folder `path` into `name` (NAME_MAX + 1 bytes) and its
 * mode; *n: 0, 1 or 2 (two or more). */
static enum err_code blob_dir_only(const char *path, char *name, mode_t *mode, int *n,
                                   struct err *e)
{
    struct dirent *de;
    struct stat st;
    DIR *dir = opendir(path);

    *n = 0;
    if (dir == NULL)
        return err_set_errno(e, ERR_IO, errno, "open %s", path);
    while (*n < 2 && (de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (++*n == 1) {
            snprintf(name, NAME_MAX + 1, "%s", de->d_name);
            *mode = fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_mode : 0;
        }
    }
    closedir(dir);
    return ERR_OK;
}

enum err_code blob_dir_root(struct blob_dir *d, const char **path, int *is_file, struct err *e)
{
    char cur[BLOB_PATH_MAX], name[NAME_MAX + 1];
    enum err_code rc;
    mode_t mode = 0;
    int n = 0, len;

    *path = NULL;
    *is_file = 0;
    if (!d->owns_tmp || d->committed)
        return err_set(e, ERR_INVAL, "folder upload: no folder");
    snprintf(cur, sizeof(cur), "%s", d->tmp);
    for (int depth = 0; depth <= BLOB_DIR_ROOT_MAX; depth++) {
        rc = blob_dir_only(cur, name, &mode, &n, e);
        if (rc != ERR_OK)
            return rc;
        if (n != 1 || !(S_ISDIR(mode) || S_ISREG(mode)))
            break;
        len = snprintf(d->root, sizeof(d->root), "%s/%s", cur, name);
        if (len < 0 || (size_t)len >= sizeof(d->root))
            return err_set(e, ERR_TOOBIG, "folder upload: path too long");
        if (S_ISREG(mode)) {
            *is_file = d->root_is_file = 1;
            *path = d->root;
            return ERR_OK;
        }
        memcpy(cur, d->root, sizeof(cur));
    }
    if (n == 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_EMPTY_FILE, "the tar holds no files");
    snprintf(d->root, sizeof(d->root), "%s", cur);
    *path = d->root;
    return ERR_OK;
}

enum err_code blob_dir_commit(struct blob_dir *d, const char *sha256_hex,
                              struct blob_committed *out, struct err *e)
{
    struct blob_committed c = {0};
    enum err_code rc;
    int moved = 0;

    if (d->root[0] == '\0' || d->committed)
        return err_set(e, ERR_INVAL, "folder upload: no root, or committed already");
    rc = blob__commit_tmp(d->b, d->root, sha256_hex, &c.existed, &moved, e);
    if (moved || c.existed)
        d->committed = 1;
    if (moved && strcmp(d->root, d->tmp) == 0)
        d->owns_tmp = 0; /* the tmp folder itself is the blob now */
    if (rc != ERR_OK)
        return rc;
    snprintf(c.sha256, sizeof(c.sha256), "%s", sha256_hex);
    c.size = d->bytes;
    rc = blob_path(d->b, sha256_hex, c.path, sizeof(c.path), e);
    if (rc == ERR_OK && out != NULL)
        *out = c;
    return rc;
}

void blob_dir_abort(struct blob_dir *d)
{
    if (d == NULL)
        return;
    if (d->fd >= 0)
        close(d->fd);
    if (d->dirfd >= 0)
        close(d->dirfd);
    if (d->owns_tmp)
        (void)blob__rm_tree(AT_FDCWD, d->tmp, NULL);
    free(d);
}

/* --- Removal -------------------------------------------------------------------- */

static enum err_code blob_rm_at(int dirfd, const char *name, int depth, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct dirent *de;
    struct stat st;
    DIR *dir = NULL;
    int fd;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? ERR_OK : err_set_errno(e, ERR_IO, errno, "stat %s", name);
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT
                   ? ERR_OK
                   : err_set_errno(e, ERR_IO, errno, "remove %s", name);
    if (depth >= BLOB_DIR_RM_DEPTH)
        return err_set(e, ERR_IO, "remove %s: folders nested too deep", name);
    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        dir = fdopendir(fd);
    if (dir == NULL) {
        rc = err_set_errno(e, ERR_IO, errno, "open %s", name);
        if (fd >= 0)
            close(fd);
        return rc;
    }
    while (rc == ERR_OK && (de = readdir(dir)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            rc = blob_rm_at(fd, de->d_name, depth + 1, e);
    closedir(dir);
    if (rc == ERR_OK && unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        rc = err_set_errno(e, ERR_IO, errno, "remove %s", name);
    return rc;
}

enum err_code blob__rm_tree(int dirfd, const char *name, struct err *e)
{
    return blob_rm_at(dirfd, name, 0, e);
}
