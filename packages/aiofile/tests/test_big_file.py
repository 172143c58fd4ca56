"""1.3 million lines (~100 MB) read with async for and LineReader.

Compared line for line with the built-in open (newline="" so that it does
not translate line endings, as aiofile does not either).
"""

from __future__ import annotations

from itertools import zip_longest
from pathlib import Path
from typing import Any

import pytest

from aiofile import AIOFile, LineReader, async_open

BIG_LINES = 1_300_000  # as made by the big_file fixture of conftest.py


def assert_same(got: list[Any], expected: list[Any]) -> None:
    assert len(got) == len(expected)
    if got != expected:  # one C comparison; find the first difference only if needed
        for index, (a, b) in enumerate(zip_longest(got, expected)):
            assert a == b, f"line {index}"


@pytest.fixture(scope="module")
def big_lines(big_file: Path) -> list[str]:
    with open(big_file, encoding="utf-8", newline="") as fp:
        lines = list(fp)
    assert len(lines) == BIG_LINES
    return lines


async def test_async_for_text(big_file: Path, big_lines: list[str], context: Any) -> None:
    async with async_open(big_file, context=context) as f:
        got = [line async for line in f]
    assert_same(got, big_lines)


async def test_line_reader_text(big_file: Path, big_lines: list[str], context: Any) -> None:
    async with AIOFile(big_file, context=context) as afp:
        got = [line async for line in LineReader(afp)]
    assert_same(got, big_lines)


async def test_async_for_binary(big_file: Path) -> None:
    # The default context only: the bytes path differs from the text one
    # above after the read, not in it.
    with open(big_file, "rb") as fp:
        expected = list(fp)
    async with async_open(big_file, "rb") as f:
        got = [line async for line in f]
    assert_same(got, expected)
