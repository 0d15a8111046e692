/* check.h -- the test framework: a few assertion macros and a report.
 *
 * One executable per tests/test_<module>.c; each behaviour is a
 * `static void test_<case>(void)` called from main(), which returns
 * check_report(). Failed checks print file:line and both operands, and the
 * test goes on, so one run shows every failure. Not thread-safe: check from
 * the main thread only.
 */
#ifndef TESTS_CHECK_H
#define TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_n_run;
static int check_n_failed;

#define CHECK(x)                                                                  \
    do {                                                                          \
        check_n_run++;                                                            \
        if (!(x)) {                                                               \
            check_n_failed++;                                                     \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #x); \
        }                                                                         \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                        \
    do {                                                                                          \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                           \
        check_n_run++;                                                                            \
        if (check_a_ != check_b_) {                                                               \
            check_n_failed++;                                                                     \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, \
                    check_a_, check_b_);                                                          \
        }                                                                                         \
    } while (0)

/* |a - b| <= tol (absolute). NaNs never compare near. */
#define CHECK_NEAR(a, b, tol)                                                              \
    do {                                                                                   \
        double check_a_ = (double)(a), check_b_ = (double)(b), check_t_ = (double)(tol);   \
        check_n_run++;                                                                     \
        if (!(fabs(check_a_ - check_b_) <= check_t_)) {                                    \
            check_n_failed++;                                                              \
            fprintf(stderr, "%s:%d: %s ~= %s failed: %.17g vs %.17g (tol %g)\n", __FILE__, \
                    __LINE__, #a, #b, check_a_, check_b_, check_t_);                       \
        }                                                                                  \
    } while (0)

/* |a - b| <= rel * |b| (relative to the expected value b). */
#define CHECK_REL(a, b, rel)                                                               \
    do {                                                                                   \
        double check_a_ = (double)(a), check_b_ = (double)(b), check_r_ = (double)(rel);   \
        check_n_run++;                                                                     \
        if (!(fabs(check_a_ - check_b_) <= check_r_ * fabs(check_b_))) {                   \
            check_n_failed++;                                                              \
            fprintf(stderr, "%s:%d: %s ~= %s failed: %.17g vs %.17g (rel %g)\n", __FILE__, \
                    __LINE__, #a, #b, check_a_, check_b_, check_r_);                       \
        }                                                                                  \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                        \
    do {                                                                                          \
        const char *check_a_ = (a), *check_b_ = (b);                                              \
        check_n_run++;                                                                            \
        if (check_a_ == NULL || check_b_ == NULL || strcmp(check_a_, check_b_) != 0) {            \
            check_n_failed++;                                                                     \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, \
                    #b, check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");          \
        }                                                                                         \
    } while (0)

/* Print "<prog>: N passed, N failed" and return the exit status. */
static inline int check_report(const char *prog)
{
    printf("%s: %d passed, %d failed\n", prog, check_n_run - check_n_failed, check_n_failed);
    return check_n_failed == 0 ? 0 : 1;
}

#endif /* TESTS_CHECK_H */
