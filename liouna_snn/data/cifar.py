"""CIFAR-10 / CIFAR-100 in the official "python version" pickle layout, and the embedded
CIFAR-10 mini set.

The pickles are read directly; there is no md5 check (re-encoded copies differ from the
official bytes). Pickle files can execute code when loaded: only read files you trust.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import download_hint, not_found
from .tensors import ImageTensors

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
MINI_PATH = Path(__file__).with_name("cifar10_mini.npz")

_CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_CIFAR10_LAYOUT = f"<root>/{CIFAR10_DIR}/{{data_batch_1..5, test_batch, batches.meta}}"
_CIFAR100_LAYOUT = f"<root>/{CIFAR100_DIR}/{{train, test, meta}}"


def _text(x: Any) -> Any:
    return x.decode("latin1") if isinstance(x, bytes) else x


def _unpickle(path: Path) -> dict[str, Any]:
    """Load one CIFAR pickle; bytes keys (Python 2 files) are turned into str."""
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    return {_text(k): v for k, v in d.items()}


def _require(dataset: str, folder: Path, names: list[str], layout: str, url: str) -> None:
    for path in [folder, *(folder / n for n in names)]:
        if not path.exists():
            raise not_found(dataset, path, layout, download_hint(url, folder.parent))


def _planes_to_nchw(data: Any) -> torch.Tensor:
    """(N, 3072) uint8 rows, each the R, G, B 32x32 planes in row-major order -> (N, 3, 32, 32) uint8."""
    arr = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _labels(values: Any) -> torch.Tensor:
    return torch.from_numpy(np.asarray(values, dtype=np.int64).reshape(-1))


def load_cifar10(root: Path, split: str) -> ImageTensors:
    """CIFAR-10 from ``root/cifar-10-batches-py``: train (50000) or test (10000), (N, 3, 32, 32) uint8."""
    folder = Path(root) / CIFAR10_DIR
    files = _CIFAR10_FILES[split]
    _require("cifar10", folder, [*files, "batches.meta"], _CIFAR10_LAYOUT, CIFAR10_URL)
    batches = [_unpickle(folder / f) for f in files]
    classes = [_text(c) for c in _unpickle(folder / "batches.meta")["label_names"]]
    images = torch.cat([_planes_to_nchw(b["data"]) for b in batches])
    labels = torch.cat([_labels(b["labels"]) for b in batches])
    return ImageTensors(images, labels, classes, f"cifar10/{split}")


def load_cifar100(root: Path, split: str, label_kind: str = "fine") -> ImageTensors:
    """CIFAR-100 from ``root/cifar-100-python``: train (50000) or test (10000), (N, 3, 32, 32) uint8.

    ``label_kind`` "fine" gives the 100 classes, "coarse" the 20 superclasses.
    """
    if label_kind not in ("fine", "coarse"):
        raise ValueError(f"label_kind must be 'fine' or 'coarse', got {label_kind!r}")
    folder = Path(root) / CIFAR100_DIR
    _require("cifar100", folder, [split, "meta"], _CIFAR100_LAYOUT, CIFAR100_URL)
    d = _unpickle(folder / split)
    classes = [_text(c) for c in _unpickle(folder / "meta")[f"{label_kind}_label_names"]]
    return ImageTensors(_planes_to_nchw(d["data"]), _labels(d[f"{label_kind}_labels"]),
                        classes, f"cifar100/{split}")


def load_cifar10_mini(split: str) -> ImageTensors:
    """The embedded exact-pixel CIFAR-10 subset: the first 4000 images of data_batch_1 (train)
    or the first 1000 of test_batch (test), (N, 3, 32, 32) uint8."""
    with np.load(MINI_PATH) as d:
        x, y = d[f"x_{split}"], d[f"y_{split}"]
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return ImageTensors(images, _labels(y), list(CIFAR10_CLASSES), f"cifar10-mini/{split}")
