"""Numbers every backend shares, in one place.

``setup.py`` reads this file and hands each value to the C backends as a
macro of the same name with a ``CAIO_`` prefix, so the C and Python backends
cannot drift apart. Keep it to plain ``NAME = <int expression>`` lines.
"""

#: The kernel's cap on one read or write (Linux MAX_RW_COUNT: INT_MAX rounded
#: down to a 4 KiB page). A larger request transfers at most this much.
MAX_IO_SIZE = 0x7FFFF000

#: Reads and writes up to this size first try the page cache on the calling
#: thread with RWF_NOWAIT (no worker, no ring round trip); larger ones, and
#: those the page cache cannot serve at once, go to the backend's engine.
NOWAIT_MAX = 1024 * 1024

#: The same for python_aio, which cannot read into the bytes object it
#: returns: its fast path copies twice (a scratch buffer, then the bytes), so
#: above this size its worker pool is faster (measured: 1 MiB chunks streamed
#: at 0.38-0.53x of the stdlib inline, 0.61-0.65x through the pool).
NOWAIT_MAX_PYTHON = 256 * 1024

#: ``max_requests`` of every backend's Context: ``None`` or ``0`` mean
#: MAX_REQUESTS_DEFAULT, otherwise 1..MAX_REQUESTS_LIMIT.
MAX_REQUESTS_DEFAULT = 512
MAX_REQUESTS_LIMIT = 65536
