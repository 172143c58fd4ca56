"""Our cost per page-cache operation against the stdlib's, in one process.

    python benchmarks/profile/paired.py BACKEND [--in-flight N] [--write]
        [--slices S] [--slice-ops K]
    python benchmarks/profile/paired.py BACKEND --chunks SIZE [--slices S]

Alternates slices of K operations: a plain ``os.pread`` (``os.pwrite``)
loop, then the same K offsets through ``await ctx.read`` (``ctx.write``)
of BACKEND's AsyncioContext (uring, linux, thread, python; N coroutines,
each with a consecutive share of the offsets), the order swapped every
slice. With ``--chunks SIZE`` a slice is one pass over the file instead:
``open(path, "rb", buffering=0).read(SIZE)`` until the end against
``async for chunk in async_open(path, "rb").iter_chunked(SIZE)`` (aiofile
on BACKEND's context). Prints the median and spread of the per-slice ratios of the stdlib
loop's time to ours (higher is better, 1.0 is parity) and the ratio of
the total times.

Why: these machines switch between a fast and a slow speed every few
hundred milliseconds (another guest on the same core), by as much as 30 %.
``benchmarks/run.py`` measures each participant in its own process,
seconds apart, so a round's ratio is often one speed against the other
and the median over five rounds moves by 10 % from one sitting to the
next. Slices of ~30 ms side by side see the same speed, and the ratio of
the per-operation costs comes out within a few percent run after run. It
is a profiling tool, not the benchmark: the issues' targets are measured
by ``nox -s bench``.

The 64 MiB data file of ``ops.py`` (``$CAIO_PROFILE_DIR``), kept in the page
cache; writes rewrite it in place (4 KiB at block-aligned offsets, well
under the dirty-page throttle for the default sizes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backend", choices=sorted(ops.BACKENDS))
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="pwrite against ctx.write")
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--slice-ops", type=int, default=32768)
    parser.add_argument("--chunks", type=int, metavar="SIZE",
                        help="stream the file in SIZE chunks (aiofile's iter_chunked)")
    args = parser.parse_args()
    rand, _ = ops.data_files()
    fd = os.open(rand, os.O_RDWR)
    try:
        ratios, total = asyncio.run(paired(args, fd))
    finally:
        os.close(fd)
    tenth = statistics.quantiles(ratios, n=10)
    what = "writes" if args.write else "reads"
    how = (
        f"passes in {args.chunks}-byte chunks" if args.chunks
        else f"{args.in_flight} in flight, 4 KiB {what}"
    )
    print(
        f"{args.backend}, {how}: stdlib time / ours "
        f"median {statistics.median(ratios):.3f} (10th-90th percentile "
        f"{tenth[0]:.3f}-{tenth[-1]:.3f}, {len(ratios)} slices"
        f"{'' if args.chunks else f' of {args.slice_ops}'}); total {total:.3f}"
    )


async def paired(args: argparse.Namespace, fd: int) -> tuple[list[float], float]:
    count, in_flight = args.slice_ops, args.in_flight
    offs = ops.offsets(count, seed=1)
    payload = os.urandom(ops.BLOCK)
    # Consecutive shares: a share dealt round-robin would visit the list's
    # int objects far apart in memory, a cache miss per offset that the
    # stdlib loop, reading them in order, does not pay.
    shares = [offs[i * count // in_flight:(i + 1) * count // in_flight] for i in range(in_flight)]
    ctx = ops.make_context(args.backend)
    call = ctx.write if args.write else ctx.read

    def stdlib() -> float:
        started = time.perf_counter()
        if args.write:
            pwrite = os.pwrite
            for off in offs:
                pwrite(fd, payload, off)
        else:
            pread = os.pread
            for off in offs:
                pread(fd, ops.BLOCK, off)
        return time.perf_counter() - started

    async def worker(share: list[int]) -> None:
        if args.write:
            for off in share:
                await call(payload, fd, off)
        else:
            for off in share:
                await call(ops.BLOCK, fd, off)

    async def ours() -> float:
        started = time.perf_counter()
        if in_flight == 1:
            await worker(shares[0])
        else:
            await asyncio.gather(*(worker(share) for share in shares))
        return time.perf_counter() - started

    if args.chunks:
        import aiofile

        path, size = ops.data_files()[0], args.chunks

        def stdlib() -> float:
            started = time.perf_counter()
            with open(path, "rb", buffering=0) as f:
                read = f.read
                while read(size):
                    pass
            return time.perf_counter() - started

        async def ours() -> float:
            started = time.perf_counter()
            async with aiofile.async_open(path, "rb", context=ctx) as f:
                async for _chunk in f.iter_chunked(size):
                    pass
            return time.perf_counter() - started

    try:
        os.pread(fd, ops.RAND_SIZE, 0)  # cached
        stdlib()  # warm-up: free lists, the context's first operations
        await ours()
        ratios: list[float] = []
        theirs_total = ours_total = 0.0
        for i in range(args.slices):
            if i % 2:
                theirs, mine = stdlib(), await ours()
            else:
                mine = await ours()
                theirs = stdlib()
            ratios.append(theirs / mine)
            theirs_total += theirs
            ours_total += mine
    finally:
        close: Any = ctx.close()
        if close is not None:
            await close
    return ratios, theirs_total / ours_total


if __name__ == "__main__":
    main()
