"""Spiking read-out of a trained network (issue 4): how much of a network's accuracy survives spiking inference.

    python experiments/spiking_readout.py --data-root DIR                      # every read-out of the config
    python experiments/spiking_readout.py --data-root DIR --readouts rate lif-T8-threshold2
    python experiments/spiking_readout.py --dataset cifar10-mini --train-subset 300 --test-subset 200 \\
        --probe-epochs 2 --out /tmp/readout/spiking_readout       # minutes (needs the source checkpoint)

The rate-vs-spiking benchmark trains *and* reads out in spiking mode, so its gap mixes two losses: what
spiking learning does to the weights, and what spiking neurons do to a representation. This script
isolates the second. It takes one trained network (a run's checkpoint of a ``liouna-snn run`` experiment,
normally rate mode; a spiking run's weights read out in rate mode say what its spiking inference costs them)
and reads it out with each ``[[readouts]]`` entry: the same weights, with the rate
activations (``spiking = false``) or with the spiking neurons of the entry's ``spiking`` table
(:meth:`liouna_snn.network.LocalNetwork.with_spiking`). Before probing, each read-out's normalisation
statistics are recomputed on ``calibration_images`` training images in that read-out's own mode
(:func:`liouna_snn.training.recalibrate_norms`: the deeper layers receive other activity in spiking mode).
Then the layers of ``probe_layers`` get the source experiment's probe (linear probe and k-NN; ``[probe]``
overrides it). Only the ``constant-current`` encoder is allowed: the network was trained on standardised
pixels.

Outputs (``--out PATH``, without suffix; default ``experiments/results/spiking_readout``):

* ``PATH.json``: the source checkpoint and its conditions, and one record per read-out: its ``spiking``
  config (``null`` for rate), the probed ``layers`` (``probe_top1``, ``knn_top1``, ...), every layer's
  inference ``activity`` (mean firing rate, silent and saturated fractions), ``probe_seconds``;
* ``PATH.md``: the table (one row per read-out, rate first), with each read-out's difference to rate;
* ``PATH.png``: linear-probe top-1 per read-out and probed layer.

Read-outs already in ``PATH.json`` with the same source, config, data and probe are skipped (``--rerun``
redoes them). ``--report`` reads nothing out and redraws the table and plot from ``PATH.json``: the config's
read-outs measured under the conditions of the latest of them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import textwrap
from pathlib import Path

import torch

from liouna_snn.config import read_toml, reject_unknown, require
from liouna_snn.evaluation import PROBE_DEFAULTS, recorded_probe_options
from liouna_snn.evaluation import read_out as evaluation_read_out
from liouna_snn.provenance import git_commit, machine, short_commit
from liouna_snn.experiment import experiment_data, resolve_device, script_main, write_json_atomic
from liouna_snn.export.trained import load_trained_network
from liouna_snn.spiking import spiking_config

EXPERIMENTS = Path(__file__).resolve().parent
DEFAULT_CONFIG = EXPERIMENTS / "spiking_readout.toml"
DEFAULT_OUT = EXPERIMENTS / "results" / "spiking_readout"

CONFIG_KEYS = {"name", "description", "source_experiment", "run", "seed", "probe_layers", "calibration_images",
               "probe", "readouts"}
READOUT_KEYS = {"label", "spiking"}


# --- configuration -----------------------------------------------------------------------------------------

def load_config(path: str | Path) -> dict:
    """The read-out configuration TOML, validated: keys, labels, spiking tables (constant current only)."""
    path = Path(path)
    cfg = read_toml(path, "spiking read-out config")
    where = str(path)
    reject_unknown(cfg, CONFIG_KEYS, where)
    require(cfg, ("source_experiment", "run", "readouts"), where)
    reject_unknown(cfg.get("probe", {}), set(PROBE_DEFAULTS), f"{where} [probe]")
    if not isinstance(cfg["readouts"], list) or not cfg["readouts"]:
        raise ValueError(f"{where}: [[readouts]] must list at least one read-out")
    labels = []
    for i, entry in enumerate(cfg["readouts"], start=1):
        here = f"{where} [[readouts]] entry {i}"
        reject_unknown(entry, READOUT_KEYS, here)
        require(entry, ("label", "spiking"), here)
        entry["_spiking"] = readout_spiking(entry["spiking"], f"{here} ({entry['label']!r}) spiking")
        labels.append(entry["label"])
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"{where}: read-out labels must be unique; repeated: {', '.join(repeated)}")
    cfg.setdefault("name", path.stem)
    cfg.setdefault("seed", 0)
    cfg.setdefault("probe_layers", "all")
    cfg.setdefault("calibration_images", 10_000)
    cfg["_path"] = str(path.resolve())
    return cfg


def readout_spiking(table, where: str):
    """``None`` for ``spiking = false`` (rate activations), else the :class:`SpikingConfig` of the table."""
    if table is False:
        return None
    cfg = spiking_config(table, where)
    if cfg.encodes_spikes:
        raise ValueError(f"{where}: encoder {cfg.encoder!r} needs pixels in [0, 1], but the network was trained on "
                         "standardised pixels; a read-out uses encoder = 'constant-current'")
    return cfg


def select_readouts(readouts: list[dict], only: list[str] | None) -> list[dict]:
    """The entries named in ``only`` (all of them for ``None``); an unknown name is a ``ValueError``."""
    if not only:
        return readouts
    labels = [r["label"] for r in readouts]
    unknown = [name for name in only if name not in labels]
    if unknown:
        raise ValueError(f"unknown read-out(s) {unknown}; the config has: {', '.join(labels)}")
    return [r for r in readouts if r["label"] in only]


def depths_of(values, n_layers: int, where: str) -> list[int]:
    """1-based depths from ``"all"`` or a list of integers in ``1..n_layers``."""
    if values == "all":
        return list(range(1, n_layers + 1))
    if (not isinstance(values, list) or not values
            or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= n_layers for d in values)):
        raise ValueError(f"{where}: probe_layers must be 'all' or a list of depths in 1..{n_layers}, got {values!r}")
    return sorted(set(values))


def as_plain(obj):
    """``obj`` as it reads back from JSON (tuples become lists), for comparing with stored conditions."""
    return json.loads(json.dumps(obj))


def fingerprint(path: Path) -> str:
    """The first 16 hex digits of the SHA-256 of a file (ties results to the exact checkpoint read out)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


# --- the read-outs ---------------------------------------------------------------------------------------

def readout_conditions(entry: dict, source: dict, data: dict, probe: dict, depths: list[int],
                       calibration_images: int) -> dict:
    """Everything that determines a read-out's numbers (a stored record is reused only when these are equal)."""
    spiking = entry["_spiking"]
    return {"source": source, "data": data, "probe": recorded_probe_options(probe), "probe_layers": depths,
            "calibration_images": calibration_images,
            "spiking": None if spiking is None else spiking.to_dict()}


def read_out(network, entry: dict, train, test, depths: list[int], probe: dict, calibration_images: int, *,
             device, mean, std, seed: int, progress: bool) -> dict:
    """One read-out: the network in the entry's mode, norms recalibrated, the depths probed; its record."""
    record = evaluation_read_out(network, entry["_spiking"], train, test, depths, calibration_images=calibration_images,
                                 device=device, mean=mean, std=std, seed=seed, progress=progress,
                                 label=entry["label"], **probe)
    return {"label": entry["label"], **record}


def run_readouts(args: argparse.Namespace, command: str) -> tuple[dict, str]:
    """Run the selected read-outs (skipping those already measured), write JSON, table and plot."""
    cfg = load_config(args.config)
    if args.report:
        return report_only(cfg, Path(args.out))
    source_path = (Path(cfg["_path"]).parent / cfg["source_experiment"]).resolve()
    only = select_readouts(cfg["readouts"], args.readouts)
    if args.seed is not None:
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        cfg = {**cfg, "seed": args.seed}
    trained = load_trained_network(source_path, cfg["run"], cfg["seed"], checkpoint_dir=args.checkpoint_dir,
                                   allow_spiking=True)
    exp = trained.experiment
    network = trained.network
    depths = depths_of(cfg["probe_layers"], len(network), f"{args.config} probe_layers")
    probe = {**PROBE_DEFAULTS, **{k: v for k, v in exp.get("probe", {}).items() if k != "layers"},
             **cfg.get("probe", {})}
    if args.probe_epochs is not None:
        probe["epochs"] = args.probe_epochs

    dev = resolve_device(args.device)
    dataset = args.dataset or exp["data"]["dataset"]
    train, test, mean, std = experiment_data(exp["data"], dev, root=args.data_root, dataset=dataset,
                                             train_subset=args.train_subset, test_subset=args.test_subset)

    source = {"experiment": str(Path(exp["_path"]).relative_to(EXPERIMENTS.parent)) if Path(exp["_path"]).is_relative_to(
                  EXPERIMENTS.parent) else exp["_path"],
              "run": cfg["run"], "seed": cfg["seed"], "checkpoint": trained.checkpoint.name,
              "checkpoint_sha256": fingerprint(trained.checkpoint), "model": network.spec.get("name"),
              "identity": network.identity()}
    data = {"dataset": dataset, "train_images": len(train), "test_images": len(test)}
    out = Path(args.out)
    previous = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").is_file() else {}
    results = {"experiment": cfg["name"], "command": command, "git_commit": git_commit(), "torch": torch.__version__,
               **machine(dev), "source": source, **data, "probe": probe,
               "readouts": [r for r in previous.get("readouts", [])]}
    for entry in only:
        conditions = readout_conditions(entry, source, data, probe, depths, cfg["calibration_images"])
        done = [r for r in results["readouts"] if r["label"] == entry["label"]
                and r.get("conditions") == as_plain(conditions)]
        if done and not args.rerun:
            print(f"{entry['label']}: already measured ({done[0]['probe_top1']:.2f}), skipped (--rerun redoes it)")
            continue
        print(f"--- read-out {entry['label']} ---", flush=True)
        record = read_out(network, entry, train, test, depths, {k: v for k, v in probe.items()},
                          cfg["calibration_images"], device=dev, mean=mean, std=std, seed=cfg["seed"],
                          progress=not args.quiet)
        record.update(conditions=as_plain(conditions), command=command, git_commit=results["git_commit"],
                      device=str(dev), threads=torch.get_num_threads())
        results["readouts"] = [r for r in results["readouts"] if r["label"] != entry["label"]] + [record]
        write_json_atomic(results, out.with_suffix(".json"))
    write_json_atomic(results, out.with_suffix(".json"))
    # the table shows the read-outs of this config measured under these conditions (the spiking config aside)
    shared = readout_conditions(cfg["readouts"][0], source, data, probe, depths, cfg["calibration_images"])
    return results, write_report(results, cfg, as_plain(shared), out)


def _without_spiking(conditions: dict) -> dict:
    return {k: v for k, v in conditions.items() if k != "spiking"}


def write_report(results: dict, cfg: dict, conditions: dict, out: Path) -> str:
    """``PATH.md`` and ``PATH.png`` from ``results``: the read-outs of ``cfg`` (in its order) measured under
    ``conditions`` (as stored in JSON; the spiking config is ignored). Returns the table."""
    order = [e["label"] for e in cfg["readouts"]]
    shared = _without_spiking(conditions)
    current = [r for r in results["readouts"] if r["label"] in order and _without_spiking(r.get("conditions", {})) == shared]
    current.sort(key=lambda r: order.index(r["label"]))
    depths = shared["probe_layers"]
    table = markdown_table(results, current, depths)
    out.with_suffix(".md").parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table + "\n")
    plot_readouts(current, depths, out.with_suffix(".png"), title=f"{shared['source']['run']} "
                  f"({shared['source']['experiment']}), read out in rate and spiking mode")
    return table


def report_only(cfg: dict, out: Path) -> tuple[dict, str]:
    """``--report``: nothing read out, no checkpoint needed; the table and plot redrawn from ``PATH.json`` for
    this config's read-outs measured under the conditions of the latest of them."""
    path = out.with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"no results file {path} to report; run the read-outs first (without --report)")
    results = json.loads(path.read_text())
    order = [e["label"] for e in cfg["readouts"]]
    mine = [r for r in results.get("readouts", []) if r["label"] in order and r.get("conditions")]
    if not mine:
        raise ValueError(f"{path} holds none of the read-outs of {cfg['_path']} ({', '.join(order)}); run them first")
    return results, write_report(results, cfg, mine[-1]["conditions"], out)


# --- reporting -----------------------------------------------------------------------------------------------

def describe(spiking: dict | None) -> str:
    """A read-out's neuron in a few words: ``rate``, or neuron, parameters, T, inhibition, current norm and where the
    forward pass starts the membranes (unless at rest)."""
    if spiking is None:
        return "rate activations"
    params = ", ".join(f"{k} {v}" for k, v in spiking["neuron_params"].items())
    words = [f"{spiking['neuron']}" + (f" ({params})" if params else ""), f"T = {spiking['time_steps']}"]
    if spiking.get("lateral_inhibition", "none") != "none":
        words.append(f"{spiking['lateral_inhibition']} lateral inhibition")
    if spiking.get("current_norm", "none") != "none":
        words.append(f"current / its {spiking['current_norm']}")
    # a read-out is a forward pass: its membranes start where the forward pass starts them
    start = spiking.get("inference_initial_membrane") or spiking.get("initial_membrane", "rest")
    if start != "rest":
        words.append({"half": "membranes from half the threshold",
                      "uniform": "membranes drawn uniformly below threshold"}.get(start, f"{start} initial membranes"))
    return ", ".join(words)


def markdown_table(results: dict, readouts: list[dict], depths: list[int]) -> str:
    """One row per read-out: probe (k-NN) per probed layer, difference to rate, firing rate, silent / saturated %."""
    source = results["source"]
    lines = [f"Latest invocation: `{results['command']}` — commit `{short_commit(results.get('git_commit'))}`, torch "
             f"{results['torch']}, {results['device']} ({results.get('threads')} threads). Source: run "
             f"`{source['run']}` seed {source['seed']} of `{source['experiment']}` (checkpoint `{source['checkpoint']}`, "
             f"sha256 {source['checkpoint_sha256']}); {results['dataset']}, {results['train_images']} train / "
             f"{results['test_images']} test images; probe {results['probe']['epochs']} epochs. Accuracies: linear probe "
             "(k-NN) top-1 %; activity: inference firing rate (spikes per step) per layer, silent / saturated units %.",
             ""]
    rate = next((r for r in readouts if r["mode"] == "rate"), None)
    lines.append("| read-out | neuron | " + " | ".join(f"layer {d} probe (k-NN)" for d in depths)
                 + " | vs rate (points) | firing rate per layer | silent % | saturated % |")
    lines.append("|---|---|" + "---|" * len(depths) + "---|---|---|---|")
    for r in readouts:
        by_depth = {layer["layer"]: layer for layer in r["layers"]}
        cells = [f"{by_depth[d]['probe_top1']:.2f} ({by_depth[d]['knn_top1']:.2f})" if d in by_depth else "-"
                 for d in depths]
        vs = f"{r['probe_top1'] - rate['probe_top1']:+.2f}" if rate is not None and r is not rate else ""
        acts = r.get("activity") or []
        activity = ["/".join(format(scale * a[key], spec) for a in acts) if acts else "" for key, scale, spec in
                    (("firing_rate_mean", 1, ".3f"), ("silent_fraction", 100, ".0f"),
                     ("saturated_fraction", 100, ".0f"))]
        lines.append(f"| {r['label']} | {describe(r['spiking'])} | " + " | ".join(cells) + f" | {vs} | "
                     + " | ".join(activity) + " |")
    return "\n".join(lines)


def plot_readouts(readouts: list[dict], depths: list[int], path: Path, title: str = "") -> None:
    """Grouped bars: linear-probe top-1 (%) of every read-out at every probed layer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(readouts) * len(depths) + 2), 4.2))
    width = 0.8 / max(len(depths), 1)
    for j, d in enumerate(depths):
        values = [next((l["probe_top1"] for l in r["layers"] if l["layer"] == d), float("nan")) for r in readouts]
        xs = [i + (j - (len(depths) - 1) / 2) * width for i in range(len(readouts))]
        bars = ax.bar(xs, values, width=width, color=f"C{j}", label=f"layer {d}")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(readouts)), [r["label"] for r in readouts], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("linear probe top-1 (%)")
    finite = [l["probe_top1"] for r in readouts for l in r["layers"]]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 10), min(100.0, max(finite) + 5))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(textwrap.fill(title, 90), fontsize=9)  # a long source name wraps instead of running off the canvas
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="read-out config TOML")
    parser.add_argument("--data-root", default=None, help="folder holding the dataset (e.g. cifar-10-batches-py/)")
    parser.add_argument("--dataset", default=None, help="override the source experiment's dataset (e.g. cifar10-mini)")
    parser.add_argument("--train-subset", type=int, default=None, help="first N training images only")
    parser.add_argument("--test-subset", type=int, default=None, help="first N test images only")
    parser.add_argument("--probe-epochs", type=int, default=None, help="override the probe's epochs")
    parser.add_argument("--readouts", nargs="+", default=None, metavar="LABEL", help="only these read-outs")
    parser.add_argument("--seed", type=int, default=None, help="the source run's seed (default: the config's)")
    parser.add_argument("--checkpoint-dir", default=None, help="folder of the source run's checkpoint "
                        "(default: the source experiment's checkpoints/<name>/)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output path without suffix")
    parser.add_argument("--rerun", action="store_true", help="redo read-outs already measured")
    parser.add_argument("--report", action="store_true", help="read nothing out: redraw the table and plot from the "
                        "results JSON (no checkpoint or data needed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv: list[str] | None = None) -> int:
    return script_main("spiking_readout", __doc__.split("\n\n")[0], add_arguments, run_readouts, argv)


if __name__ == "__main__":
    sys.exit(main())
