"""caio.dio_alignment and caio.aligned_buffer, checked against the kernel:
an alignment is right when O_DIRECT I/O at it works and at half of it fails.
"""

from __future__ import annotations

import errno
import gc
import mmap
import os
import shutil
import stat
import subprocess
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import caio
from caio import _direct


def address(buffer: Any) -> int:
    import ctypes

    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


def sysfs_block_size(device: int) -> int | None:
    path = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/queue/logical_block_size")
    return int(path.read_text()) if path.exists() else None


@pytest.fixture(params=["statx", "sysfs"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways dio_alignment knows: the C helper, and sysfs alone (as a
    caio built without a compiler has it)."""
    if request.param == "statx":
        if _direct._statx_dioalign is None:
            pytest.skip("caio._dio is not built here")
    else:
        monkeypatch.setattr(_direct, "_statx_dioalign", None)
    return str(request.param)


def test_alignment_is_what_o_direct_needs(direct_dir: Path, way: str) -> None:
    path = direct_dir / "f"
    path.write_bytes(os.urandom(1 << 16))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        memory, block = caio.dio_alignment(fd)
        for value in (memory, block):
            assert value > 0 and value & (value - 1) == 0
        buffer = caio.aligned_buffer(2 * block, memory)
        # At the answer: the kernel takes it.
        assert os.preadv(fd, [buffer], 2 * block) == 2 * block
        assert bytes(buffer) == path.read_bytes()[2 * block:4 * block]
        if block > 1:
            # At half of it: the kernel refuses, so the answer is not too big
            # by a factor the tests could miss.
            with pytest.raises(OSError) as info:
                os.preadv(fd, [buffer[:block]], block + block // 2)
            assert info.value.errno == errno.EINVAL
        if way == "sysfs":
            device = os.fstat(fd).st_dev
            expected = sysfs_block_size(device) or _direct.DEFAULT_ALIGNMENT
            assert (memory, block) == (expected, expected)
    finally:
        os.close(fd)


def test_alignment_of_a_file_object(direct_dir: Path) -> None:
    path = direct_dir / "f"
    path.write_bytes(b"x")
    with open(path, "rb") as f:
        assert caio.dio_alignment(f) == caio.dio_alignment(f.fileno())


@pytest.mark.parametrize("fstype", ["tmpfs", "ramfs"])
def test_alignment_without_a_block_device(mounted: Any, fstype: str, way: str) -> None:
    # tmpfs does direct I/O since Linux 6.6, ramfs never; neither has a
    # device in sysfs nor reports STATX_DIOALIGN: the default answers.
    where = mounted(fstype)
    path = where / "f"
    path.write_bytes(b"data")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert caio.dio_alignment(fd) == (4096, 4096)
    finally:
        os.close(fd)


def test_alignment_of_a_pipe(way: str) -> None:
    r, w = os.pipe()
    try:
        assert caio.dio_alignment(r) == (4096, 4096)
    finally:
        os.close(r)
        os.close(w)


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    """A loop block device with 4096-byte logical blocks (not the usual 512),
    detached after the test; skips where losetup cannot make one."""
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    if shutil.which("losetup") is None:
        pytest.skip("no losetup")
    done = subprocess.run(
        ["losetup", "--sector-size", "4096", "--find", "--show", str(image)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot set up a loop device: {done.stderr.strip()}")
    device = done.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], check=False)


def test_alignment_of_a_block_device(loop_device: str, way: str) -> None:
    # The device's own number (st_rdev) counts, not that of the
    # filesystem its node is on.
    fd = os.open(loop_device, os.O_RDONLY | os.O_DIRECT)
    try:
        assert stat.S_ISBLK(os.fstat(fd).st_mode)
        memory, block = caio.dio_alignment(fd)
        assert block == 4096
        buffer = caio.aligned_buffer(block, memory)
        assert os.preadv(fd, [buffer], 3 * block) == block
        with pytest.raises(OSError) as info:
            os.preadv(fd, [buffer], block // 2)
        assert info.value.errno == errno.EINVAL
    finally:
        os.close(fd)


def test_partition_uses_its_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sysfs layout of a partition: /sys/dev/block/M:N links to
    # .../block/sdz/sdz1, which has no queue/ of its own.
    disk = tmp_path / "devices" / "sdz"
    (disk / "queue").mkdir(parents=True)
    (disk / "queue" / "logical_block_size").write_text("4096\n")
    (disk / "sdz1").mkdir()
    links = tmp_path / "dev-block"
    links.mkdir()
    (links / "259:7").symlink_to(disk / "sdz1")
    (links / "259:0").symlink_to(disk)
    monkeypatch.setattr(_direct, "_SYSFS_BLOCK", str(links))
    assert _direct._logical_block_size(os.makedev(259, 7)) == 4096
    assert _direct._logical_block_size(os.makedev(259, 0)) == 4096
    assert _direct._logical_block_size(os.makedev(259, 9)) is None


def test_alignment_errors(closed_fd: int) -> None:
    with pytest.raises(OSError) as info:
        caio.dio_alignment(closed_fd)
    assert info.value.errno == errno.EBADF
    with pytest.raises(ValueError):
        caio.dio_alignment(-1)
    with pytest.raises(TypeError):
        caio.dio_alignment("0")


@pytest.mark.parametrize("alignment", [None, 512, 4096, 1 << 16, 1 << 21])
@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 100_000])
def test_aligned_buffer(size: int, alignment: int | None) -> None:
    buffer = caio.aligned_buffer(size, alignment)
    assert len(buffer) == size and not buffer.readonly
    assert buffer.contiguous and buffer.format == "B"
    assert bytes(buffer) == bytes(size)
    if size:
        assert address(buffer) % (alignment or mmap.PAGESIZE) == 0
        buffer[-1] = 7
        assert buffer[-1] == 7


def test_aligned_buffer_is_freed_with_the_object() -> None:
    buffer = caio.aligned_buffer(1 << 20, 1 << 20)
    memory = weakref.ref(buffer.obj)
    view = buffer[10:20]  # a view keeps it alive
    del buffer
    gc.collect()
    assert memory() is not None
    del view
    gc.collect()
    assert memory() is None


@pytest.mark.parametrize(
    ("size", "alignment", "error"),
    [
        (-1, None, ValueError), (10, 0, ValueError), (10, -4096, ValueError),
        (10, 3, ValueError), (10, 4097, ValueError), ("10", None, TypeError),
        (10.0, None, TypeError), (10, 512.0, TypeError), (True, None, TypeError),
        (10, True, TypeError),
    ],
)
def test_aligned_buffer_errors(size: Any, alignment: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        caio.aligned_buffer(size, alignment)
