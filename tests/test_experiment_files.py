"""The shipped experiment files of the other datasets: each loads, follows its published protocol, and builds."""
from liouna_snn.experiment import load_experiment, run_spiking


def test_the_imagenette_experiment_is_softhebbs_protocol_and_every_run_builds():
    from pathlib import Path

    from liouna_snn import build_network, load_spec
    from liouna_snn.experiment import per_layer_rules, resolve_model

    exp = load_experiment(Path(__file__).parent.parent / "experiments" / "imagenette_local_rules.toml")
    assert exp["probe"] == {"epochs": 200, "batch_size": 64, "augment": "crop-flip"}
    assert exp["data"]["image_size"] == 160
    spec = load_spec(resolve_model(exp["model"], exp["_path"]))
    assert [layer["out_channels"] for layer in spec["layers"]] == [48, 192, 768, 3072, 12288]
    assert [layer["kernel_size"] for layer in spec["layers"]] == [5, 3, 3, 3, 3]
    assert all(layer["padding_mode"] == "reflect" for layer in spec["layers"])
    assert [layer["activation"]["power"] for layer in spec["layers"]] == [0.7, 0.7, 0.7, 1.4, 1.0]
    assert [(layer["pool"]["type"], layer["pool"]["kernel_size"]) for layer in spec["layers"]] == [("max", 4)] * 4 + [
        ("avg", 2)]
    softhebb = next(run for run in exp["runs"] if run["rule"] == "softhebb")
    assert softhebb["options"] == {"lr": [0.08, 0.01, 0.01, 0.01, 0.01],
                                   "inverse_temperature": [1.1, 0.7, 0.5, 0.4, 0.25]}
    for run in exp["runs"]:
        rules = per_layer_rules(run["rule"], run.get("options", {}), len(spec["layers"]))
        net = build_network({**spec, "layers": spec["layers"][:2]}, rules[:2])   # the big layers are not allocated
        assert net.feature_shapes() == [(48, 80, 80), (192, 40, 40)]


def test_the_cifar100_experiment_mirrors_the_cifar10_one_on_cifar100():
    from pathlib import Path

    root = Path(__file__).parent.parent / "experiments"
    c100, c10 = load_experiment(root / "cifar100_local_rules.toml"), load_experiment(root / "cifar10_local_rules.toml")
    assert c100["data"]["dataset"] == "cifar100" and c100["model"] == c10["model"]
    assert (c100["unsupervised"], c100["probe"]) == (c10["unsupervised"], c10["probe"])
    runs10 = {run.get("label", run["rule"]): run for run in c10["runs"]}
    for run in c100["runs"]:   # the same rules with the same options as the CIFAR-10 runs of that name
        assert run == runs10[run.get("label", run["rule"])]


def test_the_spiking_layer1_seeds_experiment_learns_layer_1_as_the_spiking_benchmark_does():
    """Its spiking runs are the headline rate-vs-spiking neuron and options at layer 1 (only the threshold of the
    ``thr2`` run differs), with the benchmark's base run's layer-1 learning rate (twice it in the ``lr16`` runs; the ``exact`` runs
    recompute the current's deviation when the layer stops learning; the ``cosine`` runs, spiking and rate, anneal lr 0.3 by a
    cosine; the ``current-code`` run learns from the rates in the drive's units, as rate_vs_spiking_if_current_code.toml
    does at full depth), so its seeds speak for that run."""
    import dataclasses
    from pathlib import Path

    from .conftest import load_experiment_script

    root = Path(__file__).parent.parent / "experiments"
    driver = load_experiment_script("rate_vs_spiking")
    bench = driver.load_config(root / "rate_vs_spiking_if_uniform_half_std_current.toml")
    target = bench["targets"]
    headline = driver.spiking_run_config(bench, target["neuron"], target["time_steps"])
    base = load_experiment(root / bench["base_experiment"])
    base_lr = next(run for run in base["runs"] if run.get("label", run["rule"]) == bench["run"])["options"]["lr"]

    exp = load_experiment(root / "cifar10_spiking_layer1_seeds.toml")
    assert exp["depth"] == 1 and exp["model"] == base["model"] and exp["unsupervised"]["batch_size"] == 10
    runs = {run["label"]: run for run in exp["runs"]}
    assert run_spiking(exp, runs["rate"]) is None
    assert run_spiking(exp, runs["if-T8"]) == headline
    assert run_spiking(exp, runs["if-T8-thr2"]) == dataclasses.replace(
        headline, neuron_params={**headline.neuron_params, "threshold": 2.0})
    assert run_spiking(exp, runs["if-T8-lr16"]) == headline
    exact = dataclasses.replace(headline, current_calibration="exact")
    assert run_spiking(exp, runs["if-T8-exact"]) == exact and run_spiking(exp, runs["if-T8-lr16-exact"]) == exact
    assert run_spiking(exp, runs["if-T8-cosine"]) == headline
    assert runs["if-T8-cosine"]["options"] == {"lr": 0.3, "lr_schedule": "cosine"}
    # rate mode under the same schedule (is the schedule a spiking fix, or does rate mode gain as much?)
    assert run_spiking(exp, runs["rate-cosine"]) is None
    assert runs["rate-cosine"]["options"] == runs["if-T8-cosine"]["options"]
    # the headline neuron learning from its rates in the drive's units, and its full-depth benchmark config
    current = dataclasses.replace(headline, learning_code="current")
    assert run_spiking(exp, runs["if-T8-current-code"]) == current
    full = driver.load_config(root / "rate_vs_spiking_if_current_code.toml")
    assert driver.spiking_run_config(full, target["neuron"], target["time_steps"]) == current
    assert (full["name"], full["base_experiment"], full["run"], full["targets"]) == (
        bench["name"], bench["base_experiment"], bench["run"], bench["targets"])
    assert all(run["rule"] == "liouna" and run["options"] == {"lr": (2 if "-lr16" in label else 1) * base_lr[0]}
               for label, run in runs.items() if not label.endswith("-cosine"))


def test_the_leaky_current_code_config_is_the_leaky_subtract_run_learning_from_the_drives_units():
    """rate_vs_spiking_lif_current_code.toml trains the leaky native LIF of the run made with
    rate_vs_spiking_lif_uniform_half_std_current.toml and ``--neuron-param reset=subtract``, changing only the code the
    rule reads (``learning_code = "current"``), gives snnTorch's Leaky and Norse's LIFBoxCell the same neuron, and
    holds the native neuron to issue 4's targets."""
    import dataclasses
    from pathlib import Path

    from .conftest import load_experiment_script

    root = Path(__file__).parent.parent / "experiments"
    driver = load_experiment_script("rate_vs_spiking")
    leaky = driver.load_config(root / "rate_vs_spiking_lif_uniform_half_std_current.toml")
    subtract = driver.spiking_run_config(leaky, "native-lif", 8)
    subtract = dataclasses.replace(subtract, neuron_params={**subtract.neuron_params, "reset": "subtract"})
    full = driver.load_config(root / "rate_vs_spiking_lif_current_code.toml")
    assert full["neurons"] == ["native-lif"] and full["time_steps"] == [8]
    current = driver.spiking_run_config(full, "native-lif", 8)
    assert current.learning_code == "current" and subtract.learning_code == "rate"
    assert current == dataclasses.replace(subtract, learning_code="current")
    through_snntorch = driver.spiking_run_config(full, "snntorch-leaky", 8)
    assert through_snntorch == dataclasses.replace(current, neuron="snntorch-leaky")
    through_norse = driver.spiking_run_config(full, "norse-lifbox", 8)
    assert through_norse.make_neuron().p == current.make_neuron().p   # Norse's units, the same neuron
    assert full["targets"] == {"neuron": "native-lif", "time_steps": 8, "max_accuracy_drop": 2.0,
                               "max_time_ratio": 3.0}
    assert (full["name"], full["base_experiment"], full["run"]) == (
        leaky["name"], leaky["base_experiment"], leaky["run"])


def test_the_simultaneous_experiment_is_the_benchmark_with_only_the_schedule_changed():
    """cifar10_simultaneous.toml times and probes the benchmark's own runs: same rules and options, data, batch, epochs
    and probe; only the schedule differs."""
    from pathlib import Path

    root = Path(__file__).parent.parent / "experiments"
    fast, bench = load_experiment(root / "cifar10_simultaneous.toml"), load_experiment(root / "cifar10_local_rules.toml")
    assert fast["unsupervised"] == {**bench["unsupervised"], "schedule": "simultaneous"}
    assert bench["unsupervised"]["schedule"] == "greedy"
    assert (fast["model"], fast["data"]["dataset"], fast["probe"]) == (bench["model"], bench["data"]["dataset"],
                                                                      bench["probe"])
    by_label = {run.get("label", run["rule"]): run for run in bench["runs"]}
    assert len(fast["runs"]) == 3
    for run in fast["runs"]:
        assert run == by_label[run.get("label", run["rule"])]


def test_the_spiking_defaults_are_the_leaky_current_code_run():
    """``SpikingConfig(time_steps=8)`` with no other option trains the network of
    rate_vs_spiking_lif_current_code.toml's target run: the same shared options and the same neuron (beta 0.9,
    threshold 3 standard deviations, subtractive reset), so a user who only switches to spiking mode gets the
    configuration measured best."""
    import dataclasses
    from pathlib import Path

    from liouna_snn.spiking import SpikingConfig

    from .conftest import load_experiment_script

    driver = load_experiment_script("rate_vs_spiking")
    full = driver.load_config(Path(__file__).parent.parent / "experiments" / "rate_vs_spiking_lif_current_code.toml")
    measured = driver.spiking_run_config(full, "native-lif", 8)
    default = SpikingConfig(time_steps=8)
    assert dataclasses.replace(default, neuron_params=measured.neuron_params) == measured
    assert default.neuron_params == {"threshold": 3.0}
    assert default.make_neuron().p == measured.make_neuron().p


def test_the_configs_of_earlier_spiking_runs_still_describe_what_ran():
    """Every experiment config that ran before the spiking defaults changed sets the changed options to their old
    defaults (``LEGACY_DEFAULTS``), so its runs are those its results record. Checked on rate_vs_spiking.toml, whose
    plain LIF set none of them, and on the layer-1 experiment and read-out."""
    from pathlib import Path

    from liouna_snn.spiking import LEGACY_DEFAULTS

    from .conftest import load_experiment_script

    root = Path(__file__).parent.parent / "experiments"
    driver = load_experiment_script("rate_vs_spiking")
    plain = driver.spiking_run_config(driver.load_config(root / "rate_vs_spiking.toml"), "native-lif", 8).to_dict()
    assert {k: plain[k] for k in LEGACY_DEFAULTS} == LEGACY_DEFAULTS
    assert plain["neuron_params"] == {"beta": 0.9, "threshold": 2.0, "reset": "zero"}
    exp = load_experiment(root / "cifar10_spiking_layer1.toml")
    lif = run_spiking(exp, exp["runs"][1]).to_dict()
    assert {k: lif[k] for k in LEGACY_DEFAULTS} == LEGACY_DEFAULTS
    readout = load_experiment_script("spiking_readout")
    cfg = readout.load_config(root / "spiking_readout.toml")
    for entry in cfg["readouts"]:
        if entry["spiking"] is not False:
            options = readout.readout_spiking(entry["spiking"], entry["label"]).to_dict()
            assert options["learning_code"] == "rate" and options["inference_initial_membrane"] is None
