"""Run one measurement in this process and write its result as JSON.

The driver (``run.py``) starts one process per measurement::

    python workloads.py SPEC_JSON RESULT_PATH
    python workloads.py --probe RESULT_PATH

Only the workload itself is timed: interpreter start-up, imports, opening
the event loop and the caio context, generating offsets and a first
validation read all happen before the clock starts.

A participant that cannot run here (a module that does not import, a
``CAIO_IMPL`` that was not honoured, a missing ``examples/cp.py``) raises
``Unavailable``; the driver then reports it as "unavailable (reason)".
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import inspect
import json
import mmap
import os
import random
import runpy
import shutil
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import fiojob
from suite import (
    BACKEND_MODULES,
    BASELINE,
    BLOCK,
    BURST_WRITES,
    CAIO_BACKENDS,
    FIO,
    IN_FLIGHT,
    MIB,
    PUBLISHED,
    WORKLOADS_BY_NAME,
    IoJob,
)

Result = dict[str, Any]
perf_counter = time.perf_counter


class Unavailable(Exception):
    """The participant cannot run on this machine or in this environment."""


# ---------------------------------------------------------------- participants


def import_optional(name: str) -> Any:
    """Import a module, turning any import failure into ``Unavailable``."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # an extension may fail with OSError, not ImportError
        raise Unavailable(f"import {name}: {type(exc).__name__}: {exc}") from exc


def caio_context_class(participant: str) -> Any:
    """The ``AsyncioContext`` of the participant's backend, used directly."""
    return import_optional(BACKEND_MODULES[CAIO_BACKENDS[participant]]).AsyncioContext


def aiofile_for(participant: str) -> Any:
    """Import aiofile, checking that ``CAIO_IMPL`` selected the right backend.

    aiofile uses ``caio.AsyncioContext``; the driver forces the backend with
    ``CAIO_IMPL``. A silent fallback would measure the wrong thing, so it is
    reported as unavailable instead.
    """
    expected = caio_context_class(participant)
    caio = import_optional("caio")
    if caio.AsyncioContext is not expected:
        chosen = getattr(caio.AsyncioContext, "__module__", repr(caio.AsyncioContext))
        raise Unavailable(
            f"CAIO_IMPL={os.environ.get('CAIO_IMPL')} selected {chosen}, "
            f"not {BACKEND_MODULES[CAIO_BACKENDS[participant]]}"
        )
    return import_optional("aiofile")


async def close_context(ctx: Any) -> None:
    """Close a caio context whether its ``close()`` is sync or async."""
    closing = ctx.close()
    if inspect.isawaitable(closing):
        await closing


# ---------------------------------------------------------------- helpers


def drop_cache(path: str) -> None:
    """Evict a file from the page cache (``--cold``).

    Dirty pages cannot be dropped, so the file is synced first.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def random_offsets(seed: int, count: int, file_size: int) -> list[int]:
    """Block-aligned random offsets; the same seed gives every participant
    of a round the same offsets."""
    rng = random.Random(seed)
    blocks = file_size // BLOCK
    return [rng.randrange(blocks) * BLOCK for _ in range(count)]


def batched(items: Sequence[int], size: int) -> list[Sequence[int]]:
    """Split into batches; the deadline is checked once per batch so that
    the inner loop is the bare I/O call for every participant alike."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def shares(items: Sequence[int], parts: int) -> list[Sequence[int]]:
    """Cut items into ``parts`` consecutive shares, one per coroutine.

    Consecutive, not dealt round-robin: a coroutine whose operations finish
    during the call (page-cache hits) runs its whole share before the next
    one starts, and a round-robin share visits the list's int objects 64
    apart in memory. That alone made a plain ``os.pread`` loop 12-15 %
    slower than over the same offsets in order (a cache miss per offset),
    a cost the stdlib loop, which reads them in order, did not pay.
    """
    count = len(items)
    return [items[i * count // parts : (i + 1) * count // parts] for i in range(parts)]


def proc_status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (VmRSS, VmHWM)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def check_block(data: bytes, fd: int, offset: int, who: str) -> None:
    """A participant's read must return what os.pread returns."""
    if data != os.pread(fd, BLOCK, offset):
        raise RuntimeError(f"{who} read wrong data at offset {offset}")


def timed_rate(units: float, seconds: float, extra: Result | None = None) -> Result:
    return {"units": units, "seconds": seconds, "extra": extra or {}}


# ---------------------------------------------------------------- random I/O
#
# One function per participant family. Each returns (operations done,
# seconds). Operations stop at the offsets' end or at the deadline, checked
# once per batch.


def sync_random(
    fd: int, offsets: Sequence[int], budget: float, payload: bytes | None
) -> tuple[int, float]:
    pread, pwrite = os.pread, os.pwrite
    batches = batched(offsets, 256)
    done = 0
    start = perf_counter()
    deadline = start + budget
    if payload is None:
        for batch in batches:
            for offset in batch:
                pread(fd, BLOCK, offset)
            done += len(batch)
            if perf_counter() > deadline:
                break
    else:
        for batch in batches:
            for offset in batch:
                pwrite(fd, payload, offset)
            done += len(batch)
            if perf_counter() > deadline:
                break
    return done, perf_counter() - start


async def caio_random(
    ctx: Any, fd: int, offsets: Sequence[int], in_flight: int, budget: float, payload: bytes | None
) -> tuple[int, float]:
    read, write = ctx.read, ctx.write
    batch_size = 256 if in_flight == 1 else 16
    # Cut before the clock starts, as sync_random's batches are.
    work = [batched(share, batch_size) for share in shares(offsets, in_flight)]
    start = perf_counter()
    deadline = start + budget

    async def worker(batches: list[Sequence[int]]) -> int:
        done = 0
        for batch in batches:
            if payload is None:
                for offset in batch:
                    await read(BLOCK, fd, offset)
            else:
                for offset in batch:
                    await write(payload, fd, offset)
            done += len(batch)
            if perf_counter() > deadline:
                break
        return done

    if in_flight == 1:
        done = await worker(work[0])
    else:
        done = sum(await asyncio.gather(*(worker(batches) for batches in work)))
    return done, perf_counter() - start


async def aiofiles_random(
    files: Sequence[Any], offsets: Sequence[int], budget: float, payload: bytes | None
) -> tuple[int, float]:
    # aiofiles has no pread: each task owns its file object, so seek+read
    # (two thread hops) is never interleaved with another task's seek.
    parts = shares(offsets, len(files))
    start = perf_counter()
    deadline = start + budget

    async def worker(f: Any, share: Sequence[int]) -> int:
        done = 0
        for batch in batched(share, 16 if len(files) > 1 else 256):
            for offset in batch:
                await f.seek(offset)
                if payload is None:
                    await f.read(BLOCK)
                else:
                    await f.write(payload)
            done += len(batch)
            if perf_counter() > deadline:
                break
        return done

    done = sum(await asyncio.gather(*(worker(f, s) for f, s in zip(files, parts, strict=True))))
    return done, perf_counter() - start


def measure_random(
    spec: Result, in_flight: int, write: bool, count: int | None = None, sync: bool = False,
) -> Result:
    """``count`` operations (default: the sizes' ``rand_ops``), at most
    ``budget_seconds``; ``sync``: ``os.sync()`` first, untimed, so that no
    earlier writes (other measurements, the data files) are still being
    written back or hold the dirty-page throttle."""
    participant = spec["participant"]
    path = spec["files"]["write" if write else "stream"]
    size = os.path.getsize(path)
    offsets = random_offsets(spec["seed"], count or spec["sizes"]["rand_ops"], size)
    budget = spec["sizes"]["budget_seconds"]
    payload = os.urandom(BLOCK) if write else None
    if spec["cold"]:
        drop_cache(path)
    if sync:
        os.sync()
    fd = os.open(path, os.O_RDWR if write else os.O_RDONLY)
    try:
        if participant == "stdlib":
            done, seconds = sync_random(fd, offsets, budget, payload)
        elif participant in CAIO_BACKENDS:
            context_class = caio_context_class(participant)

            async def run_caio() -> tuple[int, float]:
                ctx = context_class()
                try:
                    if payload is None:
                        check_block(
                            await ctx.read(BLOCK, fd, offsets[-1]), fd, offsets[-1], participant
                        )
                    return await caio_random(ctx, fd, offsets, in_flight, budget, payload)
                finally:
                    await close_context(ctx)

            done, seconds = asyncio.run(run_caio())
        elif participant == "aiofiles":
            aiofiles = import_optional("aiofiles")

            async def run_aiofiles() -> tuple[int, float]:
                files = [
                    await aiofiles.open(path, "r+b" if write else "rb", buffering=0)
                    for _ in range(in_flight)
                ]
                try:
                    if payload is None:
                        await files[0].seek(offsets[-1])
                        check_block(await files[0].read(BLOCK), fd, offsets[-1], participant)
                    return await aiofiles_random(files, offsets, budget, payload)
                finally:
                    for f in files:
                        await f.close()

            done, seconds = asyncio.run(run_aiofiles())
        else:
            raise Unavailable(f"no implementation for {participant}")
        if write:
            os.fdatasync(fd)  # untimed: leave no writeback for the next measurement
    finally:
        os.close(fd)
    extra = {"ops": done, "partial": done < len(offsets)}
    if in_flight == 1:
        return {"value": seconds / done * 1e6, **timed_rate(done, seconds, extra)}
    return {"value": done / seconds, **timed_rate(done, seconds, extra)}


# ---------------------------------------------------------------- streaming


def measure_stream(spec: Result, chunk: int, path: str, max_passes: int) -> Result:
    """Read the whole file in ``chunk``-sized pieces, repeating whole passes
    until ``min_seconds`` (hot cache only: a second cold pass would be hot).
    A pass that goes on past ``4 * budget_seconds`` is cut short."""
    participant = spec["participant"]
    sizes = spec["sizes"]
    min_seconds = 0.0 if spec["cold"] else sizes["min_seconds"]
    hard_limit = 4 * sizes["budget_seconds"]
    file_size = os.path.getsize(path)
    if spec["cold"]:
        drop_cache(path)

    def enough(start: float, passes: int) -> bool:
        return passes >= max_passes or perf_counter() - start >= min_seconds

    if participant == "stdlib":
        total = passes = 0
        start = perf_counter()
        cut = start + hard_limit
        while True:
            with open(path, "rb", buffering=0) as f:
                read = f.read
                while data := read(chunk):
                    total += len(data)
                    if perf_counter() > cut:
                        break
            passes += 1
            if enough(start, passes) or perf_counter() > cut:
                break
        seconds = perf_counter() - start
    elif participant in CAIO_BACKENDS:
        aiofile = aiofile_for(participant)

        async def run_aiofile() -> tuple[int, int, float]:
            # The first open creates the loop's default caio context; keep
            # that (and a validation read) out of the timed part.
            async with aiofile.async_open(path, "rb") as f:
                with open(path, "rb") as ref:
                    if await f.read(BLOCK) != ref.read(BLOCK):
                        raise RuntimeError("async_open read wrong data")
            total = passes = 0
            start = perf_counter()
            cut = start + hard_limit
            while True:
                async with aiofile.async_open(path, "rb") as f:
                    async for data in f.iter_chunked(chunk):
                        total += len(data)
                        if perf_counter() > cut:
                            break
                passes += 1
                if enough(start, passes) or perf_counter() > cut:
                    break
            return total, passes, perf_counter() - start

        total, passes, seconds = asyncio.run(run_aiofile())
    elif participant == "aiofiles":
        aiofiles = import_optional("aiofiles")

        async def run_aiofiles() -> tuple[int, int, float]:
            async with aiofiles.open(path, "rb", buffering=0) as f:
                await f.read(BLOCK)  # starts the executor's threads
            total = passes = 0
            start = perf_counter()
            cut = start + hard_limit
            while True:
                async with aiofiles.open(path, "rb", buffering=0) as f:
                    read = f.read
                    while data := await read(chunk):
                        total += len(data)
                        if perf_counter() > cut:
                            break
                passes += 1
                if enough(start, passes) or perf_counter() > cut:
                    break
            return total, passes, perf_counter() - start

        total, passes, seconds = asyncio.run(run_aiofiles())
    else:
        raise Unavailable(f"no implementation for {participant}")
    partial = total < passes * file_size
    if not partial and total != passes * file_size:
        raise RuntimeError(f"read {total} bytes in {passes} passes of a {file_size}-byte file")
    extra = {"passes": passes, "bytes": total, "partial": partial}
    return {"value": total / seconds / 1e6, **timed_rate(total, seconds, extra)}


def measure_lines(spec: Result) -> Result:
    """Count the lines of a text file (UTF-8, text mode for everyone)."""
    participant = spec["participant"]
    path = spec["files"]["lines"]
    expected = spec["line_count"]
    if spec["cold"]:
        drop_cache(path)
    partial = False
    if participant == "stdlib":
        count = 0
        start = perf_counter()
        with open(path, encoding="utf-8") as f:
            for _line in f:
                count += 1
        seconds = perf_counter() - start
    elif participant in CAIO_BACKENDS:
        aiofile = aiofile_for(participant)

        async def run_aiofile() -> tuple[int, float]:
            async with aiofile.async_open(path, "r", encoding="utf-8") as f:
                await f.read(16)  # creates the default context, untimed
            count = 0
            start = perf_counter()
            async with aiofile.async_open(path, "r", encoding="utf-8") as f:
                async for _line in f:
                    count += 1
            return count, perf_counter() - start

        count, seconds = asyncio.run(run_aiofile())
    elif participant == "aiofiles":
        aiofiles = import_optional("aiofiles")
        budget = spec["sizes"]["budget_seconds"]

        async def run_aiofiles() -> tuple[int, float, bool]:
            # One thread hop per line: the whole file would take minutes, so
            # this participant is time-boxed and its rate taken over the
            # lines it got through.
            async with aiofiles.open(path, encoding="utf-8") as f:
                await f.read(16)
            count = 0
            start = perf_counter()
            deadline = start + budget
            stopped = False
            async with aiofiles.open(path, encoding="utf-8") as f:
                async for _line in f:
                    count += 1
                    if not count & 1023 and perf_counter() > deadline:
                        stopped = True
                        break
            return count, perf_counter() - start, stopped

        count, seconds, partial = asyncio.run(run_aiofiles())
    else:
        raise Unavailable(f"no implementation for {participant}")
    if not partial and count != expected:
        raise RuntimeError(f"counted {count} lines, the file has {expected}")
    return {"value": count / seconds, **timed_rate(count, seconds, {"partial": partial})}


# ---------------------------------------------------------------- cp


def same_content(a: str, b: str, samples: int = 64) -> bool:
    """Sizes equal and a spread of sampled blocks equal (untimed check)."""
    size = os.path.getsize(a)
    if os.path.getsize(b) != size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for i in range(samples + 1):
            offset = size * i // samples
            fa.seek(offset)
            fb.seek(offset)
            if fa.read(BLOCK) != fb.read(BLOCK):
                return False
    return True


def measure_cp(spec: Result) -> Result:
    participant = spec["participant"]
    src = spec["files"]["stream"]
    dst = os.path.join(spec["scratch"], f"cp-{os.getpid()}.bin")
    size = os.path.getsize(src)
    # Memory first: on a VM that reports free pages to its host (a virtio
    # balloon), page cache for a file the size of the copy, allocated
    # seconds after such memory was freed, comes back from the host at a
    # third of the speed (shutil.copyfile of the 256 MiB file: 1.0-1.2 GB/s
    # after a 5 s pause, 3.0 GB/s right after an unlinked copy). The
    # participant that runs second in a round found the first one's pages.
    # An untimed copy, unlinked just before, gives each the same start.
    warm = dst + ".warm"
    shutil.copyfile(src, warm)
    os.unlink(warm)
    if spec["cold"]:
        drop_cache(src)
    try:
        if participant == "stdlib":
            # Neither side syncs: examples/cp.py leaves writeback to the
            # kernel (unless given --sync), as shutil.copyfile does.
            start = perf_counter()
            shutil.copyfile(src, dst)
            seconds = perf_counter() - start
        elif participant in CAIO_BACKENDS:
            script = Path(spec["repo"], "examples", "cp.py")
            if not script.is_file():
                raise Unavailable(f"{script} does not exist")
            aiofile_for(participant)  # imported now, so not timed
            argv = sys.argv
            sys.argv = [str(script), src, dst]
            try:
                start = perf_counter()
                try:
                    runpy.run_path(str(script), run_name="__main__")
                except SystemExit as exc:
                    if exc.code not in (None, 0):
                        raise RuntimeError(f"examples/cp.py exited with {exc.code!r}") from exc
                seconds = perf_counter() - start
            finally:
                sys.argv = argv
        else:
            raise Unavailable(f"no implementation for {participant}")
        if not same_content(src, dst):
            raise RuntimeError("the copy differs from the source")
    finally:
        if os.path.exists(dst):
            os.unlink(dst)
    return {"value": size / seconds / 1e6, **timed_rate(size, seconds)}


# ---------------------------------------------------------------- memory


def measure_mem_stream(spec: Result) -> Result:
    """Peak RSS growth while streaming the big file once in 1 MiB chunks.

    VmHWM is reset (``/proc/self/clear_refs``) after all set-up, so the
    growth is what the streaming itself needed at its worst moment.
    """
    participant = spec["participant"]
    path = spec["files"]["mem"]
    chunk = MIB
    if spec["cold"]:
        drop_cache(path)

    def begin() -> tuple[int, bool]:
        gc.collect()
        was_reset = reset_peak_rss()
        return proc_status_kib("VmHWM" if was_reset else "VmRSS"), was_reset

    # Each participant opens the file once before (creating aiofile's
    # default context, starting aiofiles' threads), then streams a fresh
    # open from offset 0 with the peak reset just before.
    total = 0
    if participant == "stdlib":
        with open(path, "rb", buffering=0) as f:
            base, was_reset = begin()
            while data := f.read(chunk):
                total += len(data)
    elif participant in CAIO_BACKENDS:
        aiofile = aiofile_for(participant)

        async def run_aiofile() -> tuple[int, int, bool]:
            async with aiofile.async_open(path, "rb") as f:
                await f.read(BLOCK)
            async with aiofile.async_open(path, "rb") as f:
                base, was_reset = begin()
                got = 0
                async for data in f.iter_chunked(chunk):
                    got += len(data)
            return got, base, was_reset

        total, base, was_reset = asyncio.run(run_aiofile())
    elif participant == "aiofiles":
        aiofiles = import_optional("aiofiles")

        async def run_aiofiles() -> tuple[int, int, bool]:
            async with aiofiles.open(path, "rb", buffering=0) as f:
                await f.read(BLOCK)
            async with aiofiles.open(path, "rb", buffering=0) as f:
                base, was_reset = begin()
                got = 0
                while data := await f.read(chunk):
                    got += len(data)
            return got, base, was_reset

        total, base, was_reset = asyncio.run(run_aiofiles())
    else:
        raise Unavailable(f"no implementation for {participant}")
    peak = proc_status_kib("VmHWM")
    if total != os.path.getsize(path):
        raise RuntimeError(f"streamed {total} bytes of a {os.path.getsize(path)}-byte file")
    growth_mib = (peak - base) / 1024
    extra = {"base_kib": base, "peak_kib": peak, "hwm_reset": was_reset, "bytes": total}
    return {"value": growth_mib, "units": total, "seconds": 0.0, "extra": extra}


def measure_mem_alloc(spec: Result) -> Result:
    """tracemalloc around N and 10 N reads of 4 KiB, 64 in flight.

    Results dropped: memory retained afterwards and the peak must not grow
    with the number of operations. Results kept in a pre-sized list: what
    stays allocated per operation must be just its bytes object.
    """
    participant = spec["participant"]
    path = spec["files"]["stream"]
    n = spec["sizes"]["alloc_ops"]
    size = os.path.getsize(path)
    offsets_n = random_offsets(spec["seed"], n, size)
    offsets_10n = random_offsets(spec["seed"] + 1, 10 * n, size)
    sink: list[bytes | None] = [None] * n
    if spec["cold"]:
        drop_cache(path)
    fd = os.open(path, os.O_RDONLY)

    def sync_run(offsets: Sequence[int], keep: list[bytes | None] | None) -> None:
        for i, offset in enumerate(offsets):
            data = os.pread(fd, BLOCK, offset)
            if keep is not None:
                keep[i] = data

    async def phases(
        run: Callable[[Sequence[int], list[bytes | None] | None], Awaitable[None]],
    ) -> Result:
        tracemalloc.start()
        await run(offsets_n, None)  # warm-up: free lists, executor threads
        out: Result = {}
        for label, offsets in (("n", offsets_n), ("10n", offsets_10n)):
            # A peak is one moment: completions arriving in a burst can
            # raise it now and then, so each phase is the median of three.
            retained, peaks = [], []
            for _ in range(3):
                gc.collect()
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
                await run(offsets, None)
                gc.collect()
                current, peak = tracemalloc.get_traced_memory()
                retained.append(current - base)
                peaks.append(peak - base)
            out[f"retained_{label}"] = statistics.median(retained)
            out[f"peak_{label}"] = statistics.median(peaks)
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        await run(offsets_n, sink)
        gc.collect()
        out["kept_per_op"] = (tracemalloc.get_traced_memory()[0] - base) / n
        tracemalloc.stop()
        return out

    try:
        if participant == "stdlib":

            async def run_sync(offsets: Sequence[int], keep: list[bytes | None] | None) -> None:
                sync_run(offsets, keep)

            out = asyncio.run(phases(run_sync))
        elif participant in CAIO_BACKENDS:
            context_class = caio_context_class(participant)

            async def run_caio() -> Result:
                ctx = context_class()
                read = ctx.read

                async def run(offsets: Sequence[int], keep: list[bytes | None] | None) -> None:
                    async def worker(first: int) -> None:
                        for i in range(first, len(offsets), IN_FLIGHT):
                            data = await read(BLOCK, fd, offsets[i])
                            if keep is not None:
                                keep[i] = data

                    await asyncio.gather(*(worker(k) for k in range(IN_FLIGHT)))

                try:
                    check_block(await read(BLOCK, fd, 0), fd, 0, participant)
                    return await phases(run)
                finally:
                    await close_context(ctx)

            out = asyncio.run(run_caio())
        else:
            raise Unavailable(f"no implementation for {participant}")
    finally:
        os.close(fd)
    if any(data is None or len(data) != BLOCK for data in sink):
        raise RuntimeError("a read did not return a full block")
    bytes_size = sys.getsizeof(bytes(BLOCK))
    out["n"] = n
    out["bytes_object_size"] = bytes_size
    out["kept_ratio"] = out["kept_per_op"] / bytes_size
    out["retained_per_op"] = (out["retained_10n"] - out["retained_n"]) / (9 * n)
    out["peak_scaling"] = out["peak_10n"] / max(out["peak_n"], 1)
    return {"value": out["kept_per_op"], "units": n, "seconds": 0.0, "extra": out}


# ---------------------------------------------------------------- direct I/O group
#
# O_DIRECT and page-cache-cold buffered I/O on one big file, against fio.
# Offsets are distinct blocks (a random sample, like fio's random map), so
# a cold read never finds a page an earlier read of the same run brought in.


def distinct_offsets(seed: int, count: int, file_size: int, block: int) -> list[int]:
    blocks = file_size // block
    rng = random.Random(seed)
    return [b * block for b in rng.sample(range(blocks), min(count, blocks))]


def sequential_offsets(count: int, file_size: int, block: int) -> list[int]:
    """The file's blocks in order, wrapping around at its end."""
    blocks = file_size // block
    return [(i % blocks) * block for i in range(count)]


def aligned_buffer(size: int) -> Any:
    """Page-aligned memory the caller owns: ``caio.aligned_buffer`` where
    this caio has it, else an anonymous mmap (page-aligned as well)."""
    caio = sys.modules.get("caio")
    make = getattr(caio, "aligned_buffer", None)
    if make is not None:
        return make(size)
    return mmap.mmap(-1, size)


def open_for(job: IoJob, path: str) -> int:
    flags = os.O_RDWR if job.write else os.O_RDONLY
    fd = os.open(path, flags | (os.O_DIRECT if job.direct else 0))
    if not job.direct and not job.sequential:
        # What fio does for a random pattern (fadvise_hint): no readahead.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    return fd


def sync_direct(
    fd: int, job: IoJob, offsets: Sequence[int], budget: float
) -> tuple[int, float]:
    """The synchronous loop: os.pread for buffered reads (bytes, like
    ``ctx.read``), os.preadv / os.pwrite on one aligned buffer for O_DIRECT."""
    buffer = aligned_buffer(job.block)
    if job.write:
        buffer[:] = os.urandom(job.block)
    buffers = [buffer]
    pread, preadv, pwrite = os.pread, os.preadv, os.pwrite
    block = job.block
    done = 0
    start = perf_counter()
    deadline = start + budget
    for batch in batched(offsets, 64 if job.sequential else 256):
        if job.write:
            for offset in batch:
                pwrite(fd, buffer, offset)
        elif job.direct:
            for offset in batch:
                preadv(fd, buffers, offset)
        else:
            for offset in batch:
                pread(fd, block, offset)
        done += len(batch)
        if perf_counter() > deadline:
            break
    return done, perf_counter() - start


async def caio_direct(
    ctx: Any, fd: int, path: str, job: IoJob, offsets: Sequence[int], budget: float, who: str
) -> tuple[int, float, str]:
    """``job.in_flight`` coroutines sharing one context; each owns an
    aligned buffer. O_DIRECT reads use ``ctx.readinto`` where the context
    has it, else ``ctx.read`` (which then must cope with O_DIRECT itself);
    buffered reads use ``ctx.read`` (bytes, as the published caio can).
    Returns operations, seconds and the call used."""
    block = job.block
    readinto = getattr(ctx, "readinto", None) if job.direct else None
    read, write = ctx.read, ctx.write
    buffers = [aligned_buffer(block) for _ in range(job.in_flight)]
    check_fd = os.open(path, os.O_RDONLY)
    try:
        # Untimed validation: the call works on this descriptor and reads
        # what os.pread reads (an O_DIRECT read of a plain-read context
        # without bounce buffers fails here with EINVAL).
        probe = offsets[-1]
        try:
            if job.write:
                buffers[0][:] = os.urandom(block)
                if await write(buffers[0], fd, probe) != block:
                    raise RuntimeError(f"{who}: short write")
                got = os.pread(check_fd, block, probe)
                expected = bytes(buffers[0])
            elif readinto is not None:
                if await readinto(buffers[0], fd, probe) != block:
                    raise RuntimeError(f"{who}: short readinto")
                got, expected = bytes(buffers[0]), os.pread(check_fd, block, probe)
            else:
                got, expected = await read(block, fd, probe), os.pread(check_fd, block, probe)
        except OSError as exc:
            how = "readinto" if readinto is not None else ("write" if job.write else "read")
            raise Unavailable(f"ctx.{how} on this descriptor: {exc}") from exc
        if got != expected:
            raise RuntimeError(f"{who} transferred wrong data at offset {probe}")
    finally:
        os.close(check_fd)
    if job.write:
        for buffer in buffers:
            buffer[:] = os.urandom(block)
    call = "write" if job.write else ("readinto" if readinto is not None else "read")
    batch_size = 256 if job.in_flight == 1 else 16
    parts = shares(offsets, job.in_flight)
    start = perf_counter()
    deadline = start + budget

    async def worker(buffer: Any, share: Sequence[int]) -> int:
        done = 0
        for batch in batched(share, batch_size):
            if job.write:
                for offset in batch:
                    await write(buffer, fd, offset)
            elif readinto is not None:
                for offset in batch:
                    await readinto(buffer, fd, offset)
            else:
                for offset in batch:
                    await read(block, fd, offset)
            done += len(batch)
            if perf_counter() > deadline:
                break
        return done

    done = sum(
        await asyncio.gather(*(worker(b, s) for b, s in zip(buffers, parts, strict=True)))
    )
    return done, perf_counter() - start, call


def published_context_class() -> Any:
    """The published caio's default ``AsyncioContext`` (this interpreter
    must be the one with ``caio==0.12.*``: see ``run.py --published-python``)."""
    caio = import_optional("caio")
    version = str(getattr(caio, "__version__", "?"))
    if not version.startswith("0.12."):
        raise Unavailable(f"this interpreter's caio is {version}, not 0.12.*")
    return caio.AsyncioContext


def measure_direct(spec: Result, job: IoJob) -> Result:
    """One participant of the direct-I/O group, time-boxed like random I/O."""
    participant = spec["participant"]
    path = spec["files"]["direct"]
    size = os.path.getsize(path)
    sizes = spec["sizes"]
    budget = sizes["budget_seconds"]
    if job.sequential:
        offsets = sequential_offsets(sizes["direct_ops"], size, job.block)
    else:
        offsets = distinct_offsets(spec["seed"], sizes["direct_ops"], size, job.block)
    if not job.direct:
        drop_cache(path)
    extra: Result = {}
    if participant == FIO:
        fio = spec.get("fio")
        if not fio:
            raise Unavailable(spec.get("fio_reason") or "fio is not installed")
        command = fiojob.fio_command(
            fio, spec["workload"], job, path, size, budget, spec["seed"]
        )
        got = fiojob.run_fio(command, sizes["timeout_seconds"] / 2, write=job.write)
        done, seconds = got.ios, got.runtime_seconds
        extra.update(
            command=" ".join(command),
            fio_version=got.version,
            fio_iops=got.iops,
            fio_bytes_per_second=got.bytes_per_second,
            mean_latency_us=got.mean_latency_us,
        )
    else:
        fd = open_for(job, path)
        try:
            if participant == BASELINE:
                done, seconds = sync_direct(fd, job, offsets, budget)
            elif participant in CAIO_BACKENDS or participant == PUBLISHED:
                if participant == PUBLISHED:
                    context_class = published_context_class()
                else:
                    context_class = caio_context_class(participant)

                async def run_caio() -> tuple[int, float, str]:
                    ctx = context_class()
                    try:
                        return await caio_direct(
                            ctx, fd, path, job, offsets, budget, participant
                        )
                    finally:
                        await close_context(ctx)

                done, seconds, call = asyncio.run(run_caio())
                extra.update(call=call, context=f"{context_class.__module__}")
            else:
                raise Unavailable(f"no implementation for {participant}")
            if job.write:
                os.fdatasync(fd)  # untimed, as for rand_write_64
        finally:
            os.close(fd)
        extra.update(ops=done, partial=done < len(offsets))
    if job.in_flight == 1:
        value = seconds / done * 1e6
    elif job.sequential:
        value = done * job.block / seconds / 1e6
    else:
        value = done / seconds
    return {"value": value, **timed_rate(done, seconds, extra)}


# ---------------------------------------------------------------- filesystem calls
#
# aiofile.os.stat of a file whose metadata are cached, against os.stat and
# aiofiles.os.stat (a thread hop per call). Same count, same budget.


async def async_stat(
    stat: Callable[[str], Awaitable[Any]], path: str, count: int, in_flight: int, budget: float,
) -> tuple[int, float]:
    start = perf_counter()
    deadline = start + budget
    batch_size = 256 if in_flight == 1 else 16

    async def worker(share: int) -> int:
        done = 0
        while done < share:
            batch = min(batch_size, share - done)
            for _ in range(batch):
                await stat(path)
            done += batch
            if perf_counter() > deadline:
                break
        return done

    if in_flight == 1:
        done = await worker(count)
    else:
        parts = [count // in_flight + (i < count % in_flight) for i in range(in_flight)]
        done = sum(await asyncio.gather(*(worker(n) for n in parts)))
    return done, perf_counter() - start


def measure_stat(spec: Result, in_flight: int) -> Result:
    participant = spec["participant"]
    path = spec["files"]["stream"]
    count = spec["sizes"]["rand_ops"]
    budget = spec["sizes"]["budget_seconds"]
    expected = os.stat(path)
    if participant == "stdlib":
        # os.stat has nothing to overlap: "64 in flight" is the same loop.
        stat = os.stat
        done = 0
        start = perf_counter()
        deadline = start + budget
        while done < count:
            for _ in range(256):
                stat(path)
            done += 256
            if perf_counter() > deadline:
                break
        seconds = perf_counter() - start
    else:
        if participant in CAIO_BACKENDS:
            aiofile_for(participant)  # the backend CAIO_IMPL asked for, or Unavailable
            module = import_optional("aiofile.os")
        elif participant == "aiofiles":
            module = import_optional("aiofiles.os")
        else:
            raise Unavailable(f"no implementation for {participant}")
        if not hasattr(module, "stat"):
            raise Unavailable(f"{module.__name__} has no stat")

        async def run_stat() -> tuple[int, float]:
            first = await module.stat(path)
            if (first.st_ino, first.st_size) != (expected.st_ino, expected.st_size):
                raise RuntimeError(f"{participant} stat gave {first}, not {expected}")
            return await async_stat(module.stat, path, count, in_flight, budget)

        done, seconds = asyncio.run(run_stat())
    extra = {"ops": done, "partial": done < count}
    if in_flight == 1:
        return {"value": seconds / done * 1e6, **timed_rate(done, seconds, extra)}
    return {"value": done / seconds, **timed_rate(done, seconds, extra)}


# ---------------------------------------------------------------- entry points


def measure(spec: Result) -> Result:
    """Dispatch one measurement by workload name."""
    # Where in a page each read's bytes start is decided by the heap's
    # history, the same in every process of one participant, and the
    # kernel's copy into them is up to 8 % faster or slower for it
    # (benchmarks/profile/copyalign.c, docs/performance.md "Why the
    # streaming rows move"). A block of a size that changes with the round
    # (by 16 bytes: malloc's step), kept for the whole measurement, moves
    # every later allocation: the rounds of one participant then sample
    # four placements instead of repeating one.
    ballast = bytearray(4096 + 16 * (spec["seed"] % 256))
    try:
        return dispatch(spec)
    finally:
        del ballast


def dispatch(spec: Result) -> Result:
    """The measurement of spec's workload."""
    workload = spec["workload"]
    files = spec["files"]
    if workload == "rand_read_1":
        return measure_random(spec, 1, write=False)
    if workload == "rand_read_64":
        return measure_random(spec, IN_FLIGHT, write=False)
    if workload == "rand_write_1":
        return measure_random(spec, 1, write=True)
    if workload == "rand_write_64":
        return measure_random(spec, IN_FLIGHT, write=True)
    if workload == "rand_write_64_burst":
        return measure_random(spec, IN_FLIGHT, write=True, count=BURST_WRITES, sync=True)
    if workload == "stream_64k":
        return measure_stream(spec, 64 * 1024, files["stream"], max_passes=1_000_000)
    if workload == "stream_1m":
        return measure_stream(spec, MIB, files["stream"], max_passes=1_000_000)
    if workload == "lines":
        return measure_lines(spec)
    if workload == "cp":
        return measure_cp(spec)
    if workload == "mem_stream":
        return measure_mem_stream(spec)
    if workload == "mem_alloc":
        return measure_mem_alloc(spec)
    if workload == "stat_1":
        return measure_stat(spec, 1)
    if workload == "stat_64":
        return measure_stat(spec, IN_FLIGHT)
    job = WORKLOADS_BY_NAME[workload].job if workload in WORKLOADS_BY_NAME else None
    if job is not None:
        return measure_direct(spec, job)
    raise ValueError(f"unknown workload {workload!r}")


def version_of(module_name: str) -> Result:
    """Where a module comes from and its version, or why it does not import."""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version(module_name)
        except Exception:
            version = "?"
    return {"ok": True, "version": str(version), "file": getattr(module, "__file__", None)}


def probe() -> Result:
    """What this environment offers: versions, the default caio backend and
    which backend modules import."""
    info: Result = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "caio": version_of("caio"),
        "aiofile": version_of("aiofile"),
        "aiofiles": version_of("aiofiles"),
        "backends": {},
        "default": None,
    }
    for participant, backend in CAIO_BACKENDS.items():
        info["backends"][participant] = version_of(BACKEND_MODULES[backend])
    if info["caio"]["ok"]:
        caio = importlib.import_module("caio")
        for participant, backend in CAIO_BACKENDS.items():
            module = sys.modules.get(BACKEND_MODULES[backend])
            if (
                module is not None
                and getattr(module, "AsyncioContext", None) is caio.AsyncioContext
            ):
                info["default"] = participant
    return info


def main(argv: Sequence[str]) -> int:
    if len(argv) == 3 and argv[1] == "--probe":
        Path(argv[2]).write_text(json.dumps(probe()))
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(argv[1])
    try:
        result = measure(spec)
    except Unavailable as exc:
        result = {"error": str(exc), "unavailable": True}
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}", "unavailable": False}
    Path(argv[2]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
