/* caio._awaitables' Future and FutureFactory (future.c). */
#ifndef CAIO_AWAITABLES_FUTURE_H
#define CAIO_AWAITABLES_FUTURE_H

#include <Python.h>

/* Add Future and FutureFactory to module; the asyncio exceptions they
 * raise are borrowed (the module keeps them). 0, or -1 with an error. */
int caio_future_types_init(PyObject *module, PyObject *cancelled_error,
                           PyObject *invalid_state_error);

#endif
