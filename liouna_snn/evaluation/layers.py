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
    depths = []
    if isinstance(values, (list, tuple)):
        for v in values:
            if isinstance(v, int) and not isinstance(v, bool):
                depths.append(v)
            elif isinstance(v, str) and v.isdigit():
                depths.append(int(v))
            else:   # 2.5, true, "3a", "all" among depths
                depths = []
                break
    depths = sorted(set(depths))
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
    probe_options = dict(epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"], dropout=cfg["dropout"],
                         seed=seed, standardize=cfg["standardize"], progress=progress)
    kw = dict(device=device, mean=mean, std=std, batch_size=cfg["feature_batch_size"], progress=progress)
    train_features = features_by_depth(model, train, depths, description=f"{prefix}train features", **kw)
    test_features = features_by_depth(model, test, depths, description=f"{prefix}test features", **kw)
    t0 = time.perf_counter()
    for _ in sorted(set(depths)):
        # stepped by hand, not zipped: zip would keep this depth's features alive while the next is computed
        d, ftr, ytr = next(train_features)
        _, fte, yte = next(test_features)
        knn = knn_top1(ftr, ytr, fte, yte, k=cfg["knn_k"], temperature=cfg["knn_temperature"])
        record = {"layer": d, "knn_top1": round(knn, 2), "features": int(math.prod(ftr.shape[1:]))}
        if augment is None:
            _add_probe(record, linear_probe(ftr, ytr, fte, yte, description=f"{prefix}layer {d} probe",
                                            **probe_options))
        record["eval_seconds"] = round(time.perf_counter() - t0, 1)
        layers.append(record)
        t0 = time.perf_counter()
        if progress:
            probed = f"probe {record['probe_top1']:.2f} %  " if augment is None else ""
            print(f"  {prefix}layer {d}: {probed}k-NN {knn:.2f} %", flush=True)
        ftr = fte = None
    if augment is not None:
        # every depth's plain features are freed before the first augmented probe, which makes its own
        train_features.close()
        test_features.close()
        for record in layers:
            t0 = time.perf_counter()
            d = record["layer"]
            _add_probe(record, augmented_probe(model, train, test, d, augment=augment, device=device, mean=mean,
                                               std=std, feature_batch_size=cfg["feature_batch_size"],
                                               description=f"{prefix}layer {d} augmented probe", **probe_options))
            record["probe_augment"] = cfg["augment"]
            record["eval_seconds"] = round(record["eval_seconds"] + time.perf_counter() - t0, 1)
            if progress:
                print(f"  {prefix}layer {d}: probe ({cfg['augment']}) {record['probe_top1']:.2f} %", flush=True)
    # the keys in the order the results have always had
    order = ("layer", "probe_top1", "knn_top1", "probe_train_top1", "features", "probe_augment", "eval_seconds")
    return [{k: r[k] for k in order if k in r} for r in layers]


def _add_probe(record: dict, probe: dict) -> None:
    record["probe_top1"] = round(probe["top1"], 2)
    record["probe_train_top1"] = round(probe["train_top1"], 2)

