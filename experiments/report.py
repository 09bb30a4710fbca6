"""Render a results JSON (the project's schema) as the markdown table shown in the README.

    python experiments/report.py experiments/results/cifar10_local_rules.json
    python experiments/report.py --norms experiments/results/cifar10_liouna_ablations.json   # + mean unit norms
"""
import json
import sys


def table(results: dict, norms: bool = False) -> str:
    """The README table of ``results``; ``norms`` adds each layer's mean unit weight norm ||w_k||."""
    runs = results["runs"]
    n = max(len(r["layers"]) for r in runs)
    lines = [
        f"`{results['command']}` — commit `{(results.get('git_commit') or '')[:10]}`, torch {results['torch']}, "
        f"{results['device']} ({results.get('threads')} threads), {results['train_images']} train / "
        f"{results['test_images']} test images, {results['unsupervised']['schedule']} schedule, batch "
        f"{results['unsupervised']['batch_size']}, {results['unsupervised']['precision']}",
        "",
        "| rule | seed | " + " | ".join(f"layer {i} probe (k-NN)" for i in range(1, n + 1))
        + " | unsup. time (s) | dataset img/s | layer-pass img/s | eval time (s) | dead units per layer |"
        + (" mean unit norm per layer |" if norms else ""),
        "|---|---|" + "---|" * n + "---|---|---|---|---|" + ("---|" if norms else ""),
    ]
    for r in runs:
        cells = [f"{l['probe_top1']:.2f} ({l['knn_top1']:.2f})" for l in r["layers"]]
        dead = "/".join(str(l.get("dead_units")) for l in r["layers"])
        lines.append(f"| {r['label']} | {r['seed']} | " + " | ".join(cells)
                     + f" | {r['unsup_seconds']:.0f} | {results['train_images'] * r['epochs'] / r['unsup_seconds']:.0f}"
                     f" | {r['unsup_images_per_second']:.0f} | {r['probe_seconds']:.0f} | {dead} |"
                     + (" " + "/".join(f"{l['weight_norm_mean']:.2f}" if l.get("weight_norm_mean") is not None else "-"
                                      for l in r["layers"]) + " |" if norms else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    show_norms = "--norms" in args
    for path in [a for a in args if a != "--norms"]:
        with open(path) as f:
            print(table(json.load(f), norms=show_norms))
        print()
