"""Argument checks of the pure-Python backend.

The same rules, in the same order and with the same exceptions, as the C
backends' ``caio_req_prepare`` (``src/common``): everything is checked
before anything is queued.
"""

from __future__ import annotations

from ._python_kernel import FD_MAX, IOV_MAX, OFFSET_LIMIT, PRIORITY_LIMIT
from .abstract import PayloadTypeError

__all__ = (
    "buffer_views", "check_fd", "check_priority", "check_size", "payload_view",
    "writable_view",
)


def check_size(value: object, what: str, huge: type[Exception]) -> int:
    """``value`` as an int in 0..2**63-1; ``huge``: what a larger one raises."""
    if not isinstance(value, int):
        raise TypeError(f"{what} must be int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} must not be negative")
    if value >= OFFSET_LIMIT:
        if huge is MemoryError:
            raise MemoryError(f"{what} is too large to allocate")
        raise ValueError(f"{what} must be less than 2**63")
    return int(value)


def check_fd(fd: object) -> int:
    """An int, or an object's ``fileno()``, as CPython's own fd conversion."""
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
    if value > FD_MAX:
        raise OverflowError("file descriptor is greater than maximum")
    return value


def check_priority(priority: object) -> None:
    """An int in 0..65535 (the kernel's ioprio field)."""
    if not isinstance(priority, int):
        raise TypeError(f"priority must be int, not {type(priority).__name__}")
    if not 0 <= priority < PRIORITY_LIMIT:
        raise ValueError("priority must be in 0..65535")


def payload_view(payload: object) -> memoryview:
    """A flat byte view of a C-contiguous buffer (held until released)."""
    if payload.__class__ is bytes:  # the usual payload: flat already
        return memoryview(payload)
    try:
        view = memoryview(payload)  # type: ignore[arg-type]
    except TypeError:
        raise PayloadTypeError(
            f"payload must be a bytes-like object, not {type(payload).__name__}",
        ) from None
    return _flat(view, "payload")


def _flat(view: memoryview, what: str) -> memoryview:
    """``view`` as one dimension of bytes; BufferError (released) if it is
    not C-contiguous."""
    if not view.c_contiguous:
        view.release()
        raise BufferError(f"{what} must be a C-contiguous buffer")
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view


def writable_view(buffer: object, what: str = "buffer") -> memoryview:
    """A flat byte view of a writable C-contiguous buffer (held until
    released). A read-only buffer is TypeError, as in C."""
    try:
        view = memoryview(buffer)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{what} must be a writable bytes-like object, not {type(buffer).__name__}",
        ) from None
    if view.readonly:
        view.release()
        raise TypeError(f"{what} must be writable, not a read-only {type(buffer).__name__}")
    return _flat(view, what)


def buffer_views(buffers: object, writable: bool, name: str) -> list[memoryview]:
    """Views of a sequence of at most IOV_MAX buffers (writable ones for
    readv), all held until released; on error none is."""
    try:
        memoryview(buffers).release()  # type: ignore[arg-type]
    except TypeError:
        pass
    else:  # a lone buffer is a sequence of ints: say what was meant
        raise TypeError(
            f"{name}() takes a sequence of buffers, not a {type(buffers).__name__}",
        )
    try:
        items = list(buffers)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError("buffers must be a sequence of bytes-like objects") from None
    if len(items) > IOV_MAX:
        raise ValueError(
            f"{name}() takes at most {IOV_MAX} buffers (IOV_MAX), not {len(items)}",
        )
    views: list[memoryview] = []
    try:
        for i, item in enumerate(items):
            if writable:
                views.append(writable_view(item, f"buffers[{i}]"))
            else:
                try:
                    views.append(payload_view(item))
                except PayloadTypeError:
                    raise TypeError(
                        f"buffers[{i}] must be a bytes-like object, not {type(item).__name__}",
                    ) from None
    except BaseException:
        for view in views:
            view.release()
        raise
    return views
