/* test_engine.c -- a checkpoint's layers analysed end to end on the worker
 * pool: the trained MLP of the reference vectors gives the authors' alphas,
 * and the same weights give the same per-layer alphas from every format;
 * nothing is analysed from bytes other than the ones engine_select hashed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/numerics/preset.h"
#include "server/engine.h"
#include "tests/check.h"
#include "tests/engine_util.h"

#define FIX "tests/fixtures/"

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    cJSON *j;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    j = cJSON_Parse(buf);
    free(buf);
    return j;
}

static void test_trained_mlp_matches_reference_vectors(void)
{
    static const char *const cases[][2] = {{"fc1.weight", FIX "numerics/mlpA_fc1.json"},
                                           {"fc2.weight", FIX "numerics/mlpA_fc2.json"},
                                           {"fc3.weight", FIX "numerics/mlpA_fc3.json"}};
    struct engine_report r;

    if (eng_analyse(FIX "numerics/mlpA_digits.safetensors", "farms-cv", &r))
        return;
    CHECK_EQ_INT(r.n, 6); /* three weights, three biases */
    for (size_t i = 0; i < 3; i++) {
        const struct engine_layer *l = eng_find_layer(&r, cases[i][0]);
        cJSON *j = load_json(cases[i][1]);
        const cJSON *res = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "results"), "farms_imgcls");
        CHECK(l != NULL && res != NULL);
        if (l == NULL || res == NULL) {
            cJSON_Delete(j);
            continue;
        }
        CHECK_EQ_INT(l->res.status, FARMS_STATUS_OK);
        CHECK_REL(l->res.alpha, cJSON_GetObjectItem(res, "alpha")->valuedouble, 1e-3);
        CHECK_NEAR(l->res.D, cJSON_GetObjectItem(res, "D")->valuedouble, 1e-4);
        CHECK_EQ_INT(l->res.n_tail, cJSON_GetObjectItem(res, "n_tail")->valueint);
        CHECK_EQ_INT(l->res.num_eigs, cJSON_GetObjectItem(res, "num_eigs")->valueint);
        CHECK_REL(l->res.spectral_norm, cJSON_GetObjectItem(res, "spectral_norm")->valuedouble,
                  1e-4);
        cJSON_Delete(j);
    }
    CHECK_EQ_INT(eng_find_layer(&r, "fc1.bias")->res.status, FARMS_STATUS_SKIPPED);
    CHECK(strstr(eng_find_layer(&r, "fc1.bias")->res.reason, "bias") != NULL);
    engine_report_free(&r);
}

/* Every analysed layer of `a` has a layer in `b` whose name ends with its
 * name (a Lightning checkpoint adds "model."), with the same alpha and D. */
static void check_same_alphas(const char *pa, const char *pb, const char *preset)
{
    struct engine_report a, b;
    int n_ok = 0;

    if (eng_analyse(pa, preset, &a))
        return;
    if (eng_analyse(pb, preset, &b)) {
        engine_report_free(&a);
        return;
    }
    for (size_t i = 0; i < a.n; i++) {
        const struct engine_layer *la = &a.layers[i], *lb = NULL;
        size_t na = strlen(la->name);
        if (la->res.status != FARMS_STATUS_OK)
            continue;
        for (size_t j = 0; j < b.n && lb == NULL; j++) {
            size_t nb = strlen(b.layers[j].name);
            if (nb >= na && strcmp(b.layers[j].name + nb - na, la->name) == 0)
                lb = &b.layers[j];
        }
        CHECK(lb != NULL);
        if (lb == NULL)
            continue;
        CHECK_EQ_INT(lb->res.status, FARMS_STATUS_OK);
        CHECK_NEAR(la->res.alpha, lb->res.alpha, 1e-12 * fabs(la->res.alpha));
        CHECK_NEAR(la->res.D, lb->res.D, 1e-12);
        n_ok++;
    }
    CHECK(n_ok >= 3); /* the comparison covered real layers */
    engine_report_free(&a);
    engine_report_free(&b);
}

static void test_same_weights_same_alphas_in_every_format(void)
{
    const char *const ck = FIX "checkpoints/";
    static const char *const pairs[][2] = {
        {"mlp/mlp_step0500.safetensors", "mlp/mlp_step0500.pt"},
        {"mlp/mlp_step0500.safetensors", "mlp/mlp_step0500.npz"},
        {"mlp/mlp_step0500.safetensors", "mlp/mlp_step0500_compressed.npz"},
        {"mlp/mlp_step0500.safetensors", "mlp/mlp_step0500_train.pt"},
        {"mlp/mlp_step0500.safetensors", "special/mlp_step0500_bigendian.pt"},
        {"mlp/mlp_step0500.safetensors", "special/mlp_step0500_ddp_compile_prefix.pt"},
        {"cnn/cnn_step0500.safetensors", "cnn/cnn_step0500.pt"},
        {"cnn/cnn_step0500.safetensors", "cnn/cnn_step0500_train.pth"},
        {"llama/llama_step0500.safetensors", "llama/llama_step0500.pt"},
        {"llama/llama_step0500.safetensors", "llama/llama_step0500_lightning.ckpt"},
        {"llama/llama_step0500.safetensors", "llama/sharded/model.safetensors.index.json"},
        {"gpt2/gpt2_step0500.safetensors", "gpt2/gpt2_step0500.pt"}};
    char a[256], b[256];

    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        snprintf(a, sizeof(a), "%s%s", ck, pairs[i][0]);
        snprintf(b, sizeof(b), "%s%s", ck, pairs[i][1]);
        check_same_alphas(a, b, i % 2 ? "farms-llm" : "farms-cv");
    }
    /* a different preset on one pair: the WeightWatcher-style full scan */
    check_same_alphas(FIX "checkpoints/llama/llama_step0500.safetensors",
                      FIX "checkpoints/llama/llama_step0500.pt", "full");
}

static void test_tied_weights_are_analysed_once(void)
{
    struct engine_report r;
    const struct engine_layer *head, *emb;

    if (eng_analyse(FIX "checkpoints/llama/llama_step0500.pt", "full", &r))
        return;
    head = eng_find_layer(&r, "lm_head.weight");
    emb = eng_find_layer(&r, "model.embed_tokens.weight");
    CHECK(head != NULL && emb != NULL);
    if (head != NULL && emb != NULL) {
        CHECK_EQ_INT(emb->res.status, FARMS_STATUS_OK); /* full: embeddings included */
        CHECK_EQ_INT(head->res.status, FARMS_STATUS_SKIPPED);
        CHECK(strstr(head->res.reason, "model.embed_tokens.weight") != NULL);
    }
    engine_report_free(&r);
}

static void test_canonical_order_of_a_decoder(void)
{
    static const char *const want[] = {"model.embed_tokens.weight",
                                       "model.layers.0.self_attn.q_proj.weight",
                                       "model.layers.0.self_attn.k_proj.weight",
                                       "model.layers.0.self_attn.v_proj.weight",
                                       "model.layers.0.self_attn.o_proj.weight",
                                       "model.layers.0.mlp.gate_proj.weight",
                                       "model.layers.0.mlp.up_proj.weight",
                                       "model.layers.0.mlp.down_proj.weight"};
    struct engine_report r;

    if (eng_analyse(FIX "checkpoints/llama/llama_step0500.safetensors", "farms-llm", &r))
        return;
    CHECK_EQ_INT(r.ordering, LAYER_ORDERING_CANONICAL);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]) && i < r.n; i++)
        CHECK_STR_EQ(r.layers[i].name, want[i]);
    CHECK_EQ_INT(eng_find_layer(&r, "model.embed_tokens.weight")->res.status, FARMS_STATUS_SKIPPED);
    engine_report_free(&r);
}

static void test_include_and_exclude_filter_by_name(void)
{
    struct farms_params p;
    struct engine_opts o = {0};
    struct engine_report r;
    struct ckpt *c = NULL;
    regex_t inc, exc;

    preset_get("farms-cv", &p, NULL);
    regcomp(&inc, "weight$", REG_EXTENDED | REG_NOSUB);
    regcomp(&exc, "^fc3", REG_EXTENDED | REG_NOSUB);
    o.params = &p;
    o.include = &inc;
    o.exclude = &exc;
    CHECK_EQ_INT(
        ckpt_open(FIX "numerics/mlpA_digits.safetensors", CKPT_FORMAT_UNKNOWN, NULL, &c, NULL),
        ERR_OK);
    CHECK_EQ_INT(engine_select(c, &o, &r, NULL), ERR_OK);
    CHECK_EQ_INT(r.n, 2);
    if (r.n == 2) {
        CHECK_STR_EQ(r.layers[0].name, "fc1.weight");
        CHECK_STR_EQ(r.layers[1].name, "fc2.weight");
    }
    engine_report_free(&r);
    ckpt_close(c);
    regfree(&inc);
    regfree(&exc);
}

/* Every analysed layer carries the histogram of its pooled eigenvalues with
 * its own fit: all eigenvalues counted, the tail behind the fit line is the
 * fit's tail; skipped rows have none. */
static void test_layers_carry_their_histogram(void)
{
    struct engine_report r;
    int n_checked = 0;

    if (eng_analyse(FIX "numerics/mlpA_digits.safetensors", "farms-cv", &r))
        return;
    for (size_t i = 0; i < r.n; i++) {
        const struct engine_layer *l = &r.layers[i];
        int64_t total = l->esd.n_zero;

        if (l->res.status != FARMS_STATUS_OK) {
            CHECK_EQ_INT(l->esd.n_eigs, 0);
            continue;
        }
        for (int k = 0; k < l->esd.n_bins; k++)
            total += l->esd.counts[k];
        CHECK_EQ_INT(l->esd.n_bins, ESD_HIST_BINS);
        CHECK_EQ_INT(l->esd.n_eigs, l->res.num_eigs);
        CHECK_EQ_INT(total, l->res.num_eigs);
        CHECK(l->esd.alpha == l->res.alpha && l->esd.xmin == l->res.xmin);
        CHECK(l->esd.D == l->res.D);
        CHECK_EQ_INT(l->esd.n_tail, l->res.n_tail);
        CHECK_REL(pow(10, l->esd.log_hi), l->res.spectral_norm, 1e-12);
        n_checked++;
    }
    CHECK_EQ_INT(n_checked, 3);
    engine_report_free(&r);
}

static int count_progress(void *arg, size_t done, size_t total, const struct engine_layer *row,
                          double seconds)
{
    (void)done;
    (void)total;
    (void)row;
    (void)seconds;
    (*(int *)arg)++;
    return 0;
}

/* With hashing on, each row's bytes are hashed again as they are loaded: a
 * row whose hash no longer matches (its file changed after engine_select)
 * stops the run with category "changed" before it is analysed or reported;
 * with matching hashes every row is analysed. */
static void test_bytes_other_than_the_hashed_ones_are_not_analysed(void)
{
    struct farms_params p;
    struct engine_opts o = {0};
    struct engine_report r = {0};
    struct ckpt *c = NULL;
    struct engine_layer *second = NULL;
    struct err e = {0};
    int n_progress = 0, n_selected = 0;

    preset_get("farms-cv", &p, NULL);
    o = (struct engine_opts){&p, NULL, NULL, 1, count_progress, &n_progress};
    CHECK_EQ_INT(
        ckpt_open(FIX "numerics/mlpA_digits.safetensors", CKPT_FORMAT_UNKNOWN, NULL, &c, NULL),
        ERR_OK);
    CHECK_EQ_INT(engine_select(c, &o, &r, NULL), ERR_OK);
    for (size_t i = 0; i < r.n; i++) {
        CHECK_EQ_INT(strlen(r.layers[i].sha256), 64);
        if (r.layers[i].selected && ++n_selected == 2)
            second = &r.layers[i];
    }
    CHECK_EQ_INT(n_selected, 3);
    if (second != NULL) {
        second->sha256[0] = second->sha256[0] == '0' ? '1' : '0'; /* other bytes hashed */
        CHECK_EQ_INT(engine_run(c, eng_pool, &o, &r, &e), ERR_IO);
        CHECK_STR_EQ(err_category(&e), "changed");
        CHECK(strstr(e.msg, second->name) != NULL);
        CHECK_EQ_INT(n_progress, 1); /* the first row only */
        CHECK_EQ_INT(second->res.num_eigs, 0);
    }
    engine_report_free(&r);
    n_progress = 0;
    CHECK_EQ_INT(engine_select(c, &o, &r, NULL), ERR_OK);
    CHECK_EQ_INT(engine_run(c, eng_pool, &o, &r, &e), ERR_OK);
    CHECK_EQ_INT(n_progress, 3);
    engine_report_free(&r);
    ckpt_close(c);
}

int main(void)
{
    static void (*const cases[])(void) = {
        test_trained_mlp_matches_reference_vectors,
        test_same_weights_same_alphas_in_every_format,
        test_tied_weights_are_analysed_once,
        test_canonical_order_of_a_decoder,
        test_include_and_exclude_filter_by_name,
        test_layers_carry_their_histogram,
        test_bytes_other_than_the_hashed_ones_are_not_analysed,
    };

    return eng_run_cases("test_engine", cases, sizeof(cases) / sizeof(cases[0]));
}
