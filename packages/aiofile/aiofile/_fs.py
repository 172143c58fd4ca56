"""The one place that decides where a filesystem call runs.

``aiofile.os``, ``aiofile.os.path``, ``aiofile.tempfile`` and
``AIOFile.open`` never call the event loop themselves: they hand each call
to ``call`` (or ``call_in``), with the name of the caio context method that
can do it and the blocking function that does the same thing.

* When the context has a method of that name (caio 0.13's ``stat``,
  ``open``, ``rename``, ``unlink``, ...; on io_uring they run in the kernel
  where it has the opcode), that method runs the call. Its arguments,
  result and errors are those of the ``os`` function of the same name.
* Otherwise (an older caio, or a name given as None: composite calls such
  as ``makedirs``, and calls that have no kernel form such as ``listdir``)
  the blocking function runs in the loop's default executor (or the one
  given to ``call_in``).

Either way nothing blocks the loop. The functions return the awaitable
instead of being coroutines themselves: one coroutine frame less on every
call (see ``docs/performance.md``).
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future
from functools import partial
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ._running import run_in_thread, running_loop
from .context import default_context

if TYPE_CHECKING:
    from caio import AsyncioContextBase

_deliver: Callable[..., None] | None
try:  # caio's hand-over of a worker's result to a loop: see open_on_worker
    from caio._fsops import OPEN as _OPEN
    from caio._fsops import deliver as _deliver
except ImportError:  # an older caio
    _deliver = None

__all__ = ("call", "call_in", "in_kernel", "open_fd", "open_on_worker")

P = ParamSpec("P")
R = TypeVar("R")

# os.open makes descriptors non-inheritable (PEP 446); a context's open is
# given the flag explicitly, so that it holds whatever the backend does.
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def call_in(
    context: AsyncioContextBase | None,
    executor: Executor | None,
    name: str | None,
    function: Callable[P, R],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> Awaitable[R]:
    """``function(*args, **kwargs)`` without blocking the running loop.

    ``context`` (None: the running loop's default one) runs it when it has
    a method called ``name``; else ``function`` runs in ``executor`` (None:
    the loop's default). Raises RuntimeError when no loop runs; the
    awaitable raises what ``function`` raises.
    """
    loop = running_loop()  # None under Trio
    if name is not None:
        if context is None:
            context = default_context(loop)
        method = getattr(context, name, None)
        if method is not None:
            return method(*args, **kwargs)  # type: ignore[no-any-return]
    if loop is None:
        return run_in_thread(executor, partial(function, *args, **kwargs))
    if kwargs:
        return loop.run_in_executor(executor, partial(function, *args, **kwargs))
    return loop.run_in_executor(executor, function, *args)


def call(
    name: str | None, function: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs,
) -> Awaitable[R]:
    """``call_in`` with the running loop's default context and executor."""
    return call_in(None, None, name, function, *args, **kwargs)


def in_kernel(name: str) -> bool:
    """Whether ``name`` runs as an io_uring operation on the running loop's
    default context (False where the context cannot say). Raises
    RuntimeError when no loop runs."""
    probe: Callable[[str], bool] | None = getattr(
        default_context(running_loop()), "in_kernel", None,
    )
    return bool(probe is not None and probe(name))


def _refuse_directory(fd: int, flags: int, path: Any) -> None:
    # Only a read-only open succeeds on a directory (the kernel refuses
    # the others with EISDIR); the built-in open refuses it too.
    if flags & os.O_ACCMODE == os.O_RDONLY and stat.S_ISDIR(os.fstat(fd).st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)


async def open_fd(
    context: AsyncioContextBase,
    executor: Executor | None,
    path: str | bytes,
    flags: int,
    mode: int,
    blocking_open: Callable[[], int],
) -> int:
    """A descriptor of ``path`` for a file object, without blocking the loop.

    Through the context's ``open`` (io_uring's OPENAT) where it has one,
    refusing a directory with IsADirectoryError as the built-in ``open``
    does; else ``blocking_open()``, which must do the same, runs in
    ``executor``. Raises OSError.
    """
    method = getattr(context, "open", None)
    if method is None:
        return await open_on_worker(executor, blocking_open)
    fd: int = await method(path, flags | _CLOEXEC, mode)
    try:
        # fstat of an open descriptor needs no lookup: it does not block.
        _refuse_directory(fd, flags, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


async def open_on_worker(executor: Executor | None, blocking_open: Callable[[], int]) -> int:
    """``blocking_open()`` (it returns a new descriptor) on a worker thread.

    If the caller is cancelled while it runs, the descriptor it still opens
    is closed when it arrives instead of leaking (under Trio the call is not
    abandoned: see ``run_in_thread``). Raises what ``blocking_open`` raises.
    """
    loop = running_loop()
    if loop is None:
        return await run_in_thread(executor, blocking_open)
    if _deliver is None:
        job = loop.run_in_executor(executor, blocking_open)
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(_close_unclaimed)
            raise
    # Not run_in_executor's future: once its loop is closed, the result
    # of a call still running is dropped, with the descriptor it opens.
    # caio's hand-over closes one nobody can take (its waiter cancelled,
    # its loop closed, even with the hand-over already queued).
    work: Future[int] = Future()

    def run() -> None:
        if work.set_running_or_notify_cancel():
            try:
                work.set_result(blocking_open())
            except BaseException as exc:  # as concurrent.futures does
                work.set_exception(exc)

    loop.run_in_executor(executor, run)
    future: asyncio.Future[int] = loop.create_future()
    future.add_done_callback(lambda _: work.cancel())  # not started yet: never runs
    _deliver(loop.call_soon_threadsafe, _OPEN, work, future)
    return await future


def _close_unclaimed(job: asyncio.Future[int]) -> None:
    if not job.cancelled() and job.exception() is None:
        os.close(job.result())
