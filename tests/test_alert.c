/* test_alert.c -- alert rules (core/numerics/alert.h): the default set, the
 * JSON form and its refusals naming the bad member, and the evaluation of
 * every kind over a checkpoint and its earlier checkpoints.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/numerics/alert.h"
#include "tests/check.h"

/* Parse `text` (a JSON array); the code, and *r. */
static enum err_code parse(const char *text, struct farms_alert_rules *r, struct err *e)
{
    cJSON *j = cJSON_Parse(text);
    enum err_code rc = farms_alert_rules_parse(j, r, e);

    cJSON_Delete(j);
    return rc;
}

static void test_the_default_set(void)
{
    struct farms_alert_rules d;

    farms_alert_defaults(&d);
    CHECK_EQ_INT(d.n, 5);
    CHECK_STR_EQ(d.r[0].name, "over_trained");
    CHECK_EQ_INT(d.r[0].kind, FARMS_ALERT_ALPHA_BELOW);
    CHECK_NEAR(d.r[0].threshold, 2.0, 0);
    CHECK_STR_EQ(d.r[1].name, "under_trained");
    CHECK_NEAR(d.r[1].threshold, 6.0, 0);
    CHECK_EQ_INT(d.r[2].kind, FARMS_ALERT_ALPHA_DROP);
    CHECK_NEAR(d.r[2].threshold, 1.0, 0);
    CHECK_EQ_INT(d.r[2].window, 3);
    CHECK_EQ_INT(d.r[3].kind, FARMS_ALERT_SUSPECT_FIT);
    CHECK(isnan(d.r[3].threshold));
    CHECK_EQ_INT(d.r[4].kind, FARMS_ALERT_TRAPS);
    for (size_t i = 0; i < d.n; i++) {
        CHECK_EQ_INT(d.r[i].min_layers, 1);
        CHECK_EQ_INT(d.r[i].enabled, 1);
    }
}

static void test_parse_fills_defaults_by_kind_and_round_trips(void)
{
    struct farms_alert_rules r, back;
    struct err e = {0};
    cJSON *j;
    char *text;

    CHECK_EQ_INT(parse("[{\"name\":\"low\",\"kind\":\"alpha_below\"},"
                       "{\"name\":\"drop\",\"kind\":\"alpha_drop\",\"threshold\":0.5,\"window\":2,"
                       "\"min_layers\":3,\"enabled\":false}]",
                       &r, &e),
                 ERR_OK);
    CHECK_EQ_INT(r.n, 2);
    CHECK_NEAR(r.r[0].threshold, 2.0, 0);
    CHECK_EQ_INT(r.r[0].min_layers, 1);
    CHECK_NEAR(r.r[1].threshold, 0.5, 0);
    CHECK_EQ_INT(r.r[1].window, 2);
    CHECK_EQ_INT(r.r[1].min_layers, 3);
    CHECK_EQ_INT(r.r[1].enabled, 0);
    j = farms_alert_rules_json(&r);
    text = cJSON_PrintUnformatted(j);
    CHECK_STR_EQ(text,
                 "[{\"name\":\"low\",\"kind\":\"alpha_below\",\"threshold\":2,\"window\":null,"
                 "\"min_layers\":1,\"enabled\":true},{\"name\":\"drop\",\"kind\":"
                 "\"alpha_drop\",\"threshold\":0.5,\"window\":2,\"min_layers\":3,"
                 "\"enabled\":false}]");
    CHECK_EQ_INT(farms_alert_rules_parse(j, &back, &e), ERR_OK);
    CHECK_EQ_INT(back.n, 2);
    CHECK_EQ_INT(back.r[1].window, 2);
    cJSON_free(text);
    cJSON_Delete(j);
    CHECK_EQ_INT(parse("[]", &r, &e), ERR_OK);
    CHECK_EQ_INT(r.n, 0);
}

/* Each refusal names the member at fault. */
static void test_refusals_name_the_member(void)
{
    static const struct {
        const char *json, *names;
    } cases[] = {
        {"{}", "rules: must be an array"},
        {"[3]", "rules[0]: must be an object"},
        {"[{\"kind\":\"alpha_below\"}]", "rules[0].name"},
        {"[{\"name\":\"a b\",\"kind\":\"alpha_below\"}]", "rules[0].name"},
        {"[{\"name\":\"a\",\"kind\":\"alpha_sideways\"}]", "rules[0].kind"},
        {"[{\"name\":\"a\",\"kind\":\"alpha_below\",\"threshold\":\"2\"}]", "rules[0].threshold"},
        {"[{\"name\":\"a\",\"kind\":\"suspect_fit\",\"threshold\":2}]", "rules[0].threshold"},
        {"[{\"name\":\"a\",\"kind\":\"alpha_drop\",\"threshold\":-1}]", "rules[0].threshold"},
        {"[{\"name\":\"a\",\"kind\":\"alpha_drop\",\"window\":0}]", "rules[0].window"},
        {"[{\"name\":\"a\",\"kind\":\"alpha_above\",\"window\":2}]", "rules[0].window"},
        {"[{\"name\":\"a\",\"kind\":\"traps\",\"min_layers\":0}]", "rules[0].min_layers"},
        {"[{\"name\":\"a\",\"kind\":\"traps\",\"min_layers\":1.5}]", "rules[0].min_layers"},
        {"[{\"name\":\"a\",\"kind\":\"traps\",\"enabled\":1}]", "rules[0].enabled"},
        {"[{\"name\":\"a\",\"kind\":\"traps\",\"severity\":1}]", "rules[0].severity"},
        {"[{\"name\":\"a\",\"kind\":\"traps\"},{\"name\":\"a\",\"kind\":\"traps\"}]",
         "rules[1].name: 'a' is already rules[0]'s"},
    };
    struct farms_alert_rules r;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct err e = {0};
        CHECK_EQ_INT(parse(cases[i].json, &r, &e), ERR_INVAL);
        if (strstr(e.msg, cases[i].names) == NULL)
            fprintf(stderr, "case %zu: '%s' does not name '%s'\n", i, e.msg, cases[i].names);
        CHECK(strstr(e.msg, cases[i].names) != NULL);
    }
}

static void test_too_many_rules(void)
{
    char text[64 * (FARMS_ALERT_RULES_MAX + 2)] = "[";
    struct farms_alert_rules r;
    struct err e = {0};

    for (int i = 0; i <= FARMS_ALERT_RULES_MAX; i++) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof(text) - n, "%s{\"name\":\"r%d\",\"kind\":\"traps\"}",
                 i ? "," : "", i);
    }
    snprintf(text + strlen(text), sizeof(text) - strlen(text), "]");
    CHECK_EQ_INT(parse(text, &r, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "at most 32") != NULL);
}

/* Four layers: 1.5 (over-trained), 3.0, 7.5 (under-trained), a suspect fit
 * at 4.0; a fifth that was not analysed ok (alpha 9, never matches). */
static const struct farms_alert_layer layers[5] = {
    {1, 1.5, FARMS_WARNING_OVER_TRAINED, 0},  {1, 3.0, FARMS_WARNING_NONE, 2},
    {1, 7.5, FARMS_WARNING_UNDER_TRAINED, 0}, {1, 4.0, FARMS_WARNING_SUSPECT_FIT, -1},
    {0, 9.0, FARMS_WARNING_NONE, 5},
};

static void test_level_rules(void)
{
    struct farms_alert_rules d;
    struct farms_alert_input in = {.layers = layers, .n = 5, .history = 1};
    struct farms_alert_hit hits[5];
    size_t n = 99;

    farms_alert_defaults(&d);
    CHECK_EQ_INT(farms_alert_eval(&d.r[0], &in, hits, &n), 1); /* alpha < 2 */
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(hits[0].layer, 0);
    CHECK(isnan(hits[0].previous_alpha));
    CHECK_EQ_INT(farms_alert_eval(&d.r[1], &in, hits, &n), 1); /* alpha > 6: not the failed 9 */
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(hits[0].layer, 2);
    CHECK_EQ_INT(farms_alert_eval(&d.r[3], &in, hits, &n), 1); /* suspect fit */
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(hits[0].layer, 3);
    /* min_layers 2: one layer matches, the rule does not fire but lists it */
    d.r[1].min_layers = 2;
    CHECK_EQ_INT(farms_alert_eval(&d.r[1], &in, hits, &n), 0);
    CHECK_EQ_INT(n, 1);
    d.r[1].threshold = 2.5; /* 3.0, 7.5, 4.0 */
    CHECK_EQ_INT(farms_alert_eval(&d.r[1], &in, hits, &n), 1);
    CHECK_EQ_INT(n, 3);
    d.r[1].enabled = 0;
    CHECK_EQ_INT(farms_alert_eval(&d.r[1], &in, hits, &n), 0);
    /* no earlier checkpoints: drop and traps match nothing */
    CHECK_EQ_INT(farms_alert_eval(&d.r[2], &in, hits, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(farms_alert_eval(&d.r[4], &in, hits, &n), 0);
    CHECK_EQ_INT(n, 0);
}

static void test_drop_and_traps_over_history(void)
{
    /* one back: 3.2 3.5 7.0 4.2 -; two back: 1.4 4.6 7.1 4.0 -; three back 5.5 for layer 0 */
    static const double p1[5] = {3.2, 3.5, 7.0, 4.2, NAN}, p2[5] = {1.4, 4.6, 7.1, 4.0, NAN},
                        p3[5] = {5.5, NAN, NAN, NAN, NAN};
    static const int64_t t1[5] = {0, 0, -1, 0, 0}, t2[5] = {0, 3, 0, 0, 0}, t3[5] = {0};
    const double *pa[3] = {p1, p2, p3};
    const int64_t *pt[3] = {t1, t2, t3};
    struct farms_alert_input in = {
        .layers = layers, .n = 5, .prev_alpha = pa, .prev_traps = pt, .n_prev = 3, .history = 1};
    struct farms_alert_rules d;
    struct farms_alert_hit hits[5];
    size_t n = 0;

    farms_alert_defaults(&d); /* drop > 1.0 within 3 back */
    CHECK_EQ_INT(farms_alert_eval(&d.r[2], &in, hits, &n), 1);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(hits[0].layer, 0); /* 5.5 -> 1.5 (three back is the largest) */
    CHECK_NEAR(hits[0].previous_alpha, 5.5, 0);
    CHECK_EQ_INT(hits[1].layer, 1); /* 4.6 -> 3.0 */
    CHECK_NEAR(hits[1].previous_alpha, 4.6, 0);
    d.r[2].window = 1; /* only one back: 3.2 -> 1.5 */
    CHECK_EQ_INT(farms_alert_eval(&d.r[2], &in, hits, &n), 1);
    CHECK_EQ_INT(n, 1);
    CHECK_NEAR(hits[0].previous_alpha, 3.2, 0);
    /* traps appear in layer 1 (0 one back; it had 3 two back, which does not count) */
    CHECK_EQ_INT(farms_alert_eval(&d.r[4], &in, hits, &n), 1);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(hits[0].layer, 1);
    /* not the newest checkpoint: neither compares */
    in.history = 0;
    CHECK_EQ_INT(farms_alert_eval(&d.r[2], &in, hits, &n), 0);
    CHECK_EQ_INT(farms_alert_eval(&d.r[4], &in, hits, &n), 0);
    CHECK_EQ_INT(n, 0);
}

static void test_kind_names(void)
{
    CHECK_STR_EQ(farms_alert_kind_name(FARMS_ALERT_ALPHA_DROP), "alpha_drop");
    CHECK_STR_EQ(farms_alert_kind_name(FARMS_ALERT_KIND_COUNT), "?");
    CHECK_EQ_INT(farms_alert_kind_from_name("traps"), FARMS_ALERT_TRAPS);
    CHECK_EQ_INT(farms_alert_kind_from_name("trap"), -1);
}

int main(void)
{
    test_the_default_set();
    test_parse_fills_defaults_by_kind_and_round_trips();
    test_refusals_name_the_member();
    test_too_many_rules();
    test_level_rules();
    test_drop_and_traps_over_history();
    test_kind_names();
    return check_report("test_alert");
}
