/* test_api_insight.c -- the recommendation and ESD endpoints through
 * api_handle() with an in-memory store: layer rows are put through storage
 * with the trained MLP's alphas from
 * tests/fixtures/numerics/mapping_mlpA_digits.json, and every configuration
 * of that file is asked of the service and compared at 1e-6 relative; the
 * ESD of mlpA fc2 (the reference eigenvalues of mlpA_fc2.json) comes back as
 * JSON and as an SVG that must be well-formed XML carrying the fitted alpha.
 * Run from the repository root.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "api/api_int.h"
#include "core/formats/thash.h"
#include "core/numerics/esd_hist.h"
#include "core/numerics/preset.h"
#include "storage/store.h"
#include "storage/store_jobs.h"
#include "storage/store_layers.h"
#include "tests/api_fixture.h"
#include "tests/check.h"

#define NUM     "tests/fixtures/numerics/"
#define REL_TOL 1e-6

static cJSON *load_json(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *text = NULL;
    long n = -1;
    cJSON *j = NULL;

    if (fp != NULL && fseek(fp, 0, SEEK_END) == 0)
        n = ftell(fp);
    if (n > 0 && (text = malloc((size_t)n)) != NULL) {
        rewind(fp);
        if (fread(text, 1, (size_t)n, fp) == (size_t)n)
            j = cJSON_ParseWithLength(text, (size_t)n);
    }
    if (fp != NULL)
        fclose(fp);
    free(text);
    CHECK(j != NULL);
    return j;
}

/* Put checkpoint `step` of run "mlp" (farms-cv) with rows fc1.weight,
 * fc1.bias (skipped), fc2.weight, fc2.bias, fc3.weight, fc3.bias: weights
 * with alphas a[0..3), shapes and eigenvalue counts of the trained MLP,
 * histograms hist[0..3) (may be NULL). */
static void put_mlp(struct fx *f, int64_t step, const double a[3], const struct esd_hist *hist)
{
    static const int64_t shapes[3][2] = {{512, 64}, {256, 512}, {10, 256}};
    char sha[THASH_HEX_LEN], names[6][24];
    struct store_submit sub = {.run = "mlp",
                               .step = step,
                               .content_sha256 = sha,
                               .source = STORE_SOURCE_PATH,
                               .path = "/data/mlp",
                               .format = "safetensors"};
    struct store_job job;
    struct store_layer rows[6];

    snprintf(sha, sizeof(sha), "%064lld", (long long)step + 7);
    fx_submit(f, &sub, "farms-cv", &job);
    memset(rows, 0, sizeof(rows));
    for (int i = 0; i < 6; i++) {
        struct store_layer *y = &rows[i];
        int l = i / 2, bias = i % 2;

        snprintf(names[i], sizeof(names[i]), "fc%d.%s", l + 1, bias ? "bias" : "weight");
        y->name = names[i];
        y->dtype = DTYPE_F32;
        esd_hist_init(&y->esd);
        if (bias) {
            y->kind = LAYER_KIND_BIAS;
            y->ndim = 1;
            y->shape[0] = shapes[l][0];
            y->r.status = FARMS_STATUS_SKIPPED;
            snprintf(y->r.reason, sizeof(y->r.reason), "1-D tensor (bias)");
            y->r.alpha = NAN;
            continue;
        }
        y->kind = LAYER_KIND_LINEAR;
        y->ndim = 2;
        y->shape[0] = shapes[l][0];
        y->shape[1] = shapes[l][1];
        y->r.status = FARMS_STATUS_OK;
        y->r.alpha = a[l];
        y->r.num_eigs = shapes[l][0] < shapes[l][1] ? shapes[l][0] : shapes[l][1];
        if (hist != NULL)
            y->esd = hist[l];
    }
    CHECK(store_layers_put(f->s, job.checkpoint_id, job.settings_hash, rows, 6, NULL) == ERR_OK);
}

static void nums3(const cJSON *arr, double out[3])
{
    for (int i = 0; i < 3; i++)
        out[i] = cJSON_GetNumberValue(cJSON_GetArrayItem(arr, i));
}

/* --- Sparsity ----------------------------------------------------------------- */

/* Every alphapruning configuration of the mapping file, asked of the
 * service for a checkpoint holding that configuration's alphas. */
static void test_sparsity_every_mlpA_configuration(void)
{
    struct fx f;
    cJSON *m = load_json(NUM "mapping_mlpA_digits.json");
    const cJSON *c;
    int n_cfg = 0, n_ok = 0;
    int64_t step = 0;

    fx_open(&f, "farms-cv");
    cJSON_ArrayForEach(c, jget(m, "alphapruning"))
    {
        const cJSON *cfg = jget(c, "config");
        double a[3], want[3], numel[3];
        char q[128];
        struct api_response r;
        cJSON *j;
        const cJSON *layers;
        int ok = 1;

        nums3(jget(c, "alphas"), a);
        nums3(jget(c, "sparsity_ratios"), want);
        nums3(jget(c, "numel"), numel);
        put_mlp(&f, ++step, a, NULL);
        snprintf(q, sizeof(q), "target=%.17g&epsilon=%.17g%s", jnum(cfg, "sparsity_ratio"),
                 jnum(cfg, "epsilon"),
                 /* cppcheck-suppress knownConditionTrueFalse ; step alternates */
                 step % 2 ? "&block_size=1" : "");
        {
            char path[64];
            snprintf(path, sizeof(path), "/v1/runs/mlp/checkpoints/%lld/recommendations/sparsity",
                     (long long)step);
            j = fx_get(&f, path, q, NULL, &r);
        }
        n_cfg++;
        CHECK_EQ_INT(r.status, 200);
        CHECK_STR_EQ(jstr(j, "run"), "mlp");
        CHECK_EQ_INT(jnum(j, "step"), step);
        CHECK_STR_EQ(jstr(j, "preset"), "farms-cv");
        layers = jget(j, "layers");
        CHECK_EQ_INT(cJSON_GetArraySize(layers), 3);
        CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "blocks")), 3);   /* no blocks: one per layer */
        CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "left_out")), 0); /* biases are not listed */
        for (int i = 0; i < 3; i++) {
            const cJSON *l = cJSON_GetArrayItem(layers, i);
            char name[24];
            snprintf(name, sizeof(name), "fc%d.weight", i + 1);
            CHECK_STR_EQ(jstr(l, "name"), name);
            CHECK_REL(jnum(l, "alpha"), a[i], 1e-14); /* JSON numbers: 15+ digits */
            CHECK(jnum(l, "numel") == numel[i]);      /* product of the shape */
            CHECK_REL(jnum(l, "sparsity"), want[i], REL_TOL);
            ok &= fabs(jnum(l, "sparsity") - want[i]) <= REL_TOL * want[i];
            CHECK(cJSON_IsTrue(jget(l, "clamped")) == (want[i] == 0.998 || want[i] == 0.99999));
        }
        n_ok += ok;
        cJSON_Delete(j);
        api_response_free(&r);
    }
    CHECK_EQ_INT(n_cfg, cJSON_GetArraySize(jget(m, "alphapruning")));
    CHECK_EQ_INT(n_cfg, 8);
    CHECK_EQ_INT(n_ok, n_cfg);
    cJSON_Delete(m);
    store_close(f.s);
}

/* block_size groups consecutive layers; the block means drive the map. */
static void test_sparsity_block_size(void)
{
    struct fx f;
    const double a[3] = {2.0, 4.0, 5.0};
    struct api_response r;
    cJSON *j;
    const cJSON *l;

    fx_open(&f, "farms-cv");
    put_mlp(&f, 1, a, NULL);
    j = fx_get(&f, "/v1/runs/mlp/checkpoints/1/recommendations/sparsity",
               "target=0.5&epsilon=0.2&block_size=2", NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(jnum(j, "block_size"), 2);
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "blocks")), 2);
    l = jget(j, "layers");
    CHECK_NEAR(jnum(cJSON_GetArrayItem(l, 0), "block_alpha"), 3.0, 1e-15);
    CHECK_NEAR(jnum(cJSON_GetArrayItem(l, 1), "block_alpha"), 3.0, 1e-15);
    CHECK_EQ_INT(jnum(cJSON_GetArrayItem(l, 2), "block"), 1);
    CHECK(jnum(cJSON_GetArrayItem(l, 0), "sparsity") == jnum(cJSON_GetArrayItem(l, 1), "sparsity"));
    cJSON_Delete(j);
    api_response_free(&r);
    /* one block for everything: the reference divides by zero -> 400 */
    j = fx_get(&f, "/v1/runs/mlp/checkpoints/1/recommendations/sparsity", "block_size=3", NULL, &r);
    CHECK_EQ_INT(r.status, 400);
    CHECK_STR_EQ(jstr(j, "category"), "degenerate_alphas");
    cJSON_Delete(j);
    api_response_free(&r);
    store_close(f.s);
}

/* --- Learning rates ------------------------------------------------------------ */

static void check_lr_answer(const cJSON *j, const cJSON *tuned, const double *want, int n_want)
{
    const cJSON *layers = jget(j, "layers");

    CHECK_EQ_INT(cJSON_GetArraySize(layers), n_want);
    for (int i = 0; i < n_want && i < cJSON_GetArraySize(layers); i++) {
        const cJSON *l = cJSON_GetArrayItem(layers, i);
        if (tuned != NULL)
            CHECK_STR_EQ(jstr(l, "name"),
                         cJSON_GetArrayItem(tuned, i)->valuestring); /* "fc1" vs "fc1.weight" */
        CHECK_REL(jnum(l, "lr"), want[i], REL_TOL);
    }
}

static void test_learning_rates_every_mlpA_configuration(void)
{
    struct fx f;
    cJSON *m = load_json(NUM "mapping_mlpA_digits.json");
    const cJSON *c;
    const char *path = "/v1/runs/mlp/checkpoints/1/recommendations/learning-rates";
    double a[3];
    int n_cfg = 0;

    fx_open(&f, "farms-cv");
    nums3(jget(cJSON_GetArrayItem(jget(m, "tempbalance"), 0), "alphas_used"), a);
    put_mlp(&f, 1, a, NULL);
    cJSON_ArrayForEach(c, jget(m, "tempbalance"))
    {
        const cJSON *cfg = jget(c, "config");
        const cJSON *tuned = jget(c, "tuned_layers"), *t;
        double want[3] = {0};
        int n = 0;
        char q[256];
        struct api_response r;
        cJSON *j, *names = cJSON_CreateArray();

        cJSON_ArrayForEach(t, jget(c, "learning_rates")) want[n++] = t->valuedouble;
        cJSON_ArrayForEach(t, tuned)
        {
            char name[32];
            snprintf(name, sizeof(name), "%s.weight", t->valuestring);
            cJSON_AddItemToArray(names, cJSON_CreateString(name));
        }
        snprintf(q, sizeof(q),
                 "base_lr=%.17g&min_ratio=%.17g&max_ratio=%.17g&map=linear&remove_first=%s"
                 "&remove_last=%s",
                 jnum(cfg, "untuned_lr"), jnum(cfg, "lr_min_ratio"), jnum(cfg, "lr_max_ratio"),
                 cJSON_IsTrue(jget(cfg, "remove_first_layer")) ? "true" : "false",
                 cJSON_IsTrue(jget(cfg, "remove_last_layer")) ? "true" : "false");
        j = fx_get(&f, path, q, NULL, &r);
        CHECK_EQ_INT(r.status, 200);
        CHECK_STR_EQ(jstr(cfg, "assign_func"), "tb_linear_map");
        check_lr_answer(j, names, want, n);
        CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "left_out")), 3 - n);
        if (3 - n > 0) /* removed layers keep the base rate */
            CHECK(jnum(cJSON_GetArrayItem(jget(j, "left_out"), 0), "lr") ==
                  jnum(cfg, "untuned_lr"));
        n_cfg++;
        cJSON_Delete(names);
        cJSON_Delete(j);
        api_response_free(&r);
    }
    cJSON_ArrayForEach(c, jget(m, "tempbalance_assign_funcs"))
    {
        static const char *const maps[][2] = {{"tb_linear_map", "linear"},
                                              {"tb_sqrt", "sqrt"},
                                              {"tb_log2", "log2"},
                                              {"tb_step", "step"}};
        const char *map = NULL;
        double want[3];
        char q[256];
        struct api_response r;
        cJSON *j;

        for (int k = 0; k < 4; k++)
            if (strcmp(jstr(c, "assign_func"), maps[k][0]) == 0)
                map = maps[k][1];
        CHECK(map != NULL);
        nums3(jget(c, "lr_ratios"), want);
        snprintf(q, sizeof(q), "base_lr=%.17g&min_ratio=%.17g&max_ratio=%.17g&map=%s",
                 jnum(c, "untuned_lr"), jnum(c, "lr_min_ratio"), jnum(c, "lr_max_ratio"),
                 map ? map : "?");
        j = fx_get(&f, path, q, NULL, &r);
        CHECK_EQ_INT(r.status, 200);
        CHECK_STR_EQ(jstr(j, "map"), map ? map : "?");
        check_lr_answer(j, NULL, want, 3);
        n_cfg++;
        cJSON_Delete(j);
        api_response_free(&r);
    }
    CHECK_EQ_INT(n_cfg, cJSON_GetArraySize(jget(m, "tempbalance")) +
                            cJSON_GetArraySize(jget(m, "tempbalance_assign_funcs")));
    CHECK_EQ_INT(n_cfg, 8);
    cJSON_Delete(m);
    store_close(f.s);
}

/* --- Parameters, ETags, empty checkpoints ------------------------------------------ */

static void expect_400(struct fx *f, const char *path, const char *query, const char *param)
{
    struct api_response r;
    cJSON *j = fx_get(f, path, query, NULL, &r);
    char quoted[64];

    snprintf(quoted, sizeof(quoted), "'%s'", param);
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(jstr(j, "detail"), quoted) != NULL);
    if (strstr(jstr(j, "detail"), quoted) == NULL)
        fprintf(stderr, "  %s?%s: %s\n", path, query, jstr(j, "detail"));
    cJSON_Delete(j);
    api_response_free(&r);
}

static void test_parameters_validated(void)
{
    struct fx f;
    const double a[3] = {2.0, 3.0, 4.0};
    const char *sp = "/v1/runs/mlp/checkpoints/1/recommendations/sparsity";
    const char *lr = "/v1/runs/mlp/checkpoints/1/recommendations/learning-rates";

    fx_open(&f, "farms-cv");
    put_mlp(&f, 1, a, NULL);
    expect_400(&f, sp, "target=1", "target");
    expect_400(&f, sp, "target=0", "target");
    expect_400(&f, sp, "target=abc", "target");
    expect_400(&f, sp, "epsilon=1", "epsilon");
    expect_400(&f, sp, "epsilon=-0.1", "epsilon");
    expect_400(&f, sp, "block_size=0", "block_size");
    expect_400(&f, sp, "base_lr=1", "base_lr"); /* not a parameter of this route */
    expect_400(&f, lr, "base_lr=0", "base_lr");
    expect_400(&f, lr, "min_ratio=1.5&max_ratio=0.5", "min_ratio");
    expect_400(&f, lr, "map=cubic", "map");
    expect_400(&f, lr, "remove_first=yes", "remove_first");
    expect_400(&f, lr, "remove_last=1", "remove_last");
    expect_400(&f, lr, "preset=nope", "preset");
    store_close(f.s);
}

static void test_etag_and_missing(void)
{
    struct fx f;
    const double a[3] = {2.0, 3.0, 4.0};
    const char *sp = "/v1/runs/mlp/checkpoints/1/recommendations/sparsity";
    struct api_response r, r2;
    char etag[80];
    cJSON *j;

    fx_open(&f, "farms-cv");
    put_mlp(&f, 1, a, NULL);
    cJSON_Delete(fx_get(&f, sp, "target=0.6", NULL, &r));
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.etag[0] == '"');
    snprintf(etag, sizeof(etag), "%s", r.etag);
    cJSON_Delete(fx_get(&f, sp, "target=0.6", etag, &r2));
    CHECK_EQ_INT(r2.status, 304);
    CHECK(r2.body == NULL);
    api_response_free(&r2);
    cJSON_Delete(fx_get(&f, sp, "target=0.65", etag, &r2)); /* other parameters, other tag */
    CHECK_EQ_INT(r2.status, 200);
    api_response_free(&r2);
    api_response_free(&r);
    put_mlp(&f, 2, a, NULL); /* the run changed: the old tag no longer matches */
    cJSON_Delete(fx_get(&f, sp, "target=0.6", etag, &r2));
    CHECK_EQ_INT(r2.status, 200);
    api_response_free(&r2);
    cJSON_Delete(fx_get(&f, "/v1/runs/mlp/checkpoints/9/recommendations/sparsity", NULL, NULL, &r));
    CHECK_EQ_INT(r.status, 404);
    api_response_free(&r);
    cJSON_Delete(
        fx_get(&f, "/v1/runs/nope/checkpoints/1/recommendations/learning-rates", NULL, NULL, &r));
    CHECK_EQ_INT(r.status, 404);
    api_response_free(&r);
    /* a checkpoint whose job has not written rows yet */
    {
        struct store_submit sub = {0};
        struct store_job job;
        sub.run = "mlp";
        sub.step = 3;
        sub.content_sha256 = "3333333333333333333333333333333333333333333333333333333333333333";
        sub.source = STORE_SOURCE_PATH;
        sub.path = "/data/x";
        fx_submit(&f, &sub, "farms-cv", &job);
    }
    j = fx_get(&f, "/v1/runs/mlp/checkpoints/3/recommendations/learning-rates", NULL, NULL, &r);
    CHECK_EQ_INT(r.status, 409);
    CHECK_STR_EQ(jstr(j, "category"), "no_alphas");
    cJSON_Delete(j);
    api_response_free(&r);
    store_close(f.s);
}

#include "tests/test_api_insight_esd.inc"

int main(void)
{
    test_sparsity_every_mlpA_configuration();
    test_sparsity_block_size();
    test_learning_rates_every_mlpA_configuration();
    test_parameters_validated();
    test_etag_and_missing();
    test_esd_json();
    test_esd_svg_is_xml_with_alpha();
    test_esd_missing();
    return check_report("test_api_insight");
}
