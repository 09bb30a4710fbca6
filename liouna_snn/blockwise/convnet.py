"""The Hebbian networks' architecture (a ``models/*.toml`` spec) as an ordinary backprop CNN.

The same structure as :func:`liouna_snn.build_network` builds (per layer: affine-free batch-norm of
the input, convolution with the spec's padding mode, the spec's activation, pooling), but with
trainable ``nn.Conv2d`` weights, for the end-to-end supervised baseline of the SoftHebb paper.
Convolutions have no bias, as the plastic layers. ``forward(x, depth)`` returns layer ``depth``'s
output after pooling, ``(B, C, H, W)``, the same tensor the Hebbian probe reads.
"""
from __future__ import annotations

import torch
from torch import nn

from ..network import _make_activation, _make_pool, validate_spec


class SpecConvNet(nn.Module):
    """The conv layers of a model spec as trainable modules; ``stage(i, h)`` runs layer ``i`` (1-based)."""

    def __init__(self, spec: dict):
        super().__init__()
        validate_spec(spec)
        self.spec = spec
        channels, size = spec["input_channels"], spec["input_size"]
        layers, self.stage_channels, self.feature_shapes = [], [], []
        for i, ls in enumerate(spec["layers"], start=1):
            if ls.get("type", "conv") != "conv":
                raise ValueError(f"layer {i}: SpecConvNet supports conv layers only, got type {ls.get('type')!r}")
            norm = ls.get("norm", True)
            modules = [] if norm in (False, "none") else [nn.BatchNorm2d(channels, affine=False)]
            modules += [nn.Conv2d(channels, ls["out_channels"], ls.get("kernel_size", 3), stride=ls.get("stride", 1),
                                  padding=ls.get("padding", 0), padding_mode=ls.get("padding_mode", "zeros"), bias=False),
                        _make_activation(ls.get("activation"))]
            pool = _make_pool(ls.get("pool"))
            if pool is not None:
                modules.append(pool)
            layer = nn.Sequential(*modules)
            with torch.no_grad():
                shape = layer.eval()(torch.zeros(1, channels, size, size)).shape[1:]
            layer.train()
            layers.append(layer)
            channels, size = shape[0], shape[1]
            self.stage_channels.append(channels)
            self.feature_shapes.append(tuple(shape))
        self.layers = nn.ModuleList(layers)

    def __len__(self) -> int:
        return len(self.layers)

    def stage_modules(self, i: int) -> list[nn.Module]:
        """The modules of layer ``i`` (1-based)."""
        if not 1 <= i <= len(self.layers):
            raise ValueError(f"stage must be in 1..{len(self.layers)}, got {i}")
        return [self.layers[i - 1]]

    def stage_parameters(self, i: int) -> list[nn.Parameter]:
        """The parameters of layer ``i`` (1-based)."""
        return [p for m in self.stage_modules(i) for p in m.parameters()]

    def stage(self, i: int, h: torch.Tensor) -> torch.Tensor:
        if not 1 <= i <= len(self.layers):
            raise ValueError(f"stage must be in 1..{len(self.layers)}, got {i}")
        return self.layers[i - 1](h)

    def forward(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        depth = len(self.layers) if depth is None else depth
        if not 1 <= depth <= len(self.layers):
            raise ValueError(f"depth must be in 1..{len(self.layers)}, got {depth}")
        for i in range(1, depth + 1):
            x = self.stage(i, x)
        return x
