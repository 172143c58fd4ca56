"""Blocked io_uring, for real: a child process installs a seccomp filter that
makes io_uring_setup fail (as container runtimes' default profiles do), then
imports caio. caio.linux_uring must refuse to import with a message that
says why and what to do, and caio must select the next backend.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import caio

# The children import the same caio as this process (a source tree, a build
# directory or an installed package).
PACKAGE_ROOT = Path(caio.__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="seccomp is Linux only"),
    pytest.mark.skipif(
        platform.machine() not in ("x86_64", "aarch64"),
        reason="the filter below knows the x86_64 and aarch64 audit arches",
    ),
]

# Runs in the child. Builds a classic BPF program:
#   load arch; unknown arch -> allow
#   load syscall nr; io_uring_setup -> ERRNO(err); else allow
CHILD = textwrap.dedent(
    """
    import ctypes, errno, json, os, sys, warnings

    ERR = getattr(errno, sys.argv[1])
    AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[os.uname().machine]
    NR_IO_URING_SETUP = 425          # same number on x86_64 and aarch64
    BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
    RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                    ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    code = [
        Filter(BPF_LD_W_ABS, 0, 0, 4),                 # seccomp_data.arch
        Filter(BPF_JEQ_K, 1, 0, AUDIT_ARCH),
        Filter(BPF_RET_K, 0, 0, RET_ALLOW),
        Filter(BPF_LD_W_ABS, 0, 0, 0),                 # seccomp_data.nr
        Filter(BPF_JEQ_K, 0, 1, NR_IO_URING_SETUP),
        Filter(BPF_RET_K, 0, 0, RET_ERRNO | ERR),
        Filter(BPF_RET_K, 0, 0, RET_ALLOW),
    ]
    filters = (Filter * len(code))(*code)
    program = Program(len(code), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p,
                           ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        sys.exit("PR_SET_NO_NEW_PRIVS: " + os.strerror(ctypes.get_errno()))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0:
        sys.exit("PR_SET_SECCOMP: " + os.strerror(ctypes.get_errno()))

    # The filter works: the raw system call now fails as asked.
    libc.syscall.restype = ctypes.c_long
    params = ctypes.create_string_buffer(120)
    assert libc.syscall(NR_IO_URING_SETUP, 2, params) == -1
    assert ctypes.get_errno() == ERR, ctypes.get_errno()

    result = {}
    try:
        import caio.linux_uring
    except ImportError as exc:
        result["error"] = str(exc)
        result["name"] = exc.name
    os.environ.pop("CAIO_IMPL", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import caio
    result["uring"] = caio.linux_uring is not None
    result["linux_aio"] = caio.linux_aio is not None
    result["context_module"] = caio.Context.__module__
    result["warnings"] = [str(w.message) for w in caught]
    print(json.dumps(result))
    """
)


def run_child(err: str) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("CAIO_IMPL", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, err],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("err", "words"),
    [
        ("ENOSYS", ("ENOSYS", "seccomp", "CAIO_IMPL=linux")),
        ("EPERM", ("EPERM", "seccomp", "CAIO_IMPL=linux")),
    ],
)
def test_blocked_io_uring_setup(err: str, words: tuple[str, ...]) -> None:
    result = run_child(err)
    assert "error" in result, "caio.linux_uring imported despite the filter"
    message = result["error"]
    for word in words:
        assert word in message, message
    assert "io_uring_setup" in message
    assert result["name"] == "caio.linux_uring"
    # caio did not pick io_uring; automatically (no CAIO_IMPL, no
    # default_implementation file) it takes the next one, without a warning.
    assert result["uring"] is False
    assert result["context_module"] != "caio.linux_uring"
    if not Path(caio.__file__).with_name("default_implementation").exists():
        assert result["warnings"] == []
        if result["linux_aio"]:
            assert result["context_module"] == "caio.linux_aio"


@pytest.mark.skipif(caio.linux_uring is None, reason="io_uring is unusable here anyway")
def test_child_without_filter_imports_uring() -> None:
    # The same child code path works where io_uring is allowed: the
    # failures above come from the filter, not from the harness.
    env = dict(os.environ)
    env.pop("CAIO_IMPL", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    proc = subprocess.run(
        [sys.executable, "-c", "import caio; print(caio.Context.__module__)"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "caio.linux_uring"
