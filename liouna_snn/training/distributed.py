"""Layer-parallel (pipelined) and data-parallel training on ``torch.distributed``, launched by ``torchrun``.

Local learning needs no backward pass, so the layers of a network can learn at once on different
processes with only activations moving up, and data-parallel replicas can sum their Hebbian updates
like gradients.

Layout
------
``world_size = stages * replicas`` processes. Rank ``stage * replicas + replica`` owns the consecutive
layers of its ``stage`` (:func:`plan_layout` splits them to balance the multiply-adds, or takes
``layers_per_stage``) and sees shard ``replica`` of every global batch.

- ``pipeline``: ``stages = world_size``, ``replicas = 1``.
- ``data``: ``stages = 1``, ``replicas = world_size``.
- ``pipeline+data``: ``stages`` given, ``replicas = world_size / stages``.

Pipeline: staleness semantics
-----------------------------
A micro-batch is one training batch (one update step of every layer; a batch is never split, since
the layers' batch-norm uses batch statistics). Stage ``s`` runs its layers' :meth:`PlasticLayer.learn`
on batch ``b`` and sends the output up (point-to-point ``isend``; at most ``max_in_flight`` sends
outstanding); stage ``s + 1`` receives it and learns. Nothing travels down.

``learn`` computes its output with the weights *before* its own update. So the activation that layer
``l + 1`` learns from on batch ``b`` is ``f_l(...f_1(x_b; W_1^(b))...; W_l^(b))``, where ``W_j^(b)`` is
layer ``j`` after exactly ``b`` updates (batches ``0 .. b-1``), and this holds however far the lower
stages have run ahead: a stage's weights change only in its own batch order, and the activation of
batch ``b`` is computed (and frozen into the message) before its update on ``b``. Batch-norm statistics
(batch or running) are each layer's own, updated in the same batch order. **There is no staleness**:
the pipeline computes exactly the single-process ``simultaneous`` schedule
(:func:`liouna_snn.training.train_unsupervised`), the mask generators (one per layer, seeded
``seed * 7919 + layer``) and the shuffling (seeded per phase) included, with any number of batches in
flight. Only the wall-clock order of the work differs. The ``greedy`` schedule runs the same way:
stages above the learning layer idle, stages below it run their frozen layers forward.

Data parallel
-------------
Every replica draws the same global batch (same seeded shuffle) and keeps rows
``[replica * B / R, (replica + 1) * B / R)``. A :class:`ShardReducer` set as the layers' ``reducer``
makes :meth:`PlasticLayer.learn` compute the global batch's update: the batch-norm uses the
all-reduced sum, sum of squares and count (a synchronised batch-norm for learning; running statistics
updated with the global statistics), the rule's unscaled ``dW`` (a sum of per-sample correlations) and
the win counts are all-reduced (SUM) *before* the rule's scaling and learning rate, and the visibility
mask is drawn for the whole global batch from the layer's generator (seeded identically on every
replica) and sliced to the shard's rows. Every replica therefore applies the same update as one
process training on the global batch, masks included, up to float summation order (1e-6 relative).
Spiking layers are not supported in data-parallel mode (their encoders draw per-shard spikes).

Checkpoints and failures
------------------------
Every ``checkpoint_every`` steps and at the end of each phase all ranks meet at a barrier; replica 0 of
each stage then writes its layers, their mask generators and the position in the run atomically to
``<checkpoint>.stage<s>.step<N>.pt`` (the newest two are kept). A rerun resumes every stage from the
newest step all stages have. Every collective and point-to-point wait is bounded by ``timeout`` (the
process group's timeout): a rank that dies or hangs makes the others raise :class:`PeerFailure`, which
names the rank, its stage and what it was doing.
"""
from __future__ import annotations

import datetime
import os
import re
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..allocator import keep_freed_memory
from ..data import ImageTensors, iterate_batches, num_batches
from ..layers import PlasticLinear
from ..network import LocalNetwork
from ..rules.geometry import output_size
from ..spiking import CurrentScale
from .checkpoint import check_identity, load_checkpoint, save_atomic
from .schedules import TrainConfig, _epoch_generator, _phases, exactly_calibrated

PARALLEL_MODES = ("none", "pipeline", "data", "pipeline+data")
DEFAULT_TIMEOUT_S = 300.0


class PeerFailure(RuntimeError):
    """Another rank of the run died, hung past the timeout, or broke the protocol."""


# --- layout -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParallelLayout:
    """Who owns what: ``stages`` consecutive groups of layers, each replicated ``replicas`` times.

    Attributes:
        stages: pipeline stages (1 for pure data parallelism).
        replicas: data-parallel replicas per stage (1 for a pure pipeline).
        stage_layers: the 0-based layer indices of each stage, consecutive, covering every layer.
    """

    stages: int
    replicas: int
    stage_layers: tuple[tuple[int, ...], ...]

    @property
    def world_size(self) -> int:
        return self.stages * self.replicas

    def rank(self, stage: int, replica: int) -> int:
        return stage * self.replicas + replica

    def position(self, rank: int) -> tuple[int, int]:
        """``(stage, replica)`` of ``rank``."""
        return divmod(rank, self.replicas)

    def describe(self, rank: int) -> str:
        stage, replica = self.position(rank)
        layers = ",".join(str(i + 1) for i in self.stage_layers[stage])
        return f"rank {rank} (stage {stage}: layers {layers}; replica {replica})"


def layer_macs(network: LocalNetwork, input_hw: tuple[int, int]) -> list[int]:
    """Multiply-adds of each layer's forward drive per image (a learning step costs about 3x: drive,
    top-down prediction and correlation), for an input of spatial size ``input_hw``."""
    macs, hw = [], input_hw
    for layer in network.layers:
        w = layer.weight
        if isinstance(layer, PlasticLinear):
            macs.append(w.numel())
            hw = None
        else:
            k = w.shape[-1]
            h, wd = (output_size(s, k, layer.geometry) for s in hw)
            macs.append(w.numel() * h * wd)
            hw = layer.output_shape(hw)[1:]
    return macs


def balanced_split(costs: list[float], stages: int) -> tuple[tuple[int, ...], ...]:
    """Consecutive groups of layer indices, one per stage, minimising the largest group's total cost."""
    n = len(costs)
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    # best[s][i]: smallest max-cost splitting the first i layers into s groups; cut[s][i]: start of the last.
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(stages + 1)]
    cut = [[0] * (n + 1) for _ in range(stages + 1)]
    best[0][0] = 0.0
    for s in range(1, stages + 1):
        for i in range(s, n + 1):
            for j in range(s - 1, i):
                v = max(best[s - 1][j], prefix[i] - prefix[j])
                if v < best[s][i]:
                    best[s][i], cut[s][i] = v, j
    groups, i = [], n
    for s in range(stages, 0, -1):
        j = cut[s][i]
        groups.append(tuple(range(j, i)))
        i = j
    return tuple(reversed(groups))


def plan_layout(network: LocalNetwork, world_size: int, mode: str, *, stages: int | None = None,
                layers_per_stage: list[int] | None = None, input_hw: tuple[int, int] | None = None) -> ParallelLayout:
    """The layout of ``mode`` (see :data:`PARALLEL_MODES`) over ``world_size`` processes.

    Args:
        stages: pipeline stages for ``pipeline+data`` (must divide ``world_size``); for ``pipeline`` it
            must equal ``world_size`` if given.
        layers_per_stage: layers of each stage, e.g. ``[2, 1]``; default: split to balance the
            multiply-adds of :func:`layer_macs`.
        input_hw: input size for the balancing (default: the spec's ``input_size``).

    Raises a ``ValueError`` naming the problem and the allowed values.
    """
    n = len(network)
    if mode not in PARALLEL_MODES or mode == "none":
        raise ValueError(f"unknown parallel mode {mode!r}; allowed: {', '.join(m for m in PARALLEL_MODES if m != 'none')}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if mode == "data":
        if stages not in (None, 1) or layers_per_stage not in (None, [n]):
            raise ValueError("--parallel data keeps every layer on every rank; use --parallel pipeline+data to "
                             "also split the layers into stages")
        stages = 1
    elif mode == "pipeline":
        if stages not in (None, world_size):
            raise ValueError(f"--parallel pipeline runs one stage per process: stages must equal the "
                             f"{world_size} processes, got {stages}; use --parallel pipeline+data for replicated stages")
        stages = world_size
    elif stages is None:
        raise ValueError("--parallel pipeline+data needs the number of stages (--stages S, a divisor of the "
                         f"{world_size} processes)")
    if stages < 1 or world_size % stages:
        divisors = [d for d in range(1, world_size + 1) if world_size % d == 0]
        raise ValueError(f"stages = {stages} does not divide the {world_size} processes; allowed: "
                         f"{', '.join(map(str, divisors))}")
    if stages > n:
        raise ValueError(f"a pipeline of {stages} stages needs at least {stages} layers, but the network has {n}; "
                         f"use at most {n} stages (processes for --parallel pipeline), or --parallel pipeline+data")
    replicas = world_size // stages
    if layers_per_stage is not None:
        if len(layers_per_stage) != stages or any(k < 1 for k in layers_per_stage) or sum(layers_per_stage) != n:
            raise ValueError(f"layers per stage {list(layers_per_stage)} must list {stages} positive counts "
                             f"summing to the {n} layers")
        groups, start = [], 0
        for k in layers_per_stage:
            groups.append(tuple(range(start, start + k)))
            start += k
        split = tuple(groups)
    else:
        size = network.spec.get("input_size", 32)
        split = balanced_split([float(c) for c in layer_macs(network, input_hw or (size, size))], stages)
    if any(layer.spiking is not None for layer in network.layers) and replicas > 1:
        raise ValueError("data-parallel training supports rate-mode layers only (spike encoders draw per-shard "
                         "spikes); use --parallel pipeline for spiking networks")
    return ParallelLayout(stages, replicas, split)


# --- data-parallel reduction (the PlasticLayer hook) --------------------------------------------------


class ShardReducer:
    """Makes :meth:`PlasticLayer.learn` on one shard compute the update of the whole global batch.

    Set as ``layer.reducer`` on every replica of a stage. ``group`` is the process group of those
    replicas; this process holds shard ``replica`` of ``replicas`` equal shards.
    """

    def __init__(self, group, replica: int, replicas: int, timeout: datetime.timedelta, where: str):
        self.group, self.replica, self.replicas = group, replica, replicas
        self.timeout, self.where = timeout, where

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the replicas (all-reduce SUM; a new tensor on every replica)."""
        out = t.contiguous().clone()
        _wait(dist.all_reduce(out, group=self.group, async_op=True), self.timeout,
              f"{self.where}: summing a learning update over the data-parallel replicas")
        return out

    def normalise(self, norm: torch.nn.Module, x: torch.Tensor, kind: str) -> torch.Tensor:
        """Affine-free batch-norm of shard ``x`` with the global batch's statistics.

        The per-channel sum, sum of squares (float64) and count are all-reduced; the running statistics
        are updated as ``torch.nn.BatchNorm`` would on the global batch (unbiased variance, ``momentum``
        or the cumulative average). ``kind``: ``batch`` normalises with the global batch statistics,
        ``running`` with the updated running statistics.
        """
        dims = [0] + list(range(2, x.dim()))
        x64 = x.double()
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float64, device=x.device)
        stats = self.sum(torch.cat([x64.sum(dims), x64.square().sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean.square()).clamp_min(0.0)
        if norm.track_running_stats:
            norm.num_batches_tracked.add_(1)
            m = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
            unbiased = var * (n / (n - 1)) if float(n) > 1 else var
            norm.running_mean.mul_(1 - m).add_(mean.to(norm.running_mean.dtype), alpha=m)
            norm.running_var.mul_(1 - m).add_(unbiased.to(norm.running_var.dtype), alpha=m)
        if kind == "running":
            mean, var = norm.running_mean.double(), norm.running_var.double()
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = (var + norm.eps).rsqrt()
        return ((x64 - mean.view(shape)) * scale.view(shape)).to(x.dtype)

    def sample_visible(self, rule, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor | None:
        """This shard's rows of the mask :meth:`LocalRule.sample_visible` draws for the global batch."""
        b = x.shape[0]
        whole = rule.sample_visible(x[:1].expand(b * self.replicas, *x.shape[1:]), generator)
        return None if whole is None else whole[self.replica * b:(self.replica + 1) * b]


# --- activations moving up -----------------------------------------------------------------------------

_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
_MAX_DIMS = 7
_HEADER = 3 + 2 * _MAX_DIMS  # step, dtype code, ndim (-1: end of stream), shape, dims in memory order
_END = -1


def _wait(work, timeout: datetime.timedelta, what: str) -> None:
    try:
        work.wait(timeout)
    except Exception as err:  # gloo / NCCL errors come as RuntimeError or DistBackendError
        raise PeerFailure(f"{what}: another rank died or stopped responding (timeout {timeout.total_seconds():.0f} s): "
                          f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}") from err


class ActivationStream:
    """Activations from one pipeline stage to the next: :meth:`send` on the lower rank, :meth:`recv` on the upper.

    Each message is a header (step, dtype, shape, memory order of the dims) and the tensor's elements in
    its own memory order, so the receiver gets the same strides (a ``channels_last`` activation stays
    ``channels_last``, and the next layer runs the very kernels it runs in one process). At most
    ``max_in_flight`` sends are outstanding, so the lower stage runs at most that many batches ahead.
    """

    def __init__(self, peer: int, device: torch.device, timeout: datetime.timedelta, where: str,
                 max_in_flight: int = 2):
        self.peer, self.device, self.timeout, self.where = peer, device, timeout, where
        self.max_in_flight = max_in_flight
        self.pending: deque = deque()

    def _header(self, step: int, x: torch.Tensor | None, order: list[int]) -> torch.Tensor:
        h = torch.zeros(_HEADER, dtype=torch.int64)
        h[0] = step
        if x is None:
            h[2] = _END
        else:
            if x.dtype not in _DTYPES or x.dim() > _MAX_DIMS:
                raise ValueError(f"{self.where}: cannot send a {x.dtype} tensor of shape {tuple(x.shape)}; "
                                 f"allowed: {', '.join(map(str, _DTYPES))} with at most {_MAX_DIMS} dims")
            h[1], h[2] = _DTYPES.index(x.dtype), x.dim()
            h[3:3 + x.dim()] = torch.tensor(x.shape)
            h[3 + _MAX_DIMS:3 + _MAX_DIMS + x.dim()] = torch.tensor(order)
        return h.to(self.device)

    def send(self, x: torch.Tensor | None, step: int) -> None:
        """Send the activation of ``step`` up (``None``: end of the stream)."""
        what = f"{self.where}: sending the activation of step {step} to rank {self.peer}"
        order, payload = [], None
        if x is not None:
            x = x.detach().to(self.device)
            order = sorted(range(x.dim()), key=lambda d: -x.stride(d))  # dims from outermost to innermost in memory
            payload = x.permute(order).contiguous()  # no copy for a dense tensor
        header = self._header(step, x, order)
        try:
            works = [dist.isend(header, self.peer)]
            if payload is not None:
                works.append(dist.isend(payload, self.peer))
        except Exception as err:
            raise PeerFailure(f"{what}: {type(err).__name__}: {err}") from err
        self.pending.append((works, header, payload, what))
        while len(self.pending) > self.max_in_flight:
            self._complete_oldest()

    def _complete_oldest(self) -> None:
        works, _, _, what = self.pending.popleft()
        for w in works:
            _wait(w, self.timeout, what)

    def flush(self) -> None:
        """Wait until every send has been received."""
        while self.pending:
            self._complete_oldest()

    def recv(self, step: int | None = None) -> torch.Tensor | None:
        """The next activation from below (``None`` at the end of the stream); checks its step if given."""
        what = f"{self.where}: waiting for the activation of step {step} from rank {self.peer}"
        header = torch.empty(_HEADER, dtype=torch.int64, device=self.device)
        _wait(dist.irecv(header, self.peer), self.timeout, what)
        header = header.cpu()
        if step is not None and int(header[0]) != step:
            raise PeerFailure(f"{what}: got step {int(header[0])} instead; the ranks are out of step")
        ndim = int(header[2])
        if ndim == _END:
            return None
        shape = header[3:3 + ndim].tolist()
        order = header[3 + _MAX_DIMS:3 + _MAX_DIMS + ndim].tolist()
        buf = torch.empty([shape[d] for d in order], dtype=_DTYPES[int(header[1])], device=self.device)
        _wait(dist.irecv(buf, self.peer), self.timeout, what)
        return buf.permute([order.index(d) for d in range(ndim)])


# --- process group --------------------------------------------------------------------------------------


def init_from_env(backend: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Join the process group ``torchrun`` describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``PORT``).

    ``backend``: ``gloo`` (CPU) or ``nccl`` (CUDA); default: ``nccl`` if CUDA is available, else ``gloo``.
    Does nothing if the group exists already.
    """
    if dist.is_initialized():
        return
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ValueError(f"distributed training needs the environment torchrun sets ({', '.join(missing)} missing); "
                         f"launch with: torchrun --nproc-per-node N -m liouna_snn run <experiment>.toml "
                         f"--parallel pipeline|data|pipeline+data")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"unknown backend {backend!r}; allowed: gloo, nccl")
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))


def rank_device(device: torch.device | str) -> torch.device:
    """The device of this rank: ``cuda`` without an index becomes ``cuda:LOCAL_RANK``."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return device


def is_main_process() -> bool:
    """True without a process group, or on rank 0: the process that evaluates and writes results."""
    return not dist.is_initialized() or dist.get_rank() == 0


# --- checkpoints ----------------------------------------------------------------------------------------


def _stage_checkpoints(checkpoint: Path, stage: int) -> dict[int, Path]:
    pattern = re.compile(re.escape(checkpoint.name) + rf"\.stage{stage}\.step(\d+)\.pt$")
    if not checkpoint.parent.is_dir():
        return {}
    return {int(m.group(1)): p for p in checkpoint.parent.iterdir() if (m := pattern.match(p.name))}


def _stage_checkpoint_path(checkpoint: Path, stage: int, step: int) -> Path:
    return checkpoint.with_name(f"{checkpoint.name}.stage{stage}.step{step:09d}.pt")


# --- the trainer ----------------------------------------------------------------------------------------


def train_parallel(network: LocalNetwork, data: ImageTensors, config: TrainConfig, mode: str, *,
                   stages: int | None = None, layers_per_stage: list[int] | None = None,
                   device: str | torch.device = "cpu", mean: torch.Tensor | None = None,
                   std: torch.Tensor | None = None, checkpoint: str | Path | None = None, progress: bool = True,
                   description: str = "unsupervised", timeout_s: float = DEFAULT_TIMEOUT_S,
                   max_in_flight: int = 2) -> dict:
    """Train ``network`` over the processes of the ``torch.distributed`` group (joined from ``torchrun``'s
    environment if needed): the same run as :func:`liouna_snn.training.train_unsupervised` with
    ``config`` (``batch_size`` is the global batch), laid out by :func:`plan_layout`.

    Every rank must call it with the same network (same seed), data and options. On return every rank
    holds the whole trained network (each stage's layers broadcast from its replica 0). ``checkpoint``:
    the path prefix of the per-stage checkpoints; an existing set resumes the run. Returns a summary
    (seconds: the slowest rank's training time; images: of the global batches; ``layout``).
    """
    if getattr(config, "max_seconds", None) is not None:
        raise ValueError("max_seconds (a wall-clock budget) is not supported by parallel training: the stages "
                         "would stop at different steps; set a number of epochs instead")
    exact = [i + 1 for i, layer in enumerate(network.layers) if exactly_calibrated(layer)]
    if exact and not (config.schedule == "simultaneous" and config.recalibrate_norms):
        raise ValueError(f"layers {exact} ask for current_calibration = 'exact', which parallel training computes only "
                         f"after a simultaneous run with recalibrate_norms; train them with train_unsupervised, or "
                         f"use that schedule, or current_calibration = 'running'")
    device = torch.device(device)
    if device.type == "cpu":
        keep_freed_memory()  # as train_unsupervised
    init_from_env("nccl" if device.type == "cuda" else "gloo", timeout_s=timeout_s)
    timeout = datetime.timedelta(seconds=timeout_s)
    rank, world = dist.get_rank(), dist.get_world_size()
    layout = plan_layout(network, world, mode, stages=stages, layers_per_stage=layers_per_stage,
                         input_hw=tuple(data.images.shape[2:]))
    stage, replica = layout.position(rank)
    where = layout.describe(rank)
    mine = layout.stage_layers[stage]
    if config.batch_size % layout.replicas:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must be divisible by the "
                         f"{layout.replicas} data-parallel replicas")
    shard = config.batch_size // layout.replicas
    # One data-parallel group per stage; every rank must create every group, in the same order.
    groups = [dist.new_group([layout.rank(s, r) for r in range(layout.replicas)]) if layout.replicas > 1 else None
              for s in range(layout.stages)]
    for i in mine:
        network.layers[i].to(device)
        if layout.replicas > 1:
            network.layers[i].reducer = ShardReducer(groups[stage], replica, layout.replicas, timeout,
                                                     f"{where}, layer {i + 1}")
    below = ActivationStream(layout.rank(stage - 1, replica), device, timeout, where) if stage > 0 else None
    above = (ActivationStream(layout.rank(stage + 1, replica), device, timeout, where, max_in_flight)
             if stage < layout.stages - 1 else None)
    try:
        summary = _run(network, data, config, layout, stage, replica, shard, below, above, device, mean, std,
                       Path(checkpoint) if checkpoint else None, progress, description, where, timeout)
        if config.schedule == "simultaneous" and config.recalibrate_norms:
            t0 = time.perf_counter()
            _recalibrate_norms(network, data, mine, below, above, device, mean, std)
            summary["seconds"] += time.perf_counter() - t0
        if above is not None:
            above.flush()
        _broadcast_layers(network, layout, device, timeout, where)
        seconds = torch.tensor([summary["seconds"]], dtype=torch.float64, device=device)
        _wait(dist.all_reduce(seconds, op=dist.ReduceOp.MAX, async_op=True), timeout, f"{where}: finishing")
    finally:
        for i in mine:
            network.layers[i].reducer = None
    network.to(device).eval()
    summary["seconds"] = float(seconds)
    summary["images_per_second"] = summary["images"] / max(summary["seconds"], 1e-9)
    summary["layout"] = asdict(layout) | {"mode": mode}
    return summary


def _run(network, data, config, layout, stage, replica, shard, below, above, device, mean, std, checkpoint,
         progress, description, where, timeout) -> dict:
    mine = layout.stage_layers[stage]
    phases = _phases(network, config)
    per_epoch = num_batches(len(data), config.batch_size, drop_last=True)
    total_steps = len(phases) * per_epoch
    mask_gens = {i: torch.Generator().manual_seed(config.seed * 7919 + i) for i in mine}
    layout_record = asdict(layout)
    start, elapsed, images = 0, 0.0, 0
    if checkpoint is not None:
        start, elapsed, images = _resume(network, checkpoint, config, layout, stage, mask_gens, device, timeout, where)

    def save(step: int):
        if checkpoint is None:
            return
        _wait(dist.barrier(async_op=True), timeout, f"{where}: meeting the other ranks to checkpoint step {step}")
        if replica == 0:
            path = _stage_checkpoint_path(checkpoint, stage, step)
            save_atomic({"layers": {i: network.layers[i].state_dict() for i in mine}, "step": step,
                         "elapsed": elapsed, "images": images, "config": config.__dict__, "layout": layout_record,
                         "network_identity": network.identity(),
                         "mask_generators": {i: g.get_state() for i, g in mask_gens.items()}}, path)
            saved = _stage_checkpoints(checkpoint, stage)
            for old in sorted(saved)[:-2]:  # keep the newest two: a crash while saving leaves one every stage has
                saved[old].unlink(missing_ok=True)

    shows_bar = progress and stage == layout.stages - 1 and replica == 0
    bar = tqdm(total=total_steps, initial=start, disable=not shows_bar, desc=description, unit="step",
               dynamic_ncols=True)
    rows = slice(replica * shard, (replica + 1) * shard)
    for p in range(start // per_epoch, len(phases)):
        learning, epoch = phases[p]
        top = max(learning)
        active = [i for i in mine if i <= top]
        sends = above is not None and layout.stage_layers[stage + 1][0] <= top
        for i in mine:
            network.layers[i].train(i in learning)
        first = start - p * per_epoch if p == start // per_epoch else 0
        batches = None
        if active and stage == 0:
            batches = iterate_batches(data, config.batch_size, shuffle=True, generator=_epoch_generator(config.seed, p),
                                      device=device, drop_last=True, mean=mean, std=std, start_batch=first)
        t0 = time.perf_counter()
        for b in range(first, per_epoch):
            step = p * per_epoch + b
            if active:
                h = next(batches)[0][rows] if stage == 0 else below.recv(step)
                progress_in_layer = (epoch * per_epoch + b) / (config.epochs * per_epoch)
                for i in active:
                    if i in learning:
                        h = network.learn_layer(i, h, progress_in_layer, mask_gens[i])
                    else:
                        h = network.layers[i](network._layer_input(i, h))
                if sends:
                    above.send(h, step)
            images += config.batch_size
            bar.update(1)
            if checkpoint is not None and (b + 1) % config.checkpoint_every == 0 and b + 1 < per_epoch:
                elapsed += time.perf_counter() - t0
                save(step + 1)
                t0 = time.perf_counter()
        elapsed += time.perf_counter() - t0
        save((p + 1) * per_epoch)
    bar.close()
    return {"seconds": elapsed, "images": images, "steps": total_steps, "schedule": config.schedule}


def _resume(network, checkpoint, config, layout, stage, mask_gens, device, timeout, where) -> tuple[int, float, int]:
    """Load this stage's part of the newest step every stage has checkpointed; ``(step, elapsed, images)``."""
    saved = _stage_checkpoints(checkpoint, stage)
    newest = torch.tensor([max(saved) if saved else 0], dtype=torch.int64, device=device)
    _wait(dist.all_reduce(newest, op=dist.ReduceOp.MIN, async_op=True), timeout, f"{where}: agreeing where to resume")
    step = int(newest)
    if step == 0:
        return 0, 0.0, 0
    if step not in saved:
        raise ValueError(f"{where}: checkpoint of step {step} missing beside {checkpoint} (have steps "
                         f"{sorted(saved)}); delete {checkpoint}.stage*.pt to start over")
    state = load_checkpoint(saved[step], map_location=device)
    if state.get("config") != config.__dict__ or state.get("layout") != asdict(layout):
        raise ValueError(f"checkpoint {saved[step]} was written by a run with other options or another layout "
                         f"({state.get('config')}, {state.get('layout')}); delete {checkpoint}.stage*.pt or use "
                         f"the same options and processes")
    check_identity(state, network, saved[step], f"delete {checkpoint}.stage*.pt or use the same options")
    for i, layer_state in state["layers"].items():
        network.layers[i].load_state_dict(layer_state)
    for i, g in mask_gens.items():
        g.set_state(state["mask_generators"][i])
    return step, state["elapsed"], state["images"]


@torch.no_grad()
def _recalibrate_norms(network, data, mine, below, above, device, mean, std, max_images: int = 10_000,
                       batch_size: int = 250) -> None:
    """:func:`liouna_snn.training.recalibrate_norms` through the pipeline: every replica recomputes its
    stage's running statistics over the same (unsharded) images, so the replicas stay identical."""
    norms = [m for i in mine for m in network.layers[i].modules()
             if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, CurrentScale))]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    for i in mine:
        network.layers[i].train()
    step = 0
    if below is None:
        seen = 0
        for x, _ in iterate_batches(data, batch_size, shuffle=False, device=device, mean=mean, std=std):
            _forward_stage(network, mine, x, above, step)
            step += 1
            seen += x.shape[0]
            if seen >= max_images:
                break
    else:
        while (x := below.recv(step)) is not None:
            _forward_stage(network, mine, x, above, step)
            step += 1
    if above is not None:
        above.send(None, step)
    for m, mom in zip(norms, saved):
        m.momentum = mom


def _forward_stage(network, mine, h, above, step) -> None:
    for i in mine:
        h = network.layers[i](network._layer_input(i, h))
    if above is not None:
        above.send(h, step)


def _broadcast_layers(network, layout, device, timeout, where) -> None:
    """Every stage's layers (weights and buffers) from its replica 0 to every rank."""
    for s, layers in enumerate(layout.stage_layers):
        for i in layers:
            for name, t in network.layers[i].state_dict().items():
                buf = t.detach().to(device).contiguous()
                _wait(dist.broadcast(buf, src=layout.rank(s, 0), async_op=True), timeout,
                      f"{where}: receiving layer {i + 1}'s {name} from stage {s}")
                t.copy_(buf)
