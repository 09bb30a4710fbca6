"""experiments/rate_vs_spiking.py: end to end on a tiny config (results schema, the targets in the table,
skipping finished runs), the verdicts of the targets, and its configuration errors."""
import json
import re
import shutil

import pytest
import torch

from liouna_snn.training import load_checkpoint

from .conftest import SMALL_SPEC_TOML, load_experiment_script

driver = load_experiment_script("rate_vs_spiking")

# The tiny benchmark's [spiking] options whose defaults changed (liouna_snn.spiking.LEGACY_DEFAULTS), as these tests
# were written: the drive as current, no inhibition, from rest, the rule on count / T; the labels stay short.
LEGACY_SPIKING = ('lateral_inhibition = "none"\ncurrent_norm = "none"\ninitial_membrane = "rest"\n'
                  'inference_initial_membrane = "rest"\nlearning_code = "rate"\n')
MATCHED = ('[neuron_params]\n'
           'native-lif = { beta = 0.9, threshold = 1.0, reset = "zero" }\n'
           'snntorch-leaky = { beta = 0.9, threshold = 1.0, reset = "zero" }\n'
           'norse-lifbox = { beta = 0.9, threshold = 1.0, reset = "zero", dt = 1e-3 }\n')


def _write_config(tmp_path, neuron_params=MATCHED, spiking=LEGACY_SPIKING):
    """A 3-layer toy model, a base experiment on 40 / 20 mini images, and the benchmark config over it."""
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "small.toml").write_text(SMALL_SPEC_TOML)
    exp_dir = tmp_path / "experiments"
    exp_dir.mkdir(exist_ok=True)
    (exp_dir / "base.toml").write_text(
        'model = "small"\n[data]\ndataset = "cifar10-mini"\ntrain_subset = 40\ntest_subset = 20\n'
        '[unsupervised]\nbatch_size = 20\n[probe]\nepochs = 1\nknn_k = 5\n'
        '[[runs]]\nrule = "softhebb"\n[[runs]]\nrule = "liouna"\noptions = { lr = 0.05 }\n')
    config = exp_dir / "rvs.toml"
    config.write_text(
        'base_experiment = "base.toml"\nrun = "liouna"\nneurons = ["native-lif", "snntorch-leaky"]\n'
        'time_steps = [2, 4]\n[spiking]\nencoder = "constant-current"\n' + spiking + neuron_params +
        '[targets]\nneuron = "native-lif"\ntime_steps = 4\nmax_accuracy_drop = 2.0\nmax_time_ratio = 3.0\n')
    return config


def test_driver_end_to_end_writes_schema_table_and_plot_and_skips_finished_runs(tmp_path, capsys):
    config = _write_config(tmp_path)
    out = tmp_path / "results" / "rvs"
    args = ["--config", str(config), "--out", str(out), "--device", "cpu", "--quiet"]
    assert driver.main(args) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    runs = results["runs"]
    assert sorted((r["mode"], r["neuron"], r["time_steps"]) for r in runs) == [
        ("rate", "rate", 1), ("spiking", "native-lif", 2), ("spiking", "native-lif", 4),
        ("spiking", "snntorch-leaky", 2), ("spiking", "snntorch-leaky", 4)]
    for r in runs:
        assert r["rule"] == "liouna" and r["rule_options"][0]["lr"] == 0.05  # the base experiment's liouna run
        assert (r["dataset"], r["train_images"], r["test_images"]) == ("cifar10-mini", 40, 20)
        assert r["unsup_seconds"] >= 0 and r["unsup_images_per_second"] > 0 and r["batch_size"] == 20
        assert [l["layer"] for l in r["layers"]] == [1, 2, 3]
        for layer in r["layers"]:
            assert 0 <= layer["probe_top1"] <= 100 and 0 <= layer["knn_top1"] <= 100
            assert ("activity" in layer) == (r["mode"] == "spiking")
        if r["mode"] == "spiking":
            assert r["spiking"]["neuron_params"]["threshold"] == 1.0 and r["spiking"]["time_steps"] == r["time_steps"]
            assert [a["layer"] for a in r["layer_activity"]] == [1, 2, 3]
            for layer in r["layers"]:
                a = layer["activity"]["inference"]
                assert 0 <= a["firing_rate_mean"] <= 1 and 0 <= a["silent_fraction"] <= 1
                assert 0 <= a["saturated_fraction"] <= 1
    # Matched parameters: snnTorch's Leaky spikes exactly like the native LIF, so the same features and accuracies.
    by_key = {(r["neuron"], r["time_steps"]): r for r in runs}
    for T in (2, 4):
        assert ([(l["probe_top1"], l["knn_top1"]) for l in by_key["native-lif", T]["layers"]]
                == [(l["probe_top1"], l["knn_top1"]) for l in by_key["snntorch-leaky", T]["layers"]])

    table = out.with_suffix(".md").read_text()
    assert len(re.findall(r"^\| (rate|spiking) \|", table, flags=re.M)) == 5
    rate, native = by_key["rate", 1], by_key["native-lif", 4]
    gap = rate["probe_top1"] - native["probe_top1"]
    ratio = native["unsup_seconds"] / max(rate["unsup_seconds"], 1e-9)  # times are rounded to 0.1 s: may be 0
    accuracy_line = next(line for line in table.splitlines() if line.startswith("- Accuracy target"))
    time_line = next(line for line in table.splitlines() if line.startswith("- Time target"))
    assert "native-lif (beta 0.9, threshold 1, reset zero) at T = 4 within 2 points of rate mode" in accuracy_line
    assert accuracy_line.endswith(f"**{'met' if gap <= 2.0 else 'not met'}**")
    assert "native-lif (beta 0.9, threshold 1, reset zero) at T = 4 at most 3x rate mode's unsupervised wall time" in time_line
    assert time_line.endswith(f"**{'met' if ratio <= 3.0 else 'not met'}**")
    assert out.with_suffix(".png").stat().st_size > 10_000

    capsys.readouterr()
    assert driver.main(args + ["--probe-layers", "3"]) == 0  # every run already probed layer 3: nothing to do
    assert capsys.readouterr().out.count("skipped") == 5
    assert json.loads(out.with_suffix(".json").read_text())["runs"] == runs

    # Results written before lateral_inhibition existed lack it: they are still the same (uninhibited) runs.
    old = json.loads(out.with_suffix(".json").read_text())
    for r in old["runs"]:
        for spiking in (r.get("spiking"), r["conditions"].get("spiking")):
            if spiking is not None:
                del spiking["lateral_inhibition"]
    out.with_suffix(".json").write_text(json.dumps(old))
    assert driver.main(args) == 0
    assert capsys.readouterr().out.count("skipped") == 5
    out.with_suffix(".json").write_text(json.dumps({**old, "runs": runs}))

    # Lateral inhibition is a run of its own, beside the uninhibited one, and the targets follow [spiking].
    config.write_text(config.read_text().replace('lateral_inhibition = "none"', 'lateral_inhibition = "mean"'))
    assert driver.main(args + ["--neurons", "native-lif", "--time-steps", "4"]) == 0
    assert "liouna-rate: already in" in capsys.readouterr().out
    after = json.loads(out.with_suffix(".json").read_text())["runs"]
    assert after[:5] == runs and len(after) == 6
    inhibited = after[5]
    assert (inhibited["label"], inhibited["spiking"]["lateral_inhibition"]) == ("liouna-native-lif-T4-mean-inhibition", "mean")
    table = out.with_suffix(".md").read_text()
    assert len(re.findall(r"^\| spiking \| native-lif \| beta 0.9, threshold 1, reset zero \| mean inhibition \| 4 \|",
                          table, flags=re.M)) == 1
    accuracy_line = next(line for line in table.splitlines() if line.startswith("- Accuracy target"))
    assert f"{inhibited['probe_top1']:.2f} % vs {rate['probe_top1']:.2f} %" in accuracy_line
    assert "native-lif (beta 0.9, threshold 1, reset zero; mean inhibition) at T = 4" in accuracy_line

    # Runs of another precision are kept beside these, in a table of their own compared with their own rate run;
    # --report rewrites the table from the JSON without training anything.
    results = json.loads(out.with_suffix(".json").read_text())
    here = results["unsupervised"]["precision"]
    other = "fp32" if here == "bf16" else "bf16"
    elsewhere = []
    for r in (rate, native):
        r = json.loads(json.dumps(r))
        r["conditions"]["unsupervised"]["precision"] = other
        r["unsup_seconds"] = {"rate": 100.0, "spiking": 400.0}[r["mode"]]
        elsewhere.append(r)
    out.with_suffix(".json").write_text(json.dumps({**results, "runs": results["runs"] + elsewhere}))
    capsys.readouterr()
    assert driver.main(args + ["--report"]) == 0
    assert ": best probe" not in capsys.readouterr().out  # nothing trained ("<label>: best probe 12.34 %")
    assert json.loads(out.with_suffix(".json").read_text())["runs"] == results["runs"] + elsewhere
    table = out.with_suffix(".md").read_text()
    first, second = table.split(f"**{other}**")
    assert f"**{here}**" in first and len(re.findall(r"^\| (rate|spiking) \|", first, flags=re.M)) == 6
    assert len(re.findall(r"^\| (rate|spiking) \|", second, flags=re.M)) == 2
    assert "| 400.0 | 4.00x |" in second
    time_lines = [line for line in second.splitlines() if line.startswith("- Time target")]
    assert len(time_lines) == 1 and "400.0 s vs 100.0 s (4.00x): **not met**" in time_lines[0]
    # Both measured currents of the target neuron get their verdicts in the first table, the configured one first,
    # then the other backend measured at the target T.
    assert [line.split(" at T = ")[0] for line in first.splitlines() if line.startswith("- Accuracy target")] == [
        "- Accuracy target: native-lif (beta 0.9, threshold 1, reset zero; mean inhibition)",
        "- Accuracy target: native-lif (beta 0.9, threshold 1, reset zero)",
        "- Accuracy target: snntorch-leaky (beta 0.9, threshold 1, reset zero)"]


def test_report_without_results_is_an_error_naming_the_missing_file(tmp_path, capsys):
    config = _write_config(tmp_path)
    out = tmp_path / "nothing" / "rvs"
    assert driver.main(["--config", str(config), "--out", str(out), "--device", "cpu", "--report"]) == 2
    assert f"--report: no results at {out.with_suffix('.json')}" in capsys.readouterr().err
    assert not out.parent.exists()


def test_report_needs_only_the_results_json_and_shows_its_own_invocation(tmp_path):
    """--report renders from the JSON alone: a dataset whose files are absent is never loaded, and the table is
    headed by the command that wrote the results, with the runs of that command's dataset and image counts."""
    config = _write_config(tmp_path)
    out = tmp_path / "results" / "rvs"
    conditions = {"dataset": "cifar10", "train_images": 50000, "test_images": 10000, "seed": 0,
                  "unsupervised": {"precision": "fp32"}}

    def run(mode, acc, seconds, train_images=50000):
        return {"mode": mode, "neuron": "rate" if mode == "rate" else "native-lif", "time_steps": 1 if mode == "rate"
                else 4, "unsup_seconds": seconds, "device": "cpu", "cpu": "x86_64", "threads": 2,
                "spiking": None if mode == "rate" else {"neuron_params": {"beta": 0.9, "threshold": 1.0,
                                                                          "reset": "zero"}},
                "conditions": {**conditions, "train_images": train_images},
                "layers": [{"layer": d, "probe_top1": acc, "knn_top1": acc - 10} for d in (1, 2, 3)]}

    results = {"command": "python experiments/rate_vs_spiking.py --data-root /elsewhere", "git_commit": "0123456789abc",
               "torch": "2.x", "device": "cpu", "cpu": "x86_64", "threads": 2, "dataset": "cifar10",
               "train_images": 50000, "test_images": 10000,
               "unsupervised": {"schedule": "greedy", "epochs": 1, "batch_size": 10, "precision": "fp32"},
               "probe": {"epochs": 50}, "targets": {},
               "runs": [run("rate", 71.0, 100.0), run("spiking", 70.0, 150.0), run("spiking", 50.0, 1.0, 300)]}
    out.parent.mkdir()
    out.with_suffix(".json").write_text(json.dumps(results))
    args = ["--config", str(config), "--out", str(out), "--device", "cpu", "--dataset", "cifar10",
            "--data-root", str(tmp_path / "no-data-here"), "--probe-layers", "3", "--report"]
    assert driver.main(args) == 0
    table = out.with_suffix(".md").read_text()
    assert table.startswith("Latest invocation: `python experiments/rate_vs_spiking.py --data-root /elsewhere` — "
                            "commit `0123456789`")
    assert "cifar10: 50000 train / 10000 test images" in table
    assert len(re.findall(r"^\| (rate|spiking) \|", table, flags=re.M)) == 2  # the 300-image run is not shown
    assert "| native-lif | beta 0.9, threshold 1, reset zero |  | 70.00 (-1.00, 1.50x, machine 1) |" in table
    assert out.with_suffix(".png").is_file()
    assert json.loads(out.with_suffix(".json").read_text()) == results


@pytest.mark.parametrize("rate_s,native_s,rate_acc,native_acc,verdicts", [
    (100.0, 300.0, 70.0, 68.0, ["met", "met"]),
    (100.0, 300.1, 70.0, 67.99, ["not met", "not met"]),
    (100.0, None, 70.0, None, ["not measured", "not measured"]),
])
def test_targets_compare_native_lif_at_the_target_T_with_rate_mode(rate_s, native_s, rate_acc, native_acc, verdicts):
    def run(mode, neuron, T, acc, seconds):
        return {"mode": mode, "neuron": neuron, "time_steps": T, "unsup_seconds": seconds,
                "spiking": None if mode == "rate" else {"neuron_params": {"threshold": 2.0}},
                "layers": [{"layer": 1, "probe_top1": 99.0}, {"layer": 3, "probe_top1": acc}]}

    runs = [run("rate", "rate", 1, rate_acc, rate_s), run("spiking", "native-lif", 4, 99.0, 1.0)]
    if native_s is not None:
        runs.append(run("spiking", "native-lif", 8, native_acc, native_s))
    targets = {"neuron": "native-lif", "time_steps": 8, "max_accuracy_drop": 2.0, "max_time_ratio": 3.0,
               "spiking": {"neuron_params": {"threshold": 2.0}}}
    lines = driver.target_lines(runs, targets, depths=[3])  # layer 1 (99 %) is not among the compared layers
    assert [re.search(r"\*\*(.*)\*\*$", line).group(1) for line in lines] == verdicts


def test_wall_times_of_another_machine_are_not_compared():
    """A spiking run timed on another CPU keeps its accuracy verdict; its time is not divided by rate mode's."""
    def run(mode, neuron, T, acc, seconds, cpu):
        return {"mode": mode, "neuron": neuron, "time_steps": T, "unsup_seconds": seconds, "device": "cpu",
                "cpu": cpu, "threads": 2, "spiking": None if mode == "rate" else {"neuron_params": {"threshold": 2.0}},
                "layers": [{"layer": 3, "probe_top1": acc, "knn_top1": acc}]}

    runs = [run("rate", "rate", 1, 70.0, 100.0, "x86_64"),
            run("spiking", "native-lif", 8, 69.0, 50.0, "AMD EPYC, avx512_bf16, 2 cores")]
    targets = {"neuron": "native-lif", "time_steps": 8, "max_accuracy_drop": 2.0, "max_time_ratio": 3.0,
               "spiking": {"neuron_params": {"threshold": 2.0}}}
    accuracy, time = driver.target_lines(runs, targets, depths=[3])
    assert accuracy.endswith("(-1.00 points): **met**")
    assert time.endswith("50.0 s on cpu (AMD EPYC, avx512_bf16, 2 cores), 2 threads vs 100.0 s on cpu (CPU not "
                         "recorded), 2 threads, not comparable: **not measured**")
    spiking_row = [line for line in driver.precision_table(runs, [3]) if line.startswith("| spiking")][0]
    assert "| 50.0 | other machine |" in spiking_row
    runs[1]["cpu"] = "x86_64"  # both unnamed (the same old machine): compared as before
    assert driver.target_lines(runs, targets, depths=[3])[1].endswith("(0.50x): **met**")


def test_each_spiking_run_compares_with_the_rate_run_of_its_machine():
    """Two machines, a rate and a spiking run on each: every gap and time ratio is taken within one machine."""
    def run(mode, acc, seconds, cpu, threshold=2.0):
        return {"mode": mode, "neuron": "rate" if mode == "rate" else "native-lif", "time_steps": 1 if mode == "rate"
                else 8, "unsup_seconds": seconds, "device": "cpu", "cpu": cpu, "threads": 2,
                "spiking": None if mode == "rate" else {"neuron_params": {"threshold": threshold}},
                "layers": [{"layer": 3, "probe_top1": acc, "knn_top1": acc}]}

    a, b = "AMD EPYC, avx2, 2 cores", "AMD EPYC, avx512_bf16, 2 cores"
    runs = [run("rate", 71.0, 200.0, a), run("rate", 73.0, 100.0, b),
            run("spiking", 70.0, 300.0, a), run("spiking", 70.0, 400.0, b, threshold=3.0)]
    targets = {"neuron": "native-lif", "time_steps": 8, "max_accuracy_drop": 2.0, "max_time_ratio": 3.0,
               "spiking": {"neuron_params": {"threshold": 2.0}}}
    accuracy, time = driver.target_lines(runs, targets, depths=[3])
    assert accuracy.endswith("70.00 % vs 71.00 % (-1.00 points): **met**")
    assert time.endswith("300.0 s vs 200.0 s (1.50x): **met**")
    other = {**targets, "spiking": {"neuron_params": {"threshold": 3.0}}}
    accuracy, time = driver.target_lines(runs, other, depths=[3])
    assert accuracy.endswith("70.00 % vs 73.00 % (-3.00 points): **not met**")
    assert time.endswith("400.0 s vs 100.0 s (4.00x): **not met**")
    rows = [line for line in driver.precision_table(runs, [3]) if line.startswith("| spiking")]
    assert ["| -1.00 | 1 | 300.0 | 1.50x |" in rows[0], "| -3.00 | 2 | 400.0 | 4.00x |" in rows[1]] == [True, True]
    # a read-out computed on machine b compares with b's rate run; one without a machine, with its run's
    runs[2]["rate_readout"] = {"device": "cpu", "cpu": b, "threads": 2, "probe_top1": 72.0,
                               "layers": [{"layer": 3, "probe_top1": 72.0}]}
    runs[3]["rate_readout"] = {"probe_top1": 72.0, "layers": [{"layer": 3, "probe_top1": 72.0}]}
    rows = [line for line in driver.precision_table(runs, [3]) if line.startswith("| spiking")]
    assert "| 72.00 (-1.00) | 1 |" in rows[0] and "| 72.00 (-1.00) | 2 |" in rows[1]
    runs[3]["rate_readout"].update(device="cpu", cpu=a, threads=2)
    assert "| 72.00 (+1.00) | 2 |" in [line for line in driver.precision_table(runs, [3])
                                        if line.startswith("| spiking")][1]
    del runs[2]["rate_readout"], runs[3]["rate_readout"]
    runs.pop(0)  # machine a without a rate run: its spiking run falls back to the other one, accuracy only
    accuracy, time = driver.target_lines(runs, targets, depths=[3])
    assert accuracy.endswith("70.00 % vs 73.00 % (rate mode of another machine) (-3.00 points): **not met**")
    assert time.endswith("not comparable: **not measured**")


def test_the_grid_against_T_has_a_row_per_neuron_and_current_and_a_cell_per_run():
    """One row per backend, neuron and current; each cell the best probe with its machine's gap and time ratio;
    runs of one cell on two machines joined; a T a row has not run is '-'."""
    def run(mode, acc, seconds, cpu, T=8, threshold=3.0, membrane="rest"):
        return {"mode": mode, "neuron": "rate" if mode == "rate" else "native-lif", "time_steps": 1 if mode == "rate"
                else T, "unsup_seconds": seconds, "device": "cpu", "cpu": cpu, "threads": 2,
                "spiking": None if mode == "rate" else {"neuron_params": {"threshold": threshold},
                                                        "initial_membrane": membrane},
                "layers": [{"layer": 3, "probe_top1": acc, "knn_top1": acc}]}

    a, b = "AMD EPYC, avx2, 2 cores", "AMD EPYC, avx512_bf16, 2 cores"
    runs = [run("rate", 71.0, 200.0, a), run("rate", 73.0, 100.0, b),
            run("spiking", 69.5, 300.0, a, T=4), run("spiking", 70.0, 250.0, a), run("spiking", 72.5, 150.0, b),
            run("spiking", 68.0, 220.0, a, T=16, membrane="uniform")]
    header, rule, *rows = driver.grid_table(runs, [3])
    assert header == "| neuron | neuron parameters | current | T = 4 | T = 8 | T = 16 |"
    assert rule == "|---|---|---|---|---|---|"
    assert rows == [
        "| native-lif | beta 0.9, threshold 3, reset subtract |  | 69.50 (-1.50, 1.50x, machine 1) | "
        "70.00 (-1.00, 1.25x, machine 1); 72.50 (-0.50, 1.50x, machine 2) | - |",
        "| native-lif | beta 0.9, threshold 3, reset subtract | uniform initial membrane | - | - | "
        "68.00 (-3.00, 1.10x, machine 1) |"]
    runs.pop(0)  # machine a without a rate run: its cells compare with b's accuracy, not its time
    assert driver.grid_table(runs, [3])[2].split(" | ")[3] == "69.50 (-3.50, other machine, machine 1)"
    assert driver.grid_table([r for r in runs if r["mode"] == "spiking"], [3])[2].split(" | ")[3] == \
        "69.50 (no rate run, machine 1)"


def test_the_seeds_table_gives_mean_and_sample_std_per_machine_and_run_against_rate_modes_mean():
    """Runs with two or more seeds on one machine get a row (mean ± sample std of best probe and time); the gap is
    to the mean of the same machine's rate seeds; a run with one seed, or seeds split over machines, gets none."""
    def run(mode, seed, acc, seconds, cpu, T=8):
        return {"mode": mode, "neuron": "rate" if mode == "rate" else "native-lif", "time_steps": 1 if mode == "rate"
                else T, "unsup_seconds": seconds, "device": "cpu", "cpu": cpu, "threads": 2,
                "spiking": None if mode == "rate" else {"neuron_params": {"threshold": 3.0}},
                "conditions": {"seed": seed}, "layers": [{"layer": 3, "probe_top1": acc, "knn_top1": acc}]}

    a, b = "AMD EPYC, avx2, 2 cores", "AMD EPYC, avx512_bf16, 2 cores"
    runs = [run("rate", 0, 71.0, 100.0, a), run("rate", 1, 73.0, 300.0, a), run("rate", 2, 72.0, 200.0, a),
            run("spiking", 0, 70.0, 150.0, a), run("spiking", 1, 71.0, 250.0, a),
            run("spiking", 0, 60.0, 100.0, a, T=4),  # one seed: no row
            run("spiking", 1, 60.0, 100.0, b, T=4),  # its other seed on another machine: no row either
            run("spiking", 1, 99.0, 999.0, b, T=16), run("spiking", 2, 97.0, 997.0, b, T=16)]  # b has no rate run
    header, rule, *rows = driver.seeds_table(runs, [3])
    assert header.startswith("| mode | neuron | neuron parameters | current | T | machine | seeds | best probe |")
    assert rows == [
        "| rate | rate |  |  | 1 | 1 | 0, 1, 2 | 72.00 ± 1.00 |  | 200.0 ± 100.0 |  |",
        "| spiking | native-lif | beta 0.9, threshold 3, reset subtract |  | 8 | 1 | 0, 1 | 70.50 ± 0.71 "
        "| -1.50 (rate seeds 0, 1, 2) | 200.0 ± 70.7 | 1.00x |",
        "| spiking | native-lif | beta 0.9, threshold 3, reset subtract |  | 16 | 2 | 1, 2 | 98.00 ± 1.41 |  "
        "| 998.0 ± 1.4 |  |"]
    runs = [r for r in runs if r["conditions"]["seed"] != 2]  # the same seeds on both sides: no seeds note
    assert driver.seeds_table(runs, [3])[3].split(" | ")[8] == "-1.50"
    assert driver.seeds_table([r for r in runs if r["conditions"]["seed"] == 0], [3]) == []


def test_seeds_train_each_seed_once_and_the_report_adds_their_mean(tmp_path, capsys):
    config = _write_config(tmp_path)
    out = tmp_path / "results" / "rvs"
    args = ["--config", str(config), "--out", str(out), "--device", "cpu", "--quiet", "--probe-layers", "3",
            "--neurons", "native-lif", "--time-steps", "2"]
    assert driver.main(args + ["--seeds", "0", "1"]) == 0
    runs = json.loads(out.with_suffix(".json").read_text())["runs"]
    assert sorted((r["neuron"], r["conditions"]["seed"]) for r in runs) == [
        ("native-lif", 0), ("native-lif", 1), ("rate", 0), ("rate", 1)]
    checkpoints = sorted((out.parent / "checkpoints").glob("*native-lif*.pt"))
    assert len(checkpoints) == 2  # one per seed, and the seeds made different networks
    first, second = (load_checkpoint(c)["network"] for c in checkpoints)
    assert not torch.equal(first["layers.0.weight"], second["layers.0.weight"])
    table = out.with_suffix(".md").read_text()
    every_run = table.split("Every run:")[1].split("Targets")[0]
    assert len([line for line in every_run.splitlines() if line.startswith("| ")]) == 3  # header + seed 0's two
    seeds = table.split("Seeds, ")[1]
    assert "| rate | rate |  |  | 1 | 1 | 0, 1 |" in seeds and "| spiking | native-lif |" in seeds
    capsys.readouterr()
    assert driver.main(args + ["--seeds", "1"]) == 0  # recorded: skipped
    assert capsys.readouterr().out.count("skipped") == 2
    assert driver.main(args + ["--seeds", "-1"]) == 2
    assert "--seeds must be >= 0" in capsys.readouterr().err


def test_unknown_neuron_is_an_error_listing_the_allowed_ones(tmp_path, capsys):
    config = _write_config(tmp_path)
    assert driver.main(["--config", str(config), "--out", str(tmp_path / "r"), "--neurons", "hodgkin-huxley"]) == 2
    assert "unknown spiking neuron(s) ['hodgkin-huxley']; allowed: native-lif, integrate-and-fire, snntorch-leaky, " \
           "norse-lif, norse-lifbox" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_backends_with_different_neurons_are_refused(tmp_path):
    config = _write_config(tmp_path, MATCHED.replace('norse-lifbox = { beta = 0.9, threshold = 1.0',
                                                     'norse-lifbox = { beta = 0.9, threshold = 1.5'))
    with pytest.raises(ValueError, match=r"do not run the same neuron: native-lif has .*threshold=1.0.* but "
                                         r"norse-lifbox has .*threshold=1.5"):
        driver.load_config(config)


def test_a_base_run_with_its_own_spiking_table_is_refused(tmp_path):
    from liouna_snn.experiment import load_experiment

    path = tmp_path / "base.toml"
    path.write_text('model = "cifar10_3layer"\n[data]\ndataset = "cifar10-mini"\n'
                    '[[runs]]\nlabel = "lif"\nrule = "liouna"\nspiking = { time_steps = 4 }\n'
                    '[[runs]]\nrule = "liouna"\n')
    exp = load_experiment(path)
    assert driver.base_run(exp, "liouna")["rule"] == "liouna"
    with pytest.raises(ValueError, match=r"run 'lif' sets its own spiking = \.\.\.; .* name a run without one"):
        driver.base_run(exp, "lif")
    with pytest.raises(ValueError, match=r"has no run 'softhebb'; its runs: lif, liouna"):
        driver.base_run(exp, "softhebb")


def test_runs_differing_in_their_neurons_current_get_their_own_label_key_and_target():
    assert driver.run_label("liouna", "native-lif", 8) == "liouna-native-lif-T8"
    assert (driver.run_label("liouna", "integrate-and-fire", 8, "mean", "std")
            == "liouna-integrate-and-fire-T8-mean-inhibition-std-current")
    plain = {"mode": "spiking", "neuron": "native-lif", "time_steps": 8, "spiking": {"lateral_inhibition": "none"}}
    normed = {**plain, "spiking": {"lateral_inhibition": "none", "current_norm": "std"}}
    both = {**plain, "spiking": {"lateral_inhibition": "mean", "current_norm": "std"}}
    dithered = {**plain, "spiking": {"lateral_inhibition": "mean", "current_norm": "std", "initial_membrane": "uniform"}}
    assert [driver.current_variant(r) for r in (plain, normed, both, dithered)] == [
        "", "current / std", "mean inhibition, current / std", "mean inhibition, current / std, uniform initial membrane"]
    assert len({driver.run_key(r) for r in (plain, normed, both, dithered)}) == 4
    assert (driver.run_label("liouna", "integrate-and-fire", 8, "mean", "std", initial_membrane="uniform")
            == "liouna-integrate-and-fire-T8-mean-inhibition-std-current-uniform-membrane")
    assert (driver.run_label("liouna", "integrate-and-fire", 8, "mean", "std", initial_membrane="uniform",
                             inference_initial_membrane="half")
            == "liouna-integrate-and-fire-T8-mean-inhibition-std-current-uniform-membrane-half-at-inference")
    assert driver.run_label("liouna", "integrate-and-fire", 8, initial_membrane="half",
                            inference_initial_membrane="half") == "liouna-integrate-and-fire-T8-half-membrane"
    split = {**plain, "spiking": {**dithered["spiking"], "inference_initial_membrane": "half"}}
    assert driver.current_variant(split) == ("mean inhibition, current / std, uniform initial membrane (half at "
                                             "inference)")
    assert driver.run_key(split) != driver.run_key(dithered)
    assert driver.run_key({**dithered, "spiking": {**dithered["spiking"], "inference_initial_membrane": None}}) \
        == driver.run_key(dithered)  # records from before the option match the same run
    calibrated = {**plain, "spiking": {**split["spiking"], "current_calibration": "exact"}}
    assert driver.current_variant(calibrated) == ("mean inhibition, current / std (exact), uniform initial membrane "
                                                  "(half at inference)")
    assert driver.run_key(calibrated) != driver.run_key(split)
    assert driver.run_key({**split, "spiking": {**split["spiking"], "current_calibration": "running"}}) \
        == driver.run_key(split)  # records from before the option match the same run
    assert (driver.run_label("liouna", "integrate-and-fire", 8, "mean", "std", initial_membrane="uniform",
                             inference_initial_membrane="half", current_calibration="exact")
            == "liouna-integrate-and-fire-T8-mean-inhibition-std-current-calibrated-uniform-membrane-half-at-inference")
    current_code = {**plain, "spiking": {**split["spiking"], "learning_code": "current"}}
    assert driver.current_variant(current_code) == ("mean inhibition, current / std, uniform initial membrane (half "
                                                    "at inference), learns from rates in current units")
    assert driver.run_key(current_code) != driver.run_key(split)
    assert driver.run_key({**split, "spiking": {**split["spiking"], "learning_code": "rate"}}) \
        == driver.run_key(split)  # records from before the option match the same run
    assert (driver.run_label("liouna", "integrate-and-fire", 8, "mean", "std", initial_membrane="uniform",
                             inference_initial_membrane="half", learning_code="current")
            == "liouna-integrate-and-fire-T8-mean-inhibition-std-current-uniform-membrane-half-at-inference-current-code")
    training = {"seed": 0, "spiking": {**split["spiking"], "current_calibration": "running", "learning_code": "rate"}}
    assert driver.checkpoint_conditions(training) == {"seed": 0, "spiking": split["spiking"]}  # the old name
    assert driver.checkpoint_conditions({**training, "spiking": calibrated["spiking"]})["spiking"] \
        == calibrated["spiking"]
    rate = {"mode": "rate", "neuron": "rate", "time_steps": 1, "unsup_seconds": 10.0,
            "layers": [{"layer": 1, "probe_top1": 70.0}]}
    runs = [rate] + [{**r, "unsup_seconds": 20.0, "layers": [{"layer": 1, "probe_top1": p}]}
                     for r, p in ((plain, 60.0), (normed, 69.0))]
    targets = {"neuron": "native-lif", "time_steps": 8, "max_accuracy_drop": 2.0, "max_time_ratio": 3.0,
               "spiking": {"current_norm": "std"}}
    accuracy = driver.target_lines(runs, targets, [1])[0]
    assert "native-lif (beta 0.9, threshold 1, reset subtract; current / std) at T = 8" in accuracy and "69.00 % vs 70.00 %" in accuracy
    assert accuracy.endswith("**met**")


def test_runs_differing_in_their_neuron_parameters_get_their_own_label_key_row_and_target():
    """A leak-free run (beta = 1) of the same backend, T and current does not replace the leaky one."""
    assert driver.run_label("liouna", "native-lif", 8, "mean", "std", beta=0.9) == \
        "liouna-native-lif-T8-mean-inhibition-std-current"  # the default leak keeps the labels runs already have
    assert driver.run_label("liouna", "native-lif", 8, "mean", "std", beta=1.0) == \
        "liouna-native-lif-T8-mean-inhibition-std-current-beta1"
    # --neuron-param overrides name themselves: threshold 2 does not take the config's threshold-3 label
    overrides = driver.parse_neuron_overrides(["threshold=2", "reset=subtract", "beta=1"])
    assert overrides == {"threshold": 2.0, "reset": "subtract", "beta": 1.0}
    assert driver.run_label("liouna", "native-lif", 8, "mean", "std", beta=1.0, overrides=overrides) == \
        "liouna-native-lif-T8-mean-inhibition-std-current-beta1-reset-subtract-threshold2"
    with pytest.raises(ValueError, match=r"--neuron-param 'threshold': give KEY=VALUE"):
        driver.parse_neuron_overrides(["threshold"])
    current = {"lateral_inhibition": "mean", "current_norm": "std"}
    leaky = {"mode": "spiking", "neuron": "native-lif", "time_steps": 8,
             "spiking": {**current, "neuron_params": {"beta": 0.9, "threshold": 3.0, "reset": "zero"}}}
    leak_free = {**leaky, "spiking": {**current, "neuron_params": {"beta": 1.0, "threshold": 3.0, "reset": "zero"}}}
    snn = {**leak_free, "neuron": "snntorch-leaky"}
    assert driver.neuron_variant(leaky) == "beta 0.9, threshold 3, reset zero"
    assert driver.neuron_variant(leak_free) == "beta 1 (integrate-and-fire), threshold 3, reset zero"
    assert driver.neuron_variant(snn) == driver.neuron_variant(leak_free)  # matched backends: the same words
    assert driver.neuron_variant({"mode": "rate", "neuron": "rate", "spiking": None}) == ""
    assert driver.run_key(leaky) != driver.run_key(leak_free)
    # Norse's beta = dt * tau_mem_inv mapping: the same neuron reads the same.
    norse = {**leaky, "neuron": "norse-lif", "spiking": {**current, "neuron_params": {
        "beta": 0.9, "threshold": 3.0, "reset": "zero", "dt": 1e-3}}}
    assert driver.neuron_variant(norse) == driver.neuron_variant(leaky)

    rate = {"mode": "rate", "neuron": "rate", "time_steps": 1, "unsup_seconds": 10.0,
            "layers": [{"layer": 3, "probe_top1": 70.0, "knn_top1": 60.0}]}
    runs = [rate] + [{**r, "unsup_seconds": 20.0, "layers": [{"layer": 3, "probe_top1": p, "knn_top1": p - 10}]}
                     for r, p in ((leaky, 67.0), (leak_free, 69.5))]
    targets = {"neuron": "native-lif", "time_steps": 8, "max_accuracy_drop": 2.0, "max_time_ratio": 3.0,
               "spiking": {**current, "neuron_params": {"beta": 0.9, "threshold": 3.0, "reset": "zero"}}}
    verdicts = [line for t in driver.target_variants(runs, targets) for line in driver.target_lines(runs, t, [3])
                if line.startswith("- Accuracy target")]
    assert len(verdicts) == 2
    assert "(beta 0.9, threshold 3, reset zero; mean inhibition, current / std)" in verdicts[0]  # configured first
    assert "67.00 % vs 70.00 %" in verdicts[0] and verdicts[0].endswith("**not met**")
    assert "(beta 1 (integrate-and-fire), threshold 3, reset zero; " in verdicts[1]
    assert "69.50 % vs 70.00 %" in verdicts[1] and verdicts[1].endswith("**met**")
    rows = [line for line in driver.precision_table(runs, [3]) if line.startswith("| spiking")]
    assert [row.split(" | ")[2] for row in rows] == ["beta 0.9, threshold 3, reset zero",
                                                     "beta 1 (integrate-and-fire), threshold 3, reset zero"]
    # Other backends measured at the target T get their verdicts after the target backend's; other T do not.
    other_backend = {**leak_free, "neuron": "integrate-and-fire", "spiking": {**current, "neuron_params": {"threshold": 3.0}},
                     "unsup_seconds": 20.0, "layers": [{"layer": 3, "probe_top1": 68.5, "knn_top1": 58.5}]}
    other_T = {**other_backend, "time_steps": 4}
    verdicts = [line for t in driver.target_variants(runs + [other_backend, other_T], targets)
                for line in driver.target_lines(runs + [other_backend, other_T], t, [3])
                if line.startswith("- Accuracy target")]
    assert len(verdicts) == 3 and verdicts[2].startswith("- Accuracy target: integrate-and-fire (beta 1 (integrate-and-fire), "
                                                          "threshold 3, reset subtract; mean inhibition, current / std) at T = 8")
    assert "68.50 % vs 70.00 %" in verdicts[2] and verdicts[2].endswith("**met**")


def test_records_of_neurons_this_install_cannot_build_are_still_shown_and_kept_apart():
    """Norse cannot express beta = 1: such a record (or one of a neuron no longer registered) is described by its
    recorded parameters instead of stopping the table."""
    norse = {"mode": "spiking", "neuron": "norse-lif", "time_steps": 8,
             "spiking": {"neuron_params": {"beta": 1.0, "threshold": 3.0, "dt": 1e-3}}}
    gone = {**norse, "neuron": "hodgkin-huxley", "spiking": {"neuron_params": {"c_m": 1.0}}}
    assert driver.neuron_variant(norse) == "beta 1.0, dt 0.001, threshold 3.0 (as recorded)"
    assert driver.neuron_variant(gone) == "c_m 1.0 (as recorded)"
    assert driver.run_key(norse) != driver.run_key(gone)
    assert driver.run_label("liouna", "integrate-and-fire", 8, beta=1.0) == "liouna-integrate-and-fire-T8"


def test_a_target_neuron_without_parameters_is_refused(tmp_path):
    config = _write_config(tmp_path)
    config.write_text(config.read_text().replace('neuron = "native-lif"\ntime_steps = 4',
                                                 'neuron = "norse-lif"\ntime_steps = 4'))
    with pytest.raises(ValueError, match=r"\[targets\]: neuron 'norse-lif' has no \[neuron_params\] entry, so the "
                                         r"target names no neuron; configured: native-lif, snntorch-leaky, norse-lifbox"):
        driver.load_config(config)


def test_neuron_params_from_the_command_line_set_the_chosen_backends_and_stay_matched(tmp_path):
    cfg = driver.load_config(_write_config(tmp_path))
    every = ["native-lif", "snntorch-leaky", "norse-lifbox"]
    lower = driver.with_neuron_params(cfg, ["threshold=2", "reset=subtract"], every)
    assert {name: (p["threshold"], p["reset"]) for name, p in lower["neuron_params"].items()} == {
        "native-lif": (2.0, "subtract"), "snntorch-leaky": (2.0, "subtract"), "norse-lifbox": (2.0, "subtract")}
    assert lower["neuron_params"]["norse-lifbox"]["dt"] == 1e-3 and cfg["neuron_params"]["native-lif"]["threshold"] == 1.0
    assert driver.with_neuron_params(cfg, None, every) is cfg
    with pytest.raises(ValueError, match=r"--neuron-param 'threshold': give KEY=VALUE, e\.g\. threshold=2"):
        driver.with_neuron_params(cfg, ["threshold"], every)
    with pytest.raises(ValueError, match=r"--neuron-param beta=1: norse-lifbox: .*beta = 1 \(no leak\) is not "
                                         r"expressible") as refused:
        driver.with_neuron_params(cfg, ["beta=1"], every)
    assert "norse-lifbox: norse-lifbox" not in str(refused.value)
    # Only the backends this invocation runs (and the target neuron) take the value: Norse, not run, cannot refuse.
    leak_free = driver.with_neuron_params(cfg, ["beta=1"], ["snntorch-leaky"])
    assert {name: p["beta"] for name, p in leak_free["neuron_params"].items()} == {"native-lif": 1.0,
                                                                                   "snntorch-leaky": 1.0}


def test_run_keys_tell_apart_every_spiking_option_and_parameter_value_but_not_its_number_type(tmp_path):
    """Two runs are one run only when every spiking option and neuron parameter agrees: the encoder, the
    plasticity and its traces count, thresholds closer than the table's digits count, 2 and 2.0 do not."""
    def spiking_run(**spiking):
        return {"mode": "spiking", "neuron": "native-lif", "time_steps": 8,
                "spiking": {"neuron_params": {"threshold": 2.0}, **spiking}}

    base = spiking_run()
    others = [spiking_run(encoder="bernoulli"), spiking_run(plasticity="online"),
              spiking_run(plasticity="online", trace_decay=0.5),
              spiking_run(encoder="poisson", encoder_params={"f_max": 200.0}),
              spiking_run(neuron_params={"threshold": 2.0000001})]
    assert len({driver.run_key(r) for r in [base] + others}) == 1 + len(others)
    assert driver.run_key(spiking_run(neuron_params={"threshold": 2})) == driver.run_key(base)
    assert driver.run_key(base) == driver.run_key(spiking_run(encoder="constant-current"))  # a default, spelt out
    assert driver.current_variant(others[1]) == "online plasticity (trace decay 0.9)"
    assert driver.current_variant(others[3]) == "poisson encoder (f_max 200)"
    # An integer in the TOML is the float the command line gives: one checkpoint name, so a run resumes.
    config = _write_config(tmp_path, MATCHED.replace("threshold = 1.0", "threshold = 1"))
    assert {p["threshold"] for p in driver.load_config(config)["neuron_params"].values()} == {1.0}
    assert all(isinstance(p["threshold"], float) for p in driver.load_config(config)["neuron_params"].values())


def test_rate_readout_reads_a_spiking_runs_weights_out_in_rate_mode_now_or_from_its_checkpoint(tmp_path, capsys):
    """--rate-readout probes a spiking run's trained weights in rate mode: right after training, and for a run
    already in the results from its checkpoint; the table shows it beside the run's own probe."""
    config = _write_config(tmp_path)
    out = tmp_path / "results" / "rvs"
    args = ["--config", str(config), "--out", str(out), "--device", "cpu", "--quiet", "--neurons", "native-lif",
            "--probe-layers", "3"]
    assert driver.main(args + ["--time-steps", "2"]) == 0
    assert driver.main(args + ["--time-steps", "4", "--rate-readout"]) == 0
    runs = {(r["neuron"], r["time_steps"]): r for r in json.loads(out.with_suffix(".json").read_text())["runs"]}
    assert "rate_readout" not in runs["native-lif", 2] and "rate_readout" not in runs["rate", 1]
    readout = runs["native-lif", 4]["rate_readout"]
    assert [layer["layer"] for layer in readout["layers"]] == [3] and 0 <= readout["probe_top1"] <= 100
    assert readout["calibration_images"] == driver.RATE_READOUT_CALIBRATION_IMAGES
    assert readout["device"] == "cpu" and readout["threads"] >= 1 and "cpu" in readout  # where it was computed

    capsys.readouterr()
    assert driver.main(args + ["--time-steps", "2", "4", "--rate-readout"]) == 0  # T = 2 from its checkpoint
    printed = capsys.readouterr().out
    assert printed.count("skipped") == 3 and printed.count("read out in rate mode: best probe") == 1
    after = {(r["neuron"], r["time_steps"]): r for r in json.loads(out.with_suffix(".json").read_text())["runs"]}
    assert after["native-lif", 4]["rate_readout"] == readout  # not redone
    from_checkpoint = after["native-lif", 2]["rate_readout"]
    rate = after["rate", 1]["layers"][0]["probe_top1"]
    table = out.with_suffix(".md").read_text()
    assert "its weights read out in rate mode: best probe (vs rate)" in table
    assert f"| {from_checkpoint['probe_top1']:.2f} ({from_checkpoint['probe_top1'] - rate:+.2f}) |" in table

    # Without a checkpoint there is nothing to read out: said, not an error.
    for path in (tmp_path / "results" / "checkpoints").glob("*T2*"):
        path.unlink()
    data = json.loads(out.with_suffix(".json").read_text())
    del next(r for r in data["runs"] if r["time_steps"] == 2)["rate_readout"]
    out.with_suffix(".json").write_text(json.dumps(data))
    capsys.readouterr()
    assert driver.main(args + ["--time-steps", "2", "--rate-readout"]) == 0
    assert "no finished checkpoint at" in capsys.readouterr().out


def test_neurons_rate_runs_the_rate_run_alone(tmp_path, capsys):
    config = _write_config(tmp_path)
    out = tmp_path / "results" / "rvs"
    args = ["--config", str(config), "--out", str(out), "--device", "cpu", "--quiet", "--probe-layers", "3"]
    assert driver.main(args + ["--neurons", "rate"]) == 0
    runs = json.loads(out.with_suffix(".json").read_text())["runs"]
    assert [(r["mode"], r["neuron"]) for r in runs] == [("rate", "rate")]
    capsys.readouterr()
    assert driver.main(args + ["--neurons", "rate", "--rerun"]) == 0  # retrained (e.g. to time it on this machine)
    assert "skipped" not in capsys.readouterr().out
    assert len(json.loads(out.with_suffix(".json").read_text())["runs"]) == 1
    assert driver.main(args + ["--neurons", "rate", "native-lif", "--time-steps", "2"]) == 0  # rate is implied
    assert sorted(r["neuron"] for r in json.loads(out.with_suffix(".json").read_text())["runs"]) == ["native-lif", "rate"]


def test_each_machine_keeps_its_own_rate_run(tmp_path, capsys):
    """A rate run of another machine skips rate mode here; ``--neurons rate --rerun`` adds this machine's beside
    it (replacing only this machine's on a second rerun)."""
    config = _write_config(tmp_path)
    out = tmp_path / "results" / "rvs"
    args = ["--config", str(config), "--out", str(out), "--device", "cpu", "--quiet", "--probe-layers", "3"]
    assert driver.main(args + ["--neurons", "rate"]) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    results["runs"][0]["cpu"] = "Another CPU, avx512_bf16, 64 cores"
    out.with_suffix(".json").write_text(json.dumps(results))
    capsys.readouterr()
    assert driver.main(args + ["--neurons", "rate"]) == 0
    assert "already in" in capsys.readouterr().out
    for _ in range(2):
        assert driver.main(args + ["--neurons", "rate", "--rerun"]) == 0
        cpus = [r["cpu"] for r in json.loads(out.with_suffix(".json").read_text())["runs"]]
        assert len(cpus) == 2 and cpus[0] == "Another CPU, avx512_bf16, 64 cores" and cpus[1] != cpus[0]
    table = out.with_suffix(".md").read_text()
    assert re.search(r"machine [12]: cpu \(Another CPU, avx512_bf16, 64 cores\), \d+ threads", table)
    assert "machine 1: " in table and "machine 2: " in table
    assert len([line for line in table.splitlines() if line.startswith("| rate |")]) == 2


def test_this_machine_trains_what_only_another_machine_recorded(tmp_path, capsys):
    """Without ``--this-machine`` a spiking run of another machine skips it here; with it, this machine trains its
    own rate and spiking runs beside the other machine's (a second call skips both: now recorded here)."""
    config = _write_config(tmp_path)
    out = tmp_path / "results" / "rvs"
    args = ["--config", str(config), "--out", str(out), "--device", "cpu", "--quiet", "--probe-layers", "3",
            "--neurons", "native-lif", "--time-steps", "2"]
    assert driver.main(args) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    for r in results["runs"]:
        r["cpu"] = "Another CPU, avx512_bf16, 64 cores"
    out.with_suffix(".json").write_text(json.dumps(results))
    capsys.readouterr()
    assert driver.main(args) == 0
    assert capsys.readouterr().out.count("skipped") == 2  # rate and spiking: recorded elsewhere
    assert driver.main(args + ["--this-machine"]) == 0
    assert "skipped" not in capsys.readouterr().out
    runs = json.loads(out.with_suffix(".json").read_text())["runs"]
    assert sorted((r["neuron"], r["cpu"] == "Another CPU, avx512_bf16, 64 cores") for r in runs) == [
        ("native-lif", False), ("native-lif", True), ("rate", False), ("rate", True)]
    assert driver.main(args + ["--this-machine"]) == 0
    assert capsys.readouterr().out.count("skipped") == 2
    assert len(json.loads(out.with_suffix(".json").read_text())["runs"]) == 4


def test_every_shipped_config_is_valid_and_the_half_membrane_runs_get_their_own_label():
    from pathlib import Path

    configs = sorted((Path(__file__).parent.parent / "experiments").glob("rate_vs_spiking*.toml"))
    assert len(configs) >= 6
    for path in configs:
        driver.load_config(path)   # raises on any unknown key, neuron or mismatched parameter
    half = driver.load_config(configs[0].parent / "rate_vs_spiking_if_half_std_current.toml")
    assert half["spiking"]["initial_membrane"] == "half"
    assert driver.run_label("liouna", "integrate-and-fire", 8, "mean", "std", 1.0, None, "half") == \
        "liouna-integrate-and-fire-T8-mean-inhibition-std-current-half-membrane"


@pytest.mark.skipif(not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compile_neurons_gives_the_eager_snntorch_run_and_is_recorded(tmp_path):
    """snnTorch's Leaky with beta 1 and a dyadic threshold is exact in float32, compiled or not: the compiled run
    must reproduce the eager one's accuracies, and only the compiled record says it was compiled."""
    config = _write_config(tmp_path, '[neuron_params]\nsnntorch-leaky = { beta = 1.0, threshold = 0.5 }\n'
                                     'native-lif = { beta = 1.0, threshold = 0.5 }\n')
    args = ["--config", str(config), "--device", "cpu", "--quiet", "--probe-layers", "2",
            "--neurons", "snntorch-leaky", "--time-steps", "4"]
    records = []
    for name, extra in (("eager", []), ("compiled", ["--compile-neurons"])):
        out = tmp_path / name / "rvs"
        assert driver.main(args + ["--out", str(out), "--checkpoint-dir", str(tmp_path / name / "ckpt")] + extra) == 0
        records.append(next(r for r in json.loads(out.with_suffix(".json").read_text())["runs"]
                            if r["mode"] == "spiking"))
    eager, compiled = records
    assert "compiled_neurons" not in eager and compiled["compiled_neurons"] is True
    assert [(l["probe_top1"], l["knn_top1"]) for l in compiled["layers"]] == [
        (l["probe_top1"], l["knn_top1"]) for l in eager["layers"]]
    assert compiled["layer_activity"] == eager["layer_activity"]


def test_plot_labels_keep_only_the_words_that_tell_the_lines_apart():
    assert driver._words("bernoulli encoder (p 1, q 2), current / std") == ["bernoulli encoder (p 1, q 2)",
                                                                           "current / std"]
    curves = [["native-lif", "beta 0.9", "threshold 3", "fp32"],
              ["native-lif", "beta 1 (integrate-and-fire)", "threshold 3", "fp32"],
              ["snntorch-leaky", "beta 0.9", "threshold 3", "fp32"]]
    labels, shared = driver.curve_labels(curves)
    assert labels == ["native-lif, beta 0.9", "native-lif, beta 1 (integrate-and-fire)", "snntorch-leaky, beta 0.9"]
    assert shared == ["threshold 3", "fp32"]
    # one line shares nothing; a line with no words of its own keeps all of them
    assert driver.curve_labels([["native-lif", "fp32"]]) == (["native-lif, fp32"], [])
    assert driver.curve_labels([["a", "b"], ["a", "b", "c"]]) == (["a, b", "c"], ["a", "b"])


def _base_spiking_run(tmp_path):
    """The mini benchmark's base run (rate and native LIF at T = 2, layer 3 probed) trained: ``(out, args)``."""
    config = _write_config(tmp_path)
    out = tmp_path / "results" / "rvs"
    args = ["--config", str(config), "--out", str(out), "--device", "cpu", "--quiet", "--probe-layers", "3",
            "--neurons", "native-lif", "--time-steps", "2"]
    assert driver.main(args) == 0
    return out, args


def test_spiking_lr_gives_the_spiking_runs_their_own_learning_rates_label_key_and_row(tmp_path, capsys):
    out, args = _base_spiking_run(tmp_path)
    assert driver.main(args + ["--spiking-lr", "0.1", "0.05", "0.05"]) == 0  # a new run beside the base's: trained
    runs = json.loads(out.with_suffix(".json").read_text())["runs"]
    by_lr = {tuple(r.get("spiking_lr") or ()): r for r in runs if r["mode"] == "spiking"}
    assert set(by_lr) == {(), (0.1, 0.05, 0.05)}
    assert [o["lr"] for o in by_lr[(0.1, 0.05, 0.05)]["rule_options"]] == [0.1, 0.05, 0.05]
    assert [o["lr"] for o in by_lr[()]["rule_options"]] == [0.05] * 3
    rate = [r for r in runs if r["mode"] == "rate"]
    assert len(rate) == 1 and [o["lr"] for o in rate[0]["rule_options"]] == [0.05] * 3  # rate mode keeps its own
    assert by_lr[(0.1, 0.05, 0.05)]["label"].endswith("-lr0.1-0.05-0.05")
    assert driver.run_key(by_lr[()]) != driver.run_key(by_lr[(0.1, 0.05, 0.05)])
    assert "learning rates 0.1/0.05/0.05" in driver.current_variant(by_lr[(0.1, 0.05, 0.05)])
    assert "learning rates" not in driver.current_variant(by_lr[()])
    checkpoints = sorted(p.name for p in (out.parent / "checkpoints").glob("*native-lif*.pt"))
    assert len(checkpoints) == 2 and any("-lr0.1-0.05-0.05_" in name for name in checkpoints)
    table = out.with_suffix(".md").read_text()
    assert "learning rates 0.1/0.05/0.05" in table
    capsys.readouterr()
    assert driver.main(args + ["--spiking-lr", "0.1", "0.05", "0.05"]) == 0  # recorded: skipped
    assert capsys.readouterr().out.count("skipped") == 2
    assert driver.main(args + ["--spiking-lr", "0.1", "0.05"]) == 2
    assert "--spiking-lr: give one learning rate per layer (3 for this network), got 2: 0.1 0.05" in capsys.readouterr().err
    assert driver.main(args + ["--spiking-lr", "0.1", "nan", "-1"]) == 2
    assert "--spiking-lr: learning rates must be finite and > 0, got nan -1" in capsys.readouterr().err


def test_spiking_lr_schedule_gives_the_spiking_runs_their_own_schedule_label_key_and_row(tmp_path, capsys):
    out, args = _base_spiking_run(tmp_path)
    own = ["--spiking-lr-schedule", "cosine", "--spiking-lr", "0.2", "0.1", "0.1"]
    assert driver.main(args + own) == 0  # a new run beside the base's: trained
    runs = json.loads(out.with_suffix(".json").read_text())["runs"]
    spiking = {r.get("spiking_lr_schedule", ""): r for r in runs if r["mode"] == "spiking"}
    assert set(spiking) == {"", "cosine"}
    cosine = spiking["cosine"]
    assert [(o["lr"], o["lr_schedule"]) for o in cosine["rule_options"]] == [(0.2, "cosine"), (0.1, "cosine"),
                                                                            (0.1, "cosine")]
    assert {o["lr_schedule"] for o in spiking[""]["rule_options"]} == {"norm-adaptive"}
    (rate,) = [r for r in runs if r["mode"] == "rate"]
    assert {o["lr_schedule"] for o in rate["rule_options"]} == {"norm-adaptive"}  # rate mode keeps its own
    assert cosine["label"].endswith("-lr0.2-0.1-0.1-cosine")
    assert driver.run_key(cosine) != driver.run_key(spiking[""])
    assert "cosine learning-rate schedule" in driver.current_variant(cosine)
    assert "schedule" not in driver.current_variant(spiking[""])
    assert "cosine learning-rate schedule" in out.with_suffix(".md").read_text()
    capsys.readouterr()
    assert driver.main(args + own) == 0  # recorded: skipped
    assert capsys.readouterr().out.count("skipped") == 2
    with pytest.raises(SystemExit) as exit_:
        driver.main(args + ["--spiking-lr-schedule", "linear"])
    assert exit_.value.code == 2 and "invalid choice: 'linear'" in capsys.readouterr().err
    assert driver.main(args + ["--spiking-lr-schedule", "cosine", "constant"]) == 2
    assert ("--spiking-lr-schedule: give one schedule for every layer or one per layer (3 for this network), got 2: "
            "cosine constant") in capsys.readouterr().err
    # one schedule per layer: its own run, label and row
    per_layer = ["--spiking-lr-schedule", "cosine", "norm-adaptive", "norm-adaptive"]
    assert driver.main(args + per_layer) == 0
    runs = json.loads(out.with_suffix(".json").read_text())["runs"]
    (mixed,) = [r for r in runs if isinstance(r.get("spiking_lr_schedule"), list)]
    assert mixed["spiking_lr_schedule"] == ["cosine", "norm-adaptive", "norm-adaptive"]
    assert [o["lr_schedule"] for o in mixed["rule_options"]] == mixed["spiking_lr_schedule"]
    assert mixed["label"].endswith("-T2-cosine-norm-adaptive-norm-adaptive")
    assert "cosine/norm-adaptive/norm-adaptive learning-rate schedule" in driver.current_variant(mixed)
    assert len({driver.run_key(r) for r in runs if r["mode"] == "spiking"}) == 3
    capsys.readouterr()
    same = ["--spiking-lr-schedule", "cosine", "cosine", "cosine", "--spiking-lr", "0.2", "0.1", "0.1"]
    assert driver.main(args + same) == 0  # the same run as "cosine" for every layer: skipped
    assert capsys.readouterr().out.count("skipped") == 2


def test_merged_runs_keeps_what_another_invocation_wrote_since_this_one_read_the_file(tmp_path):
    path = tmp_path / "rvs.json"
    a, b, c = {"label": "a", "seed": 0}, {"label": "b", "seed": 0}, {"label": "c", "seed": 1}
    assert driver.merged_runs(path, [a, b]) == [a, b]  # no file yet
    path.write_text(json.dumps({"runs": [a, c]}))  # the other invocation added c after this one read [a]
    assert driver.merged_runs(path, [a, b]) == [a, c, b]
    assert driver.merged_runs(path, [a]) == [a, c]


def test_machine_numbers_keep_the_published_numbers_when_a_machine_is_added():
    def run(cpu):
        return {"device": "cpu", "cpu": cpu, "threads": 2}

    published = [run(cpu.removeprefix("cpu (").split("), ")[0]) for cpu in driver.NUMBERED_MACHINES]
    published[2]["cpu"] = "x86_64"  # (a record from before CPUs were named)
    new = run("Intel(R) Xeon(R) Processor, amx_bf16, 2 cores")  # sorts between the published ones
    numbers = driver.machine_numbers([new] + published)
    assert [numbers[name] for name in driver.NUMBERED_MACHINES] == [1, 2, 3, 4]
    assert numbers["cpu (Intel(R) Xeon(R) Processor, amx_bf16, 2 cores), 2 threads"] == 5
    # machines none of the published tables named: numbered from 1 in sorted order
    assert driver.machine_numbers([run("B CPU, avx2, 8 cores"), run("A CPU, avx2, 8 cores")]) == {
        "cpu (A CPU, avx2, 8 cores), 2 threads": 1, "cpu (B CPU, avx2, 8 cores), 2 threads": 2}


def test_a_backend_without_a_threshold_is_matched_with_the_default_one_of_a_standardised_current():
    """With current_norm = "std" (the default) a backend given no threshold runs SpikingConfig's default one, so it
    matches a backend given that threshold in its own units; on the drive's units it is the neuron's own default."""
    params = {"native-lif": {"beta": 0.9, "reset": "zero"}, "norse-lif": {"v_th": 3.0}}
    driver.check_matched_neurons(params, "cfg")
    with pytest.raises(ValueError, match=r"cfg: the backends do not run the same neuron: native-lif has "
                                         r"LIFParameters\(beta=0.9, threshold=1.0"):
        driver.check_matched_neurons(params, "cfg", current_norm="none")


def test_the_plot_numbers_machines_as_the_tables_do(tmp_path, monkeypatch):
    """The time panel's legend names each machine by the tables' number (:func:`machine_numbers`), not by its place
    in an alphabetical list: the AMX Xeon sorts before the AVX-512 one but is machine 5 in the tables."""
    from pathlib import Path

    from matplotlib.figure import Figure

    results = json.loads((Path(__file__).parent.parent / "experiments" / "results" /
                          "rate_vs_spiking.json").read_text())
    fp32 = [r for r in results["runs"] if r.get("conditions") and driver.precision_of(r) == "fp32"
            and r["train_images"] == 50000]
    numbers = driver.machine_numbers(results["runs"])
    intel = sorted({driver.machine_name(r) for r in fp32 if "Intel" in (r.get("cpu") or "")})
    assert [numbers[name] for name in intel] == [5, 4]  # the case a plot of its own numbering gets wrong
    labels = []
    original = Figure.legend
    monkeypatch.setattr(Figure, "legend", lambda fig, *a, **k: (labels.extend(h.get_label() for h in k["handles"]),
                                                                original(fig, *a, **k))[1])
    driver.plot_rate_vs_spiking(fp32, [3], tmp_path / "plot.png", numbers=numbers)  # five machines, five styles
    named = {label.split(": ", 1)[1]: label.split(":")[0] for label in labels if label.startswith("machine ")}
    assert named == {name: f"machine {numbers[name]}" for name in {driver.machine_name(r) for r in fp32}}
    assert len(named) == 5
    assert all(f"[machine {numbers[driver.machine_name(r)]}]" in " ".join(labels) for r in fp32 if r["mode"] == "rate")
