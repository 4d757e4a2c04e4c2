"""Give freed memory back to the system after a request, so a worker returns to its baseline.

glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MB), after
which big picture buffers come from the heap arenas, one per thread, and stay there when freed:
measured, one 40 MP picture took a gunicorn worker from 344 MB to 707 MB for good, a cutout on
it to 1.1 GB. After each request, when more than TRIM_ABOVE bytes lie free in malloc's arenas
(mallinfo2, about 0.1 ms), malloc_trim(0) hands them back (a few ms; not worth it for the small
amounts an ordinary request leaves). At 64 MB a worker kept 100 MB over its baseline after five
40 MP requests, at 16 MB 65 MB (tests/test_hardening.py). Elsewhere than glibc this does nothing.
"""
from app.serving.memory import free_in_arenas, give_back

TRIM_ABOVE = 16 * 1024 * 1024


def trim_if_worth_it(exc=None):
    """teardown_request: give free arena memory back when there is much of it."""
    if free_in_arenas() > TRIM_ABOVE:
        give_back()


def init_app(app):
    """Trim after the requests of `app`."""
    app.teardown_request(trim_if_worth_it)
