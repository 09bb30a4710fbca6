"""The geometry of trained weights, from an experiment's checkpoints: how many input directions each layer's
units span (effective rank), their mean norm, and how far they turned from their seeded initial weights.

    python experiments/weight_geometry.py experiments/cifar10_liouna_ablations.toml [--layers 1]

For every run and seed of the TOML whose checkpoint exists (finished runs only), rebuilds the network,
loads the checkpoint, and writes ``experiments/results/<name>_geometry.json``:
``{"experiment", "git_commit", "runs": [{"label", "seed", "checkpoint" (relative to the working directory),
"layers": [{"layer", "weight_effective_rank", "weight_norm_mean", "init_cosine_mean"}]}], "skipped": [{"label",
"seed", "why"}]}``, then prints a markdown table. Runs that cannot be read are listed under ``skipped`` with
the reason: no checkpoint yet, an unfinished run, a spiking run, or a checkpoint that no longer fits the
TOML's spec. Needs no data and no training: seconds on a CPU.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from liouna_snn.experiment import load_experiment, write_json_atomic
from liouna_snn.provenance import git_commit
from liouna_snn.export.trained import load_trained_network, untrained_network


def run_geometry(trained, layers: list[int] | None) -> list[dict]:
    """Per layer (1-based depths in ``layers``, default all) of a :class:`TrainedRun`: effective rank,
    mean unit norm and mean cosine to the seeded initial weights (the layers' own diagnostics)."""
    initial = untrained_network(trained.experiment, trained.label, trained.seed).layers
    rows = []
    for depth, (layer, start) in enumerate(zip(trained.network.layers, initial), start=1):
        if layers and depth not in layers:
            continue
        d = layer.diagnostics(initial_weight=start.weight)
        rows.append({"layer": depth, "weight_effective_rank": round(d["weight_effective_rank"], 3),
                     "weight_norm_mean": round(d["weight_norm_mean"], 6),
                     "init_cosine_mean": round(d["init_cosine_mean"], 6)})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", help="an experiment TOML whose runs have checkpoints")
    parser.add_argument("--layers", type=int, nargs="+", help="1-based layer depths (default: all)")
    parser.add_argument("--checkpoint-dir", help="default: experiments/checkpoints/<name>")
    parser.add_argument("--results-dir", help="default: the results folder beside the TOML")
    args = parser.parse_args(argv)

    exp = load_experiment(args.experiment)
    out = {"experiment": exp["name"], "git_commit": git_commit(), "runs": [], "skipped": []}
    for run in exp["runs"]:
        label = run.get("label", run["rule"])
        for seed in run.get("seeds", [0]):
            try:
                trained = load_trained_network(args.experiment, label, seed, checkpoint_dir=args.checkpoint_dir)
            except (FileNotFoundError, ValueError) as err:  # not trained, unfinished, or spiking
                out["skipped"].append({"label": label, "seed": seed, "why": str(err)})
                continue
            out["runs"].append({"label": label, "seed": seed, "checkpoint": os.path.relpath(trained.checkpoint),
                                "layers": run_geometry(trained, args.layers)})
    results_dir = Path(args.results_dir) if args.results_dir else Path(exp["_path"]).parent / "results"
    write_json_atomic(out, results_dir / f"{exp['name']}_geometry.json")
    print(table(out))
    return out


def table(geometry: dict) -> str:
    """Markdown: one row per run and seed; per layer 'effective rank / mean norm / mean cosine to init'."""
    depths = sorted({entry["layer"] for r in geometry["runs"] for entry in r["layers"]})
    lines = ["| run | seed | " + " | ".join(f"layer {d}: eff. rank / norm / cos(init)" for d in depths) + " |",
             "|---|---|" + "---|" * len(depths)]
    for r in geometry["runs"]:
        by_depth = {entry["layer"]: entry for entry in r["layers"]}
        cells = [f"{e['weight_effective_rank']:.1f} / {e['weight_norm_mean']:.2f} / {e['init_cosine_mean']:.2f}"
                 if (e := by_depth.get(d)) else "-" for d in depths]
        lines.append(f"| {r['label']} | {r['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
