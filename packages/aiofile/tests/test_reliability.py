"""Misuse that must never hurt data: closing under in-flight operations,
writes that fail half way, appends by other writers.

Each test runs on every importable caio backend (the ``context`` fixture).
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aiofile import AIOFile, async_open

SIZE = 1 << 20


def drop_cache(path: Path) -> None:
    """Evict ``path`` from the page cache, so that a read of it has to wait
    for the device (stays in flight) on every backend."""
    with open(path, "rb") as file:
        os.fsync(file.fileno())  # dirty pages would stay
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


async def test_close_during_read_never_reads_another_file(
    context: Any, tmp_path: Path,
) -> None:
    """A read started before close() returns this file's bytes (or fails),
    never those of a file opened after close() under the same number."""
    ours = tmp_path / "ours"
    ours.write_bytes(b"o" * SIZE)
    other = tmp_path / "other"
    other.write_bytes(b"X" * SIZE)
    for _ in range(20):
        drop_cache(ours)
        afp = await AIOFile(ours, "rb", context=context)
        number = afp.fileno()
        reading = asyncio.ensure_future(afp.read(SIZE))
        await asyncio.sleep(0)  # the read is submitted and in flight
        await afp.close()
        fd = os.open(other, os.O_RDONLY)
        try:
            try:
                data = await reading
            except OSError:
                continue  # failing is honest; another file's bytes are not
            if fd == number:
                assert set(data) <= {ord("o")}, "the read returned another file's bytes"
            assert data == b"o" * SIZE
        finally:
            os.close(fd)


async def test_close_during_write_never_writes_another_file(
    context: Any, tmp_path: Path,
) -> None:
    """A write started before close() lands in this file, never in a file
    opened after close() under the same number."""
    ours = tmp_path / "ours"
    other = tmp_path / "other"
    for _ in range(20):
        other.write_bytes(b"")
        afp = await AIOFile(ours, "wb", context=context)
        writing = asyncio.ensure_future(afp.write(b"w" * SIZE))
        await asyncio.sleep(0)
        await afp.close()
        fd = os.open(other, os.O_RDWR)
        try:
            await writing
        finally:
            os.close(fd)
        assert other.read_bytes() == b""
        assert ours.read_bytes() == b"w" * SIZE


@pytest.mark.parametrize("mode", ["rb", "r+b"])
async def test_close_waits_for_operations_then_fails_new_ones(
    context: Any, tmp_path: Path, mode: str,
) -> None:
    """close() lets in-flight operations finish; new ones fail at once."""
    path = tmp_path / "f"
    path.write_bytes(b"d" * SIZE)
    drop_cache(path)
    afp = await AIOFile(path, mode, context=context)
    reads = [asyncio.ensure_future(afp.read(SIZE, i * 4096)) for i in range(8)]
    await asyncio.sleep(0)
    await afp.close()
    assert all(r.done() for r in reads)
    assert [len(r.result()) for r in reads] == [SIZE - i * 4096 for i in range(8)]
    with pytest.raises(ValueError, match="closed"):
        await afp.read(1)


# ---- partial writes ---------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Any:
    """A 1 MiB tmpfs mounted for the test (needs root; skipped otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True, check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize("mode", ["wb", "w"])
async def test_enospc_says_how_much_landed_and_tell_follows(
    context: Any, small_fs: Path, mode: str,
) -> None:
    """A write that fills the disk half way raises ENOSPC with ``written``
    (also in the message), tell() moves past the bytes that landed, and a
    retry after freeing space appends instead of overwriting."""
    data = b"z" * (2 << 20) if "b" in mode else "z" * (2 << 20)
    filler = small_fs / "filler"
    filler.write_bytes(b"f" * (256 << 10))
    async with async_open(small_fs / "f", mode, context=context) as f:
        with pytest.raises(OSError) as info:
            await f.write(data)
        error = info.value
        assert error.errno == errno.ENOSPC
        written = error.written  # type: ignore[attr-defined]
        assert 0 < written < len(data)
        assert f"{written} of {len(data)} bytes" in str(error)
        assert f.tell() == written == (small_fs / "f").stat().st_size
        filler.unlink()
        await f.write(data[:10])
        assert f.tell() == written + 10
    assert (small_fs / "f").read_bytes() == b"z" * (written + 10)


async def test_enospc_before_any_byte_says_none_landed(
    context: Any, small_fs: Path,
) -> None:
    """A write that cannot start keeps the kernel's error, with written=0."""
    (small_fs / "filler").write_bytes(b"f" * (1 << 20))
    async with async_open(small_fs / "f", "wb", context=context) as f:
        with pytest.raises(OSError) as info:
            await f.write(b"x" * 8192)
        assert info.value.errno == errno.ENOSPC
        assert info.value.written == 0  # type: ignore[attr-defined]
        assert f.tell() == 0


EFBIG_SCRIPT = """
import asyncio, errno, resource, signal, sys
import caio
from aiofile import async_open

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
module = getattr(caio, sys.argv[2]) if sys.argv[2] != "default" else None

async def main():
    context = module.AsyncioContext() if module else None
    async with async_open(sys.argv[1], "wb", context=context) as f:
        try:
            await f.write(b"e" * 300_000)
        except OSError as exc:
            assert exc.errno == errno.EFBIG, exc
            assert "100000 of 300000 bytes" in str(exc), exc
            print(exc.written, f.tell())
    if context is not None:
        context.close()

asyncio.run(main())
# Lifted again before exit: what writes at exit (coverage's data file, when
# the suite measures subprocesses) must not be cut short.
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
"""


async def test_efbig_says_how_much_landed(context: Any, tmp_path: Path) -> None:
    """RLIMIT_FSIZE cuts a write short, then fails it with EFBIG: the error
    says what landed and tell() follows (in a child: the limit is per
    process)."""
    name = "default" if context is None else type(context).__module__.split(".")[-1]
    path = tmp_path / "big"
    done = subprocess.run(
        [sys.executable, "-c", EFBIG_SCRIPT, str(path), name],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["100000", "100000"]
    assert path.stat().st_size == 100_000


@pytest.mark.parametrize("mode", ["ab", "a", "a+b"])
async def test_append_tell_is_the_real_end(context: Any, tmp_path: Path, mode: str) -> None:
    """In an appending mode tell() is the file's end after each write, also
    when another handle appended meanwhile."""
    path = tmp_path / "log"
    path.write_bytes(b"12")
    def data(text: str) -> Any:
        return text.encode() if "b" in mode else text

    async with async_open(path, mode, context=context) as f:
        assert f.tell() == 2
        await f.write(data("abc"))
        assert f.tell() == 5
        with open(path, "ab") as other:
            other.write(b"OTHER")
        await f.write(data("de"))
        assert f.tell() == 12
    assert path.read_bytes() == b"12abcOTHERde"
