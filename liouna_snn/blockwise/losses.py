"""Self-supervised losses on two batches of embeddings of the same images: pure functions.

Each takes ``z1, z2 (N, D)`` (the projector outputs for two augmented views of the same N images;
row ``n`` of ``z1`` and row ``n`` of ``z2`` are a positive pair) and returns a scalar. They compute
in float32 whatever the input dtype, inside a bf16 autocast region too (autocast would otherwise round
their products to bf16: correlations near 1 lose the resolution the loss needs).

- :func:`barlow_twins_loss` (Zbontar et al. 2021)
- :func:`vicreg_loss` (Bardes et al. 2022)
- :func:`nt_xent_loss`, SimCLR's normalised temperature-scaled cross-entropy (Chen et al. 2020)
"""
from __future__ import annotations

import inspect
from functools import partial, wraps

import torch
import torch.nn.functional as F


def _check_pair(z1: torch.Tensor, z2: torch.Tensor, what: str, min_rows: int = 2) -> None:
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"{what}: z1 and z2 must both be (N, D) with the same shape, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < min_rows:
        raise ValueError(f"{what}: needs at least {min_rows} pairs (N >= {min_rows}), got N = {z1.shape[0]}")


def _float32(loss):
    """``loss`` computed with autocast off on its inputs' device (the inputs are cast to float32 inside)."""
    @wraps(loss)
    def in_float32(z1: torch.Tensor, z2: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        with torch.autocast(z1.device.type, enabled=False):
            return loss(z1, z2, *args, **kwargs)
    return in_float32


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    return m.masked_select(~torch.eye(m.shape[0], dtype=torch.bool, device=m.device))


@_float32
def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051, eps: float = 1e-5) -> torch.Tensor:
    """Barlow Twins: drive the cross-correlation matrix of the two views to the identity.

    ``zn = (z - mean_n z) / sqrt(var_n z + eps)`` per dimension (population variance over the batch,
    as ``BatchNorm1d(affine=False)``); ``C = z1n^T z2n / N`` (D, D);
    ``loss = sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2``.
    Defaults: ``lambd = 0.0051`` (the paper's), ``eps = 1e-5``.
    """
    _check_pair(z1, z2, "barlow_twins_loss")
    z1, z2 = z1.float(), z2.float()
    n = z1.shape[0]
    z1n = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
    z2n = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
    c = z1n.T @ z2n / n
    on_diag = (1 - torch.diagonal(c)).pow(2).sum()
    return on_diag + lambd * _off_diagonal(c).pow(2).sum()


@_float32
def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim_weight: float = 25.0, var_weight: float = 25.0,
                cov_weight: float = 1.0, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg: invariance + variance + covariance, as in the authors' reference implementation.

    - invariance ``s = mean_{n,d} (z1 - z2)^2``;
    - variance ``v = 1/2 [mean_d relu(gamma - std_d(z1)) + mean_d relu(gamma - std_d(z2))]`` with
      ``std_d = sqrt(var_d + eps)`` (unbiased variance over the batch);
    - covariance ``c = sum_{i != j} Cov(z1)_ij^2 / D + sum_{i != j} Cov(z2)_ij^2 / D``, ``Cov = zc^T zc / (N - 1)``;
    - ``loss = sim_weight * s + var_weight * v + cov_weight * c``.
    Defaults: 25, 25, 1, ``gamma = 1``, ``eps = 1e-4`` (the paper's).
    """
    _check_pair(z1, z2, "vicreg_loss")
    z1, z2 = z1.float(), z2.float()
    n, d = z1.shape
    invariance = F.mse_loss(z1, z2)
    z1c, z2c = z1 - z1.mean(0), z2 - z2.mean(0)
    std1, std2 = torch.sqrt(z1c.pow(2).sum(0) / (n - 1) + eps), torch.sqrt(z2c.pow(2).sum(0) / (n - 1) + eps)
    variance = torch.relu(gamma - std1).mean() / 2 + torch.relu(gamma - std2).mean() / 2
    cov1, cov2 = z1c.T @ z1c / (n - 1), z2c.T @ z2c / (n - 1)
    covariance = _off_diagonal(cov1).pow(2).sum() / d + _off_diagonal(cov2).pow(2).sum() / d
    return sim_weight * invariance + var_weight * variance + cov_weight * covariance


@_float32
def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N embeddings ``[z1; z2]``.

    With ``u = z / ||z||`` and ``s_ab = u_a . u_b / temperature``, each of the 2N embeddings ``a``
    classifies its partner ``p(a)`` (the other view of the same image) among the other 2N - 1:
    ``loss = mean_a -log( exp(s_{a,p(a)}) / sum_{b != a} exp(s_ab) )``.
    Default ``temperature = 0.5`` (SimCLR's best on CIFAR-10).
    """
    _check_pair(z1, z2, "nt_xent_loss", min_rows=1)
    if temperature <= 0:
        raise ValueError(f"nt_xent_loss: temperature must be > 0, got {temperature}")
    u = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    logits = u @ u.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=u.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(u.device)
    return F.cross_entropy(logits, partner)


LOSSES = {"barlow-twins": barlow_twins_loss, "vicreg": vicreg_loss, "simclr": nt_xent_loss}


def make_loss(name: str, **options):
    """The loss called ``name`` (one of :data:`LOSSES`) with ``options`` bound: ``loss(z1, z2) -> scalar``."""
    if name not in LOSSES:
        raise ValueError(f"unknown SSL loss {name!r}; allowed: {', '.join(LOSSES)}")
    allowed = set(inspect.signature(LOSSES[name]).parameters) - {"z1", "z2"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for loss {name!r}; allowed: {', '.join(sorted(allowed))}")
    return partial(LOSSES[name], **options)
