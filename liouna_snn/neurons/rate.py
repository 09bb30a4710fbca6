"""Rate neurons: stateless nonlinearities ``y = act(u)`` applied to a drive ``u (B, K, ...)``.

The nonlinearities are plain modules (:data:`ACTIVATIONS`, :func:`make_activation`); :class:`RateNeuron` puts one
behind the :class:`.base.Neuron` interface, so a rate-mode layer's neuron is driven, looped and swapped like a
spiking one (``make_neuron("rate", activation="triangle", power=0.7)``).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Neuron


class Triangle(nn.Module):
    """``y = relu(u - mean_k u) ** power``: the unit's drive above the mean over units (dim 1) at its position."""

    def __init__(self, power: float = 1.0):
        super().__init__()
        if power <= 0:
            raise ValueError(f"triangle power must be > 0, got {power}")
        self.power = float(power)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.rectify(self.centre(u))

    @staticmethod
    def centre(u: torch.Tensor) -> torch.Tensor:
        """``u - mean_k u``: the drive relative to the other units at its position."""
        return u - u.mean(dim=1, keepdim=True)

    def rectify(self, z: torch.Tensor) -> torch.Tensor:
        """``relu(z) ** power``: element-wise and non-decreasing, so a max pool commutes with it."""
        y = torch.relu(z)
        if self.power == 1.0:
            return y
        if torch.compiler.is_compiling():
            # inductor's scalar pow is not vectorised on CPU; exp(p log y) is (0 stays 0), equal to ~1e-6 relative
            return torch.exp(self.power * torch.log(y))
        return y.pow(self.power)

    def extra_repr(self) -> str:
        return f"power={self.power}"


ACTIVATIONS = {
    "triangle": Triangle,
    "relu": nn.ReLU,
    "identity": nn.Identity,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def make_activation(name: str, **params) -> nn.Module:
    """A rate nonlinearity by name (``triangle`` takes ``power``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")
    try:
        return ACTIVATIONS[name](**params)
    except TypeError as err:
        raise ValueError(f"bad parameters {params} for activation {name!r}: {err}") from None


class RateNeuron(Neuron):
    """A rate nonlinearity behind the :class:`.base.Neuron` interface: no memory, and at every step the activity
    ``act(current)`` (a rate, not a spike: any real value the nonlinearity gives, same shape and dtype as the
    current). So :func:`.base.rates` of a constant current is ``act(current)`` for every ``T``, exactly (the
    integrate-and-fire neuron's rate approaches ``clamp(I / threshold, 0, 1)`` only as ``T`` grows).

    Args:
        activation: a name of :data:`ACTIVATIONS` (default ``triangle``) or a module ``(B, K, ...) -> (B, K, ...)``.
        power: the triangle's exponent (only for ``activation="triangle"``; default 1).
    """

    spiking = False

    def __init__(self, activation: str | nn.Module = "triangle", power: float | None = None):
        super().__init__()
        if isinstance(activation, nn.Module):
            if power is not None:
                raise ValueError("power is a parameter of the named activation 'triangle'; a given activation "
                                 f"module ({type(activation).__name__}) carries its own parameters")
            self.activation = activation
        elif isinstance(activation, str):
            self.activation = make_activation(activation, **({} if power is None else {"power": power}))
        else:
            raise TypeError(f"activation must be a name ({', '.join(ACTIVATIONS)}) or an nn.Module, "
                            f"got {type(activation).__name__}")

    def init_state(self, shape, device=None, dtype=None) -> tuple:
        """No memory between steps: the empty tuple."""
        return ()

    def step(self, current: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        return self.activation(current), state

    def membrane_state(self, v: torch.Tensor):
        raise ValueError("a rate neuron has no membrane to start away from rest: initial_membrane applies to "
                         "spiking neurons only")
