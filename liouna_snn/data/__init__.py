"""Datasets held whole in memory as uint8 tensors, and mini-batches drawn from them.

>>> data = load_dataset("cifar10-mini", split="train")       # ImageTensors, images (4000, 3, 32, 32) uint8
>>> mean, std = data.channel_stats()
>>> for x, y in iterate_batches(data, 128, shuffle=True, mean=mean, std=std):
...     pass                                                    # x (B, 3, 32, 32) float32, y (B,) int64
"""

from .batches import iterate_batches, num_batches
from .cache import cache_dir
from .datasets import DATASETS, SPLITS, default_root, load_dataset
from .errors import DatasetNotFoundError
from .tensors import ImageTensors, resize_center_crop

__all__ = [
    "DATASETS", "SPLITS", "DatasetNotFoundError", "ImageTensors", "cache_dir", "default_root",
    "iterate_batches", "load_dataset", "num_batches", "resize_center_crop",
]
