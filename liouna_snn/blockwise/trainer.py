"""Blockwise self-supervised training of a staged backbone, and the end-to-end baselines.

Three modes share one loop (:func:`train_blockwise`):

- ``blockwise`` (Siddiqui et al. 2023): every stage has its own head + projector and its own SSL
  loss on two augmented views; each stage's output is detached before the next stage, so no
  gradient crosses a stage boundary. Optional noise ``h + sigma * std(h) * N(0, 1)`` (``std`` over
  the whole batch tensor, a detached scalar) on the output passed to the next stage. Stages learn
  simultaneously (schedule ``simultaneous``: every batch trains every stage) or sequentially
  (schedule ``greedy``: stage 1 for all its epochs, frozen in eval mode, then stage 2, ...).
- ``end-to-end``: one SSL loss on the last stage (global average pool -> projector), gradients
  through the whole backbone (end-to-end Barlow Twins / VICReg / SimCLR).
- ``supervised``: cross-entropy of a linear classifier on the last stage (pooled as the probe
  features), backprop through everything, one lightly augmented view.

The loop reuses the Hebbian trainer's machinery: its phase schedule and budget split
(:func:`liouna_snn.training.schedule_phases`, :func:`~liouna_snn.training.phase_deadlines`), its
seeded epoch order (:func:`~liouna_snn.training.epoch_generator` + :func:`liouna_snn.data.iterate_batches`),
atomic checkpoints and mid-epoch resumption (:func:`~liouna_snn.training.save_atomic`), its progress bar
(:class:`~liouna_snn.training.TrainingBar`: steps, or seconds of a budget)
with images/s; the model's ``forward(x, depth)`` gives probe features to
:func:`liouna_snn.evaluation.probe_layers`. SGD or LARS, linear warm-up then cosine decay over the
run's progress (steps, or seconds of a wall-clock budget, whichever is further along). Forward passes
run under ``torch.autocast(bfloat16)`` on CPU and GPU with ``precision = "bf16"`` (``"auto"``: where the
device computes bf16 natively); losses compute in float32.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageTensors, iterate_batches, num_batches
from ..data.augment import Augment
from ..precision import PRECISIONS, resolve_precision
from ..training import (TrainingBar, check_budget, epoch_generator, load_checkpoint, phase_deadlines, save_atomic,
                        schedule_phases)
from .losses import LOSSES, make_loss
from .optim import OPTIMIZERS, make_optimizer, warmup_cosine
from .resnet import Projector, ResNetBackbone, StageHead

MODES = ("blockwise", "end-to-end", "supervised")
# Projector sizes per loss when none is given (solo-learn's CIFAR settings).
DEFAULT_PROJECTORS = {"barlow-twins": (2048, 2048, 2048), "vicreg": (2048, 2048, 2048), "simclr": (2048, 256)}
# One view for supervised training: crop + flip only.
SUPERVISED_AUGMENT = Augment(scale=(0.6, 1.0), jitter_p=0.0, grayscale_p=0.0)
# The identity view (whole image, no flip, no colour change; equal to the input up to ~1e-5 of resampling
# rounding): supervised training without augmentation.
NO_AUGMENT = Augment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
# The end-to-end supervised baseline's optimiser (lr per 256 images), shared by the low-compute
# comparison (``e2e-supervised-*``) and the transfer harness (rule ``e2e-supervised``).
# Gradients clipped to norm 1: the Hebbian net's triangle activation with power 0.7 has an unbounded derivative
# at 0, and without clipping SGD at this rate diverged on full CIFAR-10 (the first low-compute run).
SUPERVISED_SGD = {"optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4, "grad_clip": 1.0}


@dataclass(frozen=True)
class BlockwiseConfig:
    """Options of a blockwise / end-to-end training run.

    Attributes:
        mode: ``blockwise``, ``end-to-end`` or ``supervised`` (see the module docstring).
        loss: SSL loss, one of :data:`liouna_snn.blockwise.losses.LOSSES` (ignored when supervised).
        loss_options: keyword options of the loss (e.g. ``{"lambd": 0.0051}``, ``{"temperature": 0.5}``).
        schedule: ``simultaneous`` or ``greedy`` (sequential stages; blockwise mode only).
        epochs: passes over the data (per stage for ``greedy``); an upper bound under ``max_seconds``.
        batch_size: images per step (SSL steps see 2 views of each).
        optimizer: ``lars`` or ``sgd``. lr: learning rate per 256 images (scaled by batch_size / 256).
        momentum, weight_decay: of the optimizer.
        grad_clip: the gradients' global L2 norm is clipped to this before each step (``None``: no clipping).
        warmup: fraction of the run (or of each stage's share, ``greedy``) spent warming up.
        final_lr_fraction: the cosine decays to ``lr * final_lr_fraction``.
        noise_sigma: sigma of the noise on stage outputs passed on (blockwise; paper: 0.25).
        head_channels: width of each stage's 1x1-conv head (blockwise); ``None``: the last stage's channels.
        projector: projector sizes (hidden..., output); ``None``: :data:`DEFAULT_PROJECTORS` of the loss.
        augment: augmentation options; ``None``: :class:`~liouna_snn.data.augment.Augment` defaults
            for SSL, :data:`SUPERVISED_AUGMENT` for supervised.
        feature_pool: probe features (and the supervised classifier's input) of a stage: adaptive
            average pool to ``p x p`` then flatten (1: global average pool); ``None``: flatten the
            whole stage output (as the Hebbian probes do).
        precision: ``bf16`` (autocast), ``fp32``, or ``auto`` (bf16 where the device computes it
            natively, :mod:`liouna_snn.precision`).
        max_seconds: wall-clock budget of the training loop (``None``: run all epochs).
        seed: fixes initialisation (done by the model builder), data order, views and noise.
        checkpoint_every: steps between checkpoints (when a checkpoint path is given).
    """

    mode: str = "blockwise"
    loss: str = "barlow-twins"
    loss_options: dict = field(default_factory=dict)
    schedule: str = "simultaneous"
    epochs: int = 1
    batch_size: int = 256
    optimizer: str = "lars"
    lr: float = 0.3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    grad_clip: float | None = None
    warmup: float = 0.05
    final_lr_fraction: float = 0.0
    noise_sigma: float = 0.0
    head_channels: int | None = None
    projector: tuple[int, ...] | None = None
    augment: Augment | None = None
    feature_pool: int | None = 1
    precision: str = "auto"
    max_seconds: float | None = None
    seed: int = 0
    checkpoint_every: int = 200

    def __post_init__(self):
        choices = {"mode": MODES, "loss": tuple(LOSSES), "optimizer": OPTIMIZERS, "precision": PRECISIONS,
                   "schedule": ("simultaneous", "greedy")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; allowed: {', '.join(allowed)}")
        if self.schedule == "greedy" and self.mode != "blockwise":
            raise ValueError(f"schedule 'greedy' (sequential stages) needs mode 'blockwise', got mode {self.mode!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"epochs must be >= 1 and batch_size >= 2, got {self.epochs} and {self.batch_size}")
        if self.lr <= 0 or not 0 <= self.warmup < 1 or self.noise_sigma < 0:
            raise ValueError(f"need lr > 0, 0 <= warmup < 1, noise_sigma >= 0; got {self.lr}, {self.warmup}, "
                             f"{self.noise_sigma}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be a positive gradient norm or None, got {self.grad_clip}")
        if self.feature_pool is not None and self.feature_pool < 1:
            raise ValueError(f"feature_pool must be >= 1 or None, got {self.feature_pool}")
        check_budget(self.max_seconds)
        make_loss(self.loss, **self.loss_options)   # unknown loss options raise here

    @property
    def views(self) -> Augment:
        """The augmentation in use."""
        if self.augment is not None:
            return self.augment
        return SUPERVISED_AUGMENT if self.mode == "supervised" else Augment()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["augment"] = dataclasses.asdict(self.views)
        d["projector"] = list(self.projector) if self.projector is not None else None
        return d


def pool_features(h: torch.Tensor, pool: int | None) -> torch.Tensor:
    """``(B, C, H, W) -> (B, F)``: adaptive average pool to ``pool x pool`` then flatten (``None``: flatten)."""
    if pool is not None and h.dim() == 4:
        h = F.adaptive_avg_pool2d(h, pool)
    return h.flatten(1)


class BlockwiseModel(nn.Module):
    """A staged backbone and its training objectives.

    The backbone needs ``len(backbone)`` stages, ``backbone.stage(i, h)`` (1-based),
    ``backbone.stage_modules(i)``, ``backbone.stage_parameters(i)``, ``backbone.stage_channels`` and
    ``backbone(x, depth)`` (:class:`ResNetBackbone`,
    :class:`~liouna_snn.blockwise.convnet.SpecConvNet`). ``forward(x, depth)`` returns the probe
    features of stage ``depth``: ``(B, F)`` float32, pooled per ``config.feature_pool``, computed
    under bf16 autocast when ``config.precision`` resolves to bf16 (:mod:`liouna_snn.precision`).

    Objectives: ``blockwise``: ``heads[i]`` = :class:`StageHead` -> :class:`Projector` per stage;
    ``end-to-end``: ``heads[0]`` = global average pool -> :class:`Projector` on the last stage;
    ``supervised``: ``classifier``, a linear layer on the last stage's pooled features.
    """

    def __init__(self, backbone: nn.Module, config: BlockwiseConfig, num_classes: int = 10, input_size: int = 32):
        super().__init__()
        self.backbone, self.config = backbone, config
        channels = list(backbone.stage_channels)
        dims = tuple(config.projector or DEFAULT_PROJECTORS[config.loss])
        if config.mode == "blockwise":
            head = config.head_channels or channels[-1]
            self.heads = nn.ModuleList(nn.Sequential(StageHead(c, head), Projector(head, dims)) for c in channels)
        elif config.mode == "end-to-end":
            self.heads = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), Projector(channels[-1], dims))])
        else:
            with torch.no_grad():
                was = backbone.training
                f = pool_features(backbone.eval()(torch.zeros(1, 3, input_size, input_size)), config.feature_pool)
                backbone.train(was)
            self.classifier = nn.Linear(f.shape[1], num_classes)

    def autocast(self, device_type: str):
        bf16 = resolve_precision(self.config.precision, device_type) == "bf16"
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=bf16)

    def forward(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        depth = len(self.backbone) if depth is None else depth
        with self.autocast(x.device.type):
            h = self.backbone(x, depth)
        return pool_features(h.float(), self.config.feature_pool)


def build_resnet_model(arch: str = "resnet18", config: BlockwiseConfig | None = None, *, width: int = 64,
                       num_classes: int = 10, input_size: int = 32) -> BlockwiseModel:
    """A :class:`BlockwiseModel` on a CIFAR-stem ResNet, initialised from ``config.seed`` (global RNG untouched)."""
    config = config or BlockwiseConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return BlockwiseModel(ResNetBackbone(arch, width), config, num_classes, input_size)


def _normalise(x: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None) -> torch.Tensor:
    if mean is None:
        return x
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def objective_losses(model: BlockwiseModel, h: torch.Tensor, y: torch.Tensor | None = None,
                     learning: list[int] | None = None, noise_gen: torch.Generator | None = None) -> list[torch.Tensor]:
    """The loss of every objective that learns, as float32 scalars with their own autograd graphs.

    ``h``: the standardised input; for SSL modes the two views stacked, ``(2B, C, H, W)`` (rows
    ``n`` and ``B + n`` are a positive pair); for ``supervised`` one view ``(B, C, H, W)`` with labels
    ``y``. ``learning``: 0-based stages that learn (blockwise mode; default all). In blockwise mode
    the list has one loss per learning stage, and each stage's input is detached: a stage's loss has
    a gradient only for that stage's parameters and its own head.
    """
    cfg, backbone = model.config, model.backbone
    n_stages = len(backbone)
    learning = list(range(n_stages)) if learning is None else learning
    if cfg.mode == "supervised":
        logits = model.classifier(pool_features(backbone(h, n_stages), cfg.feature_pool))
        return [F.cross_entropy(logits.float(), y)]
    loss_fn = make_loss(cfg.loss, **cfg.loss_options)
    if cfg.mode == "end-to-end":
        return [loss_fn(*model.heads[0](backbone(h, n_stages)).chunk(2))]
    losses = []
    for i in range(max(learning) + 1):   # 0-based stage index
        if i in learning:
            h = backbone.stage(i + 1, h)
            losses.append(loss_fn(*model.heads[i](h).chunk(2)))
        else:
            with torch.no_grad():
                h = backbone.stage(i + 1, h)
        h = h.detach()                   # no gradient crosses a stage boundary
        if cfg.noise_sigma > 0 and i < max(learning):
            noise = torch.randn(h.shape, generator=noise_gen, device=h.device, dtype=h.dtype)
            h = h + cfg.noise_sigma * h.float().std().to(h.dtype) * noise
    return losses


def _step_loss(model: BlockwiseModel, x01: torch.Tensor, y: torch.Tensor, learning: list[int], views: Augment,
               aug_gen: torch.Generator, noise_gen: torch.Generator, mean, std) -> tuple[torch.Tensor, list[float]]:
    """The summed loss of one step and each objective's value. ``x01``: (B, C, H, W) pixels in [0, 1].
    The views are made in float32, outside the network's autocast region."""
    if model.config.mode == "supervised":
        h = _normalise(views(x01, aug_gen), mean, std)
    else:
        h = _normalise(torch.cat([views(x01, aug_gen), views(x01, aug_gen)]), mean, std)
    with model.autocast(x01.device.type):
        losses = objective_losses(model, h, y, learning, noise_gen)
    return torch.stack(losses).sum(), [l.item() for l in losses]


def train_blockwise(model: BlockwiseModel, data: ImageTensors, *, device: str | torch.device = "cpu",
                    mean: torch.Tensor | None = None, std: torch.Tensor | None = None,
                    checkpoint: str | Path | None = None, progress: bool = True,
                    description: str = "blockwise") -> dict:
    """Train ``model`` (its ``config`` says how) on ``data``; returns a summary.

    ``mean``/``std`` ((C,), [0, 1] units) standardise each augmented view. ``data`` labels are used
    only in ``supervised`` mode. With ``checkpoint``, an existing checkpoint of the same options is
    resumed (mid-epoch) and a new one is written atomically every ``checkpoint_every`` steps and at
    each phase's end. Summary: ``seconds`` (training loop only), ``images`` (images seen, one per
    image per step and stage pass), ``images_per_second``, ``steps``, ``final_losses`` (last step, per
    objective), ``stopped_by`` (``"budget"`` or ``"epochs"``).
    """
    cfg = model.config
    device = torch.device(device)
    model.to(device)
    if mean is not None:
        mean, std = torch.as_tensor(mean, dtype=torch.float32).to(device), torch.as_tensor(std, dtype=torch.float32).to(device)
    n_stages = len(model.backbone)
    if cfg.mode == "blockwise":
        phases = schedule_phases(n_stages, cfg.schedule, cfg.epochs)
    else:
        phases = [(list(range(n_stages)), e) for e in range(cfg.epochs)]
    deadlines = phase_deadlines(phases, cfg.max_seconds)
    per_epoch = num_batches(len(data), cfg.batch_size, drop_last=True)
    if per_epoch == 0:
        raise ValueError(f"{data.name} has {len(data)} images, fewer than one batch of {cfg.batch_size}")
    group_steps = sum(1 for learning, _ in phases if learning == phases[0][0]) * per_epoch
    views = cfg.views
    opt = make_optimizer(cfg.optimizer, model.parameters(), lr=cfg.lr * cfg.batch_size / 256,
                         momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    aug_gen = torch.Generator().manual_seed(cfg.seed * 7919 + 1)
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + 2)
    start_phase, start_batch, elapsed, images, steps, group_t0 = 0, 0, 0.0, 0, 0, 0.0
    state = load_checkpoint(checkpoint, map_location=device) if checkpoint else None
    if state is not None:
        if state.get("config") != cfg.to_dict():
            raise ValueError(f"checkpoint {checkpoint} was written by a run with other options "
                             f"({state.get('config')}); delete it or use the same options")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        # generator states are CPU byte tensors whatever the device (map_location moved them with the weights)
        aug_gen.set_state(state["augment_generator"].cpu())
        noise_gen.set_state(state["noise_generator"].cpu())
        start_phase, start_batch, elapsed = state["phase"], state["batch"], state["elapsed"]
        images, steps, group_t0 = state["images"], state["steps"], state["group_t0"]

    def save(phase: int, batch: int):
        if checkpoint:
            save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "phase": phase, "batch": batch,
                         "elapsed": elapsed, "images": images, "steps": steps, "group_t0": group_t0,
                         "config": cfg.to_dict(), "augment_generator": aug_gen.get_state(),
                         "noise_generator": noise_gen.get_state()}, checkpoint)

    bar = TrainingBar(len(phases) * per_epoch, start_phase * per_epoch + start_batch, cfg.max_seconds, elapsed,
                      progress=progress, description=description)
    final_losses, stopped_by = [], "epochs"
    for p in range(start_phase, len(phases)):
        learning, epoch = phases[p]
        new_group = p == 0 or phases[p - 1][0] != learning
        if new_group and not (state is not None and p == start_phase and start_batch > 0):
            group_t0 = elapsed       # this stage group's share of the budget starts now
        if elapsed >= deadlines[p]:
            stopped_by = "budget"
            start_batch = 0
            continue
        _set_modes(model, learning)
        first = start_batch if p == start_phase else 0
        batches = iterate_batches(data, cfg.batch_size, shuffle=True, generator=epoch_generator(cfg.seed, p),
                                  device=device, drop_last=True, start_batch=first)
        b = first
        t0 = time.perf_counter()
        for x01, y in batches:
            now = time.perf_counter()
            step_progress = (epoch * per_epoch + b) / group_steps
            time_progress = ((elapsed + now - t0 - group_t0) / (deadlines[p] - group_t0)
                             if cfg.max_seconds is not None else 0.0)
            scale = warmup_cosine(max(step_progress, time_progress), cfg.warmup, cfg.final_lr_fraction)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * cfg.batch_size / 256 * scale
            loss, final_losses = _step_loss(model, x01, y, learning, views, aug_gen, noise_gen, mean, std)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{description}: loss became {loss.item()} at phase {p}, batch {b}; "
                                         f"lower lr ({cfg.lr}) or use precision 'fp32'")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            b += 1
            steps += 1
            images += x01.shape[0]
            now = time.perf_counter()
            bar.step(elapsed + now - t0)
            if b % 10 == 0:
                bar.set_postfix(img_s=f"{images / max(elapsed + now - t0, 1e-9):.0f}",
                                loss="/".join(f"{v:.3g}" for v in final_losses))
            if checkpoint and b % cfg.checkpoint_every == 0 and b < per_epoch:
                elapsed += now - t0
                save(p, b)
                t0 = time.perf_counter()   # writing the checkpoint is not training: outside the budget
            if elapsed + now - t0 >= deadlines[p]:
                stopped_by = "budget"
                break
        elapsed += time.perf_counter() - t0
        start_batch = 0
        save(p + 1, 0)
    bar.close()
    model.requires_grad_(True)
    model.eval()
    return {"seconds": elapsed, "images": images, "images_per_second": images / max(elapsed, 1e-9), "steps": steps,
            "schedule": cfg.schedule, "mode": cfg.mode, "final_losses": final_losses, "stopped_by": stopped_by}


def _set_modes(model: BlockwiseModel, learning: list[int]) -> None:
    """Learning stages and all objectives in train mode; frozen stages in eval mode, without gradients."""
    model.train()
    backbone = model.backbone
    for i in range(len(backbone)):
        learns = i in learning
        for p in backbone.stage_parameters(i + 1):
            p.requires_grad_(learns)
        for m in backbone.stage_modules(i + 1):
            m.train(learns)


def supervised_config(**options) -> BlockwiseConfig:
    """Options of the end-to-end supervised baseline: mode ``supervised`` with :data:`SUPERVISED_SGD`
    (SGD, lr 0.1 per 256 images, momentum 0.9, weight decay 5e-4), warm-up + cosine, crop + flip
    (:data:`SUPERVISED_AUGMENT`); ``options`` override any :class:`BlockwiseConfig` field."""
    return BlockwiseConfig(**{"mode": "supervised", **SUPERVISED_SGD, **options})


def build_spec_model(spec: dict, config: BlockwiseConfig, *, num_classes: int = 10) -> BlockwiseModel:
    """A :class:`BlockwiseModel` on a Hebbian model spec as a backprop CNN (:class:`SpecConvNet`),
    initialised from ``config.seed`` (global RNG untouched)."""
    from .convnet import SpecConvNet
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return BlockwiseModel(SpecConvNet(spec), config, num_classes, spec["input_size"])
