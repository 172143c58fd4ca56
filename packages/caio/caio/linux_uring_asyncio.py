"""asyncio adapter of the ``uring`` backend (io_uring rings).

Operation callbacks run on the loop thread, inside process_events().
"""

from .asyncio_base import AsyncioContextBase
from .linux_uring import Context, Operation

__all__ = ("AsyncioContext", "Context", "Operation")


class AsyncioContext(AsyncioContextBase):
    """asyncio context on ``caio.linux_uring``; see AsyncioContextBase."""

    CONTEXT_CLASS = Context
    OPERATION_CLASS = Operation
    CALLBACKS_IN_LOOP = True
