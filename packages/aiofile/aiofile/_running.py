"""Which async library runs this code (asyncio or Trio), and how each runs
a blocking call off its event loop.

aiofile works under asyncio, Trio, and AnyIO on either backend (AnyIO on
asyncio is asyncio to us). Nothing here runs per read or write: the
library is asked once per file, when its context is chosen
(``context.default_context``), and when a call has no asynchronous form
(``open``, ``ftruncate``, ``copyfile``'s system calls) or a task has to
wait for another (``direct=True``'s block lock). An asyncio loop is looked
for first, with no import; only when none runs is ``sniffio`` asked, so
asyncio users need neither sniffio nor trio installed.

The primitives the rest of aiofile builds on, the same under both:
``run_in_thread`` (a blocking call, awaited), ``ThreadCall`` (a blocking
call started at once, whose end can be awaited even by a cancelled
caller) and ``Waiter`` (one task waits until it is woken).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

__all__ = (
    "ThreadCall", "Waiter", "run_in_thread", "running_loop", "trio_runs", "wait_to_end",
)

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


def _set_result(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Waiter:
    """One task waits until it is woken, under asyncio or Trio.

    Made by the task that is going to wait (it binds to the running loop or
    Trio run). ``woken`` says whether ``wake`` came, ``gave_up`` whether the
    waiting task was cancelled before that (whoever wakes skips it).
    """

    __slots__ = ("_call_soon", "_event", "_future", "gave_up", "woken")

    def __init__(self) -> None:
        self.woken = False
        self.gave_up = False
        loop = running_loop()
        self._future: asyncio.Future[None] | None = None
        self._event: Any = None
        self._call_soon: Callable[[Callable[[], None]], object]
        if loop is None:
            import trio

            self._event = trio.Event()
            self._call_soon = trio.lowlevel.current_trio_token().run_sync_soon
        else:
            self._future = loop.create_future()
            self._call_soon = loop.call_soon_threadsafe

    def wake(self) -> None:
        """Let the waiting task go on (from the loop's thread; once is enough)."""
        if self.woken:
            return
        self.woken = True
        if self._future is None:
            self._event.set()
        else:
            _set_result(self._future)

    def wake_threadsafe(self) -> None:
        """``wake`` from any thread; nothing when the loop or run is over
        (then nobody waits)."""
        try:
            self._call_soon(self.wake)
        except RuntimeError:  # asyncio: the loop is closed; Trio: RunFinishedError
            pass

    async def wait(self) -> None:
        """Until woken; raises the library's cancellation (and then sets
        ``gave_up`` unless the wake had already come)."""
        try:
            if self._future is None:
                await self._event.wait()
            else:
                # Shielded: the future outlives our cancellation, so that
                # ``wait_to_end`` can still wait on it.
                await asyncio.shield(self._future)
        except BaseException:
            if not self.woken:
                self.gave_up = True
            raise

    async def wait_to_end(self) -> None:
        """Until woken, whatever happens to the waiting task: a cancellation
        that comes meanwhile is raised after the wake (asyncio) or at the
        next checkpoint (Trio)."""
        if self._future is None:
            import trio

            with trio.CancelScope(shield=True):
                await self._event.wait()
            return
        cancelled: BaseException | None = None
        while not self.woken:
            try:
                await asyncio.shield(self._future)
            except asyncio.CancelledError as exc:
                cancelled = exc
        if cancelled is not None:
            raise cancelled


def _discard(_outcome: object) -> None:
    pass


class ThreadCall(Generic[R]):
    """``fn(*args)`` started at once on a worker thread (``executor``, else
    the loop's default executor, or a Trio worker thread).

    Unlike ``run_in_thread``, a caller cancelled while it waits
    (``result``) can still wait until the call has really returned
    (``wait_to_end(call)``) before it frees what the call uses: descriptors,
    buffers. Nothing is abandoned, under either library.
    """

    __slots__ = ("_done", "_error", "_value")

    def __init__(self, executor: Executor | None, fn: Callable[..., R], *args: object) -> None:
        self._done = Waiter()
        self._value: R | None = None
        self._error: BaseException | None = None
        loop = running_loop()

        def job() -> None:
            try:
                self._value = fn(*args)
            except BaseException as exc:  # delivered to whoever awaits it
                self._error = exc
            finally:
                self._done.wake_threadsafe()

        if loop is not None:
            loop.run_in_executor(executor, job)
        elif executor is not None:
            executor.submit(job)
        else:
            import trio

            trio.lowlevel.start_thread_soon(job, _discard)

    @property
    def done(self) -> bool:
        """Whether the call has returned (or raised), as the loop has seen."""
        return self._done.woken

    @property
    def error(self) -> BaseException | None:
        """What the call raised (None: it returned, or has not yet)."""
        return self._error

    def outcome(self) -> R:
        """What the call returned; raises what it raised. Only once ``done``."""
        if not self._done.woken:
            raise RuntimeError("the call has not returned yet")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    async def result(self) -> R:
        """Wait for the call and return its outcome. Cancelling the caller
        does not stop the call."""
        await self._done.wait()
        return self.outcome()


async def wait_to_end(*calls: ThreadCall[Any]) -> None:
    """Wait until every call has returned, whatever happens to the waiting
    task: a cancellation that comes meanwhile is raised after the last one
    (asyncio) or at the next checkpoint (Trio)."""
    cancelled: BaseException | None = None
    for call in calls:
        try:
            await call._done.wait_to_end()
        except BaseException as exc:  # asyncio's cancellation: still wait for the rest
            cancelled = exc
    if cancelled is not None:
        raise cancelled
