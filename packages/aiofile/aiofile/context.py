"""One default caio context per event loop.

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
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import caio

if TYPE_CHECKING:
    from caio import AsyncioContextBase

__all__ = ("default_context",)

# Far enough that it never fires in practice; if it does, it re-arms.
_ARM_DELAY = 60.0 * 60 * 24 * 365

_contexts: dict[asyncio.AbstractEventLoop, AsyncioContextBase] = {}
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
        if _contexts.get(loop) is context:
            del _contexts[loop]
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
        inherited = list(_contexts.items())
        _contexts.clear()
        _generation = caio.fork_generation()
    for _loop, context in inherited:
        try:
            context.close()
        except Exception:  # the parent's, nothing to report
            pass


def _release_closed_loops() -> None:
    with _lock:
        dead = [(lp, ctx) for lp, ctx in _contexts.items() if lp.is_closed() or ctx.closed]
    for loop, context in dead:
        _release(loop, context)


def default_context() -> AsyncioContextBase:
    """The running loop's default caio context, made on first use.

    Raises RuntimeError when no event loop runs in this thread.
    """
    loop = asyncio.get_running_loop()
    context = _contexts.get(loop)
    if context is not None and not context.closed:
        if _generation == caio.fork_generation():
            return context
        _forget_parent_contexts()
    _release_closed_loops()
    context = caio.AsyncioContext(loop=loop)
    with _lock:
        _contexts[loop] = context
    _Release(loop, context).arm()
    return context
