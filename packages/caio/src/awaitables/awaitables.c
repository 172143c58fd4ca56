/* caio._awaitables: the adapter's read/write without a coroutine when the
 * kernel finishes during the call.
 *
 * `await ctx.read(n, fd, off)` on a page-cache hit is one backend call that
 * returns the bytes at once; as an `async def` it also makes, runs and frees
 * a coroutine and its frame: a fifth of the user-space instructions of the
 * whole read. Here the adapter class's `read` is an OperationMethod (a
 * method descriptor) whose call makes an OperationCall: a small object
 * holding the arguments. Awaiting it does, on its first step, what the
 * coroutine's body did up to its first real wait:
 *
 *   - the loop check: the context's OperationState (its `_fast` slot, set
 *     when it binds to a loop) is missing, or the bound loop neither runs
 *     in this thread (runs_here) nor has its _thread_id set (it does not run:
 *     the call comes from another loop) -> the
 *     whole operation is the adapter's coroutine (`slow`), awaited through
 *     this object;
 *   - r = the backend's *_async method (from the state) called with the
 *     arguments;
 *   - r of the finished type (bytes for read, int for the rest) -> the
 *     await returns r: no coroutine, no future, no suspension;
 *   - r a future -> awaits it here: filed in the context's _inflight,
 *     cancelled in the kernel when the await is cancelled, and on OSError
 *     on to `bounced` (the O_DIRECT retry), as the adapter's _pending
 *     coroutine does; a state without _inflight (Trio's futures) awaits
 *     ctx._pending(r, bounced, *args) instead;
 *   - an OSError or RuntimeError from the call -> awaits
 *     failed(ctx, exc, bounced, *args) (the retry, or the loop check's
 *     error naming both loops); anything else is raised as it is.
 *
 * The call does nothing but keep the arguments, as calling a coroutine
 * function does: an operation never awaited never runs. Keyword arguments
 * or an unusual argument count go to `slow` at once (its own TypeError).
 * Python registers OperationCall as a collections.abc.Coroutine, so
 * asyncio.create_task, ensure_future, gather and trio accept it.
 *
 * ChunkIterator (at the end) makes the same first step once per chunk for
 * aiofile's binary iter_chunked(). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "awaitable.h"
#include "future.h"

#define MAX_ARGS 4   /* (data, fd, offset, priority) */

#define N_SUBMIT 5    /* read, write, readinto, readv, writev */

static PyObject *str_thread_id, *str_pending;

/* Where a context keeps its OperationState: the `_fast` slot of the
 * adapter's base class (set_state_slot), read at its offset. */
static PyTypeObject *slot_type;
static Py_ssize_t slot_offset = -1;

/* ------------------------------------------------------------- the state */

/* A METH_FASTCALL | METH_KEYWORDS function (public as
 * PyCFunctionFastWithKeywords from 3.13 only). */
typedef PyObject *(*fastcall_kw)(PyObject *, PyObject *const *, Py_ssize_t, PyObject *);

/* What one bound context's operations need: the bound loop (its
 * _thread_id is None while it does not run; NULL: always running, as in a
 * Trio run), its in-flight bookkeeping and the backend's methods. */
typedef struct {
    PyObject_HEAD
    PyObject *owner;
    PyObject *inflight;        /* ctx._inflight, or NULL: ctx._pending waits */
    PyObject *cancel_future;   /* the backend's cancel_future */
    PyObject *submit[N_SUBMIT];
    /* submit[i]'s C function, where it is a builtin method taking fastcall
     * arguments (the C backends' *_async): called directly with the
     * method's self, without the method object's vectorcall (its argument
     * and recursion checks: ~40 instructions, 2-3 % of a page-cache read).
     * NULL: called through submit[i]. */
    fastcall_kw direct[N_SUBMIT];
} OpState;

/* Call submit[which] (the context's *_async method) with the arguments. */
static inline PyObject *submit_call(OpState *state, Py_ssize_t which, PyObject *const *args,
                                    Py_ssize_t nargs)
{
    if (state->direct[which] != NULL)
        return state->direct[which](PyCFunction_GET_SELF(state->submit[which]), args, nargs,
                                    NULL);
    return PyObject_Vectorcall(state->submit[which], args, (size_t)nargs, NULL);
}

static PyObject *OpState_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *owner, *inflight, *cancel_future, *submit[N_SUBMIT];
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "OperationState() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "OperationState", N_SUBMIT + 3, N_SUBMIT + 3, &owner,
                           &inflight, &cancel_future, &submit[0], &submit[1], &submit[2],
                           &submit[3], &submit[4]))
        return NULL;
    if (inflight != Py_None && !PyDict_Check(inflight)) {
        PyErr_SetString(PyExc_TypeError, "inflight must be a dict or None");
        return NULL;
    }
    OpState *self = (OpState *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->owner = owner == Py_None ? NULL : Py_NewRef(owner);
    self->inflight = inflight == Py_None ? NULL : Py_NewRef(inflight);
    self->cancel_future = Py_NewRef(cancel_future);
    for (int i = 0; i < N_SUBMIT; i++) {
        PyObject *m = submit[i];
        self->submit[i] = Py_NewRef(m);
        self->direct[i] = NULL;
        if (PyCFunction_CheckExact(m) && PyCFunction_GET_SELF(m) != NULL &&
            PyCFunction_GET_FLAGS(m) == (METH_FASTCALL | METH_KEYWORDS))
            self->direct[i] = (fastcall_kw)(void (*)(void))PyCFunction_GET_FUNCTION(m);
    }
    return (PyObject *)self;
}

static int OpState_traverse(OpState *self, visitproc visit, void *arg)
{
    Py_VISIT(self->owner);
    Py_VISIT(self->inflight);
    Py_VISIT(self->cancel_future);
    for (int i = 0; i < N_SUBMIT; i++)
        Py_VISIT(self->submit[i]);
    return 0;
}

static int OpState_clear(OpState *self)
{
    Py_CLEAR(self->owner);
    Py_CLEAR(self->inflight);
    Py_CLEAR(self->cancel_future);
    for (int i = 0; i < N_SUBMIT; i++) {
        self->direct[i] = NULL;
        Py_CLEAR(self->submit[i]);
    }
    return 0;
}

static void OpState_dealloc(OpState *self)
{
    PyObject_GC_UnTrack(self);
    OpState_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject OpState_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caio._awaitables.OperationState",
    .tp_basicsize = sizeof(OpState),
    .tp_dealloc = (destructor)OpState_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "OperationState(owner, inflight, cancel_future, read_async, write_async, "
              "readinto_async, readv_async, writev_async, /)\n--\n\n"
              "What a bound context's OperationMethods call: kept in its _fast slot.\n"
              "owner: the bound loop (None: always running); inflight:\n"
              "the context's _inflight, where a pending future is filed while awaited\n"
              "here (None: the adapter's pending coroutine awaits it).",
    .tp_traverse = (traverseproc)OpState_traverse,
    .tp_clear = (inquiry)OpState_clear,
    .tp_new = OpState_new,
};

static PyObject *set_state_slot(PyObject *module, PyObject *descr)
{
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyErr_SetString(PyExc_TypeError, "expected a __slots__ member descriptor");
        return NULL;
    }
    PyMemberDescrObject *member = (PyMemberDescrObject *)descr;
    if (member->d_member->type != Py_T_OBJECT_EX) {
        PyErr_SetString(PyExc_TypeError, "expected an object slot");
        return NULL;
    }
    Py_XSETREF(slot_type, (PyTypeObject *)Py_NewRef((PyObject *)PyDescr_TYPE(member)));
    slot_offset = member->d_member->offset;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------ the method */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *slow;       /* async def (ctx, *args): the whole operation */
    Py_ssize_t which;     /* its *_async method: an index into OpState.submit */
    PyObject *failed;     /* async def (ctx, exc, bounced, *args) */
    PyObject *bounced;    /* passed on to _pending and failed */
    PyTypeObject *done;   /* what *_async returns for a finished operation */
    Py_ssize_t min_args;  /* positional arguments after ctx: min_args..MAX_ARGS */
    PyObject *dict;       /* __doc__, __name__, __wrapped__, ... */
} OpMethod;

typedef struct {
    PyObject_HEAD
    OpMethod *method;
    PyObject *waiting;    /* the coroutine (or future iterator) this call awaits, or NULL */
    OpState *state;       /* while awaiting a backend future itself: */
    PyObject *future;     /* that future, filed in state->inflight */
    char started;         /* the first step ran: never again */
    Py_ssize_t nargs;     /* ctx and the arguments in args */
    PyObject *args[MAX_ARGS + 1];
} OpCall;

static PyTypeObject OpMethod_Type, OpCall_Type;

/* Calls freed and kept for the next ones: one operation after another
 * reuses the same memory, and a call that never waits costs no
 * allocation. */
#define MAX_SPARE 16
static OpCall *spare[MAX_SPARE];
static int n_spare;

/* A call of method with args (ctx first; 1..MAX_ARGS + 1 of them), not
 * started. */
static OpCall *new_call(OpMethod *method, PyObject *const *args, Py_ssize_t nargs)
{
    OpCall *call;
    if (n_spare > 0) {
        call = spare[--n_spare];
        Py_SET_REFCNT(call, 1);
    } else if ((call = PyObject_GC_New(OpCall, &OpCall_Type)) == NULL) {
        return NULL;
    }
    call->method = (OpMethod *)Py_NewRef((PyObject *)method);
    call->waiting = NULL;
    call->state = NULL;
    call->future = NULL;
    call->started = 0;
    call->nargs = nargs;
    for (Py_ssize_t i = 0; i < nargs; i++)
        call->args[i] = Py_NewRef(args[i]);
    /* Not tracked by the collector yet: a call that finishes during its
     * first step holds nothing that can lead back to it. It is tracked
     * when it starts to wait (see awaiting()). */
    return call;
}

static PyObject *OpMethod_vectorcall(OpMethod *self, PyObject *const *args, size_t nargsf,
                                     PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames)) || nargs < self->min_args + 1 ||
        nargs > MAX_ARGS + 1)
        return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
    return (PyObject *)new_call(self, args, nargs);
}

static PyObject *OpMethod_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"slow", "which", "failed", "bounced", "done", "min_args", NULL};
    PyObject *slow, *failed, *bounced;
    PyTypeObject *done;
    Py_ssize_t which, min_args;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnOOO!n:OperationMethod", kwlist, &slow,
                                     &which, &failed, &bounced, &PyType_Type, &done,
                                     &min_args))
        return NULL;
    if (min_args < 0 || min_args > MAX_ARGS || which < 0 || which >= N_SUBMIT) {
        PyErr_Format(PyExc_ValueError, "min_args must be in 0..%d, which in 0..%d", MAX_ARGS,
                     N_SUBMIT - 1);
        return NULL;
    }
    OpMethod *self = (OpMethod *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)OpMethod_vectorcall;
    self->slow = Py_NewRef(slow);
    self->which = which;
    self->failed = Py_NewRef(failed);
    self->bounced = Py_NewRef(bounced);
    self->done = (PyTypeObject *)Py_NewRef((PyObject *)done);
    self->min_args = min_args;
    return (PyObject *)self;
}

static int OpMethod_traverse(OpMethod *self, visitproc visit, void *arg)
{
    Py_VISIT(self->slow);
    Py_VISIT(self->failed);
    Py_VISIT(self->bounced);
    Py_VISIT(self->done);
    Py_VISIT(self->dict);
    return 0;
}

static int OpMethod_clear(OpMethod *self)
{
    Py_CLEAR(self->slow);
    Py_CLEAR(self->failed);
    Py_CLEAR(self->bounced);
    Py_CLEAR(self->done);
    Py_CLEAR(self->dict);
    return 0;
}

static void OpMethod_dealloc(OpMethod *self)
{
    PyObject_GC_UnTrack(self);
    OpMethod_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *OpMethod_get(PyObject *self, PyObject *obj, PyObject *type)
{
    /* ctx.read without a call (the call itself skips this: see
     * Py_TPFLAGS_METHOD_DESCRIPTOR): a bound method, as for a function. */
    if (obj == NULL || obj == Py_None)
        return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static PyGetSetDef OpMethod_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject OpMethod_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caio._awaitables.OperationMethod",
    .tp_basicsize = sizeof(OpMethod),
    .tp_dealloc = (destructor)OpMethod_dealloc,
    .tp_vectorcall_offset = offsetof(OpMethod, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "OperationMethod(slow, which, failed, bounced, done, min_args)\n--\n\n"
              "A method of an adapter class whose call returns an awaitable Operation\n"
              "call: see the module's documentation.",
    .tp_traverse = (traverseproc)OpMethod_traverse,
    .tp_clear = (inquiry)OpMethod_clear,
    .tp_getset = OpMethod_getset,
    .tp_descr_get = OpMethod_get,
    .tp_dictoffset = offsetof(OpMethod, dict),
    .tp_new = OpMethod_new,
};

/* -------------------------------------------------------------- the call */

static PySendResult settle(OpCall *self, PySendResult status, PyObject **result);

/* From here the call waits on `waiting` (a reference stolen): now it can
 * be part of a cycle (a task, its coroutine, this call, the future, the
 * future's callback, the task), which the collector must see. */
static void awaiting(OpCall *self, PyObject *waiting)
{
    self->waiting = waiting;
    if (!PyObject_GC_IsTracked((PyObject *)self))
        PyObject_GC_Track(self);
}

/* Step the coroutine (or future iterator) this call awaits (a reference
 * is held while it runs: a throw() from inside it could otherwise free it
 * under us). */
static PySendResult forward(OpCall *self, PyObject *arg, PyObject **result)
{
    PySendResult status = caio_send_held(self->waiting, arg, result);
    if (status == PYGEN_NEXT)
        return status;
    Py_CLEAR(self->waiting);
    return self->future != NULL ? settle(self, status, result) : status;
}

/* function(ctx, first[, bounced], *args), a coroutine to await; first is
 * stolen. */
static PyObject *call_with(OpCall *self, PyObject *function, PyObject *first, int with_bounced)
{
    PyObject *stack[MAX_ARGS + 3];
    Py_ssize_t n = 0;
    stack[n++] = self->args[0];
    stack[n++] = first;
    if (with_bounced)
        stack[n++] = self->method->bounced;
    for (Py_ssize_t i = 1; i < self->nargs; i++)
        stack[n++] = self->args[i];
    PyObject *coroutine = PyObject_Vectorcall(function, stack, (size_t)n, NULL);
    Py_DECREF(first);
    return coroutine;
}

/* The context's _pending(r, bounced, *args), looked up on its class (a
 * subclass may wait its own way: Trio's does), for a future not awaited
 * here; r is stolen. */
static PyObject *call_pending(OpCall *self, PyObject *r)
{
    PyObject *pending = PyObject_GetAttr((PyObject *)Py_TYPE(self->args[0]), str_pending);
    if (pending == NULL) {
        Py_DECREF(r);
        return NULL;
    }
    PyObject *coroutine = call_with(self, pending, r, 1);
    Py_DECREF(pending);
    return coroutine;
}

static PyObject *cancelled_error;   /* asyncio.CancelledError */
static PyObject *invalid_state_error;   /* asyncio.InvalidStateError */

/* The backend future is no longer awaited here: out of inflight (what
 * wait_idle scans), any raised exception kept as it is. */
static void unfile(OpCall *self)
{
    PyObject *future = self->future;
    OpState *state = self->state;
    self->future = NULL;
    self->state = NULL;
    caio_saved_error saved = caio_error_save();
    /* No inflight: the collector cleared the state first (a cycle). */
    if (state->inflight != NULL && PyDict_DelItem(state->inflight, future) < 0)
        PyErr_Clear();   /* not there: nothing to undo */
    caio_error_restore(saved);
    Py_DECREF(future);
    Py_DECREF(state);
}

/* The backend future this call awaited is done (status from its
 * iterator): the body of the adapter's _pending after its await. */
static PySendResult settle(OpCall *self, PySendResult status, PyObject **result)
{
    if (status == PYGEN_ERROR && PyErr_ExceptionMatches(cancelled_error)) {
        /* The kernel may still write into the buffer: the backend keeps
         * it until the completion arrives. */
        PyObject *exc = caio_fetch_exception();
        PyObject *r = PyObject_CallOneArg(self->state->cancel_future, self->future);
        if (r != NULL) {
            Py_DECREF(r);
            caio_restore_exception(exc);
        } else {
            Py_DECREF(exc);   /* cancel_future's own error goes up instead */
        }
    }
    unfile(self);
    if (status != PYGEN_ERROR || !PyErr_ExceptionMatches(PyExc_OSError))
        return status;
    /* The O_DIRECT retry, or the error raised again. */
    PyObject *waiting = call_with(self, self->method->bounced, caio_fetch_exception(), 0);
    if (waiting == NULL)
        return PYGEN_ERROR;
    awaiting(self, waiting);
    return forward(self, Py_None, result);
}

/* Await backend future r (stolen) here, filed in state->inflight under
 * the descriptor (the second argument). */
static PySendResult await_future(OpCall *self, OpState *state, PyObject *r, PyObject **result)
{
    PyAsyncMethods *am = Py_TYPE(r)->tp_as_async;
    PyObject *iter = NULL;
    if (am == NULL || am->am_await == NULL) {
        PyErr_Format(PyExc_TypeError, "the backend returned %.100s, not a future",
                     Py_TYPE(r)->tp_name);
    } else if (PyDict_SetItem(state->inflight, r, self->args[2]) == 0) {
        if ((iter = am->am_await(r)) == NULL && PyDict_DelItem(state->inflight, r) < 0)
            PyErr_Clear();   /* keeps am_await's error */
    }
    if (iter == NULL) {
        Py_DECREF(r);
        return PYGEN_ERROR;
    }
    self->future = r;
    self->state = (OpState *)Py_NewRef((PyObject *)state);
    awaiting(self, iter);
    return forward(self, Py_None, result);
}

/* Whether `loop` (an asyncio BaseEventLoop) runs in this thread, proven
 * cheaply: while it runs, its run_forever() has installed its own bound
 * method as this thread's async generator first-iteration hook (and puts
 * the previous one back when it stops). A few loads, where looking up
 * loop._thread_id costs ~130 instructions, 7 % of a page-cache read.
 * False proves nothing (a library may have installed a hook of its own):
 * the caller then asks _thread_id. */
static int runs_here(PyObject *loop)
{
#if PY_VERSION_HEX < 0x030F0000   /* the field, as far as it is known */
    PyObject *hook = PyThreadState_Get()->async_gen_firstiter;
    return hook != NULL && PyMethod_Check(hook) && PyMethod_GET_SELF(hook) == loop;
#else
    (void)loop;
    return 0;
#endif
}

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* The context's OperationState (a new reference) when it is bound and
 * its loop runs, else NULL (with an error set if looking failed). Inlined
 * in both callers: a call of its own costs a page-cache read ~10
 * instructions (callgrind). */
static ALWAYS_INLINE OpState *running_state(PyObject *ctx)
{
    if (slot_offset < 0 || !PyObject_TypeCheck(ctx, slot_type))
        return NULL;
    PyObject *state = *(PyObject **)((char *)ctx + slot_offset);
    if (state == NULL || !Py_IS_TYPE(state, &OpState_Type))
        return NULL;   /* not bound (None), or not a state: the slow way */
    PyObject *owner = ((OpState *)state)->owner;
    if (owner != NULL && !runs_here(owner)) {
        /* An attribute lookup, not the loop's __dict__: making that dict
         * would cost asyncio's own code more, in every loop iteration,
         * than the lookup costs here (its instances keep attributes
         * without one). */
        PyObject *thread_id = PyObject_GetAttr(owner, str_thread_id);
        if (thread_id == NULL)
            return NULL;
        Py_DECREF(thread_id);   /* only compared: the loop holds it */
        if (thread_id == Py_None)
            return NULL;
    }
    return (OpState *)Py_NewRef(state);
}

/* The rest of the first step once the backend's *_async method returned
 * r, not a finished result: a future (stolen) to wait for, or NULL with
 * its error set. The state's reference is taken over. */
static PySendResult submitted(OpCall *self, OpState *state, PyObject *r, PyObject **result)
{
    PyObject *waiting;
    if (r != NULL && state->inflight != NULL) {
        PySendResult status = await_future(self, state, r, result);
        Py_DECREF(state);
        return status;
    }
    Py_DECREF(state);
    if (r != NULL)
        waiting = call_pending(self, r);
    else if (PyErr_ExceptionMatches(PyExc_OSError) ||
             PyErr_ExceptionMatches(PyExc_RuntimeError))
        waiting = call_with(self, self->method->failed, caio_fetch_exception(), 1);
    else
        waiting = NULL;
    if (waiting == NULL)
        return PYGEN_ERROR;
    awaiting(self, waiting);
    return forward(self, Py_None, result);   /* a coroutine starts with None */
}

/* The first step: see the module's documentation. */
static PySendResult start(OpCall *self, PyObject *arg, PyObject **result)
{
    OpMethod *method = self->method;
    *result = NULL;
    self->started = 1;
    if (arg != Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "can't send non-None value to a just-started coroutine");
        return PYGEN_ERROR;
    }
    OpState *state = running_state(self->args[0]);
    if (state == NULL) {
        if (PyErr_Occurred())
            return PYGEN_ERROR;
        PyObject *waiting = PyObject_Vectorcall(method->slow, self->args, (size_t)self->nargs,
                                                NULL);
        if (waiting == NULL)
            return PYGEN_ERROR;
        awaiting(self, waiting);
        return forward(self, Py_None, result);   /* a coroutine starts with None */
    }
    PyObject *r = submit_call(state, method->which, self->args + 1, self->nargs - 1);
    if (r != NULL && Py_IS_TYPE(r, method->done)) {
        Py_DECREF(state);
        *result = r;   /* finished during the call */
        return PYGEN_RETURN;
    }
    return submitted(self, state, r, result);
}

static PySendResult OpCall_am_send(OpCall *self, PyObject *arg, PyObject **result)
{
    if (self->waiting != NULL)
        return forward(self, arg, result);
    if (!self->started)
        return start(self, arg, result);
    *result = NULL;
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
    return PYGEN_ERROR;
}

/* Results leave through caio_send_result without a kept StopIteration
 * (NULL): one kept per method would hold the last result, maybe a large
 * bytes, until the next operation. */
static PyObject *OpCall_iternext(OpCall *self)
{
    PyObject *result;
    PySendResult status = OpCall_am_send(self, Py_None, &result);
    return caio_send_result(NULL, status, result);
}

static PyObject *OpCall_send(OpCall *self, PyObject *arg)
{
    PyObject *result;
    PySendResult status = OpCall_am_send(self, arg, &result);
    return caio_send_result(NULL, status, result);
}

static PyObject *OpCall_throw(OpCall *self, PyObject *args)
{
    if (self->waiting == NULL) {
        /* Not started (it never will be: as a coroutine thrown into before
         * its first step), or done: the exception comes out as thrown. */
        self->started = 1;
        return caio_throw_here(args);
    }
    PyObject *result;
    PySendResult status = caio_throw_into(self->waiting, args, &result);
    if (status != PYGEN_NEXT) {
        Py_CLEAR(self->waiting);
        if (self->future != NULL)
            status = settle(self, status, &result);
    }
    return caio_send_result(NULL, status, result);
}

static PyObject *OpCall_close(OpCall *self, PyObject *unused)
{
    self->started = 1;
    if (self->waiting == NULL)
        Py_RETURN_NONE;
    PyObject *r = caio_close_slot(&self->waiting);
    if (self->future != NULL)
        unfile(self);
    return r;
}

static int OpCall_traverse(OpCall *self, visitproc visit, void *arg)
{
    Py_VISIT(self->method);
    Py_VISIT(self->waiting);
    Py_VISIT(self->state);
    Py_VISIT(self->future);
    for (Py_ssize_t i = 0; i < self->nargs; i++)
        Py_VISIT(self->args[i]);
    return 0;
}

static int OpCall_clear(OpCall *self)
{
    if (self->future != NULL)
        unfile(self);   /* as a coroutine's finally would */
    Py_CLEAR(self->waiting);
    for (Py_ssize_t i = 0; i < self->nargs; i++)
        Py_CLEAR(self->args[i]);
    self->nargs = 0;
    return 0;
}

static void OpCall_dealloc(OpCall *self)
{
    if (PyObject_GC_IsTracked((PyObject *)self))
        PyObject_GC_UnTrack(self);
    OpCall_clear(self);
    Py_CLEAR(self->method);
    if (n_spare < MAX_SPARE && Py_IS_TYPE(self, &OpCall_Type)) {
        spare[n_spare++] = self;
        return;
    }
    PyObject_GC_Del(self);
}

static PyObject *OpCall_get_name(OpCall *self, void *closure)
{
    return PyObject_GetAttrString(self->method->slow, "__qualname__");
}

static PyObject *OpCall_get_await(OpCall *self, void *closure)
{
    return Py_NewRef(self->waiting ? self->waiting : Py_None);
}

static PyGetSetDef OpCall_getset[] = {
    {"__qualname__", (getter)OpCall_get_name, NULL, "The operation's name.", NULL},
    {"cr_await", (getter)OpCall_get_await, NULL,
     "The coroutine this operation awaits, or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyAsyncMethods OpCall_as_async = {
    .am_await = caio_return_self,
    .am_send = (sendfunc)OpCall_am_send,
};

static PyMethodDef OpCall_methods[] = {
    {"send", (PyCFunction)OpCall_send, METH_O,
     "send($self, value, /)\n--\n\nStep the operation (as a coroutine's send)."},
    {"throw", (PyCFunction)OpCall_throw, METH_VARARGS,
     "throw($self, typ, val=None, tb=None, /)\n--\n\n"
     "Raise in what the operation waits on (as a coroutine's throw)."},
    {"close", (PyCFunction)OpCall_close, METH_NOARGS,
     "close($self, /)\n--\n\nClose what the operation waits on, if anything."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject OpCall_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caio._awaitables.OperationCall",
    .tp_basicsize = sizeof(OpCall),
    .tp_dealloc = (destructor)OpCall_dealloc,
    .tp_as_async = &OpCall_as_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One call of an OperationMethod: await it (once).",
    .tp_traverse = (traverseproc)OpCall_traverse,
    .tp_clear = (inquiry)OpCall_clear,
    .tp_iter = caio_return_self,
    .tp_iternext = (iternextfunc)OpCall_iternext,
    .tp_methods = OpCall_methods,
    .tp_getset = OpCall_getset,
};

/* ------------------------------------------------------- the chunk iterator */

/* aiofile's binary iter_chunked(): `async for chunk in f.iter_chunked(n)`
 * as an object whose __anext__ returns itself, an awaitable whose first
 * step reads the next chunk with the context's read (as an OperationCall's
 * first step does, without making one): a page-cache hit is a chunk at
 * once, with no async generator step, no coroutine, no StopIteration on
 * 3.10/3.11. Whatever does not finish during the call (a future, an error
 * the adapter handles, a context not bound to this loop) goes on in an
 * OperationCall made for that step, which this step then awaits.
 *
 * Per step, what the async generator it replaces did: the file closed
 * since the last chunk (the handle's fd is no longer the one it started
 * with) raises the handle's closed_error(); the read is made at the
 * owner's _pos and _pos then moves by the chunk's length (both read from
 * the objects every time: seek() between chunks, tell() during them); an
 * empty chunk ends it. The first step yields first() (the data readline()
 * read ahead) when that is not empty. Like a finished async generator,
 * the iterator ends (StopAsyncIteration) once a step raised. */
typedef struct {
    PyObject_HEAD
    OpMethod *method;          /* the context class's read */
    PyObject *args[4];         /* ctx, size, fd, and the offset of the last read */
    PyObject *owner;           /* whose _pos is the offset */
    PyObject *handle;          /* whose fd must stay args[2] */
    PyObject *first;           /* called on the first step, then NULL */
    PyObject *pending;         /* the OperationCall a step waits on, or NULL */
    PyObject *stop;            /* the StopIteration a step raises again (3.12+) */
    Py_ssize_t pos_offset;     /* where owner keeps _pos, handle fd: slots, */
    Py_ssize_t fd_offset;      /* or -1: by name */
    char done;
} ChunkIter;

static PyObject *str_pos, *str_fd, *str_closed_error;

/* obj.name = value (stolen), at the slot's offset (caio_slot_offset)
 * when it is one. */
static inline int field_set(PyObject *obj, Py_ssize_t offset, PyObject *name, PyObject *value)
{
    if (offset >= 0) {
        Py_XSETREF(*(PyObject **)((char *)obj + offset), value);
        return 0;
    }
    int r = PyObject_SetAttr(obj, name, value);
    Py_DECREF(value);
    return r;
}

static PyTypeObject ChunkIter_Type;

static PyObject *ChunkIter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *read, *fd, *size, *owner, *handle, *first;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "ChunkIterator() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "ChunkIterator", 6, 6, &read, &fd, &size, &owner, &handle,
                           &first))
        return NULL;
    if (!PyMethod_Check(read) || !Py_IS_TYPE(PyMethod_GET_FUNCTION(read), &OpMethod_Type)) {
        PyErr_SetString(PyExc_TypeError,
                        "ChunkIterator() read must be a context's OperationMethod, bound");
        return NULL;
    }
    if (!PyLong_CheckExact(fd) || !PyLong_CheckExact(size)) {
        PyErr_SetString(PyExc_TypeError, "ChunkIterator() fd and size must be int");
        return NULL;
    }
    if (first != Py_None && !PyCallable_Check(first)) {
        PyErr_SetString(PyExc_TypeError, "ChunkIterator() first must be callable or None");
        return NULL;
    }
    ChunkIter *self = (ChunkIter *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->method = (OpMethod *)Py_NewRef(PyMethod_GET_FUNCTION(read));
    self->args[0] = Py_NewRef(PyMethod_GET_SELF(read));
    self->args[1] = Py_NewRef(size);
    self->args[2] = Py_NewRef(fd);
    self->args[3] = Py_NewRef(Py_None);   /* the offset: set before each read */
    self->owner = Py_NewRef(owner);
    self->handle = Py_NewRef(handle);
    self->first = first == Py_None ? NULL : Py_NewRef(first);
    self->pos_offset = caio_slot_offset(owner, str_pos);
    self->fd_offset = caio_slot_offset(handle, str_fd);
    return (PyObject *)self;
}

static int ChunkIter_traverse(ChunkIter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->method);
    for (int i = 0; i < 4; i++)
        Py_VISIT(self->args[i]);
    Py_VISIT(self->owner);
    Py_VISIT(self->handle);
    Py_VISIT(self->first);
    Py_VISIT(self->pending);
    Py_VISIT(self->stop);
    return 0;
}

static int ChunkIter_clear(ChunkIter *self)
{
    Py_CLEAR(self->method);
    for (int i = 0; i < 4; i++)
        Py_CLEAR(self->args[i]);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->handle);
    Py_CLEAR(self->first);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->stop);
    return 0;
}

static void ChunkIter_dealloc(ChunkIter *self)
{
    PyObject_GC_UnTrack(self);
    ChunkIter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A step failed (its error set): the iterator is done, and lets go of
 * the last chunk. */
static PySendResult chunk_failed(ChunkIter *self)
{
    self->done = 1;
    Py_CLEAR(self->stop);
    return PYGEN_ERROR;
}

/* The read gave `chunk` (stolen): the end when empty, else owner._pos
 * moves past it and the step returns it. */
static PySendResult got_chunk(ChunkIter *self, PyObject *chunk, PyObject **result)
{
    Py_ssize_t n = PyBytes_CheckExact(chunk) ? PyBytes_GET_SIZE(chunk) : PyObject_Length(chunk);
    PyObject *pos = NULL, *length = NULL, *next = NULL;
    *result = NULL;
    if (n <= 0) {
        Py_DECREF(chunk);
        if (n == 0)
            PyErr_SetNone(PyExc_StopAsyncIteration);
        return chunk_failed(self);
    }
    /* _pos as it is now, as `self._pos += len(chunk)` reads it; in C
     * arithmetic when it is an int that leaves room (always, for a file
     * offset), else as Python adds. */
    if ((pos = caio_slot_get(self->owner, self->pos_offset, str_pos)) == NULL)
        goto fail;
    Py_ssize_t before = PyLong_CheckExact(pos) ? PyLong_AsSsize_t(pos) : -1;
    if (before >= 0 && before <= PY_SSIZE_T_MAX - n) {
        next = PyLong_FromSsize_t(before + n);
    } else {
        PyErr_Clear();   /* an overflow, or not an int: PyNumber_Add says */
        if ((length = PyLong_FromSsize_t(n)) != NULL)
            next = PyNumber_Add(pos, length);
    }
    if (next == NULL || field_set(self->owner, self->pos_offset, str_pos, next) < 0)
        goto fail;
    Py_DECREF(pos);
    Py_XDECREF(length);
    *result = chunk;
    return PYGEN_RETURN;
fail:
    Py_XDECREF(pos);
    Py_XDECREF(length);
    Py_DECREF(chunk);
    return chunk_failed(self);
}

/* A step's OperationCall gave `status`: kept while it waits, else done. */
static PySendResult after_call(ChunkIter *self, OpCall *call, PySendResult status,
                               PyObject **result)
{
    if (status == PYGEN_NEXT) {
        self->pending = (PyObject *)call;
        return PYGEN_NEXT;
    }
    Py_DECREF(call);
    if (status == PYGEN_RETURN)
        return got_chunk(self, *result, result);
    return chunk_failed(self);
}

/* The handle's fd is no longer the one this iteration reads: 1 (with
 * closed_error() raised), 0 when it is, -1 on error. */
static int file_closed(ChunkIter *self)
{
    PyObject *fd = caio_slot_get(self->handle, self->fd_offset, str_fd);
    if (fd == NULL)
        return -1;
    int same = fd == self->args[2] ? 1 : PyObject_RichCompareBool(fd, self->args[2], Py_EQ);
    Py_DECREF(fd);
    if (same != 0)
        return same < 0 ? -1 : 0;
    PyObject *exc = PyObject_CallMethodNoArgs(self->handle, str_closed_error);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return 1;
}

/* A new step: the data read ahead, or the next chunk. */
static PySendResult chunk_step(ChunkIter *self, PyObject **result)
{
    *result = NULL;
    if (self->done) {
        PyErr_SetNone(PyExc_StopAsyncIteration);
        return PYGEN_ERROR;
    }
    if (self->first != NULL) {
        PyObject *first = self->first;
        self->first = NULL;
        PyObject *data = PyObject_CallNoArgs(first);
        Py_DECREF(first);
        if (data == NULL)
            return chunk_failed(self);
        int truth = PyObject_IsTrue(data);
        if (truth != 0) {
            if (truth < 0) {
                Py_DECREF(data);
                return chunk_failed(self);
            }
            *result = data;   /* before any read: _pos is already past it */
            return PYGEN_RETURN;
        }
        Py_DECREF(data);
    }
    if (file_closed(self) != 0)
        return chunk_failed(self);
    PyObject *pos = caio_slot_get(self->owner, self->pos_offset, str_pos);
    if (pos == NULL)
        return chunk_failed(self);
    Py_SETREF(self->args[3], pos);
    OpMethod *method = self->method;
    OpCall *call;
    PySendResult status;
    OpState *state = running_state(self->args[0]);
    if (state == NULL) {
        /* Not bound, or its loop is not running here: an OperationCall's
         * slow way, the adapter's coroutine. */
        if (PyErr_Occurred() || (call = new_call(method, self->args, 4)) == NULL)
            return chunk_failed(self);
        status = start(call, Py_None, result);
        return after_call(self, call, status, result);
    }
    PyObject *r = submit_call(state, method->which, self->args + 1, 3);
    if (r != NULL && Py_IS_TYPE(r, method->done)) {
        Py_DECREF(state);
        return got_chunk(self, r, result);
    }
    /* In flight (a future) or an error for the adapter to look at: the
     * rest is what an OperationCall does after its submission. */
    PyObject *exc = r == NULL ? caio_fetch_exception() : NULL;
    call = new_call(method, self->args, 4);
    if (call == NULL) {
        Py_XDECREF(exc);
        Py_XDECREF(r);   /* a future nobody awaits: the backend still completes it */
        Py_DECREF(state);
        return chunk_failed(self);
    }
    if (r == NULL)
        caio_restore_exception(exc);
    call->started = 1;
    status = submitted(call, state, r, result);
    return after_call(self, call, status, result);
}

/* After the pending OperationCall's send or throw gave `status`. */
static PySendResult after_pending(ChunkIter *self, PySendResult status, PyObject **result)
{
    if (status == PYGEN_NEXT)
        return PYGEN_NEXT;   /* its yield (a future) goes up to the loop */
    Py_CLEAR(self->pending);
    if (status == PYGEN_RETURN)
        return got_chunk(self, *result, result);
    return chunk_failed(self);
}

static PySendResult ChunkIter_am_send(ChunkIter *self, PyObject *arg, PyObject **result)
{
    if (self->pending != NULL)
        return after_pending(self, caio_send_held(self->pending, arg, result), result);
    if (arg != Py_None) {
        *result = NULL;
        PyErr_SetString(PyExc_TypeError,
                        "can't send non-None value to a just-started coroutine");
        return PYGEN_ERROR;
    }
    return chunk_step(self, result);
}

/* 3.12+ ends every step with a StopIteration (tp_iternext): one is kept
 * and raised again while nothing else holds it. It holds the chunk until
 * the next step, as the consumer's own variable does, and is dropped at
 * the end. */
static PyObject *ChunkIter_iternext(ChunkIter *self)
{
    PyObject *result;
    PySendResult status = ChunkIter_am_send(self, Py_None, &result);
    return caio_send_result(&self->stop, status, result);
}

static PyObject *ChunkIter_send(ChunkIter *self, PyObject *arg)
{
    PyObject *result;
    PySendResult status = ChunkIter_am_send(self, arg, &result);
    return caio_send_result(&self->stop, status, result);
}

static PyObject *ChunkIter_throw(ChunkIter *self, PyObject *args)
{
    if (self->pending == NULL)
        return caio_throw_here(args);   /* not waiting on anything */
    PyObject *result;
    PySendResult status = after_pending(self, caio_throw_into(self->pending, args, &result),
                                        &result);
    return caio_send_result(&self->stop, status, result);
}

static PyObject *ChunkIter_close(ChunkIter *self, PyObject *unused)
{
    self->done = 1;
    Py_CLEAR(self->first);
    Py_CLEAR(self->stop);
    return caio_close_slot(&self->pending);
}

static PyTypeObject ChunkClose_Type;

/* aclose(): what close() does, at once; the awaitable it returns has
 * nothing left to do (as an async generator's aclose() between steps). */
static PyObject *ChunkIter_aclose(ChunkIter *self, PyObject *unused)
{
    PyObject *r = ChunkIter_close(self, NULL);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    return PyObject_New(PyObject, &ChunkClose_Type);
}

static PyObject *ChunkIter_anext(ChunkIter *self)
{
    return caio_anext_self((PyObject *)self, self->pending, "chunk iterator");
}

static PyAsyncMethods ChunkIter_as_async = {
    .am_await = caio_return_self,
    .am_aiter = caio_return_self,
    .am_anext = (unaryfunc)ChunkIter_anext,
    .am_send = (sendfunc)ChunkIter_am_send,
};

static PyMethodDef ChunkIter_methods[] = {
    {"send", (PyCFunction)ChunkIter_send, METH_O,
     "send($self, value, /)\n--\n\nResume the step (as a coroutine's send)."},
    {"throw", (PyCFunction)ChunkIter_throw, METH_VARARGS,
     "throw($self, typ, val=None, tb=None, /)\n--\n\n"
     "Raise in the read the step waits on (as a coroutine's throw)."},
    {"close", (PyCFunction)ChunkIter_close, METH_NOARGS,
     "close($self, /)\n--\n\nEnd the iteration; close the read a step waits on, if any."},
    {"aclose", (PyCFunction)ChunkIter_aclose, METH_NOARGS,
     "aclose($self, /)\n--\n\nclose(), as an awaitable (an async generator's aclose)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ChunkIter_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caio._awaitables.ChunkIterator",
    .tp_basicsize = sizeof(ChunkIter),
    .tp_dealloc = (destructor)ChunkIter_dealloc,
    .tp_as_async = &ChunkIter_as_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ChunkIterator(read, fd, size, owner, handle, first, /)\n--\n\n"
              "async for over chunks of up to size bytes read with read (a context's\n"
              "bound read) from fd at owner._pos, which follows; the file closed\n"
              "(handle.fd is not fd) raises handle.closed_error(). first() (or\n"
              "None): data to yield before the first read, if not empty.",
    .tp_traverse = (traverseproc)ChunkIter_traverse,
    .tp_clear = (inquiry)ChunkIter_clear,
    .tp_iter = caio_return_self,
    .tp_iternext = (iternextfunc)ChunkIter_iternext,
    .tp_methods = ChunkIter_methods,
    .tp_new = ChunkIter_new,
};

/* What aclose() returns: awaiting it returns None at once. */
static PySendResult ChunkClose_am_send(PyObject *self, PyObject *arg, PyObject **result)
{
    (void)self;
    (void)arg;
    *result = Py_NewRef(Py_None);
    return PYGEN_RETURN;
}

static PyObject *ChunkClose_iternext(PyObject *self)
{
    (void)self;
    PyErr_SetNone(PyExc_StopIteration);
    return NULL;
}

static void ChunkClose_dealloc(PyObject *self)
{
    PyObject_Free(self);
}

static PyAsyncMethods ChunkClose_as_async = {
    .am_await = caio_return_self,
    .am_send = ChunkClose_am_send,
};

static PyTypeObject ChunkClose_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caio._awaitables.ChunkIteratorClose",
    .tp_basicsize = sizeof(PyObject),
    .tp_dealloc = ChunkClose_dealloc,
    .tp_as_async = &ChunkClose_as_async,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What ChunkIterator.aclose() returns: an awaitable with nothing left to do.",
    .tp_iter = caio_return_self,
    .tp_iternext = ChunkClose_iternext,
};

/* ----------------------------------------------------------------- module */

static PyMethodDef awaitables_methods[] = {
    {"set_state_slot", (PyCFunction)set_state_slot, METH_O,
     "set_state_slot($module, descriptor, /)\n--\n\n"
     "The __slots__ member where contexts keep their OperationState."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef awaitables_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "caio._awaitables",
    .m_doc = "The asyncio adapter's read/write without a coroutine per finished operation.",
    .m_size = -1,
    .m_methods = awaitables_methods,
};

PyMODINIT_FUNC PyInit__awaitables(void)
{
    if (cancelled_error == NULL) {
        PyObject *exceptions = PyImport_ImportModule("asyncio.exceptions");
        if (exceptions == NULL)
            return NULL;
        cancelled_error = PyObject_GetAttrString(exceptions, "CancelledError");
        invalid_state_error = PyObject_GetAttrString(exceptions, "InvalidStateError");
        Py_DECREF(exceptions);
        if (cancelled_error == NULL || invalid_state_error == NULL) {
            Py_CLEAR(cancelled_error);
            Py_CLEAR(invalid_state_error);
            return NULL;
        }
    }
    if (str_pending == NULL && (str_pending = PyUnicode_InternFromString("_pending")) == NULL)
        return NULL;
    if (str_thread_id == NULL &&
        (str_thread_id = PyUnicode_InternFromString("_thread_id")) == NULL)
        return NULL;
    if (str_pos == NULL && (str_pos = PyUnicode_InternFromString("_pos")) == NULL)
        return NULL;
    if (str_fd == NULL && (str_fd = PyUnicode_InternFromString("fd")) == NULL)
        return NULL;
    if (str_closed_error == NULL &&
        (str_closed_error = PyUnicode_InternFromString("closed_error")) == NULL)
        return NULL;
    if (PyType_Ready(&OpMethod_Type) < 0 || PyType_Ready(&OpCall_Type) < 0 ||
        PyType_Ready(&OpState_Type) < 0 || PyType_Ready(&ChunkIter_Type) < 0 ||
        PyType_Ready(&ChunkClose_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&awaitables_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "OperationMethod", (PyObject *)&OpMethod_Type) < 0 ||
        PyModule_AddObjectRef(m, "OperationCall", (PyObject *)&OpCall_Type) < 0 ||
        PyModule_AddObjectRef(m, "OperationState", (PyObject *)&OpState_Type) < 0 ||
        PyModule_AddObjectRef(m, "ChunkIterator", (PyObject *)&ChunkIter_Type) < 0 ||
        caio_future_types_init(m, cancelled_error, invalid_state_error) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
