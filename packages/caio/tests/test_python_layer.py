"""caio's Python layer: the pure-Python backend's protocol, the one backend
map, the one registry of open contexts and what happens to them at exit."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import caio
from caio import python_aio
from caio._backends import BACKENDS
from caio._registry import live
from caio.python_aio import Context

NO_FACTORY = "set_future_factory() must be called before the *_async methods"
OUT_OF_RANGE = "max_requests must be between 1 and 65536 (0 or None: the default)"


@pytest.mark.parametrize(("given", "used"), [(None, 512), (0, 512), (1, 1), (65536, 65536)])
def test_max_requests_accepted(given: Any, used: int) -> None:
    context = Context(given)
    try:
        assert context.max_requests == used
    finally:
        context.close()


@pytest.mark.parametrize("given", [-1, 65537, 2**70])
def test_max_requests_out_of_range(given: int) -> None:
    with pytest.raises(ValueError) as info:
        Context(given)
    assert str(info.value) == OUT_OF_RANGE


@pytest.mark.parametrize("given", ["8", 8.0, b"8"])
def test_max_requests_not_an_int(given: Any) -> None:
    with pytest.raises(TypeError):
        Context(given)


def test_max_requests_zero_is_the_default_for_every_adapter(backend: str) -> None:
    adapter = getattr(caio, BACKENDS[backend] + "_asyncio")
    context = adapter.AsyncioContext(max_requests=0)
    try:
        assert context.max_requests == adapter.AsyncioContext.MAX_REQUESTS_DEFAULT
    finally:
        context.close()


@pytest.mark.parametrize("method", ["read_async", "write_async", "fsync_async", "fdsync_async"])
def test_async_methods_need_a_future_factory(fd: int, method: str) -> None:
    os.pwrite(fd, b"cached", 0)  # a read would be a page-cache hit
    args = {
        "read_async": (6, fd, 0), "write_async": (b"new data", fd, 0),
        "fsync_async": (fd,), "fdsync_async": (fd,),
    }[method]
    context = Context()
    try:
        with pytest.raises(RuntimeError) as info:
            getattr(context, method)(*args)
        assert str(info.value) == NO_FACTORY
        assert context._pool.threads == []  # nothing was queued either
    finally:
        context.close()
    assert os.pread(fd, 100, 0) == b"cached"


def test_closed_context_without_factory_says_closed(fd: int) -> None:
    context = Context()
    context.close()
    with pytest.raises(ValueError, match="closed"):
        context.read_async(1, fd, 0)
    # A factory set after close() does not make the context usable again.
    context.set_future_factory(lambda: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="closed"):
        context.read_async(1, fd, 0)


def test_set_future_factory_takes_call_soon(fd: int, event_loop: Any) -> None:
    context = Context()
    try:
        with pytest.raises(TypeError):
            context.set_future_factory(None)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            context.set_future_factory(event_loop.create_future, 42)  # type: ignore[arg-type]
        context.set_future_factory(event_loop.create_future, event_loop.call_soon)

        async def roundtrip() -> bytes:
            written = context.write_async(b"protocol", fd, 0)
            assert await written == 8  # type: ignore[misc]
            result = context.read_async(8, fd, 0)
            return result if isinstance(result, bytes) else await result

        event_loop.add_reader(context.fileno, context.process_events)
        try:
            assert event_loop.run_until_complete(roundtrip()) == b"protocol"
        finally:
            event_loop.remove_reader(context.fileno)
    finally:
        context.close()


def test_adapter_passes_the_loops_call_soon(event_loop: Any) -> None:
    seen: list[tuple[Any, ...]] = []

    class Recording(Context):
        def set_future_factory(self, *args: Any) -> None:
            seen.append(args)
            super().set_future_factory(*args)

    class Adapter(caio.AsyncioContextBase):
        CONTEXT_CLASS = Recording
        OPERATION_CLASS = python_aio.Operation

    context = Adapter(loop=event_loop)
    context.close()
    [(factory, call_soon)] = seen
    assert call_soon == event_loop.call_soon
    # The loop's futures (on a stock loop made without its create_future
    # method: see test_futures_come_from_the_loop).
    future = factory()
    assert asyncio.isfuture(future) and future.get_loop() is event_loop
    assert future.cancel() and future.cancelled()


def test_one_registry_holds_adapters_and_python_contexts(event_loop: Any) -> None:
    adapter = caio.python_aio_asyncio.AsyncioContext(loop=event_loop)
    assert adapter in live
    assert adapter.context in live
    assert python_aio._live is live
    adapter.close()
    assert adapter not in live
    assert adapter.context not in live


def test_backend_map_is_the_selection_order() -> None:
    assert list(BACKENDS) == ["uring", "linux", "thread", "python"]
    importable = [m for m in BACKENDS.values() if getattr(caio, m) is not None]
    assert [module.__name__ for module in caio.variants] == [f"caio.{m}" for m in importable]


def test_python_aio_names_stay_importable() -> None:
    assert python_aio.MAX_RW_COUNT == caio.MAX_IO_SIZE
    for name in python_aio.__all__:
        assert getattr(python_aio, name) is not None
    assert python_aio.Operation.__module__ == "caio.python_aio"
    assert python_aio.Context.__module__ == "caio.python_aio"


def run_script(script: str, backend: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIO_")}
    env["CAIO_IMPL"] = backend
    return subprocess.run(
        [sys.executable, "-X", "dev", "-c", textwrap.dedent(script), str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )


# Left open under asyncio.run(): reads that wait on a pipe nobody writes,
# and writes. asyncio.run cancels the waiting tasks; the exit hook closes the
# contexts; nothing may be printed.
LEFT_OPEN_ASYNCIO = """
    import asyncio, os, sys
    import caio

    r, w = os.pipe()
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)

    async def main():
        for _ in range(3):
            context = caio.AsyncioContext(max_requests=2)
            for _ in range(3):
                asyncio.ensure_future(context.read(10, r, 0))
            for i in range(3):
                asyncio.ensure_future(context.write(b"x" * 4096, fd, 4096 * i))
        await asyncio.sleep(0.05)

    asyncio.run(main())
    print("done")
"""

# caio 0.12 API, left open with reads waiting on a pipe: the exit hook must
# end them (callbacks get -ECANCELED) instead of leaving workers behind.
LEFT_OPEN_RAW = """
    import os, caio
    r, w = os.pipe()
    context = caio.Context(max_requests=2)
    ops = [caio.Operation.read(10, r, 0) for _ in range(3)]
    for op in ops:
        # One write per line: callbacks run in several workers at once.
        op.set_callback(lambda result: os.write(1, b"callback %d\\n" % result))
    context.submit(*ops)
    print("done", flush=True)
"""


def test_contexts_left_open_under_asyncio_run_exit_quietly(
    backend: str, tmp_path: Path,
) -> None:
    if backend == "linux":
        pytest.skip("kernel AIO refuses reads that would wait on a pipe")
    proc = run_script(LEFT_OPEN_ASYNCIO, backend, tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "done\n", "")


def test_python_contexts_left_open_are_closed_at_exit(tmp_path: Path) -> None:
    proc = run_script(LEFT_OPEN_RAW, "python", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0] == "done"
    assert sorted(lines[1:]) == [f"callback {-errno.ECANCELED}"] * 3


# Python 3.12+ warns about fork() in a threaded process; the child here only
# calls into caio and exits.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_generation_is_the_python_backends_counter(fd: int) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    context = Context()
    context.set_future_factory(asyncio.Future)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its status
        code = 1
        try:
            try:
                context.read_async(1, fd, 0)
            except RuntimeError as exc:
                code = 0 if "another process" in str(exc) else 2
            if caio.fork_generation() != 1 + context._made_in:
                code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    context.close()
    assert os.waitstatus_to_exitcode(status) == 0
