"""Plastic layers: synapses + input normalisation + neuron + pooling + a local rule.

``forward(x)`` computes the layer's output without learning; ``learn(x)`` computes it and applies
the rule's update, which uses only this layer's input, drive, activity and weights. Weights are
float32 master copies; the convolutions can run in bfloat16 (``compute_dtype``).

With ``spiking`` (a :class:`liouna_snn.spiking.SpikingConfig`) a spiking neuron replaces the rate
activation: ``forward`` and ``learn`` run ``T`` time steps, the output is the firing rate (spike count
/ ``T``) after pooling, and the rule learns from rates or from online traces (see :mod:`liouna_snn.spiking`).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .rules import ConvGeometry, LocalRule, RuleConfig
from .rules.factors import winner_index
from .rules.geometry import LINEAR, PADDING_MODES, output_size, pad
from .rules.liouna import check_conv_algorithm, convolve_patches, use_matmul
from .neurons import compiled_counts, compiled_step
from .neurons.rate import RateNeuron, Triangle, make_activation
from .spiking import (CurrentScale, OnlineUpdate, SpikingConfig, activity_report, encode, generator_on,
                      initial_membranes, neuron_current, spike_counts)

ACTIVITY_PHASES = ("learning", "inference")

_COMPILED: dict[tuple[type, str], Callable] = {}


def compiled_method(layer: nn.Module, name: str) -> Callable:
    """``layer.<name>`` compiled by ``torch.compile`` (one compiled function per class and method; the compiler
    keeps a graph per layer shape and option set). Kept outside the module, so copies and checkpoints of the
    layer are unaffected."""
    key = (type(layer), name)
    fn = _COMPILED.get(key)
    if fn is None:
        fn = _COMPILED[key] = torch.compile(getattr(type(layer), name))
    return lambda *args: fn(layer, *args)


def check_input(x: torch.Tensor, rank: int, channels: int, where: str) -> None:
    """Raise a ``ValueError`` naming the problem if ``x`` is not a finite ``rank``-d tensor with ``channels`` on dim 1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != rank:
        layout = "(batch, channels, height, width)" if rank == 4 else "(batch, features)"
        raise ValueError(f"{where}: expected a {rank}-d input {layout}, got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{where}: expected {channels} input channels/features on dim 1, got {x.shape[1]} "
                         f"(shape {tuple(x.shape)})")
    # a NaN or Inf anywhere makes the sum non-finite: one reduction instead of an element-wise test (the exact
    # test runs only when the sum says so, e.g. when finite values overflow it)
    if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{where}: input contains NaN or Inf values")


NORMS = ("batch", "running", "none")


def _norm_kind(norm: bool | str) -> str:
    kind = {True: "batch", False: "none"}.get(norm, norm) if isinstance(norm, bool) else norm
    if kind not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(NORMS)} (or true / false)")
    return kind


def weight_effective_rank(weight: torch.Tensor) -> float:
    """How many input directions a layer's units span: ``exp(entropy(s^2 / sum s^2))`` over the singular
    values ``s`` of the unit-normalised weights ``(K, fan_in...)`` (Roy & Vetterli 2007's effective rank).

    Between 1 (all units alike) and ``min(K, fan_in)``; random Gaussian units of the 96x75 CIFAR-10 layer 1
    give about 51. A layer whose units collapse onto a few directions (the top principal components)
    passes little of its input on to the next layer.
    """
    w = weight.detach().flatten(1).double()
    energy = torch.linalg.svdvals(w / w.norm(dim=1, keepdim=True).clamp_min(1e-30)) ** 2
    energy = energy[energy > 0] / energy.sum()
    return float(torch.exp(-(energy * energy.log()).sum()))


class PlasticLayer(nn.Module):
    """Common machinery of the plastic layers; see :class:`PlasticConv2d` and :class:`PlasticLinear`."""

    weight: torch.Tensor
    # Data-parallel hook (liouna_snn.training.distributed.ShardReducer): when set, learn() normalises with
    # the batch statistics of the whole global batch, draws this shard's rows of the global batch's mask
    # and sums dW and the win counts over the shards. None: this process sees the whole batch.
    reducer = None

    def __init__(self, weight_shape: tuple[int, ...], geometry: ConvGeometry, norm: nn.Module,
                 activation: nn.Module, pool: nn.Module | None, rule: RuleConfig,
                 compute_dtype: torch.dtype | None, generator: torch.Generator | None,
                 spiking: SpikingConfig | None = None):
        super().__init__()
        self.rule = LocalRule(rule)
        self.geometry = geometry
        self.norm = norm
        self.norm_kind = "none" if isinstance(norm, nn.Identity) else "batch"
        self.pool = pool if pool is not None else nn.Identity()
        self.compute_dtype = compute_dtype
        self.weight = nn.Parameter(self.rule.init_weight(weight_shape, generator), requires_grad=False)
        # How often each unit had the largest drive at a position while learning (competition diagnostics).
        self.register_buffer("win_counts", torch.zeros(weight_shape[0], dtype=torch.float64))
        if spiking is not None and not isinstance(spiking, SpikingConfig):
            raise TypeError(f"spiking must be a SpikingConfig or None, got {type(spiking).__name__}")
        self.spiking = spiking
        # One neuron interface in both modes: the rate neuron holds the spec's nonlinearity; a spiking layer keeps
        # that nonlinearity beside its neuron, unused, because it is part of the layer's identity.
        if isinstance(activation, str):
            activation = make_activation(activation)
        if spiking is None:
            self.neuron = RateNeuron(activation)
        else:
            self.neuron = spiking.make_neuron()
            self.rate_activation = activation
        # Run the neuron's step through torch.compile (LocalNetwork.compile_neurons): how it runs, not what it
        # computes, so it is not part of the network's identity.
        self.compile_neuron = False
        # Run the rate-mode forward pass and learning step through torch.compile (LocalNetwork.compile_layers).
        self.compile_step = False
        self.current_scale = CurrentScale() if spiking is not None and spiking.current_norm == "std" else None
        if spiking is not None:
            # Each unit's spike count and the (sample, position, step)s it was simulated, per phase.
            for phase in ACTIVITY_PHASES:
                self.register_buffer(f"spike_counts_{phase}", torch.zeros(weight_shape[0], dtype=torch.float64))
                self.register_buffer(f"unit_steps_{phase}", torch.zeros((), dtype=torch.float64))

    @property
    def activation(self) -> nn.Module:
        """The spec's rate nonlinearity ``(B, K, ...) -> (B, K, ...)``: the rate neuron's in rate mode; in spiking
        mode the one the spec names, unused (the spiking neuron replaces it)."""
        return self.neuron.activation if self.spiking is None else self.rate_activation

    def __setattr__(self, name: str, value) -> None:
        # nn.Module registers a module attribute without consulting the class's property: route ``activation`` to
        # where it lives, so ``layer.activation = nn.ReLU()`` swaps the nonlinearity rather than hiding it.
        if name == "activation" and "neuron" in self._modules:
            if self.spiking is None:
                return setattr(self.neuron, "activation", value)
            name = "rate_activation"
        super().__setattr__(name, value)

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def _drive(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check(self, x: torch.Tensor) -> None:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the layer (after pooling), no learning. Batch-norm uses batch statistics in
        ``train()`` mode and running statistics in ``eval()`` mode. In spiking mode: the firing rates
        (spike count / ``T``), counted in the ``inference`` activity report."""
        self._check(x)
        with torch.no_grad():
            if self.spiking is not None:
                x_steps, x_pre = self._presynaptic(x, learning=False)
                u_steps, u = self._spiking_drive(x_steps, x_pre)
                v0 = self._initial_membrane(u, learning=False)
                counts, _ = self._spike_counts(u_steps, u, initial_membrane=v0)
                self._record_activity(counts, "inference")
                return self._pool(counts / self.spiking.time_steps)
            if self.compile_step:
                return compiled_method(self, "_rate_forward")(x)
            return self._rate_forward(x)

    def _rate_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._activate_and_pool(self._drive(self.norm(x)))

    def _activate_and_pool(self, u: torch.Tensor) -> torch.Tensor:
        """``pool(activation(u))``. A max pool over the triangle pools the centred drive first and rectifies the
        pooled values only (max commutes with a non-decreasing element-wise map): the same output, with the
        power computed at a quarter of the positions for a stride-2 pool."""
        if isinstance(self.pool, nn.MaxPool2d) and isinstance(self.activation, Triangle):
            return self.activation.rectify(self._pool(self.activation.centre(u)))
        return self._pool(self.activation(u))

    def _pool(self, y: torch.Tensor) -> torch.Tensor:
        if isinstance(self.pool, nn.Identity):
            return y
        # overlapping max pooling runs ~10x faster on CPU in channels-last layout (same values); the output
        # goes back to the standard layout so the next convolution computes exactly as a plain network's
        return self.pool(y.contiguous(memory_format=torch.channels_last)).contiguous()

    @torch.no_grad()
    def learn(self, x: torch.Tensor, progress: float = 0.0, generator: torch.Generator | None = None,
              output: bool = True) -> torch.Tensor | None:
        """Forward pass plus one local update of ``weight``; returns the (detached) output.

        Args:
            x: the layer's input (detached output of the layer below, or pixels).
            progress: fraction of the run done, in [0, 1] (for scheduled learning rates).
            generator: CPU generator for the input mask and, in spiking mode, the input spikes (deterministic runs).
            output: ``False`` when nobody reads the output (the top learning layer of a schedule): rate
                mode then skips the activation the rule does not need and the pooling, and returns ``None``.
        """
        self._check(x)
        if self.spiking is not None:
            return self._learn_spiking(x, progress, generator)
        learns = self.rule.learns
        # the mask depends only on the input's shape: drawn first, so a masked top layer can skip the full drive
        visible = None if not learns else (self.rule.sample_visible(x, generator) if self.reducer is None
                                           else self.reducer.sample_visible(self.rule, x, generator))
        compiled = self.compile_step and self.reducer is None  # a replica's collectives stay out of the graphs
        front = compiled_method(self, "_learning_front") if compiled else self._learning_front
        x_n, u, y, out = front(x, output, output or visible is None)
        if learns:
            if compiled and self.rule.config.form == "explicit":
                progress_t = torch.tensor(progress, dtype=torch.float32, device=x.device)
                finite, winners = compiled_method(self, "_fused_update")(x_n, u, y, visible, progress_t)
                if not bool(finite):
                    raise self.rule.not_finite_error()
            else:
                winners, dw = self._update(x_n, u, y, visible)
                self.rule.apply(self.weight, dw if self.reducer is None else self.reducer.sum(dw), progress)
            wins = torch.bincount(winners.flatten(), minlength=self.out_channels).to(self.win_counts.dtype)
            self.win_counts += wins if self.reducer is None else self.reducer.sum(wins)
        return out

    def _learning_front(self, x: torch.Tensor, output: bool, full_drive: bool = True):
        """``(x_n, u, y, out)`` of a learning step: the normalised input, the drive of the whole input, the
        activation (``None`` when the rule does not read it) and the pooled output (``None``
        without ``output``). Without ``full_drive`` (a masked step whose output nobody reads: the rule learns
        from the visible input's drive alone) ``u`` and ``y`` are ``None``."""
        x_n = self._normalise_for_learning(x)
        if not full_drive:
            return x_n, None, None, None
        u = self._drive(x_n)
        if not self.rule.reads_activation:
            return x_n, u, None, (self._activate_and_pool(u) if output else None)
        y = self.activation(u)
        return x_n, u, y, (self._pool(y) if output else None)

    def _update(self, x_n: torch.Tensor, u: torch.Tensor, y: torch.Tensor | None,
                visible: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(winners, dW)`` of a learning step: the drive of the visible input (the full input's ``u`` without a
        mask), its winners (shared by the rule's competition and the win counts) and the rule's update."""
        if visible is None:
            u_v, y_v = u, y
        else:
            u_v = self._drive(x_n * visible)
            y_v = self.activation(u_v) if self.rule.reads_activation else None
        winners = winner_index(u_v)
        return winners, self.rule.delta(x_n, u_v, y_v, self.weight, self.geometry, visible, self.compute_dtype, winners)

    def _fused_update(self, x_n, u, y, visible, progress: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_update` and :meth:`LocalRule.apply_if_finite` in one function, compiled as one graph under
        ``compile_step``; returns ``(finite, winners)``."""
        winners, dw = self._update(x_n, u, y, visible)
        return self.rule.apply_if_finite(self.weight, dw, progress), winners

    def _normalise_for_learning(self, x: torch.Tensor) -> torch.Tensor:
        """Batch statistics (``batch``), or running statistics updated with this batch (``running``)."""
        if self.reducer is not None and self.training and self.norm_kind != "none":
            return self.reducer.normalise(self.norm, x, self.norm_kind)
        if self.norm_kind != "running" or not self.training:
            return self.norm(x)
        self.norm(x)  # updates the running statistics
        self.norm.eval()
        try:
            return self.norm(x)
        finally:
            self.norm.train()

    # --- spiking mode -------------------------------------------------------------------------------

    def _learn_spiking(self, x: torch.Tensor, progress: float, generator: torch.Generator | None) -> torch.Tensor:
        """:meth:`learn` in spiking mode: ``T`` steps, then the rule on rates, or online traces at every step."""
        cfg, T = self.spiking, self.spiking.time_steps
        generator = generator_on(x.device, generator)   # every draw of the step on x's device
        x_steps, x_pre = self._presynaptic(x, learning=True, generator=generator)
        u_steps, u = self._spiking_drive(x_steps, x_pre)
        learns = self.rule.learns
        visible = self.rule.sample_visible(x_pre, generator) if learns else None
        online = learns and cfg.plasticity == "online"
        per_step = x_steps is not None

        # learning_code = "current": the rule reads the rates in the drive's units, which needs this step's gain
        # before the neurons run (the online traces apply the rule at every step).
        gain = self._learning_gain(u_steps, u) if learns and cfg.learning_code == "current" else None
        code_scale = None if gain is None else self.neuron.p.threshold / gain

        def delta(x_, u_, y_):
            y_ = y_ if code_scale is None else y_ * code_scale
            return self.rule.delta(x_, u_, y_, self.weight, self.geometry, visible, self.compute_dtype)

        def tracker(u_steps_, u_):
            return OnlineUpdate(delta, x_steps if per_step else x_pre, u_steps_ if per_step else u_, per_step,
                                cfg.trace_decay)

        acc = tracker(u_steps, u) if online and visible is None else None
        v0 = self._initial_membrane(u, generator, learning=True)
        counts, gain = self._spike_counts(u_steps, u, on_step=acc, gain=gain, initial_membrane=v0)
        self._record_activity(counts, "learning")
        y = counts / T
        if learns:
            if visible is None:
                u_v, y_v = u, y
            else:  # the masked input drives its own run of the neurons (as rate mode recomputes the drive)
                u_v_steps, u_v = self._spiking_drive(x_steps, x_pre, visible)
                acc = tracker(u_v_steps, u_v) if online else None
                y_v = self._spike_counts(u_v_steps, u_v, on_step=acc, gain=gain, initial_membrane=v0)[0] / T
            dw = acc.result() if online else delta(x_pre, u_v, y_v)
            self.rule.apply(self.weight, dw, progress)
            winners = winner_index(u_v).flatten()
            self.win_counts += torch.bincount(winners, minlength=self.out_channels).to(self.win_counts.dtype)
        return self._pool(y)

    def _presynaptic(self, x: torch.Tensor, learning: bool,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The normalised presynaptic input: per step ``(T, B, ...)`` (``None`` for a constant current) and its mean.

        Constant current: ``norm(x)`` as in rate mode. Spike encoders: the spike trains of ``x`` (rates in
        [0, 1]), each step mapped by the batch-norm fitted to the spike probability (see :meth:`_norm_map`).
        """
        cfg = self.spiking
        if not cfg.encodes_spikes:
            return None, (self._normalise_for_learning(x) if learning else self.norm(x))
        spikes = encode(x, cfg, generator, where=self.__class__.__name__)
        p = x * cfg.spike_probability if cfg.spike_probability != 1.0 else x
        affine = self._norm_map(p, learning)
        if affine is not None:
            spikes.mul_(affine[0]).add_(affine[1])
        return spikes, spikes.mean(dim=0)

    def _norm_map(self, p: torch.Tensor, learning: bool) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(scale, shift)`` per channel with ``norm(p) = scale * p + shift``, the statistics rate mode would use.

        Runs the batch-norm on ``p`` for its side effects (running statistics), as rate mode does.
        ``None`` without normalisation.
        """
        if isinstance(self.norm, nn.Identity):
            return None
        bn = self.norm
        if learning:
            self._normalise_for_learning(p)
        else:
            bn(p)
        if bn.training and not (learning and self.norm_kind == "running"):
            dims = [0] + list(range(2, p.dim()))
            var, mean = torch.var_mean(p, dim=dims, unbiased=False)
        else:
            mean, var = bn.running_mean, bn.running_var
        scale = (var + bn.eps).rsqrt()
        shape = (-1,) + (1,) * (p.dim() - 2)
        return scale.view(shape).to(p.dtype), (-mean * scale).view(shape).to(p.dtype)

    def _spiking_drive(self, x_steps: torch.Tensor | None, x_pre: torch.Tensor,
                       visible: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The drive per step ``(T, B, K, ...)`` (``None`` for a constant current, computed once) and its mean."""
        if x_steps is None:
            return None, self._drive(x_pre if visible is None else x_pre * visible)
        xs = x_steps if visible is None else x_steps * visible
        u_steps = self._drive(xs.flatten(0, 1)).unflatten(0, xs.shape[:2])  # all T steps in one convolution
        return u_steps, u_steps.mean(dim=0)

    def _initial_membrane(self, u: torch.Tensor, generator: torch.Generator | None = None, *,
                          learning: bool) -> torch.Tensor | None:
        """The membranes' starting potentials for drive ``u`` (``(B, K, ...)``) in a learning step or (``learning``
        false) the forward pass: ``None`` (rest) unless the config asks for ``uniform`` ones, drawn with
        ``generator`` (else the device's default generator), or ``half``."""
        mode = self.spiking.initial_membrane if learning else self.spiking.membrane_at_inference
        if mode == "rest":
            return None
        return initial_membranes(self.neuron, u.shape, u.device, u.dtype, generator, mode=mode)

    def _current(self, u_steps: torch.Tensor | None, u: torch.Tensor) -> torch.Tensor:
        """The neurons' current from the drive ``u_steps`` (``(T, B, K, ...)``, or ``None`` for the constant
        drive ``u``, ``(B, K, ...)``) after lateral inhibition, before the gain."""
        per_step = u_steps is not None
        return neuron_current(u_steps if per_step else u, self.spiking.lateral_inhibition,
                              channel_dim=2 if per_step else 1)

    def _learning_gain(self, u_steps: torch.Tensor | None, u: torch.Tensor) -> torch.Tensor:
        """The gain a learning step's current is multiplied by, a 0-dim tensor: :class:`CurrentScale`'s (its
        running estimate updated once, as :meth:`_spike_counts` would) or 1 with ``current_norm = "none"``."""
        if self.current_scale is None:
            return torch.ones((), dtype=u.dtype, device=u.device)
        return self.current_scale.gain(self._current(u_steps, u))

    def _spike_counts(self, u_steps: torch.Tensor | None, u: torch.Tensor, on_step=None,
                      gain: torch.Tensor | None = None,
                      initial_membrane: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Spike counts of the layer's neurons driven by ``u`` (or ``u_steps``), after lateral inhibition, and the
        gain applied with ``current_norm = "std"`` (``None`` otherwise). A given ``gain`` is used as it is (the
        masked run of a learning step keeps the unmasked run's gain, as a fixed threshold would, and its
        ``initial_membrane``)."""
        per_step = u_steps is not None
        current = self._current(u_steps, u)
        if self.current_scale is not None:
            gain = self.current_scale.gain(current) if gain is None else gain
            current = current * gain
        T, compiled = self.spiking.time_steps, self.compile_neuron
        whole_loop = compiled and not per_step and on_step is None  # only the counts are needed: fuse all T steps
        return spike_counts(self.neuron, current, T, per_step=per_step, on_step=on_step,
                            initial_membrane=initial_membrane,
                            step=compiled_step(self.neuron) if compiled and not whole_loop else None,
                            loop=compiled_counts(self.neuron, T) if whole_loop else None), gain

    def _record_activity(self, counts: torch.Tensor, phase: str) -> None:
        dims = [0] + list(range(2, counts.dim()))
        getattr(self, f"spike_counts_{phase}").add_(counts.sum(dim=dims, dtype=torch.float64))
        getattr(self, f"unit_steps_{phase}").add_(counts.numel() // counts.shape[1] * self.spiking.time_steps)

    def activity(self, per_unit: bool = False) -> dict | None:
        """Spiking mode: the firing report (:func:`liouna_snn.spiking.activity_report`) of every ``learn``
        (``learning``) and every ``forward`` (``inference``) so far; ``None`` in rate mode."""
        if self.spiking is None:
            return None
        return {phase: activity_report(getattr(self, f"spike_counts_{phase}"), getattr(self, f"unit_steps_{phase}"),
                                       per_unit) for phase in ACTIVITY_PHASES}

    def reset_activity(self) -> None:
        """Zero the spike counts of the activity report (spiking mode)."""
        if self.spiking is not None:
            for phase in ACTIVITY_PHASES:
                getattr(self, f"spike_counts_{phase}").zero_()
                getattr(self, f"unit_steps_{phase}").zero_()

    def diagnostics(self, per_unit: bool = False, initial_weight: torch.Tensor | None = None) -> dict:
        """Weight-norm spread, win frequencies and dead units (units that never won while learning).

        With ``per_unit``, also every unit's weight norm and win frequency (lists of length K). In spiking
        mode also ``activity``: the firing report while learning and at inference (see :meth:`activity`).
        With ``initial_weight`` (this layer's weight before learning), how far the units turned from it:
        ``init_cosine_mean`` / ``_min`` / ``_max``, the cosine between each unit's final and initial weight
        vector (1: the same direction, as a frozen random unit; ~0: a new one), per unit too with ``per_unit``.
        ``weight_effective_rank``: see :func:`weight_effective_rank`.
        """
        weights = self.weight.detach().flatten(1).double()
        norms = weights.norm(dim=1)
        turned = {}
        if initial_weight is not None:
            initial = initial_weight.detach().flatten(1).double().to(weights.device)
            cos = torch.nn.functional.cosine_similarity(weights, initial)
            turned = {"init_cosine_mean": float(cos.mean()), "init_cosine_min": float(cos.min()),
                      "init_cosine_max": float(cos.max())} | (
                {"unit_init_cosines": [round(float(v), 4) for v in cos]} if per_unit else {})
        wins = self.win_counts
        total = float(wins.sum())
        freq = (wins / total) if total > 0 else wins
        return {
            "units": self.out_channels,
            "weight_norm_mean": float(norms.mean()),
            "weight_norm_std": float(norms.std()) if norms.numel() > 1 else 0.0,
            "weight_norm_min": float(norms.min()),
            "weight_norm_max": float(norms.max()),
            "weight_effective_rank": weight_effective_rank(weights),
            "win_frequency_max": float(freq.max()) if total > 0 else None,
            "win_frequency_entropy_bits": float(-(freq[freq > 0] * freq[freq > 0].log2()).sum()) if total > 0 else None,
            "dead_units": int((wins == 0).sum()) if total > 0 else None,
        } | turned | ({"unit_weight_norms": [round(float(v), 4) for v in norms],
              "unit_win_frequencies": [round(float(v), 6) for v in freq]} if per_unit else {}) | (
            {"activity": self.activity(per_unit)} if self.spiking is not None else {})


class PlasticConv2d(PlasticLayer):
    """A plastic convolution: affine-free batch-norm -> padded conv -> activation -> pooling.

    Input ``(B, in_channels, H, W)``; output ``(B, out_channels, H', W')`` after pooling.
    ``norm``: ``batch`` (or true; batch statistics while learning), ``running`` (running statistics
    while learning too) or ``none`` (or false). Outside learning, ``eval()`` uses running statistics.
    ``spiking``: a :class:`liouna_snn.spiking.SpikingConfig` to run a spiking neuron for ``T`` steps in
    place of ``activation`` (which is then unused); the output is the firing rate in [0, 1] after pooling.
    ``conv_algorithm``: how the drive is computed, one of :data:`liouna_snn.rules.liouna.CONV_ALGORITHMS` (``auto``: a matrix product of
    the gathered patches on CPU, ``F.conv2d`` elsewhere; equal to float rounding).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                 padding_mode: str = "zeros", norm: bool | str = True, activation: nn.Module | None = None,
                 pool: nn.Module | None = None, rule: RuleConfig | None = None,
                 compute_dtype: torch.dtype | None = None, generator: torch.Generator | None = None,
                 spiking: SpikingConfig | None = None, conv_algorithm: str = "auto"):
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"unknown padding_mode {padding_mode!r}; allowed: {', '.join(PADDING_MODES)}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("kernel_size", kernel_size), ("stride", stride)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
        check_conv_algorithm(conv_algorithm)
        kind = _norm_kind(norm)
        super().__init__((out_channels, in_channels, kernel_size, kernel_size), ConvGeometry(stride, padding, padding_mode),
                         nn.BatchNorm2d(in_channels, affine=False) if kind != "none" else nn.Identity(),
                         activation or nn.Identity(), pool, rule or RuleConfig(), compute_dtype, generator, spiking)
        self.norm_kind = kind
        self.in_channels = in_channels
        # The master weights live in channels-last order, (K, kh, kw, C) in memory: the order in which the update
        # gathers its patches (liouna.patch_rows), so the update is computed, scaled and applied without a
        # transposing copy, and the convolutions run in oneDNN's channels-last kernels (equal to float rounding).
        self.weight.data = self.weight.data.contiguous(memory_format=torch.channels_last)
        self.conv_algorithm = conv_algorithm  # how the drive is computed, not what: not part of the identity

    def _check(self, x):
        check_input(x, 4, self.in_channels, self.__class__.__name__)
        k = self.weight.shape[-1]
        output_size(x.shape[2], k, self.geometry), output_size(x.shape[3], k, self.geometry)

    def _drive(self, x):
        cd = self.compute_dtype or x.dtype
        if use_matmul(self.conv_algorithm, x.device):
            return convolve_patches(pad(x, self.geometry), self.weight, self.geometry.stride, cd)
        return F.conv2d(pad(x, self.geometry).to(cd), self.weight.to(cd), stride=self.geometry.stride).to(x.dtype)

    def output_shape(self, input_hw: tuple[int, int]) -> tuple[int, int, int]:
        """``(C, H, W)`` of the output (after pooling) for an input of spatial size ``input_hw``."""
        k = self.weight.shape[-1]
        h, w = (output_size(s, k, self.geometry) for s in input_hw)
        with torch.no_grad():
            out = self.pool(torch.zeros(1, self.out_channels, h, w))
        return tuple(out.shape[1:])


class PlasticLinear(PlasticLayer):
    """A plastic fully connected layer: affine-free batch-norm -> linear -> activation. ``(B, D) -> (B, K)``.

    ``spiking``: as for :class:`PlasticConv2d`, a spiking neuron in place of ``activation``.
    """

    def __init__(self, in_features: int, out_features: int, *, norm: bool | str = True, activation: nn.Module | None = None,
                 rule: RuleConfig | None = None, compute_dtype: torch.dtype | None = None,
                 generator: torch.Generator | None = None, spiking: SpikingConfig | None = None):
        kind = _norm_kind(norm)
        super().__init__((out_features, in_features), LINEAR,
                         nn.BatchNorm1d(in_features, affine=False) if kind != "none" else nn.Identity(),
                         activation or nn.Identity(), None, rule or RuleConfig(), compute_dtype, generator, spiking)
        self.norm_kind = kind
        self.in_features = in_features

    def _check(self, x):
        check_input(x, 2, self.in_features, self.__class__.__name__)

    def _drive(self, x):
        cd = self.compute_dtype or x.dtype
        return F.linear(x.to(cd), self.weight.to(cd)).to(x.dtype)

    def output_shape(self, input_hw=None) -> tuple[int]:
        return (self.out_channels,)
