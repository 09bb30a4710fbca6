"""STL-10 in the official binary layout (``stl10_binary``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import download_hint, not_found
from .tensors import ImageTensors

STL10_URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
STL10_DIR = "stl10_binary"
_LAYOUT = (f"<root>/{STL10_DIR}/{{train_X.bin, train_y.bin, test_X.bin, test_y.bin, "
           f"unlabeled_X.bin, class_names.txt}}")
_IMAGE_BYTES = 3 * 96 * 96


def read_stl10_images(path: Path) -> torch.Tensor:
    """An STL-10 ``*_X.bin`` file -> (N, 3, 96, 96) uint8.

    Each image is stored as 3 planes, each plane column-major (the file's [c][col][row]), so the
    last two axes are swapped to get [c][row][col].
    """
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    if raw.size % _IMAGE_BYTES:
        raise ValueError(f"{path}: size {raw.size} is not a multiple of 3*96*96")
    arr = raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    return torch.from_numpy(np.ascontiguousarray(arr))


def load_stl10(root: Path, split: str) -> ImageTensors:
    """STL-10 from ``root/stl10_binary``: train (5000), test (8000) or unlabeled (100000, labels -1).

    Images (N, 3, 96, 96) uint8; the file's labels 1..10 become 0..9.
    """
    folder = Path(root) / STL10_DIR
    names = [f"{split}_X.bin", "class_names.txt"] + ([] if split == "unlabeled" else [f"{split}_y.bin"])
    for path in [folder, *(folder / n for n in names)]:
        if not path.exists():
            raise not_found("stl10", path, _LAYOUT, download_hint(STL10_URL, folder.parent))
    images = read_stl10_images(folder / f"{split}_X.bin")
    if split == "unlabeled":
        labels = torch.full((len(images),), -1, dtype=torch.int64)
    else:
        labels = torch.from_numpy(np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1)
        if len(labels) != len(images):
            raise ValueError(f"stl10/{split}: {len(images)} images but {len(labels)} labels")
    classes = [c.strip() for c in (folder / "class_names.txt").read_text().splitlines() if c.strip()]
    return ImageTensors(images, labels, classes, f"stl10/{split}")
