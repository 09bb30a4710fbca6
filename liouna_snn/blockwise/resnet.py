"""ResNets with a CIFAR stem, split into their 4 stages, and the per-stage SSL heads and projectors.

The backbone is torchvision's ResNet (its ``BasicBlock`` / ``Bottleneck`` modules, its module names
and its initialisation) with the CIFAR stem: ``conv1`` is a 3x3 convolution with stride 1 and padding
1 (instead of 7x7 stride 2) and there is no max-pool. That recipe, using only torchvision, is
:func:`cifar_resnet18` / :func:`cifar_resnet50`; :class:`ResNetBackbone` with ``width = 64`` has
exactly their state dict less ``fc`` (see :func:`liouna_snn.export.export_torchvision_resnet`).

Stages (for a ``(B, 3, 32, 32)`` input, ``w = width``; ResNet-50 multiplies channels by 4):

====== ========================================== ====================
stage  modules                                     output
====== ========================================== ====================
1      conv1, bn1, relu, (maxpool: identity), layer1  (B, w, 32, 32)
2      layer2                                      (B, 2w, 16, 16)
3      layer3                                      (B, 4w, 8, 8)
4      layer4                                      (B, 8w, 4, 4)
====== ========================================== ====================
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

ARCHITECTURES = {"resnet18": (BasicBlock, (2, 2, 2, 2)), "resnet50": (Bottleneck, (3, 4, 6, 3))}


def _cifar_stem(model: nn.Module) -> nn.Module:
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def cifar_resnet18(num_classes: int = 1000) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem, built from torchvision alone::

        model = torchvision.models.resnet18(num_classes=num_classes)
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()

    It loads a state dict written by :func:`liouna_snn.export.export_torchvision_resnet` with
    ``strict=True`` (``nn.Identity`` has no parameters, so the keys are torchvision's own).
    """
    import torchvision
    return _cifar_stem(torchvision.models.resnet18(num_classes=num_classes))


def cifar_resnet50(num_classes: int = 1000) -> nn.Module:
    """torchvision's ResNet-50 with the CIFAR stem (same recipe as :func:`cifar_resnet18`)."""
    import torchvision
    return _cifar_stem(torchvision.models.resnet50(num_classes=num_classes))


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without ``fc``, with the CIFAR stem, run stage by stage.

    Args:
        arch: ``"resnet18"`` or ``"resnet50"``.
        width: channels of stage 1's blocks (``planes``); 64 is torchvision's (and the only width
            that exports to a torchvision state dict); smaller widths are for tests and quick runs.
        zero_init_residual: torchvision's option: the last BN of every residual branch starts at 0.

    ``forward(x, depth)`` returns stage ``depth``'s output (1-based; default 4), ``(B, C, H, W)``;
    ``stage(i, h)`` runs stage ``i`` alone on ``h`` (the output of stage ``i - 1``, or the image).
    """

    def __init__(self, arch: str = "resnet18", width: int = 64, zero_init_residual: bool = False):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        block, counts = ARCHITECTURES[arch]
        self.arch, self.width = arch, width
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self._inplanes = width
        self.layer1 = self._make_layer(block, width, counts[0], 1)
        self.layer2 = self._make_layer(block, 2 * width, counts[1], 2)
        self.layer3 = self._make_layer(block, 4 * width, counts[2], 2)
        self.layer4 = self._make_layer(block, 8 * width, counts[3], 2)
        self.stage_channels = [m * width * block.expansion for m in (1, 2, 4, 8)]
        for m in self.modules():   # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self._inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self._inplanes, planes, stride, downsample)]
        self._inplanes = planes * block.expansion
        layers += [block(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def __len__(self) -> int:
        return 4

    def stage_modules(self, i: int) -> list[nn.Module]:
        """The modules of stage ``i`` (1-based), in order."""
        if i == 1:
            return [self.conv1, self.bn1, self.relu, self.maxpool, self.layer1]
        if i in (2, 3, 4):
            return [getattr(self, f"layer{i}")]
        raise ValueError(f"stage must be in 1..4, got {i}")

    def stage_parameters(self, i: int) -> list[nn.Parameter]:
        """The parameters of stage ``i`` (1-based)."""
        return [p for m in self.stage_modules(i) for p in m.parameters()]

    def stage(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Stage ``i`` (1-based) applied to ``h``."""
        for m in self.stage_modules(i):
            h = m(h)
        return h

    def forward(self, x: torch.Tensor, depth: int = 4) -> torch.Tensor:
        if not 1 <= depth <= 4:
            raise ValueError(f"depth must be in 1..4, got {depth}")
        h = x
        for i in range(1, depth + 1):
            h = self.stage(i, h)
        return h


class StageHead(nn.Module):
    """A stage's head: 1x1 conv to ``out_channels`` -> BN -> ReLU -> global average pool.

    ``(B, C, H, W) -> (B, out_channels)`` (Siddiqui et al. 2023; 2048 channels for ResNet-50).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(h))).mean(dim=(2, 3))


class Projector(nn.Sequential):
    """The SSL projector MLP: ``(Linear -> BN -> ReLU) x (len(dims) - 1)`` then ``Linear``.

    ``dims = (hidden, ..., output)``; ``(B, in_features) -> (B, dims[-1])``. Barlow Twins uses
    8192-8192-8192 on ImageNet, 2048-2048-2048 on CIFAR (solo-learn); SimCLR 2048-128/256.
    """

    def __init__(self, in_features: int, dims: tuple[int, ...]):
        if not dims or min(dims) < 1:
            raise ValueError(f"projector dims must be a non-empty list of positive sizes, got {dims}")
        layers, width = [], in_features
        for d in dims[:-1]:
            layers += [nn.Linear(width, d, bias=False), nn.BatchNorm1d(d), nn.ReLU(inplace=True)]
            width = d
        layers.append(nn.Linear(width, dims[-1], bias=False))
        super().__init__(*layers)
