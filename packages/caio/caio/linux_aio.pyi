from typing import final

from typing_extensions import Self, disjoint_base

from ._cbase import CContext, COperation

@final
class Operation(COperation): ...

@disjoint_base
class Context(CContext):
    def __new__(cls, max_requests: int | None = None, *, userspace_reap: bool = True) -> Self: ...
    def submit(self, *operations: Operation) -> int: ...
    def cancel(self, *operations: Operation) -> int: ...
    @property
    def batching(self) -> bool: ...

_FEATURE_NAMES: tuple[str, ...]
