"""experiments/spiking_readout.py: a trained rate network read out with spiking neurons, end to end on a tiny
experiment (the rate read-out reproduces the network, records and skipping), and its configuration errors."""
import json

import pytest

from liouna_snn.experiment import run_experiment
from liouna_snn.export import load_trained_network

from .conftest import SMALL_SPEC_TOML, load_experiment_script


script = load_experiment_script("spiking_readout")

READOUTS = ('[[readouts]]\nlabel = "rate"\nspiking = false\n'
            '[[readouts]]\nlabel = "if-std"\nspiking = { neuron = "integrate-and-fire", neuron_params = '
            '{ threshold = 2.0 }, time_steps = 4, lateral_inhibition = "mean", current_norm = "std" }\n')


def _experiment(tmp_path, readouts=READOUTS):
    """A 3-layer toy model trained on 40 mini images, and a read-out config over its softhebb run."""
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "small.toml").write_text(SMALL_SPEC_TOML)
    exp_dir = tmp_path / "experiments"
    exp_dir.mkdir(exist_ok=True)
    exp = exp_dir / "base.toml"
    exp.write_text('name = "base"\nmodel = "small"\n[data]\ndataset = "cifar10-mini"\ntrain_subset = 40\n'
                   'test_subset = 20\n[unsupervised]\nschedule = "simultaneous"\nbatch_size = 20\n[probe]\nepochs = 2\nknn_k = 5\n'
                   '[[runs]]\nrule = "softhebb"\n')
    config = exp_dir / "readout.toml"
    config.write_text('source_experiment = "base.toml"\nrun = "softhebb"\nprobe_layers = [2, 3]\n'
                      'calibration_images = 40\n' + readouts)
    return exp, config


def test_readouts_end_to_end_rate_reproduces_the_trained_network_and_finished_readouts_are_skipped(tmp_path, capsys):
    exp, config = _experiment(tmp_path)
    trained = run_experiment(exp, progress=False)["runs"][0]
    out = tmp_path / "results" / "readout"
    args = ["--config", str(config), "--out", str(out), "--device", "cpu", "--quiet"]
    assert script.main(args) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert results["source"]["run"] == "softhebb" and results["source"]["checkpoint"] == "softhebb_seed0.pt"
    assert len(results["source"]["checkpoint_sha256"]) == 16
    assert (results["dataset"], results["train_images"], results["test_images"]) == ("cifar10-mini", 40, 20)
    by_label = {r["label"]: r for r in results["readouts"]}
    rate, spiking = by_label["rate"], by_label["if-std"]
    # The rate read-out is the trained network itself: same weights, and norms recalibrated as a simultaneous
    # run's end does, so the experiment's own probe numbers come back.
    recorded = {layer["layer"]: layer for layer in trained["layers"]}
    for layer in rate["layers"]:
        assert (layer["probe_top1"], layer["knn_top1"]) == (recorded[layer["layer"]]["probe_top1"],
                                                            recorded[layer["layer"]]["knn_top1"])
    assert rate["spiking"] is None and "activity" not in rate
    assert spiking["spiking"]["current_norm"] == "std" and spiking["time_steps"] == 4
    assert [l["layer"] for l in spiking["layers"]] == [2, 3]
    assert [a["layer"] for a in spiking["activity"]] == [1, 2, 3]
    for a in spiking["activity"]:
        assert 0 < a["firing_rate_mean"] < 1 and 0 <= a["saturated_fraction"] <= 1
    table = out.with_suffix(".md").read_text()
    assert "| rate | rate activations |" in table
    assert f"{spiking['probe_top1'] - rate['probe_top1']:+.2f}" in table
    assert "integrate-and-fire (threshold 2.0), T = 4, mean lateral inhibition, current / its std" in table
    assert out.with_suffix(".png").stat().st_size > 5_000

    capsys.readouterr()
    assert script.main(args) == 0
    assert capsys.readouterr().out.count("already measured") == 2
    assert json.loads(out.with_suffix(".json").read_text())["readouts"] == results["readouts"]
    # The source network is untouched by the read-outs.
    again = load_trained_network(exp, "softhebb")
    assert again.network.spiking is None

    # --report redraws table and plot from the JSON alone: no checkpoint needed, nothing read out again
    table = out.with_suffix(".md").read_text()
    out.with_suffix(".md").unlink()
    out.with_suffix(".png").unlink()
    again.checkpoint.rename(again.checkpoint.with_suffix(".moved"))
    capsys.readouterr()
    assert script.main(args + ["--report"]) == 0
    assert out.with_suffix(".md").read_text() == table and out.with_suffix(".png").stat().st_size > 5_000
    assert "--- read-out" not in capsys.readouterr().out
    assert json.loads(out.with_suffix(".json").read_text())["readouts"] == results["readouts"]


def test_report_without_results_is_an_error_naming_the_missing_file(tmp_path, capsys):
    _, config = _experiment(tmp_path)
    out = tmp_path / "nothing" / "readout"
    assert script.main(["--config", str(config), "--out", str(out), "--report"]) == 2
    assert f"no results file {out.with_suffix('.json')} to report" in capsys.readouterr().err


@pytest.mark.parametrize("readouts,message", [
    ('[[readouts]]\nlabel = "a"\nspiking = false\n[[readouts]]\nlabel = "a"\nspiking = false\n',
     "read-out labels must be unique; repeated: a"),
    ('[[readouts]]\nlabel = "a"\nspiking = { encoder = "bernoulli" }\n',
     "encoder 'bernoulli' needs pixels in \\[0, 1\\]"),
    ('[[readouts]]\nlabel = "a"\nspiking = { current_norm = "rms" }\n',
     "current_norm='rms' is not allowed; choose one of: none, std"),
    ('[[readouts]]\nlabel = "a"\nneuron = "lif"\nspiking = false\n', "unknown key"),
])
def test_config_errors_name_what_is_wrong(tmp_path, capsys, readouts, message):
    _, config = _experiment(tmp_path, readouts)
    with pytest.raises(ValueError, match=message):
        script.load_config(config)
    assert script.main(["--config", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "spiking_readout: error:" in capsys.readouterr().err


def test_unknown_readout_and_missing_checkpoint_are_errors(tmp_path, capsys):
    _, config = _experiment(tmp_path)
    assert script.main(["--config", str(config), "--out", str(tmp_path / "r"), "--readouts", "nope"]) == 2
    assert "unknown read-out(s) ['nope']; the config has: rate, if-std" in capsys.readouterr().err
    assert script.main(["--config", str(config), "--out", str(tmp_path / "r")]) == 2  # nothing trained yet
    assert "no checkpoint for run 'softhebb'" in capsys.readouterr().err


def test_a_spiking_trained_source_is_read_out_in_rate_mode_at_the_seed_asked(tmp_path, capsys):
    exp, config = _experiment(tmp_path)
    exp.write_text(exp.read_text() + '[[runs]]\nlabel = "spk"\nrule = "liouna"\nseeds = [0, 1]\n'
                   'spiking = { neuron = "integrate-and-fire", neuron_params = { threshold = 2.0 }, time_steps = 4, '
                   'lateral_inhibition = "mean", current_norm = "std" }\n')
    config.write_text(config.read_text().replace('run = "softhebb"', 'run = "spk"'))
    run_experiment(exp, progress=False, only_rules=["spk"])
    out = tmp_path / "results" / "readout"
    args = ["--config", str(config), "--out", str(out), "--device", "cpu", "--quiet"]
    assert script.main(args + ["--seed", "1", "--readouts", "rate"]) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert results["source"]["checkpoint"] == "spk_spiking_seed1.pt" and results["source"]["seed"] == 1
    [rate] = results["readouts"]
    assert rate["spiking"] is None and "activity" not in rate and [l["layer"] for l in rate["layers"]] == [2, 3]
    source = load_trained_network(exp, "spk", 1, allow_spiking=True)
    assert source.network.spiking is not None  # the checkpoint is a spiking network; the read-out ran it in rate mode
    capsys.readouterr()
    assert script.main(args + ["--seed", "-1"]) == 2
    assert "--seed must be >= 0, got -1" in capsys.readouterr().err


def test_describe_names_where_the_forward_pass_starts_the_membranes():
    spiking = {"neuron": "integrate-and-fire", "neuron_params": {"threshold": 3.0}, "time_steps": 8}
    assert script.describe(spiking) == "integrate-and-fire (threshold 3.0), T = 8"
    assert script.describe({**spiking, "initial_membrane": "rest"}) == "integrate-and-fire (threshold 3.0), T = 8"
    # the read-out infers: the inference start counts, the learning one only where no inference start is set
    assert script.describe({**spiking, "initial_membrane": "uniform", "inference_initial_membrane": "half"}).endswith(
        ", membranes from half the threshold")
    assert script.describe({**spiking, "initial_membrane": "uniform"}).endswith(
        ", membranes drawn uniformly below threshold")
    assert script.describe(None) == "rate activations"
