/* test_torchzip.c -- the torch.save zip reader against every torch / pickle /
 * unknown-format fixture of tests/fixtures/checkpoints/manifest.json, in
 * strict and lenient pickle mode: good files give exactly the listed tensors
 * (names in pickle order, dtypes, shapes, bytes, SHA-256 of the materialised
 * bytes, sums, views, aliases, model prefix, in_model); malformed files fail
 * with one of the listed error categories. Plus the pure helpers of
 * torchzip.h. Run from the repository root.
 */
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/ckpt.h"
#include "core/formats/ckpt_int.h"
#include "core/formats/torchzip.h"
#include "core/formats/torchzip_int.h"
#include "tests/check.h"
#include "tests/file_util.h"

#define FIXTURES "tests/fixtures/checkpoints/"

static int n_good, n_bad;

static void sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;

    EVP_Digest(data, n, md, &len, EVP_sha256(), NULL);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int json_has_str(const cJSON *arr, const char *s)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, arr) if (cJSON_IsString(it) && strcmp(it->valuestring, s) == 0) return 1;
    return 0;
}

/* Sum and sum of squares (Neumaier-compensated) of a materialised tensor. */
static void tensor_sums(const struct ckpt_tensor *t, const void *data, double *sum, double *sumsq)
{
    double *v = malloc((t->n_elems ? t->n_elems : 1) * sizeof(double));
    double s = 0, cs = 0, q = 0, cq = 0;

    dtype_to_f64(t->dtype, data, t->n_elems, v);
    for (uint64_t i = 0; i < t->n_elems; i++) {
        const double terms[2] = {v[i], v[i] * v[i]};
        double *acc[2] = {&s, &q}, *cmp[2] = {&cs, &cq};
        for (int k = 0; k < 2; k++) {
            double a = *acc[k], b = terms[k], r = a + b;
            *cmp[k] += fabs(a) >= fabs(b) ? (a - r) + b : (b - r) + a;
            *acc[k] = r;
        }
    }
    *sum = s + cs;
    *sumsq = q + cq;
    free(v);
}

/* The index of the first earlier tensor with the same view in `shares`, else -1. */
static long expected_alias(const cJSON *tensors, int i)
{
    const cJSON *t = cJSON_GetArrayItem(tensors, i);
    const cJSON *shares = cJSON_GetObjectItem(t, "shares_storage_with");

    for (int j = 0; j < i; j++) {
        const cJSON *u = cJSON_GetArrayItem(tensors, j);
        const char *keys[] = {"dtype", "shape", "stride", "storage_offset"};
        int same = json_has_str(shares, cJSON_GetObjectItem(u, "name")->valuestring);
        for (int k = 0; same && k < 4; k++)
            same =
                cJSON_Compare(cJSON_GetObjectItem(t, keys[k]), cJSON_GetObjectItem(u, keys[k]), 1);
        if (same)
            return j;
    }
    return -1;
}

/* Compare tensor i of `c` with manifest entry `jt`. */
static void check_tensor(const struct ckpt *c, size_t i, const cJSON *jts, struct ckpt_buf *buf)
{
    const cJSON *jt = cJSON_GetArrayItem(jts, (int)i), *shape, *stride, *role, *off, *d;
    const struct ckpt_tensor *t = ckpt_tensor_at(c, i);
    const void *data = NULL;
    char hex[65];
    struct err e = {0};
    int k = 0;

    CHECK_STR_EQ(t->name, cJSON_GetObjectItem(jt, "name")->valuestring);
    CHECK_STR_EQ(dtype_name(t->dtype), cJSON_GetObjectItem(jt, "dtype")->valuestring);
    shape = cJSON_GetObjectItem(jt, "shape");
    CHECK_EQ_INT(t->ndim, cJSON_GetArraySize(shape));
    cJSON_ArrayForEach(d, shape)
    {
        CHECK_EQ_INT(t->shape[k++], d->valuedouble);
    }
    CHECK_EQ_INT(t->nbytes, cJSON_GetObjectItem(jt, "nbytes")->valuedouble);
    CHECK_EQ_INT(t->alias_of, expected_alias(jts, (int)i));
    role = cJSON_GetObjectItem(jt, "role_in_file");
    if (cJSON_IsString(role))
        CHECK_EQ_INT(t->in_model, strcmp(role->valuestring, "model") == 0);
    if (ckpt_format_of(c) == CKPT_FORMAT_TORCH_ZIP) {
        const struct tz_view *v = &((const struct tz_impl *)c->impl)->views[i];
        off = cJSON_GetObjectItem(jt, "storage_offset");
        stride = cJSON_GetObjectItem(jt, "stride");
        if (cJSON_IsNumber(off))
            CHECK_EQ_INT(v->offset, off->valuedouble);
        k = 0;
        cJSON_ArrayForEach(d, stride) CHECK_EQ_INT(v->stride[k++], d->valuedouble);
    }
    CHECK_EQ_INT(ckpt_tensor_read(c, i, buf, &data, &e), ERR_OK);
    if (data == NULL)
        return;
    sha256_hex(data, (size_t)t->nbytes, hex);
    CHECK_STR_EQ(hex, cJSON_GetObjectItem(jt, "sha256")->valuestring);
    if (dtype_is_decodable(t->dtype)) {
        double sum, sumsq, want = cJSON_GetObjectItem(jt, "sum")->valuedouble;
        double want_sq = cJSON_GetObjectItem(jt, "sumsq")->valuedouble;
        tensor_sums(t, data, &sum, &sumsq);
        CHECK_NEAR(sum, want, 1e-9 * (fabs(want) + sqrt(want_sq)));
        CHECK_REL(sumsq, want_sq, 1e-9);
    }
}

/* Open `path` as the manifest says; return the outcome category ("ok" or the error's). */
static const char *run_one(const cJSON *f, int strict, const char **msg_out, char *msg,
                           size_t msg_cap)
{
    const char *rel = cJSON_GetObjectItem(f, "path")->valuestring;
    const char *fmt = cJSON_GetObjectItem(f, "format")->valuestring;
    const cJSON *jts = cJSON_GetObjectItem(f, "tensors"), *mp;
    struct ckpt_limits lim;
    struct ckpt *c = NULL;
    struct ckpt_buf buf = {0};
    struct err e = {0};
    char path[512];
    const char *outcome = "ok";

    ckpt_limits_default(&lim);
    lim.strict = strict;
    snprintf(path, sizeof(path), FIXTURES "%s", rel);
    if (ckpt_open(path, strcmp(fmt, "torch_zip") == 0 ? CKPT_FORMAT_TORCH_ZIP : CKPT_FORMAT_UNKNOWN,
                  &lim, &c, &e) != ERR_OK) {
        snprintf(msg, msg_cap, "%s", e.msg);
        *msg_out = msg;
        return err_category(&e);
    }
    if (cJSON_IsArray(jts)) {
        CHECK_EQ_INT(ckpt_n_tensors(c), cJSON_GetArraySize(jts));
        for (size_t i = 0; i < ckpt_n_tensors(c) && i < (size_t)cJSON_GetArraySize(jts); i++)
            check_tensor(c, i, jts, &buf);
        mp = cJSON_GetObjectItem(f, "model_prefix");
        if (cJSON_IsString(mp))
            CHECK_STR_EQ(ckpt_model_prefix(c), mp->valuestring);
    } else {
        for (size_t i = 0; i < ckpt_n_tensors(c); i++) { /* malformed: reading may fail */
            const void *data;
            if (ckpt_tensor_read(c, i, &buf, &data, &e) != ERR_OK) {
                snprintf(msg, msg_cap, "%s", e.msg);
                *msg_out = msg;
                outcome = err_category(&e);
                break;
            }
        }
    }
    ckpt_buf_free(&buf);
    ckpt_close(c);
    return outcome;
}

/* Every torch / legacy / pickle / unknown fixture, both pickle modes. */
static void test_manifest_fixtures(void)
{
    char *text = fu_read(FIXTURES "manifest.json", NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *f;

    CHECK(root != NULL);
    if (root == NULL) {
        free(text);
        return;
    }
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(root, "files"))
    {
        const char *fmt = cJSON_GetObjectItem(f, "format")->valuestring;
        if (strcmp(fmt, "torch_zip") != 0 && strcmp(fmt, "torch_legacy") != 0 &&
            strcmp(fmt, "pickle") != 0 && strcmp(fmt, "unknown") != 0)
            continue;
        for (int strict = 1; strict >= 0; strict--) {
            const cJSON *expect = cJSON_GetObjectItem(f, "expect"), *len;
            char msg[ERR_MSG_LEN] = "";
            const char *m = msg, *got;
            int before = check_n_failed;
            len = cJSON_GetObjectItem(f, "expect_lenient");
            if (!strict && cJSON_IsArray(len))
                expect = len;
            got = run_one(f, strict, &m, msg, sizeof(msg));
            CHECK(json_has_str(expect, got));
            if (strcmp(got, "ok") == 0)
                n_good++;
            else
                n_bad++;
            if (check_n_failed != before)
                fprintf(stderr, "  ^ %s (%s mode): got %s: %s\n",
                        cJSON_GetObjectItem(f, "path")->valuestring, strict ? "strict" : "lenient",
                        got, m);
        }
    }
    cJSON_Delete(root);
    free(text);
}

/* The archive-level refusals name their reason. */
static void test_messages(void)
{
    struct ckpt *c = NULL;
    struct err e = {0};
    struct ckpt_limits lim;

    ckpt_limits_default(&lim);
    lim.strict = 1;
    CHECK_EQ_INT(
        ckpt_open(FIXTURES "malformed/pt_torchscript.pt", CKPT_FORMAT_TORCH_ZIP, &lim, &c, &e),
        ERR_FORMAT);
    CHECK(strstr(e.msg, "TorchScript") != NULL && strstr(e.msg, "state_dict") != NULL);
    CHECK_EQ_INT(
        ckpt_open(FIXTURES "malformed/pt_global_os_system.pt", CKPT_FORMAT_TORCH_ZIP, &lim, &c, &e),
        ERR_FORMAT);
    CHECK(strstr(e.msg, "global os.system is forbidden") != NULL);
    CHECK_EQ_INT(
        ckpt_open(FIXTURES "malformed/pt_whole_module.pt", CKPT_FORMAT_TORCH_ZIP, &lim, &c, &e),
        ERR_FORMAT);
    CHECK(strstr(e.msg, "model.state_dict()") != NULL);
    CHECK_EQ_INT(ckpt_open(FIXTURES "malformed/pt_storage_record_short.pt", CKPT_FORMAT_TORCH_ZIP,
                           &lim, &c, &e),
                 ERR_FORMAT);
    CHECK(strstr(e.msg, "48") != NULL && strstr(e.msg, "4000") != NULL);
    CHECK(c == NULL);
}

/* Same weights in every container variant: identical hashes (docs/checkpoint-formats.md, Tensor
 * hashes). */
static void test_variants_same_hashes(void)
{
    static const char *const variants[] = {"mlp/mlp_step0500.pt",
                                           "special/mlp_step0500_zip64_fields.pt",
                                           "special/mlp_step0500_deflated.pt",
                                           "special/mlp_step0500_bigendian.pt",
                                           "special/mlp_step0500_repacked_unaligned.pt",
                                           "special/mlp_step0500_proto4.pt"};
    char first[8][65] = {{0}};

    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        char path[256];
        struct ckpt *c = NULL;
        struct ckpt_buf buf = {0};
        struct err e = {0};
        snprintf(path, sizeof(path), FIXTURES "%s", variants[v]);
        CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, &e), ERR_OK);
        if (c == NULL)
            continue;
        CHECK_EQ_INT(ckpt_n_tensors(c), 6);
        for (size_t i = 0; i < ckpt_n_tensors(c) && i < 8; i++) {
            const void *data;
            char hex[65];
            CHECK_EQ_INT(ckpt_tensor_read(c, i, &buf, &data, &e), ERR_OK);
            sha256_hex(data, (size_t)ckpt_tensor_at(c, i)->nbytes, hex);
            if (v == 0)
                memcpy(first[i], hex, 65);
            else
                CHECK_STR_EQ(hex, first[i]);
        }
        ckpt_buf_free(&buf);
        ckpt_close(c);
    }
}

/* Rule-3 exclusions match whole path components only. */
static void test_path_excluded(void)
{
    CHECK_EQ_INT(tz_path_excluded("optimizer.state.0.momentum_buffer"), 1);
    CHECK_EQ_INT(tz_path_excluded("optimizer_states.0.state.3.exp_avg"), 1);
    CHECK_EQ_INT(tz_path_excluded("trainer.callbacks.x"), 1);
    CHECK_EQ_INT(tz_path_excluded("optimizers.weight"), 0);
    CHECK_EQ_INT(tz_path_excluded("encoder.layer.0.weight"), 0);
}

/* A tight tensor-size limit refuses reading, not listing. */
static void test_tensor_limit(void)
{
    struct ckpt_limits lim;
    struct ckpt *c = NULL;
    struct ckpt_buf buf = {0};
    struct err e = {0};
    const void *data;

    ckpt_limits_default(&lim);
    lim.max_tensor_bytes = 1024;
    CHECK_EQ_INT(ckpt_open(FIXTURES "mlp/mlp_step0500.pt", CKPT_FORMAT_TORCH_ZIP, &lim, &c, &e),
                 ERR_OK);
    if (c == NULL)
        return;
    CHECK_EQ_INT(ckpt_tensor_read(c, 0, &buf, &data, &e), ERR_TOOBIG); /* 256x64 F32 */
    CHECK_STR_EQ(err_category(&e), "limit_exceeded");
    CHECK_EQ_INT(ckpt_tensor_read(c, 1, &buf, &data, &e), ERR_OK); /* 256 F32 bias */
    ckpt_buf_free(&buf);
    ckpt_close(c);
}

int main(void)
{
    test_manifest_fixtures();
    test_messages();
    test_variants_same_hashes();
    test_path_excluded();
    test_tensor_limit();
    printf("torchzip fixtures: %d ok outcomes, %d refusals (strict + lenient runs)\n", n_good,
           n_bad);
    return check_report("test_torchzip");
}
