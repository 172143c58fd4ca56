"""Filesystem operations (stat, open, close_fd, rename, unlink, rmdir, mkdir,
link, symlink, ftruncate, fallocate) on every backend, against the ``os``
function doing the same: the same result, the same exception with the
same errno, strerror, filename and filename2.

linux_uring does them as io_uring requests where its probe found the
opcode; the others (and uring where the kernel lacks one) on threads.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 30

STAT_FIELDS = (
    "st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size",
    "st_atime", "st_mtime", "st_ctime", "st_atime_ns", "st_mtime_ns",
    "st_ctime_ns", "st_blksize", "st_blocks", "st_rdev",
)


async def wait(coro: Any) -> Any:
    return await asyncio.wait_for(coro, TIMEOUT)


def assert_same_stat(ours: os.stat_result, theirs: os.stat_result) -> None:
    assert type(ours) is os.stat_result
    assert tuple(ours) == tuple(theirs)
    for name in STAT_FIELDS:
        assert getattr(ours, name) == getattr(theirs, name), name
        assert type(getattr(ours, name)) is type(getattr(theirs, name)), name


async def assert_same_error(coro: Any, func: Any, *args: Any, **kwargs: Any) -> OSError:
    """``await coro`` raises what ``func(*args, **kwargs)`` raises."""
    with pytest.raises(OSError) as expected:
        func(*args, **kwargs)
    with pytest.raises(OSError) as got:
        await wait(coro)
    theirs, ours = expected.value, got.value
    assert type(ours) is type(theirs)
    assert (ours.errno, ours.strerror) == (theirs.errno, theirs.strerror)
    assert ours.filename == theirs.filename
    assert ours.filename2 == theirs.filename2
    assert str(ours) == str(theirs)
    return ours


def kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split(".")
    return (int(release[0]), int(release[1].split("-")[0])) >= (major, minor)


# ---- which path each operation takes -------------------------------------------

KERNEL_SINCE = {
    "stat": (5, 6), "fstat": (5, 6), "open": (5, 6), "close_fd": (5, 6),
    "fallocate": (5, 6), "rename": (5, 11), "unlink": (5, 11), "rmdir": (5, 11),
    "mkdir": (5, 15), "link": (5, 15), "symlink": (5, 15), "ftruncate": (6, 9),
}


# The kernel feature (caio._features) each one needs in linux_uring: a test
# profile (CAIO_KERNEL_PROFILE, CAIO_KERNEL_LACKS) hides it as an old kernel
# would.
FEATURE_OF = {
    "stat": "uring_statx", "fstat": "uring_statx", "open": "uring_openat",
    "close_fd": "uring_probe", "fallocate": "uring_probe", "rename": "uring_fs",
    "unlink": "uring_fs", "rmdir": "uring_fs", "mkdir": "uring_fs", "link": "uring_fs",
    "symlink": "uring_fs", "ftruncate": "uring_ftruncate",
}


async def test_in_kernel(backend: str, context: Any) -> None:
    from caio._features import lacks

    for name, since in KERNEL_SINCE.items():
        expected = (
            backend == "uring" and kernel_at_least(*since) and not lacks(FEATURE_OF[name])
        )
        assert context.in_kernel(name) is expected, name
    with pytest.raises(ValueError):
        context.in_kernel("chmod")


async def test_low_level_in_kernel(backend: str, backend_module: Any) -> None:
    from caio import _fsops

    with backend_module.Context() as low:
        flags = [low.fs_in_kernel(op) for op in range(len(_fsops.NAMES))]
        assert any(flags) is (backend == "uring")
        with pytest.raises(ValueError):
            low.fs_in_kernel(len(_fsops.NAMES))
        with pytest.raises(TypeError):
            low.fs_in_kernel("stat")


async def test_where_they_run(
    backend: str, context: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """io_uring and the C pool do them in C (the kernel, the workers); the
    Python pool and linux_aio's executor through caio._fsops.call."""
    from caio import _fsops

    ran: list[int] = []
    real = _fsops.call

    def spy(op: int, *args: Any) -> Any:
        ran.append(op)
        return real(op, *args)

    monkeypatch.setattr(_fsops, "call", spy)
    await wait(context.mkdir(tmp_path / "d"))
    assert_same_stat(await wait(context.stat(tmp_path / "d")), os.stat(tmp_path / "d"))
    await wait(context.rmdir(tmp_path / "d"))
    # Each one the ring lacks (an old kernel, or a test profile) goes to
    # the executor, through _fsops.call.
    expected = [
        op for name, op in (("mkdir", _fsops.MKDIR), ("stat", _fsops.STAT),
                            ("rmdir", _fsops.UNLINK))
        if backend != "thread" and not (backend == "uring" and context.in_kernel(name))
    ]
    assert ran == expected


# ---- stat and fstat ------------------------------------------------------------


async def test_stat(context: Any, tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"x" * 5000)
    for arg in (str(path), bytes(path), path):
        assert_same_stat(await wait(context.stat(arg)), os.stat(arg))
    assert_same_stat(await wait(context.stat(tmp_path)), os.stat(tmp_path))
    # A character device: st_rdev is its device number.
    assert_same_stat(await wait(context.stat("/dev/null")), os.stat("/dev/null"))


async def test_stat_follow_symlinks(context: Any, tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"abc")
    link = tmp_path / "link"
    link.symlink_to("target")
    ours = await wait(context.stat(link, follow_symlinks=False))
    assert stat.S_ISLNK(ours.st_mode)
    assert_same_stat(ours, os.lstat(link))
    assert_same_stat(await wait(context.stat(link)), os.stat(link))


async def test_stat_dir_fd(context: Any, tmp_path: Path, dir_fd: int) -> None:
    (tmp_path / "inside").write_bytes(b"abc")
    assert_same_stat(
        await wait(context.stat("inside", dir_fd=dir_fd)),
        os.stat("inside", dir_fd=dir_fd),
    )


async def test_fstat(context: Any, fd: int, closed_fd: int) -> None:
    os.write(fd, b"12345")
    assert_same_stat(await wait(context.fstat(fd)), os.fstat(fd))
    assert_same_stat(await wait(context.stat(fd)), os.stat(fd))
    await assert_same_error(context.fstat(closed_fd), os.fstat, closed_fd)
    # Not the current directory, which is what AT_FDCWD would give.
    await assert_same_error(context.fstat(-100), os.fstat, -100)


async def test_stat_errors(context: Any, tmp_path: Path, file_path: Path) -> None:
    file_path.write_bytes(b"")
    missing = tmp_path / "missing"
    await assert_same_error(context.stat(missing), os.stat, missing)
    await assert_same_error(context.stat(bytes(missing)), os.stat, bytes(missing))
    under_file = file_path / "x"
    await assert_same_error(context.stat(under_file), os.stat, under_file)
    with pytest.raises(ValueError):
        await wait(context.stat("a\0b"))
    with pytest.raises(TypeError):
        await wait(context.stat(1.5))


# ---- open and close -------------------------------------------------------------


async def test_open_close(context: Any, tmp_path: Path, closed_fd: int) -> None:
    path = tmp_path / "new"
    fd = await wait(context.open(path, os.O_CREAT | os.O_RDWR, 0o640))
    try:
        assert isinstance(fd, int)
        assert os.fstat(fd).st_ino == os.stat(path).st_ino
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640 & ~current_umask()
        # Not inheritable, as os.open makes them.
        assert os.get_inheritable(fd) is False
        os.write(fd, b"data")
    finally:
        await wait(context.close_fd(fd))
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF
    await assert_same_error(context.close_fd(closed_fd), os.close, closed_fd)
    assert path.read_bytes() == b"data"


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


async def test_open_errors(context: Any, tmp_path: Path, file_path: Path) -> None:
    file_path.write_bytes(b"")
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    await assert_same_error(context.open(file_path, flags), os.open, file_path, flags)
    missing = tmp_path / "missing"
    await assert_same_error(context.open(missing, os.O_RDONLY), os.open, missing, os.O_RDONLY)
    await assert_same_error(
        context.open(tmp_path, os.O_WRONLY), os.open, tmp_path, os.O_WRONLY,
    )
    with pytest.raises(TypeError):
        await wait(context.open(file_path, "r"))


async def test_open_dir_fd(context: Any, tmp_path: Path, dir_fd: int) -> None:
    fd = await wait(context.open(b"rel", os.O_CREAT | os.O_WRONLY, dir_fd=dir_fd))
    try:
        assert os.fstat(fd).st_ino == os.stat(tmp_path / "rel").st_ino
    finally:
        os.close(fd)


# ---- rename, unlink, rmdir, mkdir ------------------------------------------------


async def test_rename(context: Any, tmp_path: Path, dir_fd: int) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"moved")
    await wait(context.rename(src, str(dst)))
    assert not src.exists()
    assert dst.read_bytes() == b"moved"
    await wait(context.rename(b"b", "c", src_dir_fd=dir_fd, dst_dir_fd=dir_fd))
    assert (tmp_path / "c").read_bytes() == b"moved"
    error = await assert_same_error(context.rename(src, dst), os.rename, src, dst)
    assert error.filename2 == str(dst)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    await assert_same_error(
        context.rename(tmp_path / "empty", tmp_path / "full"),
        os.rename, tmp_path / "empty", tmp_path / "full",
    )
    await assert_same_error(
        context.rename(tmp_path / "empty", tmp_path / "c"),
        os.rename, tmp_path / "empty", tmp_path / "c",
    )


async def test_unlink_rmdir(context: Any, tmp_path: Path, dir_fd: int) -> None:
    (tmp_path / "f").write_bytes(b"")
    (tmp_path / "d").mkdir()
    (tmp_path / "g").write_bytes(b"")
    await assert_same_error(context.unlink(tmp_path / "d"), os.unlink, tmp_path / "d")
    await assert_same_error(context.rmdir(tmp_path / "f"), os.rmdir, tmp_path / "f")
    await wait(context.unlink(tmp_path / "f"))
    await wait(context.rmdir(bytes(tmp_path / "d")))
    await wait(context.unlink("g", dir_fd=dir_fd))
    assert sorted(os.listdir(tmp_path)) == []
    await assert_same_error(context.unlink(tmp_path / "f"), os.unlink, tmp_path / "f")
    await assert_same_error(context.rmdir(tmp_path / "d"), os.rmdir, tmp_path / "d")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_bytes(b"")
    await assert_same_error(context.rmdir(tmp_path / "full"), os.rmdir, tmp_path / "full")


async def test_mkdir(context: Any, tmp_path: Path, file_path: Path, dir_fd: int) -> None:
    await wait(context.mkdir(tmp_path / "d", 0o705))
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o705 & ~current_umask()
    await wait(context.mkdir("e", dir_fd=dir_fd))
    assert (tmp_path / "e").is_dir()
    await assert_same_error(context.mkdir(tmp_path / "d"), os.mkdir, tmp_path / "d")
    file_path.write_bytes(b"")
    await assert_same_error(context.mkdir(file_path / "x"), os.mkdir, file_path / "x")
    missing = tmp_path / "missing" / "x"
    await assert_same_error(context.mkdir(missing), os.mkdir, missing)


# ---- link and symlink -----------------------------------------------------------


async def test_link(context: Any, tmp_path: Path, dir_fd: int) -> None:
    (tmp_path / "f").write_bytes(b"linked")
    (tmp_path / "s").symlink_to("f")
    await wait(context.link(tmp_path / "f", tmp_path / "h"))
    assert os.stat(tmp_path / "h").st_ino == os.stat(tmp_path / "f").st_ino
    assert os.stat(tmp_path / "f").st_nlink == 2
    # The same choice os makes for a symlink source, with and without dir_fd.
    for kwargs in ({}, {"follow_symlinks": False}, {"follow_symlinks": True}):
        for with_dir in (False, True):
            extra: dict[str, Any] = dict(kwargs)
            if with_dir:
                extra.update(src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            os.link("s" if with_dir else tmp_path / "s",
                    "os-link" if with_dir else tmp_path / "os-link", **extra)
            await wait(context.link("s" if with_dir else tmp_path / "s",
                                    "our-link" if with_dir else tmp_path / "our-link",
                                    **extra))
            assert os.path.islink(tmp_path / "our-link") == os.path.islink(
                tmp_path / "os-link",
            ), extra
            os.unlink(tmp_path / "our-link")
            os.unlink(tmp_path / "os-link")
    await assert_same_error(
        context.link(tmp_path / "f", tmp_path / "h"), os.link, tmp_path / "f", tmp_path / "h",
    )
    await assert_same_error(
        context.link(tmp_path / "missing", tmp_path / "x"),
        os.link, tmp_path / "missing", tmp_path / "x",
    )


async def test_symlink(context: Any, tmp_path: Path, dir_fd: int) -> None:
    await wait(context.symlink("target", tmp_path / "s"))
    assert os.readlink(tmp_path / "s") == "target"
    await wait(context.symlink(b"other", b"t", dir_fd=dir_fd))
    assert os.readlink(tmp_path / "t") == "other"
    await assert_same_error(
        context.symlink("x", tmp_path / "s"), os.symlink, "x", tmp_path / "s",
    )


# ---- ftruncate and fallocate -------------------------------------------------------


async def test_ftruncate(context: Any, fd: int, closed_fd: int) -> None:
    os.write(fd, b"0123456789")
    await wait(context.ftruncate(fd, 4))
    assert os.pread(fd, 100, 0) == b"0123"
    await wait(context.ftruncate(fd, 1 << 20))
    assert os.fstat(fd).st_size == 1 << 20
    await assert_same_error(context.ftruncate(closed_fd, 0), os.ftruncate, closed_fd, 0)
    await assert_same_error(context.ftruncate(fd, -1), os.ftruncate, fd, -1)


async def test_fallocate(context: Any, fd: int, closed_fd: int) -> None:
    await wait(context.fallocate(fd, 0, 0, 1 << 16))
    assert os.fstat(fd).st_size == 1 << 16
    keep_size = 0x01  # FALLOC_FL_KEEP_SIZE
    await wait(context.fallocate(fd, keep_size, 1 << 16, 1 << 16))
    info = os.fstat(fd)
    assert info.st_size == 1 << 16
    assert info.st_blocks * 512 >= 1 << 17
    with pytest.raises(OSError) as error:
        await wait(context.fallocate(closed_fd, 0, 0, 10))
    assert error.value.errno == errno.EBADF
    with pytest.raises(OSError) as error:
        await wait(context.fallocate(fd, 0, 0, 0))
    assert error.value.errno == errno.EINVAL


# ---- permission denied (as an unprivileged user) ------------------------------------


def test_permission_denied(backend: str, tmp_path: Path) -> None:
    """EACCES as os gives it, for a user who may not search a directory
    (pytest's base temporary directory is private to root)."""
    from caio._backends import BACKENDS

    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    path = str(tmp_path / "f")
    Path(path).write_bytes(b"")
    # With and without the inline stat path where there is one.
    options = [{}, {"stat_cached": False}] if backend in STAT_CACHED else [{}]
    script = textwrap.dedent(f"""
        import asyncio, os
        import concurrent.futures.thread  # root's Python is root's to read
        from caio import {BACKENDS[backend]}_asyncio as backend
        os.setgid(65534)
        os.setuid(65534)
        path = {path!r}

        async def main():
            for options in {options!r}:
              async with backend.AsyncioContext(**options) as ctx:
                for name, args in (("stat", (path,)), ("open", (path, os.O_RDONLY)),
                                   ("unlink", (path,)), ("mkdir", (path + "x",))):
                    try:
                        getattr(os, name)(*args)
                    except OSError as exc:
                        theirs = exc
                    try:
                        await getattr(ctx, name)(*args)
                    except OSError as exc:
                        ours = exc
                    assert type(ours) is type(theirs) is PermissionError, (ours, theirs)
                    assert str(ours) == str(theirs), (ours, theirs)
            print("ok")

        asyncio.run(main())
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True,
        timeout=TIMEOUT, cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---- cancellation and closing --------------------------------------------------------


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_cancel_pending_open(backend: str, context: Any, tmp_path: Path) -> None:
    """An open that cannot finish (a FIFO nobody writes to) is cancelled:
    the task ends with CancelledError, the path it held is released once,
    and no descriptor leaks whether the open was stopped or still ran."""
    fifo = bytes(tmp_path / "fifo")
    os.mkfifo(fifo)
    refs = sys.getrefcount(fifo)
    before = open_descriptors()
    task = asyncio.ensure_future(context.open(fifo, os.O_RDONLY))
    await asyncio.sleep(0.05)
    if task.done():
        # io_uring first tries the open with O_NONBLOCK, which opens a
        # FIFO for reading without waiting for a writer (and then clears
        # the flag): docs/internals.md. No pending open to cancel.
        assert backend == "uring"
        os.close(task.result())
        assert sys.getrefcount(fifo) == refs
        return
    assert sys.getrefcount(fifo) > refs    # held by the request
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    del task
    # A worker may be inside open(2), or about to be: a writer lets it
    # finish. (Until a reader waits, and if the kernel interrupted it,
    # opening one fails with ENXIO: try again.)
    writer = -1
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    try:
        while True:
            if writer < 0:
                try:
                    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError as exc:
                    assert exc.errno == errno.ENXIO
            gc.collect()
            if sys.getrefcount(fifo) == refs and open_descriptors() == before + (writer >= 0):
                break
            assert asyncio.get_running_loop().time() < deadline, (
                sys.getrefcount(fifo) - refs, open_descriptors() - before, writer,
            )
            await asyncio.sleep(0.01)
    finally:
        if writer >= 0:
            os.close(writer)
    assert sys.getrefcount(fifo) == refs


def test_opened_descriptor_survives_the_loop_closing(
    backend: str, asyncio_module: Any, tmp_path: Path,
) -> None:
    """An open whose descriptor was delivered is the caller's, even when its
    loop closes at once after it: nothing closes it behind the caller's
    back (that number would go to the next file opened and be closed under
    it). Tiny thread switch interval: the worker's last steps then overlap
    the loop's closing."""
    from caio import _fsops

    path = tmp_path / "f"
    path.write_bytes(b"")
    closed_under_us = 0
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(300):
            loop = asyncio.new_event_loop()
            try:
                context = asyncio_module.AsyncioContext(loop=loop)
                fd = loop.run_until_complete(context.open(path, os.O_RDONLY))
                context.close()
            finally:
                loop.close()
            _fsops.executor().submit(int).result()  # its callbacks have run
            try:
                os.fstat(fd)
            except OSError:
                closed_under_us += 1
            else:
                os.close(fd)
    finally:
        sys.setswitchinterval(interval)
    assert closed_under_us == 0


class LoopSeeingThreads(asyncio.SelectorEventLoop):
    """The stdlib loop, telling when another thread queued a callback."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = threading.Event()

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> asyncio.Handle:
        handle = super().call_soon_threadsafe(*args, **kwargs)
        self.queued.set()
        return handle


@pytest.mark.parametrize("closed", ["before-the-open-ends", "with-its-result-queued"])
@pytest.mark.parametrize("cancelled", [False, True], ids=["awaited", "cancelled"])
def test_open_ending_after_its_loop_closed_is_given_back(
    fifo: Any, closed: str, cancelled: bool,
) -> None:
    """An open on caio's executor (linux_aio's, uring's where the kernel
    lacks openat) that ends after its loop closed: nobody can take the
    descriptor any more, so it is closed, whether the loop refused the
    hand-over (closed first) or discarded it queued (asyncio's close()
    drops its ready callbacks)."""
    from caio import _fsops

    loop = LoopSeeingThreads()
    try:
        future = _fsops.on_thread(
            loop, _fsops.OPEN, _fsops.AT_FDCWD, fifo.path.encode(), None,
            _fsops.AT_FDCWD, os.O_RDONLY | os.O_CLOEXEC, 0, 0, 0,
        )
        if closed == "before-the-open-ends":
            if cancelled:
                future.cancel()
            loop.close()
            fifo.open_writer()
        else:
            fifo.open_writer()
            assert loop.queued.wait(TIMEOUT)
            if cancelled:  # as asyncio.run() does before it closes the loop
                future.cancel()
    finally:
        loop.close()
    fifo.wait_for_no_reader()


async def test_cancel_many_stats(context: Any, tmp_path: Path) -> None:
    path = bytes(tmp_path)
    refs = sys.getrefcount(path)
    tasks = [asyncio.ensure_future(context.stat(path)) for _ in range(64)]
    await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results[1::2]:
        assert isinstance(result, os.stat_result)
        assert_same_stat(result, os.stat(path))
    # The CancelledErrors' tracebacks hold the coroutines' frames, in cycles.
    del tasks, task, results, result
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while gc.collect() or sys.getrefcount(path) != refs:
        assert asyncio.get_running_loop().time() < deadline, sys.getrefcount(path) - refs
        await asyncio.sleep(0.01)


async def test_closed_context(context: Any, tmp_path: Path, fd: int) -> None:
    context.close()
    with pytest.raises(ValueError):
        await wait(context.stat(tmp_path))
    with pytest.raises(ValueError):
        await wait(context.ftruncate(fd, 0))


# ---- the low-level fs_async ---------------------------------------------------------


async def test_fs_async_arguments(
    backend: str, backend_module: Any, wire: Any, tmp_path: Path,
) -> None:
    from caio import _fsops

    low = wire(backend_module.Context())
    if not hasattr(low, "fs_async"):
        assert backend == "linux"  # kernel AIO: the adapter's executor
        return
    good = (_fsops.STAT, _fsops.AT_FDCWD, bytes(tmp_path), None, _fsops.AT_FDCWD, 0, 0, 0, 0)
    result = low.fs_async(*good)
    if asyncio.isfuture(result):
        result = await wait(result)
    assert_same_stat(result, os.stat(tmp_path))
    with pytest.raises(TypeError):
        low.fs_async(*good[:8])
    with pytest.raises(ValueError):
        low.fs_async(len(_fsops.NAMES), *good[1:])
    with pytest.raises(TypeError):
        low.fs_async(_fsops.STAT, _fsops.AT_FDCWD, str(tmp_path), *good[3:])
    with pytest.raises(ValueError):
        low.fs_async(_fsops.STAT, _fsops.AT_FDCWD, b"a\0b", *good[3:])
    with pytest.raises(TypeError):
        low.fs_async(_fsops.STAT, "fd", *good[2:])


# ---- stat of a cached path on the calling thread (stat_cached) -----------------------

#: Backends whose Context has the inline stat path (src/common/fsops.c).
STAT_CACHED = ("uring", "thread")


@pytest.fixture(params=[True, False], ids=["cached", "no-cached"])
def stat_cached(request: pytest.FixtureRequest, backend: str) -> bool:
    """stat_cached on or off where the backend has the inline stat path
    (the others run once, with their defaults)."""
    from caio import _features

    if backend not in STAT_CACHED and not request.param:
        pytest.skip("no inline stat path on this backend")
    # A kernel feature profile may hide openat2(RESOLVE_CACHED).
    return bool(request.param) and backend in STAT_CACHED and not _features.lacks("stat_cached")


@pytest.fixture
def stat_context(backend: str, stat_cached: bool, context_factory: Any) -> Any:
    if backend not in STAT_CACHED:
        return context_factory()
    return context_factory(stat_cached=stat_cached)


def run_without_suspending(coro: Any) -> tuple[bool, Any]:
    """(True, value) when the coroutine finishes at its first step (it did
    not give the loop a turn), else (False, the coroutine, already started:
    await ``finish`` of it)."""
    try:
        yielded = coro.send(None)
    except StopIteration as done:
        return True, done.value
    return False, (coro, yielded)


async def finish(started: tuple[Any, Any]) -> Any:
    # Drive a coroutine that yielded a future: wait for it, send the result.
    coro, yielded = started
    while True:
        try:
            if yielded is None:  # asyncio.sleep(0)
                await asyncio.sleep(0)
            else:
                await asyncio.wait([yielded], timeout=TIMEOUT)
            yielded = coro.send(None)
        except StopIteration as done:
            return done.value


async def stat_inline(
    context: Any, backend: str, cached: bool, *args: Any, **kwargs: Any,
) -> Any:
    """context.stat(*args, **kwargs), asserting it ran inline where it must
    (stat_cached on) and through a worker where it must (thread_aio, off)."""
    inline, got = run_without_suspending(context.stat(*args, **kwargs))
    if cached:
        assert inline, "a cached stat suspended"
    elif backend == "thread":
        assert not inline, "stat_cached=False answered inline"
    return got if inline else await finish(got)


async def test_stat_cached_same_as_os(
    backend: str, stat_cached: bool, stat_context: Any, tmp_path: Path, dir_fd: int,
) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "f").write_bytes(b"x" * 5000)
    os.symlink("d/f", tmp_path / "link")
    (tmp_path / "f").write_bytes(b"")
    for _ in range(2):
        for path in (tmp_path, directory, directory / "f", str(directory / "f").encode()):
            got = await stat_inline(stat_context, backend, stat_cached, path)
            assert_same_stat(got, os.stat(path))
        link = tmp_path / "link"
        assert_same_stat(
            await stat_inline(stat_context, backend, stat_cached, link, follow_symlinks=False),
            os.stat(link, follow_symlinks=False),
        )
        assert_same_stat(
            await stat_inline(stat_context, backend, stat_cached, "f", dir_fd=dir_fd),
            os.stat("f", dir_fd=dir_fd),
        )
        # Following a symlink may have to update its atime, which a cached
        # lookup refuses (then a worker does it): the answer is the same.
        assert_same_stat(await wait(stat_context.stat(link)), os.stat(link))
        fd = os.open(directory / "f", os.O_RDONLY)
        try:
            got = await stat_inline(stat_context, backend, stat_cached, fd)
            assert_same_stat(got, os.fstat(fd))
        finally:
            os.close(fd)


async def test_stat_cached_errors(stat_context: Any, tmp_path: Path, closed_fd: int) -> None:
    (tmp_path / "file").write_bytes(b"")
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    cases: list[tuple[Any, dict[str, Any]]] = [
        (tmp_path / "missing", {}),
        (tmp_path / "missing" / "deeper", {}),
        (tmp_path / "file" / "x", {}),
        (tmp_path / "loop1", {}),
        (tmp_path / "loop1" / "x", {"follow_symlinks": False}),
        (tmp_path / ("n" * 300), {}),
        ("", {}),
    ]
    for _ in range(2):  # the second time every component is cached
        for path, kwargs in cases:
            await assert_same_error(stat_context.stat(path, **kwargs), os.stat, path, **kwargs)
        await assert_same_error(stat_context.fstat(closed_fd), os.fstat, closed_fd)
    # A symlink loop is a symlink when not followed.
    assert_same_stat(
        await wait(stat_context.stat(tmp_path / "loop1", follow_symlinks=False)),
        os.stat(tmp_path / "loop1", follow_symlinks=False),
    )


def drop_dentries() -> bool:
    try:
        with open("/proc/sys/vm/drop_caches", "w") as control:
            control.write("2\n")
    except OSError:
        return False
    return True


async def test_stat_not_cached_falls_back(
    backend: str, stat_cached: bool, stat_context: Any, tmp_path: Path,
) -> None:
    """A path whose dentries were dropped is looked up by the slow path
    (thread_aio: a worker, so the coroutine suspends) with the same answer."""
    deep = tmp_path / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    (deep / "f").write_bytes(b"data")
    expected = os.stat(deep / "f")
    if not drop_dentries():
        pytest.skip("cannot drop the dentry cache (needs root)")
    inline, got = run_without_suspending(stat_context.stat(deep / "f"))
    if backend == "thread":
        assert not inline, "a stat of an uncached path did not go to a worker"
    assert_same_stat(got if inline else await finish(got), expected)
    # Now cached again: inline where there is the path.
    assert_same_stat(await stat_inline(stat_context, backend, stat_cached, deep / "f"), expected)


async def test_stat_cached_deferred(backend: str, context_factory: Any, tmp_path: Path) -> None:
    """deferred=True: even an inline stat gives the loop one turn."""
    context = context_factory(deferred=True)
    inline, got = run_without_suspending(context.stat(tmp_path))
    assert not inline
    assert_same_stat(await finish(got), os.stat(tmp_path))


def test_stat_cached_is_a_kernel_feature(backend: str, backend_module: Any) -> None:
    """Contexts with the inline stat path list "stat_cached" among the
    kernel features they found, unless a kernel profile hides it."""
    from caio import _features

    if backend not in STAT_CACHED:
        pytest.skip("no inline stat path on this backend")
    with backend_module.Context() as low:
        found = "stat_cached" in low._kernel_features
    assert found is (kernel_at_least(5, 12) and not _features.lacks("stat_cached"))
