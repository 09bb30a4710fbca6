"""Pipelined and data-parallel training on torch.distributed (gloo on localhost, 2-4 processes).

Every rank runs ``tests/distributed_worker.py`` with the environment ``torchrun`` sets; the runs are
compared with single-process training of the same network here. Each process group is bounded by
``subprocess`` timeouts, so a hang fails the test instead of stalling the suite.
"""
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from liouna_snn import build_network, rule_config
from liouna_snn.training.distributed import ShardReducer, balanced_split, layer_macs, plan_layout, train_parallel

from .distributed_worker import TINY_SPEC, tiny_setup

WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = WORKER.parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(options: dict, processes: int, out: Path, timeout: float = 60,
            grace: float = 15) -> list[tuple[int, str, float]]:
    """Start ``processes`` ranks; ``(returncode, output, seconds until it ended)`` per rank.

    Ranks still running ``grace`` seconds after another rank failed, or at ``timeout``, are killed
    (as ``torchrun`` does), so nothing here can hang.
    """
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(processes),
               OMP_NUM_THREADS="1")
    t0 = time.monotonic()
    logs = [open(out / f"rank{r}.log", "w+") for r in range(processes)]
    procs = [subprocess.Popen([sys.executable, str(WORKER), json.dumps(options), str(out)], cwd=ROOT,
                              env=env | {"RANK": str(r), "LOCAL_RANK": str(r)}, stdout=logs[r],
                              stderr=subprocess.STDOUT) for r in range(processes)]
    ended, deadline = [None] * processes, t0 + timeout
    try:
        while any(e is None for e in ended) and time.monotonic() < deadline:
            time.sleep(0.05)
            for r, p in enumerate(procs):
                if ended[r] is None and p.poll() is not None:
                    ended[r] = time.monotonic() - t0
                    if p.returncode != 0:
                        deadline = min(deadline, time.monotonic() + grace)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = []
    for r, (p, log) in enumerate(zip(procs, logs)):
        log.seek(0)
        results.append((p.returncode, log.read(), ended[r] if ended[r] is not None else float("inf")))
        log.close()
    return results


def _run_ok(runs: list[dict], processes: int, out: Path) -> list[list[dict]]:
    """Train every options dict of ``runs`` in one process group; per run, every rank's saved result."""
    results = _launch(runs, processes, out)
    for r, (code, output, _) in enumerate(results):
        assert code == 0, f"rank {r} failed:\n{output[-3000:]}"
    return [[torch.load(out / f"rank{r}_run{k}.pt", weights_only=False) for r in range(processes)]
            for k in range(len(runs))]


def _reference_run(options: dict) -> dict:
    """The run of ``options`` in one process (``mode = "none"`` in a worker, which runs it with
    ``train_unsupervised`` on one thread in the same conditions as the ranks: CPU kernels sum in an order
    that depends on the thread count, so only equal conditions can agree bit for bit)."""
    return options | {"mode": "none", "reference_of": options["mode"]}


def _max_difference(a: dict, b: dict) -> float:
    """Largest difference over every weight and buffer, relative to the tensor's largest magnitude if above 1
    (batch-norm running variances reach 100s)."""
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max() / max(1.0, float(b[k].double().abs().max())))
               for k in a)


@contextlib.contextmanager
def _one_process_group():
    """A gloo group of this process alone (world size 1)."""
    store = torch.distributed.HashStore()
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def _weights_moved(options: dict, state: dict) -> bool:
    _, fresh, *_ = tiny_setup(options)
    return all(not torch.equal(fresh.layers[i].weight, state[f"layers.{i}.weight"]) for i in range(len(fresh)))


PIPELINE = {"mode": "pipeline", "images": 160, "batch_size": 16, "epochs": 2, "layers_per_stage": [2, 1]}
GREEDY = {"mode": "pipeline", "schedule": "greedy", "images": 96, "batch_size": 16}
DATA = {"mode": "data", "images": 160, "batch_size": 16, "rule": "softhebb",
        "rule_options": {"lr": 0.05, "mask_ratio": 0.3, "mask_patch": 2}}


DATA_ALONE = DATA | {"batch_size": 8, "images": 80}  # one shard's worth of data per step, alone


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    """One 2-process group: the pipeline (2 + 1 layers), the greedy pipeline, data parallel, then the
    single-process references of those (the networks of rank 0)."""
    runs = [PIPELINE, GREEDY, DATA, *map(_reference_run, (PIPELINE, GREEDY, DATA, DATA_ALONE))]
    results = _run_ok(runs, 2, tmp_path_factory.mktemp("two"))
    return results[:3] + [r[0]["network"] for r in results[3:]]


# --- layout (no processes) ----------------------------------------------------------------------------


def test_layout_splits_layers_to_balance_cost_and_errors_name_allowed_values():
    net = build_network(TINY_SPEC, rule_config("softhebb"))
    macs = layer_macs(net, (16, 16))
    assert macs == [8 * 27 * 16 * 16, 16 * 72 * 8 * 8, 10 * 256]
    assert balanced_split([1.0, 1.0, 5.0], 2) == ((0, 1), (2,))
    assert balanced_split([5.0, 1.0, 1.0, 1.0], 2) == ((0,), (1, 2, 3))
    assert plan_layout(net, 3, "pipeline").stage_layers == ((0,), (1,), (2,))
    layout = plan_layout(net, 4, "pipeline+data", stages=2, layers_per_stage=[1, 2])
    assert (layout.stages, layout.replicas, layout.stage_layers) == (2, 2, ((0,), (1, 2)))
    assert layout.position(3) == (1, 1) and layout.rank(1, 0) == 2
    assert plan_layout(net, 2, "data").stage_layers == ((0, 1, 2),)
    with pytest.raises(ValueError, match="needs at least 4 layers, but the network has 3; use at most 3"):
        plan_layout(net, 4, "pipeline")
    with pytest.raises(ValueError, match="allowed: 1, 2, 3, 6"):
        plan_layout(net, 6, "pipeline+data", stages=4)
    with pytest.raises(ValueError, match="allowed: pipeline, data, pipeline\\+data"):
        plan_layout(net, 2, "model")
    with pytest.raises(ValueError, match=r"\[2, 2\] must list 2 positive counts summing to the 3 layers"):
        plan_layout(net, 2, "pipeline", layers_per_stage=[2, 2])


def test_cli_requires_torchrun_environment(tmp_path, capsys, monkeypatch):
    from liouna_snn.cli import main
    from .test_training import _write_experiment

    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    exp = _write_experiment(tmp_path)
    assert main(["run", str(exp), "--quiet", "--parallel", "pipeline"]) == 2
    assert "torchrun --nproc-per-node N -m liouna_snn run" in capsys.readouterr().err


def test_shard_reducer_mask_rows_are_the_global_batch_mask():
    """Each replica's mask is its rows of the mask one process draws for the global batch."""
    rule = rule_config("liouna", mask_ratio=0.5, mask_patch=2)
    from liouna_snn.rules import LocalRule

    local = LocalRule(rule)
    x = torch.randn(6, 3, 8, 8)
    whole = local.sample_visible(torch.randn(12, 3, 8, 8), torch.Generator().manual_seed(1))
    for replica in range(2):
        reducer = ShardReducer(None, replica, 2, None, "test")
        rows = reducer.sample_visible(local, x, torch.Generator().manual_seed(1))
        assert torch.equal(rows, whole[6 * replica:6 * (replica + 1)])
    assert 0.3 < float(whole.mean()) < 0.7


# --- equivalence with single-process training ---------------------------------------------------------


def test_pipeline_equals_single_process_simultaneous_schedule(two_process_runs, tmp_path):
    """3 stages (one layer each) and 2 stages (2 + 1 layers): bit-identical to one process."""
    reference = two_process_runs[3]
    assert _weights_moved(PIPELINE, reference)
    [three_stages] = _run_ok([PIPELINE | {"layers_per_stage": None}], 3, tmp_path)
    for ranks, stages in ((two_process_runs[0], 2), (three_stages, 3)):
        for state in ranks:  # every rank ends with the whole network
            assert _max_difference(state["network"], reference) == 0.0
        assert ranks[0]["summary"]["images"] == 160 * 2
        assert ranks[0]["summary"]["layout"]["stages"] == stages


def test_pipeline_greedy_schedule_equals_reference_run(two_process_runs):
    assert _max_difference(two_process_runs[1][1]["network"], two_process_runs[4]) == 0.0


def test_data_parallel_equals_single_process_on_the_global_batch(two_process_runs):
    """2 replicas on 8-image shards == one process on 16-image batches (weights within 1e-5, batch-norm
    statistics relative 1e-5), win counts and masks included (batch and running batch-norm)."""
    reference = two_process_runs[5]
    assert _weights_moved(DATA, reference)
    replica0, replica1 = (r["network"] for r in two_process_runs[2])
    assert _max_difference(replica0, reference) < 1e-5
    assert all(float((replica0[k] - reference[k]).abs().max()) < 1e-5 for k in replica0 if k.endswith("weight"))
    assert all(torch.equal(replica0[k], reference[k]) for k in replica0 if k.endswith("win_counts"))
    assert _max_difference(replica0, replica1) == 0.0
    # one shard's worth of data per step alone would differ: the replicas really exchanged their statistics
    assert _max_difference(two_process_runs[6], reference) > 1e-3


def test_pipeline_and_data_parallel_combined(tmp_path):
    """2 stages x 2 replicas (4 processes) == one process on the global batch (liouna, masked)."""
    options = {"mode": "pipeline+data", "stages": 2, "images": 64, "batch_size": 16,
               "rule": "liouna", "rule_options": {"lr": 0.02, "mask_ratio": 0.4}}
    ranks, [reference, *_] = _run_ok([options, _reference_run(options)], 4, tmp_path)
    reference = reference["network"]
    assert _weights_moved(options, reference)
    for state in ranks:
        assert _max_difference(state["network"], reference) < 1e-5
    assert ranks[0]["summary"]["layout"] == {"stages": 2, "replicas": 2, "stage_layers": ((0,), (1, 2)),
                                             "mode": "pipeline+data"}


# --- failures and resumption ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode,hang", [("pipeline", False), ("data", False), ("pipeline", True)])
def test_a_dead_or_hung_rank_fails_the_run_fast(tmp_path, mode, hang):
    options = {"mode": mode, "images": 320, "batch_size": 16, "epochs": 4, "die_rank": 1, "die_at_step": 3,
               "hang": hang, "timeout_s": 4}
    results = _launch(options, 2, tmp_path, timeout=40, grace=10 if not hang else 0.5)
    (code0, output0, seconds0), (code1, _, _) = results
    assert code1 != 0
    assert code0 != 0, output0[-2000:]
    assert "PeerFailure" in output0 and "rank 0 (stage 0" in output0, output0[-3000:]
    assert "another rank died or stopped responding" in output0
    assert seconds0 < 25


def test_killed_pipeline_resumes_from_stage_checkpoints_to_identical_weights(tmp_path):
    ckpt = tmp_path / "ckpt" / "run.pt"
    options = {"mode": "pipeline", "images": 160, "batch_size": 16, "epochs": 2, "checkpoint_every": 3,
               "checkpoint": str(ckpt), "timeout_s": 4}
    results = _launch(options | {"die_rank": 1, "die_at_step": 28}, 2, tmp_path / "crash", timeout=40)
    assert all(code != 0 for code, _, _ in results)
    saved = sorted(p.name for p in ckpt.parent.iterdir())
    assert "run.pt.stage1.step000000013.pt" in saved and "run.pt.stage0.step000000013.pt" in saved
    assert len([n for n in saved if ".stage0." in n]) <= 2  # only the newest two are kept
    ranks, [reference, _] = _run_ok([options, _reference_run(options | {"checkpoint": None})], 2,
                                    tmp_path / "resumed")
    assert _max_difference(ranks[0]["network"], reference["network"]) == 0.0
    assert _max_difference(ranks[1]["network"], reference["network"]) == 0.0
    # another layout (here: one process, one stage) is refused with an error naming the problem
    _, net, config, mean, std = tiny_setup(options)
    with _one_process_group():
        with pytest.raises(ValueError, match="other options or another layout"):
            train_parallel(net, tiny_setup(options)[0], config, "pipeline", checkpoint=ckpt, progress=False)


def test_torchrun_cli_trains_in_parallel_and_rank_0_writes_results(tmp_path):
    from .test_training import _write_experiment

    exp = _write_experiment(tmp_path)  # 2 layers, greedy schedule, softhebb + random runs
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([str(torchrun), "--nproc-per-node", "2", "--master-port", str(_free_port()), "-m",
                           "liouna_snn", "run", str(exp), "--parallel", "data", "--quiet", "--dist-timeout", "30"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("training /") == 1  # only rank 0 prints the table
    saved = json.loads((tmp_path / "experiments" / "results" / "tiny.json").read_text())
    assert [r["rule"] for r in saved["runs"]] == ["softhebb", "random"]
    assert all(r["parallel"] == {"stages": 1, "replicas": 2, "stage_layers": [[0, 1]], "mode": "data"}
               for r in saved["runs"])
    assert sorted(p.name for p in (tmp_path / "experiments" / "checkpoints" / "tiny").iterdir())[0].startswith(
        "random_seed0.pt.stage0.step")
