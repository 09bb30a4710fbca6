"""The geometry of a synapse: how a weight tensor maps an input onto its output positions.

Every rule is written once, for a 2-d convolution. A linear layer is the 1x1 convolution of a
``(B, D, 1, 1)`` input, so the same code serves both (:func:`as_conv`).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class ConvGeometry(NamedTuple):
    """Stride and padding of a convolution.

    ``padding`` is applied explicitly (``F.pad``) before a padding-free convolution, so any
    ``padding_mode`` works the same way in the forward pass, the prediction and the update.
    """

    stride: int = 1
    padding: int = 0
    padding_mode: str = "zeros"


LINEAR = ConvGeometry(1, 0, "zeros")


def as_conv(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """View a linear layer's ``x (B, D)`` and ``weight (K, D)`` as a 1x1 convolution's."""
    if weight.dim() == 2:
        return x.reshape(*x.shape, 1, 1), weight.reshape(*weight.shape, 1, 1)
    return x, weight


def pad(x: torch.Tensor, geometry: ConvGeometry) -> torch.Tensor:
    """Pad ``x (B, C, H, W)`` on all four sides by ``geometry.padding`` with its padding mode."""
    p = geometry.padding
    if p == 0:
        return x
    mode = "constant" if geometry.padding_mode == "zeros" else geometry.padding_mode
    return F.pad(x, (p, p, p, p), mode=mode)


def crop(x_padded: torch.Tensor, geometry: ConvGeometry) -> torch.Tensor:
    """Drop the padded border of a ``(B, C, H + 2p, W + 2p)`` tensor."""
    p = geometry.padding
    if p == 0:
        return x_padded
    return x_padded[..., p:-p, p:-p]


def output_size(size: int, kernel: int, geometry: ConvGeometry) -> int:
    """Output length along one axis; raises if the kernel does not fit."""
    padded = size + 2 * geometry.padding
    if padded < kernel:
        raise ValueError(
            f"impossible geometry: kernel {kernel} is larger than the padded input ({size} + 2*{geometry.padding})"
        )
    return (padded - kernel) // geometry.stride + 1


def conv_transpose(c: torch.Tensor, weight: torch.Tensor, padded_hw: tuple[int, int], stride: int) -> torch.Tensor:
    """Top-down projection of a code ``c (B, K, Ho, Wo)`` through ``weight (K, C, k, k)``.

    Returns the ``(B, C, Hp, Wp)`` tensor on the padded input grid (``padded_hw``).
    """
    k_h, k_w = weight.shape[-2:]
    extra_h = padded_hw[0] - ((c.shape[-2] - 1) * stride + k_h)
    extra_w = padded_hw[1] - ((c.shape[-1] - 1) * stride + k_w)
    out = F.conv_transpose2d(c, weight, stride=stride, output_padding=(min(extra_h, stride - 1), min(extra_w, stride - 1)))
    if out.shape[-2] < padded_hw[0] or out.shape[-1] < padded_hw[1]:  # rows no output position sees
        out = F.pad(out, (0, padded_hw[1] - out.shape[-1], 0, padded_hw[0] - out.shape[-2]))
    return out


def coverage(
    output_hw: tuple[int, int], kernel_hw: tuple[int, int], input_hw: tuple[int, int], geometry: ConvGeometry,
    *, device=None, dtype=torch.float32,
) -> torch.Tensor:
    """``kappa (1, 1, H, W)``: how many output positions see each (unpadded) input element.

    ``k*k`` for stride 1 away from the borders; elements that no position sees get 1 (their
    prediction is 0 and they never enter an update).
    """
    ones_c = torch.ones(1, 1, *output_hw, device=device, dtype=dtype)
    ones_w = torch.ones(1, 1, *kernel_hw, device=device, dtype=dtype)
    padded_hw = (input_hw[0] + 2 * geometry.padding, input_hw[1] + 2 * geometry.padding)
    kappa = crop(conv_transpose(ones_c, ones_w, padded_hw, geometry.stride), geometry)
    return kappa.clamp_min(1.0)
