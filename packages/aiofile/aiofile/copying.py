"""``copyfile`` and ``copy``: file copies done by the kernel, off the loop.

The data never enters user space where the kernel can avoid it:
``copy_file_range`` copies page cache to page cache (or shares extents on
filesystems that can). Where it is refused (across filesystems, special
files) ``sendfile`` copies in the kernel as ``shutil`` does, and where
that is refused too (``/proc`` files) a ``pread`` / ``pwrite`` loop.

The whole copy (the checks, both opens, the data, both closes) is one call
on one worker thread (``aiofile._running``: the loop's default executor
under asyncio, Trio's worker threads under Trio); the loop waits for its
end once. One hop, not one per system call: a hand-over to a worker and
back costs two wake-ups, each a scheduling delay on a busy machine. And
one range: splitting the file between two workers gains nothing, since a
buffered write holds the destination's inode lock while it copies (ext4,
xfs, tmpfs), so the second worker mostly waits for the first. A
cancelled copy stops at the worker's next system call, and the worker
closes what it opened before the copy returns. On ext4 the destination's
blocks are allocated before the copy (see ``_preallocate``).
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import stat
import threading
from typing import Any, TypeVar

from ._running import ThreadCall, wait_to_end

__all__ = ("copy", "copyfile")

_Path = TypeVar("_Path", bound="str | bytes | os.PathLike[str] | os.PathLike[bytes]")

#: The most one system call copies: the worker checks for cancellation
#: between its calls (8 MiB: a few milliseconds of copying).
STEP = 8 * 1024 * 1024
#: The buffer of the last resort, the pread/pwrite loop.
BUFFER = 1024 * 1024

# The system call refused this pair of files (not a failure of the copy):
# the next way is tried.
_REFUSED = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ETXTBSY, errno.EPERM},
)


class _Stop:
    """``stopped``: set when the copy is cancelled, read by the worker
    between calls; ``copied``: the bytes the worker has copied so far."""

    __slots__ = ("copied", "stopped")

    def __init__(self) -> None:
        self.stopped = False
        self.copied = 0


def _copy_data(src: int, dst: int, stop: _Stop) -> None:
    """Copy ``src`` from its start to its end into ``dst`` (both freshly
    opened), on a worker thread. The end is where a read returns nothing:
    a file that grows meanwhile, or a special file whose size is 0, is
    copied to its end. ``stop.copied`` follows the progress."""
    at = 0
    way = 0  # 0: copy_file_range, 1: sendfile, 2: pread/pwrite
    while not stop.stopped:
        if way == 2:
            data = os.pread(src, BUFFER, at)
            view = memoryview(data)
            while view:
                view = view[os.pwrite(dst, view, at + len(data) - len(view)):]
            n = len(data)
        else:
            try:
                if way == 0:
                    n = os.copy_file_range(src, dst, STEP, at, at)
                else:
                    # sendfile writes at dst's file position: set below.
                    n = os.sendfile(dst, src, at, STEP)
            except OSError as error:
                if error.errno not in _REFUSED:
                    raise
                way += 1
                if way == 1:
                    os.lseek(dst, at, os.SEEK_SET)
                continue
        if n == 0:
            return
        at += n
        stop.copied = at


class _MountTypes:
    """``st_dev`` -> filesystem type, from /proc/self/mountinfo, kept until
    the mount table changes.

    Reading the table costs tens of microseconds per few dozen mounts,
    for every copy of STEP bytes or more. A device's type does not change
    while it stays mounted, but once unmounted its number is given to the
    next filesystem mounted (an anonymous one: tmpfs, overlay), so answers
    are kept only until the table changes: the kernel makes a descriptor
    open on mountinfo poll with POLLPRI once after every change of its
    mount namespace. Table and changes are read through that one
    descriptor, so both are of the same namespace (the one this process
    had when it first asked); a device mounted only in another namespace
    is not found (None), as before. Each poll reports a change once: one
    lock keeps the poll, the forgetting and the lookup together.
    """

    #: Devices remembered at most (a copy's destination is one).
    KEPT = 16

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.types: dict[int, str | None] = {}
        self.fd = -1
        self.changes: select.poll | None = None

    def type_of(self, device: int) -> str | None:
        with self.lock:
            if self.changes is None:
                try:
                    self.fd = os.open("/proc/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    return None
                self.changes = select.poll()
                self.changes.register(self.fd, select.POLLPRI)
            elif self.changes.poll(0):
                self.types.clear()
            else:
                try:
                    return self.types[device]
                except KeyError:
                    pass
            try:
                found = self._read(device)
            except OSError:
                return None
            if len(self.types) >= self.KEPT:
                self.types.clear()
            self.types[device] = found
            return found

    def _read(self, device: int) -> str | None:
        wanted = f"{os.major(device)}:{os.minor(device)}"
        os.lseek(self.fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self.fd, 65536):
            chunks.append(chunk)
        for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == wanted and " - " in line:
                return line.split(" - ", 1)[1].split()[0]
        return None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


_mount_types = _MountTypes()


def _forget_mount_types() -> None:
    # In a forked child: the descriptor is shared with the parent, whose
    # polls would take the changes this process must see, and the lock may
    # have been held by a thread that does not exist here.
    global _mount_types
    _mount_types.close()
    _mount_types = _MountTypes()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_mount_types)


def _fs_type(device: int) -> str | None:
    """The type of the filesystem mounted from ``device`` (``st_dev``), or
    None where /proc/self/mountinfo does not say."""
    return _mount_types.type_of(device)


def _preallocate(src: int, dst: int) -> int:
    """Allocate the destination's blocks before the copy where that is
    measured to pay; returns the size allocated (0: nothing was).

    On ext4 a buffered write into unallocated blocks reserves them page by
    page (delayed allocation); into blocks allocated at once, in a few
    extents, it does not: a 256 MiB copy takes 22 % less CPU. Only ext4:
    on a filesystem that shares extents (btrfs, xfs) copy_file_range copies
    nothing, and allocating first would only cost space.
    """
    src_stat, dst_stat = os.fstat(src), os.fstat(dst)
    size = src_stat.st_size
    if (
        size < STEP
        or not stat.S_ISREG(src_stat.st_mode)
        or not stat.S_ISREG(dst_stat.st_mode)
        or _fs_type(dst_stat.st_dev) != "ext4"
    ):
        return 0
    try:
        os.posix_fallocate(dst, 0, size)
    except OSError:
        # Not enough space, say: the copy goes on as it would have without
        # (and fails, if it does, as it would have).
        os.ftruncate(dst, 0)
        return 0
    return size


def _copy_file(src: Any, dst: Any, follow_symlinks: bool, stop: _Stop) -> None:
    """``copyfile``'s work, all of it on the worker."""
    if not follow_symlinks and os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    # Checked before opening, as shutil does: opening a named pipe waits
    # for a writer.
    _refuse_same(src, dst)
    src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            allocated = _preallocate(src_fd, dst_fd)
            try:
                _copy_data(src_fd, dst_fd, stop)
            finally:
                # Allocating set the size: a copy that ended short
                # (cancelled, failed, a source that shrank) keeps only what
                # it copied, as without the allocation.
                if stop.copied < allocated:
                    os.ftruncate(dst_fd, stop.copied)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def _copy(src: Any, dst: Any, follow_symlinks: bool, stop: _Stop) -> Any:
    """``copy``'s work, all of it on the worker; returns the copy's path."""
    if os.path.isdir(dst):
        dst = os.path.join(dst, os.path.basename(os.fspath(src)))
    _copy_file(src, dst, follow_symlinks, stop)
    if not stop.stopped:
        shutil.copymode(src, dst, follow_symlinks=follow_symlinks)
    return dst


async def _on_worker(work: Any, *args: Any) -> Any:
    """``work(*args, stop)`` on a worker thread; a cancellation stops it at
    its next system call, and is raised once it has returned."""
    stop = _Stop()
    call = ThreadCall(None, work, *args, stop)
    try:
        return await call.result()
    except BaseException:
        stop.stopped = True
        raise
    finally:
        await wait_to_end(call)


async def copyfile(src: _Path, dst: _Path, *, follow_symlinks: bool = True) -> _Path:
    """Copy the contents of ``src`` to ``dst``, as ``shutil.copyfile`` does.

    Returns ``dst``. ``dst`` is created or truncated; a symbolic link
    ``src`` is copied as a link when ``follow_symlinks`` is false. Raises
    ``shutil.SameFileError`` when both name one file (nothing is touched),
    ``shutil.SpecialFileError`` for a named pipe, and the ``OSError`` of
    the failing system call otherwise. Works under asyncio and Trio.
    """
    await _on_worker(_copy_file, src, dst, follow_symlinks)
    return dst


def _refuse_same(src: Any, dst: Any) -> None:
    src_stat = os.stat(src)
    if stat.S_ISFIFO(src_stat.st_mode):
        raise shutil.SpecialFileError(f"`{os.fsdecode(src)}` is a named pipe")
    try:
        dst_stat = os.stat(dst)
    except FileNotFoundError:
        return
    if os.path.samestat(src_stat, dst_stat):
        raise shutil.SameFileError(f"{src!r} and {dst!r} are the same file")
    if stat.S_ISFIFO(dst_stat.st_mode):
        raise shutil.SpecialFileError(f"`{os.fsdecode(dst)}` is a named pipe")


async def copy(src: _Path, dst: _Path, *, follow_symlinks: bool = True) -> _Path:
    """Copy data and permission bits, as ``shutil.copy`` does.

    ``dst`` may be a directory: the copy then gets the source's name in it.
    Returns the path of the copy.
    """
    return await _on_worker(_copy, src, dst, follow_symlinks)  # type: ignore[no-any-return]
