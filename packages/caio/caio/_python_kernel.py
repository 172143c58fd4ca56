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

READ, WRITE, FSYNC, FDSYNC = 0, 1, 2, 3
OPCODE_NAMES = ("read", "write", "fsync", "fdsync")

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

__all__ = (
    "FAIL_AT_ONCE", "FD_MAX", "FEATURES", "MAX_RW_COUNT", "NOWAIT_MAX_PYTHON", "OFFSET_LIMIT",
    "OPCODE_NAMES", "PRIORITY_LIMIT", "RWF_NOWAIT", "execute",
    "make_wakeup", "oserror", "preadv", "signal",
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


def refuse_wrong_end(fd: int, refused: int) -> None:
    """Raise OSError(EBADF) if ``fd`` is open with access mode ``refused``.

    pread/pwrite on a pipe fail with ESPIPE before they look at the access
    mode, and poll() on a pipe's write end never reports it readable (nor
    its read end writable): without this a read of a write end would wait
    forever instead of failing as read(2) does.
    """
    if fcntl is not None and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == refused:
        raise oserror(errno.EBADF)


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

