"""Which async library runs this code (asyncio or Trio), and how each runs
a blocking call off its event loop.

aiofile works under asyncio, Trio, and AnyIO on either backend (AnyIO on
asyncio is asyncio to us). Nothing here runs per read or write: the
library is asked once per file, when its context is chosen
(``context.default_context``), and when a call has no asynchronous form
(``open``, ``ftruncate``). An asyncio loop is looked for first, with no
import; only when none runs is ``sniffio`` asked, so asyncio users need
neither sniffio nor trio installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

__all__ = ("run_in_thread", "running_loop", "trio_runs")

R = TypeVar("R")


def trio_runs() -> bool:
    """True when called from a Trio run (Trio itself, or AnyIO on trio)
    rather than from an asyncio loop or outside any."""
    try:
        import sniffio
    except ImportError:  # trio depends on sniffio: no sniffio, no trio
        return False
    try:
        return sniffio.current_async_library() == "trio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None under Trio.

    Raises RuntimeError when neither runs (as ``asyncio.get_running_loop``).
    Code that hands a blocking call to the loop's executor takes ``None`` as
    "use ``run_in_thread``" (the hook for a dispatcher such as ``aiofile._fs``).
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        if trio_runs():
            return None
        raise


async def run_in_thread(executor: Executor | None, fn: Callable[..., R], *args: object) -> R:
    """``fn(*args)`` on a worker thread: the loop's executor under asyncio
    (``executor`` if given), ``trio.to_thread`` under Trio (through
    ``executor`` if given).

    Raises what ``fn`` raises, RuntimeError outside a running loop. Under
    Trio the call is not abandoned on cancellation: a descriptor it opens
    is never left behind.
    """
    loop = running_loop()
    if loop is None:
        import trio

        if executor is None:
            return await trio.to_thread.run_sync(fn, *args)
        # Submitted from Trio's thread, not here: cancelled before that
        # thread starts, the call is never made (nothing opened and lost).
        return await trio.to_thread.run_sync(
            lambda: executor.submit(fn, *args).result(),
        )
    return await loop.run_in_executor(executor, fn, *args)
