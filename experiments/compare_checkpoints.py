"""Whether two training checkpoints hold the same trained network, tensor for tensor, and how long each trained.

Two backends that spike alike (e.g. the native integrate-and-fire neuron and snnTorch's ``Leaky`` with beta 1,
see ``liouna_snn.neurons.backends``) must learn the very same network from the same seed and data; this checks
it at full scale from the checkpoints ``rate_vs_spiking.py`` leaves in ``experiments/checkpoints/``, without
evaluating anything. State only one of them has (a backend's own buffers) is listed, not compared.

    python experiments/compare_checkpoints.py A.pt B.pt [--out experiments/results/NAME.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def compare(a_path: Path, b_path: Path) -> dict:
    """``{"checkpoints", "shared_tensors", "differing", "only_in", "max_abs_difference", "training_seconds"}``."""
    a, b = (torch.load(p, map_location="cpu", weights_only=False) for p in (a_path, b_path))
    for path, ckpt in ((a_path, a), (b_path, b)):
        if not isinstance(ckpt, dict) or "network" not in ckpt:
            raise ValueError(f"{path}: not a liouna_snn training checkpoint (no 'network' state)")
    sa, sb = a["network"], b["network"]
    shared = sorted(set(sa) & set(sb))
    differing = {k: float((sa[k].double() - sb[k].double()).abs().max()) for k in shared
                 if sa[k].shape != sb[k].shape or not torch.equal(sa[k], sb[k])}
    return {"checkpoints": [str(a_path), str(b_path)], "shared_tensors": len(shared),
            "differing": sorted(differing), "max_abs_difference": max(differing.values(), default=0.0),
            "only_in": {str(a_path): sorted(set(sa) - set(sb)), str(b_path): sorted(set(sb) - set(sa))},
            "training_seconds": [round(float(a.get("elapsed", float("nan"))), 1),
                                 round(float(b.get("elapsed", float("nan"))), 1)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--out", type=Path, help="also write the comparison as JSON here")
    args = parser.parse_args(argv)
    for path in (args.a, args.b):
        if not path.is_file():
            print(f"error: no checkpoint at {path}", file=sys.stderr)
            return 2
    result = compare(args.a, args.b)
    result["command"] = "python experiments/compare_checkpoints.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"{result['shared_tensors']} shared tensors, {len(result['differing'])} differ "
          f"(max |difference| {result['max_abs_difference']:.3g}); training {result['training_seconds'][0]} s "
          f"and {result['training_seconds'][1]} s")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
