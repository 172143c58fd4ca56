"""Fixtures shared by aiofile's tests.

``context`` runs every test that takes it once per importable caio backend
and once with the default context (``None``: the running loop's own).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

import caio

# Every test's event loop (the event_loop fixture), and async def tests
# run on it.
pytest_plugins = ("caio._pytest_loop",)

BACKENDS = [pytest.param(None, id="default")] + [
    pytest.param(module, id=module.__name__.rsplit(".", 1)[-1].replace("_asyncio", ""))
    for module in caio.variants_asyncio
]


#: The parameter names under which tests take an explicit backend (a caio
#: module, context or name; None or "default": the default context).
BACKEND_PARAMS = ("context", "backend", "module", "asyncio_context")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a ``backend(impl=X)`` nox session (CAIO_TEST_ONLY_BACKEND set), a
    test parametrized by backend runs with the default context only, which
    is X there: its explicit backends are the tests-3.X sessions' work."""
    if not os.environ.get("CAIO_TEST_ONLY_BACKEND"):
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        explicit = any(
            params.get(name, None) not in (None, "default") for name in BACKEND_PARAMS
        )
        (drop if explicit else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=BACKENDS)
def context(request: pytest.FixtureRequest, event_loop: Any) -> Any:
    """A caio AsyncioContext of one backend, or None for the default one."""
    module = request.param
    if module is None:
        yield None
        return
    ctx = module.AsyncioContext(loop=event_loop)
    yield ctx
    ctx.close()


@pytest.fixture
def kernel_aio(context: Any) -> bool:
    """Whether ``context`` (None: the default one) is the kernel AIO backend,
    which refuses to wait on pipes and /proc files (with a clear OSError)."""
    module = caio.AsyncioContext.__module__ if context is None else type(context).__module__
    return module.endswith("linux_aio_asyncio")


# 1.3 million short lines, ~100 MB: made once per session.
BIG_LINES = 1_300_000


@pytest.fixture(scope="session")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~100 MB of 1.3 million lines of 1-150 characters, a few non-ASCII."""
    path = tmp_path_factory.mktemp("big") / "lines.txt"
    rnd = random.Random(20261122)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 ,.;"
    # A pool of lines keeps generation fast; the order is random.
    pool = [
        "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 149))) + "\n"
        for _ in range(4000)
    ]
    pool += ["é" * rnd.randint(1, 40) + "€漢字\n" for _ in range(40)]
    with open(path, "w", encoding="utf-8", newline="") as out:
        for start in range(0, BIG_LINES, 100_000):
            count = min(100_000, BIG_LINES - start)
            out.write("".join(rnd.choices(pool, k=count)))
    return path


#: The caio context methods aiofile.os / aiofile.tempfile / AIOFile.open use
#: when a context has them (caio 0.13: io_uring operations where the kernel
#: has them).
FS_METHODS = (
    "stat", "fstat", "open", "close_fd", "rename", "unlink", "rmdir", "mkdir", "link",
    "symlink", "ftruncate", "fallocate", "in_kernel",
)


def _without_fs_methods(cls: type) -> type:
    """The same context class with the filesystem methods hidden: aiofile
    then takes its other path (the loop's executor)."""
    return type(f"{cls.__name__}WithoutFsMethods", (cls,), dict.fromkeys(FS_METHODS))


# Every backend through its context; the executor path once, on the best
# backend (that path calls the os functions in the loop's executor whatever
# the backend: running it on each again would test the same code).
FS_PATHS = [
    pytest.param((module, via_context), id=f"{backend_id}-{'context' if via_context else 'pool'}")
    for index, module in enumerate(caio.variants_asyncio)
    for backend_id in [module.__name__.rsplit(".", 1)[-1].replace("_asyncio", "")]
    for via_context in ((True, False) if index == 0 else (True,))
]


@pytest.fixture(params=FS_PATHS)
def fs_context(request: pytest.FixtureRequest, event_loop: Any) -> Any:
    """The running loop's default context, of each backend, once as it is
    and once with its filesystem methods hidden (the executor path). The
    first is skipped where this caio has no such methods."""
    from aiofile.context import DEFAULT_CONTEXT_STORE

    module, via_context = request.param
    cls = module.AsyncioContext
    if via_context and not hasattr(cls, "stat"):
        pytest.skip("this caio's contexts have no filesystem methods")
    if not via_context:
        cls = _without_fs_methods(cls)
    ctx = cls(loop=event_loop)
    previous = DEFAULT_CONTEXT_STORE.get(id(event_loop))
    DEFAULT_CONTEXT_STORE[id(event_loop)] = ctx
    yield ctx
    if previous is None:
        DEFAULT_CONTEXT_STORE.pop(id(event_loop), None)
    else:
        DEFAULT_CONTEXT_STORE[id(event_loop)] = previous
    ctx.close()
