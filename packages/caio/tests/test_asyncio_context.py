"""The behaviour every backend shares, through its AsyncioContext: reads,
writes, syncs, payload types, argument errors, back-pressure, cancellation
of tasks, submit(), closing and interpreter exit.

Each test runs once per backend (the ``backend`` fixture of conftest.py);
the low-level protocol and the special files are in protocol/.
"""

from __future__ import annotations

import array
import asyncio
import errno
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import caio

try:
    import caio._awaitables
except ImportError:  # built without it: the adapter's Python coroutines
    HAVE_AWAITABLES = False
else:
    HAVE_AWAITABLES = True

BLOCK = 4096


def test_defaults(context: Any, asyncio_module: Any) -> None:
    assert asyncio_module.AsyncioContext.MAX_REQUESTS_DEFAULT == 512
    assert context.max_requests == 512
    assert context.context.max_requests == 512
    assert not context.closed
    assert isinstance(context.context, caio.AbstractContext)


async def test_write_then_read(context: Any, fd: int) -> None:
    assert await context.write(b"hello caio", fd, 0) == 10
    assert await context.read(10, fd, 0) == b"hello caio"
    assert await context.read(4, fd, 6) == b"caio"
    assert os.pread(fd, 100, 0) == b"hello caio"


async def test_read_returns_bytes(context: Any, fd: int) -> None:
    os.pwrite(fd, b"abc", 0)
    assert type(await context.read(3, fd, 0)) is bytes


async def test_short_read_at_end_of_file(context: Any, fd: int) -> None:
    data = os.urandom(100)
    os.pwrite(fd, data, 0)
    assert await context.read(BLOCK, fd, 0) == data
    assert await context.read(50, fd, 80) == data[80:]


async def test_read_past_end_of_file(context: Any, fd: int) -> None:
    os.pwrite(fd, b"x" * 10, 0)
    assert await context.read(10, fd, 10) == b""
    assert await context.read(10, fd, 1000) == b""


async def test_read_zero_bytes(context: Any, fd: int) -> None:
    os.pwrite(fd, b"data", 0)
    assert await context.read(0, fd, 0) == b""


async def test_concurrent_writes_then_reads(context: Any, fd: int) -> None:
    count = 256
    data = os.urandom(count * BLOCK)
    blocks = [data[i * BLOCK:(i + 1) * BLOCK] for i in range(count)]
    written = await asyncio.gather(
        *(context.write(block, fd, i * BLOCK) for i, block in enumerate(blocks)),
    )
    assert written == [BLOCK] * count
    assert os.pread(fd, len(data) + 1, 0) == data
    read = await asyncio.gather(
        *(context.read(BLOCK, fd, i * BLOCK) for i in range(count)),
    )
    assert read == blocks


@pytest.mark.parametrize("method", ["fsync", "fdsync"])
async def test_sync(context: Any, fd: int, closed_fd: int, method: str) -> None:
    sync = getattr(context, method)
    await context.write(b"durable data", fd, 0)
    assert await sync(fd) is None
    assert os.pread(fd, 100, 0) == b"durable data"
    with pytest.raises(OSError) as info:
        await sync(closed_fd)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize(
    "make_payload",
    [
        pytest.param(lambda raw: bytearray(raw), id="bytearray"),
        pytest.param(lambda raw: memoryview(b"??" + raw + b"??")[2:-2], id="memoryview-slice"),
        pytest.param(lambda raw: array.array("I", raw), id="array"),
        pytest.param(lambda raw: memoryview(raw).cast("I"), id="memoryview-cast"),
    ],
)
async def test_payload_types(context: Any, fd: int, make_payload: Any) -> None:
    raw = os.urandom(64)
    payload = make_payload(raw)
    assert await context.write(payload, fd, 8) == 64
    assert os.pread(fd, 100, 8) == raw
    assert await context.read(64, fd, 8) == raw


async def test_bytearray_payload_can_be_resized_afterwards(context: Any, fd: int) -> None:
    payload = bytearray(b"abcdef")
    await context.write(payload, fd, 0)
    payload.extend(b"ghi")  # BufferError if the backend still held it
    assert payload == b"abcdefghi"


async def test_non_contiguous_payload(context: Any, fd: int) -> None:
    with pytest.raises((TypeError, BufferError)):
        await context.write(memoryview(b"abcdefgh")[::2], fd, 0)
    assert os.pread(fd, 10, 0) == b""


async def test_read_closed_descriptor(context: Any, closed_fd: int) -> None:
    with pytest.raises(OSError) as info:
        await context.read(10, closed_fd, 0)
    assert info.value.errno == errno.EBADF


async def test_write_closed_descriptor(context: Any, closed_fd: int) -> None:
    with pytest.raises(OSError) as info:
        await context.write(b"data", closed_fd, 0)
    assert info.value.errno == errno.EBADF


async def test_read_directory(context: Any, dir_fd: int) -> None:
    with pytest.raises(IsADirectoryError) as info:
        await context.read(10, dir_fd, 0)
    assert info.value.errno == errno.EISDIR


async def test_write_read_only_descriptor(context: Any, file_path: Path) -> None:
    file_path.write_bytes(b"ro")
    descriptor = os.open(file_path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            await context.write(b"data", descriptor, 0)
        assert info.value.errno == errno.EBADF
    finally:
        os.close(descriptor)
    assert file_path.read_bytes() == b"ro"


async def test_file_object_as_descriptor(context: Any, file_path: Path) -> None:
    with open(file_path, "w+b") as file:
        assert await context.write(b"via fileno()", file, 0) == 12
        assert await context.read(100, file, 4) == b"fileno()"


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c, fd: c.read("10", fd, 0), id="read-nbytes-str"),
        pytest.param(lambda c, fd: c.read(10.0, fd, 0), id="read-nbytes-float"),
        pytest.param(lambda c, fd: c.read(10, fd, 0.0), id="read-offset-float"),
        pytest.param(lambda c, fd: c.read(10, "3", 0), id="read-fd-str"),
        pytest.param(lambda c, fd: c.read(10, None, 0), id="read-fd-none"),
        pytest.param(lambda c, fd: c.write("text", fd, 0), id="write-str"),
        pytest.param(lambda c, fd: c.write(None, fd, 0), id="write-none"),
        pytest.param(lambda c, fd: c.write(b"x", fd, "0"), id="write-offset-str"),
        pytest.param(lambda c, fd: c.fsync("3"), id="fsync-fd-str"),
        pytest.param(lambda c, fd: c.fdsync(3.0), id="fdsync-fd-float"),
    ],
)
async def test_wrong_types(context: Any, fd: int, call: Any) -> None:
    with pytest.raises(TypeError):
        await call(context, fd)
    assert os.pread(fd, 10, 0) == b""


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c, fd: c.read(-1, fd, 0), id="read-negative-nbytes"),
        pytest.param(lambda c, fd: c.read(10, fd, -1), id="read-negative-offset"),
        pytest.param(lambda c, fd: c.read(10, -1, 0), id="read-negative-fd"),
        pytest.param(lambda c, fd: c.read(10, fd, 2**63), id="read-offset-2**63"),
        pytest.param(lambda c, fd: c.write(b"x", fd, -5), id="write-negative-offset"),
        pytest.param(lambda c, fd: c.write(b"x", fd, 2**64), id="write-offset-2**64"),
        pytest.param(lambda c, fd: c.fsync(-1), id="fsync-negative-fd"),
    ],
)
async def test_negative_values(context: Any, fd: int, call: Any) -> None:
    with pytest.raises(ValueError):
        await call(context, fd)
    assert os.pread(fd, 10, 0) == b""


async def test_nbytes_beyond_any_allocation(context: Any, fd: int) -> None:
    with pytest.raises((MemoryError, OSError)):
        await context.read(2**63, fd, 0)


async def test_back_pressure(context_factory: Any, fd: int) -> None:
    context = context_factory(max_requests=4)
    assert context.max_requests == 4
    count = 100
    blocks = [os.urandom(512) for _ in range(count)]
    written = await asyncio.gather(
        *(context.write(block, fd, i * 512) for i, block in enumerate(blocks)),
    )
    assert written == [512] * count
    read = await asyncio.gather(*(context.read(512, fd, i * 512) for i in range(count)))
    assert read == blocks


async def test_mixed_operations_beyond_max_requests(context_factory: Any, fd: int) -> None:
    context = context_factory(max_requests=2)
    ops = []
    for i in range(60):
        if i % 3 == 0:
            ops.append(context.write(bytes([i]) * 100, fd, i * 100))
        elif i % 3 == 1:
            ops.append(context.read(100, fd, 0))
        else:
            ops.append(context.fdsync(fd))
    results = await asyncio.gather(*ops)
    assert [r for i, r in enumerate(results) if i % 3 == 0] == [100] * 20
    assert all(r is None for i, r in enumerate(results) if i % 3 == 2)
    assert all(isinstance(r, bytes) for i, r in enumerate(results) if i % 3 == 1)


async def test_cancellation_keeps_data_and_context(context: Any, fd: int) -> None:
    count = 128
    old = [bytes([1]) * BLOCK for _ in range(count)]
    new = [os.urandom(BLOCK) for _ in range(count)]
    os.pwrite(fd, b"".join(old), 0)
    rng = random.Random(20240601)

    writes = [
        asyncio.ensure_future(context.write(new[i], fd, i * BLOCK)) for i in range(count)
    ]
    reads = [asyncio.ensure_future(context.read(BLOCK, fd, i * BLOCK)) for i in range(count)]
    await asyncio.sleep(0)  # let them start and wait on the kernel
    victims = rng.sample(writes + reads, count)
    for task in victims:
        task.cancel()
    await asyncio.gather(*writes, *reads, return_exceptions=True)

    content = os.pread(fd, count * BLOCK + 1, 0)
    assert len(content) == count * BLOCK
    for i, task in enumerate(writes):
        block = content[i * BLOCK:(i + 1) * BLOCK]
        if task.cancelled():
            # The kernel may have done it before the cancel: one or the other.
            assert block in (old[i], new[i])
        else:
            assert task.result() == BLOCK
            assert block == new[i]
    for i, task in enumerate(reads):
        if not task.cancelled():
            # Each byte old or new: a buffered read that runs while a write
            # of the same block copies in (two pool workers at once) may see
            # part of each; Linux does not order them.
            got = task.result()
            assert len(got) == BLOCK
            assert all(b in (o, n) for b, o, n in zip(got, old[i], new[i], strict=True))

    # The context still works, and no slot was leaked: fill every one.
    again = await asyncio.gather(
        *(context.write(new[i], fd, i * BLOCK) for i in range(count)),
    )
    assert again == [BLOCK] * count
    assert os.pread(fd, count * BLOCK, 0) == b"".join(new)


async def test_a_pending_operation_awaits_the_backend_future_itself(
    context: Any, backend: str, fd: int
) -> None:
    # No coroutine per operation between the caller's and the backend's
    # future: each would be made and resumed once per suspended operation
    # (a tenth of its instructions at 64 in flight). The bookkeeping of
    # cancellation and wait_idle still holds. Without caio._awaitables the
    # adapter's coroutines favour page-cache hits instead: one helper
    # coroutine (_pending) on the pending path, rather than one more frame
    # on every hit (measured: 3 219 -> 3 637 instructions per cached read
    # with uring for a single shared coroutine, 18 488 against 19 519 per
    # pending one; with the pure Python backend, the one that needs no
    # compiler, a pending read costs ~60 000).
    if backend == "linux":
        pytest.skip("a kernel AIO read of an empty pipe blocks inside io_submit")
    r, w = os.pipe()
    try:
        for start in (lambda: context.read(1, r, 0),
                      lambda: context.readinto(bytearray(1), r, 0)):
            task = asyncio.ensure_future(start())
            for _ in range(3):
                await asyncio.sleep(0)
            awaited = task.get_coro().cr_await     # the future's iterator
            if not HAVE_AWAITABLES:
                assert asyncio.iscoroutine(awaited) and awaited.cr_code.co_name == "_pending"
                awaited = awaited.cr_await
            assert awaited is not None and not asyncio.iscoroutine(awaited), awaited
            idle = asyncio.ensure_future(context.wait_idle(r))
            await asyncio.sleep(0)
            assert not idle.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(idle, 10)
        # (A pool's worker may still do a cancelled read: it takes a byte.)
        os.write(w, b"xyz")
        assert await asyncio.wait_for(context.read(1, r, 0), 10) in (b"x", b"y", b"z")
    finally:
        os.close(r)
        os.close(w)


def start_reads(context: Any, fd: int, count: int = 64) -> list[asyncio.Future[bytes]]:
    """``count`` block reads of a file of random blocks, started as tasks."""
    os.pwrite(fd, os.urandom(count * BLOCK), 0)
    return [asyncio.ensure_future(context.read(BLOCK, fd, i * BLOCK)) for i in range(count)]


async def test_cancellation_with_few_slots(context_factory: Any, fd: int) -> None:
    context = context_factory(max_requests=2)
    tasks = start_reads(context, fd)
    await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    expected = os.pread(fd, 64 * BLOCK, 0)
    for i, task in enumerate(tasks[1::2]):
        index = 2 * i + 1
        assert task.result() == expected[index * BLOCK:(index + 1) * BLOCK]
    # Both slots are free again.
    assert await asyncio.gather(context.read(3, fd, 0), context.read(3, fd, 0)) == [
        expected[:3], expected[:3],
    ]


async def test_submit_operations(context: Any, backend_module: Any, fd: int) -> None:
    Operation = backend_module.Operation
    assert context.OPERATION_CLASS is Operation
    assert await context.submit(Operation.write(b"generic", fd, 0)) == 7
    assert await context.submit(Operation.read(100, fd, 0)) == b"generic"
    assert await context.submit(Operation.fsync(fd)) is None
    assert await context.submit(Operation.fdsync(fd)) is None


async def test_submit_failing_operation(
    context: Any, backend_module: Any, closed_fd: int,
) -> None:
    with pytest.raises(OSError) as info:
        await context.submit(backend_module.Operation.read(10, closed_fd, 0))
    assert info.value.errno == errno.EBADF


async def test_submit_many_operations(context: Any, backend_module: Any, fd: int) -> None:
    Operation = backend_module.Operation
    ops = [Operation.write(bytes([i]) * 10, fd, i * 10) for i in range(50)]
    assert await asyncio.gather(*map(context.submit, ops)) == [10] * 50
    assert [op.get_value() for op in ops] == [10] * 50
    assert os.pread(fd, 1000, 0) == b"".join(bytes([i]) * 10 for i in range(50))


async def test_cancelled_submit(context: Any, backend_module: Any, fd: int) -> None:
    count = 64
    old, new = b"o" * BLOCK, b"n" * BLOCK
    os.pwrite(fd, old * count, 0)
    ops = [backend_module.Operation.write(new, fd, i * BLOCK) for i in range(count)]
    tasks = [asyncio.ensure_future(context.submit(op)) for op in ops]
    await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled():
            assert task.result() == BLOCK
    # Cancelled or not, each block is whole: old or new.
    content = os.pread(fd, count * BLOCK, 0)
    for i in range(count):
        assert content[i * BLOCK:(i + 1) * BLOCK] in (old, new)
    # And the context goes on working.
    assert await context.submit(backend_module.Operation.read(4, fd, BLOCK)) == new[:4]


async def test_close_is_idempotent(context: Any, fd: int) -> None:
    await context.write(b"x", fd, 0)
    context.close()
    context.close()
    assert context.closed
    assert context.context.closed
    with pytest.raises(ValueError):
        await context.read(1, fd, 0)


async def test_close_with_operations_pending(context_factory: Any, fd: int) -> None:
    context = context_factory(max_requests=4)
    tasks = start_reads(context, fd)
    await asyncio.sleep(0)
    context.close()
    results = await asyncio.wait_for(
        asyncio.gather(*tasks, return_exceptions=True), timeout=60,
    )
    for result in results:
        if isinstance(result, BaseException):
            assert isinstance(result, OSError)
            assert result.errno == errno.ECANCELED
        else:
            assert len(result) == BLOCK


async def test_async_with(asyncio_module: Any, fd: int) -> None:
    async with asyncio_module.AsyncioContext() as context:
        assert await context.write(b"scoped", fd, 0) == 6
        assert await context.read(6, fd, 0) == b"scoped"
    assert context.closed


def test_made_without_a_running_loop(asyncio_module: Any, fd: int, event_loop: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        context = asyncio_module.AsyncioContext()
    try:

        async def use() -> bytes:
            await context.write(b"lazy", fd, 0)
            return await context.read(4, fd, 0)  # type: ignore[no-any-return]

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert event_loop.run_until_complete(use()) == b"lazy"
        assert context.loop is event_loop
    finally:
        context.close()


EXIT_SCRIPT = """
import asyncio, atexit, os, sys, tempfile, threading

report = {}

def check():  # registered first, so it runs after caio's own exit handlers
    print("closed" if report["context"].closed else "open")
    print("threads", sorted(t.name for t in threading.enumerate() if t.name.startswith("caio")))

atexit.register(check)
from caio import %(module)s_asyncio as adapter

async def main():
    context = adapter.AsyncioContext()
    report["context"] = context
    with tempfile.TemporaryFile() as file:
        await context.write(b"x" * 4096, file.fileno(), 0)
        await context.read(4096, file.fileno(), 0)
    # exits without close()

asyncio.run(main())
"""


def test_released_at_interpreter_exit(backend_module: Any) -> None:
    module = backend_module.__name__.removeprefix("caio.")
    where = Path(caio.__file__).parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIO_")}
    env["PYTHONPATH"] = str(where)
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT % {"module": module}], env=env, cwd=where,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["closed", "threads []"]
    assert "Exception ignored" not in proc.stderr



async def pending_read_future(context: Any) -> tuple[asyncio.Future[Any], bytes]:
    """The future a pipe read waits on, and what the read returned."""
    r, w = os.pipe()
    try:
        task = asyncio.ensure_future(context.read(1, r, 0))
        waiter = None
        for _ in range(100):
            await asyncio.sleep(0)
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is not None:
                break
        assert waiter is not None, "the read never waited"
        os.write(w, b"x")
        return waiter, await task
    finally:
        os.close(r)
        os.close(w)


def test_futures_come_from_the_loop(asyncio_module: Any) -> None:
    """A pending operation's future is the loop's: a future bound to it on a
    stock loop (caio._awaitables.Future when built, else asyncio.Future),
    and one the loop's own create_future made on a loop that overrides it."""
    if asyncio_module.__name__.endswith("linux_aio_asyncio"):
        pytest.skip("kernel AIO cannot wait on pipes")
    made: list[asyncio.Future[Any]] = []

    class CountingLoop(asyncio.SelectorEventLoop):
        def create_future(self) -> asyncio.Future[Any]:
            future = super().create_future()
            made.append(future)
            return future

    for loop, own in ((asyncio.new_event_loop(), False), (CountingLoop(), True)):
        try:
            context = asyncio_module.AsyncioContext(loop=loop)
            waiter, data = loop.run_until_complete(pending_read_future(context))
            context.close()
            assert data == b"x"
            assert asyncio.isfuture(waiter) and waiter.get_loop() is loop
            assert (waiter in made) is own
        finally:
            loop.close()
