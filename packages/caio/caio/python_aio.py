"""Pure-Python backend: a pool of worker threads doing pread/pwrite/fsync.

It implements the whole backend protocol of ``docs/internals.md`` and works
anywhere Python does. Three things keep it from being merely "a thread pool":

* Reads try ``preadv(..., RWF_NOWAIT)`` on the calling thread first. The
  kernel then copies from the page cache if every page is there and answers
  EAGAIN instead of sleeping on the disk otherwise, so a cache hit costs one
  syscall and no thread hop at all.
* Completions that resolve futures reach the loop in batches: workers append
  to a deque and poke a wakeup descriptor (an eventfd, or a pipe) only when
  no wakeup is already pending; ``process_events`` drains the deque on the
  loop thread. There is no ``call_soon_threadsafe`` per operation.
* Back-pressure comes for free: at most ``min(pool_size, max_requests)``
  workers exist, so at most that many operations are in the kernel at once;
  the rest wait in the job queue, in order.

Operations made with the caio 0.12 API (``Operation.read(...)`` and
``Context.submit``) run their callback in the worker thread that finished
them, as caio 0.12's thread backend did.
"""

from __future__ import annotations

import atexit
import errno
import os
import select
import threading
import weakref
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue

from .abstract import AbstractContext, AbstractOperation

# Not `from typing import TYPE_CHECKING`: importing typing would make
# `import caio` slower; type checkers treat this name as True anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    from typing_extensions import Buffer, Self

    from .abstract import FutureFactory

__all__ = ("Context", "Operation", "MAX_RW_COUNT")

#: The kernel's cap on one read or write (INT_MAX rounded down to a page).
MAX_RW_COUNT = 0x7FFFF000
_OFFSET_LIMIT = 2**63  # offsets are off_t: below this
_PRIORITY_LIMIT = 0x10000
_FD_MAX = 0x7FFFFFFF

_READ, _WRITE, _FSYNC, _FDSYNC = 0, 1, 2, 3
_OPCODE_NAMES = ("read", "write", "fsync", "fdsync")
_NEW, _WAITING, _INFLIGHT, _DONE = 0, 1, 2, 3
_STATE_NAMES = ("new", "waiting", "in flight", "done")

# Reads up to this size try RWF_NOWAIT on the calling thread. Bigger ones go
# to the pool: copying megabytes from the page cache would stall the event
# loop for longer than a thread hop costs.
_NOWAIT_MAX = 256 * 1024
_RWF_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)
# Without RWF_NOWAIT (not Linux), every read goes to the pool.
_preadv: Callable[..., int] | None = getattr(os, "preadv", None) if _RWF_NOWAIT else None
# Errors of the nowait read that the pool would only repeat: raise them at
# once. Anything else (EAGAIN, EOPNOTSUPP for /proc files, ESPIPE for pipes,
# EINVAL for O_DIRECT descriptors, ...) means "let a worker do it".
_FAIL_AT_ONCE = frozenset((errno.EBADF, errno.EISDIR))

_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)

# Fork: a child must not use the parent's worker threads (they do not exist
# there) nor its queues. Every context remembers the generation it was made
# in; the child bumps the generation, so any use raises RuntimeError.
_generation = 0


def _after_fork_in_child() -> None:
    global _generation
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

# What setting a future's result may raise: the future was cancelled
# meanwhile (InvalidStateError) or its loop is closed (RuntimeError). Set by
# set_future_factory(), when asyncio is surely imported: `import caio` does
# not import asyncio.
_future_errors: tuple[type[BaseException], ...] = (RuntimeError,)


def _oserror(code: int) -> OSError:
    # OSError(errno, msg) builds the matching subclass (IsADirectoryError...).
    return OSError(code, os.strerror(code))


# ---- argument checks (same rules and order as the C backends) ----------


def _check_size(value: object, what: str, huge: type[Exception]) -> int:
    if not isinstance(value, int):
        raise TypeError(f"{what} must be int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} must not be negative")
    if value >= _OFFSET_LIMIT:
        if huge is MemoryError:
            raise MemoryError(f"{what} is too large to allocate")
        raise ValueError(f"{what} must be less than 2**63")
    return int(value)


def _check_fd(fd: object) -> int:
    if isinstance(fd, int):
        value = int(fd)
    else:
        fileno = getattr(fd, "fileno", None)
        if fileno is None:
            raise TypeError("argument must be an int, or have a fileno() method.")
        value = fileno()
        if not isinstance(value, int):
            raise TypeError("fileno() returned a non-integer")
    if value < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({value})")
    if value > _FD_MAX:
        raise OverflowError("file descriptor is greater than maximum")
    return value


def _check_priority(priority: object) -> None:
    if not isinstance(priority, int):
        raise TypeError(f"priority must be int, not {type(priority).__name__}")
    if not 0 <= priority < _PRIORITY_LIMIT:
        raise ValueError("priority must be in 0..65535")


def _payload_view(payload: object) -> memoryview:
    try:
        view = memoryview(payload)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"payload must be a bytes-like object, not {type(payload).__name__}",
        ) from None
    if not view.c_contiguous:
        view.release()
        raise BufferError("payload must be a C-contiguous buffer")
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view


# ---- operations ---------------------------------------------------------


class Operation(AbstractOperation):
    """One file I/O request (caio 0.12 API). Make it with read(), write(),
    fsync() or fdsync(), submit it with ``Context.submit``."""

    __slots__ = (
        "_opcode", "_fd", "_offset", "_nbytes", "_priority", "_payload",
        "_view", "_state", "_result", "_data", "_callback", "_future", "_key",
        "_cancel", "__weakref__",
    )

    _opcode: int
    _fd: int
    _offset: int
    _nbytes: int
    _priority: int
    _payload: Any
    _view: memoryview | None
    _state: int
    _result: int
    _data: bytes | None
    _callback: Callable[[int], Any] | None
    _future: asyncio.Future[Any] | None
    _key: object
    _cancel: bool  # set by cancel_future while a worker runs it

    def __init__(self) -> None:
        raise TypeError("use Operation.read(), write(), fsync() or fdsync()")

    @classmethod
    def _make(
        cls, opcode: int, fd: int, offset: int, nbytes: int,
        payload: Any = None, view: memoryview | None = None, priority: int = 0,
    ) -> Self:
        op = object.__new__(cls)
        op._opcode = opcode
        op._fd = fd
        op._offset = offset
        op._nbytes = nbytes
        op._priority = priority
        op._payload = payload
        op._view = view
        op._state = _NEW
        op._result = 0
        op._data = None
        op._callback = None
        op._future = None
        op._key = op
        return op

    @classmethod
    def read(cls, nbytes: int, fd: Any, offset: int, priority: int = 0) -> Self:
        """A read of at most ``nbytes`` at ``offset``.

        Raises TypeError, ValueError (negative values, offset >= 2**63),
        MemoryError (nbytes >= 2**63).
        """
        n = _check_size(nbytes, "nbytes", MemoryError)
        fileno = _check_fd(fd)
        off = _check_size(offset, "offset", ValueError)
        _check_priority(priority)
        return cls._make(_READ, fileno, off, min(n, MAX_RW_COUNT), priority=priority)

    @classmethod
    def write(cls, payload: Buffer, fd: Any, offset: int, priority: int = 0) -> Self:
        """A write of ``payload`` (any C-contiguous buffer) at ``offset``.

        Raises TypeError/BufferError (bad payload), ValueError.
        """
        fileno = _check_fd(fd)
        off = _check_size(offset, "offset", ValueError)
        _check_priority(priority)
        view = _payload_view(payload)
        return cls._make(
            _WRITE, fileno, off, min(view.nbytes, MAX_RW_COUNT), payload, view, priority,
        )

    @classmethod
    def fsync(cls, fd: Any, priority: int = 0) -> Self:
        """An fsync of ``fd``. Raises TypeError, ValueError."""
        fileno = _check_fd(fd)
        _check_priority(priority)
        return cls._make(_FSYNC, fileno, 0, 0, priority=priority)

    @classmethod
    def fdsync(cls, fd: Any, priority: int = 0) -> Self:
        """An fdatasync of ``fd``. Raises TypeError, ValueError."""
        fileno = _check_fd(fd)
        _check_priority(priority)
        return cls._make(_FDSYNC, fileno, 0, 0, priority=priority)

    def set_callback(self, callback: Callable[[int], Any] | None) -> None:
        """``callback(result)`` runs when done, in the worker thread.

        ``result`` is the byte count, or -errno on failure. Raises TypeError
        if ``callback`` is neither callable nor None.
        """
        if callback is not None and not callable(callback):
            raise TypeError(
                f"callback must be callable, not {type(callback).__name__}",
            )
        self._callback = callback

    def get_value(self) -> bytes | int | None:
        """bytes (read, short at end of file), int (write) or None (sync).

        Raises OSError if the operation failed, RuntimeError if not done.
        """
        if self._state != _DONE:
            raise RuntimeError("operation is not finished")
        if self._result < 0:
            raise _oserror(-self._result)
        if self._opcode == _READ:
            return self._data
        if self._opcode == _WRITE:
            return self._result
        return None

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
    def payload(self) -> Any:
        """write: the payload; read: the bytes read once done, else None."""
        if self._opcode == _READ:
            return self._data if self._state == _DONE and self._result >= 0 else None
        return self._payload

    def __repr__(self) -> str:
        name = f"{type(self).__module__}.{type(self).__qualname__}"
        head = (f"<{name} {_OPCODE_NAMES[self._opcode]} fd={self._fd} "
                f"offset={self._offset} nbytes={self._nbytes}")
        if self._state == _DONE:
            return f"{head} done result={self._result}>"
        return f"{head} {_STATE_NAMES[self._state]}>"


# ---- the worker pool ----------------------------------------------------


def _wait_ready(fd: int, stop_fd: int, events: int, op: Operation) -> None:
    """Wait until a non-seekable ``fd`` is ready, the pool stops, or ``op``
    is cancelled.

    A read from an empty pipe can block forever, and a blocked thread cannot
    be interrupted: close() would hang joining it, and cancelled reads would
    hold every worker. Waiting in poll() on the pool's stop descriptor lets
    close() end the wait with ECANCELED; waking every _CANCEL_POLL_MS to look
    at op._cancel (set by cancel_future) frees the worker of a cancelled one.
    """
    if not hasattr(select, "poll"):
        return
    poller = select.poll()
    poller.register(fd, events)
    poller.register(stop_fd, select.POLLIN)
    while True:
        ready = poller.poll(_CANCEL_POLL_MS)
        if op._cancel or any(ready_fd == stop_fd for ready_fd, _ in ready):
            raise _oserror(errno.ECANCELED)
        if ready:  # readable/writable, or an error the read/write reports
            return


_CANCEL_POLL_MS = 50


def _execute(op: Operation, stop_fd: int) -> None:
    """Run one operation (in a worker thread, GIL released by os.*)."""
    fd = op._fd
    code = op._opcode
    try:
        if code == _READ:
            try:
                data = os.pread(fd, op._nbytes, op._offset)
            except OSError as exc:
                if exc.errno != errno.ESPIPE:
                    raise
                # Pipes, sockets, ttys: no position to read at.
                _wait_ready(fd, stop_fd, select.POLLIN, op)
                data = os.read(fd, op._nbytes)
            op._data = data
            op._result = len(data)
        elif code == _WRITE:
            view = op._view
            assert view is not None
            try:
                try:
                    op._result = os.pwrite(fd, view, op._offset)
                except OSError as exc:
                    if exc.errno != errno.ESPIPE:
                        raise
                    _wait_ready(fd, stop_fd, select.POLLOUT, op)
                    op._result = os.write(fd, view)
            finally:
                # Unlocks a bytearray payload for resizing again.
                view.release()
                op._view = None
        elif code == _FSYNC:
            os.fsync(fd)
            op._result = 0
        else:
            _fdatasync(fd)
            op._result = 0
    except OSError as exc:
        op._result = -(exc.errno or errno.EIO)
    except MemoryError:
        op._result = -errno.ENOMEM
    except OverflowError:
        op._result = -errno.EOVERFLOW
    except Exception:  # a bug must fail the operation, not kill the worker
        import logging

        logging.getLogger(__name__).exception("caio: %r failed unexpectedly", op)
        op._result = -errno.EIO


def _run_callback(op: Operation) -> None:
    callback = op._callback
    if callback is None:
        return
    try:
        callback(op._result)
    except BaseException:  # one failing callback must not kill the worker
        import logging

        logging.getLogger(__name__).exception("caio callback %r failed", callback)


def _make_wakeup() -> tuple[int, int]:
    """A non-blocking (read end, write end); the same fd for an eventfd."""
    if hasattr(os, "eventfd"):
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return fd, fd
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


def _signal(fd_r: int, fd_w: int) -> None:
    try:
        if fd_r == fd_w:
            os.eventfd_write(fd_w, 1)
        else:
            os.write(fd_w, b"\0")
    except OSError:  # a full pipe is readable already
        pass


class _Pool:
    """What the workers share with the context.

    The workers hold this, not the Context, so that a Context nobody closed
    can still be collected (its finalizer then stops the workers).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.jobs: SimpleQueue[Operation | None] = SimpleQueue()
        # Operations not yet taken by a worker, keyed by their future (fast
        # path) or by themselves (Operation API). Whoever pops an entry owns
        # the operation: a worker runs it, cancel()/close() cancel it. dict
        # pop is atomic, so that needs no lock.
        self.queued: dict[object, Operation] = {}
        # Operations a worker runs, by the same keys: cancel_future flags
        # them (only a wait on a pipe or socket can act on it).
        self.running: dict[object, Operation] = {}
        # Finished operations whose futures wait for process_events().
        self.done: deque[Operation] = deque()
        self.signalled = False
        self.wake_r, self.wake_w = _make_wakeup()
        # Becomes readable (for good) when the pool stops: see _wait_ready.
        self.stop_r, self.stop_w = _make_wakeup()
        self.fds_open = True
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.generation = _generation

    def start(self) -> None:
        with self.lock:
            if self.threads:
                return
            for i in range(self.size):
                thread = threading.Thread(
                    target=_worker, args=(self,), name=f"caio-python-{i}", daemon=True,
                )
                thread.start()
                self.threads.append(thread)

    def wake(self) -> None:
        _signal(self.wake_r, self.wake_w)

    def consume_wakeup(self) -> None:
        try:
            if self.wake_r == self.wake_w:
                os.eventfd_read(self.wake_r)
            else:
                os.read(self.wake_r, 4096)
        except OSError:  # EAGAIN: nothing to consume
            pass

    def stop(self, timeout: float | None) -> None:
        """Let the workers finish what they run and exit; wait for them."""
        if self.generation != _generation:
            # A forked child: the workers live in the parent only, and the
            # stop descriptor is shared with it; signalling it would cancel
            # the parent's pipe reads.
            return
        threads = self.threads
        if self.fds_open:
            _signal(self.stop_r, self.stop_w)
        for _ in threads:
            self.jobs.put(None)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def close_fds(self) -> None:
        if self.fds_open:
            self.fds_open = False
            for fd in {self.wake_r, self.wake_w, self.stop_r, self.stop_w}:
                os.close(fd)

    def __del__(self) -> None:
        # Every worker is gone (each held a reference): nobody writes the
        # wakeup fd any more.
        self.close_fds()


def _worker(pool: _Pool) -> None:
    get = pool.jobs.get
    take = pool.queued.pop
    running = pool.running
    done = pool.done
    stop_fd = pool.stop_r
    while True:
        op = get()
        if op is None:
            return
        if take(op._key, None) is None:
            continue  # cancelled meanwhile
        op._state = _INFLIGHT
        op._cancel = False
        key = op._key
        running[key] = op
        _execute(op, stop_fd)
        running.pop(key, None)
        op._state = _DONE
        if op._future is not None:
            done.append(op)
            # Wake the loop only if no wakeup is pending. process_events()
            # clears the flag before draining, so an operation appended
            # after the drain sees the flag cleared and wakes it again.
            if not pool.signalled:
                pool.signalled = True
                pool.wake()
        else:
            _run_callback(op)
        del op


def _release_dropped(pool: _Pool) -> None:
    """Finalizer of a Context that was never closed: stop its workers."""
    _cancel_queued(pool)
    pool.stop(timeout=0)


def _cancel_queued(pool: _Pool) -> list[Operation]:
    cancelled: list[Operation] = []
    while True:
        try:
            _, op = pool.queued.popitem()
        except KeyError:
            return cancelled
        op._result = -errno.ECANCELED
        op._state = _DONE
        if op._view is not None:
            op._view.release()
            op._view = None
        cancelled.append(op)


# ---- the context --------------------------------------------------------

_live: weakref.WeakSet[Context] = weakref.WeakSet()


class Context(AbstractContext):
    """A pool of ``pool_size`` worker threads (at most ``max_requests``).

    ``Context(max_requests=512, pool_size=8)``; ``max_requests=None`` means
    512. Raises TypeError/ValueError for non-int or non-positive sizes.
    """

    def __init__(self, max_requests: int | None = 512, pool_size: int = 8) -> None:
        if max_requests is None:  # like the C backends: None is the default
            max_requests = 512
        for name, value in (("max_requests", max_requests), ("pool_size", pool_size)):
            if not isinstance(value, int):
                raise TypeError(f"{name} must be int, not {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be positive")
        self._max_requests = max_requests
        self._pool = _Pool(min(pool_size, max_requests))
        # The generation this context may be used in; -1 once closed. One
        # comparison checks both "closed" and "created in another process".
        self._usable_in = _generation
        self._made_in = _generation
        self._closed = False
        self._future_factory: FutureFactory | None = None
        # Free scratch buffers for nowait reads. Deliberately misaligned by
        # one byte: on an O_DIRECT descriptor the kernel then rejects the
        # read with EINVAL and it goes to the pool, because a direct read
        # would do real disk I/O on the loop thread even with RWF_NOWAIT.
        self._scratch: list[memoryview] = []
        self._finalizer = weakref.finalize(self, _release_dropped, self._pool)
        self._finalizer.atexit = False  # _close_all_at_exit does it, with a timeout
        _live.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"max_requests={self._max_requests}"
        return f"<{type(self).__module__}.{type(self).__qualname__} {state}>"

    @property
    def max_requests(self) -> int:
        """At most this many operations run at once."""
        return self._max_requests

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    @property
    def fileno(self) -> int:
        """Readable while futures wait for process_events().

        Raises ValueError once closed.
        """
        if self._closed:
            raise ValueError("I/O operation on closed context")
        return self._pool.wake_r

    def _raise_unusable(self) -> None:
        if self._made_in != _generation:
            raise RuntimeError(
                "caio.python_aio.Context was created in another process "
                "(before a fork); make a new context in this process",
            )
        raise ValueError("I/O operation on closed context")

    # -- caio 0.12 API --

    def submit(self, *ops: Operation) -> int:
        """Queue operations; returns how many were queued.

        Raises TypeError (not a python_aio Operation), RuntimeError (already
        submitted or finished, or context from another process), ValueError
        (closed).
        """
        if self._usable_in != _generation:
            self._raise_unusable()
        seen: set[int] = set()
        for op in ops:
            if not isinstance(op, Operation):
                raise TypeError(
                    f"expected caio.python_aio.Operation, got {type(op).__name__}",
                )
            if op._state == _DONE:
                raise RuntimeError("operation has already finished; make a new one")
            if op._state != _NEW or id(op) in seen:
                raise RuntimeError("operation is already submitted")
            seen.add(id(op))
        pool = self._pool
        if ops and not pool.threads:
            pool.start()
        for op in ops:
            op._state = _WAITING
            op._key = op
            pool.queued[op] = op
            pool.jobs.put(op)
        return len(ops)

    def cancel(self, *ops: Operation) -> int:
        """Cancel operations no worker has started; returns how many.

        A cancelled operation finishes with -ECANCELED (its callback runs
        here). Raises TypeError for objects that are not Operations.
        """
        count = 0
        queued = self._pool.queued
        for op in ops:
            if not isinstance(op, Operation):
                raise TypeError(
                    f"expected caio.python_aio.Operation, got {type(op).__name__}",
                )
            if queued.pop(op._key, None) is not None:
                self._finish_cancelled(op)
                count += 1
        return count

    def close(self) -> None:
        """Cancel queued operations, wait for running ones, stop the pool.

        Idempotent. Futures still pending get OSError(ECANCELED); callbacks
        of cancelled operations get -ECANCELED. In a forked child it only
        forgets the parent's pool.
        """
        self._shutdown(timeout=None)

    def _shutdown(self, timeout: float | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._usable_in = -1
        self._finalizer.detach()
        _live.discard(self)
        pool = self._pool
        if self._made_in != _generation:
            pool.threads = []  # they live in the parent only
            pool.close_fds()
            return
        for op in _cancel_queued(pool):
            self._finish_cancelled(op)
        pool.stop(timeout)
        self._drain()
        if not any(thread.is_alive() for thread in pool.threads):
            pool.close_fds()
        # else: a worker is stuck in a syscall past the exit timeout; it may
        # still write the wakeup fd, so that fd must not be reused.

    def _finish_cancelled(self, op: Operation) -> None:
        op._result = -errno.ECANCELED
        op._state = _DONE
        if op._view is not None:
            op._view.release()
            op._view = None
        future = op._future
        if future is not None:
            if not future.done():
                try:
                    future.set_exception(_oserror(errno.ECANCELED))
                except _future_errors:
                    pass
        else:
            _run_callback(op)

    # -- the asyncio fast path --

    def set_future_factory(self, factory: FutureFactory) -> None:
        """``factory()`` makes the futures, usually ``loop.create_future``.

        Raises TypeError if it is not callable.
        """
        global _future_errors
        if not callable(factory):
            raise TypeError("future factory must be callable")
        from asyncio import InvalidStateError

        _future_errors = (InvalidStateError, RuntimeError)
        self._future_factory = factory

    def process_events(self) -> int:
        """Resolve the futures of finished operations; returns how many.

        Never blocks. Raises ValueError once closed, RuntimeError in a
        forked child.
        """
        if self._usable_in != _generation:
            self._raise_unusable()
        pool = self._pool
        if pool.fds_open:
            pool.consume_wakeup()
        # Clear the flag before draining: see _worker.
        pool.signalled = False
        return self._drain()

    def _drain(self) -> int:
        done = self._pool.done
        count = 0
        errors = _future_errors
        while True:
            try:
                op = done.popleft()
            except IndexError:
                return count
            count += 1
            future = op._future
            assert future is not None
            op._future = None
            result = op._result
            try:
                if result < 0:
                    future.set_exception(_oserror(-result))
                elif op._opcode == _READ:
                    future.set_result(op._data)
                elif op._opcode == _WRITE:
                    future.set_result(result)
                else:
                    future.set_result(None)
            except errors:  # cancelled meanwhile, or its loop is closed
                pass

    def _enqueue(self, op: Operation) -> asyncio.Future[Any]:
        factory = self._future_factory
        if factory is None:
            raise RuntimeError("set_future_factory() was not called")
        future = factory()
        op._future = future
        op._key = future
        op._state = _WAITING
        pool = self._pool
        if not pool.threads:
            pool.start()
        pool.queued[future] = op
        pool.jobs.put(op)
        return future

    def read_async(
        self, nbytes: int, fd: Any, offset: int, priority: int = 0,
    ) -> bytes | asyncio.Future[bytes]:
        """The bytes at once on a page-cache hit, else a future.

        Raises OSError (EBADF at once), TypeError, ValueError (negative
        values; also once closed), MemoryError, RuntimeError (other process,
        no future factory).
        """
        if self._usable_in != _generation:
            self._raise_unusable()
        # The common call (plain ints in range) is checked inline: the
        # general checks cost as much as the read itself.
        if not (
            nbytes.__class__ is int and fd.__class__ is int
            and offset.__class__ is int and priority.__class__ is int
            and 0 <= nbytes <= _NOWAIT_MAX and 0 <= fd <= _FD_MAX
            and 0 <= offset < _OFFSET_LIMIT and 0 <= priority < _PRIORITY_LIMIT
        ):
            nbytes = _check_size(nbytes, "nbytes", MemoryError)
            fd = _check_fd(fd)
            offset = _check_size(offset, "offset", ValueError)
            _check_priority(priority)
            if nbytes > _NOWAIT_MAX:
                return self._enqueue(
                    Operation._make(_READ, fd, offset, min(nbytes, MAX_RW_COUNT)),
                )
        if _preadv is not None:
            free = self._scratch
            try:
                buf = free.pop()
            except IndexError:
                # One byte off: see __init__ (O_DIRECT).
                buf = memoryview(bytearray(_NOWAIT_MAX + 1))[1:]
            try:
                view = buf[:nbytes]
                try:
                    got = _preadv(fd, [view], offset, _RWF_NOWAIT)
                except OSError as exc:
                    if exc.errno in _FAIL_AT_ONCE:
                        raise
                    got = -1  # not cached, or not for RWF_NOWAIT: the pool
                if got == nbytes:
                    return view.tobytes()
                if got == 0:
                    return b""
                if got > 0:
                    # Short: end of file, or the rest is not cached (the
                    # kernel stops at the first missing page). At end of
                    # file a nowait read there gives 0; anything else means
                    # "not cached", and the pool reads it all.
                    try:
                        at_end = _preadv(fd, [buf[:1]], offset + got, _RWF_NOWAIT) == 0
                    except (OSError, OverflowError):
                        at_end = False
                    if at_end:
                        return view[:got].tobytes()
            finally:
                free.append(buf)
        return self._enqueue(Operation._make(_READ, fd, offset, nbytes))

    def write_async(
        self, payload: Buffer, fd: Any, offset: int, priority: int = 0,
    ) -> int | asyncio.Future[int]:
        """A future of the count written.

        Raises TypeError/BufferError (bad payload), ValueError (also once
        closed), RuntimeError (other process, no future factory).
        """
        if self._usable_in != _generation:
            self._raise_unusable()
        fileno = _check_fd(fd)
        off = _check_size(offset, "offset", ValueError)
        _check_priority(priority)
        view = _payload_view(payload)
        return self._enqueue(Operation._make(
            _WRITE, fileno, off, min(view.nbytes, MAX_RW_COUNT), payload, view,
        ))

    def fsync_async(self, fd: Any, priority: int = 0) -> asyncio.Future[None] | None:
        """A future of the fsync. Raises like write_async."""
        if self._usable_in != _generation:
            self._raise_unusable()
        fileno = _check_fd(fd)
        _check_priority(priority)
        return self._enqueue(Operation._make(_FSYNC, fileno, 0, 0))

    def fdsync_async(self, fd: Any, priority: int = 0) -> asyncio.Future[None] | None:
        """A future of the fdatasync. Raises like write_async."""
        if self._usable_in != _generation:
            self._raise_unusable()
        fileno = _check_fd(fd)
        _check_priority(priority)
        return self._enqueue(Operation._make(_FDSYNC, fileno, 0, 0))

    def cancel_future(self, future: asyncio.Future[Any]) -> bool:
        """Cancel the operation behind ``future`` if no worker started it.

        A running operation cannot be stopped, except a wait on a pipe or
        socket, which ends with ECANCELED; either way its result is dropped.
        Returns whether it was cancelled before it started.
        """
        op = self._pool.queued.pop(future, None)
        if op is None:
            running = self._pool.running.get(future)
            if running is not None:
                running._cancel = True
            return False
        self._finish_cancelled(op)
        return True



def _close_all_at_exit() -> None:
    # Daemon workers would otherwise be frozen mid-syscall at finalization.
    for context in list(_live):
        context._shutdown(timeout=1.0)


atexit.register(_close_all_at_exit)
