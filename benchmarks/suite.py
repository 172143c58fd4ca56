"""What the benchmark measures: participants, workloads, sizes and targets.

Shared by the driver (``run.py``), the measuring worker (``workloads.py``)
and the report (``report.py``). Importing it imports nothing optional, so the
driver works even where caio, aiofile or aiofiles cannot be imported.
"""

from __future__ import annotations

import runpy
from dataclasses import dataclass, field
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

BLOCK = 4 * KIB
IN_FLIGHT = 64

#: caio backend name (``CAIO_IMPL``) -> its low-level module, best first:
#: caio's own list, read from the tree (caio itself need not import here).
CAIO_MODULES: dict[str, str] = runpy.run_path(
    str(Path(__file__).resolve().parent.parent / "packages" / "caio" / "caio" / "_backends.py"),
)["BACKENDS"]

#: participant name -> caio backend name (``CAIO_IMPL``).
CAIO_BACKENDS: dict[str, str] = {f"caio-{name}": name for name in CAIO_MODULES}

#: caio backend name -> the asyncio adapter module of that backend.
BACKEND_MODULES: dict[str, str] = {
    name: f"caio.{module}_asyncio" for name, module in CAIO_MODULES.items()
}

BASELINE = "stdlib"
PARTICIPANTS: tuple[str, ...] = (BASELINE, *CAIO_BACKENDS, "aiofiles")


@dataclass(frozen=True)
class Workload:
    """One thing to measure; every participant implements it its own way."""

    name: str
    title: str
    unit: str
    higher_is_better: bool
    #: participants that have an implementation (others are "n/a").
    participants: tuple[str, ...] = PARTICIPANTS
    #: run in at most this many rounds (memory facts do not drift).
    max_rounds: int | None = None
    #: a memory check: summarised by its worst round, no ratio vs stdlib.
    memory: bool = False
    #: how each participant does it, for the report and the docs.
    how: dict[str, str] = field(default_factory=dict)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "rand_read_1",
        "random 4 KiB reads, 1 in flight",
        "us/op",
        higher_is_better=False,
        how={
            "stdlib": "os.pread loop",
            "caio": "await ctx.read(4096, fd, off), one at a time",
            "aiofiles": "await f.seek(off); await f.read(4096) (buffering=0)",
        },
    ),
    Workload(
        "rand_read_64",
        "random 4 KiB reads, 64 in flight",
        "ops/s",
        higher_is_better=True,
        how={
            "stdlib": "os.pread loop over the same offsets",
            "caio": "64 coroutines sharing one AsyncioContext",
            "aiofiles": "64 tasks, each its own file (buffering=0), seek+read",
        },
    ),
    Workload(
        "rand_write_64",
        "random 4 KiB writes, 64 in flight",
        "ops/s",
        higher_is_better=True,
        how={
            "stdlib": "os.pwrite loop over the same offsets",
            "caio": "64 coroutines sharing one AsyncioContext",
            "aiofiles": "64 tasks, each its own file (buffering=0), seek+write",
        },
    ),
    Workload(
        "stream_64k",
        "stream a file in 64 KiB chunks",
        "MB/s",
        higher_is_better=True,
        how={
            "stdlib": "open(buffering=0).read(n) loop",
            "caio": "aiofile async_open(..., 'rb').iter_chunked(n)",
            "aiofiles": "aiofiles.open(buffering=0), await f.read(n) loop",
        },
    ),
    Workload(
        "stream_1m",
        "stream a file in 1 MiB chunks",
        "MB/s",
        higher_is_better=True,
        how={
            "stdlib": "open(buffering=0).read(n) loop",
            "caio": "aiofile async_open(..., 'rb').iter_chunked(n)",
            "aiofiles": "aiofiles.open(buffering=0), await f.read(n) loop",
        },
    ),
    Workload(
        "lines",
        "iterate lines of a file of short lines",
        "lines/s",
        higher_is_better=True,
        how={
            "stdlib": "for line in open(path)",
            "caio": "async for line in async_open(path)",
            "aiofiles": "async for line in aiofiles.open(path) (time-boxed)",
        },
    ),
    Workload(
        "cp",
        "copy a file: examples/cp.py vs shutil.copyfile",
        "MB/s",
        higher_is_better=True,
        participants=(BASELINE, *CAIO_BACKENDS),
        how={
            "stdlib": "shutil.copyfile + fdatasync (cp.py's close syncs too)",
            "caio": "examples/cp.py SRC DST run in-process (runpy)",
        },
    ),
    Workload(
        "mem_stream",
        "peak RSS growth streaming a big file in 1 MiB chunks",
        "MiB",
        higher_is_better=False,
        max_rounds=2,
        memory=True,
        how={
            "stdlib": "open(buffering=0).read(1 MiB) loop",
            "caio": "async_open(..., 'rb').iter_chunked(1 MiB)",
            "aiofiles": "aiofiles.open(buffering=0), await f.read(1 MiB) loop",
        },
    ),
    Workload(
        "mem_alloc",
        "tracemalloc: bytes allocated and kept per 4 KiB read, 64 in flight",
        "B/op",
        higher_is_better=False,
        # aiofiles would take ~10 s here (two thread hops per read) and the
        # claim is caio's; stdlib shows what a bare read allocates.
        participants=(BASELINE, *CAIO_BACKENDS),
        max_rounds=2,
        memory=True,
        how={
            "stdlib": "os.pread loop",
            "caio": "64 coroutines sharing one AsyncioContext",
        },
    ),
)

WORKLOADS += (
    Workload(
        "stat_1",
        "stat of a cached file, 1 in flight",
        "us/op",
        higher_is_better=False,
        how={
            "stdlib": "os.stat loop",
            "caio": "await aiofile.os.stat(path), one at a time",
            "aiofiles": "await aiofiles.os.stat(path), one at a time",
        },
    ),
    Workload(
        "stat_64",
        "stat of a cached file, 64 in flight",
        "ops/s",
        higher_is_better=True,
        how={
            "stdlib": "os.stat loop (nothing to overlap)",
            "caio": "64 coroutines calling await aiofile.os.stat(path)",
            "aiofiles": "64 coroutines calling await aiofiles.os.stat(path)",
        },
    ),
)

WORKLOADS_BY_NAME: dict[str, Workload] = {w.name: w for w in WORKLOADS}


@dataclass(frozen=True)
class Sizes:
    """Everything that scales between ``--quick`` and a full run."""

    rounds: int
    stream_file: int  # random reads, streaming and cp read this file
    write_file: int  # random writes land in this file
    lines_file: int  # short lines of text
    mem_file: int  # the memory check streams this one
    rand_ops: int  # operations per random-I/O measurement (upper bound)
    alloc_ops: int  # N for the tracemalloc check (it also runs 10 N)
    min_seconds: float  # streaming repeats passes until this long (hot cache)
    budget_seconds: float  # a slow participant stops after this long
    timeout_seconds: float  # a measurement process is killed after this


FULL = Sizes(
    rounds=5,
    stream_file=256 * MIB,
    write_file=64 * MIB,
    lines_file=64 * MIB,
    mem_file=1 * GIB,
    rand_ops=300_000,
    alloc_ops=1_000,
    min_seconds=0.3,
    budget_seconds=0.8,
    timeout_seconds=60.0,
)

QUICK = Sizes(
    rounds=2,
    stream_file=32 * MIB,
    write_file=16 * MIB,
    lines_file=8 * MIB,
    mem_file=128 * MIB,
    rand_ops=30_000,
    alloc_ops=300,
    min_seconds=0.05,
    budget_seconds=0.15,
    timeout_seconds=30.0,
)


@dataclass(frozen=True)
class Target:
    """A goal from the issue: a ratio vs stdlib, or an absolute memory bound.

    ``participant`` is a participant name or ``"default"``: the backend that
    ``import caio`` selects on this machine.
    """

    label: str
    workload: str
    participant: str
    op: str  # ">=" or "<="
    goal: float
    #: "ratio" (vs stdlib, same run), or a key of the memory result.
    measure: str = "ratio"


TARGETS: tuple[Target, ...] = (
    Target("random 4K reads, 64 in flight, ops/s", "rand_read_64", "default", ">=", 0.6),
    Target("random 4K reads, 1 in flight, time/op", "rand_read_1", "default", "<=", 2.5),
    Target("random 4K reads, 64 in flight, ops/s", "rand_read_64", "caio-thread", ">=", 0.2),
    Target("random 4K reads, 1 in flight, time/op", "rand_read_1", "caio-thread", "<=", 8.0),
    Target("random 4K reads, 64 in flight, ops/s", "rand_read_64", "caio-python", ">=", 0.1),
    Target("random 4K reads, 1 in flight, time/op", "rand_read_1", "caio-python", "<=", 15.0),
    Target("async_open stream, 1 MiB chunks, MB/s", "stream_1m", "default", ">=", 0.85),
    Target("async_open stream, 64 KiB chunks, MB/s", "stream_64k", "default", ">=", 0.6),
    Target("async for line, lines/s", "lines", "default", ">=", 0.5),
    Target(
        "iter_chunked(1 MiB) peak RSS growth, MiB",
        "mem_stream",
        "default",
        "<=",
        32.0,
        measure="value",
    ),
    Target(
        "64 in flight: bytes kept per read / sizeof(bytes)",
        "mem_alloc",
        "default",
        "<=",
        1.05,
        measure="kept_ratio",
    ),
    Target(
        "64 in flight: bytes retained per extra op (N -> 10N)",
        "mem_alloc",
        "default",
        "<=",
        1.0,
        measure="retained_per_op",
    ),
    Target(
        "64 in flight: peak growth 10N / N",
        "mem_alloc",
        "default",
        "<=",
        2.0,
        measure="peak_scaling",
    ),
    Target("aiofile.os.stat, 1 in flight, time/op", "stat_1", "default", "<=", 5.0),
    Target("aiofile.os.stat, 64 in flight, ops/s", "stat_64", "default", ">=", 0.3),
)
