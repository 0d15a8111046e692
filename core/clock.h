/* clock.h -- the monotonic clock, read in one place: durations, rates and
 * deadlines that must not jump when the wall clock is set.
 *
 * CLOCK_MONOTONIC (POSIX): seconds since an unspecified start, never going
 * back. Differences are meaningful, values are not (they are not times of
 * day; log timestamps use the real-time clock). Condition variables that wait
 * with clock_mono_deadline() must be created with
 * pthread_condattr_setclock(CLOCK_MONOTONIC).
 * No state: thread-safe.
 */
#ifndef CORE_CLOCK_H
#define CORE_CLOCK_H

#include <time.h>

/* Seconds on the monotonic clock, with nanosecond resolution. Cannot fail. */
double clock_mono_s(void);

/* CPU seconds the calling thread has used (CLOCK_THREAD_CPUTIME_ID): the
 * cost of a stage on a machine shared with other work. Cannot fail. */
double clock_thread_cpu_s(void);

/* The monotonic time `delay_s` seconds from now (delay_s >= 0), as the
 * absolute deadline pthread_cond_timedwait() takes. Cannot fail. */
struct timespec clock_mono_deadline(double delay_s);

#endif /* CORE_CLOCK_H */
