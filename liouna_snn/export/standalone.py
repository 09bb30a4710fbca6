"""Load a network exported by ``liouna_snn.export.export_plain`` as a plain ``torch.nn`` CNN.

This file needs only torch, safetensors and the standard library: ``export_plain`` copies it into every
export folder as ``load_model.py``, next to ``architecture.json`` and ``model.safetensors``::

    from load_model import load_plain, features, standardize

    model = load_plain("path/to/export")      # nn.Sequential of per-layer nn.Sequentials, in eval mode
    x = standardize(model, images)            # uint8 (B, C, H, W) pixels, or floats in [0, 1]
    y = model(x)                              # the last layer's output
    h2 = features(model, x, depth=2)          # layer 2's output, the same as model[:2](x)

Every layer is an ``nn.Sequential`` of standard modules named after their role (``norm``: an
affine-free ``BatchNorm2d``/``BatchNorm1d`` with the running statistics, ``pad``, ``conv``/``linear``
without bias, ``activation``, ``pool``, ``flatten``), so ``model.layer1.conv.weight`` is layer 1's
weight. The only non-standard module is :class:`Triangle`. ``model.architecture`` holds the parsed
``architecture.json``. Run ``python load_model.py FOLDER`` to print the model.
"""
from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

FORMAT = "liouna-snn-plain"
SUPPORTED_VERSIONS = (1,)
ARCHITECTURE_FILE = "architecture.json"
WEIGHTS_FILE = "model.safetensors"


class Triangle(nn.Module):
    """``y = relu(u - mean_k u) ** power``: each unit's drive above the mean over units (dim 1) at its position."""

    def __init__(self, power: float = 1.0):
        super().__init__()
        if power <= 0:
            raise ValueError(f"triangle power must be > 0, got {power}")
        self.power = float(power)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        y = torch.relu(u - u.mean(dim=1, keepdim=True))
        return y if self.power == 1.0 else y.pow(self.power)

    def extra_repr(self) -> str:
        return f"power={self.power}"


def _size(value):
    """JSON lists back to the tuples ``torch.nn`` takes for per-axis sizes."""
    return tuple(value) if isinstance(value, list) else value


_PADS = {"zeros": nn.ZeroPad2d, "reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d,
         "circular": getattr(nn, "CircularPad2d", None)}
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "identity": nn.Identity}


def build_module(desc: dict) -> nn.Module:
    """One ``torch.nn`` module from its ``architecture.json`` entry (weights not loaded)."""
    kind = desc.get("type")
    if kind in ("batchnorm1d", "batchnorm2d"):
        cls = nn.BatchNorm2d if kind == "batchnorm2d" else nn.BatchNorm1d
        return cls(desc["features"], eps=desc["eps"], momentum=desc.get("momentum", 0.1), affine=desc["affine"])
    if kind == "pad":
        cls = _PADS.get(desc["mode"])
        if cls is None:
            raise ValueError(f"padding mode {desc['mode']!r} is not supported by this torch ({torch.__version__})")
        return cls(desc["padding"])
    if kind == "conv2d":
        return nn.Conv2d(desc["in"], desc["out"], _size(desc["kernel"]), stride=_size(desc["stride"]), padding=0,
                         bias=False)
    if kind == "linear":
        return nn.Linear(desc["in"], desc["out"], bias=False)
    if kind == "flatten":
        return nn.Flatten(start_dim=1)
    if kind == "triangle":
        return Triangle(desc["power"])
    if kind in _ACTIVATIONS:
        return _ACTIVATIONS[kind]()
    if kind == "maxpool2d":
        return nn.MaxPool2d(_size(desc["kernel"]), stride=_size(desc["stride"]), padding=_size(desc["padding"]),
                            dilation=_size(desc.get("dilation", 1)), ceil_mode=desc.get("ceil_mode", False))
    if kind == "avgpool2d":
        return nn.AvgPool2d(_size(desc["kernel"]), stride=_size(desc["stride"]), padding=_size(desc["padding"]),
                            ceil_mode=desc.get("ceil_mode", False),
                            count_include_pad=desc.get("count_include_pad", True),
                            divisor_override=desc.get("divisor_override"))
    raise ValueError(f"unknown module type {kind!r} in {desc}; this loader reads format {FORMAT!r} "
                     f"version(s) {SUPPORTED_VERSIONS}")


def build_model(architecture: dict) -> nn.Sequential:
    """The model described by ``architecture`` (a parsed ``architecture.json``), with untrained weights."""
    if architecture.get("format") != FORMAT or architecture.get("version") not in SUPPORTED_VERSIONS:
        raise ValueError(f"not a {FORMAT!r} export of version {SUPPORTED_VERSIONS}: format "
                         f"{architecture.get('format')!r}, version {architecture.get('version')!r}")
    layers = OrderedDict()
    for i, layer in enumerate(architecture["layers"], start=1):
        layers[f"layer{i}"] = nn.Sequential(OrderedDict((m["name"], build_module(m)) for m in layer["modules"]))
    return nn.Sequential(layers)


def load_architecture(directory: str | Path) -> dict:
    """The parsed ``architecture.json`` of an export folder."""
    path = Path(directory) / ARCHITECTURE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected an export folder holding {ARCHITECTURE_FILE} and "
                                f"{WEIGHTS_FILE}")
    return json.loads(path.read_text())


def load_plain(directory: str | Path, *, device: str | torch.device = "cpu") -> nn.Sequential:
    """The exported network as an ``nn.Sequential`` of per-layer ``nn.Sequential``\\ s, in eval mode.

    ``model(x)`` is the last layer's output; ``model[:d](x)`` (or :func:`features`) is layer ``d``'s.
    Batch-norms use the running statistics recorded at export. ``x``: float32 ``(B, C, H, W)``,
    standardised as during training (see :func:`standardize`).
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    architecture = load_architecture(directory)
    model = build_model(architecture)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: the export folder is incomplete")
    tensors = load_file(str(weights))
    expected = set(model.state_dict())
    if set(tensors) != expected:
        raise ValueError(f"{weights} does not match {ARCHITECTURE_FILE}: missing "
                         f"{sorted(expected - set(tensors))}, unexpected {sorted(set(tensors) - expected)}")
    model.load_state_dict(tensors, strict=True)
    model.architecture = architecture
    return model.to(device).eval()


def features(model: nn.Sequential, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
    """Layer ``depth``'s output (1-based; default: the last layer), without gradients."""
    depth = len(model) if depth is None else depth
    if not 1 <= depth <= len(model):
        raise ValueError(f"depth must be in 1..{len(model)}, got {depth}")
    with torch.no_grad():
        return model[:depth](x)


def standardize(model: nn.Sequential, images: torch.Tensor) -> torch.Tensor:
    """Images as the network saw them in training: ``(pixels / 255 - mean) / std`` per channel.

    ``images``: uint8 ``(B, C, H, W)`` in 0..255, or floats already in [0, 1]. Raises if the export
    recorded no input statistics.
    """
    info = getattr(model, "architecture", {}).get("input", {})
    if info.get("mean") is None or info.get("std") is None:
        raise ValueError("this export records no input statistics (architecture.json: input.mean / input.std); "
                         "standardise the images as they were during training")
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = torch.tensor(info["mean"], dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(info["std"], dtype=x.dtype, device=x.device).view(shape)
    return (x - mean) / std


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python load_model.py EXPORT_FOLDER")
    loaded = load_plain(sys.argv[1])
    print(loaded)
    print("input:", json.dumps(loaded.architecture.get("input")))
