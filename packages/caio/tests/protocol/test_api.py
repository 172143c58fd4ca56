"""The protocol's objects on every backend: Context arguments, the closed
state, the future factory, submit()/cancel() checks and Operation itself.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from typing import Any

import pytest

# ---- Context -------------------------------------------------------------------


def test_context_arguments(harness: Any) -> None:
    Context = harness.Context
    for default in (Context(), Context(None)):
        assert default.max_requests == 512
        assert not default.closed
        default.close()
    context = Context(3)
    assert context.max_requests == 3
    assert isinstance(context.fileno, int)
    assert "max_requests=3" in repr(context)
    context.close()
    for bad in (-1, -(2**80)):
        with pytest.raises(ValueError):
            Context(bad)
    for bad in (1 << 40, 2**80):
        with pytest.raises(ValueError):
            Context(bad)
    with pytest.raises(TypeError):
        Context("8")
    with pytest.raises(TypeError):
        Context(8, bogus=1)


def test_methods_after_close(harness: Any) -> None:
    context = harness.Context(4)
    context.set_future_factory(asyncio.Future)
    context.close()
    context.close()  # idempotent
    assert context.closed
    assert context.max_requests == 4
    assert "closed" in repr(context)
    fd = harness.fd
    op = harness.Operation.read(1, fd, 0)
    calls: dict[str, Callable[[], object]] = {
        "read_async": lambda: context.read_async(1, fd, 0),
        "write_async": lambda: context.write_async(b"x", fd, 0),
        "fsync_async": lambda: context.fsync_async(fd),
        "fdsync_async": lambda: context.fdsync_async(fd),
        "process_events": lambda: context.process_events(),
        "submit": lambda: context.submit(op),
        "cancel": lambda: context.cancel(op),
        "set_future_factory": lambda: context.set_future_factory(asyncio.Future),
        "cancel_future": lambda: context.cancel_future(asyncio.Future()),
        "cancel_future(None)": lambda: context.cancel_future(None),
        "fileno": lambda: context.fileno,
    }
    # python_aio's cancel(), cancel_future() and set_future_factory() touch
    # nothing a closed context has freed: they find nothing to cancel (0,
    # False) instead of raising. Anything else they return is a bug.
    lenient = {"cancel", "cancel_future", "cancel_future(None)", "set_future_factory"} \
        if harness.backend == "python" else set()
    for name, call in calls.items():
        if name in lenient:
            try:
                assert not call(), name
            except ValueError as exc:
                assert "closed" in str(exc)
            continue
        with pytest.raises(ValueError, match="closed"):
            call()


def test_context_manager_closes(harness: Any) -> None:
    if not hasattr(harness.Context, "__enter__"):
        pytest.skip(f"{harness.backend}'s low-level Context has no 'with' support")
    with harness.Context(4) as context:
        assert not context.closed
        assert context.submit() == 0
    assert context.closed


def test_future_factory_checks(harness: Any) -> None:
    context = harness.Context(1)
    try:
        with pytest.raises(TypeError):
            context.set_future_factory(42)
        # The only slot is taken: this fsync must wait, hence needs a
        # future, and there is no factory to make one.
        held = harness.hold(context)
        with pytest.raises(RuntimeError, match="set_future_factory"):
            context.fsync_async(harness.fd)
        held.release()
        harness.until(context, lambda: held.results)
        assert held.results == [held.expected]
        # Every *_async method raises without a factory before doing any
        # I/O, even where the result would come back at once.
        with pytest.raises(RuntimeError, match="set_future_factory"):
            context.read_async(1, harness.fd, 0)
        with pytest.raises(RuntimeError, match="set_future_factory"):
            context.write_async(b"x", harness.fd, 0)
    finally:
        context.close()


# ---- submit() and cancel() --------------------------------------------------------


def test_submit_checks_every_operation_first(harness: Any) -> None:
    with harness.Context(4) as context:
        op = harness.Operation.read(10, harness.fd, 0)
        for bad_call in (
            lambda: context.submit(object()),
            lambda: context.submit(op, "not an operation"),
            lambda: context.cancel("not an operation"),
        ):
            with pytest.raises(TypeError):
                bad_call()
        assert context.submit() == 0
        # Nothing was queued by the failed calls: op can still run.
        assert harness.run_ops(context, op)[0][0] == 0
        assert op.get_value() == b""


def test_submit_counts_each_operation_once(harness: Any) -> None:
    # As caio 0.12 did: an operation that is already submitted (earlier in
    # the same call, in flight, or finished) is skipped, not an error.
    context = harness.Context(4)
    try:
        twice = harness.Operation.read(10, harness.fd, 0)
        results: list[int] = []
        twice.set_callback(results.append)
        assert context.submit(twice, twice) == 1
        harness.until(context, lambda: results)
        assert context.submit(twice) == 0  # finished
        held = harness.hold(context)
        assert context.submit(held.op) == 0  # in flight
        held.release()
        harness.until(context, lambda: held.results)
        assert results == [0] and held.results == [held.expected]
    finally:
        context.close()


def test_cancel_through_another_context(harness: Any) -> None:
    owner, other = harness.Context(1), harness.Context(1)
    try:
        held = harness.hold(owner)
        waiting = harness.Operation.fsync(harness.fd)
        cancelled: list[int] = []
        waiting.set_callback(cancelled.append)
        assert owner.submit(waiting) == 1
        with pytest.raises(ValueError):
            other.cancel(waiting)
        with pytest.raises(ValueError):
            owner.cancel(harness.Operation.fsync(harness.fd))  # never submitted
        assert cancelled == []  # the refused calls cancelled nothing
        assert owner.cancel(waiting) == 1
        held.release()
        harness.until(owner, lambda: held.results and cancelled)
        assert cancelled == [-errno.ECANCELED]
    finally:
        owner.close()
        other.close()


# ---- Operation ----------------------------------------------------------------------


def test_operation_properties(harness: Any) -> None:
    Operation, fd = harness.Operation, harness.fd
    read = Operation.read(100, fd, 10, priority=3)
    assert (read.fileno, read.offset, read.nbytes, read.payload) == (fd, 10, 100, None)
    payload = bytearray(b"12345")
    write = Operation.write(payload, fd, 7)
    assert (write.fileno, write.offset, write.nbytes) == (fd, 7, 5)
    assert write.payload is payload
    sync = Operation.fsync(fd)
    assert (sync.fileno, sync.offset, sync.nbytes, sync.payload) == (fd, 0, 0, None)
    assert Operation.fdsync(fd).nbytes == 0
    assert "read" in repr(read) and "new" in repr(read)


def test_operation_read_is_capped(harness: Any) -> None:
    # The kernel's MAX_RW_COUNT: no read asks for (or allocates) more.
    assert harness.Operation.read(2**40, harness.fd, 0).nbytes == 0x7FFFF000


def test_operation_cannot_be_made_directly(harness: Any) -> None:
    with pytest.raises(TypeError):
        harness.Operation()


def test_operation_argument_errors(harness: Any) -> None:
    Operation, fd = harness.Operation, harness.fd
    with pytest.raises(TypeError):
        Operation.read("1", fd, 0)
    with pytest.raises(ValueError):
        Operation.read(1, fd, -1)
    with pytest.raises(MemoryError):
        Operation.read(2**63, fd, 0)
    with pytest.raises(ValueError):
        Operation.write(b"", fd, 2**63)
    with pytest.raises(ValueError):
        Operation.fsync(fd, priority=70000)
    with pytest.raises(TypeError):
        Operation.fdsync(fd, priority="high")
    with pytest.raises(TypeError):
        Operation.write("text", fd, 0)
    with pytest.raises(OverflowError):
        Operation.fsync(2**40)


def test_set_callback_checks_callable(harness: Any) -> None:
    op = harness.Operation.read(1, harness.fd, 0)
    with pytest.raises(TypeError):
        op.set_callback(42)
    op.set_callback(None)


def test_operation_states(harness: Any, closed_fd: int, dir_fd: int) -> None:
    context = harness.Context(4)
    try:
        bad = harness.Operation.read(10, closed_fd, 0)
        directory = harness.Operation.read(10, dir_fd, 0)
        with pytest.raises(RuntimeError):
            bad.get_value()  # not finished
        results = [r for r, _ in harness.run_ops(context, bad, directory)]
        assert results == [-errno.EBADF, -errno.EISDIR]
        with pytest.raises(OSError) as info:
            bad.get_value()
        assert info.value.errno == errno.EBADF
        with pytest.raises(IsADirectoryError):
            directory.get_value()
        assert bad.payload is None
    finally:
        context.close()
