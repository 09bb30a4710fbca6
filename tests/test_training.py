"""Schedules, determinism, atomic checkpoints and resumption; probes; experiments end to end."""
import json

import pytest
import torch

from liouna_snn import build_network, rule_config
from liouna_snn.cli import main as cli_main
from liouna_snn.data import load_dataset
from liouna_snn.evaluation import knn_top1, linear_probe
from liouna_snn.evaluation.probe import dropout_mask
from liouna_snn.experiment import load_experiment, per_layer_rules, run_experiment, select_runs
from liouna_snn.training import TrainConfig, load_checkpoint, save_atomic, train_unsupervised

from .conftest import load_experiment_script
from .test_network import SMALL_SPEC


@pytest.fixture(scope="module")
def tiny_data():
    data = load_dataset("cifar10-mini", split="train").subset(64)
    data.images = data.images[:, :, 10:22, 10:22].contiguous()  # 12x12 crops for the small spec
    return data


def _train(data, schedule="simultaneous", seed=0, checkpoint=None, rule="softhebb"):
    net = build_network(SMALL_SPEC, rule_config(rule, lr=0.05), seed=seed)
    summary = train_unsupervised(net, data, TrainConfig(schedule=schedule, batch_size=8, seed=seed, checkpoint_every=3),
                                 checkpoint=checkpoint, progress=False)
    return net, summary


def test_seeded_runs_are_deterministic(tiny_data):
    a, summary = _train(tiny_data, seed=3)
    b, _ = _train(tiny_data, seed=3)
    c, _ = _train(tiny_data, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)
    assert summary["images"] == 64 and summary["steps"] == 8


def test_greedy_freezes_lower_layers(tiny_data, monkeypatch):
    net = build_network(SMALL_SPEC, rule_config("softhebb", lr=0.05))
    seen = []
    original = net.learn_layer
    monkeypatch.setattr(net, "learn_layer", lambda i, h, p, g=None, **kw: (seen.append(i), original(i, h, p, g, **kw))[1])
    train_unsupervised(net, tiny_data, TrainConfig(schedule="greedy", batch_size=16), progress=False)
    assert seen == [0] * 4 + [1] * 4 + [2] * 4


def test_interrupted_run_resumes_to_identical_weights(tiny_data, tmp_path, monkeypatch):
    reference, _ = _train(tiny_data, schedule="greedy")
    ckpt = tmp_path / "run.pt"
    net = build_network(SMALL_SPEC, rule_config("softhebb", lr=0.05), seed=0)
    calls = {"n": 0}
    original = net.learn_layer

    def crash_after_some_steps(i, h, p, g=None, **kw):
        calls["n"] += 1
        if calls["n"] == 13:  # batch 5 of layer 2's epoch, after the checkpoint at its batch 3
            raise KeyboardInterrupt
        return original(i, h, p, g, **kw)

    monkeypatch.setattr(net, "learn_layer", crash_after_some_steps)
    with pytest.raises(KeyboardInterrupt):
        train_unsupervised(net, tiny_data, TrainConfig(schedule="greedy", batch_size=8, checkpoint_every=3),
                           checkpoint=ckpt, progress=False)
    state = load_checkpoint(ckpt)
    assert (state["phase"], state["batch"]) == (1, 3)
    resumed = build_network(SMALL_SPEC, rule_config("softhebb", lr=0.05), seed=0)
    train_unsupervised(resumed, tiny_data, TrainConfig(schedule="greedy", batch_size=8, checkpoint_every=3),
                       checkpoint=ckpt, progress=False)
    for p, q in zip(reference.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(p, q)


def test_checkpoint_from_other_options_is_refused(tiny_data, tmp_path):
    ckpt = tmp_path / "run.pt"
    _train(tiny_data, checkpoint=ckpt)
    net = build_network(SMALL_SPEC, rule_config("softhebb"), seed=0)
    with pytest.raises(ValueError, match="written by a run with other options"):
        train_unsupervised(net, tiny_data, TrainConfig(batch_size=4), checkpoint=ckpt, progress=False)


def test_checkpoint_from_another_rule_or_neuron_is_refused(tiny_data, tmp_path):
    """Same training options, other rule options or spiking config: resuming would mix two runs."""
    from liouna_snn.spiking import SpikingConfig

    ckpt = tmp_path / "run.pt"
    _train(tiny_data, checkpoint=ckpt)
    config = TrainConfig(schedule="simultaneous", batch_size=8, seed=0, checkpoint_every=3)
    rules = [rule_config("softhebb", lr=0.05)] * (len(SMALL_SPEC["layers"]) - 1) + [rule_config("softhebb", lr=0.1)]
    other_lr = build_network(SMALL_SPEC, rules, seed=0)
    with pytest.raises(ValueError, match=rf"another network or rule \(layer {len(rules)} rule\.lr: 0\.05 -> 0\.1\)"):
        train_unsupervised(other_lr, tiny_data, config, checkpoint=ckpt, progress=False)
    spiking = build_network(SMALL_SPEC, rule_config("softhebb", lr=0.05), seed=0, spiking=SpikingConfig(time_steps=2))
    with pytest.raises(ValueError, match="layer 1 spiking: None -> "):
        train_unsupervised(spiking, tiny_data, config, checkpoint=ckpt, progress=False)
    same = build_network(SMALL_SPEC, rule_config("softhebb", lr=0.05), seed=0)
    train_unsupervised(same, tiny_data, config, checkpoint=ckpt, progress=False)  # the finished run resumes


def test_greedy_run_takes_shared_leading_layers_from_a_donor_and_ends_identical(tiny_data, tmp_path):
    """Greedy layer i depends only on layers below it, its own phase's seeded data order and its own mask
    generator: taking trained layers 1-2 from another run gives the weights of training them again."""
    config = TrainConfig(schedule="greedy", batch_size=8, seed=0, checkpoint_every=3)
    masked = rule_config("liouna", lr=0.05, inhibition="column", mask_ratio=0.5, mask_patch=2)

    def net(last_lr):
        return build_network(SMALL_SPEC, [masked, rule_config("softhebb", lr=0.05), rule_config("softhebb", lr=last_lr)],
                             seed=0)

    donor = tmp_path / "donor_seed0.pt"
    train_unsupervised(net(0.05), tiny_data, config, checkpoint=donor, progress=False)
    reference = net(0.2)
    fresh = train_unsupervised(reference, tiny_data, config, progress=False, donors=[])
    assert fresh["reused_layers"] == 0
    taker = net(0.2)
    summary = train_unsupervised(taker, tiny_data, config, checkpoint=tmp_path / "taker_seed0.pt", donors=[donor],
                                 progress=False)
    assert (summary["reused_layers"], summary["reused_from"]) == (2, str(donor))
    for (name, p), q in zip(reference.state_dict().items(), taker.state_dict().values()):
        assert torch.equal(p, q), name
    # the donor's seconds for layers 1-2 count; a rerun resumes from the taker's own (finished) checkpoint,
    # which remembers where its layers came from
    assert summary["seconds"] >= sum(load_checkpoint(donor)["phase_seconds"][:2])
    again = train_unsupervised(net(0.2), tiny_data, config, checkpoint=tmp_path / "taker_seed0.pt", donors=[donor],
                               progress=False)
    assert (again["reused_layers"], again["reused_from"], again["seconds"]) == (2, str(donor), summary["seconds"])

    # another layer-1 rule, other initial weights, other data, the simultaneous schedule, or spiking neurons
    # (frozen layers draw input spikes from the global generator): nothing is taken
    from liouna_snn.spiking import SpikingConfig
    other_seed = build_network(SMALL_SPEC, [masked, rule_config("softhebb", lr=0.05), rule_config("softhebb", lr=0.2)],
                               seed=1)
    assert train_unsupervised(other_seed, tiny_data, config, donors=[donor], progress=False)["reused_layers"] == 0
    spiking = SpikingConfig(time_steps=2, encoder="bernoulli")
    spiking_donor = tmp_path / "spiking_seed0.pt"
    train_unsupervised(build_network(SMALL_SPEC, masked, seed=0, spiking=spiking), tiny_data, config,
                       checkpoint=spiking_donor, progress=False)
    assert train_unsupervised(build_network(SMALL_SPEC, masked, seed=0, spiking=spiking), tiny_data, config,
                              donors=[spiking_donor], progress=False)["reused_layers"] == 0
    other_first = build_network(SMALL_SPEC, [rule_config("softhebb", lr=0.05)] * 3, seed=0)
    assert train_unsupervised(other_first, tiny_data, config, donors=[donor], progress=False)["reused_layers"] == 0
    assert train_unsupervised(net(0.2), tiny_data.subset(32), config, donors=[donor],
                              progress=False)["reused_layers"] == 0
    simultaneous = TrainConfig(schedule="simultaneous", batch_size=8, seed=0, checkpoint_every=3)
    assert train_unsupervised(net(0.2), tiny_data, simultaneous, donors=[donor], progress=False)["reused_layers"] == 0


def test_checkpoint_from_other_data_is_refused(tiny_data, tmp_path):
    ckpt = tmp_path / "run.pt"
    _train(tiny_data, checkpoint=ckpt)
    net = build_network(SMALL_SPEC, rule_config("softhebb", lr=0.05), seed=0)
    with pytest.raises(ValueError, match=r"written by a run on other data \(64 images"):
        train_unsupervised(net, tiny_data.subset(32), TrainConfig(schedule="simultaneous", batch_size=8, seed=0,
                                                                 checkpoint_every=3), checkpoint=ckpt, progress=False)


def test_atomic_save_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    save_atomic({"v": 1}, path)
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save_atomic({"v": 2}, path)
    assert load_checkpoint(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_linear_probe_and_knn_on_separable_data():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 32, generator=g) * 4
    y = torch.arange(2000) % 4
    x = centers[y] + torch.randn(2000, 32, generator=g)
    res = linear_probe(x[:1500].clone(), y[:1500], x[1500:].clone(), y[1500:], epochs=8, lr=1e-2, progress=False)
    assert res["top1"] > 95 and res["train_top1"] > 95
    assert knn_top1(x[:1500], y[:1500], x[1500:], y[1500:], k=5) > 95
    shuffled = y[torch.randperm(2000, generator=g)]  # labels carry no information: chance level
    assert linear_probe(x[:1500].clone(), shuffled[:1500], x[1500:].clone(), shuffled[1500:], epochs=8, lr=1e-2,
                        progress=False)["top1"] < 35


def test_dropout_mask_is_unbiased():
    m = dropout_mask((64, 1000), 0.5, torch.Generator().manual_seed(0), "cpu")
    assert set(m.unique().tolist()) == {0, 2}
    assert abs(float(m.float().mean()) - 1.0) < 0.02
    m = dropout_mask((64, 1000), 0.2, torch.Generator().manual_seed(0), "cpu")
    assert abs(float(m.mean()) - 1.0) < 0.02


def _write_experiment(tmp_path, extra=""):
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "tiny.toml").write_text(
        'input_channels = 3\ninput_size = 32\n[[layers]]\nout_channels = 8\nkernel_size = 5\npadding = 2\n'
        'activation = { name = "triangle", power = 0.7 }\npool = { type = "max", kernel_size = 4, stride = 4 }\n'
        '[[layers]]\nout_channels = 16\nkernel_size = 3\npadding = 1\npool = { type = "avg", kernel_size = 2 }\n')
    exp = tmp_path / "experiments" / "tiny.toml"
    exp.parent.mkdir(exist_ok=True)
    exp.write_text('model = "tiny"\n[data]\ndataset = "cifar10-mini"\ntrain_subset = 200\ntest_subset = 100\n'
                   '[unsupervised]\nbatch_size = 20\n[probe]\nepochs = 2\n'
                   '[[runs]]\nrule = "softhebb"\noptions = { lr = [0.05, 0.01] }\n[[runs]]\nrule = "random"\n' + extra)
    return exp


def test_experiment_writes_results_in_the_schema(tmp_path):
    exp = _write_experiment(tmp_path)
    results = run_experiment(exp, device="cpu", progress=False)
    saved = json.loads((tmp_path / "experiments" / "results" / "tiny.json").read_text())
    assert saved == json.loads(json.dumps(results))
    for key in ("experiment", "command", "git_commit", "torch", "device", "runs"):
        assert key in saved
    assert [r["rule"] for r in saved["runs"]] == ["softhebb", "random"]
    run = saved["runs"][0]
    for key in ("dataset", "rule", "mode", "neuron", "time_steps", "seed", "epochs", "unsup_seconds",
                "unsup_images_per_second", "probe_seconds", "layers", "probe_top1"):
        assert key in run
    assert [l["layer"] for l in run["layers"]] == [1, 2]
    assert run["probe_top1"] == max(l["probe_top1"] for l in run["layers"])
    assert all(0 <= l["probe_top1"] <= 100 and 0 <= l["knn_top1"] <= 100 for l in run["layers"])
    assert (tmp_path / "experiments" / "results" / "tiny_layers.png").stat().st_size > 1000
    assert (tmp_path / "experiments" / "results" / "tiny_filters_softhebb_seed0.png").exists()


def test_a_run_sharing_layer_1_with_another_takes_it_trained(tmp_path):
    exp = _write_experiment(tmp_path, extra='[[runs]]\nlabel = "softhebb-l2"\nrule = "softhebb"\n'
                                            'options = { lr = [0.05, 0.03] }\n')
    runs = {r["label"]: r for r in run_experiment(exp, device="cpu", progress=False)["runs"]}
    assert "reused_layers" not in runs["softhebb"] and "reused_layers" not in runs["random"]
    assert runs["softhebb-l2"]["reused_layers"] == {"layers": 1, "checkpoint": "softhebb_seed0.pt"}
    assert runs["softhebb-l2"]["layers"][0]["probe_top1"] == runs["softhebb"]["layers"][0]["probe_top1"]
    assert runs["softhebb-l2"]["layers"][0]["weight_norm_mean"] == runs["softhebb"]["layers"][0]["weight_norm_mean"]
    # how far units turned from their seeded initial weights: frozen random units not at all
    assert [l["init_cosine_min"] for l in runs["random"]["layers"]] == pytest.approx([1.0, 1.0], abs=1e-9)
    learned = runs["softhebb"]["layers"][0]
    # ten small SoftHebb steps from radius 25 turn the units a little: near 1 (the rebuilt init is the one trained
    # from; another draw would give ~0), yet not 1
    assert 0.99 < learned["init_cosine_min"] <= learned["init_cosine_mean"] < 1 - 1e-9
    assert len(learned["unit_init_cosines"]) == 8


def test_the_precision_option_overrides_the_experiments_and_runs_record_their_machine(tmp_path):
    from liouna_snn.provenance import machine

    exp = _write_experiment(tmp_path)  # [unsupervised] sets no precision: "auto"
    for precision in ("bf16", "fp32"):
        results = run_experiment(exp, device="cpu", progress=False, only_rules=["random"], precision=precision)
        assert results["unsupervised"]["precision"] == precision
    # one record per precision, each with the machine its wall time was measured on
    assert [r["precision"] for r in results["runs"]] == ["bf16", "fp32"]
    assert all({k: r[k] for k in ("device", "cpu", "threads")} == machine("cpu") for r in results["runs"])
    with pytest.raises(ValueError, match=r"unknown precision 'fp16'; allowed: auto, bf16, fp32"):
        run_experiment(exp, device="cpu", progress=False, precision="fp16")


def test_a_partial_rerun_keeps_the_other_runs_with_their_provenance(tmp_path):
    """--rules reruns one run; the others stay, with the command, commit and precision they ran under, also
    when an older file recorded those only at its top level (which the rerun rewrites)."""
    exp = _write_experiment(tmp_path)
    path = tmp_path / "experiments" / "results" / "tiny.json"
    first = run_experiment(exp, device="cpu", progress=False, precision="fp32")  # whatever "auto" picks here
    old = {**first, "command": "liouna-snn run tiny.toml (old)", "git_commit": "0" * 40,
           "unsupervised": {**first["unsupervised"], "precision": "bf16"},
           "runs": [{k: v for k, v in r.items() if k not in ("command", "git_commit", "precision")}
                    for r in first["runs"]]}
    path.write_text(json.dumps(old))
    rerun = run_experiment(exp, device="cpu", progress=False, only_rules=["random"], precision="fp32")
    # the old bf16 record of "random" stays beside the new fp32 one: seeds and reruns compare within a precision
    assert [(r["label"], r["precision"]) for r in rerun["runs"]] == [("softhebb", "bf16"), ("random", "bf16"),
                                                                     ("random", "fp32")]
    kept, kept_random, fresh = rerun["runs"]
    assert (kept["command"], kept["git_commit"], kept["precision"]) == ("liouna-snn run tiny.toml (old)", "0" * 40, "bf16")
    assert kept["layers"] == old["runs"][0]["layers"] and kept_random["layers"] == old["runs"][1]["layers"]
    assert fresh["precision"] == rerun["unsupervised"]["precision"] and fresh["git_commit"] == rerun["git_commit"] != "0" * 40
    assert json.loads(path.read_text()) == json.loads(json.dumps(rerun))
    again = run_experiment(exp, device="cpu", progress=False, only_rules=["random"], precision="fp32")  # replaced
    assert [(r["label"], r["precision"]) for r in again["runs"]] == [(r["label"], r["precision"]) for r in rerun["runs"]]


def test_seeds_option_adds_seeds_and_keeps_the_records_already_there(tmp_path, capsys):
    """--seeds 1 runs seed 1 of the selected run only: seed 0's records (of it and of the others) stay as they
    were, and the new seed's weights differ from seed 0's."""
    exp = _write_experiment(tmp_path)
    first = run_experiment(exp, device="cpu", progress=False)
    again = run_experiment(exp, device="cpu", progress=False, only_rules=["softhebb"], seeds=[1])
    assert [(r["label"], r["seed"]) for r in again["runs"]] == [("softhebb", 0), ("random", 0), ("softhebb", 1)]
    assert again["runs"][:2] == [{**r, "precision": first["unsupervised"]["precision"]} for r in first["runs"]]
    ckpts = tmp_path / "experiments" / "checkpoints" / "tiny"
    w0 = load_checkpoint(ckpts / "softhebb_seed0.pt")["network"]["layers.0.weight"]
    w1 = load_checkpoint(ckpts / "softhebb_seed1.pt")["network"]["layers.0.weight"]
    assert w0.shape == w1.shape and not torch.equal(w0, w1)
    assert cli_main(["run", str(exp), "--seeds", "1", "1", "--quiet"]) == 2
    assert "--seeds: seeds must be distinct non-negative integers, e.g. [0, 1, 2], got [1, 1]" in capsys.readouterr().err
    bad = _write_experiment(tmp_path, extra='[[runs]]\nlabel = "x"\nrule = "liouna"\nseeds = [0, -1]\n')
    with pytest.raises(ValueError, match=r"\[\[runs\]\] #3: seeds must be distinct non-negative integers"):
        load_experiment(bad)


def test_a_whole_run_keeps_the_records_it_does_not_replace_and_sets_other_data_aside(tmp_path, capsys):
    """Running the whole experiment again replaces each run's own record (label, seed, precision) and keeps the
    rest (another seed); a results file of other data is moved aside, not mixed in or lost."""
    exp = _write_experiment(tmp_path)
    results_dir = tmp_path / "experiments" / "results"
    seed1 = run_experiment(exp, device="cpu", progress=False, only_rules=["random"], seeds=[1])
    whole = run_experiment(exp, device="cpu", progress=False)
    assert [(r["label"], r["seed"]) for r in whole["runs"]] == [("random", 1), ("softhebb", 0), ("random", 0)]
    assert whole["runs"][0]["layers"] == seed1["runs"][0]["layers"]
    again = run_experiment(exp, device="cpu", progress=False)
    assert [(r["label"], r["seed"]) for r in again["runs"]] == [("random", 1), ("softhebb", 0), ("random", 0)]
    exp.write_text(exp.read_text().replace("train_subset = 200", "train_subset = 100"))
    other = run_experiment(exp, device="cpu", progress=False, checkpoint_dir=tmp_path / "other-checkpoints")
    assert [(r["label"], r["seed"]) for r in other["runs"]] == [("softhebb", 0), ("random", 0)]
    aside = sorted(results_dir.glob("tiny.*.json"))
    assert len(aside) == 1 and json.loads(aside[0].read_text())["runs"] == json.loads(json.dumps(again["runs"]))
    assert f"held runs on other data (200 / 100 images, image size -): moved to {aside[0]}" in capsys.readouterr().err


def test_earlier_records_keep_same_data_or_partial_reruns_and_set_other_data_aside(tmp_path, capsys):
    from liouna_snn.experiment import earlier_records

    path = tmp_path / "x.json"
    assert earlier_records(path, partial=False, same=lambda e: True) == []
    path.write_text(json.dumps({"command": "c", "git_commit": "g", "unsupervised": {"precision": "bf16"},
                                "train_images": 10, "test_images": 5, "runs": [{"label": "a", "seed": 0}]}))
    kept = [{"command": "c", "git_commit": "g", "precision": "bf16", "label": "a", "seed": 0}]
    assert earlier_records(path, partial=False, same=lambda e: e["train_images"] == 10) == kept
    assert earlier_records(path, partial=True, same=lambda e: False) == kept
    assert earlier_records(path, partial=False, same=lambda e: False, may_move=False) == [] and path.is_file()
    assert earlier_records(path, partial=False, same=lambda e: False) == []
    aside = list(tmp_path.glob("x.*.json"))
    assert not path.exists() and len(aside) == 1 and json.loads(aside[0].read_text())["runs"][0]["label"] == "a"
    assert f"held runs on other data (10 / 5 images, image size -): moved to {aside[0]}" in capsys.readouterr().err


def test_a_run_in_another_precision_gets_its_own_checkpoint_and_filter_plot(tmp_path):
    """A checkpoint of the same label and seed trained in bf16 is neither resumed nor refused by an fp32 run: the
    fp32 run writes <label>_seed<s>_fp32.pt beside it and leaves it as it was."""
    from liouna_snn.experiment import checkpoint_path
    from liouna_snn.training.checkpoint import checkpoint_precision

    exp = _write_experiment(tmp_path)
    first = run_experiment(exp, device="cpu", progress=False, only_rules=["softhebb"], precision="fp32")
    ckpts = tmp_path / "experiments" / "checkpoints" / "tiny"
    state = torch.load(ckpts / "softhebb_seed0.pt", weights_only=False)
    for layer in state["network_identity"]["layers"]:
        layer["compute_dtype"] = "torch.bfloat16"  # as an AMX machine would have written it
    torch.save(state, ckpts / "softhebb_seed0.pt")
    before = (ckpts / "softhebb_seed0.pt").read_bytes()
    loaded = load_experiment(exp)
    assert checkpoint_precision(ckpts / "softhebb_seed0.pt") == "bf16"
    assert checkpoint_path(loaded, "softhebb", 0, ckpts, "fp32") == ckpts / "softhebb_seed0_fp32.pt"
    assert checkpoint_path(loaded, "softhebb", 0, ckpts, "bf16") == ckpts / "softhebb_seed0.pt"
    assert checkpoint_path(loaded, "softhebb", 0, ckpts) == ckpts / "softhebb_seed0.pt"
    again = run_experiment(exp, device="cpu", progress=False, only_rules=["softhebb"], precision="fp32")
    assert (ckpts / "softhebb_seed0.pt").read_bytes() == before
    assert checkpoint_precision(ckpts / "softhebb_seed0_fp32.pt") == "fp32"
    accuracies = [[(layer["probe_top1"], layer["knn_top1"]) for layer in r["runs"][-1]["layers"]] for r in (first, again)]
    assert accuracies[0] == accuracies[1]  # the same fp32 training: deterministic
    assert (tmp_path / "experiments" / "results" / "tiny_filters_softhebb_seed0_fp32.png").is_file()


def test_experiment_errors_name_the_problem(tmp_path, capsys):
    exp = _write_experiment(tmp_path, extra='[extra]\nfoo = 1\n')
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['extra'\]"):
        load_experiment(exp)
    with pytest.raises(ValueError, match="lists 3 values for 2 layers"):
        per_layer_rules("softhebb", {"lr": [1.0, 2.0, 3.0]}, 2)
    exp = _write_experiment(tmp_path)
    exp.write_text(exp.read_text().replace('dataset = "cifar10-mini"', f'dataset = "cifar10"\nroot = "{tmp_path}/nowhere"'))
    assert cli_main(["run", str(exp), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cifar-10-batches-py" in err and "nowhere" in err


@pytest.mark.parametrize("label", ["layer2/column", "..", "", "a:b"])
def test_run_labels_that_cannot_name_files_are_refused(tmp_path, label):
    path = tmp_path / "exp.toml"
    path.write_text(f'model = "cifar10_3layer"\n[data]\ndataset = "cifar10-mini"\n'
                    f'[[runs]]\nrule = "liouna"\nlabel = "{label}"\n')
    with pytest.raises(ValueError, match=r"\[\[runs\]\] #1: label .* names files \(checkpoints, plots\)"):
        load_experiment(path)


def test_select_runs_follows_the_given_order_and_refuses_unknown_names():
    runs = [{"rule": "softhebb"}, {"rule": "liouna", "label": "liouna+mask"}, {"rule": "random"}]
    assert select_runs(runs, None) == runs
    assert [r["rule"] for r in select_runs(runs, ["random", "liouna+mask"])] == ["random", "liouna"]
    assert select_runs(runs, ["liouna", "liouna+mask"]) == [runs[1]]  # a run named twice runs once
    # a label wins over a rule of the same name: "liouna" is the run labelled so, not every run of rule liouna
    labelled = [{"rule": "liouna"}, {"rule": "liouna", "label": "liouna+mask"}, {"rule": "random"}]
    assert select_runs(labelled, ["liouna"]) == [labelled[0]]
    assert select_runs(runs + [{"rule": "liouna", "label": "other"}], ["liouna"]) == [runs[1], {"rule": "liouna", "label": "other"}]
    with pytest.raises(ValueError, match=r"--rules softmax: no run .*; its labels: softhebb, liouna\+mask, random; "
                                         r"its rules: liouna, random, softhebb$"):
        select_runs(runs, ["softmax"])


def test_weight_geometry_script_reads_the_checkpoints_as_the_run_recorded_them(tmp_path):
    geometry = load_experiment_script("weight_geometry")

    exp = _write_experiment(tmp_path, extra='[[runs]]\nrule = "liouna"\nlabel = "untrained"\nseeds = [3]\n')
    results = run_experiment(exp, device="cpu", progress=False, only_rules=["softhebb", "random"])
    out = geometry.main([str(exp)])
    assert json.loads((tmp_path / "experiments" / "results" / "tiny_geometry.json").read_text()) == out
    assert out["skipped"] == [{"label": "untrained", "seed": 3, "why": out["skipped"][0]["why"]}]
    assert "no checkpoint" in out["skipped"][0]["why"]
    for run, record in zip(out["runs"], results["runs"]):
        assert run["label"] == record["label"]
        for mine, theirs in zip(run["layers"], record["layers"]):
            assert abs(mine["weight_effective_rank"] - theirs["weight_effective_rank"]) < 1e-3
            assert abs(mine["init_cosine_mean"] - theirs["init_cosine_mean"]) < 1e-6
    random_layers = out["runs"][1]["layers"]
    assert all(layer["init_cosine_mean"] == 1.0 for layer in random_layers)
    learned = out["runs"][0]["layers"][0]  # the trained weights were loaded, not a fresh init
    assert abs(learned["weight_norm_mean"] - results["runs"][0]["layers"][0]["weight_norm_mean"]) < 1e-5
    assert abs(learned["weight_norm_mean"] - random_layers[0]["weight_norm_mean"]) > 0.5
    assert "| softhebb | 0 |" in geometry.table(out)


def test_reuse_from_takes_layers_trained_by_another_experiment(tmp_path, capsys):
    _write_experiment(tmp_path)  # the tiny model spec
    common = ('model = "tiny"\n{top}[data]\ndataset = "cifar10-mini"\ntrain_subset = 200\ntest_subset = 100\n'
              '[unsupervised]\nbatch_size = 20\n{unsup}[probe]\nepochs = 2\n'
              '[[runs]]\nlabel = "{label}"\nrule = "softhebb"\noptions = {{ lr = {lr} }}\n')
    shallow = tmp_path / "experiments" / "shallow.toml"  # depth 1, its own checkpoint folder
    shallow.write_text(common.format(top="depth = 1\n", unsup="checkpoint_every = 3\n", label="l1", lr="[0.05]"))
    run_experiment(shallow, device="cpu", progress=False)
    donor_file = tmp_path / "experiments" / "checkpoints" / "shallow" / "l1_seed0.pt"
    donor = torch.load(donor_file, weights_only=False)
    donor["network"]["layers.0.weight"] *= 2  # a taken layer shows it; a retrained one would not
    torch.save(donor, donor_file)

    deeper = tmp_path / "experiments" / "deeper.toml"
    deeper.write_text(common.format(top='reuse_from = ["missing", "shallow"]\n', unsup="", label="l1+l2",
                                    lr="[0.05, 0.03]"))
    run = run_experiment(deeper, device="cpu", progress=False)["runs"][0]
    assert "reuse_from 'missing': no checkpoint folder" in capsys.readouterr().err
    assert run["reused_layers"] == {"layers": 1, "checkpoint": "shallow/l1_seed0.pt"}
    expected = float(donor["network"]["layers.0.weight"].flatten(1).norm(dim=1).mean())
    assert abs(run["layers"][0]["weight_norm_mean"] - expected) < 1e-4

    for bad in ('reuse_from = "shallow"', 'reuse_from = ["shallow", "shallow"]', 'reuse_from = ["deeper"]',
                'reuse_from = ["../shallow"]'):
        deeper.write_text(common.format(top=bad + "\n", unsup="", label="x", lr="0.05"))
        with pytest.raises(ValueError, match="reuse_from must be a list of distinct names of other experiments"):
            load_experiment(deeper)


def test_layer_reuse_says_why_a_donor_stops_short(tiny_data, tmp_path, capsys):
    from liouna_snn.training import layer_reuse
    from liouna_snn.training.schedules import data_fingerprint

    config = TrainConfig(schedule="greedy", batch_size=8, seed=0)
    rules = [rule_config("softhebb", lr=0.05), rule_config("softhebb", lr=0.05), rule_config("softhebb", lr=0.05)]
    donor_file = tmp_path / "donor_seed0.pt"
    train_unsupervised(build_network(SMALL_SPEC, rules, seed=0), tiny_data, config, checkpoint=donor_file,
                       progress=False)
    donor, data = load_checkpoint(donor_file), data_fingerprint(tiny_data, None, None)
    same = build_network(SMALL_SPEC, rules, seed=0)
    assert layer_reuse(same, config, data, donor) == (3, "every layer")
    other_lr = build_network(SMALL_SPEC, rules[:1] + [rule_config("softhebb", lr=0.02)] * 2, seed=0)
    assert layer_reuse(other_lr, config, data, donor) == (1, "layer 2 differs in: rule.lr")
    assert layer_reuse(same, TrainConfig(schedule="greedy", batch_size=4, seed=0), data, donor) == (
        0, "other training options: batch_size")
    assert layer_reuse(same, config, data_fingerprint(tiny_data.subset(32), None, None), donor) == (
        0, "other training images or standardisation")
    assert layer_reuse(build_network(SMALL_SPEC, rules, seed=2), config, data, donor) == (0, "other seed (0)")
    assert layer_reuse(same, config, data, {k: v for k, v in donor.items() if k != "phase_seconds"})[0] == 0
    assert donor["device_type"] == "cpu" and layer_reuse(same, config, data, donor, "cpu") == (3, "every layer")
    assert layer_reuse(same, config, data, donor, "cuda") == (0, "trained on cpu, not cuda")
    older = {k: v for k, v in donor.items() if k != "device_type"}  # written before checkpoints recorded it
    assert layer_reuse(same, config, data, older, "cuda") == (3, "every layer")

    # a run that takes fewer layers than it has says which checkpoint came closest and why
    train_unsupervised(other_lr, tiny_data, config, donors=[donor_file], description="other-lr")
    assert "other-lr: 1 of 3 layers taken from 1 checkpoint(s) (donor_seed0.pt: layer 2 differs in: rule.lr)" in \
        capsys.readouterr().out


def test_unfinished_phases_names_the_phase_a_checkpoint_stopped_at():
    from liouna_snn.training.schedules import unfinished_phases

    net = build_network(SMALL_SPEC, rule_config("softhebb"))
    config = {"schedule": "greedy", "epochs": 1, "batch_size": 10}
    assert unfinished_phases({"config": config, "phase": 1}, net) == (1, len(net))
    assert unfinished_phases({"config": config, "phase": len(net)}, net) is None
    assert unfinished_phases({"network": {}}, net) is None  # too old to record its phase


def test_training_bar_counts_budget_seconds_not_steps(capsys):
    from liouna_snn.training import TrainingBar
    bar = TrainingBar(1_000_000, 0, 60.0, 12.0, progress=True, description="run")
    bar.step(30.4)
    bar.step(75.0)           # past the budget: the bar stops at its total
    bar.close()
    shown = capsys.readouterr().err.replace("\r", "\n")
    assert "60/60 s of budget" in shown and "100%" in shown
    assert "1000000" not in shown        # the epochs' steps are not what the bar counts

    steps = TrainingBar(40, 10, None, 0.0, progress=True, description="run")
    steps.step(1.0)
    steps.close()
    shown = capsys.readouterr().err.replace("\r", "\n")
    assert "11/40" in shown and "s of budget" not in shown
