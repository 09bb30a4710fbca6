"""``load_dataset``: one entry point for every supported dataset, with optional download."""

from __future__ import annotations

import os
from pathlib import Path

from .cifar import (CIFAR10_DIR, CIFAR10_URL, CIFAR100_DIR, CIFAR100_URL, load_cifar10,
                    load_cifar10_mini, load_cifar100)
from .imagefolder import IMAGENETTE_URL, find_imagenette_root, load_imagefolder
from .stl10 import STL10_DIR, STL10_URL, load_stl10
from .tensors import ImageTensors, resize_center_crop

DATASETS = ("cifar10", "cifar10-mini", "cifar100", "stl10", "imagenette", "imagefolder")

SPLITS = {
    "cifar10": ("train", "test"),
    "cifar10-mini": ("train", "test"),
    "cifar100": ("train", "test"),
    "stl10": ("train", "test", "unlabeled"),
    "imagenette": ("train", "val", "test"),   # "test" is an alias of "val"
    "imagefolder": ("train", "val", "test"),  # "test" is an alias of "val"
}

DEFAULT_IMAGENETTE_SIZE = 160

# Official archives, and the folder each one extracts to under root.
_ARCHIVES = {
    "cifar10": (CIFAR10_URL, CIFAR10_DIR),
    "cifar100": (CIFAR100_URL, CIFAR100_DIR),
    "stl10": (STL10_URL, STL10_DIR),
    "imagenette": (IMAGENETTE_URL, "imagenette2-160"),
}


def default_root() -> Path:
    """The data root used when none is given: ``$LIOUNA_SNN_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("LIOUNA_SNN_DATA") or "data")


def _download(name: str, root: Path) -> None:
    """Fetch and extract the official archive into ``root`` unless the dataset is already there."""
    if name not in _ARCHIVES:
        raise ValueError(f"download=True is not supported for {name!r}; it works for {sorted(_ARCHIVES)}")
    url, folder = _ARCHIVES[name]
    present = find_imagenette_root(root) is not None if name == "imagenette" else (root / folder).is_dir()
    if not present:
        fetch_archive(url, root)


def fetch_archive(url: str, root: Path) -> None:
    """Download ``url`` into ``root`` and extract it there (torchvision's helper; no md5 check)."""
    from torchvision.datasets.utils import download_and_extract_archive
    download_and_extract_archive(url, download_root=str(root), md5=None)


def load_dataset(name: str, root: str | Path | None = None, split: str = "train", *,
                 download: bool = False, image_size: int | None = None,
                 label_kind: str = "fine") -> ImageTensors:
    """Load a whole dataset split into memory.

    Args:
        name: one of :data:`DATASETS`.
        root: folder holding the dataset's standard layout (``cifar-10-batches-py``,
            ``cifar-100-python``, ``stl10_binary``, an ``imagenette*`` folder, or for
            "imagefolder" the tree itself). Ignored for "cifar10-mini". Default: :func:`default_root`.
        split: "train" | "test" (CIFAR), plus "unlabeled" (STL-10); "train" | "val" for
            imagenette/imagefolder ("test" is accepted as "val").
        download: fetch the official archive into ``root`` if the folder is missing (cifar10,
            cifar100, stl10, imagenette). No md5 check is ever made.
        image_size: side S of the square output images. Imagenette defaults to 160;
            imagefolder keeps the native size when all images share it (else S is required);
            tensor datasets (CIFAR, STL-10) are resized (bilinear, antialiased) only if given.
        label_kind: CIFAR-100 only: "fine" (100 classes) or "coarse" (20 superclasses).

    Returns:
        :class:`ImageTensors` with images (N, 3, S, S) uint8 in 0..255 and labels (N,) int64
        (-1 for STL-10 "unlabeled").

    Raises:
        ValueError: unknown ``name``/``split``/``label_kind``.
        DatasetNotFoundError: the data is not at ``root``.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS[name]:
        raise ValueError(f"unknown split {split!r} for {name}; choose one of {', '.join(SPLITS[name])}")
    if label_kind != "fine" and name != "cifar100":
        raise ValueError(f"label_kind applies to cifar100 only, not {name!r}")
    if image_size is not None and image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if name == "cifar10-mini":
        data = load_cifar10_mini(split)
    else:
        root = Path(root).expanduser() if root is not None else default_root()
        if download:
            _download(name, root)
        if name in ("imagenette", "imagefolder"):
            split = "val" if split == "test" else split
            if name == "imagenette" and image_size is None:
                image_size = DEFAULT_IMAGENETTE_SIZE
            return load_imagefolder(root, split, image_size, dataset=name)
        if name == "cifar10":
            data = load_cifar10(root, split)
        elif name == "cifar100":
            data = load_cifar100(root, split, label_kind)
        else:
            data = load_stl10(root, split)
    if image_size is not None:
        data.images = resize_center_crop(data.images, image_size)
    return data
