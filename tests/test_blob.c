/* test_blob.c -- storage/blob: the upload object (create, write-and-hash,
 * finish, commit, abort), content-addressed commits, layout, tmp cleanup.
 *
 * Each case works in a fresh directory under /tmp and removes it.
 */
#include "storage/blob.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/formats/thash.h"
#include "tests/check.h"

/* --- Helpers ------------------------------------------------------------------ */

static void rm_tree(const char *path)
{
    struct stat sb;
    DIR *d;

    if (lstat(path, &sb) != 0)
        return;
    if (!S_ISDIR(sb.st_mode)) {
        unlink(path);
        return;
    }
    if ((d = opendir(path)) != NULL) {
        struct dirent *de;
        char sub[1024];

        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            rm_tree(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

/* A new folder test_blob_XXXXXX under `base`. */
static void temp_dir_in(const char *base, char *buf, size_t len)
{
    snprintf(buf, len, "%s/test_blob_XXXXXX", base);
    ERR_ASSERT(mkdtemp(buf) != NULL);
}

static void temp_dir(char *buf, size_t len)
{
    temp_dir_in("/tmp", buf, len);
}

/* A finished upload of `text` into `b` (it still owns its tmp file); the
 * tmp file's path in `path` (may be NULL). */
static struct blob_upload *upload_of(struct blob_store *b, const char *text, char *path, size_t len)
{
    struct blob_upload *u = NULL;
    struct err e = {0};

    ERR_ASSERT(blob_upload_create(b, &u, &e) == ERR_OK);
    ERR_ASSERT(blob_upload_write(u, text, strlen(text), &e) == ERR_OK);
    ERR_ASSERT(blob_upload_finish(u, &e) == ERR_OK);
    if (path != NULL)
        snprintf(path, len, "%s", blob_upload_path(u));
    return u;
}

static long file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static int count_entries(const char *dir)
{
    struct dirent *de;
    DIR *d = opendir(dir);
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* --- Cases ---------------------------------------------------------------------- */

static void test_open_creates_layout(void)
{
    char root[64], dir[128], sub[160];
    struct blob_store *b = NULL;
    struct err e = {0};
    struct stat sb;
    uint64_t avail = 0;

    temp_dir(root, sizeof root);
    snprintf(dir, sizeof dir, "%s/blobs", root); /* does not exist yet */
    CHECK_EQ_INT(blob_store_open(dir, &b, &e), ERR_OK);
    snprintf(sub, sizeof sub, "%s/tmp", dir);
    CHECK(stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode));
    CHECK_STR_EQ(blob_tmp_dir(b), sub);
    snprintf(sub, sizeof sub, "%s/objects", dir);
    CHECK(stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode));
    CHECK_EQ_INT(blob_free_bytes(b, &avail, &e), ERR_OK);
    CHECK(avail > 0);
    blob_store_close(b);
    /* a file where the directory should be */
    snprintf(sub, sizeof sub, "%s/file", root);
    close(open(sub, O_CREAT | O_WRONLY, 0600));
    CHECK_EQ_INT(blob_store_open(sub, &b, &e), ERR_IO);
    CHECK(b == NULL);
    rm_tree(root);
}

/* Bytes are hashed as they arrive, whatever the chunks: SHA-256 of "abc"
 * written as "a", "", "bc" is the FIPS 180-2 test vector; a 1 MiB body in
 * 4 KiB chunks hashes as in one piece. The hash is there only once the
 * upload is finished; no write after that. */
static void test_upload_hashes_as_bytes_arrive(void)
{
    static char big[1 << 20];
    char root[64], want[THASH_HEX_LEN];
    struct blob_store *b = NULL;
    struct blob_upload *u = NULL;
    struct err e = {0};

    temp_dir(root, sizeof root);
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_create(b, &u, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_write(u, "a", 1, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_write(u, "", 0, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_write(u, "bc", 2, &e), ERR_OK);
    CHECK_STR_EQ(blob_upload_sha256(u), ""); /* not finished */
    CHECK_EQ_INT(blob_upload_commit(u, NULL, &e), ERR_INVAL);
    CHECK_EQ_INT(blob_upload_finish(u, &e), ERR_OK);
    CHECK_STR_EQ(blob_upload_sha256(u),
                 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK_EQ_INT(blob_upload_size(u), 3);
    CHECK_EQ_INT(file_size(blob_upload_path(u)), 3);
    CHECK_EQ_INT(blob_upload_write(u, "d", 1, &e), ERR_INVAL);
    CHECK_EQ_INT(blob_upload_finish(u, &e), ERR_OK); /* a second finish changes nothing */
    CHECK_EQ_INT(blob_upload_size(u), 3);
    blob_upload_abort(u);
    u = NULL;
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7 + i / 4096);
    CHECK_EQ_INT(thash_bytes(big, sizeof big, want, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_create(b, &u, &e), ERR_OK);
    for (size_t off = 0; off < sizeof big; off += 4096)
        CHECK_EQ_INT(blob_upload_write(u, big + off, 4096, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_finish(u, &e), ERR_OK);
    CHECK_STR_EQ(blob_upload_sha256(u), want);
    CHECK_EQ_INT(blob_upload_size(u), sizeof big);
    blob_upload_abort(u);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 0);
    blob_store_close(b);
    rm_tree(root);
}

/* The number of threads of this process (/proc/self/task), -1 if unknown. */
static long thread_count(void)
{
    return count_entries("/proc/self/task");
}

/* A body of several times the upload's buffers (BLOB_UPLOAD_BUFS x
 * BLOB_UPLOAD_BUF, so every buffer is reused), written in odd-sized chunks
 * that straddle buffer ends: the file holds exactly the bytes, the hash is
 * that of the whole body, and the upload's threads are gone after finish.
 * A second one aborted mid-body (threads running) leaves no file and no
 * thread. In a store under `base`: on a disk file system the writer uses
 * O_DIRECT but for the last, partial buffer; on tmpfs (/dev/shm) the page
 * cache throughout. */
static void test_upload_large_body_through_the_buffers(const char *base)
{
    size_t len = (BLOB_UPLOAD_BUFS + 1) * BLOB_UPLOAD_BUF + 12345, chunk = 32749;
    unsigned char *body = malloc(len), *back = malloc(len);
    char root[64], want[THASH_HEX_LEN], tmp[512];
    struct blob_store *b = NULL;
    struct blob_upload *u = NULL;
    struct err e = {0};
    long threads0 = thread_count();
    FILE *f;

    ERR_ASSERT(body != NULL && back != NULL);
    for (size_t i = 0; i < len; i++)
        body[i] = (unsigned char)(i * 2654435761u >> 13);
    temp_dir_in(base, root, sizeof root);
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    CHECK_EQ_INT(thash_bytes(body, len, want, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_create(b, &u, &e), ERR_OK);
    for (size_t off = 0; off < len; off += chunk)
        CHECK_EQ_INT(blob_upload_write(u, body + off, len - off < chunk ? len - off : chunk, &e),
                     ERR_OK);
    CHECK_EQ_INT(blob_upload_finish(u, &e), ERR_OK);
    CHECK_EQ_INT(thread_count(), threads0);
    CHECK_STR_EQ(blob_upload_sha256(u), want);
    CHECK_EQ_INT(blob_upload_size(u), len);
    CHECK_EQ_INT(file_size(blob_upload_path(u)), (long)len);
    f = fopen(blob_upload_path(u), "rb");
    CHECK(f != NULL && fread(back, 1, len, f) == len && memcmp(back, body, len) == 0);
    if (f != NULL)
        fclose(f);
    blob_upload_abort(u);
    CHECK_EQ_INT(blob_upload_create(b, &u, &e), ERR_OK);
    snprintf(tmp, sizeof tmp, "%s", blob_upload_path(u));
    CHECK_EQ_INT(blob_upload_write(u, body, 3 * BLOB_UPLOAD_BUF + 1, &e), ERR_OK);
    CHECK_EQ_INT(thread_count(), threads0 + 2); /* the writer and the hasher */
    blob_upload_abort(u);
    CHECK_EQ_INT(file_size(tmp), -1);
    CHECK_EQ_INT(thread_count(), threads0);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 0);
    blob_store_close(b);
    rm_tree(root);
    free(body);
    free(back);
}

/* create -> write -> finish -> commit: the tmp file (upload-<host>-<pid>-...
 * in tmp/) is moved, not copied, to <dir>/objects/<sha[0:2]>/<sha>; the
 * commit reports hash, size and that path; the upload then owns no file, a
 * second commit is refused, and an abort after the commit keeps the blob. */
static void test_upload_commit_and_path_layout(void)
{
    static const char body[] = "checkpoint bytes, step 100";
    char root[64], tmp[512], path[512], want[512], sha[THASH_HEX_LEN], got[64], me[32];
    struct blob_store *b = NULL;
    struct blob_upload *u = NULL;
    struct blob_committed c;
    struct err e = {0};
    FILE *f;

    temp_dir(root, sizeof root);
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    CHECK_EQ_INT(thash_bytes(body, strlen(body), sha, &e), ERR_OK);
    CHECK_EQ_INT(blob_exists(b, sha), 0);
    u = upload_of(b, body, tmp, sizeof tmp);
    CHECK(strncmp(tmp, blob_tmp_dir(b), strlen(blob_tmp_dir(b))) == 0);
    snprintf(me, sizeof me, "-%ld-", (long)getpid());
    CHECK(strncmp(strrchr(tmp, '/'), "/upload-", 8) == 0 && strstr(tmp, me) != NULL);
    memset(&c, 0x55, sizeof c);
    CHECK_EQ_INT(blob_upload_commit(u, &c, &e), ERR_OK);
    CHECK_STR_EQ(c.sha256, sha);
    CHECK_EQ_INT(c.size, strlen(body));
    CHECK_EQ_INT(c.existed, 0);
    snprintf(want, sizeof want, "%s/objects/%.2s/%s", root, sha, sha);
    CHECK_STR_EQ(c.path, want);
    CHECK_EQ_INT(file_size(tmp), -1); /* moved, not copied */
    CHECK(blob_upload_path(u) == NULL);
    CHECK_EQ_INT(blob_upload_commit(u, NULL, &e), ERR_INVAL);
    blob_upload_abort(u); /* after the commit: the blob stays */
    CHECK_EQ_INT(blob_exists(b, sha), 1);
    CHECK_EQ_INT(file_size(want), (long)strlen(body));
    CHECK_EQ_INT(blob_path(b, sha, path, sizeof path, &e), ERR_OK);
    CHECK_STR_EQ(path, want);
    f = fopen(path, "rb");
    CHECK(f != NULL);
    if (f != NULL) {
        size_t n = fread(got, 1, sizeof got - 1, f);

        got[n] = '\0';
        fclose(f);
        CHECK_STR_EQ(got, body);
    }
    CHECK_EQ_INT(blob_path(b, sha, path, 20, &e), ERR_TOOBIG);
    CHECK_EQ_INT(blob_path(b, "ABCDEF", path, sizeof path, &e), ERR_INVAL);
    CHECK_EQ_INT(blob_exists(b, "../../etc/passwd"), 0);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 0);
    blob_store_close(b);
    rm_tree(root);
}

/* An upload that is not committed leaves nothing: abort right after
 * create, after writing, or after finishing removes its tmp file.
 * blob_upload_abort(NULL) is a no-op. */
static void test_upload_abort_removes_tmp(void)
{
    char root[64], tmp[512];
    struct blob_store *b = NULL;
    struct blob_upload *u = NULL;
    struct err e = {0};

    temp_dir(root, sizeof root);
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_create(b, &u, &e), ERR_OK);
    snprintf(tmp, sizeof tmp, "%s", blob_upload_path(u));
    CHECK_EQ_INT(file_size(tmp), 0);
    blob_upload_abort(u);
    CHECK_EQ_INT(file_size(tmp), -1);
    CHECK_EQ_INT(blob_upload_create(b, &u, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_write(u, "partial", 7, &e), ERR_OK);
    snprintf(tmp, sizeof tmp, "%s", blob_upload_path(u));
    CHECK_EQ_INT(file_size(tmp), 0); /* the bytes wait in the fill buffer */
    blob_upload_abort(u);            /* mid-body */
    CHECK_EQ_INT(file_size(tmp), -1);
    u = upload_of(b, "refused by validation", tmp, sizeof tmp);
    CHECK_EQ_INT(file_size(tmp), 21);
    blob_upload_abort(u); /* finished, never committed */
    CHECK_EQ_INT(file_size(tmp), -1);
    blob_upload_abort(NULL);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 0);
    CHECK_EQ_INT(count_entries(root), 2); /* tmp/ and objects/, no blob */
    blob_store_close(b);
    rm_tree(root);
}

/* The checks after a failed write: ERR_IO with the system's text for
 * EFBIG and no category, the tmp file gone at once (not at abort), no more
 * writes, finish or commit. */
static void upload_failed_checks(struct blob_store *b, struct blob_upload *u, const struct err *e)
{
    struct err e2 = {0};

    CHECK(e->category == ERR_CAT_NONE); /* not a full disk: ENOSPC is insufficient_storage */
    CHECK_STR_EQ(e->msg, "File too large");
    CHECK(blob_upload_path(u) == NULL);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 0);
    CHECK_EQ_INT(blob_upload_write(u, "x", 1, &e2), ERR_INVAL);
    CHECK_EQ_INT(blob_upload_finish(u, &e2), ERR_INVAL);
    CHECK_EQ_INT(blob_upload_commit(u, NULL, &e2), ERR_INVAL);
    blob_upload_abort(u);
}

/* In a child limited to 4096-byte files (RLIMIT_FSIZE, SIGXFSZ ignored,
 * so a write past it fails with EFBIG). A small body waits in the fill
 * buffer, so its failed write shows at finish. A large one fails in the
 * writer thread while more bytes arrive; the write that published the
 * buffer (when the thread failed at once) or a later one reports it, at
 * the latest once every buffer is in use (so within BLOB_UPLOAD_BUFS + 2
 * buffers); or, if the failing buffer is the last, finish reports it.
 * Exit status: failed checks. */
static void upload_failed_write_child(struct blob_store *b)
{
    static char chunk[1 << 20];
    struct rlimit rl = {4096, 2 * BLOB_UPLOAD_BUF}; /* soft limit 4096, raised later */
    struct blob_upload *u = NULL;
    struct err e = {0};
    enum err_code rc = ERR_OK;
    size_t sent = 0;

    signal(SIGXFSZ, SIG_IGN);
    ERR_ASSERT(setrlimit(RLIMIT_FSIZE, &rl) == 0);
    CHECK_EQ_INT(blob_upload_create(b, &u, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_write(u, chunk, 4000, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_write(u, chunk, 8192, &e), ERR_OK); /* buffered */
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 1);
    CHECK_EQ_INT(blob_upload_finish(u, &e), ERR_IO);
    upload_failed_checks(b, u, &e);
    CHECK_EQ_INT(blob_upload_create(b, &u, &e), ERR_OK);
    while (rc == ERR_OK && sent < (BLOB_UPLOAD_BUFS + 2) * BLOB_UPLOAD_BUF) {
        rc = blob_upload_write(u, chunk, sizeof chunk, &e);
        sent += sizeof chunk;
    }
    CHECK_EQ_INT(rc, ERR_IO);
    /* the error comes from writing a full buffer: reported by the write that
       published it (if the writer thread failed at once) or a later one */
    CHECK(sent >= BLOB_UPLOAD_BUF);
    upload_failed_checks(b, u, &e);
    /* a limit of 1.25 buffers: the first full buffer is written, the
       second, partial one (published by finish) fails in the writer */
    rl.rlim_cur = BLOB_UPLOAD_BUF + BLOB_UPLOAD_BUF / 4;
    ERR_ASSERT(setrlimit(RLIMIT_FSIZE, &rl) == 0);
    CHECK_EQ_INT(blob_upload_create(b, &u, &e), ERR_OK);
    for (size_t k = 0; k < BLOB_UPLOAD_BUF + BLOB_UPLOAD_BUF / 2; k += sizeof chunk)
        CHECK_EQ_INT(blob_upload_write(u, chunk, sizeof chunk, &e), ERR_OK);
    CHECK_EQ_INT(blob_upload_finish(u, &e), ERR_IO);
    upload_failed_checks(b, u, &e);
    _exit(check_n_failed > 100 ? 100 : check_n_failed);
}

/* A failed write leaves nothing on disk, and abort afterwards is safe. */
static void test_upload_failed_write_leaves_nothing(void)
{
    char root[64], objects[128];
    struct blob_store *b = NULL;
    struct err e = {0};
    int status = -1;
    pid_t p;

    temp_dir(root, sizeof root);
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    fflush(NULL);
    p = fork();
    ERR_ASSERT(p >= 0);
    if (p == 0) {
        alarm(60); /* never outlives a broken test */
        upload_failed_write_child(b);
    }
    CHECK(waitpid(p, &status, 0) == p);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 0);
    snprintf(objects, sizeof objects, "%s/objects", root);
    CHECK_EQ_INT(count_entries(objects), 0);
    blob_store_close(b);
    rm_tree(root);
}

/* Two uploads of the same bytes: distinct tmp files; the second commit
 * finds the blob, keeps the first one's file and removes its own. */
static void test_duplicate_commit_keeps_first(void)
{
    static const char body[] = "same content twice";
    char root[64], t1[512], t2[512], sha[THASH_HEX_LEN];
    struct blob_store *b = NULL;
    struct blob_upload *u1, *u2;
    struct blob_committed c1, c2;
    struct err e = {0};
    struct stat s1, s2;

    temp_dir(root, sizeof root);
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    CHECK_EQ_INT(thash_bytes(body, strlen(body), sha, &e), ERR_OK);
    u1 = upload_of(b, body, t1, sizeof t1);
    u2 = upload_of(b, body, t2, sizeof t2);
    CHECK(strcmp(t1, t2) != 0); /* O_EXCL names never collide */
    CHECK_EQ_INT(blob_upload_commit(u1, &c1, &e), ERR_OK);
    CHECK_EQ_INT(c1.existed, 0);
    CHECK_EQ_INT(stat(c1.path, &s1), 0);
    CHECK_EQ_INT(blob_upload_commit(u2, &c2, &e), ERR_OK);
    CHECK_EQ_INT(c2.existed, 1);
    CHECK_STR_EQ(c2.path, c1.path);
    CHECK_STR_EQ(c2.sha256, sha);
    CHECK_EQ_INT(file_size(t2), -1); /* the temp file is removed */
    CHECK(blob_upload_path(u2) == NULL);
    CHECK_EQ_INT(stat(c1.path, &s2), 0);
    CHECK_EQ_INT(s2.st_ino, s1.st_ino); /* the first blob is kept */
    blob_upload_abort(u1);
    blob_upload_abort(u2);
    CHECK_EQ_INT(blob_exists(b, sha), 1);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 0);
    blob_store_close(b);
    rm_tree(root);
}

/* A commit that cannot move the file (someone removed the tmp file) is
 * ERR_IO and stores nothing; the upload keeps its claim, so an abort is
 * still the one clean-up (of nothing here). */
static void test_commit_of_vanished_tmp_fails(void)
{
    char root[64], tmp[512];
    struct blob_store *b = NULL;
    struct blob_upload *u;
    struct err e = {0};

    temp_dir(root, sizeof root);
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    u = upload_of(b, "x", tmp, sizeof tmp);
    CHECK_EQ_INT(unlink(tmp), 0);
    CHECK_EQ_INT(blob_upload_commit(u, NULL, &e), ERR_IO);
    CHECK_EQ_INT(blob_exists(b, blob_upload_sha256(u)), 0);
    CHECK_STR_EQ(blob_upload_path(u), tmp);
    blob_upload_abort(u);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 0);
    blob_store_close(b);
    rm_tree(root);
}

static void test_stale_tmp_cleanup(void)
{
    char root[64], old_f[512], new_f[512];
    struct blob_store *b = NULL;
    struct blob_upload *u_old, *u_new;
    struct timeval tv[2];
    struct err e = {0};
    int64_t n = -1;

    temp_dir(root, sizeof root);
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    u_old = upload_of(b, "interrupted upload", old_f, sizeof old_f);
    u_new = upload_of(b, "upload in progress", new_f, sizeof new_f);
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= (time_t)2 * BLOB_TMP_STALE_S;
    tv[1] = tv[0];
    CHECK_EQ_INT(utimes(old_f, tv), 0);
    blob_store_close(b);
    /* reopen ("restart"): only the stale file goes */
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    CHECK_EQ_INT(file_size(old_f), -1);
    CHECK_EQ_INT(file_size(new_f), 18);
    CHECK_EQ_INT(blob_tmp_cleanup(b, BLOB_TMP_STALE_S, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(blob_tmp_cleanup(b, 0, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 0);
    blob_upload_abort(u_old); /* their files are gone already */
    blob_upload_abort(u_new);
    blob_store_close(b);
    rm_tree(root);
}

/* Create an empty file `name` in the tmp directory of `b`, last modified
 * `age_s` seconds ago; its path in `path`. */
static void touch_tmp(struct blob_store *b, const char *name, long age_s, char *path, size_t len)
{
    struct timeval tv[2];
    int fd;

    snprintf(path, len, "%s/%s", blob_tmp_dir(b), name);
    fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
    ERR_ASSERT(fd >= 0);
    close(fd);
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= (time_t)age_s;
    tv[1] = tv[0];
    ERR_ASSERT(utimes(path, tv) == 0);
}

/* The name of tmp file `own` (upload-<host>-<pid>-XXXXXX, written by this
 * process) with `pid` in place of this process's pid, into `out`. */
static void name_with_pid(const char *own, long pid, char *out, size_t len)
{
    char host_part[512];
    const char *base = strrchr(own, '/') + 1, *suffix = strrchr(base, '-');
    const char *pid_dash;

    snprintf(host_part, sizeof host_part, "%.*s", (int)(suffix - base), base);
    pid_dash = strrchr(host_part, '-'); /* host_part is upload-<host>-<pid> */
    ERR_ASSERT(pid_dash != NULL && strtol(pid_dash + 1, NULL, 10) == (long)getpid());
    snprintf(out, len, "%.*s-%ld%s", (int)(pid_dash - host_part), host_part, pid, suffix);
}

/* A pid that was just used and is now free (a child that exited, reaped). */
static long dead_pid(void)
{
    pid_t p = fork();

    ERR_ASSERT(p >= 0);
    if (p == 0)
        _exit(0);
    ERR_ASSERT(waitpid(p, NULL, 0) == p);
    return (long)p;
}

/* Tmp files name host and pid: at open (a restart), the files of this host
 * whose process is gone are removed at once (a kill -9 during an upload
 * left them), those of live processes stay, and files of other hosts (a
 * replica over a shared folder) or of the old upload-XXXXXX form go only
 * after BLOB_TMP_STALE_S. */
static void test_tmp_of_dead_process_removed_at_open(void)
{
    char root[64], own[512], name[512], live_f[512], dead_f[512], other_f[512], other_old_f[512];
    char old_form_f[512], old_form_old_f[512];
    struct blob_store *b = NULL;
    struct blob_upload *u_own;
    struct err e = {0};
    pid_t live;
    int64_t n = -1;
    char me[32];

    temp_dir(root, sizeof root);
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    u_own = upload_of(b, "upload of this process", own, sizeof own);
    snprintf(me, sizeof me, "-%ld-", (long)getpid());
    CHECK(strncmp(strrchr(own, '/'), "/upload-", 8) == 0 && strstr(own, me) != NULL);
    live = fork(); /* a live process of this host: pause()s until killed */
    ERR_ASSERT(live >= 0);
    if (live == 0) {
        alarm(60); /* never outlives a broken test */
        pause();
        _exit(0);
    }
    name_with_pid(own, (long)live, name, sizeof name);
    touch_tmp(b, name, 0, live_f, sizeof live_f);
    name_with_pid(own, dead_pid(), name, sizeof name);
    touch_tmp(b, name, 0, dead_f, sizeof dead_f);
    touch_tmp(b, "upload-other.host-1-aB3dE9", 0, other_f, sizeof other_f);
    touch_tmp(b, "upload-other.host-2-aB3dE9", 2L * BLOB_TMP_STALE_S, other_old_f,
              sizeof other_old_f);
    touch_tmp(b, "upload-Xy12Ab", 0, old_form_f, sizeof old_form_f);
    touch_tmp(b, "upload-Xy12Ac", 2L * BLOB_TMP_STALE_S, old_form_old_f, sizeof old_form_old_f);
    blob_store_close(b);
    /* restart */
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    CHECK_EQ_INT(file_size(dead_f), -1);         /* its process is gone */
    CHECK_EQ_INT(file_size(own), 22);            /* this process: live */
    CHECK_EQ_INT(file_size(live_f), 0);          /* the child: live */
    CHECK_EQ_INT(file_size(other_f), 0);         /* another host, young */
    CHECK_EQ_INT(file_size(other_old_f), -1);    /* another host, past the bound */
    CHECK_EQ_INT(file_size(old_form_f), 0);      /* old form, young */
    CHECK_EQ_INT(file_size(old_form_old_f), -1); /* old form, past the bound */
    /* the child dies: its file goes at the next cleanup */
    kill(live, SIGKILL);
    ERR_ASSERT(waitpid(live, NULL, 0) == live);
    CHECK_EQ_INT(blob_tmp_cleanup(b, BLOB_TMP_STALE_S, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(file_size(live_f), -1);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 3);
    blob_upload_abort(u_own);
    CHECK_EQ_INT(file_size(own), -1);
    blob_store_close(b);
    rm_tree(root);
}

/* blob_tmp_copy: a snapshot of a regular file in tmp/ (named like an
 * upload, so a crash's leftovers are cleaned the same way) with the same
 * bytes; a change to the source afterwards leaves the copy alone; a FIFO is
 * refused without blocking and a missing file is ERR_NOTFOUND; nothing is
 * left behind by a failure. */
static void test_tmp_copy_is_a_snapshot(void)
{
    static const char body[] = "checkpoint bytes of step 200, to be copied";
    char root[64], src[128], fifo[128], copy[512], want[THASH_HEX_LEN], got[THASH_HEX_LEN];
    char buf[128] = "";
    struct blob_store *b = NULL;
    struct err e = {0};
    FILE *f;

    temp_dir(root, sizeof root);
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    snprintf(src, sizeof src, "%s/src.safetensors", root);
    snprintf(fifo, sizeof fifo, "%s/fifo", root);
    f = fopen(src, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs(body, f);
        fclose(f);
    }
    CHECK_EQ_INT(blob_tmp_copy(b, src, copy, sizeof copy, &e), ERR_OK);
    CHECK(strncmp(copy, blob_tmp_dir(b), strlen(blob_tmp_dir(b))) == 0);
    CHECK(strstr(copy, "/upload-") != NULL);
    CHECK(truncate(src, 5) == 0); /* the source shrinks: the copy does not */
    f = fopen(copy, "r");
    CHECK(f != NULL);
    if (f != NULL) {
        CHECK(fgets(buf, sizeof buf, f) != NULL);
        fclose(f);
    }
    CHECK_STR_EQ(buf, body);
    CHECK_EQ_INT(thash_bytes(body, strlen(body), want, &e), ERR_OK);
    CHECK_EQ_INT(thash_bytes(buf, strlen(buf), got, &e), ERR_OK);
    CHECK_STR_EQ(got, want);
    CHECK(unlink(copy) == 0);
    CHECK(mkfifo(fifo, 0600) == 0);
    alarm(10); /* a blocking open of the FIFO would hang: fail instead */
    CHECK_EQ_INT(blob_tmp_copy(b, fifo, copy, sizeof copy, &e), ERR_FORMAT);
    alarm(0);
    CHECK_STR_EQ(err_category(&e), "not_regular_file");
    CHECK_STR_EQ(copy, "");
    CHECK_EQ_INT(blob_tmp_copy(b, "/no/such/file", copy, sizeof copy, &e), ERR_NOTFOUND);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 0);
    blob_store_close(b);
    rm_tree(root);
}

static void test_many_blobs_share_fanout(void)
{
    char root[64], objects[128], text[32], sha[THASH_HEX_LEN];
    struct blob_store *b = NULL;
    struct blob_committed c;
    struct err e = {0};
    int i, committed = 0, fan;

    temp_dir(root, sizeof root);
    CHECK_EQ_INT(blob_store_open(root, &b, &e), ERR_OK);
    /* 300 blobs over at most 256 fan-out directories: some directories are
     * reused (no directory fsync of objects/), others created (fsynced) */
    for (i = 0; i < 300; i++) {
        snprintf(text, sizeof text, "blob %d", i);
        struct blob_upload *u = upload_of(b, text, NULL, 0);

        thash_bytes(text, strlen(text), sha, &e);
        committed += blob_upload_commit(u, &c, &e) == ERR_OK && blob_exists(b, sha) &&
                     strcmp(c.sha256, sha) == 0;
        blob_upload_abort(u);
    }
    CHECK_EQ_INT(committed, 300);
    snprintf(objects, sizeof objects, "%s/objects", root);
    fan = count_entries(objects);
    CHECK(fan > 1 && fan < 300);
    CHECK_EQ_INT(count_entries(blob_tmp_dir(b)), 0);
    blob_store_close(b);
    rm_tree(root);
}

int main(void)
{
    test_open_creates_layout();
    test_upload_hashes_as_bytes_arrive();
    test_upload_large_body_through_the_buffers("/tmp");
    if (access("/dev/shm", W_OK) == 0)
        test_upload_large_body_through_the_buffers("/dev/shm");
    test_upload_commit_and_path_layout();
    test_upload_abort_removes_tmp();
    test_upload_failed_write_leaves_nothing();
    test_duplicate_commit_keeps_first();
    test_commit_of_vanished_tmp_fails();
    test_stale_tmp_cleanup();
    test_tmp_of_dead_process_removed_at_open();
    test_many_blobs_share_fanout();
    test_tmp_copy_is_a_snapshot();
    return check_report("test_blob");
}
