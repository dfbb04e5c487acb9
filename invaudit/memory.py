"""Give freed heap memory back to the operating system between audit batches.

A streaming audit allocates and frees a few same-sized tensors per batch (inputs,
partners, metamers, gradients).  glibc's allocator raises its mmap threshold after
the first large free, so later batches land on the heap, and the holes they leave
are reused only in part: the process's resident size then creeps up with the
number of batches (measured with ``benchmarks/audit_scale.py``: +160 MiB over
10 000 64×64 metamers, flat with ``MALLOC_MMAP_THRESHOLD_`` set).  Calling
``malloc_trim`` after each batch returns those pages, so peak memory tracks the
batch, not ``--n``.  Elsewhere (macOS, musl, Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> bool:
    """Return free heap pages to the OS; True where the C library could (glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
