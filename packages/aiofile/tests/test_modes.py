"""Mode strings: the built-in open's rules, and the flags they give."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

from aiofile.modes import FileMode, parse_mode


def builtin_accepts(path: Path, mode: str) -> bool:
    try:
        with open(path, mode):
            pass
    except ValueError:
        return False
    except OSError:
        return True  # valid mode, the file said no (e.g. "x" on an existing file)
    return True


def test_same_verdict_as_builtin_open(tmp_path: Path) -> None:
    path = tmp_path / "m"
    candidates = {"".join(p) for n in range(1, 4) for p in itertools.permutations("rwaxbt+U", n)}
    candidates |= {"rr", "r++", "", "rb+ ", "b", "t", "+"}
    if sys.version_info < (3, 11):
        # Python 3.10 still takes the deprecated "U"; aiofile follows 3.11+.
        candidates = {mode for mode in candidates if "U" not in mode}
    for mode in sorted(candidates):
        path.unlink(missing_ok=True)
        ok = builtin_accepts(path, mode)
        if ok:
            assert isinstance(parse_mode(mode), FileMode), mode
        else:
            with pytest.raises(ValueError, match="invalid mode"):
                parse_mode(mode)


def test_not_a_string() -> None:
    with pytest.raises(TypeError):
        parse_mode(b"r")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "access", "extra", "canonical"),
    [
        ("r", os.O_RDONLY, 0, "r"),
        ("rb", os.O_RDONLY, 0, "rb"),
        ("r+", os.O_RDWR, 0, "r+"),
        ("w", os.O_WRONLY, os.O_CREAT | os.O_TRUNC, "w"),
        ("w+b", os.O_RDWR, os.O_CREAT | os.O_TRUNC, "wb+"),
        ("a", os.O_WRONLY, os.O_CREAT | os.O_APPEND, "a"),
        ("ab+", os.O_RDWR, os.O_CREAT | os.O_APPEND, "ab+"),
        ("x", os.O_WRONLY, os.O_CREAT | os.O_EXCL, "x"),
        ("xt+", os.O_RDWR, os.O_CREAT | os.O_EXCL, "x+"),
    ],
)
def test_flags(mode: str, access: int, extra: int, canonical: str) -> None:
    parsed = parse_mode(mode)
    assert parsed.flags & os.O_ACCMODE == access
    assert parsed.flags & (os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_EXCL) == extra
    assert parsed.flags & os.O_CLOEXEC
    assert str(parsed) == canonical
    assert parsed.readable == (access != os.O_WRONLY)
    assert parsed.writable == (access != os.O_RDONLY)
    assert parsed.binary == ("b" in mode)
    assert parsed.appending == ("a" in mode)
    assert parsed.created == ("x" in mode)
