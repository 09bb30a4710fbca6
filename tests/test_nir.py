"""NIR export and import of spiking networks: round trips, parameter mappings, errors, snnTorch and Norse."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import liouna_snn as ls
from liouna_snn.export import NIR_DT, export_nir, import_nir
from liouna_snn.network import LocalNetwork
from liouna_snn.spiking import SpikingConfig

from .conftest import legacy_config

nir = pytest.importorskip("nir")

POOLED = {"name": "tiny-pooled", "input_channels": 3, "input_size": 8, "layers": [
    {"out_channels": 4, "kernel_size": 3, "padding": 1, "pool": {"type": "avg", "kernel_size": 2, "stride": 2}},
    {"type": "linear", "out_channels": 5}]}
STRIDED = {"name": "tiny-strided", "input_channels": 3, "input_size": 8, "layers": [
    {"out_channels": 4, "kernel_size": 3, "padding": 1, "stride": 2},
    {"type": "linear", "out_channels": 5}]}
ZERO_LIF = {"beta": 0.8, "threshold": 1.0, "reset": "zero"}


def trained(spec, neuron="native-lif", params=None, T=6, seed=0, lateral_inhibition="none"):
    """A spiking network that has learned a few batches (non-trivial weights and batch-norm statistics)."""
    cfg = legacy_config(neuron=neuron, neuron_params=ZERO_LIF if params is None else params, time_steps=T,
                        lateral_inhibition=lateral_inhibition)
    net = ls.build_network(spec, ls.rule_config("softhebb"), seed=seed, spiking=cfg)
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5
    net.train()
    for i in range(len(net)):
        net.learn_layer(i, x if i == 0 else net(x, i), 0.0)
    return net.eval()


def images(n=4, seed=1):
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("neuron,params", [
    ("native-lif", ZERO_LIF),
    ("native-lif", {"beta": 0.9, "threshold": 0.75, "reset": "zero", "v_reset": -0.5}),
    ("snntorch-leaky", ZERO_LIF),
    ("norse-lif", {"beta": 0.7, "threshold": 1.5}),
    ("norse-lifbox", {"beta": 0.7, "threshold": 1.5}),
])
def test_round_trip_through_a_file_preserves_weights_norms_neurons_and_outputs(tmp_path, neuron, params):
    net = trained(POOLED, neuron, params)
    path = tmp_path / "net.nir"
    nir.write(path, export_nir(net))
    back = import_nir(nir.read(path))
    assert len(back) == len(net)
    for a, b in zip(net.layers, back.layers):
        assert type(a) is type(b)
        assert torch.equal(a.weight, b.weight)
        assert torch.equal(a.norm.running_mean, b.norm.running_mean)
        assert torch.equal(a.norm.running_var, b.norm.running_var)
        assert type(b.neuron) is type(a.neuron) and b.spiking.neuron == neuron
        assert b.neuron.p == a.neuron.p
        assert b.spiking.time_steps == a.spiking.time_steps and b.spiking.encoder == a.spiking.encoder
        assert type(b.pool) is type(a.pool)
    x = images()
    assert torch.equal(back(x), net(x))
    assert back.feature_shapes() == net.feature_shapes()


def test_subtractive_reset_needs_the_explicit_approximation_and_is_restored_on_import():
    net = trained(POOLED, "integrate-and-fire", {"threshold": 2.0})
    with pytest.raises(ValueError, match=r"layer 1 \(PlasticConv2d\).*resets by subtraction"):
        export_nir(net)
    graph = export_nir(net, approximate_subtractive_reset=True)
    node = graph.nodes["layer1_neuron"]
    assert isinstance(node, nir.IF)
    assert np.allclose(node.r, 1 / NIR_DT) and np.all(node.v_threshold == 2.0) and np.all(node.v_reset == 0.0)
    back = import_nir(graph)
    assert back.spiking.neuron == "integrate-and-fire" and back.layers[0].neuron.p == net.layers[0].neuron.p
    x = images()
    assert torch.equal(back(x), net(x))


def test_lif_parameters_follow_the_documented_dt_mapping():
    net = trained(POOLED, "native-lif", {"beta": 0.9, "threshold": 1.25, "reset": "zero", "v_reset": -0.5})
    dt = 1e-3
    graph = export_nir(net, dt=dt)
    lif = graph.nodes["layer1_neuron"]
    assert isinstance(lif, nir.LIF)
    assert lif.tau.shape == (4, 8, 8) and graph.nodes["layer2_neuron"].tau.shape == (5,)
    np.testing.assert_allclose(lif.tau, dt / (1 - 0.9), rtol=1e-12)
    np.testing.assert_allclose(lif.r, lif.tau / dt, rtol=1e-12)  # one Euler step adds r dt / tau * I = I
    assert np.all(lif.v_leak == 0) and np.all(lif.v_threshold == 1.25) and np.all(lif.v_reset == -0.5)
    assert graph.metadata["dt"] == dt and graph.metadata["time_steps"] == 6
    conv = graph.nodes["layer1_conv"]
    assert np.array_equal(conv.weight, net.layers[0].weight.numpy()) and tuple(conv.padding) == (1, 1)
    norm = graph.nodes["layer1_norm"]  # eval-mode batch-norm as a 1x1 convolution a x + b
    bn = net.layers[0].norm
    a = (bn.running_var + bn.eps).rsqrt()
    np.testing.assert_allclose(np.diagonal(norm.weight[:, :, 0, 0]), a.numpy(), rtol=1e-6)
    np.testing.assert_allclose(norm.bias, (-bn.running_mean * a).numpy(), rtol=1e-5, atol=1e-6)
    assert isinstance(graph.nodes["layer2_flatten"], nir.Flatten) and isinstance(graph.nodes["layer2_norm"], nir.Affine)


def test_a_foreign_graph_without_metadata_imports_with_the_same_dynamics():
    """A hand-written NIR graph (no liouna metadata): r != tau / dt rescales the threshold."""
    dt, beta = 1e-4, 0.75
    tau = dt / (1 - beta)
    w = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type={"input": np.array([6])}), nir.Linear(weight=w),
        nir.LIF(tau=np.full(3, tau), r=np.full(3, 2 * tau / dt), v_leak=np.zeros(3), v_threshold=np.full(3, 3.0),
                v_reset=np.zeros(3)),
        nir.Output(output_type={"output": np.array([3])}), type_check=False)
    net = import_nir(graph, dt=dt, time_steps=5)
    p = net.layers[0].neuron.p
    assert p.beta == pytest.approx(beta, rel=1e-12) and p.threshold == pytest.approx(1.5) and p.reset == "zero"
    assert torch.equal(net.layers[0].weight, torch.from_numpy(w)) and net.layers[0].norm_kind == "none"
    assert net.layers[0].spiking.time_steps == 5


@pytest.mark.parametrize("change,pattern", [
    (lambda s: s["layers"][0].update(pool={"type": "max", "kernel_size": 2, "stride": 2}),
     r"layer 1 \(PlasticConv2d\): max pooling .* no NIR node"),
    (lambda s: s["layers"][0].update(padding_mode="reflect"), r"layer 1 \(PlasticConv2d\): pads .* 'reflect'"),
])
def test_unrepresentable_layers_are_errors_naming_the_layer(change, pattern):
    spec = {**POOLED, "layers": [dict(layer) for layer in POOLED["layers"]]}
    change(spec)
    net = ls.build_network(spec, ls.rule_config("softhebb"),
                           spiking=legacy_config(neuron_params=ZERO_LIF, time_steps=2)).eval()
    with pytest.raises(ValueError, match=pattern):
        export_nir(net)


def test_rate_mode_and_foreign_layers_are_errors_naming_the_layer():
    rate = ls.build_network(POOLED, ls.rule_config("softhebb")).eval()
    with pytest.raises(ValueError, match=r"layer 1 \(PlasticConv2d\): runs in rate mode"):
        export_nir(rate)
    net = trained(POOLED)
    mixed = LocalNetwork([net.layers[0], torch.nn.ReLU()], POOLED)
    with pytest.raises(ValueError, match=r"layer 2: cannot export a ReLU to NIR"):
        export_nir(mixed)


def _run_per_step(module, x, T, stateful_output):
    """The graph module driven by the constant sample ``x (C, H, W)`` for ``T`` steps: outputs ``(T, ...)``."""
    state, outs = None, []
    for _ in range(T):
        out = module(x, state) if stateful_output else module(x)
        if isinstance(out, tuple):
            out, state = out
        outs.append(out.detach())
    return torch.stack(outs)


def _snntorch_module(graph):
    from snntorch.import_nir import import_from_nir

    module = import_from_nir(graph)
    for m in module.modules():  # snnTorch neurons keep their membranes (init_hidden): start from rest
        if hasattr(m, "reset_mem"):
            m.reset_mem()
    return module


@pytest.mark.parametrize("inhibition", ["none", "mean"])
def test_snntorch_loads_the_graph_and_its_spikes_equal_ours_on_the_first_layer(inhibition):
    """Under mean lateral inhibition the graph's synapse holds W - mean_k W, so snnTorch computes the same current."""
    net = trained(POOLED, params={**ZERO_LIF, "threshold": 0.5} if inhibition == "mean" else None,
                  lateral_inhibition=inhibition)
    one_layer = LocalNetwork(list(net.layers[:1]), POOLED).eval()
    x = images(3)
    ours = one_layer(x)  # firing rates after pooling, (B, 4, 4, 4)
    assert 0.05 < float(ours.mean()) < 0.95  # neither silent nor saturated: the comparison means something
    for b in range(len(x)):
        module = _snntorch_module(export_nir(one_layer))
        spikes = _run_per_step(module, x[b], 6, stateful_output=False)
        assert spikes.shape == (6, 4, 4, 4)
        # Same spikes: one spike more or less would move a pooled rate by 1 / (T * 4) = 0.04.
        torch.testing.assert_close(spikes.mean(0), ours[b], rtol=0, atol=1e-6)
    module = _snntorch_module(export_nir(net))  # the whole network loads and runs
    leaky = [m for m in module.modules() if type(m).__name__ == "Leaky"]
    assert len(leaky) == 2 and leaky[0].reset_mechanism == "zero"
    torch.testing.assert_close(leaky[0].beta.double(), torch.full_like(leaky[0].beta.double(), 0.8))
    assert torch.all(leaky[0].threshold == net.layers[0].neuron.p.threshold)
    w = net.layers[0].weight
    if inhibition == "none":
        assert torch.equal(module.layer1_conv.weight, w)
    else:
        torch.testing.assert_close(module.layer1_conv.weight, w - w.mean(dim=0, keepdim=True))
        assert float((module.layer1_conv.weight - w).abs().max()) > 0.01
        back = import_nir(export_nir(net))  # the learned W, not the inhibited synapse, comes back
        assert all(torch.equal(a.weight, b.weight) for a, b in zip(net.layers, back.layers))
        assert [b.spiking.lateral_inhibition for b in back.layers] == ["mean", "mean"]
        assert torch.equal(back(x), net(x))
    assert _run_per_step(module, x[0], 6, stateful_output=False).shape == (6, 5)


def test_norse_loads_the_graph_and_with_r_applied_agrees_with_snntorch_and_ours():
    import norse.torch

    net = trained(STRIDED)
    graph = export_nir(net)
    module = norse.torch.from_nir(graph, dt=graph.metadata["dt"], ignore_warnings=True)
    cells = [m for m in module.modules() if type(m).__name__ == "LIFBoxCell"]
    assert len(cells) == 2
    np.testing.assert_allclose(cells[0].p.tau_mem_inv.numpy(), (1 - 0.8) / NIR_DT, rtol=1e-6)
    assert torch.all(cells[0].p.v_th == 1.0)
    assert torch.equal(module.layer1_conv.weight, net.layers[0].weight)
    # Norse ignores NIR's r (it integrates with r = 1); scaling each synapse by r = 1 / (1 - beta) restores it.
    with torch.no_grad():
        module.layer1_conv.weight.mul_(1 / (1 - 0.8))
        module.layer2_linear.weight.mul_(1 / (1 - 0.8))
    x = images(2)
    one_layer = LocalNetwork(list(net.layers[:1]), STRIDED).eval()
    for b in range(len(x)):
        norse_out = _run_per_step(module, x[b], 6, stateful_output=True)
        snn_out = _run_per_step(_snntorch_module(graph), x[b], 6, stateful_output=False)
        assert norse_out.shape == (6, 5)
        assert torch.equal(norse_out, snn_out)  # the same time-stepped network in both tools
        first = norse.torch.from_nir(export_nir(one_layer), dt=NIR_DT, ignore_warnings=True)
        with torch.no_grad():
            first.layer1_conv.weight.mul_(1 / (1 - 0.8))
        torch.testing.assert_close(_run_per_step(first, x[b], 6, stateful_output=True).mean(0),
                                   one_layer(x[b:b + 1])[0], rtol=0, atol=1e-6)


def test_cli_export_format_nir_writes_the_trained_spiking_run(tmp_path, capsys):
    from liouna_snn.cli import main
    from liouna_snn.data import load_dataset
    from liouna_snn.experiment import load_experiment
    from liouna_snn.export import checkpoint_path, load_trained_network
    from liouna_snn.network import build_network, load_spec
    from liouna_snn.spiking import spiking_config
    from liouna_snn.training import TrainConfig, train_unsupervised

    (tmp_path / "tiny.toml").write_text("""
name = "tiny"
input_channels = 3
input_size = 32
[[layers]]
out_channels = 4
kernel_size = 5
stride = 2
pool = { type = "avg", kernel_size = 2, stride = 2 }
""")
    (tmp_path / "exp.toml").write_text(f"""
name = "nir_cli"
model = "{tmp_path / 'tiny.toml'}"
[data]
dataset = "cifar10-mini"
[unsupervised]
batch_size = 20
[spiking]
neuron = "native-lif"
neuron_params = {{ beta = 0.9, threshold = 2.0 }}
time_steps = 3
lateral_inhibition = "none"
current_norm = "none"
initial_membrane = "rest"
inference_initial_membrane = "rest"
[[runs]]
rule = "softhebb"
""")
    exp = load_experiment(tmp_path / "exp.toml")
    # the checkpoint `liouna-snn run` would write, trained here on 40 images
    net = build_network(load_spec(tmp_path / "tiny.toml"), ls.rule_config("softhebb"),
                        spiking=spiking_config(exp["spiking"]))
    train_unsupervised(net, load_dataset("cifar10-mini", split="train").subset(40), TrainConfig(batch_size=20),
                       progress=False, checkpoint=checkpoint_path(exp, "softhebb", 0))
    argv = ["export", str(tmp_path / "exp.toml"), "--label", "softhebb", "--format", "nir", "--out", str(tmp_path / "o")]
    assert main(argv) == 2  # the native LIF resets by subtraction: refused without --approximate-reset
    assert "resets by subtraction" in capsys.readouterr().err
    assert main(argv + ["--approximate-reset"]) == 0
    graph = nir.read(tmp_path / "o" / "network.nir")
    reference = load_trained_network(tmp_path / "exp.toml", "softhebb", 0, allow_spiking=True).network
    assert np.array_equal(graph.nodes["layer1_conv"].weight, reference.layers[0].weight.numpy())
    back = import_nir(graph)
    assert back.layers[0].neuron.p == reference.layers[0].neuron.p and back.spiking.time_steps == 3
    x = images(2, seed=3).repeat(1, 1, 4, 4)
    assert torch.equal(back(x), reference(x))


def test_current_norm_is_folded_into_the_synapse_and_round_trips():
    """With current_norm = "std" the eval-mode current is (W - mean_k W) * x / s: the synapse node holds that
    effective weight (so any NIR tool computes the current), and the import restores W and s exactly."""
    cfg = legacy_config(neuron="native-lif", neuron_params={**ZERO_LIF, "threshold": 1.5}, time_steps=6,
                        lateral_inhibition="mean", current_norm="std")
    net = ls.build_network(POOLED, ls.rule_config("softhebb"), spiking=cfg)
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 + 0.5
    net.train()
    for i in range(len(net)):
        net.learn_layer(i, x if i == 0 else net(x, i), 0.0)
        net(x)  # train-mode forward: the running statistics of the current move away from 1
    net.eval()
    scale = net.layers[0].current_scale
    assert abs(float(scale.running_var) - 1.0) > 0.05
    graph = export_nir(net)
    w = net.layers[0].weight.detach()
    synapse = next(node for node in graph.nodes.values()  # the synapse, not the 1x1 convolution of the norm
                   if isinstance(node, nir.Conv2d) and np.asarray(node.weight).shape == tuple(w.shape))
    expected = (w - w.mean(dim=0, keepdim=True)) / float(scale.running_var + scale.eps) ** 0.5
    np.testing.assert_allclose(np.asarray(synapse.weight), expected.numpy(), rtol=1e-5, atol=1e-6)
    back = import_nir(graph)
    assert [layer.spiking.current_norm for layer in back.layers] == ["std", "std"]
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(net.layers, back.layers))
    assert float(back.layers[0].current_scale.running_var) == float(scale.running_var)
    out = net(images(3))
    assert 0.02 < float(out.mean()) < 0.98
    assert torch.equal(back(images(3)), out)


def test_uniform_initial_membranes_are_recorded_in_the_graph_and_restored(tmp_path):
    """NIR neurons have no initial state: the graph's metadata says the membranes start uniformly below threshold,
    and the import runs them so (same draws, same spikes)."""
    cfg = legacy_config(neuron="native-lif", neuron_params=ZERO_LIF, time_steps=6, initial_membrane="uniform")
    net = ls.build_network(POOLED, ls.rule_config("softhebb"), spiking=cfg).eval()
    path = tmp_path / "net.nir"
    nir.write(path, export_nir(net))
    graph = nir.read(path)
    assert graph.metadata["initial_membrane"] in ("uniform", b"uniform")
    back = import_nir(graph)
    assert [layer.spiking.initial_membrane for layer in back.layers] == ["uniform", "uniform"]
    torch.manual_seed(5)
    out = net(images(3))
    torch.manual_seed(5)
    assert torch.equal(back(images(3)), out)
    assert "initial_membrane" not in export_nir(trained(POOLED)).metadata  # a start from rest is not written
    split = ls.build_network(POOLED, ls.rule_config("softhebb"), spiking=dataclasses.replace(
        cfg, inference_initial_membrane="half"))
    assert export_nir(split).metadata["initial_membrane"] == "half"  # a graph runs inference: its start


def test_a_network_of_the_default_spiking_config_round_trips():
    """The defaults (mean inhibition, the current in standard deviations, half-threshold membranes at inference,
    subtractive reset) export with the reset approximated and import as the same network: the same inference start,
    current, neuron and outputs."""
    net = ls.build_network(POOLED, ls.rule_config("softhebb"), seed=0, spiking=SpikingConfig(time_steps=6))
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 + 0.5
    net.train()
    for i in range(len(net)):
        net.learn_layer(i, x if i == 0 else net(x, i), 0.0)
    net = net.eval()
    graph = export_nir(net, approximate_subtractive_reset=True)
    assert graph.metadata["initial_membrane"] == "half"
    back = import_nir(graph)
    for a, b in zip(net.layers, back.layers):
        assert b.spiking.membrane_at_inference == "half" and b.spiking.initial_membrane == "uniform"
        assert (b.spiking.lateral_inhibition, b.spiking.current_norm) == ("mean", "std")
        # Every option but the neuron's parameters (each in the backend's own words) is the exported one.
        assert dataclasses.replace(b.spiking, neuron_params=a.spiking.neuron_params) == a.spiking
        assert b.neuron.p == a.neuron.p and a.neuron.p.threshold == 3.0 and a.neuron.p.reset == "subtract"
        assert torch.equal(a.weight, b.weight)
    first = net(images(), 1)  # (the 5-unit top layer rarely passes 3 standard deviations: the first layer is graded)
    assert 0.02 < float(first.mean()) < 0.98
    assert torch.equal(back(images(), 1), first) and torch.equal(back(images()), net(images()))


def test_learning_options_and_encoder_parameters_travel_with_the_graph(tmp_path):
    """What only learning reads (plasticity, trace decay, calibration, the start while learning, the code the rule
    reads) goes into each synapse node's metadata, and the encoder's parameters into the graph's, through a file;
    the imported network learns exactly as the exported one."""
    cfg = legacy_config(neuron="native-lif", neuron_params=ZERO_LIF, time_steps=6, encoder="poisson",
                        encoder_params={"f_max": 300.0}, plasticity="online", trace_decay=0.7,
                        initial_membrane="uniform", inference_initial_membrane="rest", learning_code="current",
                        lateral_inhibition="mean", current_norm="std")
    rule = ls.rule_config("softhebb")
    net = ls.build_network(POOLED, rule, seed=0, spiking=cfg)
    path = tmp_path / "net.nir"
    nir.write(path, export_nir(net))
    back = import_nir(nir.read(path), rule=rule)  # (the rule is not in the graph: import_nir takes it)
    for a, b in zip(net.layers, back.layers):
        assert dataclasses.replace(b.spiking, neuron_params=a.spiking.neuron_params) == a.spiking
    assert "initial_membrane" not in export_nir(net).metadata  # inference starts at rest: nothing for other tools
    x = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(2))  # rates in [0, 1] for the encoder
    before = net.layers[0].weight.detach().clone()
    for model in (net, back):
        model.train()
        torch.manual_seed(3)
        model.learn_layer(0, x, 0.0)
    assert not torch.equal(net.layers[0].weight, before)  # it learned something
    assert torch.equal(net.layers[0].weight, back.layers[0].weight)
    # A graph written before these keys existed (or a foreign one) learns with SpikingConfig's defaults.
    bare = export_nir(net)
    for node in bare.nodes.values():
        for key in ("plasticity", "trace_decay", "current_calibration", "learning_initial_membrane", "learning_code"):
            (getattr(node, "metadata", None) or {}).pop(key, None)
    bare.metadata.pop("encoder_params")
    old = import_nir(bare).layers[0].spiking
    assert (old.plasticity, old.learning_code, old.encoder_params) == (SpikingConfig.plasticity,
                                                                       SpikingConfig.learning_code, {})
