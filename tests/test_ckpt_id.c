/* test_ckpt_id.c -- the content identity of a path checkpoint
 * (core/ckpt_id.h): a file's SHA-256 and size are the manifest's; an index,
 * the same index under another name declared as one, and its folder have
 * the identity of the rule, computed here from the manifest's shard hashes;
 * the shard check sees every shard's realpath in name order and stops the
 * walk; non-regular files (a FIFO as the path, as a folder's shard and as a
 * folder's index, a device) are refused with not_regular_file without
 * blocking (each in a child process under alarm(), so a block or a crash is
 * a failed check); a missing file is ERR_NOTFOUND.
 * Run from the repository root. */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "core/formats/ckpt_id.h"
#include "tests/check.h"
#include "tests/file_util.h"

#define FIX    "tests/fixtures/checkpoints/"
#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"

static cJSON *manifest;
static char tmp_dir[64];

static int copy_file(const char *from, const char *to)
{
    size_t n;
    char *b = fu_read(from, &n);
    FILE *f = b != NULL ? fopen(to, "wb") : NULL;
    int ok = f != NULL && fwrite(b, 1, n, f) == n;

    if (f != NULL && fclose(f) != 0)
        ok = 0;
    free(b);
    return ok;
}

/* The manifest's entry for `rel`: its string member `key`, or "". */
static const char *fix_str(const char *rel, const char *key)
{
    const cJSON *f;

    cJSON_ArrayForEach(f, cJSON_GetObjectItem(manifest, "files"))
    {
        const cJSON *p = cJSON_GetObjectItem(f, "path"), *v = cJSON_GetObjectItem(f, key);
        if (cJSON_IsString(p) && strcmp(p->valuestring, rel) == 0 && cJSON_IsString(v))
            return v->valuestring;
    }
    return "";
}

static double fix_num(const char *rel, const char *key)
{
    const cJSON *f;

    cJSON_ArrayForEach(f, cJSON_GetObjectItem(manifest, "files"))
    {
        const cJSON *p = cJSON_GetObjectItem(f, "path"), *v = cJSON_GetObjectItem(f, key);
        if (cJSON_IsString(p) && strcmp(p->valuestring, rel) == 0 && cJSON_IsNumber(v))
            return v->valuedouble;
    }
    return -1;
}

/* The identity rule over the two LLaMA shards, from the manifest. */
static void index_rule(char hex[THASH_HEX_LEN])
{
    static const char *const shard[2] = {SHARD1, SHARD2};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char d[32];
    unsigned n = 0;

    hex[0] = '\0';
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    for (int i = 0; i < 2; i++) {
        char rel[128];
        const char *sha;
        snprintf(rel, sizeof(rel), "llama/sharded/%s", shard[i]);
        sha = fix_str(rel, "sha256");
        EVP_DigestUpdate(md, shard[i], strlen(shard[i]) + 1);
        EVP_DigestUpdate(md, sha, strlen(sha));
        EVP_DigestUpdate(md, "\n", 1);
    }
    if (EVP_DigestFinal_ex(md, d, &n) == 1 && n == 32)
        for (int i = 0; i < 32; i++)
            snprintf(hex + (size_t)2 * i, 3, "%02x", d[i]);
out:
    EVP_MD_CTX_free(md);
}

static void test_a_file_is_its_sha256(void)
{
    struct ckpt_id id;
    struct err e = {0};

    CHECK_EQ_INT(ckpt_identity(FIX "mlp/mlp_step0500.safetensors", NULL, &id, &e), ERR_OK);
    CHECK_STR_EQ(id.sha256, fix_str("mlp/mlp_step0500.safetensors", "sha256"));
    CHECK_EQ_INT(id.size, 203792);
    CHECK_EQ_INT(id.sharded, 0);
    /* another format, the same rule */
    CHECK_EQ_INT(ckpt_identity(FIX "mlp/mlp_step0100.pt", NULL, &id, &e), ERR_OK);
    CHECK_STR_EQ(id.sha256, fix_str("mlp/mlp_step0100.pt", "sha256"));
    CHECK_EQ_INT(id.size, (long long)fix_num("mlp/mlp_step0100.pt", "size"));
}

/* The shard check: records what it saw; refuses the shard named `refuse`. */
struct seen {
    int n;
    char paths[4][PATH_MAX];
    const char *refuse;
};

static enum err_code record_shard(const void *arg, const char *shard, struct err *e)
{
    struct seen *s = (struct seen *)(uintptr_t)arg;
    const char *base = strrchr(shard, '/');

    if (s->n < 4)
        snprintf(s->paths[s->n], PATH_MAX, "%s", shard);
    s->n++;
    if (s->refuse != NULL && base != NULL && strcmp(base + 1, s->refuse) == 0)
        return err_setc(e, ERR_INVAL, ERR_CAT_PATH_NOT_ALLOWED, "refused %s", base + 1);
    return ERR_OK;
}

static void test_an_index_and_its_folder_follow_the_rule(void)
{
    char want[THASH_HEX_LEN], dir[PATH_MAX], p[PATH_MAX + 64], q[PATH_MAX + 64];
    struct ckpt_id id;
    struct err e = {0};
    struct seen seen = {0};

    index_rule(want);
    CHECK(strlen(want) == THASH_HEX_LEN - 1);
    CHECK_EQ_INT(ckpt_identity(FIX "llama/sharded/model.safetensors.index.json",
                               &(struct ckpt_id_opts){.check = record_shard, .check_arg = &seen},
                               &id, &e),
                 ERR_OK);
    CHECK_STR_EQ(id.sha256, want);
    CHECK_EQ_INT(id.size, 156184 + 149256);
    CHECK_EQ_INT(id.sharded, 1);
    CHECK_EQ_INT(seen.n, 2);
    CHECK(realpath(FIX "llama/sharded", dir) != NULL);
    snprintf(p, sizeof(p), "%s/" SHARD1, dir);
    CHECK_STR_EQ(seen.paths[0], p);
    snprintf(p, sizeof(p), "%s/" SHARD2, dir);
    CHECK_STR_EQ(seen.paths[1], p);

    CHECK_EQ_INT(ckpt_identity(FIX "llama/sharded", NULL, &id, &e), ERR_OK);
    CHECK_STR_EQ(id.sha256, want);
    CHECK_EQ_INT(id.sharded, 1);

    /* an index under another name is one when declared so */
    snprintf(p, sizeof(p), "%s/" SHARD1, tmp_dir);
    CHECK(copy_file(FIX "llama/sharded/" SHARD1, p));
    snprintf(p, sizeof(p), "%s/" SHARD2, tmp_dir);
    CHECK(copy_file(FIX "llama/sharded/" SHARD2, p));
    snprintf(q, sizeof(q), "%s/weights.json", tmp_dir);
    CHECK(copy_file(FIX "llama/sharded/model.safetensors.index.json", q));
    CHECK_EQ_INT(ckpt_identity(q, &(struct ckpt_id_opts){.declared = CKPT_FORMAT_SAFETENSORS_INDEX},
                               &id, &e),
                 ERR_OK);
    CHECK_STR_EQ(id.sha256, want);
    CHECK_EQ_INT(id.sharded, 1);

    /* the check stops the walk with its own error */
    seen = (struct seen){.refuse = SHARD2};
    CHECK_EQ_INT(ckpt_identity(FIX "llama/sharded",
                               &(struct ckpt_id_opts){.check = record_shard, .check_arg = &seen},
                               &id, &e),
                 ERR_INVAL);
    CHECK_STR_EQ(err_category(&e), "path_not_allowed");
    CHECK_STR_EQ(e.msg, "refused " SHARD2);
    CHECK_EQ_INT(seen.n, 2);
    CHECK_STR_EQ(id.sha256, "");
}

/* ckpt_identity(path) in a child under alarm(10): 1 if it returned
 * ERR_FORMAT / not_regular_file (no block, no crash). */
static int refused_as_not_regular(const char *path)
{
    int ws = 0;
    pid_t pid = fork();

    if (pid == 0) {
        struct ckpt_id id;
        struct err e = {0};
        enum err_code rc;
        alarm(10);
        rc = ckpt_identity(path, NULL, &id, &e);
        _exit(rc == ERR_FORMAT && e.category == ERR_CAT_NOT_REGULAR_FILE &&
                      strstr(e.msg, "only regular files") != NULL
                  ? 0
                  : 1);
    }
    if (pid < 0 || waitpid(pid, &ws, 0) != pid)
        return 0;
    if (!WIFEXITED(ws))
        fprintf(stderr, "  %s: child killed by signal %d\n", path, WTERMSIG(ws));
    return WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

static void test_non_regular_files_are_refused_without_blocking(void)
{
    char fifo[PATH_MAX], dir1[PATH_MAX], dir2[PATH_MAX], p[PATH_MAX + 64];

    snprintf(fifo, sizeof(fifo), "%s/pipe.safetensors", tmp_dir);
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(refused_as_not_regular(fifo));

    snprintf(dir1, sizeof(dir1), "%s/fifo_shard", tmp_dir); /* a FIFO among the shards */
    CHECK(mkdir(dir1, 0700) == 0);
    snprintf(p, sizeof(p), "%s/" SHARD1, dir1);
    CHECK(copy_file(FIX "llama/sharded/" SHARD1, p));
    snprintf(p, sizeof(p), "%s/" SHARD2, dir1);
    CHECK(mkfifo(p, 0600) == 0);
    CHECK(refused_as_not_regular(dir1));

    snprintf(dir2, sizeof(dir2), "%s/fifo_index", tmp_dir); /* a FIFO as the folder's index */
    CHECK(mkdir(dir2, 0700) == 0);
    snprintf(p, sizeof(p), "%s/" SHARD1, dir2);
    CHECK(copy_file(FIX "llama/sharded/" SHARD1, p));
    snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir2);
    CHECK(mkfifo(p, 0600) == 0);
    CHECK(refused_as_not_regular(dir2));

    CHECK(refused_as_not_regular("/dev/null")); /* a device */
}

static void test_a_missing_file_is_not_found(void)
{
    char p[PATH_MAX];
    struct ckpt_id id;
    struct err e = {0};

    snprintf(p, sizeof(p), "%s/no-such.safetensors", tmp_dir);
    CHECK_EQ_INT(ckpt_identity(p, NULL, &id, &e), ERR_NOTFOUND);
    CHECK(strstr(e.msg, "no-such.safetensors") != NULL);
    CHECK_STR_EQ(id.sha256, "");
}

int main(void)
{
    size_t n;
    char *m = fu_read(FIX "manifest.json", &n), cmd[128];

    manifest = m != NULL ? cJSON_ParseWithLength(m, n) : NULL;
    free(m);
    CHECK(manifest != NULL);
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/farmsd-ckpt-id-XXXXXX");
    CHECK(mkdtemp(tmp_dir) != NULL);
    if (manifest != NULL) {
        test_a_file_is_its_sha256();
        test_an_index_and_its_folder_follow_the_rule();
        test_non_regular_files_are_refused_without_blocking();
        test_a_missing_file_is_not_found();
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp_dir);
    cJSON_Delete(manifest);
    return check_report("test_ckpt_id");
}
