"""Code written for caio 0.12 runs here: the names, arguments and low-level
behaviour its documentation and users rely on, beyond the basic protocol.

Each test is a small program as a caio 0.12 user would write it; what stays
different on purpose is in docs/differences.md, not here. The backend
selection cases run ``python`` in a subprocess on a copy of the package.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import caio
from caio._backends import BACKENDS

TIMEOUT = 10.0


# ---- 1. caio.preferred, deferred=, max_requests=0 ------------------------------


def test_preferred_is_the_selected_backend() -> None:
    assert caio.preferred in caio.variants
    assert caio.preferred.Context is caio.Context
    assert caio.preferred.Operation is caio.Operation
    assert caio.preferred_asyncio in caio.variants_asyncio
    assert caio.preferred_asyncio.AsyncioContext is caio.AsyncioContext
    assert caio.preferred_asyncio.__name__ == caio.preferred.__name__ + "_asyncio"
    assert {"preferred", "preferred_asyncio"} <= set(dir(caio))


def test_preferred_follows_caio_impl() -> None:
    # A fresh interpreter: caio.asyncio_base is there without its own import.
    last = next(name for name in reversed(BACKENDS) if getattr(caio, BACKENDS[name]))
    code = (
        "import caio; print(caio.preferred.__name__, caio.preferred_asyncio.__name__, "
        "caio.asyncio_base.AsyncioContextBase.__name__)"
    )
    env = {**os.environ, "CAIO_IMPL": last}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout.split()
    assert out == [
        f"caio.{BACKENDS[last]}", f"caio.{BACKENDS[last]}_asyncio", "AsyncioContextBase",
    ]


async def _suspends(awaitable: Any) -> bool:
    """Whether awaiting ``awaitable`` let a callback scheduled now run."""
    ran: list[bool] = []
    asyncio.get_running_loop().call_soon(ran.append, True)
    await awaitable
    return bool(ran)


async def test_deferred_suspends_every_operation(
    context_factory: Any, fd: int,
) -> None:
    context = context_factory(deferred=True)
    assert context.deferred is True
    os.pwrite(fd, b"cached data", 0)
    await context.read(6, fd, 0)  # warm: the next read is a page-cache hit
    for _ in range(3):
        assert await _suspends(context.read(6, fd, 0))
    assert await _suspends(context.write(b"x", fd, 20))
    assert await _suspends(context.fsync(fd))
    assert await _suspends(context.fdsync(fd))
    assert await context.read(6, fd, 0) == b"cached"
    assert os.pread(fd, 100, 0) == b"cached data" + b"\0" * 9 + b"x"


async def test_deferred_lets_other_tasks_run(context_factory: Any, fd: int) -> None:
    # The fairness caio 0.12 gave: a loop of cached reads does not starve
    # another task.
    context = context_factory(deferred=True)
    os.pwrite(fd, b"y" * 4096, 0)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        for _ in range(20):
            assert await context.read(4096, fd, 0) == b"y" * 4096
    finally:
        task.cancel()
    assert ticks >= 19


async def test_deferred_cancellation(context_factory: Any, fd: int) -> None:
    context = context_factory(deferred=True)
    os.pwrite(fd, b"z" * 10, 0)
    task = asyncio.create_task(context.read(10, fd, 0))
    await asyncio.sleep(0)  # the task runs up to its suspension
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await context.read(10, fd, 0) == b"z" * 10  # the context still works


def test_deferred_is_positional_and_off_by_default(asyncio_module: Any) -> None:
    cls = asyncio_module.AsyncioContext
    on = cls(8, None, True)
    off = cls(8)
    try:
        assert on.deferred is True and off.deferred is False
        # Off, nothing is added per operation: the class's methods run.
        for name in ("read", "write", "fsync", "fdsync"):
            assert name not in vars(off)
            assert getattr(off, name).__func__ is getattr(cls, name)
    finally:
        on.close()
        off.close()


async def test_not_deferred_cached_read_does_not_suspend(context: Any, fd: int) -> None:
    os.pwrite(fd, b"warm", 0)
    await context.read(4, fd, 0)
    assert not await _suspends(context.read(4, fd, 0))


@pytest.mark.parametrize("given", [0, None])
def test_max_requests_zero_or_none_is_the_default(backend: str, given: Any) -> None:
    adapter = getattr(caio, BACKENDS[backend] + "_asyncio").AsyncioContext(given)
    try:
        assert adapter.max_requests == adapter.MAX_REQUESTS_DEFAULT
    finally:
        adapter.close()
    low = getattr(caio, BACKENDS[backend]).Context(given)
    try:
        assert low.max_requests == adapter.MAX_REQUESTS_DEFAULT
    finally:
        low.close()


# ---- 2. default_implementation, docstrings -----------------------------------


def _select_with_file(tmp_path: Path, text: str) -> tuple[str, str]:
    """(the selected Context's module, stderr) for a copy of caio whose
    default_implementation file holds ``text``."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(
        Path(caio.__file__).parent, root / "caio",
        ignore=shutil.ignore_patterns("__pycache__", "default_implementation"),
    )
    (root / "caio" / "default_implementation").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIO_")}
    env["PYTHONPATH"] = str(root)
    proc = subprocess.run(
        [sys.executable, "-c", "import caio; print(caio.Context.__module__, caio.__file__)"],
        env=env, cwd=root, capture_output=True, text=True, timeout=60, check=True,
    )
    module, where = proc.stdout.split()
    assert where.startswith(str(root))
    return module, proc.stderr


def test_unknown_file_line_is_skipped(tmp_path: Path) -> None:
    wanted = [n for n in BACKENDS if getattr(caio, BACKENDS[n])][-1]
    module, stderr = _select_with_file(
        tmp_path, f"# the fastest first\nfastest\n\n{wanted}\nuring\n",
    )
    assert module == f"caio.{BACKENDS[wanted]}"
    assert "RuntimeWarning" in stderr and "fastest" in stderr


def test_file_with_only_unknown_lines(tmp_path: Path) -> None:
    module, stderr = _select_with_file(tmp_path, "fast\nfaster\n")
    automatic = next(n for n in BACKENDS if getattr(caio, BACKENDS[n]))
    assert module == f"caio.{BACKENDS[automatic]}"
    assert stderr.count("RuntimeWarning") == 2  # one per line
    assert "(fast)" in stderr and "(faster)" in stderr


def test_context_docstring_names_its_backend(backend: str) -> None:
    module = getattr(caio, BACKENDS[backend])
    assert BACKENDS[backend] in (module.Context.__doc__ or "")


# ---- 3. the low-level extras -------------------------------------------------


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], TIMEOUT)[0])


_pipes: list[int] = []


@pytest.fixture(autouse=True)
def _close_pipes() -> Any:
    yield
    while _pipes:
        os.close(_pipes.pop())


def _held(module: Any, context: Any) -> tuple[Any, int, list[int]]:
    """An operation that stays in flight until released: (operation, the
    write end of a pipe to release it with, its results). The pools and
    io_uring wait in a read of an empty pipe until something is written to
    it; kernel AIO cannot wait on a pipe, but a write it has finished stays
    in flight until process_events() reaps it. Either way its result is 3."""
    r, w = os.pipe()
    _pipes.extend((r, w))
    if module is caio.linux_aio:
        op = module.Operation.write(b"abc", _file(), 0)
    else:
        op = module.Operation.read(3, r, 0, priority=0)
    results: list[int] = []
    op.set_callback(results.append)
    assert context.submit(op) == 1
    return op, w, results


def _file() -> int:
    fd = os.open(os.devnull, os.O_WRONLY)
    _pipes.append(fd)
    return fd


def _wait(done: Any, context: Any | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < deadline
        if context is not None and select.select([context.fileno], [], [], 0.01)[0]:
            context.process_events()
        else:
            time.sleep(0.01)


def test_operation_properties_of_caio_012(backend: str, fd: int, closed_fd: int) -> None:
    module = getattr(caio, BACKENDS[backend])
    context = module.Context(4)
    try:
        os.pwrite(fd, b"abcdef", 0)
        good = module.Operation.read(4, fd, 1, priority=2)
        bad = module.Operation.read(4, closed_fd, 0)
        assert good.context is None and good.priority == 2
        assert (good.result, good.error) == (0, 0)
        done: list[int] = []
        for op in (good, bad):
            assert op.set_callback(done.append) is True
        assert context.submit(good, bad) == 2
        assert good.context is context and bad.context is context
        _wait(lambda: len(done) == 2, context)
        assert (good.result, good.error, good.payload) == (4, 0, b"bcde")
        assert (bad.result, bad.error) == (-errno.EBADF, errno.EBADF)
    finally:
        context.close()


def test_payload_in_flight_raises(backend: str) -> None:
    module = getattr(caio, BACKENDS[backend])
    context = module.Context(2)
    try:
        op, w, results = _held(module, context)
        with pytest.raises(RuntimeError):
            op.payload  # noqa: B018 - the property is what is tested
        os.write(w, b"abc")
        _wait(lambda: results, context)
        assert op.payload == b"abc"
    finally:
        context.close()


def test_submit_of_a_submitted_operation_returns_zero(backend: str, fd: int) -> None:
    module = getattr(caio, BACKENDS[backend])
    context = module.Context(2)
    try:
        op, w, results = _held(module, context)
        assert context.submit(op) == 0  # in flight
        sync = module.Operation.fsync(fd)
        sync.set_callback(results.append)
        assert context.submit(sync, sync) == 1  # twice in one call
        os.write(w, b"abc")
        _wait(lambda: len(results) == 2, context)
        assert context.submit(op, sync) == 0  # finished
        assert sorted(results) == [0, 3]
    finally:
        context.close()


def test_cancel_through_a_context_that_does_not_own_it(backend: str) -> None:
    module = getattr(caio, BACKENDS[backend])
    owner, other = module.Context(2), module.Context(2)
    try:
        op, w, results = _held(module, owner)
        with pytest.raises(ValueError):
            other.cancel(op)
        os.write(w, b"abc")
        _wait(lambda: results, owner)
        assert results == [3]  # the refused cancel left it alone
    finally:
        owner.close()
        other.close()


def test_process_events_keywords_and_poll(backend: str, fd: int) -> None:
    module = getattr(caio, BACKENDS[backend])
    loop = asyncio.new_event_loop()
    context = module.Context(8)
    try:
        context.set_future_factory(loop.create_future)

        def dirty_then_fdsync() -> Any:
            # Dirty data to make durable: an fdatasync with nothing to do can
            # finish during the call (kernel AIO reaps right after submitting).
            os.pwrite(fd, os.urandom(1 << 20), 0)
            return context.fdsync_async(fd)

        futures = [dirty_then_fdsync() for _ in range(3)]
        futures = [f for f in futures if f is not None]
        # On a busy machine the kernel's worker may finish each before the
        # call reaps: more tries (a backend that always finishes during the
        # call still fails here).
        for _ in range(100):
            if futures:
                break
            if (more := dirty_then_fdsync()) is not None:
                futures.append(more)
        assert futures, "every fdatasync finished during the call"
        # A backend may resolve earlier futures inside later calls (io_uring
        # reaps as it submits): only the others are left for this call.
        pending = [f for f in futures if not f.done()]
        # Blocks until they are done (min_requests). max_requests is
        # accepted and not applied (docs/differences.md).
        got = context.process_events(
            max_requests=1, min_requests=len(pending), timeout=TIMEOUT,
        )
        assert got == len(pending), (got, len(futures), [f.done() for f in pending])
        assert all(f.done() and f.result() is None for f in futures)
        assert context.process_events(max_requests=0, min_requests=0, timeout=0) == 0
        # The first fdatasync that does not finish during the call: the file
        # is dirtied first for the reason above (on a clean file kernel AIO
        # finished all 100 during the call in one CI run: StopIteration).
        waiting = next(f for f in (dirty_then_fdsync() for _ in range(100)) if f)
        assert _readable(context.fileno)
        assert context.poll() >= 1
        got = context.process_events(min_requests=1, timeout=TIMEOUT)
        assert got >= 1 and waiting.done(), (got, waiting)
        with pytest.raises(ValueError):
            context.process_events(max_requests=-1)
    finally:
        context.close()
        loop.close()


def test_poll_with_nothing_signalled(backend: str) -> None:
    # A fresh context: a used one may see a completion's signal arrive
    # after process_events() has already reaped it (io_uring signals its
    # eventfd after posting the completion).
    context = getattr(caio, BACKENDS[backend]).Context(2)
    try:
        with pytest.raises(BlockingIOError):
            context.poll()
    finally:
        context.close()


def test_uring_flush() -> None:
    if caio.linux_uring is None:
        pytest.skip("io_uring cannot be used here")
    context = caio.linux_uring.Context(4)
    try:
        assert context.flush() >= 0
    finally:
        context.close()


def test_dropped_python_context_delivers_callbacks(fd: int) -> None:
    # As the C pool does: operations still queued when the context is
    # collected end with ECANCELED, and their callbacks say so.
    from caio import python_aio

    context = python_aio.Context(1)
    op, w, results = _held(python_aio, context)
    queued = [python_aio.Operation.fsync(fd) for _ in range(3)]
    for each in queued:
        each.set_callback(results.append)
    assert context.submit(*queued) == 3
    time.sleep(0.05)  # the worker waits in the pipe read
    del context
    gc.collect()
    _wait(lambda: len(results) == 4)
    assert sorted(results) == [-errno.ECANCELED] * 4


# ---- AsyncioContext.submit: the exception classes of both releases ------------


async def test_submit_of_another_backends_operation(
    context: Any, backend: str, fd: int,
) -> None:
    other = next(m for m in caio.variants if m.__name__ != f"caio.{BACKENDS[backend]}")
    for error in (TypeError, ValueError):  # ours, and caio 0.12's
        with pytest.raises(error):
            await context.submit(other.Operation.fsync(fd))


async def test_submit_of_a_finished_operation(context: Any, backend: str, fd: int) -> None:
    op = context.OPERATION_CLASS.fsync(fd)
    assert await context.submit(op) is None
    for error in (RuntimeError, OSError):  # ours, and caio 0.12's
        with pytest.raises(error, match="already submitted"):
            await context.submit(op)


async def test_cancelled_submit_of_a_closed_context(
    context_factory: Any, backend: str, pipe: Any,
) -> None:
    # The task's cancellation wins over the closed context's refusal to
    # cancel (close() has cancelled the operation already).
    if backend == "linux":
        pytest.skip("kernel AIO does not wait on pipes")
    context = context_factory()
    r, _ = pipe
    task = asyncio.create_task(context.submit(context.OPERATION_CLASS.read(1, r, 0)))
    await asyncio.sleep(0.05)  # submitted, waiting for the pipe
    context.close()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("payload", ["text", object(), 42])
async def test_payload_that_is_not_bytes_like(context: Any, fd: int, payload: Any) -> None:
    for error in (TypeError, ValueError):  # ours, and caio 0.12's
        with pytest.raises(error, match="bytes-like"):
            await context.write(payload, fd, 0)
        with pytest.raises(error, match="bytes-like"):
            context.OPERATION_CLASS.write(payload, fd, 0)
    assert os.pread(fd, 10, 0) == b""
