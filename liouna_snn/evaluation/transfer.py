"""Transfer: features learned on a source dataset A, probed layer by layer on a target dataset B.

A transfer experiment (``experiments/transfer.toml``; ``liouna-snn transfer FILE``) names a model spec,
the pre-training and probe options of a ``liouna-snn run`` experiment, one or more ``[[transfers]]``
(source -> target) and the ``[[runs]]`` (rules)::

    name = "transfer"
    model = "cifar10_3layer"                  # its input_size (32) is the resolution of every dataset
    reuse_from = ["cifar10_local_rules"]      # optional: trained layers of `liouna-snn run` experiments

    [unsupervised]                            # as in `liouna-snn run` (TrainConfig + precision)
    schedule = "greedy"
    [probe]                                   # as in `liouna-snn run` (+ layers = "all" or [1, 3])
    epochs = 50
    [finetune]                                # optional: backprop fine-tuning of the exported plain CNN
    epochs = 0                                # 0 = off; lr, batch_size, weight_decay

    [[transfers]]
    source = { dataset = "cifar10", root = "data" }          # pre-train here (train split) ...
    target = { dataset = "imagenette", root = "data" }       # ... probe here (train -> test/val split)
    [[transfers]]
    source = { experiment = "cifar10_local_rules.toml" }     # or: reuse a trained run's checkpoint

    [[runs]]
    rule = "softhebb"                         # as in `liouna-snn run`: rule, seeds, options, label
    [[runs]]
    rule = "e2e-supervised"                   # the end-to-end supervised baseline (options: E2E_DEFAULTS)
    options = { epochs = 10 }

Per transfer, run and seed:

1. **Pre-training** on the source's train split with the layer-local rule (:func:`train_unsupervised`,
   checkpointed at ``<checkpoints>/<name>/<source>_<label>_seed<s>.pt`` and resumed), or the network of
   a ``liouna-snn run`` experiment's checkpoint (``source = { experiment = ... }``, run matched by label).
   A greedy pre-training takes the leading layers it shares, already trained, from the other checkpoints of
   this experiment and of the experiments named by ``reuse_from`` (their folders beside this one's), as
   ``liouna-snn run`` does: only where the layers, rules, seed, training options and the source's train
   images and standardisation are the same (:func:`liouna_snn.training.reusable_layers`; rate mode, greedy,
   without ``max_seconds``); the entry then records ``reused_layers``. Entries are keyed by label, seed and
   ``transfer`` (``"SOURCE:TARGET"``, :func:`transfer_name`), each with the ``precision`` it ran in.
   ``random`` is the untrained baseline (its batch-norm statistics still come from the source).
   ``e2e-supervised`` is the end-to-end supervised baseline: the same architecture as a backprop CNN
   (:class:`~liouna_snn.blockwise.SpecConvNet` of the model spec) plus a linear classifier on its last
   layer, trained with the source's labels by :func:`~liouna_snn.blockwise.train_blockwise` (mode
   ``supervised``, :func:`~liouna_snn.blockwise.supervised_config`: the low-compute comparison's
   ``e2e-supervised-3layer``; checkpoint ``<source>_<label>_seed<s>_<precision>.pt``, resumed mid-epoch); the
   classifier is then dropped and the frozen layers are probed like the Hebbian ones. It needs ``source = { dataset = ... }``.
2. **Resolution.** Every dataset is loaded at the network's input size ``S`` (the spec's
   ``input_size``): tensor datasets are resized (shorter side to ``S``, bilinear, antialiased) and
   centre-cropped (:func:`liouna_snn.data.resize_center_crop`), ImageFolder trees are decoded that way.
3. **Probe** of every layer on the target with the network frozen (eval mode: the batch-norms keep
   the source's running statistics, and images are standardised with the *source's* per-channel mean and
   std, exactly as the network saw its training data): weighted k-NN and the linear probe of
   :mod:`liouna_snn.evaluation` on the flattened features of the target's train split, scored on its
   test split (``val`` for ImageFolder trees).
4. **Fine-tuning** (optional, rate mode only): the network exported as a plain PyTorch CNN
   (:func:`liouna_snn.export.export_plain` / ``load_plain``) plus a linear head on its last layer,
   trained end to end by backprop (Adam, cross-entropy, batch-norms in train mode) on the target.

Results (``<results>/<name>.json``, and the plot ``<results>/<name>_layers.png``: one panel per source ->
target) follow the project's results schema, one entry per transfer, run and
seed, with ``dataset`` = the target and the extra fields ``source_dataset`` and ``target_dataset``
(and ``finetune`` when enabled). ``e2e-supervised`` entries are rate-mode (``mode`` = ``neuron`` =
``"rate"``) and add ``train_options`` (:meth:`BlockwiseConfig.to_dict`), ``stopped_by`` and
``source_train_top1`` (% of the source's train split its own classifier gets right, un-augmented);
``unsup_seconds`` is their training time.
"""
from __future__ import annotations

import copy
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..blockwise import SUPERVISED_SGD
from ..config import read_toml, reject_unknown, require
from ..data import ImageTensors, iterate_batches, load_dataset
from .layers import PROBE_DEFAULTS as LAYER_PROBE_DEFAULTS, probe_depths, probe_layers

TOP_KEYS = {"name", "description", "model", "depth", "unsupervised", "probe", "finetune", "transfers", "runs", "device",
            "spiking", "reuse_from"}
TRANSFER_KEYS = {"source", "target"}
SOURCE_KEYS = {"dataset", "root", "download", "train_subset", "experiment"}
TARGET_KEYS = {"dataset", "root", "download", "train_subset", "test_subset"}
FINETUNE_KEYS = {"epochs", "lr", "batch_size", "weight_decay"}
RUN_KEYS = {"rule", "seeds", "options", "label"}
PROBE_DEFAULTS = {**LAYER_PROBE_DEFAULTS, "layers": "all"}
FINETUNE_DEFAULTS = {"epochs": 0, "lr": 1e-4, "batch_size": 64, "weight_decay": 0.0}
E2E_RULE = "e2e-supervised"
# Options of an e2e-supervised run: those of the low-compute comparison's e2e-supervised-3layer (SGD, lr 0.1
# per 256 images, weight decay 5e-4, batch 128, crop + flip, precision "auto"), except the length: low-compute stops it
# by a wall-clock budget, here it runs `epochs` passes over the source (`max_seconds`, optional, caps it).
E2E_DEFAULTS = {"epochs": 1, "batch_size": 128, "lr": SUPERVISED_SGD["lr"], "weight_decay": SUPERVISED_SGD["weight_decay"],
                "augment": True, "precision": "auto"}
E2E_KEYS = set(E2E_DEFAULTS) | {"max_seconds"}


def load_transfer_experiment(path: str | Path) -> dict:
    """Read a transfer experiment TOML and validate every section's keys (errors list the allowed ones)."""
    from ..experiment import UNSUP_KEYS, check_probe, check_reuse_from
    from ..spiking import spiking_config

    path = Path(path)
    exp = read_toml(path, "transfer experiment file")
    where = str(path)
    reject_unknown(exp, TOP_KEYS, where)
    require(exp, ("model", "transfers", "runs"), where)
    reject_unknown(exp.get("unsupervised", {}), UNSUP_KEYS, where + " [unsupervised]")
    check_probe(exp.get("probe", {}), where + " [probe]")
    reject_unknown(exp.get("finetune", {}), FINETUNE_KEYS, where + " [finetune]")
    if not exp["transfers"]:
        raise ValueError(f"{where}: [[transfers]] is empty; give at least one source -> target pair")
    for i, tr in enumerate(exp["transfers"], start=1):
        here = f"{where} [[transfers]] #{i}"
        reject_unknown(tr, TRANSFER_KEYS, here)
        require(tr, ("source", "target"), here)
        reject_unknown(tr["source"], SOURCE_KEYS, here + " source")
        reject_unknown(tr["target"], TARGET_KEYS, here + " target")
        require(tr["target"], ("dataset",), here + " target")
        if ("dataset" in tr["source"]) == ("experiment" in tr["source"]):
            raise ValueError(f"{here} source: give either `dataset` (pre-train on it) or `experiment` (reuse the "
                             f"checkpoints of a `liouna-snn run` experiment), not {'both' if tr['source'] else 'neither'}")
    names = [transfer_name(tr) for tr in exp["transfers"]]
    for i, n in enumerate(names, start=1):
        if names.index(n) + 1 != i:  # results entries and --transfers find a transfer by this name
            raise ValueError(f"{where} [[transfers]] #{i}: {n!r} (SOURCE:TARGET) is also #{names.index(n) + 1}'s; "
                             f"give each source -> target pair once")
    for i, run in enumerate(exp["runs"], start=1):
        reject_unknown(run, RUN_KEYS, f"{where} [[runs]] #{i}")
        require(run, ("rule",), f"{where} [[runs]] #{i}")
        if run["rule"] == E2E_RULE:
            e2e_config(run.get("options", {}), seed=0, where=f"{where} [[runs]] #{i} options")  # raises if invalid
            reused = [k for k, tr in enumerate(exp["transfers"], start=1) if "experiment" in tr["source"]]
            if reused:
                raise ValueError(f"{where} [[runs]] #{i}: rule {E2E_RULE!r} trains its own network on the source's "
                                 f"train split, but [[transfers]] #{reused[0]} reuses a `liouna-snn run` experiment's "
                                 f"Hebbian checkpoints (source.experiment); give that transfer source.dataset")
    if "spiking" in exp:
        spiking_config(exp["spiking"], where + " [spiking]")
    if exp.get("finetune", {}).get("epochs", 0) and "spiking" in exp:
        raise ValueError(f"{where} [finetune]: fine-tuning trains the exported plain CNN, which exists for rate-mode "
                         f"networks only; remove [spiking] or set finetune epochs = 0")
    check_reuse_from(exp.get("reuse_from", []), exp.get("name", path.stem), where)
    exp.setdefault("name", path.stem)
    exp["_path"] = str(path.resolve())
    return exp


def transfer_name(tr: dict) -> str:
    """``"SOURCE:TARGET"`` of a ``[[transfers]]`` entry: the source's dataset (or its experiment file's stem)
    and the target's dataset, e.g. ``"cifar10:imagenette"``; what ``--transfers`` selects by."""
    source = tr["source"].get("dataset") or Path(tr["source"]["experiment"]).stem
    return f"{source}:{tr['target']['dataset']}"


def select_transfers(transfers: list[dict], only: list[str] | None) -> list[dict]:
    """The ``[[transfers]]`` named in ``only`` (``"SOURCE:TARGET"``, :func:`transfer_name`), in the file's order;
    all of them without ``only``. A name no transfer has raises a ``ValueError`` listing the names there are."""
    if not only:
        return list(transfers)
    names = [transfer_name(tr) for tr in transfers]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ValueError(f"--transfers {' '.join(unknown)}: no transfer so named; this experiment has "
                         f"{', '.join(map(repr, names))} (SOURCE:TARGET)")
    return [tr for tr, n in zip(transfers, names) if n in only]


def e2e_config(options: dict, *, seed: int, where: str = "e2e-supervised options"):
    """The :class:`~liouna_snn.blockwise.BlockwiseConfig` of an ``e2e-supervised`` run's ``options``.

    ``options`` (the run's TOML table) may set :data:`E2E_KEYS`: ``epochs``, ``batch_size`` (images per
    step), ``lr`` (per 256 images, scaled by batch_size / 256), ``weight_decay``, ``augment`` (true: crop +
    flip, :data:`~liouna_snn.blockwise.SUPERVISED_AUGMENT`; false: the whole image as it is),
    ``precision`` ("auto", "bf16" or "fp32"; see :mod:`liouna_snn.precision`) and ``max_seconds``
    (wall-clock cap of training); the others are :data:`E2E_DEFAULTS`. Probe features are the whole flattened layer outputs (``feature_pool = None``),
    as for the Hebbian networks. Unknown options or invalid values raise a ``ValueError`` naming them.
    """
    from ..blockwise import NO_AUGMENT, supervised_config

    reject_unknown(options, E2E_KEYS, f"{where} (rule {E2E_RULE!r})")
    opts = {**E2E_DEFAULTS, **options}
    if not isinstance(opts["augment"], bool):
        raise ValueError(f"{where} (rule {E2E_RULE!r}): augment must be true (crop + flip) or false (the whole "
                         f"image as it is), got {opts['augment']!r}")
    try:
        return supervised_config(epochs=opts["epochs"], batch_size=opts["batch_size"], lr=opts["lr"],
                                 weight_decay=opts["weight_decay"], precision=opts["precision"],
                                 max_seconds=opts.get("max_seconds"), augment=None if opts["augment"] else NO_AUGMENT,
                                 feature_pool=None, seed=seed)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} (rule {E2E_RULE!r}): {err}") from err


def random_subset(data: ImageTensors, n: int | None, seed: int = 0) -> ImageTensors:
    """``n`` examples drawn without replacement with a seeded permutation (order kept), or all of ``data``.

    Not the first ``n``: ImageFolder splits are sorted by class, so their first images are one class.
    """
    if not n or n >= len(data):
        return data
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return dataclasses.replace(data, images=data.images[idx], labels=data.labels[idx], name=f"{data.name}[{n} random]")


def load_split(side: dict, split: str, image_size: int, data_root: str | Path | None = None) -> ImageTensors:
    """One split of a source or target table at ``image_size`` px (resized + centre-cropped), subset applied.

    ``split`` is "train" or "test" (``val`` for ImageFolder trees). ``data_root`` overrides the table's root.
    """
    data = load_dataset(side["dataset"], data_root or side.get("root"), split, image_size=image_size,
                        download=side.get("download", False))
    subset = side.get("train_subset" if split == "train" else "test_subset")
    return random_subset(data, subset)


def finetune_plain(network: nn.Module, train: ImageTensors, test: ImageTensors, *, mean, std, epochs: int,
                   lr: float = 1e-4, batch_size: int = 64, weight_decay: float = 0.0, seed: int = 0,
                   device="cpu", progress: bool = True) -> dict:
    """Fine-tune the plain-CNN export of a rate-mode ``network`` plus a linear head on ``train``; top-1 on ``test``.

    The network is exported with :func:`liouna_snn.export.export_plain` and loaded back with ``load_plain``
    (standard ``torch.nn`` modules; a :class:`~liouna_snn.blockwise.BlockwiseModel`, already made of them,
    gives a copy of its backbone, its own classifier dropped), a ``nn.Linear`` head is put on its flattened
    last-layer output, and all weights train by backprop (Adam, cross-entropy; batch-norms in train mode) for ``epochs`` epochs on images
    standardised with ``mean`` / ``std``. ``network`` itself is not modified. Returns ``{"epochs", "lr",
    "top1", "train_top1", "seconds"}`` (accuracies in %).
    """
    from ..blockwise import BlockwiseModel
    from ..export import export_plain, load_plain

    t0 = time.perf_counter()
    if isinstance(network, BlockwiseModel):
        body = copy.deepcopy(network.backbone).float().to(device)
    else:
        with tempfile.TemporaryDirectory() as folder:
            export_plain(network, folder)
            body = load_plain(folder, device=device)
    torch.manual_seed(seed)
    classes = int(max(train.labels.max(), test.labels.max())) + 1
    with torch.no_grad():
        x0 = next(iterate_batches(train, 2, shuffle=False, device=device, mean=mean, std=std))[0]
        features = body(x0).flatten(1).shape[1]
    model = nn.Sequential(body, nn.Flatten(), nn.Linear(features, classes)).to(device)
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        for x, y in iterate_batches(train, batch_size, shuffle=True, generator=gen, device=device, mean=mean, std=std):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if progress:
            print(f"    fine-tune epoch {epoch + 1}/{epochs}: last batch loss {float(loss):.3f}", flush=True)

    @torch.no_grad()
    def accuracy(data: ImageTensors) -> float:
        model.eval()
        correct = 0
        for x, y in iterate_batches(data, 250, shuffle=False, device=device, mean=mean, std=std):
            correct += int((model(x).argmax(1) == y).sum())
        return 100.0 * correct / max(len(data), 1)

    return {"epochs": epochs, "lr": lr, "top1": round(accuracy(test), 2), "train_top1": round(accuracy(train), 2),
            "seconds": round(time.perf_counter() - t0, 1)}


def _source_network(exp: dict, tr: dict, run: dict, label: str, seed: int, spec: dict, image_size: int, *,
                    device, compute_dtype, train_cfg, spiking, checkpoint_dir: Path, donor_dirs: list[Path],
                    data_root, progress):
    """``(network, source dataset name, mean, std, pre-training summary or None)`` of one run and seed.

    A pre-training on ``source.dataset`` takes its leading layers from the checkpoints in ``donor_dirs`` that
    share them (:func:`~liouna_snn.training.train_unsupervised`'s ``donors``)."""
    from ..experiment import of_precision, per_layer_rules, resolve_model
    from ..export import input_statistics, load_trained_network
    from ..network import build_network, load_spec
    from ..training import donor_name, train_unsupervised

    source = tr["source"]
    if "experiment" in source:
        path = Path(source["experiment"])
        if not path.is_absolute() and not path.is_file():
            path = Path(exp["_path"]).parent / path
        trained = load_trained_network(path, label, seed, allow_spiking=True)
        src_spec = load_spec(resolve_model(trained.experiment["model"], trained.experiment["_path"]))
        if src_spec.get("input_size") != image_size:
            raise ValueError(f"{path}: its model takes {src_spec.get('input_size')} px images, this transfer "
                             f"experiment's model {exp['model']!r} {image_size} px; use the same model")
        mean, std = input_statistics(trained.experiment, data_root)
        if trained.network.spiking is not None and trained.network.spiking.encodes_spikes:
            mean = std = None
        return trained.network.to(device), trained.experiment["data"]["dataset"], mean, std, None
    train = load_split(source, "train", image_size, data_root)
    mean, std = train.channel_stats()
    if spiking is not None and spiking.encodes_spikes:
        mean = std = None  # spike encoders read pixels in [0, 1]
    rules = per_layer_rules(run["rule"], run.get("options", {}), len(spec["layers"]))
    torch.manual_seed(seed)
    net = build_network(spec, rules, seed=seed, compute_dtype=compute_dtype, spiking=spiking)
    cfg = dataclasses.replace(train_cfg, seed=seed)
    mode = "_spiking" if spiking is not None else ""
    # a pre-training of another compute precision keeps its own checkpoint (<...>_seed<s>_<precision>.pt)
    checkpoint = of_precision(checkpoint_dir / f"{source['dataset']}_{label}{mode}_seed{seed}.pt",
                              "fp32" if compute_dtype is None else "bf16")
    # this experiment's own pre-trainings on the same source, and every run of a reuse_from experiment
    prefix = {folder: f"{source['dataset']}_*" if folder == checkpoint_dir else "*" for folder in donor_dirs}
    donors = [p for folder in donor_dirs for pattern in (f"_seed{seed}.pt", f"_seed{seed}_*.pt")
              for p in sorted(folder.glob(prefix[folder] + pattern)) if p != checkpoint]
    summary = train_unsupervised(net, train.to(device), cfg, device=device,
                                 mean=None if mean is None else mean.to(device),
                                 std=None if std is None else std.to(device), progress=progress,
                                 checkpoint=checkpoint, donors=donors,
                                 description=f"{source['dataset']} {label} seed {seed}")
    if summary.get("reused_layers"):
        summary["reused_from"] = donor_name(summary["reused_from"], checkpoint)
    return net, source["dataset"], mean, std, summary


@torch.no_grad()
def classifier_top1(model, data: ImageTensors, *, mean=None, std=None, device="cpu", batch_size: int = 250,
                    progress: bool = False, description: str = "classifier top-1") -> float:
    """Top-1 (%) of a supervised :class:`~liouna_snn.blockwise.BlockwiseModel`'s own classifier on ``data``.

    Eval mode (batch-norm running statistics), un-augmented images standardised with ``mean`` / ``std``
    ((C,), [0, 1] pixel units); the model's precision (bf16 autocast or fp32) for the backbone. ``progress``
    shows a bar over images (a CIFAR-10 train split takes minutes on a CPU).
    """
    from tqdm.auto import tqdm

    model.eval()
    correct = 0
    with tqdm(total=len(data), disable=not progress, desc=description, unit="img", dynamic_ncols=True) as bar:
        for x, y in iterate_batches(data, batch_size, shuffle=False, device=device, mean=mean, std=std):
            correct += int((model.classifier(model(x)).argmax(1) == y).sum())
            bar.update(len(y))
    return 100.0 * correct / max(len(data), 1)


def _e2e_source_network(tr: dict, run: dict, label: str, seed: int, spec: dict, image_size: int, *, device,
                        checkpoint_dir: Path, data_root, progress):
    """The ``e2e-supervised`` baseline of one transfer and seed, trained (or resumed) on the source's train split.

    Returns ``(model, source dataset name, mean, std, summary, entry fields)``: the frozen
    :class:`~liouna_snn.blockwise.BlockwiseModel` in eval mode (``model(x, depth)``: layer ``depth``'s
    flattened output, float32), the source's per-channel ``mean`` / ``std`` ((C,), [0, 1] units; the
    network is trained and probed with them), :func:`train_blockwise`'s summary (``seconds``: training
    time) and the results fields ``train_options``, ``stopped_by``, ``epochs_trained`` (passes over the
    source's train split actually made: fewer than ``epochs`` where ``max_seconds`` stopped it) and
    ``source_train_top1`` (%).
    """
    from ..blockwise import build_spec_model, train_blockwise
    from ..precision import resolve_precision

    source = tr["source"]
    cfg = e2e_config(run.get("options", {}), seed=seed)
    train = load_split(source, "train", image_size, data_root).to(device)
    mean, std = (t.to(device) for t in train.channel_stats())
    model = build_spec_model(spec, cfg, num_classes=len(train.classes))
    # named by the resolved precision: a bf16 and an fp32 baseline keep their own checkpoints
    precision = resolve_precision(cfg.precision, device)
    summary = train_blockwise(model, train, device=device, mean=mean, std=std, progress=progress,
                              checkpoint=checkpoint_dir / f"{source['dataset']}_{label}_seed{seed}_{precision}.pt",
                              description=f"{source['dataset']} {label} seed {seed}")
    model.requires_grad_(False)
    # an epoch passes len(train) // batch_size full batches (the last, partial one is dropped)
    epochs_trained = summary["images"] / (len(train) // cfg.batch_size * cfg.batch_size)
    # judged from the images, not the summary: a rerun that resumes a finished checkpoint trains nothing and
    # would report "epochs" for a run the budget had stopped
    stopped_by = "budget" if epochs_trained < cfg.epochs - 1e-9 else "epochs"
    fields = {"train_options": cfg.to_dict(), "stopped_by": stopped_by, "epochs_trained": round(epochs_trained, 3),
              "source_train_top1": round(classifier_top1(model, train, mean=mean, std=std, device=device,
                                                        progress=progress,
                                                        description=f"{source['dataset']} {label} train top-1"), 2)}
    return model, source["dataset"], mean, std, summary, fields


def run_transfer(path: str | Path, *, data_root: str | Path | None = None, device: str = "auto",
                 results_dir: str | Path | None = None, checkpoint_dir: str | Path | None = None,
                 progress: bool = True, only_rules: list[str] | None = None,
                 only_transfers: list[str] | None = None, precision: str | None = None,
                 layers: list | str | None = None) -> dict:
    """Run every transfer x run x seed of a transfer experiment; write ``<results>/<name>.json``; return it.

    ``data_root`` overrides every source and target ``root``; ``only_rules`` keeps the runs with these rule
    names or labels, ``only_transfers`` the ``[[transfers]]`` with these ``"SOURCE:TARGET"`` names
    (:func:`transfer_name`); ``precision`` (``"auto"``, ``"bf16"``, ``"fp32"``) replaces the file's
    ``[unsupervised] precision`` and the end-to-end runs' own; ``layers`` (``"all"`` or 1-based depths) replaces
    the file's ``[probe] layers``. An existing results file keeps its entries: each run replaces only its own (label,
    seed, transfer, precision) entry; a file of another image size is first moved aside (:func:`earlier_records`).
    """
    from ..precision import compute_dtype as dtype_of, resolve_precision
    from ..provenance import git_commit, machine
    from ..experiment import (earlier_records, resolve_device, resolve_model, reuse_dirs, select_runs,
                              write_json_atomic)
    from ..network import load_spec
    from ..spiking import spiking_config
    from ..training import TrainConfig

    exp = load_transfer_experiment(path)
    name = exp["name"]
    selected = select_runs(exp["runs"], only_rules)  # before any data loads: a wrong name fails at once
    transfers = select_transfers(exp["transfers"], only_transfers)
    dev = resolve_device(exp.get("device", device) if device == "auto" else device)
    spec = load_spec(resolve_model(exp["model"], exp["_path"]))
    if exp.get("depth"):
        if not 1 <= exp["depth"] <= len(spec["layers"]):
            raise ValueError(f"depth = {exp['depth']} but the model has {len(spec['layers'])} layers")
        spec = {**spec, "layers": spec["layers"][:exp["depth"]]}
    size = spec["input_size"]
    unsup = dict(exp.get("unsupervised", {}))
    override = precision  # an explicit choice applies to the end-to-end runs too
    configured = unsup.pop("precision", "auto")  # (popped in any case: TrainConfig does not take it)
    precision = resolve_precision(override or configured, dev)
    compute_dtype = dtype_of(precision, dev)
    train_cfg = TrainConfig(**unsup)
    probe_cfg = {**PROBE_DEFAULTS, **exp.get("probe", {})}
    finetune_cfg = {**FINETUNE_DEFAULTS, **exp.get("finetune", {})}
    spiking = spiking_config(exp["spiking"], f"{exp['_path']} [spiking]") if "spiking" in exp else None
    n_layers = len(spec["layers"])
    if layers is not None:
        probe_cfg["layers"] = layers
    depths = probe_depths(probe_cfg["layers"], n_layers, "--probe-layers" if layers is not None else f"{path} [probe] layers")
    probe_cfg["layers"] = "all" if depths == list(range(1, n_layers + 1)) else depths   # as ints, not the CLI's strings
    results_dir = Path(results_dir) if results_dir else Path(exp["_path"]).parent / "results"
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else Path(exp["_path"]).parent / "checkpoints" / name
    command = " ".join(["liouna-snn"] + sys.argv[1:]) if sys.argv else None
    results = {"experiment": name, "command": command, "git_commit": git_commit(), "torch": torch.__version__,
               **machine(dev), "model": spec.get("name"), "image_size": size,
               "unsupervised": {**dataclasses.asdict(train_cfg), "precision": precision},
               "probe": probe_cfg, "finetune": finetune_cfg, "runs": []}
    # each run below replaces its own (label, seed, transfer, precision) entry; the others stay
    results["runs"] = [{"transfer": f"{r['source_dataset']}:{r['target_dataset']}", **r}  # (older entries)
                       for r in earlier_records(results_dir / f"{name}.json", partial=bool(only_rules or only_transfers),
                                                same=lambda earlier: earlier.get("image_size") == size)]
    donor_dirs = [checkpoint_dir] + reuse_dirs(exp, checkpoint_dir)
    for tr in transfers:
        target = tr["target"]
        train = load_split(target, "train", size, data_root).to(dev)
        test = load_split(target, "test", size, data_root).to(dev)
        for run in selected:
            label = run.get("label", run["rule"])
            if run["rule"] == E2E_RULE and override:
                run = {**run, "options": {**run.get("options", {}), "precision": override}}
            for seed in run.get("seeds", [0]):
                if run["rule"] == E2E_RULE:
                    net, source_name, mean, std, summary, extra = _e2e_source_network(
                        tr, run, label, seed, spec, size, device=dev, checkpoint_dir=checkpoint_dir,
                        data_root=data_root, progress=progress)
                    epochs = extra["epochs_trained"]   # fewer than the options' epochs where max_seconds stopped it
                else:
                    net, source_name, mean, std, summary = _source_network(
                        exp, tr, run, label, seed, spec, size, device=dev, compute_dtype=compute_dtype,
                        train_cfg=train_cfg, spiking=spiking, checkpoint_dir=checkpoint_dir,
                        donor_dirs=donor_dirs, data_root=data_root, progress=progress)
                    extra, epochs = {}, train_cfg.epochs if summary is not None else None
                mean_d = None if mean is None else mean.to(dev)
                std_d = None if std is None else std.to(dev)
                prefix = f"{source_name} -> {target['dataset']} {label} seed {seed}"
                t0 = time.perf_counter()
                layers = probe_layers(net, train, test, depths, device=dev, mean=mean_d, std=std_d, seed=seed,
                                      progress=progress, label=prefix,
                                      **{k: v for k, v in probe_cfg.items() if k != "layers"})
                probe_seconds = time.perf_counter() - t0
                net_spiking = getattr(net, "spiking", None)   # None: rate mode (always for e2e-supervised)
                mode = {"mode": "rate", "neuron": "rate", "time_steps": 1} if net_spiking is None else {
                    "mode": "spiking", "neuron": net_spiking.neuron, "time_steps": net_spiking.time_steps,
                    "spiking": net_spiking.to_dict()}
                entry = {
                    "label": label, "transfer": transfer_name(tr), "dataset": target["dataset"],
                    "source_dataset": source_name,
                    "target_dataset": target["dataset"], "rule": run["rule"], **mode, "seed": seed,
                    "epochs": epochs,
                    "unsup_seconds": round(summary["seconds"], 1) if summary else None,
                    "unsup_images_per_second": round(summary["images_per_second"], 1) if summary else None,
                    "probe_seconds": round(probe_seconds, 1), "target_train_images": len(train),
                    "target_test_images": len(test), "layers": layers,
                    "probe_top1": max(layer["probe_top1"] for layer in layers), **extra,
                    **({"reused_layers": {"layers": summary["reused_layers"], "checkpoint": summary["reused_from"]}}
                       if summary and summary.get("reused_layers") else {}),
                    "command": command, "git_commit": results["git_commit"], **machine(dev),
                    "precision": resolve_precision(extra["train_options"]["precision"], dev) if extra else precision,
                }
                if finetune_cfg["epochs"]:
                    entry["finetune"] = finetune_plain(
                        net.float(), train, test, mean=mean_d, std=std_d, epochs=finetune_cfg["epochs"],
                        lr=finetune_cfg["lr"], batch_size=finetune_cfg["batch_size"],
                        weight_decay=finetune_cfg["weight_decay"], seed=seed, device=dev, progress=progress)
                key = (label, seed, entry["transfer"], entry["precision"])
                results["runs"] = [r for r in results["runs"]
                                   if (r["label"], r["seed"], r["transfer"], r.get("precision")) != key]
                results["runs"].append(entry)
                write_json_atomic(results, results_dir / f"{name}.json")
    write_json_atomic(results, results_dir / f"{name}.json")
    if results["runs"]:
        from ..plots import plot_transfer  # matplotlib only when plotting

        plot_transfer(results, results_dir / f"{name}_layers.png")
    return results


def transfer_table(results: dict) -> str:
    """A text table: one row per run (source -> target, rule, seed), probe / k-NN top-1 (%) of every layer."""
    rows = [f"{'source -> target':<28} {'run':<14} {'seed':>4}  layers: probe / k-NN (%)"]
    for r in results["runs"]:
        cells = "  ".join(f"L{layer['layer']} {layer['probe_top1']:5.1f} / {layer['knn_top1']:5.1f}"
                          for layer in r["layers"])
        ft = f"  fine-tuned {r['finetune']['top1']:.1f}" if "finetune" in r else ""
        rows.append(f"{r['source_dataset'] + ' -> ' + r['target_dataset']:<28} {r['label']:<14} {r['seed']:>4}  "
                    f"{cells}{ft}")
    return "\n".join(rows)


__all__ = ["E2E_DEFAULTS", "E2E_RULE", "classifier_top1", "e2e_config", "finetune_plain", "load_split",
           "load_transfer_experiment", "random_subset", "run_transfer", "select_transfers", "transfer_name",
           "transfer_table"]
