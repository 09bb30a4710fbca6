"""Experiments: a TOML file names a model spec, data, rules, a schedule and evaluations.

::

    name = "quickstart"
    model = "cifar10_3layer"            # models/<model>.toml, or a path
    depth = 3                           # optional: only the first `depth` layers of the model

    [data]
    dataset = "cifar10-mini"            # see liouna_snn.data.DATASETS
    root = "data"                       # folder holding the standard layout (not for cifar10-mini)

    [unsupervised]                      # liouna_snn.training.TrainConfig + precision
    schedule = "greedy"
    batch_size = 10
    precision = "auto"                  # "bf16": bf16 convolutions, float32 master weights; "fp32"; "auto":
                                        # bf16 where the device computes it natively (liouna_snn.precision)

    [probe]
    epochs = 50

    [[runs]]
    rule = "softhebb"                   # a preset of liouna_snn.rules.PRESETS
    seeds = [0]
    options = { lr = [0.08, 0.005, 0.01], inverse_temperature = [1.0, 0.65, 0.25] }   # scalar or per layer

    [spiking]                           # optional: every run in spiking mode, unless it sets spiking = false
    neuron = "native-lif"               # liouna_snn.neurons.SPIKING_NEURONS
    neuron_params = { beta = 0.9, threshold = 1.0 }
    time_steps = 4
    encoder = "constant-current"        # or "bernoulli" / "poisson": then the data is not standardised
    plasticity = "rate"                 # or "online" (traces, with trace_decay)
    lateral_inhibition = "none"         # or "mean": the neurons' current is u - mean_k u (triangle competition)
    current_norm = "none"               # or "std": the current divided by its standard deviation (threshold in std)
    initial_membrane = "rest"           # or "uniform": membranes start uniformly below threshold for every input;
                                        # "half": midway to threshold (spike counts rounded, not floored)
    inference_initial_membrane = "half" # optional: another start for the forward pass (features) than for learning

A greedy run takes the leading layers it shares, already trained, from another run's checkpoint: of this
experiment, and of the experiments named by the top-level ``reuse_from = ["cifar10_local_rules"]`` (their
checkpoint folders beside this one's). "Shares" is checked, not assumed: the same layers, rules, seed, data
and training options (:func:`liouna_snn.training.reusable_layers`); rate mode, single process (not under
``--parallel``).

A run may carry its own ``spiking = { ... }`` table: its keys override the top-level ``[spiking]`` for that
run alone (``neuron_params`` and ``encoder_params`` entry by entry; without a top-level table, it puts just
that run in spiking mode), and ``spiking = false`` keeps a run in rate mode; so one experiment can compare
rate and spiking variants of a network. Labels must be distinct across runs.

:func:`run_experiment` trains every run, probes every layer, and writes
``<results>/<name>.json`` (the project's results schema) plus plots. A run in spiking mode records
``"mode": "spiking"``, the neuron, ``time_steps`` and its whole ``spiking`` config, and each layer's
firing report (``activity``) among its diagnostics. One run of it (build, train, probe, its results
entry) is :func:`train_and_probe_run`, for drivers that vary a run's settings (e.g. its ``SpikingConfig``).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from .data import load_dataset
from .evaluation import PROBE_DEFAULTS, probe_augment, probe_depths, probe_layers
from .config import read_toml, reject_unknown, require
from .network import build_network, load_spec
from .precision import PRECISIONS, resolve_precision
from .provenance import git_commit, machine
from .precision import compute_dtype as dtype_of
from .rules import RuleConfig, rule_config
from .spiking import SpikingConfig, spiking_config
from .training import TrainConfig, donor_name, train_unsupervised, write_atomic
from .training.checkpoint import checkpoint_precision

TOP_KEYS = {"name", "description", "model", "depth", "data", "unsupervised", "probe", "runs", "device", "spiking",
            "reuse_from"}
DATA_KEYS = {"dataset", "root", "download", "train_subset", "test_subset", "image_size"}
UNSUP_KEYS = {f.name for f in dataclasses.fields(TrainConfig)} | {"precision"}
PROBE_KEYS = set(PROBE_DEFAULTS) | {"layers"}
RUN_KEYS = {"rule", "seeds", "options", "label", "spiking"}


def check_probe(probe: dict, where: str) -> None:
    """Reject unknown ``[probe]`` keys and an unknown ``augment`` name, naming ``where`` and what is allowed."""
    reject_unknown(probe, PROBE_KEYS, where)
    if "augment" in probe:
        try:
            probe_augment(probe["augment"])
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None


def load_experiment(path: str | Path) -> dict:
    """Read an experiment TOML and validate every section's keys."""
    path = Path(path)
    exp = read_toml(path, "experiment file")
    where = str(path)
    reject_unknown(exp, TOP_KEYS, where)
    require(exp, ("model", "data", "runs"), where)
    reject_unknown(exp["data"], DATA_KEYS, where + " [data]")
    reject_unknown(exp.get("unsupervised", {}), UNSUP_KEYS, where + " [unsupervised]")
    check_probe(exp.get("probe", {}), where + " [probe]")
    if exp.get("unsupervised", {}).get("precision", "auto") not in PRECISIONS:
        raise ValueError(f"{where} [unsupervised]: precision must be one of {', '.join(PRECISIONS)}")
    if "spiking" in exp:
        spiking_config(exp["spiking"], where + " [spiking]")  # unknown keys and bad values raise here
    check_reuse_from(exp.get("reuse_from", []), exp.get("name", path.stem), where)
    labels: dict[str, int] = {}
    for i, run in enumerate(exp["runs"], start=1):
        reject_unknown(run, RUN_KEYS, f"{where} [[runs]] #{i}")
        require(run, ("rule",), f"{where} [[runs]] #{i}")
        run_spiking(exp, run, f"{where} [[runs]] #{i}")
        if "seeds" in run:
            check_seeds(run["seeds"], f"{where} [[runs]] #{i}")
        label = run.get("label", run["rule"])
        if (not isinstance(label, str) or not label or label.startswith(".") or label.endswith("_spiking")
                or any(c in label for c in '/\\:*?"<>|')):
            raise ValueError(f"{where} [[runs]] #{i}: label {label!r} names files (checkpoints, plots): use a non-empty "
                             f"string without / \\ : * ? \" < > |, not starting with '.' nor ending in '_spiking'")
        if label in labels:  # results, checkpoints and exports find a run by its label
            raise ValueError(f"{where} [[runs]] #{i}: label {label!r} is also run #{labels[label]}'s (a run's label is "
                             f"its `label`, else its `rule`); give each run a distinct label = \"...\"")
        labels[label] = i
    exp.setdefault("name", path.stem)
    exp["_path"] = str(path.resolve())
    return exp


def run_spiking(exp: dict, run: dict, where: str = "[[runs]]") -> SpikingConfig | None:
    """The :class:`SpikingConfig` of one ``[[runs]]`` entry (``None``: rate mode).

    The top-level ``[spiking]`` table, updated key by key by the run's own ``spiking`` table (its
    ``neuron_params`` and ``encoder_params`` entry by entry); ``spiking = false`` in the run means rate mode.
    Unknown keys and bad values raise a ``ValueError`` naming ``where``.
    """
    if "spiking" not in run:
        return spiking_config(exp["spiking"], f"{where} [spiking]") if "spiking" in exp else None
    own = run["spiking"]
    if own is False:
        return None
    if not isinstance(own, dict):
        raise ValueError(f"{where}: spiking must be a table of spiking options (overriding [spiking]) or false "
                         f"(rate mode), got {own!r}")
    top = exp.get("spiking", {})
    merged = {**top, **own}
    for table in ("neuron_params", "encoder_params"):  # a run's neuron_params = {threshold = 4} keeps the top's beta
        if isinstance(top.get(table), dict) and isinstance(own.get(table), dict):
            merged[table] = {**top[table], **own[table]}
    return spiking_config(merged, f"{where} spiking")


def kept_runs(previous: dict) -> list[dict]:
    """The runs of an earlier results file, each with the ``command``, ``git_commit`` and ``precision`` it ran
    under (files written before runs recorded them carry them only at the top level, which a partial rerun
    rewrites)."""
    inherited = {"command": previous.get("command"), "git_commit": previous.get("git_commit"),
                 "precision": previous.get("unsupervised", {}).get("precision")}
    return [{**{k: v for k, v in inherited.items() if v is not None}, **run} for run in previous.get("runs", [])]


def earlier_records(path: Path, *, partial: bool, same, may_move: bool = True) -> list[dict]:
    """The records of an earlier results file at ``path`` that a new invocation keeps (:func:`kept_runs`): all of
    them for a ``partial`` rerun or where ``same(file contents)`` says the file is of the same data; otherwise
    none, and the file is moved aside to ``<stem>.<date-time>.json`` (said on stderr; only if ``may_move``), so
    nothing is lost and nothing is mixed. No file: no records."""
    if not path.is_file():
        return []
    earlier = json.loads(path.read_text())
    if partial or same(earlier):
        return kept_runs(earlier)
    if may_move:
        aside = path.with_name(f"{path.stem}.{time.strftime('%Y%m%d-%H%M%S')}.json")
        path.replace(aside)
        print(f"{path} held runs on other data ({earlier.get('train_images')} / {earlier.get('test_images')} "
              f"images, image size {earlier.get('image_size', '-')}): moved to {aside}", file=sys.stderr, flush=True)
    return []


def same_data(previous: dict, dataset: str, train_images: int, test_images: int) -> bool:
    """Whether an earlier results file's runs were trained and probed on this dataset with these image counts
    (so a new run's records can sit beside them)."""
    return (previous.get("train_images") == train_images and previous.get("test_images") == test_images
            and all(r.get("dataset", dataset) == dataset for r in previous.get("runs", [])))


def check_seeds(seeds, where: str) -> None:
    """Raise a ``ValueError`` unless ``seeds`` is ``None`` or a non-empty list of distinct non-negative integers."""
    if seeds is None:
        return
    if (not isinstance(seeds, (list, tuple)) or not seeds or len(set(seeds)) != len(seeds)
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in seeds)):
        raise ValueError(f"{where}: seeds must be distinct non-negative integers, e.g. [0, 1, 2], got {seeds!r}")


def checkpoint_path(experiment: dict, label: str, seed: int, checkpoint_dir: str | Path | None = None,
                    precision: str | None = None) -> Path:
    """Where ``liouna-snn run`` writes the checkpoint of run ``label``, seed ``seed``: ``<label>_seed<s>.pt``
    (``<label>_spiking_seed<s>.pt`` for a run in spiking mode). When that file holds a network trained in another
    compute ``precision`` (``"bf16"``, ``"fp32"``), ``<label>_seed<s>_<precision>.pt``, so a bf16 and an fp32 run of
    one label and seed each keep their own; ``precision=None`` gives the first name. Raises a ``ValueError`` for an
    unknown label."""
    folder = Path(checkpoint_dir) if checkpoint_dir else Path(experiment["_path"]).parent / "checkpoints" / experiment["name"]
    spiking = run_spiking(experiment, find_run(experiment, label)) is not None
    return of_precision(folder / (f"{label}_spiking_seed{seed}.pt" if spiking else f"{label}_seed{seed}.pt"), precision)


def of_precision(first: Path, precision: str | None) -> Path:
    """The checkpoint ``first`` or, where that file holds a network trained in another compute ``precision``
    (``"bf16"``, ``"fp32"``), ``<stem>_<precision>.pt`` beside it; ``precision=None``: ``first``."""
    if precision is None or checkpoint_precision(first) in (None, precision):
        return first
    return first.with_name(f"{first.stem}_{precision}.pt")


def find_run(exp: dict, label: str) -> dict:
    """The ``[[runs]]`` entry of experiment ``exp`` labelled ``label`` (its ``label``, else its ``rule``)."""
    labels = [run.get("label", run["rule"]) for run in exp["runs"]]
    if label not in labels:
        raise ValueError(f"{exp['_path']} has no run labelled {label!r}; its runs: {', '.join(map(repr, labels))} "
                         f"(a run's label is its `label`, else its `rule`)")
    return exp["runs"][labels.index(label)]


def select_runs(runs: list[dict], only: list[str] | None) -> list[dict]:
    """The ``[[runs]]`` entries named in ``only`` (labels or rule names), in the order of ``only``; all of
    ``runs`` in file order when ``only`` is empty. A name that is some run's label selects that run alone (``liouna``
    is the run labelled ``liouna``, not every run of rule ``liouna``); any other name selects every run of that rule.
    A name that matches no run is an error listing the names."""
    if not only:
        return list(runs)
    labels = [run.get("label", run["rule"]) for run in runs]
    rules = sorted({run["rule"] for run in runs})
    unknown = [name for name in only if name not in labels and name not in rules]
    if unknown:
        raise ValueError(f"--rules {', '.join(unknown)}: no run of this experiment has that rule or label; "
                         f"its labels: {', '.join(labels)}; its rules: {', '.join(rules)}")
    chosen = []
    for name in only:
        key = (lambda run: run.get("label", run["rule"])) if name in labels else (lambda run: run["rule"])
        chosen += [run for run in runs if key(run) == name and not any(run is c for c in chosen)]
    return chosen


def check_reuse_from(reuse, own_name: str, where: str) -> None:
    """Raise a ``ValueError`` unless ``reuse`` (an experiment's ``reuse_from``) is a list of distinct names of
    other experiments: plain folder names (no path separators, no leading '.'), not ``own_name``."""
    if not (isinstance(reuse, list) and len(set(map(str, reuse))) == len(reuse) and all(
            isinstance(n, str) and n and not n.startswith(".") and "/" not in n and "\\" not in n
            and n != own_name for n in reuse)):
        raise ValueError(f"{where}: reuse_from must be a list of distinct names of other experiments (their "
                         f"checkpoint folders beside this one's, e.g. [\"cifar10_local_rules\"]), got {reuse!r}")


def reuse_dirs(exp: dict, checkpoint_dir: Path) -> list[Path]:
    """The checkpoint folders of the experiments named by ``reuse_from``: beside ``checkpoint_dir``. A folder
    that does not exist (yet) is skipped with a warning on stderr: its layers will be trained here."""
    folders = []
    for other in exp.get("reuse_from", []):
        folder = checkpoint_dir.resolve().parent / other
        if folder.is_dir():
            folders.append(folder)
        else:
            print(f"warning: reuse_from {other!r}: no checkpoint folder {folder}; its layers cannot be taken, "
                  f"every layer is trained here", file=sys.stderr, flush=True)
    return folders


def resolve_model(model: str, experiment_path: str | Path) -> Path:
    """A model spec path: as given, else ``models/<model>.toml`` beside the experiment's folder or the cwd."""
    candidates = [Path(model)]
    name = model if model.endswith(".toml") else model + ".toml"
    exp_dir = Path(experiment_path).resolve().parent
    candidates += [exp_dir.parent / "models" / name, exp_dir / "models" / name, Path.cwd() / "models" / name]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"model spec {model!r} not found; looked at: {', '.join(str(c) for c in candidates)}")


def per_layer_rules(rule: str, options: dict, n_layers: int) -> list[RuleConfig]:
    """One :class:`RuleConfig` per layer; an option given as a list sets each layer's value."""
    configs = []
    for i in range(n_layers):
        layer_opts = {}
        for key, value in options.items():
            if isinstance(value, list):
                if len(value) != n_layers:
                    raise ValueError(f"rule option {key!r} lists {len(value)} values for {n_layers} layers")
                value = value[i]
            layer_opts[key] = value
        configs.append(rule_config(rule, **layer_opts))
    return configs


def write_json_atomic(obj, path: Path) -> None:
    write_atomic(path, lambda f: f.write(json.dumps(obj, indent=2).encode()))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def experiment_data(data_cfg: dict, device: torch.device, *, root: str | Path | None = None,
                    dataset: str | None = None, train_subset: int | None = None, test_subset: int | None = None,
                    download: bool = False):
    """An experiment's ``[data]``: ``(train, test, mean, std)`` on ``device``.

    ``train`` / ``test`` are :class:`liouna_snn.data.ImageTensors` (the first ``train_subset`` /
    ``test_subset`` images when set), ``mean`` / ``std`` the per-channel statistics of ``train`` (in [0, 1]
    pixel units). The keyword arguments override the table's ``root``, ``dataset`` and subsets (``None``:
    the table's); ``download`` or the table's ``download`` lets torchvision fetch a missing dataset.
    """
    kw = dict(download=download or data_cfg.get("download", False))
    if data_cfg.get("image_size"):
        kw["image_size"] = data_cfg["image_size"]
    name, root = dataset or data_cfg["dataset"], root or data_cfg.get("root")
    train = load_dataset(name, root, "train", **kw)
    test = load_dataset(name, root, "test", **kw)
    train_subset = train_subset or data_cfg.get("train_subset")
    test_subset = test_subset or data_cfg.get("test_subset")
    if train_subset:
        train = train.subset(train_subset)
    if test_subset:
        test = test.subset(test_subset)
    train, test = train.to(device), test.to(device)
    mean, std = (t.to(device) for t in train.channel_stats())
    return train, test, mean, std


def script_main(prog: str, description: str, add_arguments, run, argv: list[str] | None = None) -> int:
    """The ``main()`` of a benchmark script under ``experiments/``.

    Parses ``argv`` (default ``sys.argv[1:]``) with the options ``add_arguments(parser)`` declares, calls
    ``run(args, command) -> (results, markdown_table)`` with the command line as the results will record it,
    prints the table and the three files written at ``args.out`` (``.json``, ``.md``, ``.png``); returns 0.
    A ``FileNotFoundError`` or ``ValueError`` (bad configuration, missing data or checkpoint) becomes one
    line ``<prog>: error: ...`` on stderr and exit status 2.
    """
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    command = " ".join(["python", f"experiments/{prog}.py", *argv])
    try:
        _, table = run(args, command)
    except (FileNotFoundError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print(f"\n{table}\n")
    print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    return 0


def run_experiment(path: str | Path, *, data_root: str | None = None, device: str = "auto",
                   results_dir: str | Path | None = None, checkpoint_dir: str | Path | None = None,
                   download: bool = False, progress: bool = True, only_rules: list[str] | None = None,
                   seeds: list[int] | None = None, parallel: dict | None = None,
                   precision: str | None = None, compile_layers: bool = False) -> dict:
    """Run every ``[[runs]]`` entry of an experiment; write the results JSON and plots; return the results.

    ``only_rules``: only the runs with these labels or rule names, in that order; ``seeds``: only these seeds of
    each run, in place of the runs' own ``seeds``; ``precision`` (``"auto"``, ``"bf16"``, ``"fp32"``): in place of
    the experiment's ``[unsupervised] precision``, e.g. fp32 on a bf16-capable machine to add seeds to fp32 runs;
    ``compile_layers``: rate-mode layers learn and infer through ``torch.compile``
    (:meth:`LocalNetwork.compile_layers`; the records say ``compiled_layers``).

    An existing results file keeps its records: each run replaces only the record of its own label, seed and
    compute precision. If that file holds runs on other data (dataset or image counts) and the whole experiment
    runs, it is first moved aside to ``<name>.<date-time>.json``.

    ``parallel``: train on the ``torch.distributed`` processes (under ``torchrun``) with these keyword
    arguments of :func:`liouna_snn.training.distributed.train_parallel` (``mode``, ``stages``,
    ``layers_per_stage``, ``timeout_s``); only rank 0 probes and writes results.
    """
    from .plots import plot_filters, plot_layer_accuracy  # matplotlib only when plotting

    exp = load_experiment(path)
    name = exp["name"]
    selected = select_runs(exp["runs"], only_rules)  # before any data loads: a wrong name fails at once
    check_seeds(seeds, "--seeds")
    dev = resolve_device(exp.get("device", device) if device == "auto" else device)
    if parallel:
        from .training.distributed import is_main_process, rank_device
        dev = rank_device(dev)
    spec = load_spec(resolve_model(exp["model"], exp["_path"]))
    if exp.get("depth"):  # train and probe only the first `depth` layers of the spec
        if not 1 <= exp["depth"] <= len(spec["layers"]):
            raise ValueError(f"depth = {exp['depth']} but the model has {len(spec['layers'])} layers")
        spec = {**spec, "layers": spec["layers"][:exp["depth"]]}
    # before any data loads or training starts: a bad depth fails at once
    probe_depths(exp.get("probe", {}).get("layers", "all"), len(spec["layers"]), f"{exp['_path']} [probe] layers")
    data_cfg = exp["data"]
    train, test, mean, std = experiment_data(data_cfg, dev, root=data_root, download=download)

    unsup = dict(exp.get("unsupervised", {}))
    configured = unsup.pop("precision", "auto")  # (popped in any case: TrainConfig does not take it)
    precision = resolve_precision(precision or configured, dev)
    compute_dtype = dtype_of(precision, dev)
    train_cfg = TrainConfig(**unsup)
    probe_cfg = {**PROBE_DEFAULTS, "layers": "all", **exp.get("probe", {})}
    results_dir = Path(results_dir) if results_dir else Path(exp["_path"]).parent / "results"
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else Path(exp["_path"]).parent / "checkpoints" / name

    results = {"experiment": name, "command": " ".join(["liouna-snn"] + sys.argv[1:]) if sys.argv else None,
               "git_commit": git_commit(), "torch": torch.__version__, **machine(dev),
               "model": spec.get("name"), "train_images": len(train), "test_images": len(test),
               "unsupervised": {**dataclasses.asdict(train_cfg), "precision": precision},
               "probe": probe_cfg, "runs": []}
    # each run below replaces its own record; the others stay
    results["runs"] = earlier_records(
        results_dir / f"{name}.json", partial=bool(only_rules or seeds), may_move=not parallel or is_main_process(),
        same=lambda earlier: same_data(earlier, data_cfg["dataset"], len(train), len(test)))
    n_layers = len(spec["layers"])
    donor_dirs = [checkpoint_dir] + reuse_dirs(exp, checkpoint_dir)
    for run in selected:
        rules = per_layer_rules(run["rule"], run.get("options", {}), n_layers)
        label = run.get("label", run["rule"])
        spiking = run_spiking(exp, run)
        # Spike encoders need pixels in [0, 1] (P(spike) = x); each layer's batch-norm normalises after encoding.
        standardise = spiking is None or not spiking.encodes_spikes
        for seed in seeds or run.get("seeds", [0]):
            ckpt = checkpoint_path(exp, label, seed, checkpoint_dir, precision)
            # a greedy run takes the leading layers it shares with another run (of this or a reuse_from experiment)
            donors = [p for folder in donor_dirs for pattern in (f"*_seed{seed}.pt", f"*_seed{seed}_*.pt")
                      for p in sorted(folder.glob(pattern)) if p != ckpt]
            net, record = train_and_probe_run(
                spec, run["rule"], rules, label=label, seed=seed, dataset=data_cfg["dataset"], train=train,
                test=test, mean=mean if standardise else None, std=std if standardise else None,
                train_cfg=train_cfg, compute_dtype=compute_dtype, probe_cfg=probe_cfg,
                spiking=spiking, device=dev, checkpoint=ckpt, donors=donors, progress=progress,
                parallel=parallel, command=results["command"], git_commit=results["git_commit"],
                compile_layers=compile_layers)
            if record is None:
                continue  # not rank 0: rank 0 holds the whole trained network and evaluates it
            # a run of another compute precision stays beside this one (seeds are compared within one precision)
            results["runs"] = [r for r in results["runs"] if (r["label"], r["seed"], r.get("precision")) !=
                               (label, seed, record["precision"])]
            results["runs"].append(record)
            other_precision = "" if ckpt.name.endswith(f"seed{seed}.pt") else f"_{precision}"  # (as its checkpoint)
            plot_filters(net.layers[0].weight, results_dir / f"{name}_filters_{label}_seed{seed}{other_precision}.png",
                         title=f"{name}: layer-1 filters, {label}, seed {seed}")
            write_json_atomic(results, results_dir / f"{name}.json")
    if parallel and not is_main_process():
        return results
    plot_layer_accuracy(results, results_dir / f"{name}_layers.png")
    write_json_atomic(results, results_dir / f"{name}.json")
    return results


def train_and_probe_run(spec: dict, rule: str, rules: list[RuleConfig], *, label: str, seed: int, dataset: str,
                        train, test, mean: torch.Tensor | None, std: torch.Tensor | None, train_cfg: TrainConfig,
                        compute_dtype: torch.dtype | None, probe_cfg: dict, spiking=None, device=torch.device("cpu"),
                        checkpoint: str | Path | None = None, donors: list[Path] = (), progress: bool = True,
                        parallel: dict | None = None, command: str | None = None, git_commit: str | None = None,
                        compile_neurons: bool = False, compile_layers: bool = False):
    """One run of an experiment: build the network, train it without labels, probe its layers.

    The network is ``spec`` with one ``rules`` config per layer, in rate mode or, with ``spiking`` (a
    :class:`liouna_snn.spiking.SpikingConfig`), in spiking mode; weights seeded with ``seed``. Training
    follows ``train_cfg`` (its ``seed`` replaced by ``seed``), resumes from ``checkpoint`` and, greedy, takes the
    leading layers it shares with one of the ``donors`` checkpoints already trained; ``train`` /
    ``test`` are :class:`liouna_snn.data.ImageTensors` on ``device``, standardised per batch with ``mean`` /
    ``std`` (``None``: not at all). The layers of ``probe_cfg["layers"]`` (``"all"`` or 1-based depths) are
    probed with the other ``probe_cfg`` options (:func:`liouna_snn.evaluation.probe_layers`).

    Returns ``(network, record)``: ``record`` is the run's entry of the results schema (``label``,
    ``dataset``, ``rule``, ``mode``, ``neuron``, ``time_steps``, ``seed``, ``unsup_seconds`` (s of
    unsupervised training), ``unsup_images_per_second``, ``probe_seconds`` (s), ``layers`` with each
    probed layer's accuracies (%) and diagnostics, spiking activity included, ``reused_layers`` when layers
    came from a donor, ``compiled_neurons`` when ``compile_neurons`` ran the neuron steps through
    ``torch.compile`` (:meth:`LocalNetwork.compile_neurons`), ``compiled_layers`` when ``compile_layers`` ran the rate
    layers' steps through it (:meth:`LocalNetwork.compile_layers`), ...). Under ``parallel``
    (see :func:`run_experiment`) the ranks other than 0 get ``record = None``.
    """
    torch.manual_seed(seed)
    net = build_network(spec, rules, seed=seed, compute_dtype=compute_dtype, spiking=spiking)
    if compile_neurons:
        net.compile_neurons()
    if compile_layers:
        net.compile_layers()
    cfg = dataclasses.replace(train_cfg, seed=seed)
    donor = None  # the checkpoint that lent trained layers, as the record names it
    if parallel:
        from .training.distributed import is_main_process, train_parallel
        summary = train_parallel(net, train, cfg, device=device, mean=mean, std=std, progress=progress,
                                 checkpoint=checkpoint, description=f"{label} seed {seed}", **parallel)
        if not is_main_process():
            return net, None
    else:
        summary = train_unsupervised(net, train, cfg, device=device, mean=mean, std=std, progress=progress,
                                     checkpoint=checkpoint, donors=donors, description=f"{label} seed {seed}")
        if summary.get("reused_layers"):
            donor = donor_name(summary["reused_from"], checkpoint)
    n_layers = len(spec["layers"])
    depths = probe_depths(probe_cfg["layers"], n_layers, "[probe] layers")
    t0 = time.perf_counter()
    layers = probe_layers(net, train, test, depths, device=device, mean=mean, std=std, seed=seed,
                          progress=progress, label=f"{label} seed {seed}",
                          **{k: v for k, v in probe_cfg.items() if k != "layers"})
    probe_seconds = time.perf_counter() - t0
    initial = build_network(spec, rules, seed=seed, compute_dtype=compute_dtype, spiking=spiking)  # the seeded init
    for entry in layers:
        i = entry["layer"] - 1
        entry.update(net.layers[i].diagnostics(per_unit=True, initial_weight=initial.layers[i].weight))
        if progress and spiking is not None:
            print(f"  {label} seed {seed} layer {entry['layer']}:{activity_line(entry['activity'])}", flush=True)
    mode = {"mode": "rate", "neuron": "rate", "time_steps": 1} if spiking is None else {
        "mode": "spiking", "neuron": spiking.neuron, "time_steps": spiking.time_steps,
        "spiking": spiking.to_dict()}
    record = {
        "label": label, "dataset": dataset, "rule": rule, **mode,
        "seed": seed, "epochs": train_cfg.epochs, "schedule": train_cfg.schedule,
        "batch_size": train_cfg.batch_size, "precision": "bf16" if compute_dtype is not None else "fp32",
        "unsup_seconds": round(summary["seconds"], 1),
        "unsup_images_per_second": round(summary["images_per_second"], 1),
        "probe_seconds": round(probe_seconds, 1), "layers": layers,
        "probe_top1": max(l["probe_top1"] for l in layers),
        "rule_options": [dataclasses.asdict(r) for r in rules],
        "command": command, "git_commit": git_commit, **machine(device),
        **({"parallel": summary["layout"]} if parallel else {}),
        **({"compiled_neurons": True} if compile_neurons else {}),
        **({"compiled_layers": True} if compile_layers else {}),
        **({"reused_layers": {"layers": summary["reused_layers"], "checkpoint": donor}} if donor else {}),
    }
    return net, record


def activity_line(activity: dict) -> str:
    """The firing report of a spiking layer in a few words (for the per-layer progress line)."""
    parts = []
    for phase, words in (("learning", "learning"), ("inference", "inference")):
        a = activity.get(phase)
        if a:
            parts.append(f"{words}: rate {a['firing_rate_mean']:.3f}, silent {100 * a['silent_fraction']:.0f} %, "
                         f"saturated {100 * a['saturated_fraction']:.0f} %")
    return ("  | spikes " + "; ".join(parts)) if parts else ""


def probed_depths(runs: list[dict]) -> list[int]:
    """The 1-based depths probed in any of ``runs`` (results entries), in order."""
    return sorted({entry["layer"] for r in runs for entry in r["layers"]})


def layer_cells(run: dict, depths: list[int], cell) -> list[str]:
    """``cell(entry)`` of ``run``'s layer entry at each of ``depths``; ``-`` where that depth was not probed."""
    by_depth = {entry["layer"]: entry for entry in run["layers"]}
    return [cell(by_depth[d]) if d in by_depth else "-" for d in depths]


def summary_table(results: dict) -> str:
    """A readable per-layer accuracy table (markdown)."""
    runs = results["runs"]
    if not runs:
        return "(no runs)"
    depths = probed_depths(runs)
    n = len(depths)
    head = "| rule | seed | " + " | ".join(f"layer {d} probe / k-NN" for d in depths) + " | unsup s | img/s |"
    sep = "|" + "---|" * (n + 4)
    rows = [head, sep]
    for r in runs:
        cells = layer_cells(r, depths, lambda l: f"{l['probe_top1']:.2f} / {l['knn_top1']:.2f}")
        rows.append(f"| {r['label']} | {r['seed']} | " + " | ".join(cells) +
                    f" | {r['unsup_seconds']:.0f} | {r['unsup_images_per_second']:.0f} |")
    return "\n".join(rows)

