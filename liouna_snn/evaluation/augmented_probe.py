"""Linear probe trained on augmented images: SoftHebb's protocol for Imagenette (and larger images).

The cached probe (:func:`liouna_snn.evaluation.linear_probe`) trains on features computed once. With
augmentation every epoch needs new features, so here the frozen network runs on every training batch:

1. per-feature standardisation statistics from one pass over the *un-augmented* training images
   (``standardize``; a fixed affine map, as in the cached probe);
2. each epoch, each batch of ``batch_size`` training images (pixels in [0, 1]) gets one augmented view
   (:class:`~liouna_snn.data.augment.Augment`, batched on the device), is standardised with the dataset's
   per-channel ``mean`` / ``std``, and passes through the frozen network to layer ``depth``; dropout, the
   linear layer, cross-entropy and Adam as in the cached probe (the same initialisation and halving schedule);
3. top-1 on the un-augmented test images, and on the un-augmented training images.

Augmentations (:data:`PROBE_AUGMENTS`): ``"crop-flip"`` is torchvision's ``RandomResizedCrop`` (area 8-100 %,
aspect 3/4-4/3) plus a horizontal flip, SoftHebb's Imagenette probe. The crop is taken from the image as loaded
(already at the network's input size), not from the original file: a crop of a small area is upsampled from
fewer pixels than SoftHebb's. ``"flip"``: horizontal flips only. ``"none"``: the cached probe.
"""
from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import ImageTensors, iterate_batches
from ..data.augment import Augment
from .probe import dropout_mask, logits, new_classifier

PROBE_AUGMENTS: dict[str, Augment | None] = {
    "none": None,
    "flip": Augment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.5, jitter_p=0.0, grayscale_p=0.0),
    "crop-flip": Augment(scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_p=0.5, jitter_p=0.0, grayscale_p=0.0),
}


def probe_augment(name: str) -> Augment | None:
    """The :class:`Augment` of a probe augmentation name (``None`` for ``"none"``); unknown names are errors."""
    if not isinstance(name, str) or name not in PROBE_AUGMENTS:
        raise ValueError(f"unknown probe augmentation {name!r}; allowed: {', '.join(PROBE_AUGMENTS)}")
    return PROBE_AUGMENTS[name]


def _standardise(x: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None) -> torch.Tensor:
    return x if mean is None else (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


@torch.no_grad()
def _features(model, x: torch.Tensor, depth: int) -> torch.Tensor:
    return model(x, depth).flatten(1).float()


@torch.no_grad()
def _feature_stats(model, data: ImageTensors, depth: int, *, batch_size: int, device, mean, std, progress: bool,
                   description: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std ``(F,)`` of layer ``depth`` over ``data``'s un-augmented images (float64 sums).

    The std is floored at 1e-3 of the median feature's (and 1e-6): a feature (nearly) constant on the plain images
    but not on an augmented view (a unit that fires only on a crop) would otherwise be scaled up a millionfold.
    """
    total = total_sq = None
    n = 0
    batches = iterate_batches(data, batch_size, shuffle=False, device=device, mean=mean, std=std)
    for x, _ in tqdm(batches, total=-(-len(data) // batch_size), disable=not progress, desc=description,
                     unit="batch", leave=False):
        f = _features(model, x, depth).double()
        total = f.sum(0) if total is None else total + f.sum(0)
        total_sq = f.pow(2).sum(0) if total_sq is None else total_sq + f.pow(2).sum(0)
        n += len(f)
    feature_mean = total / n
    feature_std = (total_sq / n - feature_mean.pow(2)).clamp_min(0).sqrt()
    floor = max(1e-6, 1e-3 * float(feature_std.median()))
    return feature_mean.float(), feature_std.clamp_min(floor).float()


@torch.no_grad()
def _top1(model, classifier, data: ImageTensors, depth: int, *, batch_size: int, device, mean, std,
          feature_mean, feature_std) -> float:
    correct = 0
    for x, y in iterate_batches(data, batch_size, shuffle=False, device=device, mean=mean, std=std):
        f = _features(model, x, depth)
        if feature_mean is not None:
            f = (f - feature_mean) / feature_std
        correct += int((logits(classifier, f).argmax(1) == y).sum())
    return 100.0 * correct / max(len(data), 1)


def augmented_probe(model, train: ImageTensors, test: ImageTensors, depth: int, *, augment: Augment,
                    device="cpu", mean=None, std=None, epochs: int = 200, batch_size: int = 64, lr: float = 1e-3,
                    dropout: float = 0.5, standardize: bool = True, seed: int = 0, feature_batch_size: int = 250,
                    progress: bool = True, description: str = "augmented probe") -> dict:
    """Train a linear classifier on layer ``depth`` of the frozen ``model`` with augmented training images.

    Args:
        model: a module whose ``forward(x, depth)`` returns layer ``depth``'s output for images ``x (B, C, H, W)``
            standardised with ``mean`` / ``std``; it runs in eval mode and is not changed.
        train, test: uint8 images ``(N, C, H, W)`` at the network's input size, with labels.
        augment: the view drawn for every training image in every epoch (:data:`PROBE_AUGMENTS`).
        mean, std: per-channel input standardisation ``(C,)`` in [0, 1] units, applied after the augmentation.
        feature_batch_size: batch size of the un-augmented passes (statistics, test and train accuracy).

    Returns ``{"top1", "train_top1", "seconds", "features", "augment"}``: top-1 (%) on the un-augmented test and
    train images, the number of features, and the augmentation's options.
    """
    if augment is None:
        raise ValueError("augmented_probe needs an augmentation; use linear_probe on cached features for none")
    t0 = time.perf_counter()
    model.eval()
    mean_d = None if mean is None else torch.as_tensor(mean, dtype=torch.float32).to(device)
    std_d = None if std is None else torch.as_tensor(std, dtype=torch.float32).to(device)
    stats = dict(batch_size=feature_batch_size, device=device, mean=mean_d, std=std_d)
    feature_mean = feature_std = None
    if standardize:
        feature_mean, feature_std = _feature_stats(model, train, depth, progress=progress,
                                                   description=f"{description} feature statistics", **stats)
    features = int(_features(model, _standardise(train.images[:1].to(device).float() / 255, mean_d, std_d),
                             depth).shape[1])
    classes = int(max(train.labels.max(), test.labels.max())) + 1
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator().manual_seed(seed * 7919 + 3)
    classifier, opt, sched = new_classifier(features, classes, epochs=epochs, lr=lr, generator=gen, device=device)
    for _ in tqdm(range(epochs), disable=not progress, desc=description, unit="epoch", leave=False):
        for x01, y in iterate_batches(train, batch_size, shuffle=True, generator=gen, device=device):
            f = _features(model, _standardise(augment(x01, aug_gen), mean_d, std_d), depth)
            if feature_mean is not None:
                f = (f - feature_mean) / feature_std
            if dropout > 0:
                f = f * dropout_mask(f.shape, dropout, gen, f.device)
            loss = F.cross_entropy(logits(classifier, f), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    classifier.eval()
    score = dict(feature_mean=feature_mean, feature_std=feature_std, **stats)
    return {"top1": _top1(model, classifier, test, depth, **score),
            "train_top1": _top1(model, classifier, train, depth, **score),
            "seconds": time.perf_counter() - t0, "features": features,
            "augment": dataclasses.asdict(augment)}


__all__ = ["PROBE_AUGMENTS", "augmented_probe", "probe_augment"]
