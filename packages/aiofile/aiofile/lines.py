"""Splitting a stream of chunks into lines at C speed.

A splitter takes the incomplete line left from the previous chunk (the
"tail") and a new chunk, and returns the complete lines, each ending with
the separator, followed by the new tail (possibly empty). On the "\\n"
and "\\r\\n" paths every line object is made by one C loop: no Python
code runs per line.

- ``"\\n"`` (the common case): ``BytesIO.readlines`` and
  ``StringIO(newline="\\n").readlines`` find that separator and nothing
  else, translate nothing, and share or copy the chunk once: exact by
  construction. BytesIO finds it with memchr, about three times faster
  than ``bytes.splitlines``.
- ``"\\r\\n"``: ``splitlines(keepends=True)`` also breaks at a lone
  ``\\r`` or ``\\n`` (and for str at ``\\v \\f \\x1c-\\x1e \\x85
  \\u2028 \\u2029``), so each chunk is first checked with ``count`` and
  ``in`` (memchr speed); only a chunk where it would split differently
  takes the exact path.
- Anything else: ``split`` and the separator added back to each piece.

Where caio has its C module ``caio._lines``, the ``"\\n"`` splitters are
its ``split_lf``: the same contract, one memchr pass and one object per
line; ``StringIO`` copies the text to 4-byte characters and back, which
cost about 400 instructions per short line (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO, StringIO
from typing import Any, TypeVar

__all__ = ("Splitter", "make_splitter", "split_universal", "to_lf")

AnyStr_ = TypeVar("AnyStr_", str, bytes)
Splitter = Callable[[AnyStr_, AnyStr_], list[AnyStr_]]

# Line breaks of str.splitlines other than "\n" and "\r".
_STR_ASCII_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e")
_STR_WIDE_BREAKS = ("\x85", "\u2028", "\u2029")


def _no_other_str_breaks(data: str) -> bool:
    for char in _STR_ASCII_BREAKS:
        if char in data:
            return False
    # str.isascii() is O(1): CPython stores it in the object.
    if not data.isascii():
        for char in _STR_WIDE_BREAKS:
            if char in data:
                return False
    return True


def _exact(tail: AnyStr_, chunk: AnyStr_, sep: AnyStr_) -> list[AnyStr_]:
    parts = (tail + chunk).split(sep)
    last = parts.pop()
    lines = [part + sep for part in parts]
    lines.append(last)
    return lines


def _split_lf_str_py(tail: str, chunk: str) -> list[str]:
    # StringIO with newline="\n" breaks only at "\n" and translates
    # nothing: exact by construction, and a little faster than
    # str.splitlines plus its check.
    lines = StringIO(chunk, newline="\n").readlines()
    if tail:
        # A one-character separator cannot straddle the chunk edge.
        lines[0] = tail + lines[0]
    if chunk[-1] == "\n":
        lines.append("")
    return lines


def _split_lf_bytes_py(tail: bytes, chunk: bytes) -> list[bytes]:
    # BytesIO shares the chunk's buffer, breaks only at b"\n" and finds it
    # with memchr: about three times faster than bytes.splitlines.
    lines = BytesIO(chunk).readlines()
    if tail:
        lines[0] = tail + lines[0]
    if chunk[-1] == 10:  # b"\n"
        lines.append(b"")
    return lines


_split_lf_str: Callable[[str, str], list[str]] = _split_lf_str_py
_split_lf_bytes: Callable[[bytes, bytes], list[bytes]] = _split_lf_bytes_py
#: caio's split_lf, where the "\n" splitters are it; None without caio._lines.
_split_lf_c: Callable[..., list[Any]] | None = None
#: caio's cut_lf(tail, chunk) -> (iterator of the complete lines, rest): the
#: lines made one at a time as they are taken (ReadAhead._fill uses it where
#: the splitter is split_lf).
cut_lf: Callable[[Any, Any], tuple[Any, Any]] | None = None
try:
    from caio import _lines
except ImportError:  # pragma: no cover - the C module is built everywhere we test
    pass
else:
    _split_lf_str = _split_lf_bytes = _split_lf_c = _lines.split_lf
    cut_lf = _lines.cut_lf


def _split_crlf_str(tail: str, chunk: str) -> list[str]:
    # A "\r\n" may straddle the edge: split the joined data.
    data = tail + chunk if tail else chunk
    n = data.count("\r\n")
    if n != data.count("\n") or n != data.count("\r") or not _no_other_str_breaks(data):
        return _exact("", data, "\r\n")
    lines = data.splitlines(True)
    if data.endswith("\r\n"):
        lines.append("")
    return lines


def _split_crlf_bytes(tail: bytes, chunk: bytes) -> list[bytes]:
    data = tail + chunk if tail else chunk
    n = data.count(b"\r\n")
    if n != data.count(b"\n") or n != data.count(b"\r"):
        return _exact(b"", data, b"\r\n")
    lines = data.splitlines(True)
    if data.endswith(b"\r\n"):
        lines.append(b"")
    return lines


def split_universal(tail: str, chunk: str) -> list[str]:
    """Split at "\\r", "\\n" and "\\r\\n", untranslated (``newline=""`` or ``None``).

    StringIO with ``newline=""`` finds exactly these three, in C. A "\\r"
    at the very end stays in the tail: a "\\n" may begin the next chunk.
    """
    data = tail + chunk if tail else chunk
    lines = StringIO(data, newline="").readlines()
    if data[-1:] == "\n":
        lines.append("")
    elif not lines:
        lines.append(data)
    return lines


def to_lf(text: str) -> str:
    """``text`` with every "\\r\\n" and lone "\\r" made "\\n" (``newline=None``)."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def make_splitter(sep: AnyStr_) -> Callable[[AnyStr_, AnyStr_], list[AnyStr_]]:
    """The fastest exact splitter for ``sep`` (str or bytes, not empty).

    Raises ValueError for an empty separator, TypeError for another type.
    """
    if not isinstance(sep, (str, bytes)):
        raise TypeError(f"line separator must be str or bytes, not {type(sep).__name__}")
    if not sep:
        raise ValueError("empty line separator")
    known: dict[object, Callable[..., list[Any]]] = {
        "\n": _split_lf_str, b"\n": _split_lf_bytes,
        "\r\n": _split_crlf_str, b"\r\n": _split_crlf_bytes,
    }
    if sep in known:
        return known[sep]

    def split(tail: AnyStr_, chunk: AnyStr_) -> list[AnyStr_]:
        return _exact(tail, chunk, sep)

    return split
