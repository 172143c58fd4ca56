/* caio._lines: the per-line work of aiofile's line iteration, in C.
 *
 * Two things, both optional for aiofile (it falls back to pure Python
 * when this module is missing):
 *
 * - split_lf(tail, chunk): a chunk of str or bytes cut after every "\n"
 *   (nothing else ends a line), as aiofile.lines' splitters return it: the
 *   complete lines, the first prefixed with tail, then what follows the
 *   last "\n" (the new tail, maybe empty). One pass with memchr (or a loop
 *   over 2- and 4-byte characters) and one object per line.
 *
 * - LineIterator(reader, readline): what `async for line in reader` uses.
 *   __anext__ returns the iterator itself, an awaitable whose am_send slot
 *   takes the next line from the reader's `_lines` iterator (the one its
 *   readline() shares) and returns it without suspending: no coroutine,
 *   no StopIteration per line (Python 3.10 and 3.11 drive an awaitable
 *   through am_send; later versions call tp_iternext, which raises
 *   StopIteration(line)). When `_lines` has nothing, the step awaits the
 *   coroutine readline() returns (the reader's chunk read) and passes on
 *   whatever it yields; an empty line from it is the end of the file.
 *   The `_lines` slot is read at its offset when the reader's class keeps
 *   it in __slots__, else looked up as an attribute. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <string.h>

#include "awaitable.h"

#ifndef Py_NO_INLINE   /* 3.10 */
#if defined(__GNUC__) || defined(__clang__)
#define Py_NO_INLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define Py_NO_INLINE __declspec(noinline)
#else
#define Py_NO_INLINE
#endif
#endif


/* ------------------------------------------------------------------ split */

/* The position of the first "\n" in data[start:end] (kind-byte characters),
 * or -1. */
static Py_ssize_t find_lf(int kind, const void *data, Py_ssize_t start, Py_ssize_t end)
{
    if (start >= end)
        return -1;
    switch (kind) {
    case PyUnicode_1BYTE_KIND: {
        const char *p = (const char *)data;
        const char *hit = memchr(p + start, '\n', (size_t)(end - start));
        return hit ? hit - p : -1;
    }
    case PyUnicode_2BYTE_KIND: {
        const Py_UCS2 *p = (const Py_UCS2 *)data;
        for (Py_ssize_t i = start; i < end; i++)
            if (p[i] == '\n')
                return i;
        return -1;
    }
    default: {
        const Py_UCS4 *p = (const Py_UCS4 *)data;
        for (Py_ssize_t i = start; i < end; i++)
            if (p[i] == '\n')
                return i;
        return -1;
    }
    }
}

/* Append a new reference to list; the reference is consumed either way. */
static int append_steal(PyObject *list, PyObject *item)
{
    if (item == NULL)
        return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

/* The arguments of split_lf and cut_lf: two str or two bytes objects,
 * (tail, chunk). Fills *text, and the chunk's character width, data and
 * length; 0, or -1 with TypeError. */
typedef struct {
    PyObject *tail, *chunk;
    int text;            /* str (1) or bytes (0) */
    int kind;            /* the chunk's character width; 1 for bytes */
    const void *data;
    Py_ssize_t size;     /* in characters */
    Py_ssize_t tail_size;
} SplitArgs;

static int split_args(const char *name, PyObject *const *args, Py_ssize_t nargs,
                      SplitArgs *a)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes 2 arguments (%zd given)", name, nargs);
        return -1;
    }
    PyObject *tail = args[0], *chunk = args[1];
    a->tail = tail;
    a->chunk = chunk;
    a->text = PyUnicode_CheckExact(chunk);
    if (a->text ? !PyUnicode_CheckExact(tail)
                : !(PyBytes_CheckExact(chunk) && PyBytes_CheckExact(tail))) {
        PyErr_Format(PyExc_TypeError, "%s() takes two str or two bytes objects", name);
        return -1;
    }
    if (a->text) {
#if PY_VERSION_HEX < 0x030C0000
        /* A legacy (not ready) str has no canonical data yet. */
        if (PyUnicode_READY(chunk) < 0 || PyUnicode_READY(tail) < 0)
            return -1;
#endif
        a->kind = PyUnicode_KIND(chunk);
        a->data = PyUnicode_DATA(chunk);
        a->size = PyUnicode_GET_LENGTH(chunk);
        a->tail_size = PyUnicode_GET_LENGTH(tail);
    } else {
        a->kind = PyUnicode_1BYTE_KIND;
        a->data = PyBytes_AS_STRING(chunk);
        a->size = PyBytes_GET_SIZE(chunk);
        a->tail_size = PyBytes_GET_SIZE(tail);
    }
    return 0;
}

static PyObject *split_lf(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    SplitArgs a;
    if (split_args("split_lf", args, nargs, &a) < 0)
        return NULL;
    PyObject *tail = a.tail, *chunk = a.chunk;
    int text = a.text, kind = a.kind;
    const void *data = a.data;
    Py_ssize_t size = a.size;
    PyObject *lines = PyList_New(0);
    if (lines == NULL)
        return NULL;
    Py_ssize_t start = 0, end;
    int first = 1;
    while ((end = find_lf(kind, data, start, size)) >= 0) {
        PyObject *line = text
            ? PyUnicode_Substring(chunk, start, end + 1)
            : PyBytes_FromStringAndSize((const char *)data + start, end + 1 - start);
        if (first && line != NULL && a.tail_size) {
            /* The incomplete line of the previous chunk begins this one. */
            PyObject *joined = text ? PyUnicode_Concat(tail, line) : PyNumber_Add(tail, line);
            Py_DECREF(line);
            line = joined;
        }
        if (append_steal(lines, line) < 0)
            goto fail;
        first = 0;
        start = end + 1;
    }
    /* The new tail: after the last "\n" (tail + chunk if there was none). */
    PyObject *rest;
    if (first) {
        if (text)
            rest = PyUnicode_Concat(tail, chunk);
        else
            rest = PyNumber_Add(tail, chunk);
    } else if (start == size) {
        rest = text ? PyUnicode_New(0, 0) : PyBytes_FromStringAndSize(NULL, 0);
    } else {
        rest = text ? PyUnicode_Substring(chunk, start, size)
                    : PyBytes_FromStringAndSize((const char *)data + start, size - start);
    }
    if (append_steal(lines, rest) < 0)
        goto fail;
    return lines;
fail:
    Py_DECREF(lines);
    return NULL;
}

/* ------------------------------------------------------------- LineCutter */

/* The complete lines of a chunk, each cut when it is asked for: only the
 * chunk and the line handed out are alive, and each line is made while its
 * bytes are in the cache (a pre-split list makes them all, then hands them
 * out from memory written long before). */
typedef struct {
    PyObject_HEAD
    PyObject *chunk;    /* str or bytes; NULL once every line is out */
    PyObject *prefix;   /* the previous chunk's tail, for the first line */
    const void *data;   /* the chunk's characters (chunk keeps them alive) */
    Py_ssize_t pos;     /* where the next line starts */
    Py_ssize_t end;     /* just past the chunk's last "\n" */
    int text;           /* chunk is a str (else bytes) */
    int kind;           /* its character width; 1 for bytes */
} LineCutter;

static PyTypeObject LineCutter_Type;

static void LineCutter_dealloc(LineCutter *self)
{
    Py_XDECREF(self->chunk);
    Py_XDECREF(self->prefix);
    PyObject_Free(self);
}

/* line (a reference stolen) after the previous chunk's tail: the first
 * line of a chunk, once. NULL on error, the prefix kept for the next try.
 * Out of line: the step that inlines cut_next() stays small. */
static Py_NO_INLINE PyObject *join_prefix(LineCutter *self, PyObject *line)
{
    PyObject *joined = self->text ? PyUnicode_Concat(self->prefix, line)
                                  : PyNumber_Add(self->prefix, line);
    Py_DECREF(line);
    if (joined != NULL)
        Py_CLEAR(self->prefix);
    return joined;
}

/* The next line of a cutter that has one (chunk != NULL). Runs no Python
 * code (only bytes and str are made and freed), which is what lets
 * LineIter_am_send call it on the reader's cutter without a reference. */
static inline PyObject *cut_next(LineCutter *self)
{
    Py_ssize_t start = self->pos, length;
    PyObject *line;
    /* There is a "\n" before end: end is just past the last one. (Only
     * the length lives across the calls: fewer registers to save.) */
    if (!self->text) {
        const char *p = (const char *)self->data + start;
        length = (const char *)memchr(p, '\n', (size_t)(self->end - start)) + 1 - p;
        line = PyBytes_FromStringAndSize(p, length);
    } else {
        length = find_lf(self->kind, self->data, start, self->end) + 1 - start;
        line = PyUnicode_Substring(self->chunk, start, start + length);
    }
    if (line == NULL)
        return NULL;
    if (self->prefix != NULL && (line = join_prefix(self, line)) == NULL)
        return NULL;   /* nothing taken: the next call tries again */
    if ((self->pos += length) >= self->end)
        Py_CLEAR(self->chunk);   /* all out: the chunk can go */
    return line;
}

static PyObject *LineCutter_next(LineCutter *self)
{
    if (self->chunk == NULL)
        return NULL;
    return cut_next(self);
}

static PyObject *LineCutter_length_hint(LineCutter *self, PyObject *unused)
{
    Py_ssize_t count = 0;
    if (self->chunk != NULL) {
        for (Py_ssize_t at = self->pos, nl;
             (nl = find_lf(self->kind, self->data, at, self->end)) >= 0; at = nl + 1)
            count++;
    }
    return PyLong_FromSsize_t(count);
}

static PyMethodDef LineCutter_methods[] = {
    {"__length_hint__", (PyCFunction)LineCutter_length_hint, METH_NOARGS,
     "How many lines are left."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LineCutter_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caio._lines.LineCutter",
    .tp_basicsize = sizeof(LineCutter),
    .tp_dealloc = (destructor)LineCutter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The complete lines of a chunk, cut one at a time (cut_lf makes it).",
    .tp_iter = caio_return_self,
    .tp_iternext = (iternextfunc)LineCutter_next,
    .tp_methods = LineCutter_methods,
};

/* The position of the last "\n" of data[0:size], or -1. */
static Py_ssize_t rfind_lf(int kind, const void *data, Py_ssize_t size)
{
    switch (kind) {
    case PyUnicode_1BYTE_KIND: {
        /* Not memrchr: a GNU extension. The last line end of a chunk is
         * at most a line's length from its end. */
        const unsigned char *p = (const unsigned char *)data;
        for (Py_ssize_t i = size - 1; i >= 0; i--)
            if (p[i] == '\n')
                return i;
        return -1;
    }
    case PyUnicode_2BYTE_KIND: {
        const Py_UCS2 *p = (const Py_UCS2 *)data;
        for (Py_ssize_t i = size - 1; i >= 0; i--)
            if (p[i] == '\n')
                return i;
        return -1;
    }
    default: {
        const Py_UCS4 *p = (const Py_UCS4 *)data;
        for (Py_ssize_t i = size - 1; i >= 0; i--)
            if (p[i] == '\n')
                return i;
        return -1;
    }
    }
}

static PyObject *cut_lf(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    SplitArgs a;
    if (split_args("cut_lf", args, nargs, &a) < 0)
        return NULL;
    PyObject *tail = a.tail, *chunk = a.chunk;
    Py_ssize_t last = rfind_lf(a.kind, a.data, a.size);
    if (last < 0) {   /* no complete line: all of it is the new tail */
        PyObject *all = a.text ? PyUnicode_Concat(tail, chunk) : PyNumber_Add(tail, chunk);
        if (all == NULL)
            return NULL;
        PyObject *result = PyTuple_Pack(2, Py_None, all);
        Py_DECREF(all);
        return result;
    }
    PyObject *rest = a.text
        ? PyUnicode_Substring(chunk, last + 1, a.size)
        : PyBytes_FromStringAndSize((const char *)a.data + last + 1, a.size - last - 1);
    if (rest == NULL)
        return NULL;
    LineCutter *cutter = PyObject_New(LineCutter, &LineCutter_Type);
    if (cutter == NULL) {
        Py_DECREF(rest);
        return NULL;
    }
    cutter->chunk = Py_NewRef(chunk);
    cutter->prefix = a.tail_size ? Py_NewRef(tail) : NULL;
    cutter->data = a.data;
    cutter->pos = 0;
    cutter->end = last + 1;
    cutter->text = a.text;
    cutter->kind = a.kind;
    PyObject *result = PyTuple_Pack(2, (PyObject *)cutter, rest);
    Py_DECREF(cutter);
    Py_DECREF(rest);
    return result;
}

/* ----------------------------------------------------------- LineIterator */

typedef struct {
    PyObject_HEAD
    PyObject *reader;       /* the ReadAhead whose lines are iterated */
    PyObject *readline;     /* reader._readline: a coroutine function */
    PyObject *pending;      /* the coroutine a step waits on, or NULL */
    PyObject *stop;         /* a StopIteration to raise again, or NULL */
    Py_ssize_t lines_offset;  /* where reader keeps _lines, or -1: getattr */
} LineIter;

static PyObject *str_lines;   /* "_lines", interned */

static PyTypeObject LineIter_Type;

static PyObject *LineIter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *reader, *readline;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "LineIterator() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "LineIterator", 2, 2, &reader, &readline))
        return NULL;
    if (!PyCallable_Check(readline)) {
        PyErr_SetString(PyExc_TypeError, "LineIterator() readline must be callable");
        return NULL;
    }
    LineIter *self = (LineIter *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->reader = Py_NewRef(reader);
    self->readline = Py_NewRef(readline);
    self->pending = NULL;
    self->stop = NULL;
    self->lines_offset = caio_slot_offset(reader, str_lines);
    return (PyObject *)self;
}

static int LineIter_traverse(LineIter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->reader);
    Py_VISIT(self->readline);
    Py_VISIT(self->pending);
    Py_VISIT(self->stop);
    return 0;
}

static int LineIter_clear(LineIter *self)
{
    Py_CLEAR(self->reader);
    Py_CLEAR(self->readline);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->stop);
    return 0;
}

static void LineIter_dealloc(LineIter *self)
{
    PyObject_GC_UnTrack(self);
    LineIter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The next line of reader._lines (a new reference), or NULL: with an
 * exception set on error, without one when there is none (_lines is None
 * or exhausted). */
static PyObject *take_line(LineIter *self)
{
    PyObject *lines = caio_slot_get(self->reader, self->lines_offset, str_lines);
    if (lines == NULL)
        return NULL;
    PyObject *line = NULL;
    if (lines != Py_None) {
        iternextfunc next = Py_TYPE(lines)->tp_iternext;
        if (next == NULL) {
            PyErr_Format(PyExc_TypeError, "_lines is not an iterator: %.100s",
                         Py_TYPE(lines)->tp_name);
        } else if ((line = next(lines)) == NULL && PyErr_Occurred() &&
                   PyErr_ExceptionMatches(PyExc_StopIteration)) {
            PyErr_Clear();
        }
    }
    Py_DECREF(lines);
    return line;
}

/* A line the readline coroutine returned: the end of the file if empty. */
static PySendResult finish(PyObject *line, PyObject **result)
{
    int truth = PyObject_IsTrue(line);
    if (truth <= 0) {
        Py_DECREF(line);
        if (truth == 0)
            PyErr_SetNone(PyExc_StopAsyncIteration);
        return PYGEN_ERROR;
    }
    *result = line;
    return PYGEN_RETURN;
}

/* After the pending coroutine's send or throw gave `status`. */
static PySendResult after_pending(LineIter *self, PySendResult status, PyObject **result)
{
    if (status == PYGEN_NEXT)
        return PYGEN_NEXT;   /* its yield (a future) goes up to the loop */
    Py_CLEAR(self->pending);
    if (status == PYGEN_ERROR)
        return PYGEN_ERROR;
    PyObject *line = *result;
    *result = NULL;
    return finish(line, result);
}

/* The general step: a line from whatever _lines is, else a read (or the
 * read it waits on goes on). */
static Py_NO_INLINE PySendResult step(LineIter *self, PyObject *arg, PyObject **result)
{
    *result = NULL;
    if (self->pending == NULL) {
        /* A new step: a line already split, or a read. */
        PyObject *line = take_line(self);
        if (line != NULL) {
            *result = line;
            return PYGEN_RETURN;
        }
        if (PyErr_Occurred())
            return PYGEN_ERROR;
        if ((self->pending = PyObject_CallNoArgs(self->readline)) == NULL)
            return PYGEN_ERROR;
        arg = Py_None;   /* a coroutine starts with None */
    }
    return after_pending(self, caio_send_held(self->pending, arg, result), result);
}

static PySendResult LineIter_am_send(LineIter *self, PyObject *arg, PyObject **result)
{
    /* Most steps: _lines is cut_lf's cutter with a line left. It is cut
     * right here, without the generic next() and without a reference to
     * the cutter: cut_next() runs no Python code, so nothing can replace
     * _lines (and free the cutter) meanwhile. */
    if (self->pending == NULL && self->lines_offset >= 0) {
        PyObject *lines = *(PyObject **)((char *)self->reader + self->lines_offset);
        if (lines != NULL && Py_IS_TYPE(lines, &LineCutter_Type) &&
            ((LineCutter *)lines)->chunk != NULL) {
            PyObject *line = cut_next((LineCutter *)lines);
            *result = line;
            return line != NULL ? PYGEN_RETURN : PYGEN_ERROR;
        }
    }
    return step(self, arg, result);
}

static PyObject *LineIter_iternext(LineIter *self)
{
    PyObject *result;
    PySendResult status = LineIter_am_send(self, Py_None, &result);
    return caio_send_result(&self->stop, status, result);
}

static PyObject *LineIter_send(LineIter *self, PyObject *arg)
{
    PyObject *result;
    PySendResult status = LineIter_am_send(self, arg, &result);
    return caio_send_result(&self->stop, status, result);
}

static PyObject *LineIter_throw(LineIter *self, PyObject *args)
{
    if (self->pending == NULL)
        return caio_throw_here(args);   /* not waiting on anything */
    PyObject *result;
    PySendResult status = caio_throw_into(self->pending, args, &result);
    status = after_pending(self, status, &result);
    return caio_send_result(&self->stop, status, result);
}

static PyObject *LineIter_close(LineIter *self, PyObject *unused)
{
    return caio_close_slot(&self->pending);
}

static PyObject *LineIter_anext(LineIter *self)
{
    return caio_anext_self((PyObject *)self, self->pending, "line iterator");
}

static PyAsyncMethods LineIter_as_async = {
    .am_await = caio_return_self,
    .am_aiter = caio_return_self,
    .am_anext = (unaryfunc)LineIter_anext,
    .am_send = (sendfunc)LineIter_am_send,
};

static PyMethodDef LineIter_methods[] = {
    {"send", (PyCFunction)LineIter_send, METH_O,
     "send($self, value, /)\n--\n\nResume the step (as a coroutine's send)."},
    {"throw", (PyCFunction)LineIter_throw, METH_VARARGS,
     "throw($self, typ, val=None, tb=None, /)\n--\n\n"
     "Raise in the read the step waits on (as a coroutine's throw)."},
    {"close", (PyCFunction)LineIter_close, METH_NOARGS,
     "close($self, /)\n--\n\nClose the read the step waits on, if any."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LineIter_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caio._lines.LineIterator",
    .tp_basicsize = sizeof(LineIter),
    .tp_dealloc = (destructor)LineIter_dealloc,
    .tp_as_async = &LineIter_as_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "LineIterator(reader, readline, /)\n--\n\n"
              "async for over reader's lines: each __anext__ is this object,\n"
              "an awaitable that takes a line from reader._lines without\n"
              "suspending, or awaits readline() (an empty line ends it).",
    .tp_traverse = (traverseproc)LineIter_traverse,
    .tp_clear = (inquiry)LineIter_clear,
    .tp_iter = caio_return_self,
    .tp_iternext = (iternextfunc)LineIter_iternext,
    .tp_methods = LineIter_methods,
    .tp_new = LineIter_new,
};

/* ----------------------------------------------------------------- module */

static PyMethodDef lines_methods[] = {
    {"split_lf", (PyCFunction)(void (*)(void))split_lf, METH_FASTCALL,
     "split_lf($module, tail, chunk, /)\n--\n\n"
     "chunk (str or bytes, like tail) cut after each \"\\n\": the complete\n"
     "lines, the first prefixed with tail, then the rest (the new tail,\n"
     "maybe empty). TypeError for other types."},
    {"cut_lf", (PyCFunction)(void (*)(void))cut_lf, METH_FASTCALL,
     "cut_lf($module, tail, chunk, /)\n--\n\n"
     "(lines, rest): an iterator over the complete lines of chunk (str or\n"
     "bytes, like tail), cut after each \"\\n\" when asked for, the first\n"
     "prefixed with tail; rest follows the last \"\\n\". (None, tail + chunk)\n"
     "when chunk has no \"\\n\". TypeError for other types."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef lines_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "caio._lines",
    .m_doc = "Line splitting and the async line iterator of aiofile, in C.",
    .m_size = -1,
    .m_methods = lines_methods,
};

PyMODINIT_FUNC PyInit__lines(void)
{
    if (str_lines == NULL && (str_lines = PyUnicode_InternFromString("_lines")) == NULL)
        return NULL;
    if (PyType_Ready(&LineIter_Type) < 0 || PyType_Ready(&LineCutter_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&lines_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "LineIterator", (PyObject *)&LineIter_Type) < 0 ||
        PyModule_AddObjectRef(m, "LineCutter", (PyObject *)&LineCutter_Type) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
