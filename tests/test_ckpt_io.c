/* test_ckpt_io.c -- checkpoint files that change or are not files: what
 * ckpt_open / ckpt_tensor_read do when the environment misbehaves.
 *
 *   - a file truncated after ckpt_open fails the read with ERR_IO and
 *     category "changed" (safetensors, shards, torch zip, npy, npz stored and
 *     deflated); each case runs in a child process, so a crash (SIGBUS from
 *     a mapping) is a failed check, not a dead test binary;
 *   - a FIFO, a device or a FIFO shard is refused at open with
 *     "not_regular_file", without blocking (alarm() guards the child);
 *   - a file rewritten in place or grown after open is read as found;
 *   - an .npz of 4 MiB holding a 32768 x 32768 float32 member of deflated
 *     zeros (4 GiB inflated) opens with its shape and small memory growth:
 *     only the npy header is inflated;
 *   - a deflated npz member is streamed on read: values, CRC-32 and its
 *     declared size are checked then;
 *   - a checkpoint's small side file (index, config, metadata) is read whole
 *     up to its limit (rfile_slurp); a larger one is refused unread.
 * Files live in a temporary folder that the test removes.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "core/formats/ckpt.h"
#include "core/formats/rfile.h"
#include "core/formats/st_write.h"
#include "core/formats/tz_write.h"
#include "tests/check.h"

#define N_VALS 16384 /* floats per fixture tensor: 64 KiB */

static char g_dir[] = "/tmp/farmsd-ckptio-XXXXXX";

static const char *at(const char *name)
{
    static char buf[4][256];
    static int k;

    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", g_dir, name);
    return buf[k];
}

static void fill(float *v, int tag)
{
    for (int j = 0; j < N_VALS; j++)
        v[j] = (float)(tag * 100000 + j);
}

/* --- Fixtures ---------------------------------------------------------------- */

static void wt(struct st_wtensor *t, const char *name)
{
    memset(t, 0, sizeof(*t));
    t->name = name;
    t->dtype = DTYPE_F32;
    t->ndim = 2;
    t->shape[0] = 128;
    t->shape[1] = N_VALS / 128;
}

/* Two 64 KiB F32 tensors `a` (tag t0) and `b` (tag t0 + 1). */
static int write_st(const char *path, const char *a, const char *b, int t0)
{
    struct st_wtensor t[2];
    struct st_writer *w = NULL;
    static float v[N_VALS];
    int ok;

    wt(&t[0], a);
    wt(&t[1], b);
    ok = st_writer_open(path, t, 2, &w, NULL) == ERR_OK;
    for (int k = 0; ok && k < 2; k++) {
        fill(v, t0 + k);
        ok = st_writer_write(w, v, sizeof(v), NULL) == ERR_OK;
    }
    if (!ok) {
        st_writer_abort(w);
        return 0;
    }
    return st_writer_close(w, NULL) == ERR_OK;
}

static int write_pt(const char *path)
{
    struct st_wtensor t[2];
    struct tz_writer *w = NULL;
    static float v[N_VALS];
    int ok;

    wt(&t[0], "a");
    wt(&t[1], "b");
    ok = tz_writer_open(path, "archive", t, 2, &w, NULL) == ERR_OK;
    for (int k = 0; ok && k < 2; k++) {
        fill(v, k);
        ok = tz_writer_write(w, v, sizeof(v), NULL) == ERR_OK;
    }
    if (!ok) {
        tz_writer_abort(w);
        return 0;
    }
    return tz_writer_close(w, NULL) == ERR_OK;
}

/* A version 1 .npy header for `descr` and `shape` (e.g. "(128, 128)"),
 * padded to 64 bytes; returns its length (preamble included). */
static size_t npy_head(unsigned char *out, const char *descr, const char *shape)
{
    char dict[200];
    int n = snprintf(dict, sizeof(dict), "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    size_t hl = (size_t)n + 1, total;

    total = (10 + hl + 63) / 64 * 64;
    hl = total - 10;
    /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): magic bytes */
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (unsigned char)(hl & 0xFF);
    out[9] = (unsigned char)(hl >> 8);
    memset(out + 10, ' ', hl);
    memcpy(out + 10, dict, (size_t)n);
    out[10 + hl - 1] = '\n';
    return total;
}

/* One .npy image of N_VALS float32 values tagged `tag`, in a new buffer. */
static unsigned char *npy_image(int tag, size_t *len)
{
    unsigned char head[128];
    size_t h = npy_head(head, "<f4", "(128, 128)");
    unsigned char *p = malloc(h + N_VALS * sizeof(float));
    float v[N_VALS];

    if (p == NULL)
        return NULL;
    fill(v, tag);
    memcpy(p, head, h);
    memcpy(p + h, v, sizeof(v));
    *len = h + sizeof(v);
    return p;
}

static int write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f != NULL && fwrite(p, 1, n, f) == n;

    if (f != NULL && fclose(f) != 0)
        ok = 0;
    return ok;
}

static void le16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void le32(unsigned char *p, uint32_t v)
{
    le16(p, v & 0xFFFF);
    le16(p + 2, v >> 16);
}

struct zw { /* a zip being written to a FILE, members at most 4 GiB compressed */
    FILE *f;
    unsigned char cd[4096];
    size_t cd_len;
    uint64_t off;
    unsigned n;
};

/* Append a member whose `csize` data bytes come from `data` (NULL: the
 * caller writes them next, e.g. in pieces); usize above 4 GiB gets a ZIP64
 * extra field in its central entry. */
static int zw_add(struct zw *z, const char *name, unsigned method, const void *data, uint64_t csize,
                  uint64_t usize, uint32_t crc)
{
    unsigned char l[30], *c = z->cd + z->cd_len;
    size_t nl = strlen(name);
    int big = usize >= 0xFFFFFFFFu;

    memset(l, 0, sizeof(l));
    memcpy(l, "PK\3\4", 4); /* NOLINT(bugprone-not-null-terminated-result): magic bytes */
    le16(l + 4, 20);
    le16(l + 8, method);
    le32(l + 14, crc);
    le32(l + 18, (uint32_t)csize);
    le32(l + 22, big ? 0xFFFFFFFFu : (uint32_t)usize);
    le16(l + 26, (unsigned)nl);
    memset(c, 0, 46);
    memcpy(c, "PK\1\2", 4); /* NOLINT(bugprone-not-null-terminated-result): magic bytes */
    le16(c + 10, method);
    le32(c + 16, crc);
    le32(c + 20, (uint32_t)csize);
    le32(c + 24, big ? 0xFFFFFFFFu : (uint32_t)usize);
    le16(c + 28, (unsigned)nl);
    le16(c + 30, big ? 12 : 0);
    le32(c + 42, (uint32_t)z->off);
    memcpy(c + 46, name, nl); /* NOLINT(bugprone-not-null-terminated-result): no NUL in ZIP */
    z->cd_len += 46 + nl;
    if (big) { /* ZIP64 extra: the uncompressed size only */
        unsigned char *x = z->cd + z->cd_len;
        le16(x, 1);
        le16(x + 2, 8);
        le32(x + 4, (uint32_t)usize);
        le32(x + 8, (uint32_t)(usize >> 32));
        z->cd_len += 12;
    }
    z->n++;
    z->off += 30 + nl + csize;
    if (fwrite(l, 1, 30, z->f) != 30 || fwrite(name, 1, nl, z->f) != nl)
        return 0;
    return data == NULL || fwrite(data, 1, (size_t)csize, z->f) == csize;
}

static int zw_finish(struct zw *z)
{
    unsigned char e[22];
    int ok;

    memset(e, 0, sizeof(e));
    memcpy(e, "PK\5\6", 4); /* NOLINT(bugprone-not-null-terminated-result): magic bytes */
    le16(e + 8, z->n);
    le16(e + 10, z->n);
    le32(e + 12, (uint32_t)z->cd_len);
    le32(e + 16, (uint32_t)z->off);
    ok = fwrite(z->cd, 1, z->cd_len, z->f) == z->cd_len && fwrite(e, 1, 22, z->f) == 22;
    return fclose(z->f) == 0 && ok;
}

/* Raw deflate of `n` bytes; returns a new buffer, *out_len its length. */
static unsigned char *deflate_raw(const unsigned char *src, size_t n, size_t *out_len)
{
    size_t cap = n + n / 100 + 1024;
    unsigned char *dst = malloc(cap);
    z_stream zs;

    if (dst == NULL)
        return NULL;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(dst);
        return NULL;
    }
    zs.next_in = (Bytef *)(uintptr_t)src;
    zs.avail_in = (uInt)n;
    zs.next_out = dst;
    zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        deflateEnd(&zs);
        free(dst);
        return NULL;
    }
    *out_len = zs.total_out;
    deflateEnd(&zs);
    return dst;
}

/* An .npz of members "a" and "b" (tags 0, 1), deflated or stored; the
 * deflated member "b" gets CRC `b_crc` when non-zero, else the right one,
 * and declares `b_extra` more uncompressed bytes than it holds. */
static int write_npz(const char *path, int deflated, uint32_t b_crc, uint64_t b_extra)
{
    struct zw z;
    int ok = 1;

    memset(&z, 0, sizeof(z));
    z.f = fopen(path, "wb");
    if (z.f == NULL)
        return 0;
    for (int k = 0; k < 2 && ok; k++) {
        size_t n = 0, cn = 0;
        unsigned char *img = npy_image(k, &n), *packed = NULL;
        uint32_t crc = img != NULL ? (uint32_t)crc32(0, img, (uInt)n) : 0;
        if (k == 1 && b_crc != 0)
            crc = b_crc;
        if (img != NULL && deflated)
            packed = deflate_raw(img, n, &cn);
        if (img == NULL || (deflated && packed == NULL))
            ok = 0;
        else if (deflated)
            ok = zw_add(&z, k ? "b.npy" : "a.npy", 8, packed, cn, n + (k ? b_extra : 0), crc);
        else
            ok = zw_add(&z, k ? "b.npy" : "a.npy", 0, img, n, n, crc);
        free(packed);
        free(img);
    }
    return zw_finish(&z) && ok;
}

/* --- Running a case in a child ------------------------------------------------ */

typedef int child_fn(const char *arg);

/* Run fn(arg) in a child with a 20 s alarm; 1 if it exited 0 (a signal, a
 * timeout or another status is a failure, reported). */
static int in_child(child_fn *fn, const char *arg, const char *what)
{
    int ws = 0;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        alarm(20);
        _exit(fn(arg));
    }
    if (waitpid(pid, &ws, 0) != pid)
        return 0;
    if (WIFSIGNALED(ws))
        fprintf(stderr, "  %s: child killed by signal %d\n", what, WTERMSIG(ws));
    else if (WEXITSTATUS(ws) != 0)
        fprintf(stderr, "  %s: child exited %d\n", what, WEXITSTATUS(ws));
    return WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

/* Child: open `path`, cut the file named in the second half of `arg`
 * ("PATH|VICTIM|SIZE") to SIZE bytes, read every tensor: the first failure
 * must be ERR_IO "changed"; exit 0 if one was. */
static int child_truncate(const char *arg)
{
    char path[256], victim[256];
    long long size = 0;
    struct ckpt_buf buf = {0};
    struct ckpt *c = NULL;
    struct err e = {0};
    int rc = 3;
    const char *bar1 = strchr(arg, '|'), *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
    char *end = NULL;

    if (bar2 == NULL || bar1 - arg >= 256 || bar2 - bar1 > 256)
        return 4;
    snprintf(path, sizeof(path), "%.*s", (int)(bar1 - arg), arg);
    snprintf(victim, sizeof(victim), "%.*s", (int)(bar2 - bar1 - 1), bar1 + 1);
    size = strtoll(bar2 + 1, &end, 10);
    if (end == bar2 + 1 || *end != '\0')
        return 4;
    if (ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, &e) != ERR_OK) {
        fprintf(stderr, "  open %s: %s\n", path, e.msg);
        return 5;
    }
    if (truncate(victim, (off_t)size) != 0)
        return 6;
    for (size_t i = 0; i < ckpt_n_tensors(c); i++) {
        const void *data = NULL;
        if (ckpt_tensor_read(c, i, &buf, &data, &e) == ERR_OK)
            continue;
        if (e.code == ERR_IO && e.category == ERR_CAT_CHANGED && data == NULL)
            rc = 0;
        else
            fprintf(stderr, "  %s: got %s (%s): %s\n", path, err_str(e.code), err_category(&e),
                    e.msg);
        break;
    }
    ckpt_close(c);
    ckpt_buf_free(&buf);
    return rc;
}

static void expect_changed(const char *path, const char *victim, long long size)
{
    char arg[600];

    snprintf(arg, sizeof(arg), "%s|%s|%lld", path, victim, size);
    CHECK(in_child(child_truncate, arg, path));
}

/* --- Tests --------------------------------------------------------------------- */

static void test_truncated_after_open_fails_changed(void)
{
    size_t n = 0;
    unsigned char *img = npy_image(0, &n);

    CHECK(write_st(at("t.safetensors"), "a", "b", 0));
    expect_changed(at("t.safetensors"), at("t.safetensors"), 1000);
    CHECK(write_st(at("t.safetensors"), "a", "b", 0)); /* cut inside the second tensor */
    expect_changed(at("t.safetensors"), at("t.safetensors"), 70000);
    CHECK(write_pt(at("t.pt")));
    expect_changed(at("t.pt"), at("t.pt"), 1000);
    CHECK(img != NULL && write_all(at("t.npy"), img, n));
    expect_changed(at("t.npy"), at("t.npy"), 100);
    CHECK(write_npz(at("s.npz"), 0, 0, 0));
    expect_changed(at("s.npz"), at("s.npz"), 100);
    CHECK(write_npz(at("d.npz"), 1, 0, 0));
    expect_changed(at("d.npz"), at("d.npz"), 100);
    CHECK(mkdir(at("shards"), 0700) == 0);
    CHECK(write_st(at("shards/m-1.safetensors"), "a", "b", 0));
    CHECK(write_st(at("shards/m-2.safetensors"), "c", "d", 2));
    expect_changed(at("shards"), at("shards/m-2.safetensors"), 200);
    free(img);
}

/* Child: every path in `arg` ("P1|P2|..."; a trailing '@' declares
 * safetensors) must fail ckpt_open with not_regular_file. */
static int child_not_regular(const char *arg)
{
    char list[1024], *save = NULL;

    snprintf(list, sizeof(list), "%s", arg);
    for (char *p = strtok_r(list, "|", &save); p != NULL; p = strtok_r(NULL, "|", &save)) {
        size_t n = strlen(p);
        enum ckpt_format f = CKPT_FORMAT_UNKNOWN;
        struct ckpt *c = NULL;
        struct err e = {0};
        if (n > 0 && p[n - 1] == '@') {
            p[n - 1] = '\0';
            f = CKPT_FORMAT_SAFETENSORS;
        }
        if (ckpt_open(p, f, NULL, &c, &e) == ERR_OK || e.code != ERR_FORMAT ||
            e.category != ERR_CAT_NOT_REGULAR_FILE) {
            fprintf(stderr, "  %s: %s (%s): %s\n", p, err_str(e.code), err_category(&e), e.msg);
            ckpt_close(c);
            return 7;
        }
    }
    return 0;
}

static void test_fifo_and_devices_refused_without_blocking(void)
{
    char arg[1024];

    CHECK(mkfifo(at("f.safetensors"), 0600) == 0);
    CHECK(mkdir(at("fifoshard"), 0700) == 0);
    CHECK(write_st(at("fifoshard/m-1.safetensors"), "a", "b", 0));
    CHECK(mkfifo(at("fifoshard/m-2.safetensors"), 0600) == 0);
    snprintf(arg, sizeof(arg), "%s|%s@|%s|/dev/null@|/dev/zero", at("f.safetensors"),
             at("f.safetensors"), at("fifoshard"));
    CHECK(in_child(child_not_regular, arg, "fifo"));
}

/* A file rewritten in place (same size) or grown after ckpt_open is read as
 * found: the checkpoint does not notice (hash checks are the caller's). */
static void test_rewritten_or_grown_is_read_as_found(void)
{
    const char *path = at("g.safetensors");
    struct ckpt_buf buf = {0};
    struct ckpt *c = NULL;
    const void *data = NULL;
    static float v[N_VALS];
    float x = 0;
    int fd;

    CHECK(write_st(path, "a", "b", 0));
    CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, NULL), ERR_OK);
    if (c == NULL)
        return;
    CHECK(write_st(path, "a", "b", 7)); /* same layout, other values, same inode */
    fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "grown", 5) == 5);
    if (fd >= 0)
        close(fd);
    CHECK_EQ_INT(ckpt_tensor_read(c, 1, &buf, &data, NULL), ERR_OK);
    if (data != NULL)
        memcpy(&x, (const char *)data + 5 * sizeof(float), sizeof(x));
    fill(v, 8);
    CHECK(x == v[5]); /* tensor "b" of the new content: tag 7 + 1 */
    ckpt_close(c);
    ckpt_buf_free(&buf);
}

static long peak_or_rss_kib(int peak)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, peak ? "VmHWM:" : "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

/* 4 GiB of zeros as a raw deflate stream of about 4 MiB: one 1 MiB block
 * compressed after a full flush is the same bytes every time, so it is
 * computed once and written 4096 times. */
static int write_zero_bomb(const char *path, uint64_t *usize_out)
{
    static unsigned char zeros[1 << 20], out[2][1 << 16];
    unsigned char head[128], tail[64], *hout = NULL;
    size_t h = npy_head(head, "<f4", "(32768, 32768)"), nb[2] = {0, 0}, nt, hn;
    uint64_t usize = h + ((uint64_t)32768 * 32768 * 4);
    struct zw z;
    z_stream zs;
    int ok = 1;

    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    /* The header, then two zero blocks, each ending in a full flush. */
    hout = malloc(4096);
    zs.next_in = head;
    zs.avail_in = (uInt)h;
    zs.next_out = hout;
    zs.avail_out = 4096;
    ok = hout != NULL && deflate(&zs, Z_FULL_FLUSH) == Z_OK;
    hn = 4096 - zs.avail_out;
    for (int k = 0; ok && k < 2; k++) {
        zs.next_in = zeros;
        zs.avail_in = sizeof(zeros);
        zs.next_out = out[k];
        zs.avail_out = sizeof(out[k]);
        ok = deflate(&zs, Z_FULL_FLUSH) == Z_OK && zs.avail_in == 0;
        nb[k] = sizeof(out[k]) - zs.avail_out;
    }
    ok = ok && nb[0] == nb[1] && memcmp(out[0], out[1], nb[0]) == 0;
    zs.next_in = zeros;
    zs.avail_in = 0;
    zs.next_out = tail;
    zs.avail_out = sizeof(tail);
    ok = ok && deflate(&zs, Z_FINISH) == Z_STREAM_END;
    nt = sizeof(tail) - zs.avail_out;
    deflateEnd(&zs);
    memset(&z, 0, sizeof(z));
    z.f = ok ? fopen(path, "wb") : NULL;
    if (z.f == NULL) {
        free(hout);
        return 0;
    }
    ok = zw_add(&z, "w.npy", 8, NULL, hn + 4096 * (uint64_t)nb[0] + nt, usize, 0) &&
         fwrite(hout, 1, hn, z.f) == hn;
    for (int k = 0; ok && k < 4096; k++)
        ok = fwrite(out[0], 1, nb[0], z.f) == nb[0];
    ok = ok && fwrite(tail, 1, nt, z.f) == nt;
    free(hout);
    *usize_out = usize;
    return zw_finish(&z) && ok;
}

static void test_npz_zero_bomb_opens_small(void)
{
    const char *path = at("bomb.npz");
    struct ckpt_limits l;
    struct ckpt *c = NULL;
    struct err e = {0};
    struct stat st;
    uint64_t usize = 0;
    long before, after;
    int fd;

    CHECK(write_zero_bomb(path, &usize));
    CHECK(stat(path, &st) == 0 && st.st_size < 8 << 20); /* a few MiB on disk */
    fd = open("/proc/self/clear_refs", O_WRONLY);        /* "5": reset the peak (VmHWM) */
    if (fd >= 0) {
        if (write(fd, "5", 1) != 1)
            fprintf(stderr, "  clear_refs: peak not reset\n");
        close(fd);
    }
    before = peak_or_rss_kib(0);
    CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, &e), ERR_OK);
    after = peak_or_rss_kib(1);
    CHECK(before > 0 && after > 0 && after - before < 64L * 1024);
    if (c == NULL) {
        fprintf(stderr, "  %s\n", e.msg);
        return;
    }
    CHECK_EQ_INT(ckpt_format_of(c), CKPT_FORMAT_NPZ);
    CHECK_EQ_INT(ckpt_n_tensors(c), 1);
    CHECK_STR_EQ(ckpt_tensor_at(c, 0)->name, "w");
    CHECK_EQ_INT(ckpt_tensor_at(c, 0)->ndim, 2);
    CHECK_EQ_INT(ckpt_tensor_at(c, 0)->shape[0], 32768);
    CHECK_EQ_INT(ckpt_tensor_at(c, 0)->shape[1], 32768);
    CHECK_EQ_INT(ckpt_tensor_at(c, 0)->nbytes, (uint64_t)4 << 30);
    ckpt_close(c);
    c = NULL;
    /* Under a smaller tensor limit the member is refused at open. */
    ckpt_limits_default(&l);
    l.max_tensor_bytes = 1 << 20;
    CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, &l, &c, &e), ERR_TOOBIG);
    CHECK_STR_EQ(err_category(&e), "limit_exceeded");
    ckpt_close(c);
}

/* Deflated members are streamed on read: the values; a bad CRC-32 and a
 * member shorter than declared fail that read (invalid_zip), not the open. */
static void test_npz_deflated_read_checks(void)
{
    static const struct {
        uint32_t crc;
        uint64_t extra;
        const char *needle;
    } cases[] = {{0, 0, NULL}, {0x1234567u, 0, "CRC mismatch"}, {0, 16, "fewer than"}};

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct ckpt_buf buf = {0};
        struct ckpt *c = NULL;
        struct err e = {0};
        const void *data = NULL;
        float x = -1;
        CHECK(write_npz(at("r.npz"), 1, cases[k].crc, cases[k].extra));
        CHECK_EQ_INT(ckpt_open(at("r.npz"), CKPT_FORMAT_UNKNOWN, NULL, &c, &e), ERR_OK);
        if (c == NULL)
            continue;
        CHECK_EQ_INT(ckpt_tensor_read(c, 0, &buf, &data, &e), ERR_OK); /* "a" is intact */
        if (data != NULL)
            memcpy(&x, (const char *)data + 9 * sizeof(float), sizeof(x));
        CHECK(x == 9.0f);
        if (cases[k].needle == NULL) {
            CHECK_EQ_INT(ckpt_tensor_read(c, 1, &buf, &data, &e), ERR_OK);
            if (data != NULL)
                memcpy(&x, (const char *)data + 9 * sizeof(float), sizeof(x));
            CHECK(x == 100009.0f);
        } else {
            CHECK_EQ_INT(ckpt_tensor_read(c, 1, &buf, &data, &e), ERR_FORMAT);
            CHECK_STR_EQ(err_category(&e), "invalid_zip");
            CHECK(strstr(e.msg, cases[k].needle) != NULL);
            CHECK(data == NULL);
        }
        ckpt_close(c);
        ckpt_buf_free(&buf);
    }
}

static void cleanup(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
}

/* rfile_slurp: the whole file, '\0' after it, up to the limit; one byte
 * more is limit_exceeded with both sizes; a missing file or a FIFO fails
 * as rfile_open does, without blocking. */
static void test_side_file_read_whole_within_its_limit(void)
{
    static const char text[] = "{\"weight_map\": {}}";
    unsigned char *buf = NULL;
    size_t n = 99;
    struct err e = {0};
    FILE *f = fopen(at("side.json"), "wb");

    CHECK(f != NULL && fwrite(text, 1, sizeof(text) - 1, f) == sizeof(text) - 1);
    if (f != NULL)
        fclose(f);
    CHECK_EQ_INT(rfile_slurp(at("side.json"), sizeof(text) - 1, &buf, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, sizeof(text) - 1);
    CHECK(buf != NULL && memcmp(buf, text, sizeof(text)) == 0); /* with the '\0' */
    free(buf);
    CHECK_EQ_INT(rfile_slurp(at("side.json"), sizeof(text) - 2, &buf, &n, &e), ERR_TOOBIG);
    CHECK(buf == NULL && n == 0);
    CHECK_STR_EQ(err_category(&e), "limit_exceeded");
    CHECK(strstr(e.msg, "18 bytes exceed the limit of 17 bytes") != NULL);
    CHECK_EQ_INT(rfile_slurp(at("none.json"), 100, &buf, &n, &e), ERR_NOTFOUND);
    CHECK(buf == NULL);
    CHECK(mkfifo(at("side.fifo"), 0600) == 0);
    CHECK_EQ_INT(rfile_slurp(at("side.fifo"), 100, &buf, &n, &e), ERR_FORMAT);
    CHECK_STR_EQ(err_category(&e), "not_regular_file");
    CHECK(buf == NULL);
}

int main(void)
{
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_truncated_after_open_fails_changed();
    test_fifo_and_devices_refused_without_blocking();
    test_rewritten_or_grown_is_read_as_found();
    test_npz_deflated_read_checks();
    test_npz_zero_bomb_opens_small();
    test_side_file_read_whole_within_its_limit();
    if (getenv("KEEP") == NULL)
        cleanup();
    else
        printf("kept %s\n", g_dir);
    return check_report("test_ckpt_io");
}
