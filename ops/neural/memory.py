"""Keep freed heap memory in the process for the next training step.

A training step allocates and frees the same few megabytes of activations every time.
glibc's malloc hands large freed blocks back to the kernel (mmap'ed blocks at once, the
top of the heap past a trim threshold), so each step faults its pages in again; on
small networks the page faults cost as much as the arithmetic.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters of glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 1 << 30


def retain_freed_memory() -> bool:
    """Make malloc serve every block from the heap and keep freed memory (up to 1 GiB free
    at its top) for reuse. Process-wide, so meant for processes that train networks;
    returns whether the C library accepted it (False off glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
