"""How much of a spiking learning step is signal (issue 4): the step length that scaling leaves the expected update.

    python experiments/spiking_update_noise.py --data-root DIR                   # about 10 minutes on a 2-core CPU
    python experiments/spiking_update_noise.py --report                          # the table and plot from the JSON

In spiking mode the rule learns from spike counts. With ``initial_membrane = "uniform"`` the counts are rounded
stochastically: the update ``dW`` of a step is right on average, but each draw carries noise. The rule then scales
``dW`` to a fixed size (``global-maxabs``: the largest entry becomes the learning rate), so the noise also shrinks
the part of the step that points where the expected update points. This script measures that shrinkage on layer 1
of the benchmark's network, with the benchmark's headline spiking options (``--config``, ``--neuron``,
``--time-steps``) and the base run's layer-1 rule:

* ``L_rate``: the length (Frobenius) of rate mode's scaled step ``dW / max|dW|`` on the same weights and batch;
* ``L_expected``: that of the expected spiking update ``E[dW]`` (the mean over ``--draws`` membrane draws);
* ``L_signal``: the mean over draws of the projection of a draw's scaled step on the direction of ``E[dW]``;
* ``cosine``: the mean cosine between a draw's ``dW`` and ``E[dW]``; ``inflation``: the mean ``max|dW|`` of a draw
  over ``max|E[dW]|``;
* ``L_half``: the scaled step of deterministic (``half``) membranes, for comparison.

``L_rate / L_signal`` is the factor by which a spiking layer's learning rate would have to grow for its expected
update to move the weights as far per step as rate mode's does. Measured at the seeded initial weights and along the
spiking layer's own learning (``--at-steps``: learning steps of the benchmark's batch size, one epoch of CIFAR-10
being 5,000), on ``--batches`` batches each, for every ``--seeds`` and ``--thresholds`` (in standard deviations of
the current). Nothing is probed.

Outputs (``--out PATH`` without suffix; default ``experiments/results/spiking_update_noise``): ``PATH.json`` (one
record per seed, threshold and step, with the means over batches), ``PATH.md`` (the table) and ``PATH.png``
(``L_rate / L_signal`` against the learning step).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
from pathlib import Path

import torch

from liouna_snn.data.batches import iterate_batches
from liouna_snn.experiment import (
    experiment_data, load_experiment, per_layer_rules, resolve_device, resolve_model, script_main, write_json_atomic,
)
from liouna_snn.network import build_network, load_spec
from liouna_snn.plots import plt
from liouna_snn.provenance import git_commit, machine, short_commit
from liouna_snn.spiking import generator_on

EXPERIMENTS = Path(__file__).resolve().parent
DEFAULT_CONFIG = EXPERIMENTS / "rate_vs_spiking_if_uniform_half_std_current.toml"
DEFAULT_OUT = EXPERIMENTS / "results" / "spiking_update_noise"
sys.path.insert(0, str(EXPERIMENTS))
import rate_vs_spiking as driver  # noqa: E402  (the benchmark's config reading, shared)

METRICS = ("L_rate", "L_expected", "L_signal", "L_half", "cosine", "inflation")


def scaled_length(dw: torch.Tensor) -> float:
    """``|| dW / max|dW| ||_F``: the length of the step ``global-maxabs`` scaling makes of ``dW``, per unit of lr."""
    return float(dw.norm() / dw.abs().amax())


@torch.no_grad()
def step_noise(spiking_layer, rate_layer, x: torch.Tensor, draws: int, generator: torch.Generator) -> dict:
    """:data:`METRICS` of one batch ``x`` (standardised pixels, ``(B, C, H, W)``) on the layers' current weights.

    The two layers hold the same weights; ``rate_layer`` is the same layer in rate mode. Side effects (batch-norm
    running statistics, activity counters) land on the copies the caller passes."""
    x_pre = spiking_layer.norm(x)  # batch statistics: what a learning step normalises with
    u = spiking_layer._drive(x_pre)
    T = spiking_layer.spiking.time_steps

    def delta(y):
        return spiking_layer.rule.delta(x_pre, u, y, spiking_layer.weight, spiking_layer.geometry, None,
                                        spiking_layer.compute_dtype).float()

    updates = []
    gain = None
    for _ in range(draws):
        v0 = spiking_layer._initial_membrane(u, generator, learning=True)
        counts, gain = spiking_layer._spike_counts(None, u, gain=gain, initial_membrane=v0)
        updates.append(delta(counts / T))
    expected = torch.stack(updates).mean(dim=0)
    direction = expected / expected.norm()
    signal = [float((dw * direction).sum() / dw.abs().amax()) for dw in updates]
    half = spiking_layer._spike_counts(None, u, gain=gain, initial_membrane=spiking_layer._initial_membrane(
        u, learning=False))[0] if spiking_layer.spiking.membrane_at_inference == "half" else None
    x_n, u_r, y_r, _ = rate_layer._learning_front(x, False)
    _, dw_rate = rate_layer._update(x_n, u_r, y_r, None)
    return {"L_rate": scaled_length(dw_rate.float()), "L_expected": scaled_length(expected),
            "L_signal": statistics.fmean(signal),
            "L_half": None if half is None else scaled_length(delta(half / T)),
            "cosine": statistics.fmean(float(torch.nn.functional.cosine_similarity(dw.flatten(), expected.flatten(),
                                                                                    dim=0)) for dw in updates),
            "inflation": statistics.fmean(float(dw.abs().amax() / expected.abs().amax()) for dw in updates)}


def measure(spec: dict, rules: list, spiking, seed: int, train, mean, std, *, at_steps: list[int], batches: int,
            draws: int, batch_size: int, device) -> list[dict]:
    """One record per step of ``at_steps``: the means over ``batches`` held-out batches of :func:`step_noise`, with the
    spiking layer 1 learning (batch ``batch_size``, seed ``seed``) up to that step in between."""
    net = build_network(spec, rules, seed=seed, spiking=spiking).to(device)
    layer = net.layers[0]
    layer.train()
    rate_net = build_network(spec, rules, seed=seed).to(device)
    probe_x = next(iterate_batches(train, batches * batch_size, shuffle=True,
                                   generator=torch.Generator().manual_seed(10_000 + seed), device=device,
                                   mean=mean, std=std))[0].split(batch_size)
    noise_gen = generator_on(device, torch.Generator().manual_seed(20_000 + seed))
    learn_gen = torch.Generator().manual_seed(seed)
    stream = iterate_batches(train, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed),
                             device=device, mean=mean, std=std)
    total = len(train) // batch_size
    records, done = [], 0
    for step in sorted(set(at_steps)):
        while done < step:
            x, _ = next(stream)
            layer.learn(x, progress=done / total, generator=learn_gen, output=False)
            done += 1
        spk, rate = copy.deepcopy(layer), copy.deepcopy(rate_net.layers[0])
        rate.weight.copy_(spk.weight)
        rate.train()
        rows = [step_noise(spk, rate, x, draws, noise_gen) for x in probe_x]
        record = {"seed": seed, "threshold": spiking.neuron_params.get("threshold"), "step": step}
        for key in METRICS:
            values = [r[key] for r in rows if r[key] is not None]
            record[key] = round(statistics.fmean(values), 6) if values else None
        record["lr_factor"] = round(record["L_rate"] / record["L_signal"], 4)
        records.append(record)
        print(f"seed {seed}, threshold {record['threshold']:g}, step {step}: L_rate {record['L_rate']:.2f}, "
              f"L_signal {record['L_signal']:.2f} (expected {record['L_expected']:.2f}), rate/signal "
              f"{record['lr_factor']:.2f}, cosine {record['cosine']:.3f}", flush=True)
    return records


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="rate_vs_spiking config (default: %(default)s)")
    parser.add_argument("--neuron", help="spiking backend (default: the config's target neuron)")
    parser.add_argument("--time-steps", type=int, help="T (default: the config's target T)")
    parser.add_argument("--thresholds", type=float, nargs="+", help="neuron thresholds to measure (default: the "
                                                                    "config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="default: 0 1")
    parser.add_argument("--at-steps", type=int, nargs="+", default=[0, 250, 1000, 2500],
                        help="learning steps at which to measure (default: 0 250 1000 2500)")
    parser.add_argument("--batches", type=int, default=4, help="batches per measurement (default 4)")
    parser.add_argument("--draws", type=int, default=32, help="membrane draws per batch (default 32)")
    parser.add_argument("--data-root", help="folder holding the dataset's standard layout")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="results path without suffix (default: %(default)s)")
    parser.add_argument("--report", action="store_true", help="measure nothing: rewrite the table and plot from the "
                                                              "JSON")


def run(args: argparse.Namespace, command: str) -> tuple[dict, str]:
    out = Path(args.out)
    if args.report:
        path = out.with_suffix(".json")
        if not path.is_file():
            raise FileNotFoundError(f"--report: no results at {path}; run the measurement first")
        results = json.loads(path.read_text())
        return results, write_outputs(results, out)
    for name, value in (("--batches", args.batches), ("--draws", args.draws)):
        if value < 2:
            raise ValueError(f"{name} must be >= 2, got {value}")
    if any(s < 0 for s in args.at_steps):
        raise ValueError(f"--at-steps must be >= 0, got {args.at_steps}")
    cfg = driver.load_config(args.config)
    neuron, T = driver.chosen_neuron(cfg, args.neuron, args.time_steps)
    exp = load_experiment(Path(cfg["_path"]).parent / cfg["base_experiment"])
    run_entry = driver.base_run(exp, cfg["run"])
    spec = load_spec(resolve_model(exp["model"], exp["_path"]))
    rules = per_layer_rules(run_entry["rule"], run_entry.get("options", {}), len(spec["layers"]))
    spec, rules = {**spec, "layers": spec["layers"][:1]}, rules[:1]  # layer 1 alone
    batch_size = exp.get("unsupervised", {}).get("batch_size", 10)
    device = resolve_device(args.device)
    train, _, mean, std = experiment_data(exp["data"], device, root=args.data_root)
    thresholds = args.thresholds or [cfg["neuron_params"][neuron].get("threshold", 1.0)]
    records = []
    for threshold in thresholds:
        cfg_t = driver.with_neuron_params(cfg, [f"threshold={threshold:g}"], [neuron])
        spiking = driver.spiking_run_config(cfg_t, neuron, T)
        if spiking.initial_membrane != "uniform":
            raise ValueError(f"{cfg['_path']}: initial_membrane is {spiking.initial_membrane!r}; the noise measured "
                             f"here is that of uniform initial membranes")
        for seed in args.seeds:
            records += measure(spec, rules, spiking, seed, train, mean, std, at_steps=args.at_steps,
                               batches=args.batches, draws=args.draws, batch_size=batch_size, device=device)
    results = {"experiment": "spiking_update_noise", "command": command, "git_commit": git_commit(),
               "torch": torch.__version__, **machine(device), "config": cfg["_path"], "neuron": neuron,
               "time_steps": T, "layer": 1, "rule_options": dataclasses.asdict(rules[0]), "batch_size": batch_size,
               "batches": args.batches, "draws": args.draws, "records": records}
    write_json_atomic(results, out.with_suffix(".json"))
    return results, write_outputs(results, out)


def table(results: dict) -> str:
    lines = [f"Latest invocation: `{results['command']}` — commit `{short_commit(results.get('git_commit'))}`, torch "
             f"{results['torch']}, {results['device']} ({results.get('cpu') or 'CPU not recorded'}), layer 1, "
             f"{results['neuron']} at T = {results['time_steps']}, lr {results['rule_options']['lr']:g}, batch "
             f"{results['batch_size']}; each value the mean over {results['batches']} batches of "
             f"{results['draws']} membrane draws.", "",
             "| threshold | seed | step | L_rate | L_expected | L_signal | L_half | cosine to E[dW] | max inflation "
             "| L_rate / L_signal |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["records"]:
        half = "-" if r["L_half"] is None else f"{r['L_half']:.2f}"
        lines.append(f"| {r['threshold']:g} | {r['seed']} | {r['step']} | {r['L_rate']:.2f} | {r['L_expected']:.2f} "
                     f"| {r['L_signal']:.2f} | {half} | {r['cosine']:.3f} | {r['inflation']:.2f} "
                     f"| {r['lr_factor']:.2f} |")
    return "\n".join(lines)


def write_outputs(results: dict, out: Path) -> str:
    text = table(results)
    out.with_suffix(".md").write_text(text + "\n")
    fig, ax = plt.subplots(figsize=(6, 4))
    curves: dict[tuple, list] = {}
    for r in results["records"]:
        curves.setdefault((r["threshold"], r["seed"]), []).append((r["step"], r["lr_factor"]))
    for (threshold, seed), points in sorted(curves.items()):
        ax.plot(*zip(*sorted(points)), marker="o", label=f"threshold {threshold:g}, seed {seed}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("learning step of layer 1 (batch of 10)")
    ax.set_ylabel("L_rate / L_signal")
    ax.set_title("Rate mode's step length over the signal part of a spiking step")
    ax.legend(fontsize=8)
    fig.savefig(out.with_suffix(".png"), dpi=120, bbox_inches="tight")
    plt.close(fig)
    return text


def main(argv: list[str] | None = None) -> int:
    return script_main("spiking_update_noise", __doc__.split("\n\n")[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
