/* caio.linux_uring: submit now or batch, and the eventfd kept quiet for
 * completions the submitting call reaps itself. See context.c's top
 * comment for the policy and docs/internals.md for the measurements. */
#include "context.h"

void uctx_note_inline(UringContext *self, int done)
{
    self->avg += ((done ? AVG_ONE : 0) - self->avg) / 8;
    if (!self->batching) {
        if (self->avg < AVG_BATCH_BELOW && self->call_soon != NULL)
            self->batching = 1;
    } else if (self->avg > AVG_IMMEDIATE_ABOVE) {
        self->batching = 0;
    }
}

int uctx_schedule_flush(UringContext *self)
{
    PyObject *r, *cb;

    if (self->flush_scheduled)
        return 0;
    /* A fresh bound method each time (once per loop iteration at most):
     * caching it would make the context a reference cycle. */
    if ((cb = PyObject_GetAttrString((PyObject *)self, "_flush")) == NULL)
        return -1;
    r = PyObject_CallOneArg(self->call_soon, cb);
    Py_DECREF(cb);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    self->flush_scheduled = 1;
    return 0;
}

/* No eventfd signal for inline completions.
 *
 * The kernel signals the eventfd for every CQE, including the ones of
 * requests that completed inside our own io_uring_enter and that we reap
 * right away: that would wake the loop for nothing (epoll_wait returns, an
 * eventfd read, an empty reap) and costs the kernel an eventfd wake-up per
 * operation. So when nothing else is in flight, submit with
 * IORING_CQ_EVENTFD_DISABLED set, and clear it afterwards.
 *
 * Why no completion can be lost: with nothing else in flight, the only
 * CQEs that can be posted while the flag is set are those of the request
 * just submitted. If it completed inline we reaped it. If not (it went to
 * poll or an io-wq worker), its CQE may have been posted, without a
 * signal, around the moment we cleared the flag; so in that case we signal
 * the eventfd ourselves, and the loop's process_events() reaps it. That
 * case needs a future and a wake-up anyway. */
void uctx_eventfd_quiet(UringContext *self)
{
    unsigned *flags = self->ring.cq.kflags;
    __atomic_store_n(flags, read_once(flags) | IORING_CQ_EVENTFD_DISABLED, __ATOMIC_RELAXED);
}

void uctx_eventfd_loud(UringContext *self)
{
    unsigned *flags = self->ring.cq.kflags;

    /* Release: our reap's reads of the CQ happen before the kernel may
     * signal again (and the eventfd write below is a full barrier). */
    __atomic_store_n(flags, read_once(flags) & ~IORING_CQ_EVENTFD_DISABLED,
                     __ATOMIC_RELEASE);
    if (self->n_inflight > 0 || self->cancels_pending > 0)
        uctx_signal(self);
}
