"""``aiofile.ospath``: another name of ``aiofile.os.path`` (aiofiles has both)."""

from .os.path import *  # noqa: F403
from .os.path import __all__ as __all__
