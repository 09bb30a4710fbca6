r"""Spiking networks to and from NIR, the Neuromorphic Intermediate Representation (``pip install nir``).

:func:`export_nir` turns a spiking :class:`~liouna_snn.network.LocalNetwork` into a ``nir.NIRGraph``
(write it with ``nir.write(path, graph)``); :func:`import_nir` rebuilds a ``LocalNetwork`` from such a
graph (or from a foreign one that uses the same node kinds). ``nir`` is imported only when called.

Nodes (shapes exclude the batch, as NIR's do), per layer ``i``, in order::

    layer<i>_flatten  nir.Flatten     (C, H, W) -> (C*H*W,), before a linear layer that follows a conv
    layer<i>_norm     the affine-free batch-norm in eval mode, y = a * x + b per channel with
                      a = 1 / sqrt(running_var + eps), b = -running_mean * a:
                      conv layers:   nir.Conv2d, 1x1, weight diag(a) (C, C, 1, 1), bias b
                      linear layers: nir.Affine, weight diag(a) (D, D), bias b
    layer<i>_conv     nir.Conv2d (K, C, k, k), stride, zero padding, bias 0      (or)
    layer<i>_linear   nir.Linear (K, D)
    layer<i>_neuron   nir.LIF (beta < 1) or nir.IF (beta = 1), one value per unit (K, H', W') / (K,)
    layer<i>_pool     nir.AvgPool2d (kernel, stride, padding)

The batch-norm is a node of its own, not folded into the convolution: folding is exact only without
padding (zero padding would then carry the shift ``b`` into the border), and a separate node keeps the
synaptic weights exactly as learned. Every node carries ``metadata`` with what NIR has no field for
(the batch-norm's running statistics and ``eps``, the library's neuron name and reset, the layer's
norm kind and the options its learning reads), so ``import_nir(export_nir(net))`` rebuilds the same network,
which also learns as the exported one did.

Neuron parameters (``dt``: the step length in seconds, default :data:`NIR_DT` = 1e-4 s, snnTorch's)
---------------------------------------------------------------------------------------------------
NIR's LIF is ``tau dv/dt = (v_leak - v) + r I``, spike when ``v > v_threshold``, then ``v <- v_reset``.
One forward-Euler step of ``dt`` is ``v <- (1 - dt/tau) v + (dt/tau) r I``; ours is ``v <- beta v + I``. So

============  ===========================================================
ours          NIR
============  ===========================================================
beta < 1      ``nir.LIF``: ``tau = dt / (1 - beta)``, ``r = tau / dt = 1 / (1 - beta)``, ``v_leak = 0``
beta = 1      ``nir.IF`` (``dv/dt = r I``): ``r = 1 / dt``
threshold     ``v_threshold``
v_reset       ``v_reset`` (0 for snnTorch's and the subtractive neurons)
============  ===========================================================

These are snnTorch's own conventions (``snntorch.export_to_nir`` writes ``tau = dt / (1 - beta)``,
``r = tau / dt`` with ``dt = 1e-4``), so ``snntorch.import_from_nir`` reads the same ``beta`` back.

Resets. NIR's LIF and IF reset *to* ``v_reset``. Neurons built with ``reset="zero"`` (``norse-lif``,
``norse-lifbox``, or ``native-lif`` / ``snntorch-leaky`` with ``reset = "zero"``) are exactly that neuron.
A subtractive reset (``v <- v - threshold``; the default of ``native-lif``, ``snntorch-leaky``, and
``integrate-and-fire`` always) has no NIR form: exporting it is an error unless
``approximate_subtractive_reset=True``, which writes NIR's reset-to-value neuron (a different neuron for
other tools: it forgets the excess above threshold) and records the true reset in the node's metadata, so
:func:`import_nir` still rebuilds the exact network.

What other tools compute from the graph
---------------------------------------
The graph is the time-stepped network: at every step the input (for the ``constant-current`` encoder: the
standardised image, the same at every step; for spike encoders: the input spikes) flows through all
layers, and each layer receives the *spikes* of the layer below at that step. This library's spiking mode
instead relays each layer's *firing rate* (count / T, after pooling) to the next layer as a constant input
(see :mod:`liouna_snn.spiking`). For the first layer the two are the same computation, so for a one-layer
network the graph's spike counts equal ours; deeper layers see the same mean input but not the same
per-step input, and their rates differ.

* ``snntorch.import_from_nir`` (snnTorch 1.0): LIF -> ``snn.Leaky(beta = 1 - dt/tau, reset "zero")`` with
  its fixed ``dt = 1e-4``; equals ours for ``reset="zero"`` (tested spike for spike). Its ``nir.IF`` importer
  builds a ``Leaky`` with ``beta = 0.9`` and rejects ``r != 1``, so IF graphs do not load correctly there.
* ``norse.torch.from_nir(graph, dt=...)`` (Norse 1.1): pass the export's ``dt``. LIF -> ``LIFBoxCell`` with
  ``tau_mem_inv = 1 / tau``, ``v_reset = 0``; it ignores ``r`` (logging a warning) and integrates
  ``v <- v + dt/tau (-v + i)``, i.e. ``r = 1``: its drive is ``1 - beta`` times NIR's. Multiplying each
  synapse feeding a neuron by ``r`` restores NIR's semantics (then its spikes equal ours; tested). Norse 1.1
  has no ``AvgPool2d`` importer (only ``SumPool2d``).
* Both importers build ``torch.nn.Flatten(start_dim, end_dim)`` from NIR's batch-free dims, so feed them
  unbatched samples ``(C, H, W)``.

Not representable, each an error naming the layer: rate-mode layers (use
:func:`~liouna_snn.export.export_plain`), max pooling (NIR has no max-pooling node; use ``avg`` pooling),
padding modes other than ``zeros`` (NIR's convolution pads with zeros and NIR has no padding node),
batch-norms without running statistics or with an affine part, and any other layer or module type.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..layers import PlasticConv2d, PlasticLayer, PlasticLinear
from ..neurons import IntegrateAndFire, NativeLIF, NorseLIF, NorseLIFBox, SnnTorchLeaky
from ..rules import RuleConfig

NIR_DT = 1e-4
"""Default step length (s) of the export: snnTorch's fixed ``dt``, so its importer reads our ``beta`` back."""

FORMAT = "liouna-snn-nir"
FORMAT_VERSION = 1
_NEURON_NAMES = {NativeLIF: "native-lif", IntegrateAndFire: "integrate-and-fire", SnnTorchLeaky: "snntorch-leaky",
                 NorseLIF: "norse-lif", NorseLIFBox: "norse-lifbox"}
SUPPORTED = ("spiking PlasticConv2d / PlasticLinear layers; norm: affine-free batch-norm with running statistics, "
             "or none; padding mode 'zeros'; pool: AvgPool2d (ceil_mode off) or none; neurons: "
             + ", ".join(_NEURON_NAMES.values()))


def _nir():
    try:
        import nir
    except ImportError:
        raise ImportError("NIR export needs the `nir` package: pip install 'liouna-snn[nir]' (or pip install nir)") from None
    return nir


def _f64(value, shape) -> np.ndarray:
    return np.full(shape, value, dtype=np.float64)


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


def _where(i: int, layer: nn.Module) -> str:
    return f"layer {i} ({type(layer).__name__})"


def neuron_to_nir(neuron: nn.Module, shape: tuple[int, ...], dt: float = NIR_DT, *,
                  approximate_subtractive_reset: bool = False, where: str = "neuron"):
    """The ``nir.LIF`` / ``nir.IF`` of one of the library's spiking neurons, for units of ``shape``.

    See the module docstring for the mapping. Raises a ``ValueError`` naming ``where`` for an unknown neuron,
    or for a subtractive reset unless ``approximate_subtractive_reset``.
    """
    nir = _nir()
    if type(neuron) not in _NEURON_NAMES:
        raise ValueError(f"{where}: cannot export the neuron {type(neuron).__name__} to NIR; supported: "
                         f"{', '.join(_NEURON_NAMES.values())}")
    if not (isinstance(dt, (int, float)) and not isinstance(dt, bool) and dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt (NIR step length in seconds) must be a positive number, got {dt!r}")
    p = neuron.p
    if p.reset == "subtract" and not approximate_subtractive_reset:
        raise ValueError(f"{where}: its neuron {_NEURON_NAMES[type(neuron)]!r} resets by subtraction "
                         f"(v <- v - threshold), which NIR cannot express (NIR's LIF and IF reset to v_reset). Build "
                         f"the network with neuron_params reset = 'zero' (or a norse neuron), or export with "
                         f"approximate_subtractive_reset=True (--approximate-reset) to write NIR's reset-to-value "
                         f"neuron; the true reset is kept in the node's metadata")
    metadata = {"liouna_snn_neuron": _NEURON_NAMES[type(neuron)], "beta": p.beta, "threshold": p.threshold,
                "reset": p.reset, "v_reset": p.v_reset, "dt": float(dt)}
    v_reset = p.v_reset if p.reset == "zero" else 0.0
    if p.beta == 1.0:
        return nir.IF(r=_f64(1.0 / dt, shape), v_threshold=_f64(p.threshold, shape), v_reset=_f64(v_reset, shape),
                      metadata=metadata)
    tau = dt / (1.0 - p.beta)
    return nir.LIF(tau=_f64(tau, shape), r=_f64(tau / dt, shape), v_leak=_f64(0.0, shape),
                   v_threshold=_f64(p.threshold, shape), v_reset=_f64(v_reset, shape), metadata=metadata)


def _norm_node(i: int, layer: PlasticLayer, conv: bool, hw: tuple[int, int] | None = None):
    nir = _nir()
    bn = layer.norm
    if type(bn) is nn.Identity:
        return None
    if type(bn) not in (nn.BatchNorm1d, nn.BatchNorm2d) or bn.affine or bn.running_mean is None:
        raise ValueError(f"{_where(i, layer)}: cannot export its input normalisation {bn!r} to NIR; supported: an "
                         f"affine-free batch-norm with running statistics, or none")
    scale = (bn.running_var.double() + bn.eps).rsqrt()
    shift = -bn.running_mean.double() * scale
    metadata = {"role": "batchnorm", "norm": layer.norm_kind, "eps": float(bn.eps), "momentum": float(bn.momentum),
                "running_mean": _array(bn.running_mean), "running_var": _array(bn.running_var)}
    n = scale.numel()
    if conv:
        weight = torch.diag(scale).reshape(n, n, 1, 1)
        return nir.Conv2d(input_shape=hw, weight=weight.float().numpy(), stride=1, padding=0, dilation=1, groups=1,
                          bias=shift.float().numpy(), metadata=metadata)
    return nir.Affine(weight=torch.diag(scale).float().numpy(), bias=shift.float().numpy(), metadata=metadata)


def _pool_node(i: int, layer: PlasticConv2d):
    nir = _nir()
    pool = layer.pool
    if type(pool) is nn.Identity:
        return None
    if type(pool) is nn.MaxPool2d:
        raise ValueError(f"{_where(i, layer)}: max pooling {pool!r} has no NIR node (NIR 1.0 has SumPool2d and "
                         f"AvgPool2d only, and the maximum of spikes per step is not the maximum of the rates "
                         f"this network pools); build the spec with pool type 'avg' to export to NIR")
    if (type(pool) is not nn.AvgPool2d or pool.ceil_mode or pool.divisor_override is not None
            or (not pool.count_include_pad and pool.padding not in (0, (0, 0)))):
        raise ValueError(f"{_where(i, layer)}: cannot export its pooling {pool!r} to NIR; supported: "
                         f"AvgPool2d without ceil_mode or divisor_override")

    def pair(v):
        return np.array(v if isinstance(v, (tuple, list)) else (v, v), dtype=np.int64)

    return nir.AvgPool2d(kernel_size=pair(pool.kernel_size), stride=pair(pool.stride), padding=pair(pool.padding))


def _input_shape(network, input_shape) -> tuple[int, ...]:
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    spec = getattr(network, "spec", None) or {}
    if "input_channels" in spec and "input_size" in spec:
        return (spec["input_channels"], spec["input_size"], spec["input_size"])
    raise ValueError(f"{type(network).__name__} has no spec with input_channels / input_size: pass input_shape")


def export_nir(network: nn.Module, *, dt: float = NIR_DT, input_shape: tuple[int, ...] | None = None,
               approximate_subtractive_reset: bool = False):
    """The ``nir.NIRGraph`` of a spiking network (see the module docstring for the nodes and mappings).

    Args:
        network: a :class:`~liouna_snn.network.LocalNetwork` whose layers all run in spiking mode; any
            device. Batch-norms are exported with their running statistics (eval mode).
        dt: the step length in seconds that maps ``beta`` to NIR's time constants. Default 1e-4 (snnTorch's).
        input_shape: ``(C, H, W)`` (or ``(D,)``) of one sample; default from the network's spec.
        approximate_subtractive_reset: export subtractive-reset neurons as NIR's reset-to-value neurons
            (recording the true reset in metadata) instead of raising.

    Returns the graph; ``nir.write("net.nir", graph)`` saves it. Graph metadata: ``format``, ``version``,
    ``dt``, ``time_steps``, ``encoder``, ``input_shape``, ``encoder_params`` (JSON) when the encoder has any, and
    ``initial_membrane`` when the neurons do not start at rest at inference (NIR has no initial state: other tools
    start them at rest; :func:`import_nir` restores it). Each synapse node also holds its layer's
    :data:`LEARNING_OPTIONS`, so the imported network learns as this one does.

    Raises:
        ValueError: a layer or module NIR cannot represent (the message names the layer and what is supported).
        ImportError: ``nir`` is not installed.
    """
    nir = _nir()
    layers = list(getattr(network, "layers", []))
    if not layers:
        raise ValueError(f"nothing to export: {type(network).__name__} has no layers")
    shape = _input_shape(network, input_shape)
    first_shape = shape
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    configs = []
    for i, layer in enumerate(layers, start=1):
        here = _where(i, layer)
        if type(layer) not in (PlasticConv2d, PlasticLinear):
            raise ValueError(f"layer {i}: cannot export a {type(layer).__name__} to NIR; supported: {SUPPORTED}")
        if layer.spiking is None:
            raise ValueError(f"{here}: runs in rate mode; NIR describes spiking networks (build it with a "
                             f"SpikingConfig), and a rate-mode network exports with export_plain")
        configs.append(layer.spiking)
        prefix = f"layer{i}_"
        if type(layer) is PlasticConv2d:
            if len(shape) != 3:
                raise ValueError(f"{here}: needs a (C, H, W) input, got shape {shape}")
            g = layer.geometry
            if g.padding and g.padding_mode != "zeros":
                raise ValueError(f"{here}: pads its input with mode {g.padding_mode!r}, which NIR cannot express "
                                 f"(nir.Conv2d pads with zeros and NIR has no padding node); only padding_mode "
                                 f"'zeros' exports to NIR")
            norm = _norm_node(i, layer, conv=True, hw=shape[1:])
            if norm is not None:
                nodes[prefix + "norm"] = norm
            k, c = layer.weight.shape[:2]
            if shape[0] != c:
                raise ValueError(f"{here}: takes {c} input channels, but its input has shape {shape}")
            weight, inhibition = _synaptic_weight(layer)
            nodes[prefix + "conv"] = nir.Conv2d(
                input_shape=shape[1:], weight=weight, stride=g.stride, padding=g.padding, dilation=1,
                groups=1, bias=np.zeros(k, dtype=np.float32),
                metadata={"padding_mode": g.padding_mode, "norm": layer.norm_kind, **inhibition,
                          **_learning_metadata(layer.spiking)})
            kk = layer.weight.shape[-1]
            hw = tuple((s + 2 * g.padding - kk) // g.stride + 1 for s in shape[1:])
            nodes[prefix + "neuron"] = neuron_to_nir(layer.neuron, (k, *hw), dt, where=here,
                                                     approximate_subtractive_reset=approximate_subtractive_reset)
            pool = _pool_node(i, layer)
            if pool is not None:
                nodes[prefix + "pool"] = pool
            shape = tuple(layer.output_shape(shape[1:]))
        else:
            d, k = layer.weight.shape[1], layer.weight.shape[0]
            if len(shape) > 1:
                nodes[prefix + "flatten"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
            if math.prod(shape) != d:
                raise ValueError(f"{here}: takes {d} features, but its input has shape {shape}")
            if type(layer.pool) is not nn.Identity:
                raise ValueError(f"{here}: cannot export its pooling {layer.pool!r} to NIR; a linear layer has none")
            norm = _norm_node(i, layer, conv=False)
            if norm is not None:
                nodes[prefix + "norm"] = norm
            weight, inhibition = _synaptic_weight(layer)
            nodes[prefix + "linear"] = nir.Linear(weight=weight, metadata={"norm": layer.norm_kind, **inhibition,
                                                                           **_learning_metadata(layer.spiking)})
            nodes[prefix + "neuron"] = neuron_to_nir(layer.neuron, (k,), dt, where=here,
                                                     approximate_subtractive_reset=approximate_subtractive_reset)
            shape = (k,)
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    names = list(nodes)
    edges = list(zip(names[:-1], names[1:]))
    first = configs[0]
    for i, cfg in enumerate(configs[1:], start=2):
        if (cfg.time_steps, cfg.encoder) != (first.time_steps, first.encoder):
            raise ValueError(f"layer {i}: runs T = {cfg.time_steps} with encoder {cfg.encoder!r}, layer 1 T = "
                             f"{first.time_steps} with {first.encoder!r}; a NIR graph has one time base")
        if cfg.membrane_at_inference != first.membrane_at_inference:
            raise ValueError(f"layer {i}: initial membrane at inference {cfg.membrane_at_inference!r}, layer 1 "
                             f"{first.membrane_at_inference!r}; a NIR graph records one for all its neurons")
        if cfg.encoder_params != first.encoder_params:
            raise ValueError(f"layer {i}: encoder parameters {cfg.encoder_params!r}, layer 1 "
                             f"{first.encoder_params!r}; a NIR graph records one encoder")
    spec = getattr(network, "spec", None) or {}
    metadata = {"format": FORMAT, "version": FORMAT_VERSION, "dt": float(dt), "time_steps": first.time_steps,
                "encoder": first.encoder, "input_shape": np.array(first_shape), "name": spec.get("name") or "network"}
    if first.encoder_params:
        metadata["encoder_params"] = json.dumps(first.encoder_params, sort_keys=True)
    if first.membrane_at_inference != "rest":  # NIR neurons start at rest; other tools run them from there
        metadata["initial_membrane"] = first.membrane_at_inference  # a graph runs inference: its start
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)


def _synaptic_weight(layer) -> tuple[np.ndarray, dict]:
    """The weight of a layer's NIR synapse node and the metadata that lets :func:`import_nir` rebuild the layer.

    With ``lateral_inhibition = "mean"`` the neurons' current is ``u - mean_k u = (W - mean_k W) * x`` (the drive
    is linear and has no bias), so the node holds ``W - mean_k W``; with ``current_norm = "std"`` the current is
    further divided by the layer's running standard deviation ``s`` (the eval-mode gain), so the node holds the
    weight divided by ``s``. Every NIR tool then computes the neurons' current; the learned ``W`` and ``s`` go
    into the metadata, for an exact round trip.
    """
    cfg = layer.spiking
    if cfg.lateral_inhibition == "none" and cfg.current_norm == "none":
        return _array(layer.weight), {}
    w = layer.weight.detach().float()
    effective = w if cfg.lateral_inhibition == "none" else w - w.mean(dim=0, keepdim=True)
    meta = {"lateral_inhibition": cfg.lateral_inhibition, "liouna_snn_weight": _array(w)}
    if cfg.current_norm == "std":
        scale = layer.current_scale
        effective = effective * float((scale.running_var + scale.eps).rsqrt())
        meta |= {"current_norm": "std", "current_running_var": float(scale.running_var)}
    return _array(effective), meta


LEARNING_OPTIONS = ("plasticity", "trace_decay", "current_calibration", "initial_membrane", "learning_code")
"""The :class:`~liouna_snn.spiking.SpikingConfig` fields that only learning reads: each synapse node's metadata holds
them (``initial_membrane`` as ``learning_initial_membrane``; the graph's ``initial_membrane`` is the start at
inference), so an imported network learns as the exported one did. A graph without them (a foreign one, or one
written before they were recorded) learns with ``SpikingConfig``'s defaults."""


def _learning_key(option: str) -> str:
    return "learning_initial_membrane" if option == "initial_membrane" else option


def _learning_metadata(cfg) -> dict:
    """A layer's :data:`LEARNING_OPTIONS`, keyed as its synapse node's metadata holds them."""
    return {_learning_key(option): getattr(cfg, option) for option in LEARNING_OPTIONS}


# --- import --------------------------------------------------------------------------------------------


def _meta(node) -> dict:
    """A node's metadata with HDF5's bytes and 0-d arrays back to str and Python scalars."""
    out = {}
    for k, v in (getattr(node, "metadata", None) or {}).items():
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v.decode() if isinstance(v, bytes) else v
    return out


def _uniform(values, name: str, where: str) -> float:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0 or not np.all(a == a.flat[0]):
        raise ValueError(f"{where}: {name} differs between units; this library's neurons share one value per layer")
    return float(a.flat[0])


def neuron_from_nir(node, dt: float, where: str = "neuron") -> tuple[str, dict]:
    """``(neuron name, neuron_params)`` of :func:`liouna_snn.neurons.make_neuron` for a NIR neuron node.

    A node written by :func:`export_nir` gives back the exact neuron (from its metadata). Otherwise: ``nir.LIF``
    -> ``native-lif`` with ``reset="zero"``, ``beta = 1 - dt/tau``, and the threshold and reset potential
    divided by ``g = r dt / tau`` (our input enters with weight 1: the membrane is rescaled by ``1/g``);
    ``nir.IF`` -> ``native-lif`` with ``beta = 1``, ``reset="zero"``, divided by ``g = r dt``; ``nir.CubaLIF``
    only with an instantaneous synapse (``tau_syn = dt``, ``w_in = 1``), as a LIF. ``v_leak`` must be 0 and
    every parameter the same for all units.
    """
    nir = _nir()
    meta = _meta(node)
    if "liouna_snn_neuron" in meta:
        params = {"beta": meta["beta"], "threshold": meta["threshold"], "reset": meta["reset"],
                  "v_reset": meta["v_reset"]}
        name = meta["liouna_snn_neuron"]
        if name == "integrate-and-fire":
            params = {"threshold": meta["threshold"]}
        elif name == "snntorch-leaky":
            params.pop("v_reset")
        return name, params
    if isinstance(node, nir.CubaLIF):
        if not (np.allclose(node.tau_syn, dt, rtol=1e-9) and np.allclose(node.w_in, 1.0)):
            raise ValueError(f"{where}: nir.CubaLIF with a synaptic time constant (tau_syn != dt = {dt} or w_in != 1) "
                             f"has no neuron in this library; only an instantaneous synapse imports (as a LIF)")
        tau, r, v_leak = node.tau_mem, node.r, node.v_leak
    elif isinstance(node, nir.LIF):
        tau, r, v_leak = node.tau, node.r, node.v_leak
    elif isinstance(node, nir.IF):
        g = _uniform(node.r, "r", where) * dt
        return "native-lif", {"beta": 1.0, "threshold": _uniform(node.v_threshold, "v_threshold", where) / g,
                              "reset": "zero", "v_reset": _uniform(node.v_reset, "v_reset", where) / g}
    else:
        raise ValueError(f"{where}: {type(node).__name__} is not a neuron this library imports (nir.LIF, nir.IF, "
                         f"nir.CubaLIF)")
    if _uniform(v_leak, "v_leak", where) != 0.0:
        raise ValueError(f"{where}: v_leak != 0 has no counterpart in this library's LIF (its rest is 0)")
    tau = _uniform(tau, "tau", where)
    g = _uniform(r, "r", where) * dt / tau
    return "native-lif", {"beta": 1.0 - dt / tau, "threshold": _uniform(node.v_threshold, "v_threshold", where) / g,
                          "reset": "zero", "v_reset": _uniform(node.v_reset, "v_reset", where) / g}


def _chain(graph) -> list[tuple[str, Any]]:
    """The graph's nodes from its input to its output, checking it is one chain."""
    following = {}
    for a, b in graph.edges:
        if a in following:
            raise ValueError(f"node {a!r} feeds several nodes; import_nir reads feed-forward chains only")
        following[a] = b
    inputs = [k for k, n in graph.nodes.items() if type(n).__name__ == "Input"]
    if len(inputs) != 1:
        raise ValueError(f"the graph has {len(inputs)} input nodes; import_nir needs exactly one")
    chain, name = [], inputs[0]
    while name in following:
        name = following[name]
        if len(chain) > len(graph.nodes):
            raise ValueError("the graph has a cycle; import_nir reads feed-forward chains only")
        chain.append((name, graph.nodes[name]))
    if not chain or type(chain[-1][1]).__name__ != "Output":
        raise ValueError("the chain from the input does not end at an output node")
    return chain[:-1]


def _bn_from_node(node, channels: int, conv: bool, where: str) -> tuple[nn.Module, str]:
    """The batch-norm an exported norm node describes, and its norm kind."""
    meta = _meta(node)
    bn = (nn.BatchNorm2d if conv else nn.BatchNorm1d)(channels, affine=False, eps=meta.get("eps", 1e-5),
                                                     momentum=meta.get("momentum", 0.1))
    if "running_mean" in meta:
        mean = torch.as_tensor(np.asarray(meta["running_mean"]), dtype=torch.float32)
        var = torch.as_tensor(np.asarray(meta["running_var"]), dtype=torch.float32)
    else:  # a foreign per-channel affine a x + b: running statistics giving the same eval map
        w = np.asarray(node.weight, dtype=np.float64)
        a = np.diagonal(w.reshape(channels, channels)).copy()
        if not np.allclose(w.reshape(channels, channels), np.diag(a)) or np.any(a <= 0):
            raise ValueError(f"{where}: a {type(node).__name__} before the synapse must be a per-channel scale > 0 "
                             f"with bias (an eval-mode batch-norm) to import")
        b = np.asarray(node.bias, dtype=np.float64)
        var = torch.as_tensor(1.0 / a ** 2 - bn.eps, dtype=torch.float32)
        mean = torch.as_tensor(-b / a, dtype=torch.float32)
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(var)
    return bn, meta.get("norm", "running" if "running_mean" not in meta else "batch")


def import_nir(graph, *, dt: float | None = None, time_steps: int | None = None, encoder: str | None = None,
               rule: RuleConfig | None = None):
    """A spiking :class:`~liouna_snn.network.LocalNetwork` (in eval mode) rebuilt from a NIR graph.

    Reads feed-forward chains of the nodes :func:`export_nir` writes: per layer an optional ``nir.Flatten``,
    an optional norm node (a 1x1 ``nir.Conv2d`` / ``nir.Affine`` with a diagonal positive weight), a
    ``nir.Conv2d`` (zero padding, no bias, no dilation or groups) or ``nir.Linear``, a neuron (see
    :func:`neuron_from_nir`) and, after a convolution, an optional ``nir.AvgPool2d``. Weights are copied
    exactly; batch-norm statistics and neurons come from the metadata when the graph is ours.

    Args:
        graph: a ``nir.NIRGraph`` (e.g. ``nir.read(path)``).
        dt, time_steps, encoder: override the graph's metadata (``dt`` is needed for a foreign graph's
            neurons; default :data:`NIR_DT`; ``time_steps`` default 8, ``encoder`` default constant-current).
        rule: the rule of the rebuilt layers (default: :class:`RuleConfig` defaults), for further learning.

    Raises a ``ValueError`` naming the node for anything else.
    """
    nir = _nir()
    from ..network import LocalNetwork
    from ..spiking import SpikingConfig

    gmeta = _meta(graph)
    dt = float(dt if dt is not None else gmeta.get("dt", NIR_DT))
    T = int(time_steps if time_steps is not None else gmeta.get("time_steps", 8))
    encoder = encoder or gmeta.get("encoder", "constant-current")
    encoder_params = json.loads(gmeta["encoder_params"]) if "encoder_params" in gmeta else {}
    inference_membrane = str(gmeta.get("initial_membrane", "rest"))
    inputs = [n for n in graph.nodes.values() if isinstance(n, nir.Input)]
    shape = tuple(int(s) for s in np.asarray(inputs[0].input_type["input"]).ravel()) if inputs else None
    if "input_shape" in gmeta:
        shape = tuple(int(s) for s in np.asarray(gmeta["input_shape"]).ravel())
    first_shape = shape
    chain = _chain(graph)
    layers, spec_layers = [], []
    pos = 0
    rule = rule or RuleConfig()
    while pos < len(chain):
        name, node = chain[pos]
        if isinstance(node, nir.Flatten):
            pos += 1
            if pos >= len(chain):
                raise ValueError(f"node {name!r}: a flatten must be followed by a layer")
            shape = (math.prod(shape),) if shape is not None else None
            name, node = chain[pos]
        norm_node = None
        is_norm = isinstance(node, nir.Affine) or (
            isinstance(node, nir.Conv2d) and np.asarray(node.weight).shape[-2:] == (1, 1)
            and pos + 1 < len(chain) and isinstance(chain[pos + 1][1], (nir.Conv2d, nir.Linear)))
        if is_norm:
            norm_node, pos = (name, node), pos + 1
            name, node = chain[pos]
        if isinstance(node, nir.Conv2d):
            w = np.asarray(node.weight)
            padding = node.padding
            if isinstance(padding, str) or len(set(np.ravel(padding))) != 1 or len(set(np.ravel(node.stride))) != 1:
                raise ValueError(f"node {name!r}: only square integer padding and stride import, got padding "
                                 f"{padding!r}, stride {node.stride!r}")
            if node.groups != 1 or any(int(d) != 1 for d in np.ravel(node.dilation)) or np.any(np.asarray(node.bias)):
                raise ValueError(f"node {name!r}: a convolution with groups, dilation or a bias has no PlasticConv2d "
                                 f"counterpart")
            if w.shape[-1] != w.shape[-2]:
                raise ValueError(f"node {name!r}: only square kernels import, got {w.shape[-2:]}")
            conv, synapse = True, dict(type="conv", out_channels=int(w.shape[0]), kernel_size=int(w.shape[-1]),
                                       stride=int(np.ravel(node.stride)[0]), padding=int(np.ravel(padding)[0]),
                                       padding_mode="zeros")
        elif isinstance(node, nir.Linear):
            w = np.asarray(node.weight)
            conv, synapse = False, dict(type="linear", out_channels=int(w.shape[0]))
        else:
            raise ValueError(f"node {name!r}: expected a nir.Conv2d or nir.Linear synapse (optionally after a flatten "
                             f"and a norm node), got {type(node).__name__}")
        pos += 1
        if pos >= len(chain):
            raise ValueError(f"node {name!r}: the synapse must be followed by a neuron")
        neuron_name, neuron_node = chain[pos]
        neuron, params = neuron_from_nir(neuron_node, dt, where=f"node {neuron_name!r}")
        pos += 1
        pool = None
        if pos < len(chain) and isinstance(chain[pos][1], (nir.AvgPool2d, nir.SumPool2d)):
            pname, pnode = chain[pos]
            if isinstance(pnode, nir.SumPool2d):
                raise ValueError(f"node {pname!r}: nir.SumPool2d has no counterpart (this library pools rates with "
                                 f"AvgPool2d)")
            k, s, p = (tuple(int(v) for v in np.ravel(x)) for x in (pnode.kernel_size, pnode.stride, pnode.padding))
            pool = nn.AvgPool2d(k, stride=s, padding=p)
            pos += 1
        synapse_meta = _meta(node)
        inhibition = str(synapse_meta.get("lateral_inhibition", "none"))
        current_norm = str(synapse_meta.get("current_norm", "none"))
        if "liouna_snn_weight" in synapse_meta:  # the node holds the effective weight; the learned W is in the metadata
            w = np.asarray(synapse_meta["liouna_snn_weight"])
        learning = {option: synapse_meta[_learning_key(option)] for option in LEARNING_OPTIONS
                    if _learning_key(option) in synapse_meta}
        learning.setdefault("initial_membrane", inference_membrane)
        if "trace_decay" in learning:
            learning["trace_decay"] = float(learning["trace_decay"])
        cfg = SpikingConfig(neuron=neuron, neuron_params=params, time_steps=T, encoder=encoder,
                            encoder_params=encoder_params if encoder == gmeta.get("encoder") else {},
                            lateral_inhibition=inhibition, current_norm=current_norm, **learning,
                            inference_initial_membrane=None if learning["initial_membrane"] == inference_membrane
                            else inference_membrane)
        if norm_node is not None:
            channels = int(w.shape[1])
            bn, norm_kind = _bn_from_node(norm_node[1], channels, conv, f"node {norm_node[0]!r}")
        else:
            bn, norm_kind = None, "none"
        if conv:
            layer = PlasticConv2d(int(w.shape[1]), synapse["out_channels"], synapse["kernel_size"],
                                  stride=synapse["stride"], padding=synapse["padding"], norm=norm_kind, pool=pool,
                                  rule=rule, spiking=cfg)
        else:
            layer = PlasticLinear(int(w.shape[1]), synapse["out_channels"], norm=norm_kind, rule=rule, spiking=cfg)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w.astype(np.float32)))
            if bn is not None:
                layer.norm.load_state_dict(bn.state_dict())
            if current_norm == "std":
                layer.current_scale.running_var.fill_(float(synapse_meta["current_running_var"]))
        layers.append(layer)
        spec_layers.append({**synapse, "norm": norm_kind} | (
            {"pool": {"type": "avg", "kernel_size": pool.kernel_size, "stride": pool.stride,
                      "padding": pool.padding}} if pool is not None else {}))
        if shape is not None:
            shape = tuple(layer.output_shape(shape[1:])) if conv else (synapse["out_channels"],)
    if not layers:
        raise ValueError("the graph holds no layer (synapse followed by a neuron)")
    spec = {"name": str(gmeta.get("name", "nir-import")), "layers": spec_layers}
    if first_shape is not None and len(first_shape) == 3 and first_shape[1] == first_shape[2]:
        spec |= {"input_channels": first_shape[0], "input_size": first_shape[1]}
    return LocalNetwork(layers, spec).eval()
