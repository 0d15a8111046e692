/* blob_upload.c -- an upload's bytes into a tmp file, hashed. See blob.h.
 *
 * DESIGN. The caller's thread (an HTTP thread) only copies: bytes go into
 * the fill buffer, one of BLOB_UPLOAD_BUFS aligned buffers of
 * BLOB_UPLOAD_BUF bytes. A full buffer is published to two threads of the
 * upload, a writer (one write(2) of the whole buffer) and a hasher
 * (SHA-256 over it), which run side by side; a buffer is free
 * again once both are done with it. So receiving, writing and hashing
 * overlap, the file sees large writes, and the upload holds at most
 * BLOB_UPLOAD_BUFS buffers whatever the body's size: the producer waits
 * when every buffer is in use.
 *
 * Counters: n_pub buffers published, n_written and n_hashed of them done;
 * buffer k lives in bufs[k % BLOB_UPLOAD_BUFS]. All three grow under `mu`
 * and each change is broadcast on `cv`. The buffer being filled,
 * bufs[n_pub % N], is the producer's alone: it is free once n_pub -
 * min(n_written, n_hashed) < N.
 *
 * Writing: the writer sets O_DIRECT on the file where the file system
 * takes it (the buffers are aligned and whole blocks, but for the last):
 * no copy into the page cache, nothing left for the commit's fsync to
 * write but metadata. Where it does not (tmpfs, a last partial buffer, a
 * file system that refuses a direct write with EINVAL) the write goes
 * through the page cache, and so that the commit's fsync has little left
 * and the cache does not fill with the body, the writer starts each
 * write's writeback (sync_file_range WRITE), waits for the writeback of
 * the data written BLOB_UPLOAD_LAG buffers earlier (WAIT_BEFORE | WRITE |
 * WAIT_AFTER) and drops it from the page cache (POSIX_FADV_DONTNEED). These
 * are hints: their failures are ignored, an I/O error shows at the
 * commit's fsync.
 *
 * Small bodies start no thread: the threads start when the first buffer is
 * full. If they cannot start, every buffer is written and hashed on the
 * caller's thread, as before this pipeline existed (slower, same result).
 *
 * Errors in the threads are recorded (werr: the write's errno; herr: the
 * hash failed); the threads then keep counting buffers without work, so the
 * producer never waits forever, and the next write or the finish reports
 * the error and removes the tmp file.
 *
 * The tmp file is removed by the upload alone: by a failed write, or by
 * blob_upload_abort while `owns_tmp` says the name is still its own. Once a
 * commit has renamed (or, for a blob already stored, removed) the file, the
 * name may be reused by another upload's mkstemp, so the flag, not what is
 * on disk, decides.
 *
 * THREAD SAFETY: the public functions are called by one thread at a time
 * (blob.h); the upload's own threads touch only the published buffers, fd,
 * the hash and the fields under `mu`, and are joined before finish or abort
 * returns.
 */
#define _GNU_SOURCE /* sync_file_range */
#include "storage/blob.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/formats/thash.h"
#include "storage/blob_int.h"

#define BLOB_UPLOAD_LAG   2    /* buffers written but not yet waited for */
#define BLOB_DIRECT_ALIGN 4096 /* O_DIRECT writes: whole blocks from aligned memory */

/* Where an upload is in its life. */
enum blob_upload_state {
    BLOB_UPLOAD_WRITING,   /* fd open, hashing */
    BLOB_UPLOAD_FINISHED,  /* fd closed, sha256 set (or "" if the hash failed) */
    BLOB_UPLOAD_COMMITTED, /* the bytes are a blob; no tmp file */
    BLOB_UPLOAD_FAILED     /* a write failed; the tmp file is gone */
};

struct blob_upload {
    struct blob_store *b; /* borrowed */
    enum blob_upload_state state;
    int fd;                     /* the tmp file, open while writing; -1 after */
    int owns_tmp;               /* 1 while `tmp` names this upload's file */
    struct thash hash;          /* running SHA-256 while writing */
    uint64_t size;              /* bytes accepted by blob_upload_write */
    char sha256[THASH_HEX_LEN]; /* after finish; "" before */
    char tmp[BLOB_PATH_MAX];    /* the tmp file's path */
    /* the pipeline */
    unsigned char *bufs[BLOB_UPLOAD_BUFS]; /* owned, allocated on first use */
    size_t lens[BLOB_UPLOAD_BUFS];         /* bytes in each published buffer */
    size_t fill;                           /* bytes in the fill buffer */
    int threads;                           /* 1: writer and hasher run */
    pthread_t writer, hasher;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sync_ok;        /* mu and cv initialised */
    uint64_t n_pub;     /* under mu: buffers published */
    uint64_t n_written; /* under mu: buffers the writer is done with */
    uint64_t n_hashed;  /* under mu: buffers the hasher is done with */
    int stop;           /* under mu: no buffer after n_pub will come */
    int cancel;         /* under mu: skip the work still queued (abort) */
    int werr;           /* under mu: errno of the failed write, 0 if none */
    int herr;           /* under mu: 1 if the hash failed */
    uint64_t off;       /* writer's: file offset of its next write */
    uint64_t synced;    /* writer's: bytes whose writeback was waited for */
    int direct;         /* writer's: the fd has O_DIRECT */
};

/* --- The two threads --------------------------------------------------------- */

/* Write `len` bytes at `p` to fd, *done of them written; 0 or the errno
 * (EIO for a 0-byte write). */
static int blob_write_all(int fd, const unsigned char *p, size_t len, size_t *done)
{
    *done = 0;
    while (*done < len) {
        ssize_t w = write(fd, p + *done, len - *done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        *done += (size_t)w;
    }
    return 0;
}

/* Set or clear O_DIRECT on the writer's fd: 1 if it is set afterwards. */
static int blob_direct_set(struct blob_upload *u, int on)
{
    int fl = fcntl(u->fd, F_GETFL);

    if (fl < 0)
        return 0;
    if (fcntl(u->fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT) != 0)
        return on ? 0 : 1;
    return on;
}

/* After a write of [u->off - len, u->off): start its writeback, wait for
 * the writeback of what lies BLOB_UPLOAD_LAG buffers behind, drop that
 * from the page cache. Hints only. */
static void blob_writeback(struct blob_upload *u, size_t len)
{
    uint64_t lag = (uint64_t)BLOB_UPLOAD_LAG * BLOB_UPLOAD_BUF, upto;

    (void)sync_file_range(u->fd, (off64_t)(u->off - len), (off64_t)len, SYNC_FILE_RANGE_WRITE);
    if (u->off < lag || u->off - lag <= u->synced)
        return;
    upto = u->off - lag;
    (void)sync_file_range(u->fd, (off64_t)u->synced, (off64_t)(upto - u->synced),
                          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                              SYNC_FILE_RANGE_WAIT_AFTER);
    (void)posix_fadvise(u->fd, (off_t)u->synced, (off_t)(upto - u->synced), POSIX_FADV_DONTNEED);
    u->synced = upto;
}

/* The writer's write of buffer `i`: direct while the buffer is whole
 * blocks (the last one may not be) and the file system takes it, else
 * through the page cache with writeback hints. 0 or the errno. */
static int blob_write_buf(struct blob_upload *u, size_t i)
{
    const unsigned char *p = u->bufs[i];
    size_t len = u->lens[i], done = 0;
    int errnum;

    if (u->direct && len % BLOB_DIRECT_ALIGN != 0)
        u->direct = blob_direct_set(u, 0);
    errnum = blob_write_all(u->fd, p, len, &done);
    if (errnum == EINVAL && u->direct) { /* refused after all: the page cache */
        u->direct = blob_direct_set(u, 0);
        u->off += done;
        p += done;
        len -= done;
        errnum = u->direct ? EINVAL : blob_write_all(u->fd, p, len, &done);
    }
    u->off += done;
    if (errnum == 0 && !u->direct)
        blob_writeback(u, len);
    return errnum;
}

/* Wait for the buffer after `*done` (the caller's counter) or the end.
 * Under mu. 1 with its index in *i and whether to work on it in *work, 0
 * at the end. */
static int blob_next(struct blob_upload *u, const uint64_t *done, size_t *i, int *work)
{
    while (*done == u->n_pub && !u->stop)
        pthread_cond_wait(&u->cv, &u->mu);
    if (*done == u->n_pub)
        return 0;
    *i = (size_t)(*done % BLOB_UPLOAD_BUFS);
    *work = !u->cancel && u->werr == 0 && !u->herr;
    return 1;
}

static void *blob_writer(void *arg)
{
    struct blob_upload *u = arg;
    size_t i;
    int work, errnum;

    (void)pthread_setname_np(pthread_self(), "upload-write");
    u->direct = blob_direct_set(u, 1);
    pthread_mutex_lock(&u->mu);
    while (blob_next(u, &u->n_written, &i, &work)) {
        pthread_mutex_unlock(&u->mu);
        errnum = work ? blob_write_buf(u, i) : 0;
        pthread_mutex_lock(&u->mu);
        if (errnum != 0 && u->werr == 0)
            u->werr = errnum;
        u->n_written++;
        pthread_cond_broadcast(&u->cv);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

static void *blob_hasher(void *arg)
{
    struct blob_upload *u = arg;
    size_t i;
    int work, failed;

    (void)pthread_setname_np(pthread_self(), "upload-hash");
    pthread_mutex_lock(&u->mu);
    while (blob_next(u, &u->n_hashed, &i, &work)) {
        pthread_mutex_unlock(&u->mu);
        failed = work && thash_update(&u->hash, u->bufs[i], u->lens[i], NULL) != ERR_OK;
        pthread_mutex_lock(&u->mu);
        u->herr = u->herr || failed;
        u->n_hashed++;
        pthread_cond_broadcast(&u->cv);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

/* Start the writer and the hasher; 0 (and no thread) if either cannot. */
static int blob_threads_start(struct blob_upload *u)
{
    if (pthread_create(&u->writer, NULL, blob_writer, u) != 0)
        return 0;
    if (pthread_create(&u->hasher, NULL, blob_hasher, u) == 0)
        return 1;
    pthread_mutex_lock(&u->mu);
    u->stop = 1;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->writer, NULL);
    u->stop = 0;
    (void)blob_direct_set(u, 0); /* the caller's writes need not be whole blocks */
    return 0;
}

/* Tell the threads that nothing more comes (`cancel`: drop what is
 * queued) and join them. No-op without threads. */
static void blob_threads_stop(struct blob_upload *u, int cancel)
{
    if (!u->threads)
        return;
    pthread_mutex_lock(&u->mu);
    u->stop = 1;
    u->cancel = u->cancel || cancel;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->writer, NULL);
    pthread_join(u->hasher, NULL);
    u->threads = 0;
}

/* --- The producer ------------------------------------------------------------ */

/* Drop the tmp file of `u` now (a failed write): stop the threads, close,
 * remove, forget. */
static void blob_upload_drop(struct blob_upload *u)
{
    blob_threads_stop(u, 1);
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    if (u->owns_tmp)
        unlink(u->tmp);
    u->owns_tmp = 0;
    thash_free(&u->hash);
    u->state = BLOB_UPLOAD_FAILED;
    for (size_t i = 0; i < BLOB_UPLOAD_BUFS; i++) {
        free(u->bufs[i]);
        u->bufs[i] = NULL;
    }
}

/* The error a thread recorded (or `errnum`, `hash_failed` of the caller's
 * own work), as blob_upload_write reports it; ERR_OK if none. Drops the
 * tmp file on error. */
static enum err_code blob_upload_failed(struct blob_upload *u, int errnum, int hash_failed,
                                        struct err *e)
{
    char buf[ERR_ERRNO_LEN];

    if (u->sync_ok) { /* the threads' errors, also once they are joined */
        pthread_mutex_lock(&u->mu);
        errnum = errnum != 0 ? errnum : u->werr;
        hash_failed = hash_failed || u->herr;
        pthread_mutex_unlock(&u->mu);
    }
    if (errnum == 0 && !hash_failed)
        return ERR_OK;
    blob_upload_drop(u);
    if (errnum == 0) /* a hash that missed bytes would name the wrong blob */
        return err_set(e, ERR_INTERNAL, "upload: SHA-256 failed");
    /* the system's text alone: no server path in what a client sees */
    return err_setc(e, ERR_IO, errnum == ENOSPC ? ERR_CAT_INSUFFICIENT_STORAGE : ERR_CAT_NONE, "%s",
                    err_strerror(errnum, buf, sizeof buf));
}

/* Hand the fill buffer (u->fill bytes) on: to the threads, started on the
 * first full buffer, or, without them, write and hash it here. */
static enum err_code blob_publish(struct blob_upload *u, struct err *e)
{
    size_t i = (size_t)(u->n_pub % BLOB_UPLOAD_BUFS), done = 0;
    int errnum = 0, hash_failed = 0;

    u->lens[i] = u->fill;
    u->fill = 0;
    if (!u->threads && u->n_pub == 0 && u->lens[i] == BLOB_UPLOAD_BUF && u->sync_ok)
        u->threads = blob_threads_start(u);
    if (u->threads) {
        pthread_mutex_lock(&u->mu);
        u->n_pub++;
        pthread_cond_broadcast(&u->cv);
        pthread_mutex_unlock(&u->mu);
        return blob_upload_failed(u, 0, 0, e);
    }
    errnum = blob_write_all(u->fd, u->bufs[i], u->lens[i], &done);
    hash_failed = errnum == 0 && thash_update(&u->hash, u->bufs[i], u->lens[i], NULL) != ERR_OK;
    u->n_pub++;
    return blob_upload_failed(u, errnum, hash_failed, e);
}

/* Make the fill buffer usable: wait until the threads are done with it,
 * allocate it on first use. */
static enum err_code blob_fill_ready(struct blob_upload *u, struct err *e)
{
    size_t i = (size_t)(u->n_pub % BLOB_UPLOAD_BUFS);
    void *p = NULL;

    if (u->threads) {
        pthread_mutex_lock(&u->mu);
        while (u->n_pub - (u->n_written < u->n_hashed ? u->n_written : u->n_hashed) >=
               BLOB_UPLOAD_BUFS)
            pthread_cond_wait(&u->cv, &u->mu);
        pthread_mutex_unlock(&u->mu);
    }
    if (u->bufs[i] != NULL)
        return ERR_OK;
    if (posix_memalign(&p, 4096, BLOB_UPLOAD_BUF) != 0)
        return err_set(e, ERR_NOMEM, "upload: out of memory");
    u->bufs[i] = p;
    return ERR_OK;
}

enum err_code blob_upload_create(struct blob_store *b, struct blob_upload **out, struct err *e)
{
    struct blob_upload *u = NULL;
    enum err_code rc;

    *out = NULL;
    u = calloc(1, sizeof *u);
    if (u == NULL)
        return err_set(e, ERR_NOMEM, "upload: out of memory");
    u->b = b;
    u->fd = -1;
    if (pthread_mutex_init(&u->mu, NULL) == 0) {
        u->sync_ok = pthread_cond_init(&u->cv, NULL) == 0;
        if (!u->sync_ok)
            pthread_mutex_destroy(&u->mu);
    }
    rc = thash_init(&u->hash, e);
    if (rc != ERR_OK)
        goto out;
    rc = blob__tmp_create(b, &u->fd, u->tmp, sizeof u->tmp, e);
    if (rc != ERR_OK)
        goto out;
    u->owns_tmp = 1;
out:
    if (rc != ERR_OK) {
        blob_upload_abort(u);
        return rc;
    }
    *out = u;
    return ERR_OK;
}

enum err_code blob_upload_write(struct blob_upload *u, const void *data, size_t len, struct err *e)
{
    const unsigned char *p = data;
    enum err_code rc;
    size_t i, n;

    if (u->state != BLOB_UPLOAD_WRITING)
        return err_set(e, ERR_INVAL, "upload: write after its end");
    rc = blob_upload_failed(u, 0, 0, e); /* a thread's error since the last call */
    while (rc == ERR_OK && len > 0) {
        if (u->fill == 0)
            rc = blob_fill_ready(u, e);
        if (rc != ERR_OK)
            break;
        i = (size_t)(u->n_pub % BLOB_UPLOAD_BUFS);
        n = BLOB_UPLOAD_BUF - u->fill < len ? BLOB_UPLOAD_BUF - u->fill : len;
        memcpy(u->bufs[i] + u->fill, p, n);
        u->fill += n;
        u->size += n;
        p += n;
        len -= n;
        if (u->fill == BLOB_UPLOAD_BUF)
            rc = blob_publish(u, e);
    }
    return rc;
}

enum err_code blob_upload_finish(struct blob_upload *u, struct err *e)
{
    unsigned char digest[THASH_DIGEST_LEN];
    enum err_code rc = ERR_OK;

    if (u->state == BLOB_UPLOAD_FAILED)
        return err_set(e, ERR_INVAL, "upload: finish after a failed write");
    if (u->state != BLOB_UPLOAD_WRITING)
        return ERR_OK;
    if (u->fill > 0)
        rc = blob_publish(u, e);
    if (rc != ERR_OK)
        return rc;
    blob_threads_stop(u, 0); /* every buffer written and hashed */
    rc = blob_upload_failed(u, 0, 0, e);
    if (rc != ERR_OK)
        return rc;
    close(u->fd); /* a write-back error shows at the commit's fsync */
    u->fd = -1;
    if (thash_final(&u->hash, digest, NULL) == ERR_OK)
        thash_hex(digest, u->sha256);
    u->state = BLOB_UPLOAD_FINISHED;
    for (size_t i = 0; i < BLOB_UPLOAD_BUFS; i++) {
        free(u->bufs[i]); /* the bytes are in the file */
        u->bufs[i] = NULL;
    }
    return ERR_OK;
}

const char *blob_upload_path(const struct blob_upload *u)
{
    return u->owns_tmp ? u->tmp : NULL;
}

const char *blob_upload_sha256(const struct blob_upload *u)
{
    return u->sha256;
}

uint64_t blob_upload_size(const struct blob_upload *u)
{
    return u->size;
}

enum err_code blob_upload_commit(struct blob_upload *u, struct blob_committed *out, struct err *e)
{
    enum err_code rc;
    int existed = 0, moved = 0;

    if (u->state != BLOB_UPLOAD_FINISHED || !u->owns_tmp)
        return err_set(e, ERR_INVAL, "upload: commit before its end, or twice");
    if (!thash_hex_ok(u->sha256))
        return err_set(e, ERR_INVAL, "upload: its hash could not be computed");
    rc = blob__commit_tmp(u->b, u->tmp, u->sha256, &existed, &moved, e);
    if (moved) {
        u->owns_tmp = 0;
        u->state = BLOB_UPLOAD_COMMITTED;
    }
    if (rc != ERR_OK || out == NULL)
        return rc;
    memcpy(out->sha256, u->sha256, sizeof out->sha256);
    out->size = u->size;
    out->existed = existed;
    return blob_path(u->b, u->sha256, out->path, sizeof out->path, e);
}

void blob_upload_abort(struct blob_upload *u)
{
    if (u == NULL)
        return;
    blob_threads_stop(u, 1);
    if (u->fd >= 0)
        close(u->fd);
    if (u->owns_tmp)
        unlink(u->tmp); /* never committed: nothing is kept */
    thash_free(&u->hash);
    for (size_t i = 0; i < BLOB_UPLOAD_BUFS; i++)
        free(u->bufs[i]);
    if (u->sync_ok) {
        pthread_cond_destroy(&u->cv);
        pthread_mutex_destroy(&u->mu);
    }
    free(u);
}
