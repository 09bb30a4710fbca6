"""One rank of a distributed test run (started by tests/test_distributed.py with torchrun's environment).

Usage: ``python tests/distributed_worker.py '<json options or a list of them>' OUT_DIR``. Trains the tiny
network of :func:`tiny_setup` with :func:`train_parallel` (each options dict in turn, in one process group;
``mode = "none"``: with :func:`train_unsupervised` alone, the single-process reference)
and saves this rank's whole network to ``OUT_DIR/rank<r>_run<k>.pt``. ``die_rank`` / ``die_at_step`` make
one rank exit abruptly (``hang``: stop responding) at its ``die_at_step``-th call of ``learn_layer``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from liouna_snn import build_network, rule_config  # noqa: E402
from liouna_snn.data import load_dataset  # noqa: E402
from liouna_snn.training import TrainConfig, train_unsupervised  # noqa: E402

TINY_SPEC = {
    "name": "tiny", "input_channels": 3, "input_size": 16,
    "layers": [
        {"out_channels": 8, "kernel_size": 3, "padding": 1, "padding_mode": "reflect",
         "activation": {"name": "triangle", "power": 0.7}, "pool": {"type": "max", "kernel_size": 2}},
        {"out_channels": 16, "kernel_size": 3, "padding": 1, "norm": "running",
         "activation": {"name": "triangle", "power": 1.0}, "pool": {"type": "avg", "kernel_size": 2}},
        {"type": "linear", "out_channels": 10, "activation": "relu"},
    ],
}


def tiny_setup(options: dict):
    """The data, network and config of a test run described by ``options`` (also used single-process)."""
    data = load_dataset("cifar10-mini", split="train").subset(options.get("images", 160))
    data.images = data.images[:, :, 8:24, 8:24].contiguous()
    rule = rule_config(options.get("rule", "softhebb"), **options.get("rule_options", {"lr": 0.05}))
    net = build_network(TINY_SPEC, rule, seed=options.get("seed", 0))
    config = TrainConfig(schedule=options.get("schedule", "simultaneous"), batch_size=options.get("batch_size", 16),
                         epochs=options.get("epochs", 1), seed=options.get("seed", 0),
                         checkpoint_every=options.get("checkpoint_every", 1000))
    mean, std = data.channel_stats()
    return data, net, config, mean, std


def main() -> None:
    runs, out = json.loads(sys.argv[1]), Path(sys.argv[2])
    torch.set_num_threads(1)
    from liouna_snn.training.distributed import train_parallel

    for k, options in enumerate(runs if isinstance(runs, list) else [runs]):  # one process group, run after run
        data, net, config, mean, std = tiny_setup(options)
        rank = int(os.environ["RANK"])
        if options.get("die_rank") == rank:
            calls = {"n": 0}
            original = net.learn_layer

            def dying(i, h, p, g=None, original=original, calls=calls, options=options):
                calls["n"] += 1  # dies at its `die_at_step`-th learning call (0-based)
                if calls["n"] > options["die_at_step"]:
                    if options.get("hang"):
                        time.sleep(600)
                    os._exit(17)
                return original(i, h, p, g)

            net.learn_layer = dying
        if options["mode"] == "none":  # the single-process reference, in the same conditions as the ranks
            summary = train_unsupervised(net, data, config, mean=mean, std=std, progress=False)
            torch.save({"network": net.state_dict(), "summary": summary}, out / f"rank{rank}_run{k}.pt")
            continue
        summary = train_parallel(net, data, config, options["mode"], stages=options.get("stages"),
                                 layers_per_stage=options.get("layers_per_stage"), mean=mean, std=std,
                                 checkpoint=options.get("checkpoint"), progress=False,
                                 timeout_s=options.get("timeout_s", 30))
        torch.save({"network": net.state_dict(), "summary": summary}, out / f"rank{rank}_run{k}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
