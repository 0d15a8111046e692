/* test_service_tar.c -- folders over HTTP: a real `farmsd serve`
 * (tests/svc_harness.h) takes a tar body (Content-Type: application/x-tar)
 * of a shard folder as one checkpoint, and refuses hostile tars.
 *
 * The tar of tests/fixtures/checkpoints/llama/sharded (GNU tar, `tar c
 * sharded/`, tests/fixtures/tar/llama_sharded_gnu.tar) uploaded with a
 * Content-Length and again streamed (a chunked PUT, as `tar c | curl -T -`
 * sends it) is one checkpoint whose identity is the folder's (the one path
 * ingestion gives the folder), stored as a folder blob, analysed to the same
 * per-layer results as the path submission of the folder; sent as
 * application/octet-stream, the refusal says how to send it. Every hostile or
 * malformed tar of tests/fixtures/tar/manifest.tsv, a tar with more members
 * than the limit and a DCP-like folder (readers decide, never "a folder is
 * shards") are refused with 4xx and their category, and nothing is stored:
 * no run, no job, no blob, no temporary file. Deleting the runs removes the
 * folder blob.
 * Run from the repository root after `make test-build`.
 */
#include "tests/check.h"
#include "tests/svc_harness.h"

#define TAR_FIX "tests/fixtures/tar/"

static const unsigned char ustar_magic[8] = {'u', 's', 't', 'a', 'r', 0, '0', '0'};

static char tmp_dir[256];

/* POST the tar `file` as application/x-tar to run `run`, step `step`, with
 * a Content-Length; or, with `chunked`, PUT it streamed (Transfer-Encoding:
 * chunked), as `tar c ckpt/ | curl -T - URL` sends it. */
static long post_tar(const struct svc *s, const char *run, long step, const char *file, int chunked,
                     const char *const *headers, struct svc_resp *r)
{
    char url[160];
    size_t n = 0;
    char *b;
    long st;

    snprintf(url, sizeof(url), "/v1/runs/%s/checkpoints?step=%ld", run, step);
    if (chunked) {
        FILE *f = fopen(file, "rb");
        if (f == NULL) {
            memset(r, 0, sizeof(*r));
            return 0;
        }
        st = svc_req_ex(s, "PUT", url, "application/x-tar", NULL, 0, f, headers, r);
        fclose(f);
        return st;
    }
    b = svc_slurp(file, &n);
    if (b == NULL) {
        memset(r, 0, sizeof(*r));
        fprintf(stderr, "cannot read %s\n", file);
        return 0;
    }
    st = svc_req(s, "POST", url, "application/x-tar", b, n, headers, r);
    free(b);
    return st;
}

/* The layers of run/step (preset farms-llm) as returned by the API. */
static cJSON *layers_of(const struct svc *s, const char *run, long step)
{
    char path[256];
    struct svc_resp r;
    cJSON *out = NULL;

    snprintf(path, sizeof(path), "/v1/runs/%s/checkpoints/%ld?preset=farms-llm", run, step);
    if (svc_get(s, path, &r) == 200 && svc_j(r.json, "layers") != NULL)
        out = cJSON_Duplicate(svc_j(r.json, "layers"), 1);
    svc_resp_free(&r);
    return out;
}

static void test_a_tar_of_a_shard_folder_is_the_folder(const struct svc *s, const char *folder)
{
    char body[PATH_MAX + 64], blob[PATH_MAX], sha[THASH_HEX_LEN];
    struct svc_resp r;
    long long tar_job, path_job;
    cJSON *job, *a, *b;

    CHECK_EQ_INT(post_tar(s, "tarred", 1, TAR_FIX "llama_sharded_gnu.tar", 0, NULL, &r), 202);
    CHECK_STR_EQ(svc_js(r.json, "source"), "upload");
    CHECK_STR_EQ(svc_js(r.json, "format"), "safetensors_index");
    CHECK_EQ_INT((long)svc_jn(r.json, "size"), 156184 + 149256); /* both shards */
    snprintf(sha, sizeof(sha), "%s", svc_js(r.json, "sha256") ? svc_js(r.json, "sha256") : "");
    tar_job = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);
    /* streamed, no Content-Length: the same content, the same job */
    CHECK_EQ_INT(post_tar(s, "tarred", 1, TAR_FIX "llama_sharded_gnu.tar", 1, NULL, &r), 200);
    CHECK_EQ_INT((long long)svc_jn(r.json, "id"), tar_job);
    svc_resp_free(&r);

    /* the path submission of the folder: the same identity */
    snprintf(body, sizeof(body), "{\"step\": 1, \"path\": \"%s\"}", folder);
    CHECK_EQ_INT(svc_post_json(s, "/v1/runs/bypath/checkpoints", body, NULL, &r), 202);
    CHECK_STR_EQ(svc_js(r.json, "sha256"), sha);
    path_job = (long long)svc_jn(r.json, "id");
    svc_resp_free(&r);

    job = svc_wait_job(s, tar_job, 120);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    cJSON_Delete(job);
    job = svc_wait_job(s, path_job, 120);
    CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
    cJSON_Delete(job);
    a = layers_of(s, "tarred", 1);
    b = layers_of(s, "bypath", 1);
    CHECK(a != NULL && b != NULL && cJSON_GetArraySize(a) > 0);
    CHECK_EQ_INT(cJSON_GetArraySize(a), cJSON_GetArraySize(b));
    for (const cJSON *x = a ? a->child : NULL, *y = b ? b->child : NULL; x && y;
         x = x->next, y = y->next) {
        CHECK_STR_EQ(svc_js(x, "name"), svc_js(y, "name"));
        CHECK_STR_EQ(svc_js(x, "status"), svc_js(y, "status"));
        CHECK(cJSON_Compare(svc_j(x, "alpha"), svc_j(y, "alpha"), 1));
        CHECK(cJSON_Compare(svc_j(x, "num_eigs"), svc_j(y, "num_eigs"), 1));
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    /* stored as a folder blob holding the folder's three files */
    snprintf(blob, sizeof(blob), "%s/blobs/objects/%.2s/%s", s->data, sha, sha);
    CHECK_EQ_INT(svc_count_files(blob), 3);
    snprintf(blob, sizeof(blob), "%s/blobs/tmp", s->data);
    CHECK_EQ_INT(svc_count_files(blob), 0);
}

/* A tar body whose X-Content-SHA256 is not the body's: nothing stored. */
static void test_a_tar_is_checked_against_its_declared_hash(const struct svc *s)
{
    const char *hdr[] = {"X-Content-SHA256: "
                         "0000000000000000000000000000000000000000000000000000000000000000",
                         NULL};
    struct svc_resp r;

    CHECK_EQ_INT(post_tar(s, "evil", 1, TAR_FIX "llama_sharded_gnu.tar", 0, hdr, &r), 400);
    CHECK_STR_EQ(svc_js(r.json, "category"), "checksum_mismatch");
    svc_resp_free(&r);
}

/* A tar sent as application/octet-stream is refused with a detail that
 * says how to send a folder. */
static void test_a_tar_as_one_file_says_how_to_send_it(const struct svc *s)
{
    struct svc_resp r;

    CHECK_EQ_INT(svc_upload(s, "/v1/runs/evil/checkpoints?step=1", TAR_FIX "llama_sharded_gnu.tar",
                            NULL, &r),
                 422);
    CHECK_STR_EQ(svc_js(r.json, "category"), "legacy_torch_format");
    CHECK(svc_js(r.json, "detail") != NULL &&
          strstr(svc_js(r.json, "detail"), "application/x-tar") != NULL);
    svc_resp_free(&r);
}

/* One manifest row's file and extraction category, or 0 at the end. */
static int next_row(FILE *f, char *file, size_t flen, char *cat, size_t clen)
{
    char line[16384];

    while (fgets(line, sizeof(line), f) != NULL) {
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        char *t3 = t2 ? strchr(t2 + 1, '\t') : NULL;
        if (line[0] == '#' || t3 == NULL)
            continue;
        *t1 = *t2 = *t3 = '\0';
        snprintf(file, flen, "%.100s", line);
        snprintf(cat, clen, "%.60s", t2 + 1);
        return 1;
    }
    return 0;
}

static void check_refused(const struct svc *s, const char *what, long st, struct svc_resp *r,
                          const char *cat)
{
    long want = strcmp(cat, "limit_exceeded") == 0 ? 413 : 422;

    if (st != want || svc_js(r->json, "category") == NULL ||
        strcmp(svc_js(r->json, "category"), cat) != 0)
        fprintf(stderr, "  %s: %ld %s\n", what, st, r->body);
    CHECK_EQ_INT(st, want);
    CHECK_STR_EQ(svc_js(r->json, "category"), cat);
    CHECK_STR_EQ(r->content_type, "application/problem+json");
    CHECK(r->body != NULL && strstr(r->body, s->data) == NULL); /* no server path in it */
}

static void test_every_hostile_tar_is_refused(const struct svc *s)
{
    FILE *f = fopen(TAR_FIX "manifest.tsv", "r");
    char file[128], cat[64], path[256];
    struct svc_resp r;
    long step = 100;
    int n = 0;

    CHECK(f != NULL);
    while (f != NULL && next_row(f, file, sizeof(file), cat, sizeof(cat))) {
        if (strcmp(cat, "ok") == 0 || strcmp(file, "too_many_members.tar") == 0)
            continue; /* the service's member limit is 10000: the next test */
        snprintf(path, sizeof(path), TAR_FIX "%s", file);
        check_refused(s, file, post_tar(s, "evil", step++, path, n % 2, NULL, &r), &r, cat);
        svc_resp_free(&r);
        n++;
    }
    if (f != NULL)
        fclose(f);
    CHECK(n >= 30);
}

/* 10001 empty members: one over the limit. */
static void test_a_tar_with_too_many_members_is_refused(const struct svc *s)
{
    size_t n = 10001, len = (n + 2) * 512;
    unsigned char *b = calloc(1, len);
    char path[PATH_MAX];
    struct svc_resp r;

    CHECK(b != NULL);
    if (b == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned char *h = b + i * 512;
        unsigned sum = 0;
        snprintf((char *)h, 100, "ckpt/f%05zu", i);
        memcpy(h + 100, "0000644", 8);
        memcpy(h + 124, "00000000000", 12);
        h[156] = '0';
        memcpy(h + 257, ustar_magic, sizeof(ustar_magic));
        memset(h + 148, ' ', 8);
        for (int k = 0; k < 512; k++)
            sum += h[k];
        snprintf((char *)h + 148, 8, "%06o", sum);
    }
    snprintf(path, sizeof(path), "%s/many.tar", tmp_dir);
    CHECK(svc_write_file(path, b, len));
    free(b);
    check_refused(s, "many.tar", post_tar(s, "evil", 1, path, 0, NULL, &r), &r, "limit_exceeded");
    svc_resp_free(&r);
}

/* Append a ustar member (`len` bytes of `data`, type `t`) at *off. */
static void put_member(unsigned char *b, size_t *off, const char *name, const char *data,
                       size_t len, char t)
{
    unsigned char *h = b + *off;
    unsigned sum = 0;

    snprintf((char *)h, 100, "%s", name);
    memcpy(h + 100, "0000644", 8);
    snprintf((char *)h + 124, 12, "%011o", (unsigned)len);
    h[156] = (unsigned char)t;
    memcpy(h + 257, ustar_magic, sizeof(ustar_magic));
    memset(h + 148, ' ', 8);
    for (int k = 0; k < 512; k++)
        sum += h[k];
    snprintf((char *)h + 148, 8, "%06o", sum);
    memcpy(h + 512, data, len);
    *off += 512 + (len + 511) / 512 * 512;
}

/* A folder that is not shards (here a DCP-like one: `.metadata` and a
 * `.distcp` file) goes to its own reader, by tar and by path alike: the
 * same refusal (whatever the DCP reader finds in these bytes), never the
 * shard reader's invalid_index. */
static void test_other_folders_go_to_their_reader(const struct svc *s, const char *root)
{
    unsigned char b[8192] = {0};
    char path[PATH_MAX], body[PATH_MAX + 64], cat[64] = "";
    struct svc_resp r;
    size_t off = 0;

    put_member(b, &off, "dcp/", "", 0, '5');
    put_member(b, &off, "dcp/.metadata", "meta", 4, '0');
    put_member(b, &off, "dcp/__0_0.distcp", "shard", 5, '0');
    snprintf(path, sizeof(path), "%s/dcp.tar", tmp_dir);
    CHECK(svc_write_file(path, b, off + 1024));
    CHECK_EQ_INT(post_tar(s, "evil", 2, path, 0, NULL, &r), 422);
    snprintf(cat, sizeof(cat), "%s", svc_js(r.json, "category") ? svc_js(r.json, "category") : "");
    CHECK(cat[0] != '\0' && strcmp(cat, "invalid_index") != 0);
    CHECK(r.body != NULL && strstr(r.body, s->data) == NULL);
    svc_resp_free(&r);
    snprintf(path, sizeof(path), "%.3000s/dcp", root);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(path, sizeof(path), "%.3000s/dcp/.metadata", root);
    CHECK(svc_write_file(path, "meta", 4));
    snprintf(path, sizeof(path), "%.3000s/dcp/__0_0.distcp", root);
    CHECK(svc_write_file(path, "shard", 5));
    snprintf(body, sizeof(body), "{\"step\": 3, \"path\": \"%s/dcp\"}", root);
    CHECK_EQ_INT(svc_post_json(s, "/v1/runs/evil/checkpoints", body, NULL, &r), 422);
    CHECK_STR_EQ(svc_js(r.json, "category"), cat);
    svc_resp_free(&r);
}

static void test_nothing_of_a_refusal_is_stored(const struct svc *s)
{
    char dir[PATH_MAX];
    struct svc_resp r;

    CHECK_EQ_INT(svc_get(s, "/v1/runs/evil/checkpoints", &r), 404);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_get(s, "/v1/runs", &r), 200);
    CHECK_EQ_INT(cJSON_GetArraySize(svc_j(r.json, "runs")), 2); /* tarred, bypath */
    svc_resp_free(&r);
    snprintf(dir, sizeof(dir), "%s/blobs/objects", s->data);
    CHECK_EQ_INT(svc_count_files(dir), 3); /* the one folder blob */
    snprintf(dir, sizeof(dir), "%s/blobs/tmp", s->data);
    CHECK_EQ_INT(svc_count_files(dir), 0);
    CHECK_EQ_INT(svc_metric(s, "farmsd_uploads_in_flight"), 0);
    CHECK_EQ_INT(svc_get(s, "/healthz", &r), 200);
    svc_resp_free(&r);
}

/* Deleting the runs removes the folder blob, with every file in it, once
 * no run's checkpoint has its identity (the path run's has). */
static void test_deleting_the_runs_removes_the_folder_blob(const struct svc *s)
{
    char dir[PATH_MAX];
    struct svc_resp r;

    snprintf(dir, sizeof(dir), "%s/blobs/objects", s->data);
    CHECK_EQ_INT(svc_req(s, "DELETE", "/v1/runs/bypath", NULL, NULL, 0, NULL, &r), 200);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_count_files(dir), 3);
    CHECK_EQ_INT(svc_req(s, "DELETE", "/v1/runs/tarred", NULL, NULL, 0, NULL, &r), 200);
    svc_resp_free(&r);
    CHECK_EQ_INT(svc_count_files(dir), 0);
}

/* Every folder kind farmsd reads travels as a tar: a DCP folder, a DeepSpeed
 * save folder (`latest` + global_step500/) and a PEFT adapter folder, each
 * tarred here with the system's GNU tar (`tar -C DIR -cf X.tar .`), give the
 * same identity, format and per-layer results as the path submission of
 * the folder itself. */
static void test_every_folder_kind_by_tar_is_the_folder(const struct svc *s)
{
    static const char *const kinds[][2] = {{"dcp/mlp_fsdp", "dcp"},
                                           {"deepspeed/zero3_fp32", "deepspeed"},
                                           {"peft/llama_lora/step0100", "peft"}};

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        char dir[PATH_MAX], tar[PATH_MAX], cmd[2 * PATH_MAX + 64], body[PATH_MAX + 64];
        char sha[THASH_HEX_LEN] = "";
        long long tar_job = -1, path_job = -1;
        struct svc_resp r;
        cJSON *job, *a, *b;

        CHECK(realpath("tests/fixtures", dir) != NULL);
        snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/%s", kinds[i][0]);
        snprintf(tar, sizeof(tar), "%s/kind%zu.tar", tmp_dir, i);
        snprintf(cmd, sizeof(cmd), "tar -C '%s' -cf '%s' .", dir, tar);
        CHECK_EQ_INT(system(cmd), 0);
        CHECK_EQ_INT(post_tar(s, "kinds-tar", (long)i, tar, 0, NULL, &r), 202);
        CHECK_STR_EQ(svc_js(r.json, "format"), kinds[i][1]);
        snprintf(sha, sizeof(sha), "%s", svc_js(r.json, "sha256") ? svc_js(r.json, "sha256") : "");
        tar_job = (long long)svc_jn(r.json, "id");
        svc_resp_free(&r);
        snprintf(body, sizeof(body), "{\"step\": %zu, \"path\": \"%s\"}", i, dir);
        CHECK_EQ_INT(svc_post_json(s, "/v1/runs/kinds-path/checkpoints", body, NULL, &r), 202);
        CHECK_STR_EQ(svc_js(r.json, "format"), kinds[i][1]);
        CHECK_STR_EQ(svc_js(r.json, "sha256"), sha);
        path_job = (long long)svc_jn(r.json, "id");
        svc_resp_free(&r);
        job = svc_wait_job(s, tar_job, 120);
        CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
        cJSON_Delete(job);
        job = svc_wait_job(s, path_job, 120);
        CHECK_STR_EQ(svc_js(job, "state"), "succeeded");
        cJSON_Delete(job);
        a = layers_of(s, "kinds-tar", (long)i);
        b = layers_of(s, "kinds-path", (long)i);
        CHECK(a != NULL && b != NULL && cJSON_GetArraySize(a) >= 3);
        CHECK_EQ_INT(cJSON_GetArraySize(a), cJSON_GetArraySize(b));
        for (const cJSON *x = a ? a->child : NULL, *y = b ? b->child : NULL; x && y;
             x = x->next, y = y->next) {
            CHECK_STR_EQ(svc_js(x, "name"), svc_js(y, "name"));
            CHECK_STR_EQ(svc_js(x, "status"), svc_js(y, "status"));
            CHECK(cJSON_Compare(svc_j(x, "alpha"), svc_j(y, "alpha"), 1));
        }
        cJSON_Delete(a);
        cJSON_Delete(b);
    }
}

int main(void)
{
    double t0 = svc_now();
    char data[PATH_MAX], root[PATH_MAX], rr[PATH_MAX], folder[PATH_MAX];
    char fixtures[PATH_MAX];
    const char *extra[] = {"--allow-root", rr,  "--allow-root", folder, "--allow-root",
                           fixtures,       NULL};
    struct svc s;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(svc_mkdtemp("svc-tar", tmp_dir, sizeof(tmp_dir)));
    snprintf(data, sizeof(data), "%s/data", tmp_dir);
    snprintf(root, sizeof(root), "%s/root", tmp_dir);
    CHECK(mkdir(root, 0700) == 0);
    CHECK(realpath(root, rr) != NULL);
    CHECK(realpath(SVC_FIX "llama/sharded", folder) != NULL);
    CHECK(realpath("tests/fixtures", fixtures) != NULL);
    if (svc_start(&s, data, extra)) {
        test_a_tar_of_a_shard_folder_is_the_folder(&s, folder);
        test_a_tar_is_checked_against_its_declared_hash(&s);
        test_a_tar_as_one_file_says_how_to_send_it(&s);
        test_every_hostile_tar_is_refused(&s);
        test_a_tar_with_too_many_members_is_refused(&s);
        test_other_folders_go_to_their_reader(&s, rr);
        test_nothing_of_a_refusal_is_stored(&s);
        test_deleting_the_runs_removes_the_folder_blob(&s);
        test_every_folder_kind_by_tar_is_the_folder(&s);
        CHECK_EQ_INT(svc_stop(&s), 0);
        if (check_n_failed)
            svc_dump_log(&s, 3000);
    } else {
        CHECK(!"server started");
    }
    svc_rm_rf(tmp_dir, check_n_failed > 0);
    curl_global_cleanup();
    printf("test_service_tar: %.1f s\n", svc_now() - t0);
    return check_report("test_service_tar");
}
