/* Kernel features and the test-only mask (see kernel_features.h). */
#include "caio.h"
#include "kernel_features.h"
#include "fsops.h"
#include "nowait.h"

static const char *const names[CAIO_F_COUNT] = {
    [CAIO_F_URING] = "uring",
    [CAIO_F_URING_SINGLE_MMAP] = "uring_single_mmap",
    [CAIO_F_URING_NODROP] = "uring_nodrop",
    [CAIO_F_URING_CANCEL] = "uring_cancel",
    [CAIO_F_URING_PROBE] = "uring_probe",
    [CAIO_F_URING_READ_WRITE] = "uring_read_write",
    [CAIO_F_URING_STATX] = "uring_statx",
    [CAIO_F_URING_OPENAT] = "uring_openat",
    [CAIO_F_URING_EXT_ARG] = "uring_ext_arg",
    [CAIO_F_URING_FS] = "uring_fs",
    [CAIO_F_URING_SUBMIT_ALL] = "uring_submit_all",
    [CAIO_F_URING_COOP_TASKRUN] = "uring_coop_taskrun",
    [CAIO_F_URING_CANCEL_ANY] = "uring_cancel_any",
    [CAIO_F_URING_FTRUNCATE] = "uring_ftruncate",
    [CAIO_F_NOWAIT] = "nowait",
    [CAIO_F_STATX_DIOALIGN] = "statx_dioalign",
    [CAIO_F_EVENTFD] = "eventfd",
    [CAIO_F_STAT_CACHED] = "stat_cached",
};

/* Set once by caio_features_init, before any context exists. */
static uint32_t lacked;
static char mask_note[512];

const char *caio_feature_name(enum caio_feature f)
{
    return (unsigned)f < CAIO_F_COUNT ? names[f] : "?";
}

int caio_kernel_lacks(enum caio_feature f)
{
    return (lacked >> f) & 1;
}

const char *caio_kernel_mask_note(void)
{
    return mask_note;
}

void caio_features_common(struct caio_features *fs)
{
    caio_features_set(fs, CAIO_F_NOWAIT, caio_nowait_available);
    caio_features_set(fs, CAIO_F_STAT_CACHED, caio_fs_stat_cached_probe());
}

static int lookup(PyObject *name)
{
    for (int f = 0; f < CAIO_F_COUNT; f++) {
        if (PyUnicode_CompareWithASCIIString(name, names[f]) == 0)
            return f;
    }
    return -1;
}

int caio_features_add_names(PyObject *m)
{
    PyObject *all = PyTuple_New(CAIO_F_COUNT);

    if (all == NULL)
        return -1;
    for (int f = 0; f < CAIO_F_COUNT; f++) {
        PyObject *s = PyUnicode_FromString(names[f]);
        if (s == NULL) {
            Py_DECREF(all);
            return -1;
        }
        PyTuple_SET_ITEM(all, f, s);
    }
    if (PyModule_AddObject(m, "_FEATURE_NAMES", all) < 0) {
        Py_DECREF(all);
        return -1;
    }
    return 0;
}

int caio_features_init(void)
{
    PyObject *mod, *hidden = NULL, *note = NULL;
    int ret = -1;

    if ((mod = PyImport_ImportModule("caio._features")) == NULL)
        return -1;
    hidden = PyObject_CallMethod(mod, "lacked_names", NULL);
    note = PyObject_CallMethod(mod, "note", NULL);
    if (hidden == NULL || note == NULL)
        goto out;
    if (!PyTuple_Check(hidden) || !PyUnicode_Check(note)) {
        PyErr_SetString(PyExc_TypeError, "caio._features gave a wrong type");
        goto out;
    }
    lacked = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(hidden); i++) {
        PyObject *name = PyTuple_GET_ITEM(hidden, i);
        int f = PyUnicode_Check(name) ? lookup(name) : -1;
        if (f < 0) {
            PyErr_Format(PyExc_ValueError, "caio._features names %R, which the C "
                         "backends do not know", name);
            goto out;
        }
        lacked |= (uint32_t)1 << f;
    }
    {
        const char *text = PyUnicode_AsUTF8(note);
        if (text == NULL)
            goto out;
        snprintf(mask_note, sizeof(mask_note), "%s", text);
    }
    ret = 0;
out:
    Py_XDECREF(hidden);
    Py_XDECREF(note);
    Py_DECREF(mod);
    return ret;
}

PyObject *caio_features_names(const struct caio_features *fs)
{
    PyObject *set = PyFrozenSet_New(NULL), *s;

    if (set == NULL)
        return NULL;
    for (int f = 0; f < CAIO_F_COUNT; f++) {
        if (!caio_has(fs, (enum caio_feature)f))
            continue;
        if ((s = PyUnicode_FromString(names[f])) == NULL || PySet_Add(set, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(set);
            return NULL;
        }
        Py_DECREF(s);
    }
    return set;
}
