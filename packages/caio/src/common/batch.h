/* Submit now or batch: the policy linux_uring and linux_aio share.
 *
 * Entering the kernel once per operation is best when operations finish
 * inside that system call: the value comes back at once and no future is
 * made. When most do not (O_DIRECT, a pipe without data), one system call
 * per loop iteration for all of them is cheaper, and the block layer gets
 * them together (one plug, one doorbell for the device instead of one per
 * request). A moving average of the inline rate switches to batching when
 * it drops below 1/4 (a flush scheduled with the loop's call_soon) and back
 * when it rises above 1/2; while batching, every CAIO_PROBE_EVERY-th
 * operation goes in at once, so a cache that warms up is noticed. Callers
 * hold their context's lock (or the GIL, for linux_uring) around all of it. */
#ifndef CAIO_BATCH_H
#define CAIO_BATCH_H

#include "caio.h"

/* Inline-rate moving average, fixed point. */
#define CAIO_AVG_ONE 256
#define CAIO_AVG_BATCH_BELOW (CAIO_AVG_ONE / 4)
#define CAIO_AVG_IMMEDIATE_ABOVE (CAIO_AVG_ONE / 2)
#define CAIO_PROBE_EVERY 16

typedef struct {
    int batching;
    int flush_scheduled;        /* ctx._flush is queued with call_soon */
    int avg;                    /* inline completion rate, 0..CAIO_AVG_ONE */
    unsigned probe;
} caio_batch;

static inline void caio_batch_init(caio_batch *b)
{
    b->batching = 0;
    b->flush_scheduled = 0;
    b->avg = CAIO_AVG_ONE;
    b->probe = 0;
}

/* One operation submitted at once finished inside the call (done) or not.
 * can_batch: the context has a call_soon to schedule flushes with. */
static inline void caio_batch_note(caio_batch *b, int done, int can_batch)
{
    b->avg += ((done ? CAIO_AVG_ONE : 0) - b->avg) / 8;
    if (!b->batching) {
        if (b->avg < CAIO_AVG_BATCH_BELOW && can_batch)
            b->batching = 1;
    } else if (b->avg > CAIO_AVG_IMMEDIATE_ABOVE) {
        b->batching = 0;
    }
}

/* While batching: is this operation the one in CAIO_PROBE_EVERY that goes
 * in at once anyway? */
static inline int caio_batch_probe(caio_batch *b)
{
    return ++b->probe % CAIO_PROBE_EVERY == 0;
}

/* Queue ctx._flush() with call_soon, unless it is queued already. 0, or -1
 * with an exception (the caller then submits at once). */
CAIO_API int caio_batch_schedule(caio_batch *b, PyObject *ctx, PyObject *call_soon);

/* The short wait for a lone miss (linux_uring/batch.c says why): a read
 * alone in flight that did not finish in the call is waited for there, at
 * most CAIO_LONE_WAIT_NS, the GIL released, when the loop has nothing
 * else to run. Done as long as more than CAIO_LONE_WAIT_ABOVE of those
 * waits succeed, else on every CAIO_LONE_PROBE_EVERY-th lone miss only. */
#define CAIO_LONE_WAIT_NS 150000LL
#define CAIO_LONE_WAIT_ABOVE (CAIO_AVG_ONE / 2)
#define CAIO_LONE_PROBE_EVERY 32

/* Timer slack for the wait, once CAIO_LONE_SLACK_AFTER waits in a row
 * finished within CAIO_LONE_WAIT_NS (linux_aio; linux_aio/queue.c says
 * why): the wait's timer then fires with the kernel's next tick (4 ms at
 * HZ=250) instead of reprogramming the CPU's timer twice per read. A wait
 * that ends later than CAIO_LONE_WAIT_NS counts as failed and ends the
 * streak, so a device that turns slow costs the loop one such wait, then
 * waits bounded at CAIO_LONE_WAIT_NS again. */
#define CAIO_LONE_SLACK_NS 4000000L
#define CAIO_LONE_SLACK_AFTER 16

typedef struct {
    int avg;                    /* waits that succeeded, 0..CAIO_AVG_ONE */
    unsigned probe;
    unsigned streak;            /* waits in a row that succeeded */
} caio_lone;

static inline void caio_lone_init(caio_lone *l)
{
    l->avg = CAIO_AVG_ONE;
    l->probe = 0;
    l->streak = 0;
}

/* Whether the next wait may use CAIO_LONE_SLACK_NS. */
static inline int caio_lone_slack(const caio_lone *l)
{
    return l->streak >= CAIO_LONE_SLACK_AFTER;
}

/* Whether waiting pays here (most waits succeed), or this is a probe. */
static inline int caio_lone_try(caio_lone *l)
{
    return l->avg > CAIO_LONE_WAIT_ABOVE || ++l->probe % CAIO_LONE_PROBE_EVERY == 0;
}

/* A wait ended: done, the read completed within CAIO_LONE_WAIT_NS. */
static inline void caio_lone_note(caio_lone *l, int done)
{
    l->avg += ((done ? CAIO_AVG_ONE : 0) - l->avg) / 4;
    if (!done)
        l->streak = 0;
    else if (l->streak < CAIO_LONE_SLACK_AFTER)
        l->streak++;
}

/* The lone write (linux_uring/batch.c says why): req's write made on
 * this thread (caio_req_write_here), timed; one that took longer than
 * CAIO_LONE_WAIT_NS counts as failed in *lone. The count or -errno;
 * -ESPIPE (a stream: the caller's slow path takes it) is not counted. */
CAIO_API ssize_t caio_lone_write(caio_lone *lone, caio_req *req, int *nogil);

/* Call the adapter's idle check (the loop has nothing else to run). A
 * failing check counts as "not idle" and is reported as unraisable on
 * owner. */
CAIO_API int caio_loop_idle(PyObject *check, PyObject *owner);

#endif
