"""Memory that malloc holds free, handed back to the system (glibc's malloc_trim).

glibc keeps freed blocks in its arenas for reuse rather than returning them; large frees raise its
mmap threshold (up to 32 MB), so later big buffers come from the arenas and stay there. Loading
IS-Net leaves about 260 MB so: ONNX Runtime parses the 176 MB file and copies its weights, then
frees the parsed copy. app/web/memory.py trims after requests; the registry after a model load.
Elsewhere than glibc these do nothing.
"""
import ctypes
import ctypes.util


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


def free_in_arenas():
    """Bytes lying free in malloc's arenas (mallinfo2, about 0.1 ms); 0 elsewhere than glibc."""
    return _libc.mallinfo2().fordblks if _libc is not None else 0


def give_back():
    """malloc_trim(0): the arenas' free memory back to the system (a few ms)."""
    if _libc is not None:
        _libc.malloc_trim(0)
