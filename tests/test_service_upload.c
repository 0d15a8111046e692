/* test_service_upload.c -- large uploads to a real `farmsd serve`
 * (tests/svc_harness.h), through the buffers and threads of
 * storage/blob_upload.c:
 *   - a checkpoint of several upload buffers (a synthetic GPT-2 block, 28
 *     MB) is accepted with the SHA-256 of its bytes, and a declared
 *     X-Content-SHA256 is checked against them: the right one gets 202, a
 *     wrong one 400 checksum_mismatch with nothing stored;
 *   - a 1 GiB body (not a checkpoint, streamed chunked) holds the server's
 *     memory: its VmHWM grows by less than UPLOAD_HWM_MIB over its resident
 *     memory before the upload, and the refusal (422) leaves no tmp file and
 *     no blob;
 *   - a body cut mid-way (the client closes after 48 MiB of a declared
 *     256 MiB) leaves no tmp file and no blob, and the server takes the next
 *     upload. libmicrohttpd 0.9.75 does not notice a client that closes
 *     while it waits for more body; the slow-body rule closes that
 *     connection once no byte came for the window (--min-upload-window 2
 *     here, 30 by default), and its upload is aborted then.
 * Every loop is bounded in count and time. Run from the repository root
 * after `make test-build`.
 */
#define _GNU_SOURCE /* fopencookie */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>

#include "storage/blob.h"
#include "tests/check.h"
#include "tests/svc_harness.h"

#define UPLOAD_BIG     ((uint64_t)1 << 30) /* the 1 GiB body */
#define UPLOAD_HWM_MIB 128 /* bound on the server's memory growth while it arrives */
#define CUT_DECLARED   ((uint64_t)256 << 20)
#define CUT_SENT       ((size_t)48 << 20)

static char tmp_dir[256];

/* Files under the data folder's blobs/<sub> (tmp: uploads being written;
 * objects: blobs). */
static long blob_files(const struct svc *s, const char *sub)
{
    char dir[1200];

    snprintf(dir, sizeof(dir), "%s/blobs/%s", s->data, sub);
    return svc_count_files(dir);
}

/* Wait (at most `timeout_s`) until no upload's tmp file is left. */
static long wait_no_tmp(const struct svc *s, double timeout_s)
{
    double until = svc_now() + timeout_s;
    long n = blob_files(s, "tmp");

    while (n != 0 && svc_now() < until) {
        svc_sleep_ms(50);
        n = blob_files(s, "tmp");
    }
    return n;
}

/* --- The pattern stream: UPLOAD_BIG bytes that are no checkpoint ------------------- */

static ssize_t pattern_read(void *cookie, char *buf, size_t size)
{
    uint64_t *left = cookie;
    size_t n = size < *left ? size : (size_t)*left;

    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(0x5a ^ (i * 131u >> 3));
    *left -= n;
    return (ssize_t)n;
}

/* --- Cases ------------------------------------------------------------------------- */

/* The 28 MB checkpoint: 202 with its hash (declared or not), 400 for a
 * wrong declared hash, nothing of that stored. */
static void test_multi_buffer_checkpoint(const struct svc *s)
{
    char file[512], cmd[1024], want[THASH_HEX_LEN], h[128];
    const char *hdrs[] = {h, NULL};
    unsigned char d[THASH_DIGEST_LEN] = {0};
    unsigned dl = 0;
    struct svc_resp r;
    size_t n = 0;
    char *body;

    snprintf(file, sizeof(file), "%s/gpt2.safetensors", tmp_dir);
    snprintf(cmd, sizeof(cmd),
             SVC_FARMSD " synth --model gpt2-small --blocks 1 --no-embeddings --dtype F32 "
                        "--quiet --out '%s'",
             file);
    CHECK_EQ_INT(system(cmd), 0);
    body = svc_slurp(file, &n);
    CHECK(body != NULL && n > (size_t)BLOB_UPLOAD_BUFS * BLOB_UPLOAD_BUF);
    CHECK(body != NULL && EVP_Digest(body, n, d, &dl, EVP_sha256(), NULL) == 1);
    free(body);
    for (int i = 0; i < THASH_DIGEST_LEN; i++)
        snprintf(want + (size_t)2 * i, 3, "%02x", d[i]);
    snprintf(h, sizeof(h), "X-Content-SHA256: %.63s0", want);
    if (want[63] == '0')
        h[strlen(h) - 1] = '1';
    CHECK_EQ_INT(svc_upload(s, "/v1/runs/big/checkpoints?step=1", file, hdrs, &r), 400);
    CHECK_STR_EQ(svc_js(r.json, "category"), "checksum_mismatch");
    svc_resp_free(&r);
    CHECK_EQ_INT(blob_files(s, "objects"), 0);
    CHECK_EQ_INT(wait_no_tmp(s, 10), 0);
    snprintf(h, sizeof(h), "X-Content-SHA256: %s", want);
    CHECK_EQ_INT(svc_upload(s, "/v1/runs/big/checkpoints?step=1", file, hdrs, &r), 202);
    CHECK_STR_EQ(svc_js(r.json, "sha256"), want);
    CHECK_EQ_INT((long long)svc_jn(r.json, "size"), (long long)n);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_upload(s, "/v1/runs/big/checkpoints?step=2", file, NULL, &r), 202);
    CHECK_STR_EQ(svc_js(r.json, "sha256"), want);
    svc_resp_free(&r);
    CHECK_EQ_INT(blob_files(s, "objects"), 1);
    CHECK_EQ_INT(wait_no_tmp(s, 10), 0);
}

/* 1 GiB streamed: memory bounded, 422, nothing left. */
static void test_big_body_memory_is_bounded(const struct svc *s)
{
    static cookie_io_functions_t io = {.read = pattern_read};
    uint64_t left = UPLOAD_BIG;
    long objects = blob_files(s, "objects"), base_kb, peak_kb;
    char path[160];
    struct svc_resp r;
    FILE *f;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)s->pid);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0 && write(fd, "5", 1) == 1); /* VmHWM := VmRSS */
    if (fd >= 0)
        close(fd);
    base_kb = svc_proc_kb(s, "VmRSS");
    f = fopencookie(&left, "r", io);
    ERR_ASSERT(f != NULL);
    CHECK_EQ_INT(svc_req_ex(s, "POST", "/v1/runs/junk/checkpoints?step=1",
                            "application/octet-stream", NULL, 0, f, NULL, &r),
                 422);
    fclose(f);
    CHECK_EQ_INT((long long)left, 0); /* all of it was sent */
    svc_resp_free(&r);
    peak_kb = svc_proc_kb(s, "VmHWM");
    CHECK(base_kb > 0 && peak_kb > 0);
    CHECK(peak_kb - base_kb < (long)UPLOAD_HWM_MIB * 1024);
    printf("server memory while 1 GiB arrived: VmRSS %ld kB before, VmHWM %ld kB\n", base_kb,
           peak_kb);
    CHECK_EQ_INT(wait_no_tmp(s, 10), 0);
    CHECK_EQ_INT(blob_files(s, "objects"), objects);
}

/* A raw connection to the server that declares CUT_DECLARED bytes, sends
 * CUT_SENT and closes. 1 if all of it went out. */
static int send_cut_body(const struct svc *s)
{
    static char chunk[1 << 16];
    struct sockaddr_in a = {0};
    char head[256];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok = fd >= 0;
    size_t sent = 0;

    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)s->port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ok = ok && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    snprintf(head, sizeof(head),
             "POST /v1/runs/cut/checkpoints?step=1 HTTP/1.1\r\nHost: localhost\r\n"
             "Content-Type: application/octet-stream\r\nContent-Length: %llu\r\n\r\n",
             (unsigned long long)CUT_DECLARED);
    ok = ok && send(fd, head, strlen(head), MSG_NOSIGNAL) == (ssize_t)strlen(head);
    memset(chunk, 0x33, sizeof(chunk));
    while (ok && sent < CUT_SENT) { /* blocking sends: bounded by CUT_SENT */
        ssize_t w = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
        ok = w > 0;
        sent += ok ? (size_t)w : 0;
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Cut mid-body: no tmp file, no blob; the next upload is fine. */
static void test_cut_body_leaves_nothing(const struct svc *s)
{
    long objects = blob_files(s, "objects");
    struct svc_resp r;

    CHECK(send_cut_body(s));
    CHECK_EQ_INT(wait_no_tmp(s, 20), 0);
    CHECK_EQ_INT(blob_files(s, "objects"), objects);
    CHECK_EQ_INT(svc_get(s, "/v1/runs/cut/checkpoints", &r), 404);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_upload(s, "/v1/runs/after/checkpoints?step=1",
                            SVC_FIX "mlp/mlp_step0500.safetensors", NULL, &r),
                 202);
    svc_resp_free(&r);
}

int main(void)
{
    static const char *const extra[] = {"--workers", "1", "--min-upload-window", "2", NULL};
    char data[512];
    struct svc s;
    int started;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(svc_mkdtemp("upload", tmp_dir, sizeof(tmp_dir)));
    snprintf(data, sizeof(data), "%s/data", tmp_dir);
    started = svc_start(&s, data, extra);
    CHECK(started); /* farmsd serve started */
    if (started) {
        test_big_body_memory_is_bounded(&s); /* first: no analysis runs beside it */
        test_multi_buffer_checkpoint(&s);
        test_cut_body_leaves_nothing(&s);
        CHECK_EQ_INT(svc_stop(&s), 0);
    }
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    return check_report("test_service_upload");
}
