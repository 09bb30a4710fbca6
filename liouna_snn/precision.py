"""Which floating-point precision the heavy convolutions and matmuls run in, per device.

``"bf16"`` runs the forward, prediction and correlation convolutions (and feature storage) in
bfloat16 with float32 master weights; ``"fp32"`` runs everything in float32; ``"auto"`` (the default)
picks bf16 only where the hardware computes it natively: a CUDA GPU that supports bfloat16, or a CPU
whose oneDNN build has bf16 kernels (AVX-512 BF16 or AMX). Elsewhere, e.g. an AVX2-only CPU, bf16 is
emulated and runs hundreds of times slower than float32 (measured: 0.34 against 126 GFLOP/s for a
2048x2048 matmul on a 2-core AVX2 EPYC), so ``"auto"`` falls back to float32 there.
"""
from __future__ import annotations

import functools

import torch

PRECISIONS = ("auto", "bf16", "fp32")


@functools.lru_cache(maxsize=None)
def bf16_is_fast(device_type: str) -> bool:
    """``True`` when bfloat16 matmuls and convolutions run natively on devices of ``device_type``."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        try:
            return bool(check()) if check is not None else False
        except RuntimeError:  # a build without oneDNN
            return False
    return False


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``"bf16"`` or ``"fp32"``: ``precision`` itself, or for ``"auto"`` what runs fast on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if bf16_is_fast(torch.device(device).type) else "fp32"


def compute_dtype(precision: str, device: torch.device | str = "cpu") -> torch.dtype | None:
    """The ``compute_dtype`` of the plastic layers: ``torch.bfloat16`` for bf16, ``None`` (float32) for fp32."""
    return torch.bfloat16 if resolve_precision(precision, device) == "bf16" else None


def storage_dtype(device: torch.device | str = "cpu") -> torch.dtype:
    """The dtype to store large feature matrices in: bfloat16 (half the memory) where it computes fast."""
    return torch.bfloat16 if bf16_is_fast(torch.device(device).type) else torch.float32
