"""statx(STATX_DIOALIGN) for caio.dio_alignment (built on Linux only)."""

from typing import Any

def statx_dioalign(fd: Any, /) -> tuple[int, int] | None: ...
