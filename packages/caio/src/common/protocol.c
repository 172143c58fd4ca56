/* The Context protocol every C backend shares: see protocol.h. */
#include "protocol.h"

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

int caio_parse_future_factory(PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames, PyObject **factory,
                              PyObject **call_soon)
{
    static const char *const names[] = {"factory", "call_soon"};
    PyObject *ob[2];

    if (caio_parse_args("set_future_factory", names, 2, 1, args, nargs, kwnames, ob) < 0)
        return -1;
    if (ob[1] == Py_None)
        ob[1] = NULL;
    if (!PyCallable_Check(ob[0])) {
        PyErr_Format(PyExc_TypeError, "future factory must be callable, not %.100s",
                     Py_TYPE(ob[0])->tp_name);
        return -1;
    }
    if (ob[1] != NULL && !PyCallable_Check(ob[1])) {
        PyErr_Format(PyExc_TypeError, "call_soon must be callable or None, not %.100s",
                     Py_TYPE(ob[1])->tp_name);
        return -1;
    }
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
