"""What only caio.linux_uring has: its options (sqpoll, nowait_reads,
priorities), batching of submissions, inline completion, the slots it
holds in the kernel (in_flight) while cancelling and closing.

The protocol every backend shares (the API, callbacks, cancellation,
closing, fork, threads, special files, errors) runs for each backend in
protocol/, the adapter's behaviour in test_asyncio_context.py. Requests that
truly stay in flight are made with reads on pipes nobody writes to: io_uring
arms a poll for them, so they wait until data comes or they are cancelled.
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import random
import re
import select
import selectors
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

# ImportError, not only a missing module: the module refuses to import
# where its kernel interface is blocked or too old (it says why).
linux_uring = pytest.importorskip("caio.linux_uring", exc_type=ImportError)
Context = linux_uring.Context
Operation = linux_uring.Operation
from lone_reads import (  # noqa: E402
    SLOW,
    adapter_mostly_in_the_call,
    cold_direct_file,
    mostly_in_the_call,
)

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
def data_file(make_data_file: Any) -> tuple[int, bytes]:
    """A read-write descriptor on a 64 KiB file of known content."""
    return make_data_file(65536, seed=7, flags=os.O_RDWR)


@pytest.fixture
def ctx(wire: Any) -> Any:
    """A low-level Context watched by the test's loop."""
    return wire(Context(8))


async def wait_for(future: Any) -> Any:
    return await asyncio.wait_for(future, TIMEOUT)


# ---- the low-level API -------------------------------------------------------


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


def deliver_until(context: Any, done: Any) -> None:
    """process_events() whenever the context is readable, until done()."""
    deadline = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < deadline, "operations did not finish"
        if select.select([context.fileno], [], [], 0.01)[0]:
            context.process_events()


def test_requests_outlive_the_thread_that_entered_them() -> None:
    # io_uring ties a request to the thread whose io_uring_enter took it and
    # drops it (-ECANCELED) when that thread exits first. In a context
    # shared by threads, one thread's process_events() moves another's
    # waiting request into the ring, and a thread may leave before what it
    # submitted is done: each request must still complete, with its data.
    context = Context(1)
    pipes = [os.pipe() for _ in range(3)]
    results: dict[str, int] = {}

    def operation(name: str, index: int) -> Any:
        op = Operation.read(3, pipes[index][0], 0)
        op.set_callback(lambda result: results.__setitem__(name, result))
        return op

    def in_thread(target: Any) -> None:
        thread = threading.Thread(target=target)
        thread.start()
        thread.join(TIMEOUT)
        assert not thread.is_alive()

    def drive() -> None:
        os.write(pipes[0][1], b"one")
        # Reaps "first", and enters "moved" (it waited for the one slot).
        deliver_until(context, lambda: "first" in results)

    try:
        first, moved = operation("first", 0), operation("moved", 1)
        assert context.submit(first, moved) == 2
        assert in_flight(context) == 1
        in_thread(drive)
        assert in_flight(context) == 1          # "moved", entered by the thread
        os.write(pipes[1][1], b"two")
        deliver_until(context, lambda: "moved" in results)
        assert results == {"first": 3, "moved": 3}
        assert moved.get_value() == b"two"

        left = operation("left", 2)
        in_thread(lambda: context.submit(left))  # the thread leaves at once
        os.write(pipes[2][1], b"six")
        deliver_until(context, lambda: "left" in results)
        assert results["left"] == 3
        assert left.get_value() == b"six"
    finally:
        context.close()
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_options_are_keyword_only() -> None:
    # The shared rules for max_requests and the closed state are in
    # protocol/test_api.py; sqpoll and nowait_reads are this backend's own.
    with pytest.raises(TypeError):
        Context(4, True)
    with Context(3) as context:
        assert context.sqpoll is False
    with Context(3, sqpoll=False, nowait_reads=False) as context:
        assert context.sqpoll is False


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


@pytest.mark.parametrize("nowait_reads", [True, False])
async def test_priorities(data_file: tuple[int, bytes], nowait_reads: bool) -> None:
    fd, content = data_file
    best_effort_4 = (2 << 13) | 4    # IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, 4)
    async with AsyncioContext(4, nowait_reads=nowait_reads) as context:
        # Plain numbers (as caio 0.12 callers pass) are accepted, not EINVAL.
        for priority in (0, 1, 7, best_effort_4):
            assert await context.read(10, fd, 5, priority) == content[5:15]
            assert await context.write(b"p", fd, 3, priority) == 1


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


async def pipe_reads(context: Any, r: int, w: int) -> None:
    """Rounds of 16 pipe reads that cannot complete inline."""
    for _ in range(3):
        futures = [context.read_async(1, r, 0) for _ in range(16)]
        await asyncio.sleep(0)
        os.write(w, bytes(16))
        assert await wait_for(asyncio.gather(*futures)) == [b"\0"] * 16


@pytest.mark.parametrize("explicit", [True, False])
async def test_batching_needs_a_scheduler(
    wire_recording: Any, pipe: Any, explicit: bool
) -> None:
    # Batched submissions are flushed by a callback scheduled with call_soon:
    # given explicitly, or found on the factory (loop.create_future's loop).
    # A factory without one means: always submit at once.
    r, w = pipe
    context = Context(32)
    scheduled = wire_recording(context, explicit)
    await pipe_reads(context, r, w)
    assert bool(context.batching) is explicit
    assert bool(scheduled) is explicit


async def test_close_drops_a_batch_the_loop_never_flushed(
    wire_recording: Any, pipe: Any
) -> None:
    # A batched write whose flush never ran (its loop stopped first), then
    # its descriptor closed and the number given to another file: close()
    # must not hand the write to the kernel, which would resolve the number
    # to the new file. It fails with ECANCELED instead.
    r, w = pipe
    context = Context(32)
    scheduled = wire_recording(context)
    old_r, old_w = os.pipe()
    new_r, new_w = os.pipe()
    try:
        await pipe_reads(context, r, w)
        assert context.batching
        context.read_async(1, r, 0)     # in flight: the write is not alone
        scheduled.clear()
        for _ in range(32):             # one in 16 is a probe, sent at once
            write = context.write_async(b"x", old_w, 0)
            if scheduled:
                break
        assert scheduled, "no batched write"
        # No loop iteration from here: the scheduled flush never runs.
        os.dup2(new_w, old_w)           # the number now names another pipe
        context.close()
        os.set_blocking(new_r, False)
        with pytest.raises(BlockingIOError):
            os.read(new_r, 10)          # the other file got nothing
        assert isinstance(write.exception(), OSError)
        assert write.exception().errno == errno.ECANCELED
    finally:
        for fd in (old_r, old_w, new_r, new_w):
            os.close(fd)


async def test_batching_submits_a_lone_request_at_once(
    wire_recording: Any, pipe: Any
) -> None:
    # While batching, a request with nothing else in flight or queued has
    # no one to share an io_uring_enter with: it goes to the kernel in the
    # call (no flush scheduled); the next one, with the first in flight,
    # waits for the flush as before.
    r, w = pipe
    context = Context(32)
    scheduled = wire_recording(context)
    await pipe_reads(context, r, w)
    assert context.batching
    scheduled.clear()
    first = context.read_async(1, r, 0)
    assert scheduled == []  # in the kernel already: no flush needed
    second = context.read_async(1, r, 0)
    assert len(scheduled) == 1
    assert in_flight(context) == 2
    os.write(w, b"ab")
    assert sorted(await wait_for(asyncio.gather(first, second))) == [b"a", b"b"]
    assert context.batching


async def test_batching_sends_a_few_disk_reads_at_once(
    wire_recording: Any, pipe: Any, tmp_path: Path
) -> None:
    # While batching, requests wait for the loop iteration's flush. Once
    # four are queued and the newest is a read from a disk file (regular
    # file or block device), or a write from aligned memory (O_DIRECT's),
    # they all go to the kernel in that call: a disk serves a queue kept
    # full. Streams, and buffered writes (a bytes payload), keep waiting
    # for the flush however many are queued.
    r, w = pipe
    context = Context(64)
    wire_recording(context)
    await pipe_reads(context, r, w)
    assert context.batching
    idle_r, idle_w = os.pipe()
    fd = os.open(tmp_path / "disk.bin", os.O_RDWR | os.O_CREAT, 0o600)
    os.pwrite(fd, b"d", 0)
    try:
        # One read in flight all along: no request below is alone.
        idle = context.read_async(1, idle_r, 0)
        await asyncio.sleep(0)
        assert in_flight(context) == 1
        # One request in 16 is a probe, sent at once: pass it, so that the
        # next 15 wait for the flush unless the disk rule sends them.
        # (A request done in the call returns its value, not a future.)
        for _ in range(16):
            if context.write_async(b"p", w, 0) == 1:
                break
        else:
            pytest.fail("no probe among 16 batched pipe writes")
        assert in_flight(context) == 1
        queued = [context.write_async(b"q", w, 0) for _ in range(5)]
        assert not any(f.done() for f in queued)    # five for a pipe: queued
        write = context.write_async(b"e", fd, 1)
        assert not any(f.done() for f in queued)    # a write to the file: still queued
        disk = context.read_async(1, fd, 0)
        # It made seven: all went in with it, and the pipe writes completed
        # in that system call.
        assert [f.result() for f in queued if f.done()] == [1] * 5
        assert disk == b"d" or await wait_for(disk) == b"d"
        assert write == 1 or await wait_for(write) == 1
        assert os.pread(fd, 2, 0) == b"de"
        # The same for a write from page-aligned memory, the newest of five.
        for _ in range(16):
            if context.write_async(b"p", w, 0) == 1:
                break
        else:
            pytest.fail("no probe among 16 batched pipe writes")
        queued = [context.write_async(b"q", w, 0) for _ in range(4)]
        memory = mmap.mmap(-1, 4096)
        memory[:] = b"m" * 4096
        aligned = context.write_async(memory, fd, 4096)
        # In that call: the pipe writes completed in it.
        assert [f.done() and f.result() for f in queued] == [1] * 4
        assert aligned == 4096 or await wait_for(aligned) == 4096
        assert os.pread(fd, 4096, 4096) == b"m" * 4096
        os.write(idle_w, b"!")
        assert await wait_for(idle) == b"!"
        assert context.batching
    finally:
        for descriptor in (idle_r, idle_w, fd):
            os.close(descriptor)


async def test_burst_resubmissions_go_in_the_iteration_they_are_made(
    event_loop: asyncio.AbstractEventLoop, pipe: Any
) -> None:
    # A burst of completions wakes its tasks in the next loop iteration and
    # each queues its next read there. The flush that submits them must run
    # in that same iteration (scheduled by process_events behind the
    # wake-ups), not one iteration later (scheduled by the first of them):
    # in between, every slot of the burst would sit idle.
    r, w = pipe
    log: list[str] = []
    context = Context(32)

    def call_soon(callback: Any) -> None:
        def flush() -> None:
            log.append("flush")
            callback()

        log.append("scheduled")
        event_loop.call_soon(flush)

    def tick() -> None:     # one entry per loop iteration
        log.append("tick")
        ticking.append(event_loop.call_soon(tick))

    context.set_future_factory(event_loop.create_future, call_soon)
    event_loop.add_reader(context.fileno, context.process_events)
    ticking = [event_loop.call_soon(tick)]

    async def reader() -> None:
        for _ in range(2):
            await context.read_async(1, r, 0)
            log.append("resumed")

    try:
        await pipe_reads(context, r, w)     # batching from here on
        assert context.batching
        readers = [asyncio.ensure_future(reader()) for _ in range(16)]
        for _ in range(4):
            await asyncio.sleep(0)
        assert in_flight(context) == 16
        log.clear()
        os.write(w, bytes(16))
        while log.count("resumed") < 16:
            await asyncio.sleep(0)
        for _ in range(4):
            await asyncio.sleep(0)
        woken = [i for i, entry in enumerate(log) if entry == "resumed"]
        # Scheduled once, before the tasks ran (they scheduled nothing)...
        assert log[:woken[0]].count("scheduled") == 1
        assert log.count("scheduled") == 1
        # ... and run after the last of them, with no iteration between.
        after = log[woken[-1] + 1:]
        assert "flush" in after
        assert "tick" not in after[:after.index("flush")]
        assert in_flight(context) == 16
        os.write(w, bytes(16))
        await wait_for(asyncio.gather(*readers))
        assert log.count("resumed") == 32
    finally:
        ticking[-1].cancel()
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


# ---- filesystem operations on the ring ---------------------------------------------


async def test_fs_ops_with_sqpoll(tmp_path: Path) -> None:
    async with AsyncioContext(sqpoll=True) as context:
        await asyncio.wait_for(context.mkdir(tmp_path / "d"), TIMEOUT)
        ours = await asyncio.wait_for(context.stat(tmp_path / "d"), TIMEOUT)
        assert tuple(ours) == tuple(os.stat(tmp_path / "d"))
        fd = await asyncio.wait_for(
            context.open(tmp_path / "d" / "f", os.O_CREAT | os.O_WRONLY), TIMEOUT,
        )
        await asyncio.wait_for(context.close_fd(fd), TIMEOUT)
        assert (tmp_path / "d" / "f").exists()


async def test_fs_op_waits_for_a_slot(tmp_path: Path) -> None:
    """With the only slot taken, a stat waits its turn in the queue; one
    cancelled there never reaches the kernel and lets its path go.
    (stat_cached=False: a cached path would be answered without a slot.)"""
    import gc
    import sys

    path = bytes(tmp_path)
    refs = sys.getrefcount(path)
    r, w = os.pipe()
    try:
        async with AsyncioContext(max_requests=1, stat_cached=False) as context:
            reading = asyncio.ensure_future(context.read(1, r, 0))
            await asyncio.sleep(0.01)
            waiting = asyncio.ensure_future(context.stat(path))
            cancelled = asyncio.ensure_future(context.stat(path))
            await asyncio.sleep(0.05)
            assert not waiting.done() and not cancelled.done()
            assert in_flight(context.context) == 1
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            os.write(w, b"x")
            assert await asyncio.wait_for(reading, TIMEOUT) == b"x"
            ours = await asyncio.wait_for(waiting, TIMEOUT)
            assert tuple(ours) == tuple(os.stat(path))
            del cancelled, waiting
        gc.collect()
        assert sys.getrefcount(path) == refs
    finally:
        os.close(r)
        os.close(w)



# ---- the short wait for a lone miss (batch.c) --------------------------------


#: The lone-miss wait needs io_uring_enter's timeout (IORING_FEAT_EXT_ARG,
#: 5.11); under an older kernel profile (nox -s kernels) there is none.
needs_ext_arg = pytest.mark.skipif(
    "uring_ext_arg" not in Context(1)._kernel_features,
    reason="no IORING_FEAT_EXT_ARG: lone misses are never waited for",
)


def idle_context(wire: Any) -> Any:
    """A wired Context told that its loop is always idle (the adapter's
    check answers for a real loop: see the tests at the end)."""
    context = wire(Context(8))
    context._set_idle_check(lambda: True)
    return context


@needs_ext_arg
async def test_lone_misses_are_waited_for_until_the_waits_keep_failing(
    tmp_path: Path, wire: Any
) -> None:
    # A read alone in flight that does not complete inline is waited for a
    # little in the call. Reads too large for the wait fail it: after a
    # few the context stops waiting (but for a probe now and then), and
    # every read still gets its data through the loop.
    fd, content = cold_direct_file(tmp_path, SLOW // 4096)
    try:
        context = idle_context(wire)
        memory = mmap.mmap(-1, SLOW)
        assert context.lone_wait
        for i in range(6):
            started = time.perf_counter()
            pending = context.readinto_async(memory, fd, 0)
            took = time.perf_counter() - started
            if i == 0:
                assert took >= 100e-6, "the first lone miss was not waited for"
            assert await wait_for(pending) == SLOW
            assert memory[:] == content
        assert not context.lone_wait
    finally:
        os.close(fd)


async def test_lone_misses_beside_others_and_on_pipes_do_not_wait(
    tmp_path: Path, wire: Any, pipe: Any
) -> None:
    # A read on a pipe waits for its writer, not a disk: never waited for.
    # A read with another in flight (that pipe read) is not alone: the
    # loop has work to overlap. Either kind of wait would fail here, and
    # failed waits stop the waiting (the test above).
    r, w = pipe
    fd, content = cold_direct_file(tmp_path, SLOW // 4096)
    try:
        context = idle_context(wire)
        for i in range(6):
            pending = context.read_async(1, r, 0)   # alone, on a pipe
            os.write(w, bytes([i]))
            assert await wait_for(pending) == bytes([i])
        assert context.lone_wait
        waiting = context.read_async(1, r, 0)
        memory = mmap.mmap(-1, SLOW)
        for _ in range(6):
            assert await wait_for(context.readinto_async(memory, fd, 0)) == SLOW
        assert memory[:] == content
        assert context.lone_wait
        os.write(w, b"z")
        assert await wait_for(waiting) == b"z"
    finally:
        os.close(fd)


@needs_ext_arg
@pytest.mark.alone   # a disk's latency: not beside another suite
async def test_a_lone_read_from_a_fast_disk_completes_in_the_call(
    tmp_path: Path, wire: Any
) -> None:
    # O_DIRECT reads one at a time always go to the disk: where it answers
    # well within the wait, most come back as bytes from the call itself,
    # with no future and no trip through the loop.
    fd, content = cold_direct_file(tmp_path, 64)

    async def make() -> Any:
        return idle_context(wire)

    try:
        await mostly_in_the_call(fd, content, make)
    finally:
        os.close(fd)


@needs_ext_arg
async def test_no_wait_unless_the_loop_is_idle(tmp_path: Path, wire: Any) -> None:
    # Without an idle check (a bare Context, Trio) or when it says the loop
    # has other work, a lone miss goes to the loop at once: no wait, so no
    # failed wait either (lone_wait would turn False after a few).
    fd, content = cold_direct_file(tmp_path, SLOW // 4096)
    try:
        memory = mmap.mmap(-1, SLOW)
        asked: list[int] = []

        def busy() -> bool:
            asked.append(1)
            return False

        for check in (None, busy):
            context = wire(Context(8))
            context._set_idle_check(check)
            for _ in range(6):
                assert await wait_for(context.readinto_async(memory, fd, 0)) == SLOW
            assert context.lone_wait
        assert memory[:] == content
        assert len(asked) >= 4   # asked, not waited for
        with pytest.raises(TypeError, match="callable"):
            context._set_idle_check(42)
    finally:
        os.close(fd)


@needs_ext_arg
async def test_a_failing_idle_check_means_no_wait(
    tmp_path: Path, wire: Any, monkeypatch: Any
) -> None:
    # Reported (sys.unraisablehook), taken for "not idle".
    fd, _ = cold_direct_file(tmp_path, SLOW // 4096)
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    try:
        context = wire(Context(8))

        def broken() -> bool:
            raise ZeroDivisionError("the check")

        context._set_idle_check(broken)
        memory = mmap.mmap(-1, SLOW)
        for _ in range(6):
            assert await wait_for(context.readinto_async(memory, fd, 0)) == SLOW
        assert context.lone_wait   # never waited, so never failed a wait
        assert reported
        assert all(type(r.exc_value) is ZeroDivisionError for r in reported)
    finally:
        os.close(fd)


async def idle_check_sees_other_work(loop: Any) -> None:
    # What the check answers on a running stock loop: busy for a ready
    # callback, a task the FutureFactory has yet to wake, a timer due, a
    # descriptor ready but the context's own; idle otherwise. Asking does
    # not take the news from the loop: the reader still runs.
    from caio import _awaitables, asyncio_base

    factory = _awaitables.FutureFactory(loop)
    r, w = os.pipe()
    own_r, own_w = os.pipe()
    heard: list[bytes] = []
    try:
        idle = asyncio_base._idle_check(loop, factory, own_r)
        assert idle()
        handle = loop.call_soon(lambda: None)
        assert not idle()
        handle.cancel()
        await asyncio.sleep(0)
        assert idle()
        timer = loop.call_at(loop.time() - 1, lambda: None)
        assert not idle()
        timer.cancel()
        await asyncio.sleep(0)
        loop.add_reader(own_r, lambda: os.read(own_r, 1))
        os.write(own_w, b"x")
        assert idle()            # our own eventfd: what the wait is about
        loop.add_reader(r, lambda: heard.append(os.read(r, 1)))
        os.write(w, b"x")
        # (A peek that saw nothing is kept for PEEK_KEEP: past it.)
        time.sleep(2 * asyncio_base.PEEK_KEEP)
        assert not idle()        # another descriptor has news for the loop
        assert not idle()
        for _ in range(3):
            await asyncio.sleep(0)
        assert heard == [b"x"]   # ... which it still gets
        assert idle()
        loop.remove_reader(r)
        loop.remove_reader(own_r)
        future = factory()
        future.add_done_callback(lambda _: None)
        future.set_result(None)  # its callback is queued in the factory
        assert factory.pending and not idle()
        await asyncio.sleep(0)
        assert not factory.pending and idle()
    finally:
        for descriptor in (r, w, own_r, own_w):
            loop.remove_reader(descriptor)
            os.close(descriptor)


async def test_the_adapters_idle_check_sees_other_work(event_loop: Any) -> None:
    # The stock loop's epoll selector: the check peeks at the epoll object.
    assert isinstance(event_loop._selector, selectors.EpollSelector)
    await idle_check_sees_other_work(event_loop)


async def test_the_idle_check_keeps_a_quiet_peek(event_loop: Any, monkeypatch: Any) -> None:
    # The peek at the descriptors is a system call that costs about what a
    # lone 4 KiB write costs: its "nothing ready" is kept for PEEK_KEEP,
    # and only that answer (ready callbacks and timers are looked at every
    # time). Here kept for an hour, then for nothing.
    from caio import _awaitables, asyncio_base

    monkeypatch.setattr(asyncio_base, "PEEK_KEEP", 3600.0)
    idle = asyncio_base._idle_check(event_loop, _awaitables.FutureFactory(event_loop), -1)
    r, w = os.pipe()
    heard: list[bytes] = []
    try:
        assert idle()
        event_loop.add_reader(r, lambda: heard.append(os.read(r, 1)))
        os.write(w, b"x")
        assert idle()            # the kept answer
        handle = event_loop.call_soon(lambda: None)
        assert not idle()        # a ready callback is seen all the same
        handle.cancel()
        for _ in range(3):
            await asyncio.sleep(0)
        assert heard == [b"x"]
        monkeypatch.setattr(asyncio_base, "PEEK_KEEP", 0.0)
        os.write(w, b"y")
        time.sleep(0.01)
        assert idle()            # the answer kept for an hour still holds
        fresh = asyncio_base._idle_check(event_loop, _awaitables.FutureFactory(event_loop), -1)
        assert not fresh()       # a check that keeps nothing sees the pipe
        assert not fresh()
    finally:
        event_loop.remove_reader(r)
        os.close(r)
        os.close(w)


def test_the_idle_check_on_other_selectors() -> None:
    # Any other selector: the check asks it for what is ready.
    loop = asyncio.SelectorEventLoop(selectors.PollSelector())
    try:
        loop.run_until_complete(idle_check_sees_other_work(loop))
    finally:
        loop.close()


@needs_ext_arg
async def test_tasks_reading_one_at_a_time_are_never_held_up(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # A read completed in the call does not yield: were lone misses waited
    # for while other tasks are ready, the first task would do all its
    # reads before the next one started. The adapter installs the check;
    # every time it is asked while other tasks are ready it says busy.
    # (Whether the reads then interleave is the disk's business: one that
    # answers within the submitting io_uring_enter completes them in the
    # call with no wait at all.)
    from caio import asyncio_base

    answers: list[tuple[bool, int]] = []
    real = asyncio_base._idle_check

    def spied(loop: Any, factory: Any, own: int) -> Any:
        check = real(loop, factory, own)

        def idle() -> bool:
            answer = check()
            answers.append((answer, len(loop._ready)))
            return answer

        return idle

    monkeypatch.setattr(asyncio_base, "_idle_check", spied)
    fd, content = cold_direct_file(tmp_path, 1024)
    try:
        async with AsyncioContext(64) as context:

            async def worker(k: int) -> None:
                # The first read is 4 MiB: it cannot complete within the
                # submitting call, so the check is asked at least once.
                memory = mmap.mmap(-1, 4 << 20 if k == 0 else 4096)
                assert await context.readinto(memory, fd, 0) == len(memory)
                assert memory[:] == content[:len(memory)]
                memory = mmap.mmap(-1, 4096)
                for i in range(8):
                    block = (k * 8 + i) * 37 % 1024
                    assert await context.readinto(memory, fd, block * 4096) == 4096
                    assert memory[:] == content[block * 4096:(block + 1) * 4096]

            await wait_for(asyncio.gather(*(worker(k) for k in range(16))))
        assert answers, "the check was never asked"
        assert answers[0] == (False, 15)   # the first task's first read
        assert not [a for a in answers if a[0] and a[1]], answers
    finally:
        os.close(fd)


@needs_ext_arg
@pytest.mark.alone   # a disk's latency: not beside another suite
async def test_one_task_alone_gets_its_reads_in_the_call(tmp_path: Path) -> None:
    # Through the adapter, with nothing else on the loop, the check says
    # idle: a fast disk's reads complete in the call (no future).
    await adapter_mostly_in_the_call(tmp_path, AsyncioContext)
