"""Mini-batches drawn from an in-memory :class:`ImageTensors` by whole-tensor indexing."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from .tensors import ImageTensors


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Batches per epoch over ``n`` examples (a final partial batch counts unless ``drop_last``)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return n // batch_size if drop_last else -(-n // batch_size)


def _per_channel(values: torch.Tensor | Sequence[float], channels: int, device, what: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float32).to(device).reshape(-1)
    if t.numel() != channels:
        raise ValueError(f"{what} must have {channels} values (one per channel), got {t.numel()}")
    return t.reshape(1, channels, 1, 1)


def iterate_batches(data: ImageTensors, batch_size: int, *, shuffle: bool,
                    generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                    drop_last: bool = False, mean: torch.Tensor | Sequence[float] | None = None,
                    std: torch.Tensor | Sequence[float] | None = None,
                    start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of mini-batches.

    Yields ``(x, y)``: x (B, C, H, W) float32 on ``device``, pixels scaled to [0, 1] and, if
    ``mean``/``std`` ((C,), in [0, 1] units) are given, normalised as (x - mean) / std per channel;
    y (B,) int64 on ``device``. B is ``batch_size`` except possibly for the last batch.

    The uint8 images stay on their own device; each batch is gathered with one index tensor and
    only the gathered uint8 batch is moved to ``device`` and converted.

    With ``shuffle`` the order is ``torch.randperm(N, generator=generator)`` (a CPU generator;
    the global RNG if None), drawn once when this function is called, so a seeded generator gives
    the same epoch every time. ``start_batch=k`` skips the first k batches of that same order:
    restoring the generator state saved before the epoch and passing k resumes mid-epoch exactly.
    """
    n = len(data)
    total = num_batches(n, batch_size, drop_last)
    if not 0 <= start_batch <= total:
        raise ValueError(f"start_batch must be in [0, {total}], got {start_batch}")
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(data.images.device)
    channels = data.images.shape[1]
    # x = (u8 / 255 - mean) / std, folded into one multiply-add per pixel
    scale = torch.full((1, channels, 1, 1), 1 / 255, device=device)
    shift = torch.zeros_like(scale)
    if mean is not None:
        mean = _per_channel(mean, channels, device, "mean")
        std = _per_channel(std, channels, device, "std")
        if (std <= 0).any():
            raise ValueError("std must be positive")
        scale, shift = scale / std, -mean / std
    return _batches(data, order, batch_size, range(start_batch, total), device, scale, shift)


def _batches(data: ImageTensors, order: torch.Tensor, batch_size: int, indices: range, device,
             scale: torch.Tensor, shift: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for b in indices:
        idx = order[b * batch_size:(b + 1) * batch_size]
        x = data.images[idx].to(device).float().mul_(scale).add_(shift)
        yield x, data.labels[idx].to(device)
