/* test_service_changes.c -- a real `farmsd serve` (tests/svc_harness.h)
 * analyses exactly the bytes a path ingestion hashed, and nothing on the
 * file system blocks it or brings it down.
 *
 * Non-regular files (issue 10, reproduction 3): a FIFO named as the path,
 * a FIFO among a folder's shards, and a FIFO as a folder's index are
 * refused with 422 not_regular_file while /healthz answers, from more
 * requests at once than the server has HTTP threads or validators.
 * Files replaced after the 202 (reproduction 6): a checkpoint renamed over
 * the path and one whose tensor bytes are rewritten in place while its job
 * waits behind another fail with category "changed"; no layer rows are
 * stored, and the bytes that were never analysed have no cache entry (the
 * new content, submitted properly, has no cache hits).
 * A single file is analysed from the server's own snapshot, taken and
 * checked against the submitted identity when its job starts: a file
 * rewritten in place during its analysis gives the submitted bytes'
 * results (`farmsd analyze` of a saved copy), the rewritten bytes have no
 * cache entry (never analysed), and the rewritten content submitted again
 * gives its own `farmsd analyze` results: the cache is not poisoned.
 * A file truncated during its analysis (reproduction 1, `farmsd synth`):
 * the job still gives the submitted bytes' results, the server stays up and
 * answers /healthz (run last: a crash here is a failed check, and the
 * server's exit status is checked).
 * One analysis runner (--workers 1), so a job can be held back behind
 * another. Run from the repository root after `make test-build`.
 */
#include <pthread.h>

#include <openssl/evp.h>

#include "tests/check.h"
#include "tests/svc_harness.h"

#define N_MAT 6    /* matrices of the gaussian checkpoints */
#define DIM   1024 /* their rows and columns: a fraction of a second each */

static char tmp_dir[256];
static char root[1024]; /* realpath of tmp_dir/root, the allowed root */
static cJSON *manifest;

static void mkpath(char *out, size_t len, const char *a, const char *b)
{
    if ((size_t)snprintf(out, len, "%s/%s", a, b) >= len)
        out[0] = '\0';
}

/* POST {"step": step, "path": path} to run `run`: the status; the job id
 * in *job when it is a 202/200 (else -1). */
static long post_path(const struct svc *s, const char *run, long step, const char *path,
                      long long *job, struct svc_resp *r)
{
    char url[128], body[PATH_MAX + 128];
    long st;

    snprintf(url, sizeof(url), "/v1/runs/%s/checkpoints", run);
    snprintf(body, sizeof(body), "{\"step\": %ld, \"path\": \"%s\"}", step, path);
    st = svc_post_json(s, url, body, NULL, r);
    if (job != NULL)
        *job = st == 202 || st == 200 ? (long long)svc_jn(r->json, "id") : -1;
    return st;
}

/* Poll job `id` until it runs with at least `min_done` tensors done (1),
 * or it is final, gone, or `timeout_s` passed (0). Its tensors_done in *done. */
static int wait_progress(const struct svc *s, long long id, long min_done, long *done,
                         double timeout_s)
{
    double until = svc_now() + timeout_s;

    *done = 0;
    while (svc_now() < until) {
        cJSON *job = svc_job(s, id);
        const char *st = svc_js(job, "state");
        int running = strcmp(st, "running") == 0, queued = strcmp(st, "queued") == 0;

        *done = (long)svc_jn(svc_j(job, "progress"), "tensors_done");
        cJSON_Delete(job);
        if (running && *done >= min_done)
            return 1;
        if (!running && !queued)
            return 0;
        svc_sleep_ms(20);
    }
    return 0;
}

/* The state of job `id` now ("" when it cannot be read). Into st. */
static void job_state(const struct svc *s, long long id, char *st, size_t len)
{
    cJSON *job = svc_job(s, id);

    snprintf(st, len, "%s", svc_js(job, "state"));
    cJSON_Delete(job);
}

/* Job `id` ends failed with category "changed" and the documented message. */
static void check_failed_changed(const struct svc *s, long long id)
{
    cJSON *job = svc_wait_job(s, id, 120);
    const cJSON *err = svc_j(job, "error");

    CHECK_STR_EQ(svc_js(job, "state"), "failed");
    CHECK_STR_EQ(svc_js(err, "category"), "changed");
    CHECK(strstr(svc_js(err, "message"), "changed") != NULL);
    if (strcmp(svc_js(err, "category"), "changed") != 0)
        fprintf(stderr, "  job %lld: state %s error %s: %s\n", id, svc_js(job, "state"),
                svc_js(err, "category"), svc_js(err, "message"));
    cJSON_Delete(job);
}

/* The number of layer rows stored for run/step (farms-llm), -1 on error. */
static int n_layers(const struct svc *s, const char *run, long step)
{
    char path[256];
    struct svc_resp r;
    int n = -1;

    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints/%ld?preset=farms-llm", run, step);
    if (svc_get(s, path, &r) == 200 && cJSON_IsArray(svc_j(r.json, "layers")))
        n = cJSON_GetArraySize(svc_j(r.json, "layers"));
    svc_resp_free(&r);
    return n;
}

/* Job `id` succeeds with `hits` cache hits (-1: any). */
static void check_succeeded(const struct svc *s, long long id, long hits)
{
    cJSON *job = svc_wait_job(s, id, 180);

    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    if (hits >= 0)
        CHECK_EQ_INT((long)svc_jn(svc_j(job, "progress"), "cache_hits"), hits);
    cJSON_Delete(job);
}

/* 1 if the server process is still running and /healthz answers 200. */
static int server_alive(const struct svc *s)
{
    struct svc_resp r;
    int ws, alive = s->pid > 0 && waitpid(s->pid, &ws, WNOHANG) == 0;

    if (!alive)
        return 0;
    alive = svc_get(s, "/healthz", &r) == 200;
    svc_resp_free(&r);
    return alive;
}

/* Overwrite `len` bytes of `path` at `off` in place with `from`'s bytes
 * at the same offset (no truncation, same inode). 1 on success. */
static int rewrite_in_place(const char *path, const char *from, off_t off, size_t len)
{
    char *buf = malloc(len);
    int src = open(from, O_RDONLY | O_CLOEXEC), dst = open(path, O_WRONLY | O_CLOEXEC);
    int ok = buf != NULL && src >= 0 && dst >= 0 && pread(src, buf, len, off) == (ssize_t)len &&
             pwrite(dst, buf, len, off) == (ssize_t)len;

    if (src >= 0)
        close(src);
    if (dst >= 0)
        close(dst);
    free(buf);
    return ok;
}

/* The SHA-256 (hex) of matrix `i` of a svc_write_gaussian_st file of
 * DIM x DIM matrices: its bytes as stored. "" on failure. */
static void gauss_tensor_sha(const char *path, int i, char hex[THASH_HEX_LEN])
{
    size_t per = (size_t)DIM * DIM * 4;
    unsigned char len8[8], d[THASH_DIGEST_LEN];
    char *buf = malloc(per);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint64_t hl = 0;
    unsigned n = 0;

    hex[0] = '\0';
    if (buf != NULL && fd >= 0 && pread(fd, len8, 8, 0) == 8) {
        for (int k = 0; k < 8; k++)
            hl |= (uint64_t)len8[k] << (8 * k);
        if (pread(fd, buf, per, (off_t)(8 + hl + per * (size_t)i)) == (ssize_t)per &&
            EVP_Digest(buf, per, d, &n, EVP_sha256(), NULL) == 1 && n == THASH_DIGEST_LEN)
            for (int k = 0; k < THASH_DIGEST_LEN; k++)
                snprintf(hex + (size_t)2 * k, 3, "%02x", d[k]);
    }
    if (fd >= 0)
        close(fd);
    free(buf);
}

/* GET /v1/tensors/{sha}: 404 when the cache holds no result for it. */
static long tensor_cached_status(const struct svc *s, const char *sha)
{
    char url[128];
    struct svc_resp r;
    long st;

    snprintf(url, sizeof(url), "/v1/tensors/%s", sha);
    st = svc_get(s, url, &r);
    svc_resp_free(&r);
    return st;
}

static off_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* --- Reproduction 3: FIFOs ----------------------------------------------------------- */

struct fifo_post {
    const struct svc *s;
    const char *path;
    long status;
    char category[64];
};

static void *fifo_post_main(void *arg)
{
    struct fifo_post *p = arg;
    struct svc_resp r;

    p->status = post_path(p->s, "fifos", 1, p->path, NULL, &r);
    snprintf(p->category, sizeof(p->category), "%s", svc_js(r.json, "category"));
    svc_resp_free(&r);
    return NULL;
}

/* Open each FIFO for writing once and close it: a reader blocked on one
 * (a server without the fix) gets EOF, so the server can still stop. */
static void unblock_fifos(char (*fifos)[PATH_MAX], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int fd = open(fifos[i], O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0)
            close(fd);
    }
}

static void test_fifos_are_refused_without_blocking(const struct svc *s)
{
    enum { N_POSTS = 6 }; /* more than the 4 HTTP threads and the 2 validators */
    char fifos[3][PATH_MAX], paths[3][PATH_MAX], a[PATH_MAX];
    struct fifo_post posts[N_POSTS];
    pthread_t th[N_POSTS];
    int started[N_POSTS] = {0};
    struct svc_resp r;
    int ok = 1;

    mkpath(paths[0], sizeof(paths[0]), root, "pipe.safetensors"); /* the path itself */
    snprintf(fifos[0], sizeof(fifos[0]), "%s", paths[0]);
    mkpath(paths[1], sizeof(paths[1]), root, "fifo_shards"); /* one shard of a folder */
    mkpath(fifos[1], sizeof(fifos[1]), paths[1], "model-00002.safetensors");
    mkpath(paths[2], sizeof(paths[2]), root, "fifo_index"); /* a folder's index */
    mkpath(fifos[2], sizeof(fifos[2]), paths[2], "model.safetensors.index.json");
    ok = ok && mkdir(paths[1], 0700) == 0 && mkdir(paths[2], 0700) == 0;
    mkpath(a, sizeof(a), paths[1], "model-00001.safetensors");
    ok = ok && svc_copy_file(SVC_FIX "mlp/mlp_step0500.safetensors", a);
    mkpath(a, sizeof(a), paths[2], "model-00001.safetensors");
    ok = ok && svc_copy_file(SVC_FIX "mlp/mlp_step0500.safetensors", a);
    for (int i = 0; i < 3; i++)
        ok = ok && mkfifo(fifos[i], 0600) == 0;
    CHECK(ok);
    for (int i = 0; i < N_POSTS; i++) {
        posts[i] = (struct fifo_post){s, paths[i % 3], 0, ""};
        started[i] = pthread_create(&th[i], NULL, fifo_post_main, &posts[i]) == 0;
        CHECK(started[i]);
    }
    CHECK_EQ_INT(svc_get(s, "/healthz", &r), 200); /* while they are in flight */
    svc_resp_free(&r);
    for (int i = 0; i < N_POSTS; i++) /* each bounded by the request timeout */
        if (started[i])
            pthread_join(th[i], NULL);
    for (int i = 0; i < N_POSTS; i++) {
        CHECK_EQ_INT(posts[i].status, 422);
        CHECK_STR_EQ(posts[i].category, "not_regular_file");
    }
    unblock_fifos(fifos, 3);
    CHECK_EQ_INT(svc_get(s, "/healthz", &r), 200);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/runs/fifos/checkpoints", &r), 404); /* nothing recorded */
    svc_resp_free(&r);
}

/* --- Reproduction 6: replaced before the analysis ---------------------------------------- */

static void test_files_replaced_after_the_202_fail_changed(const struct svc *s)
{
    char blocker[PATH_MAX], t[PATH_MAX], u[PATH_MAX], tnew[PATH_MAX], other[PATH_MAX];
    char st[32], url[64];
    const cJSON *tensor;
    long long hold = -1, jt = -1, ju = -1, j3 = -1, j4 = -1;
    struct svc_resp r;
    long done;

    /* a job that keeps the one runner busy while the others wait */
    mkpath(blocker, sizeof(blocker), root, "blocker.safetensors");
    CHECK(svc_write_gaussian_st(blocker, 3 * N_MAT, DIM, DIM, 3));
    CHECK_EQ_INT(post_path(s, "hold", 1, blocker, &hold, &r), 202);
    svc_resp_free(&r);
    CHECK(wait_progress(s, hold, 0, &done, 120));

    mkpath(t, sizeof(t), root, "t.safetensors");
    mkpath(u, sizeof(u), root, "u.safetensors");
    CHECK(svc_copy_file(SVC_FIX "mlp/mlp_step0500.safetensors", t));
    CHECK(svc_copy_file(SVC_FIX "mlp/mlp_step0500.safetensors", u));
    CHECK_EQ_INT(post_path(s, "changes", 1, t, &jt, &r), 202);
    svc_resp_free(&r);
    CHECK_EQ_INT(post_path(s, "changes", 2, u, &ju, &r), 202);
    svc_resp_free(&r);
    /* another checkpoint renamed over t (a training loop's atomic save) */
    mkpath(tnew, sizeof(tnew), root, "t.safetensors.tmp");
    CHECK(svc_copy_file(SVC_FIX "mlp/mlp_step0100.safetensors", tnew));
    CHECK(rename(tnew, t) == 0);
    /* the last 4 KiB of u's tensor bytes rewritten in place (same size, same inode) */
    mkpath(other, sizeof(other), tmp_dir, "other.safetensors");
    CHECK(svc_copy_file(SVC_FIX "mlp/mlp_step0100.safetensors", other));
    CHECK(file_size(u) == file_size(other) && file_size(u) > 8192);
    CHECK(rewrite_in_place(u, other, file_size(u) - 4096, 4096));
    /* both still wait behind the blocker: the changes came before their analysis */
    job_state(s, jt, st, sizeof(st));
    CHECK_STR_EQ(st, "queued");
    job_state(s, ju, st, sizeof(st));
    CHECK_STR_EQ(st, "queued");
    snprintf(url, sizeof(url), "/v1/jobs/%lld", hold);
    CHECK_EQ_INT(svc_req(s, "DELETE", url, NULL, NULL, 0, NULL, &r), 200);
    svc_resp_free(&r);

    check_failed_changed(s, jt);
    check_failed_changed(s, ju);
    CHECK_EQ_INT(n_layers(s, "changes", 1), 0);
    CHECK_EQ_INT(n_layers(s, "changes", 2), 0);
    cJSON_ArrayForEach(
        tensor, svc_j(svc_manifest_file(manifest, "mlp/mlp_step0100.safetensors"), "tensors"))
    {
        CHECK(strlen(svc_js(tensor, "sha256")) == THASH_HEX_LEN - 1);
        CHECK_EQ_INT(tensor_cached_status(s, svc_js(tensor, "sha256")), 404);
    }
    /* nothing of the new bytes was analysed or cached: submitted as what
     * they are, they are analysed from scratch, as the CLI does */
    CHECK_EQ_INT(post_path(s, "changes", 3, t, &j3, &r), 202);
    svc_resp_free(&r);
    CHECK_EQ_INT(post_path(s, "changes", 4, u, &j4, &r), 202);
    svc_resp_free(&r);
    check_succeeded(s, j3, 0);
    check_succeeded(s, j4, 0);
    svc_check_layers_as_analyze(s, "changes", 3, SVC_FIX "mlp/mlp_step0100.safetensors", 1, 0);
    svc_check_layers_as_analyze(s, "changes", 4, u, 1, 0);
}

/* --- Rewritten during the analysis: no poisoned cache ------------------------------------ */

static void test_file_rewritten_during_analysis_reads_the_submitted_bytes(const struct svc *s)
{
    char p[PATH_MAX], orig[PATH_MAX], other[PATH_MAX], mixed[PATH_MAX];
    long long j1 = -1, j3 = -1;
    struct svc_resp r;
    long done = 0;
    int n_changed = 0;
    off_t size;

    mkpath(p, sizeof(p), root, "p.safetensors");
    mkpath(orig, sizeof(orig), root, "p_orig.safetensors");
    mkpath(other, sizeof(other), tmp_dir, "q.safetensors");
    CHECK(svc_write_gaussian_st(p, N_MAT, DIM, DIM, 5));
    CHECK(svc_write_gaussian_st(orig, N_MAT, DIM, DIM, 5));
    CHECK(svc_write_gaussian_st(other, N_MAT, DIM, DIM, 6)); /* same header, other weights */
    size = file_size(p);
    CHECK(size > 0 && size == file_size(other));
    CHECK_EQ_INT(post_path(s, "rewrite", 1, p, &j1, &r), 202);
    svc_resp_free(&r);
    CHECK(wait_progress(s, j1, 2, &done, 120));
    /* the second half of the tensor bytes replaced while the job runs */
    CHECK(rewrite_in_place(p, other, size / 2, (size_t)(size - size / 2)));
    check_succeeded(s, j1, -1);
    svc_check_layers_as_analyze(s, "rewrite", 1, orig, 1, 0); /* the submitted bytes' results */
    /* no result cached for the rewritten bytes: they were never analysed */
    for (int i = 0; i < N_MAT; i++) {
        char was[THASH_HEX_LEN], now[THASH_HEX_LEN];
        gauss_tensor_sha(orig, i, was);
        gauss_tensor_sha(p, i, now);
        CHECK(strlen(was) == THASH_HEX_LEN - 1 && strlen(now) == THASH_HEX_LEN - 1);
        if (strcmp(was, now) != 0)
            CHECK_EQ_INT(tensor_cached_status(s, now), 404);
        n_changed += strcmp(was, now) != 0;
    }
    CHECK(n_changed >= N_MAT / 2);
    /* the rewritten content, submitted properly, gets its own results */
    mkpath(mixed, sizeof(mixed), root, "p.safetensors");
    CHECK_EQ_INT(post_path(s, "rewrite", 3, mixed, &j3, &r), 202);
    svc_resp_free(&r);
    check_succeeded(s, j3, -1);
    svc_check_layers_as_analyze(s, "rewrite", 3, mixed, 1, 0);
}

/* --- Reproduction 1: truncated during the analysis ------------------------------------------ */

static void test_file_truncated_during_analysis_reads_the_submitted_bytes(const struct svc *s)
{
    char g[PATH_MAX], saved[PATH_MAX], cmd[PATH_MAX + 160];
    long long j = -1;
    struct svc_resp r;
    long done = 0;

    mkpath(g, sizeof(g), root, "g.safetensors");
    mkpath(saved, sizeof(saved), tmp_dir, "g_saved.safetensors");
    snprintf(cmd, sizeof(cmd),
             SVC_FARMSD " synth --model gpt2-small --blocks 3 --no-embeddings --dtype F32 "
                        "--quiet --out '%s'",
             g);
    CHECK_EQ_INT(system(cmd), 0);
    CHECK(file_size(g) > 1000000);
    CHECK(svc_copy_file(g, saved));
    CHECK_EQ_INT(post_path(s, "truncated", 2, g, &j, &r), 202);
    svc_resp_free(&r);
    CHECK(wait_progress(s, j, 2, &done, 120));
    CHECK(truncate(g, 1000000) == 0);
    check_succeeded(s, j, -1);
    CHECK(server_alive(s));
    svc_check_layers_as_analyze(s, "truncated", 2, saved, 1, 0);
}

int main(void)
{
    double t0 = svc_now();
    char a[PATH_MAX], b[PATH_MAX], data[PATH_MAX];
    const char *extra[] = {"--allow-root", root, "--workers", "1", NULL};
    struct svc s;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    manifest = svc_manifest();
    CHECK(manifest != NULL);
    CHECK(svc_mkdtemp("svc-changes", tmp_dir, sizeof(tmp_dir)));
    mkpath(a, sizeof(a), tmp_dir, "root");
    CHECK(mkdir(a, 0700) == 0 && realpath(a, b) != NULL && strlen(b) < sizeof(root));
    snprintf(root, sizeof(root), "%.1000s", b);
    mkpath(data, sizeof(data), tmp_dir, "data");
    if (manifest != NULL && svc_start(&s, data, extra)) {
        test_fifos_are_refused_without_blocking(&s);
        test_files_replaced_after_the_202_fail_changed(&s);
        test_file_rewritten_during_analysis_reads_the_submitted_bytes(&s);
        test_file_truncated_during_analysis_reads_the_submitted_bytes(&s);
        CHECK_EQ_INT(svc_stop(&s), 0); /* alive until now, and a clean stop */
        if (check_n_failed)
            svc_dump_log(&s, 4000);
    } else {
        CHECK(!"server started");
    }
    cJSON_Delete(manifest);
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service_changes: %.1f s\n", svc_now() - t0);
    return check_report("test_service_changes");
}
