"""Every backend on files that are not plain regular files, on failing
requests and on sizes and offsets at the edges, through its AsyncioContext.

SPEC: special files work, or fail with a clear OSError, never hang; a
failed operation raises OSError with the right errno, never anything else.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import resource
import threading
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 30


async def wait(coro: Any) -> Any:
    return await asyncio.wait_for(coro, TIMEOUT)


# ---- pipes, /proc, /sys and devices ---------------------------------------------


async def test_pipe(harness: Any, context: Any, pipe: Any) -> None:
    r, w = pipe
    # A pipe cannot seek: the offsets are ignored.
    assert await wait(context.write(b"hello pipe", w, 123456)) == 10
    assert await wait(context.read(100, r, 98765)) == b"hello pipe"
    if harness.waits_on_pipes:
        pending = asyncio.ensure_future(context.read(100, r, 5))
        await asyncio.sleep(0.01)
        assert not pending.done()
        os.write(w, b"later")
        assert await wait(pending) == b"later"
    else:
        # Kernel AIO would block inside io_submit: a clear error instead,
        # naming the backends that can wait.
        with pytest.raises(BlockingIOError) as info:
            await wait(context.read(100, r, 5))
        assert info.value.errno == errno.EAGAIN
    os.close(w)
    assert await wait(context.read(100, r, 0)) == b""    # end of file


async def test_pipe_write_bigger_than_the_pipe(harness: Any, context: Any, pipe: Any) -> None:
    r, w = pipe
    payload = os.urandom(300_000)
    received = bytearray()

    def drain() -> None:
        while len(received) < len(payload):
            chunk = os.read(r, 1 << 16)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    pools = harness.backend in ("thread", "python")
    # The pools write what fits, then the rest from a worker, advancing the
    # offset, which is ignored on a pipe: even the largest must not
    # overflow. io_uring and kernel AIO check pos + count first (EINVAL).
    offset = 2**63 - 1 if pools else 0
    writing = asyncio.ensure_future(context.write(payload, w, offset))
    await asyncio.sleep(0)
    reader.start()
    try:
        written = await wait(writing)
        if pools:
            # They loop until everything is written, as os.write does.
            assert written == len(payload)
        else:
            # io_uring and kernel AIO return what the pipe took, a short
            # count (aiofile's write() loops over it).
            assert 0 < written < len(payload)
    finally:
        os.close(w)
        reader.join(TIMEOUT)
    assert not reader.is_alive()
    assert bytes(received) == payload[:written]


async def test_proc_file(harness: Any, context: Any) -> None:
    descriptor = os.open("/proc/self/status", os.O_RDONLY)
    try:
        if harness.backend == "linux":
            # /proc files have no read_iter: kernel AIO refuses them.
            with pytest.raises(OSError) as info:
                await wait(context.read(65536, descriptor, 0))
            assert info.value.errno == errno.EINVAL
            return
        status = await wait(context.read(65536, descriptor, 0))
    finally:
        os.close(descriptor)
    assert status.startswith(b"Name:")
    assert b"\nPid:\t%d\n" % os.getpid() in status


@pytest.mark.parametrize(
    "path", [
        "/sys/devices/system/cpu/online",
        # Regular in the VFS but without a RWF_NOWAIT mode: linux_aio reads
        # it allowed to block.
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ],
)
async def test_sys_file(context: Any, path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    descriptor = os.open(path, os.O_RDONLY)
    try:
        assert await wait(context.read(4096, descriptor, 0)) == Path(path).read_bytes()
    finally:
        os.close(descriptor)


async def test_devices(context: Any) -> None:
    zero = os.open("/dev/zero", os.O_RDWR)
    try:
        assert await wait(context.read(4096, zero, 1 << 40)) == bytes(4096)
        assert await wait(context.write(b"abc", zero, 0)) == 3
    finally:
        os.close(zero)
    null = os.open("/dev/null", os.O_RDWR)
    try:
        assert await wait(context.write(b"x" * 1000, null, 77)) == 1000
        assert await wait(context.read(10, null, 0)) == b""
    finally:
        os.close(null)


# ---- failures ------------------------------------------------------------------------


async def test_errors(context: Any, closed_fd: int, pipe: Any, fd: int) -> None:
    with pytest.raises(OSError) as info:
        await wait(context.fsync(closed_fd))
    assert info.value.errno == errno.EBADF
    # A pipe cannot be synced.
    for sync in (context.fsync, context.fdsync):
        with pytest.raises(OSError) as info:
            await wait(sync(pipe[0]))
        assert info.value.errno == errno.EINVAL
    # offset + size beyond what a loff_t holds, as os.pread says.
    with pytest.raises(OSError) as info:
        await wait(context.read(100, fd, (1 << 63) - 10))
    assert info.value.errno == errno.EINVAL
    if hasattr(os, "eventfd"):
        event = os.eventfd(1)   # readable: the read does not wait
        try:
            # An eventfd reads 8 bytes or nothing: EINVAL.
            with pytest.raises(OSError) as info:
                await wait(context.read(4, event, 0))
            assert info.value.errno == errno.EINVAL
            assert await wait(context.read(8, event, 0)) == (1).to_bytes(8, "little")
        finally:
            os.close(event)
    # The context still works after failures.
    assert await wait(context.write(b"still", fd, 0)) == 5
    assert await wait(context.read(5, fd, 0)) == b"still"


# ---- sizes and offsets ----------------------------------------------------------------


@pytest.mark.parametrize(
    "offset", [1 << 30, (1 << 30) + (1 << 29) + 7, (3 << 30) + 7, (5 << 32) + 4095],
)
async def test_far_offsets(context: Any, fd: int, offset: int) -> None:
    # Past 1 GiB, 2**31 and 2**32: no truncation to 32 bits anywhere.
    payload = offset.to_bytes(8, "little") * 3
    assert await wait(context.write(payload, fd, offset)) == len(payload)
    assert os.fstat(fd).st_size == offset + len(payload)
    assert await wait(context.read(len(payload), fd, offset)) == payload
    assert await wait(context.read(100, fd, offset - 2)) == b"\0\0" + payload
    assert os.pread(fd, len(payload), offset) == payload
    assert await wait(context.read(16, fd, offset // 2)) == bytes(16)   # a hole


async def test_huge_reads_touch_no_memory(context: Any, fd: int) -> None:
    os.pwrite(fd, b"small file", 0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # More than 2 GiB asked: capped to the kernel's MAX_RW_COUNT, and the
    # untouched pages of the buffer are never faulted in.
    assert await wait(context.read(3 << 30, fd, 0)) == b"small file"
    assert await wait(context.read(5 << 30, fd, 2)) == b"all file"
    assert await wait(context.read(1 << 62, fd, 6)) == b"file"
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    # Touching one buffer would cost 2 GiB; AddressSanitizer's shadow
    # memory alone (1/8 of an allocation) may cost a few hundred MiB.
    assert grown_kib < 1024 * 1024


async def test_large_read_and_write(context: Any, fd: int) -> None:
    # Big transfers: the C backends release the GIL around them.
    payload = random.Random(3).randbytes(6 << 20)
    assert await wait(context.write(payload, fd, 0)) == len(payload)
    assert await wait(context.read(len(payload), fd, 0)) == payload
    assert await wait(context.read(len(payload), fd, 1000)) == payload[1000:]


async def test_misaligned_o_direct_read_widens(context: Any, tmp_path: Path) -> None:
    # O_DIRECT refuses a misaligned request (EINVAL); the adapter then reads
    # the aligned blocks around it (test_direct.py has the details).
    path = tmp_path / "direct-read"
    content = random.Random(4).randbytes(8192)
    path.write_bytes(content)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        pytest.skip("no O_DIRECT on this file system")
    try:
        assert await wait(context.read(4096, fd, 1)) == content[1:4097]
    finally:
        os.close(fd)
