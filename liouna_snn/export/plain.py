"""Export a trained rate-mode :class:`~liouna_snn.network.LocalNetwork` to a plain PyTorch CNN.

:func:`export_plain` writes three files into a folder:

``model.safetensors``
    every tensor the plain model needs: the synaptic weights (``layer<i>.conv.weight``,
    ``layer<i>.linear.weight``) and each batch-norm's ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` (``layer<i>.norm.*``). Floating tensors in float32; the names are the
    ``state_dict`` keys of the loaded model.
``architecture.json``
    format name and version, the input (shape, and the per-channel ``mean``/``std`` of the
    standardisation used in training, when known), and per layer the modules in order, each with
    its ``name`` inside the layer and its ``type`` and options, e.g.
    ``{"name": "norm", "type": "batchnorm2d", "features": 3, "eps": 1e-05, "momentum": 0.1,
    "affine": false}``, ``{"name": "pad", "type": "pad", "padding": 2, "mode": "reflect"}``,
    ``{"name": "conv", "type": "conv2d", "in": 3, "out": 96, "kernel": [5, 5], "stride": 1}``,
    ``{"name": "activation", "type": "triangle", "power": 0.7}``, ``{"name": "pool", "type":
    "maxpool2d", "kernel": 4, "stride": 2, "padding": 1, ...}``, ``{"name": "flatten", "type":
    "flatten"}``, ``{"name": "linear", "type": "linear", "in": 512, "out": 10}``.
``load_model.py``
    a copy of :mod:`liouna_snn.export.standalone`: ``load_plain(folder)`` rebuilds the model from
    standard ``torch.nn`` modules with only torch and safetensors installed.

The plain model computes in float32 with the batch-norms' running statistics, i.e. it equals
``network.eval()`` built with ``compute_dtype=None``; a network trained with bfloat16 convolutions
gives outputs within bfloat16 rounding of it. Spiking layers, and modules the format has no entry for,
raise a ``ValueError`` naming the layer.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..layers import PlasticConv2d, PlasticLinear
from ..neurons.rate import Triangle
from ..training.checkpoint import write_atomic

FORMAT = "liouna-snn-plain"
FORMAT_VERSION = 1
ARCHITECTURE_FILE = "architecture.json"
WEIGHTS_FILE = "model.safetensors"
LOADER_FILE = "load_model.py"

_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
SUPPORTED = ("norm: BatchNorm1d/BatchNorm2d with running statistics, or none; activation: Triangle, ReLU, Tanh, "
             "Sigmoid, Identity; pool: MaxPool2d, AvgPool2d, or none; rate mode only")


def _json_size(value):
    return list(value) if isinstance(value, tuple) else value


class _Layer:
    """Collects one layer's module descriptions and tensors under ``layer<i>.<name>.*``."""

    def __init__(self, index: int, layer: nn.Module):
        self.index, self.layer = index, layer
        self.modules: list[dict] = []
        self.tensors: dict[str, torch.Tensor] = {}

    def unsupported(self, role: str, module: nn.Module) -> ValueError:
        return ValueError(f"layer {self.index} ({type(self.layer).__name__}): cannot export its {role} "
                          f"{module!r} to a plain CNN; supported: {SUPPORTED}")

    def add(self, name: str, kind: str, tensors: dict[str, torch.Tensor] | None = None, **options) -> None:
        self.modules.append({"name": name, "type": kind, **options})
        for key, t in (tensors or {}).items():
            t = t.detach().cpu()
            self.tensors[f"layer{self.index}.{name}.{key}"] = (t.to(torch.float32) if t.is_floating_point() else t).contiguous()

    def norm(self, norm: nn.Module, kind: str) -> None:
        if type(norm) is nn.Identity:
            return
        if type(norm) is not {"batchnorm2d": nn.BatchNorm2d, "batchnorm1d": nn.BatchNorm1d}[kind]:
            raise self.unsupported("input normalisation", norm)
        if not norm.track_running_stats or norm.running_mean is None:
            raise ValueError(f"layer {self.index} ({type(self.layer).__name__}): its batch-norm keeps no running "
                             f"statistics, so it has no fixed eval-mode map to export")
        tensors = {"running_mean": norm.running_mean, "running_var": norm.running_var,
                   "num_batches_tracked": norm.num_batches_tracked}
        if norm.affine:
            tensors |= {"weight": norm.weight, "bias": norm.bias}
        self.add("norm", kind, tensors, features=norm.num_features, eps=norm.eps, momentum=norm.momentum,
                 affine=norm.affine)

    def activation(self, act: nn.Module) -> None:
        if type(act) is nn.Identity:
            return
        if type(act) is Triangle:
            self.add("activation", "triangle", power=act.power)
        elif type(act) in _ACTIVATIONS:
            self.add("activation", _ACTIVATIONS[type(act)])
        else:
            raise self.unsupported("activation", act)

    def pool(self, pool: nn.Module) -> None:
        if type(pool) is nn.Identity:
            return
        if not (type(pool) is nn.MaxPool2d and not pool.return_indices or type(pool) is nn.AvgPool2d):
            raise self.unsupported("pooling", pool)
        common = dict(kernel=_json_size(pool.kernel_size), stride=_json_size(pool.stride),
                      padding=_json_size(pool.padding), ceil_mode=pool.ceil_mode)
        if type(pool) is nn.MaxPool2d:
            self.add("pool", "maxpool2d", **common, dilation=_json_size(pool.dilation))
        else:
            self.add("pool", "avgpool2d", **common, count_include_pad=pool.count_include_pad,
                     divisor_override=pool.divisor_override)


def _json_text(obj, indent: int = 0, width: int = 130) -> str:
    """JSON with every container that fits in ``width`` columns on one line (a module per line)."""
    flat = json.dumps(obj)
    if not isinstance(obj, (dict, list)) or indent + len(flat) <= width:
        return flat
    pad = " " * (indent + 2)
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k)}: {_json_text(v, indent + 2, width)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + _json_text(v, indent + 2, width) for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def _input_shape(network, input_shape) -> tuple[int, ...] | None:
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    spec = getattr(network, "spec", None) or {}
    if "input_channels" in spec and "input_size" in spec:
        return (spec["input_channels"], spec["input_size"], spec["input_size"])
    return None


def describe(network: nn.Module, *, input_shape: tuple[int, ...] | None = None,
             input_mean=None, input_std=None) -> tuple[dict, dict[str, torch.Tensor]]:
    """The ``architecture.json`` content and the tensors of ``network``'s plain export (nothing written).

    See :func:`export_plain` for the arguments; raises the same errors.
    """
    layers = list(getattr(network, "layers", []))
    if not layers:
        raise ValueError(f"nothing to export: {type(network).__name__} has no layers")
    first_shape = shape = _input_shape(network, input_shape)
    rank = len(shape) + 1 if shape is not None else 4  # with the batch dim; a spec's input is an image
    first_rank = rank
    described, tensors = [], {}
    for i, layer in enumerate(layers, start=1):
        if getattr(layer, "spiking", None) is not None:
            neuron, steps = getattr(layer.spiking, "neuron", "?"), getattr(layer.spiking, "time_steps", "?")
            raise ValueError(f"layer {i} ({type(layer).__name__}): runs in spiking mode (neuron {neuron!r}, "
                             f"T = {steps}); only rate-mode networks export to a plain CNN")
        out = _Layer(i, layer)
        if type(layer) is PlasticConv2d:
            if rank != 4:
                raise ValueError(f"layer {i} (PlasticConv2d): needs a (B, C, H, W) input, but its input has rank {rank}")
            g = layer.geometry
            k, c = layer.weight.shape[:2]
            if shape is not None and shape[0] != c:
                raise ValueError(f"layer {i} (PlasticConv2d): takes {c} input channels, but its input has shape {shape}")
            out.norm(layer.norm, "batchnorm2d")
            if g.padding:
                out.add("pad", "pad", padding=g.padding, mode=g.padding_mode)
            out.add("conv", "conv2d", {"weight": layer.weight}, **{"in": c}, out=k,
                    kernel=list(layer.weight.shape[-2:]), stride=g.stride)
            out.activation(layer.activation)
            out.pool(layer.pool)
            if shape is not None:
                try:
                    shape = layer.output_shape(tuple(shape[1:]))
                except (ValueError, RuntimeError) as err:
                    raise ValueError(f"layer {i} (PlasticConv2d): impossible for its input shape {shape}: {err}") from None
        elif type(layer) is PlasticLinear:
            d, k = layer.weight.shape[1], layer.weight.shape[0]
            if rank > 2:
                out.add("flatten", "flatten")
            if shape is not None and math.prod(shape) != d:
                raise ValueError(f"layer {i} (PlasticLinear): takes {d} features, but its input has shape {shape}")
            out.norm(layer.norm, "batchnorm1d")
            out.add("linear", "linear", {"weight": layer.weight}, **{"in": d}, out=k)
            out.activation(layer.activation)
            if type(layer.pool) is not nn.Identity:
                raise out.unsupported("pooling", layer.pool)
            shape, rank = (k,), 2
        else:
            raise ValueError(f"layer {i}: cannot export a {type(layer).__name__} to a plain CNN; "
                             f"supported layers: PlasticConv2d, PlasticLinear")
        described.append({"layer": i, "kind": type(layer).__name__, "modules": out.modules,
                          "output_shape": list(shape) if shape is not None else None})
        tensors |= out.tensors

    def stats(v):
        return None if v is None else [float(s) for s in torch.as_tensor(v).flatten()]

    spec = getattr(network, "spec", None) or {}
    architecture = {
        "format": FORMAT, "version": FORMAT_VERSION, "name": spec.get("name"),
        "exported_by": f"liouna_snn {__version__}", "dtype": "float32",
        "input": {"shape": list(first_shape) if first_shape is not None else None,
                  "layout": "(batch, channels, height, width)" if first_rank == 4 else "(batch, features)",
                  "mean": stats(input_mean), "std": stats(input_std),
                  "standardization": "x = (pixels / 255 - mean) / std per channel" if input_mean is not None else None},
        "layers": described,
    }
    return architecture, tensors


def export_plain(network: nn.Module, directory: str | Path, *, input_shape: tuple[int, ...] | None = None,
                 input_mean=None, input_std=None) -> Path:
    """Write ``network`` as a plain CNN into ``directory``; returns the folder.

    Writes ``model.safetensors``, ``architecture.json`` and ``load_model.py`` (see the module
    docstring), each atomically. The batch-norms are exported with their running statistics, as
    ``network.eval()`` uses them; load with ``load_plain(directory)`` from ``load_model.py`` (or
    :func:`liouna_snn.export.load_plain`).

    Args:
        network: a rate-mode :class:`~liouna_snn.network.LocalNetwork` (any device, any mode).
        directory: the export folder (created if missing; files in it are replaced).
        input_shape: ``(C, H, W)`` of one input; default: from ``network.spec`` (``input_channels``,
            ``input_size``). Used to check the geometry and to record each layer's output shape.
        input_mean, input_std: ``(C,)`` per-channel statistics (in [0, 1] pixel units) of the
            standardisation the network was trained with; recorded so ``standardize`` can apply them.

    Raises:
        ValueError: naming the layer and the module, for a spiking layer, a module the format cannot
            represent (an unknown activation, pool, norm or layer class), or an impossible input shape.
    """
    if (input_mean is None) != (input_std is None):
        raise ValueError("give both input_mean and input_std, or neither")
    architecture, tensors = describe(network, input_shape=input_shape, input_mean=input_mean, input_std=input_std)
    from safetensors.torch import save

    directory = Path(directory)
    blob = save(tensors, metadata={"format": "pt", "liouna_snn_format": f"{FORMAT} {FORMAT_VERSION}"})
    write_atomic(directory / WEIGHTS_FILE, lambda f: f.write(blob))
    write_atomic(directory / ARCHITECTURE_FILE, lambda f: f.write((_json_text(architecture) + "\n").encode()))
    loader = (Path(__file__).parent / "standalone.py").read_bytes()
    write_atomic(directory / LOADER_FILE, lambda f: f.write(loader))
    return directory
