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


def write_experiment(tmp_path, finetune_epochs=0, rules=("softhebb", "random"), source_images=100, extra_runs=""):
    """A transfer experiment: cifar10-mini (``source_images`` random train images) -> a tiny ImageFolder tree."""
    (tmp_path / "tiny.toml").write_text(TINY_MODEL)
    tree = image_tree(tmp_path / "tree")
    runs = "\n".join(f'[[runs]]\nrule = "{r}"\n' for r in rules) + extra_runs
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
source = {{ dataset = "cifar10-mini", train_subset = {source_images} }}
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
    assert (tmp_path / "results" / "tiny_transfer_layers.png").stat().st_size > 0
    checkpoints = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert checkpoints == ["cifar10-mini_random_seed0.pt", "cifar10-mini_softhebb_seed0.pt"]
    # A rerun resumes the finished pre-training (no new learning passes) and reproduces every probe.
    again = run_transfer(path, progress=False, results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ckpt",
                         only_rules=["softhebb"])
    first, second = results["runs"][0], next(r for r in again["runs"] if r["label"] == "softhebb")
    assert [(l["probe_top1"], l["knn_top1"]) for l in first["layers"]] == \
           [(l["probe_top1"], l["knn_top1"]) for l in second["layers"]]
    assert len(again["runs"]) == 2  # the random run of the earlier file is kept


E2E_RUN_OPTIONS = {"epochs": 1, "batch_size": 16, "lr": 0.8, "precision": "fp32"}
E2E_RUN = """
[[runs]]
rule = "e2e-supervised"
options = { epochs = 1, batch_size = 16, lr = 0.8, precision = "fp32" }
"""


def test_e2e_supervised_baseline_is_trained_with_source_labels_then_probed_like_the_hebbian_runs(tmp_path,
                                                                                                 monkeypatch):
    import liouna_snn.evaluation.transfer as transfer
    from liouna_snn.blockwise import build_spec_model
    from liouna_snn.network import load_spec
    from liouna_snn.training import load_checkpoint

    probe_layers = transfer.probe_layers
    standardisation = {}   # probe label -> (mean, std) the probe standardised the target images with

    def recording_probe_layers(model, train, test, depths, **kw):
        standardisation[kw["label"]] = (kw["mean"].cpu(), kw["std"].cpu())
        return probe_layers(model, train, test, depths, **kw)

    monkeypatch.setattr(transfer, "probe_layers", recording_probe_layers)
    path = write_experiment(tmp_path, rules=("random",), source_images=400, extra_runs=E2E_RUN)
    results = run_transfer(path, progress=False, results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ckpt")
    runs = {r["label"]: r for r in results["runs"]}
    assert set(runs) == {"random", "e2e-supervised"}
    e2e, random = runs["e2e-supervised"], runs["random"]
    assert (e2e["rule"], e2e["mode"], e2e["neuron"], e2e["time_steps"]) == ("e2e-supervised", "rate", "rate", 1)
    assert e2e["source_dataset"] == "cifar10-mini" and e2e["target_dataset"] == e2e["dataset"] == "imagefolder"
    assert e2e["epochs"] == 1 and e2e["unsup_seconds"] >= 0 and e2e["unsup_images_per_second"] > 0
    assert e2e["stopped_by"] == "epochs"
    options = e2e["train_options"]
    assert (options["mode"], options["optimizer"], options["batch_size"], options["lr"]) == ("supervised", "sgd", 16, 0.8)
    assert options["weight_decay"] == 5e-4 and options["feature_pool"] is None and options["precision"] == "fp32"
    # Probed like the Hebbian runs: every layer, the whole flattened layer output, the same target splits.
    for key in ("layer", "features"):
        assert [layer[key] for layer in e2e["layers"]] == [layer[key] for layer in random["layers"]]
    assert [layer["features"] for layer in e2e["layers"]] == [8 * 8 * 8, 12 * 4 * 4]
    assert e2e["target_train_images"] == 18 and e2e["target_test_images"] == 9
    assert e2e["probe_top1"] == max(layer["probe_top1"] for layer in e2e["layers"])
    # ... with the target images standardised by the source's statistics, as for the Hebbian runs.
    source = load_split({"dataset": "cifar10-mini", "train_subset": 400}, "train", 16)
    e2e_mean, e2e_std = standardisation["cifar10-mini -> imagefolder e2e-supervised seed 0"]
    random_mean, random_std = standardisation["cifar10-mini -> imagefolder random seed 0"]
    assert torch.equal(e2e_mean, random_mean) and torch.equal(e2e_std, random_std)
    assert torch.allclose(e2e_mean, source.channel_stats()[0]) and torch.allclose(e2e_std, source.channel_stats()[1])
    # It learnt the source's labels: its classifier beats the majority class of the 400 source images by far
    # (untrained, or with a tiny lr, it sits near 10 %), and its weights moved away from their seeded initialisation.
    majority = 100.0 * torch.bincount(source.labels).max().item() / len(source)
    assert e2e["source_train_top1"] > majority + 10, (e2e["source_train_top1"], majority)
    checkpoint = tmp_path / "ckpt" / "cifar10-mini_e2e-supervised_seed0_fp32.pt"   # named by its precision
    state = load_checkpoint(checkpoint)
    assert state["config"]["mode"] == "supervised" and state["steps"] == 400 // 16
    spec = load_spec(tmp_path / "tiny.toml")
    initial = build_spec_model(spec, transfer.e2e_config(E2E_RUN_OPTIONS, seed=0)).state_dict()
    for name in ("backbone.layers.0.1.weight", "backbone.layers.1.1.weight", "classifier.weight"):
        assert not torch.allclose(state["model"][name], initial[name]), name
    # A rerun resumes the finished checkpoint: no training step (the file is not rewritten), the same probes.
    written_ns = checkpoint.stat().st_mtime_ns
    again = run_transfer(path, progress=False, results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ckpt",
                         only_rules=["e2e-supervised"])
    rerun = next(r for r in again["runs"] if r["label"] == "e2e-supervised")
    assert checkpoint.stat().st_mtime_ns == written_ns
    assert rerun["unsup_images_per_second"] == e2e["unsup_images_per_second"]
    assert rerun["source_train_top1"] == e2e["source_train_top1"]
    assert [l["knn_top1"] for l in rerun["layers"]] == [l["knn_top1"] for l in e2e["layers"]]


def test_e2e_supervised_defaults_are_the_low_compute_baseline_and_augment_false_is_the_identity():
    from liouna_snn.blockwise import SUPERVISED_AUGMENT
    from liouna_snn.evaluation.transfer import e2e_config

    cfg = e2e_config({}, seed=3)
    # low_compute.py's e2e-supervised-3layer: SGD 0.1 per 256 images, weight decay 5e-4, gradient norm clipped to 1,
    # its default batch 128, crop + flip, precision "auto", whole flattened layer outputs as features
    assert (cfg.mode, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.grad_clip, cfg.batch_size, cfg.precision,
            cfg.feature_pool, cfg.seed) == ("supervised", "sgd", 0.1, 5e-4, 1.0, 128, "auto", None, 3)
    assert cfg.views == SUPERVISED_AUGMENT and cfg.max_seconds is None
    x = torch.rand(4, 3, 16, 16)
    plain = e2e_config({"augment": False, "max_seconds": 60}, seed=0)
    # the identity up to the rounding of the resampling grid (a uint8 pixel step is 4e-3)
    assert torch.allclose(plain.views(x, torch.Generator().manual_seed(0)), x, atol=1e-4) and plain.max_seconds == 60
    assert not torch.allclose(cfg.views(x, torch.Generator().manual_seed(0)), x, atol=1e-2)


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
    (lambda t: t.replace("[[runs]]", t[t.index("[[transfers]]"):t.index("[[runs]]")] + "[[runs]]", 1),
     r"\[\[transfers\]\] #2: 'cifar10-mini:imagefolder' \(SOURCE:TARGET\) is also #1's"),
    (lambda t: t + E2E_RUN.replace("lr = 0.8", "learning_rate = 0.8"),
     r"\[\[runs\]\] #3 options \(rule 'e2e-supervised'\): unknown key.*learning_rate.*allowed: augment, batch_size, "
     r"epochs, lr, max_seconds, precision, weight_decay"),
    (lambda t: t + E2E_RUN.replace('"fp32"', '"fp16"'), r"options \(rule 'e2e-supervised'\): unknown precision 'fp16'"),
    (lambda t: t + E2E_RUN.replace("epochs = 1,", "augment = 1, epochs = 1,"), r"augment must be true"),
    (lambda t: t.replace('source = { dataset = "cifar10-mini", train_subset = 100 }',
                         'source = { experiment = "x.toml" }') + E2E_RUN, r"e2e-supervised.*source.experiment"),
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
    assert {r["rule"] for r in exp["runs"]} >= {"liouna", "softhebb", "random", "e2e-supervised"}


def test_pre_training_takes_the_layers_a_run_experiment_trained_on_the_same_source(tmp_path, capsys):
    """reuse_from: a transfer's source pre-training is the checkpoint of a `liouna-snn run` experiment that
    trained the same network on the same images (checked by identity and data fingerprint), not retrained."""
    from liouna_snn.experiment import run_experiment

    folder = tmp_path / "experiments"
    folder.mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.toml").write_text(TINY_MODEL)
    unsup = '[unsupervised]\nepochs = 1\nbatch_size = 200\nprecision = "fp32"\n'
    run = '[[runs]]\nrule = "softhebb"\noptions = { lr = [0.05, 0.03] }\n'
    (folder / "pre.toml").write_text(f'model = "tiny"\n[data]\ndataset = "cifar10-mini"\nimage_size = 16\n'
                                     f'test_subset = 50\n{unsup}[probe]\nepochs = 1\nknn_k = 3\n{run}')
    run_experiment(folder / "pre.toml", device="cpu", progress=False)
    donor_file = folder / "checkpoints" / "pre" / "softhebb_seed0.pt"
    donor = torch.load(donor_file, weights_only=False)
    donor["network"]["layers.1.weight"] *= 2  # a taken layer shows it; a retrained one would not
    torch.save(donor, donor_file)

    tree = image_tree(tmp_path / "tree")
    (folder / "transfer.toml").write_text(
        f'name = "tiny_transfer"\nmodel = "tiny"\nreuse_from = ["missing", "pre"]\n{unsup}[probe]\nepochs = 1\n'
        f'knn_k = 3\n[[transfers]]\nsource = {{ dataset = "cifar10-mini" }}\n'
        f'target = {{ dataset = "imagefolder", root = "{tree}" }}\n{run}')
    entry = run_transfer(folder / "transfer.toml", device="cpu", progress=False)["runs"][0]
    assert "reuse_from 'missing': no checkpoint folder" in capsys.readouterr().err
    assert entry["reused_layers"] == {"layers": 2, "checkpoint": "pre/softhebb_seed0.pt"}
    mine = torch.load(folder / "checkpoints" / "tiny_transfer" / "cifar10-mini_softhebb_seed0.pt", weights_only=False)
    for key in ("layers.0.weight", "layers.1.weight"):
        assert torch.equal(mine["network"][key], donor["network"][key])
    # a rerun resumes its own (finished) checkpoint and still names the donor
    again = run_transfer(folder / "transfer.toml", device="cpu", progress=False)["runs"][0]
    assert again["reused_layers"] == entry["reused_layers"]
    assert [(l["probe_top1"], l["knn_top1"]) for l in again["layers"]] == \
           [(l["probe_top1"], l["knn_top1"]) for l in entry["layers"]]

    # a source the donor did not train on (other images) is trained here
    (folder / "checkpoints" / "tiny_transfer" / "cifar10-mini_softhebb_seed0.pt").unlink()
    text = (folder / "transfer.toml").read_text().replace('{ dataset = "cifar10-mini" }',
                                                          '{ dataset = "cifar10-mini", train_subset = 400 }')
    (folder / "transfer.toml").write_text(text)
    assert "reused_layers" not in run_transfer(folder / "transfer.toml", device="cpu", progress=False)["runs"][0]


def test_transfers_are_selected_by_source_and_target_name():
    from liouna_snn.evaluation.transfer import select_transfers, transfer_name

    transfers = [{"source": {"dataset": "cifar10"}, "target": {"dataset": "imagenette"}},
                 {"source": {"dataset": "imagenette"}, "target": {"dataset": "cifar10"}},
                 {"source": {"experiment": "runs/cifar10_local_rules.toml"}, "target": {"dataset": "stl10"}}]
    assert [transfer_name(t) for t in transfers] == ["cifar10:imagenette", "imagenette:cifar10",
                                                     "cifar10_local_rules:stl10"]
    assert select_transfers(transfers, None) == transfers
    assert select_transfers(transfers, ["cifar10_local_rules:stl10", "cifar10:imagenette"]) == [transfers[0],
                                                                                                transfers[2]]
    with pytest.raises(ValueError, match=r"--transfers cifar10:stl10: no transfer so named; this experiment has "
                                         r"'cifar10:imagenette', "
                                         r"'imagenette:cifar10', 'cifar10_local_rules:stl10' \(SOURCE:TARGET\)"):
        select_transfers(transfers, ["cifar10:stl10"])


def test_cli_transfer_runs_only_the_named_transfers_and_keeps_the_others(tmp_path, capsys):
    path = write_experiment(tmp_path, rules=("random",))
    tree = tmp_path / "tree"
    path.write_text(path.read_text().replace("[[runs]]", f'[[transfers]]\nsource = {{ dataset = "imagefolder", '
                                                         f'root = "{tree}" }}\ntarget = {{ dataset = "cifar10-mini", '
                                                         f'test_subset = 30, train_subset = 60 }}\n[[runs]]', 1))
    args = ["transfer", str(path), "--quiet", "--results-dir", str(tmp_path / "r"), "--checkpoint-dir",
            str(tmp_path / "c")]
    assert main(args + ["--transfers", "imagefolder:cifar10-mini"]) == 0
    written = json.loads((tmp_path / "r" / "tiny_transfer.json").read_text())
    assert [(r["source_dataset"], r["target_dataset"]) for r in written["runs"]] == [("imagefolder", "cifar10-mini")]
    assert main(args + ["--transfers", "cifar10-mini:imagefolder"]) == 0
    written = json.loads((tmp_path / "r" / "tiny_transfer.json").read_text())
    assert [r["transfer"] for r in written["runs"]] == ["imagefolder:cifar10-mini", "cifar10-mini:imagefolder"]
    assert all(r["precision"] == "fp32" for r in written["runs"])
    # an entry of another precision (as an AMX machine writes it) stays beside the rerun's
    written["runs"][0]["precision"] = "bf16"
    (tmp_path / "r" / "tiny_transfer.json").write_text(json.dumps(written))
    assert main(args + ["--transfers", "imagefolder:cifar10-mini"]) == 0
    written = json.loads((tmp_path / "r" / "tiny_transfer.json").read_text())
    assert [(r["transfer"], r["precision"]) for r in written["runs"]] == [
        ("imagefolder:cifar10-mini", "bf16"), ("cifar10-mini:imagefolder", "fp32"), ("imagefolder:cifar10-mini", "fp32")]
    assert main(args + ["--transfers", "stl10:imagefolder"]) == 2
    assert "--transfers stl10:imagefolder: no transfer so named" in capsys.readouterr().err


def test_cli_precision_replaces_the_files_and_the_end_to_end_runs_own(tmp_path, capsys):
    path = write_experiment(tmp_path, rules=("random",), source_images=200, extra_runs=E2E_RUN)  # e2e: "fp32"
    assert main(["transfer", str(path), "--quiet", "--results-dir", str(tmp_path / "r"),
                 "--checkpoint-dir", str(tmp_path / "c"), "--precision", "bf16"]) == 0
    results = json.loads((tmp_path / "r" / "tiny_transfer.json").read_text())
    assert results["unsupervised"]["precision"] == "bf16"
    assert {(r["label"], r["precision"]) for r in results["runs"]} == {("random", "bf16"), ("e2e-supervised", "bf16")}
    e2e = next(r for r in results["runs"] if r["label"] == "e2e-supervised")
    assert e2e["train_options"]["precision"] == "bf16"


def test_a_pre_training_in_another_precision_keeps_its_own_checkpoint_beside_the_first(tmp_path):
    path = write_experiment(tmp_path, rules=("softhebb",), source_images=100)
    kw = dict(progress=False, results_dir=tmp_path / "r", checkpoint_dir=tmp_path / "c")
    first = run_transfer(path, precision="fp32", **kw)
    second = run_transfer(path, precision="bf16", **kw)
    names = sorted(p.name for p in (tmp_path / "c").glob("*.pt"))
    assert names == ["cifar10-mini_softhebb_seed0.pt", "cifar10-mini_softhebb_seed0_bf16.pt"]
    assert [(r["label"], r["precision"]) for r in second["runs"]] == [("softhebb", "fp32"), ("softhebb", "bf16")]
    assert second["runs"][0]["layers"] == first["runs"][0]["layers"]  # the fp32 entry is kept as it was
    assert second["runs"][1]["cpu"] == second["cpu"] and second["runs"][1]["device"] == "cpu"
    # a rerun in bf16 resumes its own finished checkpoint: the same features and probe
    again = run_transfer(path, precision="bf16", **kw)
    assert ([(l["probe_top1"], l["knn_top1"]) for l in again["runs"][1]["layers"]]
            == [(l["probe_top1"], l["knn_top1"]) for l in second["runs"][1]["layers"]])
    assert again["runs"][1]["unsup_seconds"] == second["runs"][1]["unsup_seconds"]  # not trained again


def test_cli_probe_layers_replaces_the_files_and_a_depth_past_the_last_layer_is_an_error(tmp_path, capsys):
    path = write_experiment(tmp_path, rules=("random",))
    args = ["transfer", str(path), "--quiet", "--results-dir", str(tmp_path / "r"), "--checkpoint-dir",
            str(tmp_path / "c")]
    assert main(args + ["--probe-layers", "2"]) == 0
    written = json.loads((tmp_path / "r" / "tiny_transfer.json").read_text())
    assert [layer["layer"] for layer in written["runs"][0]["layers"]] == [2]
    assert written["probe"]["layers"] == [2]   # as depths, not the command line's strings
    assert written["runs"][0]["probe_top1"] == written["runs"][0]["layers"][0]["probe_top1"]
    assert main(args + ["--probe-layers", "all"]) == 0
    written = json.loads((tmp_path / "r" / "tiny_transfer.json").read_text())
    assert [layer["layer"] for layer in written["runs"][0]["layers"]] == [1, 2] and written["probe"]["layers"] == "all"
    assert main(args + ["--probe-layers", "3"]) == 2
    assert "--probe-layers: probe layers must be 'all' or depths in 1..2, got ['3']" in capsys.readouterr().err
    path.write_text(path.read_text().replace("knn_k = 3", "knn_k = 3\nlayers = [0, 1]"))
    with pytest.raises(ValueError, match=r"\[probe\] layers: probe layers must be 'all' or depths in 1\.\.2"):
        run_transfer(path, progress=False, results_dir=tmp_path / "r", checkpoint_dir=tmp_path / "c")


def test_a_budgeted_e2e_baseline_records_the_passes_it_made(tmp_path):
    budgeted = E2E_RUN.replace('rule = "e2e-supervised"', 'label = "e2e-budget"\nrule = "e2e-supervised"').replace(
        "epochs = 1,", "epochs = 3, max_seconds = 1e-6,")
    path = write_experiment(tmp_path, rules=(), source_images=400, extra_runs=budgeted)
    results = run_transfer(path, progress=False, results_dir=tmp_path / "r", checkpoint_dir=tmp_path / "c")
    (run,) = results["runs"]
    assert run["label"] == "e2e-budget" and run["stopped_by"] == "budget"
    assert run["train_options"]["epochs"] == 3
    # stopped after its first batches: a fraction of one pass over the 400 source images, in batches of 16
    assert 0 < run["epochs"] < 1 and round(run["epochs"] * 400) % 16 == 0
    # a rerun resumes the finished checkpoint without a step: still the budget's stop, not "epochs"
    again = run_transfer(path, progress=False, results_dir=tmp_path / "r", checkpoint_dir=tmp_path / "c")
    assert again["runs"][0]["stopped_by"] == "budget" and again["runs"][0]["epochs"] == run["epochs"]
