"""The rules every backend's low-level Context shares (src/common/protocol.c
for the C ones): max_requests, the future factory, no I/O without one.

python_aio is converted separately; where it does not follow a rule yet its
cases are expected failures (not strict: they pass once it does).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import caio
from caio._backends import BACKENDS

MODULES = BACKENDS
MAX_REQUESTS_LIMIT = 65536
MAX_REQUESTS_MESSAGE = "max_requests must be between 1 and 65536"
NO_FACTORY_MESSAGE = "set_future_factory() must be called before the *_async methods"


def backends() -> list[Any]:
    """The backend names as parameters, every backend alike."""
    return [pytest.param(name, id=name) for name in MODULES]


def module_of(name: str) -> Any:
    module = getattr(caio, MODULES[name])
    if module is None:
        pytest.skip(f"caio.{MODULES[name]} cannot be imported here")
    return module


def aio_room() -> int:
    """How many more kernel AIO requests the system-wide limit allows."""
    limit = int(Path("/proc/sys/fs/aio-max-nr").read_text())
    return limit - int(Path("/proc/sys/fs/aio-nr").read_text())


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    yield r, w
    os.close(r)
    os.close(w)


# ---- max_requests ---------------------------------------------------------------


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("value", [None, 0])
def test_none_and_zero_give_the_default(backend: str, value: int | None) -> None:
    context_type = module_of(backend).Context
    with context_type() as default, context_type(value) as context:
        assert context.max_requests == default.max_requests
        assert default.max_requests >= 1


# alone: linux's largest context takes all of fs.aio-max-nr (65536 by
# default) for a moment; another process's kernel AIO context then fails.
@pytest.mark.alone
@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("value", [1, True, 7, MAX_REQUESTS_LIMIT])
def test_in_range_is_used(backend: str, value: int) -> None:
    context_type = module_of(backend).Context
    if backend == "linux" and value > aio_room():
        pytest.skip("fs.aio-max-nr leaves no room for this many kernel AIO requests")
    context = context_type(value)
    try:
        assert context.max_requests == int(value)
    finally:
        context.close()


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("value", [-1, -(2**70), MAX_REQUESTS_LIMIT + 1, 2**70])
def test_out_of_range_is_value_error(backend: str, value: int) -> None:
    context_type = module_of(backend).Context
    with pytest.raises(ValueError, match=MAX_REQUESTS_MESSAGE):
        context_type(value)
    with pytest.raises(ValueError, match=MAX_REQUESTS_MESSAGE):
        context_type(max_requests=value)


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("value", ["3", 1.5, 3.0, b"3", [3]])
def test_not_an_int_is_type_error(backend: str, value: object) -> None:
    context_type = module_of(backend).Context
    with pytest.raises(TypeError, match="max_requests"):
        context_type(value)


# ---- no I/O without a future factory ----------------------------------------------


@pytest.mark.parametrize("backend", backends())
def test_read_without_factory_raises_before_reading(
    backend: str, pipe: tuple[int, int]
) -> None:
    r, w = pipe
    os.write(w, b"data")  # a read would finish at once: still refused
    with module_of(backend).Context() as context:
        for call in (
            lambda: context.read_async(4, r, 0),
            lambda: context.write_async(b"more", w, 0),
            lambda: context.fsync_async(r),
            lambda: context.fdsync_async(r),
        ):
            with pytest.raises(RuntimeError) as info:
                call()
            assert str(info.value) == NO_FACTORY_MESSAGE
    # Nothing was read or written.
    assert os.read(r, 100) == b"data"


# ---- set_future_factory(factory, call_soon=None) ------------------------------------


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("keywords", [False, True], ids=["positional", "keywords"])
async def test_factory_with_call_soon_is_accepted(
    backend: str, keywords: bool, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    path = tmp_path / "data"
    path.write_bytes(b"hello")
    fd = os.open(path, os.O_RDWR)
    with module_of(backend).Context(4) as context:
        if keywords:
            context.set_future_factory(factory=loop.create_future, call_soon=loop.call_soon)
        else:
            context.set_future_factory(loop.create_future, loop.call_soon)
        loop.add_reader(context.fileno, context.process_events)
        try:
            # The value itself when it finished during the call, else a
            # future of it made by the factory.
            results = [
                context.read_async(5, fd, 0),
                context.write_async(b"!", fd, 5),
                context.fdsync_async(fd),
            ]
            for i, result in enumerate(results):
                if isinstance(result, asyncio.Future):
                    assert result.get_loop() is loop
                    results[i] = await asyncio.wait_for(result, 10)
            assert results == [b"hello", 1, None]
        finally:
            loop.remove_reader(context.fileno)
            os.close(fd)


@pytest.mark.parametrize("backend", backends())
def test_factory_arguments_are_checked(backend: str) -> None:
    with module_of(backend).Context() as context:
        with pytest.raises(TypeError):
            context.set_future_factory(42)
        with pytest.raises(TypeError):
            context.set_future_factory(asyncio.Future, 42)
        with pytest.raises(TypeError):
            context.set_future_factory()
        context.set_future_factory(asyncio.Future, None)  # None: no call_soon
