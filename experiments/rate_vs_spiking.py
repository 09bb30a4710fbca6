"""Rate mode versus spiking mode (issue 4): accuracy and unsupervised wall time of one network, per neuron backend and T.

    python experiments/rate_vs_spiking.py --data-root DIR                     # the full benchmark (hours on a CPU)
    python experiments/rate_vs_spiking.py --dataset cifar10-mini --train-subset 300 --test-subset 200 \\
        --probe-epochs 2 --time-steps 4 8 --neurons native-lif snntorch-leaky --out /tmp/rvs/smoke   # minutes

The configuration (``experiments/rate_vs_spiking.toml``, ``--config``) names a base experiment whose model,
data, ``[unsupervised]`` options (schedule, batch size, precision), ``[probe]`` options and one ``[[runs]]``
entry (the rule and its options) are used unchanged. That run is trained and probed once in rate mode and
once in spiking mode for every neuron backend and every ``T``, each with the shared ``[spiking]`` options
and the backend's ``[neuron_params]``, which must describe the same LIF neuron on every backend (checked).
Each run goes through :func:`liouna_snn.experiment.train_and_probe_run`, the function behind
``liouna-snn run``.

Outputs (``--out PATH``, without suffix; default ``experiments/results/rate_vs_spiking``):

* ``PATH.json``: the project's results schema; each run adds ``train_images``, ``test_images``,
  ``conditions`` (everything that determines its numbers) and, in spiking mode, ``layer_activity``
  (every layer's firing report, probed or not);
* ``PATH.png``: best probed-layer linear-probe top-1 (%) and unsupervised time (s) against ``T``, one line
  per backend, neuron, current and precision, rate mode as horizontal references (:func:`plot_rate_vs_spiking`);
* ``PATH.md``: the table, and the two targets of ``[targets]`` with whether each is met.

Runs already in ``PATH.json`` with the same conditions and at least the requested probe layers are
skipped (``--rerun`` redoes them); an interrupted run resumes from its checkpoint. The table and plot
show the runs of the current dataset, image counts and the config's seed: one table per compute precision (bf16 and fp32
runs are kept side by side; wall times and the time target compare only within one precision), each with the
targets of every neuron current measured. ``--seeds`` trains each run once per seed; runs with several seeds on
one machine get a table of their mean ± std (:func:`seeds_table`). ``--report`` trains nothing and rewrites them
from ``PATH.json`` alone (no data needed), as the invocation that wrote it last showed them.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import statistics
import sys
from pathlib import Path

import torch

from liouna_snn.config import read_toml, reject_unknown, require
from liouna_snn.evaluation import PROBE_DEFAULTS, probe_depths, read_out, recorded_probe_options
from liouna_snn.experiment import (
    experiment_data, load_experiment, per_layer_rules, resolve_device, resolve_model, script_main,
    train_and_probe_run,
    write_json_atomic,
)
from liouna_snn.network import LocalNetwork, build_network, load_spec
from liouna_snn.neurons import SPIKING_NEURONS, LIFParameters, make_neuron
from liouna_snn.provenance import git_commit, machine, machine_name, same_machine, short_commit
from liouna_snn.precision import PRECISIONS, resolve_precision
from liouna_snn.precision import compute_dtype as dtype_of
from liouna_snn.rules.rule import LR_SCHEDULES
from liouna_snn.spiking import (LEGACY_DEFAULTS, SpikingConfig, spiking_config, with_default_threshold,
                                with_legacy_defaults)
from liouna_snn.training import TrainConfig, load_checkpoint
from liouna_snn.training.checkpoint import check_identity
from liouna_snn.training.schedules import unfinished_phases

EXPERIMENTS = Path(__file__).resolve().parent
DEFAULT_CONFIG = EXPERIMENTS / "rate_vs_spiking.toml"
DEFAULT_OUT = EXPERIMENTS / "results" / "rate_vs_spiking"
DEFAULT_CHECKPOINTS = EXPERIMENTS / "checkpoints" / "rate_vs_spiking"

CONFIG_KEYS = {"name", "description", "base_experiment", "run", "seed", "neurons", "time_steps", "probe_layers",
               "spiking", "neuron_params", "targets"}
TARGET_KEYS = {"neuron", "time_steps", "max_accuracy_drop", "max_time_ratio"}
PER_RUN_SPIKING_KEYS = {"neuron", "neuron_params", "time_steps"}  # set by the driver for each run
RATE_READOUT_CALIBRATION_IMAGES = 10_000  # the batch-norm statistics of a rate read-out are recomputed on these
SHARED_SPIKING_KEYS = {f.name for f in dataclasses.fields(SpikingConfig)} - PER_RUN_SPIKING_KEYS


# --- configuration -----------------------------------------------------------------------------------------

def check_neuron_names(names, where: str) -> None:
    """Raise a ``ValueError`` naming the entries of ``names`` that are not spiking neurons of the registry."""
    unknown = [n for n in names if n not in SPIKING_NEURONS]
    if unknown:
        raise ValueError(f"{where}: unknown spiking neuron(s) {unknown}; allowed: {', '.join(SPIKING_NEURONS)}")


def check_time_steps(values, where: str) -> None:
    """Raise a ``ValueError`` unless every ``T`` in ``values`` is a positive integer."""
    bad = [t for t in values if isinstance(t, bool) or not isinstance(t, int) or t < 1]
    if bad or not values:
        raise ValueError(f"{where}: time steps must be a non-empty list of positive integers, got {values!r}")


def check_matched_neurons(neuron_params: dict, where: str, current_norm: str = SpikingConfig.current_norm) -> None:
    """Raise a ``ValueError`` unless every backend's parameters give the same LIF neuron (with ``current_norm =
    "std"``, a backend given no threshold has :class:`SpikingConfig`'s default one).

    Each backend translates its parameters to :class:`liouna_snn.neurons.LIFParameters` (``beta``,
    ``threshold``, ``reset``, ``v_reset``; Norse's ``dt`` only sets the units of its ``tau_mem_inv``), so
    matched means equal ``LIFParameters``.
    """
    check_neuron_names(list(neuron_params), where)
    lif = {}
    for name, params in neuron_params.items():
        try:
            lif[name] = make_neuron(name, **with_default_threshold(params, current_norm)).p
        except ValueError as err:
            message = str(err)  # (make_neuron's messages start with the neuron's name already)
            raise ValueError(f"{where}: {message if message.startswith(name) else f'{name}: {message}'}") from None
    first, reference = next(iter(lif.items()))
    for name, p in lif.items():
        if p != reference:
            raise ValueError(f"{where}: the backends do not run the same neuron: {first} has {reference} but {name} "
                             f"has {p}; give every backend the same beta, threshold, reset and v_reset")


def shared_current_norm(cfg: dict) -> str:
    """The ``current_norm`` of a config's shared ``[spiking]`` options (:class:`SpikingConfig`'s default if unset)."""
    return cfg.get("spiking", {}).get("current_norm", SpikingConfig.current_norm)


def load_config(path: str | Path) -> dict:
    """The benchmark configuration TOML, validated (unknown keys, neuron names, matched parameters, targets)."""
    path = Path(path)
    cfg = read_toml(path, "rate-vs-spiking config")
    where = str(path)
    reject_unknown(cfg, CONFIG_KEYS, where)
    require(cfg, ("base_experiment", "run", "neurons", "time_steps", "neuron_params", "targets"), where)
    reject_unknown(cfg.get("spiking", {}), SHARED_SPIKING_KEYS, f"{where} [spiking] (neuron, neuron_params and "
                                                                "time_steps are set per run)")
    reject_unknown(cfg["targets"], TARGET_KEYS, f"{where} [targets]")
    require(cfg["targets"], tuple(sorted(TARGET_KEYS)), f"{where} [targets]")
    check_neuron_names(cfg["neurons"], f"{where} neurons")
    check_neuron_names([cfg["targets"]["neuron"]], f"{where} [targets] neuron")
    if not isinstance(cfg["neuron_params"], dict) or not all(isinstance(p, dict) for p in cfg["neuron_params"].values()):
        raise ValueError(f"{where} [neuron_params]: give one table per backend, e.g. "
                         f"native-lif = {{ beta = 0.9, threshold = 2.0 }}")
    # threshold = 2 and threshold = 2.0 are one neuron: one key, one checkpoint name
    cfg["neuron_params"] = {name: {k: as_number(v) for k, v in params.items()}
                            for name, params in cfg["neuron_params"].items()}
    if cfg["targets"]["neuron"] not in cfg["neuron_params"]:
        raise ValueError(f"{where} [targets]: neuron {cfg['targets']['neuron']!r} has no [neuron_params] entry, so "
                         f"the target names no neuron; configured: {', '.join(cfg['neuron_params'])}")
    check_time_steps(cfg["time_steps"], f"{where} time_steps")
    check_matched_neurons(cfg["neuron_params"], f"{where} [neuron_params]", shared_current_norm(cfg))
    for neuron, params in cfg["neuron_params"].items():  # bad [spiking] values raise now, not after the rate run
        spiking_run_config(cfg, neuron, cfg["time_steps"][0], f"{where} [spiking]")
    cfg.setdefault("name", path.stem)
    cfg.setdefault("seed", 0)
    cfg.setdefault("probe_layers", "all")
    cfg["_path"] = str(path.resolve())
    return cfg


def parse_neuron_overrides(overrides: list[str] | None) -> dict:
    """``["threshold=2", "reset=subtract"]`` as ``{"threshold": 2.0, "reset": "subtract"}`` (numbers become floats,
    anything else stays a string); a malformed entry is a ``ValueError`` naming it."""
    changes = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--neuron-param {item!r}: give KEY=VALUE, e.g. threshold=2 or beta=1")
        try:
            changes[key.strip()] = float(value)
        except ValueError:
            changes[key.strip()] = value.strip()
    return changes


def with_neuron_params(cfg: dict, overrides: list[str] | None, neurons: list[str]) -> dict:
    """``cfg`` with the ``[neuron_params]`` of the backends ``neurons`` (those this invocation runs; the others
    are dropped) and of the target neuron updated by ``overrides`` (``["threshold=2", "beta=1"]``, the same value
    on every backend, in each backend's own units), checked to still describe one neuron.

    Numbers become floats, anything else stays a string (``reset=zero``). A malformed entry, or a value one of
    those backends cannot take (Norse cannot run ``beta=1``), is a ``ValueError`` naming it."""
    if not overrides:
        return cfg
    changes = parse_neuron_overrides(overrides)
    chosen = set(neurons) | {cfg["targets"]["neuron"]}
    params = {name: {**p, **changes} for name, p in cfg["neuron_params"].items() if name in chosen}
    check_matched_neurons(params, f"--neuron-param {' '.join(overrides)}", shared_current_norm(cfg))
    return {**cfg, "neuron_params": params}


def check_spiking_lr(values: list[float] | None, n_layers: int) -> list[float] | None:
    """``--spiking-lr``'s values as floats, one per layer (``None`` when not given); a clear error otherwise."""
    if values is None:
        return None
    if len(values) != n_layers:
        raise ValueError(f"--spiking-lr: give one learning rate per layer ({n_layers} for this network), got "
                         f"{len(values)}: {' '.join(f'{v:g}' for v in values)}")
    bad = [v for v in values if not 0 < v < float("inf")]
    if bad:
        raise ValueError(f"--spiking-lr: learning rates must be finite and > 0, got {' '.join(f'{v:g}' for v in bad)}")
    return [float(v) for v in values]


def check_spiking_lr_schedule(values: list[str] | None, n_layers: int) -> str | list[str] | None:
    """``--spiking-lr-schedule``'s value: one schedule for every layer (a string), one per layer (a list, when they
    differ), or ``None`` when not given; a clear error for another count (argparse checks the names)."""
    if values is None:
        return None
    if len(values) not in (1, n_layers):
        raise ValueError(f"--spiking-lr-schedule: give one schedule for every layer or one per layer ({n_layers} for "
                         f"this network), got {len(values)}: {' '.join(values)}")
    return values[0] if len(set(values)) == 1 else list(values)


def schedule_words(schedule: str | list[str]) -> str:
    """A schedule of ``--spiking-lr-schedule`` in a label or a table: ``cosine``, or per layer
    ``cosine-norm-adaptive-norm-adaptive`` (label) / ``cosine/norm-adaptive/norm-adaptive`` (table)."""
    return schedule if isinstance(schedule, str) else "/".join(schedule)


def chosen_neuron(cfg: dict, neuron: str | None, time_steps: int | None) -> tuple[str, int]:
    """``(neuron, T)`` a script over this benchmark's config measures: ``neuron`` and ``time_steps`` where given, else
    the config's target; a neuron without ``[neuron_params]`` is an error naming the configured ones."""
    neuron = neuron or cfg["targets"]["neuron"]
    if neuron not in cfg["neuron_params"]:
        raise ValueError(f"--neuron {neuron!r} has no [neuron_params] in {cfg['_path']}; configured: "
                         f"{', '.join(cfg['neuron_params'])}")
    return neuron, time_steps or cfg["targets"]["time_steps"]


def spiking_run_config(cfg: dict, neuron: str, time_steps: int, where: str = "[spiking]") -> SpikingConfig:
    """The :class:`SpikingConfig` of one spiking run: the shared ``[spiking]`` options, the backend's
    ``[neuron_params]`` and ``T``."""
    return spiking_config({**cfg.get("spiking", {}), "neuron": neuron, "neuron_params": cfg["neuron_params"][neuron],
                           "time_steps": time_steps}, where)


def base_run(exp: dict, run: str) -> dict:
    """The ``[[runs]]`` entry of the base experiment whose label (else rule) is ``run``.

    It must be a rate-mode entry without its own ``spiking`` table: this benchmark sets every run's mode itself.
    """
    for entry in exp["runs"]:
        if entry.get("label", entry["rule"]) == run:
            if "spiking" in entry:
                raise ValueError(f"the base experiment {exp['_path']}'s run {run!r} sets its own spiking = ...; "
                                 f"rate_vs_spiking sets each run's mode from its own [spiking] table: name a run "
                                 f"without one")
            return entry
    labels = [entry.get("label", entry["rule"]) for entry in exp["runs"]]
    raise ValueError(f"the base experiment {exp['_path']} has no run {run!r}; its runs: {', '.join(labels)}")


# --- one comparison: which runs, with which conditions ----------------------------------------------------

def run_label(rule: str, neuron: str | None, time_steps: int, lateral_inhibition: str = "none",
              current_norm: str = "none", beta: float = LIFParameters.beta, overrides: dict | None = None,
              initial_membrane: str = "rest", inference_initial_membrane: str | None = None,
              current_calibration: str = "running", spiking_lr: list[float] | None = None,
              spiking_lr_schedule: str | list[str] | None = None, learning_code: str = "rate") -> str:
    """``liouna-rate``, ``liouna-native-lif-T8`` or, with mean lateral inhibition and the current divided by its
    standard deviation, ``liouna-native-lif-T8-mean-inhibition-std-current`` (``-uniform-membrane`` when the membranes
    start uniformly below threshold, ``-uniform-membrane-half-at-inference`` when the forward pass starts them
    otherwise; ``-std-current-calibrated`` when the forward pass divides by the exact standard deviation,
    ``current_calibration = "exact"``; ``-current-code`` when the rule learns from the rates in the drive's units,
    ``learning_code = "current"``); a leak other than the default
    ``beta`` adds ``-beta1`` (so the labels of runs with the default leak stay what they were; the
    ``integrate-and-fire`` backend has no other beta and no suffix). The neuron parameters set on the command line
    (``overrides``, from ``--neuron-param``; beta aside) add one suffix each, ``-threshold2`` or ``-reset-subtract``,
    so a run with parameters other than its config's never shares a label with the config's own run; learning rates
    of its own (``spiking_lr``, from ``--spiking-lr``) add ``-lr0.16-0.005-0.01``, a learning-rate schedule of its own
    (``spiking_lr_schedule``, from ``--spiking-lr-schedule``) ``-cosine``, or one per layer
    ``-cosine-norm-adaptive-norm-adaptive``."""
    if neuron is None:
        return f"{rule}-rate"
    suffix = "" if lateral_inhibition == "none" else f"-{lateral_inhibition}-inhibition"
    suffix += "" if current_norm == "none" else f"-{current_norm}-current"
    suffix += "-calibrated" if current_calibration == "exact" else ""
    suffix += "" if initial_membrane == "rest" else f"-{initial_membrane}-membrane"
    if inference_initial_membrane not in (None, initial_membrane):
        suffix += f"-{inference_initial_membrane}-at-inference"
    suffix += "" if learning_code == "rate" else f"-{learning_code}-code"
    suffix += "" if beta == LIFParameters.beta or neuron == "integrate-and-fire" else f"-beta{beta:g}"
    for key, value in sorted((overrides or {}).items()):
        if key != "beta":
            suffix += f"-{key}{value:g}" if isinstance(value, float) else f"-{key}-{value}"
    if spiking_lr:
        suffix += "-lr" + "-".join(f"{lr:g}" for lr in spiking_lr)
    if spiking_lr_schedule:
        suffix += "-" + schedule_words(spiking_lr_schedule).replace("/", "-")
    return f"{rule}-{neuron}-T{time_steps}{suffix}"


def current_variant(record: dict) -> str:
    """How a run's neurons get their input and learn, beyond the defaults, in words: ``""`` (the drive, held for
    ``T`` steps, rate plasticity: rate mode, and results written before the options existed), else e.g.
    ``"mean inhibition, current / std"`` or ``"bernoulli encoder, online plasticity (trace decay 0.8)"``."""
    spiking = with_spiking_defaults({"spiking": record.get("spiking")})["spiking"]
    if not spiking:
        return ""
    words = []
    if spiking["encoder"] != "constant-current":
        params = ", ".join(f"{k} {v:g}" for k, v in sorted(spiking["encoder_params"].items()))
        words.append(f"{spiking['encoder']} encoder" + (f" ({params})" if params else ""))
    if spiking["plasticity"] != "rate":
        words.append(f"{spiking['plasticity']} plasticity (trace decay {spiking['trace_decay']:g})")
    if spiking["lateral_inhibition"] != "none":
        words.append(f"{spiking['lateral_inhibition']} inhibition")
    if spiking["current_norm"] != "none":
        words.append(f"current / {spiking['current_norm']}" +
                     (" (exact)" if spiking.get("current_calibration", "running") == "exact" else ""))
    inference = spiking.get("inference_initial_membrane") or spiking["initial_membrane"]
    if spiking["initial_membrane"] != "rest" or inference != "rest":
        words.append(f"{spiking['initial_membrane']} initial membrane" +
                     (f" ({inference} at inference)" if inference != spiking["initial_membrane"] else ""))
    if spiking.get("learning_code", "rate") != "rate":
        words.append(f"learns from rates in {spiking['learning_code']} units")
    if record.get("spiking_lr"):
        words.append("learning rates " + "/".join(f"{lr:g}" for lr in record["spiking_lr"]))
    if record.get("spiking_lr_schedule"):
        words.append(f"{schedule_words(record['spiking_lr_schedule'])} learning-rate schedule")
    return ", ".join(words)


def lif_parameters(neuron: str, neuron_params: dict) -> LIFParameters:
    """The LIF neuron a backend's parameters (in that backend's units) give, as :class:`LIFParameters`."""
    return make_neuron(neuron, **neuron_params).p


def neuron_variant(record: dict) -> str:
    """A spiking run's neuron in words, the same for matched backends: ``"beta 0.9, threshold 3, reset zero"``
    (``"beta 1 (integrate-and-fire), ..."`` without leak); ``""`` in rate mode."""
    spiking = record.get("spiking")
    if not spiking:
        return ""
    params = spiking.get("neuron_params") or {}
    try:
        p = lif_parameters(record["neuron"], params)
    except (ValueError, TypeError, ImportError):  # a record this install cannot rebuild is still shown and keyed
        return ", ".join(f"{k} {v}" for k, v in sorted(params.items())) + " (as recorded)"
    words = [f"beta {p.beta:g}" + (" (integrate-and-fire)" if p.beta == 1 else ""), f"threshold {p.threshold:g}",
             f"reset {p.reset}" + (f" to {p.v_reset:g}" if p.reset == "zero" and p.v_reset else "")]
    return ", ".join(words)


def neuron_key(record: dict) -> tuple:
    """The run's neuron as a comparable value: its :class:`LIFParameters` as a tuple (the same for matched
    backends, whatever units each takes), or, for a record this install cannot rebuild, its recorded parameters
    (numbers as floats); ``()`` in rate mode."""
    spiking = record.get("spiking")
    if not spiking:
        return ()
    params = spiking.get("neuron_params") or {}
    try:
        return dataclasses.astuple(lif_parameters(record["neuron"], params))
    except (ValueError, TypeError, ImportError):
        return ("as recorded",) + tuple(sorted((k, as_number(v)) for k, v in params.items()))


def spiking_options(record: dict) -> tuple:
    """The run's shared spiking options (every :class:`SpikingConfig` field but the neuron, its parameters and
    ``T``; defaults filled in for records older than a field) as a comparable value; ``()`` in rate mode."""
    spiking = with_spiking_defaults({"spiking": record.get("spiking")})["spiking"]
    if not spiking:
        return ()
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in spiking.items()
                        if k not in PER_RUN_SPIKING_KEYS))


def run_key(record: dict) -> tuple:
    """What distinguishes the runs of one comparison: ``(mode, neuron, time_steps, spiking options, neuron, learning
    rates, learning-rate schedule)`` (:func:`spiking_options`, :func:`neuron_key`; the learning rates of
    ``--spiking-lr``, ``()`` for the base run's; the schedule of ``--spiking-lr-schedule``, ``""`` for the base run's):
    runs that differ in any spiking option, neuron parameter, learning rate or schedule are different runs, kept side
    by side."""
    return (record["mode"], record["neuron"], record["time_steps"], spiking_options(record), neuron_key(record),
            tuple(record.get("spiking_lr") or ()), schedule_words(record.get("spiking_lr_schedule") or ""))


def scope_key(record_or_conditions: dict) -> tuple:
    """The runs the table compares share this: ``(dataset, train_images, test_images, seed, precision)``.

    Precision is part of it because wall times (the time target) only compare on one machine and one compute
    dtype: a bf16 run and an fp32 run of the same network are kept side by side, never compared."""
    c = record_or_conditions.get("conditions", record_or_conditions)
    return c["dataset"], c["train_images"], c["test_images"], c["seed"], c["unsupervised"]["precision"]


def as_json(obj):
    """``obj`` as it reads back from the results JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(obj))


def as_number(value):
    """``value`` as a float if it is a number (``2`` and ``2.0`` are one parameter value), else unchanged."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def digest(obj) -> str:
    """A short stable hash of a JSON-able object (names checkpoints by the conditions of their training)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


NEWER_SPIKING_OPTIONS = {k: LEGACY_DEFAULTS[k] for k in ("current_norm", "initial_membrane",
                                                         "inference_initial_membrane", "current_calibration",
                                                         "learning_code")}
"""Spiking options added after this benchmark's first checkpoints, with the default that they did not record."""


def checkpoint_conditions(training: dict) -> dict:
    """``training`` without the spiking options of :data:`NEWER_SPIKING_OPTIONS` that are at their default, so a
    run's checkpoint keeps the name it had before those options existed (an interrupted run still resumes)."""
    spiking = training.get("spiking")
    if not isinstance(spiking, dict):
        return training
    kept = {k: v for k, v in spiking.items() if NEWER_SPIKING_OPTIONS.get(k, object()) != v}
    return {**training, "spiking": kept}


def with_spiking_defaults(conditions: dict) -> dict:
    """``conditions`` with every :class:`SpikingConfig` field its spiking dict lacks set to the default it ran with
    (:func:`liouna_snn.spiking.with_legacy_defaults`), so a record written before a field existed (e.g.
    ``lateral_inhibition``) still matches the same run."""
    spiking = conditions.get("spiking")
    if not isinstance(spiking, dict):
        return conditions
    return {**conditions, "spiking": as_json(with_legacy_defaults(spiking))}


def is_done(record: dict, conditions: dict, depths: list[int]) -> bool:
    """Whether ``record`` already answers a run with ``conditions`` probed at ``depths``."""
    probed = {layer["layer"] for layer in record["layers"]}
    stored = record.get("conditions")
    return (stored is not None and with_spiking_defaults(stored) == with_spiking_defaults(as_json(conditions))
            and set(depths) <= probed)


def best_probe(record: dict, depths: list[int]) -> float:
    """Linear-probe top-1 (%) of the best layer among ``depths``."""
    return max(layer["probe_top1"] for layer in record["layers"] if layer["layer"] in depths)


# --- the benchmark ---------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="benchmark TOML (default: %(default)s)")
    parser.add_argument("--neurons", nargs="+", help=f"spiking backends to run (default: the config's; allowed: "
                                                     f"{', '.join(SPIKING_NEURONS)}); the rate run always takes part, and "
                                                     "'--neurons rate' runs it alone (e.g. with --rerun, to time "
                                                     "rate mode on this machine)")
    parser.add_argument("--time-steps", type=int, nargs="+", help="values of T (default: the config's)")
    parser.add_argument("--neuron-param", action="append", metavar="KEY=VALUE",
                        help="set a neuron parameter on every backend, e.g. threshold=2 (repeatable); the runs are "
                             "keyed, tabled and checkpointed by their parameters, beside the config's own")
    parser.add_argument("--spiking-lr", type=float, nargs="+", metavar="LR",
                        help="the spiking runs' learning rates, one per layer, in place of the base run's (rate mode "
                             "keeps its own): with current / std a spiking layer's outputs do not grow with its "
                             "weights as rate mode's do, so it may need its own rates; the runs are keyed, labelled "
                             "(-lr...) and checkpointed by them")
    parser.add_argument("--spiking-lr-schedule", choices=LR_SCHEDULES, nargs="+", metavar="SCHEDULE",
                        help="the spiking runs' learning-rate schedule in place of the base run's (rate mode keeps its "
                             "own): SoftHebb's norm-adaptive rate assumes the weight norms fall towards 1, which they do "
                             "not under current / std; 'cosine' anneals to 0 whatever the norms do. One for every layer or "
                             f"one per layer (of: {', '.join(LR_SCHEDULES)}). Keyed, labelled (-cosine) and checkpointed "
                             "by it; combine with --spiking-lr for the rates it starts from")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="seeds to train (default: the config's seed); the tables show the config's seed, and a "
                             "seeds table gives every run trained with several seeds as mean ± std")
    parser.add_argument("--probe-layers", nargs="+", help="'all' or 1-based depths, e.g. 3 (default: the config's)")
    parser.add_argument("--dataset", help="dataset name (default: the base experiment's; cifar10-mini needs no files)")
    parser.add_argument("--data-root", help="folder holding the dataset's standard layout (default: the base's root)")
    parser.add_argument("--train-subset", type=int, help="use only the first N training images")
    parser.add_argument("--test-subset", type=int, help="use only the first N test images")
    parser.add_argument("--probe-epochs", type=int, help="linear-probe epochs (default: the base experiment's)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--precision", choices=PRECISIONS, help="compute precision in place of the base "
                        "experiment's (auto: bf16 where the device computes it natively, else fp32); runs of "
                        "each precision get their own table")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="results path without suffix: writes .json, .md, "
                                                                 ".png (default: %(default)s)")
    parser.add_argument("--checkpoint-dir", help=f"where run checkpoints go (default: {DEFAULT_CHECKPOINTS}, or "
                                                 "OUT's folder/checkpoints when --out is given)")
    parser.add_argument("--rerun", action="store_true", help="redo runs already in the results file")
    parser.add_argument("--this-machine", action="store_true",
                        help="train every run (rate and spiking, each seed) that this machine has not recorded: a run "
                             "recorded on another machine no longer skips it (the accuracy and time gaps only "
                             "compare within one machine)")
    parser.add_argument("--rate-readout", action="store_true",
                        help="also read every spiking run's trained weights out in rate mode and probe them (from "
                             "its checkpoint when the run is already in the results): what learning on spikes cost "
                             "the weights, apart from what the spiking read-out costs")
    parser.add_argument("--compile-neurons", action="store_true",
                        help="run the spiking neurons' steps through torch.compile: the same spikes, several times "
                             "faster for the snnTorch and Norse backends (needs a C++ compiler on CPU)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--report", action="store_true", help="train nothing: rewrite the table and plot from the "
                                                              "results JSON")


def run_benchmark(args: argparse.Namespace, command: str | None = None) -> tuple[dict, str]:
    """Run every missing (mode, neuron, T, neuron current) of ``args`` (none with ``--report``); write JSON,
    markdown and plot; return ``(results, table)``."""
    cfg = load_config(args.config)
    neurons = args.neurons or cfg["neurons"]
    rate_only = neurons == ["rate"]  # "--neurons rate": the rate run alone (it takes part in every invocation)
    neurons = [] if rate_only else [n for n in neurons if n != "rate"]
    check_neuron_names(neurons, "--neurons")
    missing = [n for n in neurons if n not in cfg["neuron_params"]]
    if missing:
        raise ValueError(f"--neurons: no [neuron_params] for {missing} in {cfg['_path']}; add matched parameters "
                         f"(configured: {', '.join(cfg['neuron_params'])})")
    cfg = with_neuron_params(cfg, args.neuron_param, neurons)
    exp = load_experiment(Path(cfg["_path"]).parent / cfg["base_experiment"])
    run = base_run(exp, cfg["run"])
    time_steps = args.time_steps or cfg["time_steps"]
    check_time_steps(time_steps, "--time-steps")
    if args.probe_epochs is not None and args.probe_epochs < 1:
        raise ValueError(f"--probe-epochs must be >= 1, got {args.probe_epochs}")

    spec = load_spec(resolve_model(exp["model"], exp["_path"]))
    n_layers = len(spec["layers"])
    depths = probe_depths(args.probe_layers or cfg["probe_layers"], n_layers, "--probe-layers")
    device = resolve_device(args.device)
    out = Path(args.out)
    if args.report:
        return report_results(out, depths, cfg)
    data_cfg = exp["data"]
    dataset = args.dataset or data_cfg["dataset"]
    train, test, mean, std = experiment_data(data_cfg, device, root=args.data_root, dataset=dataset,
                                             train_subset=args.train_subset, test_subset=args.test_subset)

    unsup = dict(exp.get("unsupervised", {}))
    configured = unsup.pop("precision", "auto")  # (popped in any case: TrainConfig does not take it)
    precision = resolve_precision(args.precision or configured, device)
    compute_dtype = dtype_of(precision, device)
    train_cfg = TrainConfig(**unsup)
    probe_cfg = {**PROBE_DEFAULTS, **exp.get("probe", {}), "layers": depths}
    if args.probe_epochs is not None:
        probe_cfg["epochs"] = args.probe_epochs
    rules = per_layer_rules(run["rule"], run.get("options", {}), n_layers)
    spiking_lr = check_spiking_lr(args.spiking_lr, n_layers)
    spiking_schedule = check_spiking_lr_schedule(args.spiking_lr_schedule, n_layers)
    own_options = {**({} if spiking_lr is None else {"lr": spiking_lr}),
                   **({} if spiking_schedule is None else {"lr_schedule": spiking_schedule})}
    spiking_rules = per_layer_rules(run["rule"], {**run.get("options", {}), **own_options}, n_layers) \
        if own_options else rules
    seeds = args.seeds or [cfg["seed"]]
    if any(seed < 0 for seed in seeds):
        raise ValueError(f"--seeds must be >= 0, got {seeds}")

    ckpt_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else (
        DEFAULT_CHECKPOINTS if out.resolve() == DEFAULT_OUT.resolve() else out.parent / "checkpoints")
    results = {"experiment": cfg["name"], "command": command, "git_commit": git_commit(),
               "torch": torch.__version__, **machine(device), "model": spec.get("name"), "base_experiment": exp["_path"],
               "dataset": dataset, "train_images": len(train), "test_images": len(test),
               "unsupervised": {**dataclasses.asdict(train_cfg), "precision": precision},
               "probe": probe_cfg, "runs": [],
               "targets": config_targets(cfg)}
    json_path = out.with_suffix(".json")
    if json_path.is_file():
        results["runs"] = json.loads(json_path.read_text()).get("runs", [])

    plan = [(seed, None, 1) for seed in seeds] + [(seed, neuron, T) for seed in seeds for neuron in neurons
                                                  for T in time_steps]
    for seed, neuron, T in plan:
        scope = (dataset, len(train), len(test), seed, precision)
        spiking = None if neuron is None else spiking_run_config(cfg, neuron, T)
        own_lr = spiking_lr if spiking is not None else None
        own_schedule = spiking_schedule if spiking is not None else None
        run_rules = spiking_rules if spiking is not None else rules
        training = {"dataset": dataset, "train_images": len(train), "seed": seed, "model": spec.get("name"),
                    "rule_options": [dataclasses.asdict(r) for r in run_rules],
                    "unsupervised": results["unsupervised"],
                    "spiking": None if spiking is None else spiking.to_dict()}
        conditions = {**training, "test_images": len(test), "probe": recorded_probe_options(probe_cfg)}
        label = run_label(run["rule"], neuron, T, *(("none", "none") if spiking is None else
                                                    (spiking.lateral_inhibition, spiking.current_norm,
                                                     lif_parameters(neuron, spiking.neuron_params).beta,
                                                     parse_neuron_overrides(args.neuron_param),
                                                     spiking.initial_membrane,
                                                     spiking.inference_initial_membrane,
                                                     spiking.current_calibration, own_lr, own_schedule,
                                                     spiking.learning_code)))
        key = run_key({"mode": "rate", "neuron": "rate", "time_steps": 1} if spiking is None else
                      {"mode": "spiking", "neuron": neuron, "time_steps": T, "spiking": training["spiking"],
                       "spiking_lr": own_lr, "spiking_lr_schedule": own_schedule})
        same = [r for r in results["runs"] if r.get("conditions") and scope_key(r) == scope
                and run_key(r) == key]
        # Each machine keeps its own rate run (each spiking run compares with its machine's); otherwise a run of
        # another machine skips this one, unless --this-machine asks for every run on this machine.
        mine = [r for r in same if same_machine(r, results)]
        if args.this_machine or (spiking is None and (mine or args.rerun)):
            same = mine
        checkpoint = ckpt_dir / f"{label}_{digest(as_json(checkpoint_conditions(training)))}.pt"
        # Spike encoders need pixels in [0, 1]; each layer's batch-norm then normalises after encoding.
        standardise = spiking is None or not spiking.encodes_spikes
        evaluation = dict(train=train, test=test, depths=depths, probe_cfg=probe_cfg, device=device,
                          mean=mean if standardise else None, std=std if standardise else None, seed=seed,
                          progress=not args.quiet, label=label)
        if same and is_done(same[-1], conditions, depths) and not args.rerun:
            print(f"{label}: already in {json_path}, skipped", flush=True)
            if args.rate_readout and spiking is not None and not has_rate_readout(same[-1], depths):
                net = finished_network(spec, run_rules, seed, compute_dtype, spiking, checkpoint)
                if net is None:
                    print(f"{label}: no finished checkpoint at {checkpoint} to read out in rate mode; retrain it "
                          f"with --rerun", flush=True)
                else:
                    recorded = json.loads(json.dumps(same[-1]))  # (as written, before the read-out joins it)
                    add_rate_readout(same[-1], net, **evaluation)
                    results["runs"] = [r for r in merged_runs(json_path, results["runs"]) if r != recorded]
                    write_json_atomic(results, json_path)
            continue
        if args.rerun:
            checkpoint.unlink(missing_ok=True)
        net, record = train_and_probe_run(
            spec, run["rule"], run_rules, label=label, seed=seed, dataset=dataset, train=train, test=test,
            mean=mean if standardise else None, std=std if standardise else None, train_cfg=train_cfg,
            compute_dtype=compute_dtype, probe_cfg=probe_cfg, spiking=spiking, device=device, checkpoint=checkpoint,
            progress=not args.quiet, command=command, git_commit=results["git_commit"],
            compile_neurons=args.compile_neurons and spiking is not None)
        record.update(train_images=len(train), test_images=len(test), conditions=as_json(conditions))
        if own_lr is not None:
            record["spiking_lr"] = own_lr
        if own_schedule is not None:
            record["spiking_lr_schedule"] = own_schedule
        if spiking is not None:
            record["layer_activity"] = [{"layer": i, **(layer.activity() or {})}
                                        for i, layer in enumerate(net.layers, start=1)]
            if args.rate_readout:
                add_rate_readout(record, net, **evaluation)
        results["runs"] = [r for r in merged_runs(json_path, results["runs"]) if r not in same] + [record]
        write_json_atomic(results, json_path)
        print(f"{label}: best probe {best_probe(record, depths):.2f} %, unsupervised {record['unsup_seconds']:.1f} s",
              flush=True)

    return results, write_report(results, depths, out, cfg)


def merged_runs(json_path: Path, runs: list[dict]) -> list[dict]:
    """The runs of ``json_path`` as it is now, then those of ``runs`` (this invocation's) it lacks: another invocation
    writing the same file since this one read it (one run at a time each) keeps its runs."""
    on_disk = json.loads(json_path.read_text()).get("runs", []) if json_path.is_file() else []
    return on_disk + [r for r in runs if r not in on_disk]


def report_results(out: Path, depths: list[int], cfg: dict) -> tuple[dict, str]:
    """``--report``: rewrite the table and plot of the results at ``out`` (a path without suffix) from its JSON alone,
    without data or training; the runs shown are those of the dataset and image counts of the invocation that
    wrote the JSON last, with this config's targets. Returns ``(results, table)``."""
    json_path = out.with_suffix(".json")
    if not json_path.is_file():
        raise FileNotFoundError(f"--report: no results at {json_path} to report; run the benchmark first, or give "
                                f"--out the path (without suffix) of an existing results JSON")
    results = json.loads(json_path.read_text())
    results["targets"] = config_targets(cfg)  # this config's target first, as a training invocation would
    return results, write_report(results, depths, out, cfg)


def config_targets(cfg: dict) -> dict:
    """The config's ``[targets]`` with the target run's spiking options (``spiking``, :class:`SpikingConfig` fields)."""
    target = cfg["targets"]
    return {**target, "spiking": spiking_run_config(cfg, target["neuron"], target["time_steps"]).to_dict()}


def write_report(results: dict, depths: list[int], out: Path, cfg: dict) -> str:
    """Write ``out``.md (:func:`markdown_report`) and ``out``.png (:func:`plot_rate_vs_spiking`) for the runs of
    ``results`` on its dataset, image counts and the config's seed that probed every depth of ``depths`` (every
    precision, each in its own table; runs trained with several seeds also as mean ± std, :func:`seeds_table`);
    return the markdown."""
    scope = (results["dataset"], results["train_images"], results["test_images"])
    seeded = [r for r in results["runs"] if r.get("conditions") and scope_key(r)[:3] == scope
              and set(depths) <= {layer["layer"] for layer in r["layers"]}]
    shown = [r for r in seeded if scope_key(r)[3] == cfg["seed"]]
    table = markdown_report(results, shown, depths, seeded)
    out.with_suffix(".md").parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table + "\n")
    plot_rate_vs_spiking(shown, depths, out.with_suffix(".png"),
                         title=f"{cfg['name']}: {results['dataset']}, {results['train_images']} train / "
                               f"{results['test_images']} test images, {results['device']}",
                         numbers=machine_numbers(seeded))  # the tables' numbering
    return table


def finished_network(spec: dict, rules: list, seed: int, compute_dtype, spiking: SpikingConfig | None,
                     checkpoint: Path) -> LocalNetwork | None:
    """The network a finished run left in ``checkpoint``, in eval mode; ``None`` when there is no checkpoint or its
    run did not finish. A checkpoint of another network is a ``ValueError`` naming the difference."""
    state = load_checkpoint(checkpoint)
    if state is None:
        return None
    net = build_network(spec, rules, seed=seed, compute_dtype=compute_dtype, spiking=spiking)
    check_identity(state, net, checkpoint, "retrain it with --rerun")
    if unfinished_phases(state, net) is not None:
        return None
    net.load_state_dict(state["network"])
    return net.eval()


def has_rate_readout(record: dict, depths: list[int]) -> bool:
    """Whether ``record`` holds a rate read-out of its weights probed at every depth of ``depths``."""
    readout = record.get("rate_readout")
    return readout is not None and set(depths) <= {layer["layer"] for layer in readout["layers"]}


def add_rate_readout(record: dict, net: LocalNetwork, *, train, test, depths: list[int], probe_cfg: dict, device,
                     mean, std, seed: int, progress: bool, label: str) -> None:
    """Read a spiking run's trained weights out in rate mode (norms recalibrated on
    :data:`RATE_READOUT_CALIBRATION_IMAGES` training images), probe them at ``depths`` with the run's probe and
    store the accuracies as ``record["rate_readout"]``. Beside the run's own probe it separates what learning on
    spikes cost the weights from what reading them out through spikes costs."""
    readout = read_out(net, None, train, test, depths, calibration_images=RATE_READOUT_CALIBRATION_IMAGES,
                       device=device, mean=mean, std=std, seed=seed, progress=progress,
                       label=f"{label} rate read-out", **{k: v for k, v in probe_cfg.items() if k != "layers"})
    keep = ("layer", "probe_top1", "knn_top1", "probe_train_top1")
    record["rate_readout"] = {
        **machine(device),  # its own: a read-out of an older run may be computed on another machine than its training
        "calibration_images": RATE_READOUT_CALIBRATION_IMAGES, "probe_top1": readout["probe_top1"],
        "layers": [{k: layer[k] for k in keep if k in layer} for layer in readout["layers"]],
        "calibration_seconds": readout["calibration_seconds"], "probe_seconds": readout["probe_seconds"]}
    if progress:
        print(f"{label}: its weights read out in rate mode: best probe {readout['probe_top1']:.2f} %", flush=True)


# --- report ----------------------------------------------------------------------------------------------

def rate_run_for(run: dict, runs: list[dict]) -> dict | None:
    """The rate run among ``runs`` that ``run`` compares with: the one of its own machine (:func:`same_machine`),
    else the last recorded; ``None`` without any.

    One seed of rate mode moves by about a point between machines (their floating-point kernels sum in other
    orders), as much as the gaps measured, and wall times only compare within one machine: so each machine
    keeps its own rate run."""
    rates = [r for r in runs if r["mode"] == "rate"]
    return next((r for r in rates if same_machine(r, run)), rates[-1] if rates else None)


def target_lines(runs: list[dict], targets: dict, depths: list[int]) -> list[str]:
    """The two targets, each with the measured values and ``met`` / ``not met`` / ``not measured``, against the
    rate run of the spiking run's machine (:func:`rate_run_for`).

    ``targets`` holds ``[targets]`` and ``spiking``, the target run's spiking options (a dict of
    :class:`SpikingConfig` fields)."""
    neuron, T = targets["neuron"], targets["time_steps"]
    target_run = {"mode": "spiking", "neuron": neuron, "time_steps": T, "spiking": targets["spiking"]}
    spk = next((r for r in runs if run_key(r) == run_key(target_run)), None)
    rate = rate_run_for(spk or {}, runs)
    neuron = f"{neuron} ({'; '.join(filter(None, (neuron_variant(target_run), current_variant(target_run))))})"
    drop, ratio = targets["max_accuracy_drop"], targets["max_time_ratio"]
    acc_goal = f"{neuron} at T = {T} within {drop:g} points of rate mode (best probed-layer linear-probe top-1)"
    time_goal = f"{neuron} at T = {T} at most {ratio:g}x rate mode's unsupervised wall time"
    if rate is None or spk is None:
        absent = " and ".join(w for w, r in (("rate mode", rate), (f"{neuron} T = {T}", spk)) if r is None)
        return [f"- Accuracy target: {acc_goal}: no {absent} run in these results: **not measured**",
                f"- Time target: {time_goal}: no {absent} run in these results: **not measured**"]
    a_rate, a_spk = best_probe(rate, depths), best_probe(spk, depths)
    gap = a_rate - a_spk
    elsewhere = "" if same_machine(spk, rate) else " (rate mode of another machine)"
    accuracy = (f"- Accuracy target: {acc_goal}: {a_spk:.2f} % vs {a_rate:.2f} %{elsewhere} ({-gap:+.2f} points): "
                f"**{'met' if gap <= drop else 'not met'}**")
    if elsewhere:
        return [accuracy, f"- Time target: {time_goal}: {spk['unsup_seconds']:.1f} s on {machine_name(spk)} vs "
                          f"{rate['unsup_seconds']:.1f} s on {machine_name(rate)}, not comparable: **not measured**"]
    times = spk["unsup_seconds"] / max(rate["unsup_seconds"], 1e-9)
    return [accuracy, f"- Time target: {time_goal}: {spk['unsup_seconds']:.1f} s vs {rate['unsup_seconds']:.1f} s "
                      f"({times:.2f}x): **{'met' if times <= ratio else 'not met'}**"]


def per_layer_activity(record: dict, key: str, scale: float, spec: str) -> str:
    """One inference activity statistic of every layer, ``a/b/c`` (``-`` for a layer without a report,
    an empty cell in rate mode)."""
    reports = [a.get("inference") for a in record.get("layer_activity", [])]
    return "/".join(format(scale * a[key], spec) if a else "-" for a in reports)


def precision_of(record: dict) -> str:
    """The compute precision a run was trained in (``bf16``, ``fp32``, ...)."""
    return record["conditions"]["unsupervised"]["precision"]


def by_precision(runs: list[dict], first: str) -> dict[str, list[dict]]:
    """``runs`` grouped by :func:`precision_of`, the group of precision ``first`` (this invocation's) first."""
    groups: dict[str, list[dict]] = {}
    for r in sorted(runs, key=lambda r: precision_of(r) != first):
        groups.setdefault(precision_of(r), []).append(r)
    return groups


def target_variants(runs: list[dict], targets: dict) -> list[dict]:
    """``targets`` once per backend, neuron (parameters) and spiking options among ``runs``' spiking runs at the
    target ``T`` (the configured variant alone when there is none), so every variant measured at that ``T`` gets
    its verdict: the configured variant first, then the other variants of the target backend, then the other
    backends (e.g. ``integrate-and-fire`` beside ``native-lif``)."""
    def variant(neuron: str, spiking: dict) -> tuple:
        return run_key({"mode": "spiking", "neuron": neuron, "time_steps": targets["time_steps"], "spiking": spiking})

    configured = variant(targets["neuron"], targets["spiking"])
    variants = {}
    for r in runs:
        if r["mode"] == "spiking" and r["time_steps"] == targets["time_steps"]:
            spiking = r.get("spiking") or {}
            variants[variant(r["neuron"], spiking)] = {**targets, "neuron": r["neuron"], "spiking": spiking}
    return sorted(variants.values(), key=lambda t: (variant(t["neuron"], t["spiking"]) != configured,
                                                    t["neuron"] != targets["neuron"], t["neuron"])) or [targets]


def markdown_report(results: dict, runs: list[dict], depths: list[int], seeded: list[dict] | None = None) -> str:
    """One table per precision (one row per run, rate first) with the targets of each measured neuron current,
    and the conditions they were measured under. Wall times only compare within one table. ``seeded``: the runs
    of every seed (``runs`` holds one seed's), for the table of runs trained with several seeds."""
    u = results["unsupervised"]
    lines = [f"Latest invocation: `{results['command']}` — commit `{short_commit(results.get('git_commit'))}`, torch "
             f"{results['torch']}, {results['dataset']}: {results['train_images']} train / {results['test_images']} "
             f"test images, {u['schedule']} schedule, epochs = {u['epochs']}, batch {u['batch_size']}, probe "
             f"{results['probe']['epochs']} epochs. Accuracies: linear probe (k-NN) top-1 %; activity: inference firing "
             "rate (spikes per step) per layer, and the fraction of silent / saturated units. One table per compute "
             "precision; each spiking run is compared with the rate run of its own machine (device, CPU, threads; the "
             "machine column), in accuracy and wall time, and a run without one shows 'other machine' in place of a "
             "time ratio. Each run's command, commit and machine are in the JSON."]
    seeded = seeded or runs
    numbers = machine_numbers(seeded)  # one numbering for every table
    for precision, group in by_precision(runs, u["precision"]).items():
        machines = [f"machine {i}: {name}" for name, i in numbers.items() if any(machine_name(r) == name for r in group)]
        commits = sorted({short_commit(r.get("git_commit")) for r in group})
        commands = sorted({r["command"] for r in group if r.get("command")})
        lines += ["", f"**{precision}** ({'; '.join(machines)}; commits {', '.join(f'`{c}`' for c in commits)}; "
                      f"trained by {' and '.join(f'`{c}`' for c in commands) or 'commands not recorded'}):", ""]
        if any(r["mode"] == "spiking" for r in group):
            lines += ["Against T: each backend, neuron and current a row, each T a column; a cell is the best probe, its gap "
                      "to the rate run of its machine (points), the unsupervised time against that run's, and the machine "
                      "(several machines' runs of one cell one after the other; - where that T has not run):", ""]
            lines += grid_table(group, depths, numbers) + ["", "Every run:", ""]
        lines += precision_table(group, depths, numbers)
        lines += ["", f"Targets (issue 4), {precision}:", ""]
        for targets in target_variants(group, results["targets"]):
            lines += target_lines(group, targets, depths)
        several = seeds_table([r for r in seeded if precision_of(r) == precision], depths, numbers)
        if several:
            lines += ["", f"Seeds, {precision}: every run trained with several seeds on one machine, its best probe and "
                          "unsupervised time as mean ± std over the seeds (sample std), against the mean of rate mode's "
                          "seeds on the same machine:", ""] + several
    return "\n".join(lines)


def seed_of(record: dict) -> int:
    """The seed a run was trained with."""
    return record["conditions"]["seed"]


def mean_std(values: list[float]) -> tuple[float, float]:
    """``(mean, sample standard deviation)`` of ``values`` (std 0 for a single value), as ``experiments/report.py``."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def seeds_table(runs: list[dict], depths: list[int], numbers: dict[str, int] | None = None) -> list[str]:
    """Markdown rows for the runs of ``runs`` (one precision, any seeds) that were trained with at least two seeds on
    one machine: one row per machine and run (:func:`run_key`) with its seeds, the best probe and the unsupervised
    time as mean ± std, and the gaps of those means to the mean of the same machine's rate runs (over its seeds).
    ``[]`` when no run has two seeds on one machine."""
    number = numbers or machine_numbers(runs)
    groups: dict[tuple, dict[int, dict]] = {}
    for r in runs:  # the last record of a seed counts, as in the other tables
        groups.setdefault((machine_name(r), run_key(r)), {})[seed_of(r)] = r
    rows = sorted(((where, key, by_seed) for (where, key), by_seed in groups.items() if len(by_seed) >= 2),
                  key=lambda g: (g[1][0] != "rate", g[1][1], neuron_variant(next(iter(g[2].values()))),
                                 current_variant(next(iter(g[2].values()))), g[1][2], g[0]))
    if not rows:
        return []
    rate_key = run_key({"mode": "rate", "neuron": "rate", "time_steps": 1})
    lines = ["| mode | neuron | neuron parameters | current | T | machine | seeds | best probe | vs rate (points) "
             "| unsup. time (s) | vs rate time |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for where, key, by_seed in rows:
        r = next(iter(by_seed.values()))
        acc = mean_std([best_probe(x, depths) for x in by_seed.values()])
        secs = mean_std([x["unsup_seconds"] for x in by_seed.values()])
        rate = groups.get((where, rate_key)) if key != rate_key else None
        vs_acc = vs_time = ""
        if rate:
            rate_acc = mean_std([best_probe(x, depths) for x in rate.values()])[0]
            rate_secs = mean_std([x["unsup_seconds"] for x in rate.values()])[0]
            over = "" if set(rate) == set(by_seed) else f" (rate seeds {', '.join(map(str, sorted(rate)))})"
            vs_acc, vs_time = f"{acc[0] - rate_acc:+.2f}{over}", f"{secs[0] / max(rate_secs, 1e-9):.2f}x"
        lines.append(f"| {r['mode']} | {r['neuron']} | {neuron_variant(r)} | {current_variant(r)} | {r['time_steps']} "
                     f"| {number[where]} | {', '.join(map(str, sorted(by_seed)))} | {acc[0]:.2f} ± {acc[1]:.2f} "
                     f"| {vs_acc} | {secs[0]:.1f} ± {secs[1]:.1f} | {vs_time} |")
    return lines


def precision_table(runs: list[dict], depths: list[int], numbers: dict[str, int] | None = None) -> list[str]:
    """The markdown table rows of runs of one precision, rate first (one per machine), each spiking run compared
    with the rate run of its machine (:func:`rate_run_for`); machines are numbered by ``numbers`` (default:
    :func:`machine_numbers` of ``runs``)."""
    order = sorted(runs, key=lambda r: (r["mode"] != "rate", r["neuron"], neuron_variant(r), current_variant(r),
                                        r["time_steps"], machine_name(r)))
    number = numbers or machine_numbers(runs)
    readouts = any(has_rate_readout(r, depths) for r in order)  # the column only where some run has one
    lines = ["| mode | neuron | neuron parameters | current | T | " + " | ".join(f"layer {d} probe (k-NN)" for d in depths)
             + " | best probe | vs rate (points) | "
             + ("its weights read out in rate mode: best probe (vs rate) | " if readouts else "")
             + "machine | unsup. time (s) | vs rate time | firing rate per layer | silent % | saturated % |",
             "|---|---|---|---|---|" + "---|" * len(depths) + "---|---|" + "---|" * readouts + "---|---|---|---|---|---|"]
    for r in order:
        rate = None if r["mode"] == "rate" else rate_run_for(r, order)
        by_depth = {layer["layer"]: layer for layer in r["layers"]}
        cells = [f"{by_depth[d]['probe_top1']:.2f} ({by_depth[d]['knn_top1']:.2f})" for d in depths]
        best = best_probe(r, depths)
        vs_acc = f"{best - best_probe(rate, depths):+.2f}" if rate and r is not rate else ""
        vs_time = ("" if not rate or r is rate else "other machine" if not same_machine(r, rate) else
                   f"{r['unsup_seconds'] / max(rate['unsup_seconds'], 1e-9):.2f}x")
        activity = [per_layer_activity(r, key, scale, spec) for key, scale, spec in
                    (("firing_rate_mean", 1, ".3f"), ("silent_fraction", 100, ".0f"), ("saturated_fraction", 100, ".0f"))]
        readout = ""
        if has_rate_readout(r, depths):
            rate_read = max(layer["probe_top1"] for layer in r["rate_readout"]["layers"] if layer["layer"] in depths)
            # compared with the rate run of the machine that computed it (older read-outs: the run's machine)
            read_rate = rate_run_for(r["rate_readout"] if "device" in r["rate_readout"] else r, order)
            readout = f"{rate_read:.2f}" + (f" ({rate_read - best_probe(read_rate, depths):+.2f})" if read_rate else "")
        lines.append(f"| {r['mode']} | {r['neuron']} | {neuron_variant(r)} | {current_variant(r)} | {r['time_steps']} | " + " | ".join(cells)
                     + f" | {best:.2f} | {vs_acc} | " + (f"{readout} | " if readouts else "")
                     + f"{number[machine_name(r)]} | {r['unsup_seconds']:.1f} | {vs_time} | " + " | ".join(activity) + " |")
    return lines


def grid_table(runs: list[dict], depths: list[int], numbers: dict[str, int] | None = None) -> list[str]:
    """The spiking runs of one precision against ``T``, as markdown table rows: one row per backend, neuron and
    current (:func:`neuron_variant`, :func:`current_variant`), one column per ``T`` measured. A cell reads
    ``70.03 (-1.38, 1.69x, machine 1)``: the best probe, its gap to the rate run of its machine
    (:func:`rate_run_for`; "other machine" in place of the time ratio where that machine has none) and the
    machine's number (``numbers``, default :func:`machine_numbers`); runs of one cell on several machines are joined
    by "; ", and a ``T`` not run is ``-``."""
    number = numbers or machine_numbers(runs)
    spiking = [r for r in runs if r["mode"] == "spiking"]
    steps = sorted({r["time_steps"] for r in spiking})
    rows: dict[tuple, dict[int, list[str]]] = {}
    for r in sorted(spiking, key=lambda r: (r["neuron"], neuron_variant(r), current_variant(r), machine_name(r))):
        rate = rate_run_for(r, runs)
        best = best_probe(r, depths)
        gap = "no rate run" if rate is None else f"{best - best_probe(rate, depths):+.2f}"
        ratio = ("" if rate is None else "other machine" if not same_machine(r, rate) else
                 f"{r['unsup_seconds'] / max(rate['unsup_seconds'], 1e-9):.2f}x")
        cell = f"{best:.2f} ({', '.join(filter(None, (gap, ratio)))}, machine {number[machine_name(r)]})"
        rows.setdefault((r["neuron"], neuron_variant(r), current_variant(r)), {}).setdefault(
            r["time_steps"], []).append(cell)
    lines = ["| neuron | neuron parameters | current | " + " | ".join(f"T = {t}" for t in steps) + " |",
             "|---|---|---|" + "---|" * len(steps)]
    for (neuron, variant, current), cells in rows.items():
        lines.append(f"| {neuron} | {variant} | {current} | "
                     + " | ".join("; ".join(cells.get(t, [])) or "-" for t in steps) + " |")
    return lines


# The machines this benchmark's published tables (and the README's prose) have numbered, in their numbers, so that a
# machine added later does not renumber them.
NUMBERED_MACHINES = ("cpu (AMD EPYC, avx2, 2 cores), 2 threads", "cpu (AMD EPYC, avx512_bf16, 2 cores), 2 threads",
                     "cpu (CPU not recorded), 2 threads",
                     "cpu (Intel(R) Xeon(R) Processor, avx512_bf16, 2 cores), 2 threads")


def machine_numbers(runs: list[dict]) -> dict[str, int]:
    """Each machine of ``runs`` (:func:`machine_name`) numbered from 1 for the tables' machine column and the line that
    names them: those of :data:`NUMBERED_MACHINES` first, in that order, then the others in sorted order. Over the
    benchmark's results (which hold every published machine) the published numbers stay what they were when a
    machine is added."""
    names = {machine_name(r) for r in runs}
    ordered = [name for name in NUMBERED_MACHINES if name in names] + sorted(names - set(NUMBERED_MACHINES))
    return {name: i for i, name in enumerate(ordered, start=1)}


def _words(text: str) -> list[str]:
    """``text``'s comma-separated words, commas inside parentheses kept: ``"a (b, c), d"`` -> ``["a (b, c)", "d"]``."""
    return [w for w in re.split(r",\s*(?![^()]*\))", text) if w]


def curve_labels(curves: list[list[str]]) -> tuple[list[str], list[str]]:
    """Short legend labels for curves described by word lists: ``(each curve's words minus those every curve
    shares, joined by ", "; the shared words, in the first curve's order)``. A single curve shares nothing and
    keeps all its words; a curve left with no words of its own is labelled by all of them."""
    shared = set.intersection(*map(set, curves)) if len(curves) > 1 else set()
    labels = [", ".join(w for w in words if w not in shared) or ", ".join(words) for words in curves]
    return labels, [w for w in (curves[0] if curves else []) if w in shared]


def plot_rate_vs_spiking(runs: list[dict], depths: list[int], path: Path, title: str = "",
                         numbers: dict[str, int] | None = None) -> None:
    """Best probed-layer top-1 (%) and unsupervised time (s) against ``T``: a line per backend, neuron, neuron
    current and precision (colour and marker), rate mode as black horizontal lines, one legend under both panels.
    Words every spiking line shares go to the subtitle, so labels name only what tells the lines apart. Times
    join into a line only within one machine (:func:`machine_name`): with several machines the time panel draws
    each machine in its own line style, keyed in the legend, and each rate run says its machine, by the tables'
    numbers (``numbers``, default :func:`machine_numbers` of ``runs``)."""
    from matplotlib.lines import Line2D

    from liouna_snn.plots import line_style, plt

    spiking = [r for r in runs if r["mode"] == "spiking"]
    rate = [r for r in runs if r["mode"] == "rate"]
    numbers = numbers or machine_numbers(runs)
    machines = sorted({machine_name(r) for r in runs}, key=numbers.get)  # times join into a line within one machine
    styles = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))

    def curve(r):
        return r["neuron"], neuron_variant(r), current_variant(r), precision_of(r)

    keys = sorted({curve(r) for r in spiking})
    labels, shared = curve_labels([[neuron, *_words(params), *_words(variant), precision]
                                   for neuron, params, variant, precision in keys])
    fig, (acc_ax, time_ax) = plt.subplots(1, 2, figsize=(13, 4.2))
    handles = []
    for i, (key, label) in enumerate(zip(keys, labels)):
        # matched backends can coincide: shrinking markers keep each visible
        style = dict(line_style(i), markersize=9 - (i % 5))
        rs = sorted((r for r in spiking if curve(r) == key), key=lambda r: r["time_steps"])
        acc_ax.plot([r["time_steps"] for r in rs], [best_probe(r, depths) for r in rs], "-", **style)
        for m, where in enumerate(machines):
            timed = [r for r in rs if machine_name(r) == where]
            if timed:
                time_ax.plot([r["time_steps"] for r in timed], [r["unsup_seconds"] for r in timed],
                             linestyle=styles[m % len(styles)], **style)
        handles.append(Line2D([], [], linestyle="-", label=label, **style))
    precisions = sorted({precision_of(r) for r in rate})
    for r in rate:
        m = machines.index(machine_name(r))
        style = dict(color=("k", "0.45", "0.7")[precisions.index(precision_of(r)) % 3], linewidth=1.2,
                     linestyle=styles[m % len(styles)])
        acc_ax.axhline(best_probe(r, depths), **style)
        time_ax.axhline(r["unsup_seconds"], **style)
        handles.append(Line2D([], [], label=f"rate mode, {precision_of(r)}"
                              + (f" [machine {numbers[machine_name(r)]}]" if len(machines) > 1 else ""), **style))
    if len(machines) > 1:
        handles += [Line2D([], [], color="0.3", linestyle=styles[m % len(styles)],
                           label=f"machine {numbers[where]}: {where}")
                    for m, where in enumerate(machines)]
    all_steps = sorted({r["time_steps"] for r in spiking})
    which = f"layer {depths[0]}" if len(depths) == 1 else f"best of layers {', '.join(map(str, depths))}"
    for ax, ylabel in ((acc_ax, f"linear probe top-1 (%), {which}"),
                       (time_ax, "unsupervised training time (s)" + (", line style: machine"
                                                                     if len(machines) > 1 else ""))):
        ax.set_xscale("log", base=2)
        if all_steps:
            ax.set_xticks(all_steps, [str(t) for t in all_steps])
        ax.set_xlabel("time steps T")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle(title + (f"\nevery spiking line: {', '.join(shared)}" if shared else ""), fontsize=9)
    fig.tight_layout()
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=7, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # "tight" grows the canvas to hold the legend below
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    return script_main("rate_vs_spiking", __doc__.split("\n\n")[0], add_arguments, run_benchmark, argv)


if __name__ == "__main__":
    sys.exit(main())
