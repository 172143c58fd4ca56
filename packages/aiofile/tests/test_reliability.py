"""Misuse that must never hurt data: closing under in-flight operations,
writes that fail half way.

Each test runs on every importable caio backend (the ``context`` fixture).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from aiofile import AIOFile

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
