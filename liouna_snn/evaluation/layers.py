"""Every requested layer of a model probed the same way: features, weighted k-NN, linear probe."""
from __future__ import annotations

import math
import time

from ..data import ImageTensors
from .features import features_by_depth
from .knn import knn_top1
from .augmented_probe import augmented_probe, probe_augment
from .probe import linear_probe

PROBE_DEFAULTS = {"epochs": 50, "batch_size": 64, "lr": 1e-3, "dropout": 0.5, "standardize": True, "knn_k": 20,
                  "knn_temperature": 0.07, "feature_batch_size": 250, "augment": "none"}


NEWER_PROBE_OPTIONS = {"augment": "none"}
"""Probe options added after the first benchmark records, with the default those records did not store."""


def recorded_probe_options(options: dict) -> dict:
    """The probe options that identify a measurement: all but ``layers`` and those of :data:`NEWER_PROBE_OPTIONS`
    at their default, so a record written before such an option existed still matches the same probe."""
    return {k: v for k, v in options.items() if k != "layers" and NEWER_PROBE_OPTIONS.get(k, object()) != v}


def probe_depths(values: list | str, n_layers: int, where: str) -> list[int]:
    """1-based depths, ascending, from ``"all"`` / ``["all"]`` or integers in ``1..n_layers`` (strings allowed).

    ``where`` names the option in the error raised for anything else (an empty list, 0, a depth past the last
    layer, a word other than ``all``).
    """
    if values == "all" or values == ["all"]:
        return list(range(1, n_layers + 1))
    try:
        depths = sorted({int(v) for v in values})
    except (TypeError, ValueError):
        depths = []
    if not depths or not all(1 <= d <= n_layers for d in depths):
        raise ValueError(f"{where}: probe layers must be 'all' or depths in 1..{n_layers}, got {values!r}")
    return depths


def probe_layers(model, train: ImageTensors, test: ImageTensors, depths: list[int], *, device="cpu", mean=None,
                 std=None, seed: int = 0, progress: bool = True, label: str = "", **options) -> list[dict]:
    """Probe ``model(x, depth)``'s flattened features at every depth of ``depths`` (1-based), shallowest first.

    ``model`` is anything :func:`extract_features` accepts (a module whose ``forward(x, depth)``
    returns the features of layer ``depth``). ``options`` override :data:`PROBE_DEFAULTS` (probe
    epochs, batch size, lr, dropout, standardize; k-NN ``knn_k``, ``knn_temperature``; the feature
    batch size; ``augment``: a name of :data:`~liouna_snn.evaluation.augmented_probe.PROBE_AUGMENTS`, where
    anything but ``"none"`` trains the probe on augmented images, :func:`augmented_probe`, and the k-NN stays on
    the un-augmented features). Returns one dict per depth: ``layer``, ``probe_top1``, ``knn_top1``,
    ``probe_train_top1`` (%, 2 decimals), ``features`` (F), ``probe_augment`` (augmented probes only) and ``eval_seconds`` (that depth's features, k-NN and
    probe; features come layer by layer through :func:`features_by_depth`, so a depth's seconds count the layers
    above the previous probed depth only: compare totals, not one depth's, across different sets of depths).
    """
    unknown = sorted(set(options) - set(PROBE_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown probe option(s) {unknown}; allowed: {', '.join(sorted(PROBE_DEFAULTS))}")
    cfg = {**PROBE_DEFAULTS, **options}
    augment = probe_augment(cfg["augment"])   # an unknown name fails before any feature is computed
    prefix = f"{label} " if label else ""
    layers = []
    kw = dict(device=device, mean=mean, std=std, batch_size=cfg["feature_batch_size"], progress=progress)
    train_features = features_by_depth(model, train, depths, description=f"{prefix}train features", **kw)
    test_features = features_by_depth(model, test, depths, description=f"{prefix}test features", **kw)
    t0 = time.perf_counter()
    for _ in sorted(set(depths)):
        # stepped by hand, not zipped: zip would keep this depth's features alive while the next is computed
        d, ftr, ytr = next(train_features)
        _, fte, yte = next(test_features)
        knn = knn_top1(ftr, ytr, fte, yte, k=cfg["knn_k"], temperature=cfg["knn_temperature"])
        n_features = int(math.prod(ftr.shape[1:]))
        probe_options = dict(epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"], dropout=cfg["dropout"],
                             seed=seed, standardize=cfg["standardize"], progress=progress,
                             description=f"{prefix}layer {d} probe")
        if augment is None:
            probe = linear_probe(ftr, ytr, fte, yte, **probe_options)
        else:
            del ftr, fte   # the augmented probe computes its own features every epoch
            probe = augmented_probe(model, train, test, d, augment=augment, device=device, mean=mean, std=std,
                                    feature_batch_size=cfg["feature_batch_size"], **probe_options)
        layers.append({"layer": d, "probe_top1": round(probe["top1"], 2), "knn_top1": round(knn, 2),
                       "probe_train_top1": round(probe["train_top1"], 2), "features": n_features,
                       **({"probe_augment": cfg["augment"]} if augment is not None else {}),
                       "eval_seconds": round(time.perf_counter() - t0, 1)})
        t0 = time.perf_counter()
        if progress:
            print(f"  {prefix}layer {d}: probe {probe['top1']:.2f} %  k-NN {knn:.2f} %", flush=True)
        ftr = fte = None
    return layers
