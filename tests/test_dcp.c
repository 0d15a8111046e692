/* test_dcp.c -- PyTorch Distributed Checkpoint folders (docs/dcp.md): a
 * folder written the way torch 2.5.1's FileSystemWriter writes it
 * (tests/fixtures/dcp/gen_dcp.py) is sniffed and listed with its names,
 * dtypes and shapes; every tensor stitched from its chunks (row shards,
 * uneven and empty shards, a 2-D grid) is bitwise the safetensors original
 * and gives the same per-layer alphas; optimizer state is not model weight;
 * each malformed folder of the manifest fails with its category; and the
 * unpickler's allow-list grows by the DCP metadata classes only in a
 * .metadata read. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/formats/ckpt.h"
#include "core/formats/dcp.h"
#include "core/formats/pickle.h"
#include "core/formats/rfile.h"
#include "core/formats/thash.h"
#include "core/numerics/preset.h"
#include "server/engine.h"
#include "server/pool.h"
#include "tests/check.h"
#include "tests/file_util.h"
#include "tests/engine_util.h"

#define DCP "tests/fixtures/dcp/"
#define CKP "tests/fixtures/checkpoints/"

static void test_folder_is_sniffed_and_listed_with_its_app_state(void)
{
    struct ckpt *c = eng_open_ok(DCP "mlp_fsdp", CKPT_FORMAT_UNKNOWN, NULL);
    const struct ckpt_tensor *t;

    if (c == NULL)
        return;
    CHECK_EQ_INT(ckpt_format_of(c), CKPT_FORMAT_DCP);
    CHECK(strcmp(ckpt_format_name(CKPT_FORMAT_DCP), "dcp") == 0);
    CHECK(strcmp(ckpt_model_prefix(c), "model.") == 0);
    /* 6 model tensors, and per parameter step / exp_avg / exp_avg_sq; the 5
     * param_groups entries are BytesStorageMetadata, not tensors. */
    CHECK_EQ_INT(ckpt_n_tensors(c), 24);
    t = eng_find_tensor(c, "model.net.2.weight", NULL);
    CHECK(t != NULL);
    if (t != NULL) {
        CHECK_EQ_INT(t->dtype, DTYPE_F32);
        CHECK_EQ_INT(t->ndim, 2);
        CHECK_EQ_INT(t->shape[0], 128);
        CHECK_EQ_INT(t->shape[1], 256);
        CHECK_EQ_INT(t->nbytes, 128 * 256 * 4);
        CHECK_EQ_INT(t->in_model, 1);
    }
    t = eng_find_tensor(c, "optim.state.net.2.weight.exp_avg", NULL);
    CHECK(t != NULL && t->in_model == 0 && t->shape[0] == 128);
    t = eng_find_tensor(c, "optim.state.net.2.weight.step", NULL);
    CHECK(t != NULL && t->in_model == 0 && t->ndim == 0 && t->n_elems == 1);
    CHECK(eng_find_tensor(c, "optim.param_groups.0.lr", NULL) == NULL);
    ckpt_close(c);
}

/* Every tensor of the safetensors file `st` is in the DCP folder under
 * prefix + its name, with the same shape and the same SHA-256 of its bytes. */
static void check_same_tensors(const char *st, const char *dcp, const char *prefix)
{
    struct ckpt *a = eng_open_ok(st, CKPT_FORMAT_UNKNOWN, NULL),
                *b = eng_open_ok(dcp, CKPT_FORMAT_UNKNOWN, NULL);
    struct ckpt_buf buf = {0};
    size_t n_same = 0;

    for (size_t i = 0; a != NULL && b != NULL && i < ckpt_n_tensors(a); i++) {
        const struct ckpt_tensor *ta = ckpt_tensor_at(a, i), *tb;
        char name[300], ha[THASH_HEX_LEN] = "a", hb[THASH_HEX_LEN] = "b";
        size_t j = 0;
        struct err e = {0};
        (void)snprintf(name, sizeof(name), "%s%s", prefix, ta->name);
        tb = eng_find_tensor(b, name, &j);
        CHECK(tb != NULL);
        if (tb == NULL)
            continue;
        CHECK_EQ_INT(tb->in_model, 1);
        CHECK_EQ_INT(tb->ndim, ta->ndim);
        CHECK(memcmp(tb->shape, ta->shape, sizeof(ta->shape[0]) * (size_t)ta->ndim) == 0);
        CHECK_EQ_INT(thash_tensor(a, i, &buf, ha, &e), ERR_OK);
        CHECK_EQ_INT(thash_tensor(b, j, &buf, hb, &e), ERR_OK);
        if (strcmp(ha, hb) != 0)
            fprintf(stderr, "%s %s: %s != %s (%s)\n", dcp, name, hb, ha, e.msg);
        n_same += strcmp(ha, hb) == 0;
    }
    CHECK(a != NULL && b != NULL && n_same == ckpt_n_tensors(a) && n_same >= 6);
    ckpt_buf_free(&buf);
    ckpt_close(a);
    ckpt_close(b);
}

/* Without planner_data the model key is taken from the names, because
 * optimizer state ("optim.") shows the folder holds an app state. */
static void test_app_state_is_found_without_planner_data(void)
{
    struct ckpt *c = eng_open_ok(DCP "mlp_fsdp_noplanner", CKPT_FORMAT_UNKNOWN, NULL);
    const struct ckpt_tensor *t;

    if (c == NULL)
        return;
    CHECK(strcmp(ckpt_model_prefix(c), "model.") == 0);
    t = eng_find_tensor(c, "model.net.0.weight", NULL);
    CHECK(t != NULL && t->in_model == 1);
    t = eng_find_tensor(c, "optim.state.net.0.weight.exp_avg", NULL);
    CHECK(t != NULL && t->in_model == 0);
    ckpt_close(c);
}

static void test_stitched_tensors_are_bitwise_the_originals(void)
{
    check_same_tensors(CKP "mlp/mlp_step0500.safetensors", DCP "mlp_fsdp", "model.");
    check_same_tensors(CKP "mlp/mlp_step0500.safetensors", DCP "mlp_fsdp_noplanner", "model.");
    check_same_tensors(CKP "mlp/mlp_step0500.safetensors", DCP "mlp_uneven", "");
    check_same_tensors(CKP "mlp/mlp_step0500.safetensors", DCP "mlp_2d", "");
    /* HF names under a bare state dict keep their "model." */
    check_same_tensors(CKP "llama/llama_step0500.safetensors", DCP "llama_fsdp", "");
}

static void test_shards_keep_their_names_and_layout(void)
{
    struct ckpt *c = eng_open_ok(DCP "llama_fsdp", CKPT_FORMAT_UNKNOWN, NULL);
    const struct ckpt_tensor *t;

    if (c == NULL)
        return;
    CHECK(strcmp(ckpt_model_prefix(c), "") == 0);
    t = eng_find_tensor(c, "model.layers.0.self_attn.k_proj.weight", NULL);
    CHECK(t != NULL && t->shape[0] == 32 && t->shape[1] == 64 && t->in_model == 1);
    ckpt_close(c);
}

/* Each analysed layer of `st` has the layer of the DCP folder named
 * prefix + its name, with exactly the same alpha and D. */
static void check_same_alphas(const char *st, const char *dcp, const char *prefix,
                              const char *preset)
{
    struct engine_report a, b;
    int n_ok = 0;

    if (eng_analyse(st, preset, &a))
        return;
    if (eng_analyse(dcp, preset, &b)) {
        engine_report_free(&a);
        return;
    }
    for (size_t i = 0; i < a.n; i++) {
        const struct engine_layer *la = &a.layers[i], *lb = NULL;
        char name[300];
        if (la->res.status != FARMS_STATUS_OK)
            continue;
        (void)snprintf(name, sizeof(name), "%s%s", prefix, la->name);
        for (size_t j = 0; j < b.n && lb == NULL; j++)
            if (strcmp(b.layers[j].name, name) == 0 || strcmp(b.layers[j].name, la->name) == 0)
                lb = &b.layers[j];
        CHECK(lb != NULL);
        if (lb == NULL)
            continue;
        CHECK_EQ_INT(lb->res.status, FARMS_STATUS_OK);
        CHECK(lb->res.alpha == la->res.alpha); /* bitwise: the same values in the same order */
        CHECK(lb->res.D == la->res.D);
        n_ok++;
    }
    CHECK(n_ok >= 3);
    CHECK_EQ_INT(b.n, a.n); /* optimizer state adds no layer */
    engine_report_free(&a);
    engine_report_free(&b);
}

static void test_same_weights_give_the_same_alphas(void)
{
    check_same_alphas(CKP "mlp/mlp_step0500.safetensors", DCP "mlp_fsdp", "model.", "farms-cv");
    check_same_alphas(CKP "mlp/mlp_step0500.safetensors", DCP "mlp_2d", "", "farms-cv");
    check_same_alphas(CKP "llama/llama_step0500.safetensors", DCP "llama_fsdp", "", "farms-llm");
}

/* Run one malformed case: its category must be `want` at `stage`. */
static void check_malformed(const char *path, const char *stage, const char *want)
{
    struct ckpt *c = NULL;
    struct ckpt_buf buf = {0};
    struct err e = {0};
    enum err_code rc = ckpt_open(path, CKPT_FORMAT_DCP, NULL, &c, &e);

    if (strcmp(stage, "read") == 0) {
        CHECK_EQ_INT(rc, ERR_OK);
        for (size_t i = 0; rc == ERR_OK && c != NULL && i < ckpt_n_tensors(c); i++) {
            const void *data = NULL;
            rc = ckpt_tensor_read(c, i, &buf, &data, &e);
        }
    }
    CHECK(rc != ERR_OK);
    if (rc == ERR_OK || strcmp(err_category(&e), want) != 0)
        fprintf(stderr, "%s: want %s at %s, got %s: %s\n", path, want, stage, err_category(&e),
                e.msg);
    CHECK(rc != ERR_OK && strcmp(err_category(&e), want) == 0);
    ckpt_buf_free(&buf);
    ckpt_close(c);
}

static void test_malformed_folders_fail_with_their_category(void)
{
    size_t n = 0;
    unsigned char *text = fu_read(DCP "manifest.json", &n);
    cJSON *j = NULL, *list, *it;
    int count = 0;

    CHECK(text != NULL);
    if (text == NULL)
        return;
    text[n] = '\0';
    j = cJSON_Parse((const char *)text);
    list = cJSON_GetObjectItem(j, "malformed");
    CHECK(cJSON_IsArray(list));
    cJSON_ArrayForEach(it, list)
    {
        char path[256];
        const char *rel = cJSON_GetStringValue(cJSON_GetObjectItem(it, "path"));
        const char *stage = cJSON_GetStringValue(cJSON_GetObjectItem(it, "stage"));
        const char *want = cJSON_GetStringValue(cJSON_GetObjectItem(it, "expect"));
        CHECK(rel != NULL && stage != NULL && want != NULL);
        if (rel == NULL || stage == NULL || want == NULL)
            continue;
        (void)snprintf(path, sizeof(path), DCP "%s", rel);
        check_malformed(path, stage, want);
        count++;
    }
    CHECK_EQ_INT(count, 13);
    cJSON_Delete(j);
    free(text);
}

/* Parse `len` bytes with pkl_parse (strict or lenient) or pkl_parse_dcp;
 * return the category name ("" on success). */
static const char *parse_category(const char *pkl, size_t len, int dcp, int strict)
{
    static char cat[64];
    struct ckpt_limits lim;
    struct pkl_result *r = NULL;
    struct err e = {0};
    enum err_code rc;

    ckpt_limits_default(&lim);
    lim.strict = strict;
    rc = dcp ? pkl_parse_dcp((const unsigned char *)pkl, len, &lim, &r, &e)
             : pkl_parse((const unsigned char *)pkl, len, &lim, &r, &e);
    (void)snprintf(cat, sizeof(cat), "%s", rc == ERR_OK ? "" : err_category(&e));
    pkl_free(r);
    return cat;
}

#define PARSE(s, dcp, strict) parse_category((s), sizeof(s) - 1, (dcp), (strict))

static void test_allow_list_grows_by_the_dcp_classes_only_for_metadata(void)
{
    static const char meta[] = "\x80\x02"
                               "ctorch.distributed.checkpoint.metadata\nMetadata\n)\x81.";
    static const char info[] = "\x80\x02"
                               "ctorch.distributed.checkpoint.filesystem\n_StorageInfo\n)\x81.";
    static const char plan[] = "\x80\x02"
                               "ctorch.distributed.checkpoint.planner\nSavePlan\n)\x81.";
    static const char sys_[] = "\x80\x02"
                               "cposix\nsystem\nX\x04\0\0\0true\x85R.";
    static const char path[] = "\x80\x02"
                               "cpathlib\nPosixPath\nX\x01\0\0\0a\x85R.";
    static const char strided[] = "\x80\x02"
                                  "ctorch\nstrided\n.";
    size_t n = 0;
    unsigned char *md = fu_read(DCP "mlp_fsdp/.metadata", &n);

    for (int strict = 0; strict <= 1; strict++) {
        /* a normal torch.save pickle: DCP classes stay forbidden in every mode */
        CHECK(strcmp(PARSE(meta, 0, strict), "disallowed_global") == 0);
        CHECK(strcmp(PARSE(info, 0, strict), "disallowed_global") == 0);
        CHECK(md != NULL &&
              strcmp(parse_category((const char *)md, n, 0, strict), "disallowed_global") == 0);
        /* a .metadata read: exactly those classes more */
        CHECK(strcmp(PARSE(meta, 1, strict), "") == 0);
        CHECK(strcmp(PARSE(info, 1, strict), "") == 0);
        CHECK(md != NULL && strcmp(parse_category((const char *)md, n, 1, strict), "") == 0);
        CHECK(strcmp(PARSE(plan, 1, strict), "disallowed_global") == 0);
        CHECK(strcmp(PARSE(sys_, 1, strict), "disallowed_global") == 0);
        CHECK(strcmp(PARSE(path, 1, strict), "") == 0);
        CHECK(strcmp(PARSE(strided, 1, strict), "") == 0);
    }
    /* what a .metadata may hold stays unknown to a strict torch.save read */
    CHECK(strcmp(PARSE(path, 0, 1), "disallowed_global") == 0);
    CHECK(strcmp(PARSE(strided, 0, 1), "disallowed_global") == 0);
    CHECK(strcmp(PARSE(path, 0, 0), "") == 0);
    free(md);
}

static void test_metadata_records_chunks_and_files(void)
{
    size_t n = 0;
    unsigned char *md = fu_read(DCP "mlp_2d/.metadata", &n);
    struct dcp_meta *m = NULL;
    struct err e = {0};
    const struct dcp_entry *w = NULL;

    CHECK(md != NULL);
    if (md == NULL)
        return;
    CHECK_EQ_INT(dcp_meta_parse(md, n, NULL, &m, &e), ERR_OK);
    for (size_t i = 0; m != NULL && i < m->n_entries; i++)
        if (strcmp(m->entries[i].fqn, "net.2.weight") == 0)
            w = &m->entries[i];
    CHECK(m != NULL && m->n_files == 2 && strcmp(m->files[0], "__0_0.distcp") == 0);
    CHECK(w != NULL);
    if (w != NULL) {
        const struct dcp_chunk *ch = &m->chunks[w->first_chunk];
        CHECK_EQ_INT(w->n_chunks, 4);
        CHECK_EQ_INT(ch[2].offsets[0], 0);
        CHECK_EQ_INT(ch[2].offsets[1], 128);
        CHECK_EQ_INT(ch[2].sizes[0], 64);
        CHECK_EQ_INT(ch[2].n_elems, 64 * 128);
        CHECK(strcmp(m->files[ch[2].file], "__1_0.distcp") == 0);
        CHECK(ch[2].len > (uint64_t)64 * 128 * 4); /* a whole torch.save archive */
        CHECK(w->path0 == NULL);                   /* a bare state dict */
    }
    dcp_meta_free(m);
    /* the same bytes with a small chunk budget: limit_exceeded */
    {
        struct ckpt_limits lim;
        ckpt_limits_default(&lim);
        lim.max_tensors = 5;
        m = NULL;
        CHECK_EQ_INT(dcp_meta_parse(md, n, &lim, &m, &e), ERR_TOOBIG);
        CHECK(strcmp(err_category(&e), "limit_exceeded") == 0);
        dcp_meta_free(m);
    }
    free(md);
}

static void test_a_window_reads_only_its_range(void)
{
    static const char text[] = "0123456789";
    struct rfile f, w, w2;
    struct err e = {0};
    char got[4] = {0};

    rfile_mem(&f, text, 10);
    CHECK_EQ_INT(rfile_window(&f, 3, 5, &w, &e), ERR_OK);
    CHECK_EQ_INT(rfile_read(&w, 1, 3, got, &e), ERR_OK);
    CHECK(memcmp(got, "456", 3) == 0);
    CHECK_EQ_INT(rfile_read(&w, 3, 3, got, &e), ERR_FORMAT); /* past the window */
    CHECK(strcmp(err_category(&e), "truncated") == 0);
    CHECK_EQ_INT(rfile_window(&f, 8, 3, &w2, &e), ERR_FORMAT);
    rfile_close(&w);
    CHECK_EQ_INT(rfile_open(DCP "mlp_2d/__0_0.distcp", &f, &e), ERR_OK);
    CHECK_EQ_INT(rfile_window(&f, 0, 4, &w, &e), ERR_OK);
    CHECK_EQ_INT(rfile_read(&w, 0, 4, got, &e), ERR_OK);
    CHECK(memcmp(got, "PK\x03\x04", 4) == 0); /* the first item is a zip */
    rfile_close(&w);
    rfile_close(&f);
}

static void test_folder_files_are_the_metadata_and_the_named_files(void)
{
    char **files = NULL;
    size_t n = 0;
    struct err e = {0};

    CHECK_EQ_INT(dcp_folder_files(DCP "mlp_fsdp", NULL, &files, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK(strcmp(files[0], ".metadata") == 0);
        CHECK(strcmp(files[1], "__0_0.distcp") == 0);
        CHECK(strcmp(files[2], "__1_0.distcp") == 0);
    }
    dcp_folder_files_free(files, n);
    files = NULL;
    CHECK_EQ_INT(dcp_folder_files(DCP "malformed/missing_metadata", NULL, &files, &n, &e),
                 ERR_FORMAT);
    CHECK(strcmp(err_category(&e), "missing_record") == 0 && files == NULL && n == 0);
    CHECK_EQ_INT(dcp_folder_files(DCP "malformed/path_traversal", NULL, &files, &n, &e),
                 ERR_FORMAT);
    CHECK(strcmp(err_category(&e), "invalid_index") == 0 && files == NULL);
}

int main(void)
{
    static void (*const cases[])(void) = {
        test_folder_is_sniffed_and_listed_with_its_app_state,
        test_app_state_is_found_without_planner_data,
        test_stitched_tensors_are_bitwise_the_originals,
        test_shards_keep_their_names_and_layout,
        test_same_weights_give_the_same_alphas,
        test_malformed_folders_fail_with_their_category,
        test_allow_list_grows_by_the_dcp_classes_only_for_metadata,
        test_metadata_records_chunks_and_files,
        test_a_window_reads_only_its_range,
        test_folder_files_are_the_metadata_and_the_named_files,
    };

    return eng_run_cases("test_dcp", cases, sizeof(cases) / sizeof(cases[0]));
}
