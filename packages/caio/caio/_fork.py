"""The one fork counter of caio's Python layer.

A forked child inherits its parent's contexts as Python objects, but not
what they stand for: the worker threads are gone, and the epoll instance of
the loop's selector is shared with the parent, so unregistering a reader in
the child would unregister it in the parent too. Everything in Python that
must notice a fork (the asyncio adapter, the pure-Python backend, aiofile's
per-loop contexts) compares a generation it saved with ``fork_generation()``.
The C backends keep their own counter (``src/common/fork.c``): they check it
on every call, where calling back into Python would cost more than the call.
"""

from __future__ import annotations

import os

__all__ = ("fork_generation",)

_generation = 0


def fork_generation() -> int:
    """How many forks separate this process from the one that imported caio."""
    return _generation


def _after_fork_in_child() -> None:
    global _generation
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
