"""Plastic layers and networks: shapes, locality of every update, input validation."""
import pytest
import torch

from liouna_snn import PlasticConv2d, PlasticLinear, build_network, load_spec, rule_config
from liouna_snn.rules import ConvGeometry, explicit_update

SMALL_SPEC = {
    "name": "small", "input_channels": 3, "input_size": 12,
    "layers": [
        {"out_channels": 6, "kernel_size": 3, "padding": 1, "padding_mode": "reflect",
         "activation": {"name": "triangle", "power": 0.7}, "pool": {"type": "max", "kernel_size": 2}},
        {"out_channels": 8, "kernel_size": 3, "padding": 1, "activation": {"name": "triangle", "power": 1.0},
         "pool": {"type": "avg", "kernel_size": 2}},
        {"type": "linear", "out_channels": 5, "activation": "relu"},
    ],
}


def test_cifar_spec_gives_24576_features_per_layer():
    net = build_network(load_spec("models/cifar10_3layer.toml"), rule_config("softhebb"))
    assert net.feature_shapes() == [(96, 16, 16), (384, 8, 8), (1536, 4, 4)]
    out = net(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 1536, 4, 4)
    norms = net.layers[1].weight.flatten(1).norm(dim=1)
    assert 20 < float(norms.mean()) < 30  # init radius 25


def test_layer_update_equals_rule_on_its_own_signals():
    torch.manual_seed(0)
    layer = PlasticConv2d(3, 4, 3, padding=1, padding_mode="reflect", norm=False,
                          rule=rule_config("liouna", lr=0.1, lr_schedule="constant", scaling="none",
                                           code="drive"))
    x = torch.randn(2, 3, 6, 6)
    w0 = layer.weight.clone()
    layer.learn(x)
    u = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), w0)
    expected = w0 + 0.1 * explicit_update(x, u, u, w0, ConvGeometry(1, 1, "reflect"))
    # float32 sums of ~1e3-sized terms: an entry near zero keeps the rounding of the largest ones
    torch.testing.assert_close(layer.weight.detach(), expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))


@pytest.mark.parametrize("rule", ["liouna", "softhebb"])
def test_no_update_crosses_layers(rule):
    """Layer 1's update is the same whatever the layers above it are (weights, rules, widths)."""
    spec_other = {**SMALL_SPEC, "layers": [SMALL_SPEC["layers"][0],
                                           {**SMALL_SPEC["layers"][1], "out_channels": 11}, SMALL_SPEC["layers"][2]]}
    a = build_network(SMALL_SPEC, rule_config(rule, lr=0.05), seed=0)
    b = build_network(spec_other, [rule_config(rule, lr=0.05), rule_config("liouna", lr=0.5),
                                   rule_config("softhebb")], seed=0)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in b.layers[1:].parameters():
            p.normal_()
    assert torch.equal(a.layers[0].weight, b.layers[0].weight)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # simultaneous schedule: every layer learns on every batch
        x = torch.rand(4, 3, 12, 12, generator=g)
        for net in (a, b):
            h = x
            for i in range(3):
                h = net.learn_layer(i, h, 0.0)
    assert torch.equal(a.layers[0].weight, b.layers[0].weight)
    assert not torch.equal(a.layers[1].weight, build_network(SMALL_SPEC, rule_config(rule), seed=0).layers[1].weight)


def test_linear_layer_flattens_conv_output():
    net = build_network(SMALL_SPEC, rule_config("liouna"))
    assert net.feature_shapes()[-1] == (5,)
    assert net(torch.rand(3, 3, 12, 12)).shape == (3, 5)
    assert isinstance(net.layers[2], PlasticLinear)


def test_bf16_update_close_to_fp32():
    spec = load_spec("models/cifar10_3layer.toml")
    x = torch.randn(4, 96, 16, 16)
    updates = []
    for cd in (None, torch.bfloat16):
        layer = build_network(spec, rule_config("softhebb"), seed=0, compute_dtype=cd).layers[1]
        u = layer._drive(layer.norm(x))
        updates.append(layer.rule.delta(layer.norm(x), u, layer.activation(u), layer.weight, layer.geometry,
                                        compute_dtype=cd))
    # bf16 rounds the drive (|u| ~ 100 at init radius 25), which moves the softmax a little: the
    # update keeps its direction (cosine) and its size within a few percent.
    cos = torch.nn.functional.cosine_similarity(updates[0].flatten(), updates[1].flatten(), dim=0)
    assert float(cos) > 0.995
    assert float((updates[0] - updates[1]).norm() / updates[0].norm()) < 0.1


@pytest.mark.parametrize("x,match", [
    (torch.rand(3, 12, 12), "expected a 4-d input"),
    (torch.rand(2, 4, 12, 12), "expected 3 input channels"),
    (torch.full((2, 3, 12, 12), float("nan")), "NaN or Inf"),
    (torch.rand(2, 3, 1, 1), "impossible geometry"),
])
def test_bad_inputs_are_named(x, match):
    layer = build_network(SMALL_SPEC, rule_config("liouna")).layers[0]
    layer.geometry = ConvGeometry(1, 0, "zeros") if "geometry" in match else layer.geometry
    with pytest.raises(ValueError, match=match):
        layer.learn(x)


def test_one_nan_or_inf_is_caught_and_finite_inputs_whose_sum_overflows_pass():
    layer = build_network(SMALL_SPEC, rule_config("liouna")).layers[0]
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.rand(2, 3, 12, 12)
        x[1, 2, 5, 7] = bad
        with pytest.raises(ValueError, match="NaN or Inf"):
            layer(x)
    huge = torch.full((2, 3, 12, 12), 3e38)  # finite, but its sum is not
    assert not torch.isfinite(huge.sum())
    layer(huge)


def test_spec_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"layer 1: unknown key\(s\) \['kernal_size'\]"):
        build_network({**SMALL_SPEC, "layers": [{"out_channels": 4, "kernal_size": 3}]}, rule_config("liouna"))
    with pytest.raises(ValueError, match="layer 2: impossible geometry"):
        build_network({**SMALL_SPEC, "input_size": 4, "layers": [
            {"out_channels": 4, "kernel_size": 3, "pool": {"type": "max", "kernel_size": 2}},
            {"out_channels": 4, "kernel_size": 5}]}, rule_config("liouna"))
    with pytest.raises(ValueError, match="padding_mode 'mirror'"):
        build_network({**SMALL_SPEC, "layers": [{"out_channels": 4, "padding_mode": "mirror"}]}, rule_config("liouna"))
    with pytest.raises(ValueError, match="got 2 rule configs for 3 layers"):
        build_network(SMALL_SPEC, [rule_config("liouna")] * 2)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        build_network({**SMALL_SPEC, "layers": [{"out_channels": 4, "activation": "gelu"}]}, rule_config("liouna"))


def test_diagnostics_report_wins_and_dead_units():
    layer = build_network(SMALL_SPEC, rule_config("softhebb", lr=0.01)).layers[0]
    layer.learn(torch.rand(8, 3, 12, 12))
    d = layer.diagnostics()
    assert d["units"] == 6 and 0 <= d["dead_units"] <= 6
    assert abs(float(layer.win_counts.sum()) - 8 * 12 * 12) < 1e-9
    assert d["weight_norm_min"] <= d["weight_norm_mean"] <= d["weight_norm_max"]


def test_weight_effective_rank_counts_the_directions_the_units_span():
    layer = PlasticConv2d(3, 6, 3, rule=rule_config("liouna"))  # fan_in 27
    w = torch.zeros(6, 27)
    for k in range(6):  # six orthogonal directions of different lengths: rank 6, whatever the norms
        w[k, 4 * k] = k + 1.0
    with torch.no_grad():
        layer.weight.copy_(w.view(6, 3, 3, 3))
    assert abs(layer.diagnostics()["weight_effective_rank"] - 6.0) < 1e-9
    w[3:] = -2.0 * w[:3]  # three pairs of (anti)parallel units: three directions of equal energy
    with torch.no_grad():
        layer.weight.copy_(w.view(6, 3, 3, 3))
    assert abs(layer.diagnostics()["weight_effective_rank"] - 3.0) < 1e-9
    with torch.no_grad():  # all alike
        layer.weight.copy_(torch.randn(1, 3, 3, 3).expand(6, 3, 3, 3))
    assert abs(layer.diagnostics()["weight_effective_rank"] - 1.0) < 1e-6


def test_running_norm_learns_with_running_statistics():
    layer = PlasticConv2d(3, 4, 3, norm="running", rule=rule_config("liouna", lr=0.0))
    x = torch.rand(5, 3, 8, 8) * 3 + 2
    layer.train()
    layer.learn(x)
    assert torch.allclose(layer.norm.running_mean, 0.9 * 0 + 0.1 * x.mean(dim=(0, 2, 3)), atol=1e-5)
    assert layer.training and layer.norm.training
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        PlasticConv2d(3, 4, 3, norm="layer")
