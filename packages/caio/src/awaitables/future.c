/* caio._awaitables' futures: what a backend resolves when an operation
 * finishes after its *_async call, for the asyncio adapter on asyncio's
 * own loops.
 *
 * An asyncio.Future wakes its task through the loop's Python call_soon:
 * per completion, call_soon, _check_closed, _call_soon, a Handle and its
 * __init__, then the loop running Handle._run; at 64 operations in flight
 * that is most of the interpreter's work per operation besides the task's
 * own step. A Future here keeps the protocol a Task awaits through
 * (_asyncio_future_blocking, get_loop, add_done_callback, result, cancel)
 * and leaves out that per-completion path: a finished Future goes into
 * its FutureFactory's queue, and the first one queued schedules, with one
 * call_soon, a run of every queued Future's callbacks. A burst of
 * completions reaped by one process_events() costs one Handle, not one
 * each. The callbacks run in the next loop iteration (or, for what the
 * loop's reader reaped, as the Reaper below returns), in completion
 * order, each in its own context (as asyncio runs them), and a failing
 * callback goes to the loop's exception handler (as Handle._run does).
 *
 * Only the adapter and the Task awaiting an operation ever see these
 * objects: ctx.read() and friends return their result, not the future. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <string.h>

#include "awaitable.h"
#include "future.h"

enum { PENDING, FINISHED, CANCELLED };

typedef struct Future Future;

typedef struct {
    PyObject_HEAD
    PyObject *loop;
    PyObject *call_soon;      /* loop.call_soon */
    PyObject *run;            /* this factory's run(), what call_soon runs */
    Future *head, *tail;      /* finished futures whose callbacks are due */
    Future *rest;             /* those run() has still to run (its own list) */
    int scheduled;            /* run() is scheduled (head, not reaping) */
    int reaping;              /* a Reaper's process_events() runs */
    PyObject *resolved;       /* an asyncio Future of loop, done with None (or NULL) */
    PyObject *get_loop;       /* the futures' get_loop: loop's own method returning it */
    unsigned long long direct_wakeups;   /* Tasks woken through resolved */
} Factory;

struct Future {
    PyObject_HEAD
    vectorcallfunc vectorcall;   /* calling the future adds a done callback */
    Factory *factory;
    PyObject *value;          /* result, exception, or cancel message */
    PyObject *callback;       /* the first callback (the usual only one) */
    PyObject *context;        /* and its context */
    PyObject *more;           /* further (callback, context) tuples, or NULL */
    Future *next;             /* in the factory's queue (a reference) */
    unsigned char state;
    unsigned char failed;     /* value is the exception it finished with */
    unsigned char blocking;   /* _asyncio_future_blocking */
    unsigned char queued;
};

static PyObject *cancelled_error, *invalid_state_error;

/* -------------------------------------------------------------- the queue */

static void drop_queue(Factory *q);

/* Put f (finished, with callbacks) in its factory's queue; the first one
 * queued schedules run(). */
static int enqueue(Future *f)
{
    Factory *q = f->factory;
    if (f->queued)
        return 0;
    f->queued = 1;
    f->next = NULL;
    Py_INCREF(f);
    if (q->tail != NULL)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
    if (q->scheduled || q->reaping)
        return 0;   /* the Reaper runs the queue when process_events returns */
    /* Not scheduled: the queue held nothing before f. (No run: the
     * collector cleared the factory, whose loop is unreachable.) */
    PyObject *handle = q->run == NULL
        ? (PyErr_SetString(PyExc_RuntimeError, "the event loop is gone"), NULL)
        : PyObject_CallOneArg(q->call_soon, q->run);
    if (handle == NULL) {
        /* The loop is closed: nobody will run anything. */
        q->head = q->tail = NULL;
        f->queued = 0;
        Py_DECREF(f);
        return -1;
    }
    Py_DECREF(handle);
    q->scheduled = 1;
    return 0;
}

/* The first callback still due on f, taken out (references passed to
 * the caller); 0 when none is left. */
static int take_callback(Future *f, PyObject **callback, PyObject **context)
{
    if (f->callback != NULL) {
        *callback = f->callback;
        *context = f->context;
        f->callback = f->context = NULL;
        return 1;
    }
    if (f->more == NULL || PyList_GET_SIZE(f->more) == 0)
        return 0;
    PyObject *pair = PyList_GET_ITEM(f->more, 0);
    *callback = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
    *context = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
    if (PySequence_DelItem(f->more, 0) < 0) {
        PyErr_Clear();   /* a list's first item always goes */
    }
    return 1;
}

/* An exception from a callback, for the loop's exception handler (what
 * Handle._run does with it). */
static void report(Factory *q, Future *f, PyObject *callback)
{
    PyObject *exc = caio_fetch_exception();
    PyObject *message = PyUnicode_FromFormat("Exception in callback %R", callback);
    PyObject *info = message == NULL ? NULL : Py_BuildValue(
        "{sOsOsO}", "message", message, "exception", exc ? exc : Py_None, "future", (PyObject *)f);
    PyObject *r = info == NULL ? NULL
        : PyObject_CallMethod(q->loop, "call_exception_handler", "O", info);
    if (r == NULL)
        PyErr_WriteUnraisable(callback);
    Py_XDECREF(r);
    Py_XDECREF(info);
    Py_XDECREF(message);
    Py_XDECREF(exc);
}

/* A Task's wake-up, without its generic result() call.
 *
 * A Task woken by a future that is not asyncio's own asks it for its
 * result with PyObject_CallMethod(fut, "result", NULL): a new "result"
 * string, its hash, a type lookup that the method cache cannot serve (it
 * keys on the string object) and a bound method, ~1 400 instructions,
 * about a sixth of a suspended operation's. It only checks that result()
 * does not raise, then steps the coroutine with None, which takes the
 * value from this Future itself (the await of it, or the OperationCall
 * around it). An asyncio Future that is done with None gives the Task the
 * same answer through its fast path, so a Task's wake-up gets the
 * factory's `resolved` future instead of a Future that finished with a
 * value. A Future that failed or was cancelled still goes itself: the
 * Task throws its exception in. Recognised: a builtin method named
 * task_wakeup bound to an _asyncio.Task (its PyMethodDef, once seen, by
 * address). Anything else is called with the Future, as before. */
static PyTypeObject *task_type;         /* _asyncio.Task, or NULL */
static PyObject *plain_future_type;     /* _asyncio.Future, or NULL */
static PyMethodDef *wakeup_def;         /* the Task's wake-up method */

static int is_task_wakeup(PyObject *callback)
{
    if (!PyCFunction_CheckExact(callback))
        return 0;
    PyMethodDef *def = ((PyCFunctionObject *)callback)->m_ml;
    if (def == wakeup_def)
        return 1;
    if (wakeup_def != NULL || task_type == NULL)
        return 0;
    PyObject *self = PyCFunction_GET_SELF(callback);
    if (self == NULL || !PyObject_TypeCheck(self, task_type) ||
        (def->ml_flags & (METH_O | METH_NOARGS | METH_VARARGS | METH_FASTCALL)) != METH_O ||
        strcmp(def->ml_name, "task_wakeup") != 0)
        return 0;
    wakeup_def = def;
    return 1;
}

/* What callback is called with: f, or for a Task's wake-up on a value,
 * the factory's resolved future. */
static PyObject *wakeup_argument(Future *f, PyObject *callback)
{
    Factory *q = f->factory;
    if (f->state != FINISHED || f->failed || q->resolved == NULL || !is_task_wakeup(callback))
        return (PyObject *)f;
    q->direct_wakeups++;
    return q->resolved;
}

/* Run f's due callbacks: 0, or -1 with SystemExit or KeyboardInterrupt
 * raised (the callbacks not run yet stay on f). */
static int run_callbacks(Future *f)
{
    PyObject *callback, *context;
    while (take_callback(f, &callback, &context)) {
        PyObject *r = NULL;
        if (PyContext_Enter(context) == 0) {
            r = PyObject_CallOneArg(callback, wakeup_argument(f, callback));
            caio_saved_error saved = caio_error_save();
            if (PyContext_Exit(context) < 0)
                PyErr_WriteUnraisable(context);
            caio_error_restore(saved);
        }
        Py_DECREF(context);
        if (r == NULL) {
            if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
                PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
                Py_DECREF(callback);
                return -1;
            }
            report(f->factory, f, callback);
        }
        Py_XDECREF(r);
        Py_DECREF(callback);
    }
    return 0;
}

/* Put chain (futures linked by next, references held; or NULL) back at
 * the front of q's queue and schedule run() for what is queued: for a run
 * cut short, or a reap that failed. */
static void requeue_front(Factory *q, Future *chain)
{
    if (chain != NULL) {
        Future *last = chain;
        while (last->next != NULL)
            last = last->next;
        last->next = q->head;
        if (q->head == NULL)
            q->tail = last;
        q->head = chain;
    }
    if (q->scheduled || q->head == NULL)
        return;
    caio_saved_error saved = caio_error_save();
    PyObject *handle = q->run == NULL ? NULL : PyObject_CallOneArg(q->call_soon, q->run);
    if (handle != NULL) {
        Py_DECREF(handle);
        q->scheduled = 1;
    } else {
        drop_queue(q);   /* the loop is closed: nothing will run them */
    }
    PyErr_Clear();
    caio_error_restore(saved);
}

/* FutureFactory.run(): every queued future's callbacks, in the order the
 * futures finished. Futures finishing meanwhile are for the next run (the
 * next loop iteration, as asyncio's call_soon has it). */
static PyObject *Factory_run(Factory *q, PyObject *unused)
{
    Future *f = q->head;
    q->head = q->tail = NULL;
    q->scheduled = 0;
    while (f != NULL) {
        Future *next = f->next;
        f->next = NULL;
        f->queued = 0;
        q->rest = next;
        if (run_callbacks(f) < 0) {
            q->rest = NULL;
            /* SystemExit or KeyboardInterrupt goes up now; what is left
             * runs first in the next run. f goes again unless a callback
             * queued it anew meanwhile (or none is left on it). */
            if (!f->queued && (f->callback != NULL || f->more != NULL)) {
                f->queued = 1;
                f->next = next;
                next = f;
            } else {
                Py_DECREF(f);
            }
            requeue_front(q, next);
            return NULL;
        }
        Py_DECREF(f);
        f = next;
    }
    q->rest = NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------- the reaper */

/* What the loop calls when the backend's descriptor is readable:
 * process_events(), then at once the callbacks of the futures it finished,
 * instead of in the next loop iteration (one loop iteration less per
 * completion for an operation at a time; the tasks of a burst still run
 * in completion order). */
typedef struct {
    PyObject_HEAD
    Factory *factory;
    PyObject *process_events;
} Reaper;

static PyObject *Reaper_call(Reaper *self, PyObject *args, PyObject *kwargs)
{
    Factory *q = self->factory;
    q->reaping++;
    PyObject *r = PyObject_CallNoArgs(self->process_events);
    q->reaping--;
    if (q->reaping > 0 || q->head == NULL || q->scheduled)
        return r;
    if (r == NULL) {
        /* The futures it finished still wake their tasks: next iteration. */
        requeue_front(q, NULL);
        return NULL;
    }
    PyObject *ran = Factory_run(q, NULL);
    if (ran == NULL) {
        Py_DECREF(r);
        return NULL;
    }
    Py_DECREF(ran);
    return r;
}

static int Reaper_traverse(Reaper *self, visitproc visit, void *arg)
{
    Py_VISIT(self->factory);
    Py_VISIT(self->process_events);
    return 0;
}

static int Reaper_clear(Reaper *self)
{
    Py_CLEAR(self->process_events);
    return 0;
}

static void Reaper_dealloc(Reaper *self)
{
    PyObject_GC_UnTrack(self);
    Reaper_clear(self);
    Py_CLEAR(self->factory);
    PyObject_GC_Del(self);
}

static PyTypeObject Reaper_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caio._awaitables.Reaper",
    .tp_basicsize = sizeof(Reaper),
    .tp_dealloc = (destructor)Reaper_dealloc,
    .tp_call = (ternaryfunc)Reaper_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "FutureFactory.reaper(process_events)(): process_events(), then the\n"
              "callbacks of the futures it finished.",
    .tp_traverse = (traverseproc)Reaper_traverse,
    .tp_clear = (inquiry)Reaper_clear,
};

/* ------------------------------------------------------------- the future */

static PyTypeObject Future_Type;

static PyObject *Future_repr(Future *f)
{
    static const char *const states[] = {"pending", "finished", "cancelled"};
    return PyUnicode_FromFormat("<caio._awaitables.Future %s at %p>", states[f->state], f);
}

static int Future_traverse(Future *f, visitproc visit, void *arg)
{
    Py_VISIT(f->factory);
    Py_VISIT(f->value);
    Py_VISIT(f->callback);
    Py_VISIT(f->context);
    Py_VISIT(f->more);
    return 0;
}

static int Future_clear(Future *f)
{
    Py_CLEAR(f->value);
    Py_CLEAR(f->callback);
    Py_CLEAR(f->context);
    Py_CLEAR(f->more);
    return 0;
}

static void Future_dealloc(Future *f)
{
    PyObject_GC_UnTrack(f);
    Future_clear(f);
    Py_CLEAR(f->factory);
    PyObject_GC_Del(f);
}

/* Finish a pending f with value (a new reference taken) in state; failed:
 * value is the exception it finished with. */
static PyObject *finish(Future *f, PyObject *value, unsigned char state, unsigned char failed)
{
    if (f->state != PENDING) {
        Py_XDECREF(value);
        PyErr_Format(invalid_state_error, "invalid state: %R", (PyObject *)f);
        return NULL;
    }
    f->state = state;
    f->value = value;
    f->failed = failed;
    if (f->callback != NULL || f->more != NULL) {
        if (enqueue(f) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Future_set_result(Future *f, PyObject *result)
{
    return finish(f, Py_NewRef(result), FINISHED, 0);
}

static PyObject *Future_set_exception(Future *f, PyObject *exc)
{
    if (PyExceptionClass_Check(exc))
        exc = PyObject_CallNoArgs(exc);
    else
        Py_INCREF(exc);
    if (exc == NULL)
        return NULL;
    if (!PyExceptionInstance_Check(exc)) {
        PyErr_Format(PyExc_TypeError, "invalid exception object %R", exc);
        Py_DECREF(exc);
        return NULL;
    }
    if (PyErr_GivenExceptionMatches(exc, PyExc_StopIteration)) {
        PyErr_SetString(PyExc_TypeError,
                        "StopIteration interacts badly with generators "
                        "and cannot be raised into a Future");
        Py_DECREF(exc);
        return NULL;
    }
    return finish(f, exc, FINISHED, 1);
}

static PyObject *Future_cancel(Future *f, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"msg", NULL};
    PyObject *msg = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:cancel", kwlist, &msg))
        return NULL;
    if (f->state != PENDING)
        Py_RETURN_FALSE;
    PyObject *r = finish(f, Py_NewRef(msg), CANCELLED, 0);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_TRUE;
}

static int is_exception(Future *f)
{
    return f->state == FINISHED && f->failed;
}

/* Raise f's CancelledError; NULL. */
static PyObject *raise_cancelled(Future *f)
{
    PyObject *exc = f->value == Py_None ? PyObject_CallNoArgs(cancelled_error)
                                        : PyObject_CallOneArg(cancelled_error, f->value);
    if (exc != NULL) {
        PyErr_SetObject(cancelled_error, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *Future_result(Future *f, PyObject *unused)
{
    if (f->state == CANCELLED)
        return raise_cancelled(f);
    if (f->state == PENDING) {
        PyErr_SetString(invalid_state_error, "Result is not ready.");
        return NULL;
    }
    if (is_exception(f)) {
        PyErr_SetObject((PyObject *)Py_TYPE(f->value), f->value);
        return NULL;
    }
    return Py_NewRef(f->value);
}

static PyObject *Future_exception(Future *f, PyObject *unused)
{
    if (f->state == CANCELLED)
        return raise_cancelled(f);
    if (f->state == PENDING) {
        PyErr_SetString(invalid_state_error, "Exception is not set.");
        return NULL;
    }
    return Py_NewRef(is_exception(f) ? f->value : Py_None);
}

static PyObject *Future_done(Future *f, PyObject *unused)
{
    return PyBool_FromLong(f->state != PENDING);
}

static PyObject *Future_cancelled(Future *f, PyObject *unused)
{
    return PyBool_FromLong(f->state == CANCELLED);
}

/* get_loop is an attribute whose value the factory made once: a Task
 * looks it up and calls it on every wait, and a method would be a new
 * bound method object each time. */
static PyObject *Future_get_get_loop(Future *f, void *closure)
{
    return Py_NewRef(f->factory->get_loop);
}

/* add_done_callback(fn, /, *, context=None), parsed by hand: a Task calls
 * it with context= for every operation that waits. The attribute is the
 * future itself, called through this function (its vectorcall): a method
 * would be a new bound method object on every wait. */
static PyObject *Future_add_done_callback(PyObject *self, PyObject *const *args, size_t nargsf,
                                          PyObject *kwnames)
{
    Future *f = (Future *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *fn, *context = Py_None;
    if (nargs != 1 || nkw > 1 ||
        (nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "context") != 0)) {
        PyErr_SetString(PyExc_TypeError,
                        "add_done_callback() takes one positional argument and context=");
        return NULL;
    }
    fn = args[0];
    if (nkw == 1)
        context = args[1];
    if (context != Py_None && !PyContext_CheckExact(context)) {
        PyErr_Format(PyExc_TypeError, "context must be a contextvars.Context, not %.100s",
                     Py_TYPE(context)->tp_name);
        return NULL;
    }
    if (context == Py_None) {
        if ((context = PyContext_CopyCurrent()) == NULL)
            return NULL;
    } else {
        Py_INCREF(context);
    }
    if (f->callback == NULL && (f->more == NULL || PyList_GET_SIZE(f->more) == 0)) {
        f->callback = Py_NewRef(fn);
        f->context = context;
    } else {
        PyObject *pair = PyTuple_Pack(2, fn, context);
        Py_DECREF(context);
        if (pair == NULL)
            return NULL;
        if (f->more == NULL && (f->more = PyList_New(0)) == NULL) {
            Py_DECREF(pair);
            return NULL;
        }
        int rc = PyList_Append(f->more, pair);
        Py_DECREF(pair);
        if (rc < 0)
            return NULL;
    }
    if (f->state != PENDING && enqueue(f) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Future_remove_done_callback(Future *f, PyObject *fn)
{
    Py_ssize_t removed = 0;
    if (f->callback != NULL) {
        int eq = PyObject_RichCompareBool(f->callback, fn, Py_EQ);
        if (eq < 0)
            return NULL;
        if (eq) {
            Py_CLEAR(f->callback);
            Py_CLEAR(f->context);
            removed++;
        }
    }
    if (f->more != NULL) {
        Py_ssize_t i = 0;
        while (i < PyList_GET_SIZE(f->more)) {
            PyObject *pair = Py_NewRef(PyList_GET_ITEM(f->more, i));
            int eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(pair, 0), fn, Py_EQ);
            Py_DECREF(pair);
            if (eq < 0)
                return NULL;
            if (eq && i < PyList_GET_SIZE(f->more)) {
                if (PySequence_DelItem(f->more, i) < 0)
                    return NULL;
                removed++;
            } else {
                i++;
            }
        }
    }
    return PyLong_FromSsize_t(removed);
}

static PyObject *Future_get_add_done_callback(Future *f, void *closure)
{
    return Py_NewRef((PyObject *)f);
}

static PyObject *Future_get_blocking(Future *f, void *closure)
{
    return PyBool_FromLong(f->blocking);
}

static int Future_set_blocking(Future *f, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _asyncio_future_blocking");
        return -1;
    }
    int truth = PyObject_IsTrue(value);
    if (truth < 0)
        return -1;
    f->blocking = (unsigned char)truth;
    return 0;
}

/* Awaiting: the future is its own iterator (it holds no iteration state:
 * pending -> yields itself for the task to wait on; done -> the result).
 * No send/throw/close methods: asyncio would take it for a coroutine; an
 * exception thrown into an await of it is raised at the await, as for
 * any iterator without throw(). */
static PySendResult Future_am_send(Future *f, PyObject *arg, PyObject **result)
{
    if (f->state == PENDING) {
        f->blocking = 1;
        *result = Py_NewRef(f);
        return PYGEN_NEXT;
    }
    *result = Future_result(f, NULL);
    return *result != NULL ? PYGEN_RETURN : PYGEN_ERROR;
}

static PyObject *Future_iternext(Future *f)
{
    PyObject *result;
    PySendResult status = Future_am_send(f, Py_None, &result);
    return caio_send_result(NULL, status, result);
}

static PyGetSetDef Future_getset[] = {
    {"_asyncio_future_blocking", (getter)Future_get_blocking, (setter)Future_set_blocking,
     "What a Task reads and clears when the future is yielded to it.", NULL},
    {"add_done_callback", (getter)Future_get_add_done_callback, NULL,
     "add_done_callback(fn, /, *, context=None): call fn(future) in a later loop\n"
     "iteration once done (in context). The value is the future itself: calling a\n"
     "Future adds a done callback.", NULL},
    {"get_loop", (getter)Future_get_get_loop, NULL,
     "get_loop() returns the event loop (one callable for all of a factory's futures).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyAsyncMethods Future_as_async = {
    .am_await = caio_return_self,
    .am_send = (sendfunc)Future_am_send,
};

static PyMethodDef Future_methods[] = {
    {"set_result", (PyCFunction)Future_set_result, METH_O,
     "set_result($self, result, /)\n--\n\nFinish with result (InvalidStateError if done)."},
    {"set_exception", (PyCFunction)Future_set_exception, METH_O,
     "set_exception($self, exception, /)\n--\n\nFinish with exception (InvalidStateError if done)."},
    {"cancel", (PyCFunction)(void (*)(void))Future_cancel, METH_VARARGS | METH_KEYWORDS,
     "cancel($self, msg=None)\n--\n\nCancel if pending; whether it was."},
    {"result", (PyCFunction)Future_result, METH_NOARGS,
     "result($self, /)\n--\n\nThe result; raises the exception, CancelledError or InvalidStateError."},
    {"exception", (PyCFunction)Future_exception, METH_NOARGS,
     "exception($self, /)\n--\n\nThe exception or None; CancelledError or InvalidStateError."},
    {"done", (PyCFunction)Future_done, METH_NOARGS,
     "done($self, /)\n--\n\nWhether it finished or was cancelled."},
    {"cancelled", (PyCFunction)Future_cancelled, METH_NOARGS,
     "cancelled($self, /)\n--\n\nWhether it was cancelled."},
    {"remove_done_callback", (PyCFunction)Future_remove_done_callback, METH_O,
     "remove_done_callback($self, fn, /)\n--\n\nRemove fn's pending calls; how many."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Future_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caio._awaitables.Future",
    .tp_basicsize = sizeof(Future),
    .tp_dealloc = (destructor)Future_dealloc,
    .tp_repr = (reprfunc)Future_repr,
    .tp_as_async = &Future_as_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Future, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_doc = "An operation's future on an asyncio loop: made by a FutureFactory.",
    .tp_traverse = (traverseproc)Future_traverse,
    .tp_clear = (inquiry)Future_clear,
    .tp_iter = caio_return_self,
    .tp_iternext = (iternextfunc)Future_iternext,
    .tp_methods = Future_methods,
    .tp_getset = Future_getset,
};

/* ------------------------------------------------------------ the factory */

static PyObject *Factory_reaper(Factory *q, PyObject *process_events)
{
    if (!PyCallable_Check(process_events)) {
        PyErr_SetString(PyExc_TypeError, "process_events must be callable");
        return NULL;
    }
    Reaper *self = PyObject_GC_New(Reaper, &Reaper_Type);
    if (self == NULL)
        return NULL;
    self->factory = (Factory *)Py_NewRef((PyObject *)q);
    self->process_events = Py_NewRef(process_events);
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyMethodDef Factory_methods[] = {
    {"reaper", (PyCFunction)Factory_reaper, METH_O,
     "reaper($self, process_events, /)\n--\n\n"
     "What the loop calls when the backend's descriptor is readable:\n"
     "process_events(), then at once the callbacks of the futures it finished."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef run_def = {
    "run", (PyCFunction)Factory_run, METH_NOARGS,
    "run($self, /)\n--\n\nRun the callbacks of the futures finished since the last run.",
};

static PyObject *return_self(PyObject *self, PyObject *unused)
{
    return Py_NewRef(self);
}

static PyMethodDef get_loop_def = {
    "get_loop", return_self, METH_NOARGS,
    "get_loop($self, /)\n--\n\nThe event loop.",
};

/* An _asyncio.Future of loop, done with None; NULL (no error) when there
 * is none to make: the Tasks are then woken with the Futures themselves. */
static PyObject *make_resolved(PyObject *loop)
{
    if (plain_future_type == NULL)
        return NULL;
    PyObject *kwargs = Py_BuildValue("{sO}", "loop", loop);
    PyObject *empty = PyTuple_New(0);
    PyObject *fut = kwargs == NULL || empty == NULL ? NULL
        : PyObject_Call(plain_future_type, empty, kwargs);
    Py_XDECREF(kwargs);
    Py_XDECREF(empty);
    PyObject *r = fut == NULL ? NULL : PyObject_CallMethod(fut, "set_result", "O", Py_None);
    if (r == NULL) {
        /* Not a loop asyncio's Future accepts (a stand-in in a test). */
        PyErr_Clear();
        Py_XDECREF(fut);
        return NULL;
    }
    Py_DECREF(r);
    return fut;
}

static PyObject *Factory_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *loop;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "FutureFactory() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:FutureFactory", &loop))
        return NULL;
    PyObject *call_soon = PyObject_GetAttrString(loop, "call_soon");
    if (call_soon == NULL)
        return NULL;
    Factory *q = (Factory *)type->tp_alloc(type, 0);
    if (q == NULL) {
        Py_DECREF(call_soon);
        return NULL;
    }
    q->loop = Py_NewRef(loop);
    q->call_soon = call_soon;
    if ((q->run = PyCFunction_New(&run_def, (PyObject *)q)) == NULL) {
        Py_DECREF(q);
        return NULL;
    }
    if ((q->get_loop = PyCFunction_New(&get_loop_def, loop)) == NULL) {
        Py_DECREF(q);
        return NULL;
    }
    q->resolved = make_resolved(loop);
    return (PyObject *)q;
}

/* factory(): a new pending future. */
static PyObject *Factory_call(Factory *q, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || (kwargs != NULL && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "FutureFactory() takes no arguments");
        return NULL;
    }
    Future *f = PyObject_GC_New(Future, &Future_Type);
    if (f == NULL)
        return NULL;
    f->vectorcall = Future_add_done_callback;
    f->factory = (Factory *)Py_NewRef((PyObject *)q);
    f->value = f->callback = f->context = f->more = NULL;
    f->next = NULL;
    f->state = PENDING;
    f->failed = f->blocking = f->queued = 0;
    PyObject_GC_Track(f);
    return (PyObject *)f;
}

/* Drop the queue (references it holds). */
static void drop_queue(Factory *q)
{
    Future *f = q->head;
    q->head = q->tail = NULL;
    while (f != NULL) {
        Future *next = f->next;
        f->next = NULL;
        f->queued = 0;
        Py_DECREF(f);
        f = next;
    }
}

static int Factory_traverse(Factory *q, visitproc visit, void *arg)
{
    Py_VISIT(q->loop);
    Py_VISIT(q->call_soon);
    Py_VISIT(q->run);
    Py_VISIT(q->resolved);
    Py_VISIT(q->get_loop);
    for (Future *f = q->head; f != NULL; f = f->next)
        Py_VISIT((PyObject *)f);
    return 0;
}

/* Breaks the factory's cycles (run is bound to it; queued futures lead
 * to tasks that may lead back); loop, call_soon and get_loop stay until
 * dealloc, for the futures that still ask for them. */
static int Factory_clear(Factory *q)
{
    drop_queue(q);
    Py_CLEAR(q->run);
    Py_CLEAR(q->resolved);   /* the wake-ups then take the slow way */
    return 0;
}

static void Factory_dealloc(Factory *q)
{
    PyObject_GC_UnTrack(q);
    Factory_clear(q);
    Py_CLEAR(q->loop);
    Py_CLEAR(q->call_soon);
    Py_CLEAR(q->get_loop);
    Py_TYPE(q)->tp_free((PyObject *)q);
}

static PyObject *Factory_get_loop(Factory *q, void *closure)
{
    return Py_NewRef(q->loop);
}

/* Whether some finished future's callbacks have yet to run: tasks woken
 * that the loop's ready queue does not show. */
static PyObject *Factory_get_pending(Factory *q, void *closure)
{
    return PyBool_FromLong(q->head != NULL || q->rest != NULL);
}

static PyObject *Factory_get_direct_wakeups(Factory *q, void *closure)
{
    return PyLong_FromUnsignedLongLong(q->direct_wakeups);
}

static PyGetSetDef Factory_getset[] = {
    {"loop", (getter)Factory_get_loop, NULL, "The loop the futures belong to.", NULL},
    {"direct_wakeups", (getter)Factory_get_direct_wakeups, NULL,
     "How many Tasks were woken through asyncio's fast path (a count).", NULL},
    {"pending", (getter)Factory_get_pending, NULL,
     "True while some finished future's callbacks have yet to run.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject Factory_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caio._awaitables.FutureFactory",
    .tp_basicsize = sizeof(Factory),
    .tp_dealloc = (destructor)Factory_dealloc,
    .tp_call = (ternaryfunc)Factory_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "FutureFactory(loop): call it for a new Future of loop's; finished\n"
              "futures wake their awaiters in batches, one call_soon per batch.",
    .tp_traverse = (traverseproc)Factory_traverse,
    .tp_clear = (inquiry)Factory_clear,
    .tp_getset = Factory_getset,
    .tp_methods = Factory_methods,
    .tp_new = Factory_new,
};

int caio_future_types_init(PyObject *module, PyObject *cancelled, PyObject *invalid_state)
{
    cancelled_error = cancelled;
    invalid_state_error = invalid_state;
    if (plain_future_type == NULL) {
        /* asyncio's C Task and Future; without them (a Python without
         * _asyncio) Tasks are woken the generic way. */
        PyObject *c_asyncio = PyImport_ImportModule("_asyncio");
        PyObject *task = c_asyncio == NULL ? NULL : PyObject_GetAttrString(c_asyncio, "Task");
        PyObject *future = task == NULL ? NULL : PyObject_GetAttrString(c_asyncio, "Future");
        Py_XDECREF(c_asyncio);
        if (future != NULL && PyType_Check(task) && PyType_Check(future)) {
            task_type = (PyTypeObject *)task;
            plain_future_type = future;
        } else {
            PyErr_Clear();
            Py_XDECREF(task);
            Py_XDECREF(future);
        }
    }
    if (PyType_Ready(&Future_Type) < 0 || PyType_Ready(&Factory_Type) < 0 ||
        PyType_Ready(&Reaper_Type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Future", (PyObject *)&Future_Type) < 0 ||
        PyModule_AddObjectRef(module, "FutureFactory", (PyObject *)&Factory_Type) < 0 ||
        PyModule_AddObjectRef(module, "Reaper", (PyObject *)&Reaper_Type) < 0)
        return -1;
    return 0;
}
