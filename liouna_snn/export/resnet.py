"""A trained :class:`~liouna_snn.blockwise.resnet.ResNetBackbone` as a torchvision ResNet state dict.

The file loads with ``strict=True`` into torchvision's ResNet with the CIFAR stem, i.e.
:func:`liouna_snn.blockwise.cifar_resnet18` (``cifar_resnet50`` for ResNet-50), which uses only
torchvision::

    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = torch.nn.Identity()
    model.load_state_dict(torch.load("resnet18.pt"), strict=True)

The backbone's parameter and buffer names are torchvision's, so the state dict is the backbone's own
plus ``fc.weight``/``fc.bias``: a given linear head (e.g. a trained classifier on the pooled last
stage), else zeros of shape ``(num_classes, features)`` (no classifier was trained; replace it).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

TORCHVISION_WIDTH = 64


def torchvision_resnet_state_dict(backbone: nn.Module, head: nn.Linear | None = None,
                                  num_classes: int = 1000) -> dict[str, torch.Tensor]:
    """The state dict (float32, CPU tensors) that torchvision's CIFAR-stem ResNet loads strictly."""
    from ..blockwise.resnet import ResNetBackbone
    if not isinstance(backbone, ResNetBackbone):
        raise TypeError(f"expected a ResNetBackbone, got {type(backbone).__name__}")
    if backbone.width != TORCHVISION_WIDTH:
        raise ValueError(f"only width {TORCHVISION_WIDTH} backbones match torchvision's ResNet; this one has width "
                         f"{backbone.width}")
    features = backbone.stage_channels[-1]
    state = {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items()}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    if head is not None:
        if head.in_features != features:
            raise ValueError(f"head takes {head.in_features} features but the backbone's last stage gives {features} "
                             f"(a head on globally average-pooled features is needed)")
        state["fc.weight"] = head.weight.detach().float().cpu().clone()
        state["fc.bias"] = (head.bias.detach().float().cpu().clone() if head.bias is not None
                            else torch.zeros(head.out_features))
    else:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        state["fc.weight"] = torch.zeros(num_classes, features)
        state["fc.bias"] = torch.zeros(num_classes)
    return state


def export_torchvision_resnet(backbone: nn.Module, path: str | Path, head: nn.Linear | None = None,
                              num_classes: int = 1000) -> Path:
    """Write :func:`torchvision_resnet_state_dict` to ``path`` (``torch.save``; ``.safetensors``: safetensors), atomically."""
    from ..training import write_atomic
    path = Path(path)
    state = torchvision_resnet_state_dict(backbone, head, num_classes)
    if path.suffix == ".safetensors":
        from safetensors.torch import save
        write_atomic(path, lambda f: f.write(save({k: v.contiguous() for k, v in state.items()})))
    else:
        write_atomic(path, lambda f: torch.save(state, f))
    return path
