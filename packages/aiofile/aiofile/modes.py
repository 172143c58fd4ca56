"""Parsing of ``open()``-style mode strings into ``os.open`` flags."""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = ("FileMode", "parse_mode")

_MODE_CHARS = frozenset("rwax+bt")


class FileMode(NamedTuple):
    """What a mode string such as ``"rb+"`` asks for."""

    readable: bool
    writable: bool
    plus: bool
    appending: bool
    created: bool
    flags: int
    binary: bool

    def __str__(self) -> str:
        """The mode in the built-in ``open``'s canonical spelling (``rb+``)."""
        if self.created:
            base = "x"
        elif self.appending:
            base = "a"
        elif self.flags & os.O_TRUNC:
            base = "w"
        else:
            base = "r"
        return base + ("b" if self.binary else "") + ("+" if self.plus else "")


def parse_mode(mode: str) -> FileMode:
    """Parse ``mode`` with the built-in ``open``'s rules.

    Exactly one of ``r w a x``, at most one ``+``, and ``b`` or ``t`` (not
    both), each at most once. Raises TypeError if ``mode`` is not a str and
    ValueError (naming the mode) if it breaks a rule.
    """
    if not isinstance(mode, str):
        raise TypeError(f"mode must be str, not {type(mode).__name__}")
    chars = set(mode)
    if (
        not mode
        or len(chars) != len(mode)
        or not chars <= _MODE_CHARS
        or len(chars & {"r", "w", "a", "x"}) != 1
        or {"b", "t"} <= chars
    ):
        raise ValueError(f"invalid mode: {mode!r}")

    plus = "+" in chars
    binary = "b" in chars
    # O_CLOEXEC as the built-in open sets it: a child process must not
    # inherit the descriptor by accident.
    flags = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    readable = writable = appending = created = False
    if "r" in chars:
        readable = True
        writable = plus
    elif "w" in chars:
        writable = True
        readable = plus
        flags |= os.O_CREAT | os.O_TRUNC
    elif "a" in chars:
        writable = appending = True
        readable = plus
        flags |= os.O_CREAT | os.O_APPEND
    else:
        writable = created = True
        readable = plus
        flags |= os.O_CREAT | os.O_EXCL

    if readable and writable:
        flags |= os.O_RDWR
    elif writable:
        flags |= os.O_WRONLY
    else:
        flags |= os.O_RDONLY

    return FileMode(
        readable=readable,
        writable=writable,
        plus=plus,
        appending=appending,
        created=created,
        flags=flags,
        binary=binary,
    )
