/* What the C profiling programs here share (readcost.c, copyalign.c): a
 * monotonic clock in nanoseconds and a qsort comparator for doubles.
 * Included as "clock.h": the compiler finds it beside the program, so each
 * still builds with one `cc -O2 -o /tmp/NAME benchmarks/profile/NAME.c`. */
#ifndef PROFILE_CLOCK_H
#define PROFILE_CLOCK_H

#include <time.h>

static inline double now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static inline int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

#endif
