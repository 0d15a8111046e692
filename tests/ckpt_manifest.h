/* ckpt_manifest.h -- check checkpoint readers against fixtures/checkpoints/manifest.json.
 *
 * For every manifest entry of one format: open the file with ckpt_open() as
 * that declared format; a good file must list exactly the manifest's tensors
 * (names, dtypes, shapes, order unless the format is an index), whose bytes
 * from ckpt_tensor_read() have the manifest's SHA-256 and whose decoded sum
 * and first values match; a malformed file must fail with one of its
 * `expect` categories. Header-only test helper (static functions, include
 * from one test file after check.h). Not thread-safe.
 */
#ifndef TESTS_CKPT_MANIFEST_H
#define TESTS_CKPT_MANIFEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "core/formats/ckpt.h"
#include "tests/check.h"

#define CM_DIR "tests/fixtures/checkpoints/"

static cJSON *cm_load(void)
{
    FILE *f = fopen(CM_DIR "manifest.json", "rb");
    char *text = NULL;
    cJSON *j = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        text = malloc((size_t)n);
        if (text != NULL && fread(text, 1, (size_t)n, f) == (size_t)n)
            j = cJSON_ParseWithLength(text, (size_t)n);
    }
    free(text);
    fclose(f);
    return j;
}

static enum ckpt_format cm_format(const char *s)
{
    if (strcmp(s, "safetensors") == 0)
        return CKPT_FORMAT_SAFETENSORS;
    if (strcmp(s, "safetensors_index") == 0)
        return CKPT_FORMAT_SAFETENSORS_INDEX;
    if (strcmp(s, "npy") == 0)
        return CKPT_FORMAT_NPY;
    if (strcmp(s, "npz") == 0)
        return CKPT_FORMAT_NPZ;
    if (strcmp(s, "torch_zip") == 0)
        return CKPT_FORMAT_TORCH_ZIP;
    return CKPT_FORMAT_UNKNOWN;
}

static int cm_expects(const cJSON *entry, const char *what)
{
    const cJSON *x;

    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(
                              entry, "expect")) if (cJSON_IsString(x) &&
                                                    strcmp(x->valuestring, what) == 0) return 1;
    return 0;
}

static void cm_hex(const unsigned char *md, char *out)
{
    for (int i = 0; i < 32; i++)
        (void)snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Decoded sum (Neumaier-compensated) and sum of |x| of `n` elements. */
static void cm_sum(enum dtype t, const unsigned char *p, uint64_t n, double *sum, double *abs_sum,
                   double first[4])
{
    double chunk[256], s = 0, comp = 0, a = 0;
    size_t sz = dtype_size(t);

    for (uint64_t i = 0; i < n; i += 256) {
        size_t k = n - i < 256 ? (size_t)(n - i) : 256;
        dtype_to_f64(t, p + i * sz, k, chunk);
        for (size_t j = 0; j < k; j++) {
            double x = chunk[j], u = s + x;
            comp += fabs(s) >= fabs(x) ? (s - u) + x : (x - u) + s;
            s = u;
            a += fabs(x);
            if (i + j < 4)
                first[i + j] = x;
        }
    }
    *sum = s + comp;
    *abs_sum = a;
}

/* Compare tensor `t` (read from `c` as index `i`) with manifest tensor `m`. */
static void cm_check_tensor(const struct ckpt *c, size_t i, const cJSON *m, struct ckpt_buf *buf)
{
    const struct ckpt_tensor *t = ckpt_tensor_at(c, i);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(m, "shape"), *x;
    const cJSON *fv = cJSON_GetObjectItemCaseSensitive(m, "first_values");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    char hex[65];
    const void *data = NULL;
    struct err e = {0};
    int d = 0;

    CHECK_STR_EQ(dtype_name(t->dtype), cJSON_GetObjectItemCaseSensitive(m, "dtype")->valuestring);
    CHECK_EQ_INT(t->ndim, cJSON_GetArraySize(shape));
    cJSON_ArrayForEach(x, shape)
    {
        if (d < t->ndim)
            CHECK_EQ_INT(t->shape[d], (int64_t)x->valuedouble);
        d++;
    }
    CHECK_EQ_INT(t->nbytes, (int64_t)cJSON_GetObjectItemCaseSensitive(m, "nbytes")->valuedouble);
    CHECK_EQ_INT(ckpt_tensor_read(c, i, buf, &data, &e), ERR_OK);
    if (data == NULL)
        return;
    CHECK(EVP_Digest(data, (size_t)t->nbytes, md, &md_len, EVP_sha256(), NULL) == 1);
    cm_hex(md, hex);
    CHECK_STR_EQ(hex, cJSON_GetObjectItemCaseSensitive(m, "sha256")->valuestring);
    if (dtype_is_decodable(t->dtype)) {
        double sum, abs_sum, first[4] = {0};
        double want = cJSON_GetObjectItemCaseSensitive(m, "sum")->valuedouble;
        int k = 0;
        cm_sum(t->dtype, data, t->n_elems, &sum, &abs_sum, first);
        CHECK_NEAR(sum, want, 1e-9 * fabs(want) + 1e-12 * abs_sum);
        cJSON_ArrayForEach(x, fv)
        {
            if (k < 4 && cJSON_IsNumber(x))
                CHECK_NEAR(first[k], x->valuedouble, 0);
            k++;
        }
    }
}

/* The manifest tensor named `name` in `list`, or NULL. */
static const cJSON *cm_find(const cJSON *list, const char *name)
{
    const cJSON *x;

    cJSON_ArrayForEach(x, list) if (strcmp(cJSON_GetObjectItemCaseSensitive(x, "name")->valuestring,
                                           name) == 0) return x;
    return NULL;
}

/* Check one manifest entry; returns 1 if it was opened successfully. */
static int cm_check_entry(const cJSON *entry)
{
    const char *rel = cJSON_GetObjectItemCaseSensitive(entry, "path")->valuestring;
    enum ckpt_format fmt =
        cm_format(cJSON_GetObjectItemCaseSensitive(entry, "format")->valuestring);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(entry, "tensors");
    struct ckpt_buf buf = {0};
    struct ckpt *c = NULL;
    struct err e = {0};
    char path[512];
    enum err_code rc;

    (void)snprintf(path, sizeof(path), CM_DIR "%s", rel);
    rc = ckpt_open(path, fmt, NULL, &c, &e);
    if (rc != ERR_OK) {
        int allowed = e.category != ERR_CAT_NONE && cm_expects(entry, err_category(&e));
        CHECK(allowed);
        if (!allowed)
            fprintf(stderr, "  %s: failed with %s: %s\n", rel, err_category(&e), e.msg);
        return 0;
    }
    CHECK(cm_expects(entry, "ok"));
    CHECK_EQ_INT(ckpt_n_tensors(c), cJSON_GetArraySize(list));
    for (size_t i = 0; i < ckpt_n_tensors(c); i++) {
        const struct ckpt_tensor *t = ckpt_tensor_at(c, i);
        const cJSON *m = fmt == CKPT_FORMAT_SAFETENSORS_INDEX ? cm_find(list, t->name)
                                                              : cJSON_GetArrayItem(list, (int)i);
        CHECK(m != NULL);
        if (m == NULL)
            continue;
        CHECK_STR_EQ(t->name, cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring);
        cm_check_tensor(c, i, m, &buf);
    }
    ckpt_buf_free(&buf);
    ckpt_close(c);
    return 1;
}

/* Check every manifest entry of format `fmt_name`; *n_ok / *n_fail count the
 * entries that opened and those that (correctly or not) failed. */
static void cm_check_format(const cJSON *manifest, const char *fmt_name, int *n_ok, int *n_fail)
{
    const cJSON *x;

    *n_ok = *n_fail = 0;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(manifest, "files"))
    {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(x, "format")->valuestring, fmt_name) != 0)
            continue;
        if (cm_check_entry(x))
            (*n_ok)++;
        else
            (*n_fail)++;
    }
}

#endif /* TESTS_CKPT_MANIFEST_H */
