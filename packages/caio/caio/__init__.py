"""caio: asynchronous file I/O for asyncio, on four backends.

Selection happens at import: the best backend that imports, in the order
uring (io_uring) -> linux (kernel AIO) -> thread (C thread pool) -> python
(pure Python threads). ``CAIO_IMPL=<name>`` forces one; so does a
``default_implementation`` file beside this module, whose lines that are
neither blank nor ``#`` comments are tried in order (the environment wins
over the file). A name that is no backend, or a backend that cannot import
here, gives a RuntimeWarning naming the reason; the next line of the file,
or else the automatic choice, is used. ``caio.preferred`` and
``caio.preferred_asyncio`` are the selected backend's two modules.

``python -m caio`` shows every backend, whether it works here, and which one
is selected.

The asyncio names (``AsyncioContext``, ``variants_asyncio``, the
``*_asyncio`` modules) are imported on first access, so ``import caio``
does not import asyncio. So are the Trio names, which need trio installed:
``caio.TrioContext`` (the selected backend's Trio context) and
``caio.TrioContextBase`` (``caio.trio_base``; ``trio_context_class(name)``
gives another backend's).
"""

from __future__ import annotations

import os
import warnings
from importlib import import_module
from types import ModuleType

from . import _features  # noqa: F401  (the kernel test switch: a typo fails here)
from ._backends import BACKENDS as _BACKENDS
from ._direct import aligned_buffer, dio_alignment
from ._fork import fork_generation
from ._limits import MAX_IO_SIZE
from .abstract import AbstractContext, AbstractOperation

# Not `from typing import TYPE_CHECKING`: importing typing would make
# `import caio` slower; type checkers treat this name as True anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .asyncio_base import AsyncioContextBase
    from .asyncio_base import AsyncioContextBase as AsyncioContext
    from .trio_base import TrioContextBase as TrioContext  # noqa: F401
    from .trio_base import TrioContextBase as TrioContextBase

    preferred_asyncio: ModuleType
    linux_uring: ModuleType | None
    linux_aio: ModuleType | None
    thread_aio: ModuleType | None
    python_aio: ModuleType | None
    variants_asyncio: tuple[ModuleType, ...]
    linux_uring_asyncio: ModuleType | None
    linux_aio_asyncio: ModuleType | None
    thread_aio_asyncio: ModuleType | None
    python_aio_asyncio: ModuleType | None

__version__ = "0.13.0"

__all__ = (
    "MAX_IO_SIZE", "AbstractContext", "AbstractOperation", "AsyncioContext",
    "AsyncioContextBase", "Context", "Operation", "__version__", "aligned_buffer",
    "dio_alignment", "fork_generation",
    "linux_aio", "linux_aio_asyncio", "linux_uring", "linux_uring_asyncio",
    "preferred", "preferred_asyncio",
    "python_aio", "python_aio_asyncio", "thread_aio", "thread_aio_asyncio",
    "variants", "variants_asyncio",
)

_ENV = "CAIO_IMPL"
_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_implementation")

# Why a backend cannot import here, by name (for warnings and `python -m caio`).
_import_errors: dict[str, str] = {}


def _load(name: str) -> ModuleType | None:
    try:
        module = import_module(f"{__name__}.{_BACKENDS[name]}")
    except ImportError as exc:
        _import_errors[name] = str(exc) or type(exc).__name__
        return None
    except Exception as exc:  # a broken extension must not break `import caio`
        _import_errors[name] = f"{type(exc).__name__}: {exc}"
        return None
    # The C types cannot inherit from the ABCs; register them instead.
    for cls, abstract in ((getattr(module, "Context", None), AbstractContext),
                          (getattr(module, "Operation", None), AbstractOperation)):
        if isinstance(cls, type) and not issubclass(cls, abstract):
            abstract.register(cls)
    return module


# CAIO_IMPL name -> its module, or None where it cannot import; best first.
_modules: dict[str, ModuleType | None] = {name: _load(name) for name in _BACKENDS}
# caio.linux_uring, caio.linux_aio, ...: each backend module (or None).
globals().update({_BACKENDS[name]: module for name, module in _modules.items()})
variants: tuple[ModuleType, ...] = tuple(m for m in _modules.values() if m is not None)


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _file_lines() -> list[str]:
    """The lines of default_implementation that say something, in order."""
    try:
        with open(_FILE, encoding="utf-8") as file:
            lines = [line.split("#", 1)[0].strip() for line in file]
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        _warn(f"caio: cannot read {_FILE}: {exc}; choosing the backend automatically")
        return []
    return [line for line in lines if line]


def _select() -> tuple[str, str]:
    """(backend name, why it was chosen).

    CAIO_IMPL, when set, is the one request: unknown or unusable, it is
    warned about and the automatic choice is used. Otherwise each line of
    default_implementation is tried in order; a line that names no backend,
    or one that cannot be used here, is warned about and the next is tried.
    """
    if not variants:
        raise ImportError(
            "caio: no backend can be imported: "
            + "; ".join(f"{k}: {v}" for k, v in _import_errors.items()),
        )
    automatic = next(name for name, module in _modules.items() if module is not None)
    value = os.environ.get(_ENV, "").strip()
    if value:
        requests = [(value, f"{_ENV}={value}")]
    else:
        requests = [(line, f"{_FILE} ({line})") for line in _file_lines()]
    then = "choosing the backend automatically" if value else "the line is skipped"
    for asked, source in requests:
        name = asked.lower()
        if name not in _BACKENDS:
            _warn(
                f"caio: {source} is not a backend name (one of "
                f"{', '.join(_BACKENDS)}); {then}",
            )
        elif _modules[name] is None:
            _warn(
                f"caio: {source} asks for the {name!r} backend (caio.{_BACKENDS[name]}), "
                f"which cannot be used here: {_import_errors.get(name)}; {then}",
            )
        else:
            return name, f"asked for by {source}"
    if requests:
        return automatic, f"automatic: {requests[-1][1]} cannot be used here"
    return automatic, "automatic: the best backend that imports here"


_selected, _selected_by = _select()
_selected_module: ModuleType = _modules[_selected]  # type: ignore[assignment]

Context: type[AbstractContext] = _selected_module.Context
Operation: type[AbstractOperation] = _selected_module.Operation
#: The selected backend's low-level module (``caio.Context`` is its Context).
preferred: ModuleType = _selected_module


def _adapter(name: str) -> ModuleType | None:
    if _modules[name] is None:
        return None
    return import_module(f"{__name__}.{_BACKENDS[name]}_asyncio")


def __getattr__(name: str) -> Any:
    # PEP 562: the asyncio side is imported on first use.
    value: Any
    if name == "AsyncioContextBase":
        value = import_module(f"{__name__}.asyncio_base").AsyncioContextBase
    elif name == "asyncio_base":  # caio 0.12 imported it with the package
        value = import_module(f"{__name__}.asyncio_base")
    elif name == "TrioContextBase":  # not in __all__: it needs trio
        value = import_module(f"{__name__}.trio_base").TrioContextBase
    elif name == "TrioContext":
        value = import_module(f"{__name__}.trio_base").trio_context_class()
    elif name == "AsyncioContext":
        adapter = _adapter(_selected)
        assert adapter is not None
        value = adapter.AsyncioContext
    elif name == "preferred_asyncio":
        # The selected backend's adapter module (its AsyncioContext is
        # caio.AsyncioContext).
        value = _adapter(_selected)
    elif name == "variants_asyncio":
        value = tuple(
            module for module in (_adapter(n) for n in _BACKENDS) if module is not None
        )
    elif name.endswith("_asyncio") and name[: -len("_asyncio")] in _BACKENDS.values():
        backend = next(k for k, v in _BACKENDS.items() if f"{v}_asyncio" == name)
        value = _adapter(backend)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
