"""Several hashes of one file at once: ``python examples/hash.py FILE [-a md5 -a sha256]``.

The file is opened once; each hash reads it through its own ``clone`` (its
own position on the same open file), and all of them run concurrently.
Prints one ``ALGORITHM  HEXDIGEST`` line per hash, in the order asked.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys

from aiofile import BinaryFileWrapper, async_open, clone

DEFAULT_ALGORITHMS = ("md5", "sha1", "sha256")
CHUNK_SIZE = 256 * 1024


async def digest(file: BinaryFileWrapper, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    async with clone(file) as own:
        async for chunk in own.iter_chunked(CHUNK_SIZE):
            hasher.update(chunk)
    return hasher.hexdigest()


async def hash_file(path: str, algorithms: list[str]) -> dict[str, str]:
    async with async_open(path, "rb") as file:
        digests = await asyncio.gather(*(digest(file, name) for name in algorithms))
    return dict(zip(algorithms, digests, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", metavar="FILE", help="file to hash")
    parser.add_argument(
        "-a", "--algorithm", action="append", dest="algorithms",
        choices=sorted(hashlib.algorithms_guaranteed), metavar="NAME",
        help=f"a hashlib algorithm; repeat for more (default: {' '.join(DEFAULT_ALGORITHMS)})",
    )
    args = parser.parse_args(argv)
    algorithms = args.algorithms or list(DEFAULT_ALGORITHMS)
    if any(name.startswith("shake_") for name in algorithms):
        parser.error("shake algorithms need a length; choose another")
    try:
        digests = asyncio.run(hash_file(args.file, algorithms))
    except OSError as exc:
        print(f"hash.py: {exc}", file=sys.stderr)
        return 1
    for name in algorithms:
        print(f"{name}  {digests[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
