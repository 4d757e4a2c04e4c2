"""Give freed memory back to the system after a request, so a worker returns to its baseline.

glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MB), after
which big picture buffers come from the heap arenas, one per thread, and stay there when freed:
measured, one 40 MP picture took a gunicorn worker from 344 MB to 707 MB for good, a cutout on
it to 1.1 GB. After each request, when more than TRIM_ABOVE bytes lie free in malloc's arenas
(mallinfo2, about 0.1 ms), malloc_trim(0) hands them back (a few ms; not worth it for the small
amounts an ordinary request leaves). At 64 MB a worker kept 100 MB over its baseline after five
40 MP requests, at 16 MB 65 MB (tests/test_hardening.py). Elsewhere than glibc this does nothing.
"""
import ctypes
import ctypes.util

TRIM_ABOVE = 16 * 1024 * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        return libc if hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError):
        return None


_libc = _glibc()


def trim_if_worth_it(exc=None):
    """teardown_request: give free arena memory back when there is much of it."""
    if _libc is not None and _libc.mallinfo2().fordblks > TRIM_ABOVE:
        _libc.malloc_trim(0)


def init_app(app):
    """Trim after the requests of `app`."""
    app.teardown_request(trim_if_worth_it)
