"""Random O_DIRECT reads of a file, many in flight, into aligned buffers.

    python examples/direct_reader.py FILE [--count N] [--in-flight N]
                                          [--block-size N] [--seed N] [--list]

Opens FILE with O_DIRECT (no page cache: every read goes to the device),
asks ``caio.dio_alignment`` what the file needs, and runs ``--in-flight``
workers, each with its own buffer from ``caio.aligned_buffer``, that read
``--count`` random aligned blocks with ``readinto``: the kernel writes
straight into the buffer, no copy and no allocation per read. Prints how
many reads and bytes that was and how many distinct blocks they hit; with
``--list`` first each block's offset and SHA-256. Exit status 1 with a
message if the file cannot be read that way.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import sys
from collections.abc import Iterator

import caio


async def worker(
    context: caio.AsyncioContextBase, fd: int, offsets: Iterator[int], block: int,
    memory_alignment: int, digests: dict[int, str],
) -> int:
    buffer = caio.aligned_buffer(block, memory_alignment)
    done = 0
    for offset in offsets:  # shared by the workers: each offset is read once
        got = await context.readinto(buffer, fd, offset)
        if got != block:
            raise OSError(f"short read at offset {offset}: {got} of {block} bytes")
        digests[offset] = hashlib.sha256(buffer).hexdigest()
        done += got
    return done


async def read_randomly(
    path: str, count: int, in_flight: int, block_size: int | None, seed: int,
) -> tuple[int, dict[int, str]]:
    """(bytes read, {offset: SHA-256 of its block})."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        memory, offset_alignment = caio.dio_alignment(fd)
        block = block_size or offset_alignment
        if block % offset_alignment:
            raise ValueError(
                f"--block-size must be a multiple of {offset_alignment} for {path}",
            )
        blocks = os.fstat(fd).st_size // block
        if not blocks:
            raise ValueError(f"{path} is shorter than one block of {block} bytes")
        rnd = random.Random(seed)
        offsets = iter([rnd.randrange(blocks) * block for _ in range(count)])
        digests: dict[int, str] = {}
        async with caio.AsyncioContext(max_requests=in_flight) as context:
            done = await asyncio.gather(*(
                worker(context, fd, offsets, block, memory, digests)
                for _ in range(in_flight)
            ))
        return sum(done), digests
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("file")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--block-size", type=int, default=None,
                        help="bytes per read (default: the file's O_DIRECT alignment)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="print each block's SHA-256")
    args = parser.parse_args(argv)
    if args.count < 0 or args.in_flight < 1:
        parser.error("--count must not be negative and --in-flight must be positive")
    try:
        total, digests = asyncio.run(read_randomly(
            args.file, args.count, args.in_flight, args.block_size, args.seed,
        ))
    except (OSError, ValueError) as exc:
        print(f"direct_reader: {exc}", file=sys.stderr)
        return 1
    if args.list:
        for offset in sorted(digests):
            print(offset, digests[offset])
    print(f"{args.count} reads, {total} bytes, {len(digests)} distinct blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
