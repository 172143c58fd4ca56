from collections.abc import Callable
from typing import final

from typing_extensions import Self, disjoint_base

from ._cbase import CFsContext, COperation

@final
class Operation(COperation): ...

@disjoint_base
class Context(CFsContext):
    def __new__(
        cls,
        max_requests: int | None = None,
        pool_size: int | None = None,
        close_timeout: float = 10.0,
        *,
        stat_cached: bool = True,
    ) -> Self: ...
    def submit(self, *operations: Operation) -> int: ...
    def cancel(self, *operations: Operation) -> int: ...
    @property
    def pool_size(self) -> int: ...
    @property
    def lone_write(self) -> bool: ...
    def _set_idle_check(self, check: Callable[[], object] | None, /) -> None: ...
    @property
    def _kernel_features(self) -> frozenset[str]: ...

_HAVE_NOWAIT: int

def _atexit() -> None: ...

_FEATURE_NAMES: tuple[str, ...]
