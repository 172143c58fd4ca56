"""The one registry of open contexts, closed before the interpreter exits.

Every Python-level context that holds something the interpreter must not
outlive (``python_aio``'s worker threads, an asyncio adapter's backend
context and loop reader) adds itself here when made and leaves when closed.
Left open, such a context is closed by the exit hook below: daemon workers
would otherwise be frozen mid-syscall during finalization. The registry
holds weak references only, so a dropped context can still be collected.
"""

from __future__ import annotations

import atexit
import weakref

# Not `from typing import TYPE_CHECKING`: importing typing would make
# `import caio` slower; type checkers treat this name as True anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class ClosedAtExit(Protocol):
        def _close_at_exit(self) -> None: ...

__all__ = ("live",)

#: Open contexts; each has a ``_close_at_exit()`` method.
live: weakref.WeakSet[ClosedAtExit] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for context in list(live):
        try:
            context._close_at_exit()
        except Exception:  # at exit there is nobody to tell
            pass


atexit.register(_close_all_at_exit)
