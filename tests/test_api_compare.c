/* test_api_compare.c -- GET /v1/compare through api_handle() with an
 * in-memory store: a HF-named checkpoint against a llama.cpp-named one
 * (pairs by role, deltas, the unmatched, the summary means), two steps of
 * one run (pairs by name), the preset of each side, every error the route
 * names, and the ETag of both runs. The layer JSON's block / role / params
 * are checked on the same rows. Run from the repository root.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "core/formats/thash.h"
#include "core/numerics/preset.h"
#include "storage/store.h"
#include "storage/store_jobs.h"
#include "storage/store_layers.h"
#include "tests/api_fixture.h"
#include "tests/check.h"

/* A row to put: name, kind, rows x cols (cols 0: 1-D), alpha (NaN: skipped). */
struct row {
    const char *name;
    enum layer_kind kind;
    int64_t rows, cols;
    double alpha;
};

/* Record checkpoint `step` of `run` as a farms-llm job and, unless
 * `analysed` is 0, put rows[0..n) as its layer rows (D = alpha / 100,
 * num_spikes -1: not computed). */
static void put_ckpt(struct fx *f, const char *run, int64_t step, const struct row *rows, size_t n,
                     int analysed)
{
    char params[PRESET_JSON_MAX], sha[THASH_HEX_LEN];
    struct farms_params p;
    struct store_submit sub = {0};
    struct store_job job;
    struct store_layer y[8];
    int existed;

    CHECK(preset_get("farms-llm", &p, NULL) == ERR_OK);
    CHECK(preset_to_json(&p, params, sizeof(params), NULL) == ERR_OK);
    snprintf(sha, sizeof(sha), "%032lld%032zu", (long long)step, strlen(run));
    sub = (struct store_submit){.run = run,
                                .step = step,
                                .content_sha256 = sha,
                                .source = STORE_SOURCE_PATH,
                                .path = "/data/ckpt",
                                .format = "safetensors",
                                .size = 100,
                                .preset = "farms-llm",
                                .params_json = params};
    CHECK(store_job_submit(f->s, &sub, &job, &existed, NULL) == ERR_OK);
    if (!analysed)
        return;
    memset(y, 0, sizeof(y));
    for (size_t i = 0; i < n && i < 8; i++) {
        y[i].name = (char *)(uintptr_t)rows[i].name;
        y[i].kind = rows[i].kind;
        y[i].dtype = DTYPE_F32;
        y[i].ndim = rows[i].cols > 0 ? 2 : 1;
        y[i].shape[0] = rows[i].rows;
        y[i].shape[1] = rows[i].cols;
        y[i].r.status = isnan(rows[i].alpha) ? FARMS_STATUS_SKIPPED : FARMS_STATUS_OK;
        y[i].r.alpha = rows[i].alpha;
        y[i].r.D = rows[i].alpha / 100;
        y[i].r.num_eigs = 64;
        y[i].r.windows = 1;
        y[i].r.num_spikes = -1; /* not computed (no MP fit) */
    }
    CHECK(store_layers_put(f->s, job.checkpoint_id, job.settings_hash, y, n, NULL) == ERR_OK);
}

static const struct row hf_rows[] = {
    {"model.embed_tokens.weight", LAYER_KIND_EMBEDDING, 32000, 64, NAN},
    {"model.layers.0.input_layernorm.weight", LAYER_KIND_NORM, 64, 0, NAN},
    {"model.layers.0.self_attn.q_proj.weight", LAYER_KIND_LINEAR, 64, 64, 3.0},
    {"model.layers.0.self_attn.k_proj.weight", LAYER_KIND_LINEAR, 32, 64, 2.5},
    {"model.layers.0.mlp.down_proj.weight", LAYER_KIND_LINEAR, 64, 128, 4.0}};
static const struct row gguf_rows[] = {{"token_embd.weight", LAYER_KIND_EMBEDDING, 32000, 64, NAN},
                                       {"blk.0.attn_norm.weight", LAYER_KIND_NORM, 64, 0, NAN},
                                       {"blk.0.attn_q.weight", LAYER_KIND_LINEAR, 64, 64, 3.5},
                                       {"blk.0.ffn_down.weight", LAYER_KIND_LINEAR, 64, 128, 3.0},
                                       {"extra.weight", LAYER_KIND_LINEAR, 16, 16, 5.0}};
#define N_ROWS(a) (sizeof(a) / sizeof((a)[0]))

/* HF against GGUF names: the embedding, attn_q and mlp_down pair by role,
 * k_proj and extra.weight are left over; deltas are b - a, null where a
 * side has no value; the summary means are over each side's analysed
 * weights. */
static void test_compare_by_role(void)
{
    struct fx f;
    struct api_response r;
    cJSON *j;
    const cJSON *layers, *l, *sum;

    fx_open(&f, "farms-llm");
    put_ckpt(&f, "base", 100, hf_rows, N_ROWS(hf_rows), 1);
    put_ckpt(&f, "quant", 7, gguf_rows, N_ROWS(gguf_rows), 1);
    j = fx_get(&f, "/v1/compare", "a=base:100&b=quant:7", NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR_EQ(jstr(jget(j, "a"), "run"), "base");
    CHECK_EQ_INT(jnum(jget(j, "a"), "step"), 100);
    CHECK_STR_EQ(jstr(jget(j, "b"), "run"), "quant");
    CHECK_EQ_INT(jnum(jget(j, "b"), "step"), 7);
    CHECK_STR_EQ(jstr(jget(j, "b"), "preset"), "farms-llm");
    CHECK_EQ_INT(strlen(jstr(jget(j, "a"), "settings_hash")), 64);
    layers = jget(j, "layers");
    CHECK_EQ_INT(cJSON_GetArraySize(layers), 3);
    l = cJSON_GetArrayItem(layers, 0);
    CHECK_STR_EQ(jstr(l, "key"), "embedding");
    CHECK_STR_EQ(jstr(l, "matched_by"), "role");
    CHECK_STR_EQ(jstr(jget(l, "a"), "status"), "skipped");
    CHECK(cJSON_IsNull(jget(jget(l, "delta"), "alpha")));
    l = cJSON_GetArrayItem(layers, 1);
    CHECK_STR_EQ(jstr(l, "key"), "block 0 attn_q");
    CHECK_STR_EQ(jstr(l, "name_a"), "model.layers.0.self_attn.q_proj.weight");
    CHECK_STR_EQ(jstr(l, "name_b"), "blk.0.attn_q.weight");
    CHECK_EQ_INT(jnum(l, "block"), 0);
    CHECK_STR_EQ(jstr(l, "role"), "attn_q");
    CHECK_NEAR(jnum(jget(l, "a"), "alpha"), 3.0, 0);
    CHECK_NEAR(jnum(jget(l, "b"), "alpha"), 3.5, 0);
    CHECK_NEAR(jnum(jget(l, "delta"), "alpha"), 0.5, 1e-12);
    CHECK_NEAR(jnum(jget(l, "delta"), "D"), 0.005, 1e-12);
    CHECK_STR_EQ(jstr(jget(l, "b"), "status"), "ok");
    CHECK(cJSON_IsNull(jget(jget(l, "b"), "warning")));
    CHECK_EQ_INT(jnum(jget(l, "b"), "num_eigs"), 64);
    CHECK(cJSON_IsNull(jget(jget(l, "b"), "num_spikes"))); /* -1: not computed, as in layers */
    CHECK(cJSON_IsNull(jget(jget(l, "delta"), "num_spikes")));
    l = cJSON_GetArrayItem(layers, 2);
    CHECK_STR_EQ(jstr(l, "key"), "block 0 mlp_down");
    CHECK_NEAR(jnum(jget(l, "delta"), "alpha"), -1.0, 1e-12);
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "only_a")), 1);
    CHECK_STR_EQ(cJSON_GetArrayItem(jget(j, "only_a"), 0)->valuestring,
                 "model.layers.0.self_attn.k_proj.weight");
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "only_b")), 1);
    CHECK_STR_EQ(cJSON_GetArrayItem(jget(j, "only_b"), 0)->valuestring, "extra.weight");
    sum = jget(jget(j, "summary"), "alpha");
    CHECK_NEAR(jnum(sum, "a"), (3.0 + 2.5 + 4.0) / 3, 1e-12);
    CHECK_NEAR(jnum(sum, "b"), (3.5 + 3.0 + 5.0) / 3, 1e-12);
    CHECK_NEAR(jnum(sum, "delta"), 2.0 / 3, 1e-12);
    CHECK(jget(jget(j, "summary"), "entropy") != NULL); /* every history metric */
    cJSON_Delete(j);
    api_response_free(&r);
    store_close(f.s);
}

/* Two steps of one run pair by name; the layer JSON carries block, role and
 * params. */
static void test_compare_steps_by_name(void)
{
    struct row later[N_ROWS(hf_rows)];
    struct fx f;
    struct api_response r;
    struct api_request rq = {.method = "GET", .path = "/v1/runs/base/checkpoints/200"};
    cJSON *j;
    const cJSON *l;

    memcpy(later, hf_rows, sizeof(later));
    later[2].alpha = 2.0;
    fx_open(&f, "farms-llm");
    put_ckpt(&f, "base", 100, hf_rows, N_ROWS(hf_rows), 1);
    put_ckpt(&f, "base", 200, later, N_ROWS(later), 1);
    j = fx_get(&f, "/v1/compare", "a=base:100&b=base:200", NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "layers")), 4); /* the norm takes no part */
    l = cJSON_GetArrayItem(jget(j, "layers"), 1);
    CHECK_STR_EQ(jstr(l, "matched_by"), "name");
    CHECK_STR_EQ(jstr(l, "key"), "model.layers.0.self_attn.q_proj.weight");
    CHECK_NEAR(jnum(jget(l, "delta"), "alpha"), -1.0, 1e-12);
    CHECK_NEAR(jnum(jget(cJSON_GetArrayItem(jget(j, "layers"), 2), "delta"), "alpha"), 0, 0);
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "only_a")), 0);
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "only_b")), 0);
    cJSON_Delete(j);
    api_response_free(&r);

    api_handle(&f.ctx, f.s, &rq, &r);
    CHECK_EQ_INT(r.status, 200);
    j = cJSON_ParseWithLength(r.body, r.body_len);
    l = cJSON_GetArrayItem(jget(j, "layers"), 4);
    CHECK_STR_EQ(jstr(l, "name"), "model.layers.0.mlp.down_proj.weight");
    CHECK_EQ_INT(jnum(l, "block"), 0);
    CHECK_STR_EQ(jstr(l, "role"), "mlp_down");
    CHECK_EQ_INT(jnum(l, "params"), 64 * 128);
    l = cJSON_GetArrayItem(jget(j, "layers"), 0);
    CHECK(cJSON_IsNull(jget(l, "block")));
    CHECK(cJSON_IsNull(jget(l, "role")));
    CHECK_EQ_INT(jnum(l, "params"), 32000 * 64);
    cJSON_Delete(j);
    api_response_free(&r);
    store_close(f.s);
}

/* Each refusal says what is wrong: 400 for the form, the run name, the
 * step, the preset and unknown parameters; 404 naming the run, the step,
 * or a checkpoint not analysed (yet, or under that preset). */
static void test_compare_errors(void)
{
    static const struct {
        const char *query;
        int status;
        const char *detail; /* a part of the detail */
    } cases[] = {
        {"b=base:100", 400, "parameter 'a' is required: RUN:STEP"},
        {"a=base:100", 400, "parameter 'b' is required"},
        {"a=base&b=base:100", 400, "parameter 'a': 'base' is not RUN:STEP"},
        {"a=base:100&b=:100", 400, "parameter 'b': ':100' is not RUN:STEP"},
        {"a=base:100&b=base:", 400, "is not RUN:STEP"},
        {"a=ba%40se:100&b=base:100", 400, "parameter 'a': run 'ba@se': a run name is"},
        {"a=base:1:2&b=base:100", 400, "parameter 'a': run 'base:1'"},
        {"a=base:x&b=base:100", 400, "parameter 'a': step"},
        {"a=base:100&b=base:-1", 400, "parameter 'b': step"},
        {"a=base:100&b=base:100&preset=nope", 400, "nope"},
        {"a=base:100&b=base:100&c=1", 400, "'c'"},
        {"a=nope:100&b=base:100", 404, "run 'nope' not found"},
        {"a=base:100&b=base:555", 404, "parameter 'b': run 'base' has no checkpoint at step 555"},
        {"a=base:100&b=base:300", 404,
         "parameter 'b': checkpoint base:300 has not been analysed under preset 'farms-llm' yet"},
        {"a=base:100&b=base:100&preset_b=full", 404,
         "checkpoint base:100 has not been analysed under preset 'full' yet"}};
    struct fx f;

    fx_open(&f, "farms-llm");
    put_ckpt(&f, "base", 100, hf_rows, N_ROWS(hf_rows), 1);
    put_ckpt(&f, "base", 300, hf_rows, N_ROWS(hf_rows), 0); /* queued, not analysed */
    for (size_t i = 0; i < N_ROWS(cases); i++) {
        struct api_response r;
        cJSON *j = fx_get(&f, "/v1/compare", cases[i].query, NULL, &r);
        const char *detail = jstr(j, "detail");
        CHECK_EQ_INT(r.status, cases[i].status);
        CHECK_STR_EQ(r.content_type, "application/problem+json");
        if (strstr(detail, cases[i].detail) == NULL)
            fprintf(stderr, "case %zu (%s): detail \"%s\" lacks \"%s\"\n", i, cases[i].query,
                    detail, cases[i].detail);
        CHECK(strstr(detail, cases[i].detail) != NULL);
        cJSON_Delete(j);
        api_response_free(&r);
    }
    store_close(f.s);
}

/* The ETag is both runs': If-None-Match answers 304 until either run
 * changes. */
static void test_compare_etag(void)
{
    struct fx f;
    struct api_response r, r2;
    char etag[80];
    cJSON *j;

    fx_open(&f, "farms-llm");
    put_ckpt(&f, "base", 100, hf_rows, N_ROWS(hf_rows), 1);
    put_ckpt(&f, "quant", 7, gguf_rows, N_ROWS(gguf_rows), 1);
    j = fx_get(&f, "/v1/compare", "a=base:100&b=quant:7", NULL, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.etag[0] == '"');
    snprintf(etag, sizeof(etag), "%s", r.etag);
    cJSON_Delete(j);
    api_response_free(&r);
    j = fx_get(&f, "/v1/compare", "a=base:100&b=quant:7", etag, &r);
    CHECK_EQ_INT(r.status, 304);
    cJSON_Delete(j);
    api_response_free(&r);
    put_ckpt(&f, "quant", 8, gguf_rows, N_ROWS(gguf_rows), 1); /* run b changes */
    j = fx_get(&f, "/v1/compare", "a=base:100&b=quant:7", etag, &r2);
    CHECK_EQ_INT(r2.status, 200);
    CHECK(strcmp(r2.etag, etag) != 0);
    cJSON_Delete(j);
    api_response_free(&r2);
    store_close(f.s);
}

int main(void)
{
    test_compare_by_role();
    test_compare_steps_by_name();
    test_compare_errors();
    test_compare_etag();
    return check_report("test_api_compare");
}
