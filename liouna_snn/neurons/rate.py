"""Rate neurons: stateless nonlinearities ``y = act(u)`` applied to a drive ``u (B, K, ...)``."""
from __future__ import annotations

import torch
from torch import nn


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
