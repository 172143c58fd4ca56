/* caio._dio: what the kernel says about a descriptor's O_DIRECT alignment.
 *
 * One function, statx_dioalign(fd): statx(fd, "", AT_EMPTY_PATH,
 * STATX_DIOALIGN) as a raw system call. Linux 6.1 added the two fields
 * stx_dio_mem_align and stx_dio_offset_align; a kernel that fills them sets
 * STATX_DIOALIGN in stx_mask. Older kernels leave the bit clear (or have no
 * statx at all: ENOSYS), and a file that cannot do direct I/O gets the bit
 * with both fields 0. Either way the answer is None and caio/_direct.py
 * falls back to the block device's logical block size.
 *
 * Built apart from the backends (it needs nothing of src/common), and
 * optional: without a compiler caio/_direct.py reads sysfs instead. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/stat.h>

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

/* Headers older than Linux 6.1 have neither the bit nor the field names;
 * the fields then sit in the spare words at the same offsets (the struct
 * layout is ABI), which is where the kernel writes them. */
#ifndef STATX_DIOALIGN
#define STATX_DIOALIGN 0x00002000U
#define CAIO_DIO_MEM_OFFSET 0x98
#define CAIO_DIO_OFFSET_OFFSET 0x9c
#else
#define CAIO_DIO_MEM_OFFSET offsetof(struct statx, stx_dio_mem_align)
#define CAIO_DIO_OFFSET_OFFSET offsetof(struct statx, stx_dio_offset_align)
#endif

static PyObject *statx_dioalign(PyObject *module, PyObject *arg)
{
#ifdef SYS_statx
    int fd = PyObject_AsFileDescriptor(arg);
    if (fd < 0)
        return NULL;
    struct statx stx;
    long rc;
    memset(&stx, 0, sizeof(stx));
    /* statx may wait for a network filesystem: not with the GIL held. */
    Py_BEGIN_ALLOW_THREADS
    rc = syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        if (errno == ENOSYS || errno == EPERM)  /* no statx, or seccomp */
            Py_RETURN_NONE;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (!(stx.stx_mask & STATX_DIOALIGN))
        Py_RETURN_NONE;
    uint32_t mem, offset;
    memcpy(&mem, (const char *)&stx + CAIO_DIO_MEM_OFFSET, sizeof(mem));
    memcpy(&offset, (const char *)&stx + CAIO_DIO_OFFSET_OFFSET, sizeof(offset));
    if (mem == 0 || offset == 0)  /* this file cannot do direct I/O */
        Py_RETURN_NONE;
    return Py_BuildValue("(kk)", (unsigned long)mem, (unsigned long)offset);
#else
    Py_RETURN_NONE;
#endif
}

static PyMethodDef dio_methods[] = {
    {"statx_dioalign", statx_dioalign, METH_O,
     "statx_dioalign($module, fd, /)\n--\n\n"
     "(memory alignment, offset alignment) of O_DIRECT I/O on fd, as\n"
     "statx(STATX_DIOALIGN) reports them; None where the kernel does not\n"
     "(before Linux 6.1, or a file without direct I/O). OSError (EBADF...)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef dio_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "caio._dio",
    .m_doc = "statx(STATX_DIOALIGN) for caio.dio_alignment (see caio/_direct.py).",
    .m_size = 0,
    .m_methods = dio_methods,
};

PyMODINIT_FUNC PyInit__dio(void)
{
    return PyModule_Create(&dio_module);
}
