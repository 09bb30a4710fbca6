"""The low-compute comparison (issue 5): probe accuracy reached within wall-clock training budgets.

    python experiments/low_compute.py --data-root DIR                          # budgets 2, 5, 10, 20, 40 min
    python experiments/low_compute.py --budgets 20 --dataset cifar10-mini \\
        --train-subset 512 --test-subset 256 --width 16 --probe-epochs 3      # a quick end-to-end check

Same as ``liouna-snn low-compute``; see :mod:`liouna_snn.low_compute` for the methods and outputs
(``experiments/results/low_compute.{json,md,png}``).
"""
import sys

from liouna_snn.low_compute import main

if __name__ == "__main__":
    sys.exit(main())
