"""Figures of an experiment: learned first-layer filters and per-layer accuracies (matplotlib, Agg)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import torch  # noqa: E402


def filter_grid(weight: torch.Tensor, pad: int = 1) -> torch.Tensor:
    """Tile ``weight (K, C, k, k)`` (C = 1 or 3) into an image ``(H, W, C)`` in [0, 1], each filter
    rescaled by its own max-abs so that its pattern, not its norm, is visible."""
    w = weight.detach().float().cpu()
    k_units, c, kh, kw = w.shape
    w = w / (w.flatten(1).abs().amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1))
    w = (w + 1) / 2
    cols = math.ceil(math.sqrt(k_units))
    rows = math.ceil(k_units / cols)
    grid = torch.ones(c, rows * (kh + pad) + pad, cols * (kw + pad) + pad)
    for i in range(k_units):
        r, q = divmod(i, cols)
        grid[:, pad + r * (kh + pad):pad + r * (kh + pad) + kh, pad + q * (kw + pad):pad + q * (kw + pad) + kw] = w[i]
    return grid.permute(1, 2, 0).squeeze(-1)


def plot_filters(weight: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """Save the first-layer filters as an image grid (only RGB or single-channel inputs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if weight.dim() != 4 or weight.shape[1] not in (1, 3):
        return path
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(filter_grid(weight).numpy(), interpolation="nearest", cmap="gray")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _layer_axes(ax, runs: list[dict], colours: dict, ylabel: str, title: str) -> None:
    """Probe (solid) and k-NN (dashed) top-1 of ``runs`` against layer depth on ``ax``; one colour per
    (label, seed, precision), kept in ``colours`` so a run has the same colour on every panel. The precision is
    named only where the runs have more than one."""
    several = len({run.get("precision") for run in runs}) > 1
    for run in runs:
        precision = run.get("precision") if several else None
        colour = colours.setdefault((run["label"], run["seed"], precision), f"C{len(colours) % 10}")
        name = f"{run['label']} (seed {run['seed']}{f', {precision}' if precision else ''})"
        depth = [l["layer"] for l in run["layers"]]
        ax.plot(depth, [l["probe_top1"] for l in run["layers"]], "-o", color=colour, label=f"{name} probe")
        ax.plot(depth, [l["knn_top1"] for l in run["layers"]], "--x", color=colour, alpha=0.6, label=f"{name} k-NN")
    ax.set_xlabel("layer")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    depths = sorted({layer["layer"] for run in runs for layer in run["layers"]})
    if len(depths) == 1:   # one probed layer: a single tick, not fractions of a layer around it
        ax.set_xticks(depths)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_layer_accuracy(results: dict, path: str | Path) -> Path:
    """Probe (solid) and k-NN (dashed) top-1 against layer depth, one line per run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    _layer_axes(ax, results["runs"], {}, "top-1 (%)",
                f"{results['experiment']}: {results.get('train_images')} training images")
    return _save(fig, path)


def plot_transfer(results: dict, path: str | Path) -> Path:
    """A transfer experiment's results: one panel per source -> target, probe (solid) and k-NN (dashed) top-1
    on the target against layer depth, one colour per run (label, seed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pairs = list(dict.fromkeys(f"{r['source_dataset']} -> {r['target_dataset']}" for r in results["runs"]))
    fig, axes = plt.subplots(1, max(len(pairs), 1), figsize=(6 * max(len(pairs), 1), 4), squeeze=False)
    colours: dict[tuple, str] = {}
    for ax, pair in zip(axes[0], pairs):
        runs = [r for r in results["runs"] if f"{r['source_dataset']} -> {r['target_dataset']}" == pair]
        _layer_axes(ax, runs, colours, "top-1 on the target (%)",
                    f"{results['experiment']}: {pair} ({results.get('image_size')} px)")
    return _save(fig, path)
