"""Copy files from a Trio program: ``python examples/trio_copy.py SRC... DST``.

With one SRC, DST is the copy's name (or a directory to copy into); with
several, DST must be a directory. Every file is copied by its own pair of
tasks: one reads chunks and sends them through a memory channel, the other
writes them, so reading and writing overlap. aiofile picks the Trio run's
own caio context by itself; ``--timeout`` shows a cancel scope stopping
the copies (their reads and writes are cancelled in the kernel) and the
unfinished copies being removed once the run is over. Needs ``pip install
trio``.
"""

from __future__ import annotations

import argparse
import os
import sys

import trio

from aiofile import async_open

CHUNK_SIZE = 1024 * 1024


async def copy_file(src: str, dst: str, chunk_size: int) -> int:
    """Copy ``src`` to ``dst`` (replaced); returns the bytes copied."""
    send, receive = trio.open_memory_channel[bytes](2)  # at most 2 chunks ahead
    copied = 0
    # Opened before the tasks start: a missing source is a plain OSError.
    async with async_open(src, "rb") as source, async_open(dst, "wb") as target:

        async def read_all() -> None:
            async with send:
                async for chunk in source.iter_chunked(chunk_size):
                    await send.send(chunk)

        async def write_all() -> None:
            nonlocal copied
            async with receive:
                async for chunk in receive:
                    copied += await target.write(chunk)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            nursery.start_soon(write_all)
    return copied


async def copy_all(
    pairs: list[tuple[str, str]], chunk_size: int, timeout: float, done: set[str],
) -> int:
    """Copy every (src, dst) pair concurrently; returns the total bytes.

    Adds each finished copy's dst to ``done``. Raises trio.TooSlowError
    after ``timeout`` seconds.
    """
    total = 0

    async def one(src: str, dst: str) -> None:
        nonlocal total
        # Not `total += await ...`: that reads total before the await, and
        # the other copies add to it meanwhile.
        copied = await copy_file(src, dst, chunk_size)
        total += copied
        done.add(dst)

    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            for src, dst in pairs:
                nursery.start_soon(one, src, dst)
    return total


def remove_unfinished(pairs: list[tuple[str, str]], done: set[str]) -> None:
    """Remove the copies that did not finish. Called once the run is over:
    an open that the kernel was already doing when the time ran out cannot
    be called back and may create its file after the cancelled task has
    moved on; the run's caio context, closed when the run ends, waits for
    it."""
    for _, dst in pairs:
        if dst not in done and os.path.exists(dst):
            os.remove(dst)


def plan(sources: list[str], dst: str) -> list[tuple[str, str]]:
    """The (src, dst) pairs; ValueError when several files go to a non-directory."""
    if os.path.isdir(dst):
        return [(src, os.path.join(dst, os.path.basename(src))) for src in sources]
    if len(sources) > 1:
        raise ValueError(f"{dst!r} is not a directory")
    return [(sources[0], dst)]


def first_error(exc: BaseException) -> BaseException:
    """The first error inside the exception groups that Trio's nurseries
    raise (``ExceptionGroup`` is not a builtin on Python 3.10)."""
    inner = getattr(exc, "exceptions", None)
    while inner:
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="SRC... DST")
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, metavar="N")
    parser.add_argument(
        "--timeout", type=float, default=float("inf"), metavar="SECONDS",
        help="give up (and remove unfinished copies) after this long",
    )
    args = parser.parse_args(argv)
    if len(args.paths) < 2:
        parser.error("need at least one SRC and a DST")
    if args.chunk_size <= 0:
        parser.error("--chunk-size must be positive")
    done: set[str] = set()
    try:
        pairs = plan(args.paths[:-1], args.paths[-1])
        total = trio.run(copy_all, pairs, args.chunk_size, args.timeout, done)
    except trio.TooSlowError:
        remove_unfinished(pairs, done)
        print(f"trio_copy.py: not done within {args.timeout} s", file=sys.stderr)
        return 1
    except Exception as exc:  # reported, with the first error of any group
        print(f"trio_copy.py: {first_error(exc)}", file=sys.stderr)
        return 1
    print(f"{total} bytes in {len(pairs)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
