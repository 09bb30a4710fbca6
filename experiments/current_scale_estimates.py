"""How far a spiking run's current scale was from its exact value (issue 4): the running estimate against the average.

    python experiments/current_scale_estimates.py --data-root DIR --checkpoints CKPT [CKPT ...]
    python experiments/current_scale_estimates.py --report          # the table and plot from the JSON alone

With ``current_norm = "std"`` a layer's forward pass divides its current by a standard deviation, so its threshold
is in units of it (:class:`liouna_snn.spiking.CurrentScale`). With ``current_calibration = "running"`` that
deviation is the moving estimate the layer's last learning batches left. This script takes finished checkpoints of
``experiments/rate_vs_spiking.py`` runs (built from ``--config``'s spiking options, ``--neuron`` and
``--time-steps``; the seed is the checkpoint's own) and, per layer, compares that stored estimate with the average
over ``--calibration-images`` training images (:func:`liouna_snn.training.calibrate_current_scales`, bottom up:
each layer with the calibrated layers below it), and the inference firing rate on the first ``--test-images``
test images under each, beside the rate the layer fired at while learning. Nothing is trained or probed.

Outputs (``--out PATH`` without suffix; default ``experiments/results/current_scale_estimates``): ``PATH.json``
(one record per checkpoint: its name, SHA-256, seed, label and per layer the two variances, their ratio, the
effective threshold in exact standard deviations, and the three firing rates), ``PATH.md`` (the table) and
``PATH.png`` (the ratio per layer and checkpoint). A checkpoint already in the JSON (same SHA-256) is skipped.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import sys
from pathlib import Path

import torch

from liouna_snn.experiment import experiment_data, resolve_device, script_main, write_json_atomic
from liouna_snn.precision import compute_dtype as dtype_of
from liouna_snn.provenance import git_commit, machine, short_commit
from liouna_snn.training import CALIBRATION_IMAGES, calibrate_current_scales, load_checkpoint
from liouna_snn.training.checkpoint import check_identity
from liouna_snn.training.schedules import unfinished_phases

EXPERIMENTS = Path(__file__).resolve().parent
DEFAULT_CONFIG = EXPERIMENTS / "rate_vs_spiking_if_uniform_half_std_current.toml"
DEFAULT_OUT = EXPERIMENTS / "results" / "current_scale_estimates"


def _driver():
    """The rate-vs-spiking driver, whose configuration and run names these checkpoints follow."""
    spec = importlib.util.spec_from_file_location("rate_vs_spiking", EXPERIMENTS / "rate_vs_spiking.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def add_arguments(parser) -> None:
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="the rate-vs-spiking TOML the runs used "
                                                                       f"(default: {DEFAULT_CONFIG})")
    parser.add_argument("--checkpoints", nargs="+", default=[], help="finished run checkpoints (.pt)")
    parser.add_argument("--neuron", help="the runs' spiking backend (default: the config's target neuron)")
    parser.add_argument("--time-steps", type=int, help="the runs' T (default: the config's target T)")
    parser.add_argument("--precision", default="fp32", choices=("bf16", "fp32"), help="the runs' precision")
    parser.add_argument("--data-root", help="folder holding the dataset's standard layout")
    parser.add_argument("--dataset", help="dataset name (default: the base experiment's)")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES,
                        help=f"training images the exact estimate averages (default {CALIBRATION_IMAGES})")
    parser.add_argument("--test-images", type=int, default=2000, help="test images the firing rates are measured "
                                                                      "on (default 2000)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="results path without suffix")
    parser.add_argument("--report", action="store_true", help="measure nothing: redraw table and plot from the JSON")


def _inference_rates(net, images, batch_size: int = 250) -> list[float]:
    """Each layer's mean inference firing rate (spikes per step) over ``images`` (standardised, on the device)."""
    for layer in net.layers:
        layer.reset_activity()
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            net(images[i:i + batch_size])
    return [layer.activity()["inference"]["firing_rate_mean"] for layer in net.layers]


def measure(path: Path, driver, cfg: dict, neuron: str, T: int, compute_dtype, train, test_images, device,
            mean, std, calibration_images: int) -> dict:
    """The record of one checkpoint (see the module docstring)."""
    state = load_checkpoint(path)
    if state is None:
        raise FileNotFoundError(f"no checkpoint at {path}")
    seed = state["config"]["seed"]
    exp = driver.load_experiment(Path(cfg["_path"]).parent / cfg["base_experiment"])
    run = driver.base_run(exp, cfg["run"])
    spec = driver.load_spec(driver.resolve_model(exp["model"], exp["_path"]))
    rules = driver.per_layer_rules(run["rule"], run.get("options", {}), len(spec["layers"]))
    spiking = driver.spiking_run_config(cfg, neuron, T)
    if spiking.current_norm != "std":
        raise ValueError(f"{cfg['_path']}: current_norm is {spiking.current_norm!r}; only 'std' has a current scale")
    net = driver.build_network(spec, rules, seed=seed, compute_dtype=compute_dtype, spiking=spiking)
    check_identity(state, net, path, "give the --config, --neuron, --time-steps and --precision of its run")
    if unfinished_phases(state, net) is not None:
        raise ValueError(f"checkpoint {path} is of an unfinished run")
    net.load_state_dict(state["network"])
    net = net.to(device).eval()
    stored = [float(layer.current_scale.running_var) for layer in net.layers]
    learning = [layer.activity()["learning"]["firing_rate_mean"] for layer in net.layers]
    at_stored = _inference_rates(net, test_images)
    exact_net = net.with_spiking(dataclasses.replace(spiking, current_calibration="exact")).to(device)
    calibrate_current_scales(exact_net, train, range(len(exact_net)), device=device, mean=mean, std=std,
                             max_images=calibration_images)
    exact = [float(layer.current_scale.running_var) for layer in exact_net.layers]
    at_exact = _inference_rates(exact_net, test_images)
    threshold = spiking.neuron_params.get("threshold")
    layers = [{"layer": i + 1, "stored_var": stored[i], "exact_var": exact[i], "stored_over_exact": stored[i] / exact[i],
               "threshold_in_exact_std": None if threshold is None else threshold * (stored[i] / exact[i]) ** 0.5,
               "firing_learning": learning[i], "firing_inference_stored": at_stored[i],
               "firing_inference_exact": at_exact[i]} for i in range(len(net.layers))]
    return {"checkpoint": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "seed": seed,
            "neuron": neuron, "time_steps": T, "spiking": spiking.to_dict(), "layers": layers}


def table(results: dict) -> str:
    head = (f"Latest invocation: `{results['command']}` — commit `{short_commit(results['git_commit'])}`, "
            f"{results['device']} ({results.get('cpu', '')}), {results['calibration_images']} calibration images, "
            f"firing rates on {results['test_images']} test images (spikes per step).\n\n")
    rows = ["| checkpoint | seed | layer | stored variance | exact variance | stored / exact | threshold in exact "
            "std | firing: learning | inference, stored | inference, exact |", "|" + "---|" * 10]
    for record in results["records"]:
        for layer in record["layers"]:
            thr = layer["threshold_in_exact_std"]
            rows.append(f"| {record['checkpoint']} | {record['seed']} | {layer['layer']} | {layer['stored_var']:.2f} | "
                        f"{layer['exact_var']:.2f} | {layer['stored_over_exact']:.2f} | "
                        f"{'' if thr is None else f'{thr:.2f}'} | {layer['firing_learning']:.3f} | "
                        f"{layer['firing_inference_stored']:.3f} | {layer['firing_inference_exact']:.3f} |")
    return head + "\n".join(rows)


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for record in results["records"]:
        ax.plot([layer["layer"] for layer in record["layers"]],
                [layer["stored_over_exact"] for layer in record["layers"]], marker="o",
                label=f"seed {record['seed']}: {record['checkpoint'][-13:-3]}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("layer")
    ax.set_ylabel("stored / exact current variance")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(results: dict, out: Path) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(results, out.with_suffix(".json"))
    text = table(results)
    out.with_suffix(".md").write_text(text + "\n")
    plot(results, out.with_suffix(".png"))
    return text


def run(args, command: str) -> tuple[dict, str]:
    out = Path(args.out)
    json_path = out.with_suffix(".json")
    if args.report:
        if not json_path.is_file():
            raise FileNotFoundError(f"no results at {json_path}: measure some checkpoints first")
        import json
        results = json.loads(json_path.read_text())
        return results, write(results, out)
    if not args.checkpoints:
        raise ValueError("--checkpoints: give at least one finished run checkpoint (or --report)")
    if args.calibration_images < 1 or args.test_images < 1:
        raise ValueError(f"--calibration-images and --test-images must be >= 1, got {args.calibration_images} and "
                         f"{args.test_images}")
    driver = _driver()
    cfg = driver.load_config(args.config)
    neuron, T = driver.chosen_neuron(cfg, args.neuron, args.time_steps)
    device = resolve_device(args.device)
    exp = driver.load_experiment(Path(cfg["_path"]).parent / cfg["base_experiment"])
    train, test, mean, std = experiment_data(exp["data"], device, root=args.data_root, dataset=args.dataset,
                                             test_subset=args.test_images)
    test_images = test.images.to(device).float() / 255
    if mean is not None:
        test_images = (test_images - mean.view(1, -1, 1, 1).to(device)) / std.view(1, -1, 1, 1).to(device)
    import json
    old = json.loads(json_path.read_text())["records"] if json_path.is_file() else []
    results = {"command": command, "git_commit": git_commit(), **machine(device), "torch": torch.__version__,
               "calibration_images": args.calibration_images, "test_images": len(test), "records": old}
    for name in args.checkpoints:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if any(r["sha256"] == digest for r in old):
            print(f"{path.name}: already in {json_path}, skipped", flush=True)
            continue
        record = measure(path, driver, cfg, neuron, T, dtype_of(args.precision, device), train, test_images,
                         device, mean, std, args.calibration_images)
        results["records"] = [r for r in results["records"] if r["checkpoint"] != path.name] + [record]
        write_json_atomic(results, json_path)
    return results, write(results, out)


def main(argv: list[str] | None = None) -> int:
    return script_main("current_scale_estimates", __doc__.split("\n\n")[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
