"""Render a results JSON (the project's schema) as the markdown table shown in the README.

    python experiments/report.py experiments/results/cifar10_local_rules.json
    python experiments/report.py --norms experiments/results/cifar10_liouna_ablations.json   # + mean unit norms
    python experiments/report.py --geometry experiments/results/cifar10_spiking_layer1_seeds.json  # + weights, firing
    python experiments/report.py experiments/results/transfer.json      # a transfer experiment's results
    python experiments/report.py --plot experiments/results/cifar10_local_rules.json   # + redraw <name>_layers.png

Runs trained with several seeds also get a second table: mean ± std over the seeds.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

from liouna_snn.experiment import layer_cells, probed_depths
from liouna_snn.provenance import named_cpu, short_commit


def _firing(layer: dict) -> str:
    """A spiking layer's mean firing rate (spikes per step) while learning / at inference; ``-`` in rate mode."""
    activity = layer.get("activity") or {}
    rates = [activity.get(phase, {}).get("firing_rate_mean") for phase in ("learning", "inference")]
    return "-" if all(r is None for r in rates) else " / ".join("-" if r is None else f"{r:.3f}" for r in rates)


# --geometry's columns: heading, and the cell of one probed layer's entry
GEOMETRY = (("firing rate, learning / inference", _firing),
            ("mean unit norm", lambda l: "-" if l.get("weight_norm_mean") is None else f"{l['weight_norm_mean']:.2f}"),
            ("cosine to init", lambda l: "-" if l.get("init_cosine_mean") is None else f"{l['init_cosine_mean']:.3f}"),
            ("effective rank", lambda l: "-" if l.get("weight_effective_rank") is None
             else f"{l['weight_effective_rank']:.1f}"))


def table(results: dict, norms: bool = False, geometry: bool = False) -> str:
    """The README table of ``results``; ``norms`` adds each layer's mean unit weight norm ||w_k||, ``geometry`` the
    learned weights' geometry per probed layer (mean unit norm, mean cosine of each unit to its initial weights,
    effective rank) and, for spiking runs, the mean firing rate while learning and at inference (``/``-separated per
    layer where several are probed)."""
    norms = norms and not geometry  # (geometry has the norms)
    extra = [("mean unit norm per layer", GEOMETRY[1][1])] if norms else []
    extra += [(f"{heading}{' per layer' if len(probed_depths(results['runs'])) > 1 else ''}", cell)
              for heading, cell in GEOMETRY] if geometry else []
    runs = results["runs"]
    depths = probed_depths(runs)
    n = len(depths)
    top_precision = results["unsupervised"]["precision"]

    def provenance(r):  # runs kept from an earlier invocation carry their own command, commit and precision
        return r.get("command") or results["command"], r.get("git_commit") or results.get("git_commit") or "", \
            r.get("precision") or top_precision

    mixed = len({provenance(r) for r in runs}) > 1

    def cpu(r):  # a run written before runs named their CPU does not take the file's (a later rerun's)
        return named_cpu(r) or "not recorded"

    several_cpus = len({cpu(r) for r in runs}) > 1  # wall times compare only within one CPU: name it per run
    header = (f"`{results['command']}` — commit `{short_commit(results.get('git_commit'))}`" if not mixed else
              "runs of several invocations (each run's command, commit and precision below and in the JSON)")
    lines = [
        f"{header}, torch {results['torch']}, "
        f"{results['device']} ({'' if several_cpus or not named_cpu(runs[0]) else named_cpu(runs[0]) + ', '}"
        f"{results.get('threads')} threads), {results['train_images']} train / "
        f"{results['test_images']} test images, {results['unsupervised']['schedule']} schedule, batch "
        f"{results['unsupervised']['batch_size']}" + ("" if mixed else f", {top_precision}"),
        "",
        "| rule | seed | " + " | ".join(f"layer {d} probe (k-NN)" for d in depths)
        + " | unsup. time (s) | dataset img/s | layer-pass img/s | eval time (s) | dead units per layer |"
        + "".join(f" {heading} |" for heading, _ in extra) + (" precision | commit |" if mixed else "")
        + (" CPU |" if several_cpus else ""),
        "|---|---|" + "---|" * n + "---|---|---|---|---|" + "---|" * len(extra) + ("---|---|" if mixed else "")
        + ("---|" if several_cpus else ""),
    ]
    for r in runs:
        cells = layer_cells(r, depths, lambda l: f"{l['probe_top1']:.2f} ({l['knn_top1']:.2f})")
        dead = "/".join(layer_cells(r, depths, lambda l: str(l.get("dead_units"))))
        lines.append(f"| {r['label']} | {r['seed']} | " + " | ".join(cells)
                     + f" | {r['unsup_seconds']:.0f} | {results['train_images'] * r['epochs'] / r['unsup_seconds']:.0f}"
                     f" | {r['unsup_images_per_second']:.0f} | {r['probe_seconds']:.0f} | {dead} |"
                     + "".join(" " + "/".join(layer_cells(r, depths, cell)) + " |" for _, cell in extra)
                     + (f" {provenance(r)[2]} | `{short_commit(provenance(r)[1])}` |" if mixed else "")
                     + (f" {cpu(r)} |" if several_cpus else ""))
    if mixed:
        lines += ["", "Commands: " + "; ".join(sorted({f"`{provenance(r)[0]}`" for r in runs}))]
    return "\n".join(lines)


def transfer_markdown(results: dict) -> str:
    """The README table of a transfer experiment's results (``liouna-snn transfer``): one row per source ->
    target, run and seed, every probed layer's probe (k-NN) top-1 (%) on the target's test split, the
    pre-training time on the source (and the checkpoint its layers were taken from), the probe time, and
    each entry's precision and commit."""
    runs = results["runs"]
    depths = probed_depths(runs)
    commands = sorted({r.get("command") or results["command"] for r in runs})
    lines = [f"{'; '.join(f'`{c}`' for c in commands)}, torch {results['torch']}, {results['device']} "
             f"({results.get('threads')} threads), {results['image_size']} px, "
             f"{results['unsupervised']['schedule']} schedule, batch {results['unsupervised']['batch_size']}",
             "",
             "| source -> target | run | seed | " + " | ".join(f"layer {d} probe (k-NN)" for d in depths)
             + " | pre-training (s) | layers taken from | probe time (s) | precision | commit |",
             "|---|---|---|" + "---|" * len(depths) + "---|---|---|---|---|"]
    for r in runs:
        cells = layer_cells(r, depths, lambda l: f"{l['probe_top1']:.2f} ({l['knn_top1']:.2f})")
        pre = "-" if r.get("unsup_seconds") is None else f"{r['unsup_seconds']:.0f}"
        taken = r.get("reused_layers")
        taken = f"1-{taken['layers']}: `{taken['checkpoint']}`" if taken else "-"
        lines.append(f"| {r['source_dataset']} -> {r['target_dataset']} | {r['label']} | {r['seed']} | "
                     + " | ".join(cells) + f" | {pre} | {taken} | {r['probe_seconds']:.0f} | "
                     f"{r.get('precision') or results['unsupervised']['precision']} | "
                     f"`{short_commit(r.get('git_commit') or results.get('git_commit'))}` |")
    return "\n".join(lines)


def seed_table(results: dict) -> str | None:
    """Mean ± sample std over seeds of every run label trained with more than one seed in one compute precision
    (``None`` if none was).

    One row per such label and precision (runs of different precisions are never averaged together), and per
    source -> target pair for transfer results (the same rule transferred two ways is two rows): the seeds, then
    per probed depth the probe's and the k-NN's top-1 (%).
    """
    default = results.get("unsupervised", {}).get("precision")
    several = len({r.get("precision", default) for r in results["runs"]}) > 1
    by_label: dict[str, list[dict]] = {}
    for r in results["runs"]:
        precision = r.get("precision", default)
        label = f"{r['label']} ({precision})" if several else r["label"]
        if "source_dataset" in r:
            label = f"{r['source_dataset']} -> {r['target_dataset']}: {label}"
        by_label.setdefault(label, []).append(r)
    multi = {label: runs for label, runs in by_label.items() if len(runs) > 1}
    if not multi:
        return None
    depths = probed_depths(results["runs"])

    def spread(values: list[float]) -> str:
        return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"

    lines = ["| rule | seeds | " + " | ".join(f"layer {d} probe (k-NN), mean ± std" for d in depths) + " |",
             "|---|---|" + "---|" * len(depths)]
    for label, runs in multi.items():
        cells = []
        for d in depths:
            entries = [entry for r in runs for entry in r["layers"] if entry["layer"] == d]
            cells.append("-" if len(entries) < 2 else
                         f"{spread([e['probe_top1'] for e in entries])} ({spread([e['knn_top1'] for e in entries])})")
        seeds = ", ".join(str(seed) for seed in sorted(r["seed"] for r in runs))
        lines.append(f"| {label} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results JSON file(s), e.g. experiments/results/<name>.json")
    parser.add_argument("--norms", action="store_true", help="add each layer's mean unit weight norm")
    parser.add_argument("--geometry", action="store_true",
                        help="add each probed layer's weight geometry (mean unit norm, cosine to the initial weights, "
                             "effective rank) and, for spiking runs, the firing rates while learning / at inference")
    parser.add_argument("--plot", action="store_true",
                        help="also redraw the accuracy-per-layer figure the run wrote, <results>_layers.png beside the "
                             "JSON, from the JSON (no training)")
    args = parser.parse_args(argv)
    for path in args.results:
        try:
            with open(path) as f:
                results = json.load(f)
        except (OSError, ValueError) as err:  # (JSONDecodeError and UnicodeDecodeError are ValueErrors)
            print(f"report: {path}: not a readable results JSON ({err})", file=sys.stderr)
            return 2
        transfer = "image_size" in results and results["runs"] and "source_dataset" in results["runs"][0]
        print(transfer_markdown(results) if transfer else table(results, norms=args.norms, geometry=args.geometry))
        print()
        if args.plot:
            from liouna_snn.plots import plot_layer_accuracy, plot_transfer  # matplotlib only when plotting

            figure = Path(path).with_name(Path(path).stem + "_layers.png")
            (plot_transfer if transfer else plot_layer_accuracy)(results, figure)
            print(f"wrote {figure}\n")
        seeds = seed_table(results)
        if seeds:
            print(seeds)
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
