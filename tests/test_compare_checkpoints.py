"""experiments/compare_checkpoints.py: equal and differing networks, state only one side has, bad input."""
import json

import pytest
import torch

from .conftest import load_experiment_script

script = load_experiment_script("compare_checkpoints")


def _save(path, network, elapsed):
    torch.save({"network": network, "elapsed": elapsed}, path)
    return path


def test_equal_networks_differing_ones_and_one_sided_state(tmp_path):
    w = torch.arange(6.0).reshape(2, 3)
    a = _save(tmp_path / "a.pt", {"w": w, "bn": torch.ones(2)}, 10.04)
    b = _save(tmp_path / "b.pt", {"w": w.clone(), "bn": torch.ones(2), "neuron.beta": torch.tensor(1.0)}, 12.0)
    out = tmp_path / "same.json"
    assert script.main([str(a), str(b), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["shared_tensors"] == 2 and result["differing"] == [] and result["max_abs_difference"] == 0.0
    assert result["only_in"][str(b)] == ["neuron.beta"] and result["training_seconds"] == [10.0, 12.0]
    c = _save(tmp_path / "c.pt", {"w": w + torch.tensor([[0, 0, 0.5], [0, 0, 0]]), "bn": torch.ones(2)}, 1.0)
    result = script.compare(a, c)
    assert result["differing"] == ["w"] and result["max_abs_difference"] == 0.5


def test_missing_or_foreign_files_are_errors(tmp_path, capsys):
    a = _save(tmp_path / "a.pt", {"w": torch.zeros(1)}, 1.0)
    assert script.main([str(a), str(tmp_path / "nope.pt")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a liouna_snn training checkpoint"):
        script.compare(a, tmp_path / "other.pt")
