"""Readings of a layer's drive ``u``: the code ``c = g(u)`` and the Hebbian factor ``h = f(u)``.

Every factor maps ``u (B, K, ...)`` (units on dim 1) and the layer's own activation ``y = act(u)``
to a tensor of the same shape. Competition (softmax, winner) runs over the units at each position.
"""
from __future__ import annotations

import torch

FACTORS = ("drive", "output", "relu", "softmax", "softmax-drive", "winner", "winner-drive")


def winner_mask(u: torch.Tensor) -> torch.Tensor:
    """One-hot ``(B, K, ...)`` of the unit with the largest drive at each position (ties: lowest index)."""
    return torch.zeros_like(u).scatter_(1, u.argmax(dim=1, keepdim=True), 1.0)


def factor(name: str, u: torch.Tensor, y: torch.Tensor, inverse_temperature: float = 1.0) -> torch.Tensor:
    """The factor ``name`` of drive ``u`` and activation ``y``.

    ``drive``: u; ``output``: y (the layer's own nonlinearity); ``relu``: max(u, 0);
    ``softmax``: softmax(t u); ``softmax-drive``: softmax(t u) * u (soft competition on the
    input's scale); ``winner``: one-hot argmax; ``winner-drive``: one-hot * u.
    """
    if name == "drive":
        return u
    if name == "output":
        return y
    if name == "relu":
        return torch.relu(u)
    if name == "softmax":
        return torch.softmax(inverse_temperature * u, dim=1)
    if name == "softmax-drive":
        return torch.softmax(inverse_temperature * u, dim=1) * u
    if name == "winner":
        return winner_mask(u)
    if name == "winner-drive":
        return winner_mask(u) * u
    raise ValueError(f"unknown factor {name!r}; allowed: {', '.join(FACTORS)}")


def anti_hebbian(h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Winner keeps its sign, every other unit at that position is made anti-Hebbian (``-h``)."""
    return h * (2.0 * winner_mask(u) - 1.0)
