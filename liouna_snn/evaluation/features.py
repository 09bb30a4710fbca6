"""Per-layer features of a trained network, cached as one tensor per split."""
from __future__ import annotations

import inspect
from typing import Iterator

import torch
from tqdm.auto import tqdm

from ..data import ImageTensors, iterate_batches
from ..precision import storage_dtype


@torch.no_grad()
def _layer_outputs(network, source: ImageTensors | torch.Tensor, depth: int, start: int, *, device, mean, std,
                   batch_size: int, dtype: torch.dtype | None, flatten: bool, labels: torch.Tensor | None,
                   progress: bool, description: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``network(x, depth)`` for every image of ``source`` in order, batch by batch.

    ``source`` is the images (``start = 0``; standardised with ``mean`` / ``std``) or layer ``start``'s outputs
    ``(N, ...)`` on ``device`` with their ``labels``. Returns ``(outputs (N, ...) or flattened (N, F) in dtype,
    or the network's output dtype for None, labels (N,))``.
    """
    n = len(source)
    if start == 0:
        labels = torch.empty(n, dtype=torch.long, device=device)
        batches = iterate_batches(source, batch_size, shuffle=False, device=device, mean=mean, std=std)
    else:
        batches = ((source[s:s + batch_size], None) for s in range(0, n, batch_size))
    out, i = None, 0
    for x, y in tqdm(batches, total=-(-n // batch_size), disable=not progress, desc=description, unit="batch",
                     leave=False):
        h = network(x, depth) if start == 0 else network(x, depth, start=start)
        if flatten:
            h = h.flatten(1)
        if out is None:
            out = torch.empty((n, *h.shape[1:]), dtype=dtype or h.dtype, device=device)
        out[i:i + len(h)] = h
        if y is not None:
            labels[i:i + len(h)] = y
        i += len(h)
    return out, labels


def extract_features(network, data: ImageTensors, depth: int, *, device="cpu", mean=None, std=None,
                     batch_size: int = 250, dtype: torch.dtype | None = None, progress: bool = True,
                     description: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened outputs of layer ``depth`` (1-based, after its pooling) for every image of ``data``.

    Returns ``(features (N, F) in dtype, labels (N,) int64)`` on ``device``; ``dtype=None`` stores
    bfloat16 where the device computes it natively (half the memory), float32 elsewhere
    (:func:`liouna_snn.precision.storage_dtype`). The network runs in eval mode (batch-norm running
    statistics).
    """
    network.eval()
    return _layer_outputs(network, data, depth, 0, device=device, mean=mean, std=std, batch_size=batch_size,
                          dtype=dtype or storage_dtype(device), flatten=True, labels=None, progress=progress,
                          description=description)


def features_by_depth(network, data: ImageTensors, depths: list[int], *, device="cpu", mean=None, std=None,
                      batch_size: int = 250, dtype: torch.dtype | None = None, progress: bool = True,
                      description: str = "features") -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(depth, features (N, F), labels (N,))`` for every depth of ``depths``, shallowest first, as
    :func:`extract_features` gives them, with each layer run once per image.

    A network whose ``forward`` takes ``start`` (:class:`liouna_snn.network.LocalNetwork`) computes depth d's
    outputs from the previous depth's, kept in the layers' output dtype, instead of from the pixels again (for
    three probed layers, half the layer passes). The yielded features are the caller's, who may modify them in
    place (the probe standardises them). Peak memory: while depth d+1 is computed, depth d's outputs and depth
    d+1's, both in the layers' output dtype (float32: twice bfloat16 features), plus whatever features the caller
    still holds; for the CIFAR-10 3-layer net on 50,000 images about 10 GB, against one depth's features when
    each depth is computed from the pixels. Other models run :func:`extract_features` once per depth.
    """
    depths = sorted(set(depths))
    kw = dict(device=device, mean=mean, std=std, batch_size=batch_size, progress=progress)
    if "start" not in inspect.signature(network.forward).parameters:
        for d in depths:
            yield (d, *extract_features(network, data, d, dtype=dtype, description=f"{description} layer {d}", **kw))
        return
    network.eval()
    dtype = dtype or storage_dtype(device)
    outputs, labels, start = data, None, 0
    for d in depths:
        last = d == depths[-1]
        # the deepest layer's outputs go straight to features; the others stay unflattened for the next layer
        outputs, labels = _layer_outputs(network, outputs, d, start, dtype=dtype if last else None, flatten=last,
                                         labels=labels, description=f"{description} layer {d}", **kw)
        start = d
        # yielded without a local name, so this frame holds no reference while the next depth is computed
        yield d, (outputs if last else outputs.flatten(1).to(dtype, copy=True)), labels.clone()
