/* Argument parsing for METH_FASTCALL | METH_KEYWORDS entry points.
 *
 * CPython's own fast parser (_PyArg_Parser) is private API, so this is a
 * small public-API equivalent: positional arguments first, then keywords
 * matched by name, each name at most once. */
#include "caio.h"

int caio_parse_args(const char *funcname, const char *const *names,
                    Py_ssize_t nnames, Py_ssize_t required,
                    PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames, PyObject **out)
{
    Py_ssize_t i;

    if (kwnames == NULL && nargs >= required && nargs <= nnames) {
        /* The adapter's calls: positional, nothing to match or check. */
        for (i = 0; i < nargs; i++)
            out[i] = args[i];
        for (; i < nnames; i++)
            out[i] = NULL;
        return 0;
    }
    if (nargs > nnames) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most %zd arguments (%zd given)",
                     funcname, nnames, nargs);
        return -1;
    }
    for (i = 0; i < nnames; i++)
        out[i] = i < nargs ? args[i] : NULL;

    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            const char *name = PyUnicode_AsUTF8(key);
            Py_ssize_t slot = -1;
            if (name == NULL)
                return -1;
            for (i = 0; i < nnames; i++) {
                if (strcmp(name, names[i]) == 0) {
                    slot = i;
                    break;
                }
            }
            if (slot < 0) {
                PyErr_Format(PyExc_TypeError,
                             "%s() got an unexpected keyword argument '%s'",
                             funcname, name);
                return -1;
            }
            if (out[slot] != NULL) {
                PyErr_Format(PyExc_TypeError,
                             "%s() got multiple values for argument '%s'",
                             funcname, name);
                return -1;
            }
            out[slot] = args[nargs + k];
        }
    }
    for (i = 0; i < required; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s' (pos %zd)",
                         funcname, names[i], i + 1);
            return -1;
        }
    }
    return 0;
}
