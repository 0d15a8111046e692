/* test_layouts.c -- framework layouts (docs/checkpoint-formats.md, Framework
 * layouts): tensors stored the Keras/TF/Flax way (`kernel`, `filters`,
 * `/`-separated names; dense (in, out), conv HWIO) are taken with their own
 * kinds and reach FARMS bitwise as the same weights stored the PyTorch way;
 * `layout=` overrides the reading, `weights=REGEX` selects tensors no rule
 * knows. Fixtures: tests/fixtures/layouts (gen_layouts.py, real trained
 * weights of tests/fixtures/checkpoints rewritten). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/analysis.h"
#include "core/numerics/preset.h"
#include "server/engine.h"
#include "tests/check.h"
#include "tests/engine_util.h"

#define FIX "tests/fixtures/"
#define LAY FIX "layouts/"

/* Parameters of `preset` with the overrides sets[0..n). */
static struct farms_params params_with(const char *preset, const char *const *sets, int n)
{
    struct farms_params p;
    struct err e;

    memset(&p, 0, sizeof(p));
    CHECK_EQ_INT(preset_get(preset, &p, &e), ERR_OK);
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(preset_set(&p, sets[i], &e), ERR_OK);
    return p;
}

static cJSON *manifest(void)
{
    FILE *f = fopen(LAY "manifest.json", "rb");
    char *buf = NULL;
    long n;
    cJSON *j = NULL;

    CHECK(f != NULL);
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc((size_t)n + 1, 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n)
        j = cJSON_Parse(buf);
    free(buf);
    fclose(f);
    CHECK(j != NULL);
    return j;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Alphas equal bit for bit (both NaN counts as equal only when both skipped). */
static int same_bits(double a, double b)
{
    uint64_t x, y;

    memcpy(&x, &a, sizeof(x));
    memcpy(&y, &b, sizeof(y));
    return x == y;
}

/* n doubles equal bit for bit. */
static int same_array(const double *a, const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!same_bits(a[i], b[i]))
            return 0;
    return 1;
}

/* Every tensor of every layout fixture is listed with the manifest's kind
 * and layout; exactly the weight matrices are selected. */
static void test_every_tensor_has_the_manifest_kind(void)
{
    cJSON *m = manifest(), *file;
    struct farms_params p = params_with("farms-cv", NULL, 0);

    cJSON_ArrayForEach(file, cJSON_GetObjectItemCaseSensitive(m, "files"))
    {
        char path[256];
        struct engine_report r;
        const cJSON *t;
        int n = 0;

        snprintf(path, sizeof(path), LAY "%s", str_of(file, "file"));
        if (eng_select_run(path, &p, 0, &r))
            continue;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(file, "tensors"))
        {
            const struct engine_layer *l = eng_find_layer(&r, str_of(t, "name"));
            int weight = strcmp(str_of(t, "layout"), "keras") == 0;

            n++;
            CHECK(l != NULL);
            if (l == NULL)
                continue;
            CHECK_STR_EQ(layer_kind_name(l->info.kind), str_of(t, "kind"));
            CHECK_STR_EQ(layer_kind_layout(l->info.kind), str_of(t, "layout"));
            CHECK_EQ_INT(l->selected, weight);
        }
        CHECK_EQ_INT(r.n, n);
        engine_report_free(&r);
    }
    cJSON_Delete(m);
}

/* The float64 matrices handed to FARMS for `name` in `path` and `tname` in
 * `tpath` are bitwise equal, with equal FARMS shapes. */
static void check_same_matrix(const char *path, const struct engine_layer *l, const char *tpath,
                              const struct engine_layer *tl)
{
    struct ckpt *c = NULL, *tc = NULL;
    struct ckpt_buf b = {0}, tb = {0};
    const void *d = NULL, *td = NULL;
    struct analysis_layout lay, tlay;
    double *w = NULL, *tw = NULL;
    struct analysis_tensor at = {
        .name = l->name, .dtype = l->dtype, .ndim = l->ndim, .shape = l->shape, .n_elems = 1};
    struct analysis_tensor tt = {
        .name = tl->name, .dtype = tl->dtype, .ndim = tl->ndim, .shape = tl->shape, .n_elems = 1};
    uint64_t n = 1;

    for (int i = 0; i < l->ndim; i++)
        n *= (uint64_t)l->shape[i];
    at.n_elems = tt.n_elems = n;
    CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, NULL), ERR_OK);
    CHECK_EQ_INT(ckpt_open(tpath, CKPT_FORMAT_UNKNOWN, NULL, &tc, NULL), ERR_OK);
    if (c != NULL && tc != NULL && ckpt_tensor_read(c, l->tensor, &b, &d, NULL) == ERR_OK &&
        ckpt_tensor_read(tc, tl->tensor, &tb, &td, NULL) == ERR_OK) {
        analysis_layout_of(l->info.kind, &at, &lay);
        analysis_layout_of(tl->info.kind, &tt, &tlay);
        CHECK_EQ_INT(lay.kind, tlay.kind);
        CHECK_EQ_INT(lay.n_dims, tlay.n_dims);
        for (int i = 0; i < 4; i++)
            CHECK_EQ_INT(lay.shape[i], tlay.shape[i]);
        CHECK_EQ_INT(analysis_matrix_new(&at, &lay, d, &w, NULL), ERR_OK);
        CHECK_EQ_INT(analysis_matrix_new(&tt, &tlay, td, &tw, NULL), ERR_OK);
        CHECK(w != NULL && tw != NULL && same_array(w, tw, (size_t)n));
    }
    free(w);
    free(tw);
    ckpt_buf_free(&b);
    ckpt_buf_free(&tb);
    ckpt_close(c);
    ckpt_close(tc);
}

/* One fixture against its PyTorch original under `preset`: every weight's
 * matrix and result (alpha, xmin, eigenvalue count) bitwise equal. */
static void check_file_matches_torch(const cJSON *file, const char *preset, const char *const *sets,
                                     int n_sets)
{
    struct farms_params p = params_with(preset, sets, n_sets);
    struct engine_report r, tr;
    char path[256], tpath[256];
    const cJSON *t;
    int n_ok = 0;

    snprintf(path, sizeof(path), LAY "%s", str_of(file, "file"));
    snprintf(tpath, sizeof(tpath), FIX "checkpoints/%s", str_of(file, "torch_original"));
    if (eng_select_run(path, &p, ENG_RUN, &r) || eng_select_run(tpath, &p, ENG_RUN, &tr))
        return;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(file, "tensors"))
    {
        const char *torch = str_of(t, "torch");
        const struct engine_layer *l = torch ? eng_find_layer(&r, str_of(t, "name")) : NULL,
                                  *tl = torch ? eng_find_layer(&tr, torch) : NULL;
        if (l == NULL || tl == NULL)
            continue;
        CHECK_EQ_INT(l->selected, 1);
        CHECK_EQ_INT(tl->selected, 1);
        CHECK_EQ_INT(l->res.status, tl->res.status);
        CHECK(same_bits(l->res.alpha, tl->res.alpha));
        CHECK(same_bits(l->res.xmin, tl->res.xmin));
        CHECK_EQ_INT(l->esd.n_eigs, tl->esd.n_eigs);
        n_ok += l->res.status == FARMS_STATUS_OK && isfinite(l->res.alpha);
        check_same_matrix(path, l, tpath, tl);
    }
    CHECK(n_ok >= 2); /* real fits, not two skips compared */
    engine_report_free(&r);
    engine_report_free(&tr);
}

/* Keras and Flax layouts of the trained MLP and CNN give the PyTorch
 * originals' alphas bit for bit, under the CV windows (and the LLM windows
 * for the Keras files). */
static void test_keras_and_flax_alphas_equal_pytorch_bitwise(void)
{
    cJSON *m = manifest(), *file;

    cJSON_ArrayForEach(file, cJSON_GetObjectItemCaseSensitive(m, "files"))
    {
        if (strcmp(str_of(file, "file"), "odd_mlp.safetensors") == 0)
            continue;
        check_file_matches_torch(file, "farms-cv", NULL, 0);
        if (strncmp(str_of(file, "file"), "keras_", 6) == 0)
            check_file_matches_torch(file, "farms-llm", NULL, 0);
    }
    cJSON_Delete(m);
}

/* With rectangular windows (q_ratio 0.5) the reading of a dense kernel
 * changes its alpha: layout=torch analyses the stored (in, out) as (out, in). */
static void check_rectangular_windows_see_the_reading(void)
{
    const char *auto_q[] = {"q_ratio=0.5"}, *torch_q[] = {"q_ratio=0.5", "layout=torch"};
    struct farms_params pa = params_with("farms-cv", auto_q, 1);
    struct farms_params pt = params_with("farms-cv", torch_q, 2);
    struct engine_report ra, rt;
    const struct engine_layer *a, *t;

    if (eng_select_run(LAY "keras_mlp.safetensors", &pa, ENG_RUN, &ra))
        return;
    if (eng_select_run(LAY "keras_mlp.safetensors", &pt, ENG_RUN, &rt) == ERR_OK) {
        a = eng_find_layer(&ra, "dense/kernel:0");
        t = eng_find_layer(&rt, "dense/kernel:0");
        CHECK(a != NULL && t != NULL && a->res.status == FARMS_STATUS_OK &&
              t->res.status == FARMS_STATUS_OK && !same_bits(a->res.alpha, t->res.alpha));
        engine_report_free(&rt);
    }
    engine_report_free(&ra);
}

/* layout=torch reads the Keras kernels the PyTorch way: other kinds, other
 * analysis keys; the conv kernel (3, 3, 32, 64) read as (out 3, in 3, 32x32)
 * is refused by FARMS, as before this reading existed. layout=keras reads
 * the PyTorch MLP's (out, in) weights as (in, out). */
static void test_layout_setting_overrides_the_reading(void)
{
    const char *torch[] = {"layout=torch"}, *keras[] = {"layout=keras"};
    struct farms_params pt = params_with("farms-cv", torch, 1);
    struct farms_params pk = params_with("farms-cv", keras, 1);
    struct farms_params pa = params_with("farms-cv", NULL, 0);
    struct engine_report r, ra, rk;
    const struct engine_layer *conv, *dense, *dense_auto, *w;
    char key[ANALYSIS_KEY_MAX], key_auto[ANALYSIS_KEY_MAX];

    if (eng_select_run(LAY "keras_cnn.safetensors", &pt, ENG_RUN, &r) ||
        eng_select_run(LAY "keras_cnn.safetensors", &pa, ENG_RUN, &ra))
        return;
    conv = eng_find_layer(&r, "sequential/conv2d_1/kernel");
    dense = eng_find_layer(&r, "sequential/dense/kernel");
    dense_auto = eng_find_layer(&ra, "sequential/dense/kernel");
    CHECK(conv != NULL && dense != NULL && dense_auto != NULL);
    if (conv != NULL && dense != NULL && dense_auto != NULL) {
        struct analysis_tensor t = {
            .name = dense->name, .dtype = dense->dtype, .ndim = 2, .shape = dense->shape};
        CHECK_STR_EQ(layer_kind_name(conv->info.kind), "conv2d");
        CHECK_EQ_INT(conv->res.status, FARMS_STATUS_SKIPPED);
        CHECK(strstr(conv->res.reason, "larger than its channels") != NULL);
        CHECK_STR_EQ(layer_kind_name(dense->info.kind), "linear");
        CHECK_STR_EQ(layer_kind_layout(dense->info.kind), "torch");
        analysis_key(dense->info.kind, &t, key, sizeof(key));
        analysis_key(dense_auto->info.kind, &t, key_auto, sizeof(key_auto));
        CHECK_STR_EQ(key, "linear F32 256x128");
        CHECK_STR_EQ(key_auto, "linear_io F32 256x128");
        /* square windows see a matrix and its transpose alike (same singular
         * values); the reading shows in the conv kernels and rectangular windows */
        CHECK(same_bits(dense->res.alpha, dense_auto->res.alpha));
    }
    engine_report_free(&r);
    engine_report_free(&ra);
    check_rectangular_windows_see_the_reading();
    if (eng_select_run(FIX "checkpoints/mlp/mlp_step0500.safetensors", &pk, 0, &rk))
        return;
    w = eng_find_layer(&rk, "net.0.weight");
    CHECK(w != NULL && w->info.kind == LAYER_KIND_LINEAR_IO && w->selected);
    w = eng_find_layer(&rk, "net.0.bias");
    CHECK(w != NULL && w->info.kind == LAYER_KIND_BIAS && !w->selected);
    engine_report_free(&rk);
}

/* weights=REGEX: tensors no rule knows (`mixer/W_in`) are analysed when the
 * name matches, kind by rank, in the layout as set; the others keep their
 * reason. Same alphas as the PyTorch MLP's. */
static void test_weights_regex_selects_unknown_names(void)
{
    const char *sets[] = {"weights=^mixer/W_(in|hidden)$"};
    const char *sets_k[] = {"weights=W_out", "layout=keras"};
    struct farms_params p0 = params_with("farms-cv", NULL, 0);
    struct farms_params p = params_with("farms-cv", sets, 1);
    struct farms_params pk = params_with("farms-cv", sets_k, 2);
    struct engine_report r0, r, rk, tr;
    const struct engine_layer *in, *hid, *out, *t_in, *t_hid;

    if (eng_select_run(LAY "odd_mlp.safetensors", &p0, 0, &r0) ||
        eng_select_run(LAY "odd_mlp.safetensors", &p, ENG_RUN, &r) ||
        eng_select_run(LAY "odd_mlp.safetensors", &pk, 0, &rk) ||
        eng_select_run(FIX "checkpoints/mlp/mlp_step0500.safetensors", &p, ENG_RUN, &tr))
        return;
    for (size_t i = 0; i < r0.n; i++) {
        CHECK_EQ_INT(r0.layers[i].selected, 0);
        CHECK(strstr(r0.layers[i].res.reason, "is not a layer weight") != NULL);
    }
    in = eng_find_layer(&r, "mixer/W_in");
    hid = eng_find_layer(&r, "mixer/W_hidden");
    out = eng_find_layer(&r, "mixer/W_out");
    t_in = eng_find_layer(&tr, "net.0.weight");
    t_hid = eng_find_layer(&tr, "net.2.weight");
    CHECK(in && hid && out && t_in && t_hid);
    if (in && hid && out && t_in && t_hid) {
        CHECK(in->selected && hid->selected && !out->selected);
        CHECK_EQ_INT(in->info.kind, LAYER_KIND_LINEAR);
        CHECK_EQ_INT(in->res.status, FARMS_STATUS_OK);
        CHECK(same_bits(in->res.alpha, t_in->res.alpha));
        CHECK(same_bits(hid->res.alpha, t_hid->res.alpha));
    }
    out = eng_find_layer(&rk, "mixer/W_out");
    CHECK(out != NULL && out->selected && out->info.kind == LAYER_KIND_LINEAR_IO);
    engine_report_free(&r0);
    engine_report_free(&r);
    engine_report_free(&rk);
    engine_report_free(&tr);
}

/* An invalid weights= regex is a settings error naming the key, in preset_set
 * (CLI --set, exit 2) and in the settings JSON (the service's 400). */
static void test_invalid_weights_regex_is_refused(void)
{
    struct farms_params p = params_with("farms-llm", NULL, 0);
    char longer[FARMS_WEIGHTS_MAX + 16];
    struct err e;

    CHECK_EQ_INT(preset_set(&p, "weights=(unclosed", &e), ERR_INVAL);
    CHECK(strstr(e.msg, "weights: '(unclosed' is not a POSIX extended regular expression") ==
          e.msg);
    CHECK_EQ_INT(preset_set(&p, "weights=caf\xc3\xa9", &e), ERR_INVAL);
    CHECK(strstr(e.msg, "not printable ASCII") != NULL);
    memset(longer, 'a', sizeof(longer) - 1);
    memcpy(longer, "weights=", 8);
    longer[sizeof(longer) - 1] = '\0';
    CHECK_EQ_INT(preset_set(&p, longer, &e), ERR_INVAL);
    CHECK_EQ_INT(preset_set(&p, "layout=tf", &e), ERR_INVAL);
    CHECK_STR_EQ(e.msg, "layout: 'tf' is not auto, torch or keras");
    CHECK_EQ_INT(preset_from_json("{\"weights\":\"[a-\"}", &p, &e), ERR_INVAL);
    CHECK_EQ_INT(preset_from_json("{\"layout\":1}", &p, &e), ERR_INVAL);
    CHECK_STR_EQ(p.weights, "");
    CHECK_EQ_INT(p.tensor_layout, FARMS_TENSOR_LAYOUT_AUTO);
}

/* The selection keys travel in the settings JSON only when set, escaped, and
 * read back exactly; without them the text is that of the preset alone (the
 * settings hashes of existing jobs do not move). */
static void test_selection_keys_in_the_settings_json(void)
{
    const char *sets[] = {"layout=keras", "weights=a\"b\\\\.c$"};
    struct farms_params p = params_with("farms-llm", sets, 2),
                        q = params_with("farms-llm", NULL, 0);
    char text[PRESET_JSON_MAX], plain[PRESET_JSON_MAX], again[PRESET_JSON_MAX];
    struct err e;

    CHECK_STR_EQ(p.weights, "a\"b\\\\.c$");
    CHECK_EQ_INT(preset_to_json(&q, plain, sizeof(plain), &e), ERR_OK);
    CHECK(strstr(plain, "layout") == NULL && strstr(plain, "weights") == NULL);
    CHECK_EQ_INT(preset_to_json(&p, text, sizeof(text), &e), ERR_OK);
    CHECK(strstr(text, ",\"layout\":\"keras\",\"weights\":\"a\\\"b\\\\\\\\.c$\"}") != NULL);
    CHECK_EQ_INT(preset_from_json(text, &q, &e), ERR_OK);
    CHECK_EQ_INT(q.tensor_layout, FARMS_TENSOR_LAYOUT_KERAS);
    CHECK_STR_EQ(q.weights, p.weights);
    CHECK_EQ_INT(preset_to_json(&q, again, sizeof(again), &e), ERR_OK);
    CHECK_STR_EQ(again, text);
}

/* The reproduction of the issue: a TF `conv2d/kernel` (3, 3, 64, 128) and a
 * `.../filters` kernel were skipped ("conv kernel 64x64 larger than its
 * channels 3+3"); they are conv2d_hwio now, FARMS gets (128, 64, 3, 3), and
 * the result is bitwise that of the same kernel stored (out, in, kh, kw). */
static void test_issue_conv_kernel_and_filters_are_analysed(void)
{
    enum { H = 3, W = 3, I = 64, O = 128, N = H * W * I * O };
    const int64_t hwio_shape[4] = {H, W, I, O}, oihw_shape[4] = {O, I, H, W};
    const char *names[] = {"conv2d/kernel", "model/block_1/conv/filters", "conv2d/kernel:0"};
    float *hwio = malloc(N * sizeof(float)), *oihw = malloc(N * sizeof(float));
    struct farms_params p = params_with("farms-cv", NULL, 0);
    uint32_t x = 12345;

    CHECK(hwio != NULL && oihw != NULL);
    if (hwio == NULL || oihw == NULL)
        goto out;
    for (int k = 0; k < N; k++) { /* a fixed LCG: values in [-1, 1) */
        x = x * 1664525u + 1013904223u;
        hwio[k] = (float)((double)(x >> 8) / 8388608.0 - 1.0);
    }
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    oihw[((o * I + i) * H + h) * W + w] = hwio[((h * W + w) * I + i) * O + o];
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        struct analysis_tensor t = {
            .name = names[k], .dtype = DTYPE_F32, .ndim = 4, .shape = hwio_shape, .n_elems = N};
        struct analysis_tensor tt = {.name = "conv.weight",
                                     .dtype = DTYPE_F32,
                                     .ndim = 4,
                                     .shape = oihw_shape,
                                     .n_elems = N};
        struct analysis_layout lay, tlay;
        struct layer_info info, tinfo;
        struct farms_result res, tres;
        struct farms_shape fs;
        double *w = NULL, *tw = NULL;
        char why[160];

        CHECK_EQ_INT(analysis_select(&t, &p, &info, why, sizeof(why)), 1);
        CHECK_STR_EQ(why, "");
        CHECK_EQ_INT(info.kind, LAYER_KIND_CONV2D_HWIO);
        CHECK_EQ_INT(analysis_select(&tt, &p, &tinfo, why, sizeof(why)), 1);
        analysis_layout_of(info.kind, &t, &lay);
        analysis_layout_of(tinfo.kind, &tt, &tlay);
        CHECK_EQ_INT(lay.kind, FARMS_KIND_CONV2D);
        for (int d = 0; d < 4; d++)
            CHECK_EQ_INT(lay.shape[d], oihw_shape[d]);
        CHECK_EQ_INT(analysis_matrix_new(&t, &lay, hwio, &w, NULL), ERR_OK);
        CHECK_EQ_INT(analysis_matrix_new(&tt, &tlay, oihw, &tw, NULL), ERR_OK);
        CHECK(w != NULL && tw != NULL && same_array(w, tw, N));
        fs = (struct farms_shape){.kind = lay.kind, .n_dims = 4, .shape = lay.shape};
        if (k == 0 && w != NULL && tw != NULL) { /* one fit is enough: the inputs are equal */
            CHECK_EQ_INT(farms_analyze(&p, &fs, w, &res, NULL), ERR_OK);
            CHECK_EQ_INT(farms_analyze(&p, &fs, tw, &tres, NULL), ERR_OK);
            CHECK_EQ_INT(res.status, FARMS_STATUS_OK);
            CHECK(isfinite(res.alpha) && same_bits(res.alpha, tres.alpha));
        }
        free(w);
        free(tw);
    }
out:
    free(hwio);
    free(oihw);
}

/* Classify `name` with a shape. */
static struct layer_info classify(const char *name, int ndim, const int64_t *shape)
{
    struct layer_info li;
    layer_classify(name, DTYPE_F32, ndim, shape, &li);
    return li;
}

/* Keras/TF/Flax names: leaves, `:N` suffixes, the non-weights, 1x1 kernels,
 * conv1d kernels, blocks (`block_3`, `layers_2`) and roles. */
static void test_keras_and_flax_names(void)
{
    const int64_t s2[2] = {512, 64}, s3[3] = {5, 16, 32}, s4[4] = {1, 1, 64, 128};
    const int64_t s1[1] = {64}, emb[2] = {1000, 64};
    struct layer_info li;

    li = classify("dense_1/kernel:0", 2, s2);
    CHECK(li.kind == LAYER_KIND_LINEAR_IO && li.analyze && li.block == -1);
    CHECK_EQ_INT(li.module_len, strlen("dense_1"));
    li = classify("conv1d/kernel", 3, s3);
    CHECK(li.kind == LAYER_KIND_CONV1D_WIO && li.analyze);
    li = classify("conv2d_2/kernel", 4, s4); /* a 1x1 conv, not a (1, 1, T, T) mask */
    CHECK(li.kind == LAYER_KIND_CONV2D_HWIO && li.analyze);
    li = classify("conv.weight", 4, s4); /* PyTorch: the mask rule stands */
    CHECK_EQ_INT(li.kind, LAYER_KIND_MASK);
    li = classify("tf_slim/conv1/weights", 4, s4);
    CHECK_EQ_INT(li.kind, LAYER_KIND_CONV2D_HWIO);
    li = classify("embedding/embeddings:0", 2, emb);
    CHECK_EQ_INT(li.kind, LAYER_KIND_EMBEDDING);
    li = classify("params/Embed_0/embedding", 2, emb);
    CHECK_EQ_INT(li.kind, LAYER_KIND_EMBEDDING);
    li = classify("batch_normalization/moving_variance:0", 1, s1);
    CHECK(li.kind == LAYER_KIND_NORM_STAT && !li.analyze);
    li = classify("batch_normalization/gamma:0", 1, s1);
    CHECK(li.kind == LAYER_KIND_NORM && !li.analyze);
    li = classify("params/LayerNorm_0/scale", 1, s1);
    CHECK_EQ_INT(li.kind, LAYER_KIND_NORM);
    li = classify("dense/bias:0", 1, s1);
    CHECK_EQ_INT(li.kind, LAYER_KIND_BIAS);
    li = classify("model/block_3/dense/kernel", 2, s2);
    CHECK_EQ_INT(li.block, 3);
    li = classify("params/layers_2/attention/query/kernel", 2, s2);
    CHECK(li.block == 2 && li.role == LAYER_ROLE_ATTN_Q && li.kind == LAYER_KIND_LINEAR_IO);
    li = classify("params/Dense_0/kernel", 2, s2); /* Flax's module numbering is no block */
    CHECK_EQ_INT(li.block, -1);
    li = classify("encoder/layer_11/output/dense/kernel", 2, s2);
    CHECK(li.block == 11 && li.role == LAYER_ROLE_MLP_DOWN);
    li = classify("model.kernel:weird", 2, s2); /* not a `:N` suffix: leaf "kernel:weird" */
    CHECK(li.kind == LAYER_KIND_OTHER && !li.analyze);
}

/* Keras layer names order naturally: dense, dense_1, dense_2, dense_10. */
static void test_keras_names_order_naturally(void)
{
    const char *names[] = {"dense_10/kernel", "dense_2/kernel", "dense/kernel", "dense_1/kernel"};
    const int64_t s2[2] = {8, 8};
    struct layer_info infos[4] = {classify(names[0], 2, s2), classify(names[1], 2, s2),
                                  classify(names[2], 2, s2), classify(names[3], 2, s2)};
    size_t order[4];
    struct layer_records recs = {.infos = infos, .names = names, .n = 4};
    enum layer_ordering how;

    CHECK_EQ_INT(layer_order(&recs, 0, order, &how, NULL), ERR_OK);
    CHECK_EQ_INT(how, LAYER_ORDERING_NATURAL);
    CHECK_STR_EQ(names[order[0]], "dense/kernel");
    CHECK_STR_EQ(names[order[1]], "dense_1/kernel");
    CHECK_STR_EQ(names[order[2]], "dense_2/kernel");
    CHECK_STR_EQ(names[order[3]], "dense_10/kernel");
}

int main(void)
{
    static void (*const cases[])(void) = {
        test_every_tensor_has_the_manifest_kind,
        test_keras_and_flax_alphas_equal_pytorch_bitwise,
        test_layout_setting_overrides_the_reading,
        test_weights_regex_selects_unknown_names,
        test_invalid_weights_regex_is_refused,
        test_selection_keys_in_the_settings_json,
        test_issue_conv_kernel_and_filters_are_analysed,
        test_keras_and_flax_names,
        test_keras_names_order_naturally,
    };

    return eng_run_cases("test_layouts", cases, sizeof(cases) / sizeof(cases[0]));
}
