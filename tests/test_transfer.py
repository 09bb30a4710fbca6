"""Transfer harness: pre-train on A, probe every layer on B at the network's resolution; results schema; errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from liouna_snn.cli import main
from liouna_snn.evaluation.transfer import load_split, load_transfer_experiment, random_subset, run_transfer

@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Decoded ImageFolder trees are cached; keep this test's out of the user's ~/.cache."""
    monkeypatch.setenv("LIOUNA_SNN_CACHE", str(tmp_path / "cache"))


TINY_MODEL = """
name = "tiny-transfer"
input_channels = 3
input_size = 16

[[layers]]
out_channels = 8
kernel_size = 3
padding = 1
activation = { name = "triangle", power = 1.0 }
pool = { type = "max", kernel_size = 2, stride = 2 }

[[layers]]
out_channels = 12
kernel_size = 3
padding = 1
activation = "relu"
pool = { type = "avg", kernel_size = 2, stride = 2 }
"""


def image_tree(root, sizes=(40, 48), per_class=(6, 3)):
    """An ImageFolder tree of 3 classes with non-square ``sizes`` (H, W) images whose colour gives the class."""
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "val"), per_class):
        for k, name in enumerate(("ant", "bee", "cat")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 60, size=(*sizes, 3), dtype=np.uint8)
                pixels[..., k] += 150
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def write_experiment(tmp_path, finetune_epochs=0, rules=("softhebb", "random")):
    (tmp_path / "tiny.toml").write_text(TINY_MODEL)
    tree = image_tree(tmp_path / "tree")
    runs = "\n".join(f'[[runs]]\nrule = "{r}"\n' for r in rules)
    text = f"""
name = "tiny_transfer"
model = "{tmp_path / 'tiny.toml'}"
[unsupervised]
epochs = 1
batch_size = 20
precision = "fp32"
[probe]
epochs = 2
knn_k = 3
[finetune]
epochs = {finetune_epochs}
[[transfers]]
source = {{ dataset = "cifar10-mini", train_subset = 100 }}
target = {{ dataset = "imagefolder", root = "{tree}" }}
{runs}
"""
    path = tmp_path / "transfer.toml"
    path.write_text(text)
    return path


def test_target_images_are_resized_and_centre_cropped_to_the_network_input(tmp_path):
    tree = image_tree(tmp_path / "tree", sizes=(40, 48))
    train = load_split({"dataset": "imagefolder", "root": str(tree)}, "train", 16)
    test = load_split({"dataset": "imagefolder", "root": str(tree)}, "test", 16)
    assert train.images.shape == (18, 3, 16, 16) and test.images.shape == (9, 3, 16, 16)
    assert train.images.dtype == torch.uint8 and train.classes == ["ant", "bee", "cat"]
    # the class colour survives the resize: channel k is brightest for class k
    means = train.images.float().mean(dim=(2, 3))
    assert torch.equal(means.argmax(1), train.labels)
    cifar = load_split({"dataset": "cifar10-mini", "train_subset": 30}, "train", 16)
    assert cifar.images.shape == (30, 3, 16, 16)


def test_random_subset_draws_from_every_class_not_the_first_images():
    from liouna_snn.data import ImageTensors

    labels = torch.arange(10).repeat_interleave(10)  # sorted by class, as ImageFolder splits are
    data = ImageTensors(torch.zeros(100, 3, 2, 2, dtype=torch.uint8), labels, [str(k) for k in range(10)], "x")
    sub = random_subset(data, 30, seed=0)
    assert len(sub) == 30 and len(set(sub.labels.tolist())) >= 6
    assert torch.equal(random_subset(data, 30, seed=0).labels, sub.labels)
    assert random_subset(data, None) is data


def test_end_to_end_transfer_writes_the_results_schema_and_resumes(tmp_path):
    path = write_experiment(tmp_path, finetune_epochs=1)
    results = run_transfer(path, progress=False, results_dir=tmp_path / "results",
                           checkpoint_dir=tmp_path / "ckpt")
    written = json.loads((tmp_path / "results" / "tiny_transfer.json").read_text())
    assert written["runs"] == json.loads(json.dumps(results["runs"]))
    assert [r["label"] for r in written["runs"]] == ["softhebb", "random"]
    for run in written["runs"]:
        assert run["source_dataset"] == "cifar10-mini" and run["target_dataset"] == "imagefolder"
        assert run["dataset"] == "imagefolder" and run["mode"] == "rate" and run["time_steps"] == 1
        for key in ("rule", "neuron", "seed", "epochs", "unsup_seconds", "unsup_images_per_second", "probe_seconds"):
            assert key in run
        assert run["target_train_images"] == 18 and run["target_test_images"] == 9
        assert [layer["layer"] for layer in run["layers"]] == [1, 2]
        assert [layer["features"] for layer in run["layers"]] == [8 * 8 * 8, 12 * 4 * 4]
        for layer in run["layers"]:
            assert 0 <= layer["probe_top1"] <= 100 and 0 <= layer["knn_top1"] <= 100
        assert run["probe_top1"] == max(layer["probe_top1"] for layer in run["layers"])
        assert run["finetune"]["epochs"] == 1 and 0 <= run["finetune"]["top1"] <= 100
    assert written["image_size"] == 16
    checkpoints = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert checkpoints == ["cifar10-mini_random_seed0.pt", "cifar10-mini_softhebb_seed0.pt"]
    # A rerun resumes the finished pre-training (no new learning passes) and reproduces every probe.
    again = run_transfer(path, progress=False, results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ckpt",
                         only_rules=["softhebb"])
    first, second = results["runs"][0], next(r for r in again["runs"] if r["label"] == "softhebb")
    assert [(l["probe_top1"], l["knn_top1"]) for l in first["layers"]] == \
           [(l["probe_top1"], l["knn_top1"]) for l in second["layers"]]
    assert len(again["runs"]) == 2  # the random run of the earlier file is kept


def test_cli_transfer_runs_the_experiment(tmp_path, capsys):
    path = write_experiment(tmp_path, rules=("random",))
    assert main(["transfer", str(path), "--quiet", "--results-dir", str(tmp_path / "r"),
                 "--checkpoint-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "cifar10-mini -> imagefolder" in out and "L2" in out
    assert (tmp_path / "r" / "tiny_transfer.json").is_file()


@pytest.mark.parametrize("edit,pattern", [
    (lambda t: t.replace("[[transfers]]", "[[transfers]]\nsorce = 1"), r"unknown key.*sorce"),
    (lambda t: t.replace('source = { dataset = "cifar10-mini", train_subset = 100 }',
                         'source = { dataset = "cifar10-mini", experiment = "x.toml" }'), r"source: give either"),
    (lambda t: t.replace("knn_k = 3", "knn = 3"), r"\[probe\].*knn"),
])
def test_experiment_errors_name_the_key(tmp_path, edit, pattern):
    path = write_experiment(tmp_path)
    path.write_text(edit(path.read_text()))
    with pytest.raises(ValueError, match=pattern):
        load_transfer_experiment(path)


def test_shipped_transfer_experiment_is_valid():
    from pathlib import Path

    exp = load_transfer_experiment(Path(__file__).parent.parent / "experiments" / "transfer.toml")
    pairs = {(t["source"].get("dataset"), t["target"]["dataset"]) for t in exp["transfers"]}
    assert pairs == {("cifar10", "imagenette"), ("imagenette", "cifar10")}
    assert {r["rule"] for r in exp["runs"]} >= {"liouna", "softhebb", "random"}
