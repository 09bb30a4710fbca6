r"""Spiking mode: the same layers, rule and training with spiking neurons in place of the rate activation.

One frozen record, :class:`SpikingConfig`, switches a layer (or a whole network, or an experiment's
``[spiking]`` table) from rates to spikes; nothing else changes. Per layer and per batch:

1. **Presynaptic input.** With the ``constant-current`` encoder (default) the layer's input ``x`` is
   normalised exactly as in rate mode, ``x_n = norm(x)``, and the drive ``u = W * x_n`` is computed
   once and held as the same current for ``T`` steps: only the membranes loop over time. With a spike
   encoder (``bernoulli``: ``P(spike) = x``; ``poisson``: Norse's, ``P(spike) = x * f_max * dt``) the
   input must hold rates in [0, 1] (pixels scaled to [0, 1] for the first layer, the pooled firing
   rates of the layer below for the others). The spike trains ``s_t`` of the *un-normalised* input are
   drawn first; then the layer's affine-free batch-norm, a per-channel affine map ``a * s + b``, is
   applied to every ``s_t``. Its statistics are those rate mode would use on the spike probability
   ``p`` (``x`` or ``x * f_max * dt``): batch statistics of ``p`` while learning (or running statistics
   for ``norm = "running"``), running statistics in ``eval()``. So ``mean_t(a s_t + b) -> norm(p)`` as
   ``T`` grows, and the whole drive ``W * (a s_t + b)`` of all ``T`` steps is one batched convolution.
2. **Neurons.** The layer's neuron (:func:`liouna_snn.neurons.make_neuron`, built once per layer) is
   driven by ``u`` (or ``u_t``) for ``T`` steps, less the mean drive of the layer's units at the same
   position with ``lateral_inhibition = "mean"`` (rate mode's triangle competition as an inhibitory
   current) and divided by its standard deviation with ``current_norm = "std"`` (both the defaults), from
   membranes drawn uniformly below threshold for every input while learning and at half the threshold at inference
   (the defaults; or from rest); the layer's output is the firing rate ``y = count / T`` after pooling, so the next
   layer receives rates in [0, 1]. Probes use these rates as features. The rule sees the synaptic drive ``u``.
3. **Plasticity.** ``rate``: after the ``T`` steps the rule of the rule document (section 2) is applied
   to rates, ``dW = LocalRule.delta(x, u, y)`` with ``x = mean_t`` of the normalised presynaptic input,
   ``u = mean_t u_t`` and ``y = threshold * count / T / gain``, the rate in the drive's units (the default
   ``learning_code = "current"``; ``"rate"``: ``y = count / T``; see :class:`SpikingConfig`). ``online``: low-pass traces of the presynaptic input, the
   drive and the postsynaptic spikes (:class:`Trace`, decay ``trace_decay``); at every step
   ``dW += LocalRule.delta(xbar_t, ubar_t, ybar_t)`` (the same pure function: ``corr(hbar_t, xbar_t -
   x_hat(cbar_t))`` for Liouna), and the sum divided by ``T`` is applied once per batch with the rule's
   scaling and learning rate. With long traces and large ``T`` it approaches the rate-based update.
4. **Activity report.** Every layer counts each unit's spikes while learning and at inference
   (:func:`activity_report`: mean firing rate, fraction of silent and of saturated units); it lands in
   ``PlasticLayer.diagnostics()`` and so in the results JSON.

Example::

    from liouna_snn.spiking import SpikingConfig
    cfg = SpikingConfig(neuron="native-lif", neuron_params={"beta": 0.9}, time_steps=8)   # threshold 3 std
    net = build_network(spec, rules, spiking=cfg)        # every layer spiking, same training code
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .neurons import NEURONS, SPIKING_NEURONS, LIFParameters, Neuron, bernoulli_rate, make_neuron, poisson_rate
from .neurons.base import CountFunction, StepFunction
from .neurons.backends import NORSE_DT

ENCODERS = ("constant-current", "bernoulli", "poisson")
PLASTICITIES = ("rate", "online")
LATERAL_INHIBITIONS = ("none", "mean")
CURRENT_NORMS = ("none", "std")
CURRENT_CALIBRATIONS = ("running", "exact")
LEARNING_CODES = ("rate", "current")
INITIAL_MEMBRANES = ("rest", "uniform", "half")
ENCODER_PARAMS: dict[str, dict[str, float]] = {
    "constant-current": {},
    "bernoulli": {},
    "poisson": {"f_max": 100.0, "dt": NORSE_DT},  # Norse's defaults: at most 0.1 spike per step
}
"""The parameters each encoder takes, with their defaults."""
STD_CURRENT_THRESHOLD = 3.0
"""The threshold a neuron gets with ``current_norm = "std"`` where its parameters give none, in standard deviations of
the layer's current: the value that measured best on issue 4's benchmark (2 lost 1.4 points with the integrate-and-fire
neuron; README, "Rate versus spiking")."""
LEGACY_DEFAULTS = {"lateral_inhibition": "none", "current_norm": "none", "current_calibration": "running",
                   "initial_membrane": "rest", "inference_initial_membrane": None, "learning_code": "rate"}
"""The defaults of the options that changed or came after the first spiking runs: what a results record or a
checkpoint's identity that lacks one of them ran with (:func:`with_legacy_defaults`)."""


@dataclass(frozen=True)
class SpikingConfig:
    """How a layer spikes and learns in spiking mode (see the module docstring). Frozen; validated on creation.

    Attributes:
        neuron: the spiking neuron, a name of :data:`liouna_snn.neurons.SPIKING_NEURONS` (``native-lif``,
            ``integrate-and-fire``, ``snntorch-leaky``, ``norse-lif``, ``norse-lifbox``). Default ``native-lif``.
        neuron_params: keyword parameters of :func:`liouna_snn.neurons.make_neuron` for that neuron
            (e.g. ``{"beta": 0.9, "threshold": 1.0}``); defaults are the neuron's, except that with ``current_norm =
            "std"`` a neuron given no threshold (``threshold``, or Norse's ``v_th``) gets
            :data:`STD_CURRENT_THRESHOLD` (3 standard deviations), which the config then holds like a given one
            (records show it; ``dataclasses.replace`` keeps it). Copied on creation.
        time_steps: ``T``, steps per input, >= 1. Default 8.
        encoder: ``constant-current`` (the drive ``W * norm(x)`` computed once, the same current every step),
            ``bernoulli`` (``P(spike) = x`` per step; ``x`` in [0, 1]) or ``poisson`` (Norse's encoder,
            ``P(spike) = x * f_max * dt``; ``x`` in [0, 1]). Default ``constant-current``.
        encoder_params: ``poisson`` only: ``f_max`` (Hz, default 100) and ``dt`` (s, default 1e-3), with
            ``f_max * dt <= 1``.
        plasticity: ``rate`` (the rule on rates after the ``T`` steps) or ``online`` (trace-based, every step).
            Default ``rate``.
        trace_decay: decay per step of the ``online`` traces, in [0, 1]: 0 = the current step only, 1 = the
            running mean of all steps so far. Unused by ``rate``. Default 0.9.
        lateral_inhibition: ``none`` (each neuron is driven by its own drive ``u_k``) or ``mean`` (an
            inhibitory current equal to the mean drive of all the layer's units at the same position is
            subtracted: ``I_k = u_k - mean_j u_j``, the competition of rate mode's triangle activation
            ``relu(u - mean u)^p``; see :func:`neuron_current`). Default ``mean``.
        current_norm: ``none`` (the current is the drive, in the drive's units) or ``std`` (the current is
            divided by its standard deviation over the layer's units, positions and samples: a per-layer
            gain, so ``threshold`` is in units of that standard deviation and the firing does not depend on
            the scale of the weights; batch statistic while learning and in ``train()``, a running estimate
            in ``eval()``; see :class:`CurrentScale`). Default ``std``.
        current_calibration: with ``current_norm = "std"``, the standard deviation the forward pass divides by
            (``eval()``: the next layer's input and the probes' features). ``running``: the moving estimate the
            learning batches leave (about the last 10 batches, at batch 10 about 100 images: it can be off by tens
            of percent, and the threshold with it). ``exact``: the training schedule recomputes it when the layer
            stops learning, as the average over :data:`liouna_snn.training.CALIBRATION_IMAGES` training images with the final weights,
            before any layer above learns from this one (:func:`liouna_snn.training.calibrate_current_scales`).
            Learning steps divide by their own batch's either way. Default ``running``.
        initial_membrane: where the membranes start for each input: ``rest`` (0) or ``uniform`` (drawn
            independently for every unit, position and input, uniform between the reset potential and the
            threshold; see :func:`initial_membranes`). With ``uniform`` an integrate-and-fire neuron's expected
            count is exactly ``T * I / threshold`` for currents ``0 <= I <= threshold``: no current is too weak to
            fire now and then, where from rest ``I <= threshold / T`` never fires. ``half``: every membrane starts
            midway between the reset potential and the threshold, so an integrate-and-fire neuron counts
            ``T * I / threshold`` rounded (an exact half down: it fires above threshold): deterministic, at most half
            a spike off, without the dead zone of ``rest`` or the noise of ``uniform``. Default ``uniform``.
        inference_initial_membrane: the same choice for the layer's forward pass only (its output to the next
            layer and to probes, :meth:`PlasticLayer.forward`), where ``initial_membrane`` then governs only the
            learning step; ``None``: ``initial_membrane`` in both (a TOML table, which cannot write ``None``, gives
            the same start as ``initial_membrane`` for that; :func:`spiking_config`). Default ``half``, whatever
            ``initial_membrane`` is. ``initial_membrane = "uniform"`` with
            ``inference_initial_membrane = "half"`` learns on stochastically rounded counts (unbiased: the update
            is right on average, as with rates) and infers with deterministically rounded ones (no noise in the
            features): see :attr:`membrane_at_inference`.
        learning_code: what the rule reads as the layer's output ``y`` in a learning step. ``rate``: the firing
            rate ``count / T`` (spikes per step, in [0, 1]). ``current``: that rate in the units of the drive, ``y =
            threshold * count / T / gain`` (``gain``: the step's :class:`CurrentScale` gain, 1 with ``current_norm =
            "none"``). For an integrate-and-fire neuron with mean inhibition this is, on average, rate mode's
            triangle activation of power 1, ``relu(u - mean_k u)``, clipped at ``threshold / gain``: it grows with
            the weights as rate mode's output does, so the rule's top-down prediction ``sum_k y_k w_k`` balances
            the input at rate mode's weight norms and a norm-adaptive learning rate anneals as it does in rate mode.
            With ``rate`` the output is fixed by the threshold whatever the weights, so the norms settle several
            times larger (and that learning rate stays high to the end of the epoch). The layer's output to the
            next layer and to probes is the firing rate either way. Default ``current``.

    The defaults are the configuration that measured best on issue 4's benchmark (the README's "Rate versus
    spiking"): mean inhibition, the current in standard deviations with threshold 3, uniform membranes while
    learning and half-threshold ones at inference, learning from the rate in the drive's units. Records and
    checkpoints written before they were the defaults mean :data:`LEGACY_DEFAULTS` for the options they lack.
    """

    neuron: str = "native-lif"
    neuron_params: dict = field(default_factory=dict)
    time_steps: int = 8
    encoder: str = "constant-current"
    encoder_params: dict = field(default_factory=dict)
    plasticity: str = "rate"
    trace_decay: float = 0.9
    lateral_inhibition: str = "mean"
    current_norm: str = "std"
    current_calibration: str = "running"
    initial_membrane: str = "uniform"
    inference_initial_membrane: str | None = "half"
    learning_code: str = "current"

    def __post_init__(self):
        def allowed(name, value, options):
            if value not in options:
                raise ValueError(f"spiking option {name}={value!r} is not allowed; choose one of: {', '.join(options)}")

        if isinstance(self.neuron, str) and self.neuron in NEURONS and self.neuron not in SPIKING_NEURONS:
            raise ValueError(f"spiking option neuron={self.neuron!r} is a rate neuron, which does not spike: run "
                             f"rate mode (no spiking config) for it, or choose one of: {', '.join(SPIKING_NEURONS)}")
        allowed("neuron", self.neuron, SPIKING_NEURONS)
        allowed("encoder", self.encoder, ENCODERS)
        allowed("plasticity", self.plasticity, PLASTICITIES)
        allowed("lateral_inhibition", self.lateral_inhibition, LATERAL_INHIBITIONS)
        allowed("current_norm", self.current_norm, CURRENT_NORMS)
        allowed("current_calibration", self.current_calibration, CURRENT_CALIBRATIONS)
        if self.current_calibration != "running" and self.current_norm == "none":
            raise ValueError(f"spiking option current_calibration={self.current_calibration!r} calibrates the "
                             f"current's standard deviation, which only current_norm = 'std' divides by; set "
                             f"current_norm = 'std' or leave current_calibration at 'running'")
        allowed("initial_membrane", self.initial_membrane, INITIAL_MEMBRANES)
        if self.inference_initial_membrane is not None:
            allowed("inference_initial_membrane", self.inference_initial_membrane, INITIAL_MEMBRANES)
        allowed("learning_code", self.learning_code, LEARNING_CODES)
        T = self.time_steps
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"spiking option time_steps={T!r} must be a positive integer (the number of steps T)")
        d = self.trace_decay
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not (math.isfinite(d) and 0.0 <= d <= 1.0):
            raise ValueError(f"spiking option trace_decay={d!r} must be a number in [0, 1] "
                             "(0: the current step only, 1: the running mean of all steps)")
        for name in ("neuron_params", "encoder_params"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"spiking option {name} must be a table/dict, got {getattr(self, name)!r}")
            object.__setattr__(self, name, dict(getattr(self, name)))
        given = dict(self.neuron_params)
        object.__setattr__(self, "neuron_params", with_default_threshold(given, self.current_norm))
        object.__setattr__(self, "trace_decay", float(d))
        try:
            make_neuron(self.neuron, **self.neuron_params)  # the neuron's own checks, with its own messages
        except ValueError as err:
            default = "" if given == self.neuron_params else f" (with the default threshold {STD_CURRENT_THRESHOLD})"
            raise ValueError(f"spiking option neuron_params={given!r}{default}: {err}") from None
        known = ENCODER_PARAMS[self.encoder]
        unknown = sorted(set(self.encoder_params) - set(known))
        if unknown:
            raise ValueError(f"spiking option encoder_params: unknown key(s) {unknown} for encoder {self.encoder!r}; "
                             f"allowed: {', '.join(known) or 'none'}")
        if self.encoder == "poisson":
            f_max, dt = self.poisson_params
            if not (f_max > 0 and dt > 0 and f_max * dt <= 1):
                raise ValueError(f"spiking option encoder_params: poisson needs f_max > 0 Hz and dt > 0 s with "
                                 f"f_max * dt <= 1, got f_max={f_max}, dt={dt}")

    @property
    def membrane_at_inference(self) -> str:
        """Where the membranes start in the forward pass: ``inference_initial_membrane``, else ``initial_membrane``."""
        return self.inference_initial_membrane or self.initial_membrane

    @property
    def encodes_spikes(self) -> bool:
        """True for the spike encoders (``bernoulli``, ``poisson``), whose input must hold rates in [0, 1]."""
        return self.encoder != "constant-current"

    @property
    def poisson_params(self) -> tuple[float, float]:
        """``(f_max, dt)`` of the ``poisson`` encoder, defaults filled in."""
        p = {**ENCODER_PARAMS["poisson"], **self.encoder_params}
        return float(p["f_max"]), float(p["dt"])

    @property
    def spike_probability(self) -> float:
        """``P(spike) / x`` of the encoder: 1 for ``bernoulli``, ``f_max * dt`` for ``poisson``."""
        if self.encoder == "poisson":
            f_max, dt = self.poisson_params
            return f_max * dt
        return 1.0

    def make_neuron(self) -> Neuron:
        """A fresh neuron of this config (one per layer)."""
        return make_neuron(self.neuron, **self.neuron_params)

    def to_dict(self) -> dict:
        """A plain dict of the fields (for results files)."""
        return dataclasses.asdict(self)


def with_default_threshold(neuron_params: dict, current_norm: str) -> dict:
    """``neuron_params`` (a copy) with :data:`STD_CURRENT_THRESHOLD` as ``threshold`` where ``current_norm`` is
    ``std`` and they give none (neither ``threshold`` nor Norse's ``v_th``): the neuron a :class:`SpikingConfig`
    builds from them."""
    if current_norm == "std" and not {"threshold", "v_th"} & set(neuron_params):
        return {**neuron_params, "threshold": STD_CURRENT_THRESHOLD}
    return dict(neuron_params)


def with_legacy_defaults(options: dict) -> dict:
    """A recorded :meth:`SpikingConfig.to_dict` with every field it lacks filled in: from :data:`LEGACY_DEFAULTS`
    for the options it predates, else the current default. So a record or checkpoint written before an option
    existed, or before its default changed, still matches the run it describes."""
    return {**dataclasses.asdict(SpikingConfig(**LEGACY_DEFAULTS)), **options}


def spiking_config(table: dict, where: str = "[spiking]") -> SpikingConfig:
    """A :class:`SpikingConfig` from a TOML table; unknown keys raise a ``ValueError`` listing the allowed ones.
    TOML has no ``None``: an ``inference_initial_membrane`` equal to ``initial_membrane`` is read as ``None``, the
    same start in both phases (so a config that spells it out is the config that ran without it)."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table of spiking options, got {table!r}")
    fields = [f.name for f in dataclasses.fields(SpikingConfig)]
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(fields)}")
    if "inference_initial_membrane" in table and table["inference_initial_membrane"] == table.get(
            "initial_membrane", SpikingConfig.initial_membrane):
        table = {**table, "inference_initial_membrane": None}
    try:
        return SpikingConfig(**table)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def generator_on(device: torch.device | str, generator: torch.Generator | None) -> torch.Generator | None:
    """A generator on ``device`` for one learning step's draws: ``generator`` itself where it lives there (or is
    ``None``); else a new one on ``device`` seeded by one draw of ``generator``, so a run seeded with a CPU
    generator stays deterministic on a GPU while its spike trains and membranes (``T x B x C x H x W`` draws per
    step) are drawn where they are used instead of crossing the bus."""
    device = torch.device(device)
    if generator is None or generator.device.type == device.type and (
            device.index is None or generator.device.index in (None, device.index)):
        return generator
    seed = int(torch.randint(0, 2 ** 62, (), generator=generator, device=generator.device))
    return torch.Generator(device=device).manual_seed(seed)


def encode(x: torch.Tensor, config: SpikingConfig, generator: torch.Generator | None = None,
           where: str = "spiking layer") -> torch.Tensor:
    """Spike trains ``(T, *x.shape)`` of the rates ``x`` (in [0, 1]) with ``config``'s spike encoder.

    ``generator`` may live on another device than ``x`` (e.g. a CPU generator for deterministic runs):
    the draws are then made there and moved to ``x``'s device. Raises a ``ValueError`` naming ``where``
    and the range found when ``x`` leaves [0, 1].
    """
    if not config.encodes_spikes:
        drawing = ", ".join(e for e in ENCODERS if e != "constant-current")
        raise ValueError(f"{where}: encoder {config.encoder!r} draws no spikes; the encoders that do: {drawing}")
    lo, hi = torch.aminmax(x)
    if not (float(lo) >= 0.0 and float(hi) <= 1.0):
        raise ValueError(
            f"{where}: the {config.encoder!r} encoder needs input rates in [0, 1] (P(spike) = x), got values in "
            f"[{float(lo):.4g}, {float(hi):.4g}]. Feed pixels scaled to [0, 1], not standardised (run_experiment "
            "does so in spiking mode with a spike encoder; the layer's batch-norm normalises after encoding), "
            "or use encoder = 'constant-current'")
    source = x if generator is None or generator.device == x.device else x.to(generator.device)
    T = config.time_steps
    if config.encoder == "bernoulli":
        spikes = bernoulli_rate(source, T, generator=generator)
    else:
        f_max, dt = config.poisson_params
        spikes = poisson_rate(source, T, f_max=f_max, dt=dt, generator=generator)
    return spikes.to(device=x.device, dtype=x.dtype)


def neuron_current(drive: torch.Tensor, lateral_inhibition: str, channel_dim: int = 1) -> torch.Tensor:
    """The current into a layer's neurons from its synaptic drive ``u`` (any shape, units along ``channel_dim``).

    ``none``: ``u`` itself. ``mean``: ``u - mean_k u``, a feedforward inhibitory current equal to the mean
    drive of the layer's units at the same position and time step (as from an interneuron pool that sums
    them): only units driven above their neighbours' average can reach threshold. An integrate-and-fire
    neuron then fires at ``clamp(relu(u - mean_k u) / threshold, max=1)`` within ``1/T``, rate mode's
    triangle activation with power 1.
    """
    if lateral_inhibition == "none":
        return drive
    if lateral_inhibition == "mean":
        return drive - drive.mean(dim=channel_dim, keepdim=True)
    raise ValueError(f"lateral_inhibition={lateral_inhibition!r} is not allowed; "
                     f"choose one of: {', '.join(LATERAL_INHIBITIONS)}")


class CurrentScale(nn.Module):
    """A layer's homeostatic gain: divides the neurons' current by its standard deviation (``current_norm = "std"``).

    ``forward(current)`` returns ``current / sqrt(var + eps)`` with ``var`` the variance of all elements of
    ``current`` (any shape: units, positions, samples and time steps alike). In ``train()`` mode ``var`` is
    the batch's, and the running estimate ``running_var`` is the cumulative average of the batches since
    :meth:`reset_running_stats` until there are ``1 / momentum`` of them, then moves toward each new batch by
    ``momentum`` (``None``: the cumulative average throughout, what :func:`liouna_snn.training.recalibrate_norms`
    uses). Unlike batch-norm's, the estimate thus never mixes in its initial value: the gain sets whether the
    neurons fire at all, and a few batches (a short greedy phase) must already give the right one. In
    ``eval()`` mode ``running_var`` is used. The
    current stays in its own units otherwise, so a spike threshold of ``2`` is two standard deviations.
    """

    def __init__(self, momentum: float | None = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_var", torch.ones((), dtype=torch.float32))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def reset_running_stats(self) -> None:
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def gain(self, current: torch.Tensor) -> torch.Tensor:
        """``1 / sqrt(var + eps)``, a 0-dim tensor of ``current``'s dtype; in ``train()`` mode ``var`` is the
        batch's and the running estimate is updated (once per call)."""
        if self.training:
            var = current.float().var(unbiased=False).detach()
            self.num_batches_tracked += 1
            weight = self.num_batches_tracked.reciprocal()  # the cumulative average of the batches so far ...
            if self.momentum is not None:  # ... until it would weigh the new batch below momentum
                weight = weight.clamp(min=self.momentum)
            self.running_var.lerp_(var.to(self.running_var), weight)
        else:
            var = self.running_var
        return (var + self.eps).rsqrt().to(current.dtype)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return current * self.gain(current)


class Trace:
    """A low-pass trace: the average of the past values weighted by ``decay ** age``.

    ``value_t = m_t / z_t`` with ``m_t = decay * m_{t-1} + a_t`` and ``z_t = decay * z_{t-1} + 1`` (an
    exponential moving average without the start-up bias towards 0): ``decay = 0`` is the current value,
    ``decay = 1`` the running mean of every value so far, and a constant input has a constant trace.
    """

    def __init__(self, decay: float):
        self.decay = float(decay)
        self.m: torch.Tensor | None = None
        self.z = 0.0

    def update(self, a: torch.Tensor) -> torch.Tensor:
        """Add the value of this step; returns the trace."""
        self.m = a.clone() if self.m is None else self.m.mul_(self.decay).add_(a)
        self.z = self.decay * self.z + 1.0
        return self.m / self.z


@torch.no_grad()
def initial_membranes(neuron: Neuron, shape: torch.Size | tuple[int, ...], device: torch.device | str,
                      dtype: torch.dtype, generator: torch.Generator | None = None,
                      mode: str = "uniform") -> torch.Tensor:
    """Membrane potentials ``(shape)`` drawn uniformly in ``[v_reset, threshold)`` of ``neuron`` (``[0, threshold)``
    for a subtractive reset), independently per element: the ``uniform`` initial membrane of :class:`SpikingConfig`.
    ``mode = "half"``: every potential at the middle of that range (no draw), the ``half`` initial membrane.

    Each neuron thus starts somewhere in the range its membrane sweeps between spikes, as if the previous input
    had left it there. ``generator`` may live on another device than ``device`` (e.g. a CPU generator for
    deterministic runs): the draws are made there and moved. Needs a neuron with LIF parameters (``neuron.p``).
    """
    if mode not in ("uniform", "half"):
        raise ValueError(f"initial membranes: mode must be 'uniform' or 'half', got {mode!r}")
    p = getattr(neuron, "p", None)
    if not isinstance(p, LIFParameters):
        raise ValueError(f"initial_membrane = {mode!r} needs a neuron with a threshold and a reset (LIFParameters "
                         f"as .p); {type(neuron).__name__} has none")
    low = p.v_reset if p.reset == "zero" else 0.0
    if mode == "half":
        return torch.full(shape, (low + p.threshold) / 2, device=device, dtype=dtype)
    where = device if generator is None else generator.device
    v = torch.rand(shape, generator=generator, device=where, dtype=torch.float32)
    return (v * (p.threshold - low) + low).to(device=device, dtype=dtype)


@torch.no_grad()
def spike_counts(neuron: Neuron, current: torch.Tensor, T: int, *, per_step: bool = False,
                 on_step: Callable[[int, torch.Tensor], None] | None = None,
                 initial_membrane: torch.Tensor | None = None, step: StepFunction | None = None,
                 loop: CountFunction | None = None) -> torch.Tensor:
    """Spike count of every unit over ``T`` steps of ``neuron``, from rest or from ``initial_membrane``.

    Args:
        neuron: a :class:`liouna_snn.neurons.Neuron`.
        current: the constant current ``(B, ...)``, or with ``per_step`` one current per step ``(T, B, ...)``.
        T: number of steps.
        per_step: whether ``current`` has a leading time dimension.
        on_step: called as ``on_step(t, spikes)`` after every step (e.g. online plasticity); ``spikes`` is
            overwritten by the next step, so copy what must outlive the call.
        initial_membrane: the membranes at the start, shaped like one step's current (e.g. from
            :func:`initial_membranes`); ``None`` starts from rest. Not modified.
        step: the step to run instead of the neuron's in-place ``neuron.step_``, e.g.
            :func:`liouna_snn.neurons.compiled_step` of ``neuron``; called as ``step(current, state)``.
        loop: the whole ``T``-step loop to run instead, e.g. :func:`liouna_snn.neurons.compiled_counts` of
            ``neuron`` and ``T``; called as ``loop(current, state)``, it returns the counts. Only for a constant
            current without ``on_step`` (it has no per-step spikes to show); takes precedence over ``step``.

    Returns the counts, shaped like one step's current (values 0..T, ``current``'s dtype).
    """
    shape = current.shape[1:] if per_step else current.shape
    # The states are in the standard layout (init_state, initial_membranes); a current in another (a convolution's
    # channels-last output) would make the fused loop read one of them strided: ~40x slower on CPU. One copy.
    current = current.contiguous()
    if initial_membrane is None:
        state = neuron.init_state(shape, current.device, current.dtype)
    else:
        if initial_membrane.shape != shape:
            raise ValueError(f"spike_counts: initial_membrane has shape {tuple(initial_membrane.shape)}, but one "
                             f"step's current has shape {tuple(shape)}")
        state = neuron.membrane_state(initial_membrane.to(current.dtype, memory_format=torch.contiguous_format,
                                                          copy=True))
    if loop is not None:
        if per_step or on_step is not None:
            raise ValueError("spike_counts: loop runs a constant current without per-step callbacks; with per_step "
                             "currents or on_step pass step (or nothing) instead")
        count = loop(current, state)
        neuron.release()
        return count
    count = torch.zeros(shape, device=current.device, dtype=current.dtype)
    spikes = torch.empty_like(count)  # one buffer, overwritten by every step
    for t in range(T):
        now = current[t] if per_step else current
        if step is None:
            spikes, state = neuron.step_(now, state, out=spikes)
        else:
            spikes, state = step(now, state)
        count += spikes
        if on_step is not None:
            on_step(t, spikes)
    neuron.release()
    return count


class OnlineUpdate:
    """Online plasticity over the ``T`` steps of one batch: ``dW = 1/T sum_t delta(xbar_t, ubar_t, ybar_t)``.

    ``delta(x, u, y)`` is the rule's pure update (e.g. ``LocalRule.delta`` bound to the layer's weights);
    ``x`` and ``u`` are the presynaptic input and the drive, constant ``(B, ...)`` or per step ``(T, B, ...)``.
    Pass the object as ``on_step`` to :func:`spike_counts`; the postsynaptic trace is of that run's spikes.
    """

    def __init__(self, delta: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                 x: torch.Tensor, u: torch.Tensor, per_step: bool, decay: float):
        self.delta, self.x, self.u, self.per_step = delta, x, u, per_step
        self.x_trace, self.u_trace, self.y_trace = Trace(decay), Trace(decay), Trace(decay)
        self.sum: torch.Tensor | None = None
        self.steps = 0

    def __call__(self, t: int, spikes: torch.Tensor) -> None:
        if self.per_step:  # a constant signal's trace is the signal itself
            x, u = self.x_trace.update(self.x[t]), self.u_trace.update(self.u[t])
        else:
            x, u = self.x, self.u
        dw = self.delta(x, u, self.y_trace.update(spikes))
        self.sum = dw if self.sum is None else self.sum.add_(dw)
        self.steps += 1

    def result(self) -> torch.Tensor:
        """The accumulated ``dW`` divided by the number of steps."""
        if self.sum is None:
            raise RuntimeError("OnlineUpdate.result() before any step")
        return self.sum / self.steps


def activity_report(spike_counts: torch.Tensor, unit_steps: float, per_unit: bool = False) -> dict | None:
    """Firing statistics of ``K`` units from their total spike counts ``(K,)`` over ``unit_steps`` steps each.

    ``unit_steps`` counts every (sample, position, time step) a unit was simulated. Returns ``None`` before
    any step; otherwise the mean firing rate (spikes per step) over units, the largest unit rate, the
    fraction of silent units (never fired) and of saturated units (fired at every step), and with
    ``per_unit`` every unit's rate.
    """
    steps = float(unit_steps)
    if steps <= 0:
        return None
    counts = spike_counts.detach().double()
    rates = counts / steps
    report = {
        "firing_rate_mean": float(rates.mean()),
        "firing_rate_max": float(rates.max()),
        "silent_fraction": float((counts == 0).double().mean()),
        "saturated_fraction": float((counts == steps).double().mean()),
        "unit_steps": int(steps),
    }
    if per_unit:
        report["unit_firing_rates"] = [round(float(r), 6) for r in rates]
    return report
