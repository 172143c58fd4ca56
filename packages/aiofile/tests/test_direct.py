"""``AIOFile(direct=True)`` and ``async_open(..., direct=True)`` on every
backend: any offset and length, against a reference bytearray, on a
filesystem that does O_DIRECT (the root one here, not tmpfs)."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import caio
from aiofile import AIOFile, Writer, async_open, clone

pytestmark = pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT here")

BACKEND_MODULES = [
    pytest.param(module, id=module.__name__.rsplit(".", 1)[-1].replace("_asyncio", ""))
    for module in caio.variants_asyncio
]
HANG = 30.0


def o_direct_works(directory: Path) -> bool:
    try:
        fd = os.open(directory / ".probe", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    os.unlink(directory / ".probe")
    return True


@pytest.fixture(scope="module")
def disk_dir() -> Iterator[Path]:
    """A directory on a filesystem that does O_DIRECT: under the system's
    temporary directory if that is a disk, else under /var/tmp."""
    for parent in (tempfile.gettempdir(), "/var/tmp"):
        if os.path.isdir(parent) and o_direct_works(Path(parent)):
            made = Path(tempfile.mkdtemp(dir=parent, prefix="aiofile-direct-"))
            yield made
            shutil.rmtree(made, ignore_errors=True)
            return
    pytest.skip("no filesystem here does O_DIRECT")


@pytest.fixture
def path(disk_dir: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    made = disk_dir / f"{request.node.name.replace('/', '_')}.bin"
    yield made
    made.unlink(missing_ok=True)


writes = st.lists(
    st.tuples(st.integers(0, 20_000), st.binary(min_size=0, max_size=9000)),
    min_size=1, max_size=8,
)
reads = st.lists(st.tuples(st.integers(0, 30_000), st.integers(0, 10_000)), max_size=6)


@pytest.mark.parametrize("module", [None, *BACKEND_MODULES])
@settings(
    max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(initial=st.binary(max_size=10_000), ops=writes, probes=reads)
def test_any_offset_and_length(
    module: Any, path: Path, initial: bytes, ops: list[tuple[int, bytes]],
    probes: list[tuple[int, int]],
) -> None:
    path.write_bytes(initial)
    model = bytearray(initial)

    async def session() -> None:
        context = None if module is None else module.AsyncioContext()
        async with AIOFile(path, "r+b", context=context, direct=True) as afp:
            assert afp.direct
            for offset, data in ops:
                assert await afp.write(data, offset) == len(data)
                if data and offset > len(model):  # an empty write extends nothing
                    model.extend(bytes(offset - len(model)))
                model[offset:offset + len(data)] = data
                assert os.fstat(afp.fileno()).st_size == len(model)
            for offset, size in probes:
                assert await afp.read(size, offset) == bytes(model[offset:offset + size])
            assert await afp.read() == bytes(model)

    # A fresh loop per example: hypothesis examples are sync.
    asyncio.run(asyncio.wait_for(session(), HANG))
    assert path.read_bytes() == bytes(model)


async def test_concurrent_writes_to_one_block_lose_nothing(context: Any, path: Path) -> None:
    # 200 tasks write 10 bytes each into the same few blocks at once; every
    # read-modify-write would write back its neighbours' old bytes without
    # the lock. Whole-block writes run beside them.
    path.write_bytes(b"\0" * 4096)
    pieces = [(i * 10, bytes([65 + i % 26]) * 10) for i in range(200)]
    block = os.urandom(4096)

    async with AIOFile(path, "r+b", context=context, direct=True) as afp:
        jobs = [afp.write(data, offset) for offset, data in pieces]
        jobs.append(afp.write(block, 8192))
        assert sorted(await asyncio.gather(*jobs)) == sorted([10] * 200 + [4096])
    expected = bytearray(b"\0" * 4096)
    for offset, data in pieces:
        expected[offset:offset + 10] = data
    expected.extend(b"\0" * (8192 - len(expected)))
    assert path.read_bytes() == bytes(expected) + block


async def test_appends_and_extension(context: Any, path: Path) -> None:
    path.write_bytes(b"start")
    async with async_open(path, "ab", context=context, direct=True) as f:
        assert await f.write(b"-one") == 4
        assert f.tell() == 9
        big = bytes(range(256)) * 40  # crosses blocks, unaligned end
        assert await f.write(big) == len(big)
        assert f.tell() == 9 + len(big)
    async with AIOFile(path, "ab", context=context, direct=True) as afp:
        writer = Writer(afp)
        for word in (b"x", b"yy", b"zzz"):
            await writer(word)
    assert path.read_bytes() == b"start-one" + bytes(range(256)) * 40 + b"xyyzzz"


async def test_text_mode_and_wrappers(context: Any, path: Path) -> None:
    text = "ünïcödé line\n" * 700
    async with async_open(path, "w+", context=context, direct=True) as f:
        assert await f.write(text) == len(text)
        f.seek(0)
        assert await f.read() == text
        f.seek(0)
        lines = [line async for line in f]
        assert lines == text.splitlines(keepends=True)
        async with clone(f) as g:
            assert await g.read(5) == text[:5]
        await f.file.truncate(10)
    assert path.read_bytes() == text.encode()[:10]


async def test_write_past_the_end_leaves_a_hole(context: Any, path: Path) -> None:
    async with AIOFile(path, "w+b", context=context, direct=True) as afp:
        assert await afp.write(b"tail", 10_000) == 4
        assert os.fstat(afp.fileno()).st_size == 10_004
        assert await afp.read(8, 9_998) == b"\0\0tail"
    assert path.read_bytes() == bytes(10_000) + b"tail"


async def test_from_fp(path: Path) -> None:
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    with os.fdopen(fd, "r+b", buffering=0) as fp:
        afp = AIOFile.from_fp(fp)  # O_DIRECT seen: handled as direct
        assert afp.direct
        assert await afp.write(b"ab", 3) == 2
        assert await afp.read(10, 0) == b"012ab56789"
    with open(path, "rb") as plain:
        with pytest.raises(ValueError, match="O_DIRECT"):
            AIOFile.from_fp(plain, direct=True)


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    """A fresh ramfs mount, which refuses O_DIRECT (tmpfs does it since
    Linux 6.6); skips where mounting is not permitted."""
    point = tmp_path / "ramfs"
    point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "ramfs", "ramfs", str(point)], capture_output=True, check=False,
    ) if shutil.which("mount") else None
    if done is None or done.returncode:
        pytest.skip("cannot mount a ramfs here")
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=False)


@pytest.mark.parametrize("mode", ["rb", "r+b", "wb", "xb", "a"])
async def test_refused_where_the_filesystem_has_no_o_direct(ramfs: Path, mode: str) -> None:
    target = ramfs / "file"
    if "r" in mode:
        target.write_bytes(b"kept")
    with pytest.raises(OSError) as info:
        async with async_open(target, mode, direct=True):
            pass
    assert info.value.errno == errno.EINVAL
    assert "O_DIRECT" in str(info.value) and str(target) in str(info.value)
    # Nothing is left behind: no new file, an old one untouched.
    if "r" in mode:
        assert target.read_bytes() == b"kept"
    else:
        assert not target.exists()


async def test_closed_file(path: Path) -> None:
    afp = AIOFile(path, "w+b", direct=True)
    await afp.open()
    await afp.close()
    with pytest.raises(ValueError):
        await afp.write(b"x", 1)
    with pytest.raises(ValueError):
        await afp.read(1, 0)


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_write_lock_order_and_cancellation(library: str) -> None:
    # The per-file lock of direct writes: shared holders run together, one
    # that holds it alone waits for them and blocks later comers, first come
    # first served; a waiter cancelled in the queue blocks nobody.
    from aiofile.direct import _SharedLock

    lock = _SharedLock()
    log: list[str] = []
    first = [("s1", False), ("s2", False)]
    later = [("x1", True), ("s3", False), ("x2", True), ("s4", False)]

    async def with_asyncio() -> list[str]:
        gate = asyncio.Event()

        async def hold(name: str, alone: bool) -> None:
            async with lock.hold(alone):
                log.append(f"+{name}")
                await gate.wait()
                log.append(f"-{name}")

        tasks = {name: asyncio.ensure_future(hold(name, alone)) for name, alone in first}
        await asyncio.sleep(0)
        for name, alone in later:
            tasks[name] = asyncio.ensure_future(hold(name, alone))
        await asyncio.sleep(0.01)
        before = list(log)
        tasks["x2"].cancel()  # queued: its place goes to s4
        gate.set()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        assert tasks["x2"].cancelled()
        return before

    async def with_trio() -> list[str]:
        import trio
        from trio.testing import wait_all_tasks_blocked

        gate = trio.Event()
        scopes: dict[str, trio.CancelScope] = {}

        async def hold(name: str, alone: bool) -> None:
            with trio.CancelScope() as scope:
                scopes[name] = scope
                async with lock.hold(alone):
                    log.append(f"+{name}")
                    await gate.wait()
                    log.append(f"-{name}")

        async with trio.open_nursery() as nursery:
            # One at a time: Trio does not promise to start tasks in order.
            for name, alone in first + later:
                nursery.start_soon(hold, name, alone)
                await wait_all_tasks_blocked()
            before = list(log)
            scopes["x2"].cancel()
            await wait_all_tasks_blocked()
            gate.set()
        assert scopes["x2"].cancelled_caught
        return before

    async def main() -> None:
        before = await (with_trio() if library == "trio" else with_asyncio())
        assert before == ["+s1", "+s2"]  # s3 waits behind x1 although it is shared
        at = log.index
        assert max(at("-s1"), at("-s2")) < at("+x1") < at("-x1") < min(at("+s3"), at("+s4"))
        assert "+x2" not in log and len(log) == 10
        async with lock.hold(alone=True):  # free again
            pass

    if library == "trio":
        trio = pytest.importorskip("trio")
        trio.run(main)
    else:
        asyncio.run(main())


async def test_lock_granted_then_cancelled_is_given_back() -> None:
    # The lock passes to a waiter that is cancelled before it runs again:
    # it gives the lock back instead of keeping it forever.
    from aiofile.direct import _SharedLock

    lock = _SharedLock()
    entered: list[str] = []

    async def wait_for_it() -> None:
        async with lock.hold(alone=True):
            entered.append("waiter")

    async with lock.hold(alone=True):
        task = asyncio.ensure_future(wait_for_it())
        await asyncio.sleep(0.01)  # queued behind us
    task.cancel()  # granted by our release, cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await task
    assert entered == []

    async def again() -> None:
        async with lock.hold(alone=True):  # free again
            entered.append("again")

    await asyncio.wait_for(again(), HANG)
    assert entered == ["again"]


TRIO_BACKENDS = [None, *(
    {"linux_uring": "uring", "linux_aio": "linux", "thread_aio": "thread",
     "python_aio": "python"}[module.__name__.rsplit(".", 1)[-1].replace("_asyncio", "")]
    for module in caio.variants_asyncio
)]


@pytest.mark.parametrize(("library", "backend"), [
    *(("trio", backend) for backend in TRIO_BACKENDS),
    ("anyio-trio", None), ("anyio-asyncio", None),
])
def test_under_trio_and_anyio(library: str, backend: str | None, path: Path) -> None:
    # The same lock, reads and writes in a Trio run (or AnyIO's, on either
    # backend): patching writes of one block at once, whole-block writes
    # beside them, appends, a truncate. ``backend``: a Trio context of it,
    # None: the run's default.
    anyio = pytest.importorskip("anyio")
    if library != "anyio-asyncio":
        pytest.importorskip("trio")
    from caio.trio_base import trio_context_class

    pieces = [(i * 10, bytes([65 + i % 26]) * 10) for i in range(100)]
    block = os.urandom(4096)
    path.write_bytes(b"\0" * 4096)

    async def main() -> tuple[bytes, int]:
        context = None if backend is None else trio_context_class(backend)()
        async with AIOFile(path, "r+b", context=context, direct=True) as afp:
            with anyio.fail_after(HANG):
                async with anyio.create_task_group() as group:
                    for offset, data in pieces:
                        group.start_soon(afp.write, data, offset)
                    group.start_soon(afp.write, block, 8192)
            head = await afp.read(1000, 0)
            await afp.truncate(8192 + 4096 + 5)
        async with async_open(path, "ab", context=context, direct=True) as f:
            assert await f.write(b"-tail") == 5
            assert f.tell() == 8192 + 4096 + 10
        if context is not None:
            context.close()
        return head, os.path.getsize(path)

    head, size = anyio.run(main, backend=library.removeprefix("anyio-"))
    expected = bytearray(b"\0" * 8192)
    for offset, data in pieces:
        expected[offset:offset + 10] = data
    assert head == bytes(expected[:1000])
    assert size == 8192 + 4096 + 10
    assert path.read_bytes() == bytes(expected) + block + b"\0" * 5 + b"-tail"


async def test_readinto_any_buffer(context: Any, path: Path) -> None:
    data = os.urandom(20_000)
    path.write_bytes(data)
    async with async_open(path, "rb", context=context, direct=True) as f:
        f.seek(3)
        target = bytearray(5000)
        assert await f.readinto(memoryview(target)[1:]) == 4999
        assert target[1:] == data[3:5002]
        assert await f.file.readinto(target, 19_990) == 10
        assert target[:10] == data[-10:]
