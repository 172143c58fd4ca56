"""Cost per item of ``async for`` over an async generator vs an ``__anext__`` class.

    for v in 3.10.13 3.11.7 3.12.1 3.13.0; do
        PYENV_VERSION=$v python benchmarks/profile/async_iter.py
    done

aiofile's ``async for line`` picks one of the two per Python version
(``aiofile.readahead._ASYNC_GENERATORS_FAST``); this shows why. Both take items
from a plain iterator, as aiofile's line iterators do. Best of 7 passes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

N = 300_000


async def generator(items: Iterable[int]) -> AsyncIterator[int]:
    """An async generator yielding the items."""
    for item in items:
        yield item


class Items:
    """An async iterator class with one ``async def __anext__`` call per item."""

    __slots__ = ("_it",)

    def __init__(self, items: Iterable[int]) -> None:
        self._it: Iterator[int] = iter(items)

    def __aiter__(self) -> Items:
        return self

    async def __anext__(self) -> int:
        for item in self._it:
            return item
        raise StopAsyncIteration


async def one_pass(make: Callable[[Iterable[int]], AsyncIterator[Any]]) -> float:
    """Nanoseconds per item of one ``async for`` over N items."""
    items = range(N)
    start = time.perf_counter()
    async for _ in make(items):
        pass
    return (time.perf_counter() - start) / N * 1e9


async def main() -> None:
    """Print the best of 7 passes for each kind."""
    results = []
    for name, make in (("async generator", generator), ("__anext__ class", Items)):
        best = min([await one_pass(make) for _ in range(7)])
        results.append(f"{name}: {best:.0f} ns/item")
    print(sys.version.split()[0], ", ".join(results))


if __name__ == "__main__":
    asyncio.run(main())
