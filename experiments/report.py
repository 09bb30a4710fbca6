"""Render a results JSON (the project's schema) as the markdown table shown in the README.

    python experiments/report.py experiments/results/cifar10_local_rules.json
    python experiments/report.py --norms experiments/results/cifar10_liouna_ablations.json   # + mean unit norms
"""
import json
import sys

from liouna_snn.experiment import layer_cells, probed_depths


def table(results: dict, norms: bool = False) -> str:
    """The README table of ``results``; ``norms`` adds each layer's mean unit weight norm ||w_k||."""
    runs = results["runs"]
    depths = probed_depths(runs)
    n = len(depths)
    top_precision = results["unsupervised"]["precision"]

    def provenance(r):  # runs kept from an earlier invocation carry their own command, commit and precision
        return r.get("command") or results["command"], r.get("git_commit") or results.get("git_commit") or "", \
            r.get("precision") or top_precision

    mixed = len({provenance(r) for r in runs}) > 1
    header = (f"`{results['command']}` — commit `{(results.get('git_commit') or '')[:10]}`" if not mixed else
              "runs of several invocations (each run's command, commit and precision below and in the JSON)")
    lines = [
        f"{header}, torch {results['torch']}, "
        f"{results['device']} ({results.get('threads')} threads), {results['train_images']} train / "
        f"{results['test_images']} test images, {results['unsupervised']['schedule']} schedule, batch "
        f"{results['unsupervised']['batch_size']}" + ("" if mixed else f", {top_precision}"),
        "",
        "| rule | seed | " + " | ".join(f"layer {d} probe (k-NN)" for d in depths)
        + " | unsup. time (s) | dataset img/s | layer-pass img/s | eval time (s) | dead units per layer |"
        + (" mean unit norm per layer |" if norms else "") + (" precision | commit |" if mixed else ""),
        "|---|---|" + "---|" * n + "---|---|---|---|---|" + ("---|" if norms else "") + ("---|---|" if mixed else ""),
    ]
    for r in runs:
        cells = layer_cells(r, depths, lambda l: f"{l['probe_top1']:.2f} ({l['knn_top1']:.2f})")
        dead = "/".join(layer_cells(r, depths, lambda l: str(l.get("dead_units"))))
        lines.append(f"| {r['label']} | {r['seed']} | " + " | ".join(cells)
                     + f" | {r['unsup_seconds']:.0f} | {results['train_images'] * r['epochs'] / r['unsup_seconds']:.0f}"
                     f" | {r['unsup_images_per_second']:.0f} | {r['probe_seconds']:.0f} | {dead} |"
                     + (" " + "/".join(layer_cells(r, depths, lambda l: "-" if l.get("weight_norm_mean") is None
                                                   else f"{l['weight_norm_mean']:.2f}")) + " |" if norms else "")
                     + (f" {provenance(r)[2]} | `{provenance(r)[1][:10]}` |" if mixed else ""))
    if mixed:
        lines += ["", "Commands: " + "; ".join(sorted({f"`{provenance(r)[0]}`" for r in runs}))]
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    show_norms = "--norms" in args
    for path in [a for a in args if a != "--norms"]:
        with open(path) as f:
            print(table(json.load(f), norms=show_norms))
        print()
