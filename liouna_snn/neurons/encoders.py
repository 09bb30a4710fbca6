"""Input encoders for the spiking mode: turn a static input ``x`` into what the first layer sees over ``T`` steps.

* :func:`bernoulli_rate` - rate coding, one Bernoulli draw per step with ``P(spike) = x``;
* :func:`poisson_rate` - Norse's Poisson encoder, rates in Hz for a step of ``dt`` seconds;
* :func:`constant_current` - no spikes at all: ``x`` itself is the input at every step, so the caller
  computes the input convolution once and only the membranes loop over time;
* :func:`latency` - one spike per input, earlier for larger ``x``.

Spike trains are time-first, ``(T, *x.shape)``, with values in {0, 1} and ``x``'s floating dtype.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .base import _check_steps


def _unit_interval(x: torch.Tensor, where: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise ValueError(f"{where}: x must hold probabilities in [0, 1] (e.g. pixel intensities scaled to [0, 1], "
                         f"not normalised), got values in [{float(x.min()):.4g}, {float(x.max()):.4g}]"
                         + ("" if torch.isfinite(x).all() else " including NaN or Inf"))
    return x


def bernoulli_rate(x: torch.Tensor, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rate-coded spikes ``(T, *x.shape)``: independently at every step, ``spike = 1`` with probability ``x``.

    The spike count over ``T`` steps is Binomial(``T``, ``x``), so the empirical rate is ``x`` to within
    ``sqrt(x (1 - x) / T)`` (one standard deviation). Deterministic for a seeded ``generator`` (which must
    live on ``x``'s device). Raises ``ValueError`` unless every ``x`` is in [0, 1].
    """
    _check_steps(T, "bernoulli_rate")
    x = _unit_interval(x, "bernoulli_rate")
    u = torch.rand((T, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return (u < x).to(x.dtype)  # u in [0, 1): P(u < x) = x, never for x = 0, always for x = 1


def poisson_rate(x: torch.Tensor, T: int, f_max: float = 100.0, dt: float = 1e-3,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Norse's Poisson encoder (``norse.torch.functional.encode.poisson_encode``): spikes ``(T, *x.shape)``.

    A unit with value ``x`` in [0, 1] fires at ``x * f_max`` Hz, discretised as a Bernoulli draw per step of
    ``dt`` seconds with ``P(spike) = x * f_max * dt``: over ``T`` steps it emits ``T * dt * f_max * x`` spikes on
    average. Norse's defaults (``f_max = 100`` Hz, ``dt = 1`` ms) give at most 0.1 spike per step;
    ``f_max * dt = 1`` is :func:`bernoulli_rate` (same draws for the same generator, in float32).

    Args:
        x: values in [0, 1].
        T: number of steps.
        f_max: firing rate of ``x = 1``, in Hz (spikes per second). Default 100.
        dt: step length in seconds; ``f_max * dt`` must be <= 1. Default 1e-3.
        generator: optional seeded generator on ``x``'s device.

    Returns float32 spikes (Norse's choice).
    """
    _check_steps(T, "poisson_rate")
    x = _unit_interval(x, "poisson_rate")
    if not (f_max > 0 and dt > 0 and f_max * dt <= 1):
        raise ValueError(f"poisson_rate: need f_max > 0 Hz and dt > 0 s with f_max * dt <= 1 (at most one spike per "
                         f"step), got f_max={f_max}, dt={dt} (f_max * dt = {f_max * dt:.4g})")
    from .backends import import_norse

    import_norse()
    from norse.torch.functional.encode import poisson_encode

    return poisson_encode(x, T, f_max=f_max, dt=dt, generator=generator)


class ConstantInput(NamedTuple):
    """A static input held for ``T`` steps: drive every step with the same ``value`` (see :func:`constant_current`)."""

    value: torch.Tensor
    T: int


def constant_current(x: torch.Tensor, T: int) -> ConstantInput:
    """``x`` unchanged, with ``T``: the input is the constant current ``x`` at each of ``T`` steps.

    Nothing is repeated over time: the caller computes the drive ``W * x`` once and holds it, e.g.
    ``rates(neuron, conv(x), T)``. Unpacks as ``x, T = constant_current(x, T)``.
    """
    _check_steps(T, "constant_current")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"constant_current: expected a torch.Tensor, got {type(x).__name__}")
    return ConstantInput(x, T)


def latency(x: torch.Tensor, T: int) -> torch.Tensor:
    """Latency coding ``(T, *x.shape)``: each input fires once, at step ``floor((1 - x) * T)``, or never.

    ``x = 1`` fires at step 0, larger ``x`` never fires later, ``x`` in ``(0, 1/T]`` fires at the last
    step ``T - 1`` and ``x = 0`` never fires (its step would be ``T``; so do values so small that ``1 - x``
    rounds to 1). Raises ``ValueError`` unless every ``x`` is in [0, 1].
    """
    _check_steps(T, "latency")
    x = _unit_interval(x, "latency")
    fire_at = torch.floor((1 - x) * T)
    steps = torch.arange(T, device=x.device, dtype=x.dtype).view(T, *([1] * x.dim()))
    return (steps == fire_at).to(x.dtype)
