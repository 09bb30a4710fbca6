"""Linear probe on frozen features: the protocol of SoftHebb (Journé et al. 2023).

Dropout then one linear layer, Adam, cross-entropy, the learning rate halved at 20/35/50/60/70/80/90 %
of the epochs. Features are standardised per dimension with training-set statistics first (a fixed
affine map the linear layer could absorb; it makes Adam's step size independent of the feature scale).
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

HALVING_AT = (0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9)


@torch.no_grad()
def standardize_(train: torch.Tensor, *others: torch.Tensor, chunk: int = 4096) -> None:
    """Standardise ``train (N, F)`` and ``others`` in place with train's per-feature mean and std."""
    total = torch.zeros(train.shape[1], dtype=torch.float64, device=train.device)
    total_sq = torch.zeros_like(total)
    for s in range(0, len(train), chunk):
        block = train[s:s + chunk].double()
        total += block.sum(0)
        total_sq += block.pow(2).sum(0)
    mean = total / len(train)
    std = (total_sq / len(train) - mean.pow(2)).clamp_min(0).sqrt().clamp_min(1e-6)
    mean, std = mean.float(), std.float()
    for t in (train, *others):
        for s in range(0, len(t), chunk):
            t[s:s + chunk] = ((t[s:s + chunk].float() - mean) / std).to(t.dtype)


# Row r holds the 8 bits of the byte r as inverted-dropout multipliers (0 or 2) for p = 0.5.
_HALF_DROPOUT_TABLE = ((torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1).float() * 2.0


def dropout_mask(shape: tuple[int, int], p: float, generator: torch.Generator, device,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Inverted-dropout multipliers ``(B, F)`` in ``dtype``: 0 with probability ``p``, ``1 / (1 - p)`` otherwise.

    For ``p = 0.5`` each random byte gives 8 multipliers through a 256-row lookup table: one random draw
    and one gather per 8 features, several times faster on CPU than a uniform draw per feature.
    """
    if p == 0.5:
        b, f = shape
        # 64 random bits per int64 draw (far cheaper per bit than uint8 draws), read back as bytes
        words = torch.randint(-2 ** 63, 2 ** 63 - 1, (b, -(-f // 64)), generator=generator, dtype=torch.int64)
        raw = words.view(torch.uint8).to(device)
        table = _HALF_DROPOUT_TABLE.to(device=device, dtype=dtype)
        return F.embedding(raw.long(), table).view(b, -1)[:, :f]
    return ((torch.rand(shape, generator=generator) >= p).to(dtype) / (1.0 - p)).to(device)


def new_classifier(features: int, classes: int, *, epochs: int, lr: float, generator: torch.Generator, device):
    """The probe's linear layer ``features -> classes`` (weights uniform in +-1/sqrt(features) from ``generator``,
    bias 0), its Adam optimiser and the per-epoch schedule that halves the learning rate at :data:`HALVING_AT`."""
    model = torch.nn.Linear(features, classes).to(device)
    with torch.no_grad():
        bound = 1.0 / features ** 0.5
        model.weight.copy_((torch.rand(model.weight.shape, generator=generator) * 2 - 1) * bound)
        model.bias.zero_()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [max(1, round(f * epochs)) for f in HALVING_AT], gamma=0.5)
    return model, opt, sched


def logits(model: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` for ``x (B, F)`` with F >> classes, computed as ``(W x^T)^T``: on CPU several times
    faster than ``F.linear``'s ``x W^T`` for such shapes (same values up to float rounding)."""
    return torch.mm(model.weight, x.t()).t() + model.bias


def _accuracy(model, x: torch.Tensor, y: torch.Tensor, chunk: int = 2048) -> float:
    correct = 0
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            correct += int((logits(model, x[s:s + chunk].float()).argmax(1) == y[s:s + chunk]).sum())
    return 100.0 * correct / max(len(x), 1)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
                 epochs: int = 50, batch_size: int = 64, lr: float = 1e-3, dropout: float = 0.5, seed: int = 0,
                 standardize: bool = True, progress: bool = True, description: str = "probe") -> dict:
    """Train a linear classifier on ``train_x (N, F)`` and report top-1 (%) on ``test_x``.

    Standardises the features in place when ``standardize``. Returns ``{"top1", "train_top1", "seconds"}``.
    """
    if train_x.dim() != 2 or test_x.dim() != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (N, F) with the same F, got {tuple(train_x.shape)} and {tuple(test_x.shape)}")
    t0 = time.perf_counter()
    if standardize:
        standardize_(train_x, test_x)
    classes = int(max(train_y.max(), test_y.max())) + 1
    gen = torch.Generator().manual_seed(seed)
    model, opt, sched = new_classifier(train_x.shape[1], classes, epochs=epochs, lr=lr, generator=gen,
                                       device=train_x.device)
    n = len(train_x)
    steps = -(-n // batch_size)
    for _ in tqdm(range(epochs), disable=not progress, desc=description, unit="epoch", leave=False):
        perm = torch.randperm(n, generator=gen).to(train_x.device)
        for s in range(steps):
            idx = perm[s * batch_size:(s + 1) * batch_size]
            x = train_x.index_select(0, idx).float()
            if dropout > 0:
                x.mul_(dropout_mask(x.shape, dropout, gen, x.device))
            loss = F.cross_entropy(logits(model, x), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return {"top1": _accuracy(model, test_x, test_y), "train_top1": _accuracy(model, train_x, train_y),
            "seconds": time.perf_counter() - t0}
