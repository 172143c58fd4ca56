/* The exception being raised, taken and put back, on every supported
 * Python (3.12 replaced PyErr_Fetch/Restore with one exception object).
 * Header only: static inline, for the backends (through caio.h) and for
 * the modules that do not link src/common (through awaitable.h). */
#ifndef CAIO_PYERR_H
#define CAIO_PYERR_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The exception being raised, as an instance (normalized, with its
 * traceback), cleared from the error indicator; NULL if none. */
static inline PyObject *caio_fetch_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Raise again an exception taken with caio_fetch_exception (stolen; NULL:
 * nothing). */
static inline void caio_restore_exception(PyObject *exc)
{
    if (exc == NULL)
        return;
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* Set aside the exception being raised (if any) while cleanup code that
 * may raise runs, then put it back: PyErr_Fetch/Restore before 3.12. */
typedef struct { PyObject *type, *value, *tb; } caio_saved_error;

static inline caio_saved_error caio_error_save(void)
{
    caio_saved_error saved = {NULL, NULL, NULL};
#if PY_VERSION_HEX >= 0x030C0000
    saved.value = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&saved.type, &saved.value, &saved.tb);
#endif
    return saved;
}

static inline void caio_error_restore(caio_saved_error saved)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(saved.value);
#else
    PyErr_Restore(saved.type, saved.value, saved.tb);
#endif
}

#endif
