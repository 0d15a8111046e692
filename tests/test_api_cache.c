/* test_api_cache.c -- rendered run reads kept by ETag: hits return a copy of
 * the stored body, the byte budget evicts least recently used entries first,
 * and bodies too large for the budget are never stored; ETags are the
 * SHA-256 of what identifies a response. */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
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

/* An ETag is the first 128 bits of SHA-256(head || key), quoted: the same
 * with the cache's looked-up SHA-256 as without a cache. */
static void test_etag_is_the_quoted_sha256_prefix(void)
{
    struct api_cache *c = NULL;
    char tag[API_CACHE_ETAG_LEN], none[API_CACHE_ETAG_LEN];

    CHECK_EQ_INT(api_cache_new(1 << 20, &c, NULL), ERR_OK);
    CHECK_EQ_INT(api_cache_etag(c, "ab", "c", tag), 1); /* SHA-256("abc") = ba7816bf... */
    CHECK_STR_EQ(tag, "\"ba7816bf8f01cfea414140de5dae2223\"");
    CHECK_EQ_INT(api_cache_etag(NULL, "a", "bc", none), 1);
    CHECK_STR_EQ(none, tag);
    CHECK_EQ_INT(api_cache_etag(c, "ab", "d", tag), 1);
    CHECK(strcmp(tag, none) != 0);
    CHECK_EQ_INT((int)strlen(tag), API_CACHE_ETAG_LEN - 1);
    api_cache_free(c);
}

/* ETag keys are built without printf: strings and decimals appended with a
 * separator; once the key would overflow, every later append reports the
 * capacity and the key is never cut mid-part. */
static void test_keys_append_and_refuse_overflow(void)
{
    char key[34] = "";
    size_t n;

    n = api__key_str(key, sizeof(key), 0, "history", '|');
    n = api__key_int(key, sizeof(key), n, 0, '|');
    n = api__key_int(key, sizeof(key), n, -42, '|');
    n = api__key_int(key, sizeof(key), n, INT64_MAX, '\0'); /* 33 bytes and the NUL: full */
    CHECK_STR_EQ(key, "history|0|-42|9223372036854775807");
    CHECK_EQ_INT((int)n, 33);
    n = api__key_str(key, sizeof(key), n, "x", '\0');
    CHECK_EQ_INT((int)n, 34);
    CHECK_STR_EQ(key, "history|0|-42|9223372036854775807");
    n = api__key_str(key, sizeof(key), 0, "a", ',');
    n = api__key_int(key, sizeof(key), n, INT64_MIN, '\0');
    CHECK_STR_EQ(key, "a,-9223372036854775808");
    CHECK_EQ_INT((int)n, 22);
    n = api__key_str(key, sizeof(key), n, "0123456789AB", '\0'); /* 34 and the NUL */
    CHECK_EQ_INT((int)n, 34);
    CHECK_STR_EQ(key, "a,-9223372036854775808");
    CHECK_EQ_INT((int)api__key_str(key, sizeof(key), n, "", '\0'), 34); /* stays full */
}

int main(void)
{
    test_keys_append_and_refuse_overflow();
    test_etag_is_the_quoted_sha256_prefix();
    test_hit_returns_a_copy_with_its_content_type();
    test_budget_evicts_least_recently_used();
    test_no_cache_is_a_no_op();
    return check_report("test_api_cache");
}
