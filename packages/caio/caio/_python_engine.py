"""Engine of the pure-Python backend: the worker pool and its queues.

The counterpart of the C backends' ``context.c``: it takes operations made
by ``python_aio`` (the Python types), runs them through the kernel layer
(``_python_kernel``) on worker threads, and hands finished ones back:
operations with a future go to ``Pool.done`` for ``process_events`` on the
loop thread, the others run their callback in the worker.

Completions reach the loop in batches: workers append to a deque and poke
the wakeup descriptor only when no wakeup is already pending. There is no
``call_soon_threadsafe`` per operation. At most ``Pool.size`` workers exist,
so at most that many operations are in the kernel at once; the rest wait in
the job queue, in order.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import deque
from queue import SimpleQueue

from . import _fork
from ._fsops import dropped
from ._python_kernel import FDSYNC, FS, READ, WRITE, execute, make_wakeup, oserror, signal

TYPE_CHECKING = False  # see caio/__init__.py: typing is not imported
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    from .python_aio import Operation

# Where an operation is.
NEW, WAITING, INFLIGHT, DONE = 0, 1, 2, 3
STATE_NAMES = ("new", "waiting", "in flight", "done")

__all__ = (
    "DONE", "INFLIGHT", "NEW", "STATE_NAMES", "WAITING", "Pool", "cancel_queued",
    "expect_asyncio", "fail_stuck", "finish_cancelled", "release_dropped", "run_callback",
)

# What setting a future's result may raise: the future was cancelled
# meanwhile (InvalidStateError) or its loop is closed (RuntimeError). Set by
# expect_asyncio() once futures exist: `import caio` does not import asyncio.
_future_errors: tuple[type[BaseException], ...] = (RuntimeError,)


def expect_asyncio() -> None:
    """Futures are coming (set_future_factory): learn asyncio's errors."""
    global _future_errors
    from asyncio import InvalidStateError

    _future_errors = (InvalidStateError, RuntimeError)


def run_callback(op: Operation, result: int | None = None) -> None:
    """Run ``op``'s callback, if any, with its raw result (or ``result``);
    log its errors."""
    callback = op._callback
    if callback is None:
        return
    try:
        callback(op._result if result is None else result)
    except BaseException:  # one failing callback must not kill the worker
        import logging

        logging.getLogger("caio.python_aio").exception(
            "caio callback %r failed", callback,
        )


class Pool:
    """What the workers share with the context.

    The workers hold this, not the Context, so that a Context nobody closed
    can still be collected (its finalizer then stops the workers). For the
    same reason nothing here holds a future: a future leads to its task,
    the task to the adapter, the adapter to the Context. The Context keeps
    the futures of its operations, by their ``_key`` (the future's id while
    the Context holds it).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.jobs: SimpleQueue[Operation | None] = SimpleQueue()
        # Operations not yet taken by a worker, keyed by their future's id
        # (fast path) or by themselves (Operation API). Whoever pops an entry owns
        # the operation: a worker runs it, cancel()/close() cancel it. dict
        # pop is atomic, so that needs no lock.
        self.queued: dict[object, Operation] = {}
        # Operations a worker runs, by the same keys: cancel_future flags
        # them (only a wait on a pipe or socket can act on it).
        self.running: dict[object, Operation] = {}
        # Finished operations whose futures wait for process_events().
        self.done: deque[Operation] = deque()
        self.signalled = False
        self.wake_r, self.wake_w = make_wakeup()
        # Becomes readable (for good) when the pool stops: see wait_ready.
        self.stop_r, self.stop_w = make_wakeup()
        self.fds_open = True
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.generation = _fork.fork_generation()

    def start(self) -> None:
        with self.lock:
            if self.threads:
                return
            for i in range(self.size):
                thread = threading.Thread(
                    target=_worker, args=(self,), name=f"caio-python-{i}", daemon=True,
                )
                thread.start()
                self.threads.append(thread)

    def wake(self) -> None:
        signal(self.wake_r, self.wake_w)

    def consume_wakeup(self) -> int:
        """Clear the wakeup descriptor; returns how many wakeups it held."""
        try:
            if self.wake_r == self.wake_w:
                return os.eventfd_read(self.wake_r)
            return len(os.read(self.wake_r, 4096))
        except OSError:  # EAGAIN: nothing to consume
            return 0

    def wait_done(self, count: int, timeout: float) -> None:
        """Wait until ``count`` futures wait in ``done``, at most ``timeout``
        seconds (forever if negative). On the loop thread only."""
        import select
        import time

        deadline = None if timeout < 0 else time.monotonic() + timeout
        while len(self.done) < count:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            # Cleared before the check: a worker that appends after it
            # sees the flag down and writes the descriptor.
            self.signalled = False
            if len(self.done) >= count:
                return
            select.select([self.wake_r], [], [], remaining)
            self.consume_wakeup()

    def stop(self, timeout: float | None) -> None:
        """Let the workers finish what they run and exit; wait for them."""
        if self.generation != _fork.fork_generation():
            # A forked child: the workers live in the parent only, and the
            # stop descriptor is shared with it; signalling it would cancel
            # the parent's pipe reads.
            return
        threads = self.threads
        if self.fds_open:
            signal(self.stop_r, self.stop_w)
        for _ in threads:
            self.jobs.put(None)
        import time  # (not at import: `import caio` stays light)

        # One deadline for all: stuck workers must not add up their waits.
        # Past TIMEOUT_MAX (an infinite close_timeout) join() overflows: wait.
        if timeout is not None and timeout >= threading.TIMEOUT_MAX:
            timeout = None
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def give_up(self) -> list[Operation]:
        """After stop(): the operations workers still run, taken from them
        (a worker drops what it finishes of these); the caller ends them
        with fail_stuck(). Nothing when every worker is gone."""
        if not any(thread.is_alive() for thread in self.threads):
            return []
        with self.lock:
            stuck = list(self.running.values())
            self.running.clear()
        return stuck

    def close_fds(self) -> None:
        if self.fds_open:
            self.fds_open = False
            for fd in {self.wake_r, self.wake_w, self.stop_r, self.stop_w}:
                os.close(fd)

    def drain(self, futures: dict[object, asyncio.Future[Any]]) -> int:
        """Resolve the futures (``futures``: the context's, by operation
        key) of finished operations (on the loop thread)."""
        done = self.done
        take = futures.pop
        count = 0
        errors = _future_errors
        while True:
            try:
                op = done.popleft()
            except IndexError:
                return count
            count += 1
            future = take(op._key, None)
            if future is None:  # failed by close() already
                continue
            result = op._result
            try:
                if result < 0:
                    future.set_exception(oserror(-result))
                elif op._opcode == READ or op._opcode == FS:
                    future.set_result(op._data)
                elif op._opcode == WRITE or op._opcode > FDSYNC:
                    future.set_result(result)  # readinto, readv, writev too
                else:
                    future.set_result(None)
            except errors:  # cancelled meanwhile, or its loop is closed
                if op._opcode == FS and result >= 0:
                    dropped(op._payload[0], op._data)

    def __del__(self) -> None:
        # Every worker is gone (each held a reference): nobody writes the
        # wakeup fd any more.
        self.close_fds()


def _worker(pool: Pool) -> None:
    get = pool.jobs.get
    take = pool.queued.pop
    running = pool.running
    done = pool.done
    stop_fd = pool.stop_r
    lock = pool.lock
    while True:
        op = get()
        if op is None:
            return
        key = op._key
        with lock:
            # Taken from `queued` and filed in `running` as one step: close()
            # finds every operation in one or the other (give_up() takes the
            # lock), never one a worker took but has not filed yet, which it
            # could neither cancel nor give up on.
            mine = take(key, None) is not None
            if mine:
                op._state = INFLIGHT
                op._cancel = False
                running[key] = op
        if mine:
            execute(op, stop_fd)
            with lock:
                # Still ours unless close() gave up on it meanwhile (and
                # ended it with ECANCELED): appended under the lock, so that
                # close()'s drain after give_up() sees it.
                mine = running.pop(key, None) is not None
                if mine:
                    op._state = DONE
                    if op._waits:
                        done.append(op)
            if not mine:
                # Nobody takes what it made: an opened descriptor goes back.
                if op._opcode == FS and op._result >= 0:
                    dropped(op._payload[0], op._data)
                del op
                continue
        elif not op._waits:
            # Cancelled meanwhile. Not kept while this worker waits for
            # the next job: it holds its payload (a path, a buffer).
            del op
            continue
        else:
            # Cancelled meanwhile, and its future failed already; the loop
            # lets go of that future only now (in drain), so that its id,
            # this operation's key, is not reused while it was in the queue.
            done.append(op)
        if op._waits:
            # Wake the loop only if no wakeup is pending. process_events()
            # clears the flag before draining, so an operation appended
            # after the drain sees the flag cleared and wakes it again.
            if not pool.signalled:
                pool.signalled = True
                pool.wake()
        else:
            run_callback(op)
        del op


def release_dropped(pool: Pool) -> None:
    """Finalizer of a Context that was never closed: stop its workers.

    Operations still queued end with ECANCELED, and their callbacks run
    (here, in whatever thread collected the context), as in the C pool.
    """
    for op in cancel_queued(pool):
        if not op._waits:
            run_callback(op)
    pool.stop(timeout=0)


def cancel_queued(pool: Pool) -> list[Operation]:
    """Take every operation no worker has started; each ends with ECANCELED.

    Returns them, for the caller to resolve their futures or callbacks.
    """
    cancelled: list[Operation] = []
    while True:
        try:
            _, op = pool.queued.popitem()
        except KeyError:
            return cancelled
        op._result = -errno.ECANCELED
        op._state = DONE
        op._release_buffers()
        cancelled.append(op)


def fail_stuck(op: Operation, future: asyncio.Future[Any] | None) -> None:
    """End ``op`` with ECANCELED: its future (the context's for it) or its
    callback. Nothing of ``op`` changes: for one close() gave up on, its
    worker may still write it (finish_cancelled sets it first)."""
    if not op._waits:
        run_callback(op, -errno.ECANCELED)
    elif future is not None and not future.done():
        try:
            future.set_exception(oserror(errno.ECANCELED))
        except _future_errors:
            pass


def finish_cancelled(op: Operation, future: asyncio.Future[Any] | None) -> None:
    """End ``op`` with ECANCELED: fail its future (the context's for it,
    if it has one) or run its callback."""
    op._result = -errno.ECANCELED
    op._state = DONE
    op._release_buffers()
    fail_stuck(op, future)
