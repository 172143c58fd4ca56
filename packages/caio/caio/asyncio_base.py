"""The one asyncio adapter: every ``caio.*_asyncio.AsyncioContext`` is this.

A backend context reports completions through a descriptor (``fileno``)
that the event loop watches with ``add_reader``; its ``process_events()``
then resolves the futures of the operations that did not finish during
their ``*_async`` call (see _future_factory for whose futures). Nothing
here runs per operation beyond that call and, for those, one ``await``.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import selectors
from asyncio import CancelledError
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from time import monotonic
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from ._direct import aligned_buffer, dio_alignment, direct_span, is_direct
from ._fork import fork_generation
from ._fs_asyncio import FsOperations
from ._limits import MAX_IO_SIZE, MAX_REQUESTS_DEFAULT
from ._registry import live
from .abstract import AbstractContext, AbstractOperation

if TYPE_CHECKING:

    from typing_extensions import Buffer, Self

_awaitables: ModuleType | None
try:
    from . import _awaitables
except ImportError:  # built without it: the coroutines below do it all
    _awaitables = None
else:
    # What asyncio.create_task, ensure_future, gather and trio accept.
    Coroutine.register(_awaitables.OperationCall)  # type: ignore[union-attr]

__all__ = ("AsyncioContextBase", "NotSubmittedError", "OperationTypeError")


class OperationTypeError(TypeError, ValueError):
    """``submit()`` was given something that is not this backend's Operation.

    A TypeError, and the ValueError caio 0.12 raised: either ``except``
    clause catches it.
    """


class NotSubmittedError(RuntimeError, OSError):
    """``submit()`` was given an operation that was already submitted.

    A RuntimeError, and the OSError caio 0.12 raised: either ``except``
    clause catches it.
    """


class _NotRunning:
    """Stands in for the bound loop in the per-operation loop check until
    there is one (and for loops that do not record their thread)."""

    _thread_id = None


_NOT_RUNNING = _NotRunning()


def _name(loop: asyncio.AbstractEventLoop) -> str:
    # Not repr(loop): it shows the loop's state, which changes.
    return f"<{type(loop).__name__} at {id(loop):#x}>"


def _future_factory(loop: asyncio.AbstractEventLoop) -> Callable[[], Any]:
    """What makes ``loop``'s futures, one call per suspended operation.

    On the stock loops, caio._awaitables' FutureFactory: its futures wake
    the tasks of a burst of completions with one ``call_soon`` for all,
    where an asyncio future takes a Python ``call_soon`` and a ``Handle``
    each (docs/internals.md, "Waking the tasks"). Without that module,
    the C future type itself (calling it directly saves the frame of the
    Python ``create_future``). A loop with its own futures keeps its
    method.
    """
    if type(loop).create_future is not asyncio.BaseEventLoop.create_future:
        return loop.create_future
    if _awaitables is not None:
        return _awaitables.FutureFactory(loop)  # type: ignore[no-any-return]
    return partial(asyncio.Future, loop=loop)


#: How long the idle check keeps a peek's "no descriptor is ready", in
#: seconds (see _idle_check).
PEEK_KEEP = 50e-6


def _idle_check(loop: Any, factory: Any, own: int) -> Callable[[], bool]:
    """Whether a stock asyncio ``loop`` has nothing else to run: no ready
    callback (nor a task the factory has yet to wake), no timer due, no
    descriptor ready but ``own``. linux_uring and linux_aio ask it before
    they wait in the call for a lone read that missed the page cache,
    linux_uring, thread_aio and python_aio before they make a lone buffered
    write in the call (what completes in the call does not yield: docs/internals.md,
    "A lone miss is waited for briefly", "A lone buffered write is made in
    the call").

    The descriptors are asked with a system call (epoll_wait) that costs
    about as much as the 4 KiB buffered write it decides on, so an answer
    "none is ready" is kept for PEEK_KEEP: a task making write after write
    in the call asks once per 50 us, and a descriptor that turns ready
    meanwhile waits that much longer for the loop, at most."""
    ready, scheduled, time = loop._ready, loop._scheduled, loop.time
    selector = loop._selector
    poll: Callable[[int, int], Any]
    if isinstance(selector, selectors.EpollSelector):
        # The epoll object itself: a peek at two events costs a third of
        # selector.select(0), which maps every event to its key in Python
        # (0.5 against 1.2 µs a check, on every lone wait). asyncio's
        # registrations are level-triggered, so what the peek returns the
        # loop's next select() returns again.
        poll = selector._selector.poll  # type: ignore[attr-defined]
    else:
        select = selector.select

        def poll(timeout: int, _most: int) -> Any:
            return [(key.fd, events) for key, events in select(timeout)]

    # Plain asyncio futures (no C awaitables) wake their tasks through
    # loop._ready: nothing pending elsewhere.
    pends = hasattr(factory, "pending")

    quiet_until = 0.0

    def idle() -> bool:
        nonlocal quiet_until
        if ready or (pends and factory.pending):
            return False
        if scheduled and scheduled[0]._when <= time():
            return False
        now = monotonic()
        if now < quiet_until:
            return True
        for fd, _ in poll(0, 2):
            if fd != own:
                return False
        quiet_until = now + PEEK_KEEP
        return True

    return idle


#: The *_async methods an OperationState holds, in its order.
_FAST_OPERATIONS = ("read", "write", "readinto", "readv", "writev")


def _operation(
    slow: Callable[..., Any], failed: Callable[..., Any], bounced: Callable[..., Any],
    done: type,
) -> Any:
    """``slow`` (read, write, ...) as a caio._awaitables.OperationMethod:
    awaiting its call runs the backend's *_async method from C and, when
    that finished the operation (a ``done`` instance), returns it without a
    coroutine. Looks like ``slow`` to help(), inspect.signature() and
    iscoroutinefunction()."""
    code = slow.__code__
    required = code.co_argcount - 1 - len(slow.__defaults__ or ())
    which = _FAST_OPERATIONS.index(slow.__name__)
    assert _awaitables is not None
    method = _awaitables.OperationMethod(slow, which, failed, bounced, done, required)
    functools.update_wrapper(method, slow)
    method._is_coroutine = getattr(asyncio.coroutines, "_is_coroutine", None)
    if hasattr(inspect, "markcoroutinefunction"):  # 3.12+
        inspect.markcoroutinefunction(method)
    return method


class AsyncioContextBase(FsOperations):
    """asyncio front of one backend context.

    ``AsyncioContext(max_requests=None, loop=None, deferred=False,
    **backend_options)``: ``max_requests`` None or 0 means
    ``MAX_REQUESTS_DEFAULT``; more operations than that wait their turn
    inside the backend (none is dropped). Without ``loop`` the context binds
    to the running loop, at once if one runs, else on its first operation.
    An operation the kernel finishes during the call (a page-cache hit)
    returns without suspending the coroutine; with ``deferred=True`` every
    ``read``/``write``/``fsync``/``fdsync`` suspends at least once, as with
    caio 0.12, so that a loop of cached reads lets other tasks run. Raises
    what the backend's ``Context`` raises for bad options (TypeError,
    ValueError, OSError), and NotImplementedError for a loop that cannot
    watch a descriptor.

    Filesystem operations (``stat``, ``open``, ``rename``, ...) come from
    ``caio._fs_asyncio.FsOperations``.
    """

    # _fast: the caio._awaitables.OperationState of a bound context (None
    # before), read by its OperationMethods at the slot's offset.
    __slots__ = ("_fast",)

    MAX_REQUESTS_DEFAULT: ClassVar[int] = MAX_REQUESTS_DEFAULT
    # The backend's low-level classes. Typed loosely: the C types follow the
    # protocol of AbstractContext/AbstractOperation without inheriting.
    CONTEXT_CLASS: ClassVar[Callable[..., Any]]
    OPERATION_CLASS: ClassVar[type[Any]]
    #: Whether Operation callbacks run on the loop thread (inside
    #: process_events) or in worker threads; see submit().
    CALLBACKS_IN_LOOP: ClassVar[bool] = False
    #: Whether the backend's futures are asyncio's, which read/write/
    #: readinto/readv/writev await themselves (from C, or in _pending) and
    #: file in _inflight; False for Trio's, whose subclass waits its own
    #: way (its _pending and _wait).
    _AWAIT_FUTURES: ClassVar[bool] = True

    def __init__(
        self,
        max_requests: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        deferred: bool = False,
        **backend_options: Any,
    ) -> None:
        # None or 0: the default (the backend checks everything else). Not
        # `not max_requests`: 0.0 or "" must reach the backend's TypeError.
        if max_requests is None or (isinstance(max_requests, int) and max_requests == 0):
            max_requests = self.MAX_REQUESTS_DEFAULT
        self._fast: Any = None
        self.context: AbstractContext = self.CONTEXT_CLASS(max_requests, **backend_options)
        self._loop: asyncio.AbstractEventLoop | None = None
        # The per-operation loop check, in two halves that cost no call and
        # no allocation: here, the bound loop's _thread_id (asyncio's
        # BaseEventLoop sets it while the loop runs) is None exactly when
        # the bound loop is not running, so a call from any coroutine then
        # comes from another loop; the backend's *_async methods refuse a
        # call from another thread than the one that set the future factory
        # (a thread id comparison in C), which _check_loop turns into an
        # error naming both loops. No get_running_loop() per operation (a
        # getpid() system call on Python 3.11).
        self._owner: Any = _NOT_RUNNING
        self._closed = False
        # Backend futures of operations that did not finish during their
        # *_async call -> their descriptor: see _wait() and wait_idle().
        self._inflight: dict[Any, Any] = {}
        # Cached bound methods: the hot path does one attribute lookup each.
        self._cancel_future = self.context.cancel_future
        if loop is None:
            loop = self._running_loop()
        if loop is not None:
            try:
                self._bind(loop)
            except BaseException:
                # e.g. a loop without add_reader (Windows' proactor loop)
                self.context.close()
                raise
        else:
            # No loop yet: the first operation binds to the loop it runs in.
            # The hot path stays check-free: these stand-ins replace
            # themselves with the context's methods on first use.
            self._read_async: Any = self._bind_first(self.context.read_async)
            self._write_async: Any = self._bind_first(self.context.write_async)
            self._fsync_async: Any = self._bind_first(self.context.fsync_async)
            self._fdsync_async: Any = self._bind_first(self.context.fdsync_async)
            self._readinto_async: Any = self._bind_first(self.context.readinto_async)
            self._readv_async: Any = self._bind_first(self.context.readv_async)
            self._writev_async: Any = self._bind_first(self.context.writev_async)
        #: Whether every operation suspends at least once (see the class).
        self.deferred = bool(deferred)
        if deferred:
            # Chosen once, here: without it the methods below run with no
            # extra check per operation.
            for name in ("read", "write", "fsync", "fdsync", "readinto", "readv", "writev"):
                setattr(self, name, getattr(self, f"_{name}_deferred"))
        live.add(self)

    @staticmethod
    def _running_loop() -> Any:
        """The running event loop, or None: what an unbound context binds to."""
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    def _watch(self, loop: Any) -> None:
        """Have ``loop`` make the futures and call process_events() when the
        context's descriptor is readable (the Trio adapter does it its way)."""
        context = self.context
        factory = _future_factory(loop)
        context.set_future_factory(factory, loop.call_soon)
        reader = context.process_events
        if _awaitables is not None and isinstance(factory, _awaitables.FutureFactory):
            # process_events(), then the tasks of what it finished, in this
            # loop iteration (docs/internals.md, "Waking the tasks").
            reader = factory.reaper(reader)
        set_idle_check = getattr(context, "_set_idle_check", None)
        if set_idle_check is not None and hasattr(loop, "_selector"):
            set_idle_check(_idle_check(loop, factory, context.fileno))
        self._fileno = context.fileno
        # The number is fresh, so a registration the loop still holds under it
        # is stale: a descriptor closed without remove_reader (as a forked
        # child closes its parent's contexts: removing their readers there
        # would remove the parent's). add_reader would then only swap the
        # callback and never watch our descriptor: drop the stale entry first
        # (the epoll's DEL of our own, unregistered descriptor is a no-op).
        loop.remove_reader(self._fileno)
        loop.add_reader(self._fileno, reader)
        if isinstance(loop, asyncio.BaseEventLoop):
            self._owner = loop

    def _bind(self, loop: Any) -> None:
        context = self.context
        self._watch(loop)
        # A forked child shares its parent's epoll instance (the loop's
        # selector): removing the reader there would remove it for the
        # parent too, whose loop would then never hear of its completions.
        self._bound_in = fork_generation()
        self._loop = loop
        self._read_async = context.read_async
        self._write_async = context.write_async
        self._fsync_async = context.fsync_async
        self._fdsync_async = context.fdsync_async
        self._readinto_async = context.readinto_async
        self._readv_async = context.readv_async
        self._writev_async = context.writev_async
        owner = self._owner
        if _awaitables is not None and owner is not _NOT_RUNNING:
            # A loop without _thread_id (not asyncio's) keeps the coroutines:
            # they check it with get_running_loop(). Trio's stand-in's
            # thread id is never None: it needs no check.
            self._fast = _awaitables.OperationState(
                owner if isinstance(owner, asyncio.BaseEventLoop) else None,
                self._inflight if self._AWAIT_FUTURES else None,
                self._cancel_future,
                *(getattr(context, f"{name}_async") for name in _FAST_OPERATIONS),
            )

    def _bind_first(self, method: Any) -> Any:
        def first_call(*args: Any) -> Any:
            if self._loop is None:
                self._check_loop()  # binds to the running loop
            return method(*args)
        first_call.__name__ = method.__name__  # what _bounced_for asks
        return first_call

    def _check_loop(self) -> None:
        """The slow half of the loop check: bind an unbound context, or
        raise RuntimeError when another loop than ours runs (or none)."""
        running = asyncio.get_running_loop()
        loop = self._loop
        if loop is None:
            if self._closed:
                raise ValueError("I/O operation on closed context")
            self._bind(running)
        elif running is not loop:
            raise RuntimeError(
                f"{self!r} is bound to event loop {_name(loop)} and was used "
                f"from event loop {_name(running)}: use one context per loop",
            )

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop this context is bound to (the running one if unbound).

        Raises RuntimeError when unbound and no loop runs.
        """
        if self._loop is None:
            return asyncio.get_running_loop()
        return self._loop

    @property
    def max_requests(self) -> int:
        """At most this many operations are in the kernel at once."""
        return self.context.max_requests

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} {self.context!r}>"

    async def _wait(self, future: Any, fd: Any) -> Any:
        """Await a backend future; on cancellation ask the kernel to cancel.

        Only the slow path comes here (the operation did not finish during
        the call). It files the future under ``fd`` for wait_idle: one
        dict store and one delete, the least that bookkeeping can cost on
        this path (a count per descriptor took four dict operations).
        read(), write() and readinto()/readv()/writev() do the same from C,
        or in _pending without caio._awaitables: this coroutine and a
        resume through it cost about a tenth of a suspended operation's
        instructions at 64 in flight.
        """
        inflight = self._inflight
        inflight[future] = fd
        try:
            return await future
        except CancelledError:
            # The kernel may still be writing into the buffer: the backend
            # keeps it until the completion arrives. It holds the file
            # itself from here on (io_uring flushes a batched submission
            # in cancel_future), not the descriptor number.
            self._cancel_future(future)
            raise
        finally:
            del inflight[future]

    async def wait_idle(self, fd: Any) -> None:
        """Wait until no operation of this context on ``fd`` is in flight.

        Close a descriptor only after this: an operation still in flight
        may otherwise reach the next file opened under the same number.
        Operations started while waiting are waited for too.
        """
        while True:
            # Rare (a file being closed): a scan of what is in flight.
            pending = [f for f, on in self._inflight.items() if on == fd]
            if not pending:
                return
            # A future may be done while its _wait has not resumed yet:
            # one loop turn later that entry is gone.
            await asyncio.wait(pending)
            await asyncio.sleep(0)

    async def read(self, nbytes: int, fd: Any, offset: int, priority: int = 0) -> bytes:
        """Read at most ``nbytes`` at ``offset``; shorter at end of file.

        On an ``O_DIRECT`` descriptor any offset and size work: see
        _read_bounced. Raises OSError (EBADF, EISDIR, ...), TypeError,
        ValueError (negative values; also once closed), MemoryError.
        """
        if self._owner._thread_id is None:
            self._check_loop()
        try:
            r = self._read_async(nbytes, fd, offset, priority)
        except RuntimeError:
            self._check_loop()  # from another loop's thread: name both loops
            raise
        except OSError as exc:  # the except clause costs nothing until it runs
            return await self._read_bounced(exc, nbytes, fd, offset, priority)
        if r.__class__ is bytes:  # finished during the call: no suspension
            return r
        return await self._pending(  # type: ignore[no-any-return]
            r, AsyncioContextBase._read_bounced, nbytes, fd, offset, priority,
        )

    async def write(self, payload: Buffer, fd: Any, offset: int, priority: int = 0) -> int:
        """Write ``payload`` at ``offset``; returns the bytes written.

        On an ``O_DIRECT`` descriptor any memory works when the offset and
        length are multiples of the file's alignment: see _write_bounced.
        Raises OSError (also EINVAL for an unaligned direct write, naming
        the alignment), TypeError/BufferError (payload), ValueError (also
        once closed).
        """
        if self._owner._thread_id is None:
            self._check_loop()
        try:
            r = self._write_async(payload, fd, offset, priority)
        except RuntimeError:
            self._check_loop()  # from another loop's thread: name both loops
            raise
        except OSError as exc:
            return await self._write_bounced(exc, payload, fd, offset, priority)
        if r.__class__ is int:
            return r
        return await self._pending(  # type: ignore[no-any-return]
            r, AsyncioContextBase._write_bounced, payload, fd, offset, priority,
        )

    # What read(), write(), readinto(), readv() and writev() do when the
    # *_async call did not finish the operation (_pending) or raised
    # (_failed). With caio._awaitables (see _operation) these calls are
    # OperationMethods: they await the backend's asyncio future themselves,
    # in C, and come here only for Trio's futures and on errors.

    async def _pending(
        self, r: Any, bounced: Callable[..., Any], data: Any, fd: Any, offset: int,
        priority: int = 0,
    ) -> Any:
        """Wait for the backend future ``r`` of an operation on ``fd``; on
        cancellation ask the kernel to cancel; an OSError goes to
        ``bounced`` (the O_DIRECT retry, or raised again). _wait's body
        inline: one coroutine less per suspended operation (Trio's
        subclass has its own)."""
        inflight = self._inflight
        inflight[r] = fd
        try:
            return await r
        except CancelledError:
            self._cancel_future(r)
            raise
        except OSError as exc:
            failed = exc
        finally:
            del inflight[r]
        return await bounced(self, failed, data, fd, offset, priority)

    async def _failed(
        self, exc: BaseException, bounced: Callable[..., Any], data: Any, fd: Any,
        offset: int, priority: int = 0,
    ) -> Any:
        """The *_async call raised ``exc`` (an OSError or RuntimeError)."""
        if isinstance(exc, RuntimeError):
            self._check_loop()  # from another loop's thread: name both loops
            raise exc
        return await bounced(self, exc, data, fd, offset, priority)

    async def _not_bounced(
        self, exc: BaseException, data: Any, fd: Any, offset: int, priority: int = 0,
    ) -> Any:
        # readv and writev fail as the kernel said.
        raise exc

    # O_DIRECT through read() and write(). The kernel refuses (EINVAL) a
    # direct transfer whose memory, offset or length is not aligned, and
    # Python's bytes never are. Nothing is checked up front: the hot path
    # stays as it is, and only an operation that failed with EINVAL asks
    # (one fcntl) whether its descriptor is O_DIRECT, and then goes again
    # through an aligned buffer of its own: one memory copy. No per-fd
    # answer is cached: descriptor numbers are reused for other files.

    async def _raw(self, method: Callable[..., Any], fd: Any, *args: Any) -> Any:
        # An operation without the O_DIRECT retry (the loop was checked).
        r = method(*args)
        if asyncio.isfuture(r):
            return await self._wait(r, fd)
        return r

    async def _read_bounced(
        self, exc: OSError, nbytes: int, fd: Any, offset: int, priority: int = 0,
    ) -> bytes:
        """The O_DIRECT retry of a read that failed with ``exc``: exactly the
        requested bytes (fewer at end of file). Any other failure is raised
        as it was."""
        if exc.errno != errno.EINVAL or not is_direct(fd):
            raise exc
        return bytes(await self._read_aligned(nbytes, fd, offset, priority))

    async def _readinto_bounced(
        self, exc: OSError, buffer: Buffer, fd: Any, offset: int, priority: int = 0,
    ) -> int:
        """The O_DIRECT retry of a readinto that failed with ``exc``: the
        read of _read_bounced, copied into ``buffer`` (which the backend
        already found writable and contiguous)."""
        if exc.errno != errno.EINVAL or not is_direct(fd):
            raise exc
        view = memoryview(buffer).cast("B")
        data = await self._read_aligned(view.nbytes, fd, offset, priority)
        view[:len(data)] = data
        return len(data)

    async def _read_aligned(self, nbytes: int, fd: Any, offset: int, priority: int) -> memoryview:
        # The aligned span around the request, read into an aligned buffer;
        # returns the part of it that was asked for and exists.
        memory, block = dio_alignment(fd)
        start, end = direct_span(offset, nbytes, block, MAX_IO_SIZE)
        buffer = aligned_buffer(end - start, memory)
        got: int = await self._raw(
            self.context.readinto_async, fd, buffer, fd, start, priority,
        )
        head = offset - start
        return buffer[head:max(head, min(got, head + nbytes))]

    async def _write_bounced(
        self, exc: OSError, payload: Buffer, fd: Any, offset: int, priority: int = 0,
    ) -> int:
        """The O_DIRECT retry of a write that failed with ``exc``.

        An aligned offset and length go again from an aligned copy of the
        payload; anything else is OSError(EINVAL) naming the alignment
        (read-modify-write of the edge blocks is for a layer that can
        serialise writes: aiofile's ``AIOFile(direct=True)``).
        """
        if exc.errno != errno.EINVAL or not is_direct(fd):
            raise exc
        memory, block = dio_alignment(fd)
        view = memoryview(payload).cast("B")
        if offset % block or view.nbytes % block:
            raise OSError(
                errno.EINVAL,
                f"O_DIRECT write of {view.nbytes} bytes at offset {offset}: "
                f"both must be multiples of {block} on this file "
                f"(caio.dio_alignment(fd) == {(memory, block)})",
            ) from None
        buffer = aligned_buffer(view.nbytes, memory)
        buffer[:] = view
        written: int = await self._raw(
            self.context.write_async, fd, buffer, fd, offset, priority,
        )
        return written

    def readinto(
        self, buffer: Buffer, fd: Any, offset: int, priority: int = 0,
    ) -> Coroutine[Any, Any, int]:
        """Read into ``buffer`` at ``offset``; returns the bytes read (0 at
        end of file, fewer than ``len(buffer)`` near it). Await it.

        ``buffer`` is any writable C-contiguous buffer (bytearray, a
        memoryview slice, mmap, array, a NumPy array): the kernel writes
        straight into it. It is held until the kernel is done with it, also
        when the awaiting task is cancelled, so resizing it meanwhile
        raises BufferError. On an ``O_DIRECT`` descriptor a buffer, offset
        or length the kernel refuses goes through an aligned buffer and
        one copy, as read() does. Raises TypeError (read-only buffer),
        OSError, ValueError (also once closed).
        """
        return self._counted(self._readinto_async, buffer, fd, offset, priority)

    def readv(
        self, buffers: Sequence[Buffer], fd: Any, offset: int, priority: int = 0,
    ) -> Coroutine[Any, Any, int]:
        """One read at ``offset`` filling ``buffers`` in order; returns the
        bytes read. Await it. The rules of readinto() for each buffer;
        ValueError for more than IOV_MAX (1024 on Linux) buffers.
        """
        return self._counted(self._readv_async, buffers, fd, offset, priority)

    def writev(
        self, buffers: Sequence[Buffer], fd: Any, offset: int, priority: int = 0,
    ) -> Coroutine[Any, Any, int]:
        """One write at ``offset`` of ``buffers`` in order (any contiguous
        buffers, read-only ones too); returns the bytes written. Await it.
        ValueError for more than IOV_MAX (1024 on Linux) buffers.
        """
        return self._counted(self._writev_async, buffers, fd, offset, priority)

    async def _counted(
        self, method: Callable[..., Any], buffers: Any, fd: Any, offset: int, priority: int,
    ) -> int:
        # readinto, readv, writev: the body of write() for another method.
        # Plain methods above return this coroutine: one per operation.
        if self._owner._thread_id is None:
            self._check_loop()
        try:
            r = method(buffers, fd, offset, priority)
        except RuntimeError:
            self._check_loop()  # from another loop's thread: name both loops
            raise
        except OSError as exc:
            bounced = self._bounced_for(method)
            return await bounced(self, exc, buffers, fd, offset, priority)  # type: ignore[no-any-return]
        if r.__class__ is int:  # finished during the call: no suspension
            return r
        return await self._pending(  # type: ignore[no-any-return]
            r, self._bounced_for(method), buffers, fd, offset, priority,
        )

    @staticmethod
    def _bounced_for(method: Any) -> Callable[..., Any]:
        # readinto on an O_DIRECT descriptor goes again through an aligned
        # buffer, as read does; readv and writev fail as the kernel said.
        if getattr(method, "__name__", None) == "readinto_async":
            return AsyncioContextBase._readinto_bounced
        return AsyncioContextBase._not_bounced

    if _awaitables is not None and not TYPE_CHECKING:
        read = _operation(read, _failed, _read_bounced, bytes)
        write = _operation(write, _failed, _write_bounced, int)
        readinto = _operation(readinto, _failed, _readinto_bounced, int)
        readv = _operation(readv, _failed, _not_bounced, int)
        writev = _operation(writev, _failed, _not_bounced, int)

    async def fsync(self, fd: Any, priority: int = 0) -> None:
        """fsync(fd). Raises OSError, TypeError, ValueError (also once closed)."""
        await self._sync(self._fsync_async, fd, priority)

    async def fdsync(self, fd: Any, priority: int = 0) -> None:
        """fdatasync(fd). Raises OSError, TypeError, ValueError (also once closed)."""
        await self._sync(self._fdsync_async, fd, priority)

    async def _sync(self, method: Callable[..., Any], fd: Any, priority: int) -> None:
        # One more coroutine than read/write have: a sync costs a disk flush.
        if self._owner._thread_id is None:
            self._check_loop()
        try:
            r = method(fd, priority)
        except RuntimeError:
            self._check_loop()  # from another loop's thread: name both loops
            raise
        if r is not None:
            await self._wait(r, fd)

    # deferred=True: the same operations, always through the event loop.

    async def _deferred(self, method: Callable[..., Any], fd: Any, *args: Any) -> Any:
        # The loop check and the in-flight count of read/write, then one
        # pass through the loop even when the backend finished at once.
        if self._owner._thread_id is None:
            self._check_loop()
        try:
            r = method(*args)
        except RuntimeError:
            self._check_loop()  # from another loop's thread: name both loops
            raise
        if asyncio.isfuture(r):
            return await self._wait(r, fd)
        await asyncio.sleep(0)
        return r

    async def _read_deferred(
        self, nbytes: int, fd: Any, offset: int, priority: int = 0,
    ) -> bytes:
        try:
            return await self._deferred(  # type: ignore[no-any-return]
                self._read_async, fd, nbytes, fd, offset, priority,
            )
        except OSError as exc:
            return await self._read_bounced(exc, nbytes, fd, offset, priority)

    async def _write_deferred(
        self, payload: Buffer, fd: Any, offset: int, priority: int = 0,
    ) -> int:
        try:
            return await self._deferred(  # type: ignore[no-any-return]
                self._write_async, fd, payload, fd, offset, priority,
            )
        except OSError as exc:
            return await self._write_bounced(exc, payload, fd, offset, priority)

    async def _readinto_deferred(
        self, buffer: Buffer, fd: Any, offset: int, priority: int = 0,
    ) -> int:
        try:
            return await self._deferred(  # type: ignore[no-any-return]
                self._readinto_async, fd, buffer, fd, offset, priority,
            )
        except OSError as exc:
            return await self._readinto_bounced(exc, buffer, fd, offset, priority)

    async def _readv_deferred(
        self, buffers: Sequence[Buffer], fd: Any, offset: int, priority: int = 0,
    ) -> int:
        return await self._deferred(  # type: ignore[no-any-return]
            self._readv_async, fd, buffers, fd, offset, priority,
        )

    async def _writev_deferred(
        self, buffers: Sequence[Buffer], fd: Any, offset: int, priority: int = 0,
    ) -> int:
        return await self._deferred(  # type: ignore[no-any-return]
            self._writev_async, fd, buffers, fd, offset, priority,
        )

    async def _fsync_deferred(self, fd: Any, priority: int = 0) -> None:
        await self._deferred(self._fsync_async, fd, fd, priority)

    async def _fdsync_deferred(self, fd: Any, priority: int = 0) -> None:
        await self._deferred(self._fdsync_async, fd, fd, priority)

    async def submit(self, op: AbstractOperation) -> Any:
        """Run an ``OPERATION_CLASS`` operation; returns ``op.get_value()``.

        The operation's callback is replaced. Raises what get_value()
        raises, OperationTypeError (another backend's operation),
        NotSubmittedError (already submitted), ValueError (closed).
        """
        self._check_operation(op)
        self._check_loop()
        loop = self.loop
        future: asyncio.Future[int] = loop.create_future()

        def resolve(result: int) -> None:
            if not future.done():
                future.set_result(result)

        if self.CALLBACKS_IN_LOOP:
            op.set_callback(resolve)
        else:
            # Worker threads must not touch the future themselves.
            def from_thread(result: int) -> None:
                try:
                    loop.call_soon_threadsafe(resolve, result)
                except RuntimeError:  # the loop is closed: nobody waits
                    pass

            op.set_callback(from_thread)
        self._submit_once(op)
        try:
            await future
        except CancelledError:
            try:
                self.context.cancel(op)
            except ValueError:  # closed meanwhile: it cancelled everything
                pass
            raise
        return op.get_value()

    def _check_operation(self, op: AbstractOperation) -> None:
        if not isinstance(op, self.OPERATION_CLASS):
            raise OperationTypeError(
                f"expected {self.OPERATION_CLASS.__module__}.Operation, "
                f"not {type(op).__name__}",
            )

    def _submit_once(self, op: AbstractOperation) -> None:
        if not self.context.submit(op):
            # The backend skips an operation already submitted (in flight
            # or finished): nothing would ever resolve its future.
            raise NotSubmittedError(f"{op!r} is already submitted")

    def close(self) -> None:
        """Stop watching the context and close it. Idempotent.

        Operations still pending fail with OSError(ECANCELED).
        """
        if self._closed:
            return
        self._closed = True
        live.discard(self)
        loop = self._loop
        if (
            loop is not None and self._bound_in == fork_generation()
            and not loop.is_closed()
        ):
            try:
                loop.remove_reader(self._fileno)
            except (RuntimeError, ValueError, OSError):
                # Another thread than the loop's, or an fd the loop already
                # forgot: closing the context matters more.
                pass
        self.context.close()

    def _close_at_exit(self) -> None:
        # caio._registry's exit hook: release the backend context (its
        # workers, rings) before the interpreter tears down.
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


if _awaitables is not None:
    _awaitables.set_state_slot(AsyncioContextBase.__dict__["_fast"])
