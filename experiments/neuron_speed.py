"""Speed of the spiking neurons: one layer's T-step loop per backend, eager and compiled.

    python experiments/neuron_speed.py                        # every backend, CIFAR layer-3 currents, T = 8
    python experiments/neuron_speed.py --shape 10 384 16 16 --time-steps 8 16
    python experiments/neuron_speed.py --report               # the table of the existing results

A spiking layer spends its neuron time in :func:`liouna_snn.spiking.spike_counts`: ``T`` steps of the neuron
under the layer's constant current, counting spikes. This script times that loop for one current shaped
``--shape`` (default: a 250-image evaluation batch of the 3-layer CIFAR network's third layer, 1536 units on
8 x 8 positions) from half-threshold membranes, per backend and per way of running it:

* ``eager``: the neuron's own step, in place for the native neurons (what runs without ``compile_neurons``);
* ``compiled step``: every step through :func:`liouna_snn.neurons.compiled_step` (online plasticity's way);
* ``compiled loop``: the whole loop as one graph, :func:`liouna_snn.neurons.compiled_counts` (inference and
  rate-based plasticity under ``LocalNetwork.compile_neurons()``).

Each is run once untimed (compiling), then repeated for about ``--seconds``; the median repetition is
reported, with the counts' agreement with the eager loop (the fraction of units whose count differs: 0 for
exact agreement). Writes ``experiments/results/neuron_speed.json`` and ``.md``; ``--report`` prints the table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from liouna_snn.experiment import write_json_atomic  # noqa: E402
from liouna_snn.neurons import NEURONS, compiled_counts, compiled_step, make_neuron  # noqa: E402
from liouna_snn.provenance import git_commit, machine, machine_name  # noqa: E402
from liouna_snn.spiking import initial_membranes, spike_counts  # noqa: E402

# Matched parameters (the rate-vs-spiking benchmark's units: threshold 3 current standard deviations).
PARAMS = {
    "native-lif": {"beta": 0.9, "threshold": 3.0, "reset": "zero"},
    "integrate-and-fire": {"threshold": 3.0},
    "snntorch-leaky": {"beta": 0.9, "threshold": 3.0, "reset": "zero"},
    "norse-lif": {"beta": 0.9, "threshold": 3.0},
    "norse-lifbox": {"beta": 0.9, "threshold": 3.0},
}
MODES = ("eager", "compiled step", "compiled loop")
DEFAULT_OUT = HERE / "results" / "neuron_speed"


def timed(fn, seconds: float) -> tuple[float, torch.Tensor]:
    """Median wall time (s) of ``fn()`` over repetitions filling about ``seconds`` (after one untimed call), and
    its last result."""
    out = fn()
    times = []
    start = time.perf_counter()
    while not times or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def measure(name: str, current: torch.Tensor, T: int, seconds: float) -> list[dict]:
    """One row per mode for neuron ``name`` (with :data:`PARAMS`) under ``current`` for ``T`` steps."""
    neuron = make_neuron(name, **PARAMS[name])
    v0 = initial_membranes(neuron, current.shape, current.device, current.dtype, mode="half")
    runs = {"eager": lambda: spike_counts(neuron, current, T, initial_membrane=v0),
            "compiled step": lambda: spike_counts(neuron, current, T, initial_membrane=v0,
                                                  step=compiled_step(neuron)),
            "compiled loop": lambda: spike_counts(neuron, current, T, initial_membrane=v0,
                                                  loop=compiled_counts(neuron, T))}
    rows, reference = [], None
    for mode in MODES:
        seconds_per_loop, counts = timed(runs[mode], seconds)
        reference = counts if reference is None else reference
        rows.append({"neuron": name, "params": PARAMS[name], "mode": mode, "time_steps": T,
                     "seconds": round(seconds_per_loop, 5),
                     "ns_per_unit_step": round(seconds_per_loop / (current.numel() * T) * 1e9, 4),
                     "mean_rate": round(float(counts.mean()) / T, 4),
                     "differing_counts": float((counts != reference).float().mean())})
    return rows


def table(results: dict) -> str:
    """The markdown table of a results record (one row per backend and T, one column per mode)."""
    shape = " x ".join(str(n) for n in results["shape"])
    lines = [f"Latest invocation: `{results['command']}` — commit `{(results['git_commit'] or '?')[:10]}`, torch "
             f"{results['torch']}, {machine_name(results)}. Current {shape} ({results['dtype']}), half-threshold "
             f"initial membranes; median seconds per T-step loop (ns per unit and step); in brackets the fraction of "
             f"units whose count differs from the eager loop's where it is not 0.", "",
             "| neuron | T | firing rate | " + " | ".join(MODES) + " | compiled loop vs eager |",
             "|---|---|---|" + "---|" * len(MODES) + "---|"]
    keys = sorted({(r["neuron"], r["time_steps"]) for r in results["rows"]},
                  key=lambda k: (list(NEURONS).index(k[0]) if k[0] in NEURONS else 99, k[1]))
    for neuron, T in keys:
        by_mode = {r["mode"]: r for r in results["rows"] if r["neuron"] == neuron and r["time_steps"] == T}
        cells = []
        for mode in MODES:
            r = by_mode.get(mode)
            cells.append("" if r is None else f"{r['seconds']:.4f} ({r['ns_per_unit_step']:.2f} ns)" +
                         (f" [{r['differing_counts']:.2g}]" if r["differing_counts"] else ""))
        speedup = (f"{by_mode['eager']['seconds'] / by_mode['compiled loop']['seconds']:.1f}x"
                   if {"eager", "compiled loop"} <= set(by_mode) else "")
        rate = next(iter(by_mode.values()))["mean_rate"]
        lines.append(f"| {neuron} | {T} | {rate:.3f} | " + " | ".join(cells) + f" | {speedup} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--neurons", nargs="+", default=list(PARAMS), choices=list(PARAMS), metavar="NEURON",
                   help=f"backends to time (default: all; allowed: {', '.join(PARAMS)})")
    p.add_argument("--shape", type=int, nargs="+", default=[250, 1536, 8, 8],
                   help="current shape (batch, units, height, width); default 250 1536 8 8")
    p.add_argument("--time-steps", type=int, nargs="+", default=[8], help="values of T (default 8)")
    p.add_argument("--seconds", type=float, default=3.0, help="timing budget per backend and mode (default 3)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results path without suffix (.json, .md)")
    p.add_argument("--report", action="store_true", help="only print the table of the existing results")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.report:
        if not out.with_suffix(".json").is_file():
            raise SystemExit(f"--report: no results at {out.with_suffix('.json')}; run the benchmark first")
        print(table(json.loads(out.with_suffix(".json").read_text())))
        return 0
    if any(n < 1 for n in args.shape) or len(args.shape) < 2:
        raise SystemExit(f"--shape needs at least (batch, units), every size >= 1; got {args.shape}")
    if any(T < 1 for T in args.time_steps):
        raise SystemExit(f"--time-steps must be >= 1, got {args.time_steps}")
    device = torch.device(args.device)
    # A current of mean-inhibited drives in units of their standard deviation, as the benchmark layers see.
    current = torch.randn(args.shape, generator=torch.Generator().manual_seed(0)).to(device)
    current -= current.mean(dim=1, keepdim=True)
    results = {"command": "python experiments/neuron_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "git_commit": git_commit(), "torch": torch.__version__, **machine(device),
               "shape": list(args.shape), "dtype": str(current.dtype).replace("torch.", ""), "rows": []}
    for name in args.neurons:
        for T in args.time_steps:
            rows = measure(name, current, T, args.seconds)
            results["rows"].extend(rows)
            print("  ".join(f"{name} T={T} {r['mode']}: {r['seconds']:.4f} s" for r in rows), flush=True)
    write_json_atomic(results, out.with_suffix(".json"))
    report = table(results)
    out.with_suffix(".md").write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
