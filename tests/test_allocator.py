"""liouna_snn.allocator: the glibc heap settings are applied once, only on glibc, and can be turned off."""
import platform

from liouna_snn import allocator


def test_keep_freed_memory_applies_on_glibc_once_and_honours_the_opt_out(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv("LIOUNA_SNN_KEEP_FREED_MEMORY", "0")
    assert allocator.keep_freed_memory() is False
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.delenv("LIOUNA_SNN_KEEP_FREED_MEMORY")
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert allocator.keep_freed_memory() is on_glibc
    monkeypatch.setenv("LIOUNA_SNN_KEEP_FREED_MEMORY", "0")  # decided once per process
    assert allocator.keep_freed_memory() is on_glibc


def test_a_freed_weight_sized_block_stays_in_the_heap_on_glibc():
    import ctypes

    import pytest

    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2") or not allocator.keep_freed_memory():
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    mapped = libc.mallinfo2().hblkhd
    block = libc.malloc(21 * 1024 * 1024)  # the layer-3 update of the CIFAR-10 network: 1536 x 3456 floats
    assert block
    try:
        assert libc.mallinfo2().hblkhd == mapped  # served from the heap, not by a fresh mmap
    finally:
        libc.free(block)
