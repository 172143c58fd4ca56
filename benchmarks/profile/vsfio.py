"""Two builds of caio against fio, each run between two fio runs.

    python benchmarks/profile/vsfio.py read 6 venv-a/bin/python venv-b/bin/python \\
        --file /path/on/a/disk/1GiB.bin

Each round runs fio, A, fio, B, fio (the order of A and B alternating by
round): 64 random 4 KiB operations in flight on FILE for ``--seconds``,
``O_DIRECT`` reads or writes, or buffered reads with the page cache dropped
first (``cold``). Each of our runs is a process of its own (the given
Python imports caio from wherever it is installed) and is held against
the geometric mean of the fio runs just before and after it; printed: the
fio figures, each run's ratio, their medians, and the median of B/A paired
by round. The disk's drift between neighbouring runs is what is left.
This is how docs/performance.md measured the uring backend's
``URING_DISK_BATCH``. Writes overwrite FILE with random data.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import mmap
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The harness's modules, as its own scripts import them (benchmarks/).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import fiojob
from suite import IoJob

BLOCK = 4096
IN_FLIGHT = 64
BACKENDS = {"uring": "linux_uring_asyncio", "linux": "linux_aio_asyncio",
            "thread": "thread_aio_asyncio"}


def open_file(path: str, kind: str) -> int:
    if kind == "cold":
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        return fd
    return os.open(path, (os.O_RDWR if kind == "write" else os.O_RDONLY) | os.O_DIRECT)


async def ours(path: str, kind: str, backend: str, seconds: float, seed: int) -> float:
    """Operations per second of IN_FLIGHT coroutines on one context."""
    import caio

    ctx: Any = getattr(caio, BACKENDS[backend]).AsyncioContext()
    fd = open_file(path, kind)
    blocks = os.path.getsize(path) // BLOCK
    op = ctx.write if kind == "write" else ctx.readinto
    seeds = random.Random(seed)
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        buffer = mmap.mmap(-1, BLOCK)   # page-aligned, as O_DIRECT needs
        buffer[:] = os.urandom(BLOCK)
        offsets = random.Random(seeds.randrange(1 << 30))
        while True:
            for _ in range(16):
                await op(buffer, fd, offsets.randrange(blocks) * BLOCK)
            done += 16
            if time.perf_counter() > deadline:
                return

    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return done / (time.perf_counter() - start)
    finally:
        ctx.close()
        os.close(fd)


def fio(path: str, kind: str, seconds: float, seed: int) -> float:
    """fio's operations per second, with the suite's command line (fiojob)."""
    if kind == "cold":
        os.close(open_file(path, kind))     # drops the page cache
    job = IoJob("randwrite" if kind == "write" else "randread", BLOCK, IN_FLIGHT,
                direct=kind != "cold")
    command = fiojob.fio_command("fio", "vsfio", job, path, os.path.getsize(path), seconds, seed)
    return fiojob.run_fio(command, timeout=seconds + 60, write=job.write).iops


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Two builds of caio against fio.")
    parser.add_argument("kind", choices=["read", "write", "cold"])
    parser.add_argument("rounds", type=int)
    parser.add_argument("pythons", nargs=2, metavar="PYTHON")
    parser.add_argument("--file", required=True, help="a file of 1 GiB or so, on a disk")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="uring")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)   # a seed: one run of ours
    args = parser.parse_args(argv)
    if args.worker is not None:
        rate = asyncio.run(ours(args.file, args.kind, args.backend, args.seconds, args.worker))
        print(rate)
        return 0
    seeds = random.Random(1)

    def run_ours(python: str) -> float:
        proc = subprocess.run(
            [python, __file__, args.kind, "1", python, python, "--file", args.file,
             "--backend", args.backend, "--seconds", str(args.seconds),
             "--worker", str(seeds.randrange(1 << 30))],
            capture_output=True, text=True, cwd="/",
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"{python}: {last}")
        return float(proc.stdout)

    pythons = dict(zip("AB", args.pythons, strict=True))
    runs = [("fio", fio(args.file, args.kind, args.seconds, seeds.randrange(1 << 30)))]
    for round_index in range(args.rounds):
        for name in "AB" if round_index % 2 == 0 else "BA":
            runs.append((name, run_ours(pythons[name])))
            runs.append(("fio", fio(args.file, args.kind, args.seconds, seeds.randrange(1 << 30))))
    ratios: dict[str, list[float]] = {"A": [], "B": []}
    for i, (who, value) in enumerate(runs):
        if who != "fio":
            ratios[who].append(value / math.sqrt(runs[i - 1][1] * runs[i + 1][1]))
    print(f"{args.kind}, {args.backend}: fio", " ".join(f"{v / 1000:.0f}k" for w, v in runs
                                                         if w == "fio"))
    for name, python in pythons.items():
        shown = " ".join(f"{r:.2f}" for r in ratios[name])
        print(f"  {name} {python}: median {statistics.median(ratios[name]):.3f}x fio  ({shown})")
    paired = [y / x for x, y in zip(ratios["A"], ratios["B"], strict=True)]
    print(f"  B/A paired by round: median {statistics.median(paired):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
