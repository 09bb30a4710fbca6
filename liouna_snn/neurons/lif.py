r"""The library's own leaky integrate-and-fire neuron: a pure step function and a thin module around it.

Discrete time, one step per input sample; all quantities are dimensionless (the membrane is measured
in units of the input current, so a current ``I`` raises the membrane by ``I`` in one step).

Order of operations
-------------------
The state is the membrane potential ``v[t]`` *before* its reset, exactly snnTorch's ``mem``. A spike
``s[t] = H(v[t] - threshold)`` (strict: a membrane exactly at threshold does not fire) is owed a reset
that is applied at the start of step ``t + 1``. One step, from ``v[t-1]`` and the current ``I[t]``:

1. recover the previous spike: ``s[t-1] = H(v[t-1] - threshold)``;
2. reset ``"zero"``: ``v <- v_reset`` where ``s[t-1] = 1`` (before the leak, so ``v_reset`` decays);
3. decay: ``v <- beta * v``;
4. integrate: ``v <- v + I[t]``;
5. reset ``"subtract"``: ``v <- v - threshold * s[t-1]`` (after the leak: the subtraction is *not* decayed);
6. fire: ``s[t] = H(v - threshold)``; return ``(s[t], v[t] = v)``.

In equations, from ``v[0] = 0``::

    subtract:  v[t] = beta * v[t-1] + I[t] - threshold * s[t-1]
    zero:      v[t] = beta * ((1 - s[t-1]) * v[t-1] + s[t-1] * v_reset) + I[t]
    both:      s[t] = H(v[t] - threshold)

This is snnTorch's ``snn.Leaky`` (default ``reset_delay=True``) operation for operation, so the two give
bit-identical spike trains and membranes (``"zero"`` only with ``v_reset = 0``, which is all snnTorch offers;
in float64 only for thresholds representable in float32, because snnTorch computes its reset in float32). In ``"zero"`` mode it is also Norse's ``LIFCell`` / ``LIFBoxCell`` with an instantaneous
synapse, and in ``"subtract"`` mode Norse's ``LIFBoxCell`` with the reset the wrapper gives it (see
:mod:`.backends`; Norse's own ``reset_subtract`` subtracts right after the spike, before the next leak, so for
``beta < 1`` it is another neuron: ``v[t] = beta * (v[t-1] - threshold * s[t-1]) + I[t]``). With ``beta = 1``
every convention coincides; that is :class:`IntegrateAndFire`.

:func:`lif_step` is pure (returns new tensors, autograd-safe); :func:`lif_step_` updates the membrane in
place and is what :func:`.base.run` / :func:`.base.rates` use on the state they own. Neither branches on
tensor values (only on the Python fields of :class:`LIFParameters`), so both trace under ``torch.compile``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import Neuron

RESETS = ("subtract", "zero")


@dataclass(frozen=True)
class LIFParameters:
    """Parameters of :func:`lif_step`; all dimensionless.

    Attributes:
        beta: membrane decay per time step, in [0, 1] (``beta = 1 - dt / tau_mem``, forward Euler, as Norse's
            ``1 - dt * tau_mem_inv``; 1 = no leak, 0 = no memory). Default 0.9 (tau_mem = 10 steps).
        threshold: firing threshold, > 0, in units of the input current. Default 1.0.
        reset: ``"subtract"`` (subtract ``threshold`` after a spike, keeping the excess: rate coding
            loses nothing) or ``"zero"`` (set the membrane to ``v_reset``). Default ``"subtract"``.
        v_reset: the potential a ``"zero"`` reset sets, below ``threshold``; unused by ``"subtract"``. Default 0.
    """

    beta: float = 0.9
    threshold: float = 1.0
    reset: str = "subtract"
    v_reset: float = 0.0

    def __post_init__(self):
        for name in ("beta", "threshold", "v_reset"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"LIF parameter {name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"LIF beta (decay per step) must be in [0, 1], got {self.beta}; "
                             "beta = 1 is a non-leaky integrate-and-fire neuron")
        if self.threshold <= 0:
            raise ValueError(f"LIF threshold must be > 0, got {self.threshold}")
        if self.reset not in RESETS:
            raise ValueError(f"unknown LIF reset {self.reset!r}; allowed: {', '.join(RESETS)}")
        if self.v_reset >= self.threshold:
            raise ValueError(f"LIF v_reset ({self.v_reset}) must be below the threshold ({self.threshold}), "
                             "otherwise a 'zero' reset fires on every step")


def lif_step(current: torch.Tensor, v: torch.Tensor, p: LIFParameters) -> tuple[torch.Tensor, torch.Tensor]:
    """One LIF step (see the module docstring for the order): ``(spikes[t], v[t])`` from ``current[t]`` and ``v[t-1]``.

    ``v`` is the membrane before reset (the state); it is not modified. Spikes have ``v``'s dtype.
    """
    fired = v > p.threshold  # the spikes of the previous step, owed their reset now
    if p.reset == "subtract":
        # Written as (beta * v + I) - threshold * s, the order of snnTorch's float operations.
        v = v * p.beta + current - fired.to(v.dtype) * p.threshold
    else:
        v = torch.where(fired, p.v_reset, v) * p.beta + current
    return (v > p.threshold).to(v.dtype), v


def lif_step_(current: torch.Tensor, v: torch.Tensor, p: LIFParameters,
              out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`lif_step` overwriting ``v`` in place (same values bit for bit); returns ``(spikes, v)``.

    Only for a membrane nobody else holds and no autograd graph needs (e.g. the state :func:`.base.run`
    created). With ``out`` (shaped and typed like ``v``) the spikes are written there and ``out`` is returned:
    the comparisons then write floating-point spikes directly, with no boolean-to-float conversion, which on
    CPU is most of a step's cost.
    """
    if p.reset == "zero":
        v.masked_fill_(v > p.threshold, p.v_reset)
        if p.beta != 1.0:
            v.mul_(p.beta)
        v.add_(current)
    else:
        fired = torch.gt(v, p.threshold, out=out) if out is not None else (v > p.threshold).to(v.dtype)
        if p.beta != 1.0:
            v.mul_(p.beta)
        v.add_(current)
        v.sub_(fired, alpha=p.threshold)  # threshold * {0, 1} is exact: same bits as lif_step
    if out is None:
        return (v > p.threshold).to(v.dtype), v
    return torch.gt(v, p.threshold, out=out), v


class NativeLIF(Neuron):
    """Leaky integrate-and-fire neuron, the library's fast default (:func:`lif_step` in a module).

    Args:
        beta: membrane decay per step, in [0, 1]. Default 0.9.
        threshold: firing threshold, > 0. Default 1.0.
        reset: ``"subtract"`` or ``"zero"``. Default ``"subtract"``.
        v_reset: potential set by a ``"zero"`` reset. Default 0.

    State: the membrane before reset, a tensor shaped like the current (zeros at rest).

    Example::

        lif = NativeLIF(beta=0.9)
        spikes = run(lif, torch.full((50, 2, 3), 0.3))   # currents (T, B, K) -> spikes (T, B, K)
        r = rates(lif, torch.full((2, 3), 0.3), T=50)     # constant current (B, K) -> spike count / T
    """

    def __init__(self, beta: float = 0.9, threshold: float = 1.0, reset: str = "subtract", v_reset: float = 0.0):
        super().__init__()
        self.p = LIFParameters(beta=beta, threshold=threshold, reset=reset, v_reset=v_reset)

    def init_state(self, shape, device=None, dtype=None) -> torch.Tensor:
        return torch.zeros(shape, device=device, dtype=dtype)

    def membrane_state(self, v: torch.Tensor) -> torch.Tensor:
        return v  # the membrane before reset; below threshold, no reset is owed

    def step(self, current: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return lif_step(current, state, self.p)

    def step_(self, current: torch.Tensor, state: torch.Tensor,
              out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return lif_step_(current, state, self.p, out)

    def extra_repr(self) -> str:
        p = self.p
        return f"beta={p.beta}, threshold={p.threshold}, reset={p.reset!r}" + (
            f", v_reset={p.v_reset}" if p.reset == "zero" else "")


class IntegrateAndFire(NativeLIF):
    """Non-leaky integrate-and-fire: :class:`NativeLIF` with ``beta = 1`` and reset by subtraction.

    The spiking counterpart of a clamped ReLU. From rest, under a constant current ``u`` the membrane after
    ``T`` steps is ``T * u - threshold * N_T`` (``N_T`` spikes) and, once reset, stays in ``[0, threshold]``
    for ``0 <= u <= threshold``; hence ``rate = N_T / T`` satisfies::

        limit_rate(u) - 1/T  <=  rate  <=  limit_rate(u),   limit_rate(u) = clamp(relu(u) / threshold, max=1)

    with ``rate`` exactly 0 for ``u <= 0`` and exactly 1 for ``u > threshold``. The bound ``1/T`` is attained
    at ``u = threshold`` (the first step lands exactly on threshold and, the comparison being strict, does
    not fire).

    Args:
        threshold: firing threshold, > 0. Default 1.0.
    """

    def __init__(self, threshold: float = 1.0):
        super().__init__(beta=1.0, threshold=threshold, reset="subtract")

    def limit_rate(self, current: torch.Tensor) -> torch.Tensor:
        """The rate as ``T -> infinity`` under the constant ``current``: ``clamp(relu(u) / threshold, max=1)``."""
        return (torch.relu(current) / self.p.threshold).clamp(max=1.0)

    def extra_repr(self) -> str:
        return f"threshold={self.p.threshold}"
