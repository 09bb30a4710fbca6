"""Benchmark: layer-parallel (pipeline) and data-parallel training on this machine, and an estimate for 4 GPUs.

    .venv/bin/python experiments/parallel.py            # a few minutes on 2 CPU cores

1. Throughput of the simultaneous schedule in 1 process vs 2 processes (``torchrun``, gloo), pipeline and
   data parallel, with the threads per process stated: 1 process x 1 thread, 1 process x 2 threads
   (same cores as 2 processes) and 2 processes x 1 thread. Two networks: the first two layers of
   SoftHebb's CIFAR-10 net (``cifar10_3layer``, depth 2: layer 2 costs about 8x layer 1, so its two
   stages are unbalanced) and a 2-layer net balanced by measured cost (96 then 160 channels: about
   0.03 s per learning step of 10 images each, on one thread).
2. Per-layer cost (seconds per learning step, 1 thread) and activation bytes per micro-batch of
   ``models/imagenette_5layer.toml``; from them, the pipeline throughput on 4 GPUs (assumptions stated in
   the JSON and in ``experiments/parallel.md``).

Writes ``experiments/results/parallel.json`` and ``experiments/results/parallel.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from liouna_snn import build_network, load_spec, precision, rule_config  # noqa: E402
from liouna_snn.data import load_dataset  # noqa: E402
from liouna_snn.provenance import cpu_name  # noqa: E402
from liouna_snn.training import TrainConfig, train_unsupervised  # noqa: E402
from liouna_snn.training.distributed import balanced_split, layer_macs  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
BALANCED_SPEC = {
    "name": "balanced-2layer", "input_channels": 3, "input_size": 32,
    "layers": [
        {"out_channels": 96, "kernel_size": 5, "padding": 2, "padding_mode": "reflect",
         "activation": {"name": "triangle", "power": 0.7}, "pool": {"type": "max", "kernel_size": 4, "stride": 2,
                                                                    "padding": 1}},
        {"out_channels": 160, "kernel_size": 3, "padding": 1, "activation": {"name": "triangle", "power": 1.4},
         "pool": {"type": "max", "kernel_size": 4, "stride": 2, "padding": 1}},
    ],
}


def network_spec(name: str) -> dict:
    if name == "balanced-2layer":
        return BALANCED_SPEC
    spec = load_spec(ROOT / "models" / "cifar10_3layer.toml")
    return {**spec, "name": "cifar10-3layer[:2]", "layers": spec["layers"][:2]}


def softhebb_rules(n: int):
    return [rule_config("softhebb", lr=lr, inverse_temperature=t) for lr, t in [(0.08, 1.0), (0.005, 0.65)][:n]]


def setup(net_name: str, images: int):
    data = load_dataset("cifar10-mini", split="train").subset(images)
    spec = network_spec(net_name)
    net = build_network(spec, softhebb_rules(len(spec["layers"])), seed=0)
    mean, std = data.channel_stats()
    return data, net, mean, std


def worker(args) -> None:
    """One process of a timed run (under torchrun for the parallel modes)."""
    torch.set_num_threads(args.threads)
    data, net, mean, std = setup(args.net, args.images)
    config = TrainConfig(schedule="simultaneous", batch_size=args.batch_size, recalibrate_norms=False)
    if args.mode == "none":
        summary = train_unsupervised(net, data, config, mean=mean, std=std, progress=False)
    else:
        from liouna_snn.training.distributed import train_parallel

        summary = train_parallel(net, data, config, args.mode, mean=mean, std=std, progress=False, timeout_s=120)
        rank = torch.distributed.get_rank()
        torch.distributed.destroy_process_group()
        if rank != 0:
            return
    Path(args.out).write_text(json.dumps({k: v for k, v in summary.items() if k != "layout"}
                                         | {"layout": summary.get("layout")}))


def timed_run(net: str, mode: str, processes: int, threads: int, images: int, batch_size: int,
              repeats: int) -> dict:
    """The median of ``repeats`` runs (training seconds of the slowest rank, process start-up excluded)."""
    runs = sorted((_timed_run_once(net, mode, processes, threads, images, batch_size) for _ in range(repeats)),
                  key=lambda r: r["images_per_second"])
    return runs[len(runs) // 2] | {"images_per_second_all": [r["images_per_second"] for r in runs]}


def _timed_run_once(net: str, mode: str, processes: int, threads: int, images: int, batch_size: int) -> dict:
    out = RESULTS / f".parallel_{net}_{mode}_{processes}x{threads}.json"
    cmd = [__file__, "--worker", "--net", net, "--mode", mode, "--threads", str(threads), "--images", str(images),
           "--batch-size", str(batch_size), "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if processes == 1:
        cmd = [sys.executable] + cmd
    else:
        cmd = [str(Path(sys.executable).with_name("torchrun")), "--nproc-per-node", str(processes),
               "--master-port", "29517"] + cmd
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, timeout=900)
    summary = json.loads(out.read_text())
    out.unlink()
    print(f"  {net:22s} {mode:9s} {processes} proc x {threads} thread: {summary['images_per_second']:7.1f} img/s",
          flush=True)
    return {"net": net, "mode": mode, "processes": processes, "threads_per_process": threads,
            "images": summary["images"], "seconds": round(summary["seconds"], 2),
            "images_per_second": round(summary["images_per_second"], 1), "layout": summary.get("layout")}


@torch.no_grad()
def layer_costs(net, data_hw: tuple[int, int], batch_size: int, repeats: int, scale: list[float] | None = None) -> list[dict]:
    """Seconds per learning step of each layer (1 thread, ``batch_size`` images) and its output bytes."""
    torch.set_num_threads(1)
    x = torch.randn(batch_size, 3, *data_hw)
    rows = []
    macs = layer_macs(net, data_hw)
    for i, layer in enumerate(net.layers):
        layer.train()
        h_in = net._layer_input(i, x)
        out = layer.learn(h_in)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            layer.learn(h_in)
        seconds = (time.perf_counter() - t0) / repeats * (scale[i] if scale else 1.0)
        rows.append({"layer": i + 1, "out_shape": list(out.shape[1:]), "macs_per_image": macs[i] * (scale[i] if scale else 1),
                     "cpu_seconds_per_step": round(seconds, 4),
                     "activation_bytes_per_micro_batch": out.numel() * out.element_size()})
        x = out
    return rows


def imagenette_estimate(batch_size: int = 10) -> dict:
    """Per-layer CPU costs of the Imagenette net (layer 5 measured at 1/8 width and scaled: its cost is linear
    in the output channels) and the 4-GPU pipeline estimate from them."""
    spec = load_spec(ROOT / "models" / "imagenette_5layer.toml")
    narrow = {**spec, "layers": [dict(l) for l in spec["layers"]]}
    narrow["layers"][-1]["out_channels"] //= 8
    net = build_network(narrow, rule_config("softhebb"), seed=0, compute_dtype=precision.compute_dtype("auto"))
    rows = layer_costs(net, (160, 160), batch_size=2, repeats=2, scale=[1, 1, 1, 1, 8])
    rows[-1]["out_shape"][0] *= 8
    rows[-1]["activation_bytes_per_micro_batch"] *= 8
    rows[-1]["note"] = "measured at 1/8 width (1536 units), scaled x8"
    for r in rows:  # measured at batch 2; per micro-batch of `batch_size`
        r["cpu_seconds_per_step"] = round(r["cpu_seconds_per_step"] * batch_size / 2, 3)
        r["activation_bytes_per_micro_batch"] = r["activation_bytes_per_micro_batch"] * batch_size // 2
    cpu = [r["cpu_seconds_per_step"] for r in rows]
    # GPU time per layer: its share of the measured cost times the whole step at an assumed sustained rate.
    flops_step = sum(6 * r["macs_per_image"] * batch_size for r in rows)  # drive + prediction + correlation
    sustained = 250e12  # H100 bf16 dense, about 25 % of peak for these convolutions (assumption)
    gpu_total = flops_step / sustained
    gpu = [gpu_total * c / sum(cpu) for c in cpu]
    stages = balanced_split(cpu, 4)
    links = {"nvlink4_GBps": 300e9, "pcie4_x16_GBps": 20e9}
    per_link = {}
    for link, bw in links.items():
        stage_times = []
        for s in stages:
            compute = sum(gpu[i] for i in s)
            send = rows[s[-1]]["activation_bytes_per_micro_batch"] / bw if s[-1] < len(rows) - 1 else 0.0
            stage_times.append(max(compute, send))  # isend overlaps the next micro-batch's compute
        bottleneck = max(stage_times)
        per_link[link] = {"stage_seconds": [round(t, 5) for t in stage_times], "bottleneck_stage": stage_times.index(bottleneck),
                          "pipeline_images_per_second": round(batch_size / bottleneck, 1),
                          "one_gpu_images_per_second": round(batch_size / gpu_total, 1),
                          "speedup": round(gpu_total / bottleneck, 2)}
    dw_bytes = 4 * 12288 * 3072 * 9
    return {"network": "imagenette-5layer (160 px)", "micro_batch": batch_size, "layers": rows,
            "cpu_seconds_per_step_total": round(sum(cpu), 3),
            "stages_4gpu": [[i + 1 for i in s] for s in stages],
            "assumptions": {"sustained_flops": sustained, "flops_per_mac_step": 6,
                            "gpu_layer_time": "measured CPU share of the step x (6 MACs x batch / sustained rate)",
                            "links_bytes_per_second": links, "overlap": "sends overlap compute (isend, 2 in flight)"},
            "estimate": per_link,
            "layer5_dW_bytes_fp32": dw_bytes,
            "layer5_share_of_compute": round(cpu[-1] / sum(cpu), 3)}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = sorted({r["net"] for r in results["throughput"]})
    fig, axes = plt.subplots(1, len(nets), figsize=(5 * len(nets), 3.6))
    for ax, net in zip(axes, nets):
        runs = [r for r in results["throughput"] if r["net"] == net]
        labels = [f"{r['mode'] if r['mode'] != 'none' else 'single'}\n{r['processes']}p x {r['threads_per_process']}t"
                  for r in runs]
        ax.bar(labels, [r["images_per_second"] for r in runs], color=["#999", "#666", "#2a7", "#27a"][:len(runs)])
        ax.set_title(net)
        ax.set_ylabel("images / s")
    fig.suptitle("simultaneous schedule, 2 CPU cores (gloo)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--net", default="balanced-2layer")
    parser.add_argument("--mode", default="none")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=2000, help="images per timed run (steps = images / batch)")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (the median is reported)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    throughput = []
    for net in ("balanced-2layer", "cifar10-3layer[:2]"):
        data, network, *_ = setup(net, 10)
        costs = layer_costs(network, (32, 32), args.batch_size, repeats=10)
        print(f"{net}: per-layer seconds per step (1 thread) {[c['cpu_seconds_per_step'] for c in costs]}", flush=True)
        for mode, processes, threads in (("none", 1, 1), ("none", 1, 2), ("pipeline", 2, 1), ("data", 2, 1)):
            throughput.append(timed_run(net, mode, processes, threads, args.images, args.batch_size, args.repeats))
        throughput[-4]["layer_costs"] = costs
    for net in ("balanced-2layer", "cifar10-3layer[:2]"):
        runs = {(r["mode"], r["processes"], r["threads_per_process"]): r["images_per_second"]
                for r in throughput if r["net"] == net}
        for mode in ("pipeline", "data"):
            row = next(r for r in throughput if r["net"] == net and r["mode"] == mode)
            row["speedup_vs_1proc_1thread"] = round(runs[(mode, 2, 1)] / runs[("none", 1, 1)], 2)
            row["speedup_vs_1proc_2threads"] = round(runs[(mode, 2, 1)] / runs[("none", 1, 2)], 2)
    print("imagenette per-layer costs ...", flush=True)
    estimate = imagenette_estimate()
    results = {"experiment": "parallel", "command": " ".join([Path(sys.executable).name] + sys.argv),
               "torch": torch.__version__, "cpu": cpu_name(),
               "cores": os.cpu_count(), "batch_size": args.batch_size, "images_per_run": args.images,
               "repeats": args.repeats, "load_average_at_end": os.getloadavg(),
               "note": "2 CPU cores shared with other jobs while measured: timings are noisy",
               "throughput": throughput, "imagenette_4gpu_estimate": estimate}
    (RESULTS / "parallel.json").write_text(json.dumps(results, indent=2))
    plot(results, RESULTS / "parallel.png")
    print(json.dumps({k: v for k, v in results.items() if k != "imagenette_4gpu_estimate"} | {
        "imagenette_estimate": estimate["estimate"]}, indent=1)[:4000])


if __name__ == "__main__":
    main()
