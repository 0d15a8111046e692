/* test_api_cache.c -- rendered run reads kept by ETag: hits return a copy of
 * the stored body, the byte budget evicts least recently used entries first,
 * and bodies too large for the budget are never stored. */
#include <stdlib.h>
#include <string.h>

#include "api/cache.h"
#include "tests/check.h"

static void test_hit_returns_a_copy_with_its_content_type(void)
{
    struct api_cache *c = NULL;
    char *body = NULL, ct[64];
    size_t len = 0;

    CHECK_EQ_INT(api_cache_new(1 << 20, &c, NULL), ERR_OK);
    CHECK_EQ_INT(api_cache_get(c, "\"a\"", &body, &len, ct), 0);
    api_cache_put(c, "\"a\"", "{\"x\":1}", 7, "application/json");
    CHECK_EQ_INT(api_cache_get(c, "\"a\"", &body, &len, ct), 1);
    CHECK_EQ_INT(len, 7);
    CHECK(body != NULL && memcmp(body, "{\"x\":1}", 7) == 0);
    CHECK_STR_EQ(ct, "application/json");
    free(body);
    api_cache_put(c, "\"a\"", "{\"x\":2}", 7, "application/json"); /* first one is kept */
    CHECK_EQ_INT(api_cache_get(c, "\"a\"", &body, &len, ct), 1);
    CHECK(body != NULL && memcmp(body, "{\"x\":1}", 7) == 0);
    free(body);
    api_cache_free(c);
}

static void test_budget_evicts_least_recently_used(void)
{
    struct api_cache *c = NULL;
    char blob[400], *body = NULL, ct[64];
    size_t len;

    memset(blob, 'z', sizeof(blob));
    CHECK_EQ_INT(api_cache_new(1000, &c, NULL), ERR_OK); /* two 240-byte bodies fit, ... */
    api_cache_put(c, "\"1\"", blob, 240, "t");
    api_cache_put(c, "\"2\"", blob, 240, "t");
    api_cache_put(c, "\"3\"", blob, 240, "t");
    CHECK_EQ_INT(api_cache_get(c, "\"1\"", &body, &len, ct), 1); /* "1" is now recent */
    free(body);
    api_cache_put(c, "\"4\"", blob, 240, "t"); /* 960 > 1000? no: fits; then "5" evicts "2" */
    api_cache_put(c, "\"5\"", blob, 240, "t");
    CHECK_EQ_INT(api_cache_get(c, "\"2\"", &body, &len, ct), 0);
    CHECK_EQ_INT(api_cache_get(c, "\"1\"", &body, &len, ct), 1);
    free(body);
    CHECK_EQ_INT(api_cache_get(c, "\"5\"", &body, &len, ct), 1);
    free(body);
    api_cache_put(c, "\"big\"", blob, 251, "t"); /* over a quarter of the budget */
    CHECK_EQ_INT(api_cache_get(c, "\"big\"", &body, &len, ct), 0);
    api_cache_free(c);
}

static void test_no_cache_is_a_no_op(void)
{
    char *body = (char *)1, ct[64];
    size_t len = 0;

    api_cache_put(NULL, "\"a\"", "x", 1, "t");
    CHECK_EQ_INT(api_cache_get(NULL, "\"a\"", &body, &len, ct), 0);
}

int main(void)
{
    test_hit_returns_a_copy_with_its_content_type();
    test_budget_evicts_least_recently_used();
    test_no_cache_is_a_no_op();
    return check_report("test_api_cache");
}
