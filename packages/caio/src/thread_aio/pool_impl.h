/* The worker pool's insides, shared by pool.c (lists, lifetime, workers)
 * and pool_stop.c (cancellation, stopping). Nothing else includes this. */
#ifndef CAIO_THREAD_POOL_IMPL_H
#define CAIO_THREAD_POOL_IMPL_H

#include "pool.h"
#include "io.h"
#include "notify.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Workers run Python callbacks: make sure their stack is big enough even
 * where the default is small (musl: 128 KiB). */
#define CAIO_MIN_STACK (1024 * 1024)

#if defined(_POSIX_CLOCK_SELECTION) && _POSIX_CLOCK_SELECTION >= 0 && \
    defined(CLOCK_MONOTONIC) && !defined(__APPLE__)
#define CAIO_COND_CLOCK CLOCK_MONOTONIC
#else
#define CAIO_COND_CLOCK CLOCK_REALTIME
#endif

enum worker_state {
    WORKER_FREE = 0,     /* slot unused */
    WORKER_RUNNING,      /* thread started, not exited */
    WORKER_EXITED,       /* thread returned (or is returning): join it */
    WORKER_GONE,         /* joined or detached */
};

typedef struct {
    pthread_t tid;
    caio_pool *pool;
    caio_req *current;          /* the request in its system call */
    int state;                  /* enum worker_state */
    /* Cancelling the running request: set `cancel`, then signal `kick`
     * if the worker waits in poll() on a pipe/socket/tty (it made `kick`
     * for that wait; see io.c). All under the lock, and only while
     * `current` is that request. */
    atomic_int cancel;
    caio_notifier kick;
} caio_worker;

struct caio_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;        /* idle workers wait here */
    pthread_cond_t quiet;       /* the closer waits here */
    caio_req *qhead, *qtail;    /* submission FIFO */
    caio_req *dhead, *dtail;    /* completions for the event loop */
    unsigned max_threads;
    unsigned nthreads;          /* started and not exited */
    unsigned idle;              /* waiting on `work` */
    unsigned wakeups;           /* signals sent to idle workers, not yet taken */
    unsigned spinning;          /* workers polling `submits` before they sleep */
    unsigned spin_claims;       /* submissions left to a spinning worker */
    int64_t spin_ns;            /* how long an idle worker polls; 0: never */
    /* Bumped by a submission while a worker polls it: alone on its cache
     * line, so that the poller's reads do not take the line of the lock
     * and the queue from the submitting thread at every access. */
    char pad_before[64];
    atomic_uint submits;
    char pad_after[64];
    unsigned running;           /* workers with a request (current != NULL) */
    unsigned in_python;         /* workers running an Operation callback */
    unsigned refs;              /* the owner + each started worker */
    int stopping;
    int abandoned;              /* close() gave up waiting: drop what finishes */
    caio_notifier done;         /* readable while dhead != NULL */
    caio_notifier stop;         /* readable once stopping */
    caio_worker workers[];
};

/* The worker running on this thread (to notice close() from a callback). */
extern _Thread_local caio_worker *this_worker;

/* Lock held. */
void pool_queue_unlink(caio_pool *p, caio_req *req);
void pool_close_fds(caio_pool *p);

#endif
