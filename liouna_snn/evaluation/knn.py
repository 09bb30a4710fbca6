"""Weighted k-nearest-neighbour classification on frozen features (cosine similarity)."""
from __future__ import annotations

import torch


@torch.no_grad()
def knn_top1(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
             k: int = 20, temperature: float = 0.07, chunk: int = 500) -> float:
    """Top-1 (%) of a k-NN vote weighted by ``exp(cos / temperature)`` (Wu et al. 2018).

    ``train_x (N, F)``, ``test_x (M, F)``; the similarity matmul runs in ``train_x``'s dtype.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    classes = int(max(train_y.max(), test_y.max())) + 1
    train_norm = train_x.float().norm(dim=1).clamp_min(1e-12)
    k = min(k, len(train_x))
    correct = 0
    for s in range(0, len(test_x), chunk):
        q = test_x[s:s + chunk]
        sim = (q @ train_x.T).float() / q.float().norm(dim=1, keepdim=True).clamp_min(1e-12) / train_norm
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(q), classes, device=q.device)
        votes.scatter_add_(1, train_y[idx], (top / temperature).exp())
        correct += int((votes.argmax(1) == test_y[s:s + chunk]).sum())
    return 100.0 * correct / len(test_x)
