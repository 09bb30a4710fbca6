"""Per-layer features of a trained network, cached as one tensor per split."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..data import ImageTensors, iterate_batches
from ..precision import storage_dtype


@torch.no_grad()
def extract_features(network, data: ImageTensors, depth: int, *, device="cpu", mean=None, std=None,
                     batch_size: int = 250, dtype: torch.dtype | None = None, progress: bool = True,
                     description: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened outputs of layer ``depth`` (1-based, after its pooling) for every image of ``data``.

    Returns ``(features (N, F) in dtype, labels (N,) int64)`` on ``device``; ``dtype=None`` stores
    bfloat16 where the device computes it natively (half the memory), float32 elsewhere
    (:func:`liouna_snn.precision.storage_dtype`). The network runs in eval mode (batch-norm running
    statistics).
    """
    dtype = dtype or storage_dtype(device)
    network.eval()
    feats, labels = None, torch.empty(len(data), dtype=torch.long, device=device)
    i = 0
    for x, y in tqdm(iterate_batches(data, batch_size, shuffle=False, device=device, mean=mean, std=std),
                     total=-(-len(data) // batch_size), disable=not progress, desc=description, unit="batch",
                     leave=False):
        f = network(x, depth).flatten(1)
        if feats is None:
            feats = torch.empty(len(data), f.shape[1], dtype=dtype, device=device)
        feats[i:i + len(f)] = f.to(dtype)
        labels[i:i + len(f)] = y
        i += len(f)
    return feats, labels
