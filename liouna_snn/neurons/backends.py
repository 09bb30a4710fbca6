r"""snnTorch and Norse LIF neurons behind the :class:`.base.Neuron` interface, and the registry of all neurons.

These are wrappers: the membrane update is the library's own (``snn.Leaky.forward``,
``norse...lif_feed_forward_step``, ``lif_box_feed_forward_step``); the wrappers only translate
parameters, hold the state explicitly and make spiking a plain Heaviside (no surrogate gradient; this
library never backpropagates through neurons). snnTorch and Norse are imported when a wrapper is built.

Parameter mapping (our :class:`.lif.LIFParameters` on the left)
---------------------------------------------------------------
============  =========================================  ============================================
ours          snnTorch ``snn.Leaky``                     Norse ``LIFCell`` / ``LIFBoxCell``
============  =========================================  ============================================
beta          ``beta``                                   ``1 - dt * tau_mem_inv`` (forward Euler, not
                                                         ``exp(-dt * tau_mem_inv)``)
threshold     ``threshold``                              ``v_th - v_leak``; we use ``v_leak = 0``
reset         ``reset_mechanism`` "subtract" / "zero"    ``LIFCell``: reset to value only;
                                                         ``LIFBoxCell``: ``reset_method`` =
                                                         ``reset_value`` / :class:`SubtractAfterLeak`
v_reset       (none: "zero" resets to 0)                 ``v_reset`` (with ``v_leak = 0``)
current I     input, added to the membrane as is         input ``I / (dt * tau_mem_inv)``, see below
(synapse)     none                                       ``LIFCell``: ``tau_syn_inv = 1 / dt``
============  =========================================  ============================================

The Norse wrappers take their membrane in either units: ``beta`` and ``threshold`` (ours), or Norse's
``tau_mem_inv`` (1/s, at the step ``dt`` in seconds) and ``v_th``; one of each pair, not both
(``make_neuron("norse-lif", tau_mem_inv=100.0, v_th=3.0)`` is ``beta = 0.9``, ``threshold = 3``).

Why the input is rescaled for Norse. Norse integrates ``dv = dt * tau_mem_inv * (v_leak - v + i)``: the
input enters through the leak term, so one step adds ``dt * tau_mem_inv * i``, not ``i``. Feeding
``i = I / (dt * tau_mem_inv)`` gives ``v <- (1 - dt * tau_mem_inv) * v + I = beta * v + I``. (So Norse
cannot express ``beta = 1``: no leak would also mean no input. Use ``integrate-and-fire`` for that.)

Why ``tau_syn_inv = 1 / dt`` for ``LIFCell``. ``lif_feed_forward_step`` first jumps the synaptic current,
``i <- i + input``, uses that ``i`` for the membrane in the same step, then decays it,
``i <- i - dt * tau_syn_inv * i``. With ``dt * tau_syn_inv = 1`` the decay empties ``i`` exactly (``i - 1 * i
= 0``), so every step's input reaches the membrane once and immediately: a current-based LIF with an
instantaneous synapse, i.e. ``LIFBoxCell``. (Norse's default ``tau_syn_inv = 200 /s`` with ``dt = 1 ms``
would instead low-pass the input with a decay of 0.8 per step.) Norse's defaults ``tau_mem_inv = 100 /s``,
``dt = 1 ms`` are ``beta = 0.9``.

What matches what, spike for spike (see ``tests/test_neurons.py``):

* native LIF and snnTorch ``Leaky`` (default ``reset_delay=True``): bit-identical spikes and membranes for
  both resets. snnTorch computes its reset signal in float32 (``(x > 0).float()``), so in float64 the
  subtractive reset uses ``float32(threshold)``: pick a threshold representable in float32 (1.0, 0.75, ...).
* ``"zero"`` reset: native, snnTorch, Norse ``LIFCell`` and ``LIFBoxCell``. Norse's arithmetic is
  ``v + a * (I / a - v)`` rather than ``beta * v + I``, so its membranes differ from ours by a few ulp; the
  spikes are identical unless some membrane lands within that distance of the threshold. ``LIFCell`` and
  ``LIFBoxCell`` are bit-identical to each other.
* ``"subtract"`` reset: native, snnTorch and Norse ``LIFBoxCell``, with the same caveat on Norse's rounding.
  Norse's own ``reset_subtract`` is a different neuron for ``beta < 1``: it removes the threshold right after
  the spike, before the next leak (``v[t] = beta * (v[t-1] - threshold * s[t-1]) + I[t]``), while snnTorch
  and the native LIF remove it after the leak (``v[t] = beta * v[t-1] - threshold * s[t-1] + I[t]``). So the
  wrapper hands ``LIFBoxCell`` its own reset method through Norse's ``reset_method`` parameter,
  :class:`SubtractAfterLeak`, which removes ``threshold / beta`` before the leak: the leak then leaves exactly
  ``threshold`` removed, and the parameters mean the same neuron in every backend.
* snnTorch's ``reset_delay=False`` is not used: with ``"subtract"`` its "avoid double reset" correction
  leaves a membrane that is still above threshold after a reset stuck there without firing (an input of
  2.5 then 0, -0.2, ... gives one spike instead of two), so it is neither convention above.
"""
from __future__ import annotations

import inspect
import warnings

import torch

from .base import Neuron
from .lif import IntegrateAndFire, LIFParameters, NativeLIF
from .rate import RateNeuron

NORSE_DT = 1e-3
"""Norse's default integration step (s); our default ``dt`` for the Norse wrappers."""


def import_norse():
    """Import ``norse.torch`` and return it, without the ``FutureWarning`` that Norse's own ``torch.jit.script``
    decorators raise under recent torch (nothing a user of this library can act on). Later Norse imports find
    its modules loaded and do not warn."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
        import norse.torch

    return norse.torch


def beta_to_tau_mem_inv(beta: float, dt: float = NORSE_DT) -> float:
    """Norse's inverse membrane time constant (1/s) giving a decay of ``beta`` per step of ``dt`` seconds."""
    return (1.0 - beta) / dt


def tau_mem_inv_to_beta(tau_mem_inv: float, dt: float = NORSE_DT) -> float:
    """The decay per step of Norse's forward-Euler membrane: ``1 - dt * tau_mem_inv``."""
    return 1.0 - dt * tau_mem_inv


def _as_param(value: float) -> torch.Tensor:
    # float64 0-d tensors: exact for float64 runs, rounded once to float32 for float32 runs (0-d tensors
    # take the other operand's dtype), so float32 and float64 runs see the same constants as ours.
    return torch.tensor(value, dtype=torch.float64)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _norse_parameters(backend: str, beta: float | None, tau_mem_inv: float | None, threshold: float | None,
                      v_th: float | None, dt: float) -> tuple[float, float]:
    """``(beta, threshold)`` in our units from a Norse neuron's arguments, each given in our units (``beta``,
    ``threshold``) or in Norse's (``tau_mem_inv`` in 1/s at ``dt``, ``v_th`` with ``v_leak = 0``), not both.
    Neither: beta 0.9 (Norse's 100 /s at 1 ms), threshold 1.0."""
    if not (_number(dt) and dt > 0):
        raise ValueError(f"{backend}: dt (integration step in seconds) must be a positive number, got {dt!r}")
    for ours, norse, value, name in (("beta", "tau_mem_inv", beta, tau_mem_inv), ("threshold", "v_th", threshold,
                                                                                 v_th)):
        if value is not None and name is not None:
            raise ValueError(f"{backend}: give {ours} (our units) or {norse} (Norse's), not both")
    if tau_mem_inv is not None:
        if not (_number(tau_mem_inv) and 0 < tau_mem_inv * dt <= 1):
            raise ValueError(f"{backend}: tau_mem_inv (1/s) must be a number with 0 < dt * tau_mem_inv <= 1 "
                             f"(dt = {dt} s), got {tau_mem_inv!r}")
        beta = tau_mem_inv_to_beta(tau_mem_inv, dt)
    if v_th is not None:
        threshold = v_th
    return (0.9 if beta is None else beta), (1.0 if threshold is None else threshold)


def _norse_membrane(p: LIFParameters, dt: float, backend: str,
                    tau_mem_inv: float | None = None) -> tuple[float, float]:
    """``(tau_mem_inv, input_scale)`` for Norse (``tau_mem_inv`` as given, else from ``p.beta``); raises for
    parameters Norse cannot express."""
    if p.beta == 1.0:
        raise ValueError(f"{backend}: beta = 1 (no leak) is not expressible in Norse, whose input enters through "
                         "the leak term (dv = dt * tau_mem_inv * (v_leak - v + i)); use 'integrate-and-fire' "
                         "or 'native-lif'")
    if tau_mem_inv is None:
        tau_mem_inv = beta_to_tau_mem_inv(p.beta, dt)
    return tau_mem_inv, 1.0 / (dt * tau_mem_inv)


class SnnTorchLeaky(Neuron):
    """snnTorch's first-order LIF ``snn.Leaky`` (default ``reset_delay=True``, Heaviside spikes).

    Same dynamics as :class:`.lif.NativeLIF`, operation for operation (see :mod:`.lif`).

    Args:
        beta: membrane decay per step, in [0, 1]. Default 0.9.
        threshold: firing threshold, > 0. Default 1.0.
        reset: ``"subtract"`` or ``"zero"``. Default ``"subtract"``.
        v_reset: must be 0 (snnTorch's ``"zero"`` reset has no reset potential). Default 0.

    State: snnTorch's ``mem``, the membrane before reset (zeros at rest).
    """

    def __init__(self, beta: float = 0.9, threshold: float = 1.0, reset: str = "subtract", v_reset: float = 0.0):
        super().__init__()
        self.p = LIFParameters(beta=beta, threshold=threshold, reset=reset, v_reset=v_reset)
        if self.p.v_reset != 0.0:
            raise ValueError(f"snntorch-leaky: snnTorch's 'zero' reset sets the membrane to 0, so v_reset must be 0, "
                             f"got {v_reset}; use 'native-lif' or 'norse-lif' for another reset potential")
        import snntorch

        self.leaky = snntorch.Leaky(beta=_as_param(self.p.beta), threshold=_as_param(self.p.threshold),
                                    reset_mechanism=self.p.reset, surrogate_disable=True)
        # snnTorch appends every neuron to a class-level list, used only with init_hidden=True; we keep state
        # explicit, so take ours off that list rather than keep it alive there forever.
        instances = snntorch.SpikingNeuron.instances
        if any(n is self.leaky for n in instances):
            instances.remove(self.leaky)

    def init_state(self, shape, device=None, dtype=None) -> torch.Tensor:
        return torch.zeros(shape, device=device, dtype=dtype)

    def membrane_state(self, v: torch.Tensor) -> torch.Tensor:
        return v  # snnTorch's mem, before reset: below threshold, no reset is owed

    def step(self, current: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spikes, mem = self.leaky(current, state)
        return spikes.to(mem.dtype), mem  # snnTorch's spikes are always float32

    def release(self) -> None:
        """``snn.Leaky`` keeps its last membrane and reset signal as attributes (``mem``, ``reset``), a batch-sized
        tensor each: dropped, so a probe's largest batch does not stay in memory with the neuron."""
        for name in ("mem", "reset"):
            kept = getattr(self.leaky, name, None)
            if isinstance(kept, torch.Tensor):
                setattr(self.leaky, name, kept.new_zeros(0))

    def extra_repr(self) -> str:
        return f"beta={self.p.beta}, threshold={self.p.threshold}, reset={self.p.reset!r}"


class NorseLIF(Neuron):
    """Norse's current-based LIF ``LIFCell``, with an instantaneous synapse (``tau_syn_inv = 1 / dt``).

    Reset to a value only (Norse's ``LIFCell`` has no subtractive reset). Spike trains equal
    :class:`.lif.NativeLIF` with ``reset="zero"`` up to rounding (see the module docstring).

    Args:
        beta: membrane decay per step, in [0, 1). Default 0.9 (Norse's defaults: 100 /s at dt = 1 ms).
        threshold: firing threshold, > 0 (Norse ``v_th``, with ``v_leak = 0``). Default 1.0.
        reset: must be ``"zero"``. Default ``"zero"``.
        v_reset: the potential a spike resets to (Norse ``v_reset``). Default 0.
        dt: Norse's integration step in seconds: the units of ``tau_mem_inv`` and of ``cell.p``. Default 1e-3.
        tau_mem_inv: Norse's inverse membrane time constant in 1/s, in place of ``beta``
            (``beta = 1 - dt * tau_mem_inv``).
        v_th: Norse's threshold, in place of ``threshold`` (the same number: ``v_leak = 0``).

    State: Norse's ``LIFFeedForwardState(v, i)``, the membrane after reset and the (empty) synaptic current.
    """

    def __init__(self, beta: float | None = None, threshold: float | None = None, reset: str = "zero",
                 v_reset: float = 0.0, dt: float = NORSE_DT, tau_mem_inv: float | None = None,
                 v_th: float | None = None):
        super().__init__()
        beta, threshold = _norse_parameters("norse-lif", beta, tau_mem_inv, threshold, v_th, dt)
        self.p = LIFParameters(beta=beta, threshold=threshold, reset=reset, v_reset=v_reset)
        if self.p.reset != "zero":
            raise ValueError(f"norse-lif: Norse's LIFCell only resets to v_reset, so reset must be 'zero', got "
                             f"{reset!r}; use 'norse-lifbox' for Norse's subtractive reset")
        tau_mem_inv, self.input_scale = _norse_membrane(self.p, dt, "norse-lif", tau_mem_inv)
        self.dt = float(dt)
        import_norse()
        from norse.torch import LIFCell, LIFParameters as NorseLIFParameters

        self.cell = LIFCell(NorseLIFParameters(
            tau_syn_inv=_as_param(1.0 / self.dt), tau_mem_inv=_as_param(tau_mem_inv), v_leak=_as_param(0.0),
            v_th=_as_param(self.p.threshold), v_reset=_as_param(self.p.v_reset), method="heaviside"), dt=self.dt)

    def init_state(self, shape, device=None, dtype=None):
        from norse.torch.functional.lif import LIFFeedForwardState

        return LIFFeedForwardState(v=torch.zeros(shape, device=device, dtype=dtype),
                                   i=torch.zeros(shape, device=device, dtype=dtype))

    def membrane_state(self, v: torch.Tensor):
        from norse.torch.functional.lif import LIFFeedForwardState

        return LIFFeedForwardState(v=v, i=torch.zeros_like(v))  # Norse's v is in our units (v_th = threshold)

    def step(self, current: torch.Tensor, state):
        return self.cell(current * self.input_scale, state)

    def extra_repr(self) -> str:
        return f"beta={self.p.beta}, threshold={self.p.threshold}, v_reset={self.p.v_reset}, dt={self.dt}"


class SubtractAfterLeak:
    """A Norse ``ResetMethod`` (``(z, v, v_reset, v_th) -> v``) for ``LIFBoxCell`` that gives snnTorch's and the
    native LIF's subtractive reset: it removes ``v_th / beta`` from a membrane that spiked, so the next step's
    leak leaves ``beta * v - v_th`` (Norse's ``reset_subtract`` removes ``v_th``, and the leak then ``beta * v_th``).

    Args:
        beta: the cell's membrane decay per step, in (0, 1) (Norse's ``1 - dt * tau_mem_inv``).
    """

    def __init__(self, beta: float):
        if not 0.0 < beta < 1.0:
            raise ValueError(f"SubtractAfterLeak: beta (decay per step) must be in (0, 1), got {beta!r}")
        self.beta = float(beta)

    def __call__(self, z: torch.Tensor, v: torch.Tensor, v_reset: torch.Tensor, v_th: torch.Tensor) -> torch.Tensor:
        return v - z * (v_th / self.beta)

    def __repr__(self) -> str:
        return f"SubtractAfterLeak(beta={self.beta})"


class NorseLIFBox(Neuron):
    """Norse's LIF without synaptic current, ``LIFBoxCell`` (input enters the membrane directly).

    Args:
        beta: membrane decay per step, in [0, 1). Default 0.9 (Norse's defaults: 100 /s at dt = 1 ms).
        threshold: firing threshold, > 0 (Norse ``v_th``, with ``v_leak = 0``). Default 1.0.
        reset: ``"zero"`` (Norse ``reset_value``, its default) or ``"subtract"`` (:class:`SubtractAfterLeak`,
            the native LIF's and snnTorch's subtractive reset; not Norse's ``reset_subtract``, which subtracts
            before the next leak). Default ``"zero"``.
        v_reset: the potential a ``"zero"`` reset sets (Norse ``v_reset``). Default 0.
        dt: Norse's integration step in seconds: the units of ``tau_mem_inv`` and of ``cell.p``. Default 1e-3.
        tau_mem_inv: Norse's inverse membrane time constant in 1/s, in place of ``beta``
            (``beta = 1 - dt * tau_mem_inv``).
        v_th: Norse's threshold, in place of ``threshold`` (the same number: ``v_leak = 0``).

    State: Norse's ``LIFBoxFeedForwardState(v)``, the membrane after reset.
    """

    def __init__(self, beta: float | None = None, threshold: float | None = None, reset: str = "zero",
                 v_reset: float = 0.0, dt: float = NORSE_DT, tau_mem_inv: float | None = None,
                 v_th: float | None = None):
        super().__init__()
        beta, threshold = _norse_parameters("norse-lifbox", beta, tau_mem_inv, threshold, v_th, dt)
        self.p = LIFParameters(beta=beta, threshold=threshold, reset=reset, v_reset=v_reset)
        tau_mem_inv, self.input_scale = _norse_membrane(self.p, dt, "norse-lifbox", tau_mem_inv)
        if self.p.reset == "subtract" and self.p.beta == 0.0:
            raise ValueError("norse-lifbox: a subtractive reset needs beta > 0: Norse resets before the next leak, and "
                             "beta = 0 (dt * tau_mem_inv = 1) leaks all of it away; use 'native-lif' or "
                             "'snntorch-leaky'")
        self.dt = float(dt)
        import_norse()
        from norse.torch import LIFBoxCell, LIFBoxParameters
        from norse.torch.functional.reset import reset_value

        self.cell = LIFBoxCell(LIFBoxParameters(
            tau_mem_inv=_as_param(tau_mem_inv), v_leak=_as_param(0.0), v_th=_as_param(self.p.threshold),
            v_reset=_as_param(self.p.v_reset), method="heaviside",
            reset_method=SubtractAfterLeak(tau_mem_inv_to_beta(tau_mem_inv, self.dt))
            if self.p.reset == "subtract" else reset_value), dt=self.dt)

    def init_state(self, shape, device=None, dtype=None):
        from norse.torch.functional.lif_box import LIFBoxFeedForwardState

        return LIFBoxFeedForwardState(v=torch.zeros(shape, device=device, dtype=dtype))

    def membrane_state(self, v: torch.Tensor):
        from norse.torch.functional.lif_box import LIFBoxFeedForwardState

        return LIFBoxFeedForwardState(v=v)

    def step(self, current: torch.Tensor, state):
        return self.cell(current * self.input_scale, state)

    def extra_repr(self) -> str:
        return (f"beta={self.p.beta}, threshold={self.p.threshold}, reset={self.p.reset!r}, "
                f"v_reset={self.p.v_reset}, dt={self.dt}")


NEURONS: dict[str, type[Neuron]] = {
    "rate": RateNeuron,
    "native-lif": NativeLIF,
    "integrate-and-fire": IntegrateAndFire,
    "snntorch-leaky": SnnTorchLeaky,
    "norse-lif": NorseLIF,
    "norse-lifbox": NorseLIFBox,
}
"""Every neuron by name: the rate neuron (``rate``, a nonlinearity with no memory) and the spiking ones."""

SPIKING_NEURONS: tuple[str, ...] = tuple(name for name, cls in NEURONS.items() if cls.spiking)
"""The names of :data:`NEURONS` that spike: those a :class:`liouna_snn.spiking.SpikingConfig` runs."""


def neuron_parameters(name: str) -> tuple[str, ...]:
    """The keyword parameters :func:`make_neuron` accepts for the neuron ``name``."""
    if name not in NEURONS:
        raise ValueError(f"unknown neuron {name!r}; allowed: {', '.join(NEURONS)}")
    return tuple(k for k in inspect.signature(NEURONS[name].__init__).parameters if k != "self")


def make_neuron(name: str, **params) -> Neuron:
    """A neuron by registry name (see :data:`NEURONS`), e.g. ``make_neuron("native-lif", beta=0.8)`` or
    ``make_neuron("rate", activation="relu")``."""
    allowed = neuron_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for neuron {name!r}; "
                         f"allowed: {', '.join(allowed)}")
    return NEURONS[name](**params)
