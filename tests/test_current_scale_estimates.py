"""experiments/current_scale_estimates.py: a run's stored current scale against its exact value, end to end."""
import json

import pytest

from liouna_snn.training import load_checkpoint

from .conftest import load_experiment_script
from .test_rate_vs_spiking import LEGACY_SPIKING, _write_config

estimates = load_experiment_script("current_scale_estimates")
driver = load_experiment_script("rate_vs_spiking")


def _params(calibration):
    return (f'lateral_inhibition = "mean"\ncurrent_norm = "std"\ncurrent_calibration = "{calibration}"\n'
            '[neuron_params]\nnative-lif = { beta = 0.9, threshold = 1.0, reset = "zero" }\n'
            'snntorch-leaky = { beta = 0.9, threshold = 1.0, reset = "zero" }\n')


@pytest.mark.parametrize("calibration", ["running", "exact"])
def test_a_runs_stored_current_scale_is_compared_with_its_exact_value(tmp_path, capsys, calibration):
    config = _write_config(tmp_path, _params(calibration), spiking=LEGACY_SPIKING.replace(
        'lateral_inhibition = "none"\ncurrent_norm = "none"\n', ""))
    out = tmp_path / "results" / "rvs"
    assert driver.main(["--config", str(config), "--out", str(out), "--device", "cpu", "--quiet",
                        "--neurons", "native-lif", "--time-steps", "4", "--probe-layers", "3", "--precision", "fp32"]) == 0
    (checkpoint,) = (out.parent / "checkpoints").glob("liouna-native-lif-T4*.pt")
    est = tmp_path / "est" / "cse"
    args = ["--config", str(config), "--checkpoints", str(checkpoint), "--device", "cpu", "--out", str(est),
            "--test-images", "20"]
    assert estimates.main(args) == 0
    (record,) = json.loads(est.with_suffix(".json").read_text())["records"]
    state = load_checkpoint(checkpoint)["network"]
    assert record["seed"] == 0 and record["spiking"]["current_calibration"] == calibration
    for layer in record["layers"]:
        stored = float(state[f"layers.{layer['layer'] - 1}.current_scale.running_var"])
        assert layer["stored_var"] == pytest.approx(stored)
        assert layer["threshold_in_exact_std"] == pytest.approx(1.0 * layer["stored_over_exact"] ** 0.5)
        assert all(0 <= layer[k] <= 1 for k in ("firing_learning", "firing_inference_stored",
                                                "firing_inference_exact"))
    ratios = [layer["stored_over_exact"] for layer in record["layers"]]
    if calibration == "exact":  # training left the exact estimate (40 images: all of them) in every layer
        assert ratios == pytest.approx([1.0] * 3, rel=1e-5)
        assert all(layer["firing_inference_stored"] == layer["firing_inference_exact"] for layer in record["layers"])
    else:  # the moving estimate of the last learning batches is not it
        assert max(abs(r - 1) for r in ratios) > 1e-3
    assert "| stored / exact |" in est.with_suffix(".md").read_text()
    capsys.readouterr()
    assert estimates.main(args) == 0 and "already in" in capsys.readouterr().out  # the same file is not redone
    assert estimates.main(["--out", str(tmp_path / "none"), "--report"]) == 2
    assert "no results at" in capsys.readouterr().err
