"""Pure-Python backend: a pool of worker threads doing pread/pwrite/fsync.

It implements the whole backend protocol of ``docs/internals.md`` and works
anywhere Python does. Four things keep it from being merely "a thread pool":

* Reads try ``preadv(..., RWF_NOWAIT)`` on the calling thread first. The
  kernel then copies from the page cache if every page is there and answers
  EAGAIN instead of sleeping on the disk otherwise, so a cache hit costs one
  syscall and no thread hop at all.
* A buffered write alone on the context, with the loop idle (the asyncio
  adapter's check), is made with ``os.pwrite`` on the calling thread while
  such writes stay fast, as the C backends do: no thread hop either.
* Completions that resolve futures reach the loop in batches: workers append
  to a deque and poke a wakeup descriptor (an eventfd, or a pipe) only when
  no wakeup is already pending; ``process_events`` drains the deque on the
  loop thread. There is no ``call_soon_threadsafe`` per operation.
* Back-pressure comes for free: at most ``min(pool_size, max_requests)``
  workers exist, so at most that many operations are in the kernel at once;
  the rest wait in the job queue, in order.

The module has the layout of the C backends: the kernel layer (the system
calls, results as ``-errno``) is ``caio._python_kernel``, the engine (worker
pool, queues, completion hand-off) is ``caio._python_engine``, the argument
checks are ``caio._python_args``, and this module holds the Python types,
``Operation`` and ``Context``.

Operations made with the caio 0.12 API (``Operation.read(...)`` and
``Context.submit``) run their callback in the worker thread that finished
them, as caio 0.12's thread backend did.
"""

from __future__ import annotations

import errno
import weakref
from _thread import get_ident
from time import perf_counter_ns

from . import _fork
from ._fsops import NAMES as _FS_NAMES
from ._limits import MAX_REQUESTS_DEFAULT, MAX_REQUESTS_LIMIT
from ._python_args import check_fd, check_priority, check_size, payload_view
from ._python_engine import (
    NEW,
    WAITING,
    Pool,
    cancel_queued,
    expect_asyncio,
    fail_stuck,
    finish_cancelled,
    release_dropped,
)
from ._python_kernel import (
    FAIL_AT_ONCE,
    FD_MAX,
    FDSYNC,
    FEATURES,
    FS,
    FSYNC,
    MAX_RW_COUNT,
    NOWAIT_MAX_PYTHON,
    OFFSET_LIMIT,
    PRIORITY_LIMIT,
    READ,
    READV,
    RWF_NOWAIT,
    WRITE,
    WRITEV,
    nowait_readinto,
    preadv,
    write_here,
)
from ._python_operation import Operation
from ._registry import live as _live
from .abstract import AbstractContext

# Not `from typing import TYPE_CHECKING`: importing typing would make
# `import caio` slower; type checkers treat this name as True anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Sequence
    from typing import Any

    from typing_extensions import Buffer

    from .abstract import FutureFactory

__all__ = ("Context", "Operation", "MAX_RW_COUNT")

_NO_FACTORY = "set_future_factory() must be called before the *_async methods"
_MAX_REQUESTS_RANGE = (
    f"max_requests must be between 1 and {MAX_REQUESTS_LIMIT} (0 or None: the default)"
)

# Fork: a child must not use the parent's worker threads (they do not exist
# there) nor its queues. A context remembers the fork generation it was made
# in (caio._fork); any use in a child raises RuntimeError. The hot paths read
# the counter as the module global _fork._generation: fork_generation()
# would cost a call per operation.


# The lone write's policy, as the C backends' (src/common/batch.h): a write
# that took longer than LONE_WAIT_NS fails; a moving average of those,
# 0..AVG_ONE, below LONE_ABOVE makes only every LONE_PROBE_EVERY-th lone
# write a probe made in the call.
LONE_WAIT_NS = 150_000
AVG_ONE = 256
LONE_ABOVE = AVG_ONE // 2
LONE_PROBE_EVERY = 32


# ---- the context --------------------------------------------------------


class Context(AbstractContext):
    """python_aio context: a pool of ``pool_size`` worker threads (at most
    ``max_requests``), pure Python.

    ``Context(max_requests=512, pool_size=8, close_timeout=10.0)``;
    ``max_requests`` None or 0 means 512. close() waits ``close_timeout``
    seconds for running operations, then gives up on them (as thread_aio
    does): a worker stuck in a system call that nothing interrupts, such as
    open(2) of a FIFO without a writer, must not hang close(). Raises
    TypeError for non-int sizes or a non-number timeout, ValueError for a
    ``max_requests`` outside 1..65536, a ``pool_size`` below 1 or a
    negative timeout.
    """

    def __init__(
        self, max_requests: int | None = MAX_REQUESTS_DEFAULT, pool_size: int = 8,
        close_timeout: float = 10.0,
    ) -> None:
        if max_requests is None:  # like the C backends: None is the default
            max_requests = MAX_REQUESTS_DEFAULT
        for name, value in (("max_requests", max_requests), ("pool_size", pool_size)):
            if not isinstance(value, int):
                raise TypeError(f"{name} must be int, not {type(value).__name__}")
        # thread_aio's rule: a real number (__float__ or __index__), not a bool.
        kind = type(close_timeout)
        if kind is bool or not (hasattr(kind, "__float__") or hasattr(kind, "__index__")):
            raise TypeError(f"close_timeout must be a number, not {kind.__name__}")
        timeout = float(close_timeout)
        if not timeout >= 0:  # also NaN
            raise ValueError("close_timeout must be >= 0")
        self._close_timeout = timeout
        if max_requests == 0:
            max_requests = MAX_REQUESTS_DEFAULT
        if not 1 <= max_requests <= MAX_REQUESTS_LIMIT:
            raise ValueError(_MAX_REQUESTS_RANGE)
        if pool_size < 1:
            raise ValueError("pool_size must be positive")
        self._max_requests = int(max_requests)
        self._pool = Pool(min(pool_size, self._max_requests))
        generation = _fork._generation
        self._made_in = generation
        # The generation this context may be used in, -1 once closed: one
        # comparison checks "closed" and "created in another process".
        self._open_in = generation
        # The same, for the *_async methods: also -1 until a future factory
        # is set, so that their one comparison checks that too.
        self._usable_in = -1
        self._closed = False
        self._future_factory: FutureFactory | None = None
        self._owner_thread = get_ident()
        # Free scratch buffers for nowait reads. Deliberately misaligned by
        # one byte: on an O_DIRECT descriptor the kernel then rejects the
        # read with EINVAL and it goes to the pool, because a direct read
        # would do real disk I/O on the loop thread even with RWF_NOWAIT.
        self._scratch: list[memoryview] = []
        self._ref = weakref.ref(self)  # what its operations point back to
        # The futures of the operations in the pool, by their _key: here, not
        # on the operations, which the workers hold (see Pool).
        self._futures: dict[object, asyncio.Future[Any]] = {}
        # "The loop has nothing else to run" (the asyncio adapter's check),
        # and the lone write's moving average and probe count.
        self._idle_check: Callable[[], object] | None = None
        self._lone_avg = AVG_ONE
        self._lone_probe = 0
        self._finalizer = weakref.finalize(self, release_dropped, self._pool)
        self._finalizer.atexit = False  # the exit hook does it, with a timeout
        _live.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"max_requests={self._max_requests}"
        return f"<{type(self).__module__}.{type(self).__qualname__} {state}>"

    @property
    def max_requests(self) -> int:
        """At most this many operations run at once."""
        return self._max_requests

    @property
    def _kernel_features(self) -> frozenset[str]:
        """The kernel features this context found (caio._features names)."""
        return FEATURES

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
        if self._made_in != _fork._generation:
            raise RuntimeError(
                "caio.python_aio.Context was created in another process "
                "(before a fork); make a new context in this process",
            )
        if self._closed:
            raise ValueError("I/O operation on closed context")
        if self._future_factory is not None and self._owner_thread != get_ident():
            raise RuntimeError(
                "the *_async methods of this context belong to the thread that "
                "called set_future_factory() (its event loop's): use one "
                "context per event loop",
            )
        raise RuntimeError(_NO_FACTORY)

    # -- caio 0.12 API --

    def submit(self, *ops: Operation) -> int:
        """Queue operations; returns how many were queued.

        An operation already submitted (in flight, finished, or earlier in
        the same call) is left alone and not counted. Raises TypeError (not
        a python_aio Operation; nothing is queued then), RuntimeError
        (context from another process), ValueError (closed).
        """
        if self._open_in != _fork._generation:
            self._raise_unusable()
        for op in ops:
            if not isinstance(op, Operation):
                raise TypeError(
                    f"expected caio.python_aio.Operation, got {type(op).__name__}",
                )
        pool = self._pool
        if ops and not pool.threads:
            pool.start()
        owner = self._ref
        count = 0
        for op in ops:
            if op._state != NEW:
                continue
            op._state = WAITING
            op._key = op
            op._owner = owner
            pool.queued[op] = op
            pool.jobs.put(op)
            count += 1
        return count

    def cancel(self, *ops: Operation) -> int:
        """Cancel operations no worker has started; returns how many.

        A cancelled operation finishes with -ECANCELED (its callback runs
        here); one that runs or is done is not counted. Raises TypeError
        for objects that are not Operations, ValueError for an operation
        not submitted to this context (nothing is cancelled then) or once
        closed, RuntimeError in a forked child.
        """
        if self._open_in != _fork._generation:
            self._raise_unusable()
        owner = self._ref
        for op in ops:
            if not isinstance(op, Operation):
                raise TypeError(
                    f"expected caio.python_aio.Operation, got {type(op).__name__}",
                )
            if op._owner is not owner:
                raise ValueError(f"{op!r} was not submitted to this context")
        count = 0
        queued = self._pool.queued
        for op in ops:
            if queued.pop(op._key, None) is not None:
                finish_cancelled(op, None)  # an Operation: no future
                count += 1
        return count

    def close(self) -> None:
        """Cancel queued operations, wait for running ones (``close_timeout``
        seconds at most), stop the pool.

        Idempotent. Futures still pending get OSError(ECANCELED); callbacks
        of cancelled operations get -ECANCELED, as do those of operations
        given up on (a worker that finishes one later drops its result,
        closing a descriptor it opened). In a forked child it only forgets
        the parent's pool.
        """
        self._shutdown(timeout=self._close_timeout)

    def _shutdown(self, timeout: float | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._open_in = self._usable_in = -1
        self._finalizer.detach()
        _live.discard(self)
        pool = self._pool
        if self._made_in != _fork._generation:
            pool.threads = []  # they live in the parent only
            pool.close_fds()
            return
        # A future (from the factory) or callback that raises must not stop
        # the others from being resolved, nor the pool from being released:
        # the first such error is raised once everything is closed.
        errors: list[Exception] = []
        for op in cancel_queued(pool):
            try:
                finish_cancelled(op, self._futures.pop(op._key, None))
            except Exception as exc:
                errors.append(exc)
        pool.stop(timeout)
        # Workers still running past the timeout are given up on: what they
        # were running ends with ECANCELED here, and whatever they finish
        # later is dropped by the worker (see _worker).
        for op in pool.give_up():
            try:
                fail_stuck(op, self._futures.pop(op._key, None))
            except Exception as exc:
                errors.append(exc)
        while True:
            try:
                pool.drain(self._futures)  # takes each one before resolving it
                break
            except Exception as exc:
                errors.append(exc)
        if not any(thread.is_alive() for thread in pool.threads):
            pool.close_fds()
        # else: a worker is stuck in a syscall; it may still write the
        # wakeup fd, so that fd must not be reused.
        if errors:
            raise errors[0]

    def _close_at_exit(self) -> None:
        # A worker stuck in a syscall must not hold up the exit for long.
        self._shutdown(timeout=1.0)

    # -- the asyncio fast path --

    def set_future_factory(
        self,
        factory: FutureFactory,
        call_soon: Callable[[Callable[[], object]], object] | None = None,
    ) -> None:
        """``factory()`` makes the futures, usually ``loop.create_future``.

        ``call_soon`` is accepted for the common protocol and not needed
        here (nothing is batched). Raises TypeError if ``factory`` is not
        callable or ``call_soon`` neither callable nor None.
        """
        if not callable(factory):
            raise TypeError(
                f"future factory must be callable, not {type(factory).__name__}",
            )
        if call_soon is not None and not callable(call_soon):
            raise TypeError(
                f"call_soon must be callable or None, not {type(call_soon).__name__}",
            )
        expect_asyncio()
        self._future_factory = factory
        # The *_async methods serve this thread's event loop only (the
        # adapter sets the factory on its loop's thread), as in C.
        self._owner_thread = get_ident()
        if not self._closed:
            self._usable_in = self._made_in

    def process_events(
        self, max_requests: int = 0, min_requests: int = 0, timeout: float = 0,
    ) -> int:
        """Resolve the futures of finished operations; returns how many.

        With the default ``timeout=0`` it never blocks; otherwise it first
        waits until ``min_requests`` futures can be resolved, at most
        ``timeout`` seconds (forever if negative). Every finished one is
        resolved: ``max_requests`` (caio 0.12's cap) is accepted, not
        applied, as on every backend. Operations made with ``Operation`` run
        their callbacks in the workers and are not counted. Raises
        TypeError, ValueError (negative counts; also once closed),
        RuntimeError in a forked child.
        """
        if self._open_in != _fork._generation:
            self._raise_unusable()
        pool = self._pool
        if max_requests or min_requests or timeout:
            for name, value in (("max_requests", max_requests), ("min_requests", min_requests)):
                check_size(value, name, ValueError)
            if timeout.__class__ is not int and not isinstance(timeout, float):
                raise TypeError(f"timeout must be a number, not {type(timeout).__name__}")
            if min_requests and timeout:
                pool.wait_done(min_requests, timeout)
        if pool.fds_open:
            pool.consume_wakeup()
        # Clear the flag before draining: see _worker.
        pool.signalled = False
        return pool.drain(self._futures)

    def poll(self) -> int:
        """Clear the completion descriptor; returns how many wakeups it held.

        Call process_events() afterwards: the completions wait there. Raises
        BlockingIOError when there was none, ValueError once closed,
        RuntimeError in a forked child.
        """
        if self._open_in != _fork._generation:
            self._raise_unusable()
        pool = self._pool
        count = pool.consume_wakeup()
        if not count:
            raise BlockingIOError(errno.EAGAIN, "no completion is waiting")
        pool.signalled = False
        return count

    def _set_idle_check(self, check: Callable[[], object] | None, /) -> None:
        """check() tells whether the event loop has nothing else to run;
        only then is a lone buffered write made in the call (None: never)."""
        if check is not None and not callable(check):
            raise TypeError(
                f"the idle check must be callable or None, not {type(check).__name__}",
            )
        self._idle_check = check

    @property
    def lone_write(self) -> bool:
        """True while a buffered write alone on the context is made in the
        call, on the calling thread, when the loop is idle (most such
        writes are fast here)."""
        return self._lone_avg > LONE_ABOVE

    def _holds_nothing(self) -> bool:
        pool = self._pool
        return not (self._futures or pool.queued or pool.running or pool.done)

    def _write_here(self, fd: int, view: memoryview | list[memoryview], offset: int) -> int:
        """The C backends' lone write (docs/internals.md, "A lone buffered
        write is made in the call"): alone on the context, the loop idle,
        made on this thread while such writes stay fast. The count, or -1:
        the pool's turn. Raises OSError."""
        if self._lone_avg <= LONE_ABOVE:
            self._lone_probe += 1
            if self._lone_probe % LONE_PROBE_EVERY:
                return -1
        check = self._idle_check
        if check is None or not self._holds_nothing():
            return -1
        try:
            idle = check()
        except Exception as exc:  # taken for "busy", and said, as in C
            import warnings

            warnings.warn(f"{self!r}: the idle check failed: {exc!r}", RuntimeWarning, 2)
            return -1
        if not idle or self._closed:
            return -1
        with self._pool.lock:   # a worker moves requests under it
            if not self._holds_nothing():
                return -1
        started = perf_counter_ns()
        got = write_here(fd, view, offset)
        if got >= 0:
            fast = perf_counter_ns() - started <= LONE_WAIT_NS
            self._lone_avg += ((AVG_ONE if fast else 0) - self._lone_avg) // 4
        return got

    def _enqueue(self, op: Operation) -> asyncio.Future[Any]:
        future = self._future_factory()  # type: ignore[misc]  # _usable_in: set
        # Unique while the future is in _futures: until drain() takes the
        # operation, cancelled or not (see _worker).
        key = id(future)
        self._futures[key] = future
        op._waits = True
        op._key = key
        op._state = WAITING
        pool = self._pool
        if not pool.threads:
            pool.start()
        pool.queued[key] = op
        pool.jobs.put(op)
        return future

    def read_async(
        self, nbytes: int, fd: Any, offset: int, priority: int = 0,
    ) -> bytes | asyncio.Future[bytes]:
        """The bytes at once on a page-cache hit, else a future.

        Raises OSError (EBADF at once), TypeError, ValueError (negative
        values; also once closed), MemoryError, RuntimeError (other process,
        no future factory; checked before any I/O).
        """
        if self._usable_in != _fork._generation or self._owner_thread != get_ident():
            self._raise_unusable()
        # The common call (plain ints in range) is checked inline: the
        # general checks cost as much as the read itself.
        if not (
            nbytes.__class__ is int and fd.__class__ is int
            and offset.__class__ is int and priority.__class__ is int
            and 0 <= nbytes <= NOWAIT_MAX_PYTHON and 0 <= fd <= FD_MAX
            and 0 <= offset < OFFSET_LIMIT and 0 <= priority < PRIORITY_LIMIT
        ):
            nbytes = check_size(nbytes, "nbytes", MemoryError)
            fd = check_fd(fd)
            offset = check_size(offset, "offset", ValueError)
            check_priority(priority)
            if nbytes > NOWAIT_MAX_PYTHON:
                return self._enqueue(
                    Operation._make(READ, fd, offset, min(nbytes, MAX_RW_COUNT)),
                )
        if preadv is not None:
            free = self._scratch
            try:
                buf = free.pop()
            except IndexError:
                # One byte off: see __init__ (O_DIRECT).
                buf = memoryview(bytearray(NOWAIT_MAX_PYTHON + 1))[1:]
            try:
                view = buf[:nbytes]
                try:
                    got = preadv(fd, [view], offset, RWF_NOWAIT)
                except OSError as exc:
                    if exc.errno in FAIL_AT_ONCE:
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
                        at_end = preadv(fd, [buf[:1]], offset + got, RWF_NOWAIT) == 0
                    except (OSError, OverflowError):
                        at_end = False
                    if at_end:
                        return view[:got].tobytes()
            finally:
                free.append(buf)
        return self._enqueue(Operation._make(READ, fd, offset, nbytes))

    def write_async(
        self, payload: Buffer, fd: Any, offset: int, priority: int = 0,
    ) -> int | asyncio.Future[int]:
        """A future of the count written.

        Raises TypeError/BufferError (bad payload), ValueError (also once
        closed), RuntimeError (other process, no future factory).
        """
        if self._usable_in != _fork._generation or self._owner_thread != get_ident():
            self._raise_unusable()
        fileno = check_fd(fd)
        off = check_size(offset, "offset", ValueError)
        check_priority(priority)
        view = payload_view(payload)
        # Not with futures waiting (64 writes in flight: no method call, a
        # 5 % cost there).
        if not self._futures and self._idle_check is not None and view.nbytes <= NOWAIT_MAX_PYTHON:
            got = self._write_here(fileno, view, off)
            if got >= 0:
                return got
        return self._enqueue(Operation._make(
            WRITE, fileno, off, min(view.nbytes, MAX_RW_COUNT), payload, view,
        ))

    def readinto_async(
        self, buffer: Buffer, fd: Any, offset: int, priority: int = 0,
    ) -> int | asyncio.Future[int]:
        """A future of the count read into ``buffer`` (writable, C-contiguous).

        A worker reads straight into the buffer, which stays held (cannot
        be resized) until it is done, also when the future is cancelled.
        Raises TypeError (read-only buffer), BufferError, ValueError (also
        once closed), RuntimeError (other process, no future factory).
        """
        if self._usable_in != _fork._generation or self._owner_thread != get_ident():
            self._raise_unusable()
        op = Operation.readinto(buffer, fd, offset, priority)
        if op._nbytes <= NOWAIT_MAX_PYTHON:
            # Page-cache hits straight into the buffer, no thread hop.
            view = op._view
            assert view is not None
            try:
                got = nowait_readinto(view, op._fd, op._offset)
            except BaseException:
                op._release_buffers()  # EBADF, EISDIR: failed at once
                op._key = op._payload = None
                raise
            if got >= 0:
                op._release_buffers()
                # _key is op itself until queued: break that cycle, or the
                # op (and a memoryview slice in _payload, an export) would
                # wait for the garbage collector.
                op._key = op._payload = None
                return got
        return self._enqueue_held(op)

    def readv_async(
        self, buffers: Sequence[Buffer], fd: Any, offset: int, priority: int = 0,
    ) -> int | asyncio.Future[int]:
        """A future of the count read into ``buffers``, filled in order.

        Raises like readinto_async, and ValueError for more than IOV_MAX
        buffers.
        """
        return self._vector_async(READV, buffers, fd, offset, priority)

    def writev_async(
        self, buffers: Sequence[Buffer], fd: Any, offset: int, priority: int = 0,
    ) -> int | asyncio.Future[int]:
        """A future of the count written from ``buffers``, in order.

        Raises TypeError/BufferError (bad buffers), ValueError (more than
        IOV_MAX buffers; also once closed), RuntimeError.
        """
        return self._vector_async(WRITEV, buffers, fd, offset, priority)

    def _vector_async(
        self, opcode: int, buffers: Sequence[Buffer], fd: Any, offset: int, priority: int,
    ) -> int | asyncio.Future[int]:
        if self._usable_in != _fork._generation or self._owner_thread != get_ident():
            self._raise_unusable()
        op = Operation._vector(opcode, buffers, fd, offset, priority)
        if (
            opcode == WRITEV and not self._futures and self._idle_check is not None
            and op._nbytes <= NOWAIT_MAX_PYTHON
        ):
            views = op._views
            assert views is not None
            try:
                got = self._write_here(op._fd, views, op._offset)
            except BaseException:
                op._release_buffers()  # EBADF and the like: failed at once
                op._key = op._payload = None
                raise
            if got >= 0:
                op._release_buffers()
                op._key = op._payload = None  # see readinto_async
                return got
        return self._enqueue_held(op)

    def _enqueue_held(self, op: Operation) -> asyncio.Future[int]:
        # Nobody reads the payload of an operation with a future: drop it,
        # so that only the views hold the caller's buffers. (A memoryview
        # slice passed in is itself an export; the worker's last reference
        # to the operation may outlive the completion by a moment.)
        op._payload = None
        return self._enqueue(op)

    def fsync_async(self, fd: Any, priority: int = 0) -> asyncio.Future[None] | None:
        """A future of the fsync. Raises like write_async."""
        if self._usable_in != _fork._generation or self._owner_thread != get_ident():
            self._raise_unusable()
        fileno = check_fd(fd)
        check_priority(priority)
        return self._enqueue(Operation._make(FSYNC, fileno, 0, 0))

    def fdsync_async(self, fd: Any, priority: int = 0) -> asyncio.Future[None] | None:
        """A future of the fdatasync. Raises like write_async."""
        if self._usable_in != _fork._generation or self._owner_thread != get_ident():
            self._raise_unusable()
        fileno = check_fd(fd)
        check_priority(priority)
        return self._enqueue(Operation._make(FDSYNC, fileno, 0, 0))

    def fs_async(
        self, op: int, fd: int, path: bytes | None, path2: bytes | None, fd2: int,
        flags: int, mode: int, offset: int, length: int,
    ) -> asyncio.Future[Any]:
        """A future of filesystem operation number ``op`` (``caio._fsops``),
        run by a worker with the ``os`` functions.

        Raises TypeError/ValueError (bad op), ValueError once closed,
        RuntimeError (other process, no future factory).
        """
        if self._usable_in != _fork._generation or self._owner_thread != get_ident():
            self._raise_unusable()
        _fs_check(op, fd, path, path2, fd2, flags, mode, offset, length)
        return self._enqueue(Operation._make(
            FS, fd, 0, 0, (op, fd, path, path2, fd2, flags, mode, offset, length),
        ))

    def fs_in_kernel(self, op: int) -> bool:
        """False: the workers run every filesystem operation. Raises
        TypeError, ValueError (no such operation)."""
        _fs_number(op)
        return False

    def cancel_future(self, future: asyncio.Future[Any]) -> bool:
        """Cancel the operation behind ``future`` if no worker started it.

        A running operation cannot be stopped, except a wait on a pipe or
        socket, which ends with ECANCELED; either way its result is dropped.
        Returns whether it was cancelled before it started.
        """
        # By id: the future of an operation stays in _futures until the
        # operation has left the pool (drain), so no other object has that
        # id meanwhile.
        key = id(future)
        op = self._pool.queued.pop(key, None)
        if op is None:
            # Under the lock: a worker files what it takes from the queue
            # in `running` in one step with it.
            with self._pool.lock:
                running = self._pool.running.get(key)
                if running is not None:
                    running._cancel = True
            return False
        finish_cancelled(op, future)
        return True


def _fs_number(op: object) -> None:
    if not isinstance(op, int):
        raise TypeError(f"op must be int, not {type(op).__name__}")
    if not 0 <= op < len(_FS_NAMES):
        raise ValueError(f"no filesystem operation number {op}")


def _fs_check(op: object, *args: object) -> None:
    """fs_async's arguments, checked as C's caio_fs_prepare checks them
    (which path a row reads is the os function's business here)."""
    _fs_number(op)
    for name, value in zip(_FS_ARGS, args, strict=True):
        if name.startswith("path"):
            if value is None:
                continue
            if not isinstance(value, bytes):
                raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
            if b"\0" in value:
                raise ValueError("embedded null byte")  # as os says
        elif not isinstance(value, int):
            raise TypeError(f"{name} must be int, not {type(value).__name__}")


_FS_ARGS = ("fd", "path", "path2", "fd2", "flags", "mode", "offset", "length")
