"""Precision resolution: "auto" picks bf16 only where the device computes it natively."""
import pytest
import torch

from liouna_snn import precision
from liouna_snn.precision import compute_dtype, resolve_precision, storage_dtype


@pytest.mark.parametrize("fast, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_follows_the_hardware(monkeypatch, fast, expected):
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device_type: fast)
    assert resolve_precision("auto", "cpu") == expected
    assert compute_dtype("auto", "cpu") == (torch.bfloat16 if fast else None)
    assert storage_dtype("cpu") == (torch.bfloat16 if fast else torch.float32)


@pytest.mark.parametrize("fast", [True, False])
def test_explicit_precision_is_kept_whatever_the_hardware(monkeypatch, fast):
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device_type: fast)
    assert resolve_precision("bf16") == "bf16" and compute_dtype("bf16") is torch.bfloat16
    assert resolve_precision("fp32") == "fp32" and compute_dtype("fp32") is None


def test_unknown_precision_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown precision 'fp16'; allowed: auto, bf16, fp32"):
        resolve_precision("fp16")


def test_unknown_device_types_fall_back_to_float32():
    assert precision.bf16_is_fast("meta") is False


def test_features_are_stored_in_the_storage_dtype(monkeypatch):
    import liouna_snn.evaluation.features as features
    from liouna_snn.data import load_dataset
    from liouna_snn.evaluation.features import extract_features

    class Pixels(torch.nn.Module):
        def forward(self, x, depth):
            return x

    model = Pixels()
    train = load_dataset("cifar10-mini", split="train").subset(20)
    for fast, dtype in [(True, torch.bfloat16), (False, torch.float32)]:
        monkeypatch.setattr(features, "storage_dtype", lambda device, fast=fast: torch.bfloat16 if fast else torch.float32)
        f, y = extract_features(model, train, 1, progress=False)
        assert f.dtype == dtype and f.shape == (20, 3 * 32 * 32) and len(y) == 20


def test_the_command_lines_choices_are_the_library_precisions():
    from liouna_snn import cli

    assert cli.PRECISIONS == precision.PRECISIONS
