"""What only caio.thread_aio has: the RWF_NOWAIT fast path, the pool
(pool_size, workers started on demand, signals blocked, interrupted pipe
waits), close_timeout and the atexit hook.

The protocol every backend shares (the API, callbacks, cancellation,
closing, fork, threads, special files, errors) runs for each backend in
protocol/, the adapter's behaviour in test_asyncio_context.py.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import random
import select
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from caio._limits import NOWAIT_MAX

try:
    from caio.thread_aio import _HAVE_NOWAIT, Context, Operation
    from caio.thread_aio_asyncio import AsyncioContext
except ImportError as exc:  # not a POSIX system, or not built
    pytest.skip(f"caio.thread_aio cannot be imported: {exc}", allow_module_level=True)

TIMEOUT = 30
BLOCK = 4096
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
#: Reads and writes that may finish during the call (RWF_NOWAIT).
nowait_only = pytest.mark.skipif(not _HAVE_NOWAIT, reason="built without RWF_NOWAIT")


@pytest.fixture
def ctx(wire: Any) -> Any:
    """A low-level Context wired to the test's loop like the adapter does."""
    return wire(Context(max_requests=64, pool_size=4))


def wait_readable(fd: int) -> None:
    readable, _, _ = select.select([fd], [], [], TIMEOUT)
    assert readable, "nothing within the timeout"


def run_ops(context: Any, *ops: Any) -> list[tuple[int, int]]:
    """Submit Operations and wait for their callbacks: [(result, thread id)]."""
    done = threading.Event()
    results: dict[int, tuple[int, int]] = {}
    lock = threading.Lock()

    def callback(index: int, result: int) -> None:
        with lock:
            results[index] = (result, threading.get_ident())
            if len(results) == len(ops):
                done.set()

    for index, op in enumerate(ops):
        op.set_callback(lambda result, index=index: callback(index, result))
    assert context.submit(*ops) == len(ops)
    assert done.wait(TIMEOUT)
    return [results[i] for i in range(len(ops))]


def drop_cache(fd: int) -> bool:
    """Evict the file from the page cache; False where that is impossible.

    Readahead is turned off for ``fd``: the probe (and the tests' reads)
    then bring in the pages they ask for only, not their neighbours.
    """
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    probe = bytearray(1)
    try:
        os.preadv(fd, [probe], 0, os.RWF_NOWAIT)   # page 0 (may load it)
    except OSError as exc:
        return exc.errno == errno.EAGAIN
    return False


@pytest.fixture
def data_file(make_data_file: Any) -> tuple[int, bytes]:
    """(read-only fd, content) of a 256 KiB file of random bytes."""
    return make_data_file(256 * 1024, seed=3)


# ---- construction and closed state ---------------------------------------


def test_context_arguments() -> None:
    context = Context()
    assert (context.max_requests, context.pool_size, context.closed) == (512, 16, False)
    context.close()
    context = Context(3, 2, close_timeout=0.5)
    assert (context.max_requests, context.pool_size) == (3, 2)
    assert "max_requests=3" in repr(context)
    context.close()
    assert "closed" in repr(context)
    # max_requests follows the shared rule (protocol/test_api.py).
    # close_timeout follows the rule protocol/test_closing.py states.
    for bad in ({"pool_size": 0}, {"pool_size": 10**30}):
        with pytest.raises(ValueError):
            Context(**bad)


# ---- the fast path ---------------------------------------------------------


@nowait_only
def test_cached_read_finishes_during_the_call(data_file: tuple[int, bytes]) -> None:
    fd, data = data_file
    os.pread(fd, len(data), 0)  # into the page cache
    context = Context()
    # A factory that fails the test: a cached read must not make a future.
    context.set_future_factory(lambda: pytest.fail("a cached read made a future"))
    try:
        assert context.read_async(BLOCK, fd, BLOCK) == data[BLOCK:2 * BLOCK]
        # Short at end of file, confirmed by a second non-blocking read.
        assert context.read_async(BLOCK, fd, len(data) - 10) == data[-10:]
        assert context.read_async(BLOCK, fd, len(data)) == b""
        # Big enough to copy with the GIL released.
        assert context.read_async(len(data), fd, 0) == data
        with pytest.raises(OSError) as info:
            context.read_async(1, 10**6 - 1, 0)  # EBADF: raised at once
        assert info.value.errno == errno.EBADF
    finally:
        context.close()


@nowait_only
async def test_big_cached_read_goes_to_a_worker(ctx: Any, file_path: Path) -> None:
    # Copying it on the loop thread would stall the loop, cache or not.
    data = os.urandom(3 << 20)
    file_path.write_bytes(data)
    with open(file_path, "rb") as f:
        f.read()    # cached now
        result = ctx.read_async(len(data), f.fileno(), 0)
        assert isinstance(result, asyncio.Future)
        assert await result == data


@nowait_only
async def test_pipe_data_already_there_needs_no_worker(ctx: Any, pipe: Any) -> None:
    r, w = pipe
    # Room in the pipe: the write finishes during the call too.
    assert ctx.write_async(b"ready", w, 999) == 5
    # Offsets are ignored on a pipe; the bytes are there: no future.
    assert ctx.read_async(100, r, 12345) == b"ready"


@nowait_only
async def test_uncached_read_goes_to_the_pool(ctx: Any, data_file: tuple[int, bytes]) -> None:
    fd, data = data_file
    if not drop_cache(fd):
        pytest.skip("cannot evict the page cache on this file system")
    for attempt in range(30):
        # drop_cache's probe of page 0 may bring in a large folio that
        # covers block 8 too (ext4 on 6.18 makes them when memory allows):
        # evict again once that read is done. A plain read of page 0 waits
        # for it (a folio under I/O is locked and stays; a fixed sleep was
        # too short on a busy disk, with aiofile's suite running beside).
        # Eviction also skips a folio that someone else holds a reference
        # to for a moment (on these machines DAMON's kdamond samples
        # physical pages so): with other suites running beside, five tries
        # in a row once all found block 8 still cached. So: more tries, a
        # pause between them.
        if attempt:
            await asyncio.sleep(0.01)
        os.pread(fd, 1, 0)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        result = ctx.read_async(BLOCK, fd, 8 * BLOCK)
        if isinstance(result, asyncio.Future):
            break
        assert result == data[8 * BLOCK:9 * BLOCK]
    assert isinstance(result, asyncio.Future), "block 8 stayed cached after 30 evictions"
    assert await result == data[8 * BLOCK:9 * BLOCK]


@nowait_only
async def test_partly_cached_read_is_finished_by_a_worker(
    ctx: Any, data_file: tuple[int, bytes],
) -> None:
    # The first page cached, the rest not: the non-blocking read returns a
    # short prefix, and the worker must read the rest after it. The missed
    # non-blocking read starts readahead of the rest, which a fast disk may
    # finish before the end-of-file probe: then the whole read is done
    # inline. Either way the bytes must be the file's.
    fd, data = data_file
    if not drop_cache(fd):
        pytest.skip("cannot evict the page cache on this file system")
    os.pread(fd, BLOCK, 0)
    result = ctx.read_async(len(data), fd, 0)
    if isinstance(result, asyncio.Future):
        result = await result
    assert result == data


@nowait_only
async def test_o_direct_never_runs_on_the_loop_thread(
    ctx: Any, file_path: Path, data_file: tuple[int, bytes],
) -> None:
    # RWF_NOWAIT does not stop an O_DIRECT read from waiting for the disk,
    # so O_DIRECT descriptors always go to a worker.
    try:
        direct = os.open(file_path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        pytest.skip("no O_DIRECT on this file system")
    try:
        result = ctx.read_async(BLOCK, direct, 0)
        assert isinstance(result, asyncio.Future)
        try:
            assert await result == data_file[1][:BLOCK]
        except OSError as exc:  # the bytes object is not aligned for O_DIRECT
            assert exc.errno == errno.EINVAL
    finally:
        os.close(direct)


# ---- the pool ----------------------------------------------------------------


async def test_writes_reads_and_syncs_through_the_pool(ctx: Any, fd: int) -> None:
    payload = bytearray(os.urandom(3 * BLOCK))
    written = ctx.write_async(payload, fd, BLOCK)
    if not isinstance(written, int):
        written = await written
    assert written == len(payload)
    assert await ctx.fsync_async(fd) is None
    assert await ctx.fdsync_async(fd) is None
    assert os.pread(fd, 10 * BLOCK, 0) == bytes(BLOCK) + payload


def occupy_the_worker(context: Any, fd: int) -> tuple[Any, threading.Event]:
    """Keep a one-worker context busy: an Operation whose callback (run by
    the worker) waits. Returns it and the event that lets it go."""
    started, release = threading.Event(), threading.Event()

    def hold(result: int) -> None:
        started.set()
        release.wait(TIMEOUT)

    op = Operation.fsync(fd)
    op.set_callback(hold)
    context.submit(op)
    assert started.wait(TIMEOUT)
    return op, release


def test_cancel_future_of_a_request_that_ran(pipe: Any, fd: int) -> None:
    # Cancelling what still waits is shared (protocol/test_completions.py).
    r, w = pipe
    loop = asyncio.new_event_loop()
    context = Context(pool_size=1)
    try:
        context.set_future_factory(loop.create_future)
        _, release = occupy_the_worker(context, fd)
        first = context.read_async(1, r, 0)
        first.cancel()                                    # as a task would
        os.write(w, b"x")
        release.set()
        wait_readable(context.fileno)
        assert context.cancel_future(first) is False      # ran already
        # The completion of a cancelled future is dropped quietly.
        assert context.process_events() == 1
        assert first.cancelled()
    finally:
        context.close()
        loop.close()


def wait_for_a_worker_in_poll(before: set[str]) -> None:
    """Wait until a thread started after ``before`` sleeps in poll()."""
    for _ in range(TIMEOUT * 1000):
        for task in set(os.listdir("/proc/self/task")) - before:
            try:
                with open(f"/proc/self/task/{task}/wchan") as f:
                    if "poll" in f.read():
                        return
            except OSError:  # the thread just exited
                pass
        threading.Event().wait(0.001)
    raise AssertionError("no worker waits in poll()")


@linux_only
def test_cancelling_a_read_waiting_on_a_pipe_frees_its_worker(pipe: Any, fd: int) -> None:
    # Nobody will ever write: without the interruption the only worker
    # would stay blocked for good and every later request would hang.
    loop = asyncio.new_event_loop()
    before = set(os.listdir("/proc/self/task"))
    context = Context(pool_size=1)
    try:
        context.set_future_factory(loop.create_future)
        waiting = context.read_async(10, pipe[0], 0)
        wait_for_a_worker_in_poll(before)
        waiting.cancel()                          # as the task would be
        assert context.cancel_future(waiting) is False    # it was running
        sync = context.fsync_async(fd)
        done = 0
        while done < 2:
            wait_readable(context.fileno)
            done += context.process_events()
        assert sync.result() is None
        assert waiting.cancelled()
    finally:
        context.close()
        loop.close()


@linux_only
def test_cancelling_a_running_operation_on_a_pipe(pipe: Any) -> None:
    before = set(os.listdir("/proc/self/task"))
    context = Context(pool_size=1)
    try:
        op = Operation.read(10, pipe[0], 0)
        results: list[int] = []
        done = threading.Event()

        def callback(result: int) -> None:
            results.append(result)
            done.set()

        op.set_callback(callback)
        context.submit(op)
        wait_for_a_worker_in_poll(before)
        assert context.cancel(op) == 0      # running: interrupted, not taken back
        assert done.wait(TIMEOUT)
        assert results == [-errno.ECANCELED]
        # The worker is free again.
        os.write(pipe[1], b"y")
        assert run_ops(context, Operation.read(1, pipe[0], 0))[0][0] == 1
    finally:
        context.close()


def test_one_wakeup_for_a_batch_of_completions(fd: int, pipe: Any) -> None:
    r, w = pipe
    loop = asyncio.new_event_loop()
    context = Context(pool_size=1)
    try:
        context.set_future_factory(loop.create_future)
        first = context.read_async(1, r, 0)          # holds the only worker
        rest = [context.fsync_async(fd) for _ in range(20)]
        # An Operation queued last: its callback runs after all of the above
        # completed (one worker, FIFO).
        last_done = threading.Event()
        last = Operation.fsync(fd)
        last.set_callback(lambda result: last_done.set())
        context.submit(last)
        os.write(w, b"x")
        assert last_done.wait(TIMEOUT)
        if stat.S_ISFIFO(os.fstat(context.fileno).st_mode):  # one byte per wake-up
            assert os.read(context.fileno, 100) == b"\0"
        else:   # an eventfd, which counts the wake-ups
            assert int.from_bytes(os.read(context.fileno, 8), sys.byteorder) == 1
        assert context.process_events() == 21
        assert context.process_events() == 0
        assert first.result() == b"x"
        assert all(f.result() is None for f in rest)
    finally:
        context.close()
        loop.close()


@pytest.mark.parametrize("pool_size", [1, 4])
def test_no_completion_or_submission_is_lost_in_a_race(fd: int, pool_size: int) -> None:
    # The loop drains the wake-up fd outside the pool's lock while workers
    # publish completions, and a submission signals the idle worker after
    # unlocking: waves of 1-8 requests, each waited for through fileno
    # alone, race both against workers finishing or going idle. A lost
    # wake-up either way leaves a wave pending and fileno silent for good
    # (a completion pushed onto a non-empty list signals nothing). A stress
    # test: the windows are a few hundred nanoseconds wide, so it finds a
    # missing wake-up of a submission at once but a drain in the wrong
    # place (after the swap) only by luck; pool_stop.c argues the order.
    # Reads of an empty file too big for the fast path: each one is a
    # worker's pread that returns at once, into one buffer (no allocation).
    buffer = bytearray(NOWAIT_MAX + 1)
    rng = random.Random(5)
    loop = asyncio.new_event_loop()
    context = Context(max_requests=64, pool_size=pool_size)
    total = 0
    try:
        context.set_future_factory(loop.create_future)
        while total < 10000:
            wave = [context.readinto_async(buffer, fd, 0) for _ in range(rng.randint(1, 8))]
            total += len(wave)
            while not all(f.done() for f in wave):
                readable, _, _ = select.select([context.fileno], [], [], 10)
                assert readable, f"{sum(not f.done() for f in wave)} of a wave never announced"
                context.process_events()    # 0 at a spurious wake-up
            assert [f.result() for f in wave] == [0] * len(wave)
        # Everything was taken: no completion left behind.
        assert context.process_events() == 0
    finally:
        context.close()
        loop.close()


@linux_only
def test_a_burst_while_a_worker_polls_for_work_still_spreads_over_the_pool() -> None:
    # A worker that runs out of requests polls for the next one for a few
    # tens of microseconds before it sleeps; the first request submitted
    # meanwhile is left to it, the others must wake or start workers of
    # their own. Each round: one quick request whose completion this
    # thread waits for without sleeping (so that the burst comes while the
    # worker polls), then at once (one submit() call, faster than the
    # poller takes its request) reads on four empty pipes, each of which
    # holds a worker until its pipe gets a byte, and only the last pipe
    # gets one. Were the whole burst left to the poller, that read would
    # wait behind the first. (The quick request: an fdsync of a memfd,
    # which has nothing to write back.)
    loop = asyncio.new_event_loop()
    context = Context(max_requests=64, pool_size=4)
    memfd = os.memfd_create("caio-burst")
    pipes: list[tuple[int, int]] = []
    try:
        context.set_future_factory(loop.create_future)
        for _ in range(20):
            pipes = [os.pipe() for _ in range(4)]
            finished = [threading.Event() for _ in pipes]
            reads = [Operation.read(1, r, 0) for r, _ in pipes]
            for op, event in zip(reads, finished, strict=True):
                op.set_callback(lambda result, event=event: event.set())
            sync = context.fdsync_async(memfd)
            assert sync is not None, "the fdsync must go to a worker"
            deadline = time.monotonic() + TIMEOUT
            while not sync.done():
                assert time.monotonic() < deadline, "the fdsync never completed"
                context.process_events()
            # A few microseconds for the worker to start polling.
            settle = time.perf_counter() + 10e-6
            while time.perf_counter() < settle:
                pass
            context.submit(*reads)
            os.write(pipes[-1][1], b"z")
            assert finished[-1].wait(10), "the last read of the burst never ran"
            assert reads[-1].get_value() == b"z"
            assert not any(event.is_set() for event in finished[:-1])
            for _, w in pipes[:-1]:
                os.write(w, b"a")
            assert all(event.wait(TIMEOUT) for event in finished)
            assert [op.get_value() for op in reads[:-1]] == [b"a"] * 3
            for r, w in pipes:
                os.close(r)
                os.close(w)
            pipes = []
    finally:
        context.close()
        loop.close()
        os.close(memfd)
        for r, w in pipes:
            os.close(r)
            os.close(w)


@linux_only
def test_threads_never_exceed_max_requests(pipe: Any) -> None:
    r, w = pipe

    # Compared as sets of thread ids: a thread that something else in the
    # process (a collected context of another backend) starts or ends
    # meanwhile must not be counted as one of ours.
    def threads() -> set[int]:
        return {int(t) for t in os.listdir("/proc/self/task")}

    gc.collect()
    before = threads()
    context = Context(max_requests=2, pool_size=8)
    try:
        assert threads() - before == set()   # started on demand only
        ops = [Operation.read(1, r, 0) for _ in range(6)]
        results: list[int] = []
        all_done = threading.Event()

        def callback(result: int) -> None:
            results.append(result)
            if len(results) == len(ops):
                all_done.set()

        for op in ops:
            op.set_callback(callback)
        context.submit(*ops)
        workers = threads() - before
        assert len(workers) == 2
        os.write(w, b"123456")
        assert all_done.wait(TIMEOUT)
    finally:
        context.close()
    assert results == [1] * 6      # none dropped
    # Joined. pthread_join returns once the kernel has cleared the thread's
    # id, a moment before its /proc/self/task entry goes (a CI run under
    # load saw the entry still there): give the kernel that moment.
    deadline = time.monotonic() + TIMEOUT
    while workers & threads() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert workers & threads() == set()


@linux_only
def test_workers_block_all_signals(pipe: Any) -> None:
    # Python runs signal handlers on the main thread and expects its system
    # calls to be the ones interrupted: workers must never take a signal.
    def tasks() -> set[int]:
        return {int(t) for t in os.listdir("/proc/self/task")}

    python_threads = {t.native_id for t in threading.enumerate()}
    before = tasks()
    context = Context(pool_size=1)
    try:
        op = Operation.read(1, pipe[0], 0)
        context.submit(op)          # starts the worker, which waits
        workers = tasks() - before - python_threads
        assert len(workers) == 1
        with open(f"/proc/self/task/{workers.pop()}/status") as f:
            status = dict(line.split(":\t", 1) for line in f if ":\t" in line)
        blocked = int(status["SigBlk"], 16)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGALRM):
            assert blocked & (1 << (signum - 1)), signum
        os.write(pipe[1], b"x")
    finally:
        context.close()


@nowait_only
async def test_buffered_writes_to_one_file_run_one_at_a_time(file_path: Path) -> None:
    # A filesystem without RWF_NOWAIT for buffered writes (ext4) sends each
    # to a worker. They run one at a time per file, as the file's inode lock
    # would make them take turns anyway: so they finish in the order they
    # were submitted, and the last write to a block is the one that stays.
    # (Eight workers each taking the next write finish them in any order.)
    fd = os.open(file_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.pwritev(fd, [b"x"], 0, os.RWF_NOWAIT)
            refused = 0
        except OSError as exc:
            refused = exc.errno or 0
        if refused != errno.EOPNOTSUPP:
            pytest.skip("this filesystem has RWF_NOWAIT for buffered writes")
        count, blocks = 512, 16
        finished: list[int] = []
        async with AsyncioContext(pool_size=8) as context:
            tasks = []
            for i in range(count):
                task = asyncio.ensure_future(
                    context.write(bytes([i % 251]) * BLOCK, fd, (i % blocks) * BLOCK),
                )
                task.add_done_callback(lambda _, i=i: finished.append(i))
                tasks.append(task)
            assert await asyncio.gather(*tasks) == [BLOCK] * count
        assert finished == list(range(count))
        content = os.pread(fd, blocks * BLOCK, 0)
        for block in range(blocks):
            last = count - blocks + block
            assert content[block * BLOCK:(block + 1) * BLOCK] == bytes([last % 251]) * BLOCK
    finally:
        os.close(fd)


async def test_writes_to_two_files_with_cancellation_all_land(tmp_path: Path) -> None:
    # Two descriptors, two chains of buffered writes, some cancelled while
    # queued: every write that was not cancelled lands, in its file, and
    # none waits forever behind a cancelled one.
    fds = [os.open(tmp_path / name, os.O_RDWR | os.O_CREAT, 0o600) for name in "ab"]
    rng = random.Random(7)
    try:
        async with AsyncioContext(pool_size=2) as context:
            tasks = []
            for i in range(2000):
                fd = fds[i % 2]
                tasks.append(asyncio.ensure_future(
                    context.write(i.to_bytes(4, "little") * 128, fd, (i // 2) * 512),
                ))
            await asyncio.sleep(0)
            cancelled = set(rng.sample(range(len(tasks)), 500))
            for i in cancelled:
                tasks[i].cancel()
            results = await asyncio.wait_for(
                asyncio.gather(*tasks, return_exceptions=True), TIMEOUT,
            )
        for i, result in enumerate(results):
            if i not in cancelled:
                assert result == 512, (i, result)
                got = os.pread(fds[i % 2], 512, (i // 2) * 512)
                assert got == i.to_bytes(4, "little") * 128, i
    finally:
        for fd in fds:
            os.close(fd)


# ---- cancellation ------------------------------------------------------------


async def test_ten_thousand_operations_with_random_cancellation(file_path: Path) -> None:
    count = 10_000
    fd = os.open(file_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    rng = random.Random(1234)
    blocks = {i: bytes([i % 251 + 1]) * 512 for i in range(count)}
    try:
        async with AsyncioContext(max_requests=32, pool_size=3) as context:
            tasks = []
            coro: Coroutine[Any, Any, Any]
            for i in range(count):
                if i % 3 == 2:
                    coro = context.read(512, fd, rng.randrange(count) * 512)
                else:
                    coro = context.write(blocks[i], fd, i * 512)
                tasks.append(asyncio.ensure_future(coro))
            await asyncio.sleep(0)
            cancelled = set(rng.sample(range(count), count // 3))
            for i in cancelled:
                tasks[i].cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for i, result in enumerate(results):
                if i not in cancelled:
                    assert not isinstance(result, BaseException), result
            # Every slot came back: the context is as good as new.
            assert await asyncio.gather(
                *(context.write(b"z" * 512, fd, i * 512) for i in range(0, 200, 2)),
            ) == [512] * 100
        content = os.pread(fd, count * 512 + 1, 0)
    finally:
        os.close(fd)
    for i in range(count):
        block = content[i * 512:(i + 1) * 512]
        if i < 200 and i % 2 == 0:
            assert block == b"z" * 512
        elif i % 3 == 2 or i in cancelled:
            # Never written, or cancelled (before or after it ran).
            assert block in (bytes(512), blocks[i], b""), i
        else:
            assert block == blocks[i], i


# ---- closing -----------------------------------------------------------------


async def test_close_gives_up_on_a_stuck_worker(pipe: Any) -> None:
    # A write bigger than the pipe's buffer sleeps inside write(2) once
    # half done: poll() cannot help; close() waits close_timeout, then
    # leaks the request (the worker may still write from its buffer).
    r, w = pipe
    loop = asyncio.get_running_loop()
    context = Context(pool_size=1, close_timeout=0.1)
    context.set_future_factory(loop.create_future)
    stuck = context.write_async(bytes(4 << 20), w, 0)
    assert isinstance(stuck, asyncio.Future)
    # The fast path filled the pipe; the worker waits in poll() (which
    # close() could interrupt). Make room: it enters write(2), refills the
    # pipe and sleeps there.
    total = 0
    while total < 1 << 20:
        total += len(os.read(r, 1 << 20))
    wait_readable(r)
    context.close()
    error = stuck.exception()
    assert isinstance(error, OSError) and error.errno == errno.ECANCELED
    # Let the detached worker finish, then check everything still works.
    while total < 4 << 20:
        total += len(os.read(r, 1 << 20))
    async with AsyncioContext() as again:
        assert await again.write(b"ok", w, 0) == 2
    assert os.read(r, 2) == b"ok"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=TIMEOUT, env=env,
    )


def test_interpreter_exit_with_work_in_flight() -> None:
    # Not closed by anyone: the module's atexit hook stops the pools before
    # finalization; no worker may touch Python afterwards.
    proc = run_python("""
        import os, sys, threading
        from caio.thread_aio import Context, Operation
        r, w = os.pipe()
        ctx = Context(pool_size=2, close_timeout=0.2)
        op = Operation.read(10, r, 0)
        op.set_callback(lambda result: print("callback", result, flush=True))
        ctx.submit(op)
        stuck = Context(pool_size=1, close_timeout=0.2)
        r2, w2 = os.pipe()
        stuck.submit(Operation.write(bytes(4 << 20), w2, 0))   # never drained
        busy = Context(pool_size=1)
        for _ in range(50):
            o = Operation.fsync(sys.stdout.fileno())
            o.set_callback(lambda result: None)
            busy.submit(o)
        print("exiting", flush=True)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "exiting" in proc.stdout
    assert f"callback {-errno.ECANCELED}" in proc.stdout
    assert "Fatal" not in proc.stderr and "Error" not in proc.stderr, proc.stderr


# ---- fork and threads ----------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork()")
def test_forked_child_exits_normally() -> None:
    # The child's atexit hook meets the parent's context (with a busy
    # worker that does not exist in the child): it must forget it, not
    # join or lock anything.
    proc = run_python("""
        import os, sys, threading, time, warnings
        from caio.thread_aio import Context, Operation
        warnings.simplefilter("ignore", DeprecationWarning)
        r, w = os.pipe()
        ctx = Context(pool_size=1)
        results = []
        done = threading.Event()
        op = Operation.read(3, r, 0)
        op.set_callback(lambda result: (results.append(result), done.set()))
        ctx.submit(op)
        # Let the worker reach its wait first: forking while a thread is
        # still being set up can deadlock the child inside ASan's runtime
        # (its thread registry lock), a sanitizer artifact seen once in CI.
        time.sleep(0.2)
        pid = os.fork()
        if pid == 0:
            sys.exit(0)          # runs the atexit hooks
        _, status = os.waitpid(pid, 0)
        os.write(w, b"abc")
        done.wait(30)
        ctx.close()
        print("child", os.waitstatus_to_exitcode(status), "result", results)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "child 0 result [3]" in proc.stdout, proc.stdout + proc.stderr
