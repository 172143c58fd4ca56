/* What a C awaitable that may wait on a coroutine of its own needs, for
 * caio._lines' line iterator and caio._awaitables' operations: ending a
 * step the way Python 3.12+ wants it (StopIteration), and throw() into
 * the coroutine waited on, or into nothing. Header only: static inline,
 * included by modules that do not link src/common. */
#ifndef CAIO_AWAITABLE_H
#define CAIO_AWAITABLE_H

#include <structmember.h>

#include "pyerr.h"

#ifndef Py_T_OBJECT_EX   /* the names before 3.12 */
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

/* __await__, __iter__ (and __aiter__) of an awaitable that is its own
 * iterator. */
static inline PyObject *caio_return_self(PyObject *self)
{
    return Py_NewRef(self);
}

/* __anext__ of an async iterator that is its own step: itself, unless the
 * last step still waits on a read (pending), which an async generator
 * refuses too. what names the iterator in the RuntimeError. */
static inline PyObject *caio_anext_self(PyObject *self, PyObject *pending, const char *what)
{
    if (pending != NULL) {
        PyErr_Format(PyExc_RuntimeError, "anext(): the %s is already waiting for a read", what);
        return NULL;
    }
    return Py_NewRef(self);
}

/* Send arg into `it`, the coroutine or iterator an awaitable waits on,
 * holding a reference while it runs: what it runs may drop the
 * awaitable's own (a throw() or close() from inside). */
static inline PySendResult caio_send_held(PyObject *it, PyObject *arg, PyObject **result)
{
    Py_INCREF(it);
    PySendResult status = PyIter_Send(it, arg, result);
    Py_DECREF(it);
    return status;
}

/* The offset of a writable object slot `name` (a __slots__ member) of
 * obj's class, to read and write it there once per step; -1 where `name`
 * is something else (then it is looked up by name). */
static inline Py_ssize_t caio_slot_offset(PyObject *obj, PyObject *name)
{
    PyObject *descr = PyObject_GetAttr((PyObject *)Py_TYPE(obj), name);
    Py_ssize_t offset = -1;
    if (descr == NULL) {
        PyErr_Clear();
        return -1;
    }
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDescrObject *member = (PyMemberDescrObject *)descr;
        PyMemberDef *def = member->d_member;
        if (def->type == Py_T_OBJECT_EX && !(def->flags & Py_READONLY) &&
            PyObject_TypeCheck(obj, PyDescr_TYPE(member)))
            offset = def->offset;
    }
    Py_DECREF(descr);
    return offset;
}

/* obj.name (a new reference): read at `offset` (caio_slot_offset) when it
 * is one and the slot is set, else looked up by name (an unset slot then
 * raises AttributeError, as Python would). */
static inline PyObject *caio_slot_get(PyObject *obj, Py_ssize_t offset, PyObject *name)
{
    if (offset >= 0) {
        PyObject *value = *(PyObject **)((char *)obj + offset);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(obj, name);
}

/* Raise StopIteration carrying value (a reference stolen). From 3.12 on,
 * `await` ends every step this way (tp_iternext): building a
 * StopIteration per step costs more than the rest of a fast step, so a
 * caller may keep the last one in *cache (cache not NULL) and it is
 * raised again with the new value when nothing else holds it (the
 * interpreter took the value and let go) and nothing was added to it
 * (traceback, context, cause, notes, attributes: Python code saw it).
 * The cache keeps the last value alive until the next step: only for an
 * owner that does not outlive its values by much (a line iterator). */
static inline void caio_raise_stop(PyObject **cache, PyObject *value)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (cache == NULL) {
        PyObject *fresh = PyObject_CallOneArg(PyExc_StopIteration, value);
        Py_DECREF(value);
        if (fresh != NULL)
            PyErr_SetRaisedException(fresh);
        return;
    }
    PyObject *exc = *cache;
    PyBaseExceptionObject *base = (PyBaseExceptionObject *)exc;
    if (exc == NULL || Py_REFCNT(exc) != 1 || base->traceback || base->context ||
        base->cause || base->notes || base->dict) {
        /* Built without arguments: a value that is a tuple or an
         * exception is not taken for them. */
        if ((exc = PyObject_CallNoArgs(PyExc_StopIteration)) == NULL) {
            Py_DECREF(value);
            return;
        }
        Py_XSETREF(*cache, exc);
    }
    Py_XSETREF(((PyStopIterationObject *)exc)->value, value);
    PyErr_SetRaisedException(Py_NewRef(exc));
#else
    (void)cache;
    PyObject *exc = PyObject_CallOneArg(PyExc_StopIteration, value);
    Py_DECREF(value);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_StopIteration, exc);
        Py_DECREF(exc);
    }
#endif
}

/* A step's outcome as a Python call (send(), __next__) returns it: the
 * yielded value, or NULL with StopIteration(value) or another error. */
static inline PyObject *caio_send_result(PyObject **cache, PySendResult status, PyObject *result)
{
    if (status == PYGEN_NEXT)
        return result;
    if (status == PYGEN_RETURN)
        caio_raise_stop(cache, result);
    return NULL;
}

/* throw(typ, val=None, tb=None) into an awaitable that waits on nothing:
 * the exception comes out as thrown. Always NULL. */
static inline PyObject *caio_throw_here(PyObject *args)
{
    PyObject *typ = PyTuple_GET_SIZE(args) ? PyTuple_GET_ITEM(args, 0) : NULL;
    PyObject *val = PyTuple_GET_SIZE(args) > 1 ? PyTuple_GET_ITEM(args, 1) : Py_None;
    if (typ == NULL) {
        PyErr_SetString(PyExc_TypeError, "throw() takes at least 1 argument");
    } else if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val);
    } else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes or instances deriving from BaseException");
    }
    return NULL;
}

/* throw(*args) into `pending` (a coroutine, or any iterator: one without
 * a throw method gets the exception raised here): PYGEN_NEXT with what it
 * yielded, PYGEN_RETURN with its return value (it caught the exception
 * and finished), else PYGEN_ERROR. */
static inline PySendResult caio_throw_into(PyObject *pending, PyObject *args, PyObject **result)
{
    Py_INCREF(pending);   /* kept alive while it runs */
    PyObject *throw = PyObject_GetAttrString(pending, "throw");
    if (throw == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        /* An iterator without throw() (a caio._awaitables.Future): the
         * exception comes out at the await, as `yield from` has it. */
        PyErr_Clear();
        Py_DECREF(pending);
        *result = caio_throw_here(args);
        return PYGEN_ERROR;
    }
    *result = throw ? PyObject_Call(throw, args, NULL) : NULL;
    Py_XDECREF(throw);
    Py_DECREF(pending);
    if (*result != NULL)
        return PYGEN_NEXT;   /* it yielded again: still waiting */
    if (!PyErr_ExceptionMatches(PyExc_StopIteration))
        return PYGEN_ERROR;
    PyObject *value = caio_fetch_exception();
    *result = value ? PyObject_GetAttrString(value, "value") : NULL;
    Py_XDECREF(value);
    return *result != NULL ? PYGEN_RETURN : PYGEN_ERROR;
}

/* close() of `pending` (a reference stolen), what an awaitable being
 * closed waits on: a coroutine is closed; an iterator without close (a
 * caio._awaitables.Future) has nothing to close, as `yield from` has it.
 * None, or NULL with close()'s error. */
static inline PyObject *caio_close_pending(PyObject *pending)
{
    PyObject *close = PyObject_GetAttrString(pending, "close"), *r;
    if (close != NULL) {
        r = PyObject_CallNoArgs(close);
        Py_DECREF(close);
    } else if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        r = Py_NewRef(Py_None);
    } else {
        r = NULL;
    }
    Py_DECREF(pending);
    return r;
}

/* caio_close_pending of what *slot holds, None if nothing; the slot is
 * emptied first, so that close()'s code finds it empty. */
static inline PyObject *caio_close_slot(PyObject **slot)
{
    PyObject *pending = *slot;
    if (pending == NULL)
        Py_RETURN_NONE;
    *slot = NULL;
    return caio_close_pending(pending);
}

#endif
