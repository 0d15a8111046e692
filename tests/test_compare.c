/* test_compare.c -- core/compare: which layer of one checkpoint is which
 * layer of another. Records are classified by layer_classify from real
 * names: a HF LLaMA block against its llama.cpp (GGUF) conversion, names
 * before roles, ambiguous roles left unpaired, MoE experts, non-weights
 * left out; then delta and mean. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/compare.h"
#include "core/formats/layers.h"
#include "tests/check.h"

#define MAX_RECS 32

struct side {
    const char *names[MAX_RECS];
    struct layer_info infos[MAX_RECS];
    struct layer_records r;
};

/* Classify `names` (NULL-terminated; a name ending in "norm.weight" or
 * ".bias" is 1-D, an `embed` / `token_embd` table (vocab, d), the rest
 * 2-D (64, 64)) into side `s`. */
static void side_init(struct side *s, const char *const *names)
{
    size_t n = 0;

    memset(s, 0, sizeof(*s));
    for (; n < MAX_RECS && names[n] != NULL; n++) {
        const char *nm = names[n];
        size_t len = strlen(nm);
        int64_t shape[2] = {64, 64};
        int one_d = (len > 11 && strcmp(nm + len - 11, "norm.weight") == 0) ||
                    (len > 5 && strcmp(nm + len - 5, ".bias") == 0);
        if (strstr(nm, "embed") != NULL || strstr(nm, "token_embd") != NULL)
            shape[0] = 32000;
        s->names[n] = nm;
        layer_classify(nm, DTYPE_F32, one_d ? 1 : 2, shape, &s->infos[n]);
    }
    s->r = (struct layer_records){.infos = s->infos, .names = s->names, .n = n};
}

static struct compare_match *match(const struct side *a, const struct side *b)
{
    struct compare_match *m = NULL;

    CHECK(compare_match_new(&a->r, &b->r, &m, NULL) == ERR_OK);
    return m;
}

static const char *key_of(const struct side *a, const struct compare_pair *p, char *buf, size_t len)
{
    compare_key(a->names[p->a], &a->infos[p->a], p->by, buf, len);
    return buf;
}

/* HF names and their llama.cpp names classify alike, so a whole block,
 * the embedding and the head pair up by role; the norms take no part. */
static void test_hf_against_gguf(void)
{
    static const char *const hf[] = {"model.embed_tokens.weight",
                                     "model.layers.3.input_layernorm.weight",
                                     "model.layers.3.self_attn.q_proj.weight",
                                     "model.layers.3.self_attn.k_proj.weight",
                                     "model.layers.3.self_attn.v_proj.weight",
                                     "model.layers.3.self_attn.o_proj.weight",
                                     "model.layers.3.mlp.gate_proj.weight",
                                     "model.layers.3.mlp.up_proj.weight",
                                     "model.layers.3.mlp.down_proj.weight",
                                     "lm_head.weight",
                                     NULL};
    static const char *const gguf[] = {"token_embd.weight",
                                       "blk.3.attn_norm.weight",
                                       "blk.3.attn_q.weight",
                                       "blk.3.attn_k.weight",
                                       "blk.3.attn_v.weight",
                                       "blk.3.attn_output.weight",
                                       "blk.3.ffn_gate.weight",
                                       "blk.3.ffn_up.weight",
                                       "blk.3.ffn_down.weight",
                                       "output.weight",
                                       NULL};
    static const char *const keys[] = {"embedding",      "block 3 attn_q",   "block 3 attn_k",
                                       "block 3 attn_v", "block 3 attn_o",   "block 3 mlp_gate",
                                       "block 3 mlp_up", "block 3 mlp_down", "head"};
    struct side a, b;
    struct compare_match *m;
    char buf[128];

    side_init(&a, hf);
    side_init(&b, gguf);
    for (size_t i = 2; i < 9; i++) { /* the classification the matching relies on */
        CHECK_EQ_INT(a.infos[i].block, 3);
        CHECK_EQ_INT(b.infos[i].block, 3);
        CHECK_EQ_INT(a.infos[i].role, b.infos[i].role);
        CHECK(a.infos[i].role != LAYER_ROLE_NONE);
    }
    m = match(&a, &b);
    CHECK_EQ_INT(m->n_pairs, 9);
    CHECK_EQ_INT(m->n_only_a, 0);
    CHECK_EQ_INT(m->n_only_b, 0);
    for (size_t k = 0; k < m->n_pairs && k < 9; k++) {
        size_t want = k == 0 ? 0 : k + 1; /* a's order; the norm at 1 is left out */
        CHECK_EQ_INT(m->pairs[k].a, want);
        CHECK_EQ_INT(m->pairs[k].b, want);
        CHECK_EQ_INT(m->pairs[k].by, COMPARE_BY_ROLE);
        CHECK_STR_EQ(key_of(&a, &m->pairs[k], buf, sizeof(buf)), keys[k]);
    }
    CHECK_STR_EQ(compare_by_name(COMPARE_BY_ROLE), "role");
    compare_match_free(m);
}

/* Equal names win over roles; what is left is reported per side, in that
 * side's order. */
static void test_names_first_then_rest(void)
{
    static const char *const a_names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "gone.weight",
                                          NULL};
    static const char *const b_names[] = {"new.weight", "fc2.weight", "fc1.weight", "fc1.bias",
                                          NULL};
    struct side a, b;
    struct compare_match *m;
    char buf[64];

    side_init(&a, a_names);
    side_init(&b, b_names);
    m = match(&a, &b);
    CHECK_EQ_INT(m->n_pairs, 2);
    CHECK_EQ_INT(m->pairs[0].a, 0);
    CHECK_EQ_INT(m->pairs[0].b, 2);
    CHECK_EQ_INT(m->pairs[0].by, COMPARE_BY_NAME);
    CHECK_STR_EQ(key_of(&a, &m->pairs[0], buf, sizeof(buf)), "fc1.weight");
    CHECK_EQ_INT(m->pairs[1].a, 2);
    CHECK_EQ_INT(m->pairs[1].b, 1);
    CHECK_EQ_INT(m->n_only_a, 1); /* the bias takes no part */
    CHECK_EQ_INT(m->only_a[0], 3);
    CHECK_EQ_INT(m->n_only_b, 1);
    CHECK_EQ_INT(m->only_b[0], 0);
    CHECK_STR_EQ(compare_by_name(COMPARE_BY_NAME), "name");
    compare_match_free(m);
}

/* A layer that keeps its name pairs by name even where a role would pair
 * it elsewhere; a role held twice on one side pairs nothing. */
static void test_roles_only_among_the_unpaired(void)
{
    static const char *const a_names[] = {"model.layers.0.self_attn.q_proj.weight",
                                          "model.layers.0.self_attn.k_proj.weight",
                                          "model.layers.1.self_attn.q_proj.weight", NULL};
    static const char *const b_names[] = {"model.layers.0.self_attn.q_proj.weight",
                                          "blk.0.attn_k.weight", "blk.1.attn_q.weight",
                                          "layers.1.attention.wq.weight", NULL};
    struct side a, b;
    struct compare_match *m;

    side_init(&a, a_names);
    side_init(&b, b_names);
    CHECK_EQ_INT(b.infos[3].block, 1); /* Meta's names: a second block-1 attn_q */
    CHECK_EQ_INT(b.infos[3].role, LAYER_ROLE_ATTN_Q);
    m = match(&a, &b);
    CHECK_EQ_INT(m->n_pairs, 2);
    CHECK_EQ_INT(m->pairs[0].by, COMPARE_BY_NAME);
    CHECK_EQ_INT(m->pairs[0].b, 0);
    CHECK_EQ_INT(m->pairs[1].a, 1);
    CHECK_EQ_INT(m->pairs[1].b, 1);
    CHECK_EQ_INT(m->pairs[1].by, COMPARE_BY_ROLE);
    CHECK_EQ_INT(m->n_only_a, 1); /* block 1 attn_q: ambiguous in b */
    CHECK_EQ_INT(m->only_a[0], 2);
    CHECK_EQ_INT(m->n_only_b, 2);
    CHECK_EQ_INT(m->only_b[0], 2);
    CHECK_EQ_INT(m->only_b[1], 3);
    compare_match_free(m);
}

/* MoE experts: the expert index is part of the key. */
static void test_experts(void)
{
    static const char *const a_names[] = {"model.layers.1.block_sparse_moe.experts.2.w1.weight",
                                          "model.layers.1.block_sparse_moe.experts.3.w1.weight",
                                          NULL};
    static const char *const b_names[] = {"model.layers.1.mlp.experts.3.gate_proj.weight",
                                          "model.layers.1.mlp.experts.2.gate_proj.weight", NULL};
    struct side a, b;
    struct compare_match *m;
    char buf[64];

    side_init(&a, a_names);
    side_init(&b, b_names);
    CHECK_EQ_INT(a.infos[0].expert, 2);
    CHECK_EQ_INT(b.infos[1].expert, 2);
    m = match(&a, &b);
    CHECK_EQ_INT(m->n_pairs, 2);
    CHECK_EQ_INT(m->pairs[0].b, 1);
    CHECK_EQ_INT(m->pairs[1].b, 0);
    CHECK_STR_EQ(key_of(&a, &m->pairs[0], buf, sizeof(buf)), "block 1 expert 2 mlp_gate");
    compare_match_free(m);
}

/* Empty sides match to nothing; a key is cut to the buffer. */
static void test_empty_and_truncation(void)
{
    static const char *const none[] = {NULL};
    static const char *const one[] = {"blk.12.attn_q.weight", NULL};
    struct side a, b;
    struct compare_match *m;
    struct compare_pair p = {0, 0, COMPARE_BY_ROLE};
    char buf[8];

    side_init(&a, none);
    side_init(&b, one);
    m = match(&a, &b);
    CHECK_EQ_INT(m->n_pairs, 0);
    CHECK_EQ_INT(m->n_only_a, 0);
    CHECK_EQ_INT(m->n_only_b, 1);
    compare_match_free(m);
    compare_match_free(NULL);
    CHECK_STR_EQ(key_of(&b, &p, buf, sizeof(buf)), "block 1");
}

static void test_delta_and_mean(void)
{
    const double v[] = {2.0, NAN, 4.0, INFINITY, 6.0};
    const double none[] = {NAN, NAN};
    size_t n = 99;

    CHECK_NEAR(compare_delta(2.5, 3.0), 0.5, 0);
    CHECK_NEAR(compare_delta(3.0, 2.5), -0.5, 0);
    CHECK(isnan(compare_delta(NAN, 3.0)));
    CHECK(isnan(compare_delta(3.0, INFINITY)));
    CHECK_NEAR(compare_mean(v, 5, &n), 4.0, 0);
    CHECK_EQ_INT(n, 3);
    CHECK(isnan(compare_mean(none, 2, &n)));
    CHECK_EQ_INT(n, 0);
    CHECK(isnan(compare_mean(v, 0, NULL)));
}

int main(void)
{
    test_hf_against_gguf();
    test_names_first_then_rest();
    test_roles_only_among_the_unpaired();
    test_experts();
    test_empty_and_truncation();
    test_delta_and_mean();
    return check_report("test_compare");
}
