/* test_cfg.c -- server/cfg: the tokens file (--tokens), parsed strictly.
 *
 * The file format (cfg.h): one `TOKEN SCOPES` per line, SCOPES read, write
 * or read,write; tokens 16..256 printable ASCII characters without spaces
 * or '#'; whole-line comments and blank lines. Every other line stops the
 * start with "PATH:LINE: what is wrong", so no malformed line can become a
 * token with more rights than written (the old parser cut a line at '#' or
 * at 1023 bytes and gave the prefix read,write; a line without scopes also
 * got read,write). Each case writes a file under a fresh /tmp folder.
 */
#include "server/cfg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/check.h"

#define TOK_A "token-aaaaaaaaaaaaaaaa"
#define TOK_B "token-bbbbbbbbbbbbbbbb"

static char dir[64];
static char file[128];

/* Load `text` (`len` bytes) as a tokens file. */
static enum err_code load_n(const char *text, size_t len, struct api_token **t, size_t *n,
                            struct err *e)
{
    FILE *f = fopen(file, "wb");

    ERR_ASSERT(f != NULL);
    ERR_ASSERT(fwrite(text, 1, len, f) == len);
    ERR_ASSERT(fclose(f) == 0);
    memset(e, 0, sizeof(*e));
    return cfg_load_tokens(file, t, n, e);
}

static enum err_code load(const char *text, struct api_token **t, size_t *n, struct err *e)
{
    return load_n(text, strlen(text), t, n, e);
}

/* `text` is refused with a message "<file>:<line>: ...<want>...", and
 * nothing is returned. */
static void check_refused(const char *text, int line, const char *want)
{
    struct api_token *t = (struct api_token *)&t; /* not NULL: must be reset */
    size_t n = 99;
    struct err e;
    char prefix[160];

    CHECK_EQ_INT(load(text, &t, &n, &e), ERR_INVAL);
    CHECK(t == NULL);
    CHECK_EQ_INT(n, 0);
    snprintf(prefix, sizeof(prefix), "%s:%d: ", file, line);
    CHECK(strncmp(e.msg, prefix, strlen(prefix)) == 0);
    CHECK(strstr(e.msg, want) != NULL);
    if (strncmp(e.msg, prefix, strlen(prefix)) != 0 || strstr(e.msg, want) == NULL)
        fprintf(stderr, "  got \"%s\", want \"%s...%s\"\n", e.msg, prefix, want);
}

/* --- Accepted files ---------------------------------------------------------- */

static void test_scopes_comments_blank_lines_and_crlf(void)
{
    const char *text = "# farmsd tokens\n"
                       "\n"
                       "   # an indented comment line\n" TOK_A " read\n" TOK_B "\twrite\r\n"
                       "  token-cccccccccccccccc   read,write   \n"
                       "token-dddddddddddddddd write,read";
    struct api_token *t = NULL;
    size_t n = 0;
    struct err e;

    CHECK_EQ_INT(load(text, &t, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 4);
    if (n == 4) {
        CHECK_STR_EQ(t[0].token, TOK_A);
        CHECK_EQ_INT(t[0].scopes, API_SCOPE_READ);
        CHECK_STR_EQ(t[1].token, TOK_B);
        CHECK_EQ_INT(t[1].scopes, API_SCOPE_WRITE);
        CHECK_STR_EQ(t[2].token, "token-cccccccccccccccc");
        CHECK_EQ_INT(t[2].scopes, API_SCOPE_READ | API_SCOPE_WRITE);
        CHECK_STR_EQ(t[3].token, "token-dddddddddddddddd");
        CHECK_EQ_INT(t[3].scopes, API_SCOPE_READ | API_SCOPE_WRITE);
    }
    cfg_tokens_free(t, n);
}

/* The bounds: 16 and 256 characters are tokens; every printable ASCII
 * character but space and '#' may appear in one. */
static void test_token_length_bounds_and_alphabet(void)
{
    char text[400];
    char tok[CFG_TOKEN_MAX + 1];
    struct api_token *t = NULL;
    size_t n = 0;
    struct err e;

    memset(tok, 'x', CFG_TOKEN_MAX);
    tok[CFG_TOKEN_MAX] = '\0';
    snprintf(text, sizeof(text),
             "0123456789abcdef read\n%s write\n!\"$%%&'()*+,-./:;<=>?@[\\]^_`{|}~ read\n", tok);
    CHECK_EQ_INT(load(text, &t, &n, &e), ERR_OK);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK_EQ_INT(strlen(t[0].token), CFG_TOKEN_MIN);
        CHECK_EQ_INT(strlen(t[1].token), CFG_TOKEN_MAX);
        CHECK_STR_EQ(t[2].token, "!\"$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
    }
    cfg_tokens_free(t, n);
}

/* --- Refused files: the start stops at the first bad line --------------------- */

/* The reproduction of the issue: the prefix before '#' got read,write. */
static void test_hash_inside_a_token_is_refused(void)
{
    check_refused("# ok\n" TOK_A " read\nabcdefghijklmnopqrstuvwxyz#123 read\n", 3,
                  "'#' inside the token");
    check_refused(TOK_A "# read\n", 1, "'#' inside the token");
}

/* A line over the limit was cut at 1023 bytes and its prefix became a
 * read,write token; now the line is refused whole, whatever follows. */
static void test_overlong_line_is_refused(void)
{
    size_t len = CFG_TOKEN_LINE_MAX + 100;
    char *text = malloc(len + 1);
    struct api_token *t = NULL;
    size_t n = 99;
    struct err e;

    ERR_ASSERT(text != NULL);
    memset(text, 'a', len);
    memcpy(text + len - 5, " read", 5);
    text[len] = '\0';
    CHECK_EQ_INT(load(text, &t, &n, &e), ERR_INVAL);
    CHECK(t == NULL);
    CHECK_EQ_INT(n, 0);
    CHECK(strstr(e.msg, ":1: line longer than 1024 bytes") != NULL);
    /* a line of exactly the limit is read whole: here a token over 256 characters */
    memset(text, 'a', CFG_TOKEN_LINE_MAX);
    memcpy(text + CFG_TOKEN_LINE_MAX - 5, " read", 5);
    text[CFG_TOKEN_LINE_MAX] = '\0';
    check_refused(text, 1, "token longer than 256 characters");
    free(text);
}

static void test_missing_or_unknown_scopes_are_refused(void)
{
    check_refused(TOK_A "\n", 1, "no scopes after the token");
    check_refused(TOK_A "   \n", 1, "no scopes after the token");
    check_refused(TOK_A " read\n" TOK_B " admin\n", 2, "unknown scopes 'admin'");
    check_refused(TOK_A " READ\n", 1, "unknown scopes 'READ'");
    check_refused(TOK_A " read,\n", 1, "unknown scopes 'read,'");
    check_refused(TOK_A " read, write\n", 1, "unknown scopes 'read,'");
}

static void test_trailing_text_is_refused(void)
{
    check_refused(TOK_A " read write\n", 1, "unexpected text after the scopes");
    check_refused(TOK_A " read # reader\n", 1, "unexpected text after the scopes");
}

static void test_short_token_and_bad_bytes_are_refused(void)
{
    check_refused("short-token read\n", 1, "token shorter than 16 characters");
    check_refused(TOK_A " read\n" TOK_B "\x01 write\n", 2, "byte 0x01 at column 23");
    check_refused("token-\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 read\n", 1,
                  "byte 0xc3 at column 7 is not printable ASCII");
    check_refused(TOK_A " read\x7f\n", 1, "byte 0x7f");
    check_refused(TOK_A " read\n" TOK_A " write\n", 2, "the same token appears twice");
}

/* A NUL byte would end a C string early: it is not printable either. */
static void test_nul_byte_is_refused(void)
{
    static const char text[] = TOK_A "\0 read\n";
    struct api_token *t = NULL;
    size_t n = 0;
    struct err e;

    CHECK_EQ_INT(load_n(text, sizeof(text) - 1, &t, &n, &e), ERR_INVAL);
    CHECK(strstr(e.msg, ":1: byte 0x00 at column 23") != NULL);
    CHECK(t == NULL);
}

static void test_file_without_tokens_or_missing_is_refused(void)
{
    struct api_token *t = NULL;
    size_t n = 0;
    struct err e;

    CHECK_EQ_INT(load("# nothing here\n\n", &t, &n, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "no tokens in the file") != NULL);
    CHECK(t == NULL);
    memset(&e, 0, sizeof(e));
    CHECK_EQ_INT(cfg_load_tokens("/nonexistent/farmsd-tokens", &t, &n, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "/nonexistent/farmsd-tokens") != NULL);
    CHECK(t == NULL);
}

/* cfg_load of `farmsd serve` with `flag` (and its value; NULL: none) and
 * FARMSD_ANALYSIS_MEMORY=`env` (NULL: unset): the code; the setting in
 * *out, the message in e. */
static enum err_code load_analysis_memory(const char *flag, const char *value, const char *env,
                                          uint64_t *out, struct err *e)
{
    char *argv[] = {"serve", (char *)(uintptr_t)flag, (char *)(uintptr_t)value, NULL};
    struct cfg c;
    enum err_code rc;

    if (env != NULL)
        setenv("FARMSD_ANALYSIS_MEMORY", env, 1);
    else
        unsetenv("FARMSD_ANALYSIS_MEMORY");
    optind = 0; /* getopt starts over */
    rc = cfg_load(&c, flag != NULL ? 3 : 1, argv, e);
    *out = c.analysis_memory;
    cfg_free(&c);
    unsetenv("FARMSD_ANALYSIS_MEMORY");
    return rc;
}

/* --analysis-memory: half the machine's memory by default; a size with a
 * suffix from the flag or the environment (the flag wins); below 1M is
 * refused naming the flag or the variable. */
static void test_analysis_memory_default_flag_and_environment(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t v = 0;
    struct err e = {0};

    CHECK_EQ_INT(load_analysis_memory(NULL, NULL, NULL, &v, &e), ERR_OK);
    CHECK_EQ_INT(v, (uint64_t)pages * (uint64_t)page / 2);
    CHECK_EQ_INT(load_analysis_memory("--analysis-memory", "8G", NULL, &v, &e), ERR_OK);
    CHECK_EQ_INT(v, 8ull << 30);
    CHECK_EQ_INT(load_analysis_memory(NULL, NULL, "512M", &v, &e), ERR_OK);
    CHECK_EQ_INT(v, 512ull << 20);
    CHECK_EQ_INT(load_analysis_memory("--analysis-memory", "3G", "512M", &v, &e), ERR_OK);
    CHECK_EQ_INT(v, 3ull << 30);
    CHECK_EQ_INT(load_analysis_memory("--analysis-memory", "512K", NULL, &v, &e), ERR_INVAL);
    CHECK_STR_EQ(e.msg, "--analysis-memory: '512K' is below 1M");
    CHECK_EQ_INT(load_analysis_memory(NULL, NULL, "lots", &v, &e), ERR_INVAL);
    CHECK(strncmp(e.msg, "FARMSD_ANALYSIS_MEMORY=lots: ", 29) == 0);
}

/* The webhook settings: defaults; flags and the environment; a secret
 * file's bytes without its trailing newline; refusals naming the flag. */
static void test_webhook_settings(void)
{
    char secret[300],
        *argv[8] = {
            "serve", "--webhook-url", "http://127.0.0.1:9/hook", "--webhook-secret-file", secret,
            NULL};
    char *bad_url[] = {"serve", "--webhook-url", "ftp://x/", NULL};
    char *bad_backoff[] = {"serve", "--webhook-backoff", "0", NULL};
    struct cfg c;
    struct err e = {0};
    FILE *f;

    snprintf(secret, sizeof(secret), "%s/secret", dir);
    f = fopen(secret, "wb");
    ERR_ASSERT(f != NULL && fputs("k3y\r\n", f) >= 0 && fclose(f) == 0);
    optind = 0;
    CHECK_EQ_INT(cfg_load(&c, 1, argv, &e), ERR_OK); /* defaults */
    CHECK(c.webhook_url == NULL);
    CHECK_EQ_INT(c.webhook_max_attempts, 8);
    CHECK_NEAR(c.webhook_backoff_s, 1.0, 0);
    CHECK_NEAR(c.webhook_backoff_max_s, 300.0, 0);
    CHECK_EQ_INT(c.webhook_timeout_s, 10);
    cfg_free(&c);
    setenv("FARMSD_WEBHOOK_BACKOFF", "0.05", 1);
    optind = 0;
    CHECK_EQ_INT(cfg_load(&c, 5, argv, &e), ERR_OK);
    CHECK_STR_EQ(c.webhook_url, "http://127.0.0.1:9/hook");
    CHECK_EQ_INT(c.webhook_secret_len, 3);
    CHECK(c.webhook_secret != NULL && memcmp(c.webhook_secret, "k3y", 3) == 0);
    CHECK_NEAR(c.webhook_backoff_s, 0.05, 0);
    cfg_free(&c);
    unsetenv("FARMSD_WEBHOOK_BACKOFF");
    optind = 0;
    CHECK_EQ_INT(cfg_load(&c, 3, bad_url, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "--webhook-url") != NULL);
    cfg_free(&c);
    optind = 0;
    CHECK_EQ_INT(cfg_load(&c, 3, bad_backoff, &e), ERR_INVAL);
    CHECK(strstr(e.msg, "--webhook-backoff") != NULL);
    cfg_free(&c);
    unlink(secret);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_cfg_XXXXXX");
    ERR_ASSERT(mkdtemp(dir) != NULL);
    snprintf(file, sizeof(file), "%s/tokens", dir);
    test_scopes_comments_blank_lines_and_crlf();
    test_token_length_bounds_and_alphabet();
    test_hash_inside_a_token_is_refused();
    test_overlong_line_is_refused();
    test_missing_or_unknown_scopes_are_refused();
    test_trailing_text_is_refused();
    test_short_token_and_bad_bytes_are_refused();
    test_nul_byte_is_refused();
    test_file_without_tokens_or_missing_is_refused();
    test_analysis_memory_default_flag_and_environment();
    test_webhook_settings();
    unlink(file);
    rmdir(dir);
    return check_report("test_cfg");
}
