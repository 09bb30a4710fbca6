"""SoftHebb (Journé et al., ICLR 2023) as the ``softhebb`` member of the Liouna family.

The library trains SoftHebb through :class:`~liouna_snn.rules.rule.LocalRule` with the
``softhebb`` preset (``h`` = softmax over channels with anti-Hebbian losers, ``c = u``, self
inhibition, global max-abs scaling, norm-adaptive learning rate, initial radius 25). This module
keeps the published per-unit formula, written unit by unit and patch by patch, as the reference
that the batched member is tested against. It is slow by design: do not train with it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .geometry import ConvGeometry, pad


def softhebb_reference_update(x: torch.Tensor, weight: torch.Tensor, geometry: ConvGeometry,
                              inverse_temperature: float) -> torch.Tensor:
    """SoftHebb's ``dW`` for one batch, per unit and per patch (before scaling and learning rate).

    For every sample ``b``, output position ``p`` and unit ``k``, with the input patch ``x_bp``:
    ``u_k = <w_k, x_bp>``, ``y = softmax(t u)``, ``s_k = +1`` for the winner and ``-1`` otherwise,
    and ``dw_k += s_k y_k (x_bp - u_k w_k)``.

    ``x (B, C, H, W)``, ``weight (K, C, k, k)`` -> ``(K, C, k, k)``.
    """
    x_p = pad(x, geometry)
    k = weight.shape[-1]
    patches = F.unfold(x_p, k, stride=geometry.stride)  # (B, C*k*k, P)
    w = weight.flatten(1)
    dw = torch.zeros_like(w)
    for b in range(patches.shape[0]):
        for p in range(patches.shape[2]):
            patch = patches[b, :, p]
            u = w @ patch
            y = torch.softmax(inverse_temperature * u, dim=0)
            winner = int(u.argmax())
            for unit in range(w.shape[0]):
                sign = 1.0 if unit == winner else -1.0
                dw[unit] += sign * y[unit] * (patch - u[unit] * w[unit])
    return dw.view_as(weight)
