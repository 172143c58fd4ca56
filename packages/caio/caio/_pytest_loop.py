"""The asyncio side of caio's and aiofile's test suites (not an API).

Both suites' ``conftest.py`` import ``event_loop`` and
``pytest_pyfunc_call`` from here: every test gets a fresh event loop, set
as the current one, and an ``async def`` test runs to completion on it.
That is all the suites need; a general-purpose plugin costs about 20 ms of
thread pool start-up and shutdown per test, a third of a suite's time.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ("event_loop", "pytest_pyfunc_call")


@pytest.fixture(autouse=True)
def event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A new event loop, the current one during the test; closed after it
    (its async generators and default executor shut down first)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        try:
            if not loop.is_closed():
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``async def`` test on its ``event_loop``; others as pytest does."""
    function: Any = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    loop: asyncio.AbstractEventLoop = pyfuncitem.funcargs["event_loop"]  # type: ignore[assignment]
    names = pyfuncitem._fixtureinfo.argnames
    loop.run_until_complete(function(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True
