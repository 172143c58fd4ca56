"""The aiofile release."""

__version__ = "3.13.0"
version_info = tuple(int(part) for part in __version__.split("."))
