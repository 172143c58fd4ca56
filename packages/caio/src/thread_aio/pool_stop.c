/* The worker pool: taking requests back, kicking a worker out of a wait,
 * handing completions to the loop, stopping and joining. See pool.c for
 * the design. */
#include "pool_impl.h"

/* ---- cancellation ------------------------------------------------------- */

int caio_pool_unqueue(caio_pool *p, caio_req *req)
{
    caio_thread_ext *ext = caio_thread_ext_of(req);
    int removed = 0;

    pthread_mutex_lock(&p->lock);
    if (ext->pool == p && ext->where == CAIO_WHERE_QUEUED) {
        pool_queue_unlink(p, req);
        removed = 1;
    }
    pthread_mutex_unlock(&p->lock);
    return removed;
}

caio_req *caio_pool_unqueue_future(caio_pool *p, PyObject *future)
{
    caio_req *req;

    pthread_mutex_lock(&p->lock);
    /* From the newest: a task is usually cancelled soon after it asked. */
    for (req = p->qtail; req != NULL; req = caio_thread_ext_of(req)->prev) {
        if (req->future == future) {
            pool_queue_unlink(p, req);
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return req;
}

/* Under the lock: interrupt the worker running req, if it waits on a pipe. */
static int kick_running(caio_pool *p, caio_req *req)
{
    for (unsigned i = 0; i < p->max_threads; i++) {
        caio_worker *w = &p->workers[i];
        if (w->state == WORKER_RUNNING && w->current == req) {
            atomic_store(&w->cancel, 1);
            if (w->kick.rfd >= 0)
                caio_notifier_signal(&w->kick);
            return 1;
        }
    }
    return 0;
}

int caio_pool_kick(caio_pool *p, caio_req *req)
{
    int kicked;

    pthread_mutex_lock(&p->lock);
    kicked = caio_thread_ext_of(req)->pool == p &&
             caio_thread_ext_of(req)->where == CAIO_WHERE_RUNNING &&
             kick_running(p, req);
    pthread_mutex_unlock(&p->lock);
    return kicked;
}

int caio_pool_kick_future(caio_pool *p, PyObject *future)
{
    int kicked = 0;

    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < p->max_threads && !kicked; i++) {
        caio_worker *w = &p->workers[i];
        if (w->state == WORKER_RUNNING && w->current != NULL &&
            w->current->future == future)
            kicked = kick_running(p, w->current);
    }
    pthread_mutex_unlock(&p->lock);
    return kicked;
}

/* ---- completions -------------------------------------------------------- */

caio_req *caio_pool_take_done(caio_pool *p)
{
    caio_req *head;

    /* Drain first, then swap: a completion pushed after the swap wakes us
     * again (spurious at worst), never gets lost. The drain is a system
     * call and stays outside the lock: the worker that wrote the fd takes
     * the lock right after, and found it held by this read on most wake-ups
     * (a futex sleep and wake-up on both sides per completion). No lock is
     * needed for the fd: the callers (process_events, close) hold the GIL,
     * as does caio_pool_close_fds's only caller, so the fd cannot be closed
     * meanwhile. */
    if (p->done.rfd >= 0)
        caio_notifier_drain(&p->done);
    pthread_mutex_lock(&p->lock);
    head = p->dhead;
    p->dhead = p->dtail = NULL;
    pthread_mutex_unlock(&p->lock);
    return head;
}

int caio_pool_visit(caio_pool *p, int (*fn)(caio_req *req, void *arg), void *arg)
{
    caio_req *req;
    int ret = 0;

    /* Never held by a thread that waits for the GIL: safe to wait for. A
     * request is in exactly one place under the lock (a worker publishes
     * what it finished and drops `current` in one critical section). */
    pthread_mutex_lock(&p->lock);
    for (req = p->qhead; req != NULL && ret == 0; req = req->next)
        ret = fn(req, arg);
    for (unsigned i = 0; i < p->max_threads && ret == 0; i++) {
        if (p->workers[i].current != NULL)
            ret = fn(p->workers[i].current, arg);
    }
    for (req = p->dhead; req != NULL && ret == 0; req = req->next)
        ret = fn(req, arg);
    pthread_mutex_unlock(&p->lock);
    return ret;
}

void caio_pool_close_fds(caio_pool *p)
{
    pthread_mutex_lock(&p->lock);
    /* Only when no thread is left that could write or poll them. */
    if (p->stopping && p->nthreads == 0)
        pool_close_fds(p);
    pthread_mutex_unlock(&p->lock);
}

/* ---- stopping ----------------------------------------------------------- */

caio_req *caio_pool_stop(caio_pool *p)
{
    caio_req *head, *req;

    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    head = p->qhead;
    p->qhead = p->qtail = NULL;
    for (req = head; req != NULL; req = req->next) {
        caio_thread_ext_of(req)->prev = NULL;
        caio_thread_ext_of(req)->where = CAIO_WHERE_NONE;
    }
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    /* Wake workers waiting in poll() on a pipe. */
    caio_notifier_signal(&p->stop);
    return head;
}

static void deadline_after(struct timespec *ts, double seconds)
{
    clock_gettime(CAIO_COND_CLOCK, ts);
    if (seconds > 1e9)
        seconds = 1e9;
    ts->tv_sec += (time_t)seconds;
    ts->tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

size_t caio_pool_join(caio_pool *p, double timeout, caio_req **stuck, size_t cap)
{
    /* close() called from an Operation callback, i.e. by one of our own
     * workers: do not wait for (or join) ourselves. */
    unsigned self = (this_worker != NULL && this_worker->pool == p) ? 1 : 0;
    pthread_t *tids;
    struct timespec deadline;
    size_t nstuck = 0, njoin = 0;

    tids = malloc(sizeof(pthread_t) * (p->max_threads ? p->max_threads : 1));
    deadline_after(&deadline, timeout < 0 ? 0 : timeout);

    pthread_mutex_lock(&p->lock);
    while (p->nthreads > self) {
        if (pthread_cond_timedwait(&p->quiet, &p->lock, &deadline) == ETIMEDOUT)
            break;
    }
    if (p->nthreads > self) {
        /* Give up on the busy ones (see the top of the file). */
        p->abandoned = 1;
        for (unsigned i = 0; i < p->max_threads; i++) {
            caio_worker *w = &p->workers[i];
            if (w->state == WORKER_RUNNING && w != this_worker &&
                w->current != NULL && nstuck < cap)
                stuck[nstuck++] = w->current;
        }
        /* A callback in progress holds (or waits for) the GIL, which our
         * caller released: it ends soon; wait for it without a timeout so
         * no worker is inside Python once we return. */
        while (p->in_python > self)
            pthread_cond_wait(&p->quiet, &p->lock);
    }
    for (unsigned i = 0; i < p->max_threads; i++) {
        caio_worker *w = &p->workers[i];
        if (w->state == WORKER_EXITED) {
            if (tids != NULL)
                tids[njoin++] = w->tid;
            else
                pthread_detach(w->tid);
            w->state = WORKER_GONE;
        } else if (w->state == WORKER_RUNNING) {
            /* Stuck, or ourselves: it exits on its own later. */
            pthread_detach(w->tid);
            w->state = WORKER_GONE;
        }
    }
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < njoin; i++)
        pthread_join(tids[i], NULL);
    free(tids);
    return nstuck;
}
