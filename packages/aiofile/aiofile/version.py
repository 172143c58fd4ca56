"""The aiofile release."""

__version__ = "3.13.0"
#: The one-line description (the distribution's Summary), as aiofile 3.12 had it.
package_info = "Asynchronous file operations for asyncio, on top of caio"
version_info = tuple(int(part) for part in __version__.split("."))
