"""Soak test: many mixed operations per caio backend, then count what leaked.

    python benchmarks/soak.py [--ops N] [--seconds S] [--backends uring,thread]

On each importable backend (or those named) one AsyncioContext runs ``N``
operations (default one million) from 32 coroutines: reads and writes of
4 KiB blocks of a data file whose every read is checked against the bytes
last written there, fsync/fdsync, reads and writes cancelled at a random
moment (of blocks whose content is not checked: a cancelled write may
still land), and operations that must fail (a read of a pipe's write end:
EBADF). ``--seconds`` bounds the whole run instead, split evenly between
the backends.

Before and after each backend (after its context is closed) it reports the
resident set (current and peak), open descriptors and threads, and exits
non-zero if any check failed: a wrong byte, an unexpected error, a missing
error, descriptors or threads left behind, or a resident set that grew by
more than ``--max-rss-growth`` MiB (default 32: the interpreter's own
allocator keeps freed memory, so growth is measured after a warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 4096
CHECKED_BLOCKS = 256  # content verified
SCRATCH_BLOCKS = 64  # where cancelled writes go
WORKERS = 32


@dataclass
class Tally:
    """What one backend's run did."""

    ops: int = 0
    cancelled: int = 0
    expected_errors: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(message)
        else:
            self.failures[-1] = f"... and more (last: {message})"


def process_status() -> dict[str, int]:
    """Resident set (KiB), its peak, descriptors and threads of this process."""
    status: dict[str, int] = {}
    with open("/proc/self/status") as file:
        for line in file:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                status[key] = int(value.split()[0])
    status["fds"] = len(os.listdir("/proc/self/fd"))
    return status


def block_bytes(block: int, version: int) -> bytes:
    """The 4 KiB written to ``block`` by its ``version``-th write."""
    stamp = f"{block:06d}:{version:010d};".encode()
    return (stamp * (BLOCK // len(stamp) + 1))[:BLOCK]


@dataclass
class Workload:
    """The shared state of one backend's run."""

    context: Any
    fd: int
    pipe_w: int
    tally: Tally
    deadline: float
    left: int  # operations still to start
    seed: InitVar[int]
    # Per checked block: its version; a block being written is locked so
    # that a read never races a write of the same block.
    versions: list[int] = field(default_factory=lambda: [0] * CHECKED_BLOCKS)
    busy: list[bool] = field(default_factory=lambda: [False] * CHECKED_BLOCKS)

    def __post_init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)

    def take(self) -> bool:
        if self.left <= 0 or (self.left % 256 == 0 and time.monotonic() > self.deadline):
            return False
        self.left -= 1
        self.tally.ops += 1
        return True

    async def worker(self) -> None:
        rnd = self.rnd
        while self.take():
            kind = rnd.random()
            try:
                if kind < 0.55:
                    await self.checked_read(rnd.randrange(CHECKED_BLOCKS))
                elif kind < 0.80:
                    await self.checked_write(rnd.randrange(CHECKED_BLOCKS))
                elif kind < 0.82:
                    await (self.context.fsync if kind < 0.81 else self.context.fdsync)(self.fd)
                elif kind < 0.97:
                    await self.cancelled(rnd.random() < 0.5, rnd.randrange(3))
                else:
                    await self.failing()
            except Exception as exc:  # every surprise is counted
                self.tally.fail(f"unexpected {exc!r}")

    async def checked_read(self, block: int) -> None:
        if self.busy[block]:
            await asyncio.sleep(0)
            return
        version = self.versions[block]
        data = await self.context.read(BLOCK, self.fd, block * BLOCK)
        if self.busy[block] or self.versions[block] != version:
            return  # a write began meanwhile: either content is right
        if data != block_bytes(block, version):
            self.tally.fail(f"block {block}: read {data[:24]!r}, expected version {version}")

    async def checked_write(self, block: int) -> None:
        if self.busy[block]:
            await asyncio.sleep(0)
            return
        self.busy[block] = True
        try:
            version = self.versions[block] + 1
            written = await self.context.write(block_bytes(block, version), self.fd, block * BLOCK)
            if written != BLOCK:
                self.tally.fail(f"block {block}: wrote {written} of {BLOCK} bytes")
            self.versions[block] = version
        finally:
            self.busy[block] = False

    async def cancelled(self, write: bool, turns: int) -> None:
        offset = (CHECKED_BLOCKS + self.rnd.randrange(SCRATCH_BLOCKS)) * BLOCK
        if write:
            call = self.context.write(b"c" * BLOCK, self.fd, offset)
        else:
            call = self.context.read(BLOCK, self.fd, offset)
        task = asyncio.ensure_future(call)
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        try:
            result = await task
        except asyncio.CancelledError:
            self.tally.cancelled += 1
            return
        if (len(result) if isinstance(result, bytes) else result) != BLOCK:
            self.tally.fail(f"scratch {'write' if write else 'read'} returned {result!r:.40}")

    async def failing(self) -> None:
        try:
            await self.context.read(16, self.pipe_w, 0)
        except OSError as exc:
            if exc.errno == errno.EBADF:
                self.tally.expected_errors += 1
                return
            raise
        self.tally.fail("a read of a pipe's write end succeeded")


async def run_backend(module: Any, path: Path, ops: int, seconds: float, seed: int) -> Tally:
    tally = Tally()
    fd = os.open(path, os.O_RDWR)
    pipe_r, pipe_w = os.pipe()
    context = module.AsyncioContext()
    try:
        # Every checked block starts at version 0.
        for block in range(CHECKED_BLOCKS):
            os.pwrite(fd, block_bytes(block, 0), block * BLOCK)
        load = Workload(context, fd, pipe_w, tally, time.monotonic() + seconds, ops, seed)
        await asyncio.gather(*(load.worker() for _ in range(WORKERS)))
        # Nothing in flight any more: the file must hold the last versions.
        for block in range(CHECKED_BLOCKS):
            data = os.pread(fd, BLOCK, block * BLOCK)
            if data != block_bytes(block, load.versions[block]):
                tally.fail(f"block {block} on disk is not its last version")
    finally:
        context.close()
        for descriptor in (fd, pipe_r, pipe_w):
            os.close(descriptor)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1_000_000, help="operations per backend")
    parser.add_argument("--seconds", type=float, default=None,
                        help="time for the whole run, split between the backends")
    parser.add_argument("--backends", default="", help="comma-separated CAIO_IMPL names")
    parser.add_argument("--max-rss-growth", type=float, default=32.0, metavar="MIB")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    import caio
    from caio._backends import BACKENDS

    wanted = [b for b in args.backends.split(",") if b] or list(BACKENDS)
    modules = []
    for name in wanted:
        module = getattr(caio, BACKENDS[name] + "_asyncio", None) if name in BACKENDS else None
        if module is None:
            print(f"{name}: not importable here, skipped")
            continue
        modules.append((name, module))
    if not modules:
        print("no backend to soak", file=sys.stderr)
        return 2
    seconds = args.seconds / len(modules) if args.seconds else float("inf")
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"seed {seed}; {args.ops} operations per backend"
          + (f", at most {seconds:.1f} s each" if args.seconds else ""))

    ok = True
    with tempfile.TemporaryDirectory(prefix="caio-soak-") as directory:
        path = Path(directory) / "data"
        path.write_bytes(bytes((CHECKED_BLOCKS + SCRATCH_BLOCKS) * BLOCK))
        for name, module in modules:
            # Warm-up: the allocator's arenas, the pools' threads, imports.
            asyncio.run(run_backend(module, path, 20_000, 5.0, seed))
            before = process_status()
            threads_before = threading.active_count()
            started = time.monotonic()
            tally = asyncio.run(run_backend(module, path, args.ops, seconds, seed))
            elapsed = time.monotonic() - started
            after = process_status()
            # io_uring's io-wq workers (threads of this process) leave a
            # moment after their ring is gone.
            for _ in range(50):
                if after["Threads"] <= before["Threads"]:
                    break
                time.sleep(0.02)
                after = process_status()
            growth = (after["VmRSS"] - before["VmRSS"]) / 1024
            problems = list(tally.failures)
            if after["fds"] > before["fds"]:
                problems.append(f"{after['fds'] - before['fds']} descriptors left open")
            if after["Threads"] > before["Threads"] or threading.active_count() > threads_before:
                problems.append(f"threads {before['Threads']} -> {after['Threads']}")
            if growth > args.max_rss_growth:
                problems.append(f"resident set grew {growth:.1f} MiB")
            if tally.expected_errors == 0 and tally.ops > 1000:
                problems.append("no failing operation was tried")
            print(
                f"{name}: {tally.ops} operations in {elapsed:.1f} s "
                f"({tally.ops / max(elapsed, 1e-9):.0f}/s), {tally.cancelled} cancelled, "
                f"{tally.expected_errors} expected errors, {len(tally.failures)} failures; "
                f"RSS {before['VmRSS'] / 1024:.1f} -> {after['VmRSS'] / 1024:.1f} MiB "
                f"(peak {after['VmHWM'] / 1024:.1f}), descriptors {before['fds']} -> "
                f"{after['fds']}, threads {before['Threads']} -> {after['Threads']}",
            )
            for problem in problems:
                print(f"  FAIL {name}: {problem}")
            ok = ok and not problems
    print("soak: OK" if ok else "soak: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
