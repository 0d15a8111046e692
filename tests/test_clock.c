/* test_clock.c -- the monotonic clock (core/clock.h): it never goes back,
 * and a deadline is the delay past a reading taken before it, normalised
 * (0 <= tv_nsec < 1e9). Orderings only: no duration is asserted. */
#include <time.h>

#include "core/clock.h"
#include "tests/check.h"

static double seconds_of(struct timespec ts)
{
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_readings_never_go_back(void)
{
    double prev = clock_mono_s();

    CHECK(prev >= 0);
    for (int i = 0; i < 1000; i++) {
        double now = clock_mono_s();

        CHECK(now >= prev);
        prev = now;
    }
}

static void test_deadline_is_delay_after_now_and_normalised(void)
{
    static const double delays[] = {0.0, 0.05, 0.5, 0.999999999, 1.5, 10.0};

    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        double before = clock_mono_s();
        struct timespec d = clock_mono_deadline(delays[i]);
        double after = clock_mono_s();

        CHECK(d.tv_nsec >= 0);
        CHECK(d.tv_nsec < 1000000000L);
        /* taken between the two readings, plus the delay (1 us for rounding) */
        CHECK(seconds_of(d) >= before + delays[i] - 1e-6);
        CHECK(seconds_of(d) <= after + delays[i] + 1e-6);
    }
}

int main(void)
{
    test_readings_never_go_back();
    test_deadline_is_delay_after_now_and_normalised();
    return check_report("test_clock");
}
