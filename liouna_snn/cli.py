"""Command line: ``liouna-snn run experiments/<name>.toml``, ``liouna-snn export experiments/<name>.toml --label L``
(``--format nir`` for a spiking run), ``liouna-snn transfer experiments/transfer.toml``."""
from __future__ import annotations

import argparse
import sys

PRECISIONS = ("auto", "bf16", "fp32")  # liouna_snn.precision.PRECISIONS, without importing torch for --help


def _run(args) -> int:
    from .experiment import run_experiment, summary_table

    results = run_experiment(args.experiment, data_root=args.data_root, device=args.device,
                             results_dir=args.results_dir, checkpoint_dir=args.checkpoint_dir,
                             download=args.download, progress=not args.quiet, only_rules=args.rules,
                             seeds=args.seeds, parallel=_parallel_options(args), precision=args.precision,
                             compile_layers=args.compile)
    if args.parallel != "none":
        import torch.distributed as dist

        rank = dist.get_rank()
        dist.destroy_process_group()
        if rank != 0:
            return 0
    print()
    print(f"{results['experiment']} on {results['device']}: {results['train_images']} training / "
          f"{results['test_images']} test images")
    print(summary_table(results))
    return 0


def _parallel_options(args) -> dict | None:
    """``--parallel`` and its options as keyword arguments of ``train_parallel`` (``None``: one process)."""
    if args.parallel == "none":
        if args.stages is not None or args.layers_per_stage is not None:
            raise ValueError("--stages and --layers-per-stage need --parallel pipeline or pipeline+data")
        return None
    per_stage = None
    if args.layers_per_stage is not None:
        try:
            per_stage = [int(v) for v in args.layers_per_stage.split(",")]
        except ValueError:
            raise ValueError(f"--layers-per-stage must be comma-separated layer counts like 2,1; "
                             f"got {args.layers_per_stage!r}") from None
    return {"mode": args.parallel, "stages": args.stages, "layers_per_stage": per_stage,
            "timeout_s": args.dist_timeout}


def _export(args) -> int:
    from pathlib import Path

    from .export import LOADER_FILE, WEIGHTS_FILE, export_plain, input_statistics, load_trained_network

    trained = load_trained_network(args.experiment, args.label, args.seed, checkpoint_dir=args.checkpoint_dir,
                                   allow_unfinished=args.allow_unfinished, allow_spiking=args.format == "nir",
                                   precision=args.precision)
    exp = trained.experiment
    # the checkpoint of a second precision (<label>_seed<s>_<precision>.pt) exports beside the first, not over it
    suffix = "" if trained.checkpoint.stem.endswith(f"seed{args.seed}") else f"_{args.precision}"
    out = Path(args.out) if args.out else (Path(exp["_path"]).parent / "exports" / exp["name"]
                                           / f"{args.label}_seed{args.seed}{suffix}")
    if args.format == "nir":
        return _export_nir(trained, out, args.approximate_reset)
    mean = std = None
    if not args.no_input_stats:
        try:
            mean, std = input_statistics(exp, args.data_root)
        except (FileNotFoundError, ValueError) as err:
            print(f"liouna-snn: note: input statistics not recorded ({err}); pass --data-root to record them",
                  file=sys.stderr)
    export_plain(trained.network, out, input_mean=mean, input_std=std)
    size_mb = (out / WEIGHTS_FILE).stat().st_size / 1e6
    shapes = " -> ".join("x".join(map(str, s)) for s in trained.network.feature_shapes())
    print(f"exported {exp['name']} / {args.label} seed {args.seed} from {trained.checkpoint}")
    print(f"  to {out}/")
    print(f"  architecture.json   {len(trained.network)} layers: {shapes}")
    print(f"  model.safetensors   {size_mb:.1f} MB (float32 weights, batch-norm running statistics)")
    print(f"  {LOADER_FILE:<19} loader that needs only torch + safetensors"
          + ("" if mean is not None else " (no input statistics recorded)"))
    print(f"use it: cd {out} && python -c \"from load_model import load_plain; print(load_plain('.'))\"")
    return 0


def _export_nir(trained, out, approximate_reset: bool) -> int:
    import nir

    from .export import export_nir

    graph = export_nir(trained.network, approximate_subtractive_reset=approximate_reset)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "network.nir"
    nir.write(path, graph)
    print(f"exported {trained.experiment['name']} / {trained.label} seed {trained.seed} from {trained.checkpoint}")
    print(f"  to {path} ({len(graph.nodes)} NIR nodes, dt = {graph.metadata['dt']} s, T = {graph.metadata['time_steps']})")
    print(f"use it: nir.read('{path}'); snntorch.import_nir.import_from_nir(g); norse.torch.from_nir(g, dt={graph.metadata['dt']})")
    return 0


def _transfer(args) -> int:
    from .evaluation.transfer import run_transfer, transfer_table

    results = run_transfer(args.experiment, data_root=args.data_root, device=args.device,
                           results_dir=args.results_dir, checkpoint_dir=args.checkpoint_dir,
                           progress=not args.quiet, only_rules=args.rules, only_transfers=args.transfers,
                           precision=args.precision, layers=args.probe_layers)
    print()
    print(transfer_table(results))
    return 0


def _low_compute(args) -> int:
    from .low_compute import print_report, run_low_compute

    print_report(run_low_compute(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="liouna-snn", description="Layer-local plasticity for rate and spiking networks")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train every run of an experiment TOML, probe every layer, write results + plots")
    run.add_argument("experiment", help="path to experiments/<name>.toml")
    run.add_argument("--data-root", help="folder holding the dataset's standard layout (overrides [data].root)")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    run.add_argument("--results-dir", help="where to write <name>.json and plots (default: experiments/results)")
    run.add_argument("--checkpoint-dir", help="where checkpoints go (default: experiments/checkpoints/<name>)")
    run.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    run.add_argument("--rules", nargs="+", help="only the runs with these rule names or labels, in this order "
                                                 "(the other runs of an existing results file are kept)")
    run.add_argument("--seeds", type=int, nargs="+", help="only these seeds of each run, in place of its `seeds` "
                                                           "(the other records of an existing results file are kept)")
    run.add_argument("--precision", choices=PRECISIONS,
                     help="compute precision in place of the experiment's "
                     "[unsupervised] precision (auto: bf16 where the device computes it natively, else fp32)")
    run.add_argument("--compile", action="store_true",
                     help="rate-mode layers learn and infer through torch.compile: faster, equal to float rounding "
                          "(needs a C++ compiler on CPU; tens of seconds of compiling per layer)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--parallel", choices=("none", "pipeline", "data", "pipeline+data"), default="none",
                     help="under torchrun: one pipeline stage (consecutive layers) per process, data-parallel "
                          "replicas, or both (with --stages); see liouna_snn.training.distributed")
    run.add_argument("--stages", type=int, help="pipeline stages for --parallel pipeline+data (divides the processes)")
    run.add_argument("--layers-per-stage", help="layers of each stage, e.g. 2,1 (default: balance multiply-adds)")
    run.add_argument("--dist-timeout", type=float, default=300.0,
                     help="seconds any rank waits for another before the run fails (default 300)")
    run.set_defaults(func=_run)
    export = sub.add_parser("export", help="export a trained run's network to a plain PyTorch CNN "
                                           "(model.safetensors + architecture.json + load_model.py)")
    export.add_argument("experiment", help="path to experiments/<name>.toml (trained with `liouna-snn run`)")
    export.add_argument("--label", required=True, help="the run's label (its `label`, else its `rule`)")
    export.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    export.add_argument("--out", help="export folder (default: experiments/exports/<name>/<label>_seed<seed>)")
    export.add_argument("--checkpoint-dir", help="where the run's checkpoints are (default: "
                                                 "experiments/checkpoints/<name>)")
    export.add_argument("--data-root", help="dataset folder, to record the input standardisation (overrides [data].root)")
    export.add_argument("--no-input-stats", action="store_true", help="do not load the training set to record "
                                                                       "the input mean / std")
    export.add_argument("--allow-unfinished", action="store_true", help="export the checkpoint of an unfinished run")
    export.add_argument("--precision", choices=("bf16", "fp32"), help="the network trained in this precision, where "
                        "the run was trained in both (default: its first checkpoint, <label>_seed<s>.pt); the "
                        "second precision's checkpoint (<label>_seed<s>_<precision>.pt) exports to "
                        "<label>_seed<s>_<precision>/")
    export.add_argument("--format", choices=("plain", "nir"), default="plain",
                        help="plain: a PyTorch CNN (rate mode); nir: <out>/network.nir, a NIR graph of a spiking run")
    export.add_argument("--approximate-reset", action="store_true",
                        help="nir: write subtractive-reset neurons as NIR's reset-to-value neurons (else an error)")
    export.set_defaults(func=_export)
    transfer = sub.add_parser("transfer", help="pre-train on a source dataset, probe every layer on a target dataset "
                                               "(experiments/transfer.toml)")
    transfer.add_argument("experiment", help="path to a transfer experiment TOML")
    transfer.add_argument("--data-root", help="folder holding the datasets (overrides the file's roots)")
    transfer.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    transfer.add_argument("--results-dir", help="where <name>.json goes (default: experiments/results)")
    transfer.add_argument("--checkpoint-dir", help="where pre-training checkpoints go (default: "
                                                   "experiments/checkpoints/<name>)")
    transfer.add_argument("--rules", nargs="+", help="only the runs with these rule names or labels, in this order")
    transfer.add_argument("--transfers", nargs="+", metavar="SOURCE:TARGET",
                          help="only these [[transfers]], e.g. cifar10:imagenette (the source's dataset or experiment "
                               "file stem, the target's dataset); the file's other results are kept")
    transfer.add_argument("--precision", choices=PRECISIONS,
                          help="compute precision in place of the file's [unsupervised] precision and the "
                          "end-to-end runs' own (auto: bf16 where the device computes it natively)")
    transfer.add_argument("--probe-layers", nargs="+", metavar="LAYER",
                          help="'all' or 1-based depths to probe, e.g. 3, in place of the file's [probe] layers")
    transfer.add_argument("--quiet", action="store_true", help="no progress bars")
    transfer.set_defaults(func=_transfer)
    low = sub.add_parser("low-compute", help="probe accuracy of Hebbian, blockwise SSL, end-to-end SSL and supervised "
                                             "methods within wall-clock training budgets (issue 5)")
    from .low_compute import add_arguments   # argparse only; the heavy imports happen in run_low_compute
    add_arguments(low)
    low.set_defaults(func=_low_compute)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"liouna-snn: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
