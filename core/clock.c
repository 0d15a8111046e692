/* clock.c -- see clock.h. */
#include "core/clock.h"

#define CLOCK_NS_PER_S 1000000000L

double clock_mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double clock_thread_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct timespec clock_mono_deadline(double delay_s)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)(delay_s * 1e9);
    ts.tv_sec += ts.tv_nsec / CLOCK_NS_PER_S;
    ts.tv_nsec %= CLOCK_NS_PER_S;
    return ts;
}
