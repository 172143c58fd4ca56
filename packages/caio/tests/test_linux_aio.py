"""caio.linux_aio at the low level: the inline fast path, retries, the queue,
cancellation, closing, fork, threads and the files kernel AIO cannot wait on.

The generic behaviour (errors, payload types, back-pressure through the
adapter) runs for every backend in test_asyncio_context.py; this file pins
down what is specific to kernel AIO. Truly asynchronous requests (ones that
stay in flight after io_submit returns) are made with O_DIRECT writes from
page-aligned mmap buffers: buffered I/O completes inside io_submit.
"""

from __future__ import annotations

import array
import asyncio
import errno
import gc
import mmap
import os
import random
import resource
import select
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

linux_aio = pytest.importorskip("caio.linux_aio")
Context = linux_aio.Context
Operation = linux_aio.Operation
from caio.linux_aio_asyncio import AsyncioContext  # noqa: E402

TIMEOUT = 30
BLOCK = 4096


@pytest.fixture(params=[True, False], ids=["ring", "io_getevents"])
def userspace_reap(request: pytest.FixtureRequest) -> bool:
    """Both ways of reaping: the mapped ring, and the system call."""
    return bool(request.param)


@pytest.fixture
def ctx(event_loop: asyncio.AbstractEventLoop, userspace_reap: bool) -> Iterator[Any]:
    """A low-level Context wired to the test's loop like the adapter does."""
    context = Context(max_requests=16, userspace_reap=userspace_reap)
    context.set_future_factory(event_loop.create_future)
    event_loop.add_reader(context.fileno, context.process_events)
    yield context
    if not context.closed:
        event_loop.remove_reader(context.fileno)
    context.close()


@pytest.fixture
def data_file(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """(read-only fd, content) of a 1 MiB file of random bytes."""
    content = random.Random(1).randbytes(1 << 20)
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    descriptor = os.open(path, os.O_RDONLY)
    yield descriptor, content
    os.close(descriptor)


@pytest.fixture
def direct_fd(tmp_path: Path) -> Iterator[int]:
    """An O_DIRECT descriptor on a preallocated 4 MiB file: writes to it stay
    in flight after io_submit (the device completes them)."""
    path = tmp_path / "direct.bin"
    with open(path, "wb") as f:
        f.write(b"\0" * (4 << 20))
        f.flush()
        os.fsync(f.fileno())
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_DIRECT)
    except OSError as e:
        pytest.skip(f"O_DIRECT is not supported here: {e}")
    yield descriptor
    os.close(descriptor)


def aligned(size: int, fill: int) -> mmap.mmap:
    """A page-aligned buffer (O_DIRECT payload)."""
    buffer = mmap.mmap(-1, size)
    buffer.write(bytes([fill]) * size)
    return buffer


def wait_readable(fd: int) -> None:
    readable, _, _ = select.select([fd], [], [], TIMEOUT)
    assert readable, "no completion within the timeout"


def drain(context: Any, ops: list[Any]) -> None:
    """process_events() until every Operation has run its callback."""
    done: list[int] = []
    for op in ops:
        op.set_callback(done.append)
    for _ in range(1000):
        if len(done) == len(ops):
            return
        wait_readable(context.fileno)
        context.process_events()
    raise AssertionError("operations did not finish")


def read_back(fd: int, offset: int, size: int) -> bytes:
    """Read through a fresh buffered descriptor (fd may be O_DIRECT)."""
    with open(f"/proc/self/fd/{fd}", "rb") as f:
        f.seek(offset)
        return f.read(size)


def drop_cache(fd: int) -> None:
    """Evict a file from the page cache, or skip where that is impossible."""
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    try:
        os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
    except BlockingIOError:
        return
    pytest.skip("the page cache cannot be dropped here")


# ---- construction and closing ------------------------------------------------


def test_context_arguments() -> None:
    with Context(0) as default:  # 0 means the default, as None does
        assert default.max_requests == 512
    with pytest.raises(ValueError):
        Context(-1)
    with pytest.raises(ValueError):
        Context(1 << 40)
    with pytest.raises(TypeError):
        Context("8")
    with pytest.raises(TypeError):
        Context(8, bogus=1)
    with Context(None) as context:
        assert context.max_requests == 512
    context = Context(8)
    assert context.max_requests == 8
    assert not context.closed
    assert isinstance(context.fileno, int)
    context.close()


def test_system_wide_limit_gives_a_clear_error() -> None:
    limit = int(Path("/proc/sys/fs/aio-max-nr").read_text())
    with Context(1):  # at least one request in use while we ask
        in_use = int(Path("/proc/sys/fs/aio-nr").read_text())
        if limit - in_use >= 65536:  # the largest max_requests
            pytest.skip("fs.aio-max-nr is too high to exceed")
        with pytest.raises(OSError, match="fs.aio-max-nr"):
            Context(65536)


def test_methods_after_close(fd: int) -> None:
    context = Context(4)
    context.set_future_factory(asyncio.Future)
    context.close()
    context.close()  # idempotent
    assert context.closed
    calls: list[Callable[[], object]] = [
        lambda: context.read_async(1, fd, 0),
        lambda: context.write_async(b"x", fd, 0),
        lambda: context.fsync_async(fd),
        lambda: context.fdsync_async(fd),
        lambda: context.process_events(),
        lambda: context.submit(Operation.read(1, fd, 0)),
        lambda: context.cancel(),
        lambda: context.set_future_factory(asyncio.Future),
        lambda: context.cancel_future(asyncio.Future()),
        lambda: context.fileno,
    ]
    for call in calls:
        with pytest.raises(ValueError, match="closed"):
            call()


def test_async_needs_a_future_factory(fd: int) -> None:
    with Context(4) as context:
        with pytest.raises(RuntimeError, match="set_future_factory"):
            context.read_async(1, fd, 0)
        with pytest.raises(TypeError):
            context.set_future_factory(42)


def test_context_with_a_cycle_is_collected() -> None:
    class Holder:
        def __init__(self) -> None:
            self.context = Context(4)
            # context -> factory (a bound method) -> holder -> context
            self.context.set_future_factory(self.make)

        def make(self) -> asyncio.Future[Any]:
            return asyncio.Future()

    holder = Holder()
    context = holder.context
    ref = weakref.ref(context)
    fileno = context.fileno
    del context, holder
    gc.collect()
    assert ref() is None
    with pytest.raises(OSError):  # its eventfd is closed
        os.fstat(fileno)


# ---- the fast path -------------------------------------------------------------


async def test_cached_read_returns_the_bytes_during_the_call(
    ctx: Any, data_file: tuple[int, bytes]
) -> None:
    descriptor, content = data_file
    os.pread(descriptor, len(content), 0)  # in the page cache now
    for offset in (0, 1, 4095, 100_000):
        assert ctx.read_async(BLOCK, descriptor, offset) == content[offset : offset + BLOCK]
    # The end of the file: short, then empty.
    assert ctx.read_async(BLOCK, descriptor, len(content) - 10) == content[-10:]
    assert ctx.read_async(BLOCK, descriptor, len(content)) == b""
    assert ctx.read_async(BLOCK, descriptor, 1 << 40) == b""


async def test_buffered_write_returns_the_count_during_the_call(
    ctx: Any, fd: int, file_path: Path
) -> None:
    assert ctx.write_async(b"hello", fd, 0) == 5
    assert ctx.write_async(bytearray(b"world"), fd, 5) == 5
    assert ctx.write_async(memoryview(b"!!")[1:], fd, 10) == 1
    assert ctx.write_async(array.array("B", [65, 66]), fd, 11) == 2
    assert file_path.read_bytes() == b"helloworld!AB"


async def test_syncs_complete_through_the_future(ctx: Any, fd: int) -> None:
    # fsync and fdatasync go to a kernel workqueue: they come back later.
    ctx.write_async(b"data", fd, 0)
    for method in (ctx.fsync_async, ctx.fdsync_async):
        r = method(fd)
        if r is not None:
            assert await asyncio.wait_for(r, TIMEOUT) is None


async def test_uncached_read_is_resubmitted_allowed_to_block(
    ctx: Any, data_file: tuple[int, bytes]
) -> None:
    # RWF_NOWAIT answers EAGAIN for data not in the page cache; the backend
    # then reads it for real.
    descriptor, content = data_file
    drop_cache(descriptor)
    assert ctx.read_async(64 * 1024, descriptor, 4096) == content[4096 : 4096 + 64 * 1024]


async def test_partly_cached_read_is_completed(ctx: Any, data_file: tuple[int, bytes]) -> None:
    # RWF_NOWAIT returns the cached head only: a short count that is not the
    # end of the file. The rest must be read, not reported as end of file.
    descriptor, content = data_file
    drop_cache(descriptor)
    os.pread(descriptor, 64 * 1024, 0)
    assert ctx.read_async(512 * 1024, descriptor, 0) == content[: 512 * 1024]


def test_uncached_read_of_an_operation_is_retried_in_process_events(
    data_file: tuple[int, bytes], userspace_reap: bool
) -> None:
    descriptor, content = data_file
    drop_cache(descriptor)
    with Context(4, userspace_reap=userspace_reap) as context:
        ops = [Operation.read(100_000, descriptor, 200_000 * i) for i in range(3)]
        assert context.submit(*ops) == 3
        drain(context, ops)
        for i, op in enumerate(ops):
            assert op.get_value() == content[200_000 * i : 200_000 * i + 100_000]


async def test_huge_offsets(ctx: Any, fd: int) -> None:
    offset = (1 << 30) + (1 << 29) + 7  # past 1 GiB and 2**31
    assert ctx.write_async(b"far away", fd, offset) == 8
    assert ctx.read_async(100, fd, offset - 2) == b"\0\0far away"
    assert os.fstat(fd).st_size == offset + 8


async def test_read_far_more_than_the_file(ctx: Any, fd: int) -> None:
    os.pwrite(fd, b"small file", 0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert ctx.read_async(3 << 30, fd, 0) == b"small file"
    assert ctx.read_async(1 << 62, fd, 2) == b"all file"
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 512 * 1024  # no 2 GiB of touched memory


# ---- files kernel AIO cannot wait on -------------------------------------------


async def test_empty_pipe_fails_instead_of_blocking(ctx: Any, pipe: Any) -> None:
    r, w = pipe
    with pytest.raises(BlockingIOError, match="kernel AIO would block") as info:
        ctx.read_async(10, r, 0)
    assert info.value.errno == errno.EAGAIN
    # With data there it works, like os.read: what is there, offset ignored.
    os.write(w, b"abc")
    assert ctx.read_async(10, r, 123) == b"abc"


async def test_full_pipe_write_fails_instead_of_blocking(ctx: Any, pipe: Any) -> None:
    r, w = pipe
    size = 1 << 20
    written = ctx.write_async(b"x" * size, w, 0)
    assert 0 < written < size  # a pipe takes what fits
    with pytest.raises(BlockingIOError):
        ctx.write_async(b"x" * size, w, 0)
    assert len(os.read(r, size)) > 0


async def test_socket_with_no_data_fails(ctx: Any) -> None:
    import socket

    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(BlockingIOError):
            ctx.read_async(10, a, 0)  # objects with fileno() work too
        b.send(b"ping")
        assert ctx.read_async(10, a, 0) == b"ping"


async def test_proc_and_sys_files(ctx: Any) -> None:
    # /proc/self/status has no read_iter: a clear OSError, not a hang.
    with open("/proc/self/status", "rb") as f:
        with pytest.raises(OSError, match="kernel AIO refused") as info:
            ctx.read_async(4096, f.fileno(), 0)
        assert info.value.errno == errno.EINVAL
    # /sys files have no RWF_NOWAIT mode but are regular: read blocking.
    path = "/sys/kernel/mm/transparent_hugepage/enabled"
    if not os.path.exists(path):
        pytest.skip(f"{path} is missing")
    with open(path, "rb") as f:
        assert ctx.read_async(4096, f.fileno(), 0) == Path(path).read_bytes()


async def test_errors(ctx: Any, fd: int, dir_fd: int, closed_fd: int, pipe: Any) -> None:
    with pytest.raises(OSError) as info:
        ctx.read_async(10, closed_fd, 0)
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError) as info:
        ctx.write_async(b"x", closed_fd, 0)
    assert info.value.errno == errno.EBADF
    with pytest.raises(IsADirectoryError):
        ctx.read_async(10, dir_fd, 0)
    with pytest.raises(OSError) as info:  # offset + size overflows
        ctx.read_async(100, fd, (1 << 63) - 10)
    assert info.value.errno == errno.EINVAL
    readonly = os.open("/proc/self/exe", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            ctx.write_async(b"x", readonly, 0)
        assert info.value.errno == errno.EBADF
    finally:
        os.close(readonly)
    with pytest.raises(OSError) as info:  # refused by io_submit itself
        ctx.fsync_async(closed_fd)
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError, match="cannot be synced") as info:
        ctx.fsync_async(pipe[0])
    assert info.value.errno == errno.EINVAL


async def test_misaligned_direct_read_fails_later(ctx: Any, direct_fd: int) -> None:
    # O_DIRECT refuses a misaligned offset with EINVAL, in the event (or in
    # io_submit): either way an OSError. (A misaligned offset, not buffer:
    # a bytes object's data is 512-aligned by chance now and then.)
    with pytest.raises(OSError) as info:
        r = ctx.read_async(BLOCK, direct_fd, 1)
        await asyncio.wait_for(r, TIMEOUT)
    assert info.value.errno == errno.EINVAL


# ---- the queue: more than max_requests ----------------------------------------


async def test_requests_beyond_max_requests_wait_their_turn(ctx: Any, direct_fd: int) -> None:
    count = ctx.max_requests * 4
    # Operations take every slot until process_events() reaps them: all the
    # writes below start in the queue and go in as slots free up.
    holders = [Operation.fdsync(direct_fd) for _ in range(ctx.max_requests)]
    ctx.submit(*holders)
    buffers = [aligned(BLOCK, i + 1) for i in range(count)]
    futures = [ctx.write_async(buffers[i], direct_fd, i * BLOCK) for i in range(count)]
    assert all(isinstance(f, asyncio.Future) for f in futures)
    done = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
    assert done == [BLOCK] * count
    # A slow holder may still be in flight: the writes can cycle through the
    # other slots. Give the loop time to reap it.
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    values: list[object] = []
    while asyncio.get_running_loop().time() < deadline:
        try:
            values = [h.get_value() for h in holders]
            break
        except RuntimeError:  # not finished yet
            await asyncio.sleep(0.01)
    assert values == [None] * len(holders)
    data = read_back(direct_fd, 0, count * BLOCK)
    assert all(data[i * BLOCK] == i + 1 for i in range(count))


def test_operations_and_callbacks_in_process_events(
    fd: int, userspace_reap: bool, closed_fd: int
) -> None:
    with Context(4, userspace_reap=userspace_reap) as context:
        ops = [Operation.write(bytes([65 + i]) * 10, fd, i * 10) for i in range(10)]
        calls: list[tuple[int, int]] = []
        for op in ops:
            op.set_callback(lambda result: calls.append((result, threading.get_ident())))
        assert context.submit(*ops) == 10
        # Callbacks run inside process_events(), never before.
        assert calls == []
        for _ in range(100):
            if len(calls) == 10:
                break
            wait_readable(context.fileno)
            context.process_events()
        assert calls == [(10, threading.get_ident())] * 10
        assert [op.get_value() for op in ops] == [10] * 10

        read = Operation.read(1000, fd, 0)
        bad = Operation.read(10, closed_fd, 0)
        sync = Operation.fdsync(fd)
        assert context.submit(read, bad, sync) == 3
        drain(context, [read, bad, sync])
        assert read.get_value() == b"".join(bytes([65 + i]) * 10 for i in range(10))
        assert read.payload == read.get_value()
        assert sync.get_value() is None
        with pytest.raises(OSError) as info:
            bad.get_value()
        assert info.value.errno == errno.EBADF


def test_partial_submission_fails_only_the_refused_request(
    fd: int, closed_fd: int, userspace_reap: bool
) -> None:
    # One io_submit for all three: the kernel takes the first, stops at the
    # bad one (returns 1), the bad one alone then gets EBADF, the third goes in.
    os.pwrite(fd, b"abcdef", 0)
    with Context(8, userspace_reap=userspace_reap) as context:
        ops = [Operation.read(3, fd, 0), Operation.read(3, closed_fd, 0), Operation.read(3, fd, 3)]
        assert context.submit(*ops) == 3
        drain(context, ops)
        assert ops[0].get_value() == b"abc"
        with pytest.raises(OSError) as info:
            ops[1].get_value()
        assert info.value.errno == errno.EBADF
        assert ops[2].get_value() == b"def"


def test_submit_checks_every_operation_first(fd: int) -> None:
    with Context(4) as context:
        op = Operation.read(10, fd, 0)
        with pytest.raises(TypeError):
            context.submit(op, "not an operation")
        with pytest.raises(RuntimeError, match="already submitted"):
            context.submit(op, op)
        # Nothing was queued: op can still be submitted.
        assert context.submit(op) == 1
        drain(context, [op])
        assert op.get_value() == b""
        with pytest.raises(RuntimeError):
            context.submit(op)


def test_cancel_waiting_and_in_flight_operations(direct_fd: int) -> None:
    with Context(1) as context:
        first = Operation.write(aligned(BLOCK, 1), direct_fd, 0)
        second = Operation.write(aligned(BLOCK, 2), direct_fd, BLOCK)
        results: list[int] = []
        first.set_callback(results.append)
        second.set_callback(results.append)
        context.submit(first, second)
        # first may be in flight (file I/O cannot be cancelled) or done;
        # second waits for the only slot, so it is cancelled for sure.
        assert context.cancel(second) == 1
        assert context.cancel(second) == 0
        while len(results) < 2:
            wait_readable(context.fileno)
            context.process_events()
        assert sorted(results) == sorted([BLOCK, -errno.ECANCELED])
        assert first.get_value() == BLOCK
        with pytest.raises(OSError) as info:
            second.get_value()
        assert info.value.errno == errno.ECANCELED
        assert read_back(direct_fd, BLOCK, BLOCK) == b"\0" * BLOCK  # never written


async def test_cancel_future(event_loop: asyncio.AbstractEventLoop, fd: int) -> None:
    with Context(1) as context:
        context.set_future_factory(event_loop.create_future)
        assert context.cancel_future(event_loop.create_future()) is False
        # A submitted Operation holds the only slot until process_events()
        # reaps it, so the reads below wait in the queue for sure.
        holder = Operation.fsync(fd)
        context.submit(holder)
        os.pwrite(fd, b"0123456789", 0)
        first = context.read_async(4, fd, 0)
        second = context.read_async(4, fd, 4)
        assert isinstance(first, asyncio.Future) and isinstance(second, asyncio.Future)
        first.cancel()
        assert context.cancel_future(first) is True
        assert context.cancel_future(first) is False
        # File I/O in flight cannot be cancelled: it completes normally.
        assert context.cancel(holder) == 0
        drain(context, [holder])
        assert holder.get_value() is None
        while not second.done():
            wait_readable(context.fileno)
            context.process_events()
        assert second.result() == b"4567"
        assert first.cancelled()


# ---- 10,000 operations with random cancellation -------------------------------


async def test_many_operations_with_random_cancellation(
    tmp_path: Path, userspace_reap: bool
) -> None:
    count = 10_000
    path = tmp_path / "many.bin"
    path.write_bytes(b"\0" * count * BLOCK)
    try:
        direct = os.open(path, os.O_RDWR | os.O_DIRECT)
    except OSError as e:
        pytest.skip(f"O_DIRECT is not supported here: {e}")
    buffered = os.open(path, os.O_RDONLY)
    rng = random.Random(42)
    payload = mmap.mmap(-1, count * BLOCK)
    for i in range(count):
        payload[i * BLOCK : (i + 1) * BLOCK] = bytes([i % 251 + 1]) * BLOCK
    view = memoryview(payload)
    try:
        async with AsyncioContext(32, userspace_reap=userspace_reap) as context:

            async def write(i: int) -> int:
                return await context.write(view[i * BLOCK : (i + 1) * BLOCK], direct, i * BLOCK)

            async def read(i: int) -> bytes:
                return await context.read(BLOCK, buffered, i * BLOCK)

            tasks: list[asyncio.Task[Any]] = []
            kinds = []
            for i in range(count):
                is_read = rng.random() < 0.2
                kinds.append(is_read)
                tasks.append(asyncio.ensure_future(read(i) if is_read else write(i)))
                if rng.random() < 0.3 and tasks:
                    tasks[rng.randrange(len(tasks))].cancel()
                if i % 500 == 0:
                    await asyncio.sleep(0)
            results = await asyncio.wait_for(
                asyncio.gather(*tasks, return_exceptions=True), TIMEOUT
            )
        # Read back past the page cache: a direct write racing a buffered
        # read may leave a stale cached page (the kernel only warns).
        os.preadv(direct, [payload], 0)
        data = bytes(payload)
    finally:
        os.close(direct)
        os.close(buffered)
    completed = cancelled = 0
    for i, (is_read, result) in enumerate(zip(kinds, results, strict=True)):
        block = data[i * BLOCK : (i + 1) * BLOCK]
        expected = bytes([i % 251 + 1]) * BLOCK
        if isinstance(result, asyncio.CancelledError):
            cancelled += 1
            if not is_read:  # cancelled: written entirely or not at all
                assert block in (expected, b"\0" * BLOCK), i
        elif is_read:
            completed += 1
            # Read before or after its block was written: never a mix.
            assert result in (b"\0" * BLOCK, expected), i
        else:
            completed += 1
            assert result == BLOCK, (i, result)
            assert block == expected, i
    assert completed > count // 3
    assert cancelled > count // 20


# ---- closing with operations in flight ----------------------------------------


async def test_close_with_operations_in_flight(
    event_loop: asyncio.AbstractEventLoop, direct_fd: int, userspace_reap: bool
) -> None:
    context = Context(4, userspace_reap=userspace_reap)
    context.set_future_factory(event_loop.create_future)
    # Operations fill the 4 slots (they stay counted until reaped): the
    # later ones and the *_async requests wait in the queue for sure.
    ops = [Operation.write(aligned(BLOCK, 5), direct_fd, i * BLOCK) for i in range(8)]
    callbacks: list[int] = []
    for op in ops:
        op.set_callback(callbacks.append)
    context.submit(*ops)
    futures = [context.write_async(aligned(BLOCK, 9), direct_fd, (8 + i) * BLOCK) for i in range(8)]
    assert all(isinstance(f, asyncio.Future) for f in futures)
    context.close()
    # In flight: delivered with their result. Never submitted: ECANCELED.
    assert sorted(callbacks) == [-errno.ECANCELED] * 4 + [BLOCK] * 4
    assert [op.get_value() for op in ops[:4]] == [BLOCK] * 4
    for op in ops[4:]:
        with pytest.raises(OSError) as info:
            op.get_value()
        assert info.value.errno == errno.ECANCELED
    for f in futures:
        assert isinstance(f.exception(), OSError)
        assert f.exception().errno == errno.ECANCELED
    # What was cancelled was not written.
    data = read_back(direct_fd, 0, 16 * BLOCK)
    assert data[: 4 * BLOCK] == bytes([5]) * 4 * BLOCK
    assert data[4 * BLOCK :] == b"\0" * 12 * BLOCK


def test_dropping_a_context_with_requests_in_flight(direct_fd: int) -> None:
    context = Context(2)
    context.set_future_factory(asyncio.Future)
    callbacks: list[int] = []
    ops = [Operation.write(aligned(BLOCK, 3), direct_fd, i * BLOCK) for i in range(4)]
    for op in ops:
        op.set_callback(callbacks.append)
    context.submit(*ops)
    future = context.write_async(aligned(BLOCK, 4), direct_fd, 10 * BLOCK)
    del context  # dealloc closes: waits, delivers, cancels the rest
    assert sorted(callbacks) == [-errno.ECANCELED] * 2 + [BLOCK] * 2
    assert future.exception().errno == errno.ECANCELED
    assert read_back(direct_fd, 0, 2 * BLOCK) == bytes([3]) * 2 * BLOCK


async def test_close_from_a_callback(fd: int) -> None:
    context = Context(4)
    op = Operation.write(b"x", fd, 0)
    op.set_callback(lambda result: context.close())
    context.submit(op)
    wait_readable(context.fileno)
    assert context.process_events() == 1
    assert context.closed
    assert op.get_value() == 1


def test_factory_calling_back_into_the_context(fd: int) -> None:
    with Context(1) as context:

        def factory() -> Any:
            context.process_events()
            raise AssertionError("not reached")

        context.set_future_factory(factory)
        # The Operation holds the only slot until reaped: the read below
        # waits, so it needs a future. The factory's re-entry is refused
        # (RuntimeError), not a deadlock.
        holder = Operation.fdsync(fd)
        context.submit(holder)
        with pytest.raises(RuntimeError, match="called again"):
            context.read_async(1, fd, 0)
        drain(context, [holder])
        assert holder.get_value() is None


# ---- fork ------------------------------------------------------------------------


def test_fork(fd: int, direct_fd: int) -> None:
    context = Context(1)
    context.set_future_factory(asyncio.Future)
    assert context.write_async(b"parent", fd, 0) == 6
    # At fork time: one Operation in flight, one future waiting for its slot.
    op = Operation.write(aligned(BLOCK, 8), direct_fd, 0)
    context.submit(op)
    waiting = context.read_async(6, fd, 0)
    assert isinstance(waiting, asyncio.Future)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            try:
                context.read_async(6, fd, 0)
            except RuntimeError as e:
                if "another process" in str(e):
                    code = 0
            try:
                context.process_events()
                code = 4
            except RuntimeError:
                pass
            context.close()  # forgets, touches nothing of the parent's
            if not context.closed:
                code = 2
            # A new context works in the child.
            with Context(2) as fresh:
                fresh.set_future_factory(asyncio.Future)
                if fresh.read_async(6, fd, 0) != b"parent":
                    code = 3
        finally:
            os.write(wfd, bytes([code]))
            os._exit(0)
    os.close(wfd)
    status = os.read(rfd, 1)
    os.close(rfd)
    os.waitpid(pid, 0)
    assert status == b"\0"
    # The parent's context still works and finishes what it had.
    drain(context, [op])
    assert op.get_value() == BLOCK
    while not waiting.done():
        wait_readable(context.fileno)
        context.process_events()
    assert waiting.result() == b"parent"
    assert context.read_async(6, fd, 0) == b"parent"
    context.close()


# ---- threads -------------------------------------------------------------------


def test_two_threads_with_their_own_loops(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        async def main() -> None:
            path = tmp_path / f"thread{index}.bin"
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                async with AsyncioContext(8) as context:
                    for i in range(2000):
                        block = bytes([index + 1, i % 256]) * 8
                        assert await context.write(block, descriptor, i * 16) == 16
                        assert await context.read(16, descriptor, i * 16) == block
                    await context.fdsync(descriptor)
            finally:
                os.close(descriptor)

        try:
            asyncio.run(main())
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert errors == []
    assert not any(t.is_alive() for t in threads)


def test_one_context_shared_by_threads_is_serialised(tmp_path: Path) -> None:
    # Not the intended use, but it must not corrupt anything.
    path = tmp_path / "shared.bin"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    context = Context(8)
    context.set_future_factory(asyncio.Future)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for i in range(3000):
                offset = (index * 3000 + i) * 4
                assert context.write_async(b"%04d" % (i % 10000), descriptor, offset) == 4
                context.process_events()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    context.close()
    os.close(descriptor)
    assert errors == []
    data = path.read_bytes()
    assert len(data) == 4 * 3000 * 4
    assert data[:8] == b"00000001"


# ---- through the adapter ---------------------------------------------------------


async def test_adapter_read_write_sync(fd: int, userspace_reap: bool) -> None:
    async with AsyncioContext(userspace_reap=userspace_reap) as context:
        assert await context.write(b"hello world", fd, 0) == 11
        await context.fsync(fd)
        await context.fdsync(fd)
        assert await context.read(5, fd, 6) == b"world"
        op = Operation.read(5, fd, 0)
        assert await context.submit(op) == b"hello"


async def test_adapter_special_files(pipe: Any) -> None:
    r, w = pipe
    async with AsyncioContext() as context:
        with pytest.raises(BlockingIOError):
            await context.read(10, r, 0)
        assert await context.write(b"through", w, 0) == 7
        assert await context.read(10, r, 0) == b"through"
        with open("/proc/self/status", "rb") as f:
            with pytest.raises(OSError):
                await context.read(100, f.fileno(), 0)


@pytest.mark.skipif(sys.byteorder != "little", reason="checks raw bytes")
async def test_adapter_payload_types(fd: int, file_path: Path) -> None:
    async with AsyncioContext() as context:
        assert await context.write(bytearray(b"ab"), fd, 0) == 2
        assert await context.write(memoryview(b"xcdx")[1:3], fd, 2) == 2
        assert await context.write(array.array("H", [0x6665]), fd, 4) == 2
        with pytest.raises((TypeError, BufferError)):
            await context.write(memoryview(b"abcdef")[::2], fd, 0)
    assert file_path.read_bytes() == b"abcdef"
