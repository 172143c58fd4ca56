"""Fixtures shared by caio's tests.

``backend`` is parametrized over all four backends, so every generic test
runs on each; a backend that cannot be imported here is skipped with the
import error as the reason (and runs as soon as it can be imported).

Where the tests are: protocol/ holds the one suite of the backend protocol
that every backend runs (API, completions, closing, fork and threads,
special files); test_asyncio_context.py the adapter's behaviour;
test_robustness.py property-based, leak and hang tests; test_<backend>.py
only what that backend alone has (its options and mechanisms).
"""

from __future__ import annotations

import errno
import gc
import os
import random
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import caio

# CAIO_IMPL name -> low-level module name, best first.
from caio._backends import BACKENDS

# Every test's event loop (the event_loop fixture), and async def tests
# run on it.
pytest_plugins = ("caio._pytest_loop",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a ``backend(impl=X)`` nox session (CAIO_TEST_ONLY_BACKEND=X), the
    tests parametrized by backend run for X only: the other backends'
    variants are the same tests as in the tests-3.X sessions.

    CAIO_TEST_PHASE=shared leaves out the tests marked ``alone`` (they need
    the machine to themselves), CAIO_TEST_PHASE=alone runs only those: nox
    runs this suite beside aiofile's in the first phase, then the second."""
    only = os.environ.get("CAIO_TEST_ONLY_BACKEND")
    phase = os.environ.get("CAIO_TEST_PHASE")
    if not only and phase not in ("shared", "alone"):
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        wanted = not only or params.get("backend", only) == only
        if phase in ("shared", "alone"):
            wanted = wanted and (item.get_closest_marker("alone") is not None) == (phase == "alone")
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """A backend name (uring, linux, thread, python) that imports here."""
    name: str = request.param
    module = BACKENDS[name]
    if getattr(caio, module) is None:
        reason = caio._import_errors.get(name, "unknown reason")
        pytest.skip(f"caio.{module} cannot be imported here: {reason}")
    return name


@pytest.fixture
def backend_module(backend: str) -> Any:
    """The low-level module of ``backend`` (Context, Operation)."""
    return getattr(caio, BACKENDS[backend])


@pytest.fixture
def asyncio_module(backend: str) -> Any:
    """The asyncio adapter module of ``backend`` (AsyncioContext)."""
    return getattr(caio, BACKENDS[backend] + "_asyncio")


@pytest.fixture
def context_factory(asyncio_module: Any, event_loop: Any) -> Any:
    """Make AsyncioContexts on the test's loop; all are closed afterwards."""
    made = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("loop", event_loop)
        context = asyncio_module.AsyncioContext(**kwargs)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture
def context(context_factory: Any) -> Any:
    """An AsyncioContext of ``backend`` with default settings."""
    return context_factory()


@pytest.fixture
def wire(event_loop: Any) -> Any:
    """Wire low-level Contexts to the test's loop as the adapter does
    (futures from the loop, process_events when the fileno is readable);
    each is unwired and closed afterwards."""
    wired: list[Any] = []

    def wire(context: Any) -> Any:
        context.set_future_factory(event_loop.create_future)
        event_loop.add_reader(context.fileno, context.process_events)
        wired.append(context)
        return context

    yield wire
    for context in wired:
        if not context.closed:
            event_loop.remove_reader(context.fileno)
            context.close()


@pytest.fixture
def wire_recording(event_loop: Any) -> Any:
    """Wire a low-level Context to the test's loop with a call_soon that
    records what the context schedules (the list returned): its batched
    flushes. explicit=False: no call_soon at all. Unwired and closed
    afterwards (closed or not)."""
    wired: list[tuple[Any, int]] = []

    def wire_recording(context: Any, explicit: bool = True) -> list[Any]:
        scheduled: list[Any] = []

        def call_soon(callback: Any) -> None:
            scheduled.append(callback)
            event_loop.call_soon(callback)

        if explicit:
            context.set_future_factory(event_loop.create_future, call_soon)
        else:
            context.set_future_factory(event_loop.create_future)
        event_loop.add_reader(context.fileno, context.process_events)
        wired.append((context, context.fileno))
        return scheduled

    yield wire_recording
    for context, fileno in wired:
        event_loop.remove_reader(fileno)
        context.close()


@pytest.fixture
def file_path(tmp_path: Path) -> Path:
    return tmp_path / "data.bin"


@pytest.fixture
def fd(file_path: Path) -> Any:
    """A descriptor open read-write on an empty regular file."""
    descriptor = os.open(file_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    yield descriptor
    try:
        os.close(descriptor)
    except OSError:  # the test closed it on purpose
        pass


@pytest.fixture
def closed_fd() -> int:
    """A descriptor number that is not open (EBADF).

    The highest number the process may use: descriptors are allocated
    lowest first, so nothing the test opens meanwhile (an eventfd, a ring)
    takes it, as it would the number of a just-closed file.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    descriptor = min(soft, 1 << 20) - 1
    with pytest.raises(OSError):
        os.fstat(descriptor)
    return descriptor


@pytest.fixture
def dir_fd(tmp_path: Path) -> Any:
    """A descriptor open on a directory (reads fail with EISDIR)."""
    descriptor = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield descriptor
    os.close(descriptor)


@pytest.fixture
def pipe() -> Any:
    """(read end, write end) of a pipe; whatever is still open is closed."""
    r, w = os.pipe()
    yield r, w
    for descriptor in (r, w):
        try:
            os.close(descriptor)
        except OSError:
            pass


@pytest.fixture
def make_data_file(tmp_path: Path) -> Iterator[Callable[..., tuple[int, bytes]]]:
    """``make(size, seed, flags=os.O_RDONLY) -> (fd, content)``: a file of
    reproducible random bytes, its descriptor closed after the test."""
    opened: list[int] = []

    def make(size: int, seed: int, flags: int = os.O_RDONLY) -> tuple[int, bytes]:
        content = random.Random(seed).randbytes(size)
        path = tmp_path / f"data-{len(opened)}.bin"
        path.write_bytes(content)
        opened.append(os.open(path, flags))
        return opened[-1], content

    yield make
    for descriptor in opened:
        os.close(descriptor)


def _direct_io_works(directory: Path) -> bool:
    probe = directory / ".o_direct_probe"
    try:
        os.close(os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600))
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)
    return True


@pytest.fixture
def direct_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose filesystem does O_DIRECT I/O (a disk: the test's
    tmp_path, else a directory under /var/tmp); skips where there is none."""
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this platform")
    if _direct_io_works(tmp_path):
        yield tmp_path
        return
    fallback = Path("/var/tmp")
    if not (fallback.is_dir() and _direct_io_works(fallback)):
        pytest.skip("no filesystem here does O_DIRECT (tmp_path and /var/tmp tried)")
    made = Path(tempfile.mkdtemp(dir=fallback, prefix="caio-direct-"))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mounted(fstype) -> Path``: a fresh 8 MiB ``tmpfs``/``ramfs`` mount,
    unmounted after the test; skips where mounting is not permitted."""
    points: list[Path] = []

    def mount(fstype: str) -> Path:
        point = tmp_path / f"mnt-{fstype}-{len(points)}"
        point.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no mount command")
        done = subprocess.run(
            ["mount", "-t", fstype, "-o", "size=8m", fstype, str(point)],
            capture_output=True, check=False,
        )
        if done.returncode:
            pytest.skip(f"cannot mount {fstype}: {done.stderr.decode(errors='replace').strip()}")
        points.append(point)
        return point

    yield mount
    for point in points:
        subprocess.run(["umount", str(point)], check=False)


class Fifo:
    """A FIFO: opening it for reading blocks until a writer comes, so an
    open of it stays in flight as long as a test needs."""

    TIMEOUT = 10.0

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "fifo")
        os.mkfifo(self.path)
        self.writers: list[int] = []

    def readers(self) -> list[int]:
        """This process's descriptors open on the FIFO, writers excepted."""
        found = []
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}") == self.path:
                    found.append(int(name))
            except OSError:  # the listing's own descriptor, closed by now
                pass
        return [fd for fd in found if fd not in self.writers]

    def open_writer(self) -> None:
        """Let a pending open for reading finish: open the writing end
        (ENXIO until a reader waits in open(2): try again)."""
        deadline = time.monotonic() + self.TIMEOUT
        while True:
            try:
                self.writers.append(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
                return
            except OSError as exc:
                assert exc.errno == errno.ENXIO, exc
            assert time.monotonic() < deadline, "no reader came to the FIFO"
            time.sleep(0.005)

    def wait_for_no_reader(self) -> None:
        """Until no descriptor of this process reads the FIFO (or fail)."""
        deadline = time.monotonic() + self.TIMEOUT
        while True:
            gc.collect()
            left = self.readers()
            if not left:
                return
            assert time.monotonic() < deadline, f"descriptors left open on the FIFO: {left}"
            time.sleep(0.01)


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Fifo]:
    """A :class:`Fifo` in tmp_path; its writers are closed after the test."""
    made = Fifo(tmp_path)
    yield made
    for descriptor in made.writers:
        os.close(descriptor)
