/* Submit now or batch: the policy the kernel backends share (linux_uring,
 * linux_aio).
 *
 * Entering the kernel once per request is best while requests complete
 * during the call (page-cache hits: the value comes back at once). When
 * most do not (O_DIRECT, cold files, pipes), entering it once per loop
 * pass for all of them is cheaper. A context keeps a moving average of
 * its inline rate, batches below 1/4 and goes back above 1/2; while
 * batching, every CAIO_PROBE_EVERY-th request goes at once so that a
 * warming cache is noticed. The batch is submitted by the context's _flush
 * method, which the loop's call_soon runs once per pass. */
#ifndef CAIO_BATCH_H
#define CAIO_BATCH_H

#include "caio.h"

#define CAIO_AVG_ONE 256
#define CAIO_AVG_BATCH_BELOW (CAIO_AVG_ONE / 4)
#define CAIO_AVG_IMMEDIATE_ABOVE (CAIO_AVG_ONE / 2)
#define CAIO_PROBE_EVERY 16

/* Record whether a request submitted at once completed in the call, and
 * switch *batching (never on without a call_soon to flush with). */
static inline void caio_batch_note(int *avg, int *batching, int done, int can_batch)
{
    *avg += ((done ? CAIO_AVG_ONE : 0) - *avg) / 8;
    if (!*batching) {
        if (*avg < CAIO_AVG_BATCH_BELOW && can_batch)
            *batching = 1;
    } else if (*avg > CAIO_AVG_IMMEDIATE_ABOVE) {
        *batching = 0;
    }
}

/* Have call_soon run ctx._flush, unless *scheduled says it is coming.
 * 0, or -1 with the exception set. */
CAIO_API int caio_schedule_flush(PyObject *ctx, PyObject *call_soon, int *scheduled);

#endif
