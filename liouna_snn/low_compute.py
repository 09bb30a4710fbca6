"""The low-compute comparison: the probe accuracy each method reaches within a wall-clock budget.

For every budget (seconds of training on this machine) and every method, a fresh model trains until
the budget (or its epochs) is spent, then every layer / stage is probed with the same protocol
(:func:`liouna_snn.evaluation.probe_layers`: weighted k-NN and SoftHebb's linear probe on frozen
features). The budget covers the training loop only; feature extraction and probes are timed
separately (``probe_seconds``).

Methods (``label`` -> results ``rule``):

========================== ======================= ==================================================
label                      rule                    what
========================== ======================= ==================================================
``liouna``, ``softhebb``,  same, or the run's       the 3-layer Hebbian net via ``train_unsupervised``
any run label of the       rule                    with the rule options of that run of the Hebbian
Hebbian experiment                                 experiment (``experiments/cifar10_local_rules.toml``,
                                                   e.g. ``softhebb-L1+liouna-column-mask75``); its
                                                   schedule, at most its epochs, budget split per layer
``blockwise-barlow-twins`` same                    ResNet stages, each with its own head + BT loss
``blockwise-vicreg``       same                    ... VICReg
``blockwise-simclr``       same                    ... NT-Xent
``e2e-barlow-twins``       same                    ResNet, one BT loss at the end, backprop throughout
``e2e-simclr``             same                    ... NT-Xent
``e2e-supervised-resnet``  ``e2e-supervised``      ResNet, cross-entropy, backprop
``e2e-supervised-3layer``  ``e2e-supervised``      the Hebbian net's architecture trained by backprop
========================== ======================= ==================================================

The backprop methods run for up to ``--max-epochs`` epochs (normally the budget stops them first);
their learning-rate schedule follows the fraction of the budget spent. Every method computes in one
precision (``--precision``; ``auto``: bf16 where the device computes it natively), so the budgets buy
comparable arithmetic. Results: the project's schema
plus ``budget_seconds``, ``model``, ``stopped_by`` and the training options, in
``<out>.json``; a markdown table ``<out>.md`` (best-layer probe top-1 per method and budget) and
``<out>.png`` (accuracy vs. budget). A backprop run whose options differ from the defaults is recorded
under its own label (``blockwise-barlow-twins-head128``, ``e2e-simclr-w32-bs256``: :func:`record_label`).
A budget of 0 probes the method's model untrained: its initial weights, seeded as a trained run's are, with
every batch-norm's running statistics computed over the first 10,000 training images
(:func:`~liouna_snn.training.recalibrate_norms`) and nothing else learned (``stopped_by = "untrained"``); the
tables name that column ``untrained`` and the plot draws it as a dotted level per method.
Runs already in the results file (same label, budget, seed, dataset, precision, image counts and probe
epochs) are skipped (``--rerun`` redoes them), and an interrupted run resumes from its checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

import torch

HEBBIAN = ("liouna", "softhebb")
BACKPROP = {   # label: (mode, loss, model)
    "blockwise-barlow-twins": ("blockwise", "barlow-twins", "resnet"),
    "blockwise-vicreg": ("blockwise", "vicreg", "resnet"),
    "blockwise-simclr": ("blockwise", "simclr", "resnet"),
    "e2e-barlow-twins": ("end-to-end", "barlow-twins", "resnet"),
    "e2e-simclr": ("end-to-end", "simclr", "resnet"),
    "e2e-supervised-resnet": ("supervised", "barlow-twins", "resnet"),
    "e2e-supervised-3layer": ("supervised", "barlow-twins", "spec"),
}
METHODS = HEBBIAN + tuple(BACKPROP)
DEFAULT_BUDGETS = (120, 300, 600, 1200, 2400)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's command-line options (shared by ``experiments/low_compute.py`` and ``liouna-snn low-compute``)."""
    parser.add_argument("--budgets", type=float, nargs="+", default=list(DEFAULT_BUDGETS),
                        help="training budgets in seconds (default: 120 300 600 1200 2400); 0 probes the "
                             "untrained model")
    parser.add_argument("--methods", nargs="+", default=list(METHODS),
                        help=f"methods to run, in this order (default all: {', '.join(METHODS)}); any run label of "
                             "the Hebbian experiment is a Hebbian method too")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                        help="precision of every method, the Hebbian experiment's own setting overridden "
                             "(default auto: bf16 where the device computes it natively)")
    parser.add_argument("--dataset", default="cifar10", help="dataset name (default cifar10; cifar10-mini needs no files)")
    parser.add_argument("--data-root", default=None, help="folder holding the dataset's standard layout")
    parser.add_argument("--train-subset", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--test-subset", type=int, default=None, help="use only the first N test images")
    parser.add_argument("--arch", default="resnet18", choices=("resnet18", "resnet50"), help="ResNet of the SSL methods")
    parser.add_argument("--width", type=int, default=64, help="ResNet base width (64 = torchvision's)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size of the backprop methods (default 128)")
    parser.add_argument("--max-epochs", type=int, default=1000, help="epoch cap of the backprop methods (default 1000)")
    parser.add_argument("--head-channels", type=int, default=None,
                        help="channels of the blockwise stage heads' 1x1 conv (default: the last stage's, 512 for "
                             "ResNet-18, as Siddiqui et al.; fewer make early-stage heads much cheaper)")
    parser.add_argument("--feature-pool", type=int, default=1, help="ResNet probe features: adaptive average pool "
                                                                     "to PxP per stage (default 1: global)")
    parser.add_argument("--hebbian-experiment", default=None, help="experiment TOML whose runs, model and schedule "
                                                                   "the Hebbian methods use (default "
                                                                   "experiments/cifar10_local_rules.toml)")
    parser.add_argument("--compile", action="store_true",
                        help="the Hebbian methods learn and infer through torch.compile (LocalNetwork.compile_layers; "
                             "the budget includes compiling); recorded as <method>-compiled")
    parser.add_argument("--probe-epochs", type=int, default=50, help="linear-probe epochs (default 50)")
    parser.add_argument("--probe-layers", choices=("all", "last"), default="all", help="probe every layer or the last")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--out", default="experiments/results/low_compute", help="results path without suffix")
    parser.add_argument("--checkpoint-dir", default="experiments/checkpoints/low_compute")
    parser.add_argument("--rerun", action="store_true", help="redo runs already in the results file")
    parser.add_argument("--report", action="store_true", help="train nothing: re-render the table and plot of the "
                                                              "results file and print them")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def hebbian_labels(exp: dict) -> tuple[str, ...]:
    """The Hebbian methods an experiment offers: ``liouna``, ``softhebb`` and every run's label or rule."""
    return tuple(dict.fromkeys(HEBBIAN + tuple(r.get("label", r["rule"]) for r in exp["runs"])))


def _check(args, hebbian: tuple[str, ...]) -> None:
    unknown = [m for m in args.methods if m not in hebbian and m not in BACKPROP]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; allowed: {', '.join(tuple(BACKPROP) + hebbian)}")
    bad = [b for b in args.budgets if not b >= 0]
    if bad:
        raise ValueError(f"budgets must be numbers of seconds >= 0 (0: the untrained model), got {bad}")
    if args.probe_epochs < 1 or args.batch_size < 2 or args.max_epochs < 1:
        raise ValueError("--probe-epochs and --max-epochs must be >= 1 and --batch-size >= 2")
    if args.head_channels is not None and args.head_channels < 1:
        raise ValueError(f"--head-channels must be a positive number of channels, got {args.head_channels}")


def _hebbian_run(label, exp, spec, train, test, mean, std, budget, args, device, ckpt, depths):
    from .data import num_batches
    from .experiment import per_layer_rules
    from .precision import compute_dtype as dtype_of, resolve_precision
    from .evaluation import probe_layers
    from .network import build_network
    from .training import TrainConfig, train_unsupervised

    runs = [r for r in exp["runs"] if r.get("label", r["rule"]) == label or r["rule"] == label]
    if not runs:
        raise ValueError(f"the Hebbian experiment {exp['_path']} has no run with rule or label {label!r}")
    options = runs[0].get("options", {})
    unsup = dict(exp.get("unsupervised", {}))
    unsup.pop("precision", None)
    precision = resolve_precision(args.precision, device)
    compute_dtype = dtype_of(precision, device)
    cfg = TrainConfig(**{**unsup, "seed": args.seed, "max_seconds": budget or None})
    net = build_network(spec, per_layer_rules(runs[0]["rule"], options, len(spec["layers"])), seed=args.seed,
                        compute_dtype=compute_dtype)
    if args.compile:
        net.compile_layers()
    if budget > 0:
        summary = train_unsupervised(net, train, cfg, device=device, mean=mean, std=std, checkpoint=ckpt,
                                     progress=not args.quiet, description=f"{label} {budget:g}s")
    else:
        summary = untrained_summary(net, train, device, mean, std, progress=not args.quiet)
    layers = probe_layers(net, train, test, depths(len(net)), device=device, mean=mean, std=std, seed=args.seed,
                          progress=not args.quiet, label=label, epochs=args.probe_epochs)
    per_epoch = len(net) if cfg.schedule == "greedy" else 1   # a greedy epoch passes the data once per layer
    full = num_batches(len(train), cfg.batch_size, drop_last=True) * cfg.batch_size * per_epoch * cfg.epochs
    stopped = summary.get("stopped_by") or ("budget" if summary["images"] < full else "epochs")
    extra = {"model": spec.get("name"), "schedule": cfg.schedule, "batch_size": cfg.batch_size, "stopped_by": stopped,
             "passes_per_epoch": per_epoch, **({"compiled_layers": True} if args.compile else {}),
             "train_options": {**dataclasses.asdict(cfg), "precision": precision,
                               "rule_options": options}}
    return runs[0]["rule"], summary, layers, extra


def _backprop_run(label, spec, train, test, mean, std, budget, args, device, ckpt, depths):
    from .blockwise import SUPERVISED_SGD, BlockwiseConfig, build_resnet_model, build_spec_model, train_blockwise
    from .evaluation import probe_layers

    mode, loss, model_kind = BACKPROP[label]
    sgd = dict(SUPERVISED_SGD) if mode == "supervised" else {}
    cfg = BlockwiseConfig(mode=mode, loss=loss, epochs=args.max_epochs, batch_size=args.batch_size,
                          max_seconds=budget or None,
                          seed=args.seed, feature_pool=None if model_kind == "spec" else args.feature_pool,
                          head_channels=args.head_channels, precision=args.precision, **sgd)
    classes = len(train.classes)
    if model_kind == "spec":
        model = build_spec_model(spec, cfg, num_classes=classes)
        name = spec.get("name")
    else:
        model = build_resnet_model(args.arch, cfg, width=args.width, num_classes=classes,
                                   input_size=train.images.shape[-1])
        name = args.arch if args.width == 64 else f"{args.arch}-w{args.width}"
    if budget > 0:
        summary = train_blockwise(model, train, device=device, mean=mean, std=std, checkpoint=ckpt,
                                  progress=not args.quiet, description=f"{label} {budget:g}s")
    else:
        summary = untrained_summary(model, train, device, mean, std, progress=not args.quiet)
    layers = probe_layers(model, train, test, depths(len(model.backbone)), device=device, mean=mean, std=std,
                          seed=args.seed, progress=not args.quiet, label=label, epochs=args.probe_epochs)
    per_epoch = len(model.backbone) if cfg.mode == "blockwise" and cfg.schedule == "greedy" else 1
    extra = {"model": name, "schedule": cfg.schedule, "batch_size": cfg.batch_size, "passes_per_epoch": per_epoch,
             "stopped_by": summary["stopped_by"], "final_losses": [round(v, 4) for v in summary["final_losses"]],
             "train_options": cfg.to_dict()}
    rule = "e2e-supervised" if mode == "supervised" else label
    return rule, summary, layers, extra


def untrained_summary(model: torch.nn.Module, train, device, mean, std, *, progress: bool) -> dict:
    """A budget of 0: ``model`` (on ``device``, eval mode) keeps its initial weights; only its batch-norms'
    running statistics are computed, over the first 10,000 training images, so the probe sees normalised
    features as a trained model's would. The training summary of a run that made no step."""
    from .training import recalibrate_norms

    model.to(device)
    recalibrate_norms(model, train, device=device, mean=mean, std=std, progress=progress,
                      description="untrained: batch-norm statistics")
    return {"seconds": 0.0, "images": 0, "images_per_second": 0.0, "steps": 0, "final_losses": [],
            "stopped_by": "untrained"}


def run_low_compute(args: argparse.Namespace) -> dict:
    """Run every (budget, method) pair of ``args`` (see :func:`add_arguments`); write JSON, table and plot."""
    from .data import load_dataset
    from .provenance import git_commit, machine
    from .experiment import load_experiment, resolve_device, resolve_model, write_json_atomic
    from .network import load_spec
    from .precision import resolve_precision

    out = Path(args.out)
    if args.report:
        if not out.with_suffix(".json").is_file():
            raise FileNotFoundError(f"no results file {out.with_suffix('.json')} to report; run the benchmark first "
                                    f"or point --out at its path without suffix")
        results = json.loads(out.with_suffix(".json").read_text())
        write_report(results, out)
        return results
    hebbian_path = Path(args.hebbian_experiment or Path(__file__).resolve().parent.parent / "experiments"
                        / "cifar10_local_rules.toml")
    exp = load_experiment(hebbian_path)
    hebbian = hebbian_labels(exp)
    _check(args, hebbian)
    device = resolve_device(args.device)
    train = load_dataset(args.dataset, args.data_root, "train")
    test = load_dataset(args.dataset, args.data_root, "test")
    if args.train_subset:
        train = train.subset(args.train_subset)
    if args.test_subset:
        test = test.subset(args.test_subset)
    train, test = train.to(device), test.to(device)
    mean, std = (t.to(device) for t in train.channel_stats())
    spec = load_spec(resolve_model(exp["model"], exp["_path"]))
    command = " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv else None
    results = {"experiment": "low_compute", "command": command, "git_commit": git_commit(), "torch": torch.__version__,
               **machine(device), "dataset": args.dataset, "train_images": len(train),
               "test_images": len(test), "probe": {"epochs": args.probe_epochs, "layers": args.probe_layers},
               "runs": []}
    if out.with_suffix(".json").is_file():
        results["runs"] = _with_data_fields(json.loads(out.with_suffix(".json").read_text()))

    def depths(n):
        return list(range(1, n + 1)) if args.probe_layers == "all" else [n]

    precision = resolve_precision(args.precision, device)
    for budget in args.budgets:
        for method in args.methods:
            label = record_label(method, args, exp["unsupervised"].get("schedule", "greedy"))
            key = (label, float(budget), args.seed, args.dataset, precision, len(train), len(test), args.probe_epochs)
            done = [r for r in results["runs"] if run_key(r) == key]
            if done and not args.rerun:
                print(f"{label} {budget:g}s seed {args.seed} {precision}: already in {out.with_suffix('.json')}, skipped")
                continue
            subset = f"_train{len(train)}" if args.train_subset else ""
            ckpt = (Path(args.checkpoint_dir)
                    / f"{label}_{args.dataset}{subset}_{budget:g}s_seed{args.seed}_{precision}.pt")
            if args.rerun:
                ckpt.unlink(missing_ok=True)
            is_hebbian = method in hebbian and method not in BACKPROP
            run = _hebbian_run if is_hebbian else _backprop_run
            other = (exp,) if is_hebbian else ()
            rule, summary, layers, extra = run(method, *other, spec, train, test, mean, std, budget, args, device,
                                               ckpt, depths)
            results["runs"] = [r for r in results["runs"] if run_key(r) != key]
            results["runs"].append({
                "label": label, "dataset": args.dataset, "rule": rule, "mode": "rate", "neuron": "rate",
                "time_steps": 1, "seed": args.seed, "budget_seconds": float(budget), "precision": precision,
                "train_images": len(train), "test_images": len(test), "probe_epochs": args.probe_epochs,
                "epochs": round(summary["images"] / len(train) / extra["passes_per_epoch"], 3),
                "unsup_seconds": round(summary["seconds"], 1),
                "unsup_images_per_second": round(summary["images_per_second"], 1),
                "probe_seconds": round(sum(l["eval_seconds"] for l in layers), 1), "layers": layers,
                "probe_top1": max(l["probe_top1"] for l in layers), **extra,
                "command": command, "git_commit": results["git_commit"]})
            write_json_atomic(results, out.with_suffix(".json"))
            if not args.quiet:
                print(f"{label} {budget:g}s: best probe {results['runs'][-1]['probe_top1']:.2f} % "
                      f"({summary['images_per_second']:.0f} img/s, {results['runs'][-1]['epochs']} epochs)", flush=True)
    write_report(results, out)
    return results


def write_report(results: dict, out: Path) -> None:
    """``<out>.md`` (:func:`budget_table` and :func:`run_table`) and ``<out>.png`` (:func:`plot_budget_accuracy`)."""
    out.with_suffix(".md").write_text(budget_table(results) + "\n\n" + run_table(results) + "\n")
    plot_budget_accuracy(results, out.with_suffix(".png"))


# Options of the backprop methods that make a run another run than the default one: (option, default, label
# suffix, which methods it applies to). A run with a non-default value is recorded under its own label.
_LABEL_OPTIONS = (("arch", "resnet18", "-{}", "resnet"), ("width", 64, "-w{}", "resnet"),
                  ("feature_pool", 1, "-pool{}", "resnet"), ("head_channels", None, "-head{}", "blockwise"),
                  ("batch_size", 128, "-bs{}", "backprop"), ("max_epochs", 1000, "-ep{}", "backprop"))
_LABEL_SUFFIXES = re.compile(r"(-resnet\d+|-w\d+|-pool\d+|-head\d+|-bs\d+|-ep\d+)+$")


def record_label(method: str, args: argparse.Namespace, hebbian_schedule: str = "greedy") -> str:
    """The label a method's run is recorded under: the method, plus a suffix per backprop option that is not
    its default (``-resnet50``, ``-w{width}``, ``-pool{P}``, ``-head{N}`` for blockwise heads, ``-bs{B}``,
    ``-ep{E}``), so such runs do not replace (or get skipped as) the default runs. Hebbian methods take
    their options from the Hebbian experiment and keep their label, plus ``-simultaneous`` when that experiment's
    schedule (``hebbian_schedule``) is not the default greedy one and ``-compiled`` under ``--compile``."""
    if method not in BACKPROP:
        return (method + ("" if hebbian_schedule == "greedy" else f"-{hebbian_schedule}")
                + ("-compiled" if getattr(args, "compile", False) else ""))
    mode, _, model = BACKPROP[method]
    label = method
    for option, default, suffix, applies in _LABEL_OPTIONS:
        value = getattr(args, option)
        if value != default and applies in ("backprop", mode, model):
            label += suffix.format(value)
    return label


def _method(label: str) -> str:
    """The method a recorded label runs (:func:`record_label` undone)."""
    base = _LABEL_SUFFIXES.sub("", label)
    return base if base in BACKPROP else label.removesuffix("-compiled").removesuffix("-simultaneous")


def run_key(run: dict) -> tuple:
    """What makes two low-compute runs the same run: method label, budget, seed, dataset, precision, the
    numbers of training and test images and the probe's epochs."""
    return (run["label"], run["budget_seconds"], run["seed"], run["dataset"], run.get("precision"),
            run.get("train_images"), run.get("test_images"), run.get("probe_epochs"))


def _with_data_fields(results: dict) -> list[dict]:
    """The runs of a results file, each with ``train_images``, ``test_images`` and ``probe_epochs`` (runs
    recorded before these were per run take the file's own values, which described them when written)."""
    file_values = {"train_images": results.get("train_images"), "test_images": results.get("test_images"),
                   "probe_epochs": results.get("probe", {}).get("epochs")}
    return [{**file_values, **run} for run in results.get("runs", [])]


def _labels(runs: list[dict]) -> list[str]:
    """The methods present in ``runs``: the built-in ones in :data:`METHODS` order, then other Hebbian labels."""
    present = list(dict.fromkeys(r["label"] for r in runs))
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(present, key=lambda l: (order.get(_method(l), len(METHODS)), l))


def budget_name(seconds: float) -> str:
    """A budget as the tables name it: ``untrained`` for 0, whole minutes as ``10 min``, anything else in seconds
    (``200 s``)."""
    if seconds == 0:
        return "untrained"
    return f"{seconds / 60:g} min" if seconds % 60 == 0 else f"{seconds:g} s"


def _seed_runs(runs: list[dict], label: str, budget: float) -> list[dict]:
    """The runs of ``label`` at ``budget``, one per seed (the last recorded of a seed)."""
    by_seed = {r["seed"]: r for r in runs if r["label"] == label and r["budget_seconds"] == budget}
    return [by_seed[s] for s in sorted(by_seed)]


def budget_cell(rs: list[dict]) -> str:
    """'probe (epochs)' of one seed's run; 'mean ± std (epochs, n seeds)' over several (sample std)."""
    if not rs:
        return ""
    if len(rs) == 1:
        return f"{rs[0]['probe_top1']:.2f} ({rs[0]['epochs']:g} ep)"
    top1 = torch.tensor([r["probe_top1"] for r in rs], dtype=torch.float64)
    epochs = sum(r["epochs"] for r in rs) / len(rs)
    return f"{float(top1.mean()):.2f} ± {float(top1.std()):.2f} ({epochs:.3g} ep, {len(rs)} seeds)"


def budget_table(results: dict) -> str:
    """Markdown: one row per method, one column per budget, cells 'best-layer probe top-1 (epochs)' (the mean
    ± std over seeds where several ran)."""
    runs = results["runs"]
    if not runs:
        return "(no runs)"
    budgets = sorted({r["budget_seconds"] for r in runs})
    rows = ["| method | " + " | ".join(budget_name(b) for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for label in _labels(runs):
        rows.append(f"| {label} | " + " | ".join(budget_cell(_seed_runs(runs, label, b)) for b in budgets) + " |")
    return "\n".join(rows)


def run_table(results: dict) -> str:
    """Markdown: one row per run (budget, then method order) with what it did in its budget and how it probes."""
    from .provenance import short_commit

    runs = results["runs"]
    if not runs:
        return "(no runs)"
    order = {label: i for i, label in enumerate(_labels(runs))}
    rows = ["| budget | method | seed | model | epochs | stopped by | train img/s | best layer: probe (k-NN) "
            "| probe s | precision | commit |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["budget_seconds"], order[r["label"]], r["seed"])):
        best = max(r["layers"], key=lambda l: l["probe_top1"])
        rows.append(f"| {budget_name(r['budget_seconds'])} | {r['label']} | {r['seed']} | {r.get('model')} "
                    f"| {r['epochs']:g} "
                    f"| {r.get('stopped_by')} | {r['unsup_images_per_second']:.0f} "
                    f"| {best['layer']}: {best['probe_top1']:.2f} ({best['knn_top1']:.2f}) | {r['probe_seconds']:.0f} "
                    f"| {r.get('precision', '-')} | `{short_commit(r.get('git_commit')) or '-'}` |")
    return "\n".join(rows)


def plot_budget_accuracy(results: dict, path: Path) -> None:
    """Best-layer probe top-1 vs. training budget (minutes, log scale, a tick at each budget), one line per
    method, the mean over seeds; an untrained model (budget 0) as a dotted level in its method's colour. The
    legend beside the axes."""
    from .plots import legend_outside, line_style, plt  # matplotlib only when plotting

    def mean_top1(label, budget):   # the mean over seeds
        rs = _seed_runs(results["runs"], label, budget)
        return sum(r["probe_top1"] for r in rs) / len(rs)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, label in enumerate(_labels(results["runs"])):
        budgets = sorted({r["budget_seconds"] for r in results["runs"] if r["label"] == label})
        style = line_style(i)
        if budgets and budgets[0] == 0:
            ax.axhline(mean_top1(label, 0), linestyle=":", linewidth=1, color=style["color"],
                       label=f"{label}, untrained")
            budgets = budgets[1:]
        if budgets:
            ax.plot([b / 60 for b in budgets], [mean_top1(label, b) for b in budgets], "-", label=label, **style)
    budgets = sorted({r["budget_seconds"] / 60 for r in results["runs"] if r["budget_seconds"] > 0})
    ax.set_xscale("log")
    ax.set_xticks(budgets, [f"{b:.3g}" for b in budgets], rotation=45)  # 200 s is 3.33 min
    ax.minorticks_off()
    ax.set_xlabel("training budget (minutes, this machine)")
    ax.set_ylabel("linear probe top-1 (%), best layer")
    ax.set_title(f"low-compute comparison: {results.get('dataset')}, {results.get('device')}")
    ax.grid(alpha=0.3)
    legend_outside(ax, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="low_compute", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        results = run_low_compute(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"low_compute: error: {err}", file=sys.stderr)
        return 2
    print_report(results)
    return 0


def print_report(results: dict) -> None:
    print(budget_table(results))
    print()
    print(run_table(results))
