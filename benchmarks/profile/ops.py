"""Run one workload N times in this process, for profilers to look at.

    python benchmarks/profile/ops.py OP N
        Run OP N times after a short warm-up; print wall, user and system
        microseconds per operation (getrusage: all threads). Wrap it in
        ``perf record``, ``strace -c -f`` or ``py-spy`` as you like.
    python benchmarks/profile/ops.py --callgrind OP N1 N2
        Run OP under ``valgrind --tool=callgrind`` with N1 and with N2
        operations and print the difference divided by N2 - N1: user-space
        instructions per operation, by shared object and by function, with
        start-up, imports and warm-up cancelled out.

Run from the repository root with the in-tree packages (C extensions built
in place)::

    PYTHONPATH=packages/caio:packages/aiofile python benchmarks/profile/ops.py read-uring 200000

Operations (4 KiB random reads at 4 KiB-aligned offsets of a 64 MiB file,
page cache hot unless named ``cold``):

    pread               os.pread loop
    read-BACKEND        ``await ctx.read(...)`` one at a time, AsyncioContext
    bare-BACKEND        ``ctx.context.read_async(...)``: the C call alone
                        (a returned future is awaited)
    afp-BACKEND         ``await afp.read(4096, off)``, aiofile.AIOFile on an
                        AsyncioContext
    trio-BACKEND        ``await ctx.read(...)`` under trio.run, TrioContext
    triosubmit-BACKEND  the same through ``Operation.read`` and
                        ``ctx.submit(op)`` (the design not taken: no fast
                        path, an Operation per read)
    triocold64-BACKEND  cold64 (below) under trio.run: 64 tasks, TrioContext
    stat-BACKEND        ``await ctx.stat(path)`` of the (cached) data file,
                        one at a time; BACKEND also uring-nostat,
                        thread-nostat (Context(stat_cached=False))
    stat-os             ``os.stat(path)`` loop
    fstat-BACKEND       ``await ctx.fstat(fd)`` of it / ``os.fstat(fd)``
    fstat-os            loop. (valgrind 3.19 does not know openat2: under
                        callgrind the contexts find no "stat_cached"
                        feature and every stat takes the slow path.)
    BACKEND: uring, uring-ring (Context(nowait_reads=False)), thread,
             python, linux
    lines-stdlib        ``for line in open(path)`` (N lines, 16 MiB file of
    lines-aiofile       short lines) / ``async for line in async_open(path)``
    blines-stdlib       the same in binary mode (``"rb"``)
    blines-aiofile
    chunks-stdlib       ``open(path, "rb", buffering=0).read(65536)`` (N chunks)
    chunks-aiofile      ``async_open(path, "rb").iter_chunked(65536)``
    cold64-BACKEND      64 coroutines, N reads in all (N <= 16384: each block
                        once) of a separate file, page cache dropped first,
                        no readahead; BACKEND as above, or uring-nobatch
                        (no call_soon given: the ring never batches), or
                        pread (a plain loop)
    cold1-BACKEND       the same one read at a time (one coroutine)
    direct64-BACKEND    64 coroutines, N reads of the same file opened with
    direct1-BACKEND     O_DIRECT, ``await ctx.readinto(buffer, fd, off)``
                        into each coroutine's own mmap (page-aligned)
                        buffer; direct1: one at a time
    write1-BACKEND      ``await ctx.write(block, fd, off)`` one at a time:
    pwrite              4 KiB buffered writes over a 64 MiB file of its
                        own (``os.pwrite`` loop: pwrite), rewritten in
                        place, so the dirty-page throttle stays out of it;
                        where the filesystem has no ``RWF_NOWAIT`` for
                        buffered writes (ext4), each goes to a worker
    writev1-BACKEND     the same with ``await ctx.writev([a, b], fd, off)``,
    pwritev             two 2 KiB buffers per write (``os.pwritev`` loop)
    pipe64-BACKEND      64 coroutines ``await ctx.readinto(buffer, r, 0)``
                        of one empty pipe, N reads in all; a writer gives
                        the pipe 64 bytes once all 64 reads are in the
                        kernel (4 loop passes after the last batch): the
                        slow path of the direct rows (future, eventfd,
                        process_events, task step, batched flush) with
                        completions that do not depend on timing, so
                        that ``--callgrind`` counts it (not for linux:
                        kernel AIO blocks on a pipe)

Data files go to ``$CAIO_PROFILE_DIR`` (default /tmp/caio-profile) and are
reused.
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
import os
import random
import re
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

BLOCK = 4096
CHUNK = 65536
RAND_SIZE = 64 * 1024 * 1024
LINES_SIZE = 16 * 1024 * 1024
DATA = Path(os.environ.get("CAIO_PROFILE_DIR", "/tmp/caio-profile"))
# caio's backends (CAIO_IMPL name -> module), read from the tree: caio's
# own list. Each runs with default options; uring also in two variants.
_CAIO = Path(__file__).resolve().parents[2] / "packages" / "caio" / "caio" / "_backends.py"
BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    name: (f"caio.{module}_asyncio", {})
    for name, module in runpy.run_path(str(_CAIO))["BACKENDS"].items()
}
BACKENDS["uring-ring"] = (BACKENDS["uring"][0], {"nowait_reads": False})
BACKENDS["uring-nobatch"] = BACKENDS["uring"]
# Without the inline stat of cached paths: every stat through the ring or
# a worker.
BACKENDS["uring-nostat"] = (BACKENDS["uring"][0], {"stat_cached": False})
BACKENDS["thread-nostat"] = (BACKENDS["thread"][0], {"stat_cached": False})


def data_files(cold: bool = False) -> tuple[Path, Path]:
    """The random-data file and the short-lines file, made once.

    Cold runs get their own random-data file: evicting it does not disturb
    a hot-cache profile running at the same time."""
    DATA.mkdir(parents=True, exist_ok=True)
    rand, lines = DATA / ("cold.bin" if cold else "rand.bin"), DATA / "lines.txt"
    if not rand.exists() or rand.stat().st_size != RAND_SIZE:
        with open(rand, "wb") as f:
            for _ in range(RAND_SIZE // (1 << 20)):
                f.write(random.randbytes(1 << 20))
            os.fsync(f.fileno())
    if not lines.exists():
        gen = random.Random(1)
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 éß"
        with open(lines, "w", encoding="utf-8") as f:
            size = 0
            while size < LINES_SIZE:
                line = "".join(gen.choices(alphabet, k=gen.randrange(61))) + "\n"
                f.write(line)
                size += len(line.encode())
            os.fsync(f.fileno())
    return rand, lines


def offsets(n: int, seed: int) -> list[int]:
    """n block-aligned offsets: a random permutation of the file's blocks,
    repeated. Made from one fixed-size shuffle and a list repeat, so that
    making them costs next to nothing per offset (callgrind counts it)."""
    blocks = [i * BLOCK for i in range(RAND_SIZE // BLOCK)]
    random.Random(seed).shuffle(blocks)
    return (blocks * (n // len(blocks) + 1))[:n]


def make_context(backend: str) -> Any:
    """An AsyncioContext of the backend, bound to the running loop."""
    module_name, options = BACKENDS[backend]
    module = __import__(module_name, fromlist=["AsyncioContext"])
    ctx = module.AsyncioContext(**options)
    if backend == "uring-nobatch":
        # A factory without __self__ and no call_soon: nothing can schedule
        # a batched flush, so every request enters the ring at once.
        loop = asyncio.get_running_loop()
        ctx.context.set_future_factory(lambda: loop.create_future())
    return ctx


async def read_each(read: Callable[..., Any], fd: int, offs: list[int]) -> None:
    """``await read(BLOCK, fd, off)`` for each offset, one after another."""
    for off in offs:
        await read(BLOCK, fd, off)


async def run_reads(kind: str, backend: str, fd: int, offs: list[int]) -> None:
    """One read after another through AsyncioContext.read or read_async."""
    ctx = make_context(backend)
    try:
        if kind == "read":
            await read_each(ctx.read, fd, offs)
        else:
            read_async = ctx.context.read_async
            for off in offs:
                r = read_async(BLOCK, fd, off)
                if r.__class__ is not bytes:
                    await r
    finally:
        ctx.close()


async def run_writes(backend: str, fd: int, offs: list[int], vectored: bool = False) -> None:
    """One ``ctx.write`` after another (write1), or ``ctx.writev`` of two
    halves (writev1)."""
    ctx = make_context(backend)
    block = random.randbytes(BLOCK)
    try:
        if vectored:
            halves = [block[: BLOCK // 2], block[BLOCK // 2 :]]
            for off in offs:
                await ctx.writev(halves, fd, off)
        else:
            for off in offs:
                await ctx.write(block, fd, off)
    finally:
        ctx.close()


def write_file() -> int:
    """A descriptor of the write rows' file, made once (never read)."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / "write.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, RAND_SIZE)
    return fd


async def run_stats(backend: str, path: Path | int, n: int) -> None:
    """``await ctx.stat(path)`` n times, one after another (an int: fstat)."""
    ctx = make_context(backend)
    try:
        stat = ctx.stat
        for _ in range(n):
            await stat(path)
    finally:
        ctx.close()


async def run_afp(backend: str, path: Path, offs: list[int]) -> None:
    """One ``AIOFile.read`` after another (aiofile's hot path)."""
    from aiofile import AIOFile

    ctx = make_context(backend)
    try:
        async with AIOFile(path, "rb", context=ctx) as afp:
            read = afp.read
            for off in offs:
                await read(BLOCK, off)
    finally:
        ctx.close()


async def run_trio(kind: str, backend: str, fd: int, offs: list[int]) -> None:
    """One read after another through a TrioContext (read or submit)."""
    from caio.trio_base import trio_context_class

    name = backend.partition("-")[0]
    async with trio_context_class(name)(**BACKENDS[backend][1]) as ctx:
        if kind == "trio":
            await read_each(ctx.read, fd, offs)
        else:
            operation = ctx.OPERATION_CLASS.read
            submit = ctx.submit
            for off in offs:
                await submit(operation(BLOCK, fd, off))


async def run_trio_cold64(backend: str, fd: int, offs: list[int]) -> None:
    """run_cold64 under Trio: 64 tasks sharing one TrioContext."""
    import trio

    from caio.trio_base import trio_context_class

    async with trio_context_class(backend.partition("-")[0])(**BACKENDS[backend][1]) as ctx:
        async with trio.open_nursery() as nursery:
            for i in range(64):
                nursery.start_soon(read_each, ctx.read, fd, offs[i::64])


async def run_cold(backend: str, fd: int, offs: list[int], in_flight: int) -> None:
    """``in_flight`` coroutines sharing one context, each reading its share
    of offs."""
    ctx = make_context(backend)

    async def worker(part: list[int]) -> None:
        for off in part:
            await ctx.read(BLOCK, fd, off)

    try:
        await asyncio.gather(*(worker(offs[i::in_flight]) for i in range(in_flight)))
    finally:
        ctx.close()


async def run_direct(backend: str, fd: int, offs: list[int], in_flight: int) -> None:
    """``in_flight`` coroutines, each reading its share into its own
    page-aligned buffer (O_DIRECT needs one)."""
    ctx = make_context(backend)

    async def worker(part: list[int]) -> None:
        readinto, buffer = ctx.readinto, mmap.mmap(-1, BLOCK)
        for off in part:
            await readinto(buffer, fd, off)

    try:
        await asyncio.gather(*(worker(offs[i::in_flight]) for i in range(in_flight)))
    finally:
        ctx.close()


async def run_pipe(backend: str, n: int) -> None:
    """64 readers of an empty pipe, refilled 64 bytes at a time (pipe64)."""
    ctx = make_context(backend)
    r, w = os.pipe()
    rounds = max(1, n // 64)

    async def reader() -> None:
        readinto, buffer = ctx.readinto, bytearray(1)
        for _ in range(rounds):
            await readinto(buffer, r, 0)

    async def writer() -> None:
        for _ in range(rounds):
            for _ in range(4):
                await asyncio.sleep(0)
            os.write(w, bytes(64))

    try:
        await asyncio.gather(writer(), *(reader() for _ in range(64)))
    finally:
        ctx.close()
        os.close(r)
        os.close(w)


async def run_lines(path: Path, n: int, mode: str = "r") -> None:
    """n lines with async_open, starting again at the end of the file."""
    from aiofile import async_open

    got = 0
    while got < n:
        async with async_open(path, mode) as f:
            async for _ in f:
                got += 1
                if got == n:
                    break


async def run_chunks(path: Path, n: int) -> None:
    """n 64 KiB chunks with iter_chunked, starting again at the end."""
    from aiofile import async_open

    got = 0
    async with async_open(path, "rb") as f:
        while got < n:
            f.seek(0)
            async for _ in f.iter_chunked(CHUNK):
                got += 1
                if got == n:
                    break


def stdlib_lines(path: Path, n: int, mode: str = "r") -> None:
    """n lines with the built-in open."""
    got = 0
    while got < n:
        with open(path, mode, encoding=None if "b" in mode else "utf-8") as f:
            for _ in f:
                got += 1
                if got == n:
                    break


def stdlib_chunks(path: Path, n: int) -> None:
    """n 64 KiB chunks with an unbuffered built-in file."""
    got = 0
    with open(path, "rb", buffering=0) as f:
        while got < n:
            f.seek(0)
            while got < n and f.read(CHUNK):
                got += 1


def workload(op: str, n: int, prime: bool = False) -> Callable[[], object]:
    """A callable that runs op n times; set-up (files, cache state) done.

    ``prime``: read the data files first, so that the page cache is hot
    (done on the warm-up run only, to keep the copy out of profiles)."""
    kind, _, backend = op.partition("-")
    rand, lines = data_files(
        cold=kind in ("cold64", "cold1", "direct64", "direct1", "triocold64"),
    )
    fd = os.open(rand, os.O_RDONLY)
    if kind == "triocold64":
        import trio

        offs = offsets(n, 2)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        return lambda: trio.run(run_trio_cold64, backend, fd, offs)
    if kind == "pipe64" and backend in BACKENDS and backend != "linux":
        return lambda: asyncio.run(run_pipe(backend, n))
    if kind in ("direct64", "direct1"):
        offs = offsets(n, 3)
        direct_fd = os.open(rand, os.O_RDONLY | os.O_DIRECT)
        in_flight = 64 if kind == "direct64" else 1
        return lambda: asyncio.run(run_direct(backend, direct_fd, offs, in_flight))
    if kind in ("cold64", "cold1"):
        offs = offsets(n, 2)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        # No readahead: otherwise a read brings in its neighbours and most
        # later reads of the permutation are page-cache hits.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        if backend == "pread":
            return lambda: [os.pread(fd, BLOCK, off) for off in offs]
        in_flight = 64 if kind == "cold64" else 1
        return lambda: asyncio.run(run_cold(backend, fd, offs, in_flight))
    for path in (rand, lines) if prime else ():
        with open(path, "rb", buffering=0) as f:
            while f.read(1 << 20):
                pass
    if op == "pread":
        offs = offsets(n, 1)
        pread = os.pread

        def loop() -> None:
            for off in offs:
                pread(fd, BLOCK, off)

        return loop
    if op in ("pwrite", "pwritev") or kind in ("write1", "writev1") and backend in BACKENDS:
        wfd, offs, block = write_file(), offsets(n, 4), random.randbytes(BLOCK)
        if op == "pwrite":
            return lambda: [os.pwrite(wfd, block, off) for off in offs]
        if op == "pwritev":
            halves = [block[: BLOCK // 2], block[BLOCK // 2 :]]
            return lambda: [os.pwritev(wfd, halves, off) for off in offs]
        return lambda: asyncio.run(run_writes(backend, wfd, offs, kind == "writev1"))
    if op == "stat-os":
        return lambda: [os.stat(rand) for _ in range(n)]
    if op == "fstat-os":
        return lambda: [os.fstat(fd) for _ in range(n)]
    if kind in ("stat", "fstat") and backend in BACKENDS:
        return lambda: asyncio.run(run_stats(backend, rand if kind == "stat" else fd, n))
    if kind in ("read", "bare") and backend in BACKENDS:
        offs = offsets(n, 1)
        return lambda: asyncio.run(run_reads(kind, backend, fd, offs))
    if kind == "afp" and backend in BACKENDS:
        offs = offsets(n, 1)
        return lambda: asyncio.run(run_afp(backend, rand, offs))
    if kind in ("trio", "triosubmit") and backend in BACKENDS:
        import trio

        offs = offsets(n, 1)
        return lambda: trio.run(run_trio, kind, backend, fd, offs)
    runners: dict[str, Callable[[], object]] = {
        "lines-stdlib": lambda: stdlib_lines(lines, n),
        "lines-aiofile": lambda: asyncio.run(run_lines(lines, n)),
        "blines-stdlib": lambda: stdlib_lines(lines, n, "rb"),
        "blines-aiofile": lambda: asyncio.run(run_lines(lines, n, "rb")),
        "chunks-stdlib": lambda: stdlib_chunks(rand, n),
        "chunks-aiofile": lambda: asyncio.run(run_chunks(rand, n)),
    }
    if op not in runners:
        raise SystemExit(f"unknown operation {op!r}")
    return runners[op]


def measure(op: str, n: int) -> None:
    """Warm up, run op n times and print the time per operation."""
    workload(op, max(1, min(2000, n // 10)), prime=True)()  # imports, allocator, first-use paths
    run = workload(op, n)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    run()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    print(
        f"{op} n={n}: wall {wall / n * 1e6:.3f} us/op, "
        f"user {user / n * 1e6:.3f}, sys {system / n * 1e6:.3f}",
        file=sys.stderr,
    )


# "  1,234 (12.34%)  file.c:function [/path/object.so]"
ANNOTATE_LINE = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+(.*):(.*?) \[(.*)\]\s*$")


def callgrind_costs(op: str, n: int, out_dir: str) -> dict[tuple[str, str], int]:
    """Self instructions per (object, function) of one callgrind run."""
    out = os.path.join(out_dir, f"callgrind.{op}.{n}")
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         sys.executable, __file__, op, str(n)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", out],
        check=True, capture_output=True, text=True,
    ).stdout
    costs: dict[tuple[str, str], int] = defaultdict(int)
    for line in text.splitlines():
        m = ANNOTATE_LINE.match(line)
        if m:
            function = re.sub(r"'\d+$", "", m.group(3))  # recursion levels
            costs[(os.path.basename(m.group(4)), function)] += int(m.group(1).replace(",", ""))
    return costs


def callgrind(op: str, n1: int, n2: int) -> None:
    """Print user-space instructions per operation by object and function."""
    with tempfile.TemporaryDirectory(prefix="caio-cg-") as out_dir:
        small = callgrind_costs(op, n1, out_dir)
        large = callgrind_costs(op, n2, out_dir)
    per_op = {
        key: (large.get(key, 0) - small.get(key, 0)) / (n2 - n1)
        for key in set(small) | set(large)
    }
    by_object: dict[str, float] = defaultdict(float)
    for (obj, _), cost in per_op.items():
        by_object[obj] += cost
    print(f"{op}: {sum(per_op.values()):.0f} user-space instructions per operation")
    for obj, cost in sorted(by_object.items(), key=lambda item: -item[1]):
        if abs(cost) >= 5:
            print(f"  {cost:8.0f}  {obj}")
    print("  top functions:")
    for (obj, function), cost in sorted(per_op.items(), key=lambda item: -item[1])[:20]:
        print(f"  {cost:8.0f}  {function} [{obj}]")


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("op")
    parser.add_argument("n", type=int, nargs="+")
    args = parser.parse_args(argv)
    if min(args.n) < 1:
        parser.error("N must be at least 1")
    if args.callgrind:
        if len(args.n) != 2 or args.n[1] <= args.n[0]:
            parser.error("--callgrind takes N1 N2 with N2 > N1")
        callgrind(args.op, args.n[0], args.n[1])
    else:
        measure(args.op, args.n[0])


if __name__ == "__main__":
    main()
