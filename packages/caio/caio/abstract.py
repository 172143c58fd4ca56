"""The shape every caio backend has.

``AbstractContext`` and ``AbstractOperation`` list the backend protocol of
``docs/internals.md``: the caio 0.12 low-level API (``submit``, ``cancel``,
``close``, the ``Operation`` constructors and accessors) plus what the asyncio
adapter uses on its fast path (``fileno``, ``process_events``,
``set_future_factory``, the ``*_async`` methods, ``cancel_future``).

``caio.python_aio`` subclasses these; the C backends are registered as
virtual subclasses by ``caio/__init__.py``, so ``isinstance(ctx,
caio.AbstractContext)`` holds for every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

# Not `from typing import TYPE_CHECKING`: importing typing would make
# `import caio` slower; type checkers treat this name as True anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    # Not imported at run time: `import caio` must not pull in asyncio.
    import asyncio
    from collections.abc import Callable, Sequence
    from typing import Any, TypeAlias

    from typing_extensions import Buffer, Self

    #: A file descriptor argument: an int or an object with fileno().
    FileDescriptor: TypeAlias = Any
    #: A future factory: the asyncio adapter's (caio._awaitables.FutureFactory
    #: on asyncio's own loops, else ``loop.create_future``) or Trio's. The
    #: backends use set_result, set_exception, done and get_loop; the type
    #: names asyncio's future, whose protocol the others follow.
    FutureFactory: TypeAlias = Callable[[], asyncio.Future[Any]]

__all__ = ("AbstractContext", "AbstractOperation", "PayloadTypeError")


class PayloadTypeError(TypeError, ValueError):
    """A write payload that is not a bytes-like object.

    A TypeError, as elsewhere in Python for a wrong type, and the
    ValueError caio 0.12 raised: either ``except`` clause catches it.
    Every backend raises this class.
    """


class AbstractOperation(ABC):
    """One file I/O request (the caio 0.12 ``Operation`` API)."""

    __slots__ = ()

    @classmethod
    @abstractmethod
    def read(cls, nbytes: int, fd: FileDescriptor, offset: int, priority: int = 0) -> Self:
        """A read of at most ``nbytes`` at ``offset``.

        Raises TypeError, ValueError (negative sizes/offsets), MemoryError.
        """

    @classmethod
    @abstractmethod
    def write(cls, payload: Buffer, fd: FileDescriptor, offset: int, priority: int = 0) -> Self:
        """A write of the contiguous buffer ``payload`` at ``offset``.

        Raises TypeError/BufferError (not a contiguous buffer), ValueError.
        """

    @classmethod
    @abstractmethod
    def readinto(cls, buffer: Buffer, fd: FileDescriptor, offset: int, priority: int = 0) -> Self:
        """A read into the writable C-contiguous ``buffer`` at ``offset``.

        The buffer is held until the operation is done. Raises TypeError
        (read-only buffer), BufferError, ValueError.
        """

    @classmethod
    @abstractmethod
    def readv(
        cls, buffers: Sequence[Buffer], fd: FileDescriptor, offset: int, priority: int = 0,
    ) -> Self:
        """One read at ``offset`` filling the writable ``buffers`` in order.

        Raises TypeError, BufferError, ValueError (more than IOV_MAX buffers).
        """

    @classmethod
    @abstractmethod
    def writev(
        cls, buffers: Sequence[Buffer], fd: FileDescriptor, offset: int, priority: int = 0,
    ) -> Self:
        """One write at ``offset`` of ``buffers`` in order.

        Raises TypeError, BufferError, ValueError (more than IOV_MAX buffers).
        """

    @classmethod
    @abstractmethod
    def fsync(cls, fd: FileDescriptor, priority: int = 0) -> Self:
        """An fsync of ``fd``. Raises TypeError, ValueError."""

    @classmethod
    @abstractmethod
    def fdsync(cls, fd: FileDescriptor, priority: int = 0) -> Self:
        """An fdatasync of ``fd``. Raises TypeError, ValueError."""

    @abstractmethod
    def set_callback(self, callback: Callable[[int], Any] | None) -> bool:
        """Call ``callback(result)`` when done: bytes count, or -errno.

        Returns True (as caio 0.12 did). Raises TypeError if ``callback`` is
        not callable (None removes it).
        """

    @abstractmethod
    def get_value(self) -> bytes | int | None:
        """The result: bytes (read), int (write, readinto, readv, writev) or
        None (sync).

        Raises OSError if the operation failed, RuntimeError if not done.
        """

    @property
    @abstractmethod
    def fileno(self) -> int:
        """The file descriptor."""

    @property
    @abstractmethod
    def offset(self) -> int:
        """The file offset (0 for sync operations)."""

    @property
    @abstractmethod
    def payload(self) -> Any:
        """write: the payload; read: the bytes read once done, else None."""

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """How many bytes are asked of the kernel (capped at MAX_RW_COUNT)."""


class AbstractContext(ABC):
    """A backend context: queues operations and reports their completions."""

    __slots__ = ()

    @property
    @abstractmethod
    def max_requests(self) -> int:
        """At most this many operations are in the kernel at once."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once ``close()`` was called."""

    @property
    @abstractmethod
    def fileno(self) -> int:
        """A descriptor that is readable while completions wait."""

    @abstractmethod
    def submit(self, *ops: Any) -> int:
        """Queue operations; returns how many were queued.

        Raises TypeError (not this backend's Operation), RuntimeError (already
        submitted, context closed or created in another process).
        """

    @abstractmethod
    def cancel(self, *ops: Any) -> int:
        """Ask to cancel operations; returns how many were cancelled."""

    @abstractmethod
    def close(self) -> None:
        """Cancel what can be cancelled, wait for the rest, release it all.

        Idempotent. Pending futures get OSError(ECANCELED).
        """

    def __enter__(self) -> Self:
        """``with Context() as ctx``: closed when the block ends."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @abstractmethod
    def process_events(
        self, max_requests: int = 0, min_requests: int = 0, timeout: float = 0,
    ) -> int:
        """Reap completions, resolve futures; returns how many.

        Never blocks with the default ``timeout=0``; otherwise waits until
        ``min_requests`` finished, at most ``timeout`` seconds (no limit if
        negative). ``max_requests`` is accepted (caio 0.12) and not applied.
        """

    @abstractmethod
    def poll(self) -> int:
        """Empty the completion descriptor; its count. BlockingIOError if empty."""

    @abstractmethod
    def set_future_factory(
        self,
        factory: FutureFactory,
        call_soon: Callable[[Callable[[], object]], object] | None = None,
    ) -> None:
        """Set what the ``*_async`` methods use to make futures.

        ``call_soon`` (``loop.call_soon``) is for a backend that schedules
        work on the loop; the others accept and ignore it. Until a factory
        is set, the ``*_async`` methods raise RuntimeError.
        """

    @abstractmethod
    def read_async(
        self, nbytes: int, fd: FileDescriptor, offset: int, priority: int = 0,
    ) -> bytes | asyncio.Future[bytes]:
        """Read: the bytes if done during the call, else a future.

        Raises OSError (failed during the call), TypeError, ValueError,
        MemoryError, RuntimeError (closed, or no future factory).
        """

    @abstractmethod
    def write_async(
        self, payload: Buffer, fd: FileDescriptor, offset: int, priority: int = 0,
    ) -> int | asyncio.Future[int]:
        """Write: the count if done during the call, else a future.

        Raises like ``read_async``, and TypeError/BufferError for a payload
        that is not a contiguous buffer.
        """

    @abstractmethod
    def readinto_async(
        self, buffer: Buffer, fd: FileDescriptor, offset: int, priority: int = 0,
    ) -> int | asyncio.Future[int]:
        """Read into the writable C-contiguous ``buffer``: the count if done
        during the call, else a future. The kernel writes into the buffer,
        which is held until it is done (also after a cancellation).

        Raises like ``read_async``, and TypeError for a read-only buffer.
        """

    @abstractmethod
    def readv_async(
        self, buffers: Sequence[Buffer], fd: FileDescriptor, offset: int, priority: int = 0,
    ) -> int | asyncio.Future[int]:
        """One read filling ``buffers`` in order: the count if done during
        the call, else a future. ValueError for more than IOV_MAX buffers."""

    @abstractmethod
    def writev_async(
        self, buffers: Sequence[Buffer], fd: FileDescriptor, offset: int, priority: int = 0,
    ) -> int | asyncio.Future[int]:
        """One write of ``buffers`` in order: the count if done during the
        call, else a future. ValueError for more than IOV_MAX buffers."""

    @abstractmethod
    def fsync_async(self, fd: FileDescriptor, priority: int = 0) -> asyncio.Future[None] | None:
        """fsync: None if done during the call, else a future."""

    @abstractmethod
    def fdsync_async(self, fd: FileDescriptor, priority: int = 0) -> asyncio.Future[None] | None:
        """fdatasync: None if done during the call, else a future."""

    @abstractmethod
    def cancel_future(self, future: asyncio.Future[Any]) -> bool:
        """Ask the kernel to cancel the operation behind ``future``."""

    # Filesystem operations (caio._fsops). A backend that runs them itself
    # also has ``fs_async(op, fd, path, path2, fd2, flags, mode, offset,
    # length)``: the value if done during the call, else a future; the
    # asyncio adapter runs them on a thread for the others.

    def fs_in_kernel(self, op: int) -> bool:
        """Whether filesystem operation number ``op`` (``caio._fsops.NAMES``)
        runs as an io_uring request on this context: False unless the
        backend says otherwise."""
        return False
