"""Filesystem operations (stat, open, rename, ...): what every backend shares.

One request shape serves them all, as in C (``src/common/fsops.h``): an
operation number and ``(fd, path, path2, fd2, flags, mode, offset,
length)``, where ``fd``/``fd2`` are the directory descriptors of ``path``
and ``path2`` (``AT_FDCWD`` for none), or the file descriptor of the
fd operations. ``NAMES`` numbers the operations in the order of C's
``enum caio_fsop``.

How a backend runs them: ``linux_uring`` as io_uring requests where its
probe found the opcode, ``thread_aio``/``python_aio`` in their workers
(``fs_async``); everything else (``linux_aio``, which kernel AIO cannot do,
and the operations a kernel's io_uring lacks) goes through ``call`` on
``executor()``, a small thread pool this module starts on first use.
"""

from __future__ import annotations

import os

from . import _fork

TYPE_CHECKING = False  # see caio/__init__.py: typing is not imported
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from concurrent.futures import Future, ThreadPoolExecutor
    from typing import Any

__all__ = (
    "AT_EMPTY_PATH", "AT_FDCWD", "AT_REMOVEDIR", "AT_SYMLINK_FOLLOW",
    "AT_SYMLINK_NOFOLLOW", "METHODS", "NAMES", "HandOver", "call", "deliver",
    "dropped", "executor", "on_thread", "orphaned",
)

NAMES = (
    "stat", "open", "close", "rename", "unlink", "mkdir", "link", "symlink",
    "ftruncate", "fallocate",
)
(STAT, OPEN, CLOSE, RENAME, UNLINK, MKDIR, LINK, SYMLINK,
 FTRUNCATE, FALLOCATE) = range(len(NAMES))

#: The asyncio adapter's method names and the operation each one is.
METHODS = {
    "stat": STAT, "fstat": STAT, "open": OPEN, "close_fd": CLOSE,
    "rename": RENAME, "unlink": UNLINK, "rmdir": UNLINK, "mkdir": MKDIR,
    "link": LINK, "symlink": SYMLINK, "ftruncate": FTRUNCATE,
    "fallocate": FALLOCATE,
}

# Linux's values (linux/fcntl.h): the C backends hand them to the kernel.
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000


def _dir(fd: int) -> int | None:
    return None if fd == AT_FDCWD else fd


def _fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    # os has posix_fallocate only, which emulates what the filesystem
    # lacks instead of failing as fallocate(2) does: the C library's.
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    func = getattr(libc, "fallocate64", None) or getattr(libc, "fallocate", None)
    if func is None:
        raise OSError(95, os.strerror(95))  # EOPNOTSUPP
    func.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    if func(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def call(
    op: int, fd: int, path: bytes | None, path2: bytes | None, fd2: int,
    flags: int, mode: int, offset: int, length: int,
) -> Any:
    """Do operation ``op`` with the ``os`` functions (on a worker thread).

    Returns None, open's descriptor or an ``os.stat_result``; raises the
    ``os`` function's OSError.
    """
    if op == STAT:
        if flags & AT_EMPTY_PATH:
            return os.fstat(fd)
        return os.stat(
            path, dir_fd=_dir(fd),  # type: ignore[arg-type]
            follow_symlinks=not flags & AT_SYMLINK_NOFOLLOW,
        )
    if op == OPEN:
        return os.open(path, flags, mode, dir_fd=_dir(fd))  # type: ignore[arg-type]
    if op == CLOSE:
        os.close(fd)
    elif op == RENAME:
        os.rename(path, path2, src_dir_fd=_dir(fd), dst_dir_fd=_dir(fd2))  # type: ignore[arg-type]
    elif op == UNLINK:
        remove = os.rmdir if flags & AT_REMOVEDIR else os.unlink
        remove(path, dir_fd=_dir(fd))  # type: ignore[arg-type]
    elif op == MKDIR:
        os.mkdir(path, mode, dir_fd=_dir(fd))  # type: ignore[arg-type]
    elif op == LINK:
        # flags carry AT_SYMLINK_FOLLOW only with a dir_fd (see the adapter);
        # without one os.link(follow_symlinks=False) is link(2) as well.
        os.link(
            path, path2, src_dir_fd=_dir(fd), dst_dir_fd=_dir(fd2),  # type: ignore[arg-type]
            follow_symlinks=bool(flags & AT_SYMLINK_FOLLOW),
        )
    elif op == SYMLINK:
        os.symlink(path, path2, dir_fd=_dir(fd2))  # type: ignore[arg-type]
    elif op == FTRUNCATE:
        os.ftruncate(fd, offset)
    elif op == FALLOCATE:
        _fallocate(fd, mode, offset, length)
    else:
        raise ValueError(f"no filesystem operation number {op}")
    return None


def dropped(op: int, value: Any) -> None:
    """A result nobody will take (its awaiting task was cancelled): give
    back what it made. An opened descriptor would otherwise leak."""
    if op == OPEN and isinstance(value, int):
        try:
            os.close(value)
        except OSError:
            pass


def orphaned(op: int, work: Future[Any]) -> None:
    """``work`` is done and nobody will ever take its result (its waiter
    was cancelled, its loop is closed, its Trio run is over): give back
    what it made (nothing, if it was cancelled before it started)."""
    if not work.cancelled() and work.exception() is None:
        dropped(op, work.result())


class HandOver:
    """The one callback, on the loop of ``future`` (asyncio's or Trio's),
    that gives ``work``'s outcome to ``future``, or, if its waiter was
    cancelled first, gives back what it made.

    A loop closed with it still queued (asyncio's close() discards its
    ready callbacks) never calls it: then dropping it gives back what the
    work made, as nobody can take that any more.
    """

    __slots__ = ("_args",)

    def __init__(self, op: int, work: Future[Any], future: Any) -> None:
        self._args: tuple[int, Future[Any], Any] | None = (op, work, future)

    def __call__(self) -> None:
        args, self._args = self._args, None
        if args is None:
            return
        op, work, future = args
        if future.cancelled() or work.cancelled():
            orphaned(op, work)
        elif (error := work.exception()) is not None:
            future.set_exception(error)
        else:
            future.set_result(work.result())

    def orphan(self) -> None:
        """It will never be called: give back what the work made."""
        args, self._args = self._args, None
        if args is not None:
            orphaned(args[0], args[1])

    def __del__(self) -> None:
        self.orphan()


def deliver(
    schedule: Callable[[HandOver], object], op: int, work: Future[Any], future: Any,
) -> None:
    """Once ``work`` is done, ``schedule`` (a thread-safe "call soon" of
    ``future``'s loop: ``loop.call_soon_threadsafe``,
    ``TrioToken.run_sync_soon``) a ``HandOver`` of its outcome to
    ``future``. A loop that refuses it (closed: RuntimeError; Trio's
    RunFinishedError is one) never will: what the work made is given back.
    """

    def done(_: object) -> None:
        # One callback on the loop decides who owns the result. Deciding it
        # in two (asyncio.wrap_future's, then a "was it cancelled?" check)
        # let a loop closed between them close a delivered descriptor.
        handover = HandOver(op, work, future)
        try:
            schedule(handover)
        except RuntimeError:
            handover.orphan()

    work.add_done_callback(done)


_executor: ThreadPoolExecutor | None = None
_executor_made_in = -1


def executor() -> ThreadPoolExecutor:
    """The process's pool for operations no backend worker or ring runs.

    Started on first use; a forked child starts its own (the parent's
    threads do not exist there).
    """
    global _executor, _executor_made_in
    generation = _fork.fork_generation()
    if _executor is None or _executor_made_in != generation:
        from concurrent.futures import ThreadPoolExecutor

        _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="caio-fs")
        _executor_made_in = generation
    return _executor


def on_thread(loop: asyncio.AbstractEventLoop, op: int, *args: Any) -> asyncio.Future[Any]:
    """Run ``call(op, *args)`` on ``executor()``; a future of its result on
    ``loop``. A cancelled future whose operation still ran gives back what
    it made (``dropped``), and so does an operation that ends after its
    loop closed (``deliver``)."""
    work: Future[Any] = executor().submit(call, op, *args)
    future: asyncio.Future[Any] = loop.create_future()

    def cancelled(_: object) -> None:
        if future.cancelled():
            work.cancel()  # not started yet: it never runs

    future.add_done_callback(cancelled)
    deliver(loop.call_soon_threadsafe, op, work, future)
    return future
