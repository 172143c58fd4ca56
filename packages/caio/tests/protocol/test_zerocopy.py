"""readinto, readv and writev on every backend, through the AsyncioContext
and through Operation.

SPEC (additions): ``readinto(buffer, fd, offset)`` reads into any writable
C-contiguous buffer, the kernel writing straight into it; a read-only
buffer is TypeError; the export is held until the kernel is done, so a
buffer cannot be resized under a pending read and a cancelled read never
writes into memory that was freed or handed back. ``readv``/``writev`` move
a sequence of buffers in one operation.
"""

from __future__ import annotations

import array
import asyncio
import errno
import gc
import mmap
import os
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

TIMEOUT = 30
IOV_MAX = 1024  # Linux's UIO_MAXIOV: what every backend enforces here


async def wait(coro: Any) -> Any:
    return await asyncio.wait_for(coro, TIMEOUT)


def _numpy_array(size: int) -> Any:
    numpy = pytest.importorskip("numpy")
    return numpy.zeros(size // 8, dtype=numpy.float64)


# Each maker returns (buffer, its bytes as read back): the kernel must have
# written into the very memory the caller owns.
BUFFERS: dict[str, Callable[[int], tuple[Any, Callable[[], bytes]]]] = {
    "bytearray": lambda n: (b := bytearray(n), lambda: bytes(b)),
    "memoryview": lambda n: (m := memoryview(bytearray(n)), lambda: m.tobytes()),
    "mmap": lambda n: (mm := mmap.mmap(-1, n), lambda: mm[:]),
    "array": lambda n: (a := array.array("I", bytes(n)), lambda: a.tobytes()),
    "numpy": lambda n: (x := _numpy_array(n), lambda: x.tobytes()),
}


@pytest.mark.parametrize("kind", list(BUFFERS))
async def test_readinto_round_trip(context: Any, make_data_file: Any, kind: str) -> None:
    fd, content = make_data_file(20_000, seed=7)
    buffer, read_back = BUFFERS[kind](4096)
    assert await wait(context.readinto(buffer, fd, 1000)) == 4096
    assert read_back() == content[1000:5096]
    # Near the end of the file: a short count, the rest left as it was.
    assert await wait(context.readinto(buffer, fd, 19_000)) == 1000
    assert read_back() == content[19_000:] + content[1000 + 1000:5096]
    assert await wait(context.readinto(buffer, fd, 20_000)) == 0   # end of file
    assert await wait(context.readinto(buffer, fd, 1 << 40)) == 0
    if isinstance(buffer, mmap.mmap):
        buffer.close()   # no export left: the reads let go of it


async def test_readinto_memoryview_slices(context: Any, make_data_file: Any) -> None:
    fd, content = make_data_file(10_000, seed=3)
    backing = bytearray(b"\xee" * 1000)
    view = memoryview(backing)
    assert await wait(context.readinto(view[100:300], fd, 5000)) == 200
    assert await wait(context.readinto(view[700:701], fd, 42)) == 1
    assert await wait(context.readinto(view[500:500], fd, 0)) == 0   # nothing asked
    expected = bytearray(b"\xee" * 1000)
    expected[100:300] = content[5000:5200]
    expected[700] = content[42]
    assert backing == expected
    view.release()
    backing.extend(b"x")   # every export was released


async def test_readinto_deferred(context_factory: Any, make_data_file: Any) -> None:
    fd, content = make_data_file(100, seed=1, flags=os.O_RDWR)
    context = context_factory(deferred=True)
    buffer = bytearray(10)
    assert await wait(context.readinto(buffer, fd, 5)) == 10
    assert buffer == content[5:15]
    first, second = bytearray(3), bytearray(4)
    assert await wait(context.readv([first, second], fd, 0)) == 7
    assert first + second == content[:7]
    assert await wait(context.writev([b"ab", b"cd"], fd, 1)) == 4
    assert os.pread(fd, 6, 0) == content[:1] + b"abcd" + content[5:6]


@pytest.mark.parametrize(
    "buffer",
    [b"read-only", memoryview(b"read-only"), bytes(0)],
    ids=["bytes", "memoryview-of-bytes", "empty-bytes"],
)
async def test_readinto_read_only_buffer(harness: Any, context: Any, fd: int, buffer: Any) -> None:
    with pytest.raises(TypeError, match="writable"):
        await wait(context.readinto(buffer, fd, 0))
    with pytest.raises(TypeError, match="writable"):
        harness.Operation.readinto(buffer, fd, 0)
    with pytest.raises(TypeError, match="writable"):
        await wait(context.readv([bytearray(1), buffer], fd, 0))


async def test_readinto_bad_buffers(harness: Any, context: Any, fd: int, tmp_path: Any) -> None:
    path = tmp_path / "ro"
    path.write_bytes(b"x" * 4096)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as ro:
        with pytest.raises(TypeError, match="writable"):
            await wait(context.readinto(ro, fd, 0))
    for not_a_buffer in ("text", 12, None):
        with pytest.raises(TypeError):
            await wait(context.readinto(not_a_buffer, fd, 0))
    with pytest.raises(BufferError):   # not contiguous
        await wait(context.readinto(memoryview(bytearray(10))[::2], fd, 0))
    with pytest.raises(ValueError):
        await wait(context.readinto(bytearray(1), fd, -1))
    with pytest.raises(ValueError):
        await wait(context.readinto(bytearray(1), -1, 0))
    # A failed call holds nothing: the bytearray can be resized.
    buffer = bytearray(4)
    with pytest.raises(ValueError):
        await wait(context.readinto(buffer, fd, -5))
    buffer.extend(b"more")


async def test_readinto_closed_descriptor(context: Any, closed_fd: int) -> None:
    buffer = bytearray(100)
    for call in (
        lambda: context.readinto(buffer, closed_fd, 0),
        lambda: context.readv([buffer], closed_fd, 0),
        lambda: context.writev([b"x"], closed_fd, 0),
    ):
        with pytest.raises(OSError) as info:
            await wait(call())
        assert info.value.errno == errno.EBADF
    buffer.extend(b"x")   # released after the failure


async def _until_resizable(buffer: bytearray) -> None:
    """Wait until no export of ``buffer`` is held (the kernel is done)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        try:
            buffer.append(0)
        except BufferError:
            assert loop.time() < deadline, "the buffer stayed exported"
            await asyncio.sleep(0.01)
        else:
            del buffer[-1]
            return


async def test_readinto_resize_while_pending(harness: Any, context: Any, pipe: Any) -> None:
    r, w = pipe
    buffer = bytearray(b"." * 16)
    if not harness.waits_on_pipes:
        # Kernel AIO cannot wait on a pipe (see test_files.test_pipe): it
        # refuses at once, and holds nothing afterwards.
        with pytest.raises(BlockingIOError):
            await wait(context.readinto(buffer, r, 0))
        buffer.extend(b"x")
        return
    pending = asyncio.ensure_future(context.readinto(buffer, r, 0))
    await asyncio.sleep(0.05)
    assert not pending.done()
    with pytest.raises(BufferError):
        buffer.extend(b"grow")
    with pytest.raises(BufferError):
        del buffer[:]
    os.write(w, b"hello")
    assert await wait(pending) == 5
    assert buffer == b"hello" + b"." * 11
    buffer.extend(b"grow")   # released on completion


async def test_readinto_cancelled_while_pending(harness: Any, context: Any, pipe: Any) -> None:
    if not harness.waits_on_pipes:
        pytest.skip("kernel AIO refuses pipe reads that would wait (test above)")
    r, w = pipe
    buffer = bytearray(b"." * 64)
    pending = asyncio.ensure_future(context.readinto(buffer, r, 0))
    await asyncio.sleep(0.05)
    assert not pending.done()
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    # The export ends once the kernel (or worker) gave the request back.
    await _until_resizable(buffer)
    assert buffer == b"." * 64
    buffer.extend(b"x" * 1000)   # moved elsewhere: the old memory is freed
    del buffer
    gc.collect()
    # Data written now must not land in the cancelled request's buffer:
    # it is all still in the pipe.
    os.write(w, b"late data")
    assert os.read(r, 100) == b"late data"
    # The context goes on working with that pipe.
    os.write(w, b"next")
    after = bytearray(8)
    assert await wait(context.readinto(after, r, 0)) == 4
    assert after[:4] == b"next"


async def test_readv_writev(context: Any, fd: int) -> None:
    parts = [b"first,", b"", bytearray(b"second,"), memoryview(b"third"), array.array("B", b"!")]
    assert await wait(context.writev(parts, fd, 10)) == 19
    assert os.pread(fd, 100, 0) == bytes(10) + b"first,second,third!"
    # Read back into buffers of other sizes, zero-length ones included.
    a, empty, b, c = bytearray(4), bytearray(0), bytearray(10), bytearray(50)
    assert await wait(context.readv([a, empty, b, c], fd, 8)) == 21
    assert (a, b) == (bytearray(b"\0\0fi"), bytearray(b"rst,second"))
    assert c[:7] == b",third!" and c[7:] == bytes(43)
    assert await wait(context.readv([], fd, 0)) == 0
    assert await wait(context.writev([], fd, 0)) == 0
    assert await wait(context.readv([bytearray(5)], fd, 29)) == 0   # end of file
    assert os.fstat(fd).st_size == 29
    for buffer in (a, b, c):
        buffer.extend(b"x")   # every export released


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise")
async def test_readinto_readv_cold_cache(context: Any, make_data_file: Any) -> None:
    # Not cached: past the page-cache fast paths, into the ring's worker,
    # the pool, or kernel AIO's blocking resubmission (whose readv rebuilds
    # its iovecs from where a partial answer stopped).
    fd, content = make_data_file(3 << 20, seed=11, flags=os.O_RDWR)
    os.fsync(fd)
    # Cached: nothing; a page in the middle; the start (then a nowait read
    # answers short, and the rest is read from where it stopped).
    for cached in (None, 1 << 20, 4096):
        buffer = bytearray(2 << 20)
        parts = [bytearray(100), bytearray(0), bytearray((1 << 20) - 50), bytearray(1 << 20)]
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if cached is not None:
            os.pread(fd, 200, cached)
        assert await wait(context.readinto(buffer, fd, 4096)) == 2 << 20
        assert buffer == content[4096:4096 + (2 << 20)]
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if cached is not None:
            os.pread(fd, 200, cached)
        assert await wait(context.readv(parts, fd, 4096)) == (2 << 20) + 50
        assert b"".join(parts) == content[4096:4096 + (2 << 20) + 50]


async def test_readv_writev_limits(harness: Any, context: Any, fd: int) -> None:
    buffers = [bytearray(1) for _ in range(IOV_MAX + 1)]
    with pytest.raises(ValueError, match="IOV_MAX"):
        await wait(context.readv(buffers, fd, 0))
    with pytest.raises(ValueError, match="IOV_MAX"):
        await wait(context.writev([b"x"] * (IOV_MAX + 1), fd, 0))
    with pytest.raises(ValueError, match="IOV_MAX"):
        harness.Operation.readv(buffers, fd, 0)
    # Exactly IOV_MAX is fine, and nothing above is still held.
    assert await wait(context.writev([b"y"] * IOV_MAX, fd, 0)) == IOV_MAX
    assert await wait(context.readv(buffers[:IOV_MAX], fd, 0)) == IOV_MAX
    assert all(buffer == b"y" for buffer in buffers[:IOV_MAX])
    buffers[-1].extend(b"z")
    # Not a sequence of buffers.
    for bad in (bytearray(10), b"abc", 5, [b"ok", 7]):
        with pytest.raises(TypeError):
            await wait(context.writev(bad, fd, 0))
    with pytest.raises(TypeError, match="writable"):
        await wait(context.readv([bytearray(1), b"read-only"], fd, 0))


async def test_readv_writev_pipe(harness: Any, context: Any, pipe: Any) -> None:
    r, w = pipe
    assert await wait(context.writev([b"one ", b"two"], w, 99)) == 7
    first, second = bytearray(3), bytearray(10)
    assert await wait(context.readv([first, second], r, 5)) == 7
    assert (first, second[:4]) == (bytearray(b"one"), bytearray(b" two"))


async def test_operation_readinto_readv_writev(harness: Any, fd: int) -> None:
    os.pwrite(fd, b"0123456789", 0)
    context = harness.Context(4)
    try:
        buffer = bytearray(4)
        parts = [bytearray(2), bytearray(3)]
        readinto = harness.Operation.readinto(buffer, fd, 3)
        readv = harness.Operation.readv(parts, fd, 5)
        writev = harness.Operation.writev([b"ab", b"c"], fd, 20)
        assert readinto.payload is buffer and readv.payload is parts
        assert [r for r, _ in harness.run_ops(context, readinto, readv, writev)] == [4, 5, 3]
        assert (readinto.get_value(), readv.get_value(), writev.get_value()) == (4, 5, 3)
        assert buffer == b"3456" and parts == [b"56", b"789"]
        assert os.pread(fd, 3, 20) == b"abc"
        # The kernel is done: the exports were released with the completion.
        buffer.extend(b"x")
        parts[1].extend(b"x")
        assert "readinto" in repr(readinto)
    finally:
        context.close()


async def test_readinto_allocates_nothing_per_operation(context: Any, make_data_file: Any) -> None:
    size = 64 * 1024
    fd, content = make_data_file(size * 4, seed=5)
    buffer = bytearray(size)
    readinto = context.readinto
    for i in range(100):   # warm up: pools, scratch, caches
        await readinto(buffer, fd, (i % 4) * size)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for i in range(1000):
            assert await readinto(buffer, fd, (i % 4) * size) == size
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert buffer == content[3 * size:]
    # Nothing stays behind per operation (1000 of them), and at no time
    # was a copy of the data made: the peak stays below one buffer.
    assert after - before < 8 * 1024, after - before
    assert peak - before < size // 2, peak - before


def test_cancelled_waiting_operations_release_their_buffers(harness: Any) -> None:
    context = harness.Context(1)
    fd = harness.fd
    try:
        held = harness.hold(context)
        buffer, parts = bytearray(b"." * 8), [bytearray(2), bytearray(3)]
        waiting = [
            harness.Operation.readinto(buffer, fd, 0),
            harness.Operation.readv(parts, fd, 0),
            harness.Operation.writev([bytearray(b"never")], fd, 0),
        ]
        cancelled: list[int] = []
        for op in waiting:
            op.set_callback(cancelled.append)
        assert context.submit(*waiting) == 3
        with pytest.raises(BufferError):   # queued: already held
            buffer.extend(b"x")
        assert context.cancel(*waiting) == 3
        harness.until(context, lambda: len(cancelled) == 3)
        assert cancelled == [-errno.ECANCELED] * 3
        # Never reached the kernel: released, untouched.
        buffer.extend(b"x")
        parts[0].extend(b"x")
        assert buffer == b"." * 8 + b"x"
        held.release()
        harness.until(context, lambda: held.results)
        assert os.fstat(fd).st_size == 0   # the writev never ran
    finally:
        context.close()
