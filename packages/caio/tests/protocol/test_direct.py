"""O_DIRECT through the plain ``read``/``write`` of every backend's
AsyncioContext, on files of a disk filesystem (tmpfs would not prove it).

SPEC: on an O_DIRECT descriptor read/write work whenever offset and length
are aligned, whatever Python's memory; unaligned reads widen and return
exactly what was asked; unaligned raw writes raise OSError(EINVAL) naming
the alignment.
"""

from __future__ import annotations

import array
import asyncio
import errno
import fcntl
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import caio

pytestmark = pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT here")

TIMEOUT = 30
SIZE = 1 << 20


async def wait(coro: Any) -> Any:
    return await asyncio.wait_for(coro, TIMEOUT)


@pytest.fixture
def direct_file(direct_dir: Path) -> Iterator[Callable[[bytes], tuple[int, Path]]]:
    """``make(content) -> (O_DIRECT read-write descriptor, path)``."""
    opened: list[int] = []

    def make(content: bytes) -> tuple[int, Path]:
        path = direct_dir / f"direct-{len(opened)}.bin"
        path.write_bytes(content)
        opened.append(os.open(path, os.O_RDWR | os.O_DIRECT))
        return opened[-1], path

    yield make
    for fd in opened:
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.fixture
def content() -> bytes:
    return random.Random(7).randbytes(SIZE + 1234)  # the end is not aligned


async def test_aligned_reads_and_writes(
    context: Any, direct_file: Any, content: bytes,
) -> None:
    fd, path = direct_file(content)
    _, block = caio.dio_alignment(fd)
    assert await wait(context.read(4 * block, fd, 2 * block)) == content[2 * block:6 * block]
    payloads = [os.urandom(block), bytearray(os.urandom(2 * block)),
                memoryview(os.urandom(3 * block)), array.array("B", os.urandom(block))]
    offset = 0
    expected = bytearray(content)
    for payload in payloads:
        size = memoryview(payload).nbytes
        assert await wait(context.write(payload, fd, offset)) == size
        expected[offset:offset + size] = bytes(payload)
        offset += size + block
    assert path.read_bytes() == bytes(expected)


async def test_unaligned_reads_widen(
    context: Any, direct_file: Any, content: bytes,
) -> None:
    fd, _ = direct_file(content)
    rnd = random.Random(3)
    for _ in range(60):
        offset = rnd.randrange(0, len(content) + 10_000)
        size = rnd.choice([0, 1, 511, 4095, 4097, rnd.randrange(1, 300_000)])
        got = await wait(context.read(size, fd, offset))
        assert got == content[offset:offset + size], (offset, size)
    # At and past the end of the file: short, then empty, as a plain read.
    end = len(content)
    assert await wait(context.read(5000, fd, end - 10)) == content[-10:]
    assert await wait(context.read(5000, fd, end)) == b""
    assert await wait(context.read(5000, fd, end + 100_000)) == b""


async def test_readinto_any_buffer_offset_and_length(
    context_factory: Any, direct_file: Any, content: bytes,
) -> None:
    fd, _ = direct_file(content)
    memory, block = caio.dio_alignment(fd)
    for context in (context_factory(), context_factory(deferred=True)):
        # Aligned everything: the kernel writes into the buffer itself.
        aligned = caio.aligned_buffer(2 * block, memory)
        assert await wait(context.readinto(aligned, fd, block)) == 2 * block
        assert bytes(aligned) == content[block:3 * block]
        # Unaligned memory, offset, length; and at the end of the file.
        end = len(content)
        for offset, size in ((0, block), (3, 1000), (block + 1, 5 * block), (end - 7, 100)):
            target = bytearray(b"?" * (size + 1))
            view = memoryview(target)[1:]  # memory off by one
            got = await wait(context.readinto(view, fd, offset))
            expected = content[offset:offset + size]
            assert got == len(expected)
            assert bytes(view[:got]) == expected
            assert target[0] == ord("?") and bytes(view[got:]) == b"?" * (size - got)


async def test_many_in_flight(context: Any, direct_file: Any, content: bytes) -> None:
    fd, _ = direct_file(content)
    rnd = random.Random(5)
    spans = [(rnd.randrange(len(content)), rnd.randrange(1, 20_000)) for _ in range(200)]
    got = await wait(asyncio.gather(*(context.read(n, fd, o) for o, n in spans)))
    assert got == [content[o:o + n] for o, n in spans]


async def test_deferred_context(
    context_factory: Any, direct_file: Any, content: bytes,
) -> None:
    context = context_factory(deferred=True)
    fd, path = direct_file(content)
    _, block = caio.dio_alignment(fd)
    assert await wait(context.read(100, fd, 3)) == content[3:103]
    assert await wait(context.write(b"d" * block, fd, block)) == block
    assert path.read_bytes()[block:2 * block] == b"d" * block


async def test_unaligned_raw_write_names_the_alignment(
    context: Any, direct_file: Any, content: bytes,
) -> None:
    fd, path = direct_file(content)
    _, block = caio.dio_alignment(fd)
    for offset, size in ((1, block), (0, block + 1), (block // 2, 10)):
        with pytest.raises(OSError) as info:
            await wait(context.write(b"w" * size, fd, offset))
        assert info.value.errno == errno.EINVAL
        assert f"multiples of {block}" in str(info.value)
    assert path.read_bytes() == content  # no read-modify-write at this level


async def test_einval_of_a_buffered_descriptor_is_left_alone(
    context: Any, tmp_path: Path,
) -> None:
    # An eventfd refuses reads under 8 bytes with EINVAL: not O_DIRECT, so
    # the error is the kernel's own, not retried.
    efd = os.eventfd(1)
    try:
        with pytest.raises(OSError) as info:
            await wait(context.read(4, efd, 0))
        assert info.value.errno == errno.EINVAL
        assert "multiples" not in str(info.value)
    finally:
        os.close(efd)


async def test_closed_descriptor(context: Any, closed_fd: int) -> None:
    for operation in (context.read(512, closed_fd, 0), context.write(b"x" * 512, closed_fd, 0)):
        with pytest.raises(OSError) as info:
            await wait(operation)
        assert info.value.errno == errno.EBADF


async def test_cancelled_in_the_middle_of_a_direct_read(
    context: Any, direct_file: Any, content: bytes,
) -> None:
    fd, _ = direct_file(content)
    # Unaligned: each goes through its own aligned buffer, which the kernel
    # may still fill after the task is gone.
    tasks = [asyncio.ensure_future(context.read(200_000, fd, 1 + i * 997)) for i in range(32)]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for i, result in enumerate(results):
        if not isinstance(result, asyncio.CancelledError):
            assert result == content[1 + i * 997:1 + i * 997 + 200_000]
    # The context and the descriptor are fine afterwards.
    assert await wait(context.read(1000, fd, 77)) == content[77:1077]
    assert await wait(context.read(SIZE, fd, 0)) == content[:SIZE]


async def test_o_direct_answer_kept_for_64_reads(
    harness: Any, direct_file: Any, content: bytes,
) -> None:
    # A read into aligned memory is O_DIRECT I/O on an O_DIRECT descriptor
    # (the kernel's asynchronous path), else a page-cache read made in the
    # call. Which one, fcntl tells: asked once per 64 reads of the same
    # descriptor, not with each (a second system call per cached read).
    # F_SETFL shows within those 64; meanwhile every read is still right.
    if not harness.keeps_direct_answer:
        pytest.skip(f"{harness.backend} does not keep the answer")
    fd, _ = direct_file(content)
    os.fsync(fd)  # no dirty page: a direct read made in the call needs none
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
    os.pread(fd, SIZE, 0)  # cached
    context = harness.Context(8)
    context.set_future_factory(asyncio.get_running_loop().create_future)
    buffer = caio.aligned_buffer(4096)

    def read(block: int) -> bool:
        """Read a block; whether that happened in the call."""
        result = context.readinto_async(buffer, fd, block * 4096)
        made_here = isinstance(result, int)
        if not made_here:
            harness.until(context, result.done)
            result = result.result()
        assert result == 4096
        assert bytes(buffer) == content[block * 4096:(block + 1) * 4096]
        return made_here

    try:
        assert all(read(block) for block in range(4))  # cached, buffered
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)  # O_DIRECT again
        # The kept answer, not asked again: a direct read made in the call
        # (it waited for the disk), the right bytes all the same.
        assert read(4)
        assert not all(read(block) for block in range(5, 5 + 64))
    finally:
        context.close()
