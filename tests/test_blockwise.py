"""Blockwise SSL: losses against hand-computed values, stage locality on the autograd graph, resumable
seeded training, per-stage probes on the embedded mini set, the torchvision export."""
import math

import pytest
import torch

from liouna_snn import build_network, load_spec, rule_config
from liouna_snn.blockwise import (BlockwiseConfig, ResNetBackbone, SpecConvNet, build_resnet_model, cifar_resnet18,
                                  make_loss, objective_losses, train_blockwise, warmup_cosine)
from liouna_snn.blockwise.losses import barlow_twins_loss, nt_xent_loss, vicreg_loss
from liouna_snn.data import load_dataset
from liouna_snn.evaluation import probe_layers
from liouna_snn.export import export_torchvision_resnet
from liouna_snn.training import load_checkpoint

TINY = dict(batch_size=16, head_channels=16, projector=(32, 32), precision="fp32", warmup=0.0)


# ---------------------------------------------------------------- losses, by hand

def test_barlow_twins_by_hand():
    # z1 columns (1, -1) and (3, 1) standardise (population std 1) to (1, -1) and (1, -1);
    # z2 columns (2, 0) and (0, 2) to (1, -1) and (-1, 1). C = z1n^T z2n / 2 = [[1, -1], [1, -1]]:
    # on-diagonal (1 - 1)^2 + (1 + 1)^2 = 4, off-diagonal (-1)^2 + 1^2 = 2  ->  4 + 2 lambda.
    z1 = torch.tensor([[1.0, 3.0], [-1.0, 1.0]])
    z2 = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    assert barlow_twins_loss(z1, z2, lambd=0.0051, eps=0.0).item() == pytest.approx(4 + 2 * 0.0051, abs=1e-6)
    assert barlow_twins_loss(z1, z2, lambd=0.5, eps=0.0).item() == pytest.approx(5.0, abs=1e-6)
    # the default eps = 1e-5 shrinks every standardised value by 1 / sqrt(1 + 1e-5)
    c = 1 / (1 + 1e-5)
    expected = (1 - c) ** 2 + (1 + c) ** 2 + 0.0051 * 2 * c ** 2
    assert barlow_twins_loss(z1, z2).item() == pytest.approx(expected, abs=1e-5)


def test_vicreg_by_hand():
    # z1 columns (-0.5, 0, 0.5) and (1, 0, -1): unbiased std 0.5 and 1, covariance -0.5;
    # z2 columns (0, 0, 0) and (-0.25, 0, 0.25): std 0 and 0.25, covariance 0.
    z1 = torch.tensor([[-0.5, 1.0], [0.0, 0.0], [0.5, -1.0]])
    z2 = torch.tensor([[0.0, -0.25], [0.0, 0.0], [0.0, 0.25]])
    invariance = (0.25 + 1.5625 + 0 + 0 + 0.25 + 1.5625) / 6          # mean squared difference
    variance = (0.5 + 0.0) / 2 / 2 + (1.0 + 0.75) / 2 / 2                # relu(1 - std), averaged, halved
    covariance = 2 * 0.25 / 2 + 0.0                                      # off-diagonal squares / D
    expected = 25 * invariance + 25 * variance + 1 * covariance
    assert expected == pytest.approx(29.4166667, abs=1e-6)
    assert vicreg_loss(z1, z2, eps=0.0).item() == pytest.approx(expected, abs=1e-5)
    assert vicreg_loss(z1, z2, sim_weight=1, var_weight=0, cov_weight=0).item() == pytest.approx(invariance, abs=1e-6)


def test_nt_xent_by_hand():
    # z1 = (e1, e2), z2 = (e2, e1) after normalisation: each anchor has similarity 0 to its partner,
    # 0 to one negative and 1 to the other: -log(e^0 / (e^0 + e^0 + e^(1/T))) = log(2 + e^(1/T)).
    z1 = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[0.0, 5.0], [0.5, 0.0]])
    assert nt_xent_loss(z1, z2, temperature=0.5).item() == pytest.approx(math.log(2 + math.e ** 2), abs=1e-5)
    # partners equal: similarity 1 to the partner, 0 to both negatives: log(1 + 2 e^(-1/T))
    assert nt_xent_loss(z1, z1 * 7, temperature=0.25).item() == pytest.approx(math.log(1 + 2 * math.e ** -4), abs=1e-5)


@pytest.mark.parametrize("loss", [barlow_twins_loss, vicreg_loss, nt_xent_loss])
def test_losses_compute_in_float32_inside_a_bf16_autocast_region(loss):
    """Autocast would round the correlations' products to bf16; each loss turns it off for its own arithmetic."""
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(64, 32, generator=g)
    z2 = z1 + 0.01 * torch.randn(64, 32, generator=g)   # near-perfect correlation: where bf16 loses the loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = loss(z1, z2)
    assert inside.dtype == torch.float32 and torch.equal(inside, loss(z1, z2))


def test_loss_registry_errors_name_the_allowed_values():
    with pytest.raises(ValueError, match="barlow-twins"):
        make_loss("byol")
    with pytest.raises(ValueError, match="lambd"):
        make_loss("barlow-twins", lamda=0.1)
    with pytest.raises(ValueError, match="same shape"):
        barlow_twins_loss(torch.zeros(4, 3), torch.zeros(4, 2))
    assert make_loss("simclr", temperature=0.1)(torch.eye(3), torch.eye(3)).item() > 0


def test_config_errors_name_what_is_allowed():
    with pytest.raises(ValueError, match="blockwise, end-to-end, supervised"):
        BlockwiseConfig(mode="local")
    with pytest.raises(ValueError, match="lars"):
        BlockwiseConfig(optimizer="adam")
    with pytest.raises(ValueError, match="max_seconds"):
        BlockwiseConfig(max_seconds=-5)
    with pytest.raises(ValueError, match="greedy"):
        BlockwiseConfig(mode="end-to-end", schedule="greedy")
    with pytest.raises(ValueError, match="temperature"):
        BlockwiseConfig(loss="barlow-twins", loss_options={"temperature": 0.2})


def test_warmup_cosine():
    assert warmup_cosine(0.0, 0.1) == 0.0
    assert warmup_cosine(0.05, 0.1) == pytest.approx(0.5)
    assert warmup_cosine(0.1, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(0.55, 0.1) == pytest.approx(0.5)
    assert warmup_cosine(1.0, 0.1, final_fraction=0.01) == pytest.approx(0.01)


# ---------------------------------------------------------------- locality on the autograd graph

@pytest.mark.parametrize("loss", ["barlow-twins", "vicreg", "simclr"])
def test_no_gradient_crosses_a_stage_boundary(loss):
    model = build_resnet_model("resnet18", BlockwiseConfig(loss=loss, noise_sigma=0.25, **TINY), width=4)
    stage_inputs = {}
    hooks = [model.backbone.stage_modules(i)[0].register_forward_pre_hook(
        lambda m, args, i=i: stage_inputs.__setitem__(i, args[0])) for i in range(1, 5)]
    h = torch.randn(16, 3, 16, 16)
    losses = objective_losses(model, h, noise_gen=torch.Generator().manual_seed(0))
    for hook in hooks:
        hook.remove()
    assert len(losses) == 4
    for i in (2, 3, 4):   # each stage's input is a detached leaf
        assert stage_inputs[i].grad_fn is None and not stage_inputs[i].requires_grad
    params = {i: model.backbone.stage_parameters(i) for i in range(1, 5)}
    for k, loss_k in enumerate(losses, start=1):
        for i in range(1, 5):
            grads = torch.autograd.grad(loss_k, params[i], retain_graph=True, allow_unused=True)
            if i == k:
                assert any(g is not None and g.abs().sum() > 0 for g in grads)
            else:
                assert all(g is None for g in grads), f"stage {k}'s loss reaches stage {i}"


def test_end_to_end_gradients_do_reach_the_first_stage():
    model = build_resnet_model("resnet18", BlockwiseConfig(mode="end-to-end", **TINY), width=4)
    (loss,) = objective_losses(model, torch.randn(16, 3, 16, 16))
    grads = torch.autograd.grad(loss, model.backbone.stage_parameters(1), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


# ---------------------------------------------------------------- training and probes on the mini set

@pytest.fixture(scope="module")
def mini():
    train = load_dataset("cifar10-mini", split="train").subset(48)
    test = load_dataset("cifar10-mini", split="test").subset(32)
    for split in (train, test):   # 16x16 centre crops keep the runs fast
        split.images = split.images[:, :, 8:24, 8:24].contiguous()
    mean, std = train.channel_stats()
    return train, test, mean, std


def _run(mini, checkpoint=None, **options):
    train, _, mean, std = mini
    cfg = BlockwiseConfig(**{**TINY, **options})
    model = build_resnet_model("resnet18", cfg, width=4)
    summary = train_blockwise(model, train, mean=mean, std=std, checkpoint=checkpoint, progress=False)
    return model, summary


def test_blockwise_run_probes_every_stage_end_to_end(mini):
    train, test, mean, std = mini
    model, summary = _run(mini, noise_sigma=0.25)
    assert summary["steps"] == 3 and summary["images"] == 48 and summary["stopped_by"] == "epochs"
    assert len(summary["final_losses"]) == 4 and all(math.isfinite(v) for v in summary["final_losses"])
    layers = probe_layers(model, train, test, [1, 2, 3, 4], mean=mean, std=std, epochs=2, progress=False)
    assert [l["layer"] for l in layers] == [1, 2, 3, 4]
    assert [l["features"] for l in layers] == [4, 8, 16, 32]     # global average pool of each stage
    assert all(0 <= l["probe_top1"] <= 100 and 0 <= l["knn_top1"] <= 100 for l in layers)


def test_seeded_runs_are_deterministic_and_resume_exactly(mini, tmp_path, monkeypatch):
    a, _ = _run(mini, seed=1, epochs=2, checkpoint_every=1)
    b, _ = _run(mini, seed=1, epochs=2, checkpoint_every=1)
    c, _ = _run(mini, seed=2, epochs=2, checkpoint_every=1)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.backbone.conv1.weight, c.backbone.conv1.weight)
    # interrupted at step 6 (after the checkpoint of step 2 of epoch 2), then resumed
    import liouna_snn.blockwise.trainer as trainer
    original, calls = trainer._step_loss, [0]

    def failing(*args, **kw):
        calls[0] += 1
        if calls[0] == 6:
            raise KeyboardInterrupt
        return original(*args, **kw)

    ckpt = tmp_path / "run.pt"
    monkeypatch.setattr(trainer, "_step_loss", failing)
    with pytest.raises(KeyboardInterrupt):
        _run(mini, checkpoint=ckpt, seed=1, epochs=2, checkpoint_every=1)
    monkeypatch.setattr(trainer, "_step_loss", original)
    assert load_checkpoint(ckpt)["phase"] == 1 and load_checkpoint(ckpt)["batch"] == 2
    resumed, summary = _run(mini, checkpoint=ckpt, seed=1, epochs=2, checkpoint_every=1)
    assert summary["steps"] == 6
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), resumed.state_dict().values()))
    with pytest.raises(ValueError, match="other options"):
        _run(mini, checkpoint=ckpt, seed=1, epochs=3, checkpoint_every=1)


def test_sequential_schedule_trains_one_stage_at_a_time(mini):
    model, summary = _run(mini, schedule="greedy")
    assert summary["steps"] == 4 * 3 and summary["images"] == 4 * 48   # one pass per stage
    assert len(summary["final_losses"]) == 1                          # the last phase: stage 4 alone


def test_budget_stops_training_on_the_clock(mini):
    _, summary = _run(mini, epochs=1000, max_seconds=1.0)
    assert summary["stopped_by"] == "budget" and summary["seconds"] < 10 and summary["steps"] < 3000


@pytest.mark.parametrize("mode", ["end-to-end", "supervised"])
def test_baselines_train_in_bf16(mini, mode):
    model, summary = _run(mini, mode=mode, precision="bf16", loss="simclr", epochs=1)
    assert all(math.isfinite(v) for v in summary["final_losses"])
    assert model(torch.randn(2, 3, 16, 16), 4).dtype == torch.float32


def test_spec_convnet_has_the_hebbian_networks_structure():
    spec = load_spec("models/cifar10_3layer.toml")
    convnet = SpecConvNet(spec)
    hebbian = build_network(spec, rule_config("softhebb"))
    assert convnet.feature_shapes == hebbian.feature_shapes()
    assert [m.weight.shape for m in convnet.modules() if isinstance(m, torch.nn.Conv2d)] == \
           [layer.weight.shape for layer in hebbian.layers]
    assert all(p.requires_grad for p in convnet.parameters())


# ---------------------------------------------------------------- export to torchvision

def test_export_loads_strictly_into_torchvision_resnet18(tmp_path):
    torch.manual_seed(0)
    backbone = ResNetBackbone("resnet18", 64).eval()
    head = torch.nn.Linear(512, 10)
    path = export_torchvision_resnet(backbone, tmp_path / "resnet18.pt", head=head)
    model = cifar_resnet18(num_classes=10)
    model.load_state_dict(torch.load(path), strict=True)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), head(backbone(x).mean(dim=(2, 3))), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="width 64"):
        export_torchvision_resnet(ResNetBackbone("resnet18", 8), tmp_path / "small.pt")


# ---------------------------------------------------------------- budgets shared with the Hebbian trainer

def test_budget_is_split_per_layer_for_greedy_and_shared_for_simultaneous():
    from liouna_snn.training import phase_deadlines, schedule_phases
    assert phase_deadlines(schedule_phases(3, "greedy", 2), 30.0) == [10.0, 10.0, 20.0, 20.0, 30.0, 30.0]
    assert phase_deadlines(schedule_phases(3, "simultaneous", 2), 30.0) == [30.0, 30.0]
    assert phase_deadlines(schedule_phases(2, "greedy", 1), None) == [float("inf")] * 2


def test_hebbian_training_stops_at_its_budget(mini):
    from liouna_snn.training import TrainConfig, train_unsupervised
    from .test_network import SMALL_SPEC
    train = load_dataset("cifar10-mini", split="train").subset(2000)
    train.images = train.images[:, :, 10:22, 10:22].contiguous()
    net = build_network(SMALL_SPEC, rule_config("softhebb", lr=0.05), seed=0)
    summary = train_unsupervised(net, train, TrainConfig(schedule="greedy", batch_size=2, epochs=50, max_seconds=0.6),
                                 progress=False)
    assert summary["seconds"] < 5 and summary["images"] < 2000 * 50 * len(net)
    with pytest.raises(ValueError, match="max_seconds"):
        TrainConfig(max_seconds=0)


def test_low_compute_benchmark_end_to_end(tmp_path):
    import json
    from liouna_snn.cli import main
    out = tmp_path / "low_compute"
    hybrid = "softhebb-L1+liouna-column-mask75"   # a run label of experiments/cifar10_local_rules.toml
    rc = main(["low-compute", "--budgets", "0.5", "--methods", "softhebb", "blockwise-simclr", "e2e-supervised-3layer",
               hybrid, "--dataset", "cifar10-mini", "--train-subset", "64", "--test-subset", "32", "--width", "4",
               "--batch-size", "16", "--probe-epochs", "1", "--probe-layers", "last", "--out", str(out),
               "--checkpoint-dir", str(tmp_path / "ckpt"), "--quiet", "--precision", "fp32"])
    assert rc == 0
    results = json.loads(out.with_suffix(".json").read_text())
    runs = {r["label"]: r for r in results["runs"]}
    # backprop runs with non-default options are recorded under labels naming them (width 4, batch 16)
    assert set(runs) == {"softhebb", "blockwise-simclr-w4-bs16", "e2e-supervised-3layer-bs16", hybrid}
    runs["blockwise-simclr"], runs["e2e-supervised-3layer"] = runs["blockwise-simclr-w4-bs16"], runs["e2e-supervised-3layer-bs16"]
    assert runs["e2e-supervised-3layer"]["rule"] == "e2e-supervised" and runs[hybrid]["rule"] == "liouna"
    assert runs[hybrid]["train_options"]["rule_options"]["mask_ratio"] == [0.0, 0.75, 0.75]
    assert {r["precision"] for r in runs.values()} == {"fp32"}
    assert runs["blockwise-simclr"]["train_options"]["precision"] == "fp32"
    # epochs count passes over the data per layer: a greedy 3-layer epoch passes it three times
    assert runs["softhebb"]["passes_per_epoch"] == 3 and 0 < runs["softhebb"]["epochs"] <= 1
    for r in runs.values():
        assert (r["train_images"], r["test_images"], r["probe_epochs"]) == (64, 32, 1)
        assert {"dataset", "rule", "mode", "neuron", "time_steps", "seed", "epochs", "unsup_seconds",
                "unsup_images_per_second", "probe_seconds", "layers", "probe_top1", "budget_seconds"} <= set(r)
        assert r["budget_seconds"] == 0.5 and r["mode"] == "rate" and r["time_steps"] == 1
        assert len(r["layers"]) == 1 and {"layer", "probe_top1", "knn_top1"} <= set(r["layers"][0])
    assert runs["blockwise-simclr"]["layers"][0]["layer"] == 4
    table = out.with_suffix(".md").read_text()
    assert "| softhebb |" in table and f"| {hybrid} |" in table and out.with_suffix(".png").is_file()
    # narrower blockwise heads are a run of their own, listed beside the default one
    rc = main(["low-compute", "--budgets", "0.5", "--methods", "blockwise-simclr", "--head-channels", "8",
               "--dataset", "cifar10-mini", "--train-subset", "64", "--test-subset", "32", "--width", "4",
               "--batch-size", "16", "--probe-epochs", "1", "--probe-layers", "last", "--out", str(out),
               "--checkpoint-dir", str(tmp_path / "ckpt"), "--quiet", "--precision", "fp32"])
    results = json.loads(out.with_suffix(".json").read_text())
    labels = [r["label"] for r in results["runs"]]
    assert rc == 0 and len(labels) == 5 and "blockwise-simclr-w4-bs16" in labels
    narrow = next(r for r in results["runs"] if r["label"] == "blockwise-simclr-w4-head8-bs16")
    assert narrow["train_options"]["head_channels"] == 8
    budget_rows = out.with_suffix(".md").read_text().split("\n\n")[0].splitlines()[2:]
    rows = [line.split("|")[1].strip() for line in budget_rows]
    assert rows.index("blockwise-simclr-w4-head8-bs16") == rows.index("blockwise-simclr-w4-bs16") + 1
    # --report re-renders from the JSON alone, training nothing
    out.with_suffix(".md").unlink()
    assert main(["low-compute", "--report", "--out", str(out)]) == 0
    table = out.with_suffix(".md").read_text()
    assert "| budget | method | seed | model | epochs | stopped by |" in table
    assert "| 0.5 s | blockwise-simclr-w4-head8-bs16 | 0 |" in table


def test_low_compute_tables_average_the_seeds_of_a_method_and_budget():
    from liouna_snn import low_compute as lc
    run = {"label": "softhebb", "budget_seconds": 120.0, "epochs": 0.4, "probe_top1": 77.0,
           "layers": [{"layer": 3, "probe_top1": 77.0, "knn_top1": 60.0}], "unsup_images_per_second": 500.0,
           "probe_seconds": 10.0}
    runs = [{**run, "seed": 1, "probe_top1": 78.0, "epochs": 0.5}, {**run, "seed": 0},
            {**run, "seed": 2, "probe_top1": 79.0, "epochs": 0.6}, {**run, "budget_seconds": 600.0, "seed": 0}]
    table = lc.budget_table({"runs": runs})
    assert "| softhebb | 78.00 ± 1.00 (0.5 ep, 3 seeds) | 77.00 (0.4 ep) |" in table
    # a seed recorded twice counts once, with its last record
    assert lc.budget_cell(lc._seed_runs(runs + [{**run, "seed": 0, "probe_top1": 80.0}], "softhebb", 120.0)) == \
        "79.00 ± 1.00 (0.5 ep, 3 seeds)"
    rows = lc.run_table({"runs": runs}).splitlines()[2:]
    assert [row.split("|")[3].strip() for row in rows] == ["0", "1", "2", "0"]   # by budget, then seed


def test_low_compute_labels_name_non_default_options_and_runs_key_on_their_data():
    import argparse
    from liouna_snn import low_compute as lc
    parser = argparse.ArgumentParser()
    lc.add_arguments(parser)
    defaults = parser.parse_args([])
    assert [lc.record_label(m, defaults) for m in ("e2e-simclr", "blockwise-vicreg", "softhebb")] == \
        ["e2e-simclr", "blockwise-vicreg", "softhebb"]
    custom = parser.parse_args(["--arch", "resnet50", "--width", "32", "--feature-pool", "2", "--head-channels",
                                "128", "--batch-size", "256", "--max-epochs", "5"])
    assert lc.record_label("blockwise-vicreg", custom) == "blockwise-vicreg-resnet50-w32-pool2-head128-bs256-ep5"
    assert lc.record_label("e2e-simclr", custom) == "e2e-simclr-resnet50-w32-pool2-bs256-ep5"   # no stage heads
    assert lc.record_label("e2e-supervised-3layer", custom) == "e2e-supervised-3layer-bs256-ep5"  # not a ResNet
    assert lc.record_label("softhebb", custom) == "softhebb"   # Hebbian options come from the experiment
    for method in ("blockwise-vicreg", "e2e-simclr", "e2e-supervised-3layer"):
        assert lc._method(lc.record_label(method, custom)) == method
    compiled = parser.parse_args(["--compile"])  # only the Hebbian runs compile, and say so in their label
    assert [lc.record_label(m, compiled) for m in ("softhebb", "e2e-supervised-3layer")] == \
        ["softhebb-compiled", "e2e-supervised-3layer"]
    assert lc._method("softhebb-compiled") == "softhebb"
    # a Hebbian experiment with another schedule is another run: its label says which (backprop labels do not change)
    assert [lc.record_label(m, compiled, "simultaneous") for m in ("softhebb", "e2e-supervised-3layer")] == \
        ["softhebb-simultaneous-compiled", "e2e-supervised-3layer"]
    assert lc.record_label("softhebb", defaults, "simultaneous") == "softhebb-simultaneous"
    assert lc._method("softhebb-simultaneous-compiled") == lc._method("softhebb-simultaneous") == "softhebb"
    assert [lc.budget_name(b) for b in (120.0, 600, 200.0, 0.5)] == ["2 min", "10 min", "200 s", "0.5 s"]
    # runs recorded before image counts and probe epochs were per run take the file's values; other counts differ
    old = {"train_images": 50000, "test_images": 10000, "probe": {"epochs": 50},
           "runs": [{"label": "softhebb", "budget_seconds": 600.0, "seed": 0, "dataset": "cifar10", "precision": "bf16"}]}
    (run,) = lc._with_data_fields(old)
    assert lc.run_key(run) == ("softhebb", 600.0, 0, "cifar10", "bf16", 50000, 10000, 50)
    assert lc.run_key({**run, "train_images": 5000}) != lc.run_key(run)


def test_low_compute_names_the_allowed_methods(tmp_path, capsys):
    from liouna_snn.cli import main
    rc = main(["low-compute", "--budgets", "1", "--methods", "hebbian-magic", "--dataset", "cifar10-mini",
               "--out", str(tmp_path / "lc"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "hebbian-magic" in err
    assert "e2e-barlow-twins" in err and "softhebb-L1+liouna-column-mask75" in err
    assert main(["low-compute", "--report", "--out", str(tmp_path / "nothing")]) == 2
    assert "no results file" in capsys.readouterr().err


def test_budget_zero_keeps_the_initial_weights_and_fits_only_the_batch_norms(mini):
    from liouna_snn import low_compute as lc
    from liouna_snn.data import iterate_batches
    spec = load_spec("models/cifar10_3layer.toml")
    spec = {**spec, "input_size": 16}
    net = build_network(spec, rule_config("softhebb"), seed=3)
    mean, std = mini[0].channel_stats()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    summary = lc.untrained_summary(net, mini[0], "cpu", mean, std, progress=False)
    assert summary["stopped_by"] == "untrained" and summary["images"] == 0 and summary["seconds"] == 0
    after = net.state_dict()
    fitted = [k for k in after if "running_" in k or "num_batches" in k]
    assert fitted and all(torch.equal(before[k], after[k]) for k in after if k not in fitted)
    # layer 2's batch-norm holds the exact statistics of layer 1's outputs over the (48 < 10,000) images
    x = torch.cat([x for x, _ in iterate_batches(mini[0], 48, shuffle=False, mean=mean, std=std)])
    with torch.no_grad():
        h = net(x, depth=1)
    bn = net.layers[1].norm
    torch.testing.assert_close(bn.running_mean, h.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert not net.training


def test_low_compute_budget_zero_is_the_untrained_column(tmp_path):
    import json
    from liouna_snn.cli import main
    out = tmp_path / "low_compute"
    args = ["--dataset", "cifar10-mini", "--train-subset", "64", "--test-subset", "32", "--width", "4",
            "--probe-epochs", "1", "--probe-layers", "last", "--out", str(out), "--checkpoint-dir",
            str(tmp_path / "ckpt"), "--quiet", "--precision", "fp32"]
    assert main(["low-compute", "--budgets", "0", "0.5", "--methods", "softhebb", "e2e-supervised-resnet",
                 "--batch-size", "16", *args]) == 0
    runs = {(r["label"], r["budget_seconds"]): r for r in json.loads(out.with_suffix(".json").read_text())["runs"]}
    for label in ("softhebb", "e2e-supervised-resnet-w4-bs16"):
        untrained = runs[(label, 0.0)]
        assert untrained["stopped_by"] == "untrained" and untrained["epochs"] == 0 and untrained["unsup_seconds"] == 0
        assert runs[(label, 0.5)]["stopped_by"] in ("budget", "epochs") and runs[(label, 0.5)]["epochs"] > 0
    assert not (tmp_path / "ckpt").exists() or not any("_0s_" in p.name for p in (tmp_path / "ckpt").iterdir())
    header = out.with_suffix(".md").read_text().splitlines()[0]
    assert header == "| method | untrained | 0.5 s |" and out.with_suffix(".png").is_file()
    assert main(["low-compute", "--budgets", "-1", "--methods", "softhebb", *args]) == 2   # names what is allowed
