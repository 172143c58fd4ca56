from typing import final

from typing_extensions import Self

from ._cbase import CContext, COperation

@final
class Operation(COperation): ...

@final
class Context(CContext):
    def __new__(
        cls, max_requests: int | None = None, *, sqpoll: bool = False, nowait_reads: bool = True
    ) -> Self: ...
    def submit(self, *operations: Operation) -> int: ...
    def cancel(self, *operations: Operation) -> int: ...
    @property
    def sqpoll(self) -> bool: ...
    @property
    def batching(self) -> bool: ...
