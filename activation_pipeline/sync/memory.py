"""Hand memory a finished step no longer uses back to the operating system.

After the diff (its DuckDB session closed) and after each fold, the freed memory stays in the
allocators' caches: Arrow's pool keeps freed blocks for reuse and glibc's malloc keeps freed
arenas mapped. A run of a million records would then carry the diff's peak through its whole
push. ``release_freed_memory`` asks both to return what is free (a no-op where an allocator
does not offer it); nothing still in use is touched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
from typing import Any

import pyarrow as pa


@functools.cache
def _malloc_trim() -> Any:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":  # musl, macOS: no malloc_trim
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Return freed memory to the OS: Arrow's pool releases its unused blocks, glibc trims its heaps."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
