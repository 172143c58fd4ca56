"""caio.linux_uring at the low level: inline completion, batching, the
waiting queue, cancellation and buffer lifetime, closing, fork, threads and
the files io_uring cannot complete at once (pipes, /proc, devices).

Generic behaviour (errors, payload types, back-pressure through the
adapter) runs for every backend in test_asyncio_context.py. Requests that
truly stay in flight are made with reads on pipes nobody writes to: io_uring
arms a poll for them, so they wait until data comes or they are cancelled.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import mmap
import os
import random
import re
import resource
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

linux_uring = pytest.importorskip("caio.linux_uring")
Context = linux_uring.Context
Operation = linux_uring.Operation
from caio.linux_uring_asyncio import AsyncioContext  # noqa: E402

TIMEOUT = 30


def in_flight(context: Any) -> int:
    """Requests the kernel holds (from the context's repr)."""
    match = re.search(r"in_flight=(\d+)", repr(context))
    assert match is not None, repr(context)
    return int(match.group(1))


def batching(context: Any) -> bool:
    """Whether the context batches submissions (vs. entering at once)."""
    return bool(context.context.batching)


@pytest.fixture
def data_file(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """A read-write descriptor on a 64 KiB file of known content."""
    content = random.Random(7).randbytes(65536)
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    descriptor = os.open(path, os.O_RDWR)
    yield descriptor, content
    os.close(descriptor)


@pytest.fixture
def ctx(event_loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """A low-level Context watched by the test's loop."""
    context = Context(8)
    context.set_future_factory(event_loop.create_future)
    event_loop.add_reader(context.fileno, context.process_events)
    yield context
    if not context.closed:
        event_loop.remove_reader(context.fileno)
        context.close()


async def wait_for(future: Any) -> Any:
    return await asyncio.wait_for(future, TIMEOUT)


# ---- the low-level API -------------------------------------------------------


async def test_operation_callbacks_run_in_process_events(
    ctx: Any, data_file: tuple[int, bytes], event_loop: asyncio.AbstractEventLoop
) -> None:
    fd, content = data_file
    results: list[int] = []
    done = event_loop.create_future()

    def callback(result: int) -> None:
        results.append(result)
        if len(results) == 2 and not done.done():
            done.set_result(None)

    read = Operation.read(100, fd, 10)
    write = Operation.write(b"xyz", fd, 70000)
    read.set_callback(callback)
    write.set_callback(callback)
    assert ctx.submit(read, write) == 2
    # Even when the kernel finished inside submit(), callbacks wait for
    # process_events (they must not run before submit() returns).
    assert results == []
    await wait_for(done)
    assert sorted(results) == [3, 100]
    assert read.get_value() == content[10:110]
    assert write.get_value() == 3
    assert os.pread(fd, 3, 70000) == b"xyz"


async def test_operation_failure_and_states(ctx: Any, closed_fd: int) -> None:
    op = Operation.read(10, closed_fd, 0)
    with pytest.raises(RuntimeError):
        op.get_value()
    results: list[int] = []
    op.set_callback(results.append)
    ctx.submit(op)
    with pytest.raises(RuntimeError, match="already submitted|already finished"):
        ctx.submit(op)
    for _ in range(100):
        if results:
            break
        await asyncio.sleep(0.01)
    assert results == [-errno.EBADF]
    with pytest.raises(OSError) as info:
        op.get_value()
    assert info.value.errno == errno.EBADF


def test_submit_rejects_foreign_objects() -> None:
    with Context(4) as context:
        with pytest.raises(TypeError):
            context.submit(object())
        with pytest.raises(TypeError):
            context.cancel("nope")
    assert context.closed


async def test_cancel_operation_on_pipe(ctx: Any, pipe: Any) -> None:
    r, _w = pipe
    results: list[int] = []
    op = Operation.read(10, r, 0)
    op.set_callback(results.append)
    ctx.submit(op)
    assert ctx.cancel(op) == 1
    for _ in range(100):
        if results:
            break
        await asyncio.sleep(0.01)
    assert results == [-errno.ECANCELED]
    assert in_flight(ctx) == 0


async def test_cancel_waiting_operation_wakes_the_loop(
    event_loop: asyncio.AbstractEventLoop, pipe: Any
) -> None:
    # An operation cancelled before it reached the kernel gets no CQE: its
    # callback must still come from process_events, with nothing else
    # happening to wake the loop.
    r, _w = pipe
    context = Context(1)
    event_loop.add_reader(context.fileno, context.process_events)
    try:
        results: list[int] = []
        first, second = Operation.read(1, r, 0), Operation.read(1, r, 0)
        second.set_callback(results.append)
        context.submit(first, second)
        assert context.cancel(second) == 1
        for _ in range(100):
            if results:
                break
            await asyncio.sleep(0.01)
        assert results == [-errno.ECANCELED]
    finally:
        event_loop.remove_reader(context.fileno)
        context.close()


async def test_waiting_operations_beyond_max_requests(
    event_loop: asyncio.AbstractEventLoop, pipe: Any
) -> None:
    r, w = pipe
    context = Context(2)
    event_loop.add_reader(context.fileno, context.process_events)
    try:
        results: list[int] = []
        ops = [Operation.read(1, r, 0) for _ in range(5)]
        for op in ops:
            op.set_callback(results.append)
        assert context.submit(*ops) == 5
        assert in_flight(context) == 2          # the rest wait their turn
        os.write(w, b"abcde")
        for _ in range(200):
            if len(results) == 5:
                break
            await asyncio.sleep(0.01)
        assert results == [1] * 5
        assert sorted(op.get_value() for op in ops) == [b"a", b"b", b"c", b"d", b"e"]
    finally:
        event_loop.remove_reader(context.fileno)
        context.close()


def test_context_arguments() -> None:
    with Context(0) as default:  # 0 means the default, as None does
        assert default.max_requests == 512
    with pytest.raises(TypeError):
        Context(4, unknown=True)
    with pytest.raises(TypeError):
        Context(4, True)    # options are keyword-only
    with pytest.raises(TypeError):
        Context("4")
    with pytest.raises(ValueError):
        Context(-(2**80))
    with pytest.raises(ValueError):
        Context(2**80)
    with Context(None) as default:
        assert default.max_requests == 512
    context = Context(3)
    assert context.max_requests == 3
    assert context.sqpoll is False
    assert isinstance(context.fileno, int)
    context.close()
    context.close()
    assert context.closed
    with pytest.raises(ValueError, match="closed"):
        context.fileno  # noqa: B018
    with pytest.raises(ValueError, match="closed"):
        context.process_events()
    with pytest.raises(ValueError, match="closed"):
        context.read_async(1, 0, 0)


def test_read_async_needs_a_future_factory(data_file: tuple[int, bytes]) -> None:
    with Context(4) as context, pytest.raises(RuntimeError, match="set_future_factory"):
        context.read_async(1, data_file[0], 0)


async def test_lone_requests_that_go_async_are_not_lost(tmp_path: Path) -> None:
    # With nothing else in flight, submissions run with the eventfd signal
    # off (see module.c, eventfd_quiet); a request that does not complete
    # inline (O_DIRECT waits for the disk) must still wake the loop.
    try:
        fd = os.open(tmp_path / "direct", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        pytest.skip("no O_DIRECT on this file system")
    memory = mmap.mmap(-1, 4096)
    memory.write(b"d" * 4096)
    try:
        async with AsyncioContext(4) as context:
            for i in range(50):
                assert await wait_for(context.write(memory, fd, i * 4096)) == 4096
            await context.fsync(fd)
        assert (tmp_path / "direct").read_bytes() == b"d" * 4096 * 50
    finally:
        os.close(fd)


async def test_sqpoll_falls_back_or_works(
    event_loop: asyncio.AbstractEventLoop, data_file: tuple[int, bytes]
) -> None:
    fd, content = data_file
    async with AsyncioContext(16, sqpoll=True) as context:
        # Which one we got depends on the kernel and privileges; both work.
        low: Any = context.context
        assert isinstance(low.sqpoll, bool)
        results = await asyncio.gather(
            *(context.read(1000, fd, i * 1000) for i in range(40))
        )
        assert b"".join(results) == content[:40000]
        assert await context.write(b"sqpoll", fd, 5) == 6
        assert await context.read(6, fd, 5) == b"sqpoll"


# ---- reads: sizes and offsets --------------------------------------------------


async def test_short_read_and_past_eof(data_file: tuple[int, bytes]) -> None:
    fd, content = data_file
    async with AsyncioContext(4) as context:
        assert await context.read(100, fd, len(content) - 10) == content[-10:]
        assert await context.read(100, fd, len(content)) == b""
        assert await context.read(100, fd, len(content) + 12345) == b""


async def test_offsets_beyond_1_gib(tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        async with AsyncioContext(4) as context:
            for offset in (1 << 30, (3 << 30) + 7, (5 << 32) + 4095):
                payload = offset.to_bytes(8, "little") * 3
                assert await context.write(payload, fd, offset) == len(payload)
                assert await context.read(len(payload), fd, offset) == payload
                assert os.pread(fd, len(payload), offset) == payload
    finally:
        os.close(fd)


async def test_huge_read_on_small_file(data_file: tuple[int, bytes]) -> None:
    fd, content = data_file
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with AsyncioContext(4) as context:
        # More than 2 GiB asked: capped to the kernel's MAX_RW_COUNT, the
        # untouched pages of the buffer are never faulted in.
        assert await context.read(5 << 30, fd, 0) == content
        assert await context.read(3 << 30, fd, 100) == content[100:]
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    # Touching the buffers would cost 2 GiB; AddressSanitizer's shadow
    # memory alone (1/8 of an allocation) may cost a few hundred MiB.
    assert grown_kib < 1024 * 1024


async def test_large_read_and_write(tmp_path: Path) -> None:
    # Big submissions release the GIL around io_uring_enter.
    path = tmp_path / "big"
    payload = random.Random(3).randbytes(6 << 20)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        async with AsyncioContext(4) as context:
            assert await context.write(payload, fd, 0) == len(payload)
            assert await context.read(len(payload), fd, 0) == payload
    finally:
        os.close(fd)


async def test_einval_ebadf_eisdir(
    closed_fd: int, dir_fd: int, data_file: tuple[int, bytes]
) -> None:
    efd = os.eventfd(0, os.EFD_NONBLOCK) if hasattr(os, "eventfd") else None
    async with AsyncioContext(4) as context:
        with pytest.raises(OSError) as info:
            await context.read(10, closed_fd, 0)
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError) as info:
            await context.read(10, dir_fd, 0)
        assert info.value.errno == errno.EISDIR
        with pytest.raises(OSError) as info:
            await context.fsync(closed_fd)
        assert info.value.errno == errno.EBADF
        if efd is not None:
            # An eventfd read needs 8 bytes.
            with pytest.raises(OSError) as info:
                await context.read(4, efd, 0)
            assert info.value.errno == errno.EINVAL
            os.close(efd)
        # The context still works after failures.
        fd, content = data_file
        assert await context.read(5, fd, 0) == content[:5]


@pytest.mark.parametrize("nowait_reads", [True, False])
async def test_priorities(data_file: tuple[int, bytes], nowait_reads: bool) -> None:
    fd, content = data_file
    best_effort_4 = (2 << 13) | 4    # IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, 4)
    async with AsyncioContext(4, nowait_reads=nowait_reads) as context:
        # Plain numbers (as caio 0.12 callers pass) are accepted, not EINVAL.
        for priority in (0, 1, 7, best_effort_4):
            assert await context.read(10, fd, 5, priority) == content[5:15]
            assert await context.write(b"p", fd, 3, priority) == 1


# ---- special files --------------------------------------------------------------


async def test_pipe_ignores_offsets(pipe: Any) -> None:
    r, w = pipe
    async with AsyncioContext(4) as context:
        # A pipe cannot seek: io_uring ignores the offset of stream files.
        assert await context.write(b"hello pipe", w, 123456) == 10
        assert await context.read(100, r, 98765) == b"hello pipe"
        pending = asyncio.ensure_future(context.read(100, r, 5))
        await asyncio.sleep(0.01)
        assert not pending.done()
        os.write(w, b"later")
        assert await wait_for(pending) == b"later"
        os.close(w)
        assert await context.read(100, r, 0) == b""     # EOF


async def test_proc_and_devices() -> None:
    async with AsyncioContext(4) as context:
        fd = os.open("/proc/self/status", os.O_RDONLY)
        try:
            status = await context.read(65536, fd, 0)
        finally:
            os.close(fd)
        assert status.startswith(b"Name:")
        assert b"\nPid:\t%d\n" % os.getpid() in status
        fd = os.open("/dev/zero", os.O_RDONLY)
        try:
            assert await context.read(4096, fd, 1 << 40) == bytes(4096)
        finally:
            os.close(fd)
        fd = os.open("/dev/null", os.O_RDWR)
        try:
            assert await context.write(b"x" * 1000, fd, 77) == 1000
            assert await context.read(10, fd, 0) == b""
        finally:
            os.close(fd)


# ---- submit now or batch ---------------------------------------------------------


async def test_switches_to_batching_and_back(
    event_loop: asyncio.AbstractEventLoop, data_file: tuple[int, bytes]
) -> None:
    fd, content = data_file
    context = AsyncioContext(64)
    r, w = os.pipe()
    try:
        assert batching(context) is False
        # Pipe reads with no data never complete inline: the context
        # learns that and batches submissions.
        for round_ in range(4):
            tasks = [asyncio.ensure_future(context.read(1, r, 0)) for _ in range(16)]
            await asyncio.sleep(0)
            os.write(w, bytes(range(16)))
            results = await wait_for(asyncio.gather(*tasks))
            assert sorted(results) == [bytes([i]) for i in range(16)], round_
        assert batching(context) is True
        # Batched reads still return the right data.
        reads = await wait_for(
            asyncio.gather(*(context.read(100, fd, i * 100) for i in range(30)))
        )
        assert b"".join(reads) == content[:3000]
        # Cached reads complete inline again; the probes notice.
        for i in range(400):
            assert await context.read(10, fd, i) == content[i:i + 10]
        assert batching(context) is False
    finally:
        context.close()
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("explicit", [True, False])
async def test_batching_needs_a_scheduler(
    event_loop: asyncio.AbstractEventLoop, pipe: Any, explicit: bool
) -> None:
    # Batched submissions are flushed by a callback scheduled with call_soon:
    # given explicitly, or found on the factory (loop.create_future's loop).
    # A factory without one means: always submit at once.
    r, w = pipe
    context = Context(32)
    scheduled: list[Any] = []

    def call_soon(callback: Any) -> None:
        scheduled.append(callback)
        event_loop.call_soon(callback)

    if explicit:
        context.set_future_factory(lambda: event_loop.create_future(), call_soon)
    else:
        context.set_future_factory(lambda: event_loop.create_future())
    event_loop.add_reader(context.fileno, context.process_events)
    try:
        for _ in range(3):
            futures = [context.read_async(1, r, 0) for _ in range(16)]
            await asyncio.sleep(0)
            os.write(w, bytes(16))
            assert await wait_for(asyncio.gather(*futures)) == [b"\0"] * 16
        assert bool(context.batching) is explicit
        assert bool(scheduled) is explicit
    finally:
        event_loop.remove_reader(context.fileno)
        context.close()


async def test_inline_read_returns_bytes_directly(
    event_loop: asyncio.AbstractEventLoop, data_file: tuple[int, bytes]
) -> None:
    fd, content = data_file
    # nowait_reads=False: through the ring, not preadv2(RWF_NOWAIT).
    with Context(4, nowait_reads=False) as context:
        context.set_future_factory(event_loop.create_future)
        os.pread(fd, len(content), 0)   # in the page cache
        # The kernel completes a cached read inside io_uring_enter: bytes
        # come back from the call itself (a future only if it did not).
        results = [context.read_async(100, fd, 0) for _ in range(20)]
        assert sum(type(x) is bytes for x in results) >= 10
        for result in results:
            if type(result) is bytes:
                assert result == content[:100]


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="needs posix_fadvise")
@pytest.mark.parametrize("nowait_reads", [True, False])
async def test_partly_cached_reads_are_whole(tmp_path: Path, nowait_reads: bool) -> None:
    # preadv2(RWF_NOWAIT) stops where the page cache ends: that short read
    # must not be returned as if it were the end of the file.
    content = random.Random(11).randbytes(1 << 20)
    path = tmp_path / "partly"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        async with AsyncioContext(4, nowait_reads=nowait_reads) as context:
            for _ in range(3):
                os.pread(fd, 1 << 19, 0)    # first half cached
                os.posix_fadvise(fd, 1 << 19, 1 << 19, os.POSIX_FADV_DONTNEED)
                assert await context.read(1 << 18, fd, (1 << 19) - 100) == \
                    content[(1 << 19) - 100:(1 << 19) - 100 + (1 << 18)]
                os.posix_fadvise(fd, 1 << 19, 1 << 19, os.POSIX_FADV_DONTNEED)
                assert await context.read(200, fd, (1 << 19) - 100) == \
                    content[(1 << 19) - 100:(1 << 19) + 100]
            # End of file: short, and only the file's bytes.
            assert await context.read(4096, fd, len(content) - 10) == content[-10:]
            assert await context.read(4096, fd, len(content)) == b""
    finally:
        os.close(fd)


async def test_o_direct_read_is_refused_clearly(tmp_path: Path) -> None:
    # O_DIRECT refuses a misaligned request (EINVAL) and the error arrives
    # as a clear OSError. The offset is what is misaligned: the bytes
    # object a read lands in is 512-aligned by chance now and then, and
    # then the read rightly succeeds.
    path = tmp_path / "direct-read"
    path.write_bytes(bytes(8192))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        pytest.skip("no O_DIRECT on this file system")
    try:
        async with AsyncioContext(4) as context:
            with pytest.raises(OSError) as info:
                await context.read(4096, fd, 1)
            assert info.value.errno == errno.EINVAL
    finally:
        os.close(fd)


# ---- cancellation and memory safety ------------------------------------------------


async def test_cancel_future_keeps_buffer_until_completion(pipe: Any) -> None:
    r, w = pipe
    async with AsyncioContext(4) as context:
        task = asyncio.ensure_future(context.read(100, r, 0))
        await asyncio.sleep(0.01)
        assert in_flight(context.context) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The cancel's CQE and the read's own -ECANCELED CQE come back.
        for _ in range(100):
            if in_flight(context.context) == 0:
                break
            await asyncio.sleep(0.01)
        assert in_flight(context.context) == 0
        # Data written afterwards is not eaten by the cancelled read.
        os.write(w, b"fresh")
        assert await wait_for(context.read(100, r, 0)) == b"fresh"


async def test_cancel_future_of_waiting_request(pipe: Any) -> None:
    r, w = pipe
    async with AsyncioContext(1) as context:
        first = asyncio.ensure_future(context.read(1, r, 0))
        second = asyncio.ensure_future(context.read(1, r, 0))
        await asyncio.sleep(0.01)
        second.cancel()     # never reached the kernel
        with pytest.raises(asyncio.CancelledError):
            await second
        os.write(w, b"ab")
        assert await wait_for(first) == b"a"
        assert await wait_for(context.read(1, r, 0)) == b"b"
    assert context.context.closed


@pytest.mark.parametrize("sqpoll", [False, True], ids=["enter", "sqpoll"])
async def test_ten_thousand_operations_with_random_cancellation(
    tmp_path: Path, sqpoll: bool
) -> None:
    # O_DIRECT writes from page-aligned (mmap) buffers really stay in flight
    # (they wait for the disk), so random cancellations hit requests that
    # are waiting, in the kernel, or just completed.
    rnd = random.Random(42)
    block = 4096
    count = 10_000
    path = tmp_path / "storm"
    try:
        direct = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        pytest.skip("no O_DIRECT on this file system")
    buffered = os.open(path, os.O_RDONLY)
    memory = mmap.mmap(-1, count * block)
    memory.write(rnd.randbytes(count * block))
    view = memoryview(memory)
    try:
        async with AsyncioContext(64, sqpoll=sqpoll) as context:
            async def write(i: int) -> int:
                return await context.write(view[i * block:(i + 1) * block], direct, i * block)

            tasks = [asyncio.ensure_future(write(i)) for i in range(count)]
            cancelled: set[int] = set()
            for _ in range(count // 4):
                if rnd.random() < 0.2:
                    await asyncio.sleep(0)
                i = rnd.randrange(count)
                if tasks[i].cancel():
                    cancelled.add(i)
            outcomes = await wait_for(asyncio.gather(*tasks, return_exceptions=True))
            for i, outcome in enumerate(outcomes):
                if isinstance(outcome, asyncio.CancelledError):
                    assert i in cancelled
                else:
                    assert outcome == block, (i, outcome)

            # Read everything back, again cancelling at random.
            async def read(i: int) -> bytes:
                return await context.read(block, buffered, i * block)

            readers = [asyncio.ensure_future(read(i)) for i in range(count)]
            for _ in range(count // 4):
                if rnd.random() < 0.2:
                    await asyncio.sleep(0)
                readers[rnd.randrange(count)].cancel()
            got = await wait_for(asyncio.gather(*readers, return_exceptions=True))
            for _ in range(500):
                if in_flight(context.context) == 0:
                    break
                await asyncio.sleep(0.01)
            assert in_flight(context.context) == 0      # no slot leaked
        data = path.read_bytes()
        for i in range(count):
            chunk = data[i * block:(i + 1) * block]
            expected = view[i * block:(i + 1) * block].tobytes()
            if i in cancelled:
                # Cancelled before or after the kernel wrote it: all or nothing.
                assert chunk in (expected, bytes(block), b""), i
            else:
                assert chunk == expected, i
            if isinstance(got[i], bytes):
                assert got[i] == chunk, i
    finally:
        # Not memory.close(): tracebacks of cancelled tasks still hold
        # slices; the mapping goes with the last of them.
        os.close(direct)
        os.close(buffered)


# ---- closing ---------------------------------------------------------------------


@pytest.mark.parametrize("sqpoll", [False, True], ids=["enter", "sqpoll"])
async def test_close_with_operations_in_flight(pipe: Any, sqpoll: bool) -> None:
    r, _w = pipe
    context = AsyncioContext(4, sqpoll=sqpoll)
    tasks = [asyncio.ensure_future(context.read(10, r, 0)) for _ in range(6)]
    await asyncio.sleep(0.01)
    assert in_flight(context.context) == 4      # and two waiting
    context.close()                               # returns: nothing hangs
    for task in tasks:
        with pytest.raises(OSError) as info:
            await wait_for(task)
        assert info.value.errno == errno.ECANCELED
    assert context.context.closed


def test_close_runs_callbacks_of_operations_in_flight(pipe: Any) -> None:
    r, _w = pipe
    context = Context(2)
    results: list[int] = []
    ops = [Operation.read(10, r, 0) for _ in range(3)]
    for op in ops:
        op.set_callback(results.append)
    context.submit(*ops)
    context.close()
    assert results == [-errno.ECANCELED] * 3
    for op in ops:
        with pytest.raises(OSError):
            op.get_value()


def test_close_from_a_callback(pipe: Any) -> None:
    r, w = pipe
    context = Context(4)
    seen: list[int] = []

    def callback(result: int) -> None:
        seen.append(result)
        context.close()     # re-entrant close inside process_events

    op = Operation.read(10, r, 0)
    op.set_callback(callback)
    other = Operation.read(10, r, 0)
    other.set_callback(callback)    # whichever the kernel completes first
    context.submit(op, other)
    os.write(w, b"0123456789")
    for _ in range(100):
        if seen:
            break
        try:
            context.process_events()
        except ValueError:
            break
        threading.Event().wait(0.01)
    assert context.closed
    assert sorted(seen) == [-errno.ECANCELED, 10]


def test_garbage_collected_with_operations_in_flight(
    event_loop: asyncio.AbstractEventLoop, pipe: Any
) -> None:
    r, _w = pipe
    context = Context(4)
    context.set_future_factory(event_loop.create_future)
    future = context.read_async(10, r, 0)
    ref = weakref.ref(context)
    del context
    gc.collect()
    assert ref() is None
    assert future.done()
    assert isinstance(future.exception(), OSError)
    assert future.exception().errno == errno.ECANCELED


# ---- fork and threads --------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
# 3.12+ warns about forking with threads (the test runner's); the child
# only touches caio and leaves with os._exit.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
async def test_fork(data_file: tuple[int, bytes], pipe: Any) -> None:
    fd, content = data_file
    r, w = pipe
    async with AsyncioContext(4) as context:
        pending = asyncio.ensure_future(context.read(5, r, 0))
        await asyncio.sleep(0.01)
        pid = os.fork()
        if pid == 0:    # child: must not use or disturb the parent's ring
            code = 1
            try:
                try:
                    context.context.read_async(10, fd, 0)
                except RuntimeError as exc:
                    if "another process" in str(exc):
                        code = 0
                context.context.close()         # only forgets memory
                fresh = Context(2)
                op = Operation.read(10, fd, 0)
                fresh.submit(op)
                fresh.close()
                if op.get_value() != content[:10]:
                    code = 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's ring and its request in flight are untouched.
        os.write(w, b"after")
        assert await wait_for(pending) == b"after"
        assert await context.read(10, fd, 0) == content[:10]


def test_threads_each_with_a_context(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        async def main() -> None:
            path = tmp_path / f"t{n}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            r, w = os.pipe()
            try:
                async with AsyncioContext(16) as context:
                    for i in range(200):
                        payload = f"{n}:{i};".encode() * 50
                        assert await context.write(payload, fd, i * 1000) == len(payload)
                    got = await asyncio.gather(
                        *(context.read(1000, fd, i * 1000) for i in range(200))
                    )
                    for i, chunk in enumerate(got):
                        assert chunk.startswith(f"{n}:{i};".encode()), (n, i)
                    # A request that really waits, completed from this thread.
                    pending = asyncio.ensure_future(context.read(3, r, 0))
                    await asyncio.sleep(0.01)
                    os.write(w, b"end")
                    assert await asyncio.wait_for(pending, TIMEOUT) == b"end"
            finally:
                os.close(fd)
                os.close(r)
                os.close(w)

        try:
            asyncio.run(main())
        except BaseException as exc:    # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
