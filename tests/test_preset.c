/* test_preset.c -- the settings codec (core/numerics/preset.h, preset_to_json
 * and preset_from_json): the text the service stores and hashes stays what it
 * is, every preset reads back exactly (doubles bit for bit), and malformed
 * settings are refused without touching the parameters. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/numerics/preset.h"
#include "tests/check.h"

/* The canonical texts stored in the settings table today. */
static const char *const stored_llm =
    "{\"window_rows\":2000,\"q_ratio\":1,\"windows_per_dim\":10,\"window_clamp\":true,"
    "\"xmin\":\"peak\",\"xmin_pos\":2,\"bins\":100,\"conv_norm\":0.5,\"filter_zeros\":false,"
    "\"eig_threshold\":1.0000000000000001e-05,\"min_eigs\":5,\"include_embeddings\":false}";
static const char *const stored_cv =
    "{\"window_rows\":100,\"q_ratio\":1,\"windows_per_dim\":9,\"window_clamp\":false,"
    "\"xmin\":\"mid\",\"xmin_pos\":2,\"bins\":100,\"conv_norm\":0.5,\"filter_zeros\":false,"
    "\"eig_threshold\":1.0000000000000001e-05,\"min_eigs\":5,\"include_embeddings\":false}";
static const char *const stored_full =
    "{\"window_rows\":0,\"q_ratio\":1,\"windows_per_dim\":10,\"window_clamp\":false,"
    "\"xmin\":\"ks\",\"xmin_pos\":2,\"bins\":100,\"conv_norm\":0.5,\"filter_zeros\":true,"
    "\"eig_threshold\":1.0000000000000001e-05,\"min_eigs\":5,\"include_embeddings\":true}";

static struct farms_params params_of(const char *preset)
{
    struct farms_params p;

    memset(&p, 0, sizeof(p));
    CHECK_EQ_INT(preset_get(preset, &p, NULL), ERR_OK);
    return p;
}

/* The bits of `d`, so that equal means the very same double. */
static uint64_t bits_of(double d)
{
    uint64_t u;

    memcpy(&u, &d, sizeof(u));
    return u;
}

/* Every field equal; doubles compared by their bits. */
static int params_same(const struct farms_params *a, const struct farms_params *b)
{
    return a->window_rows == b->window_rows && bits_of(a->q_ratio) == bits_of(b->q_ratio) &&
           a->windows_per_dim == b->windows_per_dim && a->window_clamp == b->window_clamp &&
           a->xmin == b->xmin && bits_of(a->xmin_pos) == bits_of(b->xmin_pos) &&
           a->bins == b->bins && bits_of(a->conv_norm) == bits_of(b->conv_norm) &&
           a->filter_zeros == b->filter_zeros &&
           bits_of(a->eig_threshold) == bits_of(b->eig_threshold) && a->min_eigs == b->min_eigs &&
           a->include_embeddings == b->include_embeddings && a->mp_fit == b->mp_fit &&
           a->randomize == b->randomize && a->seed == b->seed;
}

/* Encode *p, decode the text onto `base`, check both directions agree. */
static void check_round_trip(const struct farms_params *p, const char *base)
{
    struct farms_params back = params_of(base);
    char text[PRESET_JSON_MAX], again[PRESET_JSON_MAX];
    struct err e;

    CHECK_EQ_INT(preset_to_json(p, text, sizeof(text), &e), ERR_OK);
    CHECK_EQ_INT(preset_from_json(text, &back, &e), ERR_OK);
    CHECK(params_same(&back, p));
    CHECK_EQ_INT(preset_to_json(&back, again, sizeof(again), &e), ERR_OK);
    CHECK_STR_EQ(again, text);
}

static void test_stored_text_of_every_preset_is_unchanged(void)
{
    struct farms_params llm = params_of("farms-llm"), cv = params_of("farms-cv"),
                        full = params_of("full");
    char text[PRESET_JSON_MAX];

    CHECK_EQ_INT(preset_to_json(&llm, text, sizeof(text), NULL), ERR_OK);
    CHECK_STR_EQ(text, stored_llm);
    CHECK_EQ_INT(preset_to_json(&cv, text, sizeof(text), NULL), ERR_OK);
    CHECK_STR_EQ(text, stored_cv);
    CHECK_EQ_INT(preset_to_json(&full, text, sizeof(text), NULL), ERR_OK);
    CHECK_STR_EQ(text, stored_full);
    /* a buffer one byte short is refused, the exact size is enough */
    CHECK_EQ_INT(preset_to_json(&llm, text, strlen(stored_llm), NULL), ERR_TOOBIG);
    CHECK_EQ_INT(preset_to_json(&llm, text, strlen(stored_llm) + 1, NULL), ERR_OK);
}

static void test_every_preset_round_trips_exactly(void)
{
    for (const char *const *n = preset_names(); *n != NULL; n++) {
        struct farms_params p = params_of(*n);
        for (const char *const *base = preset_names(); *base != NULL; base++)
            check_round_trip(&p, *base); /* whatever preset the text lands on */
    }
}

static void test_doubles_round_trip_bit_for_bit(void)
{
    struct farms_params p = params_of("farms-cv");

    p.q_ratio = nextafter(0.75, 1.0);
    p.xmin_pos = 2.0 + 4 * DBL_EPSILON;
    p.conv_norm = 1.0 / 3.0;
    p.eig_threshold = nextafter(1e-5, 0.0);
    p.window_rows = (int64_t)1 << 31; /* the largest farms_params_check takes */
    check_round_trip(&p, "full");
    p.eig_threshold = DBL_MIN; /* smallest normal: %.17g keeps it */
    p.window_clamp = 1;
    p.xmin = PL_XMIN_KS;
    check_round_trip(&p, "farms-llm");
}

static void test_absent_keys_keep_the_base(void)
{
    struct farms_params p = params_of("farms-llm"), want = params_of("farms-llm");
    struct err e;

    want.bins = 50;
    want.include_embeddings = 1;
    CHECK_EQ_INT(preset_from_json("{\"bins\":50,\"include_embeddings\":true}", &p, &e), ERR_OK);
    CHECK(params_same(&p, &want));
    CHECK_EQ_INT(preset_from_json("{}", &p, &e), ERR_OK);
    CHECK(params_same(&p, &want));
}

static void test_malformed_settings_change_nothing(void)
{
    struct farms_params p = params_of("farms-cv"), before = p;
    struct err e;

    CHECK_EQ_INT(preset_from_json("not json", &p, &e), ERR_FORMAT);
    CHECK_EQ_INT(preset_from_json("[1,2]", &p, &e), ERR_FORMAT);
    CHECK_EQ_INT(preset_from_json("{\"colour\":1}", &p, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "colour") != NULL);
    CHECK_EQ_INT(preset_from_json("{\"bins\":50,\"xmin\":\"median\"}", &p, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "xmin") != NULL);
    CHECK_EQ_INT(preset_from_json("{\"window_clamp\":1}", &p, &e), ERR_INVAL);
    CHECK_EQ_INT(preset_from_json("{\"window_rows\":2.5}", &p, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "window_rows") != NULL);
    CHECK_EQ_INT(preset_from_json("{\"bins\":1e10}", &p, &e), ERR_INVAL);
    CHECK_EQ_INT(preset_from_json("{\"window_rows\":1e19}", &p, &e), ERR_INVAL);
    CHECK_EQ_INT(preset_from_json("{\"q_ratio\":\"1\"}", &p, &e), ERR_INVAL);
    CHECK_EQ_INT(preset_from_json("{\"q_ratio\":0}", &p, &e), ERR_INVAL); /* out of range */
    CHECK_EQ_INT(preset_from_json("{\"windows_per_dim\":1}", &p, &e), ERR_INVAL);
    CHECK(params_same(&p, &before));
}

/* The stored text of `base` with `tail` added before its closing brace. */
static void expect_text_with(const struct farms_params *p, const char *base, const char *tail)
{
    char text[PRESET_JSON_MAX], want[PRESET_JSON_MAX];

    snprintf(want, sizeof(want), "%.*s%s}", (int)strlen(base) - 1, base, tail);
    CHECK_EQ_INT(preset_to_json(p, text, sizeof(text), NULL), ERR_OK);
    CHECK_STR_EQ(text, want);
}

static void test_weightwatcher_settings_appear_only_when_on(void)
{
    struct farms_params p = params_of("full"), q;
    struct err e;

    CHECK_EQ_INT(p.mp_fit, 0); /* off in every preset */
    CHECK_EQ_INT(p.randomize, 0);
    CHECK_EQ_INT(p.seed, 0);
    /* a seed alone changes nothing (it only matters under randomize) */
    q = p;
    CHECK_EQ_INT(preset_set(&q, "seed=7", &e), ERR_OK);
    expect_text_with(&q, stored_full, "");
    CHECK_EQ_INT(preset_set(&p, "mp_fit=true", &e), ERR_OK);
    expect_text_with(&p, stored_full, ",\"mp_fit\":true");
    check_round_trip(&p, "farms-llm");
    CHECK_EQ_INT(preset_set(&p, "randomize=true", &e), ERR_OK);
    CHECK_EQ_INT(preset_set(&p, "seed=7", &e), ERR_OK);
    expect_text_with(&p, stored_full, ",\"mp_fit\":true,\"randomize\":true,\"seed\":7");
    check_round_trip(&p, "farms-cv");
    CHECK_EQ_INT(preset_set(&p, "seed=0", &e), ERR_OK);
    CHECK_EQ_INT(preset_set(&p, "mp_fit=false", &e), ERR_OK);
    expect_text_with(&p, stored_full, ",\"randomize\":true,\"seed\":0");
    check_round_trip(&p, "full");
    /* refused: not a boolean, a negative seed; p is unchanged */
    q = p;
    CHECK_EQ_INT(preset_set(&p, "mp_fit=yes", &e), ERR_INVAL);
    CHECK(strstr(e.msg, "mp_fit") != NULL);
    CHECK_EQ_INT(preset_set(&p, "seed=-1", &e), ERR_INVAL);
    CHECK(strstr(e.msg, "seed") != NULL);
    CHECK_EQ_INT(preset_from_json("{\"randomize\":1}", &p, &e), ERR_INVAL);
    CHECK(params_same(&p, &q));
}

int main(void)
{
    test_stored_text_of_every_preset_is_unchanged();
    test_every_preset_round_trips_exactly();
    test_doubles_round_trip_bit_for_bit();
    test_absent_keys_keep_the_base();
    test_malformed_settings_change_nothing();
    test_weightwatcher_settings_appear_only_when_on();
    return check_report("test_preset");
}
