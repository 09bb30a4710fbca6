"""The fast learning step: channels-last master weights and the compiled step compute what the plain one does."""
import copy
import shutil

import pytest
import torch
import torch.nn.functional as F

from liouna_snn import PlasticConv2d, build_network, rule_config
from liouna_snn.rules import ConvGeometry, LocalRule, explicit_update
from liouna_snn.neurons.rate import Triangle
from liouna_snn.rules.liouna import PROJECTION_PRODUCT_UNITS, convolve_patches, predict_input, use_matmul

from .test_network import SMALL_SPEC

CHANNELS_LAST = torch.channels_last


def test_conv_weights_are_channels_last_through_learning_copies_and_checkpoints():
    layer = PlasticConv2d(3, 6, 3, padding=1, rule=rule_config("softhebb"), generator=torch.Generator().manual_seed(0))
    assert layer.weight.is_contiguous(memory_format=CHANNELS_LAST) and not layer.weight.is_contiguous()
    layer.learn(torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    assert layer.weight.is_contiguous(memory_format=CHANNELS_LAST)
    twin = PlasticConv2d(3, 6, 3, padding=1, rule=rule_config("softhebb"))
    twin.load_state_dict({k: v.contiguous() for k, v in layer.state_dict().items()})  # a standard-layout checkpoint
    assert twin.weight.is_contiguous(memory_format=CHANNELS_LAST) and torch.equal(twin.weight, layer.weight)
    for other in (copy.deepcopy(layer), layer.to(torch.float32)):
        assert other.weight.is_contiguous(memory_format=CHANNELS_LAST)
    # the values are the seeded initialisation's: only the memory order is new
    fresh = PlasticConv2d(3, 6, 3, rule=rule_config("liouna"), generator=torch.Generator().manual_seed(0))
    assert torch.equal(fresh.weight, LocalRule(rule_config("liouna")).init_weight((6, 3, 3, 3), torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("inhibition", ["population", "column", "self"])
@pytest.mark.parametrize("masked", [False, True])
def test_the_update_does_not_depend_on_the_weights_memory_order(inhibition, masked):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, 7, 7, generator=g, dtype=torch.float64)
    w = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    geometry = ConvGeometry(1, 1, "zeros")
    c = torch.relu(F.conv2d(x, w, padding=1))
    h = torch.softmax(c, dim=1)
    visible = (torch.rand(3, 1, 7, 7, generator=g) > 0.5).double() if masked else None
    plain = explicit_update(x, c, h, w, geometry, visible=visible, lambda_v=0.25, inhibition=inhibition)
    w_cl = w.contiguous(memory_format=CHANNELS_LAST)
    fast = explicit_update(x, c, h, w_cl, geometry, visible=visible, lambda_v=0.25, inhibition=inhibition)
    assert fast.shape == plain.shape
    torch.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-12)
    for scaling in ("global-maxabs", "unit-maxabs", "rms"):
        rule = LocalRule(rule_config("liouna", scaling=scaling))
        a, b = w.clone(), w_cl.clone()
        rule.apply(a, plain, 0.5)
        rule.apply(b, fast, 0.5)
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "norm-adaptive"])
def test_step_sizes_take_progress_as_a_number_or_a_tensor(schedule):
    rule = LocalRule(rule_config("liouna", lr_schedule=schedule, lr=0.3))
    w = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(3))
    for progress in (0.0, 0.37, 1.0, 1.4):
        want = rule.step_sizes(w, progress)
        got = rule.step_sizes(w, torch.tensor(progress))
        assert got.shape == want.shape == (6, 1, 1, 1)
        torch.testing.assert_close(got, want)
    if schedule == "cosine":
        assert float(rule.step_sizes(w, 0.5)[0]) == pytest.approx(0.15)


def test_apply_if_finite_is_apply_and_leaves_the_weights_alone_when_the_update_is_not_finite():
    rule = LocalRule(rule_config("softhebb"))
    g = torch.Generator().manual_seed(4)
    w = torch.randn(6, 3, 3, 3, generator=g).contiguous(memory_format=CHANNELS_LAST)
    dw = torch.randn(6, 3, 3, 3, generator=g)
    want = w.clone()
    rule.apply(want, dw, 0.2)
    got = w.clone()
    assert bool(rule.apply_if_finite(got, dw, torch.tensor(0.2)))
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    dw[1, 2, 0, 0] = float("nan")
    kept = w.clone()
    assert not bool(rule.apply_if_finite(kept, dw, torch.tensor(0.2)))
    assert torch.equal(kept, w)
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        rule.apply(w.clone(), dw, 0.2)


def test_compile_layers_refuses_a_non_boolean():
    net = build_network(SMALL_SPEC, [rule_config("softhebb")] * 3, seed=0)
    with pytest.raises(TypeError, match="True or False"):
        net.compile_layers("yes")
    assert net.compile_layers() is net and all(layer.compile_step for layer in net.layers)
    assert not any(layer.compile_step for layer in net.compile_layers(False).layers)


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_layers_learn_and_infer_as_the_eager_ones_to_rounding():
    """Masked column-inhibition Liouna over SoftHebb's layer 1 and a linear top: every path of the compiled step
    (mask, winners, factors, scaling, norm-adaptive steps), against the eager network trained on the same batches."""
    rules = [rule_config("softhebb", lr=0.05), rule_config("liouna", inhibition="column", mask_ratio=0.5, mask_patch=2),
             rule_config("liouna", lr_schedule="cosine")]
    eager, compiled = (build_network(SMALL_SPEC, rules, seed=0) for _ in range(2))
    compiled.compile_layers()
    g = torch.Generator().manual_seed(5)
    batches = [torch.randn(6, 3, 12, 12, generator=g) for _ in range(3)]
    for net in (eager, compiled):
        gen = torch.Generator().manual_seed(6)
        for step, x in enumerate(batches):
            h = x
            for i in range(len(net)):
                h = net.learn_layer(i, h, step / len(batches), gen)
    for a, b in zip(eager.layers, compiled.layers):
        assert not torch.equal(a.weight, a.rule.init_weight(tuple(a.weight.shape), torch.Generator().manual_seed(0)))
        torch.testing.assert_close(b.weight, a.weight, rtol=1e-4, atol=1e-5)
        assert torch.equal(a.win_counts, b.win_counts)
    eager.eval(), compiled.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(batches[0]), eager(batches[0]), rtol=1e-4, atol=1e-4)
    # a non-finite update raises as in eager mode, and the weights stay as they were
    layer = compiled.layers[1]
    layer.train()
    with torch.no_grad():
        layer.weight[0, 0, 0, 0] = float("inf")
    before = layer.weight.clone()
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        layer.learn(torch.randn(6, 6, 6, 6, generator=g))
    assert torch.equal(layer.weight, before)


@pytest.mark.parametrize("kernel,stride,padding", [(1, 1, 0), (3, 1, 1), (5, 1, 2), (3, 2, 1), (4, 2, 0)])
@pytest.mark.parametrize("layout", ["standard", "channels_last"])
def test_convolve_patches_is_the_convolution(kernel, stride, padding, layout):
    g = torch.Generator().manual_seed(5)
    x = F.pad(torch.randn(3, 4, 9, 9, generator=g, dtype=torch.float64), (padding,) * 4)
    w = torch.randn(6, 4, kernel, kernel, generator=g, dtype=torch.float64)
    if layout == "channels_last":
        w = w.contiguous(memory_format=CHANNELS_LAST)
    want = F.conv2d(x, w, stride=stride)
    got = convolve_patches(x, w, stride)
    assert got.shape == want.shape and got.dtype == torch.float64
    assert got.is_contiguous(memory_format=CHANNELS_LAST)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # in bf16 the products round their operands: the error is bf16's, relative to the drive's scale
    low = convolve_patches(x.float(), w.float(), stride, torch.bfloat16)
    assert low.dtype == torch.float32
    assert float((low.double() - want).abs().max()) < 0.05 * float(want.abs().max())


def test_conv_algorithms_agree_and_auto_is_the_matrix_product_on_cpu():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(4, 3, 10, 10, generator=g)
    layers = {a: PlasticConv2d(3, 8, 3, padding=1, padding_mode="reflect", rule=rule_config("softhebb"),
                               generator=torch.Generator().manual_seed(0), conv_algorithm=a)
              for a in ("auto", "convolution", "matmul")}
    outs = {a: layer(x) for a, layer in layers.items()}
    assert torch.equal(outs["auto"], outs["matmul"])
    torch.testing.assert_close(outs["matmul"], outs["convolution"], rtol=1e-5, atol=1e-5)
    for layer in layers.values():
        layer.learn(x, progress=0.2)
    assert torch.equal(layers["auto"].weight, layers["matmul"].weight)
    torch.testing.assert_close(layers["matmul"].weight, layers["convolution"].weight, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="conv_algorithm 'winograd'.*auto, convolution, matmul"):
        PlasticConv2d(3, 8, 3, conv_algorithm="winograd")


def test_the_triangle_computes_its_power_in_a_compiled_graph_as_eagerly_to_rounding():
    u = torch.randn(4, 16, 5, 5, generator=torch.Generator().manual_seed(7))
    triangle = Triangle(0.7)
    eager = triangle(u)
    compiled = torch.compile(triangle, fullgraph=True)(u)
    assert torch.equal(compiled == 0, eager == 0) and bool((eager == 0).any())
    # (the compiled mean over units may round differently: near y = 0 that moves y ** 0.7 by ~1e-7)
    torch.testing.assert_close(compiled, eager, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("kernel,stride,padding,size", [(3, 1, 1, 8), (5, 1, 2, 9), (3, 2, 1, 9), (4, 2, 0, 10),
                                                        (1, 1, 0, 5), (3, 2, 0, 8)])
def test_the_prediction_as_a_matrix_product_is_the_transposed_convolution(kernel, stride, padding, size):
    g = torch.Generator().manual_seed(8)
    out = (size + 2 * padding - kernel) // stride + 1
    c = torch.randn(2, 6, out, out, generator=g, dtype=torch.float64)
    w = torch.randn(6, 4, kernel, kernel, generator=g, dtype=torch.float64).contiguous(memory_format=CHANNELS_LAST)
    geometry = ConvGeometry(stride, padding, "zeros")
    want = predict_input(c, w, (size, size), geometry, algorithm="convolution")
    got = predict_input(c, w, (size, size), geometry, algorithm="matmul")
    assert got.shape == want.shape == (2, 4, size, size)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # auto, on CPU: the transposed convolution for a small code, the product from PROJECTION_PRODUCT_UNITS up
    assert torch.equal(predict_input(c, w, (size, size), geometry), want)
    assert use_matmul("auto", "cpu", projected_units=PROJECTION_PRODUCT_UNITS) and use_matmul("auto", "cpu")
    assert not use_matmul("auto", "cpu", projected_units=PROJECTION_PRODUCT_UNITS - 1)
    assert not use_matmul("auto", "meta") and use_matmul("matmul", "meta", 1) and not use_matmul("convolution", "cpu")
    with pytest.raises(ValueError, match="conv_algorithm 'fft'"):
        predict_input(c, w, (size, size), geometry, algorithm="fft")


@pytest.mark.parametrize("power", [0.7, 1.0, 1.4])
def test_a_max_pool_over_the_triangle_pools_first_and_gives_the_same_output(power):
    layer = PlasticConv2d(4, 8, 3, padding=1, activation=Triangle(power), pool=torch.nn.MaxPool2d(4, 2, 1),
                          rule=rule_config("softhebb"), generator=torch.Generator().manual_seed(0))
    u = torch.randn(3, 8, 12, 12, generator=torch.Generator().manual_seed(9))
    plain = layer._pool(layer.activation(u))
    torch.testing.assert_close(layer._activate_and_pool(u), plain, rtol=1e-6, atol=0)
    x = torch.randn(3, 4, 12, 12, generator=torch.Generator().manual_seed(10))
    layer.eval()
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer._pool(layer.activation(layer._drive(layer.norm(x)))), rtol=1e-6, atol=0)
