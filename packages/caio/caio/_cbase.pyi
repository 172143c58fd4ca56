"""What the C backends' types share, written once.

Each C module (``caio.linux_uring``, ``caio.linux_aio``, ``caio.thread_aio``)
has its own ``Operation`` and ``Context`` types, compiled from the same
sources (``src/common/operation.c``, ``src/common/protocol.h``); their stubs
subclass these and add their own options. Stub only: there is no such module
at run time.
"""

import asyncio
import os
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from typing_extensions import Buffer, Self

from .abstract import FileDescriptor, FutureFactory

class COperation:
    @classmethod
    def read(cls, nbytes: int, fd: FileDescriptor, offset: int, priority: int = 0) -> Self: ...
    @classmethod
    def write(cls, payload: Buffer, fd: FileDescriptor, offset: int, priority: int = 0) -> Self: ...
    @classmethod
    def readinto(
        cls, buffer: Buffer, fd: FileDescriptor, offset: int, priority: int = 0
    ) -> Self: ...
    @classmethod
    def readv(
        cls, buffers: Sequence[Buffer], fd: FileDescriptor, offset: int, priority: int = 0
    ) -> Self: ...
    @classmethod
    def writev(
        cls, buffers: Sequence[Buffer], fd: FileDescriptor, offset: int, priority: int = 0
    ) -> Self: ...
    @classmethod
    def fsync(cls, fd: FileDescriptor, priority: int = 0) -> Self: ...
    @classmethod
    def fdsync(cls, fd: FileDescriptor, priority: int = 0) -> Self: ...
    def set_callback(self, fn: Callable[[int], Any] | None, /) -> bool: ...
    def get_value(self) -> bytes | int | None: ...
    @property
    def fileno(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def payload(self) -> bytes | Buffer | None: ...
    @property
    def priority(self) -> int: ...
    @property
    def result(self) -> int: ...
    @property
    def error(self) -> int: ...
    @property
    def context(self) -> CContext | None: ...

class CContext:
    def read_async(
        self, nbytes: int, fd: FileDescriptor, offset: int, priority: int = 0
    ) -> bytes | asyncio.Future[bytes]: ...
    def write_async(
        self, payload: Buffer, fd: FileDescriptor, offset: int, priority: int = 0
    ) -> int | asyncio.Future[int]: ...
    def readinto_async(
        self, buffer: Buffer, fd: FileDescriptor, offset: int, priority: int = 0
    ) -> int | asyncio.Future[int]: ...
    def readv_async(
        self, buffers: Sequence[Buffer], fd: FileDescriptor, offset: int, priority: int = 0
    ) -> int | asyncio.Future[int]: ...
    def writev_async(
        self, buffers: Sequence[Buffer], fd: FileDescriptor, offset: int, priority: int = 0
    ) -> int | asyncio.Future[int]: ...
    def fsync_async(self, fd: FileDescriptor, priority: int = 0) -> asyncio.Future[None] | None: ...
    def fdsync_async(
        self, fd: FileDescriptor, priority: int = 0
    ) -> asyncio.Future[None] | None: ...
    def cancel_future(self, future: asyncio.Future[Any], /) -> bool: ...
    def process_events(
        self, max_requests: int = 0, min_requests: int = 0, timeout: float = 0
    ) -> int: ...
    def poll(self) -> int: ...
    def fs_in_kernel(self, op: int, /) -> bool: ...
    def set_future_factory(
        self,
        factory: FutureFactory,
        call_soon: Callable[[Callable[[], object]], object] | None = None,
    ) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    @property
    def max_requests(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def fileno(self) -> int: ...

class CFsContext(CContext):
    """A context whose fs_async runs filesystem operations (caio._fsops)."""

    def fs_async(
        self,
        op: int,
        fd: int,
        path: bytes | None,
        path2: bytes | None,
        fd2: int,
        flags: int,
        mode: int,
        offset: int,
        length: int,
        /,
    ) -> os.stat_result | int | None | asyncio.Future[Any]: ...
