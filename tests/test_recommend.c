/* test_recommend.c -- core/recommend against the reference's own outputs:
 * every configuration of tests/fixtures/numerics/mapping_mlpA_digits.json
 * (TempBalance learning rates end to end, the four assign functions,
 * AlphaPruning sparsity with one layer per block) and of
 * mapping_llama7b_cached_alphas.json (the authors' LLaMA-7B alphas under
 * every paper configuration, 7 layers per block), at 1e-6 relative
 * (docs/numerics.md, Accuracy and tests). Run from the repository root.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/numerics/recommend.h"
#include "tests/check.h"

#define NUM     "tests/fixtures/numerics/"
#define REL_TOL 1e-6
#define MAX_L   256

static cJSON *load_json(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *text = NULL;
    long n = -1;
    cJSON *j = NULL;

    if (fp != NULL && fseek(fp, 0, SEEK_END) == 0)
        n = ftell(fp);
    if (n > 0 && (text = malloc((size_t)n + 1)) != NULL) {
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

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Numbers of array `a` into out[]; returns the count (<= MAX_L). */
static size_t nums(const cJSON *a, double *out)
{
    size_t n = 0;
    const cJSON *it;

    cJSON_ArrayForEach(it, a)
    {
        if (n < MAX_L && cJSON_IsNumber(it))
            out[n++] = it->valuedouble;
    }
    return n;
}

/* ratio[i] == expected[i] at REL_TOL for all i; 1 if every one matched. */
static int check_all(const double *got, const double *want, size_t n)
{
    int ok = 1;

    for (size_t i = 0; i < n; i++) {
        CHECK_REL(got[i], want[i], REL_TOL);
        ok &= fabs(got[i] - want[i]) <= REL_TOL * fabs(want[i]);
    }
    return ok;
}

static enum rec_lr_map map_of(const char *assign_func)
{
    int m = rec_lr_map_from_name(strncmp(assign_func, "tb_", 3) == 0 ? assign_func + 3 : "");

    if (strcmp(assign_func, "tb_linear_map") == 0)
        m = REC_LR_LINEAR;
    CHECK(m >= 0);
    return m < 0 ? REC_LR_LINEAR : (enum rec_lr_map)m;
}

/* --- mlpA: TempBalance end to end ----------------------------------------------- */

/* Each tempbalance config: the tuned layers come from rec_lr_select (mlpA
 * layers have 512, 256 and 10 eigenvalues), the rates from the alphas. */
static void test_mlpA_tempbalance(void)
{
    static const int64_t eigs[3] = {64, 256, 10}; /* min(rows, cols) of fc1, fc2, fc3 */
    cJSON *j = load_json(NUM "mapping_mlpA_digits.json");
    const cJSON *c;
    int n_cfg = 0, n_ok = 0;

    cJSON_ArrayForEach(c, get(j, "tempbalance"))
    {
        const cJSON *cfg = get(c, "config");
        double used[MAX_L], want[MAX_L], ratios[MAX_L], lr[MAX_L];
        size_t n_used = nums(get(c, "alphas_used"), used), n_tuned;
        int use[3];
        double base = num(cfg, "untuned_lr");
        const char *names[3] = {"fc1", "fc2", "fc3"};
        const cJSON *tuned = get(c, "tuned_layers");
        size_t k = 0;
        struct rec_lr_opts o = {.map = map_of(get(cfg, "assign_func")->valuestring),
                                .base_lr = base,
                                .min_ratio = num(cfg, "lr_min_ratio"),
                                .max_ratio = num(cfg, "lr_max_ratio")};

        n_cfg++;
        CHECK_EQ_INT(nums(get(c, "learning_rates"), want), n_used);
        CHECK_EQ_INT(nums(get(c, "lr_ratios"), ratios), n_used);
        n_tuned = rec_lr_select(eigs, 3, cJSON_IsTrue(get(cfg, "remove_first_layer")),
                                cJSON_IsTrue(get(cfg, "remove_last_layer")), use);
        CHECK_EQ_INT(n_tuned, n_used);
        for (size_t i = 0; i < 3; i++) {
            if (!use[i])
                continue;
            CHECK_STR_EQ(cJSON_GetArrayItem(tuned, (int)k)->valuestring, names[i]);
            k++;
        }
        CHECK(rec_learning_rates(used, n_used, &o, lr, NULL) == ERR_OK);
        if (check_all(lr, want, n_used))
            n_ok++;
        for (size_t i = 0; i < n_used; i++)
            CHECK_REL(lr[i] / base, ratios[i], REL_TOL);
    }
    CHECK_EQ_INT(n_cfg, 4);
    CHECK_EQ_INT(n_ok, n_cfg);
    cJSON_Delete(j);
}

static void test_mlpA_assign_funcs(void)
{
    cJSON *j = load_json(NUM "mapping_mlpA_digits.json");
    const cJSON *c;
    int n_cfg = 0, n_ok = 0, seen[4] = {0};

    cJSON_ArrayForEach(c, get(j, "tempbalance_assign_funcs"))
    {
        double a[MAX_L], want[MAX_L], lr[MAX_L];
        size_t n = nums(get(c, "metric_scores"), a), n_want = nums(get(c, "lr_ratios"), want);
        enum rec_lr_map m = map_of(get(c, "assign_func")->valuestring);
        int done;
        struct rec_lr_opts o = {.map = m,
                                .base_lr = num(c, "untuned_lr"),
                                .min_ratio = num(c, "lr_min_ratio"),
                                .max_ratio = num(c, "lr_max_ratio")};

        n_cfg++;
        seen[m]++;
        CHECK_EQ_INT(n_want, n);
        done = rec_learning_rates(a, n, &o, lr, NULL) == ERR_OK;
        CHECK(done);
        if (done && n_want == n && check_all(lr, want, n)) /* lr and want are set */
            n_ok++;
    }
    CHECK_EQ_INT(n_cfg, 4);
    CHECK_EQ_INT(n_ok, n_cfg);
    for (int m = 0; m < 4; m++)
        CHECK_EQ_INT(seen[m], 1); /* linear, sqrt, log2, step: each once */
    cJSON_Delete(j);
}

/* --- Sparsity ------------------------------------------------------------------------ */

static void test_mlpA_alphapruning(void)
{
    cJSON *j = load_json(NUM "mapping_mlpA_digits.json");
    const cJSON *c;
    int n_cfg = 0, n_ok = 0, n_clamped = 0;

    cJSON_ArrayForEach(c, get(j, "alphapruning"))
    {
        const cJSON *cfg = get(c, "config");
        double a[MAX_L], numel[MAX_L], want[MAX_L], got[MAX_L];
        int64_t block[MAX_L];
        size_t n = nums(get(c, "alphas"), a);
        const struct rec_layers l = {.alpha = a, .numel = numel, .block = block, .n = n};

        n_cfg++;
        CHECK_EQ_INT(nums(get(c, "numel"), numel), n);
        CHECK_EQ_INT(nums(get(c, "sparsity_ratios"), want), n);
        CHECK_EQ_INT(num(cfg, "layer_num_in_block"), 1);
        CHECK_STR_EQ(get(cfg, "mapping_type")->valuestring, "block_wise");
        rec_blocks_fixed(n, 1, block);
        CHECK(rec_sparsity(&l, num(cfg, "sparsity_ratio"), num(cfg, "epsilon"), got, NULL, NULL) ==
              ERR_OK);
        if (check_all(got, want, n))
            n_ok++;
        for (size_t i = 0; i < n; i++)
            n_clamped += want[i] == REC_CLAMP || want[i] == REC_CLAMP_AT_07;
    }
    CHECK_EQ_INT(n_cfg, 8);
    CHECK_EQ_INT(n_ok, n_cfg);
    CHECK(n_clamped >= 2); /* both clamp values occur in the file */
    cJSON_Delete(j);
}

static void test_llama7b_every_paper_configuration(void)
{
    cJSON *j = load_json(NUM "mapping_llama7b_cached_alphas.json");
    static double numel[MAX_L], got[MAX_L], want[MAX_L], a[MAX_L], bm[MAX_L];
    static int64_t block[MAX_L];
    size_t n = nums(get(j, "numel"), numel);
    const cJSON *c;
    int n_cfg = 0, n_ok = 0;

    CHECK_EQ_INT(n, 224);
    CHECK_EQ_INT(cJSON_GetArraySize(get(j, "layer_order")), 224);
    cJSON_ArrayForEach(c, get(j, "configs"))
    {
        const cJSON *row = get(c, "from_row");
        double target = num(row, "sparsity_ratio"), eps = num(row, "epsilon");
        size_t k = (size_t)num(c, "layer_num_in_block");
        const struct rec_layers l = {.alpha = a, .numel = numel, .block = block, .n = n};

        n_cfg++;
        CHECK_EQ_INT(k, 7);
        CHECK_NEAR(num(c, "s1"), 1 - eps, 1e-15);
        CHECK_NEAR(num(c, "s2"), 1 + eps, 1e-15);
        CHECK_EQ_INT(nums(get(get(j, "alphas"), get(c, "alphas_key")->valuestring), a), n);
        CHECK_EQ_INT(nums(get(c, "sparsity_ratios"), want), n);
        rec_blocks_fixed(n, k, block);
        CHECK(rec_sparsity(&l, target, eps, got, bm, NULL) == ERR_OK);
        if (check_all(got, want, n))
            n_ok++;
        /* block_wise: the 7 layers of a block share their ratio and mean */
        for (size_t i = 0; i < n; i++) {
            CHECK(got[i] == got[i / 7 * 7]);
            CHECK(bm[i] == bm[i / 7 * 7]);
        }
    }
    CHECK_EQ_INT(n_cfg, cJSON_GetArraySize(get(j, "configs")));
    CHECK_EQ_INT(n_cfg, 19);
    CHECK_EQ_INT(n_ok, n_cfg);
    cJSON_Delete(j);
}

/* The clamp is not renormalised: the weighted mean drops below the target
 * only when some ratio was clamped. */
static void test_sparsity_mean_and_clamp(void)
{
    const double a[4] = {2.0, 3.0, 4.0, 5.0}, numel[4] = {100, 100, 100, 100};
    int64_t block[4];
    double r[4], mean = 0;
    const struct rec_layers l = {.alpha = a, .numel = numel, .block = block, .n = 4};

    rec_blocks_fixed(4, 1, block);
    CHECK(rec_sparsity(&l, 0.5, 0.2, r, NULL, NULL) == ERR_OK);
    for (int i = 0; i < 4; i++)
        mean += r[i] / 4;
    CHECK_NEAR(mean, 0.5, 1e-7); /* float32 numerator */
    CHECK_REL(r[0], 0.5 * 0.8, 1e-7);
    CHECK_REL(r[3], 0.5 * 1.2, 1e-7);
    CHECK(rec_sparsity(&l, 0.9, 0.5, r, NULL, NULL) == ERR_OK);
    CHECK(r[3] == REC_CLAMP); /* 0.9 * 1.5 > 1 */
    CHECK(rec_sparsity(&l, 0.7, 0.5, r, NULL, NULL) == ERR_OK);
    CHECK(r[3] == REC_CLAMP_AT_07);
    CHECK_REL(r[2], 0.7 * (0.5 + 2.0 / 3.0), 1e-7);
}

static void test_sparsity_refuses(void)
{
    const double a[3] = {2.0, 3.0, 4.0}, numel[3] = {10, 10, 10}, bad_n[3] = {10, 0, 10};
    const double nan_a[3] = {2.0, NAN, 4.0};
    int64_t one_block[3] = {0, 0, 0}, block[3] = {0, 1, 2};
    double r[3];
    struct err e = {0};
    const struct rec_layers ok = {.alpha = a, .numel = numel, .block = block, .n = 3};
    struct rec_layers l = ok;

    l.block = one_block;
    CHECK_EQ_INT(rec_sparsity(&l, 0.7, 0.3, r, NULL, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "same mean alpha") != NULL);
    CHECK_EQ_INT(rec_sparsity(&ok, 1.0, 0.3, r, NULL, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "target") != NULL);
    CHECK_EQ_INT(rec_sparsity(&ok, 0.5, 1.0, r, NULL, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "epsilon") != NULL);
    l = ok;
    l.numel = bad_n;
    CHECK_EQ_INT(rec_sparsity(&l, 0.5, 0.3, r, NULL, &e), ERR_INVAL);
    l = ok;
    l.alpha = nan_a;
    CHECK_EQ_INT(rec_sparsity(&l, 0.5, 0.3, r, NULL, &e), ERR_INVAL);
    l = ok;
    l.n = 0;
    CHECK_EQ_INT(rec_sparsity(&l, 0.5, 0.3, r, NULL, &e), ERR_INVAL);
}

/* Blocks need not be adjacent ids: the mean is over equal ids. */
static void test_blocks_by_id(void)
{
    const double a[4] = {1.5, 2.5, 3.5, 6.5}, numel[4] = {1, 1, 1, 1};
    int64_t block[4] = {7, 7, 3, 3};
    double r[4], bm[4];
    const struct rec_layers l = {.alpha = a, .numel = numel, .block = block, .n = 4};

    CHECK(rec_sparsity(&l, 0.5, 0.4, r, bm, NULL) == ERR_OK);
    CHECK_NEAR(bm[0], 2.0, 1e-15);
    CHECK_NEAR(bm[3], 5.0, 1e-15);
    CHECK_REL(r[0], 0.5 * 0.6, 1e-7);
    CHECK_REL(r[2], 0.5 * 1.4, 1e-7);
    rec_blocks_fixed(4, 3, block);
    CHECK_EQ_INT(block[2], 0);
    CHECK_EQ_INT(block[3], 1);
}

/* One layer (or equal alphas): NumPy interp gives the right end. */
static void test_lr_equal_alphas_get_the_top(void)
{
    const double a[2] = {3.0, 3.0};
    double lr[2];

    struct rec_lr_opts o = {
        .map = REC_LR_LINEAR, .base_lr = 0.1, .min_ratio = 0.2, .max_ratio = 1.8};

    CHECK(rec_learning_rates(a, 2, &o, lr, NULL) == ERR_OK);
    CHECK(lr[0] == 1.8 * 0.1 && lr[1] == 1.8 * 0.1);
    o.map = REC_LR_STEP;
    CHECK(rec_learning_rates(a, 1, &o, lr, NULL) == ERR_OK);
    CHECK(lr[0] == 0.2 * 0.1); /* tb_step: the top never reaches max_ratio */
}

static void test_lr_select_and_refuses(void)
{
    const int64_t eigs[5] = {100, 4, 100, 100, 100};
    const double a[2] = {2.0, 3.0};
    int use[5];
    double lr[2];
    struct err e = {0};
    const struct rec_lr_opts ok = {
        .map = REC_LR_LINEAR, .base_lr = 0.1, .min_ratio = 0.5, .max_ratio = 1.5};
    struct rec_lr_opts o = ok;

    CHECK_EQ_INT(rec_lr_select(eigs, 5, 0, 0, use), 4);
    CHECK(!use[1]);
    CHECK_EQ_INT(rec_lr_select(eigs, 5, 1, 1, use), 2);
    CHECK(!use[0] && !use[1] && use[2] && use[3] && !use[4]);
    CHECK_EQ_INT(rec_lr_select(eigs, 1, 1, 1, use), 0);
    o.base_lr = 0.0;
    CHECK_EQ_INT(rec_learning_rates(a, 2, &o, lr, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "base_lr") != NULL);
    o = ok;
    o.min_ratio = 1.5;
    o.max_ratio = 0.5;
    CHECK_EQ_INT(rec_learning_rates(a, 2, &o, lr, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "min_ratio") != NULL);
    CHECK_EQ_INT(rec_learning_rates(a, 0, &ok, lr, &e), ERR_INVAL);
    CHECK_STR_EQ(rec_lr_map_name(REC_LR_LOG2), "log2");
    CHECK_EQ_INT(rec_lr_map_from_name("step"), REC_LR_STEP);
    CHECK_EQ_INT(rec_lr_map_from_name("tb_step"), -1);
}

int main(void)
{
    test_mlpA_tempbalance();
    test_mlpA_assign_funcs();
    test_mlpA_alphapruning();
    test_llama7b_every_paper_configuration();
    test_sparsity_mean_and_clamp();
    test_sparsity_refuses();
    test_blocks_by_id();
    test_lr_equal_alphas_get_the_top();
    test_lr_select_and_refuses();
    return check_report("test_recommend");
}
