"""experiments/spiking_update_noise.py: the step-length measure, one batch's measurement against a hand computation,
and the script end to end on the mini set (JSON, table, report round trip, errors)."""
import json
import math

import pytest
import torch

from liouna_snn.network import build_network
from liouna_snn.rules import rule_config
from liouna_snn.spiking import SpikingConfig

from .conftest import SMALL_SPEC_TOML, load_experiment_script

noise = load_experiment_script("spiking_update_noise")

CONFIG = ('base_experiment = "base.toml"\nrun = "liouna"\nneurons = ["integrate-and-fire"]\ntime_steps = [4]\n'
          '[spiking]\nencoder = "constant-current"\nlateral_inhibition = "mean"\ncurrent_norm = "std"\n'
          'initial_membrane = "uniform"\ninference_initial_membrane = "half"\nlearning_code = "rate"\n'
          '[neuron_params]\nintegrate-and-fire = { threshold = 1.0 }\n'
          '[targets]\nneuron = "integrate-and-fire"\ntime_steps = 4\nmax_accuracy_drop = 2.0\nmax_time_ratio = 3.0\n')


def test_scaled_length_is_the_frobenius_norm_of_the_step_global_maxabs_scaling_makes():
    assert noise.scaled_length(torch.tensor([0.0, -3.0, 0.0])) == pytest.approx(1.0)  # one entry: a step of lr
    assert noise.scaled_length(torch.full((4, 25), 0.5)) == pytest.approx(10.0)       # 100 equal entries: sqrt(100)
    assert noise.scaled_length(torch.tensor([4.0, -2.0])) == pytest.approx(math.sqrt(1 + 0.25))


def _layers(initial_membrane):
    spec = {"input_channels": 3, "input_size": 8, "layers": [{"out_channels": 5, "kernel_size": 3, "padding": 1}]}
    rules = [rule_config("liouna", lr=0.05)]
    spiking = SpikingConfig(neuron="integrate-and-fire", neuron_params={"threshold": 1.0}, time_steps=4,
                            lateral_inhibition="mean", current_norm="std", initial_membrane=initial_membrane,
                            inference_initial_membrane="half", learning_code="rate")
    spk = build_network(spec, rules, seed=3, spiking=spiking).layers[0].train()
    rate = build_network(spec, rules, seed=3).layers[0].train()
    return spk, rate


def test_one_batch_measures_the_rate_step_and_the_spread_of_the_spiking_draws():
    spk, rate = _layers("uniform")
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    m = noise.step_noise(spk, rate, x, draws=16, generator=torch.Generator().manual_seed(1))
    x_n, u, y, _ = rate._learning_front(x, False)
    assert m["L_rate"] == pytest.approx(noise.scaled_length(rate._update(x_n, u, y, None)[1]))
    assert 0 < m["cosine"] < 1 and m["inflation"] > 0  # 16 stochastic draws on a tiny batch differ
    assert m["L_signal"] > 0  # the draws point, on average, along their mean
    assert m["L_half"] is not None and m["L_half"] > 0
    # half membranes while learning: every draw is the same, so the draws are their own mean
    spk_half, rate_half = _layers("half")
    d = noise.step_noise(spk_half, rate_half, x, draws=3, generator=torch.Generator().manual_seed(1))
    assert d["cosine"] == pytest.approx(1.0) and d["inflation"] == pytest.approx(1.0)
    assert d["L_signal"] == pytest.approx(d["L_expected"]) == pytest.approx(d["L_half"])


def test_the_script_end_to_end_on_the_mini_set_and_its_report(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "small.toml").write_text(SMALL_SPEC_TOML)
    exp_dir = tmp_path / "experiments"
    exp_dir.mkdir()
    (exp_dir / "base.toml").write_text(
        'model = "small"\n[data]\ndataset = "cifar10-mini"\n[unsupervised]\nbatch_size = 10\n'
        '[[runs]]\nrule = "liouna"\noptions = { lr = [0.05, 0.01, 0.01] }\n')
    config = exp_dir / "rvs.toml"
    config.write_text(CONFIG)
    out = tmp_path / "noise"
    args = ["--config", str(config), "--out", str(out), "--device", "cpu", "--seeds", "0", "--at-steps", "0", "3",
            "--batches", "2", "--draws", "3", "--thresholds", "1", "2"]
    assert noise.main(args) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert [(r["threshold"], r["step"]) for r in results["records"]] == [(1.0, 0), (1.0, 3), (2.0, 0), (2.0, 3)]
    assert results["rule_options"]["lr"] == 0.05 and results["neuron"] == "integrate-and-fire"
    for r in results["records"]:
        assert r["lr_factor"] == pytest.approx(r["L_rate"] / r["L_signal"], rel=1e-3)
    table = out.with_suffix(".md").read_text()
    assert table.count("\n| 1 | 0 |") == 2 and out.with_suffix(".png").is_file()
    out.with_suffix(".md").unlink()
    assert noise.main(["--config", str(config), "--out", str(out), "--report"]) == 0
    assert out.with_suffix(".md").read_text() == table
    capsys.readouterr()
    assert noise.main(args + ["--draws", "1"]) == 2
    assert "--draws must be >= 2, got 1" in capsys.readouterr().err
    assert noise.main(["--config", str(config), "--out", str(tmp_path / "none"), "--report"]) == 2
    assert "--report: no results at" in capsys.readouterr().err
