"""ImageTensors: a whole dataset split held in memory as one uint8 tensor."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

# Elements per chunk when a whole-dataset op converts uint8 to float (bounds temporary memory).
_CHUNK_ELEMENTS = 1 << 24


def _chunks(images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    per_image = max(1, images[0].numel()) if len(images) else 1
    return images.split(max(1, _CHUNK_ELEMENTS // per_image))


@dataclass
class ImageTensors:
    """A whole dataset split held in memory.

    Attributes:
        images: (N, C, H, W) uint8, pixel values 0..255, channels RGB.
        labels: (N,) int64 class indices into ``classes``; -1 for unlabeled data.
        classes: class names, ``classes[k]`` is the name of label ``k``.
        name: "<dataset>/<split>", e.g. "cifar10/train".
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W) uint8, got {tuple(self.images.shape)} "
                             f"{self.images.dtype}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be ({self.images.shape[0]},) int64, got "
                             f"{tuple(self.labels.shape)} {self.labels.dtype}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str) -> ImageTensors:
        """The same split with images and labels moved to ``device``."""
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))

    def subset(self, n: int) -> ImageTensors:
        """The first ``n`` examples, order kept (all of them if ``n >= len(self)``)."""
        if n < 0:
            raise ValueError(f"subset size must be >= 0, got {n}")
        if n >= len(self):
            return replace(self)
        return replace(self, images=self.images[:n], labels=self.labels[:n], name=f"{self.name}[:{n}]")

    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and (population) std of the pixels in [0, 1] units.

        Returns two float32 (C,) tensors on the CPU, suitable as ``mean``/``std`` for
        :func:`liouna_snn.data.iterate_batches`.
        """
        if len(self) == 0:
            raise ValueError(f"{self.name} is empty: no channel statistics")
        c = self.images.shape[1]
        total = torch.zeros(c, dtype=torch.float64, device=self.images.device)
        total_sq = torch.zeros_like(total)
        for chunk in _chunks(self.images):
            x = chunk.to(torch.float64).div_(255)
            total += x.sum(dim=(0, 2, 3))
            total_sq += x.square_().sum(dim=(0, 2, 3))
        count = self.images.numel() // c
        mean = total / count
        std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
        return mean.float().cpu(), std.float().cpu()


def resize_center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (N, C, H, W) uint8 images so the shorter side is ``size`` (bilinear, antialiased),
    then centre-crop to (N, C, size, size) uint8. Returns ``images`` itself if already that size."""
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    out = torch.empty((n, c, size, size), dtype=torch.uint8, device=images.device)
    start = 0
    for chunk in _chunks(images):
        x = F.interpolate(chunk.float(), size=(new_h, new_w), mode="bilinear",
                          align_corners=False, antialias=True)
        x = x[:, :, top:top + size, left:left + size]
        out[start:start + len(chunk)] = x.round_().clamp_(0, 255).to(torch.uint8)
        start += len(chunk)
    return out
