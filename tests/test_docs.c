/* test_docs.c -- the documentation stays self-contained and true to the code:
 * nothing points outside the repository (a clone has no ../shared), every
 * error category the readers in core/ can set is documented in
 * docs/checkpoint-formats.md, and every file README's examples upload or
 * link to exists. Run from the repository root. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "tests/check.h"

#define DOCS_MAX_FILE (4u << 20)

/* The whole file as a NUL-terminated string (malloc'd), or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;

    if (f == NULL)
        return NULL;
    buf = malloc(DOCS_MAX_FILE + 1);
    if (buf != NULL) {
        size_t n = fread(buf, 1, DOCS_MAX_FILE, f);
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        return 0;
    fclose(f);
    return 1;
}

/* 1 if `path` names none of the places outside the repository. */
static int mentions_nothing_outside(const char *path)
{
    static const char *const outside[] = {"../shared/", "shared/spec", "spec/checkpoint-formats",
                                          "spec/farms-numerics"};
    char *text = slurp(path);
    int ok = text != NULL;

    for (size_t i = 0; ok && i < sizeof(outside) / sizeof(outside[0]); i++)
        if (strstr(text, outside[i]) != NULL) {
            fprintf(stderr, "%s mentions %s\n", path, outside[i]);
            ok = 0;
        }
    free(text);
    return ok;
}

/* Every file of folder `dir` whose name ends in `ext`, checked as above. Returns the
 * number of files checked. */
static int check_folder(const char *dir, const char *ext)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[512];
    int n = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL && n < 10000) {
        size_t len = strlen(de->d_name), el = strlen(ext);

        if (len <= el || strcmp(de->d_name + len - el, ext) != 0 ||
            strcmp(de->d_name, "test_docs.c") == 0) /* this file names them */
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        CHECK(mentions_nothing_outside(path));
        n++;
    }
    closedir(d);
    return n;
}

static void test_nothing_points_outside_the_repository(void)
{
    static const char *const files[] = {"README.md",
                                        "docs/numerics.md",
                                        "docs/checkpoint-formats.md",
                                        "openapi.yaml",
                                        "tests/fixtures/checkpoints/README.md",
                                        "tests/fixtures/numerics/README.md"};
    static const char *const code[] = {"core", "api", "server", "storage", "tests"};

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        CHECK(mentions_nothing_outside(files[i]));
    for (size_t i = 0; i < sizeof(code) / sizeof(code[0]); i++)
        CHECK(check_folder(code[i], ".c") + check_folder(code[i], ".h") > 0);
}

/* The wire name of the category named by the identifier at `id` (an
 * ERR_CAT_X of ERR_CATEGORY_MAP, `len` bytes), or NULL. */
static const char *category_of(const char *id, size_t len)
{
    static const struct {
        const char *id, *name;
    } rows[] = {
#define X(ID, name, status, title, retry) {"ERR_CAT_" #ID, name},
        ERR_CATEGORY_MAP(X)
#undef X
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (strlen(rows[i].id) == len && strncmp(rows[i].id, id, len) == 0)
            return rows[i].name;
    return NULL;
}

/* Every ERR_CAT_X category that `text` sets is in `doc` as `name`.
 * Returns the number of categories found. */
static int check_categories_of(const char *path, const char *text, const char *doc)
{
    const char *p = text;
    int n = 0;

    while ((p = strstr(p, "ERR_CAT_")) != NULL && n < 100000) {
        size_t len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
        const char *name = category_of(p, len);
        char want[80];

        p += len;
        if (name == NULL) /* ERR_CAT_NONE */
            continue;
        snprintf(want, sizeof(want), "`%s`", name);
        if (strstr(doc, want) == NULL) {
            fprintf(stderr, "%s: category %s is not in docs/checkpoint-formats.md\n", path, want);
            CHECK(strstr(doc, want) != NULL);
        }
        n++;
    }
    return n;
}

static void test_every_reader_category_is_documented(void)
{
    static const char *const service[] = {"`changed`", "`not_regular_file`", "`timeout`", "`busy`",
                                          "`limit_exceeded`"};
    char *doc = slurp("docs/checkpoint-formats.md");
    DIR *d = opendir("core/formats");
    struct dirent *de;
    char path[512];
    int n = 0;

    CHECK(doc != NULL && d != NULL);
    if (doc == NULL || d == NULL)
        goto out;
    for (size_t i = 0; i < sizeof(service) / sizeof(service[0]); i++)
        CHECK(strstr(doc, service[i]) != NULL);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char *text;

        if (len < 3 || strcmp(de->d_name + len - 2, ".c") != 0)
            continue;
        snprintf(path, sizeof(path), "core/formats/%s", de->d_name);
        text = slurp(path);
        CHECK(text != NULL);
        if (text != NULL)
            n += check_categories_of(path, text, doc);
        free(text);
    }
    CHECK(n >= 100); /* the readers set categories in well over 100 places */
out:
    if (d != NULL)
        closedir(d);
    free(doc);
}

/* Every `curl -T FILE` of README exists (relative to the fixtures folder the
 * quick start changes into; `-` is a pipe), and every `](docs/...)` link too. */
static void test_readme_examples_name_files_that_exist(void)
{
    char *readme = slurp("README.md");
    const char *p;
    char path[512];
    int uploads = 0, links = 0;

    CHECK(readme != NULL);
    if (readme == NULL)
        return;
    CHECK(strstr(readme, "cd tests/fixtures/checkpoints\n") != NULL);
    for (p = readme; (p = strstr(p, "curl -T ")) != NULL && uploads < 100; uploads++) {
        size_t len;

        p += 8;
        len = strcspn(p, " \n");
        if (len == 1 && p[0] == '-')
            continue; /* `curl -T -`: the body comes from a pipe (a tar stream) */
        snprintf(path, sizeof(path), "tests/fixtures/checkpoints/%.*s", (int)len, p);
        if (!file_exists(path))
            fprintf(stderr, "README uploads %s, which does not exist\n", path);
        CHECK(file_exists(path));
    }
    for (p = readme; (p = strstr(p, "](docs/")) != NULL && links < 100; links++) {
        size_t len;

        p += 2;
        len = strcspn(p, ")#");
        snprintf(path, sizeof(path), "%.*s", (int)len, p);
        CHECK(file_exists(path));
    }
    CHECK(uploads >= 3); /* the quick start uploads the CNN steps at least */
    CHECK(links >= 2);
    free(readme);
}

int main(void)
{
    test_nothing_points_outside_the_repository();
    test_every_reader_category_is_documented();
    test_readme_examples_name_files_that_exist();
    return check_report("test_docs");
}
