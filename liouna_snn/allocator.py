"""Heap settings for CPU training: keep freed memory in the process instead of returning it to the OS.

A plastic layer's step allocates several weight-sized temporaries (the layer-3 update of the CIFAR-10
network is 1536 x 3456 floats, 21 MB). glibc serves blocks that large with ``mmap`` and hands them back
to the kernel on ``free``, so every step page-faults them in again: about a third of that layer's
step time on a 2-core CPU. :func:`keep_freed_memory` raises glibc's ``mmap`` threshold to its maximum
(32 MiB) and stops it trimming the heap, so those blocks are reused. It changes only where memory
comes from, never a value; the process keeps its peak heap size. Elsewhere than glibc (macOS, musl,
Windows) it does nothing; under a preloaded allocator (jemalloc, tcmalloc) it does nothing either, as that
allocator has no glibc ``mallopt``. The trainers apply it for CPU runs only.
``LIOUNA_SNN_KEEP_FREED_MEMORY=0`` turns it off.
"""
from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses larger values on 64-bit (HEAP_MAX_SIZE / 2)

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the heap settings once per process; ``True`` if they are in effect (glibc), else ``False``."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("LIOUNA_SNN_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        process = ctypes.CDLL(None)  # the symbols this process resolves: the allocator actually in use
    except OSError:  # Windows
        return False
    mallopt = getattr(process, "mallopt", None)
    if mallopt is None or not hasattr(process, "gnu_get_libc_version"):  # mallopt's parameters are glibc's
        return False
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))
    return _applied
