/* test_utf8.c -- strict UTF-8: what every reader accepts in names. */
#include <string.h>

#include "core/utf8.h"
#include "tests/check.h"

static uint64_t check(const char *s, size_t n)
{
    return utf8_check((const unsigned char *)s, n);
}

static void test_well_formed_text_is_accepted(void)
{
    CHECK_EQ_INT(check("", 0), 0);
    CHECK_EQ_INT(check("net.0.weight", 12), 12);
    CHECK_EQ_INT(check("\xc3\xa9t\xc3\xa9", 6), 6); /* U+00E9 */
    CHECK_EQ_INT(check("\xe2\x82\xac", 3), 3);      /* U+20AC */
    CHECK_EQ_INT(check("\xf0\x9f\x98\x80", 4), 4);  /* U+1F600 */
    CHECK_EQ_INT(check("\xf4\x8f\xbf\xbf", 4), 4);  /* U+10FFFF, the last */
    CHECK_EQ_INT(check("a\0b", 3), 3);              /* NUL is the caller's business */
}

static void test_ill_formed_sequences_report_their_offset(void)
{
    CHECK_EQ_INT(check("ab\xc0\xaf", 4), 2);       /* overlong '/' */
    CHECK_EQ_INT(check("\xe0\x80\xaf", 3), 0);     /* overlong, 3 bytes */
    CHECK_EQ_INT(check("x\xed\xa0\x80", 4), 1);    /* surrogate U+D800 */
    CHECK_EQ_INT(check("\xf4\x90\x80\x80", 4), 0); /* above U+10FFFF */
    CHECK_EQ_INT(check("ok\xe2\x82", 4), 2);       /* cut short */
    CHECK_EQ_INT(check("\x80", 1), 0);             /* stray continuation */
    CHECK_EQ_INT(check("\xff", 1), 0);
    CHECK_EQ_INT(check("\xc3\x28", 2), 0); /* bad continuation */
}

int main(void)
{
    test_well_formed_text_is_accepted();
    test_ill_formed_sequences_report_their_offset();
    return check_report("test_utf8");
}
