"""What only caio.python_aio has: its pool (pool_size, workers), its
finalizer, the RWF_NOWAIT fast path and the pipe wake-up where there is no
eventfd.

The protocol every backend shares (the API, callbacks, cancellation,
closing, fork, threads, special files, errors) runs for each backend in
protocol/, the adapter's behaviour in test_asyncio_context.py.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import queue
import select
import threading
from typing import Any

import pytest

from caio import python_aio
from caio.python_aio import Context, Operation

TIMEOUT = 30


@pytest.fixture
def ctx() -> Any:
    context = Context()
    yield context
    context.close()


def run(context: Context, *ops: Operation) -> list[int]:
    """Submit ops and wait for their callbacks; returns the raw results."""
    results: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
    for index, op in enumerate(ops):
        op.set_callback(lambda result, index=index: results.put((index, result)))
    assert context.submit(*ops) == len(ops)
    got = dict(results.get(timeout=TIMEOUT) for _ in ops)
    return [got[i] for i in range(len(ops))]


def wait_readable(fd: int) -> None:
    readable, _, _ = select.select([fd], [], [], TIMEOUT)
    assert readable, "no completion within the timeout"


# ---- Operation ----------------------------------------------------------


def test_pool_size_argument() -> None:
    # max_requests follows the shared rule (protocol/test_api.py).
    with pytest.raises(ValueError):
        Context(pool_size=0)
    with pytest.raises(TypeError):
        Context(pool_size="8")  # type: ignore[arg-type]


def test_workers_never_exceed_max_requests(fd: int) -> None:
    context = Context(max_requests=2, pool_size=8)
    try:
        assert run(context, *(Operation.fsync(fd) for _ in range(10))) == [0] * 10
        workers = [t for t in threading.enumerate() if t.name.startswith("caio-python")]
        assert len(workers) == 2
    finally:
        context.close()
    assert not any(t.is_alive() for t in workers)


def test_dropped_context_stops_its_workers(fd: int) -> None:
    context = Context(pool_size=3)
    run(context, Operation.fsync(fd))
    workers = [t for t in threading.enumerate() if t.name.startswith("caio-python")]
    assert len(workers) == 3
    del context
    gc.collect()
    for thread in workers:
        thread.join(TIMEOUT)
    assert not any(t.is_alive() for t in workers)


# ---- the asyncio fast path ---------------------------------------------


@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="needs RWF_NOWAIT")
def test_cached_read_needs_no_future(ctx: Context, fd: int) -> None:
    os.pwrite(fd, b"in the page cache", 0)
    ctx.set_future_factory(lambda: pytest.fail("a cached read made a future"))
    assert ctx.read_async(100, fd, 0) == b"in the page cache"  # short: EOF confirmed
    assert ctx.read_async(5, fd, 3) == b"the p"
    assert ctx.read_async(5, fd, 1000) == b""


@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="needs RWF_NOWAIT")
def test_bad_descriptor_fails_at_once(ctx: Context, closed_fd: int) -> None:
    ctx.set_future_factory(lambda: pytest.fail("an invalid read made a future"))
    with pytest.raises(OSError) as info:
        ctx.read_async(1, closed_fd, 0)
    assert info.value.errno == errno.EBADF


def test_process_events_resolves_futures(
    ctx: Context, pipe: Any, event_loop: asyncio.AbstractEventLoop,
) -> None:
    r, w = pipe
    ctx.set_future_factory(event_loop.create_future)
    os.write(w, b"pipe data")
    future = ctx.read_async(100, r, 12345)  # a pipe: never a nowait hit
    assert isinstance(future, asyncio.Future)
    wait_readable(ctx.fileno)
    assert ctx.process_events() == 1
    assert future.result() == b"pipe data"
    assert ctx.process_events() == 0

    written = ctx.write_async(memoryview(b"back"), w, 999)
    assert isinstance(written, asyncio.Future)
    wait_readable(ctx.fileno)
    assert ctx.process_events() == 1
    assert written.result() == 4
    assert os.read(r, 10) == b"back"


def python_aio_asyncio() -> Any:
    import caio.python_aio_asyncio

    return caio.python_aio_asyncio


def test_module_names() -> None:
    assert python_aio.Context is Context
    assert python_aio.MAX_RW_COUNT == 0x7FFFF000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_child_dropping_an_inherited_context_leaves_the_parent_alone(pipe: Any) -> None:
    import warnings

    r, w = pipe
    context = Context(pool_size=2)
    try:
        assert run(context, Operation.fsync(r)) in ([0], [-errno.EINVAL])  # workers start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                del context  # its finalizer runs here, in the child
                gc.collect()
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        # A pipe read waits in poll() on the pool's stop descriptor too; the
        # child must not have signalled it.
        os.write(w, b"still here")
        read = Operation.read(100, r, 0)
        assert run(context, read) == [10]
        assert read.get_value() == b"still here"
    finally:
        context.close()


async def test_backend_options_reach_the_context(fd: int) -> None:
    async with python_aio_asyncio().AsyncioContext(max_requests=16, pool_size=3) as context:
        assert context.max_requests == 16
        await asyncio.gather(*(context.fsync(fd) for _ in range(20)))
        assert len(context.context._pool.threads) == 3


def test_loop_that_cannot_watch_descriptors() -> None:
    class NoReaders(asyncio.SelectorEventLoop):  # like Windows' proactor loop
        def add_reader(self, *args: Any) -> None:  # type: ignore[override]
            raise NotImplementedError

    loop = NoReaders()
    try:
        gc.collect()  # only contexts alive for good are counted
        live = len(python_aio._live)
        with pytest.raises(NotImplementedError):
            python_aio_asyncio().AsyncioContext(loop=loop)
        assert len(python_aio._live) == live  # its context was closed, not leaked
    finally:
        loop.close()


async def test_pipe_wakeup_where_there_is_no_eventfd(
    monkeypatch: pytest.MonkeyPatch, fd: int,
) -> None:
    monkeypatch.delattr(os, "eventfd", raising=False)  # as on macOS
    async with python_aio_asyncio().AsyncioContext() as context:
        pool = context.context._pool
        assert pool.wake_r != pool.wake_w  # a pipe
        results = await asyncio.gather(*(context.write(b"p", fd, i) for i in range(100)))
        assert results == [1] * 100
        await context.fsync(fd)
    assert os.pread(fd, 200, 0) == b"p" * 100
