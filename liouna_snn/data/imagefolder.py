"""ImageFolder trees (``root/{train,val}/<class>/*.jpg|jpeg|png``) decoded into memory, Imagenette included.

Images are decoded with PIL (RGB), resized so the shorter side is ``image_size`` (bilinear,
antialiased) and centre-cropped to ``image_size`` x ``image_size``. The decoded uint8 array is
cached on disk (see :mod:`liouna_snn.data.cache`) so later loads skip decoding.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .cache import cached_array
from .errors import download_hint, not_found
from .tensors import ImageTensors

IMAGENETTE_URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
IMAGENETTE_NAMES = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
    "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
    "n03888257": "parachute",
}
EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLIT_DIRS = ("train", "val")
_LAYOUT = "<root>/{train,val}/<class>/*.(jpg|jpeg|png)"


def find_imagenette_root(root: Path) -> Path | None:
    """``root`` if it holds train/ or val/, else its first sub-folder named ``imagenette*`` that
    does (e.g. ``root/imagenette2-160``); None if there is none."""
    root = Path(root)
    if any((root / s).is_dir() for s in SPLIT_DIRS):
        return root
    if not root.is_dir():
        return None
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.startswith("imagenette") and \
                any((child / s).is_dir() for s in SPLIT_DIRS):
            return child
    return None


def list_images(root: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    """Files of ``root/split`` sorted by class then name, their class indices, and the class names
    (hidden files and folders are skipped).

    The classes are the sorted union of the class folders of all splits present, so the same
    class gets the same index in train and val.
    """
    split_dir = root / split
    class_dirs = sorted({p.name for s in SPLIT_DIRS if (root / s).is_dir()
                         for p in (root / s).iterdir() if p.is_dir() and not p.name.startswith(".")})
    files, labels = [], []
    for k, name in enumerate(class_dirs):
        folder = split_dir / name
        if folder.is_dir():
            found = sorted(p for p in folder.iterdir()
                           if p.suffix.lower() in EXTENSIONS and not p.name.startswith("."))
            files += found
            labels += [k] * len(found)
    return files, labels, class_dirs


def decode_image(path: Path, image_size: int | None) -> np.ndarray:
    """One image file -> (3, H, W) uint8 RGB; resized + centre-cropped to (3, S, S) if ``image_size``."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        if image_size is not None and img.size != (image_size, image_size):
            w, h = img.size
            scale = image_size / min(w, h)
            new_w, new_h = max(image_size, round(w * scale)), max(image_size, round(h * scale))
            img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
            left, top = (new_w - image_size) // 2, (new_h - image_size) // 2
            img = img.crop((left, top, left + image_size, top + image_size))
        return np.asarray(img).transpose(2, 0, 1)


def _native_size(files: list[Path]) -> tuple[int, int]:
    """The common (H, W) of ``files`` (read from headers only); ValueError if they differ."""
    def size(p: Path) -> tuple[int, int]:
        with Image.open(p) as img:
            return img.size[1], img.size[0]
    with ThreadPoolExecutor() as pool:
        sizes = list(pool.map(size, files))
    distinct = sorted(set(sizes))
    if len(distinct) > 1:
        examples = ", ".join(f"{files[sizes.index(s)].name}: {s[0]}x{s[1]}" for s in distinct[:3])
        raise ValueError(f"images have different sizes ({examples}, ...); pass image_size=S to "
                         f"resize and centre-crop them all to SxS")
    return distinct[0]


def decode_all(files: list[Path], image_size: int | None, desc: str) -> np.ndarray:
    """Decode ``files`` with a thread pool into one (N, 3, H, W) uint8 array, with a progress bar.

    ``image_size`` None keeps the native size, which all files must share.
    """
    h, w = (image_size, image_size) if image_size is not None else _native_size(files)
    out = np.empty((len(files), 3, h, w), dtype=np.uint8)

    def work(i: int) -> None:
        out[i] = decode_image(files[i], image_size)

    with ThreadPoolExecutor() as pool, tqdm(total=len(files), desc=desc, unit="img") as bar:
        for _ in pool.map(work, range(len(files))):
            bar.update()
    return out


def load_imagefolder(root: Path, split: str, image_size: int | None, *,
                     dataset: str = "imagefolder") -> ImageTensors:
    """An ImageFolder split (``split`` is the folder name, "train" or "val") as (N, 3, S, S) uint8.

    For ``dataset="imagenette"``, ``root`` may also be a parent of an ``imagenette*`` folder, and
    the ten ImageNet wnids are reported by their human-readable names.
    """
    root = Path(root).expanduser()
    how = (download_hint(IMAGENETTE_URL, root) if dataset == "imagenette"
           else "point root at a folder laid out as shown")
    if dataset == "imagenette":
        found = find_imagenette_root(root)
        if found is None:
            raise not_found(dataset, root / "imagenette*" / split,
                            f"{_LAYOUT}, or <root>/imagenette*/{{train,val}}/...", how)
        root = found
    if not (root / split).is_dir():
        raise not_found(dataset, root / split, _LAYOUT, how)
    files, labels, classes = list_images(root, split)
    if not files:
        raise not_found(dataset, root / split / "<class>" / "*.jpg", _LAYOUT, how)

    size_key = "native" if image_size is None else str(image_size)
    listing = "\n".join(str(f.relative_to(root)) for f in files)
    key = f"{root.resolve()}|{split}|{size_key}|{len(files)}|{listing}"
    name = f"{dataset}/{split}"
    array = cached_array(f"{dataset}-{split}-{size_key}", key,
                         lambda: decode_all(files, image_size, f"decoding {name}"))
    if dataset == "imagenette" and set(classes) <= IMAGENETTE_NAMES.keys():
        classes = [IMAGENETTE_NAMES[c] for c in classes]
    return ImageTensors(torch.from_numpy(array), torch.tensor(labels, dtype=torch.int64), classes, name)
