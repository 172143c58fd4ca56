"""asyncio adapter of the ``thread`` backend (C pthread pool).

Operation callbacks run in the worker thread that finished the operation.
"""

from .asyncio_base import AsyncioContextBase
from .thread_aio import Context, Operation

__all__ = ("AsyncioContext", "Context", "Operation")


class AsyncioContext(AsyncioContextBase):
    """asyncio context on ``caio.thread_aio``; see AsyncioContextBase."""

    CONTEXT_CLASS = Context
    OPERATION_CLASS = Operation
    FS_ASYNC_ALL = True  # its workers run every filesystem operation
    CALLBACKS_IN_LOOP = False
