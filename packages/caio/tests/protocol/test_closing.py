"""Closing on every backend: with operations in flight and waiting, from a
callback, by dropping the last reference, and inside a reference cycle.

What close() promises (docs/internals.md, "Closing"): it returns without
waiting for anything that may never come (a pipe nobody writes to), every
pending future fails with ECANCELED, every Operation's callback runs once,
with its result where the kernel finished it and -ECANCELED otherwise, and
nothing cancelled is written.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import importlib
import os
import select
import sys
import threading
import traceback
import weakref
from typing import Any

import pytest


class Busy:
    """A Context(1) with one held request, and two Operations and two
    futures waiting for its slot."""

    def __init__(self, harness: Any, loop: asyncio.AbstractEventLoop) -> None:
        fd = harness.fd
        self.harness = harness
        self.context = harness.Context(1)
        self.context.set_future_factory(loop.create_future)
        self.held = harness.hold(self.context)
        self.ops = [harness.Operation.write(b"never", fd, 0), harness.Operation.fsync(fd)]
        self.results: list[int] = []
        for op in self.ops:
            op.set_callback(self.results.append)
        assert self.context.submit(*self.ops) == 2
        self.futures = [self.context.write_async(b"never", fd, 8), self.context.fdsync_async(fd)]
        assert all(isinstance(f, asyncio.Future) for f in self.futures)

    def check_cancelled(self) -> None:
        assert self.results == [-errno.ECANCELED] * 2
        for op in self.ops:
            with pytest.raises(OSError) as info:
                op.get_value()
            assert info.value.errno == errno.ECANCELED
        for future in self.futures:
            assert isinstance(future.exception(), OSError)
            assert future.exception().errno == errno.ECANCELED
        # The pipe read never gets data: cancelled. Kernel AIO's fdatasync
        # was done by the kernel: delivered with its result, not dropped.
        expected = -errno.ECANCELED if self.harness.waits_on_pipes else 0
        assert self.held.results == [expected]
        assert os.pread(self.harness.fd, 20, 0) == b""


def test_close_with_requests_in_flight(
    harness: Any, event_loop: asyncio.AbstractEventLoop,
) -> None:
    busy = Busy(harness, event_loop)
    busy.context.close()        # returns: nothing waits for the silent pipe
    assert busy.context.closed
    busy.check_cancelled()
    busy.context.close()        # idempotent
    assert busy.results == [-errno.ECANCELED] * 2   # callbacks ran once


def test_dropping_a_context_with_requests_in_flight(
    harness: Any, event_loop: asyncio.AbstractEventLoop,
) -> None:
    busy = Busy(harness, event_loop)
    ref = weakref.ref(busy.context)
    del busy.context
    gc.collect()
    assert ref() is None
    if harness.backend == "python":
        # python_aio's finalizer (weakref.finalize: it may run in whatever
        # thread the collector runs in) cancels what waits and runs those
        # callbacks, as the C pool does, and stops the workers (the pipe
        # read ends soon after); it leaves futures alone, which belong to
        # the loop's thread. The C backends close() in dealloc.
        assert busy.results == [-errno.ECANCELED] * 2
        for op in busy.ops:
            with pytest.raises(OSError) as info:
                op.get_value()
            assert info.value.errno == errno.ECANCELED
        harness.wait_until(lambda: busy.held.results)
        assert busy.held.results == [-errno.ECANCELED]
        return
    busy.check_cancelled()


def test_context_in_a_cycle_is_collected(
    harness: Any, event_loop: asyncio.AbstractEventLoop,
) -> None:
    # list -> context -> factory -> its defaults -> list: only the garbage
    # collector can free this, and only if the context traverses its factory.
    box: list[Any] = [harness.Context(4)]

    def factory(box: list[Any] = box) -> Any:
        return event_loop.create_future()

    box[0].set_future_factory(factory)
    ref = weakref.ref(box[0])
    fileno = box[0].fileno
    del box, factory
    gc.collect()
    assert ref() is None
    with pytest.raises(OSError):    # its notification descriptor is closed
        os.fstat(fileno)


def test_context_in_a_cycle_through_its_futures_is_collected(harness: Any) -> None:
    # context -> pending future -> its callback -> context: the cycle of a
    # context dropped with operations in flight (through a task, its
    # coroutine and the asyncio adapter in real life). Only the collector
    # can free it, and only if the context traverses the futures it holds.
    loop = asyncio.new_event_loop()
    context = harness.Context(1)
    context.set_future_factory(loop.create_future)
    held = harness.hold(context)
    future = context.fdsync_async(harness.fd)       # waits for the slot
    assert isinstance(future, asyncio.Future)
    future.add_done_callback(lambda done, keep=context: None)
    refs = [weakref.ref(context), weakref.ref(future)]
    # Closed first: a callback scheduled on a live loop would keep the
    # context (the finalizer's close() fails the future).
    loop.close()
    del context, future
    gc.collect()
    assert [ref() for ref in refs] == [None, None]
    held.release()


def test_close_from_a_callback(harness: Any) -> None:
    context = harness.Context(4)
    seen: list[int] = []

    def close_it(result: int) -> None:
        seen.append(result)
        # Re-entrant: inside process_events, or in the worker that would
        # otherwise wait for itself to finish.
        context.close()

    ops = [harness.Operation.write(b"x", harness.fd, 0)]
    ops[0].set_callback(close_it)
    if harness.waits_on_pipes:
        r, _ = harness.pipe()
        ops.append(harness.Operation.read(10, r, 0))    # never completes
        ops[1].set_callback(seen.append)
    assert context.submit(*ops) == len(ops)
    for _ in range(1000):
        if context.closed:
            break
        readable, _, _ = select.select([context.fileno], [], [], 0.01)
        if readable:
            context.process_events()
    assert context.closed
    # `closed` is set first: a close() still running in a worker may not
    # have failed the pipe read yet.
    harness.wait_until(lambda: len(seen) == len(ops))
    assert sorted(seen) == sorted([1] + [-errno.ECANCELED] * (len(ops) - 1))
    assert ops[0].get_value() == 1


# open(2)'s system call number, to see a worker in it (/proc/self/task/*/syscall).
_OPENAT = {"x86_64": 257, "aarch64": 56, "ppc64le": 286, "s390x": 288}.get(os.uname().machine)


def _in_openat() -> set[int]:
    """The threads (task ids) of this process waiting in open(2)."""
    found = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/syscall") as f:
                if f.read().split(" ", 1)[0] == str(_OPENAT):
                    found.add(int(task))
        except OSError:  # the thread is gone
            pass
    return found


def _descriptors_of(path: Any) -> list[int]:
    """This process's descriptors open on ``path``."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                found.append(int(name))
        except OSError:  # the listing's own descriptor, gone by now
            pass
    return found


def _threads_now() -> str:
    """Each thread of this process: its system call (number and arguments,
    from /proc) and, for a Python thread, where it is: what a failure here
    needs to tell a worker that never ran from one that dropped a result."""
    frames = sys._current_frames()
    names = {t.native_id: (t.name, t.ident) for t in threading.enumerate()}
    lines = []
    for task in sorted(os.listdir("/proc/self/task"), key=int):
        try:
            with open(f"/proc/self/task/{task}/syscall") as f:
                call = f.read().strip()
        except OSError:
            continue
        name, ident = names.get(int(task), ("(not a Python thread)", None))
        lines.append(f"thread {task} {name}: syscall {call}")
        frame = frames.get(ident) if ident is not None else None
        if frame is not None:
            lines.extend("    " + line.strip() for line in traceback.format_stack(frame, 4))
    return "\n".join(lines)


def _pool_now(context: Any) -> str:
    """python_aio's pool after close() gave up on its worker: what each
    worker thread, the running and the done operations hold (CI saw the
    opened descriptor stay twice, with no caio-python thread left)."""
    pool = getattr(context.context, "_pool", None)
    if pool is None:
        return ""
    ops = [("running", op) for op in list(pool.running.values())]
    ops += [("done", op) for op in list(pool.done)]
    lines = [f"\npool: threads {[(t.name, t.native_id, t.is_alive()) for t in pool.threads]}"]
    lines += [
        f"  {where}: opcode {op._opcode} state {op._state} result {op._result} "
        f"data {op._data!r} waits {op._waits}"
        for where, op in ops
    ]
    lines.append(f"  queued {len(pool.queued)} jobs {pool.jobs.qsize()} fds_open {pool.fds_open}")
    return "\n".join(lines)


async def open_stuck_on_a_fifo(
    tmp_path: Any, module: str, close_timeout: float,
) -> tuple[Any, asyncio.Future[int], Any, set[int]]:
    """A context of ``module`` whose worker waits in open(2) of a FIFO
    without a writer (nothing interrupts that wait): the context, the
    open's task, the FIFO's path and the worker's task id."""
    if _OPENAT is None:
        pytest.skip("open(2)'s system call number is not known for this machine")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    context = importlib.import_module(f"caio.{module}").AsyncioContext(
        close_timeout=close_timeout,
    )
    # Only a thread that was not in open(2) before is the worker: another
    # thread passing through one must not start the test early.
    before = _in_openat()
    task = asyncio.ensure_future(context.open(fifo, os.O_RDONLY))
    for _ in range(1000):
        await asyncio.sleep(0.01)
        if _in_openat() - before:
            break
    workers = _in_openat() - before
    assert workers, "no worker reached open(2)"
    return context, task, fifo, workers


@pytest.mark.parametrize("module", ["thread_aio_asyncio", "python_aio_asyncio"])
async def test_close_gives_up_on_a_worker_stuck_in_open(tmp_path: Any, module: str) -> None:
    # open(2) of a FIFO without a writer waits for one, and nothing
    # interrupts it: close() must give up on it after close_timeout, and the
    # descriptor the worker gets once a writer comes must not leak.
    context, task, fifo, workers = await open_stuck_on_a_fifo(tmp_path, module, 0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    context.close()
    assert loop.time() - started < 5
    with pytest.raises(OSError) as info:
        await asyncio.wait_for(task, 5)
    assert info.value.errno == errno.ECANCELED
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)   # lets the open finish
    try:
        for _ in range(1000):
            if _descriptors_of(fifo) == [writer]:
                break
            await asyncio.sleep(0.01)
        # (CI saw the opened descriptor stay once, not reproduced: say where
        # every thread is if it happens again.)
        assert _descriptors_of(fifo) == [writer], _threads_now() + _pool_now(context)
    finally:
        os.close(writer)
    for _ in range(1000):   # the detached worker is out of open(2) too
        if not _in_openat() & workers:
            break
        await asyncio.sleep(0.01)
    assert not _in_openat() & workers


class Seconds:
    """Not an int or a float, but a number: __float__."""

    def __float__(self) -> float:
        return 0.25


@pytest.mark.parametrize("module", ["thread_aio", "python_aio"])
def test_close_timeout_is_a_non_negative_real_number(module: str) -> None:
    # The two backends with worker threads share one rule.
    Context = importlib.import_module(f"caio.{module}").Context
    for good in (0, 2, 0.5, Seconds()):
        Context(close_timeout=good).close()
    for bad_value in (-1, -0.5, float("nan")):
        with pytest.raises(ValueError, match="close_timeout"):
            Context(close_timeout=bad_value)
    for bad_type in (True, "1", None, b"1", [1]):
        with pytest.raises(TypeError, match="close_timeout"):
            Context(close_timeout=bad_type)


@pytest.mark.parametrize("module", ["thread_aio_asyncio", "python_aio_asyncio"])
async def test_an_infinite_close_timeout_waits_for_the_worker(tmp_path: Any, module: str) -> None:
    context, task, fifo, _ = await open_stuck_on_a_fifo(tmp_path, module, float("inf"))
    writer: list[int] = []
    opener = threading.Timer(0.2, lambda: writer.append(os.open(fifo, os.O_WRONLY)))
    opener.start()
    try:
        context.close()     # waits for the worker: its open ends once the writer comes
        # Given up on, the open would fail with ECANCELED.
        fd = await asyncio.wait_for(task, 5)
        try:
            assert os.path.samestat(os.fstat(fd), os.stat(fifo))
        finally:
            os.close(fd)
    finally:
        opener.join()
        for fd in writer:
            os.close(fd)


def test_python_aio_worker_files_what_it_takes_in_one_step() -> None:
    # close() cancels what waits in the pool's queue and gives up on what
    # its workers run (under the pool's lock); an operation a worker had
    # taken from the queue but not yet filed as running would escape both,
    # and a descriptor it then opened would stay open. So a worker takes an
    # operation only under that lock.
    from caio import python_aio

    context = python_aio.Context()
    r, w = os.pipe()
    try:
        op = python_aio.Operation.read(10, r, 0)
        finished: list[int] = []
        op.set_callback(finished.append)
        pool = context._pool
        pool.start()   # (under the lock below, the first submit would wait)
        with pool.lock:
            assert context.submit(op) == 1
            for _ in range(50):   # a worker picks the job up meanwhile
                if pool.jobs.qsize() == 0:
                    break
                threading.Event().wait(0.01)
            threading.Event().wait(0.05)
            assert pool.jobs.qsize() == 0, "no worker picked the job up"
            assert list(pool.queued.values()) == [op]
            assert not pool.running
        for _ in range(500):   # then it runs: a read waiting on the pipe
            if list(pool.running.values()) == [op]:
                break
            threading.Event().wait(0.01)
        assert list(pool.running.values()) == [op]
        os.write(w, b"abc")
        for _ in range(500):
            if finished:
                break
            threading.Event().wait(0.01)
        assert finished == [3]
        assert op.get_value() == b"abc"
    finally:
        context.close()
        os.close(r)
        os.close(w)
