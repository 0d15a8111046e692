/* ckpt_id.c -- see ckpt_id.h. */
#include "core/formats/ckpt_id.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/formats/rfile.h"
#include "core/formats/shards.h"

#define CKPT_ID_CHUNK      (1u << 20)
#define CKPT_ID_INDEX_NAME "model.safetensors.index.json"
#define CKPT_ID_TREE_FILES 100000 /* files of one folder checkpoint */
#define CKPT_ID_TREE_DEPTH 32     /* folder nesting of one folder checkpoint */

/* What a non-regular file is, for messages. */
static const char *ckpt_id_kind(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    if (S_ISDIR(m))
        return "a folder";
    return "not a regular file";
}

static enum err_code ckpt_id_not_regular(const char *path, mode_t m, struct err *e)
{
    return err_setc(e, ERR_FORMAT, ERR_CAT_NOT_REGULAR_FILE,
                    "%s is %s: only regular files are read", path, ckpt_id_kind(m));
}

/* SHA-256 (hex) and length of the regular file open at `fd`, read to EOF. */
static enum err_code ckpt_id_hash_fd(int fd, const char *path, char hex[THASH_HEX_LEN],
                                     uint64_t *size, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct thash h = {0};
    unsigned char d[THASH_DIGEST_LEN];
    char *buf = NULL;
    ssize_t got;

    *size = 0;
    buf = malloc(CKPT_ID_CHUNK);
    if (buf == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory hashing %s", path);
        goto out;
    }
    rc = thash_init(&h, e);
    while (rc == ERR_OK) {
        got = read(fd, buf, CKPT_ID_CHUNK);
        if (got == 0)
            break;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = err_set_errno(e, ERR_IO, errno, "read %s", path);
            break;
        }
        *size += (uint64_t)got;
        rc = thash_update(&h, buf, (size_t)got, e);
    }
    if (rc == ERR_OK)
        rc = thash_final(&h, d, e);
    if (rc == ERR_OK)
        thash_hex(d, hex);
out:
    thash_free(&h);
    free(buf);
    return rc;
}

/* The SHA-256 of the regular file `path`; anything else is refused. */
static enum err_code ckpt_id_file(const char *path, char hex[THASH_HEX_LEN], uint64_t *size,
                                  struct err *e)
{
    enum err_code rc;
    struct stat st;
    int fd = -1;

    *size = 0;
    rc = rfile_open_stat(path, &fd, &st, e);
    if (rc == ERR_OK && !S_ISREG(st.st_mode))
        rc = ckpt_id_not_regular(path, st.st_mode, e);
    if (rc == ERR_OK)
        rc = ckpt_id_hash_fd(fd, path, hex, size, e);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Add the regular file `path` to the folder digest `h` under `name`: the
 * name with its NUL, the file's SHA-256 (hex) and a newline. Its length is
 * added to *size. */
static enum err_code ckpt_id_add_file(struct thash *h, const char *name, const char *path,
                                      uint64_t *size, struct err *e)
{
    char fh[THASH_HEX_LEN];
    uint64_t n = 0;
    enum err_code rc;

    rc = ckpt_id_file(path, fh, &n, e);
    if (rc == ERR_OK)
        rc = thash_update(h, name, strlen(name) + 1, e);
    if (rc == ERR_OK)
        rc = thash_update(h, fh, THASH_HEX_LEN - 1, e);
    if (rc == ERR_OK)
        rc = thash_update(h, "\n", 1, e);
    *size += n;
    return rc;
}

/* Finish the folder digest `h` into `hex` unless `rc` is an error; `h` is
 * freed either way. Returns `rc` or thash_final's error. */
static enum err_code ckpt_id_digest_end(struct thash *h, enum err_code rc, char hex[THASH_HEX_LEN],
                                        struct err *e)
{
    unsigned char d[THASH_DIGEST_LEN];

    if (rc == ERR_OK)
        rc = thash_final(h, d, e);
    if (rc == ERR_OK)
        thash_hex(d, hex);
    thash_free(h);
    return rc;
}

/* A folder's index, if present, must be a regular file: shards_list()
 * reads it (stat does not open, so it cannot block). */
static enum err_code ckpt_id_folder_index(const char *dir, struct err *e)
{
    size_t n = strlen(dir) + sizeof(CKPT_ID_INDEX_NAME) + 1;
    char *index = malloc(n);
    struct stat st;
    enum err_code rc = ERR_OK;

    if (index == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    (void)snprintf(index, n, "%s/%s", dir, CKPT_ID_INDEX_NAME);
    if (stat(index, &st) == 0 && !S_ISREG(st.st_mode))
        rc = ckpt_id_not_regular(index, st.st_mode, e);
    free(index);
    return rc;
}

/* The identity of the index or folder at `path` (rule in the header). */
static enum err_code ckpt_id_shards(const char *path, int is_dir, const struct ckpt_id_opts *o,
                                    struct ckpt_id *out, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct shards_paths sp = {0};
    struct thash h = {0};

    if (is_dir)
        rc = ckpt_id_folder_index(path, e);
    if (rc == ERR_OK)
        rc = shards_list(path, o->limits, &sp, e);
    if (rc == ERR_OK)
        rc = thash_init(&h, e);
    for (size_t i = 0; i < sp.n && rc == ERR_OK; i++) {
        const char *base = strrchr(sp.paths[i], '/');

        base = base != NULL ? base + 1 : sp.paths[i];
        if (o->check != NULL)
            rc = o->check(o->check_arg, sp.paths[i], e);
        if (rc == ERR_OK)
            rc = ckpt_id_add_file(&h, base, sp.paths[i], &out->size, e);
    }
    rc = ckpt_id_digest_end(&h, rc, out->sha256, e);
    shards_paths_free(&sp);
    return rc;
}

/* --- Folders of other formats (DCP, PEFT, DeepSpeed): every file ----------- */

struct ckpt_id_names {
    char **v; /* owned: relative names */
    size_t n, cap;
};

static void ckpt_id_names_free(struct ckpt_id_names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static enum err_code ckpt_id_names_add(struct ckpt_id_names *l, const char *name, struct err *e)
{
    if (l->n >= CKPT_ID_TREE_FILES)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "a checkpoint folder with more than %d files", CKPT_ID_TREE_FILES);
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL)
            return err_set(e, ERR_NOMEM, "out of memory listing a folder");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = strdup(name);
    if (l->v[l->n] == NULL)
        return err_set(e, ERR_NOMEM, "out of memory listing a folder");
    l->n++;
    return ERR_OK;
}

/* Add the regular files under `root`/`rel` ("" for root) to `l`, with their
 * names relative to `root`; folders are walked (symbolic links followed,
 * CKPT_ID_TREE_DEPTH deep at most), anything else is not_regular_file. */
static enum err_code ckpt_id_walk(const char *root, const char *rel, int depth,
                                  struct ckpt_id_names *l, struct err *e)
{
    enum err_code rc = ERR_OK;
    char *full = NULL, *sub; /* PATH_MAX each, on the heap: this recurses */
    struct dirent *de;
    struct stat st;
    DIR *d = NULL;

    if (depth > CKPT_ID_TREE_DEPTH)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "%s: folders nested more than %d deep", root, CKPT_ID_TREE_DEPTH);
    full = malloc((size_t)2 * PATH_MAX);
    if (full == NULL)
        return err_set(e, ERR_NOMEM, "out of memory listing a folder");
    sub = full + PATH_MAX;
    if ((size_t)snprintf(full, PATH_MAX, "%s%s%s", root, rel[0] ? "/" : "", rel) >= PATH_MAX) {
        rc = err_set(e, ERR_TOOBIG, "%s: path too long", root);
        goto out;
    }
    d = opendir(full);
    if (d == NULL) {
        rc = err_set_errno(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, errno, "open %s", full);
        goto out;
    }
    while (rc == ERR_OK && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(sub, PATH_MAX, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) >=
            PATH_MAX) {
            rc = err_set(e, ERR_TOOBIG, "%s: path too long", root);
            break;
        }
        if (fstatat(dirfd(d), de->d_name, &st, 0) != 0)
            rc = err_set_errno(e, ERR_IO, errno, "stat %s/%s", root, sub);
        else if (S_ISDIR(st.st_mode))
            rc = ckpt_id_walk(root, sub, depth + 1, l, e);
        else if (S_ISREG(st.st_mode))
            rc = ckpt_id_names_add(l, sub, e);
        else
            rc = ckpt_id_not_regular(sub, st.st_mode, e);
    }
out:
    if (d != NULL)
        closedir(d);
    free(full);
    return rc;
}

static int ckpt_id_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The identity of folder `path` that is not a folder of shards (rule in
 * the header): every regular file under it, by relative name. */
static enum err_code ckpt_id_tree(const char *path, const struct ckpt_id_opts *o,
                                  struct ckpt_id *out, struct err *e)
{
    enum err_code rc;
    struct ckpt_id_names l = {0};
    struct thash h = {0};
    char full[PATH_MAX], real[PATH_MAX];

    rc = ckpt_id_walk(path, "", 0, &l, e);
    if (rc == ERR_OK && l.n > 0)
        qsort(l.v, l.n, sizeof(*l.v), ckpt_id_cmp);
    if (rc == ERR_OK)
        rc = thash_init(&h, e);
    for (size_t i = 0; i < l.n && rc == ERR_OK; i++) {
        if ((size_t)snprintf(full, sizeof(full), "%s/%s", path, l.v[i]) >= sizeof(full))
            rc = err_set(e, ERR_TOOBIG, "%s: path too long", path);
        else if (o->check != NULL && realpath(full, real) == NULL)
            rc = err_set_errno(e, ERR_IO, errno, "resolve %s", full);
        else if (o->check != NULL)
            rc = o->check(o->check_arg, real, e);
        if (rc == ERR_OK)
            rc = ckpt_id_add_file(&h, l.v[i], full, &out->size, e);
    }
    rc = ckpt_id_digest_end(&h, rc, out->sha256, e);
    ckpt_id_names_free(&l);
    return rc;
}

/* 1 if folder `fd` is read as a folder of shards (declared so, or sniffed). */
static int ckpt_id_shard_folder(int fd, enum ckpt_format declared)
{
    enum ckpt_format f = declared;

    if (f == CKPT_FORMAT_UNKNOWN)
        f = ckpt_sniff_dir(fd);
    return f != CKPT_FORMAT_DCP && f != CKPT_FORMAT_PEFT && f != CKPT_FORMAT_DEEPSPEED;
}

enum err_code ckpt_identity(const char *path, const struct ckpt_id_opts *o, struct ckpt_id *out,
                            struct err *e)
{
    static const struct ckpt_id_opts defaults = {.declared = CKPT_FORMAT_UNKNOWN};
    enum err_code rc;
    size_t n = strlen(path);
    struct stat st;
    int fd = -1;

    if (o == NULL)
        o = &defaults;
    memset(out, 0, sizeof(*out));
    rc = rfile_open_stat(path, &fd, &st, e);
    if (rc)
        goto out;
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        rc = ckpt_id_not_regular(path, st.st_mode, e);
        goto out;
    }
    if (S_ISDIR(st.st_mode) && !ckpt_id_shard_folder(fd, o->declared)) {
        close(fd);
        fd = -1;
        rc = ckpt_id_tree(path, o, out, e);
        goto out;
    }
    out->sharded = S_ISDIR(st.st_mode) || o->declared == CKPT_FORMAT_SAFETENSORS_INDEX ||
                   (n > 11 && strcmp(path + n - 11, ".index.json") == 0);
    if (!out->sharded) {
        rc = ckpt_id_hash_fd(fd, path, out->sha256, &out->size, e);
        goto out;
    }
    close(fd);
    fd = -1;
    rc = ckpt_id_shards(path, S_ISDIR(st.st_mode), o, out, e);
out:
    if (fd >= 0)
        close(fd);
    if (rc)
        out->sha256[0] = '\0';
    return rc;
}
