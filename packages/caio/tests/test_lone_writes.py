"""A buffered write alone on a context, made in the call (linux_uring,
thread_aio and python_aio, docs/internals.md "A lone buffered write is
made in the call"): when it is, when it is not, and how slow writes turn
it off.

Whether a write was made in the call or by the backend's slow path (the
ring's io-wq worker, the pool's thread) cannot be told from its result:
both are made, and a worker on the other CPU may finish before the
submitting call returns. held() tells them apart on every file system:
while another thread's long write holds the file's inode lock, a write
made in the call waits for it, one handed to a worker comes back at once
as a future.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import mmap
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import caio

TIMEOUT = 30

#: The backends that make lone writes in the call: their low-level module.
MODULES = {"uring": "linux_uring", "thread": "thread_aio", "python": "python_aio"}


@pytest.fixture(params=list(MODULES))
def lone_module(request: pytest.FixtureRequest) -> Any:
    """The low-level module of a backend that makes lone writes."""
    module = getattr(caio, MODULES[request.param])
    if module is None:
        pytest.skip(f"caio.{MODULES[request.param]} cannot be imported here")
    return module


@pytest.fixture
def lone(lone_module: Any) -> Any:
    """lone(wire, check=always idle): a new low-level Context of the
    backend, wired to the test's loop, its idle check set."""
    module = lone_module

    def make(wire: Any, check: Any = lambda: True) -> Any:
        context = wire(module.Context(8))
        context._set_idle_check(check)
        return context

    return make


def halves(data: Any) -> list[Any]:
    """data as two buffers: bytes objects for bytes, else views of it."""
    h = len(data) // 2
    if isinstance(data, bytes):
        return [data[:h], data[h:]]
    view = memoryview(data)
    return [view[:h], view[h:]]


@pytest.fixture(params=["write", "writev"])
def write(request: pytest.FixtureRequest) -> Any:
    """write(context, data, fd, offset): context.write_async, or
    writev_async of data's two halves (the same path for both)."""
    if request.param == "write":
        return lambda context, data, fd, offset: context.write_async(data, fd, offset)
    return lambda context, data, fd, offset: context.writev_async(halves(data), fd, offset)


#: For tests that need lone writes to be fast (under 150 us each), which
#: they are not under valgrind's memcheck (nox -s valgrind sets this).
needs_speed = pytest.mark.skipif(
    os.environ.get("CAIO_TEST_UNDER_VALGRIND") == "1",
    reason="lone writes are slow under valgrind: the guard turns them off",
)


async def wait_for(future: Any) -> Any:
    return await asyncio.wait_for(future, TIMEOUT)


@pytest.fixture
def write_fd(tmp_path: Path) -> Any:
    fd = os.open(tmp_path / "written", os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


def block(i: int) -> bytes:
    return bytes([i % 251]) * 4096


#: Where held() writes, past every block the tests write themselves.
FAR = 1 << 30


@contextlib.contextmanager
def held(fd: int, size: int = 128 << 20) -> Iterator[None]:
    """While a thread writes ``size`` bytes to fd's file in one call (tens
    of milliseconds), holding its inode lock (see the top of the file)."""
    chunk = bytes(64 << 20)
    os.ftruncate(fd, FAR)   # the big write's start shows as a larger size
    big = threading.Thread(target=os.pwritev, args=(fd, [chunk] * (size // len(chunk)), FAR))
    big.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while os.fstat(fd).st_size <= FAR and time.monotonic() < deadline:
            pass   # until the big write has the lock and has begun
        yield
    finally:
        big.join()


async def writes_in_the_call(write: Any, context: Any, fd: int, first: int, n: int) -> int:
    """How many of n lone 4 KiB writes (blocks first.. at their own offsets)
    came back from the call itself, not through a future; all awaited."""
    in_call = 0
    for i in range(first, first + n):
        answer = write(context, block(i), fd, i * 4096)
        if isinstance(answer, int):
            in_call += 1
        else:
            answer = await wait_for(answer)
        assert answer == 4096
    return in_call


def written(fd: int, blocks: range) -> bool:
    return os.pread(fd, 4096 * len(blocks), blocks[0] * 4096) == b"".join(map(block, blocks))


@needs_speed
async def test_a_lone_write_is_made_in_the_call(
    write_fd: int, wire: Any, lone: Any, write: Any
) -> None:
    # Alone on the context, the loop idle: the write is made on the calling
    # thread and its count comes back from the call, no future, where a
    # worker would have made it and answered through the loop.
    # (Not all, on a loaded machine: three slow ones in a row, preempted,
    # send the writes to the slow path for a while; the test below.)
    context = lone(wire)
    assert context.lone_write
    assert await writes_in_the_call(write, context, write_fd, 0, 32) >= 28
    assert written(write_fd, range(32))


@needs_speed
async def test_a_write_not_alone_or_not_idle_goes_to_the_slow_path(
    write_fd: int, wire: Any, pipe: Any, lone: Any, write: Any
) -> None:
    # Another request in flight (a pipe read): the write goes to the slow
    # path, behind it, and the loop overlaps them. No idle check (a bare
    # Context, Trio) or a busy loop: the slow path too, so no ready task
    # waits for it. Each is submitted while the file's lock is held
    # (held()): the worker waits for it, a write made in the call would.
    r, w = pipe
    asked: list[bool] = []

    def busy() -> bool:
        asked.append(False)
        return False

    def idle() -> bool:
        asked.append(True)
        return True

    context = lone(wire, idle)
    waiting = context.read_async(1, r, 0)
    with held(write_fd):
        pending = write(context, block(0), write_fd, 0)
        assert not isinstance(pending, int)
    assert await wait_for(pending) == 4096
    assert asked == []   # not alone: the loop is not even asked
    os.write(w, b"x")
    assert await wait_for(waiting) == b"x"
    for i, check in enumerate((None, busy), 1):
        context._set_idle_check(check)
        with held(write_fd):
            pending = write(context, block(i), write_fd, i * 4096)
            assert not isinstance(pending, int)
        assert await wait_for(pending) == 4096
    assert asked == [False]
    context._set_idle_check(idle)
    assert await writes_in_the_call(write, context, write_fd, 3, 4) == 4
    assert asked == [False] + [True] * 4
    assert written(write_fd, range(7))


async def test_lone_writes_to_pipes_and_o_direct_go_to_the_slow_path(
    tmp_path: Path, wire: Any, pipe: Any, lone: Any, write: Any
) -> None:
    # A pipe is not a disk: a write to a full one must not hold the loop.
    # O_DIRECT writes from aligned memory are the kernel's asynchronous
    # path: made here, they would hold the loop for the disk.
    r, w = pipe
    os.set_blocking(w, False)
    filled = 0
    try:
        while True:
            filled += os.write(w, b"\0" * 65536)
    except BlockingIOError:
        os.set_blocking(w, True)   # else a worker's write fails with EAGAIN
    context = lone(wire)
    pending = write(context, b"tail", w, 0)
    assert not isinstance(pending, int)
    drained = 0
    while drained < filled:
        drained += len(os.read(r, 65536))
    assert await wait_for(pending) == 4
    assert os.read(r, 16) == b"tail"

    path = tmp_path / "direct"
    path.write_bytes(b"\0" * 65536)
    try:
        fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    except OSError:
        pytest.skip("no O_DIRECT on this file system")
    try:
        memory = mmap.mmap(-1, 4096)
        memory[:] = block(5)
        buffered = os.open(path, os.O_RDWR)
        try:
            with held(buffered):   # (a direct write waits for the lock too)
                pending = write(context, memory, fd, 4096)
                assert not isinstance(pending, int)
            assert await wait_for(pending) == 4096
            assert os.pread(buffered, 8192, 0) == bytes(4096) + block(5)
        finally:
            os.close(buffered)
    finally:
        os.close(fd)


def slow_lone_write(context: Any, fd: int) -> float:
    """A lone write made in the call while held() holds the file's lock:
    it waits for the lock. Seconds it took."""
    with held(fd):
        started = time.perf_counter()
        answer = context.write_async(b"!", fd, FAR - 1)
        took = time.perf_counter() - started
    assert answer == 1   # made in the call
    assert os.pread(fd, 2, FAR - 1) == b"!\0"
    return took


async def test_slow_lone_writes_go_to_the_slow_path_until_a_probe_is_fast(
    write_fd: int, wire: Any, lone: Any
) -> None:
    # A write that takes longer than the read's wait (150 us: a throttled
    # one, a partial page read first) fails; once most fail, lone writes go
    # to the slow path and the loop is not held, but for a probe now and
    # then.
    # Fast probes bring the writes back into the call.
    context = lone(wire)
    slow = []
    for _ in range(10):
        if not context.lone_write:
            break
        slow.append(slow_lone_write(context, write_fd))
    assert not context.lone_write, slow
    assert sum(took > 150e-6 for took in slow) >= 3, slow
    with held(write_fd):
        pending = context.write_async(block(0), write_fd, 0)
        assert not isinstance(pending, int)   # to a worker, not waiting here
    assert await wait_for(pending) == 4096
    for i in range(1, 4 * 32):
        answer = context.write_async(block(i), write_fd, i * 4096)
        if not isinstance(answer, int):
            answer = await wait_for(answer)
        assert answer == 4096
        if context.lone_write:
            break
    assert context.lone_write, "fast probes did not bring the writes back"
    assert written(write_fd, range(i + 1))




@pytest.mark.parametrize("c_futures", [True, False], ids=["c-futures", "asyncio-futures"])
async def test_the_adapter_asks_the_loop(
    lone_module: Any, write_fd: int, c_futures: bool, monkeypatch: Any, event_loop: Any
) -> None:
    # The asyncio adapter installs its idle check on every context that
    # takes one, with the C awaitables or without them (a build without a
    # compiler: plain asyncio futures, no FutureFactory.pending), and the
    # check says "busy" while a callback is ready.
    from caio import asyncio_base

    if not c_futures:
        monkeypatch.setattr(asyncio_base, "_awaitables", None)
    answers: list[bool] = []
    real = asyncio_base._idle_check

    def spied(loop: Any, factory: Any, own: int) -> Any:
        check = real(loop, factory, own)

        def idle() -> bool:
            answers.append(check())
            return answers[-1]

        return idle

    monkeypatch.setattr(asyncio_base, "_idle_check", spied)
    adapter = getattr(caio, lone_module.__name__.rsplit(".", 1)[1] + "_asyncio")
    async with adapter.AsyncioContext() as context:
        for i in range(8):
            assert await context.write(block(i), write_fd, i * 4096) == 4096
        assert await context.writev(halves(block(8)), write_fd, 8 * 4096) == 4096
        assert answers == [True] * 9
        event_loop.call_soon(lambda: None)
        assert await context.write(block(9), write_fd, 9 * 4096) == 4096
        assert answers[9:] == [False]
    assert written(write_fd, range(10))


def writes_on_this_thread() -> int:
    """Write system calls this thread made (refused ones included)."""
    for line in Path("/proc/thread-self/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/thread-self/io")


@needs_speed
async def test_thread_asks_rwf_nowait_of_a_refusing_file_once_per_64_writes(
    write_fd: int, wire: Any
) -> None:
    # ext4 and tmpfs refuse every buffered RWF_NOWAIT write (EOPNOTSUPP):
    # thread_aio stops trying it on that descriptor but for every 64th
    # write, so a lone write costs one system call, not two. A descriptor
    # reused for a socket (which takes RWF_NOWAIT writes) is noticed at the
    # next try.
    if caio.thread_aio is None:
        pytest.skip("caio.thread_aio cannot be imported here")
    try:
        os.pwritev(write_fd, [b"x"], 0, os.RWF_NOWAIT)
        pytest.skip("this file system takes RWF_NOWAIT buffered writes")
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
    context = wire(caio.thread_aio.Context(8))
    context._set_idle_check(lambda: True)
    before = writes_on_this_thread()
    assert await writes_in_the_call(
        lambda c, data, fd, offset: c.write_async(data, fd, offset), context, write_fd, 0, 64
    ) == 64
    assert writes_on_this_thread() - before <= 64 + 2
    assert written(write_fd, range(64))

    a, b = socket.socketpair()
    with a, b:
        os.dup2(a.fileno(), write_fd)   # the same number, now a socket
        sent = 0
        while sent < 65:
            sent += 1
            answer = context.write_async(b"y", write_fd, 0)
            if isinstance(answer, int):
                break   # the RWF_NOWAIT try was made, and answered
            assert await wait_for(answer) == 1
        assert answer == 1 and sent <= 64, sent
        assert b.recv(100) == b"y" * sent
