"""Readings of a layer's drive ``u``: the code ``c = g(u)`` and the Hebbian factor ``h = f(u)``.

Every factor maps ``u (B, K, ...)`` (units on dim 1) and the layer's own activation ``y = act(u)``
to a tensor of the same shape. Competition (softmax, winner) runs over the units at each position.
"""
from __future__ import annotations

import torch

FACTORS = ("drive", "output", "relu", "softmax", "softmax-drive", "winner", "winner-drive")


def winner_index(u: torch.Tensor) -> torch.Tensor:
    """``(B, ...)``: the index of the unit with the largest drive at each position of ``u (B, K, ...)``
    (ties: the lowest index). ``max`` finds it in one pass, about 3x faster than ``argmax`` over dim 1 on CPU."""
    return u.max(dim=1).indices


def winner_mask(u: torch.Tensor, winners: torch.Tensor | None = None) -> torch.Tensor:
    """One-hot ``(B, K, ...)`` of the winning unit at each position, in ``u``'s dtype.

    ``winners``: :func:`winner_index` of ``u`` when the caller has it already (it is computed otherwise).
    """
    if winners is None:
        winners = winner_index(u)
    return _is_winner(u, winners).to(u.dtype)


def _is_winner(u: torch.Tensor, winners: torch.Tensor) -> torch.Tensor:
    units = torch.arange(u.shape[1], device=u.device).view((1, -1) + (1,) * (u.dim() - 2))
    return winners.unsqueeze(1) == units


def factor(name: str, u: torch.Tensor, y: torch.Tensor, inverse_temperature: float = 1.0,
           winners: torch.Tensor | None = None) -> torch.Tensor:
    """The factor ``name`` of drive ``u`` and activation ``y``.

    ``drive``: u; ``output``: y (the layer's own nonlinearity); ``relu``: max(u, 0);
    ``softmax``: softmax(t u); ``softmax-drive``: softmax(t u) * u (soft competition on the
    input's scale); ``winner``: one-hot argmax; ``winner-drive``: one-hot * u.
    ``winners``: :func:`winner_index` of ``u`` if already known (used by the winner factors).
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
        return winner_mask(u, winners)
    if name == "winner-drive":
        return winner_mask(u, winners) * u
    raise ValueError(f"unknown factor {name!r}; allowed: {', '.join(FACTORS)}")


def anti_hebbian(h: torch.Tensor, u: torch.Tensor, winners: torch.Tensor | None = None) -> torch.Tensor:
    """Winner keeps its sign, every other unit at that position is made anti-Hebbian (``-h``)."""
    return torch.where(_is_winner(u, winner_index(u) if winners is None else winners), h, -h)
