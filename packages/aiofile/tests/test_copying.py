"""aiofile.copyfile / aiofile.copy against shutil's results and errors."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aiofile
from aiofile import copying


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def small_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many jobs, ranges and steps on a small file: the same code paths a
    # gigabyte takes, in milliseconds.
    monkeypatch.setattr(copying, "JOB", 64 * 1024)
    monkeypatch.setattr(copying, "STEP", 16 * 1024)
    monkeypatch.setattr(copying, "BUFFER", 4096)


@pytest.mark.parametrize("size", [0, 1, 4095, 16 * 1024, 64 * 1024, 64 * 1024 + 1, 1_000_003])
def test_copyfile_is_byte_exact(tmp_path: Path, small_jobs: None, size: int) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = os.urandom(size)
    src.write_bytes(data)
    dst.write_bytes(b"x" * (size + 5000))  # longer: replaced, not patched
    assert run(aiofile.copyfile(src, dst)) == dst
    assert dst.read_bytes() == data


def test_copyfile_returns_dst_as_given(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    for dst in (str(tmp_path / "s"), os.fsencode(tmp_path / "b"), tmp_path / "p"):
        assert run(aiofile.copyfile(str(src), dst)) is dst
        assert Path(os.fsdecode(dst)).read_bytes() == b"abc"


@pytest.fixture
def other_filesystem() -> Iterator[Path]:
    """A directory on a tmpfs: copy_file_range from ext4 to it is refused
    (EXDEV), so the pread/pwrite loop runs."""
    base = Path("/dev/shm")
    if not base.is_dir() or os.statvfs(base).f_fsid == os.statvfs("/").f_fsid:
        pytest.skip("no second filesystem at /dev/shm")
    where = base / f"aiofile-copy-{os.getpid()}"
    where.mkdir()
    try:
        yield where
    finally:
        shutil.rmtree(where)


def test_copyfile_across_filesystems(tmp_path: Path, other_filesystem: Path,
                                     small_jobs: None) -> None:
    data = os.urandom(300_001)
    src = tmp_path / "src"
    src.write_bytes(data)
    there = other_filesystem / "dst"
    run(aiofile.copyfile(src, there))
    assert there.read_bytes() == data
    back = tmp_path / "back"
    run(aiofile.copyfile(there, back))
    assert back.read_bytes() == data


def test_copyfile_from_a_special_file_copies_to_its_end(tmp_path: Path) -> None:
    # /proc files report size 0: the copy goes on until the end anyway.
    dst = tmp_path / "dst"
    run(aiofile.copyfile("/proc/self/status", dst))
    assert dst.read_text().startswith("Name:")


def same_error(call: Any, expected: type[BaseException], *args: Any) -> BaseException:
    with pytest.raises(expected) as ours:
        run(call(*args))
    return ours.value


@pytest.mark.parametrize("how", ["same path", "hard link", "symlink"])
def test_same_file_is_refused_and_untouched(tmp_path: Path, how: str) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"keep me")
    dst = {"same path": src, "hard link": tmp_path / "hard", "symlink": tmp_path / "soft"}[how]
    if how == "hard link":
        os.link(src, dst)
    elif how == "symlink":
        dst.symlink_to(src)
    with pytest.raises(shutil.SameFileError):
        shutil.copyfile(src, dst)
    same_error(aiofile.copyfile, shutil.SameFileError, src, dst)
    assert src.read_bytes() == b"keep me"


def test_errors_match_shutil(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError) as theirs:
        shutil.copyfile(missing, tmp_path / "x")
    ours = same_error(aiofile.copyfile, FileNotFoundError, missing, tmp_path / "x")
    assert (ours.errno, ours.filename) == (theirs.value.errno, theirs.value.filename)  # type: ignore[attr-defined]

    src = tmp_path / "src"
    src.write_bytes(b"data")
    ours = same_error(aiofile.copyfile, IsADirectoryError, src, tmp_path)
    assert ours.errno == errno.EISDIR  # type: ignore[attr-defined]
    ours = same_error(aiofile.copyfile, NotADirectoryError, src, src / "below")
    assert ours.errno == errno.ENOTDIR  # type: ignore[attr-defined]

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(shutil.SpecialFileError):
        shutil.copyfile(fifo, tmp_path / "y")
    same_error(aiofile.copyfile, shutil.SpecialFileError, fifo, tmp_path / "y")
    assert not (tmp_path / "y").exists()


def test_follow_symlinks_false_copies_the_link(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"t")
    link = tmp_path / "link"
    link.symlink_to("target")
    run(aiofile.copyfile(link, tmp_path / "copy", follow_symlinks=False))
    assert os.readlink(tmp_path / "copy") == "target"
    run(aiofile.copyfile(link, tmp_path / "followed"))
    assert not (tmp_path / "followed").is_symlink()
    assert (tmp_path / "followed").read_bytes() == b"t"


def test_copy_into_a_directory_with_mode(tmp_path: Path) -> None:
    src = tmp_path / "tool.sh"
    src.write_bytes(b"#!/bin/sh\n")
    src.chmod(0o751)
    into = tmp_path / "bin"
    into.mkdir()
    ours = run(aiofile.copy(src, into))
    theirs = shutil.copy(src, tmp_path / "ref")
    assert Path(ours) == into / "tool.sh"
    assert Path(ours).read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(os.stat(ours).st_mode) == stat.S_IMODE(os.stat(theirs).st_mode) == 0o751


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_cancelled_copy_closes_everything_after_the_workers(
    tmp_path: Path, small_jobs: None,
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(4 * 1024 * 1024))

    async def main() -> None:
        before = fd_count()
        task = asyncio.ensure_future(aiofile.copyfile(src, dst))
        while not dst.exists():  # cancel in the middle of the data
            await asyncio.sleep(0.0005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Not one descriptor left behind, and no worker still writes.
        assert fd_count() == before
        size = dst.stat().st_size
        await asyncio.sleep(0.05)
        assert dst.stat().st_size == size
        assert size < src.stat().st_size

    run(main())


def test_copyfile_leaves_the_loop_running(tmp_path: Path, small_jobs: None) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(2 * 1024 * 1024))

    async def main() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.ensure_future(tick())
        await aiofile.copyfile(src, dst)
        ticker.cancel()
        return ticks

    # 32 jobs of 64 KiB, each a trip to a worker: other tasks run meanwhile.
    assert run(main()) >= 16
    assert dst.read_bytes() == src.read_bytes()
