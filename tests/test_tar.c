/* test_tar.c -- the tar push parser (core/formats/tar.c) and folder uploads
 * (storage/blob_dir.c).
 *
 * The fixtures in tests/fixtures/tar/ are real tars written by GNU tar 1.34
 * and Python's tarfile, and hostile or malformed ones crafted by
 * make_tar_fixtures.py; manifest.tsv says what each must give. Every
 * fixture is parsed whole and in pieces of 1, 7, 511 and 4096 bytes, which
 * must report the same members and the same category. Extraction must
 * refuse exactly what the manifest says and leave nothing behind when it
 * refuses. Run from the repository root.
 */
#include "core/formats/tar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/formats/ckpt_id.h"
#include "core/formats/thash.h"
#include "storage/blob_dir.h"
#include "tests/check.h"
#include "tests/file_util.h"

#define FIX "tests/fixtures/tar/"

static const unsigned char ustar_magic[8] = {'u', 's', 't', 'a', 'r', 0, '0', '0'};

/* The tests' limits (the manifest's limit_exceeded rows rely on them). */
static const struct tar_limits test_limits = {
    .max_members = 64, .max_member_bytes = 1u << 20, .max_total_bytes = 4u << 20};

/* --- A listing recorder ------------------------------------------------------ */

struct rec {
    char listing[16384]; /* "name/" or "name:size", ';'-joined */
    uint64_t data_bytes; /* bytes seen through the data callback */
    int n_end, n_files;
    int fail_at; /* >0: the member callback fails on this (1-based) member */
};

static void rec_add(struct rec *r, const char *s)
{
    size_t n = strlen(r->listing);
    snprintf(r->listing + n, sizeof(r->listing) - n, "%s%s", n ? ";" : "", s);
}

static enum err_code rec_member(void *arg, const struct tar_member *m, struct err *e)
{
    struct rec *r = arg;
    char s[TAR_NAME_MAX + 32];

    if (r->fail_at > 0 && (int)m->index + 1 == r->fail_at)
        return err_set(e, ERR_IO, "callback refuses member %llu", (unsigned long long)m->index);
    if (m->kind == TAR_KIND_DIR)
        snprintf(s, sizeof(s), "%s/", m->name);
    else
        snprintf(s, sizeof(s), "%s:%llu", m->name, (unsigned long long)m->size);
    r->n_files += m->kind == TAR_KIND_FILE;
    rec_add(r, s);
    return ERR_OK;
}

static enum err_code rec_data(void *arg, const void *data, size_t len, struct err *e)
{
    struct rec *r = arg;
    (void)data;
    (void)e;
    r->data_bytes += len;
    return ERR_OK;
}

static enum err_code rec_end(void *arg, struct err *e)
{
    struct rec *r = arg;
    (void)e;
    r->n_end++;
    return ERR_OK;
}

/* Parse `buf` in pieces of `piece` bytes (0: whole). Returns the category
 * ("ok" on success) in a static buffer; fills r. */
static const char *parse(const unsigned char *buf, size_t len, size_t piece,
                         const struct tar_limits *lim, struct rec *r)
{
    static char cat[64];
    struct tar_callbacks cb = {.member = rec_member, .data = rec_data, .end = rec_end, .arg = r};
    struct tar_parser *p = NULL;
    struct err e = {0};
    enum err_code rc = tar_parser_new(lim, &cb, &p, &e);

    for (size_t off = 0; rc == ERR_OK && off < len;) {
        size_t k = piece == 0 || len - off < piece ? len - off : piece;
        rc = tar_push(p, buf + off, k, &e);
        off += k;
    }
    if (rc == ERR_OK)
        rc = tar_finish(p, &e);
    tar_parser_free(p);
    snprintf(cat, sizeof(cat), "%s", rc == ERR_OK ? "ok" : err_category(&e));
    return cat;
}

/* --- The manifest ----------------------------------------------------------------- */

struct row {
    char file[128], parse[64], extract[64], listing[8192];
};

/* Read manifest.tsv's rows into `rows` (at most `cap`). */
static size_t manifest(struct row *rows, size_t cap)
{
    FILE *f = fopen(FIX "manifest.tsv", "r");
    static char line[16384];
    size_t n = 0;

    CHECK(f != NULL);
    if (f == NULL)
        return 0;
    while (n < cap && fgets(line, sizeof(line), f) != NULL) {
        char *fields[5] = {0}, *save = NULL, *t;
        int k = 0;
        if (line[0] == '#')
            continue;
        line[strcspn(line, "\n")] = '\0';
        for (t = line; k < 5; k++) { /* empty fields kept (strtok would drop them) */
            fields[k] = t;
            t = strchr(t, '\t');
            if (t == NULL)
                break;
            *t++ = '\0';
        }
        (void)save;
        if (fields[2] == NULL)
            continue;
        snprintf(rows[n].file, sizeof(rows[n].file), "%s", fields[0]);
        snprintf(rows[n].parse, sizeof(rows[n].parse), "%s", fields[1]);
        snprintf(rows[n].extract, sizeof(rows[n].extract), "%s", fields[2]);
        snprintf(rows[n].listing, sizeof(rows[n].listing), "%s", fields[3] ? fields[3] : "");
        n++;
    }
    fclose(f);
    return n;
}

static void test_every_fixture_parses_as_the_manifest_says_in_any_pieces(void)
{
    static struct row rows[64];
    static const size_t pieces[] = {0, 1, 7, 511, 4096};
    size_t n = manifest(rows, 64);

    CHECK(n >= 40);
    for (size_t i = 0; i < n; i++) {
        char path[256];
        size_t len = 0;
        unsigned char *buf;

        snprintf(path, sizeof(path), FIX "%s", rows[i].file);
        buf = fu_read(path, &len);
        CHECK(buf != NULL);
        if (buf == NULL)
            continue;
        for (size_t j = 0; j < sizeof(pieces) / sizeof(pieces[0]); j++) {
            static struct rec r;
            const char *cat;

            memset(&r, 0, sizeof(r));
            cat = parse(buf, len, pieces[j], &test_limits, &r);
            if (strcmp(cat, rows[i].parse) != 0)
                fprintf(stderr, "%s (pieces of %zu): %s\n", rows[i].file, pieces[j], cat);
            CHECK_STR_EQ(cat, rows[i].parse);
            if (strcmp(rows[i].parse, "ok") == 0 && rows[i].listing[0] != '\0')
                CHECK_STR_EQ(r.listing, rows[i].listing);
            if (strcmp(rows[i].parse, "ok") == 0)
                CHECK_EQ_INT(r.n_end, r.n_files); /* every file's end, empty ones too */
        }
        free(buf);
    }
}

/* The long names reach the parser whole in every format: GNU 'L', pax
 * path, and ustar's prefix field. */
static void test_long_names_are_read_in_every_format(void)
{
    static const char *const files[] = {"gnu_gnu.tar",  "gnu_pax.tar", "gnu_ustar.tar",
                                        "py_ustar.tar", "py_gnu.tar",  "py_pax.tar"};
    char want[256];

    snprintf(want, sizeof(want), "ckpt/sub/%.90s/%.60s/config.json:9",
             "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
             "dddddddddddddddd",
             "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        static struct rec r;
        char path[256];
        size_t len = 0;
        unsigned char *buf;

        snprintf(path, sizeof(path), FIX "%s", files[i]);
        buf = fu_read(path, &len);
        memset(&r, 0, sizeof(r));
        CHECK_STR_EQ(parse(buf, len, 0, NULL, &r), "ok");
        CHECK(strstr(r.listing, want) != NULL);
        CHECK_EQ_INT(r.data_bytes, 409); /* 400 + 0 + 9 */
        free(buf);
    }
}

/* --- Crafted streams ----------------------------------------------------------------- */

/* Append a ustar header for `name` (`size`, type `t`) to `b` at *off. */
static void put_header(unsigned char *b, size_t *off, const char *name, uint64_t size, char t)
{
    unsigned char *h = b + *off;
    unsigned sum = 0;

    memset(h, 0, TAR_BLOCK);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    h[156] = (unsigned char)t;
    memcpy(h + 257, ustar_magic, sizeof(ustar_magic));
    memset(h + 148, ' ', 8);
    for (int i = 0; i < TAR_BLOCK; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    *off += TAR_BLOCK;
}

/* Append a file member with `size` bytes of 'a' (padded). */
static void put_file(unsigned char *b, size_t *off, const char *name, size_t size)
{
    put_header(b, off, name, size, '0');
    memset(b + *off, 'a', size);
    *off += (size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

static void test_names_are_normalised_and_the_root_is_skipped(void)
{
    static unsigned char b[8192];
    static struct rec r;
    size_t off = 0;

    memset(b, 0, sizeof(b));
    put_header(b, &off, "./", 0, '5');
    put_file(b, &off, "./a//b/./c.bin", 3);
    put_header(b, &off, "d/", 0, '5');
    put_file(b, &off, "e", 0);
    memset(&r, 0, sizeof(r));
    CHECK_STR_EQ(parse(b, off + 1024, 0, NULL, &r), "ok");
    CHECK_STR_EQ(r.listing, "a/b/c.bin:3;d/;e:0");
    CHECK_EQ_INT(r.n_end, 2);
    CHECK_EQ_INT(r.data_bytes, 3);
}

static void test_total_and_member_limits_and_counts(void)
{
    static unsigned char b[16384];
    static struct rec r;
    struct tar_limits lim = {.max_members = 3, .max_member_bytes = 1000, .max_total_bytes = 1500};
    size_t off = 0;

    memset(b, 0, sizeof(b));
    put_file(b, &off, "a", 900);
    put_file(b, &off, "b", 900); /* 1800 together: over 1500 */
    memset(&r, 0, sizeof(r));
    CHECK_STR_EQ(parse(b, off + 1024, 0, &lim, &r), "limit_exceeded");
    CHECK_STR_EQ(r.listing, "a:900");

    off = 0;
    memset(b, 0, sizeof(b));
    put_file(b, &off, "big", 1001); /* one member over 1000 */
    memset(&r, 0, sizeof(r));
    CHECK_STR_EQ(parse(b, off + 1024, 0, &lim, &r), "limit_exceeded");
    CHECK_STR_EQ(r.listing, "");

    off = 0;
    memset(b, 0, sizeof(b));
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%d", i);
        put_file(b, &off, name, 0);
    }
    memset(&r, 0, sizeof(r));
    CHECK_STR_EQ(parse(b, off + 1024, 0, &lim, &r), "limit_exceeded");
    CHECK_STR_EQ(r.listing, "f0:0;f1:0;f2:0");
    lim.max_members = 4; /* exactly at the limit is fine */
    memset(&r, 0, sizeof(r));
    CHECK_STR_EQ(parse(b, off + 1024, 0, &lim, &r), "ok");
}

static void test_a_callback_error_stops_the_parser_for_good(void)
{
    static unsigned char b[8192];
    static struct rec r;
    struct tar_callbacks cb = {.member = rec_member, .arg = &r};
    struct tar_parser *p = NULL;
    struct err e = {0};
    size_t off = 0;

    memset(b, 0, sizeof(b));
    put_file(b, &off, "a", 1);
    put_file(b, &off, "b", 1);
    memset(&r, 0, sizeof(r));
    r.fail_at = 2;
    CHECK_EQ_INT(tar_parser_new(NULL, &cb, &p, &e), ERR_OK);
    CHECK_EQ_INT(tar_push(p, b, off + 1024, &e), ERR_IO);
    CHECK(strstr(e.msg, "callback refuses member 1") != NULL);
    CHECK_EQ_INT(tar_n_members(p), 1);
    CHECK_EQ_INT(tar_push(p, b, 1, &e), ERR_INVAL);
    CHECK_EQ_INT(tar_finish(p, &e), ERR_INVAL);
    tar_parser_free(p);
    tar_parser_free(NULL);
}

/* A pax size record overrides the header's size field (GNU tar writes
 * sizes over 8 GiB this way). */
static void test_pax_size_overrides_the_header(void)
{
    static unsigned char b[8192];
    static struct rec r;
    const char *recs = "11 size=20\n";
    size_t off = 0;

    memset(b, 0, sizeof(b));
    put_header(b, &off, "PaxHeader", strlen(recs), 'x');
    snprintf((char *)b + off, TAR_BLOCK, "%s", recs);
    off += TAR_BLOCK;
    put_header(b, &off, "f", 0, '0'); /* header says 0 */
    memset(b + off, 'z', 20);
    off += TAR_BLOCK;
    memset(&r, 0, sizeof(r));
    CHECK_STR_EQ(parse(b, off + 1024, 0, NULL, &r), "ok");
    CHECK_STR_EQ(r.listing, "f:20");
    CHECK_EQ_INT(r.data_bytes, 20);
}

/* --- Extraction (storage/blob_dir.c) -------------------------------------------- */

static char store_dir[] = "/tmp/test_tar_XXXXXX";

/* Entries in folder `path` (0 if it cannot be read). */
static int n_entries(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Entries of the one folder in folder `path` (-1 if there is none). */
static int n_entries_in_only(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char sub[1024] = "";
    int n = -1;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
    closedir(d);
    if (sub[0] != '\0')
        n = n_entries(sub);
    return n;
}

/* Remove folder `path` and everything under it (the test's own). */
static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char sub[1024];
    struct stat st;

    if (d == NULL) {
        unlink(path);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            rm_rf(sub);
        else
            unlink(sub);
    }
    closedir(d);
    rmdir(path);
}

/* Extract fixture `file` into a new folder upload of `b`: the category
 * ("ok"), the root (copied into root, `len` bytes) and whether it is a file. */
static const char *extract(struct blob_store *b, const char *file, struct blob_dir **out,
                           char *root, size_t len, int *is_file)
{
    static char cat[64];
    struct blob_dir *d = NULL;
    const char *r = NULL;
    char path[256];
    struct err e = {0};
    enum err_code rc;

    snprintf(path, sizeof(path), FIX "%s", file);
    rc = blob_dir_create(b, &d, &e);
    if (rc == ERR_OK)
        rc = blob_dir_extract_tar(d, path, &test_limits, &e);
    if (rc == ERR_OK)
        rc = blob_dir_root(d, &r, is_file, &e);
    if (rc == ERR_OK)
        snprintf(root, len, "%s", r);
    snprintf(cat, sizeof(cat), "%s", rc == ERR_OK ? "ok" : err_category(&e));
    *out = d;
    return cat;
}

static void test_every_fixture_extracts_as_the_manifest_says_and_refusals_leave_nothing(void)
{
    static struct row rows[64];
    char tmp[512], objects[512], root[BLOB_PATH_MAX];
    struct blob_store *b = NULL;
    size_t n = manifest(rows, 64);
    struct err e = {0};

    CHECK_EQ_INT(blob_store_open(store_dir, &b, &e), ERR_OK);
    snprintf(tmp, sizeof(tmp), "%s/tmp", store_dir);
    snprintf(objects, sizeof(objects), "%s/objects", store_dir);
    for (size_t i = 0; i < n && b != NULL; i++) {
        struct blob_dir *d = NULL;
        int is_file = 0;
        const char *cat = extract(b, rows[i].file, &d, root, sizeof(root), &is_file);

        if (strcmp(cat, rows[i].extract) != 0)
            fprintf(stderr, "%s: extract %s\n", rows[i].file, cat);
        CHECK_STR_EQ(cat, rows[i].extract);
        CHECK_EQ_INT(n_entries(tmp), 1); /* the upload's folder, until abort */
        if (strcmp(rows[i].parse, "ok") != 0)
            CHECK_EQ_INT(n_entries_in_only(tmp), 0); /* a refused stream writes nothing */
        blob_dir_abort(d);
        CHECK_EQ_INT(n_entries(tmp), 0);
        CHECK_EQ_INT(n_entries(objects), 0);
    }
    blob_store_close(b);
}

/* `tar c ckpt/`, `tar -C ckpt -c .` and Python's tarfile give one root
 * with the same files: the same content identity, one blob. */
static void test_the_top_folder_is_followed_and_identity_is_the_folders(void)
{
    static const char *const files[] = {"gnu_gnu.tar", "gnu_dot.tar", "py_pax.tar",
                                        "gnu_ustar.tar"};
    char root[BLOB_PATH_MAX], first[THASH_HEX_LEN] = "", sub[BLOB_PATH_MAX + 256];
    struct blob_store *b = NULL;
    struct err e = {0};
    struct stat st;

    CHECK_EQ_INT(blob_store_open(store_dir, &b, &e), ERR_OK);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && b != NULL; i++) {
        struct blob_committed c = {0};
        struct blob_dir *d = NULL;
        struct ckpt_id id;
        int is_file = 1;

        CHECK_STR_EQ(extract(b, files[i], &d, root, sizeof(root), &is_file), "ok");
        CHECK_EQ_INT(is_file, 0);
        snprintf(sub, sizeof(sub), "%s/model-00001-of-00002.safetensors", root);
        CHECK(stat(sub, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 400);
        CHECK_EQ_INT(blob_dir_bytes(d), 409);
        CHECK_EQ_INT(ckpt_identity(root, NULL, &id, &e), ERR_OK);
        CHECK_EQ_INT(id.sharded, 1);
        if (i == 0)
            snprintf(first, sizeof(first), "%s", id.sha256);
        CHECK_STR_EQ(id.sha256, first);
        CHECK_EQ_INT(blob_dir_commit(d, id.sha256, &c, &e), ERR_OK);
        CHECK_EQ_INT(c.existed, i > 0);
        CHECK_EQ_INT(blob_dir_commit(d, id.sha256, &c, &e), ERR_INVAL); /* once */
        blob_dir_abort(d);
        CHECK(blob_exists(b, first));
        snprintf(sub, sizeof(sub), "%s/model-00002-of-00002.safetensors", c.path);
        CHECK(stat(sub, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0);
    }
    snprintf(root, sizeof(root), "%s/tmp", store_dir);
    CHECK_EQ_INT(n_entries(root), 0);
    if (b != NULL) {
        int removed = 0;
        CHECK_EQ_INT(blob_remove(b, first, &removed, &e), ERR_OK);
        CHECK_EQ_INT(removed, 1);
        CHECK(!blob_exists(b, first));
    }
    blob_store_close(b);
}

/* A tar of one file is that file: the same blob as its octet-stream upload. */
static void test_a_single_file_tar_is_that_file(void)
{
    char root[BLOB_PATH_MAX];
    struct blob_store *b = NULL;
    struct blob_dir *d = NULL;
    struct err e = {0};
    struct ckpt_id id;
    int is_file = 0;

    CHECK_EQ_INT(blob_store_open(store_dir, &b, &e), ERR_OK);
    if (b == NULL)
        return;
    CHECK_STR_EQ(extract(b, "single_file.tar", &d, root, sizeof(root), &is_file), "ok");
    CHECK_EQ_INT(is_file, 1);
    CHECK(strstr(root, "/model.safetensors") != NULL);
    CHECK_EQ_INT(ckpt_identity(root, NULL, &id, &e), ERR_OK);
    CHECK_EQ_INT(id.size, 16);
    CHECK_EQ_INT(blob_dir_commit(d, id.sha256, NULL, &e), ERR_OK);
    blob_dir_abort(d);
    CHECK(blob_exists(b, id.sha256));
    CHECK_EQ_INT(blob_remove(b, id.sha256, NULL, &e), ERR_OK);
    blob_store_close(b);
}

/* A folder upload interrupted by a crash (its process gone) is removed by
 * the next cleanup like a file upload's tmp file; age alone removes it too. */
static void test_tmp_cleanup_removes_abandoned_folders(void)
{
    char path[512];
    struct blob_store *b = NULL;
    struct err e = {0};
    int64_t n = 0;

    CHECK_EQ_INT(blob_store_open(store_dir, &b, &e), ERR_OK);
    if (b == NULL)
        return;
    snprintf(path, sizeof(path), "%s/tmp/upload-otherhost-12345-abcdef", store_dir);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(path, sizeof(path), "%s/tmp/upload-otherhost-12345-abcdef/a", store_dir);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(path, sizeof(path), "%s/tmp/upload-otherhost-12345-abcdef/a/f", store_dir);
    CHECK(close(open(path, O_CREAT | O_WRONLY, 0600)) == 0);
    CHECK_EQ_INT(blob_tmp_cleanup(b, 3600, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 0); /* another host's, young: kept */
    CHECK_EQ_INT(blob_tmp_cleanup(b, 0, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 1);
    snprintf(path, sizeof(path), "%s/tmp", store_dir);
    CHECK_EQ_INT(n_entries(path), 0);
    blob_store_close(b);
}

/* A check that refuses the .distcp file (by its resolved path). */
static enum err_code refuse_distcp(const void *arg, const char *path, struct err *e)
{
    (void)arg;
    if (strstr(path, ".distcp") != NULL && path[0] == '/')
        return err_setc(e, ERR_INVAL, ERR_CAT_PATH_NOT_ALLOWED, "refused %s", path);
    return ERR_OK;
}

/* A folder that is not shards (DCP, adapter, DeepSpeed: sniffed by its
 * entries) is identified by every file under it, by relative name. */
static void test_a_dcp_folder_identity_covers_every_file(void)
{
    char dir[] = "/tmp/test_tar_dcp_XXXXXX", path[256];
    struct ckpt_id id, id2;
    struct err e = {0};
    FILE *f;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/.metadata", dir);
    f = fopen(path, "wb");
    CHECK(f != NULL && fputs("meta", f) >= 0 && fclose(f) == 0);
    snprintf(path, sizeof(path), "%s/__0_0.distcp", dir);
    f = fopen(path, "wb");
    CHECK(f != NULL && fputs("shard", f) >= 0 && fclose(f) == 0);
    CHECK_EQ_INT(ckpt_identity(dir, NULL, &id, &e), ERR_OK);
    CHECK_EQ_INT(id.sharded, 0);
    CHECK_EQ_INT(id.size, 9);
    {
        /* sha256(".metadata\0" hex("meta") "\n" "__0_0.distcp\0" hex("shard") "\n") */
        unsigned char dg[THASH_DIGEST_LEN];
        char hm[THASH_HEX_LEN], hs[THASH_HEX_LEN], want[THASH_HEX_LEN];
        struct thash h = {0};

        CHECK_EQ_INT(thash_init(&h, &e), ERR_OK);
        CHECK_EQ_INT(thash_update(&h, "meta", 4, &e), ERR_OK);
        CHECK_EQ_INT(thash_final(&h, dg, &e), ERR_OK);
        thash_hex(dg, hm);
        thash_free(&h);
        CHECK_EQ_INT(thash_init(&h, &e), ERR_OK);
        CHECK_EQ_INT(thash_update(&h, "shard", 5, &e), ERR_OK);
        CHECK_EQ_INT(thash_final(&h, dg, &e), ERR_OK);
        thash_hex(dg, hs);
        thash_free(&h);
        CHECK_EQ_INT(thash_init(&h, &e), ERR_OK);
        CHECK_EQ_INT(thash_update(&h, ".metadata", 10, &e), ERR_OK);
        CHECK_EQ_INT(thash_update(&h, hm, 64, &e), ERR_OK);
        CHECK_EQ_INT(thash_update(&h, "\n__0_0.distcp", 14, &e), ERR_OK);
        CHECK_EQ_INT(thash_update(&h, hs, 64, &e), ERR_OK);
        CHECK_EQ_INT(thash_update(&h, "\n", 1, &e), ERR_OK);
        CHECK_EQ_INT(thash_final(&h, dg, &e), ERR_OK);
        thash_hex(dg, want);
        thash_free(&h);
        CHECK_STR_EQ(id.sha256, want);
    }
    {
        /* every file is vetted (path ingestion: its realpath under a root) */
        struct ckpt_id_opts o = {.check = refuse_distcp};
        CHECK_EQ_INT(ckpt_identity(dir, &o, &id2, &e), ERR_INVAL);
        CHECK_STR_EQ(err_category(&e), "path_not_allowed");
    }
    f = fopen(path, "ab"); /* any byte of any file changes it */
    CHECK(f != NULL && fputs("!", f) >= 0 && fclose(f) == 0);
    CHECK_EQ_INT(ckpt_identity(dir, NULL, &id2, &e), ERR_OK);
    CHECK(strcmp(id.sha256, id2.sha256) != 0);
    unlink(path);
    snprintf(path, sizeof(path), "%s/.metadata", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_every_fixture_parses_as_the_manifest_says_in_any_pieces();
    test_long_names_are_read_in_every_format();
    test_names_are_normalised_and_the_root_is_skipped();
    test_total_and_member_limits_and_counts();
    test_a_callback_error_stops_the_parser_for_good();
    test_pax_size_overrides_the_header();
    CHECK(mkdtemp(store_dir) != NULL);
    test_every_fixture_extracts_as_the_manifest_says_and_refusals_leave_nothing();
    test_the_top_folder_is_followed_and_identity_is_the_folders();
    test_a_single_file_tar_is_that_file();
    test_tmp_cleanup_removes_abandoned_folders();
    test_a_dcp_folder_identity_covers_every_file();
    rm_rf(store_dir);
    return check_report("test_tar");
}
