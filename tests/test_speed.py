"""experiments/speed.py: the epoch benchmark's schedules, per-layer accounting and table."""
import json

import pytest

from .conftest import load_experiment_script

speed = load_experiment_script("speed")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("speed") / "speed.json"
    with pytest.MonkeyPatch.context() as mp:  # the peak-rate matmuls take minutes where bf16 is emulated
        mp.setattr(speed, "matmul_gflops", lambda dtype: 1.0)
        code = speed.main(["--dataset", "cifar10-mini", "--images", "60", "--batch-sizes", "20", "--rules", "softhebb",
                       "--schedules", "greedy", "simultaneous", "--precision", "fp32", "--quiet",
                           "--out", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def test_each_schedule_times_every_layer_and_extrapolates_to_the_training_set(results):
    greedy, simultaneous = results["runs"]
    assert (greedy["schedule"], simultaneous["schedule"]) == ("greedy", "simultaneous")
    for run in results["runs"]:
        assert [layer["layer"] for layer in run["layers"]] == [1, 2, 3]
        assert all(layer["seconds"] > 0 for layer in run["layers"])
        # both are rounded to 0.1 s before the file is written
        assert run["epoch_seconds_full"] == pytest.approx(run["seconds"] * 4000 / 60, abs=0.05 * 4000 / 60 + 0.1)
    # greedy counts the frozen layers' forward passes again under each deeper layer; simultaneous does not
    g, s = ([layer["gflop"] for layer in run["layers"]] for run in (greedy, simultaneous))
    assert g[0] == s[0] and g[1] > s[1] and g[2] > s[2]
    # simultaneous layers are timed inside their own calls only: data loading and recalibration come on top
    assert sum(layer["seconds"] for layer in simultaneous["layers"]) <= simultaneous["seconds"] + 0.05


def test_the_table_names_each_runs_schedule(results):
    rows = [line for line in speed.table(results).splitlines() if line.startswith("| softhebb")]
    assert [row.split(" | ")[1] for row in rows] == ["greedy", "simultaneous"]


def test_an_unknown_schedule_is_refused(capsys):
    with pytest.raises(SystemExit):
        speed.main(["--dataset", "cifar10-mini", "--schedules", "pipelined"])
    assert "invalid choice: 'pipelined'" in capsys.readouterr().err


def test_the_timed_rules_are_the_accuracy_benchmarks_runs():
    softhebb = speed.benchmark_rules("softhebb", 3)
    assert [r.lr for r in softhebb] == [0.08, 0.005, 0.01] and [r.inverse_temperature for r in softhebb] == [1.0, 0.65, 0.25]
    hybrid = speed.benchmark_rules("softhebb-L1+liouna-column-mask75", 3)
    assert [r.inhibition for r in hybrid] == ["self", "column", "column"]
    assert [r.mask_ratio for r in hybrid] == [0.0, 0.75, 0.75] and hybrid[0].anti_hebbian and not hybrid[1].anti_hebbian


def test_the_table_says_which_runs_were_compiled(results):
    edited = {**results, "runs": [results["runs"][0], {**results["runs"][0], "compiled": True}]}
    rows = [line for line in speed.table(edited).splitlines() if line.startswith("| softhebb")]
    assert [row.split(" | ")[2] for row in rows] == ["no", "yes"]
