"""Command line: ``liouna-snn run experiments/<name>.toml``."""
from __future__ import annotations

import argparse
import sys


def _run(args) -> int:
    from .experiment import run_experiment, summary_table

    results = run_experiment(args.experiment, data_root=args.data_root, device=args.device,
                             results_dir=args.results_dir, checkpoint_dir=args.checkpoint_dir,
                             download=args.download, progress=not args.quiet, only_rules=args.rules)
    print()
    print(f"{results['experiment']} on {results['device']}: {results['train_images']} training / "
          f"{results['test_images']} test images")
    print(summary_table(results))
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
    run.add_argument("--rules", nargs="+", help="only the runs with these rule names or labels (the other runs of "
                                                 "an existing results file are kept)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"liouna-snn: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
