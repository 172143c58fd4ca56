"""The asyncio adapter's read/write without a coroutine per finished
operation, in C (optional): see caio.asyncio_base."""

from collections.abc import Callable, Generator
from typing import Any, final

from typing_extensions import Self

def set_state_slot(descriptor: Any, /) -> None: ...
@final
class OperationState:
    def __new__(
        cls,
        owner: object | None,
        inflight: dict[Any, Any] | None,
        cancel_future: Callable[[Any], object],
        read_async: Callable[..., Any],
        write_async: Callable[..., Any],
        readinto_async: Callable[..., Any],
        readv_async: Callable[..., Any],
        writev_async: Callable[..., Any],
        /,
    ) -> Self: ...

@final
class OperationMethod:
    def __new__(
        cls,
        slow: Callable[..., Any],
        which: int,
        failed: Callable[..., Any],
        bounced: Callable[..., Any],
        done: type,
        min_args: int,
    ) -> Self: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, instance: object, owner: type | None = None, /) -> Any: ...

@final
class OperationCall:
    @property
    def __qualname__(self) -> str: ...
    @property
    def cr_await(self) -> Any: ...
    def __await__(self) -> Generator[Any, None, Any]: ...
    def __iter__(self) -> Self: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any: ...
    def close(self) -> None: ...
