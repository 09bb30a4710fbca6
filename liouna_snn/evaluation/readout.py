"""Read a trained network out in another mode (rate or spiking) and probe it.

A network trained in one mode keeps its weights, batch-norm statistics and rules when its activations are
swapped (:meth:`liouna_snn.network.LocalNetwork.with_spiking`), but its deeper layers then receive other
activity, so the normalisations are recomputed first (:func:`liouna_snn.training.recalibrate_norms`). What the
probe then finds separates what the weights learned from what the mode they are read in costs: a spiking-trained
network read out in rate mode, or a rate-trained one read out through spiking neurons.
"""
from __future__ import annotations

import time

from ..data import ImageTensors
from .layers import probe_layers


def read_out(network, spiking, train: ImageTensors, test: ImageTensors, depths: list[int], *,
             calibration_images: int | None, device, mean=None, std=None, seed: int = 0, progress: bool = True,
             label: str = "read-out", **probe) -> dict:
    """Probe ``network``'s layers at ``depths`` (1-based) read out in the mode ``spiking`` (a
    :class:`liouna_snn.spiking.SpikingConfig`, or ``None`` for rate mode), norms recalibrated on the first
    ``calibration_images`` training images (``None``: all); ``network`` itself is not changed.

    ``probe`` holds the options of :func:`liouna_snn.evaluation.probe_layers` (epochs, batch size, ...).

    Returns a record: ``mode``, ``neuron``, ``time_steps``, ``spiking`` (the config as a dict, or ``None``),
    ``layers`` (each probed layer's linear-probe and k-NN top-1, %), ``probe_top1`` (the best layer's),
    ``calibration_seconds`` and ``probe_seconds`` (s), and in spiking mode ``activity``: each layer's inference
    firing statistics.
    """
    from ..training import recalibrate_norms  # (training imports this package's siblings: keep it lazy)

    net = network.with_spiking(spiking).to(device)
    t0 = time.perf_counter()
    recalibrate_norms(net, train, device=device, mean=mean, std=std, max_images=calibration_images,
                      progress=progress, description=f"{label} recalibrating norms")
    calibration_seconds = time.perf_counter() - t0
    for layer in net.layers:
        layer.reset_activity()
    t0 = time.perf_counter()
    layers = probe_layers(net, train, test, depths, device=device, mean=mean, std=std, seed=seed, progress=progress,
                          label=label, **probe)
    probe_seconds = time.perf_counter() - t0
    record = {"mode": "rate" if spiking is None else "spiking",
              "neuron": "rate" if spiking is None else spiking.neuron,
              "time_steps": 1 if spiking is None else spiking.time_steps,
              "spiking": None if spiking is None else spiking.to_dict(),
              "layers": layers, "probe_top1": max(layer["probe_top1"] for layer in layers),
              "calibration_seconds": round(calibration_seconds, 1), "probe_seconds": round(probe_seconds, 1)}
    if spiking is not None:
        record["activity"] = [{"layer": i + 1, **(layer.activity() or {}).get("inference", {})}
                              for i, layer in enumerate(net.layers)]
    return record
