/* The worker pool.
 *
 * One mutex protects everything shared with the workers: the submission
 * FIFO, the completion list and the counters. A worker takes the lock once
 * per request: it publishes the request it finished and picks the next one
 * in the same critical section.
 *
 * Submission: the FIFO plus a condition variable. A request wakes one idle
 * worker only if some worker is idle and not already being woken
 * (`wakeups`); a busy worker takes the next request itself when it is done,
 * so a burst of 64 requests costs at most pool_size wake-ups, not 64.
 * Workers are started on demand, up to max_threads, so an idle context
 * costs no threads (and a short-lived one never starts any).
 *
 * Buffered writes to one file run one at a time (`serial` requests: the
 * filesystem had no RWF_NOWAIT for them, as ext4 has none for buffered
 * writes). Each holds the file's inode lock for its whole copy, so two
 * workers writing one file take turns anyway, only with a sleep and a
 * wake-up between turns: one worker at a time took 4 KiB writes at 64 in
 * flight from 0.27x to about 0.5x of an os.pwrite loop
 * (docs/performance.md). io_uring's workers do the same (io-wq's "hashed"
 * work). The worker that ran one takes the next one of that descriptor (a
 * chain), other workers skip them in the FIFO, and submitting one wakes
 * nobody while a worker runs that descriptor's writes. (Skipping the
 * wake-up also while one is only queued would spare a wasted wake-up at
 * the start of a burst, but a cancelled queued write could then leave the
 * next one with nobody woken for it.)
 *
 * Spinning: a worker that has served a single short request (under
 * CAIO_SPIN_NS, its completion alone in the list) and finds the queue
 * empty polls for a new one for CAIO_SPIN_NS before it sleeps on `work`
 * (one worker per pool at a time, and only on a machine with more than
 * one CPU). A program doing one request at a time submits the next one
 * within microseconds of the completion, and waking a sleeping worker on
 * another CPU costs far more than that where CPUs are virtual: a 4 KiB
 * buffered write through the pool took 35-55 us with the sleep and 12-20
 * us with the poll (docs/internals.md). A submission that finds a
 * spinner takes it (`spin_claims`) instead of waking a sleeper; the next
 * one while that spinner has not taken its request yet wakes or starts
 * another worker, so a burst still spreads over the pool.
 *
 * Completion, fast-path requests: the worker appends the request to the
 * completion list and writes the wake-up fd only when the list was empty.
 * The event loop watches that fd; process_events() drains it and swaps the
 * whole list out under the lock. One wake-up per batch, no per-operation
 * call_soon_threadsafe. The fd is written outside the lock: a spurious
 * wake-up (list already swapped) is harmless, a lost one is impossible
 * because "empty -> non-empty" is decided under the lock.
 *
 * Completion, Operation objects (caio 0.12 API): the callback runs in the
 * worker, with the GIL taken by PyGILState_Ensure. Never once the
 * interpreter is exiting: the module's atexit hook closes every context
 * (which waits for callbacks in progress) and then sets `python_exiting`;
 * a worker checks it under the lock before taking the GIL. (A plain
 * Py_IsFinalizing() check would race with the start of finalization; it is
 * kept only as a second guard.)
 *
 * Stopping: see caio_pool_stop / caio_pool_join. A worker blocked in a
 * system call cannot be interrupted portably (pthread_kill needs a signal
 * handler installed process-wide, which a library must not take over, and
 * it races with the thread entering the call). Instead: waits on pipes and
 * sockets happen in poll() together with a "stop" fd that close() makes
 * readable, and for what remains (a disk that never answers, a huge pipe
 * write that sleeps halfway) close() waits up to close_timeout and then
 * gives up on the worker: it is detached, its request's memory is leaked
 * on purpose, and it frees the pool itself if it ever returns.
 *
 * The pool's memory is reference counted (the owner + each worker), so a
 * detached worker never touches freed memory.
 */
#include "pool_impl.h"
#include "fsops.h"

/* Long enough for an event loop to wake up, run the completion's
 * callbacks and submit the next request; short enough that an idle
 * program wastes nothing to speak of (a poll per request at most). */
#ifndef CAIO_SPIN_NS
#define CAIO_SPIN_NS 50000
#endif

static atomic_int python_exiting = 0;
/* The worker running on this thread (to notice close() from a callback). */
_Thread_local caio_worker *this_worker = NULL;

void caio_pool_python_exiting(void)
{
    atomic_store(&python_exiting, 1);
}

/* ---- lists (lock held) -------------------------------------------------- */

static void queue_push(caio_pool *p, caio_req *req)
{
    caio_thread_ext *ext = caio_thread_ext_of(req);

    ext->prev = p->qtail;
    ext->where = CAIO_WHERE_QUEUED;
    req->next = NULL;
    if (p->qtail != NULL)
        p->qtail->next = req;
    else
        p->qhead = req;
    p->qtail = req;
}

void pool_queue_unlink(caio_pool *p, caio_req *req)
{
    caio_thread_ext *ext = caio_thread_ext_of(req);

    if (ext->prev != NULL)
        ext->prev->next = req->next;
    else
        p->qhead = req->next;
    if (req->next != NULL)
        caio_thread_ext_of(req->next)->prev = ext->prev;
    else
        p->qtail = ext->prev;
    req->next = NULL;
    ext->prev = NULL;
    ext->where = CAIO_WHERE_NONE;
}

/* Whether some worker runs a serial request on fd (lock held). */
static int serial_running(const caio_pool *p, int fd)
{
    for (unsigned i = 0; i < p->max_threads; i++) {
        caio_req *cur = p->workers[i].current;

        if (cur != NULL && cur->fd == fd && caio_thread_ext_of(cur)->serial)
            return 1;
    }
    return 0;
}

/* The request a worker runs next (lock held): after a serial request on
 * chain_fd (else -1), the next one on that descriptor; otherwise the
 * oldest that may run now (a serial one only if its descriptor has none
 * running). NULL: nothing this worker may take. */
static caio_req *queue_take(caio_pool *p, int chain_fd)
{
    caio_req *req;

    if (chain_fd >= 0 && !serial_running(p, chain_fd)) {
        for (req = p->qhead; req != NULL; req = req->next) {
            if (req->fd == chain_fd && caio_thread_ext_of(req)->serial) {
                pool_queue_unlink(p, req);
                return req;
            }
        }
    }
    for (req = p->qhead; req != NULL; req = req->next) {
        if (!caio_thread_ext_of(req)->serial || !serial_running(p, req->fd)) {
            pool_queue_unlink(p, req);
            return req;
        }
    }
    return NULL;
}

/* Returns 1 when the list was empty (the caller must wake the loop). */
static int done_push(caio_pool *p, caio_req *req)
{
    int was_empty = p->dhead == NULL;

    req->next = NULL;
    if (p->dtail != NULL)
        p->dtail->next = req;
    else
        p->dhead = req;
    p->dtail = req;
    return was_empty;
}

/* ---- lifetime ----------------------------------------------------------- */

/* The CPUs this process may run on (1 if unknown): with one, a spinning
 * worker would only keep the event loop from running. */
static long cpu_count(void)
{
    long n;
#ifdef __linux__
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        return CPU_COUNT(&set);
#endif
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

caio_pool *caio_pool_new(unsigned max_threads, int *err)
{
    caio_pool *p;
    pthread_condattr_t attr;
    int e;

    p = calloc(1, sizeof(*p) + (size_t)max_threads * sizeof(caio_worker));
    if (p == NULL) {
        *err = ENOMEM;
        return NULL;
    }
    p->max_threads = max_threads;
    p->refs = 1;
    atomic_init(&p->submits, 0);
    p->spin_ns = cpu_count() > 1 ? CAIO_SPIN_NS : 0;
    p->done.rfd = p->done.wfd = p->stop.rfd = p->stop.wfd = -1;
    if ((e = pthread_mutex_init(&p->lock, NULL)) != 0)
        goto fail_mem;
    if ((e = pthread_condattr_init(&attr)) != 0)
        goto fail_lock;
#if CAIO_COND_CLOCK != CLOCK_REALTIME
    pthread_condattr_setclock(&attr, CAIO_COND_CLOCK);
#endif
    e = pthread_cond_init(&p->quiet, &attr);
    pthread_condattr_destroy(&attr);
    if (e != 0)
        goto fail_lock;
    if ((e = pthread_cond_init(&p->work, NULL)) != 0)
        goto fail_quiet;
    if ((e = caio_notifier_open(&p->done)) != 0)
        goto fail_work;
    if ((e = caio_notifier_open(&p->stop)) != 0)
        goto fail_done;
    for (unsigned i = 0; i < max_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].kick.rfd = p->workers[i].kick.wfd = -1;
    }
    return p;

fail_done:
    caio_notifier_close(&p->done);
fail_work:
    pthread_cond_destroy(&p->work);
fail_quiet:
    pthread_cond_destroy(&p->quiet);
fail_lock:
    pthread_mutex_destroy(&p->lock);
fail_mem:
    free(p);
    *err = e;
    return NULL;
}

void pool_close_fds(caio_pool *p)
{
    caio_notifier_close(&p->done);
    caio_notifier_close(&p->stop);
    for (unsigned i = 0; i < p->max_threads; i++)
        caio_notifier_close(&p->workers[i].kick);
}

static void pool_free(caio_pool *p)
{
    pool_close_fds(p);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->quiet);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void caio_pool_release(caio_pool *p)
{
    int last;

    pthread_mutex_lock(&p->lock);
    last = --p->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (last)
        pool_free(p);
}

void caio_pool_forget(caio_pool *p)
{
    pool_close_fds(p);
    free(p);
}

int caio_pool_fileno(const caio_pool *p)
{
    return p->done.rfd;
}

/* ---- workers ------------------------------------------------------------ */

/* The worker is done with its request (lock held). */
static void worker_put_down(caio_pool *p, caio_worker *w)
{
    if (w->current != NULL) {
        w->current = NULL;
        p->running--;
    }
}

int caio_pool_holds_nothing(caio_pool *p)
{
    int nothing;

    /* Asked at every write: with requests in flight, a glance without the
     * lock says so (the lock taken once more per write made 64 writes in
     * flight slower). Words the workers write under the lock: a stale
     * glance only sends a write to the pool; "nothing" is confirmed under
     * the lock. */
    if (__atomic_load_n(&p->running, __ATOMIC_RELAXED) != 0 ||
        __atomic_load_n(&p->qhead, __ATOMIC_RELAXED) != NULL ||
        __atomic_load_n(&p->dhead, __ATOMIC_RELAXED) != NULL)
        return 0;
    pthread_mutex_lock(&p->lock);
    nothing = p->qhead == NULL && p->dhead == NULL && p->running == 0;
    pthread_mutex_unlock(&p->lock);
    return nothing;
}

/* Run an Operation's callback in this worker (lock not held). */
static void finish_operation(caio_pool *p, caio_worker *w, caio_req *req)
{
    PyGILState_STATE gil;
    int enter;

    pthread_mutex_lock(&p->lock);
    enter = !p->abandoned && !atomic_load(&python_exiting);
    /* From here on close() must not treat the request as stuck: the
     * callback may free the Operation. */
    worker_put_down(p, w);
    if (enter)
        p->in_python++;
    pthread_mutex_unlock(&p->lock);
    if (!enter)
        return;     /* Python is going away: leak the Operation */

    if (!caio_interpreter_finalizing()) {
        gil = PyGILState_Ensure();
        req->state = CAIO_REQ_DONE;
        caio_operation_finish(req);
        /* The reference the context took in submit(). */
        Py_DECREF(req->owner);
        PyGILState_Release(gil);
    }

    pthread_mutex_lock(&p->lock);
    p->in_python--;
    if (p->stopping)
        pthread_cond_broadcast(&p->quiet);
    pthread_mutex_unlock(&p->lock);
}

static int open_kick(caio_io_wake *wake)
{
    caio_worker *w = wake->worker;
    caio_notifier kick;

    if (caio_notifier_open(&kick) != 0)
        return -1;
    pthread_mutex_lock(&w->pool->lock);
    w->kick = kick;
    pthread_mutex_unlock(&w->pool->lock);
    return kick.rfd;
}

static void close_kick(caio_io_wake *wake)
{
    caio_worker *w = wake->worker;
    caio_notifier kick;

    /* Unpublish first: a canceller signals it only under the lock. */
    pthread_mutex_lock(&w->pool->lock);
    kick = w->kick;
    w->kick.rfd = w->kick.wfd = -1;
    pthread_mutex_unlock(&w->pool->lock);
    caio_notifier_close(&kick);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait up to spin_ns for a submission without sleeping. Lock held on
 * entry and exit (released meanwhile): the caller looks at the queue
 * again, whatever ended the wait. */
static void spin_for_work(caio_pool *p)
{
    unsigned seen = atomic_load_explicit(&p->submits, memory_order_relaxed);
    int64_t deadline;
    unsigned i = 0;

    p->spinning++;
    pthread_mutex_unlock(&p->lock);
    deadline = mono_ns() + p->spin_ns;
    while (atomic_load_explicit(&p->submits, memory_order_acquire) == seen) {
        cpu_relax();
        if ((++i & 31) == 0 && mono_ns() > deadline)
            break;
    }
    pthread_mutex_lock(&p->lock);
    p->spinning--;
    if (p->spin_claims > 0)
        p->spin_claims--;
}

static void *worker_main(void *arg)
{
    caio_worker *w = arg;
    caio_pool *p = w->pool;
    caio_req *req;
    caio_io_wake wake;
    int notify = 0, last, chain_fd = -1, quick = 0, lone = 0;
    /* Requests taken since the queue was last empty; 0 again once a poll
     * has been tried, so that a worker polls at most once per request. */
    unsigned stretch = 0;
    int64_t started;

    this_worker = w;
    wake.stop_fd = p->stop.rfd;
    wake.cancel = &w->cancel;
    wake.open_kick = open_kick;
    wake.close_kick = close_kick;
    wake.worker = w;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        req = queue_take(p, chain_fd);
        if (req == NULL) {
            if (notify) {
                /* Wake the loop before going to sleep (outside the lock). */
                pthread_mutex_unlock(&p->lock);
                caio_notifier_signal(&p->done);
                notify = 0;
                pthread_mutex_lock(&p->lock);
                continue;
            }
            if (p->stopping)
                break;
            chain_fd = -1;
            /* Only after a lone, short request: the loop awaits one
             * request at a time. After a long one (a disk read) the
             * loop's thread has been asleep as long, and its own wake-up
             * takes most of a poll (measured: ~40 us of CPU per request,
             * no time saved); after a run of several, the loop is busy
             * submitting bursts, and a poller only took CPU time from it
             * (64 writes in flight ~7 % slower). */
            if (quick && lone && stretch == 1 && p->spinning == 0) {
                stretch = 0;
                spin_for_work(p);
                continue;
            }
            stretch = 0;
            p->idle++;
            pthread_cond_wait(&p->work, &p->lock);
            p->idle--;
            if (p->wakeups > 0)
                p->wakeups--;
            continue;
        }
        caio_thread_ext_of(req)->where = CAIO_WHERE_RUNNING;
        stretch++;
        chain_fd = caio_thread_ext_of(req)->serial ? req->fd : -1;
        w->current = req;
        p->running++;
        atomic_store(&w->cancel, 0);
        pthread_mutex_unlock(&p->lock);
        if (notify) {
            caio_notifier_signal(&p->done);
            notify = 0;
        }

        started = p->spin_ns > 0 ? mono_ns() : 0;
        req->result = caio_io_blocking(req, &wake);
        quick = p->spin_ns > 0 && mono_ns() - started < p->spin_ns;

        lone = 1;
        if (req->flags & CAIO_REQ_OWNED) {
            finish_operation(p, w, req);
            pthread_mutex_lock(&p->lock);
        } else {
            pthread_mutex_lock(&p->lock);
            /* Abandoned: close() failed the future and leaked the request;
             * it is not ours to publish any more, and what it made (a
             * descriptor an open returned) goes back: nobody can take it. */
            if (!p->abandoned)
                lone = notify = done_push(p, req);
            else if (req->opcode == CAIO_FS)
                caio_fs_dropped(req);
        }
        worker_put_down(p, w);
        if (p->stopping)
            pthread_cond_broadcast(&p->quiet);
    }
    if (w->state == WORKER_RUNNING)
        w->state = WORKER_EXITED;   /* (GONE: detached by close()) */
    worker_put_down(p, w);
    p->nthreads--;
    last = --p->refs == 0;
    pthread_cond_broadcast(&p->quiet);
    pthread_mutex_unlock(&p->lock);
    this_worker = NULL;
    if (last)
        pool_free(p);   /* given up on by close(), and now done */
    return NULL;
}

static int start_worker(caio_worker *w)
{
    pthread_attr_t attr;
    sigset_t all, old;
    size_t stack = 0;
    int err;

    if ((err = pthread_attr_init(&attr)) != 0)
        return err;
    if (pthread_attr_getstacksize(&attr, &stack) == 0 && stack < CAIO_MIN_STACK)
        pthread_attr_setstacksize(&attr, CAIO_MIN_STACK);
    /* Signals are for the main thread (Python runs its handlers there and
     * expects its own system calls to see EINTR): workers block them all,
     * and inherit the mask from here. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    err = pthread_create(&w->tid, &attr, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return err;
}

int caio_pool_submit(caio_pool *p, caio_req *req)
{
    caio_worker *w = NULL;
    int err, wake = 0;

    caio_thread_ext_of(req)->pool = p;
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        return ECANCELED;
    }
    queue_push(p, req);
    if (p->spinning > 0)
        atomic_fetch_add_explicit(&p->submits, 1, memory_order_release);
    if (caio_thread_ext_of(req)->serial && serial_running(p, req->fd)) {
        /* The worker running this descriptor's writes takes it next. */
    } else if (p->spinning > p->spin_claims) {
        p->spin_claims++;
    } else if (p->idle > p->wakeups) {
        p->wakeups++;
        wake = 1;
    } else if (p->nthreads < p->max_threads) {
        for (unsigned i = 0; i < p->max_threads; i++) {
            if (p->workers[i].state == WORKER_FREE) {
                w = &p->workers[i];
                break;
            }
        }
        if (w != NULL) {
            w->state = WORKER_RUNNING;
            p->nthreads++;
            p->refs++;
        }
    }
    pthread_mutex_unlock(&p->lock);
    /* Signalled after the unlock, so that the woken worker does not find
     * the lock still held and sleep on it again (one read at a time: two
     * futex calls and a context switch per read). No wake-up is lost: the
     * idle worker counted above is inside pthread_cond_wait (it counted
     * itself and released the lock in one step), or was woken already and
     * looks at the queue once it has the lock, where it finds this
     * request. The pool outlives this call (the caller holds its
     * reference). */
    if (wake)
        pthread_cond_signal(&p->work);

    if (w != NULL && (err = start_worker(w)) != 0) {
        pthread_mutex_lock(&p->lock);
        w->state = WORKER_FREE;
        p->nthreads--;
        p->refs--;
        if (p->nthreads == 0) {
            /* Nobody would ever run it: fail the submission instead. */
            if (caio_thread_ext_of(req)->where == CAIO_WHERE_QUEUED)
                pool_queue_unlink(p, req);
            pthread_mutex_unlock(&p->lock);
            return err;
        }
        pthread_mutex_unlock(&p->lock);
    }
    return 0;
}
