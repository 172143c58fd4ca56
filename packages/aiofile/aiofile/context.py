"""One default caio context per event loop, and one per Trio run.

A caio context owns kernel or thread resources (an io_uring ring, an AIO
context, a thread pool) and is bound to one event loop. The default context
of a loop is made on first use and must not outlive the loop.

How the release is tied to ``loop.close()`` without patching the loop:
``BaseEventLoop.close()`` clears the loop's timer heap, so a timer handle
scheduled far in the future is dropped exactly then. Its callback belongs
to a ``_Release`` object that nothing else references, and CPython's
reference counting runs ``_Release.__del__`` at that moment, which closes
the context. That covers ``asyncio.run``, ``asyncio.Runner``, aiomisc and
hand-made loops alike. Two nets catch the rest (an exotic loop class that
keeps its timers, an interpreter without reference counting): every new
default context first releases those of loops that are closed by now, and
caio closes every live context when the interpreter exits.

Under Trio (directly or through AnyIO) the default context is a
``caio.TrioContext`` kept in a ``trio.lowlevel.RunVar``: one per run, and
caio closes it when its run ends. Whether Trio runs is asked only when no
asyncio loop runs, and only when a file picks its context (once per file),
so asyncio pays nothing for it and needs neither trio nor sniffio.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import caio

from ._running import trio_runs

if TYPE_CHECKING:
    from caio import AsyncioContextBase

__all__ = ("DEFAULT_CONTEXT_STORE", "create_context", "default_context", "get_default_context")

# Far enough that it never fires in practice; if it does, it re-arms.
_ARM_DELAY = 60.0 * 60 * 24 * 365

#: The default context of each loop, keyed by ``id(loop)`` as in aiofile
#: 3.12 (a key does not keep its loop alive). A loop's id can be reused
#: once it is gone, so an entry counts only if its context's loop is the
#: loop asking.
DEFAULT_CONTEXT_STORE: dict[int, AsyncioContextBase] = {}
# caio's fork count when the contexts above were made (see _forget_parent_contexts).
_generation = caio.fork_generation()
# Loops of other threads create contexts concurrently.
_lock = threading.Lock()


class _Release:
    """Closes a loop's default context when the loop drops its timer."""

    __slots__ = ("context", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, context: AsyncioContextBase) -> None:
        self.loop = loop
        self.context = context

    def arm(self) -> None:
        self.loop.call_later(_ARM_DELAY, self.arm)

    def __del__(self) -> None:
        try:
            _release(self.loop, self.context)
        except Exception:  # at interpreter exit globals may be gone
            pass


def _release(loop: asyncio.AbstractEventLoop, context: AsyncioContextBase) -> None:
    with _lock:
        if DEFAULT_CONTEXT_STORE.get(id(loop)) is context:
            del DEFAULT_CONTEXT_STORE[id(loop)]
    try:
        context.close()
    except Exception:  # runs from __del__: nobody to tell
        pass


def _forget_parent_contexts() -> None:
    # After fork() a loop object may come along into the child, but its
    # context (a ring, a thread pool) belongs to the parent: caio refuses
    # to use it there. Start afresh; close() in the child only frees memory.
    global _generation
    with _lock:
        inherited = list(DEFAULT_CONTEXT_STORE.values())
        DEFAULT_CONTEXT_STORE.clear()
        _generation = caio.fork_generation()
    for context in inherited:
        try:
            context.close()
        except Exception:  # the parent's, nothing to report
            pass


def _release_closed_loops() -> None:
    with _lock:
        dead = [ctx for ctx in DEFAULT_CONTEXT_STORE.values() if ctx.closed or ctx.loop.is_closed()]
    for context in dead:
        _release(context.loop, context)


def default_context(loop: asyncio.AbstractEventLoop | None = None) -> AsyncioContextBase:
    """The default caio context of ``loop`` (the running one), made on first use.

    Under Trio (no asyncio loop runs, no ``loop`` given): the run's default
    context. Raises RuntimeError when no loop is given and none runs in
    this thread.
    """
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if trio_runs():
                return _trio_default_context()
            raise
    context = DEFAULT_CONTEXT_STORE.get(id(loop))
    if context is not None and not context.closed and context.loop is loop:
        if _generation == caio.fork_generation():
            return context
        _forget_parent_contexts()
    return create_context(loop=loop)


def create_context(
    max_requests: int = caio.AsyncioContextBase.MAX_REQUESTS_DEFAULT,
    loop: asyncio.AbstractEventLoop | None = None,
) -> AsyncioContextBase:
    """Make a new default context for ``loop`` (the current one) and store it.

    Files opened afterwards without a context use it; it is closed when its
    loop closes (under Trio: a ``caio.TrioContext`` for the running run,
    closed when the run ends). Raises what ``caio.AsyncioContext`` raises.
    """
    if loop is None:
        if _trio_without_loop():
            return _trio_default_context(max_requests)
        loop = _current_loop()
    _release_closed_loops()
    context = caio.AsyncioContext(max_requests, loop=loop)
    with _lock:
        DEFAULT_CONTEXT_STORE[id(loop)] = context
    _Release(loop, context).arm()
    return context


def get_default_context() -> AsyncioContextBase:
    """The current loop's default context, made on first use (aiofile 3.12's name).

    The current loop is the running one, else ``asyncio.get_event_loop()``'s;
    under Trio, the run's default context.
    """
    if _trio_without_loop():
        return _trio_default_context()
    return default_context(_current_loop())


def _trio_without_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return trio_runs()
    return False


# The RunVar holding each Trio run's default context, made on first use
# (importing trio here would make every asyncio user pay for it).
_trio_var: Any = None


def _trio_default_context(max_requests: int | None = None) -> AsyncioContextBase:
    """The running Trio run's default context; a new one when
    ``max_requests`` is given (create_context), the old one then stays
    open for the files that use it and closes with the run."""
    global _trio_var
    from caio.trio_base import trio_context_class

    if _trio_var is None:
        import trio

        _trio_var = trio.lowlevel.RunVar("aiofile_default_context")
    context: Any = _trio_var.get(None)
    if (
        max_requests is not None or context is None or context.closed
        or context._bound_in != caio.fork_generation()
    ):
        context = trio_context_class()(max_requests)
        _trio_var.set(context)
    return context  # type: ignore[no-any-return]


def _current_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop()
