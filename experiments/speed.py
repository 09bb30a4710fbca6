"""Speed of the unsupervised epoch: wall time, images/s and achieved GFLOP/s beside a bf16 matmul.

    python experiments/speed.py --data-root DIR                      # full CIFAR-10, SoftHebb and Liouna
    python experiments/speed.py --dataset cifar10-mini --images 2000  # quick check on the embedded set
    python experiments/speed.py --data-root DIR --modes eager compiled  # also through torch.compile

For each rule, trains the 3-layer CIFAR network (greedy, one epoch per layer; ``--schedules simultaneous``:
every layer learns from each batch in one pass) on the first
``--images`` training images and reports, per layer and in total: seconds, images/s, the floating-point
work of the step (counted from the layer geometry, below) and the GFLOP/s achieved. In the same run it
times a square bf16 and a float32 matmul, so the achieved rate can be read against this machine's peak
at that moment (other load on the machine lowers both alike). ``--batch-sizes`` measures several batch
sizes. Writes ``experiments/results/speed.json`` and prints a table (``--report`` prints the table of
the existing file: the README's); full-epoch seconds are extrapolated
linearly from ``--images`` when it is smaller than the training set.

Work counted per image and layer (multiply-adds x 2): under ``greedy`` the forward convolution of every
layer below (frozen layers recompute their outputs), the layer's own forward convolution, the update's
correlation (same size), and for population inhibition the top-down prediction (same size again);
a masked rule computes a second forward convolution. Element-wise work is not counted.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import liouna_snn as ls  # noqa: E402
from liouna_snn.data import load_dataset  # noqa: E402
from liouna_snn.experiment import load_experiment, per_layer_rules, select_runs, write_json_atomic  # noqa: E402
from liouna_snn.provenance import git_commit, machine  # noqa: E402
from liouna_snn.training import TrainConfig, train_unsupervised  # noqa: E402
from liouna_snn.training.schedules import SCHEDULES  # noqa: E402

# the runs of the accuracy benchmark, by label, with their own options (so the timed rules are the measured ones)
BENCHMARK = HERE / "cifar10_local_rules.toml"
RULES = ("softhebb", "liouna", "softhebb-L1+liouna-column-mask75")


def benchmark_rules(label: str, n_layers: int) -> list:
    """The per-layer rule configs of the run ``label`` of :data:`BENCHMARK`."""
    (run,) = select_runs(load_experiment(BENCHMARK)["runs"], [label])
    return per_layer_rules(run["rule"], run.get("options", {}), n_layers)


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """Achieved GFLOP/s of an ``n x n`` matmul in ``dtype`` (repeated for about ``seconds``)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def conv_flops_per_image(net: ls.LocalNetwork) -> list[float]:
    """Forward-convolution FLOPs (2 x multiply-adds) of each layer for one image of the spec's size."""
    size = net.spec.get("input_size", 32)
    hw, flops = (size, size), []
    for layer in net.layers:
        w = layer.weight
        if w.dim() == 4:
            k = w.shape[-1]
            g = layer.geometry
            ho = (hw[0] + 2 * g.padding - k) // g.stride + 1
            wo = (hw[1] + 2 * g.padding - k) // g.stride + 1
            flops.append(2.0 * ho * wo * w.numel())
            hw = layer.output_shape(hw)[1:]
        else:
            flops.append(2.0 * w.numel())
    return flops


def step_flops_per_image(net: ls.LocalNetwork, layer: int, forward: list[float], schedule: str = "greedy") -> float:
    """FLOPs per image of layer ``layer``'s learning step (see the module docstring); ``greedy`` adds the
    frozen layers below, which recompute the layer's input."""
    cfg = net.layers[layer].rule.config
    own = forward[layer] * (2 + (cfg.inhibition == "population") + (cfg.mask_ratio > 0))
    return (sum(forward[:layer]) if schedule == "greedy" else 0.0) + own


def measure(rule: str, train, batch_size: int, args, mean, std, schedule: str = "greedy",
            compiled: bool = False) -> dict:
    """One epoch of ``rule`` under ``schedule`` (the library's own), timed per layer.

    ``greedy``: a layer's seconds run from its phase's first learning call to the end of its last one (the
    frozen layers below included). ``simultaneous``: the seconds spent in the layer's own learning calls;
    the rest of the total is data loading and the norms' recalibration after the epoch.
    """
    spec = ls.load_spec(HERE.parent / "models" / "cifar10_3layer.toml")
    rules = benchmark_rules(rule, len(spec["layers"]))
    net = ls.build_network(spec, rules, seed=0, compute_dtype=ls.precision.compute_dtype(args.precision))
    if compiled:
        net.compile_layers()
    forward = conv_flops_per_image(net)
    spans: dict[int, list[float]] = {}
    learn_layer = net.learn_layer

    def timed(i, *a, **kw):
        t0 = time.perf_counter()
        span = spans.setdefault(i, [t0, 0.0, 0.0])  # first call, end of the last one, seconds inside calls
        out = learn_layer(i, *a, **kw)
        span[1] = time.perf_counter()
        span[2] += span[1] - t0
        return out

    net.learn_layer = timed
    summary = train_unsupervised(net, train, TrainConfig(schedule=schedule, batch_size=batch_size),
                                 mean=mean, std=std, progress=not args.quiet,
                                 description=f"{rule} {schedule} batch {batch_size}")
    images = summary["images"] / (len(net) if schedule == "greedy" else 1)
    layers, total_flops = [], 0.0
    for i in range(len(net)):
        seconds = spans[i][1] - spans[i][0] if schedule == "greedy" else spans[i][2]
        flops = step_flops_per_image(net, i, forward, schedule) * images
        total_flops += flops
        layers.append({"layer": i + 1, "seconds": round(seconds, 2), "images_per_second": round(images / seconds, 1),
                       "gflop": round(flops / 1e9, 1), "gflop_per_second": round(flops / seconds / 1e9, 1)})
    total = summary["seconds"]
    scale = args.full_size / args.images
    return {"rule": rule, "schedule": schedule, "batch_size": batch_size, "compiled": compiled,
            "precision": ls.precision.resolve_precision(args.precision), "images": args.images,
            "seconds": round(total, 1), "epoch_seconds_full": round(total * scale, 1),
            "dataset_images_per_second": round(args.images / total, 1),
            "gflop_per_second": round(total_flops / total / 1e9, 1),
            "epoch_tflop_full": round(total_flops * scale / 1e12, 1), "layers": layers}


def table(results: dict) -> str:
    lines = [
        f"`{results['command']}` — commit `{(results.get('git_commit') or '')[:10]}`, torch {results['torch']}, "
        f"{results['device']}{' (' + results['cpu'] + ')' if results.get('cpu') else ''}, {results['threads']} threads; "
        f"bf16 matmul measured in the same run: "
        f"{results['bf16_matmul_gflop_per_second']:.0f} GFLOP/s before, "
        f"{results['bf16_matmul_gflop_per_second_after']:.0f} after (fp32: {results['fp32_matmul_gflop_per_second']:.0f})",
        "",
        "| rule | schedule | compiled | batch | images timed | seconds | full epoch, s (extrapolated) | dataset img/s | GFLOP/s | "
        "per layer: s (GFLOP/s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        per = ", ".join(f"{l['seconds']:.0f} ({l['gflop_per_second']:.0f})" for l in r["layers"])
        lines.append(f"| {r['rule']} | {r.get('schedule', 'greedy')} | {'yes' if r.get('compiled') else 'no'} | {r['batch_size']} | {r['images']} | {r['seconds']:.0f} | "
                     f"{r['epoch_seconds_full']:.0f} | {r['dataset_images_per_second']:.0f} | "
                     f"{r['gflop_per_second']:.0f} | {per} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="cifar10", help="cifar10 (needs --data-root) or cifar10-mini")
    p.add_argument("--data-root", default="data")
    p.add_argument("--images", type=int, default=50_000, help="training images per layer pass (default: all)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[10])
    p.add_argument("--rules", nargs="+", default=list(RULES[:2]), choices=RULES,
                   help=f"runs of {BENCHMARK.name} by label (default: softhebb liouna)")
    p.add_argument("--schedules", nargs="+", default=["greedy"], choices=list(SCHEDULES))
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--modes", nargs="+", default=["eager"], choices=["eager", "compiled"],
                   help="compiled: the layers learn and infer through torch.compile (LocalNetwork.compile_layers); "
                        "its seconds include compiling, which happens in each layer's first steps")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", default=str(HERE / "results" / "speed.json"))
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--report", action="store_true", help="only print the table of the existing --out file (markdown)")
    args = p.parse_args(argv)
    if args.report:
        print(table(json.loads(Path(args.out).read_text())))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    train = load_dataset(args.dataset, args.data_root, "train")
    args.full_size = len(train)
    args.images = min(args.images, len(train))
    mean, std = train.channel_stats()
    train = train.subset(args.images) if args.images < len(train) else train
    peak = {"bf16_matmul_gflop_per_second": round(matmul_gflops(torch.bfloat16), 1),
            "fp32_matmul_gflop_per_second": round(matmul_gflops(torch.float32), 1)}
    runs = [measure(rule, train, bs, args, mean, std, schedule, mode == "compiled") for schedule in args.schedules
            for mode in args.modes for rule in args.rules for bs in args.batch_sizes]
    peak_after = round(matmul_gflops(torch.bfloat16), 1)
    results = {"experiment": "speed", "command": " ".join(["python", "experiments/speed.py"] + sys.argv[1:]),
               "git_commit": git_commit(), "torch": torch.__version__, **machine("cpu"),
               "dataset": args.dataset, "train_images": args.full_size, **peak,
               "bf16_matmul_gflop_per_second_after": peak_after, "runs": runs}
    write_json_atomic(results, Path(args.out))
    print()
    print(table(results))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
