"""Per-layer feature extraction: layer by layer (each layer run once per image) gives exactly the features of
running the network from the pixels for every depth; the caller owns what it is given."""
import pytest
import torch

from liouna_snn import build_network, rule_config
from liouna_snn.data import load_dataset
from liouna_snn.evaluation import extract_features, features_by_depth, probe_layers
from liouna_snn.spiking import SpikingConfig

from .test_network import SMALL_SPEC

MEAN, STD = torch.tensor([0.5, 0.45, 0.4]), torch.tensor([0.25, 0.24, 0.26])


@pytest.fixture(scope="module")
def tiny_data():
    data = load_dataset("cifar10-mini", split="train").subset(70)
    data.images = data.images[:, :, 10:22, 10:22].contiguous()  # 12x12 crops for the small spec
    return data


def _trained_looking(spiking=None):
    """The small network with non-trivial batch-norm statistics (eval mode uses them)."""
    net = build_network(SMALL_SPEC, rule_config("softhebb", lr=0.05), seed=3, spiking=spiking)
    with torch.no_grad():
        for i, layer in enumerate(net.layers):
            for name, buf in layer.named_buffers():
                if name.endswith("running_mean"):
                    buf.copy_(torch.linspace(-0.2, 0.3, buf.numel()).reshape(buf.shape) * (i + 1))
                elif name.endswith("running_var"):  # batch-norm's per channel; the current scale's one number
                    buf.copy_(torch.linspace(0.5, 2.0, buf.numel()).reshape(buf.shape))
    return net


@pytest.mark.parametrize("spiking", [None, SpikingConfig("native-lif", {"beta": 0.9, "threshold": 0.5}, 4)],
                         ids=["rate", "spiking-constant-current"])
@pytest.mark.parametrize("depths", [[1, 2, 3], [3, 1], [2]])
def test_layer_by_layer_features_equal_features_from_the_pixels(tiny_data, spiking, depths):
    net = _trained_looking(spiking)
    kw = dict(mean=MEAN, std=STD, batch_size=16, progress=False, dtype=torch.float32)  # 70 = 4 x 16 + 6: a short batch
    chained = list(features_by_depth(net, tiny_data, depths, **kw))
    assert [d for d, _, _ in chained] == sorted(depths)
    for d, features, labels in chained:
        reference, ref_labels = extract_features(net, tiny_data, d, **kw)
        assert features.shape == reference.shape and features.dtype == torch.float32
        assert torch.equal(features, reference), f"depth {d}"
        assert torch.equal(labels, ref_labels) and torch.equal(labels, tiny_data.labels)
        assert features.abs().sum() > 0


def test_the_caller_may_modify_the_features_it_is_given(tiny_data):
    net = _trained_looking()
    kw = dict(mean=MEAN, std=STD, batch_size=32, progress=False)
    reference = {d: extract_features(net, tiny_data, d, **kw)[0] for d in (1, 2, 3)}
    for d, features, _ in features_by_depth(net, tiny_data, [1, 2, 3], **kw):
        assert torch.equal(features, reference[d])
        features.fill_(float("nan"))  # the probe standardises in place: later depths must not see it


def test_a_model_without_start_is_run_from_the_pixels_per_depth(tiny_data):
    net = _trained_looking()

    class PixelsOnly(torch.nn.Module):  # forward(x, depth), as a ported or blockwise model has
        def __init__(self):
            super().__init__()
            self.net, self.calls = net, []

        def forward(self, x, depth):
            self.calls.append(depth)
            return self.net(x, depth)

    model = PixelsOnly()
    kw = dict(mean=MEAN, std=STD, batch_size=35, progress=False)
    got = {d: f for d, f, _ in features_by_depth(model, tiny_data, [2, 1], **kw)}
    assert model.calls == [1, 1, 2, 2]  # two batches per depth, shallowest first
    for d in (1, 2):
        assert torch.equal(got[d], extract_features(net, tiny_data, d, **kw)[0])


def test_probe_layers_reports_the_same_accuracies_as_probing_each_depth_alone(tiny_data):
    net = _trained_looking()
    test = load_dataset("cifar10-mini", split="test").subset(40)
    test.images = test.images[:, :, 10:22, 10:22].contiguous()
    opts = dict(mean=MEAN, std=STD, progress=False, epochs=2, knn_k=5, feature_batch_size=32)
    together = probe_layers(net, tiny_data, test, [1, 2, 3], **opts)
    alone = [probe_layers(net, tiny_data, test, [d], **opts)[0] for d in (1, 2, 3)]
    strip = lambda r: {k: v for k, v in r.items() if k != "eval_seconds"}  # noqa: E731
    assert [strip(r) for r in together] == [strip(r) for r in alone]


def test_start_must_lie_below_depth():
    net = _trained_looking()
    x = torch.zeros(2, 6, 6, 6)
    with pytest.raises(ValueError, match=r"start must be in 0\.\.1 \(below depth 2\), got 2"):
        net(x, 2, start=2)
    assert net(x, 2, start=1).shape == net.layers[1](x).shape


def test_a_probed_depths_features_are_freed_before_the_next_depth_is_computed(tiny_data, monkeypatch):
    """Peak memory: while layer d+1's outputs are computed, nothing holds depth d's features any more (only the
    layer outputs the next depth starts from)."""
    import weakref

    import liouna_snn.evaluation.layers as layers_module

    net = _trained_looking()
    given, alive_at_next_depth = [], []
    real_knn, real_forward = layers_module.knn_top1, net.forward

    def knn_noting_features(train_x, train_y, test_x, test_y, **kw):
        given.extend([weakref.ref(train_x), weakref.ref(test_x)])
        return real_knn(train_x, train_y, test_x, test_y, **kw)

    def forward_checking(x, depth=None, start=0):
        if start > 0:
            alive_at_next_depth.append(sum(ref() is not None for ref in given))
        return real_forward(x, depth, start=start)

    monkeypatch.setattr(layers_module, "knn_top1", knn_noting_features)
    monkeypatch.setattr(net, "forward", forward_checking)
    test = load_dataset("cifar10-mini", split="test").subset(40)
    test.images = test.images[:, :, 10:22, 10:22].contiguous()
    probe_layers(net, tiny_data, test, [1, 2, 3], mean=MEAN, std=STD, progress=False, epochs=1, knn_k=5,
                 feature_batch_size=32)
    assert len(given) == 6 and alive_at_next_depth and set(alive_at_next_depth) == {0}
