"""On-disk cache of decoded arrays (``$LIOUNA_SNN_CACHE``, default ``~/.cache/liouna_snn``)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np


def cache_dir() -> Path:
    """The cache folder: ``$LIOUNA_SNN_CACHE`` if set, else ``~/.cache/liouna_snn``."""
    env = os.environ.get("LIOUNA_SNN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "liouna_snn"


def cache_path(prefix: str, key: str) -> Path:
    """The .npy file for ``key`` (any string identifying the content); ``prefix`` is for humans."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{prefix}-{digest}.npy"


def cached_array(prefix: str, key: str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """Load the array cached under ``key``, or ``build()`` it and cache it.

    The file is written atomically (temporary file in the same folder, then ``os.replace``), so an
    interrupted run never leaves a truncated cache. An unreadable cache file is rebuilt; a cache
    folder that cannot be written only produces a warning.
    """
    path = cache_path(prefix, key)
    if path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError) as e:
            warnings.warn(f"ignoring unreadable cache file {path}: {e}", stacklevel=2)
    array = build()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(f"could not write cache file {path}: {e}", stacklevel=2)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return array
