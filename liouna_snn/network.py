"""Networks of plastic layers, built from declarative specs (``models/*.toml``).

A spec names the input and a list of layers::

    name = "cifar10-3layer"
    input_channels = 3
    input_size = 32

    [[layers]]
    type = "conv"                 # or "linear" (flattens its input)
    out_channels = 96
    kernel_size = 5
    padding = 2
    padding_mode = "reflect"      # zeros | reflect | replicate | circular
    norm = "batch"                # affine-free batch-norm of the input: batch | running | none (or true/false)
    activation = { name = "triangle", power = 0.7 }
    pool = { type = "max", kernel_size = 4, stride = 2, padding = 1 }

Any rule runs on any spec: :func:`build_network` takes one :class:`RuleConfig` per layer, and an
optional :class:`liouna_snn.spiking.SpikingConfig` that runs the same spec with spiking neurons.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from .config import read_toml, reject_unknown, require
from .layers import PlasticConv2d, PlasticLayer, PlasticLinear
from .neurons import make_activation
from .rules import RuleConfig
from .spiking import SpikingConfig

SPEC_KEYS = {"name", "input_channels", "input_size", "layers", "description"}
LAYER_KEYS = {"type", "out_channels", "kernel_size", "stride", "padding", "padding_mode", "norm", "activation", "pool"}
POOL_KEYS = {"type", "kernel_size", "stride", "padding"}
POOLS = ("max", "avg")


def load_spec(path: str | Path) -> dict:
    """Read and validate a model spec from a TOML file."""
    spec = read_toml(path, "model spec")
    validate_spec(spec, str(path))
    return spec


def validate_spec(spec: dict, where: str = "model spec") -> None:
    """Raise a ``ValueError`` naming the key if ``spec`` has unknown or missing entries."""
    reject_unknown(spec, SPEC_KEYS, where)
    require(spec, ("input_channels", "input_size", "layers"), where)
    if not spec["layers"]:
        raise ValueError(f"{where}: 'layers' is empty")
    for i, layer in enumerate(spec["layers"], start=1):
        here = f"{where}, layer {i}"
        reject_unknown(layer, LAYER_KEYS, here)
        if layer.get("type", "conv") not in ("conv", "linear"):
            raise ValueError(f"{here}: type {layer.get('type')!r} not allowed; choose 'conv' or 'linear'")
        require(layer, ("out_channels",), here)
        pool = layer.get("pool")
        if pool is not None:
            reject_unknown(pool, POOL_KEYS, here + " pool")
            if pool.get("type") not in POOLS:
                raise ValueError(f"{here}: pool type {pool.get('type')!r} not allowed; choose one of {', '.join(POOLS)}")


def _make_pool(pool: dict | None) -> nn.Module | None:
    if pool is None:
        return None
    cls = nn.MaxPool2d if pool["type"] == "max" else nn.AvgPool2d
    k = pool.get("kernel_size", 2)
    return cls(k, stride=pool.get("stride", k), padding=pool.get("padding", 0))


def _make_activation(act) -> nn.Module:
    if act is None:
        return nn.Identity()
    if isinstance(act, str):
        return make_activation(act)
    params = {k: v for k, v in act.items() if k != "name"}
    return make_activation(act["name"], **params)


class LocalNetwork(nn.Module):
    """A stack of plastic layers; nothing flows down between them.

    ``forward(x, depth)`` returns the output of layer ``depth`` (1-based; default: the last).
    """

    def __init__(self, layers: list[PlasticLayer], spec: dict | None = None, init_seed: int | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.spec = spec or {}
        self.init_seed = init_seed  # the seed of the initial weights (build_network's), None if unknown

    @property
    def spiking(self) -> SpikingConfig | None:
        """The spiking config of the first layer (``None`` in rate mode)."""
        return self.layers[0].spiking if len(self.layers) else None

    def __len__(self) -> int:
        return len(self.layers)

    def _layer_input(self, i: int, h: torch.Tensor) -> torch.Tensor:
        return h.flatten(1) if isinstance(self.layers[i], PlasticLinear) and h.dim() > 2 else h

    def forward(self, x: torch.Tensor, depth: int | None = None, start: int = 0) -> torch.Tensor:
        """The output of layer ``depth`` (1-based; default: the last) for ``x``, the output of layer ``start``
        (0, the default: ``x`` is the network's input), so a caller holding layer k's outputs runs only
        layers k+1..depth."""
        depth = len(self.layers) if depth is None else depth
        if not 1 <= depth <= len(self.layers):
            raise ValueError(f"depth must be in 1..{len(self.layers)}, got {depth}")
        if not 0 <= start < depth:
            raise ValueError(f"start must be in 0..{depth - 1} (below depth {depth}), got {start}")
        h = x
        for i in range(start, depth):
            h = self.layers[i](self._layer_input(i, h))
        return h

    def compile_neurons(self, enabled: bool = True) -> "LocalNetwork":
        """Run every layer's spiking neurons through ``torch.compile`` (``enabled=False``: back to the eager
        step); returns the network. Where only spike counts are needed (inference, rate-based plasticity) the
        whole ``T``-step loop is one compiled graph (:func:`liouna_snn.neurons.compiled_counts`), else each step
        is (:func:`liouna_snn.neurons.compiled_step`). The same spikes, faster, most for the snnTorch and Norse
        backends; it needs a C++ compiler on CPU. Not part of :meth:`identity`:
        a checkpoint resumes either way. Raises a ``ValueError`` for a rate-mode network, which has no neurons
        to compile."""
        if not isinstance(enabled, bool):
            raise TypeError(f"compile_neurons: enabled must be True or False, got {enabled!r}")
        rate = [i for i, layer in enumerate(self.layers, start=1) if layer.spiking is None]
        if rate:
            raise ValueError(f"compile_neurons: layer(s) {rate} run in rate mode and have no spiking neuron; "
                             "build the network with a SpikingConfig (or use with_spiking) first")
        for layer in self.layers:
            layer.compile_neuron = enabled
        return self

    def compile_layers(self, enabled: bool = True) -> "LocalNetwork":
        """Run every rate-mode layer's forward pass and learning step through ``torch.compile``
        (``enabled=False``: back to eager); returns the network.

        The compiler fuses the element-wise work around the convolutions and matrix products (batch-norm, the
        activation, pooling, the rule's factors, the update's scaling and step sizes) into a few loops, which
        matters most where those passes over weight-sized tensors cost as much as the products, on a CPU
        (``experiments/speed.py --modes eager compiled`` measures it). Values agree with the eager step to rounding (a fused loop may contract a multiply-add or
        sum in another order), not bit for bit. Compiling takes tens of seconds per layer at the first call; on
        CPU it needs a C++ compiler (on GPU, Triton). Spiking layers keep their own switch
        (:meth:`compile_neurons`); the ``energy`` form and data-parallel replicas learn eagerly. Not part of
        :meth:`identity`: a checkpoint resumes either way."""
        if not isinstance(enabled, bool):
            raise TypeError(f"compile_layers: enabled must be True or False, got {enabled!r}")
        if enabled:
            # one graph per layer shape, option set and output flag: more than dynamo's default of 8 per function
            # for a deep network, after which it would silently fall back to eager
            dynamo = torch._dynamo.config
            dynamo.recompile_limit = max(dynamo.recompile_limit, 64)
        for layer in self.layers:
            layer.compile_step = enabled and layer.spiking is None
        return self

    def learn_layer(self, i: int, h: torch.Tensor, progress: float, generator: torch.Generator | None = None,
                    output: bool = True):
        """Let layer ``i`` (0-based) learn from its input ``h``; returns its detached output (``None``
        without ``output``: see :meth:`PlasticLayer.learn`)."""
        return self.layers[i].learn(self._layer_input(i, h), progress, generator, output=output)

    def identity(self) -> dict:
        """What makes a trained state belong to this network: the seed of its initial weights and each layer's
        weight shape, stride, padding, normalisation, activation, pooling, compute dtype, rule options and spiking
        config (plain values; a checkpoint compares it on resume)."""
        return {"init_seed": self.init_seed,
                "layers": [{"weight": list(layer.weight.shape), "stride": layer.geometry.stride,
                            "padding": layer.geometry.padding, "padding_mode": layer.geometry.padding_mode,
                            "norm": layer.norm_kind,
                            "activation": repr(layer.activation), "pool": repr(layer.pool),
                            "compute_dtype": str(layer.compute_dtype),
                            "rule": dataclasses.asdict(layer.rule.config),
                            "spiking": None if layer.spiking is None else dataclasses.asdict(layer.spiking)}
                           for layer in self.layers]}

    def with_spiking(self, spiking: SpikingConfig | None) -> "LocalNetwork":
        """A copy of this network whose layers run the neurons of ``spiking`` (``None``: the rate activations
        of the spec), with the same weights, batch-norm statistics, rules, compute dtype and init seed.

        This reads a rate-trained network out with spiking neurons (or a spiking-trained one in rate mode).
        The copy lives on this network's device. Its normalisation statistics are this network's (a current
        gain only when both normalise the current, else it starts at 1); in a new mode the activity reaching the
        deeper layers changes, so recalibrate them (:func:`liouna_snn.training.recalibrate_norms`) before
        reading out. Needs the network's ``spec`` (as :func:`build_network` records it).
        """
        if not self.spec.get("layers"):
            raise ValueError("with_spiking needs the network's model spec (build it with build_network)")
        copy = build_network(self.spec, [layer.rule.config for layer in self.layers], seed=self.init_seed or 0,
                             compute_dtype=self.layers[0].compute_dtype, spiking=spiking)
        copy.init_seed = self.init_seed
        # The state both modes have (weights, batch-norm statistics, win counts; the current gain when both
        # normalise the current) is copied; spike counts start from zero.
        mode_only = ("spike_counts_", "unit_steps_", "current_scale.")
        wanted = copy.state_dict()
        state = {k: v for k, v in self.state_dict().items()
                 if k in wanted and not k.split(".", 2)[-1].startswith(mode_only[:2])}
        missing, _ = copy.load_state_dict(state, strict=False)
        left = [k for k in missing if not k.split(".", 2)[-1].startswith(mode_only)]
        if left:
            raise ValueError(f"with_spiking: the copy's state does not match this network's (missing {left})")
        return copy.to(self.layers[0].weight.device).train(self.training)

    def feature_shapes(self) -> list[tuple[int, ...]]:
        """Shape of each layer's output (after pooling) for the spec's input size."""
        size = self.spec.get("input_size", 32)
        hw, shapes = (size, size), []
        for layer in self.layers:
            shape = layer.output_shape(hw)
            shapes.append(shape)
            hw = shape[1:] if len(shape) == 3 else None
        return shapes


def build_network(spec: dict, rules: RuleConfig | list[RuleConfig], *, seed: int = 0,
                  compute_dtype: torch.dtype | None = None, spiking: SpikingConfig | None = None) -> LocalNetwork:
    """Build the network of ``spec`` with one rule per layer (or one rule for all).

    Weights are drawn from a generator seeded with ``seed`` (layer by layer), so a seed fixes them.
    With ``spiking``, every layer runs that spiking neuron for ``T`` steps in place of its activation
    (same weights for the same seed). Raises a ``ValueError`` naming the layer if the geometry is
    impossible for the input size.
    """
    validate_spec(spec)
    n = len(spec["layers"])
    rules = [rules] * n if isinstance(rules, RuleConfig) else list(rules)
    if len(rules) != n:
        raise ValueError(f"got {len(rules)} rule configs for {n} layers")
    gen = torch.Generator().manual_seed(seed)
    channels, hw = spec["input_channels"], (spec["input_size"], spec["input_size"])
    layers: list[PlasticLayer] = []
    for i, (ls, rule) in enumerate(zip(spec["layers"], rules), start=1):
        if ls.get("type", "conv") == "conv":
            if hw is None:
                raise ValueError(f"layer {i}: a conv layer cannot follow a linear layer")
            layer = PlasticConv2d(channels, ls["out_channels"], ls.get("kernel_size", 3), stride=ls.get("stride", 1),
                                  padding=ls.get("padding", 0), padding_mode=ls.get("padding_mode", "zeros"),
                                  norm=ls.get("norm", True), activation=_make_activation(ls.get("activation")),
                                  pool=_make_pool(ls.get("pool")), rule=rule, compute_dtype=compute_dtype,
                                  generator=gen, spiking=spiking)
            try:
                shape = layer.output_shape(hw)
            except (ValueError, RuntimeError) as err:
                raise ValueError(f"layer {i}: impossible geometry for a {channels}x{hw[0]}x{hw[1]} input: {err}") from None
            if min(shape[1:]) < 1:
                raise ValueError(f"layer {i}: output would be empty for a {channels}x{hw[0]}x{hw[1]} input")
            channels, hw = shape[0], shape[1:]
        else:
            in_features = channels * (hw[0] * hw[1] if hw else 1)
            layer = PlasticLinear(in_features, ls["out_channels"], norm=ls.get("norm", True),
                                  activation=_make_activation(ls.get("activation")), rule=rule,
                                  compute_dtype=compute_dtype, generator=gen, spiking=spiking)
            channels, hw = ls["out_channels"], None
        layers.append(layer)
    return LocalNetwork(layers, spec, init_seed=seed)
