"""Optimisers and the learning-rate schedule of the backprop-trained baselines.

- :class:`LARS` (You et al. 2017, as used by Barlow Twins): SGD with momentum whose step for each
  weight matrix is scaled by the trust ratio ``eta * ||w|| / ||g + wd w||``; biases and batch-norm
  parameters (1-d tensors) get neither weight decay nor the trust ratio.
- :func:`warmup_cosine`: linear warm-up then cosine decay, as a function of training progress in
  [0, 1] (steps done / total steps, or seconds spent / budget for a wall-clock-budgeted run).
"""
from __future__ import annotations

import math

import torch

OPTIMIZERS = ("sgd", "lars")


class LARS(torch.optim.Optimizer):
    """LARS: ``g' = g + wd w``, ``g' *= eta ||w|| / ||g'||`` (matrices only), momentum, ``w -= lr g'``."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.02):
        if lr <= 0 or momentum < 0 or weight_decay < 0 or eta <= 0:
            raise ValueError(f"LARS needs lr > 0, momentum >= 0, weight_decay >= 0, eta > 0; got {lr}, {momentum}, "
                             f"{weight_decay}, {eta}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if p.dim() > 1:
                    g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = p.norm(), g.norm()
                    trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, 1.0)
                    g = g.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = g.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])


def make_optimizer(name: str, params, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """``"sgd"`` (momentum, weight decay on every parameter) or ``"lars"``."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "lars":
        return LARS(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")


def warmup_cosine(progress: float, warmup: float, final_fraction: float = 0.0) -> float:
    """The learning-rate multiplier at ``progress`` in [0, 1].

    ``progress / warmup`` during the warm-up (the first ``warmup`` fraction of training), then
    ``final + (1 - final) * (1 + cos(pi * t)) / 2`` with ``t`` the progress through the rest.
    """
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return progress / warmup
    t = (progress - warmup) / max(1.0 - warmup, 1e-12)
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * t))
