"""python_aio's Operation: one file I/O request (the caio 0.12 API).

Split from ``python_aio`` (which re-exports it) to keep each module of the
pure-Python backend to one concern, as the C backends' files are.
"""

from __future__ import annotations

import weakref

from ._python_args import (
    buffer_views,
    check_fd,
    check_priority,
    check_size,
    payload_view,
    writable_view,
)
from ._python_engine import DONE, NEW, STATE_NAMES
from ._python_kernel import (
    FDSYNC,
    FSYNC,
    MAX_RW_COUNT,
    OPCODE_NAMES,
    READ,
    READINTO,
    READV,
    WRITE,
    WRITEV,
    oserror,
)
from .abstract import AbstractOperation

# Not `from typing import TYPE_CHECKING`: importing typing would make
# `import caio` slower; type checkers treat this name as True anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from typing_extensions import Buffer, Self

    from .python_aio import Context

__all__ = ("Operation",)



class Operation(AbstractOperation):
    """One file I/O request (caio 0.12 API). Make it with read(), write(),
    fsync() or fdsync(), submit it with ``Context.submit``."""

    # Its public home: repr, pickling and the docs name caio.python_aio.
    __module__ = "caio.python_aio"

    __slots__ = (
        "_opcode", "_fd", "_offset", "_nbytes", "_priority", "_payload",
        "_view", "_views", "_state", "_result", "_data", "_callback", "_waits", "_key",
        "_cancel", "_owner", "__weakref__",
    )

    _opcode: int
    _fd: int
    _offset: int
    _nbytes: int
    _priority: int
    _payload: Any
    _view: memoryview | None  # write, readinto: the held buffer
    _views: list[memoryview] | None  # readv, writev: the held buffers
    _state: int
    _result: int
    _data: Any  # read: bytes; a filesystem operation: its value
    _callback: Callable[[int], Any] | None
    # A future waits for it: the Context keeps that future under _key (an
    # int), out of reach of the workers, which hold the operation.
    _waits: bool
    _key: object
    _cancel: bool  # set by cancel_future while a worker runs it
    # A weak reference to the Context it was submitted to (None before):
    # queued operations must not keep a dropped context alive.
    _owner: weakref.ReferenceType[Context] | None

    def __init__(self) -> None:
        raise TypeError("use Operation.read(), write(), fsync() or fdsync()")

    @classmethod
    def _make(
        cls, opcode: int, fd: int, offset: int, nbytes: int,
        payload: Any = None, view: memoryview | None = None, priority: int = 0,
        views: list[memoryview] | None = None,
    ) -> Self:
        op = object.__new__(cls)
        op._opcode = opcode
        op._fd = fd
        op._offset = offset
        op._nbytes = nbytes
        op._priority = priority
        op._payload = payload
        op._view = view
        op._views = views
        op._state = NEW
        op._result = 0
        op._data = None
        op._callback = None
        op._waits = False
        op._key = op
        op._owner = None
        return op

    @classmethod
    def read(cls, nbytes: int, fd: Any, offset: int, priority: int = 0) -> Self:
        """A read of at most ``nbytes`` at ``offset``.

        Raises TypeError, ValueError (negative values, offset >= 2**63),
        MemoryError (nbytes >= 2**63).
        """
        n = check_size(nbytes, "nbytes", MemoryError)
        fileno = check_fd(fd)
        off = check_size(offset, "offset", ValueError)
        check_priority(priority)
        return cls._make(READ, fileno, off, min(n, MAX_RW_COUNT), priority=priority)

    @classmethod
    def write(cls, payload: Buffer, fd: Any, offset: int, priority: int = 0) -> Self:
        """A write of ``payload`` (any C-contiguous buffer) at ``offset``.

        Raises TypeError/BufferError (bad payload), ValueError.
        """
        fileno = check_fd(fd)
        off = check_size(offset, "offset", ValueError)
        check_priority(priority)
        view = payload_view(payload)
        return cls._make(
            WRITE, fileno, off, min(view.nbytes, MAX_RW_COUNT), payload, view, priority,
        )

    @classmethod
    def readinto(cls, buffer: Buffer, fd: Any, offset: int, priority: int = 0) -> Self:
        """A read into ``buffer`` (writable, C-contiguous) at ``offset``.

        The buffer is held (cannot be resized) until the operation is done.
        Raises TypeError (read-only buffer), BufferError, ValueError.
        """
        fileno = check_fd(fd)
        off = check_size(offset, "offset", ValueError)
        check_priority(priority)
        view = writable_view(buffer)
        return cls._make(
            READINTO, fileno, off, min(view.nbytes, MAX_RW_COUNT), buffer, view, priority,
        )

    @classmethod
    def readv(cls, buffers: Sequence[Buffer], fd: Any, offset: int, priority: int = 0) -> Self:
        """One read at ``offset`` filling ``buffers`` in order.

        Raises TypeError, BufferError, ValueError (more than IOV_MAX buffers).
        """
        return cls._vector(READV, buffers, fd, offset, priority)

    @classmethod
    def writev(cls, buffers: Sequence[Buffer], fd: Any, offset: int, priority: int = 0) -> Self:
        """One write at ``offset`` of ``buffers`` in order.

        Raises TypeError, BufferError, ValueError (more than IOV_MAX buffers).
        """
        return cls._vector(WRITEV, buffers, fd, offset, priority)

    @classmethod
    def _vector(
        cls, opcode: int, buffers: Sequence[Buffer], fd: Any, offset: int, priority: int,
    ) -> Self:
        fileno = check_fd(fd)
        off = check_size(offset, "offset", ValueError)
        check_priority(priority)
        views = buffer_views(buffers, opcode == READV, OPCODE_NAMES[opcode])
        nbytes = sum(view.nbytes for view in views)
        return cls._make(
            opcode, fileno, off, min(nbytes, MAX_RW_COUNT), buffers, None, priority, views,
        )

    def _release_buffers(self) -> None:
        """The kernel is done: let the caller resize its buffers again."""
        view = self._view
        if view is not None:
            self._view = None
            view.release()
        views = self._views
        if views is not None:
            self._views = None
            for view in views:
                view.release()

    @classmethod
    def fsync(cls, fd: Any, priority: int = 0) -> Self:
        """An fsync of ``fd``. Raises TypeError, ValueError."""
        fileno = check_fd(fd)
        check_priority(priority)
        return cls._make(FSYNC, fileno, 0, 0, priority=priority)

    @classmethod
    def fdsync(cls, fd: Any, priority: int = 0) -> Self:
        """An fdatasync of ``fd``. Raises TypeError, ValueError."""
        fileno = check_fd(fd)
        check_priority(priority)
        return cls._make(FDSYNC, fileno, 0, 0, priority=priority)

    def set_callback(self, callback: Callable[[int], Any] | None) -> bool:
        """``callback(result)`` runs when done, in the worker thread.

        ``result`` is the byte count, or -errno on failure. Returns True.
        Raises TypeError if ``callback`` is neither callable nor None.
        """
        if callback is not None and not callable(callback):
            raise TypeError(
                f"callback must be callable or None, not {type(callback).__name__}",
            )
        self._callback = callback
        return True

    def get_value(self) -> bytes | int | None:
        """bytes (read, short at end of file), int (write, readinto, readv,
        writev) or None (sync).

        Raises OSError if the operation failed, RuntimeError if not done.
        """
        if self._state != DONE:
            raise RuntimeError("operation is not finished")
        if self._result < 0:
            raise oserror(-self._result)
        if self._opcode == READ:
            return self._data  # type: ignore[no-any-return]
        if self._opcode == FSYNC or self._opcode == FDSYNC:
            return None
        return self._result

    @property
    def fileno(self) -> int:
        """The file descriptor."""
        return self._fd

    @property
    def offset(self) -> int:
        """The file offset."""
        return self._offset

    @property
    def nbytes(self) -> int:
        """Bytes to read or write (capped at MAX_RW_COUNT)."""
        return self._nbytes

    @property
    def priority(self) -> int:
        """The priority given (passed on where the kernel has a field)."""
        return self._priority

    @property
    def context(self) -> Context | None:
        """The Context it was submitted to, None before (or once collected)."""
        owner = self._owner
        return None if owner is None else owner()

    @property
    def result(self) -> int:
        """The raw result once done (bytes count, or -errno), else 0."""
        return self._result if self._state == DONE else 0

    @property
    def error(self) -> int:
        """The errno it failed with once done, else 0."""
        return -self._result if self._state == DONE and self._result < 0 else 0

    @property
    def payload(self) -> Any:
        """write, readinto: the buffer (readv, writev: the sequence); read:
        the bytes read once done, else None.

        Raises RuntimeError while the operation is submitted and not done:
        the kernel may be writing into it.
        """
        if self._state != NEW and self._state != DONE:
            raise RuntimeError("payload is not available while the operation is in flight")
        if self._opcode == READ:
            return self._data if self._state == DONE and self._result >= 0 else None
        return self._payload

    def __repr__(self) -> str:
        name = f"{type(self).__module__}.{type(self).__qualname__}"
        head = (f"<{name} {OPCODE_NAMES[self._opcode]} fd={self._fd} "
                f"offset={self._offset} nbytes={self._nbytes}")
        if self._state == DONE:
            return f"{head} done result={self._result}>"
        return f"{head} {STATE_NAMES[self._state]}>"
