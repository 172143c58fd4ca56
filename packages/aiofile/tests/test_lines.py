"""The chunk splitters of aiofile.lines against a plain split."""

from __future__ import annotations

import random
from typing import Any

import pytest

from aiofile.lines import make_splitter

# Every character str.splitlines breaks at, plus the usual suspects.
ALPHABET = "ab\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029é|"


def split_stream(sep: Any, chunks: list[Any]) -> list[Any]:
    split = make_splitter(sep)
    tail = chunks[0][:0]
    lines: list[Any] = []
    for chunk in chunks:
        if not chunk:
            continue
        got = split(tail, chunk)
        tail = got.pop()
        lines.extend(got)
    if tail:
        lines.append(tail)
    return lines


def reference(sep: Any, data: Any) -> list[Any]:
    parts = data.split(sep)
    lines = [part + sep for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


@pytest.mark.parametrize("sep", ["\n", "\r\n", "||", "é"])
@pytest.mark.parametrize("binary", [False, True], ids=["str", "bytes"])
def test_random_streams_split_exactly(sep: str, binary: bool) -> None:
    rnd = random.Random(sep)
    for _ in range(300):
        text = "".join(rnd.choices(ALPHABET, k=rnd.randint(1, 60)))
        data: Any = text.encode() if binary else text
        want_sep: Any = sep.encode() if binary else sep
        cuts = sorted(rnd.sample(range(1, len(data) + 1), min(len(data), rnd.randint(0, 6))))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert split_stream(want_sep, chunks) == reference(want_sep, data), (chunks, sep)


def test_fast_path_lines_keep_their_separator() -> None:
    split = make_splitter("\n")
    assert split("", "a\nb\n") == ["a\n", "b\n", ""]
    assert split("x", "a\nb") == ["xa\n", "b"]
    assert split("", "a\r\nb\rc\n") == ["a\r\n", "b\rc\n", ""]
    assert make_splitter(b"\n")(b"", b"a\rb\n") == [b"a\rb\n", b""]


def test_bad_separators() -> None:
    with pytest.raises(ValueError):
        make_splitter("")
    with pytest.raises(TypeError):
        make_splitter(10)  # type: ignore[type-var]
