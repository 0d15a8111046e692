/* test_err_strerror.c -- err_strerror (core/err.h): the text of an errno,
 * thread-safe, never NULL; err_set_errno appends the same text. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "tests/check.h"

static void test_known_errno_has_its_text(void)
{
    char buf[ERR_ERRNO_LEN];

    CHECK_STR_EQ(err_strerror(ENOENT, buf, sizeof(buf)), "No such file or directory");
    CHECK_STR_EQ(err_strerror(ENOSPC, buf, sizeof(buf)), "No space left on device");
}

static void test_odd_inputs_still_give_text(void)
{
    char buf[ERR_ERRNO_LEN], one[1];
    const char *s = err_strerror(99999, buf, sizeof(buf)); /* no such errno */

    CHECK(s != NULL && s[0] != '\0');
    CHECK(err_strerror(ENOENT, one, sizeof(one)) != NULL); /* too small: still a string */
    CHECK(err_strerror(ENOENT, NULL, 0) != NULL);
}

static void test_err_set_errno_appends_the_same_text(void)
{
    struct err e = {0};
    char buf[ERR_ERRNO_LEN], want[ERR_MSG_LEN];

    CHECK_EQ_INT(err_set_errno(&e, ERR_IO, EACCES, "open %s", "x.bin"), ERR_IO);
    snprintf(want, sizeof(want), "open x.bin: %s", err_strerror(EACCES, buf, sizeof(buf)));
    CHECK_STR_EQ(e.msg, want);
    CHECK_EQ_INT(e.code, ERR_IO);
}

/* Two threads asking for different texts at once each get their own. */
struct worker_arg {
    int errnum;
    char want[ERR_ERRNO_LEN];
    int n_wrong;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;

    for (int i = 0; i < 20000; i++) {
        char buf[ERR_ERRNO_LEN];

        if (strcmp(err_strerror(a->errnum, buf, sizeof(buf)), a->want) != 0)
            a->n_wrong++;
    }
    return NULL;
}

static void test_threads_get_their_own_text(void)
{
    struct worker_arg a = {.errnum = ENOENT}, b = {.errnum = EPIPE};
    pthread_t ta, tb;
    char buf[ERR_ERRNO_LEN];

    snprintf(a.want, sizeof(a.want), "%s", err_strerror(a.errnum, buf, sizeof(buf)));
    snprintf(b.want, sizeof(b.want), "%s", err_strerror(b.errnum, buf, sizeof(buf)));
    CHECK(strcmp(a.want, b.want) != 0);
    CHECK_EQ_INT(pthread_create(&ta, NULL, worker, &a), 0);
    CHECK_EQ_INT(pthread_create(&tb, NULL, worker, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_EQ_INT(a.n_wrong, 0);
    CHECK_EQ_INT(b.n_wrong, 0);
}

int main(void)
{
    test_known_errno_has_its_text();
    test_odd_inputs_still_give_text();
    test_err_set_errno_appends_the_same_text();
    test_threads_get_their_own_text();
    return check_report("test_err_strerror");
}
