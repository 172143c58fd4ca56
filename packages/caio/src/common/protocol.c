/* The Context protocol every C backend shares: see protocol.h. */
#include "protocol.h"
#include "batch.h"
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

int caio_context_closed_error(void)
{
    PyErr_SetString(PyExc_ValueError, CAIO_CLOSED_MESSAGE);
    return -1;
}

PyObject *caio_context_no_factory(void)
{
    PyErr_SetString(PyExc_RuntimeError, CAIO_NO_FACTORY_MESSAGE);
    return NULL;
}

int caio_context_wrong_thread(void)
{
    PyErr_SetString(PyExc_RuntimeError,
                    "the *_async methods of this context belong to the thread that "
                    "called set_future_factory() (its event loop's): use one "
                    "context per event loop");
    return -1;
}

int caio_parse_max_requests(PyObject *ob, unsigned dflt, unsigned *out)
{
    long value;
    int overflow = 0;

    if (ob == NULL || ob == Py_None) {
        *out = dflt;
        return 0;
    }
    /* bool is an int: True is 1, False the default, as int() says. */
    if (!PyLong_Check(ob)) {
        PyErr_Format(PyExc_TypeError, "max_requests must be int or None, not %.100s",
                     Py_TYPE(ob)->tp_name);
        return -1;
    }
    value = PyLong_AsLongAndOverflow(ob, &overflow);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (overflow == 0 && value == 0) {
        *out = dflt;
        return 0;
    }
    if (overflow != 0 || value < 1 || value > CAIO_MAX_REQUESTS_LIMIT) {
        PyErr_Format(PyExc_ValueError,
                     "max_requests must be between 1 and %d (0 or None: the default)",
                     CAIO_MAX_REQUESTS_LIMIT);
        return -1;
    }
    *out = (unsigned)value;
    return 0;
}

int caio_check_callable_or_none(PyObject *ob, const char *what)
{
    if (ob == Py_None || PyCallable_Check(ob))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s must be callable or None, not %.100s",
                 what, Py_TYPE(ob)->tp_name);
    return -1;
}

int caio_parse_future_factory(PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames, PyObject **factory,
                              PyObject **call_soon)
{
    static const char *const names[] = {"factory", "call_soon"};
    PyObject *ob[2];

    if (caio_parse_args("set_future_factory", names, 2, 1, args, nargs, kwnames, ob) < 0)
        return -1;
    if (!PyCallable_Check(ob[0])) {
        PyErr_Format(PyExc_TypeError, "future factory must be callable, not %.100s",
                     Py_TYPE(ob[0])->tp_name);
        return -1;
    }
    if (ob[1] == Py_None)
        ob[1] = NULL;   /* as when it is not given */
    if (ob[1] != NULL && caio_check_callable_or_none(ob[1], "call_soon") < 0)
        return -1;
    if (caio_futures_init() < 0)
        return -1;
    *factory = Py_NewRef(ob[0]);
    *call_soon = Py_XNewRef(ob[1]);
    return 0;
}

int caio_check_operations(PyObject *const *args, Py_ssize_t nargs)
{
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (!PyObject_TypeCheck(args[i], &CaioOperation_Type)) {
            PyErr_Format(PyExc_TypeError, "expected %s, got %.100s",
                         CaioOperation_Type.tp_name, Py_TYPE(args[i])->tp_name);
            return -1;
        }
    }
    return 0;
}

int caio_check_owned(caio_context *ctx, PyObject *const *args, Py_ssize_t nargs)
{
    if (caio_check_operations(args, nargs) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        /* The weak reference identifies the context: an Operation holds it,
         * so no other context can have it while the Operation lives. */
        PyObject *owner = ((CaioOperation *)args[i])->context;
        if (owner == NULL || owner != ctx->selfref) {
            PyErr_Format(PyExc_ValueError, "%R was not submitted to this context", args[i]);
            return -1;
        }
    }
    return 0;
}

PyObject *caio_context_selfref(caio_context *ctx)
{
    if (ctx->selfref == NULL)
        ctx->selfref = PyWeakref_NewRef((PyObject *)ctx, NULL);
    return ctx->selfref;
}

/* ---- process_events(max_requests, min_requests, timeout) and poll() ---------- */

static int events_count(PyObject *ob, const char *name, Py_ssize_t *out)
{
    if (ob == NULL) {
        *out = 0;
        return 0;
    }
    if (!PyLong_Check(ob)) {
        PyErr_Format(PyExc_TypeError, "%s must be int, not %.100s", name,
                     Py_TYPE(ob)->tp_name);
        return -1;
    }
    *out = PyLong_AsSsize_t(ob);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    if (*out < 0) {
        PyErr_Format(PyExc_ValueError, "%s must not be negative", name);
        return -1;
    }
    return 0;
}

static int fileno_of(PyObject *self, caio_fileno_fn fileno)
{
    PyObject *ob = fileno(self, NULL);
    long fd;

    if (ob == NULL)
        return -1;
    fd = PyLong_AsLong(ob);
    Py_DECREF(ob);
    return (int)fd;
}

PyObject *caio_process_events_kw(PyObject *self, caio_events_fn events,
                                 caio_fileno_fn fileno, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"max_requests", "min_requests", "timeout"};
    PyObject *ob[3];
    Py_ssize_t max_requests, min_requests, total = 0;
    double timeout = 0, deadline = 0;

    if (caio_parse_args("process_events", names, 3, 0, args, nargs, kwnames, ob) < 0)
        return NULL;
    if (events_count(ob[0], names[0], &max_requests) < 0 ||
        events_count(ob[1], names[1], &min_requests) < 0)
        return NULL;
    (void)max_requests;
    if (ob[2] != NULL) {
        timeout = PyFloat_AsDouble(ob[2]);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
    }
    if (timeout > 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        deadline = now.tv_sec + now.tv_nsec / 1e9 + timeout;
    }
    for (;;) {
        PyObject *r = events(self, NULL);
        struct pollfd pfd;
        int ms = -1, n, fd;

        if (r == NULL)
            return NULL;
        total += PyLong_AsSsize_t(r);
        Py_DECREF(r);
        if (total >= min_requests || timeout == 0)
            break;
        if (timeout > 0) {
            struct timespec now;
            double left;
            clock_gettime(CLOCK_MONOTONIC, &now);
            left = deadline - (now.tv_sec + now.tv_nsec / 1e9);
            if (left <= 0)
                break;
            ms = (int)(left * 1000) + 1;
        }
        if ((fd = fileno_of(self, fileno)) < 0)
            return NULL;
        pfd.fd = fd;
        pfd.events = POLLIN;
        Py_BEGIN_ALLOW_THREADS
        n = poll(&pfd, 1, ms);
        Py_END_ALLOW_THREADS
        if (n < 0 && errno != EINTR)
            return PyErr_SetFromErrno(PyExc_OSError);
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
    return PyLong_FromSsize_t(total);
}

PyObject *caio_poll_fd(PyObject *self, caio_fileno_fn fileno)
{
    uint64_t count = 0;
    ssize_t n;
    int fd = fileno_of(self, fileno);

    if (fd < 0)
        return NULL;
#ifdef __linux__
    /* An eventfd: one read of 8 bytes takes its whole counter. */
    n = read(fd, &count, sizeof(count));
#else
    {
        char buf[256];
        n = read(fd, buf, sizeof(buf));
        count = (uint64_t)n;
    }
#endif
    if (n <= 0) {
        if (n == 0 || errno == EAGAIN)
            PyErr_SetString(PyExc_BlockingIOError, "no completion was signalled");
        else
            PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(count);
}

int caio_batch_schedule(caio_batch *b, PyObject *ctx, PyObject *call_soon)
{
    PyObject *r, *cb;

    if (b->flush_scheduled)
        return 0;
    /* A fresh bound method each time (once per loop iteration at most):
     * caching it would make the context a reference cycle. */
    if ((cb = PyObject_GetAttrString(ctx, "_flush")) == NULL)
        return -1;
    r = PyObject_CallOneArg(call_soon, cb);
    Py_DECREF(cb);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    b->flush_scheduled = 1;
    return 0;
}

ssize_t caio_lone_write(caio_lone *lone, caio_req *req, int *nogil)
{
    struct timespec t0, t1;
    long long took;
    ssize_t n;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    n = caio_req_write_here(req, nogil);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (n != -ESPIPE) {
        took = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
        caio_lone_note(lone, took <= CAIO_LONE_WAIT_NS);
    }
    return n;
}

int caio_loop_idle(PyObject *check, PyObject *owner)
{
    PyObject *r;
    int idle;

    Py_INCREF(check);   /* the call may drop the owner's reference */
    r = PyObject_CallNoArgs(check);
    Py_DECREF(check);
    if (r == NULL) {
        PyErr_WriteUnraisable(owner);
        return 0;
    }
    idle = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (idle < 0) {
        PyErr_WriteUnraisable(owner);
        return 0;
    }
    return idle;
}
