"""Atomic checkpoints: a crash while writing never leaves a half-written file behind; a checkpoint written by
another network or rule is named as such, not resumed."""
from __future__ import annotations


import os
import tempfile
from pathlib import Path
from typing import IO, Callable

import torch


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, then ``os.replace`` it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(obj, path: str | Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically."""
    write_atomic(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict | None:
    """The checkpoint at ``path``, or ``None`` if there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location=map_location, weights_only=False)


def checkpoint_precision(path: str | Path) -> str | None:
    """The compute precision (``"bf16"``, ``"fp32"``) the network in checkpoint ``path`` was trained in, read from
    its recorded identity; ``None`` if there is no file or it predates identities."""
    state = load_checkpoint(path)
    identity = (state or {}).get("network_identity")
    if not identity or not identity.get("layers"):
        return None
    dtype = identity["layers"][0].get("compute_dtype")
    return {"None": "fp32", "torch.bfloat16": "bf16"}.get(dtype, dtype)


def check_identity(state: dict, network, path, remedy: str) -> None:
    """Raise a ``ValueError`` naming the differences if checkpoint ``state`` was written by a network other than
    ``network`` (a :class:`~liouna_snn.network.LocalNetwork`); older checkpoints without an identity pass."""
    saved = identity_with_defaults(state.get("network_identity"))
    if saved is not None and saved != network.identity():
        raise ValueError(f"checkpoint {path} was written by another network or rule "
                         f"({identity_difference(saved, network.identity())}); {remedy}")


def identity_with_defaults(identity: dict | None) -> dict | None:
    """A saved :meth:`LocalNetwork.identity` with every spiking option it predates set to the default it ran with
    (:func:`liouna_snn.spiking.with_legacy_defaults`), so a checkpoint written before an option existed (e.g.
    ``current_norm``) still matches the same network."""
    if identity is None or not any(isinstance(layer.get("spiking"), dict) for layer in identity.get("layers", [])):
        return identity
    from ..spiking import with_legacy_defaults

    layers = [{**layer, "spiking": with_legacy_defaults(layer["spiking"])} if isinstance(layer.get("spiking"), dict)
              else layer for layer in identity["layers"]]
    return {**identity, "layers": layers}


def identity_difference(saved: dict, current: dict) -> str:
    """The first entries where two :meth:`LocalNetwork.identity` dicts differ, as ``where: saved -> current``."""
    if saved.get("init_seed") != current.get("init_seed"):
        return f"initial weights seeded {saved.get('init_seed')!r} -> {current.get('init_seed')!r}"
    if len(saved["layers"]) != len(current["layers"]):
        return f"{len(saved['layers'])} layers -> {len(current['layers'])}"
    diffs = []
    for i, (a, b) in enumerate(zip(saved["layers"], current["layers"]), start=1):
        for key in sorted(a.keys() | b.keys()):
            va, vb = a.get(key), b.get(key)
            if isinstance(va, dict) and isinstance(vb, dict):
                diffs += [f"layer {i} {key}.{k}: {va.get(k)!r} -> {vb.get(k)!r}"
                          for k in sorted(va.keys() | vb.keys()) if va.get(k) != vb.get(k)]
            elif va != vb:
                diffs.append(f"layer {i} {key}: {va!r} -> {vb!r}")
    return "; ".join(diffs[:4]) + ("; ..." if len(diffs) > 4 else "")
