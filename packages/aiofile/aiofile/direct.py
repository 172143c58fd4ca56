"""``AIOFile(direct=True)``: O_DIRECT writes of any offset and length.

The kernel takes an ``O_DIRECT`` transfer only in whole blocks of the
file's alignment (``caio.dio_alignment``), from aligned memory. caio's
``read`` already widens an unaligned read to the blocks around it; an
unaligned write has to read the edge blocks, patch them and write them
back (read-modify-write). Two such writes to one block at once would each
write back the other's old bytes, so they are serialised: a write of whole
blocks takes this handle's lock shared (any number at once, as plain
``pwrite`` calls), one with an edge block, an append or a file extension
takes it alone.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import caio

from ._running import Waiter

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from caio import AsyncioContextBase

__all__ = ("O_DIRECT", "DirectIO", "direct_io_of", "open_direct")

#: 0 where the platform has no O_DIRECT (direct=True then raises).
O_DIRECT: int = getattr(os, "O_DIRECT", 0)


def open_direct(name: str | bytes, flags: int) -> int:
    """``os.open`` of ``name`` with ``flags`` (an ``open()`` mode's) and
    O_DIRECT, as DirectIO needs it: without O_APPEND (appends are written
    at the file's size: with O_APPEND the kernel would ignore the offset of
    a patched edge block), and readable where the mode is write-only (the
    edge blocks are read; where that is not permitted, write-only, and only
    whole-block writes work). A filesystem that refuses O_DIRECT (ramfs,
    some FUSE and network filesystems) is an OSError (EINVAL) that says so,
    and a file this call created is removed again. Raises OSError, as
    os.open does.
    """
    if not O_DIRECT:
        raise OSError(errno.EINVAL, "O_DIRECT does not exist on this platform", name)
    flags = (flags & ~os.O_APPEND) | O_DIRECT
    # The kernel creates the file before it refuses O_DIRECT.
    existed = bool(flags & os.O_CREAT) and os.path.lexists(name)
    try:
        if flags & os.O_WRONLY:
            try:
                return os.open(name, (flags & ~os.O_WRONLY) | os.O_RDWR, 0o666)
            except PermissionError:
                pass
        return os.open(name, flags, 0o666)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        if flags & os.O_CREAT and not existed:
            try:
                if os.stat(name).st_size == 0:
                    os.unlink(name)
            except OSError:
                pass
        raise OSError(
            errno.EINVAL,
            f"{os.fsdecode(name)!r}: its filesystem refuses O_DIRECT "
            "(opened with direct=True); open it without direct=True",
            name,
        ) from exc


class _SharedLock:
    """A lock held either shared (by many) or alone (by one), under asyncio
    or Trio.

    First come, first served: a request waits while anyone queued before
    it waits, so a stream of shared holders cannot starve one that wants
    the lock alone. Not bound to a loop or run until someone has to wait.
    """

    __slots__ = ("_alone", "_shared", "_waiters")

    def __init__(self) -> None:
        self._shared = 0
        self._alone = False
        self._waiters: deque[tuple[bool, Waiter]] = deque()

    def _free_for(self, alone: bool) -> bool:
        return not self._alone and not (alone and self._shared)

    def _take(self, alone: bool) -> None:
        if alone:
            self._alone = True
        else:
            self._shared += 1

    @asynccontextmanager
    async def hold(self, alone: bool) -> AsyncIterator[None]:
        """Hold the lock (alone, or shared) for the body of ``async with``."""
        if not self._waiters and self._free_for(alone):
            self._take(alone)
        else:
            waiter = Waiter()
            self._waiters.append((alone, waiter))
            try:
                await waiter.wait()
            except BaseException:  # cancelled
                if waiter.woken:
                    self._release(alone)  # it was granted meanwhile
                else:
                    self._wake()  # a request behind this one may go now
                raise
        try:
            yield
        finally:
            self._release(alone)

    def _release(self, alone: bool) -> None:
        if alone:
            self._alone = False
        else:
            self._shared -= 1
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters:
            alone, waiter = waiters[0]
            if waiter.gave_up:  # cancelled while waiting
                waiters.popleft()
                continue
            if not self._free_for(alone):
                return
            waiters.popleft()
            self._take(alone)
            waiter.wake()


class DirectIO:
    """The O_DIRECT state of one open file: its alignment and write lock.

    Internal to aiofile: an AIOFile opened with ``direct=True`` has one on
    its FileHandle, shared with its clones (they write the same file).
    """

    __slots__ = ("block", "lock", "memory")

    def __init__(self, fd: int) -> None:
        self.memory, self.block = caio.dio_alignment(fd)
        self.lock = _SharedLock()

    async def write(
        self, context: AsyncioContextBase, fd: int, data: Buffer, offset: int,
        appending: bool,
    ) -> int:
        """Write all of ``data`` at ``offset`` (at the end of the file when
        ``appending``); returns its length. Raises OSError, ValueError."""
        view = memoryview(data).cast("B")
        size = view.nbytes
        if not size:
            return 0
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        block = self.block
        if not appending and not offset % block and not size % block:
            # Whole blocks: the kernel extends the file exactly, and caio
            # copies unaligned memory to an aligned buffer itself.
            async with self.lock.hold(alone=False):
                return await _write_all(context, fd, view, offset)
        async with self.lock.hold(alone=True):
            end_of_file = _size(fd)
            if appending:
                offset = end_of_file
            return await self._patch(context, fd, view, offset, end_of_file)

    async def _patch(
        self, context: AsyncioContextBase, fd: int, view: memoryview, offset: int,
        end_of_file: int,
    ) -> int:
        """Read-modify-write of the blocks ``view`` touches (lock held alone)."""
        block = self.block
        size = view.nbytes
        start = offset - offset % block
        stop = -(-(offset + size) // block) * block
        buffer = caio.aligned_buffer(stop - start, self.memory)
        # The edge blocks that hold file data keep it; past the end of the
        # file the buffer's zeros are what a hole reads as.
        edges = {start} if offset % block else set()
        if (offset + size) % block:
            edges.add(stop - block)
        for edge in sorted(edges):
            if edge < end_of_file:
                part = buffer[edge - start:edge - start + block]
                await _read_into(context, fd, part, edge)
        buffer[offset - start:offset - start + size] = view
        await _write_all(context, fd, buffer, start)
        new_size = max(end_of_file, offset + size)
        if stop > new_size:
            # The padding of the last block made the file too long: the
            # lock is held alone, so nobody else extended it meanwhile.
            os.ftruncate(fd, new_size)
        return size


def _size(fd: int) -> int:
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):  # st_size is 0 there; the position is unused
        return os.lseek(fd, 0, os.SEEK_END)
    return st.st_size


async def _read_into(context: AsyncioContextBase, fd: int, part: memoryview, offset: int) -> None:
    """Fill ``part`` (aligned) from ``offset``; what lies past the end of
    the file stays as it was (zeros). One read: a direct read is short only
    at the end of the file (and going on from an unaligned count would be
    refused anyway)."""
    readinto = getattr(context, "readinto", None)
    if readinto is not None:
        await readinto(part, fd, offset)
    else:  # a caio without readinto: the widening read copies once more
        data = await context.read(len(part), fd, offset)
        part[:len(data)] = data


async def _write_all(context: AsyncioContextBase, fd: int, view: memoryview, offset: int) -> int:
    written = 0
    total = view.nbytes
    while written < total:
        n = await context.write(view[written:] if written else view, fd, offset + written)
        if n <= 0:
            raise OSError(errno.EIO, f"an O_DIRECT write made no progress ({n})")
        written += n
    return written


def direct_io_of(fd: int) -> DirectIO | None:
    """A DirectIO for ``fd`` if it is open with O_DIRECT, else None (also
    for what is no open descriptor)."""
    if not O_DIRECT:
        return None
    import fcntl  # POSIX only, like O_DIRECT

    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        return None
    return DirectIO(fd) if flags & O_DIRECT else None
