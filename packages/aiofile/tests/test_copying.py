"""aiofile.copyfile / aiofile.copy against shutil's results and errors,
under asyncio and under Trio (``library``: each test runs a whole program
with ``asyncio.run`` or ``trio.run``)."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import aiofile
from aiofile import copying

TIMEOUT = 30.0
Run = Callable[..., Any]  # the run fixture: a whole program under the library


@pytest.fixture(params=["asyncio", "trio"])
def library(request: pytest.FixtureRequest) -> str:
    if request.param == "trio":
        pytest.importorskip("trio")
    return request.param  # type: ignore[no-any-return]


def run_in(
    library: str, main: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any,
) -> Any:
    """``main(*args, **kwargs)`` as a whole program under ``library``."""
    if kwargs:
        main = partial(main, **kwargs)
    if library == "trio":
        import trio

        return trio.run(main, *args)
    return asyncio.run(main(*args))  # type: ignore[arg-type]


@pytest.fixture
def run(library: str) -> Callable[..., Any]:
    return partial(run_in, library)


@pytest.fixture
def small_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many ranges and steps on a small file: the same code paths a gigabyte
    # takes, in milliseconds.
    monkeypatch.setattr(copying, "STEP", 16 * 1024)
    monkeypatch.setattr(copying, "BUFFER", 4096)


STEP = 16 * 1024  # small_jobs' step


@pytest.mark.parametrize(
    "size", [0, 1, 4095, STEP - 1, STEP, STEP + 1, 3 * STEP, 3 * STEP + 1, 1_000_003],
)
def test_copyfile_is_byte_exact(run: Run, tmp_path: Path, small_jobs: None, size: int) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = os.urandom(size)
    src.write_bytes(data)
    dst.write_bytes(b"x" * (size + 5000))  # longer: replaced, not patched
    assert run(aiofile.copyfile, src, dst) == dst
    assert dst.read_bytes() == data


@pytest.mark.parametrize("extra", [-1, 0, 1, copying.STEP + 1])
def test_copyfile_is_byte_exact_around_the_real_step(
    tmp_path: Path, extra: int,
) -> None:
    # The step the copies really use: a call that ends exactly at the end
    # of the file, one byte before it and one after.
    src, dst = tmp_path / "src", tmp_path / "dst"
    size = copying.STEP + extra
    block = os.urandom(1 << 20)
    with open(src, "wb") as out:
        for i in range(size >> 20):
            out.write(i.to_bytes(4, "little") + block[4:])
        out.write(block[: size & ((1 << 20) - 1)])
    asyncio.run(aiofile.copyfile(src, dst))
    assert dst.stat().st_size == size
    assert dst.read_bytes() == src.read_bytes()


def test_sparse_file_copies_byte_exact(run: Run, tmp_path: Path, small_jobs: None) -> None:
    # Holes read as zeros: the copy has the same bytes and the same size,
    # the trailing hole included.
    src, dst = tmp_path / "src", tmp_path / "dst"
    with open(src, "wb") as out:
        out.write(b"head")
        out.seek(5 * STEP + 3)
        out.write(b"middle")
        out.truncate(9 * STEP + 7)
    run(aiofile.copyfile, src, dst)
    assert dst.stat().st_size == 9 * STEP + 7
    assert dst.read_bytes() == src.read_bytes()


class CountingExecutor(ThreadPoolExecutor):
    """A real thread pool that counts the calls handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.calls = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return super().submit(fn, *args, **kwargs)


def test_a_copy_is_one_call_on_one_worker(tmp_path: Path) -> None:
    # Each hand-over to a worker and back costs two wake-ups: the checks,
    # the opens, the data (one range, however big the file) and the closes
    # are one call, and copy's copymode goes with them.
    src = tmp_path / "src"
    data = os.urandom(3 * copying.STEP // 2)
    src.write_bytes(data)
    src.chmod(0o640)

    async def main() -> list[int]:
        pool = CountingExecutor()
        asyncio.get_running_loop().set_default_executor(pool)
        counts = []
        await aiofile.copyfile(src, tmp_path / "one")
        counts.append(pool.calls)
        await aiofile.copy(src, tmp_path / "two")
        counts.append(pool.calls)
        return counts

    assert asyncio.run(main()) == [1, 2]
    assert (tmp_path / "one").read_bytes() == (tmp_path / "two").read_bytes() == data
    assert stat.S_IMODE((tmp_path / "two").stat().st_mode) == 0o640


def fs_type(path: Path) -> str | None:
    return copying._fs_type(os.stat(path).st_dev)


def test_fs_type_names_the_filesystem(tmp_path: Path) -> None:
    assert fs_type(Path("/proc")) == "proc"
    if Path("/dev/shm").is_dir() and os.statvfs("/dev/shm").f_fsid != os.statvfs("/").f_fsid:
        assert fs_type(Path("/dev/shm")) == "tmpfs"
    assert copying._fs_type(os.makedev(4095, 1048575)) is None  # no such mount


def mount(fstype: str, point: Path) -> None:
    done = subprocess.run(
        ["mount", "-t", fstype, "-o", "size=1m", fstype, str(point)],
        capture_output=True, check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount {fstype} here: {done.stderr.decode().strip()}")


def test_fs_type_follows_the_mount_table(tmp_path: Path) -> None:
    """Answers are kept, but not past a change of the mount table: a
    device number freed by an unmount goes to the next filesystem mounted
    (here usually the very same number), whose type is another."""
    point = tmp_path / "point"
    point.mkdir()
    mount("tmpfs", point)
    try:
        assert fs_type(point) == fs_type(point) == "tmpfs"
    finally:
        subprocess.run(["umount", str(point)], check=True)
    mount("ramfs", point)
    try:
        assert fs_type(point) == "ramfs"
    finally:
        subprocess.run(["umount", str(point)], check=True)
    assert fs_type(tmp_path) == fs_type(tmp_path) is not None


def test_fs_type_keeps_few_answers() -> None:
    for minor in range(3 * copying._MountTypes.KEPT):
        assert copying._fs_type(os.makedev(4095, minor)) is None  # no such mount
    assert 0 < len(copying._mount_types.types) <= copying._MountTypes.KEPT


def test_fs_type_in_a_child_forked_while_another_thread_asked(tmp_path: Path) -> None:
    """The child does not inherit a lock held by a thread it lacks, nor the
    parent's descriptor (whose polls would take the child's changes)."""
    expected = fs_type(tmp_path)
    inherited = copying._mount_types
    with inherited.lock:  # as a thread asking while the parent forks
        pid = os.fork()
        if pid == 0:  # the child: exit 0 with the right answer, soon
            signal.alarm(10)
            ok = fs_type(tmp_path) == expected and copying._mount_types is not inherited
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert fs_type(tmp_path) == expected  # the parent's, untouched


def test_preallocates_on_ext4_only(tmp_path: Path, small_jobs: None) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(STEP + 1))
    with open(src, "rb") as a, open(dst, "wb") as b:
        allocated = copying._preallocate(a.fileno(), b.fileno())
        if fs_type(tmp_path) == "ext4":
            # Size set and blocks allocated before any byte is copied.
            assert allocated == STEP + 1 == os.fstat(b.fileno()).st_size
            assert os.fstat(b.fileno()).st_blocks * 512 >= STEP + 1
        else:
            assert allocated == 0 == os.fstat(b.fileno()).st_size
    (tmp_path / "small").write_bytes(b"s" * (STEP - 1))  # below one step: not worth it
    with open(tmp_path / "small", "rb") as a, open(dst, "wb") as b:
        assert copying._preallocate(a.fileno(), b.fileno()) == 0
    with open(src, "rb") as a, open("/dev/null", "wb") as b:  # not a regular file
        assert copying._preallocate(a.fileno(), b.fileno()) == 0


def test_a_cancelled_copy_keeps_only_what_it_copied(
    library: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Preallocation (ext4) sets the size at once: a copy that ends short
    # must leave the bytes it copied and nothing after them, not the
    # source's size in zeros. 16 384 steps: still copying when cancelled.
    monkeypatch.setattr(copying, "STEP", 4096)
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = os.urandom(64 << 20)
    src.write_bytes(data)

    async def main() -> bool:
        return await run_and_cancel(
            library, partial(aiofile.copyfile, src, dst), lambda: dst.exists(),
        )

    assert run_in(library, main)
    got = dst.read_bytes()
    assert len(got) < len(data)
    assert got == data[: len(got)]


def test_copyfile_returns_dst_as_given(run: Run, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    for dst in (str(tmp_path / "s"), os.fsencode(tmp_path / "b"), tmp_path / "p"):
        assert run(aiofile.copyfile, str(src), dst) is dst
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


def test_copyfile_across_filesystems(
    run: Run, tmp_path: Path, other_filesystem: Path, small_jobs: None,
) -> None:
    data = os.urandom(300_001)
    src = tmp_path / "src"
    src.write_bytes(data)
    there = other_filesystem / "dst"
    run(aiofile.copyfile, src, there)
    assert there.read_bytes() == data
    back = tmp_path / "back"
    run(aiofile.copyfile, there, back)
    assert back.read_bytes() == data
    # Onto a longer file there: sendfile writes where the file position is,
    # which must be the start of the (truncated) file.
    (other_filesystem / "long").write_bytes(b"y" * 400_000)
    run(aiofile.copyfile, src, other_filesystem / "long")
    assert (other_filesystem / "long").read_bytes() == data


@pytest.mark.parametrize("size", [0, STEP, 2 * STEP + 1])
def test_copyfile_across_filesystems_at_step_boundaries(
    run: Run, tmp_path: Path, other_filesystem: Path, small_jobs: None, size: int,
) -> None:
    data = os.urandom(size)
    src = tmp_path / "src"
    src.write_bytes(data)
    run(aiofile.copyfile, src, other_filesystem / "dst")
    assert (other_filesystem / "dst").read_bytes() == data


def test_copyfile_from_a_special_file_copies_to_its_end(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # /proc files report size 0: the copy goes on until the end anyway.
    # This one refuses copy_file_range and sendfile, so the pread/pwrite
    # loop copies it, in buffers of 7 bytes: many, none aligned.
    environ = Path("/proc/self/environ").read_bytes()
    if len(environ) < 100:
        pytest.skip("too small an environment")
    monkeypatch.setattr(copying, "BUFFER", 7)
    dst = tmp_path / "dst"
    dst.write_bytes(b"z" * (len(environ) + 10))
    run(aiofile.copyfile, "/proc/self/environ", dst)
    assert dst.read_bytes() == environ
    run(aiofile.copyfile, "/proc/self/status", dst)
    assert dst.read_text().startswith("Name:")


def same_error(
    run: Callable[..., Any], call: Any, expected: type[BaseException], *args: Any,
) -> BaseException:
    with pytest.raises(expected) as ours:
        run(call, *args)
    return ours.value


@pytest.mark.parametrize("how", ["same path", "hard link", "symlink"])
def test_same_file_is_refused_and_untouched(run: Run, tmp_path: Path, how: str) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"keep me")
    dst = {"same path": src, "hard link": tmp_path / "hard", "symlink": tmp_path / "soft"}[how]
    if how == "hard link":
        os.link(src, dst)
    elif how == "symlink":
        dst.symlink_to(src)
    with pytest.raises(shutil.SameFileError):
        shutil.copyfile(src, dst)
    same_error(run, aiofile.copyfile, shutil.SameFileError, src, dst)
    assert src.read_bytes() == b"keep me"


def test_errors_match_shutil(run: Run, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError) as theirs:
        shutil.copyfile(missing, tmp_path / "x")
    ours = same_error(run, aiofile.copyfile, FileNotFoundError, missing, tmp_path / "x")
    assert (ours.errno, ours.filename) == (theirs.value.errno, theirs.value.filename)  # type: ignore[attr-defined]

    src = tmp_path / "src"
    src.write_bytes(b"data")
    ours = same_error(run, aiofile.copyfile, IsADirectoryError, src, tmp_path)
    assert ours.errno == errno.EISDIR  # type: ignore[attr-defined]
    ours = same_error(run, aiofile.copyfile, NotADirectoryError, src, src / "below")
    assert ours.errno == errno.ENOTDIR  # type: ignore[attr-defined]

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(shutil.SpecialFileError):
        shutil.copyfile(fifo, tmp_path / "y")
    same_error(run, aiofile.copyfile, shutil.SpecialFileError, fifo, tmp_path / "y")
    assert not (tmp_path / "y").exists()


def test_follow_symlinks_false_copies_the_link(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"t")
    link = tmp_path / "link"
    link.symlink_to("target")
    run(aiofile.copyfile, link, tmp_path / "copy", follow_symlinks=False)
    assert os.readlink(tmp_path / "copy") == "target"
    run(aiofile.copyfile, link, tmp_path / "followed")
    assert not (tmp_path / "followed").is_symlink()
    assert (tmp_path / "followed").read_bytes() == b"t"


def test_copy_into_a_directory_with_mode(run: Run, tmp_path: Path) -> None:
    src = tmp_path / "tool.sh"
    src.write_bytes(b"#!/bin/sh\n")
    src.chmod(0o751)
    into = tmp_path / "bin"
    into.mkdir()
    ours = run(aiofile.copy, src, into)
    theirs = shutil.copy(src, tmp_path / "ref")
    assert Path(ours) == into / "tool.sh"
    assert Path(ours).read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(os.stat(ours).st_mode) == stat.S_IMODE(os.stat(theirs).st_mode) == 0o751


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def sleep(seconds: float) -> None:
    """The running library's sleep."""
    if copying_under_trio():
        import trio

        await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


def copying_under_trio() -> bool:
    from aiofile._running import running_loop

    return running_loop() is None


async def run_and_cancel(library: str, copy: Callable[[], Awaitable[Any]],
                         when: Callable[[], bool]) -> bool:
    """Run ``copy()`` until ``when()`` is true, then cancel it the running
    library's way; returns whether it was still running then."""
    deadline = time.monotonic() + TIMEOUT
    if library == "trio":
        import trio

        finished = False
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                async def watch() -> None:
                    while not when() and time.monotonic() < deadline:
                        await trio.sleep(0.001)
                    scope.cancel()

                nursery.start_soon(watch)
                await copy()
                finished = True
        assert scope.cancelled_caught or finished
        return not finished
    task = asyncio.ensure_future(copy())
    while not when() and not task.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    running = not task.done()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        assert running
    return running


def test_cancelled_copy_closes_everything_after_the_workers(
    library: str, tmp_path: Path, small_jobs: None,
) -> None:
    # /dev/zero never ends (a character device of size 0, refused by
    # copy_file_range: the sendfile way): the copy is surely running when
    # it is cancelled.
    dst = tmp_path / "dst"

    async def main() -> None:
        before = fd_count()
        running = await run_and_cancel(
            library, partial(aiofile.copyfile, "/dev/zero", dst),
            lambda: dst.exists() and dst.stat().st_size >= 256 * 1024,
        )
        assert running
        # Not one descriptor left behind, and no worker still writes.
        assert fd_count() == before
        size = dst.stat().st_size
        await sleep(0.05)
        assert dst.stat().st_size == size >= 256 * 1024
        assert dst.read_bytes() == bytes(size)

    run_in(library, main)


def test_cancelling_waits_for_the_workers_then_closes(
    library: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The worker held in its copy (as in a long system call) when the copy
    # is cancelled: the copy waits for it with both descriptors open, they
    # are closed once it returned, and the worker copies nothing more.
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(100_000))
    entered, release = threading.Event(), threading.Event()
    real = copying._copy_data

    def held(*args: Any) -> None:
        entered.set()
        release.wait(TIMEOUT)
        real(*args)

    monkeypatch.setattr(copying, "_copy_data", held)

    async def main() -> tuple[int, bool, int]:
        before = fd_count()
        try:
            if library == "trio":
                import trio

                finished = False
                scope = trio.CancelScope()

                async def copy() -> None:
                    nonlocal finished
                    with scope:
                        await aiofile.copyfile(src, dst)
                    finished = True

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(copy)
                    while not entered.is_set():
                        await trio.sleep(0.001)
                    scope.cancel()
                    await trio.sleep(0.05)
                    still_open, ended = fd_count() - before, finished
                    release.set()
                assert scope.cancelled_caught
            else:
                task = asyncio.ensure_future(aiofile.copyfile(src, dst))
                while not entered.is_set():
                    await asyncio.sleep(0.001)
                task.cancel()
                await asyncio.sleep(0.05)
                still_open, ended = fd_count() - before, task.done()
                release.set()
                with pytest.raises(asyncio.CancelledError):
                    await task
        finally:
            release.set()
        return still_open, ended, fd_count() - before

    still_open, ended, left_open = run_in(library, main)
    assert (still_open, ended, left_open) == (2, False, 0)
    assert dst.stat().st_size == 0


def test_a_copy_cancelled_at_once_gives_its_descriptors_back(
    library: str, tmp_path: Path,
) -> None:
    # Cancelled before or while its worker opens: the worker still closes
    # what it opened, and nothing is copied after the cancellation.
    dst = tmp_path / "dst"

    async def main() -> None:
        before = fd_count()
        copy_it = partial(aiofile.copyfile, "/dev/zero", dst)
        if library == "trio":
            import trio

            with trio.CancelScope() as scope:
                scope.cancel()  # the worker starts, the wait is cancelled
                await copy_it()
            assert scope.cancelled_caught
        else:
            task = asyncio.ensure_future(copy_it())
            await asyncio.sleep(0)  # the worker starts
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert fd_count() == before
        size = dst.stat().st_size if dst.exists() else 0
        await sleep(0.05)
        assert (dst.stat().st_size if dst.exists() else 0) == size

    run_in(library, main)


def test_copyfile_leaves_the_loop_running(library: str, tmp_path: Path,
                                          small_jobs: None) -> None:
    dst = tmp_path / "dst"

    async def main() -> int:
        ticks = 0

        def ticked() -> bool:
            nonlocal ticks
            ticks += 1
            return ticks >= 100 and dst.exists() and dst.stat().st_size > 0

        # The loop keeps running other tasks (here: the watcher, 100 times
        # and more) while the worker copies: the copy never ends by itself.
        assert await run_and_cancel(library, partial(aiofile.copyfile, "/dev/zero", dst), ticked)
        return ticks

    assert run_in(library, main) >= 100
    assert dst.stat().st_size > 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_under_anyio(backend: str, tmp_path: Path, small_jobs: None) -> None:
    anyio = pytest.importorskip("anyio")
    if backend == "trio":
        pytest.importorskip("trio")
    src = tmp_path / "src"
    data = os.urandom(300_001)
    src.write_bytes(data)
    (tmp_path / "into").mkdir()

    async def main() -> tuple[Any, int, int]:
        copied = await aiofile.copy(src, tmp_path / "into")
        before = fd_count()
        with anyio.move_on_after(0.05) as scope:
            await aiofile.copyfile("/dev/zero", tmp_path / "zeros")
        assert scope.cancel_called
        return copied, before, fd_count()

    copied, before, after = anyio.run(main, backend=backend)
    assert Path(copied) == tmp_path / "into" / "src"
    assert Path(copied).read_bytes() == data
    assert after == before
    size = (tmp_path / "zeros").stat().st_size
    time.sleep(0.05)
    assert (tmp_path / "zeros").stat().st_size == size
