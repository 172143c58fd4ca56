/* Submit now or batch: see batch.h. */
#include "batch.h"

int caio_schedule_flush(PyObject *ctx, PyObject *call_soon, int *scheduled)
{
    PyObject *cb, *r;

    if (*scheduled)
        return 0;
    /* A fresh bound method each time (once per loop pass at most): caching
     * it would make the context a reference cycle. */
    if ((cb = PyObject_GetAttrString(ctx, "_flush")) == NULL)
        return -1;
    r = PyObject_CallOneArg(call_soon, cb);
    Py_DECREF(cb);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    *scheduled = 1;
    return 0;
}
