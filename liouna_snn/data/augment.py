"""SSL augmentations on whole batches on the device: per-sample random parameters, tensor ops only.

:class:`Augment` maps a batch ``x (B, C, H, W)`` of pixels in [0, 1] (float, on any device) to one
augmented view of the same shape, in [0, 1]. Every random parameter is drawn for the whole batch at
once from a CPU ``torch.Generator`` (so a seed gives the same views on CPU and GPU) and moved to the
device; the image work is a handful of batched ops (one ``grid_sample`` for crop + flip, blends for
colour jitter, a grouped convolution for blur). No per-image Python loop, no PIL.

In order (SimCLR / Barlow Twins recipe; the colour-jitter order is fixed, torchvision's is random):

1. random resized crop: area fraction ``U(scale)``, log-aspect ratio ``U(log ratio)``, position
   uniform inside the image (the box is shrunk to fit), resampled bilinearly to ``H x W`` with an
   affine grid; horizontal flip with ``flip_p``, folded into the same grid;
2. with ``jitter_p``: brightness ``x * b``, contrast ``(x - m) * c + m`` (m: the image's mean grey),
   saturation ``(x - g) * s + g`` (g: per-pixel grey), factors ``U(1 - k, 1 + k)``; hue: rotation
   of the chroma plane in YIQ space by ``U(-hue, hue)`` turns (RGB images only);
3. greyscale with ``grayscale_p`` (ITU-R 601 luma);
4. Gaussian blur with ``blur_p``, sigma ``U(blur_sigma)`` in pixels, kernel ~ 10 % of the side (odd);
5. clamp to [0, 1].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_LUMA = (0.299, 0.587, 0.114)
# RGB <-> YIQ (NTSC); a hue rotation is a rotation of the (I, Q) plane.
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


@dataclass(frozen=True)
class Augment:
    """Options of :class:`Augment` (defaults: the CIFAR recipe of solo-learn's Barlow Twins).

    Attributes:
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's aspect ratio (width / height).
        flip_p: probability of a horizontal flip.
        jitter_p: probability of colour jitter; brightness, contrast, saturation: factor ranges
            ``1 +- k``; hue: rotation range in turns (at most 0.5).
        grayscale_p: probability of converting to grey.
        blur_p: probability of a Gaussian blur (0: off, the CIFAR choice); blur_sigma: its range in pixels.
    """

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)

    def __post_init__(self):
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augmentation {name} must be a probability in [0, 1], got {getattr(self, name)}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"augmentation scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"augmentation ratio must satisfy 0 < min <= max, got {self.ratio}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"augmentation {name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"augmentation hue must be in [0, 0.5] turns, got {self.hue}")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"augmentation blur_sigma must satisfy 0 < min <= max, got {self.blur_sigma}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One augmented view of ``x (B, C, H, W)`` in [0, 1]; same shape, dtype float32, device."""
        return augment_batch(x, self, generator)


def _uniform(n: int, low: float, high: float, generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _bernoulli(n: int, p: float, generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p


def _crop_grid(b: int, h: int, w: int, aug: Augment, generator, device) -> torch.Tensor:
    """Sampling grid (B, H, W, 2) of a random resized crop + flip, in normalised coordinates."""
    area = _uniform(b, *aug.scale, generator)
    log_ratio = _uniform(b, math.log(aug.ratio[0]), math.log(aug.ratio[1]), generator)
    ratio = log_ratio.exp()
    # crop size as fractions of the width and height (area and width/height ratio in pixels, as torchvision's,
    # for any image shape); shrink to fit (keeps the ratio where possible)
    cw = (area * ratio * (h / w)).sqrt().clamp(max=1.0)
    ch = (area / ratio * (w / h)).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - cw)   # centre in [-1, 1] coordinates
    cy = (torch.rand(b, generator=generator) * 2 - 1) * (1 - ch)
    flip = torch.where(_bernoulli(b, aug.flip_p, generator), -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = cw * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = ch, cy
    return F.affine_grid(theta.to(device), [b, 1, h, w], align_corners=False)


def _grey(x: torch.Tensor) -> torch.Tensor:
    luma = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * luma).sum(1, keepdim=True)


def _colour_jitter(x: torch.Tensor, aug: Augment, generator) -> torch.Tensor:
    b, dev = x.shape[0], x.device
    apply = _bernoulli(b, aug.jitter_p, generator)

    def factors(k):   # 1 where jitter is not applied
        f = _uniform(b, 1 - k, 1 + k, generator)
        return torch.where(apply, f, torch.ones(b)).to(dev).view(b, 1, 1, 1)

    bright, contrast, sat = factors(aug.brightness), factors(aug.contrast), factors(aug.saturation)
    angle = torch.where(apply, _uniform(b, -aug.hue, aug.hue, generator), torch.zeros(b)) * 2 * math.pi
    x = (x * bright).clamp(0, 1)
    if x.shape[1] == 3:
        m = _grey(x).mean(dim=(2, 3), keepdim=True)
        x = ((x - m) * contrast + m).clamp(0, 1)
        g = _grey(x)
        x = ((x - g) * sat + g).clamp(0, 1)
        to_yiq = torch.tensor(_RGB_TO_YIQ, device=dev)
        cos, sin = angle.cos().to(dev), angle.sin().to(dev)
        rot = torch.zeros(b, 3, 3, device=dev)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        mix = torch.linalg.inv(to_yiq) @ rot @ to_yiq          # (B, 3, 3) RGB -> RGB
        x = torch.einsum("bij,bjhw->bihw", mix, x).clamp(0, 1)
    else:
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - m) * contrast + m).clamp(0, 1)
    return x


def _blur(x: torch.Tensor, aug: Augment, generator) -> torch.Tensor:
    b, c, h, w = x.shape
    apply = _bernoulli(b, aug.blur_p, generator)
    sigma = _uniform(b, *aug.blur_sigma, generator)
    radius = max(1, int(0.1 * min(h, w)) // 2)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-t.pow(2) / (2 * sigma.view(b, 1).pow(2)))
    kernel = kernel / kernel.sum(1, keepdim=True)
    identity = (t == 0).float().expand(b, -1)
    kernel = torch.where(apply.view(b, 1), kernel, identity).to(x.device)      # (B, K)
    k = kernel.repeat_interleave(c, dim=0)                                        # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


def augment_batch(x: torch.Tensor, aug: Augment, generator: torch.Generator | None = None) -> torch.Tensor:
    """One augmented view of ``x (B, C, H, W)`` (pixels in [0, 1]) under the options ``aug``.

    ``generator`` (a CPU generator; the global RNG if None) draws every random parameter, so the
    same seed gives the same view on any device. Computed in float32, inside an autocast region too.
    """
    with torch.autocast(x.device.type, enabled=False):
        return _augment_float32(x, aug, generator)


def _augment_float32(x: torch.Tensor, aug: Augment, generator: torch.Generator | None) -> torch.Tensor:
    if x.dim() != 4:
        raise ValueError(f"augment: expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"augment: the generator must be a CPU generator, got one on {generator.device}")
    x = x.float()
    b, c, h, w = x.shape
    grid = _crop_grid(b, h, w, aug, generator, x.device)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if aug.jitter_p > 0:
        x = _colour_jitter(x, aug, generator)
    if aug.grayscale_p > 0 and c == 3:
        grey = _bernoulli(b, aug.grayscale_p, generator).to(x.device).view(b, 1, 1, 1)
        x = torch.where(grey, _grey(x).expand(-1, 3, -1, -1), x)
    if aug.blur_p > 0:
        x = _blur(x, aug, generator)
    return x.clamp_(0, 1)
