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
