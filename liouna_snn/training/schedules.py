"""Layer-decoupled unsupervised training schedules: greedy and simultaneous.

- ``greedy``: layer 1 learns for ``epochs`` epochs, is frozen, then layer 2, ... Frozen layers run
  in eval mode (batch-norm running statistics).
- ``simultaneous``: every batch flows up once and every layer learns from the detached output of
  the layer below, as it is now.

Either way a layer's update reads only its own input, drive, output and weights: no gradient and
no signal ever travels down. Runs are seeded, show a progress bar with images/s, write atomic
checkpoints and resume from them mid-epoch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..allocator import keep_freed_memory
from ..data import ImageTensors, iterate_batches, num_batches
from ..network import LocalNetwork
from ..spiking import CurrentScale
from .checkpoint import check_identity, load_checkpoint, save_atomic
from .progress import TrainingBar

SCHEDULES = ("greedy", "simultaneous")
CALIBRATION_IMAGES = 10_000
"""Training images whose exact averages :func:`recalibrate_norms` and :func:`calibrate_current_scales` compute."""


@dataclass(frozen=True)
class TrainConfig:
    """Options of an unsupervised training run.

    Attributes:
        schedule: ``greedy`` (layer by layer) or ``simultaneous`` (every layer on every batch).
        epochs: passes over the training set (per layer for ``greedy``).
        batch_size: images per update step.
        seed: fixes the shuffling and the input masks.
        checkpoint_every: steps between checkpoints (when a checkpoint path is given).
        recalibrate_norms: after a ``simultaneous`` run, recompute every batch-norm's running
            statistics with the final weights (its running averages lag the moving weights).
        max_seconds: wall-clock budget for learning (``None``: no limit). ``greedy`` gives each layer
            an equal share (layer i stops once i/n of the budget is spent, so time a layer leaves
            unused goes to the next); ``simultaneous`` stops
            every layer at the budget. A budgeted run is not bit-reproducible (it stops on a clock).
    """

    schedule: str = "greedy"
    epochs: int = 1
    batch_size: int = 10
    seed: int = 0
    checkpoint_every: int = 1000
    recalibrate_norms: bool = True
    max_seconds: float | None = None

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; allowed: {', '.join(SCHEDULES)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        check_budget(self.max_seconds)


def check_budget(max_seconds: float | None) -> None:
    """Raise a ``ValueError`` unless ``max_seconds`` is ``None`` or a positive number of seconds."""
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise ValueError(f"max_seconds (the wall-clock budget) must be a positive number of seconds or None, "
                         f"got {max_seconds!r}")


def schedule_phases(n_layers: int, schedule: str, epochs: int) -> list[tuple[list[int], int]]:
    """A run as a list of ``(layers that learn (0-based), epoch)`` phases: ``greedy`` or ``simultaneous``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")
    layers = list(range(n_layers))
    if schedule == "simultaneous":
        return [(layers, e) for e in range(epochs)]
    return [([i], e) for i in layers for e in range(epochs)]


def phase_deadlines(phases: list[tuple[list[int], int]], max_seconds: float | None) -> list[float]:
    """Per phase, the training seconds (cumulative) at which it must stop under a budget.

    The budget is split equally among the groups of consecutive phases with the same learning
    layers (one group for ``simultaneous``, one per layer for ``greedy``); ``inf`` without a budget.
    """
    groups = [learning for i, (learning, _) in enumerate(phases) if i == 0 or phases[i - 1][0] != learning]
    deadlines, g = [], -1
    for i, (learning, _) in enumerate(phases):
        if i == 0 or phases[i - 1][0] != learning:
            g += 1
        deadlines.append(float("inf") if max_seconds is None else max_seconds * (g + 1) / len(groups))
    return deadlines


def _phases(network: LocalNetwork, config: TrainConfig) -> list[tuple[list[int], int]]:
    """The run as a list of (layers that learn, epoch) phases."""
    return schedule_phases(len(network), config.schedule, config.epochs)


def unfinished_phases(state: dict, network: LocalNetwork) -> tuple[int, int] | None:
    """``(phase, total)`` when checkpoint ``state`` holds a run that stopped before the last phase of its schedule,
    else ``None`` (finished, or a checkpoint too old to record its phase and schedule)."""
    if "config" not in state or "phase" not in state:
        return None
    total = len(_phases(network, TrainConfig(**state["config"])))
    return (state["phase"], total) if state["phase"] < total else None


def epoch_generator(seed: int, phase: int) -> torch.Generator:
    """The CPU generator that shuffles phase ``phase`` of a run seeded ``seed``."""
    return torch.Generator().manual_seed(seed * 1_000_003 + phase)


_epoch_generator = epoch_generator


def data_fingerprint(data: ImageTensors, mean: torch.Tensor | None, std: torch.Tensor | None) -> dict:
    """A cheap identity of the training images and their standardisation (checkpoints compare it)."""
    head = data.images[:256].flatten(1).long()
    weights = torch.arange(1, len(head) + 1, device=head.device)
    return {"images": len(data), "shape": list(data.images.shape[1:]), "head_sum": int(head.sum()),
            "head_weighted_sum": int((head.sum(1) * weights).sum()),
            "mean": None if mean is None else [round(float(v), 6) for v in mean.flatten()],
            "std": None if std is None else [round(float(v), 6) for v in std.flatten()]}


def reusable_layers(network: LocalNetwork, config: TrainConfig, data: dict, donor: dict,
                    device_type: str | None = None) -> int:
    """How many leading layers a greedy run of ``network`` can take, trained, from ``donor`` (another run's
    checkpoint) instead of training them again: the same training options and data, the same layers (shapes,
    rules, compute dtype, initial weights) up to there, and finished in the donor. In rate mode greedy training
    of a layer depends only on the layers below it, the data order of its own phase (seeded per phase) and its
    own mask generator, so the taken layers are the ones this run would train, on the same kind of device
    (``device_type``, e.g. ``"cpu"``: a donor that recorded another is refused, since other kernels round
    differently and its seconds are another machine's). Spiking networks take none: their frozen layers draw input
    spikes from the global generator, whose state depends on the phases before."""
    return layer_reuse(network, config, data, donor, device_type)[0]


def layer_reuse(network: LocalNetwork, config: TrainConfig, data: dict, donor: dict,
                device_type: str | None = None) -> tuple[int, str]:
    """:func:`reusable_layers` and why it stops there: ``(k, reason)``, e.g. ``(0, "other training images")``
    or ``(1, "layer 2 differs in: rule.lr")``."""
    if config.schedule != "greedy" or config.max_seconds is not None or network.spiking is not None:
        return 0, "only greedy rate-mode runs without max_seconds take layers"
    if donor.get("phase_seconds") is None or "network_identity" not in donor:
        return 0, "a checkpoint without per-layer records (written before they existed, or not by a layer-local run)"
    if donor.get("data") != data:
        return 0, "other training images or standardisation"
    if device_type is not None and donor.get("device_type", device_type) != device_type:  # (older: not recorded)
        return 0, f"trained on {donor['device_type']}, not {device_type}"
    if donor["network_identity"].get("init_seed") != network.init_seed:
        return 0, f"other seed ({donor['network_identity'].get('init_seed')})"
    # the options that shape greedy weights (not how often checkpoints are written, nor the simultaneous-only
    # batch-norm recalibration)
    shaping = ("schedule", "epochs", "batch_size", "seed", "max_seconds")
    donor_config = {"max_seconds": None, **donor.get("config", {})}
    other = [key for key in shaping if donor_config.get(key) != getattr(config, key)]
    if other:
        return 0, f"other training options: {', '.join(other)}"
    mine, theirs = network.identity()["layers"], donor["network_identity"]["layers"]
    finished = len(donor["phase_seconds"]) // config.epochs
    k = 0
    while k < min(finished, len(mine), len(theirs)) and mine[k] == theirs[k]:
        k += 1
    if k == len(mine):
        return k, "every layer"
    if k == finished:
        return k, f"the donor finished {finished} layer(s)"
    if k == len(theirs):
        return k, f"the donor has {len(theirs)} layer(s)"
    return k, f"layer {k + 1} differs in: {', '.join(_differing_keys(mine[k], theirs[k]))}"


def donor_name(donor: str | Path, checkpoint: str | Path | None) -> str:
    """How a results record names the checkpoint a run took layers from: its file name when it lies beside the
    run's own ``checkpoint``, else ``<experiment>/<file>`` (another experiment's checkpoint folder)."""
    donor = Path(donor)
    if checkpoint is None or donor.parent.name == Path(checkpoint).parent.name:
        return donor.name
    return f"{donor.parent.name}/{donor.name}"


def _differing_keys(a, b, prefix: str = "") -> list[str]:
    """The (dotted) keys where two nested identity records differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b))
                for d in _differing_keys(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".") or "value"]


def train_unsupervised(
    network: LocalNetwork,
    data: ImageTensors,
    config: TrainConfig,
    *,
    device: str | torch.device = "cpu",
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    checkpoint: str | Path | None = None,
    donors: list[str | Path] = (),
    progress: bool = True,
    description: str = "unsupervised",
) -> dict:
    """Train ``network`` on ``data`` without labels; returns a summary (``seconds``, ``images_per_second``,
    ``steps``, ``schedule``, ``reused_layers``, ``reused_from``).

    If ``checkpoint`` names an existing checkpoint of this run, training resumes from it. Otherwise a greedy
    run takes its leading layers, already trained, from the ``donors`` checkpoint (other runs') that has the most
    of them (:func:`reusable_layers`); their seconds count in ``seconds`` as the donor measured them.
    """
    if torch.device(device).type == "cpu":
        keep_freed_memory()  # the steps' large temporaries are reused instead of page-faulted anew
    network.to(device)
    phases = _phases(network, config)
    per_epoch = num_batches(len(data), config.batch_size, drop_last=True)
    mask_gens = [torch.Generator().manual_seed(config.seed * 7919 + i) for i in range(len(network))]
    start_phase, start_batch, elapsed, images, phase_seconds = 0, 0, 0.0, 0, []
    data_id = data_fingerprint(data, mean, std)
    reused, reused_from = 0, None
    state = load_checkpoint(checkpoint) if checkpoint else None
    if state is not None:
        if {"max_seconds": None, **state.get("config", {})} != config.__dict__:  # (older checkpoints lack max_seconds)
            raise ValueError(f"checkpoint {checkpoint} was written by a run with other options "
                             f"({state.get('config')}); delete it or use the same options")
        check_identity(state, network, checkpoint, "delete it or use the same options")
        if state.get("data", data_id) != data_id:  # (older checkpoints lack the data's fingerprint)
            raise ValueError(f"checkpoint {checkpoint} was written by a run on other data ({state['data']['images']} "
                             f"images, standardisation {state['data']['mean']}); delete it or use the same data")
        network.load_state_dict(state["network"])
        for g, s in zip(mask_gens, state["mask_generators"]):
            g.set_state(s)
        start_phase, start_batch = state["phase"], state["batch"]
        elapsed, images = state["elapsed"], state["images"]
        # (older checkpoints lack per-phase seconds: this run then never serves as a donor)
        phase_seconds = None if state.get("phase_seconds") is None else list(state["phase_seconds"])
        reused, reused_from = state.get("reused_layers", 0), state.get("reused_from")
        if progress and reused:
            print(f"  {description}: layers 1-{reused} taken, trained, from {donor_name(reused_from, checkpoint)}",
                  flush=True)
    else:
        nearest = None  # (layers, reason, file) of the donor that came closest, for the message below
        for path in donors:
            donor = load_checkpoint(path)
            k, why = (layer_reuse(network, config, data_id, donor, torch.device(device).type) if donor is not None
                      else (0, "unreadable"))
            if k > reused:
                reused, reused_from, best = k, str(path), donor
            if nearest is None or k > nearest[0]:
                nearest = (k, why, Path(path).name)
        if progress and reused == len(network):
            print(f"  {description}: layers 1-{reused} taken, trained, from {donor_name(reused_from, checkpoint)}",
                  flush=True)
        elif progress and nearest is not None:
            print(f"  {description}: {reused} of {len(network)} layers taken from {len(donors)} checkpoint(s) "
                  f"({nearest[2]}: {nearest[1]})", flush=True)
        if reused:
            for i in range(reused):
                prefix = f"layers.{i}."
                network.layers[i].load_state_dict({key[len(prefix):]: v for key, v in best["network"].items()
                                                   if key.startswith(prefix)})
                mask_gens[i].set_state(best["mask_generators"][i])
            start_phase = reused * config.epochs
            phase_seconds = list(best["phase_seconds"][:start_phase])
            elapsed, images = sum(phase_seconds), start_phase * per_epoch * config.batch_size

    def save(phase: int, batch: int):
        if checkpoint:
            save_atomic({"network": network.state_dict(), "phase": phase, "batch": batch, "elapsed": elapsed,
                         "images": images, "config": config.__dict__, "network_identity": network.identity(),
                         "data": data_id, "phase_seconds": phase_seconds, "reused_layers": reused,
                         "reused_from": reused_from, "device_type": torch.device(device).type,
                         "mask_generators": [g.get_state() for g in mask_gens]}, checkpoint)

    if reused:
        save(start_phase, 0)

    total_steps = len(phases) * per_epoch
    deadlines = phase_deadlines(phases, config.max_seconds)
    bar = TrainingBar(total_steps, start_phase * per_epoch + start_batch, config.max_seconds, elapsed,
                      progress=progress, description=description)
    for p in range(start_phase, len(phases)):
        learning, epoch = phases[p]
        top = max(learning)
        if elapsed >= deadlines[p]:  # this layer's share of the budget is spent
            start_batch = 0
            continue
        for i, layer in enumerate(network.layers):
            layer.train(i in learning)
        batches = iterate_batches(data, config.batch_size, shuffle=True, generator=_epoch_generator(config.seed, p),
                                  device=device, drop_last=True, mean=mean, std=std,
                                  start_batch=start_batch if p == start_phase else 0)
        b = start_batch if p == start_phase else 0
        t0 = time.perf_counter()
        for x, _ in batches:
            progress_in_layer = (epoch * per_epoch + b) / (config.epochs * per_epoch)
            h = x
            for i in range(top + 1):
                if i in learning:
                    h = network.learn_layer(i, h, progress_in_layer, mask_gens[i], output=i < top)
                else:
                    h = network.layers[i](network._layer_input(i, h))
            b += 1
            images += x.shape[0]
            now = time.perf_counter()
            bar.step(elapsed + now - t0)
            if b % 20 == 0:
                bar.set_postfix(img_s=f"{images / (elapsed + now - t0):.0f}", layer="+".join(str(i + 1) for i in learning))
            if checkpoint and b % config.checkpoint_every == 0 and b < per_epoch:
                elapsed += now - t0
                t0 = now
                save(p, b)
            if elapsed + now - t0 >= deadlines[p]:
                break
        if config.schedule == "greedy" and (p + 1 == len(phases) or phases[p + 1][0] != learning):
            calibrate_current_scales(network, data, learning, device=device, mean=mean, std=std)
        elapsed += time.perf_counter() - t0
        start_batch = 0
        if phase_seconds is not None:
            phase_seconds.append(elapsed - sum(phase_seconds))
        save(p + 1, 0)
    bar.close()
    if config.schedule == "simultaneous":
        t0 = time.perf_counter()
        if config.recalibrate_norms:  # (the current scales with the rest)
            recalibrate_norms(network, data, device=device, mean=mean, std=std)
        else:
            calibrate_current_scales(network, data, range(len(network)), device=device, mean=mean, std=std)
        elapsed += time.perf_counter() - t0
    network.eval()
    return {"seconds": elapsed, "images": images, "images_per_second": images / max(elapsed, 1e-9),
            "steps": total_steps, "schedule": config.schedule, "reused_layers": reused, "reused_from": reused_from}


@torch.no_grad()
def recalibrate_norms(network: LocalNetwork, data: ImageTensors, *, device="cpu", mean=None, std=None,
                      max_images: int | None = CALIBRATION_IMAGES, batch_size: int = 250, progress: bool = False,
                      description: str = "recalibrating norms") -> None:
    """Recompute each batch-norm's running statistics, and in spiking mode each layer's :class:`CurrentScale`,
    as exact averages over the first ``max_images`` images (``None``: all of ``data``; a progress bar with
    ``progress``)."""
    if max_images is None:
        max_images = len(data)
    if max_images < 1:
        raise ValueError(f"recalibrate_norms: max_images must be >= 1 or None (all images), got {max_images}")
    norms = [m for m in network.modules() if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, CurrentScale))]
    network.train()
    _average_statistics(network, norms, data, None, device=device, mean=mean, std=std, max_images=max_images,
                        batch_size=batch_size, progress=progress, description=description)
    network.eval()


def _average_statistics(network, norms: list, data: ImageTensors, depth: int | None, *, device, mean, std,
                        max_images: int, batch_size: int, progress: bool = False, description: str | None = None) -> None:
    """Reset the running statistics of ``norms`` (batch-norms, current scales) and set them to the cumulative average
    over the first ``max_images`` images of ``data`` run through ``network`` (any module; a
    :class:`LocalNetwork` up to layer ``depth``, 1-based, unless ``None``), each
    module in the mode it is in; their momentum is restored after."""
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    seen = 0
    batches = iterate_batches(data, batch_size, shuffle=False, device=device, mean=mean, std=std)
    total = -(-min(max_images, len(data)) // batch_size)
    for x, _ in tqdm(batches, total=total, disable=not progress, desc=description, unit="batch", leave=False):
        network(x) if depth is None else network(x, depth=depth)
        seen += x.shape[0]
        if seen >= max_images:
            break
    for m, mom in zip(norms, saved):
        m.momentum = mom


def exactly_calibrated(layer) -> bool:
    """Whether ``layer`` asks its schedule for an exact current scale (``current_calibration = "exact"``)."""
    spiking = getattr(layer, "spiking", None)
    return (spiking is not None and spiking.current_calibration == "exact"
            and getattr(layer, "current_scale", None) is not None)


@torch.no_grad()
def calibrate_current_scales(network: LocalNetwork, data: ImageTensors, layers, *, device="cpu", mean=None,
                             std=None, max_images: int = CALIBRATION_IMAGES, batch_size: int = 250) -> list[int]:
    """Set the :class:`~liouna_snn.spiking.CurrentScale` estimate of each of ``layers`` (0-based indices) that asks
    for ``current_calibration = "exact"`` to the average of its current's variance over the first ``max_images``
    images of ``data``, with the weights as they are now; every other statistic is left as it is.

    The layers below run as the layers above will see them (``eval()``: running batch-norm statistics and, for the
    layers calibrated here, their new estimates: one pass per layer, bottom up), so the estimate is the one the next
    layer's learning and the probes' features will use. Returns the layers calibrated, ascending; with none (e.g. in
    rate mode) nothing runs and the network is left as it is, else in ``eval()`` mode.
    """
    chosen = sorted(i for i in set(layers) if exactly_calibrated(network.layers[i]))
    if not chosen:
        return []
    if max_images < 1:
        raise ValueError(f"calibrate_current_scales: max_images must be >= 1, got {max_images}")
    network.eval()
    for i in chosen:  # one layer at a time, from the bottom: each sees the final estimates of those below
        scale = network.layers[i].current_scale.train()
        _average_statistics(network, [scale], data, i + 1, device=device, mean=mean, std=std, max_images=max_images,
                            batch_size=batch_size)
        scale.eval()
    return chosen
