"""The backends, by the name ``CAIO_IMPL`` takes, best first.

Each name maps to its low-level module ``caio.<module>``; the asyncio
adapter is ``caio.<module>_asyncio``. This dict is the one list of them:
``caio``, ``python -m caio``, the noxfile and the benchmarks read it. Keep
it a single literal assignment: the noxfile parses it without importing
caio.
"""

BACKENDS: dict[str, str] = {
    "uring": "linux_uring",
    "linux": "linux_aio",
    "thread": "thread_aio",
    "python": "python_aio",
}
