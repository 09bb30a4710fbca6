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


MARKERS = "os^Dv<>ph"  # 9 markers against 20 colours: a pair repeats only after 180 lines


def line_style(i: int) -> dict:
    """The ``i``-th line's colour and marker: 20 distinguishable colours (``tab20``'s dark shades first, then its
    light ones), and a marker that changes with the colour, so no two of the first 180 lines look alike."""
    palette = plt.get_cmap("tab20").colors
    return dict(color=palette[(2 * i) % 20 + (i // 10) % 2], marker=MARKERS[i % len(MARKERS)])


def legend_outside(ax, **kw) -> None:
    """``ax``'s legend to the right of it, where it hides no line (``savefig(bbox_inches="tight")`` keeps it)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False, **kw)


def _run_names(runs: list[dict]) -> list[tuple[tuple, str]]:
    """Each run's key (label, seed, precision) and name, the precision named only where the runs have several."""
    several = len({run.get("precision") for run in runs}) > 1
    out = []
    for run in runs:
        precision = run.get("precision") if several else None
        out.append(((run["label"], run["seed"], precision),
                    f"{run['label']} (seed {run['seed']}{f', {precision}' if precision else ''})"))
    return out


def _layer_axes(ax, runs: list[dict], styles: dict, ylabel: str, title: str) -> None:
    """Probe (solid) and k-NN (dashed) top-1 of ``runs`` against layer depth on ``ax``; one colour and marker
    per (label, seed, precision), kept in ``styles`` so a run looks the same on every panel. The legend names
    each run once (its probe line); a key says which line style is the probe and which the k-NN. Runs probed at
    one layer only are bars instead (:func:`_single_layer_bars`)."""
    from matplotlib.lines import Line2D

    depths = sorted({layer["layer"] for run in runs for layer in run["layers"]})
    if len(depths) == 1:
        return _single_layer_bars(ax, runs, styles, f"{ylabel}, layer {depths[0]}", title)
    handles = []
    for run, (key, name) in zip(runs, _run_names(runs)):
        style = styles.setdefault(key, line_style(len(styles)))
        depth = [l["layer"] for l in run["layers"]]
        handles += ax.plot(depth, [l["probe_top1"] for l in run["layers"]], "-", label=name, **style)
        ax.plot(depth, [l["knn_top1"] for l in run["layers"]], "--", alpha=0.6, markerfacecolor="none", **style)
    handles += [Line2D([], [], color="0.4", linestyle="-", label="linear probe"),
                Line2D([], [], color="0.4", linestyle="--", alpha=0.6, label="k-NN")]
    ax.set_xlabel("layer")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    legend_outside(ax, handles=handles, fontsize=7)


def _single_layer_bars(ax, runs: list[dict], styles: dict, xlabel: str, title: str) -> None:
    """Runs probed at one layer: a horizontal bar per run (probe top-1, its value written at the end), best on
    top, and the k-NN top-1 as a hollow marker on the bar. The axis starts just below the lowest value, so
    differences of a point stay visible."""
    named = sorted(zip(runs, _run_names(runs)), key=lambda item: item[0]["layers"][0]["probe_top1"])
    probe = [run["layers"][0]["probe_top1"] for run, _ in named]
    knn = [run["layers"][0]["knn_top1"] for run, _ in named]
    colours = [styles.setdefault(key, line_style(len(styles)))["color"] for _, (key, _) in named]
    y = list(range(len(named)))
    low = min(probe + knn)
    ax.barh(y, [p - (low - 2) for p in probe], left=low - 2, color=colours, height=0.7, label="linear probe")
    ax.plot(knn, y, "o", color="k", markerfacecolor="none", label="k-NN")
    for yi, p in zip(y, probe):
        ax.text(p + 0.2, yi, f"{p:.2f}", va="center", fontsize=7)
    ax.set_yticks(y, [name for _, (_, name) in named], fontsize=7)
    ax.set_xlim(low - 2, max(probe + knn) + 3)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=7, loc="lower right")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_layer_accuracy(results: dict, path: str | Path) -> Path:
    """Probe (solid) and k-NN (dashed) top-1 against layer depth, one line per run; bars when every run was
    probed at one layer only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    one_layer = len({layer["layer"] for run in results["runs"] for layer in run["layers"]}) == 1
    fig, ax = plt.subplots(figsize=(6, max(4.0, 1.0 + 0.3 * len(results["runs"])) if one_layer else 4.0))
    _layer_axes(ax, results["runs"], {}, "top-1 (%)",
                f"{results['experiment']}: {results.get('train_images')} training images")
    return _save(fig, path)


def plot_transfer(results: dict, path: str | Path) -> Path:
    """A transfer experiment's results: one panel per source -> target, probe (solid) and k-NN (dashed) top-1
    on the target against layer depth, one colour and marker per run (label, seed, precision)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pairs = list(dict.fromkeys(f"{r['source_dataset']} -> {r['target_dataset']}" for r in results["runs"]))
    # panels stacked, so each one's legend (on its right) covers no other panel
    fig, axes = plt.subplots(max(len(pairs), 1), 1, figsize=(6, 4 * max(len(pairs), 1)), squeeze=False,
                             gridspec_kw=dict(hspace=0.35))
    styles: dict[tuple, dict] = {}
    for ax, pair in zip(axes[:, 0], pairs):
        runs = [r for r in results["runs"] if f"{r['source_dataset']} -> {r['target_dataset']}" == pair]
        _layer_axes(ax, runs, styles, "top-1 on the target (%)",
                    f"{results['experiment']}: {pair} ({results.get('image_size')} px)")
    return _save(fig, path)
