"""A trained network back from an experiment's checkpoint, for exporting.

``liouna-snn run`` saves each run's network at ``<experiment dir>/checkpoints/<name>/<label>_seed<seed>.pt``
(a dict whose ``"network"`` entry is the ``LocalNetwork`` state dict). :func:`load_trained_network`
rebuilds that network from the experiment's model spec (and ``depth``) and the run's rule options, in
float32, and loads the checkpoint into it.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from ..experiment import checkpoint_path, find_run, load_experiment, per_layer_rules, resolve_model, run_spiking
from ..network import LocalNetwork, build_network, load_spec
from ..training import load_checkpoint
from ..training.checkpoint import checkpoint_precision
from ..training.schedules import unfinished_phases


class TrainedRun(NamedTuple):
    """A network rebuilt from a checkpoint, and where it came from."""

    network: LocalNetwork
    experiment: dict
    label: str
    seed: int
    checkpoint: Path


def untrained_network(experiment: dict, label: str, seed: int = 0) -> LocalNetwork:
    """Run ``label`` / ``seed``'s network as it starts training: the experiment's model spec (and ``depth``),
    the run's rules and spiking config, weights seeded with ``seed``, float32."""
    run = find_run(experiment, label)
    spec = load_spec(resolve_model(experiment["model"], experiment["_path"]))
    if experiment.get("depth"):
        if not 1 <= experiment["depth"] <= len(spec["layers"]):
            raise ValueError(f"depth = {experiment['depth']} but the model has {len(spec['layers'])} layers")
        spec = {**spec, "layers": spec["layers"][:experiment["depth"]]}
    rules = per_layer_rules(run["rule"], run.get("options", {}), len(spec["layers"]))
    return build_network(spec, rules, seed=seed, compute_dtype=None, spiking=run_spiking(experiment, run))


def load_trained_network(experiment: str | Path, label: str, seed: int = 0, *,
                         checkpoint_dir: str | Path | None = None, allow_unfinished: bool = False,
                         allow_spiking: bool = False, precision: str | None = None) -> TrainedRun:
    """The network of run ``label`` / ``seed`` of an experiment TOML, with its checkpointed state, in eval mode.

    The network is rebuilt in float32 (``compute_dtype=None``) whatever precision it was trained in.
    ``precision`` (``"bf16"``, ``"fp32"``) picks the network trained in that precision where the run was trained
    in both (``<label>_seed<s>.pt`` and ``<label>_seed<s>_<precision>.pt``); ``None``: the first name.

    Raises:
        FileNotFoundError: the checkpoint does not exist, or none of that ``precision`` (the message names the
            path and the command to run).
        ValueError: no such run, a run in spiking mode (unless ``allow_spiking``: then the network runs in
            spiking mode, from the run's ``<label>_spiking_seed<s>.pt``), or a checkpoint of an unfinished run
            (unless ``allow_unfinished``).
    """
    exp = load_experiment(experiment)
    run = find_run(exp, label)
    spiking = run_spiking(exp, run)
    if spiking is not None and not allow_spiking:
        raise ValueError(f"run {label!r} of {exp['_path']} runs in spiking mode (the [spiking] table or the run's own "
                         f"spiking table); only rate-mode networks export to a plain CNN: export it with --format nir, "
                         f"or train a rate-mode run (spiking = false)")
    if precision not in (None, "bf16", "fp32"):
        raise ValueError(f"unknown precision {precision!r}; allowed: bf16, fp32 (or None: the first checkpoint)")
    path = checkpoint_path(exp, label, seed, checkpoint_dir, precision)
    if not path.is_file():
        seeds = run.get("seeds", [0])
        hint = "" if seed in seeds else f" (run {label!r} lists seeds {seeds}, not {seed})"
        trained_in = f" trained in {precision}" if precision else ""
        raise FileNotFoundError(f"no checkpoint for run {label!r} seed {seed}{trained_in} at {path}{hint}; train it "
                                f"first: liouna-snn run {experiment}" + (f" --precision {precision}" if precision else ""))
    if precision is not None and checkpoint_precision(path) != precision:
        raise ValueError(f"{path} does not record the precision it was trained in (it predates that record); "
                         f"export it without --precision")
    network = untrained_network(exp, label, seed)
    state = load_checkpoint(path)
    if not isinstance(state, dict) or "network" not in state:
        raise ValueError(f"{path} is not a liouna-snn training checkpoint (no 'network' entry)")
    try:
        network.load_state_dict(state["network"])
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit the network of {exp['_path']} (model {exp['model']!r}, run "
                         f"{label!r}); was the spec changed after training? {err}") from None
    unfinished = unfinished_phases(state, network)
    if unfinished is not None and not allow_unfinished:
        raise ValueError(f"{path} is from an unfinished run (phase {unfinished[0]} of {unfinished[1]}); finish it "
                         f"with liouna-snn run {experiment}, or export it anyway with --allow-unfinished")
    network.eval()
    return TrainedRun(network, exp, label, seed, path)


def input_statistics(experiment: dict, data_root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(mean, std)`` in [0, 1] pixel units of the experiment's training set, as ``run`` uses them."""
    from ..data import load_dataset

    data = experiment["data"]
    kw = {"image_size": data["image_size"]} if data.get("image_size") else {}
    train = load_dataset(data["dataset"], data_root or data.get("root"), "train", **kw)
    if data.get("train_subset"):
        train = train.subset(data["train_subset"])
    return train.channel_stats()
