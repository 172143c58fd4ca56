"""Kernel layer of the pure-Python backend: the system calls and nothing else.

The counterpart of the C backends' kernel layers (``src/linux_uring/uring.h``,
``src/linux_aio/aio.h``, ``src/thread_aio/io.c``): no futures, no queues, no
asyncio. ``execute`` stores the kernel's answer in the operation as the C
completions carry it, a byte count or ``-errno``; the engine
(``_python_engine``) decides what happens next, and ``python_aio`` turns it
into bytes, ints and OSError.
"""

from __future__ import annotations

import errno
import os
import select
from collections.abc import Callable

from . import _fsops
from ._features import lacks
from ._limits import MAX_IO_SIZE, NOWAIT_MAX_PYTHON

try:
    import fcntl
except ImportError:  # Windows: no pipes that pread refuses to wait on
    fcntl = None  # type: ignore[assignment]

TYPE_CHECKING = False  # see caio/__init__.py: typing is not imported
if TYPE_CHECKING:
    from .python_aio import Operation

#: The kernel's cap on one read or write (INT_MAX rounded down to a page).
MAX_RW_COUNT = MAX_IO_SIZE
OFFSET_LIMIT = 2**63  # offsets are off_t: below this
PRIORITY_LIMIT = 0x10000
FD_MAX = 0x7FFFFFFF

READ, WRITE, FSYNC, FDSYNC, READINTO, READV, WRITEV, FS = 0, 1, 2, 3, 4, 5, 6, 7
OPCODE_NAMES = ("read", "write", "fsync", "fdsync", "readinto", "readv", "writev", "fs")

#: At most this many buffers in one readv/writev (the C backends' IOV_MAX).
try:
    IOV_MAX: int = os.sysconf("SC_IOV_MAX")
except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
    IOV_MAX = 1024
if IOV_MAX <= 0:  # "no limit" answered: the kernel's limit on Linux
    IOV_MAX = 1024

# Reads up to NOWAIT_MAX_PYTHON try RWF_NOWAIT on the calling thread (python_aio's
# read_async). Bigger ones go to the pool: copying megabytes from the page
# cache would stall the event loop for longer than a thread hop costs.
RWF_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)
# Without RWF_NOWAIT (not Linux, or hidden by the test switch: see
# caio/_features.py), every read goes to the pool.
preadv: Callable[..., int] | None = (
    getattr(os, "preadv", None) if RWF_NOWAIT and not lacks("nowait") else None
)
#: The kernel features this backend found (caio._features names): its
#: counterpart of the C backends' struct caio_features, the same for every
#: context (what it depends on cannot change while the process runs).
FEATURES: frozenset[str] = frozenset({"nowait"} if preadv is not None else ())
# Errors of the nowait read that the pool would only repeat: raise them at
# once. Anything else (EAGAIN, EOPNOTSUPP for /proc files, ESPIPE for pipes,
# EINVAL for O_DIRECT descriptors, ...) means "let a worker do it".
FAIL_AT_ONCE = frozenset((errno.EBADF, errno.EISDIR))

_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)
# Scatter/gather I/O where the system has it (not Windows); else one
# pread/pwrite and a copy (see _scatter_read, _gather_write).
_preadv: Callable[[int, list[memoryview], int], int] | None = getattr(os, "preadv", None)
_pwritev: Callable[[int, list[memoryview], int], int] | None = getattr(os, "pwritev", None)

__all__ = (
    "FAIL_AT_ONCE", "FD_MAX", "FEATURES", "IOV_MAX", "MAX_RW_COUNT", "NOWAIT_MAX_PYTHON",
    "OFFSET_LIMIT", "OPCODE_NAMES", "PRIORITY_LIMIT", "RWF_NOWAIT", "execute",
    "make_wakeup", "nowait_readinto", "oserror", "preadv", "signal",
)


def oserror(code: int) -> OSError:
    """The OSError for errno ``code``, as the kernel would name it."""
    # OSError(errno, msg) builds the matching subclass (IsADirectoryError...).
    return OSError(code, os.strerror(code))


# A worker waiting on a pipe wakes this often to see whether its operation
# was cancelled.
CANCEL_POLL_MS = 50


def wait_ready(fd: int, stop_fd: int, events: int, op: Operation) -> None:
    """Wait until a non-seekable ``fd`` is ready, the pool stops, or ``op``
    is cancelled (then raise OSError(ECANCELED)).

    A read from an empty pipe can block forever, and a blocked thread cannot
    be interrupted: close() would hang joining it, and cancelled reads would
    hold every worker. Waiting in poll() on the pool's stop descriptor lets
    close() end the wait with ECANCELED; waking every CANCEL_POLL_MS to look
    at op._cancel (set by cancel_future) frees the worker of a cancelled one.
    """
    if not hasattr(select, "poll"):
        return
    poller = select.poll()
    poller.register(fd, events)
    poller.register(stop_fd, select.POLLIN)
    while True:
        ready = poller.poll(CANCEL_POLL_MS)
        if op._cancel or any(ready_fd == stop_fd for ready_fd, _ in ready):
            raise oserror(errno.ECANCELED)
        if ready:  # readable/writable, or an error the read/write reports
            return


def nowait_readinto(view: memoryview, fd: int, offset: int) -> int:
    """Read into ``view`` from the page cache without blocking, on the
    calling thread: the count, or -1 when a worker must do it (not cached,
    a pipe, O_DIRECT, no RWF_NOWAIT here). Raises OSError (EBADF, EISDIR).

    The caller's buffer may well be aligned, so unlike read_async's
    misaligned scratch it cannot count on O_DIRECT failing with EINVAL:
    a direct read would wait for the disk even with RWF_NOWAIT. One fcntl
    asks instead.
    """
    if preadv is None or fcntl is None:
        return -1
    try:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0):
            return -1
        got = preadv(fd, [view], offset, RWF_NOWAIT)
    except OSError as exc:
        if exc.errno in FAIL_AT_ONCE:
            raise
        return -1
    if got == view.nbytes or got == 0:
        return got
    # Short: end of file, or the rest is not cached. At the end a nowait
    # read gives 0 (into the part the pool would overwrite anyway).
    try:
        at_end = preadv(fd, [view[got:got + 1]], offset + got, RWF_NOWAIT) == 0
    except (OSError, OverflowError):
        at_end = False
    return got if at_end else -1


def write_here(fd: int, view: memoryview | list[memoryview], offset: int) -> int:
    """A buffered write (a list: a writev) on the calling thread
    (``os.pwrite``/``os.pwritev`` release the GIL): the count, or -1 when a
    worker must do it (an O_DIRECT descriptor, whose write would wait for
    the disk; a stream, which ``pwrite`` refuses with ESPIPE before it
    could block; no ``os.pwritev``). Raises OSError.
    """
    if fcntl is None:  # Windows
        return -1  # type: ignore[unreachable]
    if isinstance(view, list) and not hasattr(os, "pwritev"):
        return -1
    try:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0):
            return -1
        if isinstance(view, list):
            return os.pwritev(fd, view, offset)
        return os.pwrite(fd, view, offset)
    except OSError as exc:
        if exc.errno == errno.ESPIPE:
            return -1
        raise


def refuse_wrong_end(fd: int, refused: int) -> None:
    """Raise OSError(EBADF) if ``fd`` is open with access mode ``refused``.

    pread/pwrite on a pipe fail with ESPIPE before they look at the access
    mode, and poll() on a pipe's write end never reports it readable (nor
    its read end writable): without this a read of a write end would wait
    forever instead of failing as read(2) does.
    """
    if fcntl is not None and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == refused:
        raise oserror(errno.EBADF)


def _scatter_read(fd: int, views: list[memoryview], offset: int) -> int:
    """preadv where the system has no preadv: one pread, then copies."""
    data = os.pread(fd, sum(view.nbytes for view in views), offset)
    start = 0
    for view in views:
        chunk = data[start:start + view.nbytes]
        view[:len(chunk)] = chunk
        start += len(chunk)
    return len(data)


def _gather_write(fd: int, views: list[memoryview], offset: int) -> int:
    """pwritev where the system has no pwritev: one joined pwrite."""
    return os.pwrite(fd, b"".join(views), offset)


def _transfer(op: Operation, fd: int, stop_fd: int) -> int:
    """readinto, readv, writev: straight into (from) the caller's buffers."""
    code = op._opcode
    reading = code != WRITEV
    if code == READINTO:
        assert op._view is not None
        views = [op._view]
    else:
        assert op._views is not None
        views = op._views
    try:
        if reading:
            return _preadv(fd, views, op._offset) if _preadv else _scatter_read(
                fd, views, op._offset,
            )
        return _pwritev(fd, views, op._offset) if _pwritev else _gather_write(
            fd, views, op._offset,
        )
    except OSError as exc:
        if exc.errno != errno.ESPIPE:
            raise
    # Pipes, sockets, ttys: no position. Nothing asked, nothing to wait for
    # (as read(2) of 0 bytes returns at once).
    refuse_wrong_end(fd, os.O_WRONLY if reading else os.O_RDONLY)
    if op._nbytes:
        wait_ready(fd, stop_fd, select.POLLIN if reading else select.POLLOUT, op)
    return os.readv(fd, views) if reading else os.writev(fd, views)


def execute(op: Operation, stop_fd: int) -> None:
    """Run one operation (in a worker thread, GIL released by os.*).

    Sets ``op._result`` (bytes transferred or -errno) and, for a read,
    ``op._data``. Never raises.
    """
    fd = op._fd
    code = op._opcode
    try:
        if code == READ:
            try:
                data = os.pread(fd, op._nbytes, op._offset)
            except OSError as exc:
                if exc.errno != errno.ESPIPE:
                    raise
                # Pipes, sockets, ttys: no position to read at.
                refuse_wrong_end(fd, os.O_WRONLY)
                wait_ready(fd, stop_fd, select.POLLIN, op)
                data = os.read(fd, op._nbytes)
            op._data = data
            op._result = len(data)
        elif code == WRITE:
            view = op._view
            assert view is not None
            try:
                try:
                    op._result = os.pwrite(fd, view, op._offset)
                except OSError as exc:
                    if exc.errno != errno.ESPIPE:
                        raise
                    refuse_wrong_end(fd, os.O_RDONLY)
                    wait_ready(fd, stop_fd, select.POLLOUT, op)
                    op._result = os.write(fd, view)
            finally:
                # Unlocks a bytearray payload for resizing again.
                view.release()
                op._view = None
        elif code == FS:
            # A filesystem operation (caio._fsops): its value, not a count.
            op._data = _fsops.call(*op._payload)
            op._result = 0
        elif code >= READINTO:  # readinto, readv, writev (FS is taken above)
            try:
                op._result = _transfer(op, fd, stop_fd)
            finally:
                # The caller may resize its buffers again.
                op._release_buffers()
        elif code == FSYNC:
            os.fsync(fd)
            op._result = 0
        else:
            _fdatasync(fd)
            op._result = 0
    except OSError as exc:
        op._result = -(exc.errno or errno.EIO)
    except MemoryError:
        op._result = -errno.ENOMEM
    except OverflowError:
        op._result = -errno.EOVERFLOW
    except Exception:  # a bug must fail the operation, not kill the worker
        import logging

        logging.getLogger("caio.python_aio").exception(
            "caio: %r failed unexpectedly", op,
        )
        op._result = -errno.EIO


# ---- the wakeup descriptors (src/common/notify.c in C) ------------------


def make_wakeup() -> tuple[int, int]:
    """A non-blocking (read end, write end); the same fd for an eventfd."""
    if hasattr(os, "eventfd") and not lacks("eventfd"):
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return fd, fd
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


def signal(fd_r: int, fd_w: int) -> None:
    """Make ``fd_r`` readable."""
    try:
        if fd_r == fd_w:
            os.eventfd_write(fd_w, 1)
        else:
            os.write(fd_w, b"\0")
    except OSError:  # a full pipe is readable already
        pass

