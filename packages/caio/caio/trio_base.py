"""The Trio adapter: a backend context driven by a Trio run instead of an
asyncio loop.

Every backend's ``*_async`` methods make their futures with the factory
given to ``set_future_factory`` and resolve them from ``process_events()``
by calling ``set_result``/``set_exception`` (``python_aio`` also asks
``done()``). So the backends need nothing Trio-specific: the factory here is
:class:`TrioFuture`, a slot that reschedules the one task parked on it, and
one system task per context waits on the context's descriptor with
``trio.lowlevel.wait_readable`` and calls ``process_events()``. The
operation methods (``read``, ``write``, ``fsync``, ``fdsync``) are the
asyncio adapter's, unchanged: a page-cache hit still returns without
suspending, and only the wait for a pending future differs.

Why not the low-level ``Operation``/``submit`` API with callbacks: it
allocates an Operation per call and has no page-cache fast path, and in
``thread_aio``/``python_aio`` callbacks run in worker threads, which would
need a thread-safe wake-up (``TrioToken.run_sync_soon``) per operation.
docs/internals.md has the instruction counts.

A context belongs to one Trio run, the one it is first used in (or made
in): use from another run raises RuntimeError, and the context is closed
when its run ends (its system task is cancelled then), since no other run
may use it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from functools import cache, partial
from typing import TYPE_CHECKING, Any

import outcome
import trio

from ._fork import fork_generation
from ._registry import live
from .asyncio_base import AsyncioContextBase

if TYPE_CHECKING:
    from types import ModuleType

    from .abstract import AbstractOperation

__all__ = ("TrioContextBase", "TrioFuture", "trio_context_class")

log = logging.getLogger(__name__)


class TrioFuture:
    """The future a backend makes for a pending operation under Trio.

    At most one task waits on it (the one that started the operation). A
    result that arrives after the waiter was cancelled is dropped, as an
    asyncio future's ``InvalidStateError`` is swallowed by the backends.
    """

    __slots__ = ("_cancelled", "_outcome", "_task")

    # asyncio.isfuture() is true for it: adapter code shared with asyncio
    # that asks "a result, or a future to wait for?" that way gets the
    # right answer, and then waits through _wait(), which is ours.
    _asyncio_future_blocking = False

    def __init__(self) -> None:
        self._outcome: outcome.Outcome[Any] | None = None
        self._task: trio.lowlevel.Task | None = None
        self._cancelled = False

    def done(self) -> bool:
        """True once resolved or cancelled."""
        return self._cancelled or self._outcome is not None

    def cancelled(self) -> bool:
        """True once its waiter was cancelled."""
        return self._cancelled

    def set_result(self, value: Any) -> None:
        """Resolve with ``value`` and wake the waiter; InvalidStateError once done."""
        self._resolve(outcome.Value(value))

    def set_exception(self, exc: BaseException) -> None:
        """Fail with ``exc`` and wake the waiter; InvalidStateError once done."""
        self._resolve(outcome.Error(exc))

    def offer(self, value: Any) -> None:
        """set_result, unless the waiter is gone (an Operation callback:
        nothing would catch the error there)."""
        if not self.done():
            self._resolve(outcome.Value(value))

    def _resolve(self, result: outcome.Outcome[Any]) -> None:
        if self._cancelled or self._outcome is not None:
            # As an asyncio future does: the backend then knows the result
            # is dropped and gives back what it made (an opened fd).
            raise asyncio.InvalidStateError("the waiter of this operation was cancelled")
        self._outcome = result
        task = self._task
        if task is not None:
            self._task = None
            trio.lowlevel.reschedule(task, result)

    async def wait(self, on_cancel: Callable[[TrioFuture], object]) -> Any:
        """The result (or raise the error); on cancellation call
        ``on_cancel(self)`` (ask the kernel to cancel) before Cancelled is
        raised."""
        result = self._outcome
        if result is not None:
            return result.unwrap()
        self._task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._task = None
            self._cancelled = True
            on_cancel(self)
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)


class _InRun:
    """The bound run's stand-in in the adapter's per-operation check: a
    thread id that is never None (the backends themselves refuse calls
    from another thread than the run's)."""

    __slots__ = ("_thread_id",)

    def __init__(self) -> None:
        self._thread_id = threading.get_ident()


def _call_soon(token: trio.lowlevel.TrioToken, callback: Callable[[], object]) -> None:
    # linux_uring and linux_aio schedule their batched flush with this
    # (once per batch).
    token.run_sync_soon(_run_logged, callback)


def _run_logged(callback: Callable[[], object]) -> None:
    # An exception escaping a run_sync_soon callback would crash the run.
    try:
        callback()
    except Exception:
        log.exception("caio: %r failed", callback)


class TrioContextBase(AsyncioContextBase):
    """Trio front of one backend context.

    ``TrioContext(max_requests=None, deferred=False, **backend_options)``,
    the same operations as the asyncio adapter (``read``, ``write``,
    ``fsync``, ``fdsync``, ``submit``, ``wait_idle``, ``close``, ``async
    with``). It binds to the Trio run it is made in, or the one it is
    first used in; use from another run, or outside one, raises
    RuntimeError. A cancelled operation is cancelled in the kernel or
    pool where it can be, and its result is dropped otherwise; its buffer
    stays alive until the kernel is done with it. Closed when its run ends.
    Works the same under AnyIO's trio backend.
    """

    def __init__(
        self,
        max_requests: int | None = None,
        deferred: bool = False,
        **backend_options: Any,
    ) -> None:
        self._reader: trio.lowlevel.Task | None = None
        # Operations that did not finish during their *_async call, counted
        # per descriptor, and the Events of wait_idle() callers.
        self._busy: dict[Any, int] = {}
        self._idle_waiters: dict[Any, list[trio.Event]] = {}
        super().__init__(max_requests, None, deferred, **backend_options)

    @staticmethod
    def _running_loop() -> Any:
        try:
            return trio.lowlevel.current_trio_token()
        except RuntimeError:
            return None

    def _watch(self, loop: Any) -> None:
        context = self.context
        # Typed for asyncio futures; the backends only call set_result,
        # set_exception and done() (see the module docstring).
        context.set_future_factory(TrioFuture, partial(_call_soon, loop))  # type: ignore[arg-type]
        self._fileno = context.fileno
        self._reader = trio.lowlevel.spawn_system_task(
            self._deliver, name=f"caio completions of {self!r}",
        )
        self._owner = _InRun()

    async def _deliver(self) -> None:
        """The system task: process_events() whenever the descriptor is
        readable, until close() or the end of the run (which closes)."""
        fd = self._fileno
        process_events = self.context.process_events
        try:
            # Checked before every wait: a close() before this task first
            # ran (or inside process_events) closed the descriptor already,
            # and its number may name another file by now.
            while not self.closed:
                await trio.lowlevel.wait_readable(fd)
                if self._closed:
                    break
                try:
                    process_events()
                except Exception:
                    # As asyncio's loop logs a failing reader callback: one
                    # failing future must not stop every later completion.
                    log.exception("caio: process_events() of %r failed", self)
        except trio.ClosedResourceError:  # close() ran: notify_closing
            pass
        finally:
            self._reader = None
            self.close()

    def _check_loop(self) -> None:
        token = self._running_loop()
        if token is None:
            raise RuntimeError(f"{self!r} is a Trio context: use it inside trio.run()")
        if self._closed:
            raise ValueError("I/O operation on closed context")
        if self._loop is None:
            self._bind(token)
        elif token is not self._loop:
            raise RuntimeError(
                f"{self!r} is bound to another Trio run: use one context per run",
            )

    @property
    def loop(self) -> Any:
        """No asyncio loop here: RuntimeError. See ``token``."""
        raise RuntimeError(f"{self!r} is a Trio context: it has no asyncio event loop")

    @property
    def token(self) -> trio.lowlevel.TrioToken | None:
        """The TrioToken of the run this context is bound to, or None."""
        return self._loop  # type: ignore[return-value]

    # The shared read/write/readinto/... wait for a TrioFuture through this.
    _AWAIT_FUTURES = False

    async def _wait(self, future: Any, fd: Any) -> Any:
        busy = self._busy
        busy[fd] = busy.get(fd, 0) + 1
        try:
            # Cancelled: the kernel may still write into the buffer; the
            # backend keeps it until the completion arrives.
            return await future.wait(self._cancel_future)
        finally:
            self._leave(fd)

    async def _pending(
        self, r: Any, bounced: Callable[..., Any], data: Any, fd: Any, offset: int,
        priority: int = 0,
    ) -> Any:
        # _wait's body inline (the adapter's read, write, ... come here for
        # every operation that did not finish during its call): one
        # coroutine less per suspended operation.
        busy = self._busy
        busy[fd] = busy.get(fd, 0) + 1
        try:
            return await r.wait(self._cancel_future)
        except OSError as exc:
            failed = exc
        finally:
            self._leave(fd)
        return await bounced(self, failed, data, fd, offset, priority)

    def _leave(self, fd: Any) -> None:
        """One operation on ``fd`` is no longer in flight (see _wait)."""
        busy = self._busy
        count = busy[fd] - 1
        if count:
            busy[fd] = count
        else:
            del busy[fd]
            for event in self._idle_waiters.pop(fd, ()):
                event.set()

    async def wait_idle(self, fd: Any) -> None:
        """Wait until no operation of this context on ``fd`` is in flight."""
        while fd in self._busy:
            event = trio.Event()
            self._idle_waiters.setdefault(fd, []).append(event)
            await event.wait()

    async def _deferred(self, method: Callable[..., Any], fd: Any, *args: Any) -> Any:
        if self._owner._thread_id is None:
            self._check_loop()
        r = method(*args)
        if r.__class__ is TrioFuture:
            return await self._wait(r, fd)
        await trio.lowlevel.checkpoint()
        return r

    async def submit(self, op: AbstractOperation) -> Any:
        """Run an ``OPERATION_CLASS`` operation; returns ``op.get_value()``.

        The operation's callback is replaced. Raises what the asyncio
        adapter's submit() raises.
        """
        self._check_operation(op)
        self._check_loop()
        future = TrioFuture()
        if self.CALLBACKS_IN_LOOP:
            op.set_callback(future.offer)
        else:
            token = self._loop

            def from_thread(result: int) -> None:
                try:
                    token.run_sync_soon(future.offer, result)  # type: ignore[union-attr]
                except trio.RunFinishedError:
                    # Nobody waits any more, and nothing is to be given
                    # back: a read, write or sync makes only a count.
                    pass

            op.set_callback(from_thread)
        self._submit_once(op)

        def cancel(_: TrioFuture) -> None:
            try:
                self.context.cancel(op)
            except ValueError:  # closed meanwhile: it cancelled everything
                pass

        await future.wait(cancel)
        return op.get_value()

    def _fs_thread(self, op: int, *args: Any) -> Any:  # a TrioFuture
        # The filesystem operations the backend does not run itself go to
        # caio's executor; the asyncio adapter wraps that in an asyncio
        # future, here the result comes back through run_sync_soon.
        from . import _fsops

        if self.context.closed:
            raise ValueError("I/O operation on closed context")
        future = TrioFuture()
        work = _fsops.executor().submit(_fsops.call, op, *args)
        # Every run_sync_soon that does not raise RunFinishedError is run
        # before the run ends; one that does gives back what the work made.
        token: Any = self._loop
        _fsops.deliver(token.run_sync_soon, op, work, future)
        return future

    def close(self) -> None:
        """Close the context; its pending operations fail with
        OSError(ECANCELED). Idempotent."""
        if self._closed:
            return
        self._closed = True
        live.discard(self)
        if (
            self._reader is not None and self._bound_in == fork_generation()
            and self._running_loop() is self._loop
        ):
            # Wakes the system task (ClosedResourceError) before the
            # descriptor it waits on goes away.
            trio.lowlevel.notify_closing(self._fileno)
        self.context.close()


@cache
def trio_context_class(backend: str | None = None) -> type[TrioContextBase]:
    """The Trio context class of ``backend`` (a ``CAIO_IMPL`` name:
    ``uring``, ``linux``, ``thread``, ``python``; None: the selected one).

    Raises ValueError for an unknown name, ImportError for a backend that
    cannot be imported here.
    """
    import caio

    from ._backends import BACKENDS

    if backend is None:
        module: ModuleType = caio.preferred_asyncio
    elif backend not in BACKENDS:
        raise ValueError(f"unknown caio backend {backend!r}: one of {', '.join(BACKENDS)}")
    else:
        module = getattr(caio, f"{BACKENDS[backend]}_asyncio")
        if module is None:
            raise ImportError(f"caio backend {backend!r} cannot be imported here")
    adapter = module.AsyncioContext
    return type(
        "TrioContext", (TrioContextBase, adapter),
        {"__module__": __name__, "__doc__": f"Trio context on {adapter.CONTEXT_CLASS.__module__}."},
    )
